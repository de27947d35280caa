"""A crawl killed with SIGKILL at random moments, then finished, equals one that was never interrupted."""

from __future__ import annotations

import hashlib
import random
import signal
import sqlite3
import subprocess
import sys
import time

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


def test_sigkill_at_random_moments_then_resume_equals_an_uninterrupted_crawl(tmp_path):
    rng = random.Random(2026)
    with SimServer(videos=100, seed=21, faults=FaultConfig(invisible=0.1)) as sim:
        crawl(tmp_path / "reference", api_base=sim.base_url, rate=0)
        folder = tmp_path / "killed"
        command = [sys.executable, "-m", "bilipop", "-q", "crawl", "--data", str(folder), "--api-base",
                   sim.base_url, "--rate", "30"]
        interrupted = 0
        for _ in range(4):
            process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(rng.uniform(0.6, 1.4))
            interrupted += process.poll() is None
            process.send_signal(signal.SIGKILL)
            process.wait()
        final = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert final.returncode == 0, final.stderr
    assert interrupted >= 3  # the kills really landed mid-crawl

    raw, files, table = snapshot(folder)
    ref_raw, ref_files, ref_table = snapshot(tmp_path / "reference")
    assert raw == ref_raw
    pd.testing.assert_frame_equal(table, ref_table)
    assert table["bvid"].is_unique
    # No orphan, partial or temporary cover: exactly the dataset's covers, byte for byte.
    assert files == ref_files
    assert sorted(files) == sorted(p.split("/")[1] for p in table["cover_path"])
