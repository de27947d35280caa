"""The encoder registry: a table of named encoders, the ``tiny`` test models among them (timm's ``register_model``
habit: a registry of names; the one entry point that builds the fusion model from them is
``bilipop.models.factory.create_model``).

Each encoder is registered under its kind (the ``--vision``/``--text`` value: vit, vgg, bert, rnn) and its name (the
``--vit``/``--bert`` value) with a builder, its default weights and its input size; ``list_encoders()`` lists them.
A name that is not registered is a local path (or, for bert and rnn, a Hugging Face model name). Where weights
are looked for is ``bilipop.models.weights``; the title tokenizer is ``bilipop.models.tokenizer``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from bilipop.errors import ModelError
from bilipop.models.limits import refuse_code
from bilipop.models.text import RNNSpec, build_bert
from bilipop.models.tokenizer import load_tokenizer, train_tiny_tokenizer
from bilipop.models.vision import TINY_VGG_LAYOUT, VGG, VGGSpec, ViTSpec, build_vit
from bilipop.models.weights import VGG16_FILE, load_state, looks_like_path, resolve_weights, vit_configs
from bilipop.train_config import DEFAULT_BERT, DEFAULT_DROPOUT, MAX_TOKENS, TINY

log = logging.getLogger(__name__)

VISIONS = ("vit", "vgg")
TEXTS = ("bert", "rnn")
TINY_OUT_DIM = 32
PRETRAINED_OUT_DIM = 1000
#: Cover encoders' input side in pixels when nothing else says (VGG-16's ImageNet size).
VGG_INPUT_SIZE = 224


# ---------------------------------------------------------------------------------------------------------------
# The table
@dataclass(frozen=True)
class Encoder:
    """One registered encoder: ``build`` makes it (see ``VisionBuilder``/``TextBuilder``)."""

    kind: str  # vit, vgg (covers) or bert, rnn (titles)
    name: str
    description: str
    weights: str | None = None  # the default weights: a torch hub cache file or a Hugging Face repo; None = random
    input_size: int | None = None  # cover side in pixels (None for title encoders)
    build: Callable = field(default=None, repr=False, compare=False)  # type: ignore[assignment]  # always given


#: (dropout, heads) -> (encoder, arch entry); ``heads`` only matters to a ViT checkpoint path.
VisionBuilder = Callable[[float, "int | None"], tuple[nn.Module, dict]]
#: (titles, dropout) -> (model or None, tokenizer, arch entry)
TextBuilder = Callable[[Sequence[str], float], tuple]

_ENCODERS: dict[tuple[str, str], Encoder] = {}


def register_encoder(kind: str, name: str, *, description: str, weights: str | None = None,
                     input_size: int | None = None) -> Callable[[Callable], Callable]:
    """Register the decorated builder as encoder ``name`` of ``kind`` (a name is registered once per kind)."""
    if kind not in VISIONS + TEXTS:
        raise ValueError(f"unknown encoder kind {kind!r}")

    def add(build: Callable) -> Callable:
        if (kind, name) in _ENCODERS:
            raise ValueError(f"encoder {kind}/{name} is registered twice")
        _ENCODERS[kind, name] = Encoder(kind, name, description, weights, input_size, build)
        return build

    return add


def list_encoders(kind: str | None = None) -> list[Encoder]:
    """The registered encoders (of ``kind`` when given), covers first, in the order they were registered."""
    return [e for e in _ENCODERS.values() if kind is None or e.kind == kind]


def encoder_names(kind: str) -> list[str]:
    """The registered names of ``kind``, for error messages and help."""
    return [e.name for e in list_encoders(kind)]


def get_encoder(kind: str, name: str) -> Encoder | None:
    """The encoder registered as ``name`` of ``kind``, or None."""
    return _ENCODERS.get((kind, name))


# ---------------------------------------------------------------------------------------------------------------
# The tiny test models
def tiny_vit_spec(dropout: float = DEFAULT_DROPOUT) -> ViTSpec:
    """The ``tiny`` ViT: 2 layers of width 32 on 32x32 covers (trains on a CPU in seconds)."""
    return ViTSpec(patches=8, dim=32, ff_dim=64, num_heads=2, num_layers=2, dropout_rate=dropout, image_size=32,
                   out_dim=TINY_OUT_DIM)


def tiny_vgg_spec(dropout: float = DEFAULT_DROPOUT) -> VGGSpec:
    """The ``tiny`` VGG: VGG-16's 13 convolutions and 5 poolings with few channels, on 32x32 covers."""
    return VGGSpec(layout=TINY_VGG_LAYOUT, pool=1, hidden=64, dropout_rate=dropout, image_size=32,
                   out_dim=TINY_OUT_DIM)


