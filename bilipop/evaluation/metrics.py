"""Classification metrics for the five ordered popularity classes.

Ordinal accuracy (docs/reference.md, "Formulas") is the study's metric and is reported first; the others exist
because an ordered five-class problem with skewed classes is easy to flatter with a single number. Every function takes
plain sequences of class indices (0..num_classes-1) and returns plain Python numbers, so results go straight into
JSON. A value that is mathematically undefined (a Spearman correlation of a constant) is ``None``, never NaN.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

from bilipop.data.schema import NUM_CLASSES
from bilipop.errors import InputError
from bilipop.stats.credit import ordinal_credit


def check_classes(values: Sequence[int] | np.ndarray, what: str, num_classes: int) -> np.ndarray:
    """``values`` as an int64 array of class indices, or InputError naming ``what`` and the problem."""
    array = np.asarray(values)
    if array.ndim != 1:
        raise InputError(f"{what} must be a flat list of class indices")
    if array.size and (not np.issubdtype(array.dtype, np.integer) and not np.all(array == np.round(array))):
        raise InputError(f"{what} must hold whole class indices 0..{num_classes - 1}")
    array = array.astype(np.int64)
    if array.size and (array.min() < 0 or array.max() >= num_classes):
        raise InputError(f"{what} holds a class outside 0..{num_classes - 1}; check the label column")
    return array


def _pair(y_true, y_pred, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    t = check_classes(y_true, "the true labels", num_classes)
    p = check_classes(y_pred, "the predictions", num_classes)
    if t.shape != p.shape:
        raise InputError(f"{len(t)} true labels but {len(p)} predictions; they must pair up")
    if t.size == 0:
        raise InputError("no rows to evaluate; check that the split and the table share bvids")
    return t, p


def ordinal_accuracy(y_true, y_pred, num_classes: int = NUM_CLASSES) -> float:
    """The study's metric: 1 for the exact class, 0.5 for an adjacent one, else 0, averaged."""
    t, p = _pair(y_true, y_pred, num_classes)
    return float(ordinal_credit(np.abs(t - p)).mean())


def accuracy(y_true, y_pred, num_classes: int = NUM_CLASSES) -> float:
    """Share of exact predictions."""
    t, p = _pair(y_true, y_pred, num_classes)
    return float((t == p).mean())


def within1_accuracy(y_true, y_pred, num_classes: int = NUM_CLASSES) -> float:
    """Share of predictions at most one class away from the truth."""
    t, p = _pair(y_true, y_pred, num_classes)
    return float((np.abs(t - p) <= 1).mean())


def mae(y_true, y_pred, num_classes: int = NUM_CLASSES) -> float:
    """Mean absolute error on the class index."""
    t, p = _pair(y_true, y_pred, num_classes)
    return float(np.abs(t - p).mean())


def macro_mae(y_true, y_pred, num_classes: int = NUM_CLASSES) -> float:
    """MAE computed per true class, then averaged over the classes present in ``y_true``.

    Unlike the plain MAE it is not dominated by the largest class, so predicting the majority class scores badly.
    """
    t, p = _pair(y_true, y_pred, num_classes)
    per_class = [np.abs(t[t == k] - p[t == k]).mean() for k in range(num_classes) if (t == k).any()]
    return float(np.mean(per_class))


def confusion_matrix(y_true, y_pred, num_classes: int = NUM_CLASSES) -> list[list[int]]:
    """``m[i][j]`` = number of rows of true class ``i`` predicted as ``j``."""
    t, p = _pair(y_true, y_pred, num_classes)
    m = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(m, (t, p), 1)
    return m.tolist()


