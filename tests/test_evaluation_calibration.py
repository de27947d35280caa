"""bilipop.evaluation.calibration: the expected calibration error and the reliability bins, also against
scikit-learn."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import continuous_predictions, sklearn_ece  # noqa: E402

from bilipop.evaluation.calibration import expected_calibration_error, reliability
from bilipop.evaluation.intervals import metric_intervals


def test_ece_of_a_calibrated_predictor_is_near_zero_and_of_an_overconfident_one_is_not():
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(5) * 0.7, size=20000)
    truth = np.array([rng.choice(5, p=p) for p in probs])  # labels drawn from the predicted distributions
    assert expected_calibration_error(probs, truth) < 0.02
    sharp = probs ** 4
    sharp /= sharp.sum(axis=1, keepdims=True)  # the same ranking, overconfident
    assert expected_calibration_error(sharp, truth) > 0.1
    bins = reliability(probs, truth)
    assert len(bins) == 10 and sum(b["n"] for b in bins) == 20000
    for b in bins:
        if b["n"] > 500:
            assert abs(b["accuracy"] - b["confidence"]) < 0.05
    spread = metric_intervals(truth[:2000], probs[:2000].argmax(1), probs[:2000])
    lo, hi = spread["ci"]["ece"]
    assert lo <= expected_calibration_error(probs[:2000], truth[:2000]) <= hi


# -- scikit-learn and SciPy as oracles ---------------------------------------------------------------------------


def test_reliability_and_ece_agree_with_scikit_learns_calibration_curve():
    truth, _, probs = continuous_predictions(500, seed=1)
    ece, accuracy, confidence = sklearn_ece(probs, truth)
    bins = [b for b in reliability(probs, truth) if b["n"]]
    assert [b["accuracy"] for b in bins] == pytest.approx(accuracy.tolist())
    assert [b["confidence"] for b in bins] == pytest.approx(confidence.tolist())
    assert expected_calibration_error(probs, truth) == pytest.approx(ece)
