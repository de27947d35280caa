"""Bit-for-bit reproducible training on CPU: the same command twice, GPipe over 1, 2 or 3 stages with dropout on,
a run killed with SIGKILL and resumed, selection on valid or test, and fp16 steps that overflow."""

from __future__ import annotations

import copy
import json
import os
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from bilipop.data.synthetic import make_labeled_dataset
from bilipop.models.registry import create_model
from bilipop.train.pipeline import build_pipeline, layer_costs, partition
from bilipop.train.trainer import train
from bilipop.train_config import TrainConfig

pytestmark = pytest.mark.usefixtures("one_thread")

TINY = dict(vit="tiny", bert="tiny", batch_size=8, num_workers=0)  # dropout stays at its default, 0.1


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_labeled_dataset(tmp_path_factory.mktemp("data") / "d", n=66, seed=2).parent


def _strip(history):
    return [{k: v for k, v in row.items() if k != "seconds"} for row in history]


def _history(run):
    return _strip([json.loads(line) for line in (run / "history.jsonl").read_text().splitlines()])


def _same_weights(a, b):
    x, y = load_file(str(a / "model.safetensors")), load_file(str(b / "model.safetensors"))
    return x.keys() == y.keys() and all(torch.equal(x[k], y[k]) for k in x)


def test_the_same_command_twice_gives_identical_history_and_weights(data, tmp_path):
    opts = dict(epochs=2, devices="cpu,cpu", chunks=4, **TINY)  # GPipe, no --balance
    train(TrainConfig(**opts), data=data, out=tmp_path / "a")
    train(TrainConfig(**opts), data=data, out=tmp_path / "b")
    assert _history(tmp_path / "a") == _history(tmp_path / "b")
    assert _same_weights(tmp_path / "a", tmp_path / "b")
    config = json.loads((tmp_path / "a" / "config.json").read_text())
    assert config["balance_method"] == "cost" and sum(config["balance"]) == 6
    assert json.loads((tmp_path / "b" / "config.json").read_text())["balance"] == config["balance"]
    assert config["model"]["vision"]["spec"]["dropout_rate"] == 0.1  # with dropout on


@pytest.mark.slow  # four trainings; the gradient check below proves the same in one step
def test_dropout_does_not_depend_on_the_stages_or_the_balance(data, tmp_path):
    common = dict(epochs=1, chunks=4, **TINY)
    two = train(TrainConfig(devices="cpu,cpu", **common), data=data, out=tmp_path / "two")
    three = train(TrainConfig(devices="cpu,cpu,cpu", **common), data=data, out=tmp_path / "three")
    other_cut = train(TrainConfig(devices="cpu,cpu", balance=[1, 5], **common), data=data, out=tmp_path / "cut")
    assert _same_weights(tmp_path / "two", tmp_path / "three")
    assert _same_weights(tmp_path / "two", tmp_path / "cut")
    assert _strip(two.histories[0]) == _strip(three.histories[0]) == _strip(other_cut.histories[0])
    # One device trains the whole batch at once: the same masks, the sums in another order (float rounding that
    # Adam's step, at lr 1e-3, magnifies to ~1e-5).
    plain = train(TrainConfig(devices="cpu", **{**common, "chunks": None}), data=data, out=tmp_path / "plain")
    a, b = load_file(str(tmp_path / "plain" / "model.safetensors")), load_file(str(tmp_path / "two" /
                                                                                   "model.safetensors"))
    assert max((a[k] - b[k]).abs().max().item() for k in a) < 1e-4
    assert plain.histories[0][0]["train_loss"] == pytest.approx(two.histories[0][0]["train_loss"], abs=1e-5)


def test_gpipe_over_one_two_and_three_stages_gives_the_same_gradients_with_dropout():
    titles = ["物理讲解入门 第1期", "历史其实竟然", "数学看懂了解", "编程一分钟带你", "宇宙科普为什么"] * 2
    built = create_model(vit="tiny", bert="tiny", vit_weight=0.5, titles=titles, dropout=0.3)
    g = torch.Generator().manual_seed(0)
    images = torch.randn(8, 3, 32, 32, generator=g)
    enc = built.tokenizer(titles[:8], padding=True, return_tensors="pt")
    labels = torch.randint(0, 5, (8,), generator=g)
    grads = []
    for k in (1, 2, 3):
        model = copy.deepcopy(built.model)
        model.set_noise_seed(11)
        inputs = model.pack(images, enc["input_ids"], enc["attention_mask"], torch.arange(40, 48))
        cut = [1] * (k - 1) + [len(model) - (k - 1)]
        gpipe = build_pipeline(model, ["cpu"] * k, chunks=4, balance=cut, checkpoint="except_last", sample=inputs)
        gpipe.train()
        torch.nn.functional.cross_entropy(gpipe(inputs)[0], labels).backward()
        grads.append([p.grad.clone() for p in model.parameters()])
    assert all(torch.equal(a, b) for a, b in zip(grads[0], grads[1], strict=True))
    assert all(torch.equal(a, b) for a, b in zip(grads[0], grads[2], strict=True))
    # and dropout really acted: eval mode gives other gradients
    model = copy.deepcopy(built.model).eval()
    torch.nn.functional.cross_entropy(model.logits(images, enc["input_ids"], enc["attention_mask"]),
                                      labels).backward()
    assert not all(torch.equal(a, p.grad) for a, p in zip(grads[0], model.parameters(), strict=True))


