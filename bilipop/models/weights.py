"""Where pretrained weights come from: the one function that says in which order they are looked for, the known
files and their download addresses, and the download itself (timm's habit of one documented lookup order).

``resolve_weights`` looks, in this order:

1. an explicit path: ``--vit PATH`` (a ``.pth`` state dict) or ``--bert PATH`` (a ``save_pretrained`` folder);
2. ViT / VGG: ``$TORCH_HOME/hub/checkpoints/<file>`` (``~/.cache/torch/hub/checkpoints`` by default);
   BERT: the Hugging Face cache (``$HF_HOME/hub``, ``~/.cache/huggingface/hub`` by default);
3. a download into that cache, unless ``HF_HUB_OFFLINE`` or ``BILIPOP_OFFLINE`` is set (short timeouts, never a
   hang; a file whose name carries a hash prefix, such as ``vgg16-397923af.pth``, is checked against it). When
   all fail, ModelError names the file and where to put it.
"""

from __future__ import annotations

import logging
import os
import re
import socket
from dataclasses import dataclass
from pathlib import Path

import torch

from bilipop.errors import ModelError
from bilipop.files import atomic_write

log = logging.getLogger(__name__)

DOWNLOAD_TIMEOUT_S = 15
#: torchvision's file name for VGG-16 ImageNet weights, looked for in the torch hub cache.
VGG16_FILE = "vgg16-397923af.pth"
VGG16_URL = "https://download.pytorch.org/models/" + VGG16_FILE
# torch.hub's convention: ``name-<first hex digits of the file's SHA-256>.ext``.
_HASH_IN_NAME = re.compile(r"-([a-f0-9]{6,})\.")
_HF_NAME = re.compile(r"[\w.-]+(/[\w.-]+)?")


@dataclass(frozen=True)
class WeightsFile:
    """A known weights file: its name in the torch hub cache and where it is downloaded from."""

    file: str
    url: str

    @property
    def hash_prefix(self) -> str | None:
        """The SHA-256 prefix the file name carries (torch.hub's convention), checked after a download."""
        match = _HASH_IN_NAME.search(self.file)
        return match.group(1) if match else None


def vit_configs() -> dict:
    """pytorch_pretrained_vit's table of pretrained ViTs: name -> config, image size, classes and URL."""
    from pytorch_pretrained_vit.configs import PRETRAINED_MODELS

    return PRETRAINED_MODELS


def known_weights(kind: str) -> dict[str, WeightsFile]:
    """The weights ``resolve_weights`` can find by name for ``kind`` ("vit" or "vgg")."""
    if kind == "vit":
        return {name: WeightsFile(f"{name}.pth", cfg["url"]) for name, cfg in vit_configs().items()}
    if kind == "vgg":
        return {"vgg16": WeightsFile(VGG16_FILE, VGG16_URL)}
    return {}


def offline() -> bool:
    """True when downloads are switched off (read at call time, so a changed environment is respected)."""
    return any(os.environ.get(v, "").strip().upper() in ("1", "ON", "YES", "TRUE")
               for v in ("HF_HUB_OFFLINE", "BILIPOP_OFFLINE"))


