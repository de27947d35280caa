"""``crawl()``: the resumable Knowledge-section crawl that ``bilipop crawl`` runs.

Order of work, each step resumable from what the store already holds: list every sub-partition page by page
(round robin, so that ``max_videos`` samples all of them), fetch the follower count of each new uploader, collect
hot-list sightings (popular, every weekly must-watch issue, precious), ``view`` each video when honours or fresh
counters are asked for, then download the missing covers.
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
from bilipop.crawl.http import Backoff, HttpClient, NotFound, cookie_from_env
from bilipop.crawl.store import Store, check_store
from bilipop.data.schema import COVERS_DIR, STORE_FILE
from bilipop.errors import CrawlError, InputError

log = logging.getLogger(__name__)

DEFAULT_API_BASE = "https://api.bilibili.com"
REAL_WWW = "https://www.bilibili.com"
PAGE_SIZE = 50  # the most the listings serve per page
COVER_ATTEMPTS = 4  # downloads of one cover per run before it is recorded as failed (and retried next run)
MAX_HOT_PAGES = 20
_LOCK_FILE = ".bilipop-crawl.lock"


@dataclass
class CrawlProgress:
    """A snapshot for a progress display."""

    phase: str
    videos: int = 0
    videos_target: int | None = None
    uploaders_done: int = 0
    uploaders_total: int = 0
    covers_done: int = 0
    covers_total: int = 0
    requests: int = 0
    request_rate: float = 0.0
    blocks: int = 0
    eta_s: float | None = None
    note: str = ""


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
            run = _Run(store, client, folder / COVERS_DIR, tid_list, max_videos, page_size, progress)
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


class _Run:
    """The state of one crawl run; each method is one resumable step."""

    def __init__(self, store: Store, client: HttpClient, covers_dir: Path, tids: list[int],
                 max_videos: int | None, page_size: int,
                 progress: Callable[[CrawlProgress], None] | None) -> None:
        self.store, self.client, self.covers_dir = store, client, covers_dir
        self.tids, self.max_videos, self.page_size = tids, max_videos, page_size
        self.progress = progress
        self.new_videos = 0
        self.viewed = 0
        self.warnings: list[str] = []
        self._listing_counts: dict[int, int] = {}
        self._phase = "starting"
        self._done = self._total = 0
        self._last_report = 0.0
        client.on_wait = lambda note: self._report(note=note, force=True)

    def execute(self, *, www: str, check_honors: bool, refresh: bool) -> None:
        self.client.visit_home(www + "/")
        self.list_partitions()
        self.fetch_followers()
        self.collect_hot_lists()
        if check_honors or refresh:
            self.view_videos(check_honors=check_honors, refresh=refresh)
        self.download_covers()
        self._report(force=True)

    # -- steps -------------------------------------------------------------------------------------------------
    def list_partitions(self) -> None:
        self._phase = "listing"
        active = [t for t in self.tids if not self.store.cursor(f"list:{t}")[1]]
        while active:
            if self.max_videos is not None and self.store.video_count() >= self.max_videos:
                return
            # The least advanced partition goes next: a deterministic order, whatever run got how far.
            tid = min(active, key=lambda t: (self.store.cursor(f"list:{t}")[0] or 1, self.tids.index(t)))
            page_no = self.store.cursor(f"list:{tid}")[0] or 1
            page = self._listing_page(tid, page_no)
            videos, truncated = page.videos, False
            if self.max_videos is not None:
                videos, truncated = self._fit(videos, self.max_videos - self.store.video_count())
            size = page.size or self.page_size
            done = not page.videos and not page.bad_items or (
                page.count is not None and page_no * size >= page.count)
            if page.count is not None:
                self._listing_counts[tid] = page.count
            # A truncated page is read again by a later, larger crawl: upserts make that harmless.
            self.new_videos += self.store.save_listing_page(
                videos, f"list:{tid}", page_no if truncated else page_no + 1, done and not truncated, _now())
            if page.bad_items:
                self._warn(f"partition {tid} page {page_no}: {page.bad_items} video(s) in an unexpected shape "
                           "were skipped")
            if done:
                active.remove(tid)
            self._report()

    def _listing_page(self, tid: int, page_no: int) -> api.ListingPage:
        params = {"rid": tid, "pn": page_no, "ps": self.page_size}
        codes = []
        for path, extra in (("/x/web-interface/newlist", {"type": 0}), ("/x/web-interface/dynamic/region", {})):
            envelope = self.client.get_json(path, {**params, **extra})
            if envelope["code"] == 0:
                return api.parse_listing(envelope, f"{path} rid={tid} pn={page_no}")
            codes.append(f"{path} code {envelope['code']} ({envelope.get('message', '')})")
        raise CrawlError(f"cannot list partition {tid} page {page_no}: {'; '.join(codes)}; the API may have "
                         "changed: check for a newer bilipop, then run the same command again to resume")

    def _fit(self, videos: list[api.Video], room: int) -> tuple[list[api.Video], bool]:
        """The head of ``videos`` holding at most ``room`` videos that are not yet stored."""
        kept, new = [], 0
        for video in videos:
            stored = self.store.conn.execute("SELECT 1 FROM videos WHERE bvid = ?", (video.bvid,)).fetchone()
            if not stored:
                if new == room:
                    return kept, True
                new += 1
            kept.append(video)
        return kept, False

    def fetch_followers(self) -> None:
        """Follower counts, one uploader at a time (user endpoints are the most tightly limited)."""
        self._phase = "uploaders"
        mids = self.store.uploaders_without_followers()
        self._done, self._total = 0, len(mids)
        for mid in mids:
            followers, error = None, None
            for path, params in (("/x/relation/stat", {"vmid": mid}), ("/x/web-interface/card", {"mid": mid})):
                envelope = self.client.get_json(path, params)
                if envelope["code"] == 0:
                    try:
                        followers, error = api.parse_follower(envelope, f"{path} mid={mid}"), None
                        break
                    except api.ApiFormatError as exc:
                        error = str(exc)
                else:
                    error = f"{path} code {envelope['code']}"
            if error:
                self._warn(f"no follower count for uploader {mid} ({error}); retried on the next run")
            self.store.save_followers(mid, followers, _now(), error)
            self._done += 1
            self._report()

    def collect_hot_lists(self) -> None:
        """Sightings on the current popular list, every weekly must-watch issue not yet read, and precious."""
        self._phase = "hot lists"
        for page_no in range(1, MAX_HOT_PAGES + 1):
            envelope = self._hot("/x/web-interface/popular", {"pn": page_no, "ps": PAGE_SIZE})
            if envelope is None:
                break
            found = api.parse_owner_mids(envelope, "popular")
            self.store.save_sightings([(mid, "popular", "", bvid) for mid, bvid in found], _now())
            self._report()
            if not found or api.parse_no_more(envelope, "popular"):
                break
        envelope = self._hot("/x/web-interface/popular/series/list", {})
        numbers = api.parse_series_numbers(envelope, "series/list") if envelope else []
        todo = [n for n in numbers if not self.store.cursor(f"weekly:{n}")[1]]
        self._done, self._total = 0, len(todo)
        for number in todo:
            envelope = self._hot("/x/web-interface/popular/series/one", {"number": number})
            if envelope is not None:
                found = api.parse_owner_mids(envelope, f"weekly issue {number}")
                self.store.save_sightings([(mid, "weekly", str(number), bvid) for mid, bvid in found], _now(),
                                          cursor=f"weekly:{number}")
            self._done += 1
            self._report()
        envelope = self._hot("/x/web-interface/popular/precious", {"page_size": 85, "page": 1})
        if envelope is not None:
            found = api.parse_owner_mids(envelope, "precious")
            self.store.save_sightings([(mid, "precious", "", bvid) for mid, bvid in found], _now())

    def _hot(self, path: str, params: dict) -> dict | None:
        envelope = self.client.get_json(path, params)
        if envelope["code"] != 0:
            self._warn(f"{path} answered code {envelope['code']} ({envelope.get('message', '')}); hot-list "
                       "sightings from it are missing, so on_hot_list may be incomplete")
            return None
        return envelope

    def view_videos(self, *, check_honors: bool, refresh: bool) -> None:
        """``view`` each video needing it: honours (``check_honors``) and fresh counters (``refresh``)."""
        self._phase = "viewing"
        refresh_range = None
        if refresh:
            after, _ = self.store.cursor("refresh")
            until, _ = self.store.cursor("refresh_end")
            if until is None:  # a new refresh covers the videos stored now; a resumed one keeps its range
                after, until = 0, self.store.max_rowid()
                with self.store.transaction():
                    self.store._set_cursor("refresh", 0, False, _now())
                    self.store._set_cursor("refresh_end", until, False, _now())
            refresh_range = (after or 0, until)
        todo = self.store.videos_to_view(honors=check_honors, refresh_range=refresh_range)
        self._done, self._total = 0, len(todo)
        for rowid, bvid in todo:
            envelope = self.client.get_json("/x/web-interface/view", {"bvid": bvid})
            code, now = envelope["code"], _now()
            cursor = ("refresh", rowid) if refresh_range and rowid <= refresh_range[1] else None
            if code in api.VIDEO_SKIP_CODES:
                log.debug("%s: view answered %s, skipping the video", bvid, code)
                self.store.skip_video(bvid, code, now, cursor)
                covers.cover_path(self.covers_dir, bvid).unlink(missing_ok=True)
            elif code != 0:
                self._warn(f"{bvid}: view answered code {code} ({envelope.get('message', '')}); left as it was")
            else:
                try:
                    video = api.parse_video(api.data_of(envelope, "view"), f"view {bvid}")
                    honors = api.parse_honor_types(envelope, f"view {bvid}")
                except api.ApiFormatError as exc:
                    self._warn(f"{bvid}: {exc}; left as it was")
                else:
                    self.store.save_view(bvid, video, honors, now, update_counters=refresh,
                                         hot_types=api.HOT_HONOR_TYPES, cursor=cursor)
            self.viewed += 1
            self._done += 1
            self._report()
        if refresh:
            self.store.clear_cursor("refresh")
            self.store.clear_cursor("refresh_end")

    def download_covers(self) -> None:
        self._phase = "covers"
        todo = self.store.covers_to_fetch(self.covers_dir)
        self._done, self._total = 0, len(todo)
        for bvid, pic in todo:
            self._download_cover(bvid, pic)
            self._done += 1
            self._report()

    def _download_cover(self, bvid: str, pic: str) -> None:
        url = covers.sized_url(pic)
        error = ""
        for _ in range(COVER_ATTEMPTS):
            try:
                jpeg, size = covers.to_jpeg(self.client.get_bytes(url))
            except NotFound as exc:
                error = str(exc)
                break
            except covers.BadCover as exc:
                error = str(exc)
                continue
            covers.write_cover(self.covers_dir, bvid, jpeg)
            self.store.save_cover(bvid, True, _now(), size=size)
            return
        log.info("cover of %s failed (%s); it is retried on the next run", bvid, error)
        self.store.save_cover(bvid, False, _now(), error=error)

    # -- reporting ---------------------------------------------------------------------------------------------
    def _warn(self, message: str) -> None:
        log.warning(message)
        self.warnings.append(message)

    def _report(self, *, note: str = "", force: bool = False) -> None:
        if self.progress is None:
            return
        now = time.monotonic()
        if not force and now - self._last_report < 0.2:
            return
        self._last_report = now
        counts = self.store.counts()
        stats = self.client.stats
        target = self.max_videos
        if target is None and self._listing_counts:
            target = max(sum(self._listing_counts.values()), counts["videos"] + counts["skipped"])
        snapshot = CrawlProgress(
            phase=self._phase, videos=counts["videos"], videos_target=target,
            uploaders_done=counts["uploaders_with_followers"], uploaders_total=counts["uploaders"],
            covers_done=counts["covers"], covers_total=counts["videos"], requests=stats.requests,
            request_rate=stats.request_rate(), blocks=stats.blocks, note=note)
        snapshot.eta_s = self._eta(snapshot)
        self.progress(snapshot)

    def _eta(self, p: CrawlProgress) -> float | None:
        """Remaining requests over the recent request rate; the uploader count is extrapolated while listing."""
        if p.request_rate <= 0:
            return None
        videos_left = max(0, (p.videos_target or p.videos) - p.videos)
        uploaders_per_video = p.uploaders_total / p.videos if p.videos else 0.5
        uploaders_left = p.uploaders_total - p.uploaders_done + videos_left * uploaders_per_video
        covers_left = max(0, (p.videos_target or p.videos) - p.covers_done)
        viewing = self._total - self._done if self._phase == "viewing" else 0
        pages_left = math.ceil(videos_left / self.page_size)
        return (pages_left + uploaders_left + covers_left + viewing) / p.request_rate


def _now() -> int:
    return int(time.time())
