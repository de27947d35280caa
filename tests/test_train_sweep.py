"""bilipop.train.sweep: a --vit-weight sweep trains one run per weight and writes Table 1."""

from __future__ import annotations

import csv
import json

import pytest

from bilipop.models.run import load_run
from bilipop.train.trainer import train
from bilipop.train_config import TrainConfig

pytestmark = pytest.mark.usefixtures("one_thread")
TINY = dict(vit="tiny", bert="tiny", batch_size=8, num_workers=0)


def test_sweep_writes_table1(signal_datasets, tmp_path):
    result = train(
        TrainConfig(vit_weight=[0.3, 1.0], epochs=2, **TINY), data=signal_datasets["both"], out=tmp_path / "sweep"
    )
    out = tmp_path / "sweep"
    assert result.runs == [out / "w0.3", out / "w1"]
    assert json.loads((out / "sweep.json").read_text()) == {"weights": [0.3, 1.0], "runs": ["w0.3", "w1"]}
    with open(out / "table1.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["vit_weight", "epoch", "train_ordinal_accuracy", "valid_ordinal_accuracy",
                             "valid_ci_low", "valid_ci_high"]
    assert all(float(r["valid_ci_low"]) <= float(r["valid_ordinal_accuracy"]) <= float(r["valid_ci_high"])
               for r in rows)
    assert [(r["vit_weight"], r["epoch"]) for r in rows] == [("0.3", "1"), ("0.3", "2"), ("1", "1"), ("1", "2")]
    assert float(rows[3]["valid_ordinal_accuracy"]) == pytest.approx(
        result.histories[1][1]["valid_ordinal_accuracy"], abs=1e-4)
    md = (out / "table1.md").read_text()
    assert "| 0.3 | 2 |" in md and "valid 95 % interval" in md
    lo, hi = result.histories[1][1]["valid_ordinal_accuracy_ci"]
    assert f"[{lo:.4f}, {hi:.4f}]" in md
    for run in result.runs:
        assert load_run(run).config["vit_weight"] in (0.3, 1.0)
