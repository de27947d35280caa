"""Calibration: does a predicted confidence of 0.7 come true 70 % of the time?

The expected calibration error (ECE) bins the rows by the probability of their predicted class (the top-label
confidence) into ``BINS`` equal-width bins and averages ``|accuracy - mean confidence|`` over the bins, weighted by
their share of the rows: 0 for a perfectly calibrated model, up to 1. The reliability diagram draws the same bins.
"""

from __future__ import annotations

import numpy as np

BINS = 10


def _bins(confidence: np.ndarray, bins: int) -> np.ndarray:
    return np.minimum((confidence * bins).astype(np.int64), bins - 1)


def reliability(probabilities: np.ndarray, truth: np.ndarray, bins: int = BINS) -> list[dict]:
    """One entry per bin: its range, the rows in it, their mean confidence and their accuracy (None if empty)."""
    probs = np.asarray(probabilities, dtype=np.float64)
    confidence, correct = probs.max(axis=1), (probs.argmax(axis=1) == np.asarray(truth)).astype(np.float64)
    which = _bins(confidence, bins)
    out = []
    for b in range(bins):
        inside = which == b
        n = int(inside.sum())
        out.append({"lo": b / bins, "hi": (b + 1) / bins, "n": n,
                    "confidence": float(confidence[inside].mean()) if n else None,
                    "accuracy": float(correct[inside].mean()) if n else None})
    return out


def expected_calibration_error(probabilities: np.ndarray, truth: np.ndarray, bins: int = BINS) -> float:
    """The ECE of (N, K) class probabilities against the true classes (see the module docstring)."""
    table = reliability(probabilities, truth, bins)
    total = sum(b["n"] for b in table)
    return float(sum(b["n"] * abs(b["accuracy"] - b["confidence"]) for b in table if b["n"]) / max(total, 1))


def ece_resampled(probabilities: np.ndarray, truth: np.ndarray, idx: np.ndarray, bins: int = BINS) -> np.ndarray:
    """The ECE on each resample (rows ``idx[r]``), vectorised: (R,)."""
    confidence = probabilities.max(axis=1)
    correct = (probabilities.argmax(axis=1) == truth).astype(np.float64)
    r, n = idx.shape
    codes = (_bins(confidence, bins)[idx] + np.arange(r)[:, None] * bins).ravel()
    conf_sum = np.bincount(codes, weights=confidence[idx].ravel(), minlength=r * bins).reshape(r, bins)
    hit_sum = np.bincount(codes, weights=correct[idx].ravel(), minlength=r * bins).reshape(r, bins)
    return np.abs(hit_sum - conf_sum).sum(axis=1) / n
