"""Named model configurations, the ``tiny`` test models, weight resolution and the one factory that builds the
fusion model (timm's ``create_model`` habit: one entry point, a registry of names, one documented lookup order).

Where weights are looked for (``resolve_weights``), in this order:

1. an explicit path: ``--vit PATH`` (a ``.pth`` state dict) or ``--bert PATH`` (a ``save_pretrained`` folder);
2. ViT / VGG: ``$TORCH_HOME/hub/checkpoints/<file>`` (``~/.cache/torch/hub/checkpoints`` by default);
   BERT: the Hugging Face cache (``$HF_HOME/hub``, ``~/.cache/huggingface/hub`` by default);
3. a download into that cache, unless ``HF_HUB_OFFLINE`` or ``BILIPOP_OFFLINE`` is set (short timeouts, never a
   hang). When all fail, ModelError names the file and where to put it.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from bilipop.errors import ModelError
from bilipop.files import atomic_write
from bilipop.models import ordinal
from bilipop.models.fusion import FusionModel
from bilipop.models.limits import refuse_code
from bilipop.models.run import load_tokenizer
from bilipop.models.text import RNNSpec, build_bert, split_bert, split_rnn
from bilipop.models.vision import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    TINY_VGG_LAYOUT,
    VGG,
    VGGSpec,
    ViTSpec,
    build_vit,
    split_vision,
    vgg_spec_from_dict,
)

log = logging.getLogger(__name__)

VISIONS = ("vit", "vgg")
TEXTS = ("bert", "rnn")
MAX_TOKENS = 64
NUM_CLASSES = 5
TINY = "tiny"
DEFAULT_VIT = "B_16_imagenet1k"
DEFAULT_BERT = "bert-base-chinese"
#: torchvision's file name for VGG-16 ImageNet weights, looked for in the torch hub cache.
VGG16_FILE = "vgg16-397923af.pth"
VGG16_URL = "https://download.pytorch.org/models/" + VGG16_FILE
VGG_NAMES = ("vgg16", "random", TINY)
DOWNLOAD_TIMEOUT_S = 15
TINY_OUT_DIM = 32
PRETRAINED_OUT_DIM = 1000


def tiny_vit_spec(dropout: float = 0.1) -> ViTSpec:
    """The ``tiny`` ViT: 2 layers of width 32 on 32x32 covers (trains on a CPU in seconds)."""
    return ViTSpec(patches=8, dim=32, ff_dim=64, num_heads=2, num_layers=2, dropout_rate=dropout, image_size=32,
                   out_dim=TINY_OUT_DIM)


def tiny_vgg_spec(dropout: float = 0.1) -> VGGSpec:
    """The ``tiny`` VGG: VGG-16's 13 convolutions and 5 poolings with few channels, on 32x32 covers."""
    return VGGSpec(layout=TINY_VGG_LAYOUT, pool=1, hidden=64, dropout_rate=dropout, image_size=32,
                   out_dim=TINY_OUT_DIM)


def tiny_bert_config(vocab_size: int, dropout: float = 0.1) -> dict:
    """The ``tiny`` BERT's config dict: 2 layers of width 32 over a vocabulary of ``vocab_size``."""
    return {"vocab_size": vocab_size, "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2,
            "intermediate_size": 64, "max_position_embeddings": MAX_TOKENS, "hidden_dropout_prob": dropout,
            "attention_probs_dropout_prob": dropout,
            # Wider than BERT's 0.02: trained from scratch, the tiny model otherwise idles for dozens of steps.
            "initializer_range": 0.1}


def tiny_rnn_spec(vocab_size: int, pad_token_id: int, dropout: float = 0.1) -> RNNSpec:
    """The ``tiny`` recurrent title encoder over a vocabulary of ``vocab_size``."""
    return RNNSpec(vocab_size=vocab_size, embed_dim=32, hidden=32, dropout_rate=dropout, pad_token_id=pad_token_id,
                   out_dim=TINY_OUT_DIM)


def offline() -> bool:
    """True when downloads are switched off (read at call time, so a changed environment is respected)."""
    return any(os.environ.get(v, "").strip().upper() in ("1", "ON", "YES", "TRUE")
               for v in ("HF_HUB_OFFLINE", "BILIPOP_OFFLINE"))


