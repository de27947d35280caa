"""The study's per-row credit and the expected class: the two per-row figures that training's history, the
evaluation report and the predictions share."""

from __future__ import annotations

import numpy as np


def ordinal_credit(gap):
    """The study's credit for a class gap ``|pred - true|``: 1 when 0, 0.5 when 1, else 0 (docs/reference.md,
    "Formulas").

    Elementwise on a numpy array or a torch tensor alike, so that training (on tensors) and evaluation (on arrays)
    score a row the same way.
    """
    return (gap == 0) * 1.0 + (gap == 1) * 0.5


def expected_class(probabilities: np.ndarray) -> np.ndarray:
    """``sum_k k * p_k`` for each row of a (B, K) probability array: a finer ordering than the argmax."""
    p = np.asarray(probabilities, dtype=np.float64)
    return p @ np.arange(p.shape[-1], dtype=np.float64)
