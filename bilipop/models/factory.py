"""The one way to build a FusionModel: ``create_model`` from encoder names (training, ``--random-init``, tests),
``build_from_arch`` from a config.json "model" entry (loading a run). Both describe the model as that entry and
hand it, with the encoders they made, to ``assemble``, which lays out the pipeline-ready fusion model."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from bilipop.data.schema import NUM_CLASSES
from bilipop.errors import ModelError
from bilipop.models import ordinal, scratch
from bilipop.models.fusion import FusionModel
from bilipop.models.registry import PRETRAINED_OUT_DIM, TEXTS, TINY_OUT_DIM, VISIONS, build_text, build_vision
from bilipop.models.text import RNNSpec, build_bert, split_bert, split_rnn
from bilipop.models.vision import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    VGG,
    ViTSpec,
    build_vit,
    split_vision,
    vgg_spec_from_dict,
)
from bilipop.train_config import (
    DEFAULT_BERT,
    DEFAULT_DROPOUT,
    DEFAULT_LOSS,
    DEFAULT_TEXT,
    DEFAULT_VISION,
    DEFAULT_VIT,
    DEFAULT_VIT_WEIGHT,
    TINY,
)


@dataclass
class Built:
    """A freshly built model plus what is needed to save and rebuild it."""

    model: FusionModel
    tokenizer: object | None
    arch: dict  # the config.json "model" entry: enough to rebuild the architecture without any weights
    image_size: int
    image_mean: tuple[float, ...]
    image_std: tuple[float, ...]


def assemble(arch: dict, encoder: nn.Module | None, bert: Any) -> FusionModel:  # bert: a BertModel or None
    """The fusion model that ``arch`` (a config.json "model" entry) describes, around the cover ``encoder`` (None
    when ``arch`` has no vision branch) and, for a BERT title branch, the BERT model ``bert``; an RNN title
    branch is made here from its spec."""
    out_dim = int(arch["out_dim"])
    vision = split_vision(encoder) if encoder is not None else None
    text_arch = arch.get("text")
    if not text_arch:
        text = None
    elif text_arch["kind"] == "bert":
        text = split_bert(bert, out_dim)
    else:
        text = split_rnn(RNNSpec(**text_arch["spec"]))
    outputs = int(arch["outputs"])  # K, or K - 1 for the corn loss
    return FusionModel(vision, text, vit_weight=float(arch["vit_weight"]), out_dim=out_dim, num_classes=outputs)


def build_from_arch(arch: dict) -> FusionModel:
    """Rebuild the fusion model from a config.json "model" entry, randomly initialised (weights come after)."""
    encoder = bert = None
    if arch.get("vision"):
        v = arch["vision"]
        encoder = build_vit(ViTSpec(**v["spec"])) if v["kind"] == "vit" else VGG(vgg_spec_from_dict(v["spec"]))
    if arch.get("text") and arch["text"]["kind"] == "bert":
        bert = build_bert(arch["text"]["config"])
    return assemble(arch, encoder, bert)


def create_model(*, vision: str = DEFAULT_VISION, text: str = DEFAULT_TEXT, vit: str = DEFAULT_VIT,
                 bert: str = DEFAULT_BERT, vit_weight: float = DEFAULT_VIT_WEIGHT, titles: Sequence[str] = (),
                 dropout: float = DEFAULT_DROPOUT, seed: int = 0,
                 vit_heads: int | None = None, loss: str = DEFAULT_LOSS, pretrained: bool = True) -> Built:
    """Build the fusion model with pretrained (or tiny) encoders and the title tokenizer.

    ``vit_heads`` is needed for a ``vit`` checkpoint path that is not a known ViT name (see
    ``bilipop.models.registry``).

    A branch whose weight is 0 is not built; the tokenizer is still made when the title branch exists. ``loss``
    sizes the classifier (``bilipop.models.ordinal.outputs``). ``pretrained=False`` builds the same architectures
    with random weights and reads no weights file (``bilipop.models.scratch``; ``tiny`` is random either way).

    Raises:
        ModelError: unknown names, unreadable or missing weights (see ``bilipop.models.weights.resolve_weights``).
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
    random_v = not pretrained and vit != TINY
    random_t = not pretrained and bert != TINY
    encoder, vision_arch = None, None
    if vit_weight > 0:
        encoder, vision_arch = (scratch.random_vision(vision, vit, dropout) if random_v
                                else build_vision(vision, vit, dropout, vit_heads))
    tokenizer = text_model = text_arch = None
    if vit_weight < 1:
        text_model, tokenizer, text_arch = (scratch.random_text(text, bert, titles, dropout) if random_t
                                            else build_text(text, bert, titles, dropout))
    if vision_arch is not None:
        out_dim = int(vision_arch["spec"]["out_dim"])
    else:
        out_dim = TINY_OUT_DIM if bert == TINY else PRETRAINED_OUT_DIM
    if text_arch is not None and text_arch["kind"] == "rnn":
        text_arch["spec"]["out_dim"] = out_dim
    arch = {"vit_weight": vit_weight, "out_dim": out_dim, "num_classes": NUM_CLASSES,
            "outputs": ordinal.outputs(loss, NUM_CLASSES), "vision": vision_arch, "text": text_arch}
    model = assemble(arch, encoder, text_model)
    if vision_arch is None:
        size, mean, std = 0, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5)
    elif vision == "vit":
        size, mean, std = int(vision_arch["spec"]["image_size"]), (0.5, 0.5, 0.5), (0.5, 0.5, 0.5)
    else:
        size, mean, std = int(vision_arch["spec"]["image_size"]), IMAGENET_MEAN, IMAGENET_STD
    return Built(model, tokenizer, arch, size, mean, std)
