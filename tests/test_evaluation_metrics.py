"""bilipop.evaluation.metrics against examples computed by hand (the arithmetic is in the comments) and against
scikit-learn and SciPy."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

from bilipop.errors import InputError
from bilipop.evaluation import metrics as m


def test_ordinal_accuracy_gives_half_credit_to_adjacent_classes_only():
    # credits 1, 0.5, 0, 1, 0 -> 2.5 / 5
    assert m.ordinal_accuracy([0, 1, 2, 3, 4], [0, 2, 4, 3, 0]) == 0.5
    assert m.ordinal_accuracy([0, 4], [1, 3]) == 0.5
    assert m.ordinal_accuracy([0, 4], [2, 2]) == 0.0
    assert m.ordinal_accuracy([3], [3]) == 1.0


def test_ordinal_accuracy_rejects_bad_labels():
    with pytest.raises(InputError, match="outside 0..4"):
        m.ordinal_accuracy([0, 5], [0, 1])
    with pytest.raises(InputError, match="pair up"):
        m.ordinal_accuracy([0, 1], [0])
    with pytest.raises(InputError, match="no rows"):
        m.ordinal_accuracy([], [])
    with pytest.raises(InputError, match="whole class"):
        m.ordinal_accuracy([0.5], [0])


def test_accuracy_within1_and_mae():
    t, p = [0, 1, 2, 3, 4], [0, 2, 4, 3, 0]
    assert m.accuracy(t, p) == 0.4
    assert m.within1_accuracy(t, p) == 0.6
    assert m.mae(t, p) == pytest.approx((0 + 1 + 2 + 0 + 4) / 5)


def test_macro_mae_weighs_each_present_class_equally():
    # plain MAE 1/5; per class: class 0 -> 0, class 1 -> 1; classes 2..4 absent and skipped
    t, p = [0, 0, 0, 0, 1], [0, 0, 0, 0, 0]
    assert m.mae(t, p) == pytest.approx(0.2)
    assert m.macro_mae(t, p) == pytest.approx(0.5)


def test_qwk_on_known_matrices():
    assert m.qwk([0, 1, 2, 3, 4], [0, 1, 2, 3, 4]) == pytest.approx(1.0)
    # predictions independent of the truth: observed = expected -> 0
    assert m.qwk([0, 0, 4, 4], [0, 4, 0, 4]) == pytest.approx(0.0)
    # perfectly reversed extremes: observed 2, expected 1 -> -1
    assert m.qwk([0, 4], [4, 0]) == pytest.approx(-1.0)
    # observed 3/48, expected 15/48 (weights (i-j)^2/16) -> 1 - 3/15
    assert m.qwk([0, 1, 2], [0, 2, 2]) == pytest.approx(0.8)


def test_qwk_undefined_when_both_sides_are_one_class():
    assert m.qwk([2, 2, 2], [2, 2, 2]) is None
    assert m.qwk_from_confusion(np.zeros((5, 5))) is None


def test_confusion_rows_are_true_classes():
    c = m.confusion_matrix([0, 0, 1, 4], [0, 1, 1, 2])
    assert c[0] == [1, 1, 0, 0, 0]
    assert c[1] == [0, 1, 0, 0, 0]
    assert c[4] == [0, 0, 1, 0, 0]
    assert sum(map(sum, c)) == 4


def test_spearman_with_ties_uses_average_ranks():
    # ranks x = 1, 2.5, 2.5, 4; y = 1..4 -> 4.5 / sqrt(4.5 * 5) = 3 / sqrt(10)
    assert m.spearman([1, 2, 2, 3], [1, 2, 3, 4]) == pytest.approx(3 / math.sqrt(10))
    assert m.spearman([1, 2, 3], [30, 20, 10]) == pytest.approx(-1.0)
    # monotone but not linear: still 1
    assert m.spearman([1, 2, 3, 4], [1, 10, 100, 1000]) == pytest.approx(1.0)


def test_spearman_undefined_or_bad():
    assert m.spearman([1, 1, 1], [1, 2, 3]) is None
    assert m.spearman([1], [2]) is None
    with pytest.raises(InputError, match="same length"):
        m.spearman([1, 2], [1])
    with pytest.raises(InputError, match="missing"):
        m.spearman([1, float("nan")], [1, 2])


def test_per_class_precision_recall_f1_support():
    scores = m.per_class([0, 0, 1, 1], [0, 1, 1, 1])
    assert (scores[0].precision, scores[0].recall, scores[0].support) == (1.0, 0.5, 2)
    assert scores[0].f1 == pytest.approx(2 / 3)
    assert scores[1].precision == pytest.approx(2 / 3)
    assert (scores[1].recall, scores[1].support) == (1.0, 2)
    assert scores[1].f1 == pytest.approx(0.8)
    assert (scores[2].precision, scores[2].recall, scores[2].f1, scores[2].support) == (0.0, 0.0, 0.0, 0)


def test_all_metrics_keys_and_spearman_only_with_scores():
    t, p = [0, 1, 2, 3, 4, 4], [0, 1, 1, 3, 4, 3]
    result = m.all_metrics(t, p)
    assert list(result)[0] == "ordinal_accuracy"
    assert result["spearman"] is None and result["n"] == 6
    assert result["ordinal_accuracy"] == pytest.approx((1 + 1 + 0.5 + 1 + 1 + 0.5) / 6)
    with_scores = m.all_metrics(t, p, expected=[0.1, 1, 1.2, 3, 3.9, 3.5], scores=[1, 2, 3, 4, 6, 5])
    assert with_scores["spearman"] == pytest.approx(1.0)


# -- scikit-learn and SciPy as oracles ---------------------------------------------------------------------------
def _labels(seed: int, n: int = 300, missing: tuple[int, ...] = ()):
    """Truth over the classes not in ``missing`` and predictions that mostly land near it."""
    rng = np.random.default_rng(seed)
    truth = rng.choice([k for k in range(5) if k not in missing], n)
    return truth, np.clip(truth + rng.integers(-2, 3, n), 0, 4)


@pytest.mark.parametrize(("seed", "missing"), [(0, ()), (1, (2,)), (2, (0, 4)), (3, (1, 2, 3))])
def test_metrics_agree_with_scikit_learn(seed, missing):
    from sklearn import metrics as skm

    t, p = _labels(seed, missing=missing)
    classes = list(range(5))
    assert m.accuracy(t, p) == pytest.approx(skm.accuracy_score(t, p))
    assert m.mae(t, p) == pytest.approx(skm.mean_absolute_error(t, p))
    assert m.confusion_matrix(t, p) == skm.confusion_matrix(t, p, labels=classes).tolist()
    # labels=classes: without it scikit-learn would weigh the distance between the classes present by their
    # position among them, not by their class number
    assert m.qwk(t, p) == pytest.approx(skm.cohen_kappa_score(t, p, weights="quadratic", labels=classes))
    # macro MAE is the MAE with each row weighted by 1 / (rows of its class): every present class weighs the same
    weight = 1.0 / np.bincount(t, minlength=5)[t]
    assert m.macro_mae(t, p) == pytest.approx(skm.mean_absolute_error(t, p, sample_weight=weight))
    precision, recall, f1, support = skm.precision_recall_fscore_support(t, p, labels=classes, zero_division=0)
    ours = m.per_class(t, p)
    assert [s.precision for s in ours] == pytest.approx(precision.tolist())
    assert [s.recall for s in ours] == pytest.approx(recall.tolist())
    assert [s.f1 for s in ours] == pytest.approx(f1.tolist())
    assert [s.support for s in ours] == support.tolist()


def test_qwk_is_undefined_where_scikit_learns_is_nan():
    from sklearn.metrics import cohen_kappa_score

    with warnings.catch_warnings():  # scikit-learn warns of the undefined kappa (the warning's class varies)
        warnings.simplefilter("ignore")
        assert math.isnan(cohen_kappa_score([2, 2, 2], [2, 2, 2], weights="quadratic", labels=list(range(5))))
    assert m.qwk([2, 2, 2], [2, 2, 2]) is None


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_spearman_agrees_with_scipy_ties_included(seed):
    from scipy.stats import spearmanr

    rng = np.random.default_rng(seed)
    x = rng.integers(0, 6, 200).astype(float)  # many ties
    y = x + rng.normal(0, 2, 200)
    y[:50] = np.round(y[:50])
    assert m.spearman(x, y) == pytest.approx(spearmanr(x, y).statistic, abs=1e-12)
    assert m.spearman(y, -y) == pytest.approx(spearmanr(y, -y).statistic)
    # constant side: SciPy says NaN, bilipop None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert math.isnan(spearmanr(np.ones(5), np.arange(5)).statistic)
    assert m.spearman(np.ones(5), np.arange(5)) is None