def _vit_names() -> dict:
    from pytorch_pretrained_vit.configs import PRETRAINED_MODELS

    return PRETRAINED_MODELS


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
    if kind == "vit":
        names = _vit_names()
        if name not in names:
            raise ModelError(f"--vit {name!r} is neither a file nor a known ViT: use tiny, a path to a .pth "
                             f"state dict, or one of {', '.join(names)}")
        file, url = f"{name}.pth", names[name]["url"]
    elif kind == "vgg":
        if name != "vgg16":
            raise ModelError(f"--vit {name!r} (with --vision vgg) is neither a file nor one of "
                             f"{', '.join(VGG_NAMES)}")
        file, url = VGG16_FILE, VGG16_URL
    else:
        raise ModelError(f"unknown model kind {kind!r}")
    target = Path(torch.hub.get_dir()) / "checkpoints" / file
    if target.is_file():
        return target
    if url and not offline():
        try:
            _download(url, target)
            return target
        except OSError as exc:
            log.warning("downloading %s failed: %s", url, exc)
    why = "downloads are off (HF_HUB_OFFLINE/BILIPOP_OFFLINE)" if offline() else "it could not be downloaded"
    raise ModelError(f"weights {file} not found and {why}: put the file at {target} (from {url}), "
                     f"or pass its path with --vit PATH")


def looks_like_path(name: str) -> bool:
    """True for a name that can only mean a local path: ``./x``, ``../x``, ``/x``, ``~/x``, ``x/y/z``, ``x/``,
    a backslash, or a file extension of weights (a model name is at most ``owner/name``)."""
    return (name.startswith((".", "/", "~")) or "\\" in name or name.endswith("/") or name.count("/") > 1
            or name.lower().endswith((".pth", ".pt", ".bin", ".safetensors")))


def _download(url: str, target: Path) -> None:
    import urllib.request

    def fetch(tmp: Path) -> None:
        with open(tmp, "wb") as f, urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_S) as r:
            shutil.copyfileobj(r, f)

    atomic_write(target, fetch)


def _resolve_hf(name: str) -> Path:
    from huggingface_hub import snapshot_download

    if not re.fullmatch(r"[\w.-]+(/[\w.-]+)?", name):
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


@dataclass
class Built:
    """A freshly built model plus what is needed to save and rebuild it."""

    model: FusionModel
    tokenizer: object | None
    arch: dict  # the config.json "model" entry: enough to rebuild the architecture without any weights
    image_size: int
    image_mean: tuple[float, ...]
    image_std: tuple[float, ...]


def _load_state(path: Path) -> dict:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ModelError(f"cannot read weights {path}: {type(exc).__name__}: {exc}".splitlines()[0]
                         + "; pass a PyTorch state dict (.pth)") from exc


def _vit_heads(path: Path, heads: int | None, dim: int) -> int:
    """The attention heads of the ViT checkpoint ``path``: ``heads`` (``--vit-heads``), else ``num_heads`` of a
    JSON config beside it (same name, ``.json``). Neither the weights' shapes nor their names record it, and a
    wrong guess loads without error and computes another model.

    Raises:
        ModelError: neither gives a head count, or it does not divide the hidden size.
    """
    config = path.with_suffix(".json")
    source = "--vit-heads"
    if heads is None and config.is_file():
        try:
            heads = json.loads(config.read_text(encoding="utf-8"))["num_heads"]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ModelError(f"cannot read num_heads from {config} ({exc}); fix it or pass --vit-heads N") from None
        source = str(config)
    if heads is None:
        raise ModelError(f"{path.name} is not a known ViT name and its head count cannot be read from the weights: "
                         f"pass --vit-heads N (ViT-B and ViT-S-style models use hidden size / 64, here "
                         f"{max(1, dim // 64)}) or write {{\"num_heads\": N}} to {config}")
    if isinstance(heads, bool) or not isinstance(heads, int) or heads < 1 or dim % heads:
        raise ModelError(f"{source}: {heads!r} heads do not divide the ViT's hidden size {dim}; give a whole "
                         "number of heads that does")
    return heads


