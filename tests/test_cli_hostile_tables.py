"""Tables, paths and text from strangers, and the messages users stumble on: no traceback, nothing lost, nothing
injected into a terminal or a spreadsheet. Each bad input goes through the CLI: exit 1, one line on stderr, no
output written, old outputs intact (run folders and training: tests/test_cli_hostile_runs.py)."""

from __future__ import annotations

import errno
import json
import os
import shutil
import stat
from pathlib import Path

import pandas as pd
import pytest
from helpers import TINY_FLAGS, invoke, refused  # noqa: E402
from typer.testing import CliRunner

pytestmark = pytest.mark.usefixtures("one_thread")

runner = CliRunner()

TITLE = "一分钟看懂宇宙 讲解"


# -- tables -------------------------------------------------------------------------------------------------
ROW = {"bvid": "BV1xx411c7m1", "title": "t", "cover_path": "c.jpg", "views": 10, "likes": 1, "coins": 1,
       "favorites": 1, "shares": 1, "followers": 10, "on_hot_list": True}


@pytest.mark.parametrize("value", ["1e26", str(2**63), str(2**64), "1e308", "-1e26"])
@pytest.mark.parametrize("stage", ["filter", "score"])
def test_counters_beyond_int64_are_refused_naming_bvid_and_value(tmp_path, value, stage):
    rows = [dict(ROW, bvid="BV1xx411c7m0"), dict(ROW)]
    table = pd.DataFrame(rows)
    table["views"] = table["views"].astype(object)
    table.loc[1, "views"] = value
    table.to_csv(tmp_path / "in.csv", index=False)
    (tmp_path / "out.csv").write_text("old output\n")
    res = invoke(stage, "-i", tmp_path / "in.csv", "-o", tmp_path / "out.csv")
    refused(res, "BV1xx411c7m1", value if "e" not in value else value.replace("e", "e+").replace("+-", "-"),
             "views")
    assert (tmp_path / "out.csv").read_text() == "old output\n"
    assert "-9223372036854775808" not in res.output


def test_stale_temp_files_of_a_killed_stage_are_removed_by_the_next_run(tmp_path):
    pd.DataFrame([ROW]).to_csv(tmp_path / "in.csv", index=False)
    stale = tmp_path / ".out.parquet.q1w2e3r4.tmp"  # 400 MB each in the test
    stale.write_bytes(b"x" * 1000)
    other = tmp_path / ".notes.txt.q1w2e3r4.tmp"
    other.write_bytes(b"not ours to remove")
    res = invoke("score", "-i", tmp_path / "in.csv", "-o", tmp_path / "out.parquet")
    assert res.exit_code == 0, res.output
    assert not stale.exists() and other.exists()


def test_a_full_disk_in_a_stage_is_one_line_and_keeps_the_old_output(tmp_path, monkeypatch):
    pd.DataFrame([ROW, dict(ROW, bvid="BV1xx411c7m0", views=3)]).to_csv(tmp_path / "in.csv", index=False)
    (tmp_path / "out.parquet").write_bytes(b"old output")

    def full(self, path, *args, **kwargs):
        Path(path).write_bytes(b"PAR1 half a file")
        raise OSError(errno.ENOSPC, "Error writing bytes to file. Detail: [errno 28] No space left on device")

    monkeypatch.setattr(pd.DataFrame, "to_parquet", full)
    refused(invoke("score", "-i", tmp_path / "in.csv", "-o", tmp_path / "out.parquet"), "disk is full",
             "out.parquet")
    assert (tmp_path / "out.parquet").read_bytes() == b"old output"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.csv", "out.parquet"]
    refused(invoke("score", "-i", tmp_path / "in.csv", "-o", tmp_path / "new" / "out.parquet"), "disk is full")
    assert not (tmp_path / "new").exists()


def test_stage_outputs_respect_the_umask(tmp_path):
    pd.DataFrame([ROW]).to_csv(tmp_path / "in.csv", index=False)
    before = os.umask(0o002)
    try:
        assert invoke("score", "-i", tmp_path / "in.csv", "-o", tmp_path / "out.parquet").exit_code == 0
    finally:
        os.umask(before)
    assert stat.S_IMODE((tmp_path / "out.parquet").stat().st_mode) == 0o664


# -- clear messages where users stumble ---------------------------------------------------------------------
@pytest.mark.parametrize("name", ["./no_such_folder", "../no/such/folder", "/no/such/folder/", "~/no_such_bert_x"])
def test_a_bert_folder_that_does_not_exist_says_so(name):
    from bilipop.errors import ModelError
    from bilipop.models.weights import resolve_weights

    with pytest.raises(ModelError, match="does not exist") as info:
        resolve_weights("bert", name)
    assert "hf download" not in str(info.value) and "Hugging Face cache" not in str(info.value)


