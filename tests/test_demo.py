"""bilipop demo end to end on a small simulated world, and its bad inputs."""

import json

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from typer.testing import CliRunner

from bilipop.cli import app, views
from bilipop.demo import (
    DEMO_BATCH_SIZE,
    DEMO_EPOCHS,
    DEMO_VIDEOS,
    CreatorQuestion,
    Option,
    claim_world,
    make_question_inputs,
    run_demo,
)
from bilipop.errors import InputError
from bilipop.evaluation.results import Verdict
from bilipop.sim import World

runner = CliRunner()
# The demo's own settings: smaller worlds leave a test part too small to tell a model from a constant for every
# seed (with the 2026 crawl keeping about half of the world's videos). The CI run of bilipop 0.1's demo failed
# for seed 1 where this machine passed: the tiny tokenizer's vocabulary changed from one process to the next.
DEMO_TEST_VIDEOS, DEMO_TEST_EPOCHS, DEMO_TEST_BATCH = DEMO_VIDEOS, DEMO_EPOCHS, DEMO_BATCH_SIZE


def test_demo_runs_every_stage_and_leaves_its_folders(tmp_path):
    folder = tmp_path / "demo"
    r = runner.invoke(app, ["demo", "--dir", str(folder), "--videos", "300", "--epochs", "1", "--seed", "1"])
    assert r.exit_code == 0, r.output
    assert "SIMULATED" in r.output
    for step in range(1, 8):
        assert f"{step}/7" in r.output
    assert r.output.strip().splitlines()[-1].startswith("verdict: the model ")  # one verdict line, at the end
    assert r.output.count("verdict:") == 1
    data, run = folder / "data", folder / "runs" / "demo"
    assert (data / "bilipop.db").is_file()
    labeled = pd.read_parquet(data / "labeled.parquet")
    assert len(labeled) >= 20 and set(labeled["label"]) == {0, 1, 2, 3, 4}
    assert all((data / p).is_file() for p in labeled["cover_path"])
    history = [json.loads(line) for line in (run / "history.jsonl").read_text().splitlines()]
    assert [h["epoch"] for h in history] == [1]
    assert (run / "eval" / "test" / "metrics.json").is_file() and (run / "eval" / "test" / "calibration.png").is_file()
    # the creator's question: four combinations ranked, with the beat-probabilities between neighbours
    assert "the four combinations, best predicted first" in r.output and r.output.count("%") >= 3

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


def test_demo_covers_are_real_pictures_that_differ_in_the_stated_cause(tmp_path):
    covers, titles = make_question_inputs(tmp_path, seed=0)
    stats = []
    for path in covers:
        with Image.open(path) as im:
            assert im.format == "JPEG" and im.size == (480, 270)
            colours = im.convert("RGB").getcolors(maxcolors=1 << 20)
            stats.append(float(np.asarray(im.convert("L"), dtype=np.float64).mean()))
        assert colours is not None and len(colours) > 50
    assert stats[0] > stats[1] + 40  # the appealing cover is the brighter one
    assert titles[0] != titles[1] and all(t.strip() for t in titles)
    assert make_question_inputs(tmp_path / "again", seed=0)[1] == titles  # deterministic


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


def test_the_verdict_is_the_paired_bootstrap_of_evaluate_rendered_once():
    from bilipop.evaluation.results import Bootstrap, Floor, Floors, Metrics, PairedDifference, StudyFigure

    def metrics(low: float, high: float) -> Metrics:
        beats = PairedDifference(0.15, [low, high], low > 0, 0.95, 1000)
        return Metrics(n=97, ordinal_accuracy=0.55, accuracy=0.4, within1_accuracy=0.8, mae=0.9, macro_mae=1.0,
                       qwk=0.4, spearman=None, confusion=[[0] * 5] * 5, per_class=[], ece=0.1, calibration=[],
                       ci={"ordinal_accuracy": [0.47, 0.62]}, beats_best_constant=beats,
                       bootstrap=Bootstrap(1000, 0.95, "true class", 0))

    constant = Floor(0.40, 0.2, 0.6, 1.2, klass=1, class_name="low")
    study = StudyFigure(3, 0.6242, "vit", "bert", 0.75)
    floors = Floors(constant, constant, Floor(0.3, 0.2, 0.5, 1.6), study, study)
    verdict = Verdict.of(metrics(0.08, 0.22), floors)
    assert verdict.beats and verdict.margin == pytest.approx(0.15) and verdict.n == 97
    line = views.verdict(verdict)
    assert "the model is above the best constant[/] (class 1, 0.4000)" in line and "[+0.0800, +0.2200]" in line
    # the model's figure is above the constant, but the paired interval reaches below 0: no claim
    verdict = Verdict.of(metrics(-0.02, 0.3), floors)
    assert not verdict.beats and "NOT above the best constant" in views.verdict(verdict)


@pytest.mark.parametrize("seed", [0, pytest.param(1, marks=pytest.mark.slow), pytest.param(2, marks=pytest.mark.slow)])
def test_the_demo_learns_for_every_seed(tmp_path, seed):
    # The model is above the best constant with 95 % confidence (evaluate's paired bootstrap), and its ranking puts
    # the appealing cover with the appealing title first, for each of three seeds (seeds 0-4 were checked by hand).
    result = run_demo(tmp_path, videos=DEMO_TEST_VIDEOS, epochs=DEMO_TEST_EPOCHS, seed=seed,
                      batch_size=DEMO_TEST_BATCH)
    verdict = result.verdict
    assert verdict.beats, verdict
    assert verdict.margin > 0.05 and (verdict.qwk or 0) > 0.2, verdict
    assert result.question.found_best, result.question
    assert set(result.seconds) == {"crawl", "filter", "score", "label", "train", "evaluate", "rank"}


def _question(expected: dict) -> CreatorQuestion:
    options = [Option("c", "t", cover, title, 0.0, value, 0, [0.2] * 5)
               for (cover, title), value in sorted(expected.items(), key=lambda kv: -kv[1])]
    return CreatorQuestion(options)


def test_a_tie_is_not_a_find():
    # rank_candidates keeps tied candidates in input order: a constant model must not "find" the better ones
    tied = _question({(True, True): 2.0, (True, False): 2.0, (False, True): 2.0, (False, False): 2.0})
    assert not tied.found_best and not tied.found_order
    good = _question({(True, True): 3.1, (False, True): 2.5, (True, False): 2.2, (False, False): 0.4})
    assert good.found_best and good.found_order  # the two mixed pairs may come in either order
    half = _question({(True, True): 3.1, (True, False): 1.0, (False, True): 2.5, (False, False): 1.2})
    assert half.found_best and not half.found_order
