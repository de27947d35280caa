"""evaluate: the report on a real tiny run, its JSON, its files, sweeps, and every bad input through the CLI."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from helpers import assert_visible_png  # noqa: E402
from typer.testing import CliRunner

from bilipop.cli import app
from bilipop.errors import InputError
from bilipop.evaluation import metrics as m
from bilipop.evaluation.report import evaluate
from bilipop.models.run import load_run
from bilipop.prediction.predict import predict_pairs
from bilipop.stats.credit import expected_class

runner = CliRunner()
JSON_KEYS = {"run", "split", "n", "setting", "selection", "ordinal_accuracy", "accuracy", "within1_accuracy",
             "mae", "macro_mae", "qwk", "spearman", "ece", "calibration", "ci", "beats_best_constant", "bootstrap",
             "confusion", "per_class", "baselines"}


@pytest.fixture
def run_copy(tiny_run, tmp_path) -> Path:
    """A private copy of the run, so that each test sees its own eval/ folder."""
    return Path(shutil.copytree(tiny_run["run"], tmp_path / "run"))


def test_report_matches_the_models_predictions(tiny_run, run_copy):
    report = evaluate(run_copy)
    split = json.loads((run_copy / "split.json").read_text(encoding="utf-8"))
    table = pd.read_parquet(tiny_run["table"]).set_index("bvid").loc[split["test"]]
    loaded = load_run(run_copy)
    probs = predict_pairs(loaded, [str(tiny_run["data"] / p) for p in table["cover_path"]], table["title"].tolist())
    truth = table["label"].to_numpy()
    assert report.metrics.n == len(split["test"])
    assert report.metrics.ordinal_accuracy == pytest.approx(m.ordinal_accuracy(truth, probs.argmax(1)))
    assert report.metrics.confusion == m.confusion_matrix(truth, probs.argmax(1))
    rho = m.spearman(expected_class(probs), table["score"].tolist())
    assert report.metrics.spearman == pytest.approx(rho)
    floors = report.baselines
    assert floors.majority_class.ordinal_accuracy <= floors.best_constant.ordinal_accuracy
    written = json.loads((run_copy / "eval" / "test" / "metrics.json").read_text(encoding="utf-8"))
    assert written["ordinal_accuracy"] == report.metrics.ordinal_accuracy and written["split"] == "test"
    assert_visible_png(run_copy / "eval" / "test" / "confusion.png", (400, 400))
    assert_visible_png(run_copy / "eval" / "test" / "curves.png", (800, 300))
    assert_visible_png(run_copy / "eval" / "test" / "calibration.png", (600, 600))


def test_the_planted_signal_beats_the_floors(tiny_run, run_copy):
    report = evaluate(run_copy, split="all")
    assert report.metrics.n == tiny_run["rows"]
    assert report.metrics.ordinal_accuracy > report.baselines.best_constant.ordinal_accuracy


def test_cli_json_is_one_object_with_the_documented_keys(run_copy):
    res = runner.invoke(app, ["evaluate", str(run_copy), "--json"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert set(data) == JSON_KEYS
    assert (data["run"], data["split"]) == (str(run_copy), "test")
    assert data["setting"]["select_on"] == "valid" and data["selection"] is None
    assert set(data["ci"]) == {"ordinal_accuracy", "accuracy", "within1_accuracy", "mae", "macro_mae", "qwk",
                               "spearman", "ece"}
    lo, hi = data["ci"]["ordinal_accuracy"]
    assert lo <= data["ordinal_accuracy"] <= hi
    assert data["bootstrap"]["resamples"] == 1000
    assert set(data["baselines"]["best_constant"]["ci"]) == {"ordinal_accuracy", "accuracy", "within1_accuracy",
                                                             "mae"}
    assert json.loads((run_copy / "eval" / "test" / "metrics.json").read_text(encoding="utf-8"))["ci"] == data["ci"]
    assert len(data["confusion"]) == 5 and sum(map(sum, data["confusion"])) == data["n"]
    assert [row["class"] for row in data["per_class"]] == [0, 1, 2, 3, 4]
    assert set(data["baselines"]) >= {"majority_class", "best_constant", "uniform_random", "study"}
    config = json.loads((run_copy / "config.json").read_text(encoding="utf-8"))
    study = data["baselines"]["study"]
    assert (config["vision"], config["text"], config["vit_weight"]) == ("vit", "bert", 0.75)
    assert study["ordinal_accuracy"] == 0.6109 and study["epoch"] == 5


def test_cli_table_puts_ordinal_accuracy_first_with_floors(run_copy):
    res = runner.invoke(app, ["evaluate", str(run_copy)])
    assert res.exit_code == 0, res.output
    text = res.stdout
    assert text.index("ordinal accuracy") < text.index("exact accuracy") < text.index("macro MAE")
    for label in ("majority", "constant", "uniform", "study", "0.6242", "per class", "confusion", "95 % interval",
                  "ECE", "the best constant"):
        assert label in text


def test_split_and_input_choices(tiny_run, run_copy, tmp_path):
    split = json.loads((run_copy / "split.json").read_text(encoding="utf-8"))
    train = evaluate(run_copy, split="train")
    assert train.metrics.n == len(split["train"])
    valid = evaluate(run_copy, split="valid")
    assert valid.metrics.n == len(split["valid"]) and valid.selection.startswith("selected on valid")
    # each split has its own folder: evaluating valid and train left the test results alone
    evaluate(run_copy, split="test")
    for name in ("train", "valid", "test"):
        assert json.loads((run_copy / "eval" / name / "metrics.json").read_text(encoding="utf-8"))["split"] == name
    # -i: the same table as CSV elsewhere, covers resolved against the recorded dataset folder
    csv = tmp_path / "copy.csv"
    pd.read_parquet(tiny_run["table"]).to_csv(csv, index=False)
    from_csv = evaluate(run_copy, input=csv, data=tiny_run["data"])
    assert from_csv.metrics == evaluate(run_copy, data=tiny_run["data"]).metrics


def test_missing_rows_are_a_warning_not_an_error(tiny_run, run_copy, tmp_path):
    split = json.loads((run_copy / "split.json").read_text(encoding="utf-8"))
    table = pd.read_parquet(tiny_run["table"])
    partial = tmp_path / "partial.parquet"
    table[table["bvid"] != split["test"][0]].to_parquet(partial)
    report = evaluate(run_copy, input=partial, data=tiny_run["data"])
    assert report.metrics.n == len(split["test"]) - 1
    assert any("not in" in w for w in report.warnings)


@pytest.mark.parametrize("label", [7, None])
def test_a_bad_label_is_refused_as_training_refuses_it(tiny_run, run_copy, tmp_path, label):
    # evaluate and train read the labeled table with the same checks (bilipop.data.io.read_labeled)
    split = json.loads((run_copy / "split.json").read_text(encoding="utf-8"))
    table = pd.read_parquet(tiny_run["table"])
    table["label"] = table["label"].astype("object")
    table.loc[table["bvid"] == split["test"][0], "label"] = label
    damaged = tmp_path / "damaged.parquet"
    table.to_parquet(damaged)
    with pytest.raises(InputError, match=rf"label of .* 0\.\.4 \(bvid {split['test'][0]} has"):
        evaluate(run_copy, input=damaged, data=tiny_run["data"])


def test_sweep_folder_gives_the_table1_comparison(tiny_run, tmp_path):
    sweep = tmp_path / "sweep"
    for name in ("w0.75", "w1.0"):
        shutil.copytree(tiny_run["run"], sweep / name)
    (sweep / "sweep.json").write_text(json.dumps({"weights": [0.75, 1.0], "runs": ["w0.75", "w1.0"]}),
                                      encoding="utf-8")
    res = runner.invoke(app, ["evaluate", str(sweep), "--json"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert [row["run"] for row in data["sweep"]] == ["w0.75", "w1.0"]
    assert set(data["runs"]["w0.75"]) == JSON_KEYS
    epochs = len((tiny_run["run"] / "history.jsonl").read_text(encoding="utf-8").splitlines())
    assert len(data["table1"]) == 2 * epochs
    assert all(len(row["valid_ordinal_accuracy_ci"]) == 2 for row in data["table1"])
    first, second = data["sweep"]
    assert first["ci"][0] <= first["ordinal_accuracy"] <= first["ci"][1]
    # the same model twice: the paired difference is exactly 0 and the two are not told apart
    assert first["is_best"] and second["vs_best"] == {"difference": 0.0, "ci": [0.0, 0.0], "differs": False}
    assert (sweep / "eval" / "test" / "metrics.json").is_file()
    assert (sweep / "w1.0" / "eval" / "test" / "confusion.png").is_file()
    table = runner.invoke(app, ["evaluate", str(sweep)])
    assert table.exit_code == 0 and "Table 1" in table.stdout and "w0.75" in table.stdout


# ----------------------------------------------------------------------------------------------------------
# Bad input: one line, exit code 1, no eval/ folder written.
def _fails(args: list[str], message: str) -> None:
    res = runner.invoke(app, ["evaluate", *args])
    assert res.exit_code == 1, res.output
    assert message in res.output and "Traceback" not in res.output


def test_missing_run_folder(tmp_path):
    _fails([str(tmp_path / "nowhere")], "does not exist")


@pytest.mark.parametrize("name,message", [("split.json", "split.json"), ("model.safetensors", "model.safetensors"),
                                          ("config.json", "config.json")])
def test_run_folder_missing_a_file(run_copy, name, message):
    (run_copy / name).unlink()
    _fails([str(run_copy)], message)
    assert not (run_copy / "eval").exists()


@pytest.mark.parametrize("split", ["valid", "test", "all"])
def test_a_split_json_without_its_valid_list_is_a_damaged_run(run_copy, split):
    parts = json.loads((run_copy / "split.json").read_text(encoding="utf-8"))
    del parts["valid"]
    (run_copy / "split.json").write_text(json.dumps(parts), encoding="utf-8")
    _fails([str(run_copy), "--split", split], "lacks the train/valid/test lists")
    assert not (run_copy / "eval").exists()


def test_run_folder_from_another_format_version(run_copy):
    config = json.loads((run_copy / "config.json").read_text(encoding="utf-8"))
    config["format_version"] = 0
    (run_copy / "config.json").write_text(json.dumps(config), encoding="utf-8")
    _fails([str(run_copy)], "version")
    assert not (run_copy / "eval").exists()


def test_bad_split_and_tables(tiny_run, run_copy, tmp_path):
    _fails([str(run_copy), "--split", "holdout"], "--split")
    no_label = tmp_path / "no_label.parquet"
    pd.read_parquet(tiny_run["table"]).drop(columns=["label"]).to_parquet(no_label)
    _fails([str(run_copy), "-i", str(no_label)], "label")
    other = tmp_path / "other.parquet"
    table = pd.read_parquet(tiny_run["table"])
    table.assign(bvid=[f"BVx{i}" for i in range(len(table))]).to_parquet(other)
    _fails([str(run_copy), "-i", str(other)], "none of the")
    _fails([str(run_copy), "-i", str(tmp_path / "absent.parquet")], "does not exist")
    assert not (run_copy / "eval").exists()


def test_a_missing_cover_names_the_video(tiny_run, run_copy, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(tiny_run["data"], data)
    split = json.loads((run_copy / "split.json").read_text(encoding="utf-8"))
    table = pd.read_parquet(data / "labeled.parquet").set_index("bvid")
    (data / table.loc[split["test"][0], "cover_path"]).unlink()
    _fails([str(run_copy), "--data", str(data)], split["test"][0])
    assert not (run_copy / "eval").exists()
    assert np.all(table["label"].between(0, 4))


def test_an_empty_cover_path_names_the_video(tiny_run, run_copy, tmp_path):
    split = json.loads((run_copy / "split.json").read_text(encoding="utf-8"))
    table = pd.read_parquet(tiny_run["table"])
    table.loc[table["bvid"] == split["test"][0], "cover_path"] = None
    table.to_parquet(tmp_path / "t.parquet")
    _fails([str(run_copy), "-i", str(tmp_path / "t.parquet"), "--data", str(tiny_run["data"])],
           f"video {split['test'][0]}: no cover file is given")
    assert not (run_copy / "eval").exists()


def test_cli_passes_its_flags_to_the_core_function(monkeypatch, tmp_path):
    from bilipop.evaluation import report as core

    seen = {}

    def fake(run, **kwargs):
        seen.update(run=run, **kwargs)
        raise InputError("stop here")

    monkeypatch.setattr(core, "evaluate", fake)
    res = runner.invoke(app, ["evaluate", str(tmp_path), "--data", "d", "-i", "t.csv", "--split", "all",
                              "--device", "cuda:1"])
    assert res.exit_code == 1 and "stop here" in res.output
    assert (seen["run"], seen["data"], seen["input"], seen["split"]) == (tmp_path, Path("d"), Path("t.csv"), "all")
    assert seen["device"] == "cuda:1"


@pytest.mark.slow  # trains a sweep to read the study's two single-branch figures
def test_a_real_sweep_with_single_branch_runs(tmp_path):
    """w = 0 (title only) and w = 1 (cover only): the sweep table carries the study's figures for both."""
    from bilipop.data.synthetic import make_labeled_dataset
    from bilipop.train.trainer import train
    from bilipop.train_config import TrainConfig

    make_labeled_dataset(tmp_path / "data", n=30, seed=1, image_size=16)
    train(TrainConfig(vit="tiny", bert="tiny", vit_weight=(0.0, 1.0), epochs=1, batch_size=16, devices="cpu",
                      num_workers=0), data=tmp_path / "data", out=tmp_path / "sweep")
    report = evaluate(tmp_path / "sweep", split="all")
    rows = {row.vit_weight: row for row in report.sweep_rows()}
    assert rows[0.0].study == 0.4659 and rows[1.0].study == 0.5980
    assert all(row.n == 30 for row in rows.values())
    title_only = tmp_path / "sweep" / report.sweep_rows()[0].run
    # Like train, evaluate asks a single-branch run's table only for the column that run reads.
    table = pd.read_parquet(tmp_path / "data" / "labeled.parquet")
    table.drop(columns="cover_path").to_parquet(tmp_path / "no_covers.parquet")
    table.drop(columns="title").to_parquet(tmp_path / "no_titles.parquet")
    assert evaluate(title_only, input=tmp_path / "no_covers.parquet", split="all").metrics.n == 30
    cover_only = tmp_path / "sweep" / report.sweep_rows()[1].run
    assert evaluate(cover_only, input=tmp_path / "no_titles.parquet", data=tmp_path / "data",
                    split="all").metrics == report.runs[report.sweep_rows()[1].run].metrics
    cover = next((tmp_path / "data" / "covers").glob("*.jpg"))
    ok = runner.invoke(app, ["predict", str(cover), "历史 讲解", "--model", str(title_only), "--explain", "--json"])
    assert ok.exit_code == 0, ok.output
    assert json.loads(ok.stdout)["explanation"]["heatmap"] is None  # the cover plays no part at w = 0
    bad = runner.invoke(app, ["predict", str(tmp_path / "gone.jpg"), "历史", "--model", str(title_only)])
    assert bad.exit_code == 1 and "does not exist" in bad.output


