"""The floors a model must beat on the same split, and the study's own figure for the same setting.

The study's BERT-only model scored 0.4659 ordinal accuracy by predicting one class for every video; printing the
constant predictors beside a model's figure keeps anyone from mistaking such a model for a working one. The
constants are chosen on the evaluated labels themselves, so they are the best any constant could possibly do
there (a fair floor, slightly flattering to the baseline).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from bilipop.data.schema import LABEL_NAMES, NUM_CLASSES
from bilipop.evaluation.metrics import (
    accuracy,
    check_classes,
    mae,
    ordinal_accuracy,
    within1_accuracy,
)
from bilipop.stats.credit import ordinal_credit

#: Test ordinal accuracy reported by the study (README, "Reproducing the study's tables"):
#: (vision, text, vit_weight) -> (epoch, figure).
#: Only the figures the study reports are here; other settings get no study figure rather than a guessed one.
STUDY_FIGURES: dict[tuple[str, str, float | None], tuple[int, float]] = {
    ("vit", "bert", 0.75): (5, 0.6109),
    ("vit", "bert", 1.0): (5, 0.5980),
    ("vit", "bert", 0.0): (5, 0.4659),
    ("vgg", "bert", None): (5, 0.5345),
    ("vgg", "rnn", None): (5, 0.5471),
}
STUDY_BEST = {"vision": "vit", "text": "bert", "vit_weight": 0.75, "epoch": 3, "ordinal_accuracy": 0.6242}


def _scores(t: np.ndarray, constant: int) -> dict:
    p = np.full_like(t, constant)
    return {
        "class": int(constant),
        "class_name": LABEL_NAMES[constant] if constant < len(LABEL_NAMES) else str(constant),
        "ordinal_accuracy": ordinal_accuracy(t, p, NUM_CLASSES),
        "accuracy": accuracy(t, p, NUM_CLASSES),
        "within1_accuracy": within1_accuracy(t, p, NUM_CLASSES),
        "mae": mae(t, p, NUM_CLASSES),
    }


def majority_class(y_true: Sequence[int], num_classes: int = NUM_CLASSES) -> dict:
    """Predict the most frequent true class (the lowest index on a tie) for every row."""
    t = check_classes(y_true, "the true labels", num_classes)
    return _scores(t, int(np.bincount(t, minlength=num_classes).argmax()))


def best_constant(y_true: Sequence[int], num_classes: int = NUM_CLASSES) -> dict:
    """The single class whose constant prediction has the highest ordinal accuracy (lowest index on a tie)."""
    t = check_classes(y_true, "the true labels", num_classes)
    best = max(range(num_classes), key=lambda k: (ordinal_accuracy(t, np.full_like(t, k), num_classes), -k))
    return _scores(t, best)


def uniform_random(y_true: Sequence[int], num_classes: int = NUM_CLASSES) -> dict:
    """The expectation (exact, not sampled) of guessing each class with probability 1/num_classes."""
    t = check_classes(y_true, "the true labels", num_classes)
    gap = np.abs(t[:, None] - np.arange(num_classes)[None, :])  # (N, K)
    return {
        "ordinal_accuracy": float(ordinal_credit(gap).mean()),
        "accuracy": 1.0 / num_classes,
        "within1_accuracy": float((gap <= 1).mean()),
        "mae": float(gap.mean()),
    }


def study_figure(vision: str = "vit", text: str = "bert", vit_weight: float | None = 0.75) -> dict | None:
    """The study's test ordinal accuracy for this setting, or None when the study reports no figure for it.

    At w = 1 the title encoder is not built and at w = 0 the cover encoder is not: such a run is the study's
    ViT-only or BERT-only model whatever the other flag says, and never one of Table 2's fused pairs.
    """
    single = vit_weight is not None and vit_weight in (0.0, 1.0)
    if vit_weight == 1.0:
        text = "bert"
    elif vit_weight == 0.0:
        vision = "vit"
    for (v, t, w), (epoch, figure) in STUDY_FIGURES.items():
        if v != vision or t != text:
            continue
        if (w is None and not single) or (w is not None and vit_weight is not None and abs(w - vit_weight) < 1e-9):
            return {"epoch": epoch, "ordinal_accuracy": figure, "vision": v, "text": t, "vit_weight": w}
    return None


def baselines(y_true: Sequence[int], *, vision: str = "vit", text: str = "bert",
              vit_weight: float | None = 0.75) -> dict:
    """All floors on these labels plus the study's figure for the setting (JSON-ready)."""
    return {
        "majority_class": majority_class(y_true),
        "best_constant": best_constant(y_true),
        "uniform_random": uniform_random(y_true),
        "study": study_figure(vision, text, vit_weight),
        "study_best": dict(STUDY_BEST),
    }
