"""Each script in examples/ runs, on tiny settings, so that none rots."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from bilipop.data.synthetic import make_labeled_dataset

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def run(args, tmp_path, **env):
    environ = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
               "BILIPOP_OFFLINE": "1", "OMP_NUM_THREADS": "1", **env}
    done = subprocess.run([str(a) for a in args], cwd=tmp_path, env=environ, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done


@pytest.mark.slow  # five commands in their own processes, 40 s on a busy machine
def test_bring_your_own_csv(tmp_path):
    make_labeled_dataset(tmp_path / "mine", n=60, seed=3, image_size=32)
    # a user's CSV: counters and covers, but no score or label yet
    table = pd.read_parquet(tmp_path / "mine" / "labeled.parquet").drop(columns=["score", "label"])
    csv = tmp_path / "mine" / "videos.csv"
    table.to_csv(csv, index=False)
    (tmp_path / "mine" / "labeled.parquet").unlink()
    done = run(["bash", EXAMPLES / "bring_your_own_csv.sh", csv, tmp_path / "runs" / "byo"], tmp_path,
               VIT="tiny", BERT="tiny", EPOCHS="1", LABEL_ARGS="--quantiles", TRAIN_ARGS="--devices cpu")
    assert (tmp_path / "mine" / "labeled.parquet").is_file()
    assert (tmp_path / "runs" / "byo" / "model.safetensors").is_file()
    assert "ordinal accuracy" in done.stdout and "expected class" in done.stdout


@pytest.mark.slow
def test_reproduce_tables(tmp_path):
    make_labeled_dataset(tmp_path / "data", n=44, seed=4, image_size=32)
    done = run(["bash", EXAMPLES / "reproduce_tables.sh", tmp_path / "data", tmp_path / "tables"], tmp_path,
               VIT="tiny", BERT="tiny", VGG="tiny", EPOCHS="1", WEIGHTS="0.75,0", TRAIN_ARGS="--devices cpu")
    table1 = pd.read_csv(tmp_path / "tables" / "table1" / "table1.csv")
    assert sorted(table1["vit_weight"].unique()) == [0.0, 0.75]
    for name in ("vgg_bert", "vgg_rnn"):
        metrics = json.loads((tmp_path / "tables" / name / "eval.json").read_text())
        assert 0 <= metrics["ordinal_accuracy"] <= 1
        assert f"{name} ordinal accuracy" in done.stdout
        config = json.loads((tmp_path / "tables" / name / "config.json").read_text())
        assert config["vision"] == "vgg" and config["text"] == ("rnn" if name == "vgg_rnn" else "bert")


def test_compare_covers(tiny_run, tmp_path):
    covers = sorted((tiny_run["data"] / "covers").glob("*.jpg"))[:2]
    done = run([sys.executable, EXAMPLES / "compare_covers.py", "--model", tiny_run["run"], "--cover", covers[0],
                "--cover", covers[1], "--title", "一分钟带你入门编程", "--title", "物理科普讲解"], tmp_path)
    lines = done.stdout.splitlines()
    assert len(lines) == 4 and lines[0].startswith(" 1. expected") and "(+0.00 vs the best)" in lines[0]
    expected = [float(line.split("expected ")[1].split()[0]) for line in lines]
    assert expected == sorted(expected, reverse=True)


@pytest.mark.slow  # six trainings, about a minute
def test_age_study(tmp_path):
    make_labeled_dataset(tmp_path / "data", n=66, seed=6, image_size=16)
    labeled = tmp_path / "data" / "labeled.parquet"
    pd.read_parquet(labeled).drop(columns=["score", "label"]).to_parquet(tmp_path / "data" / "filtered.parquet")
    labeled.unlink()
    done = run(["bash", EXAMPLES / "age_study.sh", tmp_path / "data", tmp_path / "study"], tmp_path,
               EPOCHS="1", TRAIN_ARGS="--devices cpu --batch-size 16")
    lines = done.stdout.splitlines()
    assert lines[0].split()[:2] == ["labels", "loss"] and len(lines) == 5
    assert [line.split()[:3] for line in lines[1:]] == [["age", "none", "ce"], ["age", "none", "corn"],
                                                         ["age", "residual", "ce"], ["age", "residual", "corn"]]
    for age in ("none", "residual"):
        for loss in ("ce", "corn"):
            metrics = json.loads((tmp_path / "study" / f"{age}-{loss}.json").read_text())
            lo, hi = metrics["ci"]["ordinal_accuracy"]
            assert lo <= metrics["ordinal_accuracy"] <= hi
            assert json.loads((tmp_path / "study" / f"{age}-{loss}" / "config.json").read_text())["loss"] == loss
    scored = pd.read_parquet(tmp_path / "study" / "scored-residual.parquet")
    assert "age_days" in scored.columns
