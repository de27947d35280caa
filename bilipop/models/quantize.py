"""Dynamic int8 for CPU inference (``--quantize int8``): every Linear layer of a loaded model becomes PyTorch's
dynamically quantized int8 Linear (int8 weights, activations quantized on the fly)."""

from __future__ import annotations

import warnings
from typing import TypeVar, cast

import torch

from bilipop.errors import InputError, ModelError

QUANTIZE = ("int8",)


M = TypeVar("M", bound=torch.nn.Module)


def quantize_int8(model: M) -> M:
    """``model`` with every ``nn.Linear`` replaced by a dynamically quantized int8 one (weights int8 per tensor,
    activations quantized on the fly): for CPU inference only, no gradients through it.

    Raises:
        ModelError: this PyTorch build has no quantized CPU engine.
    """
    if not torch.backends.quantized.supported_engines or torch.backends.quantized.supported_engines == ["none"]:
        raise ModelError("this PyTorch build has no quantized CPU engine; run without --quantize int8")
    with warnings.catch_warnings():
        # torch.ao.quantization warns that it moves to torchao; it is still the one dynamic int8 path of torch.
        warnings.simplefilter("ignore")
        from torch.ao.quantization import quantize_dynamic

        # a deep copy of the model with its Linear layers swapped: still of the model's own class
        return cast(M, quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8, inplace=False))


def check_quantize(quantize: str | None, device: str) -> None:
    """Raises InputError for an unknown --quantize value, or int8 on a device other than the CPU."""
    if quantize is None:
        return
    if quantize not in QUANTIZE:
        raise InputError(f"--quantize must be {' or '.join(QUANTIZE)}, got {quantize!r}")
    if not str(device).startswith("cpu"):
        raise InputError(f"--quantize {quantize} is for CPU inference; drop it or use --device cpu")
