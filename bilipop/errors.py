"""The exceptions that reach users. The CLI turns each into a one-line message and exit code 1."""

from __future__ import annotations


class BilipopError(Exception):
    """A problem the user can fix; the message says what is wrong and what to do."""


class InputError(BilipopError):
    """An input file, table, column, value or option is unusable."""


class CrawlError(BilipopError):
    """The crawl cannot go on (blocked, robots.txt, an unreadable store)."""


class ModelError(BilipopError):
    """A model, weights file or run folder cannot be built or loaded."""


class DeviceError(BilipopError):
    """The requested devices do not exist or do not fit the batch."""


class OutputError(InputError):
    """An output cannot be written: a full disk, no permission, a file or folder in the way."""
