"""A training step of the study's own model (ViT-B/16 at 384 px + bert-base-chinese shapes, random weights) on one
CPU: ``bilipop train --random-init`` beside a bare PyTorch loop of the same model on the same batches, each in its
own process, so that the time of the second epoch and the peak RSS compare like with like.

Targets: time <= 1.05x the bare loop's, peak memory <= 1.2x. Small on purpose (12 videos: 5 train rows
in batches of 2, 2 valid rows; two epochs, the second timed): the study-size step is ~10-30 s on 2 cores.

    python benchmarks/bench_study_train.py [--batch-size 2] [--threads 2]
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

BARE = """
import json, resource, sys, time, torch
from pathlib import Path
sys.path.insert(0, sys.argv[4])
from bench_train_overhead import bare_epoch
from bilipop.data.split import make_split
from bilipop.models.factory import create_model
from bilipop.train.dataset import CoverCache, CoverTitleDataset, load_examples, make_loader
data, run, batch = sys.argv[1], sys.argv[2], int(sys.argv[3])
torch.set_num_threads(int(sys.argv[5]))
examples = load_examples(data + "/labeled.parquet", data, covers=True, titles=True)
split = make_split(examples.bvids, examples.labels, seed=0)
index = {b: i for i, b in enumerate(examples.bvids)}
train_titles = [examples.titles[index[b]] for b in split["train"]]
built = create_model(titles=train_titles, seed=0, pretrained=False)
cache = CoverCache(Path(run) / "cover_cache", examples.covers, built.image_size)
dataset = CoverTitleDataset(examples, image_size=built.image_size, tokenizer=built.tokenizer, cache=cache)
loaders = [make_loader(dataset, [index[b] for b in split[part]], batch_size=batch, shuffle=part == "train", seed=0,
                       num_workers=0) for part in ("train", "valid")]
optimizer = torch.optim.AdamW(built.model.parameters(), lr=5e-5)
times = []
for epoch in range(2):
    loaders[0].sampler.set_epoch(epoch)
    times.append(bare_epoch(built.model, loaders, built.image_mean, built.image_std, optimizer))
print(json.dumps({"seconds": times[-1], "rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}))
"""

OURS = """
import json, resource, sys, torch
from bilipop.train.trainer import train
from bilipop.train_config import TrainConfig
torch.set_num_threads(int(sys.argv[4]))
config = TrainConfig(epochs=2, batch_size=int(sys.argv[3]), devices="cpu", num_workers=0, cache=True, seed=0,
                     random_init=True)
result = train(config, data=sys.argv[1], out=sys.argv[2])
print(json.dumps({"seconds": result.histories[0][-1]["seconds"],
                  "rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}))
"""


def child(code: str, *args: str, threads: int) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "HF_HUB_OFFLINE": "1"}
    done = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, env=env)
    if done.returncode:
        raise SystemExit(done.stderr[-3000:])
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    from bilipop.data.synthetic import make_labeled_dataset

    print("Environment\n" + environment() + f"\ntorch threads: {args.threads}; machine shared with other jobs\n")
    with tempfile.TemporaryDirectory() as tmp:
        data, run = Path(tmp) / "data", Path(tmp) / "run"
        make_labeled_dataset(data, n=12, seed=0, image_size=96)
        ours = child(OURS, str(data), str(run), str(args.batch_size), str(args.threads), threads=args.threads)
        print(f"bilipop: {ours}", flush=True)
        here = str(Path(__file__).resolve().parent)
        bare = child(BARE, str(data), str(run), str(args.batch_size), here, str(args.threads), threads=args.threads)
        print(f"bare: {bare}", flush=True)
    t, m = ours["seconds"] / bare["seconds"], ours["rss"] / bare["rss"]
    print(f"epoch 2 (5 train rows in batches of {args.batch_size}, 2 valid rows): bilipop {ours['seconds']:.1f} s, "
          f"bare {bare['seconds']:.1f} s -> {t:.3f}x (target <= 1.05: {'met' if t <= 1.05 else 'NOT MET'})")
    print(f"peak RSS: bilipop {ours['rss'] / 1e9:.2f} GB, bare {bare['rss'] / 1e9:.2f} GB -> {m:.3f}x "
          f"(target <= 1.2: {'met' if m <= 1.2 else 'NOT MET'})")


if __name__ == "__main__":
    main()
