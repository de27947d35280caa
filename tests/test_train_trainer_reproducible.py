"""bilipop.train.trainer, bit for bit on CPU: the same command twice, a run killed with SIGKILL and resumed, a
saved timed balance reused on resume, selection on valid or test, and one tiny tokenizer in every process."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from helpers import same_weights, without_seconds  # noqa: E402

from bilipop.train.trainer import train
from bilipop.train_config import TrainConfig

pytestmark = pytest.mark.usefixtures("one_thread")
TINY = dict(vit="tiny", bert="tiny", batch_size=8, num_workers=0)  # dropout stays at its default, 0.1


def _history(run):
    return without_seconds([json.loads(line) for line in (run / "history.jsonl").read_text().splitlines()])


def test_the_same_command_twice_gives_identical_history_and_weights(train_data, tmp_path):
    opts = dict(epochs=2, devices="cpu,cpu", chunks=4, **TINY)  # GPipe, no --balance
    train(TrainConfig(**opts), data=train_data, out=tmp_path / "a")
    train(TrainConfig(**opts), data=train_data, out=tmp_path / "b")
    assert _history(tmp_path / "a") == _history(tmp_path / "b")
    assert same_weights(tmp_path / "a", tmp_path / "b")
    config = json.loads((tmp_path / "a" / "config.json").read_text())
    assert config["balance_method"] == "cost" and sum(config["balance"]) == 6
    assert json.loads((tmp_path / "b" / "config.json").read_text())["balance"] == config["balance"]
    assert config["model"]["vision"]["spec"]["dropout_rate"] == 0.1  # with dropout on


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
def test_sigkill_and_resume_without_balance_equal_an_uninterrupted_run(train_data, tmp_path):
    opts = dict(epochs=2, devices="cpu,cpu", chunks=4, **TINY)
    straight = train(TrainConfig(**opts), data=train_data, out=tmp_path / "straight")
    steps = 7  # 56 train rows / 8 per batch: 7 steps per epoch, so the kill at step 10 is in the middle of epoch 2
    assert len(json.loads((tmp_path / "straight" / "split.json").read_text())["train"]) == 56
    script = tmp_path / "kill.py"
    script.write_text(KILL_SCRIPT)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, str(script), str(train_data), str(tmp_path / "killed"), str(steps + 3)],
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    assert len((tmp_path / "killed" / "history.jsonl").read_text().splitlines()) == 1
    resumed = train(TrainConfig(**opts), data=train_data, out=tmp_path / "killed", resume=True)
    assert without_seconds(resumed.histories[0]) == without_seconds(straight.histories[0])
    assert same_weights(tmp_path / "straight", tmp_path / "killed")
    config = json.loads((tmp_path / "killed" / "config.json").read_text())
    assert config["balance"] == json.loads((tmp_path / "straight" / "config.json").read_text())["balance"]


def test_a_saved_timed_balance_is_reused_on_resume(train_data, tmp_path, monkeypatch):
    from bilipop.train import pipeline

    timed = []

    def fake_timing(model, devices, sample):
        timed.append(1)
        return [5, 1]

    monkeypatch.setattr(pipeline, "time_balance", fake_timing)
    monkeypatch.setattr("bilipop.train.loop.time_balance", fake_timing)
    opts = dict(devices="cpu,cpu", chunks=4, **TINY)
    train(TrainConfig(epochs=1, balance="time", **opts), data=train_data, out=tmp_path / "run")
    assert timed == [1]
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert (config["balance"], config["balance_method"]) == ([5, 1], "time")
    train(TrainConfig(epochs=2, **opts),
          data=train_data, out=tmp_path / "run", resume=True)  # the saved cut, not a new timing
    assert timed == [1]
    assert json.loads((tmp_path / "run" / "config.json").read_text())["balance"] == [5, 1]


def test_selection_on_valid_by_default_and_on_test_with_the_flag(train_data, tmp_path):
    import pandas as pd

    from bilipop.evaluation.report import evaluate

    on_valid = train(TrainConfig(epochs=1, **TINY), data=train_data, out=tmp_path / "valid")
    on_test = train(TrainConfig(epochs=1, select_on="test", **TINY), data=train_data, out=tmp_path / "test")
    split = json.loads((tmp_path / "valid" / "split.json").read_text())
    assert json.loads((tmp_path / "test" / "split.json").read_text()) == split
    table = pd.read_parquet(train_data / "labeled.parquet").set_index("bvid")
    # history's valid figures are those of the part selected on: its size shows in the ordinal accuracy's grain
    for run, part in ((on_valid, "valid"), (on_test, "test")):
        n = len(split[part])
        acc = run.histories[0][0]["valid_ordinal_accuracy"]
        assert abs(acc * n * 2 - round(acc * n * 2)) < 1e-6  # a multiple of 1/(2n)
        assert len(table.loc[split[part]]) == n
    assert same_weights(tmp_path / "valid", tmp_path / "test")  # one epoch: the same training either way
    assert json.loads((tmp_path / "test" / "config.json").read_text())["select_on"] == "test"
    report = evaluate(tmp_path / "test")
    assert report.selection.startswith("selected on test (as the study)")
    assert report.metrics.ordinal_accuracy == pytest.approx(on_test.histories[0][0]["valid_ordinal_accuracy"])
    assert evaluate(tmp_path / "valid").selection is None
    from bilipop.errors import InputError

    with pytest.raises(InputError, match="--select-on"):
        train(TrainConfig(epochs=1, select_on="train", **TINY), data=train_data, out=tmp_path / "bad")
    assert np.isfinite(on_valid.histories[0][0]["valid_loss"])


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
