"""bilipop demo end to end on a small simulated world, and its bad inputs."""

import json

import pandas as pd
import pytest
from PIL import Image
from typer.testing import CliRunner

from bilipop.cli import app
from bilipop.demo import claim_world, make_demo_cover
from bilipop.errors import InputError
from bilipop.sim import World

runner = CliRunner()


def test_demo_runs_every_stage_and_leaves_its_folders(tmp_path):
    folder = tmp_path / "demo"
    r = runner.invoke(app, ["demo", "--dir", str(folder), "--videos", "300", "--epochs", "1", "--seed", "1"])
    assert r.exit_code == 0, r.output
    assert "SIMULATED" in r.output
    for step in range(1, 8):
        assert f"{step}/7" in r.output
    data, run = folder / "data", folder / "runs" / "demo"
    assert (data / "bilipop.db").is_file()
    labeled = pd.read_parquet(data / "labeled.parquet")
    assert len(labeled) >= 20 and set(labeled["label"]) == {0, 1, 2, 3, 4}
    assert all((data / p).is_file() for p in labeled["cover_path"])
    history = [json.loads(line) for line in (run / "history.jsonl").read_text().splitlines()]
    assert [h["epoch"] for h in history] == [1]
    assert (run / "eval" / "metrics.json").is_file()
    # the prediction is printed: a class name and five probabilities
    assert "expected class" in r.output and r.output.count("%") >= 5

    # the user can go on by hand with the folders the demo left
    r = runner.invoke(app, ["predict", str(folder / "cover.jpg"), "新标题", "--model", str(run), "--json"])
    assert r.exit_code == 0, r.output
    answer = json.loads(r.output)
    assert len(answer["probabilities"]) == 5 and abs(sum(answer["probabilities"]) - 1) < 1e-5
    assert answer["label"] in range(5)

    # running it again resumes the crawl (nothing new) and retrains from scratch; the crawl holds what the 2026
    # strategy finds: the Knowledge videos of the uploaders on the hot lists
    held = len(World(300, 1).must_hold())
    r = runner.invoke(app, ["demo", "--dir", str(folder), "--videos", "300", "--epochs", "1", "--seed", "1"])
    assert r.exit_code == 0, r.output
    assert f"{held} (0 new)" in r.output


def test_demo_rejects_too_few_videos(tmp_path):
    r = runner.invoke(app, ["demo", "--dir", str(tmp_path / "d"), "--videos", "10"])
    assert r.exit_code == 1
    assert "--videos must be at least 100" in r.output
    assert not (tmp_path / "d").exists()


def test_demo_cover_is_a_real_picture(tmp_path):
    path = make_demo_cover(tmp_path / "c.jpg")
    with Image.open(path) as im:
        assert im.format == "JPEG" and im.size == (640, 400)
        colours = im.convert("RGB").getcolors(maxcolors=1 << 20)
    assert colours is not None and len(colours) > 100


def test_demo_refuses_a_folder_holding_another_world(tmp_path):
    # The crawl resumes what the folder holds: another --videos or --seed would silently reuse the old world.
    claim_world(tmp_path / "d" / "data", 300, 1)
    r = runner.invoke(app, ["demo", "--dir", str(tmp_path / "d"), "--videos", "500", "--seed", "1"])
    assert r.exit_code == 1, r.output
    assert "another simulated world (--videos 300 --seed 1)" in r.output
    assert not (tmp_path / "d" / "data" / "bilipop.db").exists()
    claim_world(tmp_path / "d" / "data", 300, 1)  # the same world again is fine (a resumed demo)
    with pytest.raises(InputError, match="did not make"):
        (tmp_path / "e" / "data").mkdir(parents=True)
        (tmp_path / "e" / "data" / "bilipop.db").write_bytes(b"")
        claim_world(tmp_path / "e" / "data", 300, 1)


def test_demo_dir_that_is_a_file_is_one_line_exit_1(tmp_path):
    (tmp_path / "f").write_text("not a folder")
    r = runner.invoke(app, ["demo", "--dir", str(tmp_path / "f"), "--videos", "100"])
    assert r.exit_code == 1, r.output
    assert "cannot write in" in r.output and "Traceback" not in r.output