def _vit_spec_from_state(state: dict, path: Path, dropout: float, heads: int | None = None) -> ViTSpec:
    stem = path.stem
    names = _vit_names()
    if stem in names:
        cfg = names[stem]["config"]
        return ViTSpec(patches=cfg["patches"][0], dim=cfg["dim"], ff_dim=cfg["ff_dim"], num_heads=cfg["num_heads"],
                       num_layers=cfg["num_layers"], dropout_rate=dropout,
                       image_size=names[stem]["image_size"][0], out_dim=names[stem]["num_classes"])
    try:
        dim, _, patches, _ = state["patch_embedding.weight"].shape
        layers = len({k.split(".")[2] for k in state if k.startswith("transformer.blocks.")})
        seq = state["positional_embedding.pos_embedding"].shape[1] - 1
        ff_dim = state["transformer.blocks.0.pwff.fc1.weight"].shape[0]
        out_dim = state["fc.weight"].shape[0]
    except (KeyError, ValueError) as exc:
        raise ModelError(f"{stem}.pth is not a pytorch_pretrained_vit ViT state dict (missing {exc})") from exc
    return ViTSpec(patches=patches, dim=dim, ff_dim=ff_dim, num_heads=_vit_heads(path, heads, dim), num_layers=layers,
                   dropout_rate=dropout, image_size=int(round(seq ** 0.5)) * patches, out_dim=out_dim)


def _build_vision(vision: str, vit: str, dropout: float, heads: int | None = None) -> tuple[nn.Module, dict]:
    if vision == "vit":
        if vit == TINY:
            spec = tiny_vit_spec(dropout)
            return build_vit(spec), {"kind": "vit", "spec": spec.to_dict()}
        path = resolve_weights("vit", vit)
        # The 21k checkpoints carry a pre-logits layer that the fine-tuning setup does not use (as in
        # pytorch_pretrained_vit's own loader).
        state = {k: v for k, v in _load_state(path).items() if not k.startswith("pre_logits.")}
        spec = _vit_spec_from_state(state, path, dropout, heads)
        encoder = build_vit(spec)
    else:
        if vit == TINY:
            spec = tiny_vgg_spec(dropout)
            return VGG(spec), {"kind": "vgg", "spec": spec.to_dict()}
        if vit == "random":
            spec = VGGSpec(dropout_rate=dropout)
            return VGG(spec), {"kind": "vgg", "spec": spec.to_dict()}
        path = resolve_weights("vgg", vit)
        state = _load_state(path)
        out_dim = state.get("classifier.6.weight", torch.empty(PRETRAINED_OUT_DIM)).shape[0]
        spec = VGGSpec(dropout_rate=dropout, out_dim=out_dim)
        encoder = VGG(spec)
    try:
        encoder.load_state_dict(state)
    except RuntimeError as exc:
        raise ModelError(f"weights {path} do not fit a {vision.upper()}: {str(exc).splitlines()[0]}") from exc
    log.info("loaded %s weights from %s", vision, path)
    return encoder, {"kind": vision, "spec": spec.to_dict()}


def train_tiny_tokenizer(titles: Sequence[str], vocab_size: int = 2000):
    """A BERT WordPiece tokenizer whose vocabulary is learned from ``titles`` (Chinese splits into characters)."""
    from tokenizers import BertWordPieceTokenizer
    from transformers import BertTokenizer

    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    trainer = BertWordPieceTokenizer(lowercase=True)
    trainer.train_from_iterator(list(titles), vocab_size=vocab_size, min_frequency=1, show_progress=False,
                                special_tokens=specials)
    # The trainer numbers tokens in a different order from one call to the next; sorted ids make the same
    # titles give the same tokenizer, hence the same initial embeddings and a reproducible run.
    tokens = specials + sorted(set(trainer.get_vocab()) - set(specials))
    return BertTokenizer(vocab={tok: i for i, tok in enumerate(tokens)}, model_max_length=MAX_TOKENS)


def _build_text(text: str, bert: str, titles: Sequence[str], dropout: float):
    if bert == TINY:
        tokenizer = train_tiny_tokenizer(titles)
        folder = None
    else:
        folder = resolve_weights("bert", bert)
        if not folder.is_dir():
            raise ModelError(f"--bert {bert} is a file; give a folder written by save_pretrained (config.json, "
                             "weights and tokenizer files), a Hugging Face model name, or tiny")
        refuse_code(folder, "--bert folder")
        tokenizer = load_tokenizer(folder, MAX_TOKENS)
    if text == "rnn":
        if bert == TINY:
            spec = tiny_rnn_spec(len(tokenizer), tokenizer.pad_token_id or 0, dropout)
        else:
            spec = RNNSpec(vocab_size=len(tokenizer), pad_token_id=tokenizer.pad_token_id or 0,
                           dropout_rate=dropout)
        return None, tokenizer, {"kind": "rnn", "spec": spec.to_dict()}
    if folder is None:
        config = tiny_bert_config(len(tokenizer), dropout)
        return build_bert(config), tokenizer, {"kind": "bert", "config": config}
    from transformers import BertModel

    try:
        model = BertModel.from_pretrained(str(folder), attn_implementation="eager")
    except Exception as exc:
        raise ModelError(f"cannot load BERT weights from {folder}: {str(exc).splitlines()[0]}") from exc
    config = {k: v for k, v in model.config.to_dict().items() if not k.startswith("_")}
    return model, tokenizer, {"kind": "bert", "config": config}


