"""Writing files so that a reader never sees a partial one (no pandas or torch here: predict imports it).

Every output is written to a hidden temporary file beside it (``.<name>.<8 random characters>.tmp``) and renamed
over it. The writer holds an advisory lock on that file while it writes, so that the next write of the same output
can tell the leftovers of a killed run (no lock) from a write in progress (locked) and remove only the former
(leftovers are looked for once per folder per process).
Outputs get the permissions of any other new file (0666 less the umask), not the 0600 of ``tempfile``.
"""

from __future__ import annotations

import errno
import logging
import os
import re
import shutil
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Literal, overload

from bilipop.errors import OutputError

log = logging.getLogger(__name__)

#: Ends the name of every temporary file, so that a crash's leftovers can be found (``.<name>.<random>.tmp``).
TEMP_SUFFIX = ".tmp"
# tempfile's random part: 8 characters of this alphabet (``tempfile._RandomNameSequence``).
_RANDOM = "[a-z0-9_]{8}"
# torch.save reports a failed write (a full disk) as a RuntimeError of its zip writer, without an errno.
_WRITE_FAILURES = ("No space left", "os error 28", "Disk quota", "inline_container", "PytorchStreamWriter",
                   "I/O error")


def current_umask() -> int:
    """The process's umask, read without changing it where Linux allows (``os.umask`` alone must set one)."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _temp_pattern(name: str) -> re.Pattern[str]:
    return re.compile(rf"\.{re.escape(name)}\.{_RANDOM}{re.escape(TEMP_SUFFIX)}")


def _lock(fd: int) -> bool:
    """Take an exclusive advisory lock on ``fd`` without waiting; False when another process holds one."""
    try:
        import fcntl
    except ImportError:  # not on a POSIX system: every leftover looks in use, none is removed
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return False
    return True


def remove_stale_temps(path: str | os.PathLike[str]) -> list[Path]:
    """Remove the temporary files (and folders) that a killed write of ``path`` left beside it.

    Only names of this module's pattern for ``path`` are touched, and only those no running writer holds locked.
    Returns what was removed.
    """
    path = Path(path)
    try:
        names = [entry.name for entry in os.scandir(path.parent)]
    except OSError:
        return []
    return _remove_temps(path, names)


# Leftovers seen in each folder by the first write there in this process: a folder of 27,000 covers is listed once
# per crawl, not once per cover. Later leftovers (of a process killed meanwhile) go with the next run.
_ANY_TEMP = re.compile(rf"\..+\.{_RANDOM}{re.escape(TEMP_SUFFIX)}")
_seen: dict[str, set[str]] = {}
_seen_lock = threading.Lock()


def _remove_leftovers(path: Path) -> None:
    folder = os.path.abspath(path.parent)
    with _seen_lock:
        names = _seen.get(folder)
        if names is None:
            try:
                names = {e.name for e in os.scandir(folder) if _ANY_TEMP.fullmatch(e.name)}
            except OSError:
                names = set()
            _seen[folder] = names
        pattern = _temp_pattern(path.name)
        mine = [n for n in names if pattern.fullmatch(n)]
        names.difference_update(mine)
    if mine:
        _remove_temps(path, mine)


def _remove_temps(path: Path, names: list[str]) -> list[Path]:
    pattern = _temp_pattern(path.name)
    removed: list[Path] = []
    for name in names:
        entry = path.parent / name
        if not pattern.fullmatch(name) or entry.is_symlink() or not entry.exists():
            continue
        try:
            fd = os.open(entry, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        except OSError:
            continue
        try:
            if not _lock(fd):
                continue
            if entry.is_dir():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                os.unlink(entry)
            removed.append(entry)
        except OSError:
            continue
        finally:
            os.close(fd)
    for stale in removed:
        log.info("removed %s, left by an interrupted write", stale)
    return removed


def missing_parents(folder: Path) -> list[Path]:
    """The ancestors of ``folder`` (itself included) that do not exist yet, outermost first."""
    missing = []
    while not folder.exists() and folder != folder.parent:
        missing.append(folder)
        folder = folder.parent
    return missing[::-1]


# The errors of writing a file, as opposed to those of the callback's own reading (a download that fails is an
# OSError too, and stays one).
WRITE_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EACCES, errno.EPERM, errno.EROFS, errno.EISDIR, errno.ENOTDIR,
                 errno.EFBIG, errno.EIO)


def _disk_full(folder: Path) -> bool:
    """Less than 1 MiB free where ``folder`` lives (asked before the failed temporary file is removed)."""
    try:
        return shutil.disk_usage(folder).free < 1 << 20
    except OSError:
        return False


# An OSError with any_oserror=True always gives an OutputError: the callers raise it as is.
@overload
def _write_error(path: Path, exc: OSError, *, any_oserror: Literal[True], full: bool = False) -> OutputError: ...
@overload
def _write_error(path: Path, exc: BaseException, *, any_oserror: bool = False,
                 full: bool = False) -> OutputError | None: ...
def _write_error(path: Path, exc: BaseException, *, any_oserror: bool = False,
                 full: bool = False) -> OutputError | None:
    """A one-line OutputError for a failed write (full disk, no permission), or None for any other error."""
    if isinstance(exc, OSError):
        if not any_oserror and exc.errno not in WRITE_ERRNOS:
            return None
        code = exc.errno
    elif any(s in str(exc) for s in _WRITE_FAILURES):
        code = errno.ENOSPC if "No space" in str(exc) or "os error 28" in str(exc) or full else None
    else:
        return None
    if code in (errno.ENOSPC, errno.EDQUOT):
        why = "the disk is full; free some space or write somewhere else"
    elif code in (errno.EACCES, errno.EPERM, errno.EROFS):
        why = "no permission to write there; choose another folder"
    elif isinstance(exc, OSError):
        why = f"{exc.strerror or exc}; check the folder (and the free space) or write somewhere else"
    else:
        why = "the write failed (a full disk?); free some space or write somewhere else"
    return OutputError(f"cannot write {path}: {why}")


def atomic_write(path: str | os.PathLike[str], write: Callable[[Path], object]) -> Path:
    """Call ``write(tmp)`` on a temporary file beside ``path``, then rename it over ``path``.

    A failure leaves nothing behind: neither the temporary file, nor a partial ``path``, nor the folders made for
    it; an older ``path`` stays as it was. Leftovers of an earlier killed write of ``path`` are removed first.

    Raises:
        OutputError: the write failed for lack of space or permission (one line naming ``path``).
    """
    path = Path(path)
    made = missing_parents(path.parent)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        _remove_leftovers(path)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TEMP_SUFFIX, dir=path.parent)
    except OSError as exc:
        _remove_empty(made)
        raise _write_error(path, exc, any_oserror=True) from exc
    tmp = Path(tmp_name)
    try:
        _lock(fd)  # held until the rename: this file is in use, not a leftover
        write(tmp)
        try:
            # after write: some writers (safetensors) put a new file of their own at tmp
            os.chmod(tmp, 0o666 & ~current_umask())
            os.replace(tmp, path)
        except OSError as exc:
            raise _write_error(path, exc, any_oserror=True) from exc
    except BaseException as exc:
        full = _disk_full(path.parent)  # torch.save says only "unexpected pos": the free space tells
        tmp.unlink(missing_ok=True)
        _remove_empty(made)
        error = _write_error(path, exc, full=full) if isinstance(exc, Exception) and not isinstance(
            exc, OutputError) else None
        if error is not None:
            raise error from exc
        raise
    finally:
        os.close(fd)
    return path


def atomic_folder(folder: str | os.PathLike[str], write: Callable[[Path], object]) -> Path:
    """Call ``write(tmp)`` on a new temporary folder beside ``folder``, then put it in ``folder``'s place.

    Like :func:`atomic_write`, a failure leaves ``folder`` as it was and nothing else behind.

    Raises:
        OutputError: as :func:`atomic_write`.
    """
    folder = Path(folder)
    made = missing_parents(folder.parent)
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
        _remove_leftovers(folder)
        tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", suffix=TEMP_SUFFIX, dir=folder.parent))
    except OSError as exc:
        _remove_empty(made)
        raise _write_error(folder, exc, any_oserror=True) from exc
    fd = -1
    try:
        fd = os.open(tmp, os.O_RDONLY)
        _lock(fd)
        os.chmod(tmp, 0o777 & ~current_umask())
        write(tmp)
        try:
            if folder.exists():
                old = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", suffix=TEMP_SUFFIX, dir=folder.parent))
                os.replace(folder, old / folder.name)
                try:
                    os.replace(tmp, folder)
                except OSError:
                    os.replace(old / folder.name, folder)  # the old folder back in its place
                    raise
                finally:
                    shutil.rmtree(old, ignore_errors=True)
            else:
                os.replace(tmp, folder)
        except OSError as exc:
            raise _write_error(folder, exc, any_oserror=True) from exc
    except BaseException as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        _remove_empty(made)
        error = _write_error(folder, exc) if isinstance(exc, Exception) and not isinstance(exc, OutputError) \
            else None
        if error is not None:
            raise error from exc
        raise
    finally:
        if fd >= 0:
            os.close(fd)
    return folder


def _remove_empty(folders: list[Path]) -> None:
    for folder in reversed(folders):
        try:
            folder.rmdir()
        except OSError:
            return
