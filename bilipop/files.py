"""Writing files so that a reader never sees a partial one (no pandas or torch here: predict imports it)."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path

#: Ends the name of every temporary file, so that a crash's leftovers can be found (``.<name>.<random>.tmp``).
TEMP_SUFFIX = ".tmp"


def atomic_write(path: Path, write: Callable[[Path], object]) -> Path:
    """Call ``write(tmp)`` on a temporary file beside ``path``, then rename it over ``path``.

    A failure leaves no file behind: neither the temporary one nor a partial ``path``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TEMP_SUFFIX, dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path
