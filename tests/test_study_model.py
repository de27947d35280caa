"""The study's own model end to end, offline, on the DEFAULT path: `bilipop train` with no --vit/--bert finds a
ViT-B/16 (384 px) in TORCH_HOME's hub cache and bert-base-chinese in a Hugging Face cache (random weights in the
real formats, tests/conftest.py::study_env), trains through GPipe on cpu,cpu, resumes, and the run is evaluated,
predicted, ranked, explained, exported and served. Small on purpose (12 videos, batch 4, a few steps): the point is
that the real path runs, not that it learns. Marked `study` and `slow` (CI runs them)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from bilipop.cli import app

pytestmark = [pytest.mark.study, pytest.mark.slow]
runner = CliRunner()
TITLE = "三分钟看懂相对论 2024 讲解!"


def _bilipop(env: dict, *args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    """Run the CLI as a user would: a fresh process with the fixture's TORCH_HOME/HF_HOME, offline."""
    return subprocess.run([sys.executable, "-m", "bilipop", *args], env=env, capture_output=True, text=True,
                          timeout=timeout)


@pytest.fixture(scope="module")
def study(study_env, tmp_path_factory) -> dict:
    """One epoch of the default `bilipop train` on 12 videos (one CPU step of 4 and one of 1)."""
    from bilipop.data.synthetic import make_labeled_dataset

    root = tmp_path_factory.mktemp("study")
    make_labeled_dataset(root / "data", n=12, seed=0, signal="both", image_size=48)
    run = root / "run"
    res = _bilipop(study_env, "train", "--data", str(root / "data"), "--out", str(run), "--epochs", "1",
                   "--batch-size", "4", "--chunks", "2", "--devices", "cpu,cpu", "--num-workers", "0")
    assert res.returncode == 0, res.stdout + res.stderr
    covers = sorted((root / "data" / "covers").glob("*.jpg"))
    return {"env": study_env, "root": root, "data": root / "data", "run": run, "covers": covers,
            "train_output": res.stdout + res.stderr}


def test_the_default_train_builds_the_study_model_through_gpipe(study):
    config = json.loads((study["run"] / "config.json").read_text(encoding="utf-8"))
    model = config["model"]
    assert (config["vit"], config["bert"]) == ("B_16_imagenet1k", "bert-base-chinese")  # the defaults
    assert model["vision"]["spec"]["image_size"] == 384 and model["vision"]["spec"]["dim"] == 768
    assert model["vision"]["spec"]["num_layers"] == 12
    assert model["text"]["config"]["vocab_size"] == 21128 and model["text"]["config"]["num_hidden_layers"] == 12
    assert config["devices"] == ["cpu", "cpu"] and len(config["balance"]) == 2
    from bilipop.models.tokenizer import load_tokenizer

    assert len(load_tokenizer(study["run"] / "tokenizer", 64)) == 21128  # bert-base-chinese's vocabulary, kept
    # ~190 million float32 parameters
    assert (study["run"] / "model.safetensors").stat().st_size > 700e6
    assert (study["run"] / "checkpoint.pt").is_file()


def test_resume_continues_the_run(study):
    res = _bilipop(study["env"], "train", "--data", str(study["data"]), "--out", str(study["run"]), "--epochs", "2",
                   "--batch-size", "4", "--chunks", "2", "--devices", "cpu,cpu", "--num-workers", "0", "--resume")
    assert res.returncode == 0, res.stdout + res.stderr
    history = (study["run"] / "history.jsonl").read_text(encoding="utf-8").splitlines()
    assert [json.loads(line)["epoch"] for line in history] == [1, 2]


def test_evaluate_predict_rank_and_explain(study, tmp_path):
    run = str(study["run"])
    ev = runner.invoke(app, ["evaluate", run, "--json"])
    assert ev.exit_code == 0, ev.output
    assert json.loads(ev.stdout)["n"] >= 1
    cover = tmp_path / "cover.jpg"
    cover.write_bytes(study["covers"][0].read_bytes())
    one = runner.invoke(app, ["predict", str(cover), TITLE, "--model", run, "--json"])
    assert one.exit_code == 0, one.output
    probabilities = json.loads(one.stdout)["probabilities"]
    assert len(probabilities) == 5 and abs(sum(probabilities) - 1) < 1e-5
    ranked = runner.invoke(app, ["predict", "--cover", str(cover), "--cover", str(study["covers"][1]),
                                 "--title", TITLE, "--title", "另一个标题", "--model", run, "--json"])
    assert ranked.exit_code == 0, ranked.output
    assert len(json.loads(ranked.stdout)["candidates"]) == 4
    explained = runner.invoke(app, ["predict", str(cover), TITLE, "--model", run, "--explain", "--json"])
    assert explained.exit_code == 0, explained.output
    data = json.loads(explained.stdout)
    assert data["probabilities"] == pytest.approx(probabilities, abs=1e-5)  # the same forward pass
    from PIL import Image

    with Image.open(data["explanation"]["heatmap"]) as img:
        assert img.format == "PNG"
    tokens = data["explanation"]["tokens"]
    assert tokens and all(t["token"] in TITLE for t in tokens)
    assert any(t["token"] == "2024" or len(t["token"]) == 1 for t in tokens)  # pieces, not word pieces


def test_random_init_builds_the_same_architecture_without_weights(study):
    from safetensors import safe_open

    from bilipop.models.factory import create_model

    built = create_model(pretrained=False, titles=["标题"])
    shapes = {k: tuple(v.shape) for k, v in built.model.state_dict().items()}
    with safe_open(str(study["run"] / "model.safetensors"), "pt") as f:
        trained = {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}
    assert shapes == trained
    assert built.image_size == 384


def test_export_is_small_and_serves_the_same_predictions(study, tmp_path):
    pytest.importorskip("starlette")
    from starlette.testclient import TestClient

    from bilipop.models.run import load_run
    from bilipop.prediction.predict import predict_pairs
    from bilipop.serve import app as web
    from bilipop.serve.server import load_served_run

    out = tmp_path / "small"
    res = runner.invoke(app, ["export", str(study["run"]), str(out), "--dtype", "bf16"])
    assert res.exit_code == 0, res.output
    assert (out / "model.safetensors").stat().st_size <= 0.55 * (study["run"] / "model.safetensors").stat().st_size
    assert not (out / "checkpoint.pt").exists()
    covers = [str(c) for c in study["covers"][:6]]
    titles = [TITLE] * len(covers)
    original = predict_pairs(load_run(study["run"]), covers, titles)
    served = load_served_run(out)
    exported = predict_pairs(served, covers, titles)
    # Random weights give near-uniform probabilities, where bf16 rounding may flip a class; the >= 99 % agreement of
    # a trained model is tests/test_models_compress.py's.
    assert (original.argmax(1) == exported.argmax(1)).mean() >= 5 / 6
    # The server answers only its own host name, and API posts carry the page's header (docs/security.md).
    with TestClient(web.create_app(served), base_url="http://127.0.0.1:8765") as client:
        with open(covers[0], "rb") as fh:
            reply = client.post("/api/predict", files={"cover": ("c.jpg", fh, "image/jpeg")},
                                data={"title": TITLE}, headers={"X-Bilipop": "1"})
    assert reply.status_code == 200, reply.text
    assert reply.json()["probabilities"] == pytest.approx(list(exported[0]), abs=1e-5)
