"""``train --random-init`` / ``create_model(pretrained=False)``: the named architectures with random weights, no
weights file read (the study-size ViT + BERT case is tests/test_study_model.py's; here the cheap ones)."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from bilipop.cli import app
from bilipop.errors import ModelError
from bilipop.models import scratch
from bilipop.models.factory import create_model

pytestmark = pytest.mark.usefixtures("one_thread")


def test_an_unknown_architecture_is_a_one_line_model_error():
    with pytest.raises(ModelError, match="--random-init builds a known architecture"):
        create_model(pretrained=False, vit="./my_vit.pth", vit_weight=1.0)
    with pytest.raises(ModelError, match="with --vision vgg use vgg16"):
        create_model(pretrained=False, vision="vgg", vit="L_32", vit_weight=1.0)
    with pytest.raises(ModelError, match="architecture of --bert"):
        create_model(pretrained=False, bert="someone/unknown-bert", vit_weight=0.0)


def test_without_a_cached_vocabulary_the_tokenizer_is_learned_and_the_table_keeps_its_size(monkeypatch):
    monkeypatch.setattr(scratch, "_folder", lambda bert: None)  # no bert-base-chinese in any cache
    built = create_model(pretrained=False, text="rnn", vit_weight=0.0, titles=["三分钟看懂相对论", "黑洞 2024"])
    assert built.arch["text"]["spec"]["vocab_size"] == 21128
    assert 5 < len(built.tokenizer) < 100  # learned from the two titles
    assert built.tokenizer.tokenize("黑洞") == ["黑", "洞"]


def test_train_random_init_from_the_cli(tmp_path, monkeypatch):
    from bilipop.data.synthetic import make_labeled_dataset

    monkeypatch.setattr(scratch, "_folder", lambda bert: None)
    make_labeled_dataset(tmp_path / "data", n=20, seed=0, image_size=32)
    res = CliRunner().invoke(app, ["train", "--data", str(tmp_path / "data"), "--out", str(tmp_path / "run"),
                                   "--random-init", "--text", "rnn", "--vit-weight", "0", "--epochs", "1",
                                   "--batch-size", "8", "--devices", "cpu", "--num-workers", "0"])
    assert res.exit_code == 0, res.output
    config = json.loads((tmp_path / "run" / "config.json").read_text(encoding="utf-8"))
    assert config["random_init"] is True and config["model"]["text"]["spec"]["vocab_size"] == 21128
