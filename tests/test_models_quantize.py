"""``--quantize int8`` for CPU inference (bilipop.models.quantize): the same classes as the full-precision run, and
every misuse refused in one line."""

from __future__ import annotations

import shutil

import pytest
import torch
from helpers import class_agreement  # noqa: E402
from typer.testing import CliRunner

from bilipop.cli import app
from bilipop.models.run import load_run
from bilipop.prediction.predict import predict_pairs

pytestmark = pytest.mark.usefixtures("one_thread")

runner = CliRunner()


def test_int8_predicts_the_same_class_on_95_percent_of_videos(tiny_run, tiny_videos):
    original = predict_pairs(load_run(tiny_run["run"]), *tiny_videos)
    quantized_run = load_run(tiny_run["run"], quantize="int8")
    assert quantized_run.quantized == "int8"
    kinds = {type(m) for m in quantized_run.model.modules()}
    assert any("quantized.dynamic" in k.__module__ for k in kinds)
    assert torch.nn.Linear not in kinds  # every Linear layer was replaced
    quantized = predict_pairs(quantized_run, *tiny_videos)
    assert class_agreement(original, quantized) >= 0.95


@pytest.mark.parametrize("args, message", [
    (["--quantize", "int4"], "--quantize must be int8"),
    (["--quantize", "int8", "--explain"], "--quantize int8"),
    (["--quantize", "int8", "--device", "cuda"], "CPU inference"),
])
def test_bad_quantize_use_is_one_line_and_exit_1(tiny_run, tiny_videos, tmp_path, args, message):
    cover = tmp_path / "c.jpg"
    shutil.copy(tiny_videos[0][0], cover)
    res = runner.invoke(app, ["predict", str(cover), "标题", "--model", str(tiny_run["run"]), *args])
    assert res.exit_code == 1 and message in res.output and "Traceback" not in res.output
    assert not list(tmp_path.glob("*.explain.png"))
