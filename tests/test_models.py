"""Model building: branches not built when unused, torchvision's VGG layout, pretrained loading from local files,
weight lookup errors that say where to put the file, and the run folder round trip."""

from __future__ import annotations

import json

import pytest
import torch

from bilipop.errors import InputError, ModelError
from bilipop.layout import FORMAT_VERSION
from bilipop.models.factory import create_model
from bilipop.models.run import find_runs, load_run, save_model
from bilipop.models.vision import VGG, VGGSpec, ViTSpec, build_vit
from bilipop.models.weights import resolve_weights
from bilipop.train_config import TrainConfig

pytestmark = pytest.mark.usefixtures("one_thread")


TITLES = ["物理讲解入门 第1期", "历史其实竟然", "数学看懂了解", "编程一分钟带你", "宇宙科普为什么"]


@pytest.fixture(autouse=True)
def _offline(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))


def test_unused_branch_is_not_built():
    cover_only = create_model(vit="tiny", bert="tiny", vit_weight=1.0, titles=TITLES)
    title_only = create_model(vit="tiny", bert="tiny", vit_weight=0.0, titles=TITLES)
    cover_names = [n for n, _ in cover_only.model.named_parameters()]
    title_names = [n for n, _ in title_only.model.named_parameters()]
    assert cover_only.tokenizer is None and not any("embeddings" in n or "text" in n for n in cover_names)
    assert title_only.image_size == 0 and not any("patch" in n or "vision" in n for n in title_names)
    ids = title_only.tokenizer(TITLES, padding=True, return_tensors="pt")
    assert title_only.model.logits(None, ids["input_ids"], ids["attention_mask"]).shape == (5, 5)
    assert cover_only.model.logits(torch.zeros(2, 3, 32, 32), None, None).shape == (2, 5)


def test_vgg16_uses_torchvision_state_dict_names():
    with torch.device("meta"):
        keys = list(VGG(VGGSpec()).state_dict())
    convs = [0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28]
    expected = [f"features.{i}.{p}" for i in convs for p in ("weight", "bias")]
    expected += [f"classifier.{i}.{p}" for i in (0, 3, 6) for p in ("weight", "bias")]
    assert keys == expected


def test_pretrained_vit_from_local_pth(tmp_path):
    spec = ViTSpec(patches=8, dim=64, ff_dim=128, num_heads=1, num_layers=2, image_size=32, out_dim=16)
    torch.manual_seed(5)
    vit = build_vit(spec)
    path = tmp_path / "my_vit.pth"
    torch.save(vit.state_dict(), path)
    # The head count is in neither the shapes nor the names: it must be given, never guessed as dim / 64.
    with pytest.raises(ModelError, match="--vit-heads"):
        create_model(vit=str(path), bert="tiny", vit_weight=0.5, titles=TITLES)
    with pytest.raises(ModelError, match="do not divide"):
        create_model(vit=str(path), bert="tiny", vit_weight=0.5, titles=TITLES, vit_heads=3)
    built = create_model(vit=str(path), bert="tiny", vit_weight=0.5, titles=TITLES, vit_heads=1)
    assert built.arch["vision"]["spec"]["num_heads"] == 1
    # ... or read from a JSON config beside the weights
    (tmp_path / "my_vit.json").write_text('{"num_heads": 4}')
    assert create_model(vit=str(path), bert="tiny", vit_weight=0.5,
                        titles=TITLES).arch["vision"]["spec"]["num_heads"] == 4
    (tmp_path / "my_vit.json").unlink()
    assert built.image_size == 32 and built.arch["out_dim"] == 16
    assert torch.equal(built.model[0].vision_in.patch_embedding.weight, vit.patch_embedding.weight)
    assert torch.equal(built.model[-1].vision_head.fc.weight, vit.fc.weight)
    vit.eval()
    built.model.eval()
    x = torch.randn(2, 3, 32, 32)
    head = built.model[-1]
    state = built.model[0].vision_in(x)
    for stage in built.model[1:3]:
        state = stage.block(state)
    assert torch.allclose(head.vision_head(state), vit(x), atol=1e-6)  # the cut encoder is the same ViT


def test_pretrained_bert_from_save_pretrained_folder(tmp_path):
    from transformers import BertConfig, BertModel

    from bilipop.models.tokenizer import train_tiny_tokenizer

    tokenizer = train_tiny_tokenizer(TITLES * 3)
    torch.manual_seed(7)
    bert = BertModel(BertConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2,
                                num_attention_heads=2, intermediate_size=64, max_position_embeddings=64))
    folder = tmp_path / "my_bert"
    bert.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    built = create_model(vit="tiny", bert=str(folder), vit_weight=0.25, titles=[])
    embeddings = built.model[0].text_in.embeddings.word_embeddings.weight
    assert torch.equal(embeddings, bert.embeddings.word_embeddings.weight)
    assert built.tokenizer.tokenize("物理") == tokenizer.tokenize("物理")
    # The layer-by-layer cut gives BERT's own pooled output.
    bert.eval()
    built.model.eval()
    enc = tokenizer(TITLES, padding=True, return_tensors="pt")
    enc["attention_mask"][0, -1] = 0
    h, mask = built.model[0].text_in(enc["input_ids"], enc["attention_mask"])
    for stage in built.model[3:5]:
        h = stage.block(h, mask)
    pooled = built.model[-1].text_head.pooler(h)
    expected = bert(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]).pooler_output
    assert torch.allclose(pooled, expected, atol=1e-5)
    rnn = create_model(vit="tiny", bert=str(folder), text="rnn", vit_weight=0.0, titles=[])
    assert rnn.arch["text"]["spec"]["vocab_size"] == len(tokenizer)


def test_missing_weights_name_the_file_and_the_place(tmp_path):
    with pytest.raises(ModelError) as exc:
        resolve_weights("vit", "B_16_imagenet1k")
    message = str(exc.value)
    assert "B_16_imagenet1k.pth" in message and str(tmp_path / "torch_home" / "hub" / "checkpoints") in message
    assert "--vit PATH" in message
    with pytest.raises(ModelError, match="save_pretrained"):
        resolve_weights("bert", "someone/not-cached-bert")
    with pytest.raises(ModelError, match="neither a file nor a known ViT"):
        create_model(vit="Z_99", bert="tiny", titles=TITLES)
    with pytest.raises(ModelError, match="vgg16"):
        create_model(vision="vgg", vit="B_16_imagenet1k", bert="tiny", titles=TITLES)


def test_weights_found_in_torch_home_cache(tmp_path):
    cached = tmp_path / "torch_home" / "hub" / "checkpoints" / "B_16_imagenet1k.pth"
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"")
    assert resolve_weights("vit", "B_16_imagenet1k") == cached
    explicit = tmp_path / "elsewhere.pth"
    explicit.write_bytes(b"")
    assert resolve_weights("vit", str(explicit)) == explicit  # an explicit path comes first


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


def test_weight_download_is_atomic(tmp_path):
    from bilipop.models.weights import download

    source = tmp_path / "src.pth"
    source.write_bytes(b"weights" * 1000)
    target = tmp_path / "cache" / "B_16.pth"
    download(source.as_uri(), target)
    assert target.read_bytes() == source.read_bytes()
    with pytest.raises(OSError):
        download((tmp_path / "missing.pth").as_uri(), tmp_path / "cache" / "other.pth")
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == ["B_16.pth"]  # no partial or temp file
