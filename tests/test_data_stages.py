"""The stage functions of the Python API (bilipop.filter_file, score_file, label_file) write the very files the
commands write, keep a store's covers findable, and fail the way the commands do."""

from __future__ import annotations

import inspect
import shutil
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

import bilipop
from bilipop.cli import app
from bilipop.cli.stages import filter_cmd, label_cmd, score_cmd
from bilipop.data import stages
from bilipop.errors import InputError

runner = CliRunner()


@pytest.fixture(scope="module")
def store_dir(tmp_path_factory):
    """A dataset folder holding a real crawl store with covers (the local server, 60 videos)."""
    from bilipop.crawl.crawler import crawl
    from bilipop.sim import SimServer

    folder = tmp_path_factory.mktemp("store") / "d"
    with SimServer(videos=60, seed=3) as sim:
        crawl(folder, api_base=sim.base_url, rate=0)
    return folder


def cli(*args) -> None:
    result = runner.invoke(app, [str(a) for a in args])
    assert result.exit_code == 0, result.output


def test_each_stage_through_the_api_writes_the_files_the_cli_writes(store_dir, tmp_path):
    by_cli, by_api = tmp_path / "cli", tmp_path / "api"
    shutil.copytree(store_dir, by_cli)
    shutil.copytree(store_dir, by_api)
    cli("filter", "--data", by_cli, "--max-followers", 300000, "--no-require-hot")
    cli("score", "--data", by_cli, "--weights", "0.5,0.2,0.2,0.1,0", "--norm", "log", "--age", "per-day")
    cli("label", "--data", by_cli, "--quantiles", "--by-age", 2)
    done = [bilipop.filter_file(data=by_api, max_followers=300000, require_hot=False),
            bilipop.score_file(data=by_api, weights=(0.5, 0.2, 0.2, 0.1, 0), norm="log", age="per-day"),
            bilipop.label_file(data=by_api, quantiles=True, by_age=2)]
    for name in ("filtered.parquet", "scored.parquet", "labeled.parquet"):
        assert (by_api / name).read_bytes() == (by_cli / name).read_bytes(), name
    assert [d.output for d in done] == [by_api / n for n in ("filtered.parquet", "scored.parquet", "labeled.parquet")]
    assert done[0].input == by_api / "bilipop.db" and done[0].report.remaining == len(done[0].table)
    assert done[1].report is None and sum(done[2].report.counts) == len(done[2].table)
    labeled = pd.read_parquet(by_api / "labeled.parquet")
    assert len(labeled) > 0 and all(p.startswith("covers/") for p in labeled["cover_path"])


def test_input_and_output_anywhere_keep_covers_findable_as_the_cli_does(store_dir, tmp_path):
    out = tmp_path / "elsewhere"
    cli("filter", "-i", store_dir / "bilipop.db", "-o", out / "by_cli.csv", "--no-require-hot")
    done = bilipop.filter_file(store_dir / "bilipop.db", out / "by_api.csv", require_hot=False)
    assert (out / "by_api.csv").read_bytes() == (out / "by_cli.csv").read_bytes()
    assert len(done.table) > 0 and all(Path(p).is_absolute() and Path(p).is_file() for p in done.table["cover_path"])


def test_a_bad_output_is_refused_before_reading_and_a_failed_stage_writes_nothing(store_dir, tmp_path):
    with pytest.raises(InputError, match="must end in"):
        bilipop.score_file(tmp_path / "missing.csv", tmp_path / "out.json")
    (tmp_path / "no_score.csv").write_text("bvid,views\nBV1,3\n", encoding="utf-8")
    with pytest.raises(InputError, match="score"):
        bilipop.label_file(tmp_path / "no_score.csv", tmp_path / "labeled.csv")
    assert not (tmp_path / "labeled.csv").exists()


@pytest.mark.parametrize(("command", "function"), [(filter_cmd, stages.filter_file), (score_cmd, stages.score_file),
                                                    (label_cmd, stages.label_file)])
def test_stage_keywords_are_the_flag_names_with_the_same_defaults(command, function):
    flags = inspect.signature(command).parameters
    keywords = inspect.signature(function).parameters
    assert set(flags) == set(keywords)
    for name in ("max_followers", "require_hot", "norm", "age", "quantiles", "by_age"):
        if name in flags:
            assert flags[name].default == keywords[name].default, name
    assert str(flags["data"].default) == keywords["data"].default == "data"


def test_read_table_normalises_whatever_the_store_hands_over(tmp_path, monkeypatch):
    # So that the crawl store can return its raw query result and stop importing bilipop.data.io (pyproject.toml).
    from bilipop.crawl import store
    from bilipop.data.io import read_table

    raw = pd.DataFrame({"bvid": ["BV1"], "views": ["12"], "on_hot_list": ["yes"], "followers": [3.0]})
    monkeypatch.setattr(store, "read_store_table", lambda path: raw.copy())
    (tmp_path / "bilipop.db").write_bytes(b"")
    table = read_table(tmp_path / "bilipop.db")
    assert table["views"].tolist() == [12] and table["views"].dtype == "int64"
    assert table["on_hot_list"].tolist() == [True] and table["followers"].dtype == "int64"