def cache_dir() -> Path:
    """Where ViT and VGG weights are cached: torch hub's ``checkpoints`` folder."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def looks_like_path(name: str) -> bool:
    """True for a name that can only mean a local path: ``./x``, ``../x``, ``/x``, ``~/x``, ``x/y/z``, ``x/``,
    a backslash, or a file extension of weights (a model name is at most ``owner/name``)."""
    return (name.startswith((".", "/", "~")) or "\\" in name or name.endswith("/") or name.count("/") > 1
            or name.lower().endswith((".pth", ".pt", ".bin", ".safetensors")))


def resolve_weights(kind: str, name: str) -> Path:
    """Find the weights of ``name`` for ``kind`` ("vit", "vgg" or "bert") in the order of this module's docstring.

    Returns a ``.pth`` file (vit, vgg) or a folder holding ``config.json`` and the weights (bert).

    Raises:
        ModelError: the name is unknown, or the weights are neither local nor downloadable; the message names
            the file and the folder to put it in.
    """
    path = Path(name).expanduser()
    if path.exists():
        return path
    if looks_like_path(name):
        flag = "--bert" if kind == "bert" else "--vit"
        what = "folder" if kind == "bert" else "file"
        raise ModelError(f"{flag} {name}: the {what} {path} does not exist; check the path, or give "
                         + ("a Hugging Face model name such as bert-base-chinese, or tiny" if kind == "bert"
                            else "a known name such as B_16_imagenet1k, or tiny"))
    if kind == "bert":
        return _resolve_hf(name)
    if kind not in ("vit", "vgg"):
        raise ModelError(f"unknown model kind {kind!r}")
    known = known_weights(kind)
    if name not in known:
        if kind == "vit":
            raise ModelError(f"--vit {name!r} is neither a file nor a known ViT: use tiny, a path to a .pth "
                             f"state dict, or one of {', '.join(known)}")
        raise ModelError(f"--vit {name!r} (with --vision vgg) is neither a file nor one of vgg16, random, tiny")
    weights = known[name]
    target = cache_dir() / weights.file
    if target.is_file():
        return target
    if weights.url and not offline():
        try:
            download(weights.url, target, hash_prefix=weights.hash_prefix)
            return target
        except (OSError, RuntimeError) as exc:  # RuntimeError: the hash does not match
            log.warning("downloading %s failed: %s", weights.url, exc)
    why = "downloads are off (HF_HUB_OFFLINE/BILIPOP_OFFLINE)" if offline() else "it could not be downloaded"
    raise ModelError(f"weights {weights.file} not found and {why}: put the file at {target} (from {weights.url}), "
                     f"or pass its path with --vit PATH")


def download(url: str, target: Path, *, hash_prefix: str | None = None) -> Path:
    """Download ``url`` to ``target`` atomically with ``torch.hub.download_url_to_file`` (checking ``hash_prefix``
    when given), timing out after DOWNLOAD_TIMEOUT_S of silence rather than hanging.

    Raises:
        OSError: the download failed; RuntimeError: the file does not match ``hash_prefix``. Nothing is left.
    """
    def fetch(tmp: Path) -> None:
        # download_url_to_file opens the URL without a timeout of its own; the default one applies.
        before = socket.getdefaulttimeout()
        socket.setdefaulttimeout(DOWNLOAD_TIMEOUT_S)
        try:
            torch.hub.download_url_to_file(url, str(tmp), hash_prefix=hash_prefix, progress=False)
        finally:
            socket.setdefaulttimeout(before)

    return atomic_write(target, fetch)


def _resolve_hf(name: str) -> Path:
    from huggingface_hub import snapshot_download

    if not _HF_NAME.fullmatch(name):
        raise ModelError(f"--bert {name!r} is neither an existing folder nor a Hugging Face model name")
    patterns = ["*.json", "*.txt", "*.safetensors", "*.bin", "*.model"]
    try:
        return Path(snapshot_download(name, local_files_only=True, allow_patterns=patterns))
    except Exception as exc:  # huggingface_hub raises several types for "not in the cache"
        local_error = exc
    if not offline():
        try:
            return Path(snapshot_download(name, allow_patterns=patterns, etag_timeout=DOWNLOAD_TIMEOUT_S))
        except Exception as exc:
            log.warning("downloading %s from the Hugging Face hub failed: %s", name, exc)
    from huggingface_hub import constants

    why = "downloads are off (HF_HUB_OFFLINE/BILIPOP_OFFLINE)" if offline() else "it could not be downloaded"
    raise ModelError(f"BERT {name!r} is not in the Hugging Face cache ({constants.HF_HUB_CACHE}) and {why}: "
                     f"on a connected machine run `hf download {name}` and copy the cache, or save it with "
                     f"save_pretrained (model and tokenizer) and pass --bert FOLDER") from local_error


def load_state(path: Path) -> dict:
    """The state dict in ``path`` (tensors only: ``weights_only``, never arbitrary pickled objects).

    Raises:
        ModelError: the file is not a readable PyTorch state dict.
    """
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ModelError(f"cannot read weights {path}: {type(exc).__name__}: {exc}".splitlines()[0]
                         + "; pass a PyTorch state dict (.pth)") from exc
