"""Explanations from one forward and backward pass: they point at what matters (a deletion test on covers whose
class lives in a known region), they work for the ViT and VGG cover encoders and for zero-weight branches, and they
encode each input once."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bilipop.models.factory import create_model
from bilipop.models.run import LoadedRun, RunConfig
from bilipop.prediction.explain import attribute
from bilipop.train_config import TrainConfig

pytestmark = pytest.mark.usefixtures("one_thread")

SIZE = 32
GRID = 8


def _planted(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Noise covers (normalised, 0 = mean colour) whose class (0 or 4) is set by a 12x12 square at rows/columns
    4..16 only: bright for class 4, dark for class 0."""
    g = torch.Generator().manual_seed(seed)
    images = torch.rand(n, 3, SIZE, SIZE, generator=g) * 1.6 - 0.8
    labels = torch.randint(0, 2, (n,), generator=g) * 4
    images[:, :, 4:16, 4:16] = torch.where(labels == 4, 1.0, -1.0)[:, None, None, None]
    return images, labels


def _cover_run(vision: str) -> LoadedRun:
    """A tiny cover-only model (title weight 0) trained on planted covers, as a LoadedRun."""
    torch.manual_seed(0)
    built = create_model(vision=vision, vit="tiny", bert="tiny", vit_weight=1.0, titles=["x"], dropout=0.0)
    model = built.model
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    model.train()
    for step in range(150):  # fresh covers every step: the noise cannot be learned by heart
        images, labels = _planted(32, seed=100 + step)
        loss = torch.nn.functional.cross_entropy(model.logits(images, None, None), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    config = {"vit_weight": 1.0, "image_size": SIZE, "image_mean": built.image_mean, "image_std": built.image_std,
              "max_tokens": 64, "loss": "ce", "model": built.arch}
    settings = TrainConfig(vision=vision, vit="tiny", bert="tiny", vit_weight=1.0)
    run_config = RunConfig(settings, data="", input="", best_epoch=None, epochs_done=0, balance_method="given")
    return LoadedRun(path=None, config=config, model=model, device=torch.device("cpu"),  # type: ignore[arg-type]
                     run_config=run_config)


def _hide(image: torch.Tensor, cells: np.ndarray, grid: int = GRID) -> torch.Tensor:
    """``image`` with the given cells of a (grid, grid) partition set to 0 (the normalised mean colour)."""
    hidden = image.clone()
    cell = SIZE // grid
    for index in cells:
        i, j = divmod(int(index), grid)
        hidden[:, i * cell:(i + 1) * cell, j * cell:(j + 1) * cell] = 0
    return hidden


@pytest.mark.parametrize("vision", ["vit", "vgg"])
def test_hiding_the_heatmaps_top_quarter_lowers_the_probability_more_than_a_random_quarter(vision):
    run = _cover_run(vision)
    images, labels = _planted(24, seed=7)
    with torch.no_grad():
        accuracy = (run.model.logits(images, None, None).argmax(1) == labels).float().mean().item()
    assert accuracy >= 0.9, f"the planted task was not learned ({accuracy:.2f}): the test would prove nothing"
    rng = np.random.default_rng(0)
    top_drops, random_drops, shares = [], [], []
    for image in images:
        found = attribute(run, image, None)
        assert found.pieces == []
        grid = found.heat.shape[0]  # the ViT's patch grid (4 x 4 here), or 8 x 8 cells for VGG
        quarter = grid * grid // 4
        p = found.probabilities[found.label]
        top = np.argsort(-found.heat.ravel(), kind="stable")[:quarter]
        hidden = [_hide(image, top, grid)] + [_hide(image, rng.choice(grid * grid, quarter, replace=False), grid)
                                              for _ in range(4)]
        probs = run.class_probabilities(torch.stack(hidden), None, None)[:, found.label]
        top_drops.append(p - probs[0])
        random_drops.append(p - probs[1:].mean())
        cell = SIZE // grid
        shares.append(found.heat[4 // cell:16 // cell, 4 // cell:16 // cell].sum() / found.heat.sum())
    assert np.mean(top_drops) > np.mean(random_drops) + 0.1, (np.mean(top_drops), np.mean(random_drops))
    # Most of the heat sits on the cells of the planted square rather than on the noise around it.
    assert np.mean(shares) > 0.4, np.mean(shares)


def test_one_pass_gives_the_prediction_and_encodes_each_input_once(tiny_run, monkeypatch):
    from bilipop.models.run import load_run

    run = load_run(tiny_run["run"])
    calls = {"cover": 0, "title": 0}
    cover_fn, title_fn = run.model.encode_cover, run.model.encode_title

    def cover(*a, **k):
        calls["cover"] += 1
        return cover_fn(*a, **k)

    def title(*a, **k):
        calls["title"] += 1
        return title_fn(*a, **k)

    monkeypatch.setattr(run.model, "encode_cover", cover)
    monkeypatch.setattr(run.model, "encode_title", title)
    image = torch.rand(3, SIZE, SIZE) * 2 - 1
    text = "三分钟 看懂 relativity 2024!"
    found = attribute(run, image, text)
    assert calls == {"cover": 1, "title": 1}
    tokens = run.tokenize([text])
    expected = run.class_probabilities(image[None], tokens["input_ids"], tokens["attention_mask"])[0]
    np.testing.assert_allclose(found.probabilities, expected, atol=1e-6)
    # Each piece the user wrote gets one score: 三 分 钟 看 懂 relativity 2024 !
    assert [text[a:b] for (a, b), _ in found.pieces] == ["三", "分", "钟", "看", "懂", "relativity", "2024", "!"]
    assert any(d != 0 for _, d in found.pieces)


def test_a_quantized_run_refuses_to_explain_in_one_line(tiny_run):
    from bilipop.errors import ModelError
    from bilipop.models.run import load_run

    run = load_run(tiny_run["run"], quantize="int8")
    with pytest.raises(ModelError, match="--quantize int8"):
        attribute(run, torch.zeros(3, SIZE, SIZE), "标题")