def tiny_bert_config(vocab_size: int, dropout: float = DEFAULT_DROPOUT) -> dict:
    """The ``tiny`` BERT's config dict: 2 layers of width 32 over a vocabulary of ``vocab_size``."""
    return {"vocab_size": vocab_size, "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2,
            "intermediate_size": 64, "max_position_embeddings": MAX_TOKENS, "hidden_dropout_prob": dropout,
            "attention_probs_dropout_prob": dropout,
            # Wider than BERT's 0.02: trained from scratch, the tiny model otherwise idles for dozens of steps.
            "initializer_range": 0.1}


def tiny_rnn_spec(vocab_size: int, pad_token_id: int, dropout: float = DEFAULT_DROPOUT) -> RNNSpec:
    """The ``tiny`` recurrent title encoder over a vocabulary of ``vocab_size``."""
    return RNNSpec(vocab_size=vocab_size, embed_dim=32, hidden=32, dropout_rate=dropout, pad_token_id=pad_token_id,
                   out_dim=TINY_OUT_DIM)


# ---------------------------------------------------------------------------------------------------------------
# Cover encoders
@register_encoder("vit", TINY, description="2 layers of width 32, random, 32x32 covers (CPU tests)", input_size=32)
def _tiny_vit(dropout: float, heads: int | None = None) -> tuple[nn.Module, dict]:
    spec = tiny_vit_spec(dropout)
    return build_vit(spec), {"kind": "vit", "spec": spec.to_dict()}


def _register_pretrained_vits() -> None:
    for name, cfg in vit_configs().items():
        size = int(cfg["image_size"][0])
        register_encoder("vit", name, description=f"pytorch_pretrained_vit {name} ({cfg['num_classes']} classes)",
                         weights=f"{name}.pth", input_size=size)(
            lambda dropout, heads=None, name=name: _vit_from_file(resolve_weights("vit", name), dropout, heads))


def _vit_from_file(path: Path, dropout: float, heads: int | None = None) -> tuple[nn.Module, dict]:
    # The 21k checkpoints carry a pre-logits layer that the fine-tuning setup does not use (as in
    # pytorch_pretrained_vit's own loader).
    state = {k: v for k, v in load_state(path).items() if not k.startswith("pre_logits.")}
    spec = _vit_spec_from_state(state, path, dropout, heads)
    return _load_into(build_vit(spec), state, path, "vit"), {"kind": "vit", "spec": spec.to_dict()}


@register_encoder("vgg", TINY, description="VGG-16's layout with few channels, random, 32x32 covers (CPU tests)",
                  input_size=32)
def _tiny_vgg(dropout: float, heads: int | None = None) -> tuple[nn.Module, dict]:
    spec = tiny_vgg_spec(dropout)
    return VGG(spec), {"kind": "vgg", "spec": spec.to_dict()}


@register_encoder("vgg", "vgg16", description="torchvision's ImageNet VGG-16 (the study's Table 2)",
                  weights=VGG16_FILE, input_size=VGG_INPUT_SIZE)
def _vgg16(dropout: float, heads: int | None = None) -> tuple[nn.Module, dict]:
    return _vgg_from_file(resolve_weights("vgg", "vgg16"), dropout)


@register_encoder("vgg", "random", description="VGG-16, randomly initialised", input_size=VGG_INPUT_SIZE)
def _random_vgg(dropout: float, heads: int | None = None) -> tuple[nn.Module, dict]:
    spec = VGGSpec(dropout_rate=dropout)
    return VGG(spec), {"kind": "vgg", "spec": spec.to_dict()}


def _vgg_from_file(path: Path, dropout: float) -> tuple[nn.Module, dict]:
    state = load_state(path)
    out_dim = state.get("classifier.6.weight", torch.empty(PRETRAINED_OUT_DIM)).shape[0]
    spec = VGGSpec(dropout_rate=dropout, out_dim=out_dim)
    return _load_into(VGG(spec), state, path, "vgg"), {"kind": "vgg", "spec": spec.to_dict()}


def _load_into(encoder: nn.Module, state: dict, path: Path, vision: str) -> nn.Module:
    try:
        encoder.load_state_dict(state)
    except RuntimeError as exc:
        raise ModelError(f"weights {path} do not fit a {vision.upper()}: {str(exc).splitlines()[0]}") from exc
    log.info("loaded %s weights from %s", vision, path)
    return encoder


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
    names = vit_configs()
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


