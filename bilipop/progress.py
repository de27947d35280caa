"""Progress for the core's long calls: a callback for programs (the CLI draws rich bars with it), or a tqdm bar for
Python and notebook users.

Every core function with a ``progress`` keyword (``train``, ``evaluate``, ``predict_batch``) takes:

- ``None`` or ``False`` (the default): no progress at all;
- ``True``: a ``tqdm.auto`` bar (a widget in Jupyter, text on stderr elsewhere), closed when the call returns;
- a callable: called as ``progress(done, total)`` with counts of the current phase (``total`` may be None);
  a new phase (another total: covers checked, then training steps) starts again from 0.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any, TypeVar, cast

Progress = Callable[[int, int | None], None]
#: What a ``progress=`` keyword accepts.
ProgressArg = bool | Progress | None

F = TypeVar("F", bound=Callable[..., Any])


class TqdmProgress:
    """A ``progress(done, total)`` callback that draws a ``tqdm.auto`` bar, made on the first call (a process
    that never reports, such as a non-main torchrun rank, shows none) and reset when the total changes."""

    def __init__(self, description: str) -> None:
        self.description = description
        self.bar: Any = None

    def __call__(self, done: int, total: int | None = None) -> None:
        if self.bar is None:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, desc=self.description, leave=False)
        elif total != self.bar.total:
            self.bar.reset(total=total)
        self.bar.n = done
        self.bar.refresh()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def callback(progress: ProgressArg) -> Progress | None:
    """``progress`` inside a ``takes_progress`` function, typed as what it is there: a callback or None (the
    decorator has already turned True and False into a bar or None)."""
    return progress if callable(progress) else None


def takes_progress(description: str) -> Callable[[F], F]:
    """Let ``progress`` of the decorated function be True (a tqdm bar labelled ``description``) or False (none)
    besides a callback or None; the function itself only ever sees a callback or None."""

    def decorate(function: F) -> F:
        signature = inspect.signature(function)

        @functools.wraps(function)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            bound = signature.bind(*args, **kwargs)
            given = bound.arguments.get("progress")
            if given is None or callable(given) and not isinstance(given, bool):
                return function(*args, **kwargs)
            if not isinstance(given, bool):
                from bilipop.errors import InputError

                raise InputError(f"progress must be True, False, None or a callable (done, total), got {given!r}")
            bar = TqdmProgress(description) if given else None
            bound.arguments["progress"] = bar
            try:
                return function(*bound.args, **bound.kwargs)
            finally:
                if bar is not None:
                    bar.close()

        return cast(F, wrapper)  # functools.wraps keeps the signature that F promises

    return decorate
