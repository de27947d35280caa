"""``bilipop predict``: cold start and batch throughput, as ratios to bare torch/transformers code.

Targets: the cold start of ``bilipop predict COVER TITLE`` (process start to answer) at most 1.5x a bare script
that imports torch and transformers and loads the same weights and tokenizer; ``predict --batch`` throughput at
least 0.9x the bare model's forward on the same batches. The run is a tiny one trained by this script, so the
forward pass is cheap and the decoding of covers weighs more than it would with the study's ViT-B/16; the bare
loop that also decodes the covers is printed as a second baseline for that reason.

    python benchmarks/bench_predict.py [--rows 512] [--repeats 5]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _env import environment  # noqa: E402

# The bare script imports the model classes that hold these weights (BERT from transformers, the ViT from
# pytorch_pretrained_vit) as any script that runs them must; BARE_MIN skips them, as a stricter second floor.
BARE = """
import sys, torch, transformers
from transformers import BertModel
import pytorch_pretrained_vit
from safetensors.torch import load_file
from PIL import Image
run, cover = sys.argv[1], sys.argv[2]
state = load_file(run + "/model.safetensors")
tokenizer = transformers.AutoTokenizer.from_pretrained(run + "/tokenizer")
with Image.open(cover) as img:
    img.convert("RGB")
print(len(state), tokenizer("标题")["input_ids"][:1])
"""
BARE_MIN = BARE.replace("from transformers import BertModel\nimport pytorch_pretrained_vit\n", "")


def make_run(root: Path) -> tuple[Path, Path]:
    from bilipop.data.synthetic import make_labeled_dataset
    from bilipop.train.trainer import train
    from bilipop.train_config import TrainConfig

    make_labeled_dataset(root / "data", n=120, seed=0, image_size=64)
    run = root / "run"
    train(TrainConfig(vit="tiny", bert="tiny", epochs=1, batch_size=32, devices="cpu", num_workers=0),
          data=root / "data", out=run)
    return run, root / "data"


def timed(cmd: list[str]) -> float:
    start = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd[:4])} failed:\n{done.stderr}")
    return elapsed


def cold_start(run: Path, cover: Path, repeats: int) -> tuple[float, float, float]:
    commands = [
        [sys.executable, "-m", "bilipop", "-q", "predict", str(cover), "一分钟看懂宇宙", "--model", str(run), "--json"],
        [sys.executable, "-c", BARE, str(run), str(cover)],
        [sys.executable, "-c", BARE_MIN, str(run), str(cover)],
    ]
    for cmd in commands:
        timed(cmd)  # warm the file cache for each
    times: list[list[float]] = [[], [], []]
    for _ in range(repeats):  # interleaved, so that machine noise hits all alike
        for cmd, bucket in zip(commands, times, strict=True):
            bucket.append(timed(cmd))
    ours, bare, bare_min = (min(t) for t in times)
    return ours, bare, bare_min


def throughput(run: Path, data: Path, rows: int, repeats: int) -> tuple[float, float, float]:
    import pandas as pd
    import torch

    from bilipop.models.run import load_run
    from bilipop.prediction.predict import BATCH_SIZE, predict_batch

    table = pd.read_parquet(data / "labeled.parquet")
    picks = table.sample(rows, replace=True, random_state=0)
    batch_csv = data / "batch.csv"
    pd.DataFrame({"cover": picks["cover_path"].tolist(), "title": picks["title"].tolist()}).to_csv(batch_csv,
                                                                                                  index=False)
    loaded = load_run(run)
    covers = [data / p for p in picks["cover_path"]]
    titles = picks["title"].tolist()
    slices = [slice(s, min(s + BATCH_SIZE, rows)) for s in range(0, rows, BATCH_SIZE)]
    batches = []
    for part in slices:
        tokens = loaded.tokenize(titles[part])
        batches.append((torch.stack([loaded.preprocess_cover(c) for c in covers[part]]),
                        tokens["input_ids"], tokens["attention_mask"]))

    def forward_only() -> None:
        for images, ids, mask in batches:
            loaded.logits(images, ids, mask)

    def decode_and_forward() -> None:
        for part in slices:
            tokens = loaded.tokenize(titles[part])
            images = torch.stack([loaded.preprocess_cover(c) for c in covers[part]])
            loaded.logits(images, tokens["input_ids"], tokens["attention_mask"])

    def ours() -> None:
        predict_batch(loaded, batch_csv, data / "out.csv", batch_size=BATCH_SIZE)

    runs = {"ours": ours, "forward": forward_only, "decode": decode_and_forward}
    times: dict[str, list[float]] = {name: [] for name in runs}
    for fn in runs.values():
        fn()  # warm-up
    for _ in range(repeats):  # interleaved, so that machine noise hits all alike
        for name, fn in runs.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    results = {name: rows / min(t) for name, t in times.items()}
    return results["ours"], results["forward"], results["decode"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=512, help="rows in the batch file")
    parser.add_argument("--repeats", type=int, default=5, help="timed repetitions (the fastest is reported)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        run, data = make_run(Path(tmp))
        cover = next((data / "covers").glob("*.jpg"))
        ours_s, bare_s, bare_min_s = cold_start(run, cover, args.repeats)
        ours_tp, forward_tp, decode_tp = throughput(run, data, args.rows, args.repeats)
    print("Result")
    print(f"  cold start: bilipop predict {ours_s:.2f} s; bare torch + transformers + model classes + weights "
          f"{bare_s:.2f} s -> {ours_s / bare_s:.2f}x (target <= 1.5x); bare without the model classes "
          f"{bare_min_s:.2f} s -> {ours_s / bare_min_s:.2f}x")
    print(f"  batch throughput ({args.rows} rows, tiny run): bilipop predict --batch {ours_tp:,.0f} rows/s; "
          f"bare forward on ready tensors {forward_tp:,.0f} rows/s -> {ours_tp / forward_tp:.2f}x (target >= 0.9x); "
          f"bare decode + forward {decode_tp:,.0f} rows/s -> {ours_tp / decode_tp:.2f}x")
    print("Environment")
    print(environment())
    print("To Reproduce")
    print(f"  python benchmarks/bench_predict.py --rows {args.rows} --repeats {args.repeats}")


if __name__ == "__main__":
    main()
