"""The CORN ordinal loss and balanced class weights, checked against the paper's definitions and by
training on planted data."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

from bilipop.cli import app
from bilipop.data.synthetic import make_labeled_dataset
from bilipop.errors import InputError
from bilipop.models.ordinal import balanced_weights, corn_loss, loss_function, probabilities
from bilipop.models.run import load_run
from bilipop.prediction.predict import predict_pairs
from bilipop.train.trainer import train
from bilipop.train_config import TrainConfig

pytestmark = pytest.mark.usefixtures("one_thread")
TINY = dict(vit="tiny", bert="tiny", batch_size=8, num_workers=0, devices="cpu")


def corn_by_hand(logits: np.ndarray, labels: np.ndarray, class_weights=None) -> float:
    """The paper's loss written out task by task: BCE of task k over the examples with y >= k, target y > k."""
    total, pairs = 0.0, 0.0
    for k in range(logits.shape[1]):
        for o, y in zip(logits[:, k], labels, strict=True):
            if y < k:
                continue
            w = 1.0 if class_weights is None else class_weights[y]
            p = 1 / (1 + math.exp(-o))
            total += -w * (math.log(p) if y > k else math.log(1 - p))
            pairs += w
    return total / pairs


def test_corn_loss_is_the_papers_conditional_training_loss():
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(12, 4, generator=gen, dtype=torch.float64)
    labels = torch.tensor([0, 1, 2, 3, 4, 4, 3, 0, 1, 2, 2, 4])
    assert corn_loss(logits, labels).item() == pytest.approx(corn_by_hand(logits.numpy(), labels.numpy()), 1e-9)
    weights = [0.5, 1.0, 2.0, 3.0, 4.0]
    got = corn_loss(logits, labels, torch.tensor(weights, dtype=torch.float64)).item()
    assert got == pytest.approx(corn_by_hand(logits.numpy(), labels.numpy(), weights), 1e-9)


def test_corn_probabilities_sum_to_one_and_are_rank_consistent():
    logits = torch.randn(500, 4, generator=torch.Generator().manual_seed(1)) * 4
    probs = probabilities(logits, "corn")
    assert probs.shape == (500, 5)
    assert torch.all(probs >= 0) and torch.allclose(probs.sum(1), torch.ones(500), atol=1e-6)
    above = 1 - probs.cumsum(1)[:, :-1]  # P(y > k) recovered from the five probabilities
    assert torch.all(above[:, 1:] <= above[:, :-1] + 1e-7)
    # and they are the product of the conditional probabilities
    torch.testing.assert_close(above, torch.cumprod(torch.sigmoid(logits), 1), atol=1e-6, rtol=0)
    # ce keeps the study's softmax
    torch.testing.assert_close(probabilities(logits[:, :4], "ce"), logits[:, :4].softmax(1))


def test_balanced_weights_and_weighted_cross_entropy():
    assert balanced_weights([0, 0, 0, 1, 2, 2], 5) == [6 / 15, 6 / 5, 6 / 10, 0.0, 0.0]
    logits = torch.randn(6, 5, generator=torch.Generator().manual_seed(2))
    labels = torch.tensor([0, 0, 0, 1, 2, 2])
    w = torch.tensor(balanced_weights(labels.tolist(), 5))
    per = torch.nn.functional.cross_entropy(logits, labels, reduction="none")
    expected = (per * w[labels]).sum() / w[labels].sum()
    assert loss_function("ce", w.tolist())(logits, labels).item() == pytest.approx(expected.item(), 1e-6)


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    root = tmp_path_factory.mktemp("ordinal")
    return make_labeled_dataset(root / "data", n=120, seed=3, signal="both", image_size=32).parent


