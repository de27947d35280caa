"""bilipop.evaluation.intervals: each metric with its bootstrap interval, the comparison with the best
constant, the paired difference of two runs, and every resample's figures against scikit-learn and SciPy."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import continuous_predictions, sklearn_ece  # noqa: E402

from bilipop.evaluation.intervals import metric_intervals, paired_difference
from bilipop.evaluation.metrics import all_metrics
from bilipop.stats.bootstrap import resample_indices


def _predictions(n: int, seed: int = 0, right: float = 0.6):
    """Labels in five classes and predictions right with probability ``right``, else one class off."""
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, 5, n)
    off = np.clip(truth + rng.choice([-1, 1], n), 0, 4)
    pred = np.where(rng.random(n) < right, truth, off)
    probs = np.full((n, 5), 0.05)
    probs[np.arange(n), pred] = 0.8
    return truth, pred, probs


def test_intervals_contain_the_estimate_and_shrink_with_n():
    widths = []
    for n in (100, 400, 1600):
        truth, pred, probs = _predictions(n, seed=n)
        point = all_metrics(truth, pred)
        spread = metric_intervals(truth, pred, probs)
        for key in ("ordinal_accuracy", "accuracy", "within1_accuracy", "mae", "macro_mae", "qwk"):
            lo, hi = spread["ci"][key]
            assert lo <= point[key] <= hi, key
            assert lo < hi or key == "within1_accuracy", key  # never more than one class off: always 1
        widths.append(np.diff(spread["ci"]["ordinal_accuracy"])[0])
    assert widths[0] > widths[1] > widths[2]
    assert widths[0] / widths[2] == pytest.approx(4, rel=0.35)  # about 1/sqrt(n)


def test_the_model_beats_the_best_constant_only_when_the_interval_says_so():
    truth, pred, probs = _predictions(500, right=0.9)
    beats = metric_intervals(truth, pred, probs, best_constant=2)["beats_best_constant"]
    assert beats["confident"] and beats["ci"][0] > 0 and beats["ci"][0] <= beats["difference"] <= beats["ci"][1]
    # a model that is the best constant itself, up to a few rows, is not above it with confidence
    near = np.full_like(truth, 2)
    near[:3] = truth[:3]
    beats = metric_intervals(truth, near, probs, best_constant=2)["beats_best_constant"]
    assert not beats["confident"] and beats["ci"][0] <= 0
    floors = metric_intervals(truth, pred, probs, best_constant=2)["floors"]
    lo, hi = floors["best_constant"]["ordinal_accuracy"]
    assert lo == hi  # the class counts fix a constant's score under stratified resampling


def test_paired_difference_of_two_runs():
    truth, pred, _ = _predictions(800)
    credit = (pred == truth) * 1.0 + (np.abs(pred - truth) == 1) * 0.5
    same = paired_difference(credit, credit, truth)
    assert same == {"difference": 0.0, "ci": [0.0, 0.0], "differs": False}
    better = np.minimum(credit + (np.arange(800) % 2) * 0.5, 1.0)
    diff = paired_difference(better, credit, truth)
    assert diff["differs"] and diff["ci"][0] > 0


# -- scikit-learn and SciPy as oracles ---------------------------------------------------------------------------


def test_every_resamples_figures_agree_with_scikit_learn_and_scipy():
    from scipy.stats import spearmanr
    from sklearn import metrics as skm

    truth, pred, probs = continuous_predictions(150, seed=2)
    rng = np.random.default_rng(3)
    expected = probs @ np.arange(5)
    scores = truth + rng.normal(0, 1.5, truth.size)
    resamples, seed = 40, 9
    out = metric_intervals(truth, pred, probs, expected=expected, scores=scores, resamples=resamples, seed=seed)
    per: dict[str, list[float]] = {k: [] for k in ("accuracy", "mae", "macro_mae", "qwk", "spearman", "ece")}
    for rows in resample_indices(truth, resamples=resamples, seed=seed):  # the same resamples, drawn again
        t, p = truth[rows], pred[rows]
        per["accuracy"].append(skm.accuracy_score(t, p))
        per["mae"].append(skm.mean_absolute_error(t, p))
        per["macro_mae"].append(skm.mean_absolute_error(t, p, sample_weight=1.0 / np.bincount(t, minlength=5)[t]))
        per["qwk"].append(skm.cohen_kappa_score(t, p, weights="quadratic", labels=list(range(5))))
        per["spearman"].append(spearmanr(expected[rows], scores[rows]).statistic)
        per["ece"].append(sklearn_ece(probs[rows], t)[0])
    for key, values in per.items():
        assert out["ci"][key] == pytest.approx(np.percentile(values, [2.5, 97.5]).tolist()), key
