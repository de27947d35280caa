"""The study's popularity score: a weighted sum of per-metric normalised counters (docs/reference.md, "Formulas").

Beyond the study, two independent choices, each defaulting to the study's behaviour:

- ``norm``: ``paper`` ``(x - mean) / (max - min)``; ``log`` the same on ``log1p(x)``; ``rank`` the percentile rank
  ``(rank - 1) / (n - 1)`` of each counter (ties share their average rank), in [0, 1] and unmoved by how far an
  outlier lies from the rest.
- ``age``: ``none`` (the study: raw counters at crawl time); ``per-day`` divides each counter by the video's age in
  days before normalising (the SMP-challenge convention); ``residual`` replaces ``log1p(x)`` by its residual
  against a smooth curve of log-age fitted on the table itself (medians of equal-count log-age bins, joined by
  straight lines, flat beyond the outer bins), so that a video is compared with videos of its own age. The age is
  ``fetched_at - pubdate``, at least one hour.

``score_videos`` records these choices and the weights (``ScoreSettings``) in the table's ``attrs`` under
``SETTINGS_KEY``, which ``write_table`` keeps with the file; ``label`` reads them back for its leave-one-out check.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from bilipop.data.schema import COUNTERS, DEFAULT_WEIGHTS, require_columns, row_name
from bilipop.errors import InputError

NORMS = ("paper", "log", "rank")
AGES = ("none", "per-day", "residual")
MIN_AGE_S = 3600  # a video fetched within its first hour counts as one hour old
#: Equal-count log-age bins of the ``residual`` curve: about one per 50 rows, between 1 and 40.
ROWS_PER_AGE_BIN = 50
MAX_AGE_BINS = 40


#: The key of the score's record in a table's metadata (``bilipop.data.metadata``).
SETTINGS_KEY = "bilipop.score"


@dataclass(frozen=True)
class ScoreSettings:
    """How ``score`` made a table's ``s_<counter>`` and ``score`` columns: ``weights`` of ``COUNTERS`` in order,
    ``norm`` and ``age`` (module docstring)."""

    weights: tuple[float, ...]
    norm: str
    age: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "weights", check_weights(self.weights))
        if self.norm not in NORMS:
            raise InputError(f"--norm must be one of {', '.join(NORMS)}, got {self.norm!r}")
        if self.age not in AGES:
            raise InputError(f"--age must be one of {', '.join(AGES)}, got {self.age!r}")

    def to_record(self) -> dict[str, Any]:
        """The JSON object kept with the table; the counters are named so that a weight never meets another
        column."""
        return {"weights": dict(zip(COUNTERS, self.weights, strict=True)), "norm": self.norm, "age": self.age}

    @classmethod
    def from_record(cls, record: object) -> ScoreSettings:
        """Read back ``to_record``'s object.

        Raises:
            InputError: the record is not such an object (a weight, counter, norm or age that ``score`` would
                not have written).
        """
        if not isinstance(record, Mapping) or set(record) != {"weights", "norm", "age"}:
            raise InputError("the score record is not an object of weights, norm and age")
        weights = record["weights"]
        if not isinstance(weights, Mapping) or list(weights) != list(COUNTERS):
            raise InputError(f"the score record's weights do not name the counters {', '.join(COUNTERS)} in order")
        if not all(isinstance(w, (int, float)) and not isinstance(w, bool) for w in weights.values()):
            raise InputError("the score record's weights are not all numbers")
        if not isinstance(record["norm"], str) or not isinstance(record["age"], str):
            raise InputError("the score record's norm and age are not text")
        return cls(tuple(weights.values()), record["norm"], record["age"])


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


def percentile_rank(x: np.ndarray) -> np.ndarray:
    """``(rank - 1) / (n - 1)`` with ties at their average rank: 0 for the smallest, 1 for the largest.

    All zeros for fewer than two rows or a constant metric.
    """
    n = len(x)
    if n < 2 or np.ptp(x) == 0:
        return np.zeros(n, dtype=np.float64)
    ranks = pd.Series(x).rank(method="average").to_numpy(dtype=np.float64)
    return (ranks - 1.0) / (n - 1.0)


def video_ages(df: pd.DataFrame) -> np.ndarray:
    """Each row's age in seconds, ``fetched_at - pubdate``, at least ``MIN_AGE_S``.

    Raises:
        InputError: a column is missing, or a row lacks a usable (whole, positive) ``pubdate`` or ``fetched_at``;
            the message names the first such row.
    """
    require_columns(df.columns, ("pubdate", "fetched_at"), what="the input table",
                    hint="the video's age needs its publication and crawl times (the crawl store has both)")
    times = {}
    for col in ("pubdate", "fetched_at"):
        values = pd.to_numeric(df[col], errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
        bad = ~np.isfinite(values) | (values <= 0) | (values > 2**53)
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            where = row_name(df, row)
            value = df[col].iloc[row]
            raise InputError(f"column {col} has no usable time (unix seconds) at {where} (value "
                             f"{value!r}); drop such rows or score with --age none")
        times[col] = values
    return np.maximum(times["fetched_at"] - times["pubdate"], MIN_AGE_S)


def age_curve(log_age: np.ndarray, y: np.ndarray) -> np.ndarray:
    """The value of a smooth curve of ``y`` against ``log_age`` at every row: medians of equal-count bins, joined
    by straight lines through each bin's median log-age, and flat beyond the outer bins."""
    n = len(y)
    bins = int(min(MAX_AGE_BINS, max(1, n // ROWS_PER_AGE_BIN)))
    order = np.argsort(log_age, kind="stable")
    groups = np.array_split(order, bins)
    centres = np.array([np.median(log_age[g]) for g in groups])
    levels = np.array([np.median(y[g]) for g in groups])
    # Bins whose centres coincide (many rows of one age) are merged, so that np.interp sees increasing x.
    keep_x: list[float] = []
    keep_y: list[float] = []
    for cx, cy in zip(centres, levels, strict=True):
        if keep_x and cx <= keep_x[-1]:
            keep_y[-1] = (keep_y[-1] + cy) / 2
        else:
            keep_x.append(cx)
            keep_y.append(cy)
    return np.interp(log_age, keep_x, keep_y)


def score_videos(
    df: pd.DataFrame, *, weights: Sequence[float] = DEFAULT_WEIGHTS, norm: str = "paper", age: str = "none",
) -> pd.DataFrame:
    """Add ``s_<metric>`` (the normalised counter) and ``score`` to a copy of ``df``.

    With ``norm="log"`` each counter is replaced by ``log1p`` before normalising; ``norm="rank"`` uses percentile
    ranks instead of ``(x - mean) / (max - min)``. ``age`` adjusts each counter for the video's age first (module
    docstring); ``residual`` always works on ``log1p(x)``, so there ``paper`` and ``log`` are the same. With an
    age adjustment the table also gets ``age_days``. The copy's ``attrs[SETTINGS_KEY]`` records the settings
    (``ScoreSettings.to_record``).

    Raises:
        InputError: a counter column is missing, holds a missing, non-numeric or negative value, the weights are
            invalid, ``norm`` or ``age`` is unknown, the table is empty, or (with an age adjustment) a row has no
            usable ``pubdate``/``fetched_at``.
    """
    settings = ScoreSettings(tuple(weights), norm, age)
    weights = settings.weights
    require_columns(df.columns, COUNTERS, what="the input table", hint="score needs the five counters")
    if len(df) == 0:
        raise InputError("the input table has no rows; nothing to score")
    counters = {col: _counter(df, col) for col in COUNTERS}
    ages = video_ages(df) if age != "none" else None
    out = df.copy(deep=False)  # only new columns are added, so the caller's frame is never changed
    total = np.zeros(len(out), dtype=np.float64)
    for col, weight in zip(COUNTERS, weights, strict=True):
        x = counters[col]
        if ages is not None and age == "per-day":
            x = x / (ages / 86400.0)
        if ages is not None and age == "residual":
            x = np.log1p(x)
            x = x - age_curve(np.log(ages), x)
        elif norm == "log":
            x = np.log1p(x)
        s = percentile_rank(x) if norm == "rank" else normalise(x)
        out[f"s_{col}"] = s
        total += weight * s
    out["score"] = total
    if ages is not None:
        out["age_days"] = ages / 86400.0
    out.attrs[SETTINGS_KEY] = settings.to_record()
    return out


def _counter(df: pd.DataFrame, col: str) -> np.ndarray:
    raw = pd.to_numeric(df[col], errors="coerce")
    values = raw.to_numpy(dtype=np.float64, na_value=np.nan)
    bad = ~np.isfinite(values) | (values < 0)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        where = row_name(df, row)
        value = df[col].iloc[row]
        shown = repr(value) if isinstance(value, str) else str(value)
        raise InputError(
            f"column {col} has a missing, non-numeric, infinite or negative value (first at {where}, value "
            f"{shown}); run bilipop filter first, which drops such rows"
        )
    return values
