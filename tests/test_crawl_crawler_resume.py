"""A crawl killed with SIGKILL at four points along the way, then finished, equals one that was never interrupted.

The points are defined by the store, not by a clock: each kill waits until the killed process has stored a given
number of rows (over every table), so that the kills land at the same stages of the crawl on a fast or a slow
machine."""

from __future__ import annotations

import hashlib
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from bilipop.crawl.crawler import crawl
from bilipop.data.io import read_table
from bilipop.sim import FaultConfig, SimServer

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL is POSIX")

RAW_QUERIES = {
    "videos": "SELECT bvid, status, skip_code, views, likes, coins, favorites, shares FROM videos ORDER BY bvid",
    "uploaders": "SELECT mid, name, followers, error FROM uploaders ORDER BY mid",
    "sightings": "SELECT mid, source, ref, bvid FROM sightings ORDER BY mid, source, ref",
    "covers": "SELECT bvid, status, width, height FROM covers ORDER BY bvid",
    "cursors": "SELECT name, value, done FROM cursors ORDER BY name",
    "candidates": "SELECT bvid, mid, seq, state, code FROM candidates ORDER BY bvid",
    "walks": "SELECT mid, via, walk_rank, walk_next, walk_done, uploads FROM uploaders ORDER BY mid",
    "facts": "SELECT bvid, mid, pid_v2, video FROM facts ORDER BY bvid",
}


def snapshot(folder):
    with sqlite3.connect(folder / "bilipop.db") as conn:
        raw = {name: conn.execute(sql).fetchall() for name, sql in RAW_QUERIES.items()}
    files = {p.name: hashlib.md5(p.read_bytes()).hexdigest() for p in (folder / "covers").iterdir()}
    table = read_table(folder / "bilipop.db").drop(columns="fetched_at").reset_index(drop=True)
    return raw, files, table


def stored_rows(db: Path) -> int:
    """Rows over every table of the store (0 before it exists), read without disturbing the writer (WAL mode)."""
    if not db.is_file():
        return 0
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as conn:
            tables = [name for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
            return sum(conn.execute(f'SELECT count(*) FROM "{name}"').fetchone()[0] for name in tables)
    except sqlite3.OperationalError:  # created but not yet given its tables
        return 0


def kill_when_stored(process: subprocess.Popen, db: Path, rows: int, timeout: float = 60.0) -> int:
    """SIGKILL ``process`` as soon as the store holds at least ``rows`` rows; return the rows seen then. The
    process must still be running at that point: a crawl that ends first fails the test."""
    deadline = time.monotonic() + timeout
    seen = stored_rows(db)
    while seen < rows:
        assert process.poll() is None, f"the crawl ended with {seen} rows stored, before reaching {rows}"
        assert time.monotonic() < deadline, f"no {rows} rows stored after {timeout} s (seen {seen})"
        time.sleep(0.005)
        seen = stored_rows(db)
    process.send_signal(signal.SIGKILL)
    process.wait()
    return seen


def test_sigkill_at_four_stages_then_resume_equals_an_uninterrupted_crawl(tmp_path):
    with SimServer(videos=100, seed=21, faults=FaultConfig(invisible=0.1)) as sim:
        crawl(tmp_path / "reference", api_base=sim.base_url, rate=0)
        total = stored_rows(tmp_path / "reference" / "bilipop.db")
        folder = tmp_path / "killed"
        command = [sys.executable, "-m", "bilipop", "-q", "crawl", "--data", str(folder), "--api-base",
                   sim.base_url, "--rate", "30"]
        seen = []
        for share in (0.1, 0.3, 0.5, 0.7):  # of the finished store's rows: the hot lists, uploaders, videos, covers
            process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            seen.append(kill_when_stored(process, folder / "bilipop.db", int(share * total)))
        final = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert final.returncode == 0, final.stderr
    assert seen == sorted(seen) and seen[-1] < total, (seen, total)  # every kill landed before the end

    raw, files, table = snapshot(folder)
    ref_raw, ref_files, ref_table = snapshot(tmp_path / "reference")
    assert raw == ref_raw
    pd.testing.assert_frame_equal(table, ref_table)
    assert table["bvid"].is_unique
    # No orphan, partial or temporary cover: exactly the dataset's covers, byte for byte.
    assert files == ref_files
    assert sorted(files) == sorted(p.split("/")[1] for p in table["cover_path"])
