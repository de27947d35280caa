"""The resumable steps of one crawl run, in the order ``crawl()`` takes them (docs/reference.md, "Enumeration").

1. Hot lists: the Knowledge ranking (``rid=1010``), every page of ``popular``, every weekly must-watch issue and
   the precious list; each item's owner is a sighted uploader, each item's facts are kept.
2. Walk each sighted uploader's uploads (``arc/search``, signed, with the anti-bot fields and the space page as
   Referer): every upload becomes a candidate.
3. Examine each candidate once: a candidate that a list item already described (v2 ids and full counters) needs
   no request; any other gets one ``view/detail`` (counters, v2 ids, honours, the uploader's followers and up to
   40 Related items, whose facts spare later requests). A video is kept when its v2 ids say Knowledge.
4. With ``widen``, Knowledge videos in the Related lists of hot uploaders' videos name further uploaders, whose
   uploads are walked and examined the same way (one hop).
5. ``refresh`` re-reads every stored video; then the missing covers are downloaded.

Each step reads what is left to do from the store (cursors, walk pages, candidate states), so a run killed
anywhere starts the unfinished step again; every unit of work is committed on its own.
"""

from __future__ import annotations

import collections
import logging
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bilipop.crawl import api, covers, wbi
from bilipop.crawl.failures import CoverFailed, ItemFailed, ListedNothing
from bilipop.crawl.http import HttpClient
from bilipop.crawl.skips import FailureStreak, failure_reason
from bilipop.crawl.store import Store
from bilipop.errors import CrawlError

log = logging.getLogger(__name__)

POPULAR_PAGE = 50  # the most popular serves per page
UPLOADS_PAGE = 30  # what the space page asks arc/search for
PRECIOUS_PAGE = 100  # a page size of 85 cuts the 98-video list short
MAX_POPULAR_PAGES = 40
COVER_ATTEMPTS = 4  # downloads of one cover per run before it is recorded as failed (and retried next run)
HOT_LIST_WEB_LOCATION = "333.934"
UPLOADS_WEB_LOCATION = "333.1387"
DETAIL_PATH = "/x/web-interface/wbi/view/detail"
KEY_RENEWALS = 2  # new keys for one video's -403 (they may rotate again while the request waits its turn)


@dataclass
class CrawlProgress:
    """A snapshot for a progress display: the phase, its own progress, and the totals so far."""

    phase: str
    done: int = 0
    total: int = 0
    videos: int = 0
    videos_target: int | None = None
    examined: int = 0
    other: int = 0
    requests: int = 0
    request_rate: float = 0.0
    blocks: int = 0
    eta_s: float | None = None
    note: str = ""


