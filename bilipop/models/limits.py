"""What a run folder may ask for: the checks of config.json made before anything is built, and the refusal of
folders that would run code (``auto_map``). Run folders are shared between people; a tampered one must give one
line naming the field, never a traceback, a terabyte allocation, a hang or a stranger's Python.

The bounds are far above every model the study or bilipop uses (ViT-B/16: 12 layers of 768 on 384x384 covers;
bert-base-chinese: 12 layers of 768, 21,128 tokens) and far below what would exhaust a machine. On top of them, the
weights file must be large enough to hold the model the config describes (4 bytes per parameter), so the memory
that loading takes is bounded by a file on the user's own disk.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Literal, overload

from bilipop.data.schema import NUM_CLASSES
from bilipop.errors import ModelError

MAX_LAYERS = 64
MAX_HIDDEN = 8192
MAX_HEADS = 128
MAX_FF = 32768
MAX_VOCAB = 1_000_000
MAX_IMAGE_SIZE = 1024
MAX_TOKENS = 512
MAX_POSITIONS = 8192
MAX_OUT_DIM = 100_000
MAX_VGG_LAYERS = 64
MAX_CONFIG_BYTES = 1 << 20
MAX_TOKENIZER_BYTES = 200 << 20
TOKENIZER_FILES = ("tokenizer.json", "vocab.txt", "vocab.json", "merges.txt", "tokenizer_config.json",
                   "special_tokens_map.json", "added_tokens.json")
#: Files of a model or tokenizer folder whose ``auto_map`` would name Python code for transformers to import.
CODE_MAP_FILES = ("config.json", "tokenizer_config.json", "processor_config.json", "preprocessor_config.json")


class _Bad(Exception):
    """One field's problem, turned into a ModelError by ``check_run_config``."""


def _shown(value: object) -> str:
    text = json.dumps(value, ensure_ascii=False) if not isinstance(value, float) else repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _int(d: dict, key: str, field: str, lo: int, hi: int) -> int:
    value = d.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise _Bad(f"{field} must be a whole number from {lo:,} to {hi:,}, got {_shown(value)}")
    return value


# A required number is never None: only required=False can give None.
@overload
def _float(d: dict, key: str, field: str, lo: float, hi: float, *, required: Literal[True] = True) -> float: ...
@overload
def _float(d: dict, key: str, field: str, lo: float, hi: float, *, required: bool) -> float | None: ...
def _float(d: dict, key: str, field: str, lo: float, hi: float, *, required: bool = True) -> float | None:
    if key not in d and not required:
        return None
    value = d.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) \
            or not lo <= value <= hi:
        raise _Bad(f"{field} must be a number from {lo:g} to {hi:g}, got {_shown(value)}")
    return float(value)


def _dict(value: object, field: str) -> dict:
    if not isinstance(value, dict):
        raise _Bad(f"{field} must be a JSON object, got {_shown(value)}")
    return value


def _only(d: dict, allowed: set[str], field: str) -> None:
    extra = sorted(set(d) - allowed)
    if extra:
        raise _Bad(f"{field} has the unknown key {extra[0]!r}")


