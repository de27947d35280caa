"""Bootstrap intervals of every metric of the evaluation report and of the floors, and the paired comparison of
the model with the best constant (see ``bilipop.stats.bootstrap`` for how resamples are drawn)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from bilipop.data.schema import NUM_CLASSES
from bilipop.evaluation.calibration import ece_resampled
from bilipop.stats.bootstrap import RESAMPLES, SEED, defined_interval, interval, resample_indices
from bilipop.stats.credit import ordinal_credit

#: The metrics that get an interval, in the report's order.
SCALAR_METRICS = ("ordinal_accuracy", "accuracy", "within1_accuracy", "mae", "macro_mae", "qwk", "spearman",
                  "ece")
FLOOR_METRICS = ("ordinal_accuracy", "accuracy", "within1_accuracy", "mae")


def _gap_stats(gap: np.ndarray) -> dict[str, np.ndarray]:
    return {"ordinal_accuracy": ordinal_credit(gap).mean(axis=1), "accuracy": (gap == 0).mean(axis=1),
            "within1_accuracy": (gap <= 1).mean(axis=1), "mae": gap.mean(axis=1)}


def _qwk(t: np.ndarray, p: np.ndarray, k: int) -> np.ndarray:
    r = t.shape[0]
    codes = (t * k + p) + (np.arange(r)[:, None] * k * k)
    o = np.bincount(codes.ravel(), minlength=r * k * k).reshape(r, k, k).astype(np.float64)
    n = o.sum(axis=(1, 2))
    idx = np.arange(k)
    w = (idx[:, None] - idx[None, :]) ** 2 / (k - 1) ** 2
    expected = o.sum(axis=2)[:, :, None] * o.sum(axis=1)[:, None, :] / n[:, None, None]
    den = (w * expected).sum(axis=(1, 2))
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, 1.0 - (w * o).sum(axis=(1, 2)) / np.where(den > 0, den, 1.0), np.nan)


def _ranks(a: np.ndarray) -> np.ndarray:
    _, inverse, counts = np.unique(a, return_inverse=True, return_counts=True)
    starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
    return (starts + (counts + 1) / 2.0)[inverse]


def _spearman(x: np.ndarray, y: np.ndarray) -> float:
    rx, ry = _ranks(x), _ranks(y)
    rx -= rx.mean()
    ry -= ry.mean()
    den = np.sqrt((rx * rx).sum() * (ry * ry).sum())
    return float((rx * ry).sum() / den) if den > 0 else np.nan


BLOCK = 100  # resamples computed at a time: bounds the memory at BLOCK x n per array (27,000 videos: ~22 MB)


def metric_intervals(truth: Sequence[int], pred: Sequence[int], probabilities: np.ndarray, *,
                     expected: Sequence[float] | None = None, scores: Sequence[float] | None = None,
                     best_constant: int = 0, majority: int = 0, resamples: int = RESAMPLES, seed: int = SEED,
                     num_classes: int = NUM_CLASSES) -> dict:
    """Intervals for the model's metrics (``ci``), the floors (``floors``: name -> metric -> interval) and
    ``beats_best_constant``: the paired difference of ordinal accuracy with the best constant, its interval and
    whether the interval lies above 0 (the model beats that floor with 95 % confidence)."""
    t0, p0 = np.asarray(truth, dtype=np.int64), np.asarray(pred, dtype=np.int64)
    probs = np.asarray(probabilities, dtype=np.float64)
    all_idx = resample_indices(t0, resamples=resamples, seed=seed)
    classes = [c for c in (np.flatnonzero(t0 == k) for k in range(num_classes)) if c.size]
    ranked: tuple[np.ndarray, np.ndarray] | None = None  # (expected class, score) for Spearman
    if scores is not None and expected is not None:
        ranked = np.asarray(expected, dtype=np.float64), np.asarray(scores, dtype=np.float64)
    # Every guess equally likely: each row's expected credit, hit, within-one and gap, averaged over the guesses.
    gaps = np.abs(t0[:, None] - np.arange(num_classes)[None, :])  # (n, K)
    uniform = {"ordinal_accuracy": ordinal_credit(gaps).mean(axis=1), "accuracy": np.full(t0.size, 1 / num_classes),
               "within1_accuracy": (gaps <= 1).mean(axis=1), "mae": gaps.mean(axis=1)}
    parts: dict[str, list[np.ndarray]] = {}

    def add(name: str, values: np.ndarray) -> None:
        parts.setdefault(name, []).append(values)

    for start in range(0, resamples, BLOCK):
        idx = all_idx[start:start + BLOCK]
        t, p = t0[idx], p0[idx]  # (R, n)
        for key, v in _gap_stats(np.abs(t - p)).items():
            add(key, v)
        add("macro_mae", np.mean([np.abs(t0[c] - p[:, c]).mean(axis=1) for c in classes], axis=0))
        add("qwk", _qwk(t, p, num_classes))
        if ranked is not None:
            e, s = ranked
            add("spearman", np.array([_spearman(e[rows], s[rows]) for rows in idx]))
        add("ece", ece_resampled(probs, t0, idx))
        for name, constant in (("majority_class", majority), ("best_constant", best_constant)):
            for key, v in _gap_stats(np.abs(t - constant)).items():
                add(f"{name}.{key}", v)
        for key, v in uniform.items():
            add(f"uniform_random.{key}", v[idx].mean(axis=1))
    values = {name: np.concatenate(chunks) for name, chunks in parts.items()}
    ci = {key: interval(values[key]) if key in values else None for key in SCALAR_METRICS}
    floors = {name: {key: interval(values[f"{name}.{key}"]) for key in FLOOR_METRICS}
              for name in ("majority_class", "best_constant", "uniform_random")}
    diff = values["ordinal_accuracy"] - values["best_constant.ordinal_accuracy"]
    point = float(ordinal_credit(np.abs(t0 - p0)).mean() - ordinal_credit(np.abs(t0 - best_constant)).mean())
    diff_ci = defined_interval(diff)
    beats = {"difference": point, "ci": diff_ci, "confident": bool(diff_ci[0] > 0),
             "level": 0.95, "resamples": resamples}
    return {"ci": ci, "floors": floors, "beats_best_constant": beats, "credit": ordinal_credit(np.abs(t0 - p0))}


def paired_difference(credit_a: np.ndarray, credit_b: np.ndarray, truth: Sequence[int], *,
                      resamples: int = RESAMPLES, seed: int = SEED) -> dict:
    """Ordinal accuracy of A minus B on the same rows: the difference, its interval, and whether the interval
    excludes 0 (the two differ with 95 % confidence)."""
    a, b = np.asarray(credit_a, dtype=np.float64), np.asarray(credit_b, dtype=np.float64)
    idx = resample_indices(np.asarray(truth), resamples=resamples, seed=seed)
    ci = defined_interval(a[idx].mean(axis=1) - b[idx].mean(axis=1))
    return {"difference": float(a.mean() - b.mean()), "ci": ci, "differs": bool(ci[0] > 0 or ci[1] < 0)}
