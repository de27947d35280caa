"""torchrun: two processes (gloo), each driving a GPipe over two CPU devices on half of every batch, end two epochs
(6 steps, the second epoch resumed) with the parameters of one process on the full batch; the cover cache is
built by one process per machine."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from bilipop.data.synthetic import make_labeled_dataset
from bilipop.train.trainer import train
from bilipop.train_config import TrainConfig

SCRIPT = textwrap.dedent("""
    import os, sys
    from pathlib import Path
    from bilipop.train import dataset
    from bilipop.train.trainer import train
    from bilipop.train_config import TrainConfig

    fill = dataset.CoverCache.fill

    def counted_fill(self, bvids):  # leaves a mark per process that builds the cache
        Path(sys.argv[2]).parent.joinpath(f"filled_by_{os.environ['LOCAL_RANK']}").touch()
        return fill(self, bvids)

    dataset.CoverCache.fill = counted_fill
    config = TrainConfig(vit="tiny", bert="tiny", epochs=int(sys.argv[3]), batch_size=16, devices="cpu,cpu",
                         chunks=2, num_workers=0, cache=True)
    train(config, data=sys.argv[1], out=sys.argv[2], resume=sys.argv[4] == "resume")
""")


def _torchrun(script, data, out, epochs, resume):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    env.pop("WORLD_SIZE", None)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(script),
           str(data), str(out), str(epochs), "resume" if resume else "fresh"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]


@pytest.mark.slow  # torchrun starts three training processes, about 40 s
def test_torchrun_two_processes_match_one_process_and_resume(tmp_path):
    data = tmp_path / "data"
    make_labeled_dataset(data, n=58, seed=4)  # 48 train rows: 3 steps of 16 (8 per process) per epoch
    script = tmp_path / "train_script.py"
    script.write_text(SCRIPT)
    runs = tmp_path / "runs"
    _torchrun(script, data, runs / "ddp", 1, resume=False)
    _torchrun(script, data, runs / "ddp", 2, resume=True)  # the second epoch, resumed by both processes
    # the cover cache was built once per machine, by LOCAL_RANK 0, while the other process waited
    assert sorted(p.name for p in runs.glob("filled_by_*")) == ["filled_by_0"]
    assert np.load(runs / "ddp" / "cover_cache" / "covers_32px.done.npy").all()

    # dropout stays on: its masks follow the dataset row, not the process that reads it
    single = train(TrainConfig(vit="tiny", bert="tiny", epochs=2, batch_size=16, devices="cpu,cpu", chunks=2,
                               num_workers=0), data=data, out=tmp_path / "single")
    ddp_history = [json.loads(line) for line in (runs / "ddp" / "history.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in ddp_history] == [1, 2]
    for a, b in zip(ddp_history, single.histories[0], strict=True):
        assert a["train_loss"] == pytest.approx(b["train_loss"], abs=1e-4)
    a = load_file(str(runs / "ddp" / "model.safetensors"))
    b = load_file(str(tmp_path / "single" / "model.safetensors"))
    assert a.keys() == b.keys()
    worst = max((a[k] - b[k]).abs().max().item() for k in a)
    assert worst < 1e-4  # the same training up to float rounding (the two halves' gradients are summed by DDP)
    # The steps really moved the weights: 3 per epoch, 6 in all.
    moved = torch.load(runs / "ddp" / "checkpoint.pt", weights_only=True)["optimizer"]["state"]
    assert moved and all(int(s["step"]) == 6 for s in moved.values())


def test_a_last_batch_that_does_not_split_into_the_chunks_is_dropped_under_torchrun():
    from bilipop.train.trainer import ragged_last_batch

    # 50 rows over 2 processes: 25 each, batches of 8, a last batch of 1 that 2 micro-batches cannot share
    assert ragged_last_batch(50, 2, 8, 2) == 1
    assert ragged_last_batch(48, 2, 8, 2) == 0  # full batches only
    assert ragged_last_batch(52, 2, 8, 2) == 0  # a last batch of 2: two micro-batches of 1
    assert ragged_last_batch(53, 2, 8, 2) == 3  # 27 each (padded): a last batch of 3


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available() or torch.cuda.device_count() < 2, reason="needs 2 GPUs")
def test_gpipe_over_two_gpus_trains(tmp_path):
    data = tmp_path / "data"
    make_labeled_dataset(data, n=60, seed=1)
    result = train(TrainConfig(vit="tiny", bert="tiny", epochs=2, batch_size=16, gpus=2, precision="bf16",
                               num_workers=0), data=data, out=tmp_path / "run")
    assert result.devices == ["cuda:0", "cuda:1"]
    assert all(row["train_loss"] == row["train_loss"] for row in result.histories[0])  # no NaN


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_single_gpu_mixed_precision_learns(tmp_path):
    data = tmp_path / "data"
    make_labeled_dataset(data, n=110, seed=1)
    result = train(TrainConfig(vit="tiny", bert="tiny", epochs=4, batch_size=8, gpus=1, precision="bf16",
                               num_workers=0), data=data, out=tmp_path / "run")
    assert result.devices == ["cuda:0"]
    assert max(row["valid_ordinal_accuracy"] for row in result.histories[0]) >= 0.8


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_fp16_on_a_gpu_saves_and_resumes_the_grad_scaler(tmp_path):
    data = tmp_path / "data"
    make_labeled_dataset(data, n=60, seed=1)
    result = train(TrainConfig(vit="tiny", bert="tiny", epochs=1, batch_size=8, gpus=1, precision="fp16",
                               num_workers=0), data=data, out=tmp_path / "run")
    assert all(np.isfinite(row["train_loss"]) and "skipped_steps" in row for row in result.histories[0])
    state = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)
    assert state["scaler"] and state["scaler"]["scale"] > 0
    more = train(TrainConfig(vit="tiny", bert="tiny", epochs=2, batch_size=8, gpus=1, precision="fp16",
                             num_workers=0), data=data, out=tmp_path / "run", resume=True)
    assert [r["epoch"] for r in more.histories[0]] == [1, 2]


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_dropout_masks_are_the_same_on_the_gpu_as_on_the_cpu():
    from bilipop.models.noise import keep_mask

    rows = torch.tensor([3, 17, 4096, 70000])
    cpu = keep_mask(torch.Size([4, 12, 65, 65]), rows, 123456, 0.1)
    gpu = keep_mask(torch.Size([4, 12, 65, 65]), rows.cuda(), 123456, 0.1)
    assert torch.equal(cpu, gpu.cpu())
