"""bilipop.train.loop: an fp16 step that overflows is skipped and the scaler state is resumed; a non-finite loss
stops fp32 training before the weights change."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from helpers import same_weights, without_seconds  # noqa: E402

from bilipop.train.trainer import train
from bilipop.train_config import TrainConfig

pytestmark = pytest.mark.usefixtures("one_thread")
TINY = dict(vit="tiny", bert="tiny", batch_size=8, num_workers=0)  # dropout stays at its default, 0.1


def _fp16_on_cpu(monkeypatch, bad_rows):
    """Train in fp16 on the CPU (torch's CPU autocast and GradScaler allow it; the CLI keeps fp16 for CUDA), with
    the loss of any batch holding ``bad_rows[0]`` made infinite and the gradients of any batch holding
    ``bad_rows[1]`` overflowing."""
    from bilipop.train import loop, pipeline

    monkeypatch.setattr(pipeline, "autocast_for", lambda precision, devices: ("cpu", torch.float16))
    original = loop._forward

    def forward(module, setup, batch):
        logits, labels = original(module, setup, batch)
        rows = set(batch[4].tolist())
        if module.training and bad_rows[0] in rows:
            logits = logits * float("inf")
        elif module.training and bad_rows[1] in rows:
            logits.register_hook(lambda g: g * float("inf"))
        return logits, labels

    monkeypatch.setattr(loop, "_forward", forward)


def test_fp16_overflow_skips_the_step_and_the_scaler_state_is_resumed(train_data, tmp_path, monkeypatch):
    import pandas as pd

    bvids = pd.read_parquet(train_data / "labeled.parquet")["bvid"].tolist()
    probe = train(TrainConfig(epochs=1, **TINY), data=train_data, out=tmp_path / "probe")
    train_rows = [bvids.index(b) for b in json.loads((tmp_path / "probe" / "split.json").read_text())["train"]]
    assert probe.histories[0]
    _fp16_on_cpu(monkeypatch, (train_rows[0], train_rows[-1]))
    straight = train(TrainConfig(epochs=2, **TINY), data=train_data, out=tmp_path / "a")
    for row in straight.histories[0]:
        # each epoch: one step with an infinite loss, one whose gradients overflow; both skipped, none fatal
        assert row["skipped_steps"] == 2 and np.isfinite(row["train_loss"])
    state = torch.load(tmp_path / "a" / "checkpoint.pt", weights_only=True)
    assert state["scaler"]["scale"] == 65536.0 / 2 ** 4  # halved at each of the four skipped steps

    def stop_in_epoch_two(done, total):
        if total and done == 9:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(TrainConfig(epochs=2, **TINY), data=train_data, out=tmp_path / "b", progress=stop_in_epoch_two)
    assert torch.load(tmp_path / "b" / "checkpoint.pt", weights_only=True)["scaler"]["scale"] == 65536.0 / 4
    resumed = train(TrainConfig(epochs=2, **TINY), data=train_data, out=tmp_path / "b", resume=True)
    assert without_seconds(resumed.histories[0]) == without_seconds(straight.histories[0])
    assert same_weights(tmp_path / "a", tmp_path / "b")
    # the resumed run continued from the saved scale (a fresh scaler would end at 65536 / 4)
    assert torch.load(tmp_path / "b" / "checkpoint.pt", weights_only=True)["scaler"]["scale"] == 65536.0 / 2 ** 4


def test_a_non_finite_loss_stops_fp32_training_before_the_weights_change(train_data, tmp_path, monkeypatch):
    from bilipop.errors import ModelError
    from bilipop.train import loop

    original = loop._forward
    seen = []

    def forward(module, setup, batch):
        logits, labels = original(module, setup, batch)
        if module.training:
            seen.append(1)
            if len(seen) == 9:  # in epoch 2: epoch 1's checkpoint is on disk
                return logits * float("nan"), labels
        return logits, labels

    monkeypatch.setattr(loop, "_forward", forward)
    with pytest.raises(ModelError, match="loss became nan at epoch 2"):
        train(TrainConfig(epochs=2, **TINY), data=train_data, out=tmp_path / "run")
    state = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)
    assert state["epoch"] == 1 and all(torch.isfinite(v).all() for v in state["model"].values())
