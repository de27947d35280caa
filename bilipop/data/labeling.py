"""Cutting the score into the study's five ordered popularity classes (docs/reference.md, "Formulas").

Beyond the study: ``by_age`` cuts five equal classes within each of N equal-count age buckets, and every labelling
checks how much a single video moves the others' labels (``leave_one_out_outlier``: leave-one-out on the largest
values), scoring again as ``score`` recorded it did (``ScoreSettings``, docs/score-and-label.md).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from bilipop.data.schema import COUNTERS, DEFAULT_THRESHOLDS, LABEL_NAMES, NUM_CLASSES, require_columns, row_name
from bilipop.data.scoring import SETTINGS_KEY, ScoreSettings, video_ages
from bilipop.errors import InputError

log = logging.getLogger(__name__)

SMALL_CLASS_SHARE = 0.05
#: ``label`` warns when leaving out one video changes the class of more than this share of the other videos.
OUTLIER_SHARE = 0.05


@dataclass
class LabelReport:
    """Class sizes and the cuts that produced them; ``warnings`` lists empty or small (< 5%) classes, a video
    whose presence alone moves more than ``OUTLIER_SHARE`` of the labels, and why the outlier check was skipped.

    With ``by_age`` every age bucket has its own cuts, and ``thresholds`` holds NaN.
    """

    thresholds: tuple[float, ...]
    counts: list[int]
    shares: list[float]
    quantiles: bool = False
    by_age: int | None = None
    warnings: list[str] = field(default_factory=list)
    #: (bvid or row, share of the other rows' labels it moves) for the most influential video the leave-one-out
    #: check found; None when it did not run.
    outlier: tuple[str, float] | None = None


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


def quantile_labels(values: np.ndarray) -> np.ndarray:
    """Five classes of sizes that differ by at most one, by rank of ``values`` (ties in row order)."""
    n = len(values)
    order = np.argsort(values, kind="stable")
    labels = np.empty(n, dtype=np.int64)
    labels[order] = (np.arange(n) * NUM_CLASSES) // max(n, 1)
    return labels


def age_buckets(ages: np.ndarray, buckets: int) -> np.ndarray:
    """Bucket index 0..buckets-1 of every row: equal-count buckets of age (youngest first, ties in row order)."""
    order = np.argsort(ages, kind="stable")
    out = np.empty(len(ages), dtype=np.int64)
    for b, rows in enumerate(np.array_split(order, buckets)):
        out[rows] = b
    return out


def _cut(values: np.ndarray, cuts: tuple[float, ...], quantiles: bool, buckets: np.ndarray | None) -> np.ndarray:
    if not quantiles:
        return _count_cuts(values, cuts)
    if buckets is None:
        return quantile_labels(values)
    labels = np.empty(len(values), dtype=np.int64)
    for b in np.unique(buckets):
        rows = np.flatnonzero(buckets == b)
        labels[rows] = quantile_labels(values[rows])
    return labels


def label_videos(
    df: pd.DataFrame, *, thresholds: Sequence[float] = DEFAULT_THRESHOLDS, quantiles: bool = False,
    by_age: int | None = None, settings: ScoreSettings | None = None,
) -> tuple[pd.DataFrame, LabelReport]:
    """Add ``label`` (0..4) to a copy of ``df`` and report the class sizes.

    ``label`` is the number of thresholds ``t`` with ``score >= t``. With ``quantiles`` the rows are ranked by
    score (ties in row order) and cut into five classes whose sizes differ by at most one; the reported
    thresholds are then the lowest score of classes 1..4. ``by_age=N`` (with ``quantiles``) does that within each
    of N equal-count buckets of the video's age (``age_days`` when the table has it, else ``fetched_at -
    pubdate``), so that every age gets all five classes.

    The leave-one-out outlier check (``leave_one_out_outlier``) scores again with ``settings``, by default the
    record ``score_videos`` left in ``df.attrs`` (``read_table`` brings it back from the file). A table without one
    (made by hand, or a CSV without its ``.meta.json``) is labelled all the same, and a warning says that the check
    was skipped; so it is when the record is invalid or the ``s_`` columns are not as it says.

    Raises:
        InputError: no ``score`` column, a missing score, an empty table, invalid thresholds, ``by_age`` without
            ``quantiles``, fewer than five rows per age bucket, or rows without a usable age.
    """
    require_columns(df.columns, ["score"], what="the input table", hint="run bilipop score first")
    if len(df) == 0:
        raise InputError("the input table has no rows; nothing to label")
    score = pd.to_numeric(df["score"], errors="coerce")
    if score.isna().any() or not np.isfinite(score.to_numpy(dtype=np.float64)).all():
        raise InputError("column score has missing, infinite or non-numeric values; run bilipop score again")
    values = score.to_numpy(dtype=np.float64)
    buckets = None
    if by_age is not None:
        buckets = _check_by_age(df, by_age, quantiles)
    cuts = () if quantiles else check_thresholds(thresholds)
    labels = _cut(values, cuts, quantiles, buckets)
    if quantiles:
        cuts = tuple(
            float(values[labels == k].min()) if buckets is None and (labels == k).any() else float("nan")
            for k in range(1, NUM_CLASSES)
        )
    out = df.copy(deep=False)  # only new columns are added, so the caller's frame is never changed
    out["label"] = labels
    counts = np.bincount(labels, minlength=NUM_CLASSES).tolist()
    shares = [c / len(labels) for c in counts]
    report = LabelReport(thresholds=cuts, counts=counts, shares=shares, quantiles=quantiles, by_age=by_age)
    for k, (count, share) in enumerate(zip(counts, shares, strict=True)):
        if count == 0:
            report.warnings.append(f"class {k} ({LABEL_NAMES[k]}) is empty")
        elif share < SMALL_CLASS_SHARE:
            report.warnings.append(f"class {k} ({LABEL_NAMES[k]}) holds only {share:.1%} of the rows")
    try:
        report.outlier = leave_one_out_outlier(df, values, labels, cuts if not quantiles else (), quantiles, buckets,
                                               settings or recorded_settings(df))
    except CheckSkipped as exc:
        report.warnings.append(f"{exc}: the leave-one-out outlier check was skipped; run bilipop score on the table "
                               "to have it checked")
    if report.outlier is not None and report.outlier[1] > OUTLIER_SHARE:
        who, share = report.outlier
        report.warnings.append(
            f"one video decides {share:.1%} of the labels: leaving out {who} changes the class of that share of "
            f"the other videos (the warning threshold is {OUTLIER_SHARE:.0%}); bilipop score --norm rank (or "
            "--norm log) is not moved by a single outlier")
    return out, report


def recorded_settings(df: pd.DataFrame) -> ScoreSettings:
    """The ``ScoreSettings`` that ``score`` recorded in ``df.attrs``.

    Raises:
        CheckSkipped: there is no record, or it is invalid.
    """
    record = df.attrs.get(SETTINGS_KEY)
    if record is None:
        raise CheckSkipped("the table has no record of how score made it (a table made by hand, or a CSV without "
                           "its .meta.json)")
    try:
        return ScoreSettings.from_record(record)
    except InputError as exc:
        raise CheckSkipped(f"the table's record of how score made it is invalid ({exc})") from None


def _check_by_age(df: pd.DataFrame, by_age: int, quantiles: bool) -> np.ndarray:
    if not quantiles:
        raise InputError("--by-age cuts equal classes within each age bucket: give it together with --quantiles")
    if isinstance(by_age, bool) or not isinstance(by_age, (int, np.integer)) or by_age < 1:
        raise InputError(f"--by-age must be a whole number of age buckets of at least 1, got {by_age!r}")
    if len(df) < by_age * NUM_CLASSES:
        raise InputError(f"--by-age {by_age} needs at least {by_age * NUM_CLASSES} rows ({NUM_CLASSES} per "
                         f"bucket), the table has {len(df)}; use fewer buckets")
    if "age_days" in df.columns:
        ages = pd.to_numeric(df["age_days"], errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
        if not np.isfinite(ages).all():
            row = int(np.flatnonzero(~np.isfinite(ages))[0])
            where = row_name(df, row)
            raise InputError(f"column age_days has no usable age at {where}; run bilipop score again")
    else:
        ages = video_ages(df)
    return age_buckets(ages, int(by_age))


class CheckSkipped(Exception):
    """Why the leave-one-out outlier check cannot run on a table; ``label_videos`` turns it into a warning."""


def score_terms(df: pd.DataFrame, score: np.ndarray, settings: ScoreSettings) -> list[tuple[float, np.ndarray]]:
    """``(weight, s_<counter> column)`` for each counter of positive weight, checked to be what ``score`` wrote
    with ``settings`` over exactly these rows: each column normalised over them (mean 0 and span 1 or all zeros;
    for ``rank`` mean 1/2 within [0, 1]) and ``score`` their weighted sum.

    Raises:
        CheckSkipped: a column is missing or not as ``score`` wrote it (the table was edited, or rows were added
            or removed, after scoring).
    """
    terms = []
    for counter, weight in zip(COUNTERS, settings.weights, strict=True):
        if weight == 0:
            continue
        name = f"s_{counter}"
        if name not in df.columns:
            raise CheckSkipped(f"the table lacks {name}, which score wrote")
        c = pd.to_numeric(df[name], errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
        if not np.isfinite(c).all():
            raise CheckSkipped(f"column {name} has missing or non-numeric values")
        if not c.any():  # a constant counter: normalised to zeros, with or without any one row
            continue
        if settings.norm == "rank":
            normalised = abs(c.mean() - 0.5) < 1e-9 and c.min() >= 0 and c.max() <= 1  # ties may lift the minimum
        else:
            normalised = abs(c.mean()) < 1e-9 and abs(np.ptp(c) - 1) < 1e-9
        if not normalised:
            raise CheckSkipped(f"column {name} is not normalised over this table's rows (were rows added or "
                               "removed after score?)")
        terms.append((weight, c))
    fitted = np.zeros(len(score))  # the weighted sum of the columns, which must be the score
    for weight, c in terms:
        fitted += weight * c
    if np.abs(fitted - score).max() > 1e-7 * (1.0 + np.abs(score).max()):
        raise CheckSkipped("score is not the weighted sum of the s_ columns with the weights score recorded")
    return terms


def leave_one_out_outlier(df: pd.DataFrame, score: np.ndarray, labels: np.ndarray, cuts: tuple[float, ...],
                          quantiles: bool, buckets: np.ndarray | None,
                          settings: ScoreSettings) -> tuple[str, float] | None:
    """The video whose absence changes the most labels of the others, and the share of them it changes: a check
    that no single outlier decides the labels. None for fewer than four rows.

    The rows holding the largest score and the largest value of each weighted ``s_<counter>`` column are left out
    in turn; the others are normalised again as ``settings.norm`` says (``(s - mean) / (max - min)`` for paper and
    log, which equals normalising the counters again; percentile ranks for rank), scored with ``settings.weights``
    and labelled with the same cuts (or quantiles of the same rows and age buckets). With ``age="residual"`` the
    age curve stays the one fitted on all rows (one row of the 50 or more in each of its bins hardly moves it).
    Works a column at a time in O(n) per left-out row, so that a million rows cost a few vectors of memory.

    Raises:
        CheckSkipped: the ``s_`` columns are not as ``score`` wrote them (``score_terms``).
    """
    n = len(score)
    if n < 4:
        return None
    terms = score_terms(df, score, settings)
    rank = settings.norm == "rank"
    candidates = {int(np.argmax(score))} | {int(np.argmax(c)) for _, c in terms}
    stats = [_Extremes(c) for _, c in terms]
    best: tuple[str, float] | None = None
    new_score, term = np.empty(n), np.empty(n)  # reused buffers
    above, counted = np.empty(n, dtype=bool), np.empty(n, dtype=np.int64)
    for drop in sorted(candidates):
        new_score.fill(0.0)
        offset = 0.0
        for (w, c), extremes in zip(terms, stats, strict=True):
            if rank:
                _rank_without(c, drop, term)
                term *= w
            else:  # w (c - mean) / span as one scaling of c; the means' part is subtracted once, below
                span = extremes.span_without(drop)
                if span == 0:
                    continue
                scale = w / span
                np.multiply(c, scale, out=term)
                offset += scale * (extremes.total - float(c[drop])) / (n - 1)
            new_score += term
        new_score -= offset
        if quantiles:
            keep = np.ones(n, dtype=bool)
            keep[drop] = False
            sub = None if buckets is None else buckets[keep]
            changed = int(np.count_nonzero(_cut(score[keep], cuts, quantiles, sub)
                                           != _cut(new_score[keep], cuts, quantiles, sub)))
        else:  # the cuts stay: compare in place, the left-out row counting as unchanged
            after = _count_cuts(new_score, cuts, above=above, out=counted)
            after[drop] = labels[drop]
            changed = int(np.count_nonzero(after != labels))
        share = changed / (n - 1)
        if best is None or share > best[1]:
            best = (row_name(df, drop), share)
    return best


def _count_cuts(values: np.ndarray, cuts: tuple[float, ...], *, above: np.ndarray | None = None,
                out: np.ndarray | None = None) -> np.ndarray:
    """Labels for fixed cuts (ascending) and finite values: the number of cuts at or below each value, which is what
    ``searchsorted(cuts, values, side="right")`` gives, in half its time. ``above`` (bool) and ``out`` (int64) are
    reusable buffers of ``len(values)``."""
    above = np.empty(len(values), dtype=bool) if above is None else above
    out = np.empty(len(values), dtype=np.int64) if out is None else out
    out.fill(0)
    for cut in cuts:
        np.greater_equal(values, cut, out=above)
        out += above
    return out


class _Extremes:
    """A column's sum, max and min, so that its mean, max and min without any one row cost no copy of it."""

    def __init__(self, c: np.ndarray) -> None:
        self.c = c
        self.total, self.max, self.min = float(c.sum()), float(c.max()), float(c.min())

    def span_without(self, drop: int) -> float:
        value, c = float(self.c[drop]), self.c
        if value not in (self.max, self.min):
            return self.max - self.min
        parts = [part for part in (c[:drop], c[drop + 1:]) if len(part)]  # views: no copy
        return max(float(p.max()) for p in parts) - min(float(p.min()) for p in parts)


def _rank_without(c: np.ndarray, drop: int, out: np.ndarray) -> np.ndarray:
    """Percentile-rank column ``c`` ranked again over every row but ``drop`` (whose own entry is meaningless), into
    ``out``: (rank - 1) of each row falls by one for rows above the left-out one, by a half for its ties."""
    n = len(c)
    np.multiply(c, n - 1, out=out)
    out -= c > c[drop]
    out -= 0.5 * (c == c[drop])
    out[drop] = 0.0
    out /= n - 2
    return out
