"""``crawl()``: the resumable Knowledge-section crawl that ``bilipop crawl`` runs, and ``crawl_plan()``, what it
will do and about how long it takes, said before it starts.

The 2026 site has no listing of a whole section (docs/reference.md, "Enumeration"): the crawl starts from the hot lists,
walks the uploads of every uploader sighted there and keeps the videos whose v2 partition ids say Knowledge
(``steps.py``). A crawl that lists nothing, or that the site keeps blocking, stops with one line.
"""

from __future__ import annotations

import errno
import logging
import math
import os
import sqlite3
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from bilipop.crawl import api, covers
from bilipop.crawl.api import DEFAULT_API_BASE
from bilipop.crawl.failures import Backoff
from bilipop.crawl.http import HttpClient, cookie_from_env
from bilipop.crawl.schema import check_store
from bilipop.crawl.steps import UPLOADS_PAGE, CrawlProgress, CrawlRun
from bilipop.crawl.store import Store
from bilipop.errors import CrawlError, InputError
from bilipop.layout import COVERS_DIR, STORE_FILE

log = logging.getLogger(__name__)

_LOCK_FILE = ".bilipop-crawl.lock"
#: Requests per stored Knowledge video beyond the hot lists, covers excluded: what benchmarks/bench_crawl.py
#: measured on the stand-in (README "Crawling the real site"); the real site's mix of sections decides the truth.
REQUESTS_PER_VIDEO = 0.6
#: The hot lists on the real site in 2026: 1 ranking + about 10 popular pages + the series list + about 380 weekly
#: issues + precious, plus nav and finger/spi.
HOT_LIST_REQUESTS = 395
PAPER_SIZE = 27_000


@dataclass
class CrawlSummary:
    """What the store holds after the crawl, and what this run did."""

    store: Path
    videos: int
    new_videos: int
    skipped: int
    examined: int
    other_sections: int
    bad_ids: int
    uploaders_in_dataset: int
    uploaders_with_followers: int
    uploaders_walked: int
    hot_uploaders: int
    covers: int
    covers_failed: int
    requests: int
    api_requests: int
    retries: int
    blocks: int
    pauses: int
    seconds: float
    warnings: list[str] = field(default_factory=list)
    key_refreshes: int = 0
    #: (``"videos"`` or ``"uploaders"``, reason) -> how many this run skipped for it; each is tried again next run.
    failed: dict[tuple[str, str], int] = field(default_factory=dict)

    def _failed(self, kind: str) -> str:
        reasons = sorted(((n, r) for (k, r), n in self.failed.items() if k == kind), key=lambda x: (-x[0], x[1]))
        total = sum(n for n, _ in reasons)
        return f"{total:,}" + (f" ({'; '.join(f'{r}: {n:,}' for n, r in reasons)})" if reasons else "")

    def rows(self) -> list[tuple[str, str]]:
        return [
            ("videos in the dataset", f"{self.videos:,} ({self.new_videos:,} new)"),
            ("videos examined", f"{self.examined:,}"),
            ("  kept as Knowledge", f"{self.examined - self.other_sections - self.skipped:,}"),
            ("  skipped as other sections", f"{self.other_sections:,}"),
            ("videos skipped (not visible; bad ids)", f"{self.skipped:,}; {self.bad_ids:,}"),
            ("videos that failed this run, tried again next run", self._failed("videos")),
            *([("uploaders that failed this run, tried again next run", self._failed("uploaders"))]
              if any(k == "uploaders" for k, _ in self.failed) else []),
            ("uploaders walked (seen on a hot list)", f"{self.uploaders_walked:,} ({self.hot_uploaders:,})"),
            ("uploaders in the dataset (with followers)",
             f"{self.uploaders_in_dataset:,} ({self.uploaders_with_followers:,})"),
            ("covers (failed, retried next run)", f"{self.covers:,} ({self.covers_failed:,})"),
            ("requests: API, all (retries, blocks, pauses, new WBI keys)",
             f"{self.api_requests:,}, {self.requests:,} ({self.retries:,}, {self.blocks:,}, {self.pauses:,}, "
             f"{self.key_refreshes:,})"),
            ("time", f"{self.seconds:,.1f} s"),
            ("store", str(self.store)),
        ]


