"""bilipop.train.trainer end to end on planted-signal data: it learns, each branch learns only its half, resume
is exact, GPipe training matches plain training, and the cover cache changes nothing but speed."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from bilipop.errors import InputError
from bilipop.models.run import load_run
from bilipop.train.trainer import train
from bilipop.train_config import TrainConfig

pytestmark = pytest.mark.usefixtures("one_thread")
TINY = dict(vit="tiny", bert="tiny", batch_size=8, num_workers=0)


def _best_valid(result, i=0):
    return max(row["valid_ordinal_accuracy"] for row in result.histories[i])


def _baseline(run_dir, part="valid"):
    """Ordinal accuracy of the best constant prediction on a part of the run (valid: where history measures)."""
    import pandas as pd

    config = json.loads((run_dir / "config.json").read_text())
    split = json.loads((run_dir / "split.json").read_text())
    table = pd.read_parquet(config["input"]).set_index("bvid")
    labels = table.loc[split[part], "label"].to_numpy()
    return max(float(np.mean((labels == k) + 0.5 * (np.abs(labels - k) == 1))) for k in range(5))


def test_learns_planted_signal_and_run_folder_is_usable(signal_datasets, tmp_path):
    rows = []
    result = train(
        TrainConfig(epochs=4, **TINY), data=signal_datasets["both"], out=tmp_path / "run", on_epoch=rows.append
    )
    run = tmp_path / "run"
    assert [r["epoch"] for r in rows] == [1, 2, 3, 4] and rows[0]["vit_weight"] == 0.75
    assert result.lr == 1e-3  # tiny models without --lr
    assert _best_valid(result) >= _baseline(run) + 0.3
    history = [json.loads(line) for line in (run / "history.jsonl").read_text().splitlines()]
    assert [h["epoch"] for h in history] == [1, 2, 3, 4]
    assert set(history[0]) == {"epoch", "train_loss", "train_ordinal_accuracy", "valid_loss",
                               "valid_ordinal_accuracy", "valid_ordinal_accuracy_ci", "seconds"}
    lo, hi = history[0]["valid_ordinal_accuracy_ci"]
    assert lo <= history[0]["valid_ordinal_accuracy"] <= hi
    config = json.loads((run / "config.json").read_text())
    for key in ("format_version", "bilipop_version", "data", "input", "vision", "text", "vit", "bert",
                "vit_weight", "image_size", "max_tokens", "num_classes", "label_names", "epochs", "best_epoch",
                "seed", "batch_size", "lr", "devices", "chunks", "checkpoint", "precision", "model", "select_on",
                "balance_method"):
        assert key in config
    split = json.loads((run / "split.json").read_text())
    assert (len(split["test"]), len(split["valid"]), len(split["train"]), split["seed"]) == (10, 10, 90, 0)
    assert config["select_on"] == "valid"

    # The kept weights are the best epoch's: reloading them reproduces that epoch's valid figure exactly.
    import pandas as pd

    loaded = load_run(run)
    table = pd.read_parquet(config["input"]).set_index("bvid").loc[split["valid"]]
    images = torch.stack([loaded.preprocess_cover(signal_datasets["both"] / p) for p in table["cover_path"]])
    enc = loaded.tokenize(list(table["title"]))
    pred = loaded.logits(images, enc["input_ids"], enc["attention_mask"]).argmax(1).numpy()
    gap = np.abs(pred - table["label"].to_numpy())
    best = history[config["best_epoch"] - 1]
    assert float(np.mean((gap == 0) + 0.5 * (gap == 1))) == pytest.approx(best["valid_ordinal_accuracy"])


@pytest.mark.parametrize("signal,w", [("cover", 1.0), ("title", 0.0)])
def test_each_branch_learns_its_half(signal_datasets, tmp_path, signal, w):
    epochs = 10 if w == 0.0 else 3  # the tiny BERT trains from scratch and needs more steps than the ViT
    result = train(
        TrainConfig(vit_weight=[w], epochs=epochs, **TINY), data=signal_datasets[signal], out=tmp_path / "run"
    )
    assert _best_valid(result) >= _baseline(tmp_path / "run") + 0.3


def test_cover_only_model_learns_nothing_from_titles(signal_datasets, tmp_path):
    # Title-signal data, cover-only model: the covers carry no class, so it stays near the constant guess.
    result = train(TrainConfig(vit_weight=[1.0], epochs=3, **TINY), data=signal_datasets["title"], out=tmp_path / "run")
    mean_valid = np.mean([row["valid_ordinal_accuracy"] for row in result.histories[0]])
    assert mean_valid <= _baseline(tmp_path / "run") + 0.15


def _weights(path):
    return load_file(str(path))


@pytest.mark.parametrize("workers", [0, 1])
def test_resume_after_interruption_reproduces_the_run(signal_datasets, tmp_path, workers):
    opts = {**TINY, "num_workers": workers}
    straight = train(TrainConfig(epochs=2, **opts), data=signal_datasets["both"], out=tmp_path / "a")

    def stop_in_epoch_two(done, total):
        if total and done == 15:  # 13 steps per epoch: this is the middle of epoch 2
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(
            TrainConfig(epochs=2, **opts), data=signal_datasets["both"], out=tmp_path / "b", progress=stop_in_epoch_two
        )
    assert len((tmp_path / "b" / "history.jsonl").read_text().splitlines()) == 1
    resumed = train(TrainConfig(epochs=2, **opts), data=signal_datasets["both"], out=tmp_path / "b", resume=True)

    def strip(history):
        return [{k: v for k, v in row.items() if k != "seconds"} for row in history]

    assert strip(resumed.histories[0]) == strip(straight.histories[0])
    a, b = _weights(tmp_path / "a" / "model.safetensors"), _weights(tmp_path / "b" / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    last_a = torch.load(tmp_path / "a" / "checkpoint.pt", weights_only=True)["model"]
    last_b = torch.load(tmp_path / "b" / "checkpoint.pt", weights_only=True)["model"]
    assert all(torch.equal(last_a[k], last_b[k]) for k in last_a)
    # More epochs on top of a finished run continue from its last epoch.
    more = train(TrainConfig(epochs=3, **opts), data=signal_datasets["both"], out=tmp_path / "a", resume=True)
    assert [r["epoch"] for r in more.histories[0]] == [1, 2, 3]


def test_resume_reads_the_checkpoint_once_and_refuses_other_settings(signal_datasets, tmp_path, monkeypatch):
    train(TrainConfig(epochs=1, **TINY), data=signal_datasets["both"], out=tmp_path / "a")
    with pytest.raises(InputError, match="was trained with --seed 0, not 1; resume with the same settings"):
        train(TrainConfig(epochs=2, seed=1, **TINY), data=signal_datasets["both"], out=tmp_path / "a", resume=True)
    reads = []
    load = torch.load

    def counted(path, *args, **kwargs):
        reads.append(str(path))
        return load(path, *args, **kwargs)

    monkeypatch.setattr(torch, "load", counted)
    more = train(TrainConfig(epochs=2, **TINY), data=signal_datasets["both"], out=tmp_path / "a", resume=True)
    assert [r["epoch"] for r in more.histories[0]] == [1, 2]
    assert [p for p in reads if p.endswith("checkpoint.pt")] == [str(tmp_path / "a" / "checkpoint.pt")]


def test_resume_of_a_run_interrupted_before_its_first_checkpoint_starts_it_over(signal_datasets, tmp_path):
    # Stopped in epoch 1 the folder holds config.json but no checkpoint.pt: --resume must not refuse it (training
    # without --resume refuses the folder too, which left no way on but a new --out).
    straight = train(TrainConfig(epochs=1, **TINY), data=signal_datasets["both"], out=tmp_path / "a")

    def stop_in_epoch_one(done, total):
        if total and done == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(
            TrainConfig(epochs=1, **TINY), data=signal_datasets["both"], out=tmp_path / "b", progress=stop_in_epoch_one
        )
    assert (tmp_path / "b" / "config.json").is_file() and not (tmp_path / "b" / "checkpoint.pt").exists()
    resumed = train(TrainConfig(epochs=1, **TINY), data=signal_datasets["both"], out=tmp_path / "b", resume=True)
    assert [{k: v for k, v in r.items() if k != "seconds"} for r in resumed.histories[0]] == \
        [{k: v for k, v in r.items() if k != "seconds"} for r in straight.histories[0]]
    # A run whose checkpoint went missing after an epoch is still refused: starting over would lose that epoch.
    (tmp_path / "a" / "checkpoint.pt").unlink()
    with pytest.raises(InputError, match="no checkpoint.pt"):
        train(TrainConfig(epochs=2, **TINY), data=signal_datasets["both"], out=tmp_path / "a", resume=True)


def test_gpipe_training_matches_plain_training(signal_datasets, tmp_path):
    common = dict(epochs=1, dropout=0.0, vit="tiny", bert="tiny", batch_size=8)
    plain = train(TrainConfig(**common), data=signal_datasets["both"], out=tmp_path / "plain")
    piped = train(TrainConfig(devices="cpu,cpu", chunks=4, balance=[2, 4], checkpoint="always", **common),
                  data=signal_datasets["both"], out=tmp_path / "piped")
    for p, q in zip(plain.histories[0], piped.histories[0], strict=True):
        for key in ("train_loss", "valid_loss", "train_ordinal_accuracy", "valid_ordinal_accuracy"):
            assert p[key] == pytest.approx(q[key], abs=1e-4)
    assert json.loads((tmp_path / "piped" / "config.json").read_text())["balance"] == [2, 4]
    a, b = _weights(tmp_path / "plain" / "model.safetensors"), _weights(tmp_path / "piped" / "model.safetensors")
    assert max((a[k] - b[k]).abs().max().item() for k in a) < 1e-4


def test_cover_cache_changes_nothing_but_speed(signal_datasets, tmp_path):
    plain = train(
        TrainConfig(vit_weight=[1.0], epochs=2, **TINY), data=signal_datasets["cover"], out=tmp_path / "plain"
    )
    # Two loader processes fill the shared memmap in epoch 1 and read it in epoch 2.
    cached = train(TrainConfig(vit_weight=[1.0], epochs=2, cache=True, **{**TINY, "num_workers": 2}),
                   data=signal_datasets["cover"], out=tmp_path / "cached")
    strip = [[{k: v for k, v in r.items() if k != "seconds"} for r in res.histories[0]] for res in (plain, cached)]
    assert strip[0] == strip[1]
    done = np.load(tmp_path / "cached" / "cover_cache" / "covers_32px.done.npy")
    assert done.all() and done.shape == (110,)
