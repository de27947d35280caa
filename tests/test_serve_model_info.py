"""The model summary of bilipop serve (bilipop.serve.model_info), before and after the run is evaluated."""

from __future__ import annotations

import json
import shutil

import pytest

pytest.importorskip("starlette", reason="the web extra is not installed (pip install -e '.[web]')")

from helpers import cli_json  # noqa: E402
from starlette.testclient import TestClient  # noqa: E402

from bilipop.serve import app as web  # noqa: E402
from bilipop.serve.server import load_served_run  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")

LOCAL = "http://127.0.0.1:8765"


# ---------------------------------------------------------------------------------------------------------------
# /api/model
def test_model_summary_before_and_after_evaluate(tiny_run, tmp_path):
    folder = tmp_path / "run"
    shutil.copytree(tiny_run["run"], folder, ignore=shutil.ignore_patterns("eval"))
    with TestClient(web.create_app(load_served_run(folder)), base_url=LOCAL) as c:
        info = c.get("/api/model").json()
        assert info["name"] == "run" and info["metrics"] is None and info["metrics_file"] is None
        assert info["config"]["vit_weight"] == 0.75 and info["config"]["vision"] == "vit"
        assert "model" not in info["config"] and "data" not in info["config"]  # no architecture, no local paths
        report = cli_json("evaluate", str(folder), "--data", str(tiny_run["data"]), "--json")
        info = c.get("/api/model").json()  # read on each request: evaluating while serving shows up
        assert info["metrics"]["ordinal_accuracy"] == report["ordinal_accuracy"]
        assert info["metrics"]["baselines"]["best_constant"] == report["baselines"]["best_constant"]
        assert info["metrics"]["stale"] is False
        assert info["metrics_file"] == "eval/test/metrics.json"  # one folder per split
        assert info["metrics"]["ci"]["ordinal_accuracy"] == report["ci"]["ordinal_accuracy"]
        # Only the test part's evaluation is the model's figure: a valid-part evaluation alone is not shown.
        shutil.rmtree(folder / "eval" / "test")
        (folder / "eval" / "valid").mkdir(parents=True, exist_ok=True)
        (folder / "eval" / "valid" / "metrics.json").write_text(json.dumps(report), encoding="utf-8")
        info = c.get("/api/model").json()
        assert info["metrics_file"] is None and info["metrics"] is None