def test_a_bert_folder_that_does_not_exist_through_the_cli(small_data, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    res = invoke("-q", "train", "--data", small_data, "--out", tmp_path / "r", "--vit", "tiny", "--bert", "./folder",
                  *TINY_FLAGS[4:])
    line = refused(res, "does not exist", "folder")
    assert "hf download" not in line
    assert not (tmp_path / "r").exists()


def test_devices_with_a_gpu_on_a_machine_without_one_says_there_is_no_gpu(small_data, tmp_path, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)
    res = invoke(
        "-q", "train", "--data", small_data, "--out", tmp_path / "r", *TINY_FLAGS[:-2], "--devices", "cpu,cuda:0"
    )
    line = refused(res, "no GPU")
    assert "cuda:0..cuda:0" not in line


@pytest.mark.parametrize("kind", ["missing", "truncated"])
def test_errors_about_your_own_cover_do_not_advise_crawling(tiny_run, tiny_covers, tmp_path, kind):
    cover = tmp_path / "mine.jpg"
    if kind == "truncated":
        cover.write_bytes(Path(tiny_covers[0]).read_bytes()[:300])
    line = refused(invoke("predict", cover, TITLE, "--model", tiny_run["run"]), "mine.jpg")
    assert "crawl" not in line and "cover_path" not in line and "remove the row" not in line


def test_quiet_silences_the_hub_and_transformers_progress_bars(tiny_run, tiny_covers, monkeypatch, capfd):
    import huggingface_hub.utils as hub
    from transformers.utils import logging as hf_logging

    for var in ("HF_HUB_DISABLE_PROGRESS_BARS", "TRANSFORMERS_VERBOSITY", "TRANSFORMERS_NO_ADVISORY_WARNINGS"):
        monkeypatch.delenv(var, raising=False)  # restored after the test
    try:
        res = invoke("-q", "predict", tiny_covers[0], TITLE, "--model", tiny_run["run"])
        assert res.exit_code == 0 and res.stderr == ""
        assert hub.are_progress_bars_disabled() and not hf_logging.is_progress_bar_enabled()
        assert os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] == "1"  # for processes that import them later
        capfd.readouterr()
        for _ in hub.tqdm(range(3), desc="Fetching files"):  # the bar of a snapshot download
            pass
        assert capfd.readouterr().err == ""
    finally:
        os.environ.pop("HF_HUB_DISABLE_PROGRESS_BARS", None)  # it outranks enable_progress_bars()
        from huggingface_hub import constants

        if not constants.HF_HUB_DISABLE_PROGRESS_BARS:  # read at import: an earlier -q test may have set it
            hub.enable_progress_bars()
            hf_logging.enable_progress_bar()  # (enables the hub's too)
        hf_logging.set_verbosity_warning()


# -- text on the terminal -----------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["[/]x.csv", "in[/b].csv", "[bold]in.csv", "[red]a[/red].csv"])
def test_paths_in_messages_are_shown_as_given(tmp_path, name):
    res = invoke("score", "-i", tmp_path / name, "-o", tmp_path / "out.csv")
    refused(res, name, "does not exist")
    assert not (tmp_path / "out.csv").exists()


def test_paths_in_tables_are_shown_as_given(tmp_path):
    pd.DataFrame([ROW]).to_csv(tmp_path / "in.csv", index=False)
    res = invoke("score", "-i", tmp_path / "in.csv", "-o", tmp_path / "[bold]out[/].csv")
    assert res.exit_code == 0, res.output
    assert "[bold]out[/].csv" in res.stdout.replace("\n", "")


ANSI_TITLE = "\x1b]0;owned\x07三分钟看懂\x1b[2J相对论\x1b[31m"


def test_control_sequences_in_titles_never_reach_the_terminal(tiny_run, tiny_covers, tmp_path):
    res = invoke("predict", "--cover", tiny_covers[0], "--title", ANSI_TITLE, "--title", TITLE, "--model",
                  tiny_run["run"])
    assert res.exit_code == 0, res.output
    assert "\x1b" not in res.stdout and "\x07" not in res.stdout
    assert "三分钟看懂相对论" in res.stdout
    as_json = invoke("predict", "--cover", tiny_covers[0], "--title", ANSI_TITLE, "--model", tiny_run["run"], "--json")
    assert json.loads(as_json.stdout)["candidates"][0]["title"] == ANSI_TITLE  # data keeps the text as it was
    bad = tmp_path / "\x1b[2Jgone\x1b]0;x\x07.csv"
    refused(invoke("score", "-i", bad, "-o", tmp_path / "o.csv"), "gone.csv")