def test_corn_trains_beats_the_best_constant_and_its_run_predicts_five_probabilities(planted, tmp_path):
    run = tmp_path / "corn"
    result = train(TrainConfig(epochs=4, loss="corn", seed=0, **TINY), data=planted, out=run)
    config = json.loads((run / "config.json").read_text())
    assert config["loss"] == "corn" and config["model"]["outputs"] == 4
    split = json.loads((run / "split.json").read_text())
    table = pd.read_parquet(planted / "labeled.parquet").set_index("bvid").loc[split["test"]]
    labels = table["label"].to_numpy()
    constant = max(float(np.mean((labels == k) + 0.5 * (np.abs(labels - k) == 1))) for k in range(5))
    assert max(r["valid_ordinal_accuracy"] for r in result.histories[0]) >= constant + 0.2
    loaded = load_run(run)
    probs = predict_pairs(loaded, [str(planted / p) for p in table["cover_path"]], list(table["title"]))
    assert probs.shape == (len(table), 5) and np.allclose(probs.sum(1), 1) and (probs >= 0).all()
    gap = np.abs(probs.argmax(1) - labels)
    assert float(np.mean((gap == 0) + 0.5 * (gap == 1))) >= constant + 0.2
    # evaluate and predict --json read it like any run
    r = CliRunner().invoke(app, ["evaluate", str(run), "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["ordinal_accuracy"] >= constant + 0.2
    r = CliRunner().invoke(app, ["predict", str(planted / table["cover_path"].iloc[0]), table["title"].iloc[0],
                                 "--model", str(run), "--json"])
    assert r.exit_code == 0, r.output
    assert sum(json.loads(r.stdout)["probabilities"]) == pytest.approx(1, abs=1e-6)


def imbalanced(root, seed):
    """Classes 0-2 with 30 videos each, classes 3 and 4 with 5: the shape of the study's fixed thresholds."""
    path = make_labeled_dataset(root, n=150, seed=seed, signal="both", image_size=16)
    table = pd.read_parquet(path)
    kept = pd.concat([table[table["label"] == k].head(30 if k < 3 else 5) for k in range(5)])
    kept.sample(frac=1, random_state=seed).to_parquet(path, index=False)
    return root


def test_balanced_class_weights_raise_the_recall_of_the_rare_classes(tmp_path):
    data = imbalanced(tmp_path / "train", seed=4)
    held_out = pd.read_parquet(make_labeled_dataset(tmp_path / "held", n=100, seed=5, signal="both",
                                                    image_size=16))
    rare = held_out[held_out["label"] >= 3]
    recall = {}
    for weights in ("none", "balanced"):
        run = tmp_path / weights
        train(TrainConfig(epochs=6, class_weights=weights, seed=0, **TINY), data=data, out=run)
        assert json.loads((run / "config.json").read_text())["class_weights"] == weights
        covers = [str(tmp_path / "held" / p) for p in rare["cover_path"]]
        probs = predict_pairs(load_run(run), covers, list(rare["title"]))
        recall[weights] = float(np.mean(probs.argmax(1) == rare["label"].to_numpy()))
    # measured: 0.00 without weights, 0.85 with them (classes 3 and 4 of a balanced held-out set)
    assert recall["balanced"] >= recall["none"] + 0.3, recall


def test_bad_loss_options_and_a_resume_with_another_loss(planted, tmp_path):
    with pytest.raises(InputError, match="--loss must be one of ce, corn"):
        train(TrainConfig(loss="hinge", **TINY), data=planted, out=tmp_path / "x")
    with pytest.raises(InputError, match="--class-weights must be one of none, balanced"):
        train(TrainConfig(class_weights="inverse", **TINY), data=planted, out=tmp_path / "x")
    assert not (tmp_path / "x").exists()
    r = CliRunner().invoke(app, ["train", "--data", str(planted), "--out", str(tmp_path / "y"), "--vit", "tiny",
                                 "--bert", "tiny", "--loss", "hinge"])
    assert r.exit_code == 1 and "--loss must be one of" in r.output and "Traceback" not in r.output
    train(TrainConfig(epochs=1, loss="corn", **TINY), data=planted, out=tmp_path / "z")
    with pytest.raises(InputError, match="--loss corn, not ce"):
        train(TrainConfig(epochs=2, loss="ce", **TINY), data=planted, out=tmp_path / "z", resume=True)
