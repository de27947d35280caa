"""bilipop.stats.bootstrap: resamples stratified by the true class and seeded, and the percentile interval."""

from __future__ import annotations

import numpy as np

from bilipop.stats.bootstrap import interval, resample_indices


def test_resamples_are_stratified_and_seeded():
    labels = np.array([0] * 7 + [1] * 3 + [4] * 10)
    idx = resample_indices(labels, resamples=200, seed=5)
    assert idx.shape == (200, 20)
    assert (labels[idx] == labels[None, :]).all()  # every resample keeps each row's class: counts are fixed
    assert np.array_equal(idx, resample_indices(labels, resamples=200, seed=5))
    assert not np.array_equal(idx, resample_indices(labels, resamples=200, seed=6))


def test_interval_is_none_when_a_resample_is_undefined():
    assert interval(np.array([0.1, np.nan, 0.3])) is None