@dataclass
class CrawlPlan:
    """What a crawl will do, and about how many requests and how long at its ``rate``."""

    lines: list[str]
    requests: int
    seconds: float | None


def crawl_plan(data: str | os.PathLike[str] = "data", max_videos: int | None = None, rate: float = 1.0,
               widen: bool = False, cover_rate: float | None = None) -> CrawlPlan:
    """The plan and estimate ``bilipop crawl`` prints before it starts (no network; reads the store if any)."""
    store_path = Path(data) / STORE_FILE
    held, hot_done = 0, False
    if store_path.is_file():
        try:
            check_store(store_path)
            store = Store(store_path)
            try:
                held = store.video_count()
                hot_done = store.cursor("hot:precious")[1]
            finally:
                store.close()
        except (InputError, OSError):
            pass
    target = max_videos if max_videos is not None else PAPER_SIZE
    left = max(0, target - held)
    api_requests = (0 if hot_done else HOT_LIST_REQUESTS) + math.ceil(left * REQUESTS_PER_VIDEO)
    cover_requests = left
    cover_rate = rate if cover_rate is None else cover_rate
    seconds = None
    if rate > 0 and cover_rate > 0:
        seconds = api_requests / rate + cover_requests / cover_rate
    size = f"{target:,} Knowledge videos" + ("" if max_videos is not None else " (the study's size; no --max-videos)")
    lines = [
        "plan: 1) the hot lists (Knowledge ranking, popular, every weekly must-watch issue, precious)"
        + (" - already read" if hot_done else ""),
        f"      2) the uploads of every uploader seen there ({UPLOADS_PAGE} per request)"
        + ("; with --widen also uploaders found in Related lists (about as many again)" if widen else ""),
        "      3) each upload once (view/detail), unless a list already described it; keep v2 main 1010 (知识)",
        "      4) the covers",
        f"estimate for {size}" + (f", {held:,} already stored" if held else "") +
        f": about {api_requests:,} API requests + {cover_requests:,} covers"
        + (f", about {_duration(seconds)} at --rate {rate:g}" if seconds is not None else " (no rate limit)"),
    ]
    return CrawlPlan(lines=lines, requests=api_requests + cover_requests, seconds=seconds)


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 2 * 3600:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def crawl(
    data: str | os.PathLike[str],
    section: str = "knowledge",
    max_videos: int | None = None,
    tids: str | Sequence[int] | None = None,
    rate: float = 1.0,
    api_base: str = DEFAULT_API_BASE,
    ignore_robots: bool = False,
    widen: bool = False,
    refresh: bool = False,
    progress: Callable[[CrawlProgress], None] | None = None,
    *,
    cover_rate: float | None = None,
    backoff: Backoff | None = None,
    on_plan: Callable[[CrawlPlan], None] | None = None,
) -> CrawlSummary:
    """Crawl a section into ``data/bilipop.db`` and ``data/covers/``, resuming whatever an earlier run left.

    Args:
        data: the dataset folder.
        max_videos: stop examining videos once the store holds this many Knowledge videos.
        tids: v2 sub-partition ids to keep (a comma list or ints, e.g. 2094,2090); default all of Knowledge.
        rate: API requests per second (0: no limit, only for a custom ``api_base``).
        api_base: the JSON API origin; a custom one (a local sim) serves everything, covers aside.
        ignore_robots: fetch what robots.txt disallows (only with the right to crawl anyway).
        widen: also walk the uploaders of Knowledge videos in the Related lists of hot uploaders' videos.
        refresh: ``view/detail`` every stored video again for fresh counters.
        progress: called with a CrawlProgress snapshot as work goes on.
        cover_rate: cover downloads per second (default: ``rate``), on a limiter of their own.
        backoff: waits after failures and blocks (tests shorten them).
        on_plan: called with the plan and estimate (``crawl_plan``) once the arguments and robots.txt allow the
            crawl, before any other request.

    Raises:
        InputError: a bad argument, or a store from a newer bilipop.
        CrawlError: robots.txt forbids the crawl, the site lists nothing or keeps blocking it, the host cannot be
            reached, the disk is full, or another crawl holds the folder.
    """
    tid_set = _check_tids(section, tids)
    api_base = _check_api_base(api_base)
    real_site = urlsplit(api_base).hostname == urlsplit(DEFAULT_API_BASE).hostname
    _check_numbers(max_videos, rate, cover_rate, real_site)
    folder = Path(data)
    if (folder / STORE_FILE).is_file():
        check_store(folder / STORE_FILE)
    started = time.monotonic()
    client = HttpClient(api_base, rate=rate, cover_rate=cover_rate, backoff=backoff, ignore_robots=ignore_robots,
                        cookies=cookie_from_env())
    try:
        # robots.txt is read before anything is written, so a refused crawl leaves no trace behind.
        client.check_robots(api_base + "/x/web-interface/popular")
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise InputError(f"cannot create the dataset folder {folder}: {exc.strerror}; choose another --data"
                             ) from exc
        with _folder_lock(folder):
            if on_plan is not None:
                on_plan(crawl_plan(folder, max_videos=max_videos, rate=rate, widen=widen, cover_rate=cover_rate))
            with _disk_full_is_one_line(folder):
                store = Store(folder / STORE_FILE)
                run = CrawlRun(store, client, folder / COVERS_DIR, tid_set, max_videos, widen, progress)
                try:
                    removed = covers.remove_temp_files(folder / COVERS_DIR)
                    if removed:
                        log.info("removed %d partial cover file(s) left by an interrupted crawl", removed)
                    run.execute(refresh=refresh)
                    counts = store.counts()
                finally:
                    store.close()
    finally:
        client.close()
    stats = client.stats
    for key in ("candidates", "uploaders"):
        counts.pop(key)
    return CrawlSummary(store=folder / STORE_FILE, new_videos=run.new_videos, requests=stats.requests,
                        api_requests=stats.api_requests, retries=stats.retries, blocks=stats.blocks,
                        pauses=stats.pauses, seconds=time.monotonic() - started, warnings=run.warnings,
                        key_refreshes=stats.key_refreshes, failed=dict(run.failed), **counts)