def qwk_from_confusion(confusion: Sequence[Sequence[int]]) -> float | None:
    """Quadratic weighted kappa of a confusion matrix (rows true, columns predicted).

    1 is perfect agreement, 0 what chance gives with the same marginals, negative worse than chance. ``None`` when
    undefined: both raters put every row in the same single class.
    """
    o = np.asarray(confusion, dtype=np.float64)
    k = o.shape[0]
    n = o.sum()
    if n == 0:
        return None
    idx = np.arange(k)
    w = (idx[:, None] - idx[None, :]) ** 2 / (k - 1) ** 2
    expected = np.outer(o.sum(axis=1), o.sum(axis=0)) / n
    denominator = (w * expected).sum()
    if denominator == 0:
        return None
    return float(1.0 - (w * o).sum() / denominator)


def qwk(y_true, y_pred, num_classes: int = NUM_CLASSES) -> float | None:
    """Quadratic weighted kappa (see :func:`qwk_from_confusion`)."""
    return qwk_from_confusion(confusion_matrix(y_true, y_pred, num_classes))


def _average_ranks(values: np.ndarray) -> np.ndarray:
    # Tied values share the mean of the ranks they occupy, as in the usual Spearman definition.
    order = np.argsort(values, kind="stable")
    sorted_values = values[order]
    ranks = np.empty(len(values), dtype=np.float64)
    start = 0
    while start < len(values):
        stop = start
        while stop + 1 < len(values) and sorted_values[stop + 1] == sorted_values[start]:
            stop += 1
        ranks[order[start:stop + 1]] = (start + stop) / 2 + 1
        start = stop + 1
    return ranks


def spearman(x: Sequence[float], y: Sequence[float]) -> float | None:
    """Spearman rank correlation with average ranks for ties; ``None`` if either side is constant or empty.

    Raises:
        InputError: the two sides differ in length or hold missing values.
    """
    a = np.asarray(x, dtype=np.float64)
    b = np.asarray(y, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1:
        raise InputError(f"spearman needs two lists of the same length, got {a.shape} and {b.shape}")
    if np.isnan(a).any() or np.isnan(b).any():
        raise InputError("spearman got missing values; drop rows without a score first")
    if a.size < 2:
        return None
    ra, rb = _average_ranks(a), _average_ranks(b)
    ra -= ra.mean()
    rb -= rb.mean()
    denominator = np.sqrt((ra * ra).sum() * (rb * rb).sum())
    if denominator == 0:
        return None
    return float((ra * rb).sum() / denominator)


@dataclass
class ClassScores:
    """Precision, recall, F1 and support of one class."""

    precision: float
    recall: float
    f1: float
    support: int


def per_class(y_true, y_pred, num_classes: int = NUM_CLASSES) -> list[ClassScores]:
    """Precision, recall, F1 and support of each class; a ratio with nothing to divide by is 0."""
    m = np.asarray(confusion_matrix(y_true, y_pred, num_classes))
    scores = []
    for k in range(num_classes):
        hit = m[k, k]
        predicted, support = m[:, k].sum(), m[k, :].sum()
        precision = hit / predicted if predicted else 0.0
        recall = hit / support if support else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        scores.append(ClassScores(float(precision), float(recall), float(f1), int(support)))
    return scores


def all_metrics(y_true, y_pred, *, expected: Sequence[float] | None = None,
                scores: Sequence[float] | None = None, num_classes: int = NUM_CLASSES) -> dict:
    """Every metric of the evaluation report as a JSON-ready dict (``spearman`` is None without scores)."""
    t, p = _pair(y_true, y_pred, num_classes)
    confusion = confusion_matrix(t, p, num_classes)
    rho = None
    if scores is not None:
        if expected is None:
            raise InputError("the Spearman correlation needs the expected class of each row")
        rho = spearman(expected, scores)
    return {
        "ordinal_accuracy": ordinal_accuracy(t, p, num_classes),
        "accuracy": accuracy(t, p, num_classes),
        "within1_accuracy": within1_accuracy(t, p, num_classes),
        "mae": mae(t, p, num_classes),
        "macro_mae": macro_mae(t, p, num_classes),
        "qwk": qwk_from_confusion(confusion),
        "spearman": rho,
        "confusion": confusion,
        "per_class": [asdict(s) for s in per_class(t, p, num_classes)],
        "n": int(t.size),
    }
