"""Dropout whose masks are a function of (seed, epoch, pipeline layer, dropout call, dataset row), not of the
global random generator.

torch's dropout draws from one generator shared by every thread, so under GPipe the masks a row receives depend on
how the batch was cut into micro-batches, how the layers were cut into partitions and in which order the worker
threads ran. Here every ``F.dropout`` called inside a fusion stage (``nn.Dropout`` modules and the functional
dropout of BERT's attention alike) is replaced, through a ``TorchFunctionMode`` entered by the stage, with a mask
hashed from integers: the same on 1, 2 or 3 stages, with any chunks, in one process or several, and after a
resume. Integer arithmetic is exact, so the masks are also the same on every device.
"""

from __future__ import annotations

import torch
from torch.overrides import TorchFunctionMode

_M32 = 0xFFFFFFFF
_MULT = 0x45D9F3B  # below 2**31: a 32-bit value times it stays below 2**63, so int64 never overflows


def mix(*values: int) -> int:
    """A 32-bit hash of a few integers (Python ints), used for the per-call base of a mask."""
    h = 0x9E3779B9
    for v in values:
        h = _hash_int((h ^ (int(v) & _M32)) & _M32)
    return h


def _hash_int(x: int) -> int:
    x = (((x >> 16) ^ x) * _MULT) & _M32
    x = (((x >> 16) ^ x) * _MULT) & _M32
    return (x >> 16) ^ x


def _hash_(x: torch.Tensor) -> torch.Tensor:
    """The same 32-bit hash, in place on an int64 tensor holding values in [0, 2**32)."""
    for _ in range(2):
        x ^= x >> 16
        x *= _MULT
        x &= _M32
    x ^= x >> 16
    return x


_ELEMENTS: dict[tuple[int, str], torch.Tensor] = {}
BLOCK_ELEMENTS = 1 << 25


def _element_hashes(n: int, device: torch.device) -> torch.Tensor:
    """hash(e) for e in 0..n-1, kept per (n, device): the same for every call, row and seed."""
    key = (n, str(device))
    if key not in _ELEMENTS:
        if len(_ELEMENTS) > 64:
            _ELEMENTS.clear()
        _ELEMENTS[key] = _hash_(torch.arange(n, device=device, dtype=torch.int64) * 0x27D4EB2 & _M32)
    return _ELEMENTS[key]


def keep_mask(shape: torch.Size, rows: torch.Tensor, base: int, p: float) -> torch.Tensor:
    """Bool mask of ``shape`` (batch first): element e of row i is kept unless hash(base, rows[i], e) < p·2**32."""
    per_row = 1
    for d in shape[1:]:
        per_row *= int(d)
    row = (rows.to(torch.int64) * 0x2545F49 + base) & _M32  # (B,)
    row = _hash_(row)
    elem = _element_hashes(per_row, rows.device)
    threshold = int(round(p * 2 ** 32))
    keep = torch.empty((len(row), per_row), dtype=torch.bool, device=rows.device)
    # int64 hashing needs ~16 bytes per element: a few rows at a time keeps that under ~0.5 GiB even for the
    # attention probabilities of a large batch (B x heads x T x T)
    step = max(1, BLOCK_ELEMENTS // max(per_row, 1))
    for start in range(0, len(row), step):
        h = row[start:start + step, None] ^ elem[None, :]  # (b, E)
        keep[start:start + step] = _hash_(h) >= threshold
    return keep.reshape(shape)


class KeyedDropout(TorchFunctionMode):
    """Within this context, ``F.dropout(x, p, training=True)`` uses :func:`keep_mask` with ``rows`` (one dataset
    row index per row of ``x``) and a base made of ``seed``, ``layer`` and the call's number in the context."""

    def __init__(self, seed: int, layer: int, rows: torch.Tensor) -> None:
        super().__init__()
        self.seed, self.layer = int(seed), int(layer)
        self.rows = rows.detach().round().to(torch.int64)
        self.calls = 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is not torch.nn.functional.dropout:
            return func(*args, **kwargs)
        names = ("input", "p", "training", "inplace")
        given = {**dict(zip(names, args, strict=False)), **kwargs}
        x, p = given["input"], float(given.get("p", 0.5))
        if not given.get("training", True) or p == 0.0:
            return x
        self.calls += 1
        if x.shape[0] != self.rows.shape[0]:
            raise RuntimeError(f"dropout on a tensor of shape {tuple(x.shape)} whose first dimension is not the "
                               f"batch ({self.rows.shape[0]} rows): keyed dropout needs the batch first")
        if p >= 1.0:
            return x * 0.0
        keep = keep_mask(x.shape, self.rows.to(x.device), mix(self.seed, self.layer, self.calls), p)
        return x * keep.to(x.dtype) * (1.0 / (1.0 - p))