def test_cost_balance_is_deterministic_and_puts_costly_layers_apart():
    built = create_model(vit="tiny", bert="tiny", vit_weight=0.5, titles=["物理 入门", "历史"], dropout=0.1)
    enc = built.tokenizer(["物理 入门", "历史"], padding=True, return_tensors="pt")
    sample = built.model.pack(torch.zeros(2, 3, 32, 32), enc["input_ids"], enc["attention_mask"])
    costs = layer_costs(built.model, sample)
    assert costs == layer_costs(built.model, sample) and len(costs) == len(built.model) and min(costs) > 0
    assert partition([1, 10, 10, 10, 10, 1, 1, 1, 1, 2], 2) == [3, 7]
    assert partition([5] * 6, 3) == [2, 2, 2]
    assert partition([100, 1, 1, 1], 2) == [1, 3]


KILL_SCRIPT = textwrap.dedent("""
    import os, signal, sys
    import torch
    torch.set_num_threads(1)
    from bilipop.train.trainer import train
    from bilipop.train_config import TrainConfig

    def progress(done, total):
        if total and done == int(sys.argv[3]):
            os.kill(os.getpid(), signal.SIGKILL)  # no cleanup, no except clause, no atexit

    config = TrainConfig(vit="tiny", bert="tiny", batch_size=8, num_workers=0, epochs=2, devices="cpu,cpu",
                         chunks=4)
    train(config, data=sys.argv[1], out=sys.argv[2], progress=progress)
""")


@pytest.mark.slow  # 20 s; test_train's resume tests cover resuming by default
def test_sigkill_and_resume_without_balance_equal_an_uninterrupted_run(data, tmp_path):
    opts = dict(epochs=2, devices="cpu,cpu", chunks=4, **TINY)
    straight = train(TrainConfig(**opts), data=data, out=tmp_path / "straight")
    steps = 7  # 56 train rows / 8 per batch: 7 steps per epoch, so the kill at step 10 is in the middle of epoch 2
    assert len(json.loads((tmp_path / "straight" / "split.json").read_text())["train"]) == 56
    script = tmp_path / "kill.py"
    script.write_text(KILL_SCRIPT)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, str(script), str(data), str(tmp_path / "killed"), str(steps + 3)],
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    assert len((tmp_path / "killed" / "history.jsonl").read_text().splitlines()) == 1
    resumed = train(TrainConfig(**opts), data=data, out=tmp_path / "killed", resume=True)
    assert _strip(resumed.histories[0]) == _strip(straight.histories[0])
    assert _same_weights(tmp_path / "straight", tmp_path / "killed")
    config = json.loads((tmp_path / "killed" / "config.json").read_text())
    assert config["balance"] == json.loads((tmp_path / "straight" / "config.json").read_text())["balance"]


def test_a_saved_timed_balance_is_reused_on_resume(data, tmp_path, monkeypatch):
    from bilipop.train import pipeline

    timed = []

    def fake_timing(model, devices, sample):
        timed.append(1)
        return [5, 1]

    monkeypatch.setattr(pipeline, "time_balance", fake_timing)
    monkeypatch.setattr("bilipop.train.loop.time_balance", fake_timing)
    opts = dict(devices="cpu,cpu", chunks=4, **TINY)
    train(TrainConfig(epochs=1, balance="time", **opts), data=data, out=tmp_path / "run")
    assert timed == [1]
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert (config["balance"], config["balance_method"]) == ([5, 1], "time")
    train(TrainConfig(epochs=2, **opts),
          data=data, out=tmp_path / "run", resume=True)  # the saved cut, not a new timing
    assert timed == [1]
    assert json.loads((tmp_path / "run" / "config.json").read_text())["balance"] == [5, 1]