# -- predict --batch: spreadsheets and stdout -----------------------------------------------------------------
FORMULAS = ["=HYPERLINK(\"http://x\",\"y\")", "+1+cmd|' /C calc'!A0", "-2+3", "@SUM(A1:A2)", "\tx", "\rx"]


@pytest.fixture
def batch(tiny_covers, tmp_path):
    titles = [*FORMULAS, "plain title", ANSI_TITLE]
    table = pd.DataFrame({"cover": [tiny_covers[i % 2] for i in range(len(titles))], "title": titles,
                          "note": ["-5", "=1+1", "", "x", "+3.5", "-", "ok", "@"]})
    table.to_csv(tmp_path / "in.csv", index=False, lineterminator="\r\n")  # quotes the "\r" title
    return tmp_path / "in.csv"


def test_batch_csv_neutralises_formulas(tiny_run, batch, tmp_path):
    res = invoke("predict", "--batch", batch, "-o", tmp_path / "out.csv", "--model", tiny_run["run"])
    assert res.exit_code == 0, res.output
    out = pd.read_csv(tmp_path / "out.csv", dtype=str, keep_default_na=False)
    assert out["title"].tolist()[:6] == ["'" + t for t in FORMULAS]
    assert out["title"].tolist()[6:] == ["plain title", ANSI_TITLE]  # the data file keeps control characters
    assert out["note"].tolist() == ["-5", "'=1+1", "", "x", "+3.5", "'-", "ok", "'@"]  # numbers stay numbers
    raw = invoke("predict", "--batch", batch, "-o", tmp_path / "raw.csv", "--model", tiny_run["run"],
                  "--no-escape-formulas")
    assert raw.exit_code == 0, raw.output
    assert pd.read_csv(tmp_path / "raw.csv", dtype=str, keep_default_na=False)["title"].tolist()[:6] == FORMULAS
    parquet = invoke("predict", "--batch", batch, "-o", tmp_path / "out.parquet", "--model", tiny_run["run"])
    assert parquet.exit_code == 0
    assert pd.read_parquet(tmp_path / "out.parquet")["title"].tolist()[:6] == FORMULAS  # typed cells, as given


def test_batch_to_stdout(tiny_run, batch, tmp_path):
    import io

    res = invoke("predict", "--batch", batch, "-o", "-", "--model", tiny_run["run"])
    assert res.exit_code == 0, res.output
    out = pd.read_csv(io.StringIO(res.stdout), dtype=str, keep_default_na=False)
    assert len(out) == 8 and {"label", "p0", "p4", "expected_class"} <= set(out.columns)
    assert out["title"].iloc[0] == "'" + FORMULAS[0]
    assert "predicted 8 videos" in res.stderr and not (tmp_path / "-").exists()
    quiet = invoke("-q", "predict", "--batch", batch, "-o", "-", "--model", tiny_run["run"])
    assert quiet.stdout == res.stdout and quiet.stderr == ""
    both = invoke("predict", "--batch", batch, "-o", "-", "--json", "--model", tiny_run["run"])
    assert both.exit_code == 2


def test_a_title_with_a_bare_carriage_return_survives_a_csv_round_trip(tmp_path):
    # pandas ends lines with "\n" and quotes only fields holding it: "a\rb" went out bare and came back as two rows
    pd.DataFrame([dict(ROW, title="a\rb"), dict(ROW, bvid="BV1xx411c7m0", title="c\nd")]).to_csv(
        tmp_path / "in.csv", index=False, lineterminator="\r\n")
    assert invoke("score", "-i", tmp_path / "in.csv", "-o", tmp_path / "out.csv").exit_code == 0
    back = pd.read_csv(tmp_path / "out.csv", dtype={"title": str}, keep_default_na=False)
    assert back["title"].tolist() == ["a\rb", "c\nd"] and len(back) == 2


def test_control_sequences_in_logged_paths_never_reach_the_terminal(tiny_run, tiny_covers, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("BILIPOP_MODEL", raising=False)
    shutil.copytree(tiny_run["run"], tmp_path / "runs" / "\x1b]0;owned\x07new\x1b[2J")
    res = invoke("predict", tiny_covers[0], TITLE)  # logs "using the newest run runs/..."
    assert res.exit_code == 0, res.output
    assert "using the newest run" in res.stderr and "\x1b" not in res.stderr and "\x07" not in res.stderr


def test_an_out_folder_that_cannot_be_made_is_one_line(small_data, tmp_path):
    (tmp_path / "a_file").write_text("in the way")
    res = invoke("-q", "train", "--data", small_data, "--out", tmp_path / "a_file" / "run", *TINY_FLAGS)
    refused(res, "cannot write", "a_file")
    assert (tmp_path / "a_file").read_text() == "in the way"
