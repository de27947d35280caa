"""bilipop.models.vision: the VGG-16 keeps torchvision's state-dict names."""

from __future__ import annotations

import pytest
import torch

from bilipop.models.vision import VGG, VGGSpec

pytestmark = pytest.mark.usefixtures("one_thread", "offline_hub")


def test_vgg16_uses_torchvision_state_dict_names():
    with torch.device("meta"):
        keys = list(VGG(VGGSpec()).state_dict())
    convs = [0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28]
    expected = [f"features.{i}.{p}" for i in convs for p in ("weight", "bias")]
    expected += [f"classifier.{i}.{p}" for i in (0, 3, 6) for p in ("weight", "bias")]
    assert keys == expected