def test_selection_on_valid_by_default_and_on_test_with_the_flag(data, tmp_path):
    import numpy as np
    import pandas as pd

    from bilipop.evaluation.report import evaluate

    on_valid = train(TrainConfig(epochs=1, **TINY), data=data, out=tmp_path / "valid")
    on_test = train(TrainConfig(epochs=1, select_on="test", **TINY), data=data, out=tmp_path / "test")
    split = json.loads((tmp_path / "valid" / "split.json").read_text())
    assert json.loads((tmp_path / "test" / "split.json").read_text()) == split
    table = pd.read_parquet(data / "labeled.parquet").set_index("bvid")
    # history's valid figures are those of the part selected on: its size shows in the ordinal accuracy's grain
    for run, part in ((on_valid, "valid"), (on_test, "test")):
        n = len(split[part])
        acc = run.histories[0][0]["valid_ordinal_accuracy"]
        assert abs(acc * n * 2 - round(acc * n * 2)) < 1e-6  # a multiple of 1/(2n)
        assert len(table.loc[split[part]]) == n
    assert _same_weights(tmp_path / "valid", tmp_path / "test")  # one epoch: the same training either way
    assert json.loads((tmp_path / "test" / "config.json").read_text())["select_on"] == "test"
    report = evaluate(tmp_path / "test")
    assert report.selection.startswith("selected on test (as the study)")
    assert report.metrics.ordinal_accuracy == pytest.approx(on_test.histories[0][0]["valid_ordinal_accuracy"])
    assert evaluate(tmp_path / "valid").selection is None
    from bilipop.errors import InputError

    with pytest.raises(InputError, match="--select-on"):
        train(TrainConfig(epochs=1, select_on="train", **TINY), data=data, out=tmp_path / "bad")
    assert np.isfinite(on_valid.histories[0][0]["valid_loss"])


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


def test_fp16_overflow_skips_the_step_and_the_scaler_state_is_resumed(data, tmp_path, monkeypatch):
    import pandas as pd

    bvids = pd.read_parquet(data / "labeled.parquet")["bvid"].tolist()
    probe = train(TrainConfig(epochs=1, **TINY), data=data, out=tmp_path / "probe")
    train_rows = [bvids.index(b) for b in json.loads((tmp_path / "probe" / "split.json").read_text())["train"]]
    assert probe.histories[0]
    _fp16_on_cpu(monkeypatch, (train_rows[0], train_rows[-1]))
    straight = train(TrainConfig(epochs=2, **TINY), data=data, out=tmp_path / "a")
    for row in straight.histories[0]:
        # each epoch: one step with an infinite loss, one whose gradients overflow; both skipped, none fatal
        assert row["skipped_steps"] == 2 and np.isfinite(row["train_loss"])
    state = torch.load(tmp_path / "a" / "checkpoint.pt", weights_only=True)
    assert state["scaler"]["scale"] == 65536.0 / 2 ** 4  # halved at each of the four skipped steps

    def stop_in_epoch_two(done, total):
        if total and done == 9:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(TrainConfig(epochs=2, **TINY), data=data, out=tmp_path / "b", progress=stop_in_epoch_two)
    assert torch.load(tmp_path / "b" / "checkpoint.pt", weights_only=True)["scaler"]["scale"] == 65536.0 / 4
    resumed = train(TrainConfig(epochs=2, **TINY), data=data, out=tmp_path / "b", resume=True)
    assert _strip(resumed.histories[0]) == _strip(straight.histories[0])
    assert _same_weights(tmp_path / "a", tmp_path / "b")
    # the resumed run continued from the saved scale (a fresh scaler would end at 65536 / 4)
    assert torch.load(tmp_path / "b" / "checkpoint.pt", weights_only=True)["scaler"]["scale"] == 65536.0 / 2 ** 4


def test_a_non_finite_loss_stops_fp32_training_before_the_weights_change(data, tmp_path, monkeypatch):
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
        train(TrainConfig(epochs=2, **TINY), data=data, out=tmp_path / "run")
    state = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)
    assert state["epoch"] == 1 and all(torch.isfinite(v).all() for v in state["model"].values())


def test_the_tiny_tokenizer_is_the_same_in_every_process():
    # Before: the tokenizers WordPiece trainer broke ties between equally frequent pairs differently from one call
    # (and process) to the next, so the same titles and seed gave different vocabularies and different runs.
    import random

    from bilipop.models.tokenizer import train_tiny_tokenizer
    from bilipop.sim.popularity import TitleStyle
    from bilipop.sim.words import TOPICS, make_title

    rng = random.Random(5)
    titles = [make_title(rng, tid, TitleStyle(rng.random() < 0.5, rng.random() < 0.5, rng.random() < 0.3))
              for tid in list(TOPICS) * 40]
    vocabs = [train_tiny_tokenizer(titles).get_vocab() for _ in range(4)]
    code = textwrap.dedent("""
        import json, sys
        from bilipop.models.tokenizer import train_tiny_tokenizer
        print(json.dumps(train_tiny_tokenizer(json.load(sys.stdin)).get_vocab()))
    """)
    for _ in range(2):
        done = subprocess.run([sys.executable, "-c", code], input=json.dumps(titles), capture_output=True,
                              text=True, check=True)
        vocabs.append(json.loads(done.stdout))
    assert all(v == vocabs[0] for v in vocabs)
    tokenizer = train_tiny_tokenizer(titles)
    assert all(tokenizer.unk_token not in tokenizer.tokenize(t) for t in titles)  # every title seen tokenizes
    smaller = train_tiny_tokenizer(titles, vocab_size=len(vocabs[0]) - 10).get_vocab()  # fewer whole words
    assert len(smaller) == len(vocabs[0]) - 10 and set(smaller) < set(vocabs[0])
