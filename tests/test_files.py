"""bilipop.files: atomic writes that respect the umask, leave nothing behind on a full disk, and clean up after a
killed run (only files of their own naming that no running writer holds)."""

from __future__ import annotations

import errno
import os
import stat
from contextlib import contextmanager

import pytest

from bilipop.errors import OutputError
from bilipop.files import atomic_folder, atomic_write, current_umask, remove_stale_temps


@contextmanager
def umask(mask: int):
    before = os.umask(mask)
    try:
        yield
    finally:
        os.umask(before)


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.mark.parametrize("mask", [0o022, 0o002, 0o077])
def test_outputs_respect_the_umask_not_0600(tmp_path, mask):
    # mkstemp's 0600 used to leak into every output: run folders shared with a group were unreadable to it
    with umask(mask):
        assert current_umask() == mask
        atomic_write(tmp_path / "out.txt", lambda tmp: tmp.write_text("x"))
        atomic_folder(tmp_path / "folder", lambda tmp: (tmp / "f.txt").write_text("y"))
    assert _mode(tmp_path / "out.txt") == 0o666 & ~mask
    assert _mode(tmp_path / "folder") == 0o777 & ~mask
    assert (tmp_path / "folder" / "f.txt").read_text() == "y"


def test_stale_temp_files_of_our_naming_are_removed_on_the_next_write(tmp_path):
    ours = tmp_path / ".out.parquet.k3x_9a2b.tmp"  # what a killed `bilipop score` leaves
    ours.write_bytes(b"half a table")
    stale_dir = tmp_path / ".tokenizer.ab12cd34.tmp"
    stale_dir.mkdir()
    (stale_dir / "vocab.txt").write_text("x")
    not_ours = [tmp_path / ".out.parquet.tmp", tmp_path / ".other.parquet.k3x_9a2b.tmp",
                tmp_path / ".out.parquet.TOOLONG123.tmp", tmp_path / "out.parquet.k3x_9a2b.tmp"]
    for path in not_ours:
        path.write_bytes(b"someone else's")
    atomic_write(tmp_path / "out.parquet", lambda tmp: tmp.write_bytes(b"new"))
    assert not ours.exists()
    assert all(p.exists() for p in not_ours)
    assert stale_dir.exists()  # a folder's leftovers go with the next write of that folder
    atomic_folder(tmp_path / "tokenizer", lambda tmp: (tmp / "vocab.txt").write_text("new"))
    assert not stale_dir.exists() and (tmp_path / "tokenizer" / "vocab.txt").read_text() == "new"


def test_a_temp_file_that_a_running_writer_holds_is_left_alone(tmp_path):
    import fcntl

    busy = tmp_path / ".out.csv.abcdefgh.tmp"
    busy.write_bytes(b"being written")
    fd = os.open(busy, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        assert remove_stale_temps(tmp_path / "out.csv") == []
        assert busy.exists()
    finally:
        os.close(fd)
    assert remove_stale_temps(tmp_path / "out.csv") == [busy]


def test_a_write_in_progress_holds_its_temp_file(tmp_path):
    seen = []

    def write(tmp):
        tmp.write_text("x")
        seen.append(remove_stale_temps(tmp_path / "out.txt"))  # another run looking now must not take it away
        assert tmp.exists()

    atomic_write(tmp_path / "out.txt", write)
    assert seen == [[]]


@pytest.mark.parametrize("error", [
    OSError(errno.ENOSPC, "No space left on device"),
    RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 576 vs 534"),  # torch.save's
    Exception("Error while serializing: I/O error: No space left on device (os error 28)"),  # safetensors'
])
def test_a_full_disk_is_one_line_and_leaves_the_old_file_and_no_folder(tmp_path, error):
    old = tmp_path / "old.bin"
    old.write_bytes(b"previous")

    def fill(tmp):
        tmp.write_bytes(b"partial")
        raise error

    with pytest.raises(OutputError, match=r"cannot write .*old.bin: .*(disk is full|a full disk)") as info:
        atomic_write(old, fill)
    assert "\n" not in str(info.value)
    assert old.read_bytes() == b"previous"
    assert [p.name for p in tmp_path.iterdir()] == ["old.bin"]
    with pytest.raises(OutputError, match="disk is full|a full disk"):
        atomic_write(tmp_path / "new" / "deeper" / "x.bin", fill)
    with pytest.raises(OutputError):
        atomic_folder(tmp_path / "made" / "tok", fill)
    assert [p.name for p in tmp_path.iterdir()] == ["old.bin"]  # no half-made folders either


def test_an_error_that_is_not_about_writing_stays_what_it_is(tmp_path):
    def broken(tmp):
        raise ValueError("a bug, not a disk")

    with pytest.raises(ValueError, match="a bug"):
        atomic_write(tmp_path / "x", broken)
    with pytest.raises(FileNotFoundError):  # e.g. the source of a download is missing: not a write error
        atomic_write(tmp_path / "y", lambda tmp: open(tmp_path / "missing", "rb"))
    assert list(tmp_path.iterdir()) == []


def test_replacing_a_folder_keeps_the_old_one_when_writing_fails(tmp_path):
    atomic_folder(tmp_path / "tok", lambda tmp: (tmp / "a").write_text("old"))

    def fail(tmp):
        (tmp / "a").write_text("half")
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(OutputError, match="disk is full"):
        atomic_folder(tmp_path / "tok", fail)
    assert (tmp_path / "tok" / "a").read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["tok"]


def test_many_writes_into_one_folder_list_it_once(tmp_path, monkeypatch):
    # a crawl writes 27,000 covers into one folder: listing it for every cover would cost O(n^2)
    import bilipop.files as files

    calls = []
    real = os.scandir
    monkeypatch.setattr(files.os, "scandir", lambda p: calls.append(p) or real(p))
    (tmp_path / ".BV0.jpg.abcdefgh.tmp").write_bytes(b"half a cover")
    for i in range(50):
        atomic_write(tmp_path / f"BV{i}.jpg", lambda tmp: tmp.write_bytes(b"jpeg"))
    assert len(calls) == 1
    assert not (tmp_path / ".BV0.jpg.abcdefgh.tmp").exists()


def test_torch_saves_wordless_failure_on_a_full_disk_says_the_disk_is_full(tmp_path, monkeypatch):
    import shutil
    from collections import namedtuple

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda p: usage(100, 100, 0))

    def torch_save(tmp):
        tmp.write_bytes(b"PK half a zip")
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 576 vs 534")

    with pytest.raises(OutputError, match="checkpoint.pt: the disk is full"):
        atomic_write(tmp_path / "checkpoint.pt", torch_save)
