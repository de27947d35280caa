"""The resumable steps of one crawl run, in the order ``crawl()`` takes them.

Each step reads what is left to do from the store (cursors, rows without followers, honours or covers), so a run
killed anywhere simply starts the unfinished step again; every unit of work is committed on its own.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bilipop.crawl import api, covers
from bilipop.crawl.http import HttpClient, NotFound
from bilipop.crawl.store import Store
from bilipop.errors import CrawlError

log = logging.getLogger(__name__)

PAGE_SIZE = 50  # the most the listings serve per page
COVER_ATTEMPTS = 4  # downloads of one cover per run before it is recorded as failed (and retried next run)
MAX_HOT_PAGES = 20


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


class CrawlRun:
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
