"""95 % bootstrap intervals, seeded and stratified by the true class.

Each of the ``RESAMPLES`` resamples draws, within every true class, as many rows as the class has (with
replacement), so it keeps the class counts of the evaluated part, as the stratified split keeps them by design.
An interval is the 2.5th to 97.5th percentile of the statistic over the resamples (the percentile bootstrap). A
consequence worth knowing: the constant predictors' figures depend on the class counts alone, so their intervals
are points; the model's interval is the one that says how far its figure could move on another sample of videos
with the same class mix. Comparisons (model against a floor, one sweep run against another) are paired: both
figures are computed on the same resample, and the interval is that of their difference.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

RESAMPLES = 1000
LEVEL = 0.95
SEED = 0


def resample_indices(labels: Sequence[int] | np.ndarray, *, resamples: int = RESAMPLES, seed: int = SEED
                     ) -> np.ndarray:
    """(resamples, n) row indices; column j of every resample holds a row of the same class as row j."""
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    out = np.empty((resamples, labels.size), dtype=np.int64)
    for k in np.unique(labels):
        members = np.flatnonzero(labels == k)
        out[:, members] = members[rng.integers(0, members.size, size=(resamples, members.size))]
    return out


def interval(values: np.ndarray, level: float = LEVEL) -> list[float] | None:
    """The percentile interval ``[lo, hi]`` of a statistic's resampled values (None if any is undefined)."""
    values = np.asarray(values, dtype=np.float64)
    if values.size == 0 or np.isnan(values).any():
        return None
    tail = (1 - level) / 2 * 100
    lo, hi = np.percentile(values, [tail, 100 - tail])
    return [float(lo), float(hi)]


def defined_interval(values: np.ndarray, level: float = LEVEL) -> list[float]:
    """``interval`` of a statistic that every resample defines (a mean of finite values, a difference of two).

    Raises:
        ValueError: a value is NaN, which such a statistic never is (a bug in its caller).
    """
    ci = interval(values, level)
    if ci is None:
        raise ValueError("a resampled mean is undefined: its per-row values must be finite")
    return ci


def mean_interval(per_row: np.ndarray, labels: np.ndarray, *, resamples: int = RESAMPLES, seed: int = SEED
                  ) -> list[float]:
    """The interval of the mean of ``per_row`` (each row's finite value, e.g. its ordinal credit), stratified by
    ``labels``."""
    idx = resample_indices(labels, resamples=resamples, seed=seed)
    return defined_interval(np.asarray(per_row, dtype=np.float64)[idx].mean(axis=1))


def resampled(statistic: Callable[[np.ndarray], float | None], idx: np.ndarray) -> np.ndarray:
    """``statistic(rows)`` for each resample's rows (NaN where it is undefined)."""
    out = np.empty(idx.shape[0], dtype=np.float64)
    for r, rows in enumerate(idx):
        value = statistic(rows)
        out[r] = np.nan if value is None else value
    return out
