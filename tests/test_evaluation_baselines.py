"""bilipop.evaluation.baselines: the floors (majority class, best constant, uniform random, the study's figures)
against examples computed by hand."""

from __future__ import annotations

import numpy as np
import pytest

from bilipop.evaluation import baselines as bl


def test_majority_and_best_constant_can_differ():
    # constant 0: (3 + 2 * 0.5) / 7; constant 1: (3 * 0.5 + 2 + 2 * 0.5) / 7
    labels = [0, 0, 0, 1, 1, 2, 2]
    assert bl.majority_class(labels)["class"] == 0
    assert bl.majority_class(labels)["ordinal_accuracy"] == pytest.approx(4 / 7)
    best = bl.best_constant(labels)
    assert best["class"] == 1 and best["class_name"] == "low"
    assert best["ordinal_accuracy"] == pytest.approx(4.5 / 7)


def test_uniform_random_is_the_exact_expectation():
    # t=0: (1 + .5) / 5, t=2: (1 + .5 + .5) / 5, t=4: (1 + .5) / 5 -> mean 1/3
    result = bl.uniform_random([0, 2, 4])
    assert result["ordinal_accuracy"] == pytest.approx(1 / 3)
    assert result["within1_accuracy"] == pytest.approx(7 / 15)
    assert result["mae"] == pytest.approx((2 + 1.2 + 2) / 3)
    assert result["accuracy"] == pytest.approx(0.2)
    # the same as averaging the five constant predictors
    labels = [0, 1, 1, 3, 4, 4, 4]
    constants = [bl._scores(np.asarray(labels), k)["ordinal_accuracy"] for k in range(5)]
    assert bl.uniform_random(labels)["ordinal_accuracy"] == pytest.approx(np.mean(constants))


def test_study_figures_for_recorded_settings_only():
    assert bl.study_figure("vit", "bert", 0.75)["ordinal_accuracy"] == 0.6109
    assert bl.study_figure("vit", "bert", 1.0)["ordinal_accuracy"] == 0.5980
    assert bl.study_figure("vit", "bert", 0.0)["ordinal_accuracy"] == 0.4659
    assert bl.study_figure("vgg", "bert", 0.75)["ordinal_accuracy"] == 0.5345
    assert bl.study_figure("vgg", "rnn", 0.5)["ordinal_accuracy"] == 0.5471
    assert bl.study_figure("vit", "bert", 0.3) is None
    # A single-branch run is the study's single-encoder model whatever the unused encoder's flag says, and
    # never one of Table 2's fused VGG pairs.
    assert bl.study_figure("vgg", "bert", 0.0)["ordinal_accuracy"] == 0.4659
    assert bl.study_figure("vit", "rnn", 1.0)["ordinal_accuracy"] == 0.5980
    assert bl.study_figure("vgg", "bert", 1.0) is None and bl.study_figure("vgg", "rnn", 0.0) is None
    everything = bl.baselines([0, 1, 2], vision="vit", text="bert", vit_weight=0.75)
    assert set(everything) == {"majority_class", "best_constant", "uniform_random", "study", "study_best"}
    assert everything["study_best"]["ordinal_accuracy"] == 0.6242
