"""Peak memory of training with 10x more rows: at most 1.2x (covers are decoded lazily, never all held).

Each training runs in a fresh subprocess (1 epoch, tiny models, 64 px covers written at 160x100), which reports its
peak RSS and its RSS right after the imports, so that the growth attributable to the data is visible too.

To reproduce: ``python benchmarks/bench_train_memory.py [--rows 400]`` (the large run uses 10x the rows).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _env import environment  # noqa: E402


def _status_mib(field: str) -> float:
    # VmHWM rather than ru_maxrss: the latter can carry the parent's high-water mark across fork + exec.
    with open("/proc/self/status") as fh:
        line = next(line for line in fh if line.startswith(field + ":"))
    return int(line.split()[1]) / 1024


def child(folder: str) -> None:
    import torch

    from bilipop.train.trainer import train
    from bilipop.train_config import TrainConfig

    torch.set_num_threads(1)
    base = _status_mib("VmRSS")
    train(TrainConfig(vit="tiny", bert="tiny", epochs=1, batch_size=32, num_workers=0),
          data=folder, out=os.path.join(folder, "run"))
    print(json.dumps({"base_mib": base, "peak_mib": _status_mib("VmHWM")}))


def measure(rows: int, tmp: Path) -> dict:
    from PIL import Image

    from bilipop.data.synthetic import make_labeled_dataset

    folder = tmp / f"rows{rows}"
    make_labeled_dataset(folder, n=rows, seed=0, image_size=64)
    for cover in (folder / "covers").iterdir():  # larger than the model input, as real covers are
        with Image.open(cover) as image:
            image.resize((160, 100)).save(cover, quality=90)
    proc = subprocess.run([sys.executable, __file__, "--child", str(folder)], capture_output=True, text=True,
                          check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=400)
    parser.add_argument("--child")
    args = parser.parse_args()
    if args.child:
        child(args.child)
        return
    with tempfile.TemporaryDirectory() as tmp:
        small = measure(args.rows, Path(tmp))
        large = measure(10 * args.rows, Path(tmp))
    print("Result")
    for rows, m in ((args.rows, small), (10 * args.rows, large)):
        print(f"  {rows:6d} rows: peak RSS {m['peak_mib']:7.1f} MiB (after imports {m['base_mib']:6.1f} MiB, "
              f"training adds {m['peak_mib'] - m['base_mib']:6.1f} MiB)")
    print(f"  peak ratio 10x rows / 1x rows: {large['peak_mib'] / small['peak_mib']:.3f}x (target <= 1.2x)")
    import torch  # noqa: F401 - imported here only so that the Environment block names its version

    print("Environment")
    print(environment())


if __name__ == "__main__":
    main()
