"""Weight lookup (bilipop.models.weights): errors that say where to put the file, the torch hub cache, and an
atomic download."""

from __future__ import annotations

import pytest

from bilipop.errors import ModelError
from bilipop.models.factory import create_model
from bilipop.models.weights import resolve_weights

pytestmark = pytest.mark.usefixtures("one_thread", "offline_hub")

TITLES = ["物理讲解入门 第1期", "历史其实竟然", "数学看懂了解", "编程一分钟带你", "宇宙科普为什么"]


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
