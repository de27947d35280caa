"""``crawl()``: the resumable Knowledge-section crawl that ``bilipop crawl`` runs.

Order of work (``steps.py``), each step resumable from what the store already holds: list every
sub-partition page by page (round robin, so that ``max_videos`` samples all of them), fetch the follower count of
each new uploader, collect hot-list sightings (popular, every weekly must-watch issue, precious), ``view`` each
video when honours or fresh counters are asked for, then download the missing covers.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from bilipop.crawl import api, covers
from bilipop.crawl.http import Backoff, HttpClient, cookie_from_env
from bilipop.crawl.steps import PAGE_SIZE, CrawlProgress, CrawlRun
from bilipop.crawl.store import Store, check_store
from bilipop.data.schema import COVERS_DIR, STORE_FILE
from bilipop.errors import CrawlError, InputError

log = logging.getLogger(__name__)

DEFAULT_API_BASE = "https://api.bilibili.com"
REAL_WWW = "https://www.bilibili.com"
_LOCK_FILE = ".bilipop-crawl.lock"


@dataclass
class CrawlSummary:
    """What the store holds after the crawl, and what this run did."""

    store: Path
    videos: int
    new_videos: int
    skipped: int
    uploaders: int
    uploaders_with_followers: int
    hot_uploaders: int
    covers: int
    covers_failed: int
    viewed: int
    requests: int
    retries: int
    blocks: int
    pauses: int
    seconds: float
    warnings: list[str] = field(default_factory=list)

    def rows(self) -> list[tuple[str, str]]:
        return [
            ("videos in the dataset", f"{self.videos:,} ({self.new_videos:,} new)"),
            ("videos skipped (not visible)", f"{self.skipped:,}"),
            ("uploaders (with followers)", f"{self.uploaders:,} ({self.uploaders_with_followers:,})"),
            ("uploaders seen on a hot list", f"{self.hot_uploaders:,}"),
            ("covers (failed, retried next run)", f"{self.covers:,} ({self.covers_failed:,})"),
            ("videos viewed (honours, refresh)", f"{self.viewed:,}"),
            ("requests (retries, blocks, pauses)",
             f"{self.requests:,} ({self.retries:,}, {self.blocks:,}, {self.pauses:,})"),
            ("time", f"{self.seconds:,.1f} s"),
            ("store", str(self.store)),
        ]


def crawl(
    data: str | os.PathLike[str],
    section: str = "knowledge",
    max_videos: int | None = None,
    tids: str | Sequence[int] | None = None,
    rate: float = 1.0,
    api_base: str = DEFAULT_API_BASE,
    ignore_robots: bool = False,
    check_honors: bool = False,
    refresh: bool = False,
    progress: Callable[[CrawlProgress], None] | None = None,
    *,
    cover_rate: float | None = None,
    page_size: int = PAGE_SIZE,
    backoff: Backoff | None = None,
) -> CrawlSummary:
    """Crawl a section into ``data/bilipop.db`` and ``data/covers/``, resuming whatever an earlier run left.

    Args:
        data: the dataset folder.
        max_videos: stop listing once the store holds this many videos.
        tids: sub-partition ids to list (a comma list or ints); default all of the section.
        rate: API requests per second (0: no limit, only for a custom ``api_base``).
        api_base: the JSON API origin; a custom one (a local sim) serves everything, covers aside.
        ignore_robots: fetch what robots.txt disallows (only with the right to crawl anyway).
        check_honors: ``view`` every video for hot-list honours.
        refresh: ``view`` every stored video again for fresh counters.
        progress: called with a CrawlProgress snapshot as work goes on.
        cover_rate: cover downloads per second (default: ``rate``), on a limiter of their own.
        backoff: waits after failures and blocks (tests shorten them).

    Raises:
        InputError: a bad argument, or a store from a newer bilipop.
        CrawlError: robots.txt forbids the crawl, the site keeps blocking it, or another crawl holds the folder.
    """
    tid_list = _check_tids(section, tids)
    api_base = _check_api_base(api_base)
    real_site = urlsplit(api_base).hostname == urlsplit(DEFAULT_API_BASE).hostname
    _check_numbers(max_videos, rate, cover_rate, page_size, real_site)
    folder = Path(data)
    if (folder / STORE_FILE).is_file():
        check_store(folder / STORE_FILE)
    started = time.monotonic()
    client = HttpClient(api_base, rate=rate, cover_rate=cover_rate, backoff=backoff, ignore_robots=ignore_robots,
                        cookies=cookie_from_env())
    try:
        # robots.txt is read before anything is written, so a refused crawl leaves no trace behind.
        client.check_robots(api_base + "/x/web-interface/newlist")
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise InputError(f"cannot create the dataset folder {folder}: {exc.strerror}; choose another --data"
                             ) from exc
        with _folder_lock(folder):
            store = Store(folder / STORE_FILE)
            run = CrawlRun(store, client, folder / COVERS_DIR, tid_list, max_videos, page_size, progress)
            try:
                removed = covers.remove_temp_files(folder / COVERS_DIR)
                if removed:
                    log.info("removed %d partial cover file(s) left by an interrupted crawl", removed)
                run.execute(www=REAL_WWW if real_site else api_base, check_honors=check_honors, refresh=refresh)
                counts = store.counts()
            finally:
                store.close()
    finally:
        client.close()
    stats = client.stats
    return CrawlSummary(store=folder / STORE_FILE, new_videos=run.new_videos, viewed=run.viewed,
                        requests=stats.requests, retries=stats.retries, blocks=stats.blocks, pauses=stats.pauses,
                        seconds=time.monotonic() - started, warnings=run.warnings, **counts)


def _check_tids(section: str, tids: str | Sequence[int] | None) -> list[int]:
    if section not in api.SECTIONS:
        raise InputError(f"--section {section!r} is not supported; the only section is: {', '.join(api.SECTIONS)}")
    known = api.SECTIONS[section]
    if tids is None or (isinstance(tids, str) and not tids.strip()):
        return list(known)
    items = tids.split(",") if isinstance(tids, str) else list(tids)
    chosen = []
    for item in items:
        try:
            tid = int(str(item).strip())
        except ValueError:
            raise InputError(f"--tids takes partition ids separated by commas, got {item!r}") from None
        if tid not in known:
            names = ", ".join(f"{t} {n}" for t, n in known.items())
            raise InputError(f"--tids: {tid} is not a {section} sub-partition; choose from {names}")
        if tid not in chosen:
            chosen.append(tid)
    return chosen


def _check_api_base(api_base: str) -> str:
    parts = urlsplit(api_base.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.query:
        raise InputError(f"--api-base must be an http(s) address like {DEFAULT_API_BASE}, got {api_base!r}")
    return api_base.strip().rstrip("/")


def _check_numbers(max_videos: int | None, rate: float, cover_rate: float | None, page_size: int,
                   real_site: bool) -> None:
    if max_videos is not None and max_videos < 1:
        raise InputError(f"--max-videos must be at least 1, got {max_videos}")
    for name, value in (("--rate", rate), ("cover_rate", cover_rate)):
        if value is not None and (not math.isfinite(value) or value < 0):
            raise InputError(f"{name} must be a number of requests per second >= 0, got {value}")
        if value == 0 and real_site:
            raise InputError(f"{name} 0 (no limit) is only for a local server; against Bilibili use about 1")
    if real_site and rate > 3:
        log.warning("--rate %g is above what Bilibili tolerates (people report blocks from about 3-6 per "
                    "second); expect blocks and pauses", rate)
    if not 1 <= page_size <= PAGE_SIZE:
        raise InputError(f"page_size must be between 1 and {PAGE_SIZE}, got {page_size}")


@contextmanager
def _folder_lock(folder: Path) -> Iterator[None]:
    """One crawl per dataset folder: a second one would race on cursors and delete the first one's temp files."""
    try:
        import fcntl
    except ImportError:  # not POSIX: no lock, the store's transactions still keep the data consistent
        yield
        return
    with open(folder / _LOCK_FILE, "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise CrawlError(f"another bilipop crawl is using {folder}; wait for it to finish or stop it, "
                             "then run this command again") from None
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


__all__ = ["CrawlProgress", "CrawlSummary", "crawl"]
