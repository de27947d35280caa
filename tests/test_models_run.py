"""The run folder (bilipop.models.run): saved and loaded back with the same outputs, and each damaged or foreign
folder refused in one line."""

from __future__ import annotations

import json

import pytest
import torch

from bilipop.errors import InputError, ModelError
from bilipop.layout import FORMAT_VERSION
from bilipop.models.factory import create_model
from bilipop.models.run import find_runs, load_run, save_model
from bilipop.train_config import TrainConfig

pytestmark = pytest.mark.usefixtures("one_thread", "offline_hub")

TITLES = ["物理讲解入门 第1期", "历史其实竟然", "数学看懂了解", "编程一分钟带你", "宇宙科普为什么"]


def _save(folder, w=0.75):
    built = create_model(vit="tiny", bert="tiny", vit_weight=w, titles=TITLES)
    config = {"vit_weight": w, "image_size": built.image_size, "image_mean": list(built.image_mean),
              "image_std": list(built.image_std), "max_tokens": 64, "model": built.arch}
    save_model(folder, built.model, built.tokenizer, config, TrainConfig(vit="tiny", bert="tiny", vit_weight=w))
    return built


def test_run_folder_round_trip_and_errors(tmp_path):
    from PIL import Image

    built = _save(tmp_path / "runs" / "a")
    _save(tmp_path / "runs" / "b", w=1.0)
    run = load_run(tmp_path / "runs" / "a")
    cover = tmp_path / "c.png"
    Image.new("RGB", (64, 40), (200, 10, 10)).save(cover)
    image = run.preprocess_cover(cover)
    assert image.shape == (3, 32, 32) and image.dtype == torch.float32
    assert torch.allclose(image[0], torch.full((32, 32), 200 / 255 * 2 - 1))  # mean 0.5, std 0.5
    enc = run.tokenize(TITLES[:2])
    built.model.eval()
    with torch.no_grad():
        expected = built.model.logits(image[None].repeat(2, 1, 1, 1), enc["input_ids"], enc["attention_mask"])
    assert torch.allclose(run.logits(image[None].repeat(2, 1, 1, 1), enc["input_ids"], enc["attention_mask"]),
                          expected)
    with pytest.raises(InputError, match="empty"):
        run.tokenize(["ok", "  "])
    (tmp_path / "bad.jpg").write_bytes(b"not an image")
    with pytest.raises(InputError, match="not an image"):
        run.preprocess_cover(tmp_path / "bad.jpg")
    cover_only = load_run(tmp_path / "runs" / "b")
    assert cover_only.logits(image[None], None, None).shape == (1, 5)
    assert set(find_runs(tmp_path / "runs")) == {tmp_path / "runs" / "a", tmp_path / "runs" / "b"}
    # a run still in its first epoch (config written, no weights yet) is not a candidate for "the newest run"
    (tmp_path / "runs" / "c").mkdir()
    (tmp_path / "runs" / "c" / "config.json").write_text("{}")
    assert tmp_path / "runs" / "c" not in find_runs(tmp_path / "runs")

    config = json.loads((tmp_path / "runs" / "a" / "config.json").read_text())
    config["format_version"] = FORMAT_VERSION + 1
    (tmp_path / "runs" / "a" / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelError, match="format version"):
        load_run(tmp_path / "runs" / "a")
    (tmp_path / "runs" / "b" / "model.safetensors").unlink()
    with pytest.raises(ModelError, match="model.safetensors is missing"):
        load_run(tmp_path / "runs" / "b")
    with pytest.raises(ModelError, match="does not exist"):
        load_run(tmp_path / "nowhere")
    # A config.json without (or with a broken) model entry: a KeyError traceback before.
    for broken in ({}, {"vit_weight": 0.5}):
        config = json.loads((tmp_path / "runs" / "a" / "config.json").read_text())
        (tmp_path / "runs" / "a" / "config.json").write_text(json.dumps({**config, "format_version": FORMAT_VERSION,
                                                                          "model": broken}))
        with pytest.raises(ModelError, match="does not describe a model"):
            load_run(tmp_path / "runs" / "a")
