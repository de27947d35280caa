"""torchrun: two processes (gloo), each driving a GPipe over two CPU devices on half of every batch, end one step
with the same parameters as one process on the full batch."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest
import torch
from safetensors.torch import load_file

from bilipop.data.synthetic import make_labeled_dataset
from bilipop.train.trainer import train

SCRIPT = textwrap.dedent("""
    import sys
    from bilipop.train.trainer import train
    train(data=sys.argv[1], out=sys.argv[2], vit="tiny", bert="tiny", epochs=1, batch_size=44, dropout=0.0,
          devices="cpu,cpu", chunks=2, num_workers=0)
""")


def test_torchrun_two_processes_match_one_process(tmp_path):
    data = tmp_path / "data"
    make_labeled_dataset(data, n=49, seed=4)  # 44 train rows: one step of 22 rows per process
    script = tmp_path / "train_script.py"
    script.write_text(SCRIPT)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    env.pop("WORLD_SIZE", None)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(script),
           str(data), str(tmp_path / "ddp")]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]

    single = train(data=data, out=tmp_path / "single", vit="tiny", bert="tiny", epochs=1, batch_size=44,
                   dropout=0.0, devices="cpu,cpu", chunks=2, num_workers=0)
    assert len(single.histories[0]) == 1
    a = load_file(str(tmp_path / "ddp" / "model.safetensors"))
    b = load_file(str(tmp_path / "single" / "model.safetensors"))
    assert a.keys() == b.keys()
    worst = max((a[k] - b[k]).abs().max().item() for k in a)
    assert worst < 1e-5
    # The step really moved the weights (a comparison of two untouched models would prove nothing).
    moved = torch.load(tmp_path / "single" / "checkpoint.pt", weights_only=True)["optimizer"]["state"]
    assert moved and all(int(s["step"]) == 1 for s in moved.values())


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available() or torch.cuda.device_count() < 2, reason="needs 2 GPUs")
def test_gpipe_over_two_gpus_trains(tmp_path):
    data = tmp_path / "data"
    make_labeled_dataset(data, n=60, seed=1)
    result = train(data=data, out=tmp_path / "run", vit="tiny", bert="tiny", epochs=2, batch_size=16, gpus=2,
                   precision="bf16", num_workers=0)
    assert result.devices == ["cuda:0", "cuda:1"]
    assert all(row["train_loss"] == row["train_loss"] for row in result.histories[0])  # no NaN


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_single_gpu_mixed_precision_learns(tmp_path):
    data = tmp_path / "data"
    make_labeled_dataset(data, n=110, seed=1)
    result = train(data=data, out=tmp_path / "run", vit="tiny", bert="tiny", epochs=4, batch_size=8, gpus=1,
                   precision="bf16", num_workers=0)
    assert result.devices == ["cuda:0"]
    assert max(row["valid_ordinal_accuracy"] for row in result.histories[0]) >= 0.8
