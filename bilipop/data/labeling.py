"""Cutting the score into the study's five ordered popularity classes (SPEC section 4)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from bilipop.data.schema import DEFAULT_THRESHOLDS, LABEL_NAMES, NUM_CLASSES, require_columns
from bilipop.errors import InputError

SMALL_CLASS_SHARE = 0.05


@dataclass
class LabelReport:
    """Class sizes and the cuts that produced them; ``warnings`` lists empty or small (< 5%) classes."""

    thresholds: tuple[float, ...]
    counts: list[int]
    shares: list[float]
    quantiles: bool = False
    warnings: list[str] = field(default_factory=list)


def check_thresholds(thresholds: Sequence[float]) -> tuple[float, ...]:
    """Return four strictly increasing finite thresholds, or raise InputError."""
    thresholds = tuple(float(t) for t in thresholds)
    if len(thresholds) != NUM_CLASSES - 1:
        raise InputError(f"--thresholds needs {NUM_CLASSES - 1} numbers, got {len(thresholds)}")
    if not all(np.isfinite(thresholds)):
        raise InputError("--thresholds must be finite numbers")
    if any(b <= a for a, b in zip(thresholds, thresholds[1:], strict=False)):
        raise InputError(
            f"--thresholds must be strictly increasing, got {','.join(map(str, thresholds))}"
        )
    return thresholds


def label_videos(
    df: pd.DataFrame, *, thresholds: Sequence[float] = DEFAULT_THRESHOLDS, quantiles: bool = False
) -> tuple[pd.DataFrame, LabelReport]:
    """Add ``label`` (0..4) to a copy of ``df`` and report the class sizes.

    ``label`` is the number of thresholds ``t`` with ``score >= t``. With ``quantiles`` the rows are ranked by
    score (ties in row order) and cut into five classes whose sizes differ by at most one; the reported
    thresholds are then the lowest score of classes 1..4.

    Raises:
        InputError: no ``score`` column, a missing score, an empty table or invalid thresholds.
    """
    require_columns(df.columns, ["score"], what="the input table", hint="run bilipop score first")
    if len(df) == 0:
        raise InputError("the input table has no rows; nothing to label")
    score = pd.to_numeric(df["score"], errors="coerce")
    if score.isna().any():
        raise InputError("column score has missing or non-numeric values; run bilipop score again")
    values = score.to_numpy(dtype=np.float64)
    out = df.copy(deep=False)  # only new columns are added, so the caller's frame is never changed
    if quantiles:
        n = len(values)
        order = np.argsort(values, kind="stable")
        labels = np.empty(n, dtype=np.int64)
        labels[order] = (np.arange(n) * NUM_CLASSES) // n
        cuts = tuple(
            float(values[order][np.searchsorted(labels[order], k)]) if (labels == k).any() else float("nan")
            for k in range(1, NUM_CLASSES)
        )
    else:
        cuts = check_thresholds(thresholds)
        labels = np.searchsorted(np.asarray(cuts), values, side="right").astype(np.int64)
    out["label"] = labels
    counts = np.bincount(labels, minlength=NUM_CLASSES).tolist()
    shares = [c / len(labels) for c in counts]
    report = LabelReport(thresholds=cuts, counts=counts, shares=shares, quantiles=quantiles)
    for k, (count, share) in enumerate(zip(counts, shares, strict=True)):
        if count == 0:
            report.warnings.append(f"class {k} ({LABEL_NAMES[k]}) is empty")
        elif share < SMALL_CLASS_SHARE:
            report.warnings.append(f"class {k} ({LABEL_NAMES[k]}) holds only {share:.1%} of the rows")
    return out, report
