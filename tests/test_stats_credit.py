"""bilipop.stats.credit: the per-row figures that training and evaluation share."""

from __future__ import annotations

import numpy as np
import pytest

from bilipop.evaluation.metrics import ordinal_accuracy
from bilipop.stats.credit import expected_class, ordinal_credit


def test_training_history_uses_the_same_ordinal_credit():
    # The training loop scores torch tensors with the very function evaluate uses on numpy arrays.
    import torch

    from bilipop.models.ordinal import predicted
    from bilipop.train.loop import _accumulate

    gaps = [0, 1, 2, 3, 4]
    assert ordinal_credit(torch.tensor(gaps)).tolist() == ordinal_credit(np.array(gaps)).tolist()
    assert ordinal_credit(np.array(gaps)).tolist() == [1.0, 0.5, 0.0, 0.0, 0.0]
    logits = torch.nn.functional.one_hot(torch.tensor([0, 2, 4, 3, 0]), 5).float()  # argmax: the predictions
    sums = [0.0, 0.0, 0.0]
    _accumulate(sums, torch.tensor(1.0), predicted(logits), torch.tensor([0, 1, 2, 3, 4]))
    assert sums[1] / sums[2] == ordinal_accuracy([0, 1, 2, 3, 4], [0, 2, 4, 3, 0]) == 0.5


def test_expected_class():
    p = np.array([[1, 0, 0, 0, 0], [0, 0, 0.5, 0, 0.5], [0.2] * 5])
    assert expected_class(p).tolist() == pytest.approx([0.0, 3.0, 2.0])