class CrawlRun:
    """The state of one crawl run; each method is one resumable step."""

    def __init__(self, store: Store, client: HttpClient, covers_dir: Path, tids: set[int] | None,
                 max_videos: int | None, widen: bool,
                 progress: Callable[[CrawlProgress], None] | None) -> None:
        self.store, self.client, self.covers_dir = store, client, covers_dir
        self.tids, self.max_videos, self.widen = tids, max_videos, widen
        self.progress = progress
        self.new_videos = 0
        self.warnings: list[str] = []
        self._rnd = random.Random()
        self._phase = "starting"
        self._done = self._total = 0
        self._last_report = 0.0
        self._start_videos = store.video_count()
        # Work that failed in this run (an odd code, a bad shape) waits for the next run instead of looping here.
        self._tried_walks: set[int] = set()
        self._tried: set[str] = set()
        #: (``"videos"`` or ``"uploaders"``, reason) -> how many were skipped in this run for it (tried again next
        #: run: nothing about them is recorded as done).
        self.failed: collections.Counter[tuple[str, str]] = collections.Counter()
        self._video_streak = FailureStreak("videos")
        self._uploader_streak = FailureStreak("uploaders")
        self._uploads_seen = False  # an upload list answered with something in this run
        self._uploads_waited = False  # an empty upload list was already waited on (asked again) in this run
        client.on_wait = lambda note: self._report(note=note, force=True)

    def execute(self, *, refresh: bool) -> None:
        self.client.fetch_buvid()
        self.collect_hot_lists()
        self.store.rank_sighted_uploaders(_now())
        while self._room():
            walked = self.walk_uploaders()
            examined = self.examine_candidates()
            if not walked and not examined:
                break
        if refresh:
            self.refresh_videos()
        self.download_covers()
        self.new_videos = self.store.video_count() - self._start_videos
        self._report(force=True)

    def _room(self) -> bool:
        return self.max_videos is None or self.store.video_count() < self.max_videos

    def _wanted(self, video: api.Video) -> bool:
        return video.knowledge and (self.tids is None or video.tid_v2 in self.tids)

    # -- 1. hot lists ------------------------------------------------------------------------------------------
    def collect_hot_lists(self) -> None:
        self._phase = "hot lists"
        if not self.store.cursor("hot:ranking")[1]:
            envelope = self._hot("/x/web-interface/ranking/v2", {"rid": api.KNOWLEDGE_MAIN, "type": "all"},
                                 "the Knowledge ranking")
            self._save_hot(envelope, "ranking", str(api.KNOWLEDGE_MAIN), "hot:ranking", None, True)
        page_no, done = self.store.cursor("hot:popular")
        page_no = page_no or 1
        while not done and page_no <= MAX_POPULAR_PAGES:
            envelope = self._hot("/x/web-interface/popular", {"pn": page_no, "ps": POPULAR_PAGE},
                                 "the popular list", require=page_no == 1)
            done = api.parse_no_more(envelope, "popular") or not envelope["data"].get("list")
            self._save_hot(envelope, "popular", "", "hot:popular", page_no + 1, done)
            page_no += 1
            self._report()
        envelope = self._hot("/x/web-interface/popular/series/list", {}, "the weekly must-watch series")
        numbers = api.parse_series_numbers(envelope, "series/list")
        todo = [n for n in numbers if not self.store.cursor(f"weekly:{n}")[1]]
        self._done, self._total = 0, len(todo)
        for number in todo:
            envelope = self._hot("/x/web-interface/popular/series/one", {"number": number},
                                 f"weekly must-watch issue {number}", require=False)
            if envelope["code"] == 0:
                self._save_hot(envelope, "weekly", str(number), f"weekly:{number}", None, True)
            else:
                self._warn(f"weekly issue {number} answered code {envelope['code']} ({envelope.get('message', '')})"
                           "; its sightings are missing and it is asked for again on the next run")
            self._done += 1
            self._report()
        if not self.store.cursor("hot:precious")[1]:
            envelope = self._hot("/x/web-interface/popular/precious", {"page_size": PRECIOUS_PAGE, "page": 1},
                                 "the precious list")
            self._save_hot(envelope, "precious", "", "hot:precious", None, True)

    def _hot(self, path: str, params: dict, what: str, *, require: bool = True) -> dict:
        envelope = self.client.get_json(path, {**params, "web_location": HOT_LIST_WEB_LOCATION},
                                        expect=api.listed_nothing(what) if require else None)
        if envelope["code"] != 0 and require:
            raise CrawlError(f"{what} ({path}) answered code {envelope['code']} ({envelope.get('message', '')}) "
                             "instead of a list; the site may have changed: check for a newer bilipop")
        return envelope

    def _save_hot(self, envelope: dict, source: str, ref: str, cursor: str, value: int | None, done: bool) -> None:
        videos, bad_ids, bad = api.parse_video_list(envelope, source)
        if bad:
            self._warn(f"{source} {ref}: {bad} item(s) in an unexpected shape were skipped".replace("  ", " "))
        self.store.save_hot_page(source, ref, videos, bad_ids, _now(), cursor=cursor, value=value, done=done)

    # -- 2. uploaders' uploads ---------------------------------------------------------------------------------
    def walk_uploaders(self) -> int:
        """Read the upload lists not read to the end; returns how many pages were read. An upload list that fails
        (or lists nothing) is skipped until the next run."""
        self._phase = "uploaders"
        todo = [(mid, page) for mid, page in self.store.uploaders_to_walk() if mid not in self._tried_walks]
        self._tried_walks |= {mid for mid, _ in todo}
        walked, self._total = self.store.walk_counts()
        self._done = walked
        pages = 0
        empty_in_row = 0
        for mid, page_no in todo:
            try:
                pages += self._walk(mid, page_no)
            except (ItemFailed, ListedNothing, api.ApiFormatError) as exc:
                reason = failure_reason(exc)
                log.info("uploader %d: %s; their uploads are asked for again on the next run", mid,
                         reason if isinstance(exc, ListedNothing) else exc)
                self._uploads_waited |= isinstance(exc, ListedNothing)
                self.failed["uploaders", reason] += 1
                empty_in_row = empty_in_row + 1 if isinstance(exc, ListedNothing) else 0
                if empty_in_row == len(todo) and not self._uploads_seen:  # fewer than the limit, every one empty
                    raise CrawlError(f"every uploader's upload list ({empty_in_row}) listed nothing: {exc}") from None
                self._uploader_streak.failed(reason, str(exc))
            else:
                empty_in_row = 0
                self._uploader_streak.ok()
            self._done += 1
        return pages

    def _walk(self, mid: int, page_no: int) -> int:
        """The pages of one uploader's uploads from ``page_no`` on; returns how many were read."""
        pages = 0
        while True:
            params = {"mid": mid, "ps": UPLOADS_PAGE, "pn": page_no, "order": "pubdate", "tid": 0,
                      "keyword": "", "platform": "web", "web_location": UPLOADS_WEB_LOCATION,
                      "order_avoided": "true", **wbi.anti_bot_fields(self._rnd)}
            # A silent site is waited on briefly once; after that (or once an upload list has answered) an empty
            # one is that uploader's, and is asked for again on the next run.
            brief = not (self._uploads_seen or self._uploads_waited)
            envelope = self.client.get_json(
                "/x/space/wbi/arc/search", params, referer=f"https://space.bilibili.com/{mid}",
                expect=api.listed_nothing(f"the upload list of uploader {mid}") if page_no == 1 else None,
                retries=self._uploader_streak.retries(), empty_retries=None if brief else 0)
            pages += 1
            if envelope["code"] != 0:
                self._warn(f"the uploads of uploader {mid} answered code {envelope['code']} "
                           f"({envelope.get('message', '')}); they are skipped in this run")
                return pages
            self._uploads_seen = True
            page = api.parse_uploads(envelope, f"arc/search mid={mid} pn={page_no}")
            own = [u.bvid for u in page.uploads if u.mid == mid]
            done = not page.uploads or (page.count is not None and page_no * UPLOADS_PAGE >= page.count)
            self.store.save_upload_page(mid, page_no, own, page.count, page.bad_items, done, _now())
            self._report()
            if done:
                return pages
            page_no += 1

    # -- 3. candidates -----------------------------------------------------------------------------------------
    def examine_candidates(self) -> int:
        """Examine every candidate not yet examined (until ``max_videos``); returns how many were examined."""
        self._phase = "videos"
        todo = [(bvid, mid) for bvid, mid in self.store.candidates_to_examine() if bvid not in self._tried]
        self._done, self._total = 0, len(todo)
        walked = self.store.walked_mids()
        hot = {m for m in walked if self._via(m) == "hot"}
        examined = 0
        for bvid, mid in todo:
            if not self._room():
                break
            self._tried.add(bvid)
            self._examine(bvid, mid, walked, nominate=self.widen and mid in hot)
            examined += 1
            self._done += 1
            self._report()
        return examined

    def _sighted(self, mid: int) -> bool:
        """Whether the uploader was seen on a hot list or has a hot honour (a sighting of any kind)."""
        return self.store.one("SELECT 1 FROM sightings WHERE mid = ? LIMIT 1", (mid,)) is not None

    def _via(self, mid: int) -> str | None:
        return self.store.one("SELECT via FROM uploaders WHERE mid = ?", (mid,))

    def _examine(self, bvid: str, mid: int, walked: set[int], *, nominate: bool) -> None:
        known = self.store.facts(bvid)
        if known is not None and known.pid_v2 is not None:
            if not self._wanted(known):
                self.store.save_examined(bvid, "other", _now())
                return
            # A list item lacks the video's honours; they decide whether an uploader reached by widening has been
            # on the hot list, so such an uploader's videos are asked for until one honour is found.
            if known.has_counters and self.store.followers_of(mid) is not None and self._sighted(mid):
                self.store.save_examined(bvid, "kept", _now(), video=known)
                return
        detail = self._detail_of(bvid)
        if detail is None:
            return
        video = detail.video
        nominated = set()
        if nominate:
            nominated = {r.owner_mid for r in detail.related if r.knowledge and r.owner_mid not in walked}
            walked |= nominated
        related = [r for r in detail.related if r.owner_mid in walked]
        state = "kept" if self._wanted(video) and video.bvid == bvid else "other"
        self.store.save_examined(bvid, state, _now(), video=video, followers=detail.followers,
                                 honors=detail.honors, hot_types=api.HOT_HONOR_TYPES, related=related,
                                 nominate=sorted(nominated))

    def _detail_of(self, bvid: str) -> api.Detail | None:
        """``view/detail`` of one candidate, or None when it has none to give now: a per-video code (the video
        is recorded as not visible and asked for again on the next run) or a failure of this video alone
        (skipped, counted, asked for again on the next run)."""
        try:
            envelope = self._detail(bvid)
            code = envelope["code"]
            if code in api.VIDEO_SKIP_CODES:
                log.debug("%s: view/detail answered %s, skipping the video", bvid, code)
                self.store.save_examined(bvid, "gone", _now(), code=code)
                covers.cover_path(self.covers_dir, bvid).unlink(missing_ok=True)
                return None
            if code != 0:
                self._warn(f"{bvid}: view/detail answered code {code} ({envelope.get('message', '')}); it is "
                           "examined again on the next run")
                self._video_failed(bvid, f"code {code}", f"{bvid}: view/detail answered code {code}")
                return None
            detail = api.parse_detail(envelope, f"view/detail {bvid}")
        except (ItemFailed, api.ApiFormatError) as exc:
            log.info("%s: %s; it is examined again on the next run", bvid, exc)
            self._video_failed(bvid, failure_reason(exc), str(exc))
            return None
        self._video_streak.ok()
        return detail

    def _video_failed(self, bvid: str, reason: str, message: str) -> None:
        self.failed["videos", reason] += 1
        self._video_streak.failed(reason, message)

    def _detail(self, bvid: str) -> dict:
        """``view/detail`` of one video. A -403 on this signed call may mean stale keys: it is asked again while
        ``nav`` gives new ones (at most twice); with keys that are still current it is the video's own answer."""
        retries = self._video_streak.retries()
        for _ in range(KEY_RENEWALS):
            envelope = self.client.get_json(DETAIL_PATH, {"bvid": bvid, "need_elec": 0}, retries=retries)
            if envelope["code"] != -403 or not self.client.refresh_keys():
                return envelope
        return self.client.get_json(DETAIL_PATH, {"bvid": bvid, "need_elec": 0}, retries=retries)

    # -- 5. refresh and covers ---------------------------------------------------------------------------------
    def refresh_videos(self) -> None:
        """``view/detail`` each stored video again for fresh counters (one request each, resumable)."""
        self._phase = "refresh"
        after, until = self.store.start_refresh(_now())
        todo = self.store.videos_to_refresh(after, until)
        self._done, self._total = 0, len(todo)
        for rowid, bvid in todo:
            video = None
            try:
                envelope = self._detail(bvid)
                code = envelope["code"]
                if code == 0:
                    video = api.parse_detail(envelope, f"view/detail {bvid}").video
                elif code not in api.VIDEO_SKIP_CODES:
                    self._warn(f"{bvid}: view/detail answered code {code}; left as it was")
                    self._video_failed(bvid, f"code {code}", f"{bvid}: view/detail answered code {code}")
                    code = None
            except (ItemFailed, api.ApiFormatError) as exc:
                log.info("%s: %s; left as it was", bvid, exc)
                self._video_failed(bvid, failure_reason(exc), str(exc))
                code = None
            else:
                if video is not None:
                    self._video_streak.ok()
            self.store.save_refresh(rowid, bvid, video, code if code else None, _now())
            self._done += 1
            self._report()
        self.store.finish_refresh()

    def download_covers(self) -> None:
        self._phase = "covers"
        todo = self.store.covers_to_fetch(self.covers_dir)
        self._done, self._total = 0, len(todo)
        for bvid, pic in todo:
            self._download_cover(bvid, pic)
            self._done += 1
            self._report()

    def _download_cover(self, bvid: str, pic: str) -> None:
        if not api.BVID.fullmatch(bvid):  # the store file is untrusted input: only a BV id becomes a path
            self.store.save_cover(bvid, False, _now(), error="not a BV id")
            return
        error = ""
        for _ in range(COVER_ATTEMPTS):
            try:
                jpeg, size = covers.to_jpeg(self.client.get_bytes(covers.sized_url(pic)))
            except CoverFailed as exc:
                error = str(exc)
                break
            except covers.BadCover as exc:
                error = str(exc)
                continue
            covers.write_cover(self.covers_dir, bvid, jpeg)
            self.store.save_cover(bvid, True, _now(), size=size)
            return
        log.info("cover of %s failed (%s); it is retried on the next run", bvid, error)
        self.store.save_cover(bvid, False, _now(), error=error[:300])

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
        snapshot = CrawlProgress(
            phase=self._phase, done=self._done, total=self._total, videos=counts["videos"],
            videos_target=self.max_videos, examined=counts["examined"], other=counts["other_sections"],
            requests=stats.requests, request_rate=stats.request_rate(), blocks=stats.blocks, note=note)
        snapshot.eta_s = self._eta(snapshot, counts)
        self.progress(snapshot)

    def _eta(self, p: CrawlProgress, counts: dict[str, int]) -> float | None:
        """Requests left (pages of uploads not read, candidates not examined, covers) over the recent rate."""
        if p.request_rate <= 0:
            return None
        walked, to_walk = self.store.walk_counts()
        left = (to_walk - walked) * 2 + (counts["candidates"] - counts["examined"]) + (p.videos - counts["covers"])
        if self._phase == "hot lists":
            left += self._total - self._done
        return max(0, left) / p.request_rate if math.isfinite(left) else None


def _now() -> int:
    return int(time.time())
