"""bilipop.crawl.crawler against a hostile stand-in server, each case held: bad bvids, bad cover URLs,
trickling and oversized replies, redirects to another host, cookies on another host, a full disk."""

from __future__ import annotations

import errno
import json
import socket
import sqlite3
import time

import pytest
from typer.testing import CliRunner

from bilipop.cli import app
from bilipop.crawl import covers, store
from bilipop.crawl.crawler import crawl
from bilipop.crawl.failures import Backoff
from bilipop.data.io import read_table
from bilipop.errors import CrawlError
from bilipop.sim import SimServer

runner = CliRunner()
FAST = Backoff(base_s=0.005, block_base_s=0.005, max_s=0.05, pause_s=0.05, timeout_s=5, empty_wait_s=0.01)
BAD_BVIDS = ("BV/../../../", "BV../../../x", "BV1/../../..", "BV1AAAAAAA/x")


def _rewrite(body: dict, old: str, new: str) -> dict:
    return json.loads(json.dumps(body, ensure_ascii=False).replace(old, new))


def _dead_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_bad_bvids_are_skipped_and_counted_never_used_in_a_path_or_a_request(tmp_path):
    data = tmp_path / "deep" / "data"
    with SimServer(videos=30, seed=3) as sim:
        good = sorted(sim.truth()["must_hold"])[:len(BAD_BVIDS)]

        def poison(path, query, body):
            # Every list carries the bad ids instead of some good ones (hot lists, uploads, Related).
            for real, bad in zip(good, BAD_BVIDS, strict=True):
                body = _rewrite(body, f'"{real}"', json.dumps(bad))
            return body

        sim.tamper = poison
        summary = crawl(data, api_base=sim.base_url, rate=0, backoff=FAST)
        asked = [q.get("bvid", "") for _, _, _, q in sim.requests]
        paths = [p for _, _, p, _ in sim.requests]
    assert summary.bad_ids >= len(BAD_BVIDS)
    assert not set(asked) & set(BAD_BVIDS) and not any(".." in p for p in paths)
    everything = {p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file()}
    assert all(p.startswith("deep/data/") for p in everything), everything
    covers_written = {p.name for p in (data / "covers").iterdir()}
    assert all(covers.BVID_FILE.fullmatch(name) for name in covers_written)
    assert len(read_table(data / "bilipop.db")) == summary.videos > 0


def test_cover_urls_that_are_not_http_or_whose_host_is_dead_fail_that_cover_only(tmp_path):
    with SimServer(videos=30, seed=3) as sim:
        truth = sim.truth()
        chosen = sorted(truth["must_hold"])[:3]
        dead = f"http://127.0.0.1:{_dead_port()}/bfs/archive/{'a' * 40}.jpg"
        bad = ["file:///etc/passwd", "gopher://example.com/1/cover.jpg", dead]
        pics = {truth["videos"][b]["pic"]: url for b, url in zip(chosen, bad, strict=True)}

        def bad_covers(path, query, body):
            for old, new in pics.items():
                body = _rewrite(body, json.dumps(old), json.dumps(new))
            return body

        sim.tamper = bad_covers
        first = crawl(tmp_path, api_base=sim.base_url, rate=0, backoff=FAST)
        started = time.monotonic()
        second = crawl(tmp_path, api_base=sim.base_url, rate=0, backoff=FAST)  # a rerun is not blocked either
        again = time.monotonic() - started
    assert first.covers_failed == 3 and first.covers == first.videos - 3
    assert second.covers_failed == 3 and again < 10
    with sqlite3.connect(tmp_path / "bilipop.db") as conn:
        errors = dict(conn.execute("SELECT bvid, error FROM covers WHERE status = 'failed'"))
    assert set(errors) == set(chosen)
    assert "not an http(s) address" in errors[chosen[0]] and "not an http(s) address" in errors[chosen[1]]
    assert "cannot be reached" in errors[chosen[2]] or "could not be read" in errors[chosen[2]]


def _trickle(handler, length: int = 200, every_s: float = 0.3) -> None:
    handler.send_response(200)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(length))
    handler.end_headers()
    try:
        for _ in range(length):
            handler.wfile.write(b" ")
            handler.wfile.flush()
            time.sleep(every_s)
    except OSError:
        handler.close_connection = True


def test_a_trickling_reply_is_cut_by_the_whole_request_deadline(tmp_path):
    # Before: a reply trickling one byte every 5 s held a request for about 240 s (only reads were timed).
    with SimServer(videos=20, seed=2) as sim:
        sim.intercept = lambda h, path, query: path == "/x/web-interface/popular" and (_trickle(h) or True)
        backoff = Backoff(base_s=0.005, max_s=0.05, deadline_s=1.0, overdue_retries=1, timeout_s=5)
        started = time.monotonic()
        with pytest.raises(CrawlError) as info:
            crawl(tmp_path, api_base=sim.base_url, rate=0, backoff=backoff)
        elapsed = time.monotonic() - started
    assert "no complete reply within 1 s, 2 times in a row" in str(info.value) and "\n" not in str(info.value)
    assert elapsed < 6, elapsed