def test_tables_keep_every_number_whole_at_80_columns(tiny_run, run_copy, tmp_path):
    # CliRunner is not a terminal: rich lays the tables out at 80 columns, as when piped
    from bilipop.cli.views import span

    data = json.loads(runner.invoke(app, ["evaluate", str(run_copy), "--json"]).stdout)
    res = runner.invoke(app, ["evaluate", str(run_copy)])
    assert res.exit_code == 0, res.output
    tables = [line for line in res.stdout.splitlines() if line[:1] in "┏┃┡│└"]
    assert tables and max(len(line) for line in tables) <= 80
    assert "…" not in res.stdout
    for key in ("ordinal_accuracy", "accuracy", "mae", "qwk", "ece"):
        assert span(data["ci"][key]) in res.stdout, key
    assert span(data["beats_best_constant"]["ci"], signed=True) in res.stdout
    # the sweep comparison with intervals and paired differences, also at 80 columns
    sweep = tmp_path / "sweep"
    for name in ("w0.75", "w1.0"):
        shutil.copytree(tiny_run["run"], sweep / name)
    (sweep / "sweep.json").write_text(json.dumps({"weights": [0.75, 1.0], "runs": ["w0.75", "w1.0"]}))
    res = runner.invoke(app, ["evaluate", str(sweep)])
    assert res.exit_code == 0, res.output
    tables = [line for line in res.stdout.splitlines() if line[:1] in "┏┃┡│└"]
    assert max(len(line) for line in tables) <= 80 and "…" not in res.stdout
    assert "[+0.000, +0.000] │ no" in res.stdout
    assert span(data["ci"]["ordinal_accuracy"], 3) in res.stdout


def test_a_run_selected_on_test_is_labelled_so_and_a_config_without_the_setting_is_refused(run_copy):
    # evaluate reads select_on from the run's recorded settings (TrainConfig), not a guess
    config = json.loads((run_copy / "config.json").read_text(encoding="utf-8"))
    (run_copy / "config.json").write_text(json.dumps({**config, "select_on": "test"}), encoding="utf-8")
    report = evaluate(run_copy)
    assert report.selection.startswith("selected on test (as the study)")
    assert report.setting["select_on"] == "test"
    res = runner.invoke(app, ["evaluate", str(run_copy)])
    assert "selected on test (as the study)" in res.stdout
    # No release wrote a config.json without it: such a file is damaged, and said so in one line
    del config["select_on"]
    (run_copy / "config.json").write_text(json.dumps(config), encoding="utf-8")
    res = runner.invoke(app, ["evaluate", str(run_copy)])
    assert res.exit_code == 1 and "lacks select_on" in res.output and "Traceback" not in res.output
