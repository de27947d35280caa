"""A model a creator can receive: ``bilipop export`` (bilipop.models.compress: no optimizer, 16-bit safetensors +
JSON) that predicts as the run does, through the core and the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
from helpers import class_agreement  # noqa: E402
from typer.testing import CliRunner

from bilipop.cli import app
from bilipop.models.compress import export_run
from bilipop.models.run import load_run
from bilipop.prediction.predict import predict_pairs

pytestmark = pytest.mark.usefixtures("one_thread")

runner = CliRunner()


@pytest.mark.parametrize("dtype", ["bf16", "fp16"])
def test_a_16_bit_export_is_small_pickle_free_and_predicts_the_same_classes(tiny_run, tiny_videos, tmp_path, dtype):
    out = tmp_path / f"export-{dtype}"
    report = export_run(tiny_run["run"], out, dtype)
    assert report.weights_bytes <= 0.55 * report.source_bytes
    names = {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()}
    assert "checkpoint.pt" not in names and "model.safetensors" in names
    assert all(n.endswith((".json", ".safetensors", ".txt", ".jsonl")) for n in names), names
    assert json.loads((out / "config.json").read_text())["weights_dtype"] == dtype
    original = predict_pairs(load_run(tiny_run["run"]), *tiny_videos)
    exported = predict_pairs(load_run(out), *tiny_videos)
    assert class_agreement(original, exported) >= 0.99
    assert np.abs(original - exported).max() < 0.02  # the figure docs/study-model.md reports at study size


def test_export_and_quantize_through_the_cli(tiny_run, tiny_videos, tmp_path):
    out = tmp_path / "small"
    res = runner.invoke(app, ["export", str(tiny_run["run"]), str(out), "--dtype", "fp16"])
    assert res.exit_code == 0, res.output
    assert "fp16" in res.stdout and (out / "model.safetensors").is_file()
    cover, title = tiny_videos[0][0], tiny_videos[1][0]
    plain = runner.invoke(app, ["predict", cover, title, "--model", str(out), "--json"])
    assert plain.exit_code == 0, plain.output
    assert set(json.loads(plain.stdout)) >= {"label", "probabilities"}
    int8 = runner.invoke(app, ["predict", cover, title, "--model", str(out), "--quantize", "int8", "--json"])
    assert int8.exit_code == 0, int8.output
    ranked = runner.invoke(app, ["predict", "--cover", cover, "--title", title, "--title", "另一个标题",
                                 "--model", str(out), "--quantize", "int8", "--json"])
    assert ranked.exit_code == 0 and len(json.loads(ranked.stdout)["candidates"]) == 2
    ev = runner.invoke(app, ["evaluate", str(out), "--data", str(tiny_run["data"]), "--json"])
    assert ev.exit_code == 0, ev.output


def test_export_refuses_to_overwrite_the_run_or_a_foreign_folder(tiny_run, tmp_path):
    from bilipop.errors import InputError

    with pytest.raises(InputError, match="overwrite the run"):
        export_run(tiny_run["run"], tiny_run["run"])
    foreign = tmp_path / "photos"
    foreign.mkdir()
    (foreign / "holiday.jpg").write_bytes(b"x")
    with pytest.raises(InputError, match="not a run folder"):
        export_run(tiny_run["run"], foreign)
    assert (foreign / "holiday.jpg").is_file()
    with pytest.raises(InputError, match="--dtype"):
        export_run(tiny_run["run"], tmp_path / "x", "int8")
