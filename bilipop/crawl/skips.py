"""One video never stops a crawl: a failure that belongs to one item (a video, an uploader's upload list) skips it
until the next run, and only the same failure on many different items in a row is taken for the site's."""

from __future__ import annotations

from bilipop.crawl.failures import RESUME_HINT, ItemFailed, ListedNothing
from bilipop.errors import CrawlError

#: The same failure on this many different videos (or uploaders) in a row belongs to the site: the crawl stops.
SAME_FAILURE_LIMIT = 10
#: Retries of a request for one item while the item before it failed too (a site-wide fault stops sooner).
RETRIES_IN_A_STREAK = 2


class FailureStreak:
    """Failures of single items (videos, upload lists): each one is skipped, but the same failure on
    ``limit`` different items in a row is the site's, and stops the crawl with the last one's message."""

    def __init__(self, items: str, limit: int = SAME_FAILURE_LIMIT) -> None:
        self.items, self.limit = items, limit
        self.kind: str | None = None
        self.count = 0

    def ok(self) -> None:
        self.kind, self.count = None, 0

    def failed(self, reason: str, message: str) -> None:
        kind = reason.split(":")[0]  # "kept failing: HTTP 500" and "kept failing: HTTP 503" are one failure
        self.count = self.count + 1 if kind == self.kind else 1
        self.kind = kind
        if self.count >= self.limit:
            hint = "" if RESUME_HINT in message else f"; {RESUME_HINT}"
            raise CrawlError(f"the last {self.count} {self.items} all failed the same way, so the site is at fault, "
                             f"not the {self.items}: {message}{hint}")

    def retries(self) -> int | None:
        """Fewer retries for the next item while this streak runs (None: the client's default)."""
        return RETRIES_IN_A_STREAK if self.count else None


def failure_reason(exc: Exception) -> str:
    """A few words for the summary table: why one item was skipped."""
    if isinstance(exc, ItemFailed):
        return exc.reason
    if isinstance(exc, ListedNothing):
        return "listed nothing"
    return "a reply in an unexpected shape"
