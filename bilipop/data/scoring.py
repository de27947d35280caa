"""The study's popularity score: a weighted sum of per-metric normalised counters (SPEC section 4)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from bilipop.data.schema import COUNTERS, DEFAULT_WEIGHTS, require_columns
from bilipop.errors import InputError

NORMS = ("paper", "log")


def check_weights(weights: Sequence[float]) -> tuple[float, ...]:
    """The five weights as floats; InputError unless they are five non-negative numbers, not all zero."""
    weights = tuple(float(w) for w in weights)
    if len(weights) != len(COUNTERS):
        raise InputError(
            f"--weights needs {len(COUNTERS)} numbers ({', '.join(COUNTERS)}), got {len(weights)}"
        )
    if any(not np.isfinite(w) or w < 0 for w in weights):
        raise InputError(f"--weights must be non-negative numbers, got {','.join(map(str, weights))}")
    if not any(weights):
        raise InputError("--weights are all zero; give at least one positive weight, e.g. 0.75,0.1,0.1,0.05,0")
    return weights


def normalise(x: np.ndarray) -> np.ndarray:
    """``(x - mean) / (max - min)``; all zeros when max == min (a constant metric carries no information)."""
    span = x.max() - x.min() if len(x) else 0.0
    if span == 0:
        return np.zeros_like(x, dtype=np.float64)
    return (x - x.mean()) / span


def score_videos(
    df: pd.DataFrame, *, weights: Sequence[float] = DEFAULT_WEIGHTS, norm: str = "paper"
) -> pd.DataFrame:
    """Add ``s_<metric>`` (the normalised counter) and ``score`` to a copy of ``df``.

    With ``norm="log"`` each counter is replaced by ``log1p`` before normalising.

    Raises:
        InputError: a counter column is missing, holds a missing, non-numeric or negative value, the weights are
            invalid, ``norm`` is unknown, or the table is empty.
    """
    weights = check_weights(weights)
    if norm not in NORMS:
        raise InputError(f"--norm must be one of {', '.join(NORMS)}, got {norm!r}")
    require_columns(df.columns, COUNTERS, what="the input table", hint="score needs the five counters")
    if len(df) == 0:
        raise InputError("the input table has no rows; nothing to score")
    out = df.copy(deep=False)  # only new columns are added, so the caller's frame is never changed
    total = np.zeros(len(out), dtype=np.float64)
    for col, weight in zip(COUNTERS, weights, strict=True):
        raw = pd.to_numeric(out[col], errors="coerce")
        bad = ~np.isfinite(raw.to_numpy(dtype=np.float64, na_value=np.nan)) | (raw < 0).to_numpy()
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            where = f"bvid {out['bvid'].iloc[row]}" if "bvid" in out.columns else f"table row {row + 1}"
            value = out[col].iloc[row]
            shown = repr(value) if isinstance(value, str) else str(value)
            raise InputError(
                f"column {col} has a missing, non-numeric, infinite or negative value (first at {where}, value "
                f"{shown}); run bilipop filter first, which drops such rows"
            )
        x = raw.to_numpy(dtype=np.float64)
        if norm == "log":
            x = np.log1p(x)
        s = normalise(x)
        out[f"s_{col}"] = s
        total += weight * s
    out["score"] = total
    return out