def test_an_oversized_reply_is_refused(tmp_path):
    def huge(handler, path, query):
        if path != "/x/web-interface/popular":
            return False
        handler.send_response(200)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Connection", "close")
        handler.end_headers()
        handler.close_connection = True
        try:
            for _ in range(10 * 16):
                handler.wfile.write(b" " * 65536)  # 10 MiB without a length
        except OSError:
            pass
        return True

    with SimServer(videos=20, seed=2) as sim:
        sim.intercept = huge
        with pytest.raises(CrawlError, match="too large to be an API answer"):
            crawl(tmp_path, api_base=sim.base_url, rate=0, backoff=FAST)


def test_an_api_redirect_to_another_host_is_refused_and_gets_no_cookie(tmp_path, monkeypatch):
    monkeypatch.setenv("BILIPOP_COOKIE", "SESSDATA=topsecret1234")
    with SimServer(videos=20, seed=2) as sim:
        elsewhere = sim.base_url.replace("127.0.0.1", "localhost")

        def redirect(handler, path, query):
            if path != "/x/web-interface/popular" or handler.headers.get("Host", "").startswith("localhost"):
                return False
            handler.send_response(302)
            handler.send_header("Location", f"{elsewhere}{handler.path}")
            handler.send_header("Content-Length", "0")
            handler.end_headers()
            return True

        sim.intercept = redirect
        result = runner.invoke(app, ["crawl", "--data", str(tmp_path), "--api-base", sim.base_url, "--rate", "0"])
        hosts = [h.get("host", "") for h in sim.request_headers]
    assert result.exit_code == 1
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "redirected an API request to http://localhost" in errors[0], result.output
    assert "another host" in errors[0] and "Traceback" not in result.output
    assert not any(h.startswith("localhost") for h in hosts)  # not followed at all


def _reference(tmp_path, sim):
    crawl(tmp_path / "reference", api_base=sim.base_url, rate=0)
    return read_table(tmp_path / "reference" / "bilipop.db").drop(columns="fetched_at")


def test_a_full_database_disk_is_one_line_the_store_stays_sound_and_the_next_run_resumes(tmp_path, monkeypatch):
    real_save = store.Store.save_examined
    calls = []

    def disk_fills_up(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 5:  # from now on the file may not grow: SQLite answers "database or disk is full"
            pages = self.conn.execute("PRAGMA page_count").fetchone()[0]
            self.conn.execute(f"PRAGMA max_page_count = {pages}")
        return real_save(self, *args, **kwargs)

    data = tmp_path / "data"
    with SimServer(videos=60, seed=3) as sim:
        reference = _reference(tmp_path, sim)
        monkeypatch.setattr(store.Store, "save_examined", disk_fills_up)
        result = runner.invoke(app, ["crawl", "--data", str(data), "--api-base", sim.base_url, "--rate", "0"])
        monkeypatch.setattr(store.Store, "save_examined", real_save)
        assert result.exit_code == 1, result.output
        errors = [line for line in result.output.splitlines() if line.startswith("error:")]
        assert len(errors) == 1 and "is full" in errors[0] and "run the same command again" in errors[0]
        assert "Traceback" not in result.output
        with sqlite3.connect(data / "bilipop.db") as conn:
            assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
            assert conn.execute("SELECT COUNT(*) FROM candidates WHERE state != 'todo'").fetchone()[0] >= 4
        crawl(data, api_base=sim.base_url, rate=0)
    resumed = read_table(data / "bilipop.db").drop(columns="fetched_at")
    assert resumed.equals(reference)


def test_a_full_disk_while_writing_a_cover_is_one_line_and_the_next_run_resumes(tmp_path, monkeypatch):
    real_write = covers.atomic_write
    written = []

    def full_after_three(path, write):
        if len(written) >= 3:
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        written.append(path)
        return real_write(path, write)

    data = tmp_path / "data"
    with SimServer(videos=30, seed=3) as sim:
        reference = _reference(tmp_path, sim)
        monkeypatch.setattr(covers, "atomic_write", full_after_three)
        result = runner.invoke(app, ["crawl", "--data", str(data), "--api-base", sim.base_url, "--rate", "0"])
        monkeypatch.setattr(covers, "atomic_write", real_write)
        errors = [line for line in result.output.splitlines() if line.startswith("error:")]
        assert result.exit_code == 1 and len(errors) == 1 and "No space left on device" in errors[0]
        crawl(data, api_base=sim.base_url, rate=0)
    resumed = read_table(data / "bilipop.db").drop(columns="fetched_at")
    assert resumed.equals(reference) and (resumed["cover_path"] != "").all()
