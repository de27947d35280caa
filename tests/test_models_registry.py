"""The encoder registry (bilipop.models.list_encoders), its errors for unknown names, and the weights module."""

import hashlib

import pytest
from typer.testing import CliRunner

import bilipop.models
from bilipop.cli import app
from bilipop.errors import ModelError
from bilipop.models import registry, weights
from bilipop.models.factory import create_model

TITLES = ["三分钟看懂相对论", "黑洞是什么", "一分钟 数学"] * 3


def test_list_encoders_names_every_kind_with_its_defaults():
    encoders = bilipop.models.list_encoders()
    by_kind = {}
    for e in encoders:
        by_kind.setdefault(e.kind, []).append(e.name)
    assert set(by_kind) == {"vit", "vgg", "bert", "rnn"}
    assert all("tiny" in names for names in by_kind.values())
    assert {"B_16_imagenet1k", "B_32"} <= set(by_kind["vit"]) and by_kind["vgg"] == ["tiny", "vgg16", "random"]
    study = registry.get_encoder("vit", "B_16_imagenet1k")
    assert (study.input_size, study.weights) == (384, "B_16_imagenet1k.pth")
    assert registry.get_encoder("vgg", "vgg16").weights == weights.VGG16_FILE
    assert registry.get_encoder("bert", "bert-base-chinese").input_size is None
    assert [e.name for e in bilipop.models.list_encoders("bert")] == by_kind["bert"]


def test_each_tiny_encoder_builds_at_its_registered_input_size():
    for vision in ("vit", "vgg"):
        built = create_model(vision=vision, vit="tiny", bert="tiny", titles=TITLES)
        assert built.image_size == registry.get_encoder(vision, "tiny").input_size == 32
    built = create_model(vit="tiny", bert="tiny", text="rnn", titles=TITLES)
    assert built.arch["text"]["kind"] == "rnn" and built.tokenizer is not None


def test_a_name_registered_twice_is_refused():
    with pytest.raises(ValueError, match="twice"):
        registry.register_encoder("vit", "tiny", description="again")(lambda dropout, heads=None: None)
    with pytest.raises(ValueError, match="kind"):
        registry.register_encoder("cnn", "x", description="no such kind")


def test_train_with_an_unknown_encoder_lists_the_registered_ones(tmp_path):
    runner = CliRunner()
    result = runner.invoke(app, ["train", "--data", str(tmp_path), "--out", str(tmp_path / "r"), "--vit", "Z_99",
                                 "--bert", "tiny"])
    assert result.exit_code == 1
    with pytest.raises(ModelError) as exc:
        create_model(vit="Z_99", bert="tiny", titles=TITLES)
    for name in registry.encoder_names("vit"):
        if name != "tiny":
            assert name in str(exc.value)
    with pytest.raises(ModelError, match="random, tiny|tiny, vgg16, random"):
        create_model(vision="vgg", vit="vgg99", bert="tiny", titles=TITLES)
    with pytest.raises(ModelError, match="registered names are tiny, bert-base-chinese"):
        create_model(vit_weight=0.0, vit="tiny", bert="nobody/no-such-bert", titles=TITLES)


def test_a_download_is_checked_against_the_hash_prefix_of_its_name(tmp_path):
    source = tmp_path / "src.pth"
    source.write_bytes(b"weights" * 100)
    digest = hashlib.sha256(source.read_bytes()).hexdigest()
    assert weights.WeightsFile(f"vgg16-{digest[:8]}.pth", "").hash_prefix == digest[:8]
    assert weights.WeightsFile("B_16_imagenet1k.pth", "").hash_prefix is None
    good = weights.download(source.as_uri(), tmp_path / "cache" / "ok.pth", hash_prefix=digest[:8])
    assert good.read_bytes() == source.read_bytes()
    with pytest.raises(RuntimeError, match="hash"):
        weights.download(source.as_uri(), tmp_path / "cache" / "bad.pth", hash_prefix="00000000")
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == ["ok.pth"]  # nothing of the bad one
