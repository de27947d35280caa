"""bilipop.evaluation.plots: the confusion matrix, the training curves and the reliability diagram are drawn,
and what cannot be drawn is refused."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from helpers import assert_visible_png  # noqa: E402
from PIL import Image

from bilipop.errors import InputError
from bilipop.evaluation.calibration import expected_calibration_error, reliability
from bilipop.evaluation.plots import calibration_png, confusion_png, curves_png


def test_plots_directly():
    with pytest.raises(InputError, match="5x5"):
        confusion_png([[1, 2], [3, 4]], ["a", "b", "c", "d", "e"], Path("never.png"))
    with pytest.raises(InputError, match="no epochs"):
        curves_png([], Path("never.png"))
    assert not Path("never.png").exists()


def test_curves_tolerate_a_missing_valid_figure(tmp_path):
    history = [{"epoch": e, "train_loss": 1.5 / e, "train_ordinal_accuracy": 0.4 + e / 20,
                "valid_loss": None, "valid_ordinal_accuracy": None} for e in range(1, 4)]
    assert_visible_png(curves_png(history, tmp_path / "c.png"), (800, 300))


def test_reliability_diagram_is_drawn(tmp_path):
    rng = np.random.default_rng(1)
    probs = rng.dirichlet(np.ones(5), size=300)
    truth = rng.integers(0, 5, 300)
    path = calibration_png(reliability(probs, truth), tmp_path / "calibration.png", title="t",
                           ece=expected_calibration_error(probs, truth))
    with Image.open(path) as img:
        assert img.format == "PNG" and img.size[0] >= 600
        colours = img.convert("RGB").getcolors(maxcolors=1 << 16)
        assert colours is None or len(colours) > 10
        # the bars are drawn: the light blue of the accuracy bars is there
        assert any(rgb == (173, 198, 231) for _, rgb in (colours or []))