def build_from_arch(arch: dict) -> FusionModel:
    """Rebuild the fusion model from a config.json "model" entry, randomly initialised (weights come after)."""
    w, out_dim = float(arch["vit_weight"]), int(arch["out_dim"])
    vision = text = None
    if arch.get("vision"):
        v = arch["vision"]
        encoder = build_vit(ViTSpec(**v["spec"])) if v["kind"] == "vit" else VGG(vgg_spec_from_dict(v["spec"]))
        vision = split_vision(encoder)
    if arch.get("text"):
        t = arch["text"]
        text = split_bert(build_bert(t["config"]), out_dim) if t["kind"] == "bert" else split_rnn(
            RNNSpec(**t["spec"]))
    # "outputs" (K-1 for the corn loss) came with issue 13; older runs have K outputs.
    outputs = int(arch.get("outputs", arch["num_classes"]))
    return FusionModel(vision, text, vit_weight=w, out_dim=out_dim, num_classes=outputs)


def create_model(*, vision: str = "vit", text: str = "bert", vit: str = DEFAULT_VIT, bert: str = DEFAULT_BERT,
                 vit_weight: float = 0.75, titles: Sequence[str] = (), dropout: float = 0.1, seed: int = 0,
                 vit_heads: int | None = None, loss: str = "ce") -> Built:
    """Build the fusion model with pretrained (or tiny) encoders and the title tokenizer.

    ``vit_heads`` is needed for a ``vit`` checkpoint path that is not a known ViT name (see ``_vit_heads``).

    A branch whose weight is 0 is not built; the tokenizer is still made when the title branch exists. ``loss``
    sizes the classifier (``bilipop.models.ordinal.outputs``).

    Raises:
        ModelError: unknown names, unreadable or missing weights (see ``resolve_weights``).
    """
    if vision not in VISIONS:
        raise ModelError(f"--vision must be one of {', '.join(VISIONS)}, got {vision!r}")
    if text not in TEXTS:
        raise ModelError(f"--text must be one of {', '.join(TEXTS)}, got {text!r}")
    if not 0.0 <= vit_weight <= 1.0:
        raise ModelError(f"--vit-weight must be between 0 and 1, got {vit_weight}")
    if vision == "vgg" and vit == DEFAULT_VIT:
        vit = "vgg16"  # the default names a ViT; with --vision vgg it stands for the study's ImageNet VGG-16
    torch.manual_seed(seed)
    encoder, vision_arch = _build_vision(vision, vit, dropout, vit_heads) if vit_weight > 0 else (None, None)
    tokenizer = text_model = text_arch = None
    if vit_weight < 1:
        text_model, tokenizer, text_arch = _build_text(text, bert, titles, dropout)
    if vision_arch is not None:
        out_dim = int(vision_arch["spec"]["out_dim"])
    else:
        out_dim = TINY_OUT_DIM if bert == TINY else PRETRAINED_OUT_DIM
    if text_arch is not None and text_arch["kind"] == "rnn":
        text_arch["spec"]["out_dim"] = out_dim
    arch = {"vit_weight": vit_weight, "out_dim": out_dim, "num_classes": NUM_CLASSES,
            "outputs": ordinal.outputs(loss, NUM_CLASSES), "vision": vision_arch, "text": text_arch}
    split_v = split_vision(encoder) if encoder is not None else None
    if text_arch is None:
        split_t = None
    elif text_arch["kind"] == "bert":
        split_t = split_bert(text_model, out_dim)
    else:
        split_t = split_rnn(RNNSpec(**text_arch["spec"]))
    model = FusionModel(split_v, split_t, vit_weight=vit_weight, out_dim=out_dim, num_classes=arch["outputs"])
    if vision_arch is None:
        size, mean, std = 0, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5)
    elif vision == "vit":
        size, mean, std = int(vision_arch["spec"]["image_size"]), (0.5, 0.5, 0.5), (0.5, 0.5, 0.5)
    else:
        size, mean, std = int(vision_arch["spec"]["image_size"]), IMAGENET_MEAN, IMAGENET_STD
    return Built(model, tokenizer, arch, size, mean, std)