def _check_vit(spec: dict, f: str) -> int:
    _only(spec, {"patches", "dim", "ff_dim", "num_heads", "num_layers", "dropout_rate", "image_size", "out_dim"}, f)
    size = _int(spec, "image_size", f"{f}.image_size", 1, MAX_IMAGE_SIZE)
    patches = _int(spec, "patches", f"{f}.patches", 1, size)
    if size % patches:
        raise _Bad(f"{f}.image_size {size} is not a multiple of {f}.patches {patches}")
    dim = _int(spec, "dim", f"{f}.dim", 1, MAX_HIDDEN)
    ff = _int(spec, "ff_dim", f"{f}.ff_dim", 1, MAX_FF)
    heads = _int(spec, "num_heads", f"{f}.num_heads", 1, MAX_HEADS)
    if dim % heads:
        raise _Bad(f"{f}.dim {dim} is not a multiple of {f}.num_heads {heads}")
    layers = _int(spec, "num_layers", f"{f}.num_layers", 1, MAX_LAYERS)
    _float(spec, "dropout_rate", f"{f}.dropout_rate", 0, 0.99)
    out = _int(spec, "out_dim", f"{f}.out_dim", 1, MAX_OUT_DIM)
    seq = (size // patches) ** 2 + 1
    return 3 * patches * patches * dim + seq * dim + layers * (4 * dim * dim + 2 * dim * ff) + dim * out


def _check_vgg(spec: dict, f: str) -> int:
    _only(spec, {"layout", "pool", "hidden", "dropout_rate", "image_size", "out_dim"}, f)
    layout = spec.get("layout")
    if not isinstance(layout, list) or not 1 <= len(layout) <= MAX_VGG_LAYERS:
        raise _Bad(f"{f}.layout must be a list of 1 to {MAX_VGG_LAYERS} channel counts and \"M\", got "
                   f"{_shown(layout)}")
    params, channels = 0, 3
    for i, item in enumerate(layout):
        if item == "M":
            continue
        width = _int({"c": item}, "c", f"{f}.layout[{i}]", 1, MAX_HIDDEN)
        params += 9 * channels * width
        channels = width
    pool = _int(spec, "pool", f"{f}.pool", 1, 32)
    hidden = _int(spec, "hidden", f"{f}.hidden", 1, MAX_FF)
    _float(spec, "dropout_rate", f"{f}.dropout_rate", 0, 0.99)
    _int(spec, "image_size", f"{f}.image_size", 1, MAX_IMAGE_SIZE)
    out = _int(spec, "out_dim", f"{f}.out_dim", 1, MAX_OUT_DIM)
    return params + channels * pool * pool * hidden + hidden * hidden + hidden * out


def _check_bert(config: dict, f: str, out_dim: int) -> int:
    if "auto_map" in config:
        raise _Bad(f"{f} has an auto_map, which would make transformers run Python code from the folder; "
                   "bilipop never runs code from a run folder")
    vocab = _int(config, "vocab_size", f"{f}.vocab_size", 1, MAX_VOCAB)
    hidden = _int(config, "hidden_size", f"{f}.hidden_size", 1, MAX_HIDDEN)
    layers = _int(config, "num_hidden_layers", f"{f}.num_hidden_layers", 1, MAX_LAYERS)
    heads = _int(config, "num_attention_heads", f"{f}.num_attention_heads", 1, MAX_HEADS)
    if hidden % heads:
        raise _Bad(f"{f}.hidden_size {hidden} is not a multiple of {f}.num_attention_heads {heads}")
    ff = _int(config, "intermediate_size", f"{f}.intermediate_size", 1, MAX_FF)
    positions = _int(config, "max_position_embeddings", f"{f}.max_position_embeddings", 1, MAX_POSITIONS)
    types = _int(config, "type_vocab_size", f"{f}.type_vocab_size", 1, 16) if "type_vocab_size" in config else 2
    for key in ("hidden_dropout_prob", "attention_probs_dropout_prob"):
        _float(config, key, f"{f}.{key}", 0, 0.99, required=False)
    _float(config, "initializer_range", f"{f}.initializer_range", 0, 10, required=False)
    _float(config, "layer_norm_eps", f"{f}.layer_norm_eps", 0, 1, required=False)
    return (vocab + positions + types) * hidden + layers * (4 * hidden * hidden + 2 * hidden * ff) \
        + hidden * hidden + hidden * out_dim


def _check_rnn(spec: dict, f: str, out_dim: int) -> int:
    _only(spec, {"vocab_size", "embed_dim", "hidden", "num_layers", "cell", "dropout_rate", "pad_token_id",
                 "out_dim"}, f)
    vocab = _int(spec, "vocab_size", f"{f}.vocab_size", 1, MAX_VOCAB)
    embed = _int(spec, "embed_dim", f"{f}.embed_dim", 1, MAX_HIDDEN)
    hidden = _int(spec, "hidden", f"{f}.hidden", 1, MAX_HIDDEN)
    layers = _int(spec, "num_layers", f"{f}.num_layers", 1, 16)
    if spec.get("cell") not in ("gru", "lstm"):
        raise _Bad(f"{f}.cell must be \"gru\" or \"lstm\", got {_shown(spec.get('cell'))}")
    _float(spec, "dropout_rate", f"{f}.dropout_rate", 0, 0.99)
    _int(spec, "pad_token_id", f"{f}.pad_token_id", 0, vocab - 1)
    if _int(spec, "out_dim", f"{f}.out_dim", 1, MAX_OUT_DIM) != out_dim:
        raise _Bad(f"{f}.out_dim is not model.out_dim {out_dim}")
    gates = 3 if spec["cell"] == "gru" else 4
    return vocab * embed + 2 * gates * (embed * hidden + (layers - 1) * 2 * hidden * hidden + layers * hidden
                                        * hidden) + 2 * hidden * out_dim


def _check(config: dict) -> int:
    """The checks themselves; returns a lower bound of the model's parameter count."""
    w = _float(config, "vit_weight", "vit_weight", 0, 1)
    arch = _dict(config.get("model"), "model")
    if _float(arch, "vit_weight", "model.vit_weight", 0, 1) != w:
        raise _Bad(f"model.vit_weight {arch['vit_weight']} is not vit_weight {w}")
    out_dim = _int(arch, "out_dim", "model.out_dim", 1, MAX_OUT_DIM)
    _int(arch, "num_classes", "model.num_classes", NUM_CLASSES, NUM_CLASSES)
    if "num_classes" in config:
        _int(config, "num_classes", "num_classes", NUM_CLASSES, NUM_CLASSES)
    if "outputs" in arch:  # the classifier's width: 5, or 4 for an ordinal (CORN) head
        _int(arch, "outputs", "model.outputs", NUM_CLASSES - 1, NUM_CLASSES)
    params = out_dim * (NUM_CLASSES - 1)
    vision, text = arch.get("vision"), arch.get("text")
    if (vision is not None) != (w > 0) or (text is not None) != (w < 1):
        raise _Bad(f"model.vision/model.text do not fit vit_weight {w} (a branch is built exactly when its weight "
                   "is above 0)")
    size = _int(config, "image_size", "image_size", 0, MAX_IMAGE_SIZE)
    for key in ("image_mean", "image_std"):
        values = config.get(key)
        if not isinstance(values, list) or len(values) != 3:
            raise _Bad(f"{key} must be a list of 3 numbers, got {_shown(values)}")
        for i in range(3):
            lo = 0.001 if key == "image_std" else -100
            _float({"v": values[i]}, "v", f"{key}[{i}]", lo, 100)
    if vision is not None:
        vision = _dict(vision, "model.vision")
        spec = _dict(vision.get("spec"), "model.vision.spec")
        if vision.get("kind") == "vit":
            params += _check_vit(spec, "model.vision.spec")
        elif vision.get("kind") == "vgg":
            params += _check_vgg(spec, "model.vision.spec")
        else:
            raise _Bad(f"model.vision.kind must be \"vit\" or \"vgg\", got {_shown(vision.get('kind'))}")
        if spec["out_dim"] != out_dim:
            raise _Bad(f"model.vision.spec.out_dim {spec['out_dim']} is not model.out_dim {out_dim}")
        if spec["image_size"] != size:
            raise _Bad(f"image_size {size} is not model.vision.spec.image_size {spec['image_size']}")
    if text is not None:
        text = _dict(text, "model.text")
        tokens = _int(config, "max_tokens", "max_tokens", 1, MAX_TOKENS) if "max_tokens" in config else 64
        if text.get("kind") == "bert":
            bert = _dict(text.get("config"), "model.text.config")
            params += _check_bert(bert, "model.text.config", out_dim)
            if bert["max_position_embeddings"] < tokens:
                raise _Bad(f"max_tokens {tokens} is more than model.text.config.max_position_embeddings "
                           f"{bert['max_position_embeddings']}")
        elif text.get("kind") == "rnn":
            params += _check_rnn(_dict(text.get("spec"), "model.text.spec"), "model.text.spec", out_dim)
        else:
            raise _Bad(f"model.text.kind must be \"bert\" or \"rnn\", got {_shown(text.get('kind'))}")
    return params


#: Bytes per parameter of each precision a run's weights may be stored in.
WEIGHT_BYTES = {"fp32": 4, "bf16": 2, "fp16": 2}


def check_run_config(config: object, file: Path, weights: Path | None = None) -> None:
    """Check every setting of a run's config.json that building the model reads: types, bounds and agreement,
    and (given ``weights``) that the weights file is large enough for the model described.

    Raises:
        ModelError: one line naming the first bad field.
    """
    try:
        if not isinstance(config, dict):
            raise _Bad(f"it must hold a JSON object, not {type(config).__name__}")
        params = _check(config)
        # An exported run (bilipop export --dtype bf16|fp16) stores 2 bytes per parameter.
        dtype = config.get("weights_dtype", "fp32")
        if dtype not in WEIGHT_BYTES:
            raise _Bad(f"weights_dtype must be one of {', '.join(WEIGHT_BYTES)}, got {_shown(dtype)}")
        if weights is not None and weights.is_file() and params * WEIGHT_BYTES[dtype] > weights.stat().st_size:
            raise _Bad(f"it describes a model of at least {params:,} parameters, more than {weights.name} "
                       f"({weights.stat().st_size:,} bytes) can hold")
    except _Bad as bad:
        raise ModelError(f"{file} does not describe a model bilipop can build: {bad}; the run folder is damaged or "
                         "was changed, train it again") from None


def refuse_code(folder: Path, what: str) -> None:
    """Refuse a model or tokenizer folder whose files carry an ``auto_map`` (transformers would import Python code
    named there, or ask on stdout whether to).

    Raises:
        ModelError: one line naming the file.
    """
    for name in CODE_MAP_FILES:
        file = Path(folder) / name
        if not file.is_file():
            continue
        try:
            if file.stat().st_size > MAX_CONFIG_BYTES:
                raise ModelError(f"{file} is larger than {MAX_CONFIG_BYTES:,} bytes; {what} is damaged")
            data = json.loads(file.read_text(encoding="utf-8"))
        except (OSError, ValueError, RecursionError) as exc:
            raise ModelError(f"cannot read {file} ({type(exc).__name__}); {what} is damaged") from None
        if isinstance(data, dict) and "auto_map" in data:
            raise ModelError(f"{file} has an auto_map that names Python code to run; bilipop never runs code from "
                             f"a model folder: remove the auto_map or use another {what}")


def check_tokenizer_files(folder: Path, what: str) -> None:
    """Refuse tokenizer files too large for any real vocabulary (bert-base-chinese's tokenizer.json is 270 kB, the
    largest multilingual ones about 20 MB), before a tampered one is read into memory whole.

    Raises:
        ModelError: one line naming the file.
    """
    for file in Path(folder).iterdir():
        if file.name in TOKENIZER_FILES or file.suffix == ".model":
            try:
                size = file.stat().st_size
            except OSError:
                continue
            if size > MAX_TOKENIZER_BYTES:
                raise ModelError(f"{file} is {size:,} bytes, more than any tokenizer needs "
                                 f"({MAX_TOKENIZER_BYTES:,}); {what} is damaged or was changed")


def parse_json(text: str) -> Any:
    """``json.loads`` that refuses NaN and Infinity (not JSON; a tampered file's way to slip past range checks)."""
    def refuse(name: str) -> None:
        raise ValueError(f"{name} is not a JSON number")

    return json.loads(text, parse_constant=refuse)