_register_pretrained_vits()


def build_vision(vision: str, vit: str, dropout: float, heads: int | None = None) -> tuple[nn.Module, dict]:
    """The registered encoder ``vit`` of kind ``vision``, else the weights file at path ``vit``."""
    entry = get_encoder(vision, vit)
    if entry is not None:
        return entry.build(dropout, heads)  # one with weights finds them with resolve_weights (a path first)
    if not Path(vit).expanduser().exists() and not looks_like_path(vit):
        names = encoder_names(vision)
        if vision == "vit":
            raise ModelError(f"--vit {vit!r} is neither a file nor a known ViT: use tiny, a path to a .pth state "
                             f"dict, or one of {', '.join(n for n in names if n != TINY)}")
        raise ModelError(f"--vit {vit!r} (with --vision vgg) is neither a file nor one of {', '.join(names)}")
    path = resolve_weights(vision, vit)
    return _vit_from_file(path, dropout, heads) if vision == "vit" else _vgg_from_file(path, dropout)


# ---------------------------------------------------------------------------------------------------------------
# Title encoders
@register_encoder("bert", TINY, description="2 layers of width 32, random, tokenizer learned from the titles")
def _tiny_bert(titles: Sequence[str], dropout: float) -> tuple:
    tokenizer = train_tiny_tokenizer(titles)
    config = tiny_bert_config(len(tokenizer), dropout)
    return build_bert(config), tokenizer, {"kind": "bert", "config": config}


@register_encoder("bert", DEFAULT_BERT, description="Hugging Face bert-base-chinese (the study)",
                  weights=DEFAULT_BERT)
def _bert_base_chinese(titles: Sequence[str], dropout: float) -> tuple:
    return _pretrained_bert(DEFAULT_BERT)


@register_encoder("rnn", TINY, description="a small bidirectional GRU, tokenizer learned from the titles")
def _tiny_rnn(titles: Sequence[str], dropout: float) -> tuple:
    tokenizer = train_tiny_tokenizer(titles)
    spec = tiny_rnn_spec(len(tokenizer), tokenizer.pad_token_id or 0, dropout)
    return None, tokenizer, {"kind": "rnn", "spec": spec.to_dict()}


@register_encoder("rnn", DEFAULT_BERT, description="a bidirectional GRU over bert-base-chinese's tokenizer "
                  "(the study's Table 2)", weights=DEFAULT_BERT)
def _rnn_chinese(titles: Sequence[str], dropout: float) -> tuple:
    return _rnn_over(DEFAULT_BERT, dropout)


def _bert_folder(bert: str) -> Path:
    try:
        folder = resolve_weights("bert", bert)
    except ModelError as exc:
        if Path(bert).expanduser().exists() or looks_like_path(bert):
            raise
        raise ModelError(f"{exc}; the registered names are {', '.join(encoder_names('bert'))}") from exc.__cause__
    if not folder.is_dir():
        raise ModelError(f"--bert {bert} is a file; give a folder written by save_pretrained (config.json, "
                         "weights and tokenizer files), a Hugging Face model name, or tiny")
    refuse_code(folder, "--bert folder")
    return folder


def _pretrained_bert(bert: str) -> tuple:
    from transformers import BertModel

    folder = _bert_folder(bert)
    tokenizer = load_tokenizer(folder, MAX_TOKENS)
    try:
        model = BertModel.from_pretrained(str(folder), attn_implementation="eager")
    except Exception as exc:
        raise ModelError(f"cannot load BERT weights from {folder}: {str(exc).splitlines()[0]}") from exc
    config = {k: v for k, v in model.config.to_dict().items() if not k.startswith("_")}
    return model, tokenizer, {"kind": "bert", "config": config}


def _rnn_over(bert: str, dropout: float) -> tuple:
    tokenizer = load_tokenizer(_bert_folder(bert), MAX_TOKENS)
    spec = RNNSpec(vocab_size=len(tokenizer), pad_token_id=tokenizer.pad_token_id or 0, dropout_rate=dropout)
    return None, tokenizer, {"kind": "rnn", "spec": spec.to_dict()}


def build_text(text: str, bert: str, titles: Sequence[str], dropout: float) -> tuple:
    """The registered encoder ``bert`` of kind ``text``, else a BERT folder or Hugging Face name ``bert``."""
    entry = get_encoder(text, bert)
    if entry is not None:
        return entry.build(titles, dropout)
    return _pretrained_bert(bert) if text == "bert" else _rnn_over(bert, dropout)