@contextmanager
def _disk_full_is_one_line(folder: Path) -> Iterator[None]:
    """A full disk (SQLite's "database or disk is full", ENOSPC on a cover) is one line; every transaction is
    whole, so the store stays sound and a rerun resumes."""
    try:
        yield
    except sqlite3.OperationalError as exc:
        if "full" not in str(exc).lower():
            raise
        raise CrawlError(f"the disk holding {folder} is full ({exc}); free some space, then run the same command "
                         "again: what is stored is intact and the crawl resumes") from None
    except OSError as exc:
        if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        raise CrawlError(f"the disk holding {folder} is full ({exc.strerror}); free some space, then run the same "
                         "command again: what is stored is intact and the crawl resumes") from None


def _check_tids(section: str, tids: str | Sequence[int] | None) -> set[int] | None:
    """The v2 sub-partitions to keep (None: all of the section)."""
    if section not in api.SECTIONS:
        raise InputError(f"--section {section!r} is not supported; the only section is: {', '.join(api.SECTIONS)}")
    main, known = api.SECTIONS[section]
    if tids is None or (isinstance(tids, str) and not tids.strip()):
        return None
    items = tids.split(",") if isinstance(tids, str) else list(tids)
    chosen: set[int] = set()
    names = ", ".join(f"{t} {n}" for t, n in known.items())
    for item in items:
        try:
            tid = int(str(item).strip())
        except ValueError:
            raise InputError(f"--tids takes v2 sub-partition ids separated by commas, got {item!r}") from None
        if tid in api.OLD_KNOWLEDGE_TIDS or tid == api.OLD_KNOWLEDGE_MAIN:
            raise InputError(f"--tids: {tid} is an old (before 2025) partition id; Bilibili renumbered its partitions "
                             f"in 2025 and {section} is now main partition {main} with sub-partitions {names}")
        if tid not in known:
            raise InputError(f"--tids: {tid} is not a {section} sub-partition; choose from {names}")
        chosen.add(tid)
    return chosen


def _check_api_base(api_base: str) -> str:
    parts = urlsplit(api_base.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.query:
        raise InputError(f"--api-base must be an http(s) address like {DEFAULT_API_BASE}, got {api_base!r}")
    return api_base.strip().rstrip("/")


def _check_numbers(max_videos: int | None, rate: float, cover_rate: float | None, real_site: bool) -> None:
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


__all__ = ["CrawlPlan", "CrawlProgress", "CrawlSummary", "crawl", "crawl_plan"]
