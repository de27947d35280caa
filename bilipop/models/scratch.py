"""The study's architectures with random weights, as timm's ``pretrained=False``: ``create_model(...,
pretrained=False)`` and ``bilipop train --random-init`` build the same ViT, VGG-16 and BERT shapes that the named
weights would, without reading or downloading any weights (for benchmarks, and for training from scratch).

The title tokenizer is still needed: a BERT's own vocabulary is used when its folder is at hand (the Hugging Face
cache or ``--bert DIR``: only the config and tokenizer files are read), else one is learned from the titles, as for
the ``tiny`` models, and the embedding table keeps the architecture's size.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from torch import nn

from bilipop.errors import ModelError
from bilipop.models.limits import refuse_code
from bilipop.models.text import RNNSpec, build_bert
from bilipop.models.tokenizer import load_tokenizer, train_tiny_tokenizer
from bilipop.models.vision import VGG, VGGSpec, ViTSpec, build_vit
from bilipop.models.weights import vit_configs
from bilipop.train_config import DEFAULT_BERT, MAX_TOKENS

log = logging.getLogger(__name__)

#: bert-base-chinese's shape (its config.json on the Hugging Face hub); BertConfig's defaults give the rest.
BERT_BASE_CHINESE = {"vocab_size": 21128, "hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12,
                     "intermediate_size": 3072, "max_position_embeddings": 512, "type_vocab_size": 2,
                     "pad_token_id": 0}


def random_vision(vision: str, vit: str, dropout: float, image_size: int | None = None) -> tuple[nn.Module, dict]:
    """The cover encoder named ``vit`` (a pytorch_pretrained_vit name, or vgg16) with random weights.

    Raises:
        ModelError: ``vit`` is not a known architecture (a weights path gives no architecture without its file).
    """
    if vision == "vgg":
        if vit not in ("vgg16", "random"):
            raise ModelError(f"--random-init builds a known architecture: with --vision vgg use vgg16, not {vit!r}")
        spec = VGGSpec(dropout_rate=dropout)
        return VGG(spec), {"kind": "vgg", "spec": spec.to_dict()}
    known = vit_configs()
    if vit not in known:
        raise ModelError(f"--random-init builds a known architecture: --vit {vit!r} is not one of "
                         f"{', '.join(known)}")
    cfg = known[vit]["config"]
    vit_spec = ViTSpec(patches=cfg["patches"][0], dim=cfg["dim"], ff_dim=cfg["ff_dim"], num_heads=cfg["num_heads"],
                       num_layers=cfg["num_layers"], dropout_rate=dropout,
                       image_size=image_size or known[vit]["image_size"][0], out_dim=known[vit]["num_classes"])
    return build_vit(vit_spec), {"kind": "vit", "spec": vit_spec.to_dict()}


def random_text(text: str, bert: str, titles: Sequence[str], dropout: float) -> tuple:
    """(model or None, tokenizer, arch entry) of the title encoder ``bert`` with random weights.

    Raises:
        ModelError: neither bert-base-chinese nor a folder or cached model that gives the architecture.
    """
    folder = _folder(bert)
    tokenizer = None
    if folder is not None:
        tokenizer = load_tokenizer(folder, MAX_TOKENS)
    if text == "rnn":
        if tokenizer is None:
            tokenizer = train_tiny_tokenizer(titles, vocab_size=BERT_BASE_CHINESE["vocab_size"])
        spec = RNNSpec(vocab_size=max(len(tokenizer), BERT_BASE_CHINESE["vocab_size"]),
                       pad_token_id=tokenizer.pad_token_id or 0, dropout_rate=dropout)
        return None, tokenizer, {"kind": "rnn", "spec": spec.to_dict()}
    if folder is not None and (folder / "config.json").is_file():
        from transformers import BertConfig

        refuse_code(folder, "--bert folder")
        loaded = BertConfig.from_pretrained(str(folder)).to_dict()
        config = {k: v for k, v in loaded.items() if not k.startswith("_")}
    elif bert == DEFAULT_BERT:
        config = {**BERT_BASE_CHINESE, "hidden_dropout_prob": dropout, "attention_probs_dropout_prob": dropout}
    else:
        raise ModelError(f"--random-init: the architecture of --bert {bert!r} is unknown without its config.json; "
                         f"use {DEFAULT_BERT} or a folder holding config.json")
    if tokenizer is None:
        tokenizer = train_tiny_tokenizer(titles, vocab_size=int(config["vocab_size"]))
        log.info("no %s vocabulary at hand: learned one of %d tokens from the titles", bert, len(tokenizer))
    if len(tokenizer) > int(config["vocab_size"]):
        raise ModelError(f"the tokenizer of {bert} has {len(tokenizer)} tokens, more than the model's vocab_size "
                         f"{config['vocab_size']}")
    from transformers import BertConfig

    config = {k: v for k, v in BertConfig(**config).to_dict().items() if not k.startswith("_")}
    return build_bert(config), tokenizer, {"kind": "bert", "config": config}


def _folder(bert: str) -> Path | None:
    """The folder of ``bert`` (path, or the Hugging Face cache, never a download), or None."""
    from bilipop.models.weights import looks_like_path

    path = Path(bert).expanduser()
    if path.is_dir():
        return path
    if looks_like_path(bert):
        raise ModelError(f"--bert {bert}: the folder {path} does not exist; check the path")
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(bert, local_files_only=True, allow_patterns=["*.json", "*.txt", "*.model"]))
    except Exception:  # not cached: the architecture comes from the table above, the vocabulary from the titles
        return None

