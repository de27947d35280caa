"""The study's own model at its real size (ViT-B/16 at 384 px + bert-base-chinese, random weights, CPU): what
predict, serve, explain, int8 and a cold start cost, each as a ratio to bare PyTorch code measured in the same run.

Targets: warm ``predict_one`` <= 1.15x a bare decode + preprocess + forward; ``POST /api/predict`` p50
<= 1.2x the in-process ``predict_one`` and <= 1.3x the bare forward; ``predict --batch`` throughput >= 0.9x the bare
forward on ready tensors; explain <= 3x a prediction's model time and peak RSS <= 1.5x a prediction's; int8 forward
>= 1.8x faster than fp32 with the class agreement printed; cold ``bilipop predict`` <= 1.2x a bare script that loads
the same safetensors and runs one forward. The run folder is written here with ``create_model(pretrained=False)``.

    python benchmarks/bench_study.py [--repeats 5] [--requests 10] [--rows 16] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _env import environment  # noqa: E402
from bench_serve import api_server, make_cover, percentiles  # noqa: E402

TITLE = "三分钟看懂黑洞：为什么连光都逃不出来？"

# A bare script: build the two encoders and the head from the run's config, load the same safetensors, one forward.
BARE_COLD = """
import json, sys, torch
from PIL import Image
from safetensors.torch import load_file
from transformers import AutoTokenizer, BertConfig, BertModel
import pytorch_pretrained_vit.model as vm
run, cover, title = sys.argv[1], sys.argv[2], sys.argv[3]
cfg = json.load(open(run + "/config.json"))["model"]
s = cfg["vision"]["spec"]
vm.resize_positional_embedding = False
vit = vm.ViT(name=None, pretrained=False, patches=s["patches"], dim=s["dim"], ff_dim=s["ff_dim"],
             num_heads=s["num_heads"], num_layers=s["num_layers"], image_size=s["image_size"], num_classes=s["out_dim"])
bert = BertModel(BertConfig(**cfg["text"]["config"]), add_pooling_layer=True)
state = load_file(run + "/model.safetensors")
vs, bs, nv = {}, {}, s["num_layers"]
for key, value in state.items():  # bilipop's flat layout back to each library's own key names
    i, rest = key.split(".", 1)
    if rest.startswith("vision_in."):
        vs[rest[10:]] = value
    elif rest.startswith("block.block."):
        vs[f"transformer.blocks.{int(i) - 1}." + rest[12:]] = value
    elif rest.startswith("vision_head."):
        vs[rest[12:]] = value
    elif rest.startswith("text_in."):
        bs[rest[8:]] = value
    elif rest.startswith("block.layer."):
        bs[f"encoder.layer.{int(i) - 1 - nv}." + rest[12:]] = value
    elif rest.startswith("text_head.pooler."):
        bs[rest[10:]] = value
vit.load_state_dict(vs)
bert.load_state_dict(bs)
tok = AutoTokenizer.from_pretrained(run + "/tokenizer")
size = s["image_size"]
with Image.open(cover) as img:
    pixels = torch.frombuffer(bytearray(img.convert("RGB").resize((size, size)).tobytes()), dtype=torch.uint8)
x = (pixels.view(size, size, 3).permute(2, 0, 1).float() / 255 - 0.5) / 0.5
t = tok([title], return_tensors="pt")
with torch.no_grad():
    print(vit(x[None]).shape, bert(**t).pooler_output.shape)
"""

# Peak RSS of one prediction or one explanation, each in its own process (the model loaded the same way).
PEAK = """
import resource, sys, torch
from bilipop.models.run import load_run
from bilipop.prediction.predict import predict_one
torch.set_num_threads(int(sys.argv[4]))
run = load_run(sys.argv[1])
predict_one(run, sys.argv[2], sys.argv[3], explain=sys.argv[5] == "explain")
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
"""


def make_run(root: Path) -> Path:
    """A run folder of the study's architecture with random weights (no training, no download)."""
    from bilipop.models.factory import create_model
    from bilipop.models.run import save_model
    from bilipop.train_config import MAX_TOKENS, TrainConfig

    built = create_model(pretrained=False, titles=[TITLE, "另一个标题 2024"], seed=0)
    config = {"image_size": built.image_size, "image_mean": list(built.image_mean),
              "image_std": list(built.image_std), "max_tokens": MAX_TOKENS, "model": built.arch}
    run = root / "run"
    save_model(run, built.model, built.tokenizer, config, TrainConfig(random_init=True))
    return run


def median_time(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def interleaved(calls: dict, repeats: int) -> dict[str, float]:
    """Median seconds of each call, the calls taken in turn each round (after one warm-up round), so that the
    noise of a shared machine hits all of them alike."""
    times: dict[str, list[float]] = {name: [] for name in calls}
    for round_ in range(repeats + 1):
        for name, fn in calls.items():
            start = time.perf_counter()
            fn()
            if round_:
                times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def peak_rss(run: Path, cover: Path, threads: int, mode: str) -> int:
    out = subprocess.run([sys.executable, "-c", PEAK, str(run), str(cover), TITLE, str(threads), mode],
                         capture_output=True, text=True, check=True)
    return int(out.stdout.strip().splitlines()[-1])


def cold(cmds: dict[str, list[str]], repeats: int, env: dict) -> dict[str, float]:
    """Median wall time of each command in a fresh process, the commands alternating (the first round warms the
    file cache and is not counted)."""
    times: dict[str, list[float]] = {name: [] for name in cmds}
    for round_ in range(repeats + 1):
        for name, cmd in cmds.items():
            start = time.perf_counter()
            subprocess.run(cmd, check=True, capture_output=True, env=env)
            if round_:
                times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def line(name: str, ratio: float, target: str, ok: bool, detail: str) -> None:
    print(f"{name:<44} {ratio:6.2f}x  target {target:<8} {'met' if ok else 'NOT MET'}  ({detail})", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--requests", type=int, default=10)
    parser.add_argument("--rows", type=int, default=16, help="rows of the predict --batch measurement")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--skip", default="", help="comma list of parts to skip: serve,batch,int8,explain,cold")
    args = parser.parse_args()
    skip = set(filter(None, args.skip.split(",")))
    import numpy as np
    import torch

    from bilipop.models.run import load_run
    from bilipop.prediction.explain import attribute
    from bilipop.prediction.predict import predict_batch, predict_one

    torch.set_num_threads(args.threads)
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
    print("Environment\n" + environment() + f"\ntorch threads: {args.threads}; machine shared with other jobs\n")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        start = time.perf_counter()
        run_dir = make_run(root)
        print(f"wrote the study-size run in {time.perf_counter() - start:.1f} s: model.safetensors "
              f"{(run_dir / 'model.safetensors').stat().st_size / 1e6:.0f} MB", flush=True)
        cover = make_cover(root / "cover.jpg", (1146, 717))
        run = load_run(run_dir)
        tokens = run.tokenize([TITLE])
        ids, mask = tokens["input_ids"], tokens["attention_mask"]

        def bare_once() -> None:
            image = run.preprocess_cover(cover)[None]
            t = run.tokenize([TITLE])
            with torch.no_grad():
                run.model.logits(image, t["input_ids"], t["attention_mask"]).softmax(-1)

        image = run.preprocess_cover(cover)[None]

        def forward() -> None:
            with torch.no_grad():
                run.model.logits(image, ids, mask)

        title_arg = TITLE
        timed = interleaved({"forward": forward, "bare": bare_once, "core": lambda: predict_one(run, cover, TITLE),
                             **({} if "explain" in skip else {"explain": lambda: attribute(run, image[0], title_arg)})},
                            args.repeats)
        t_forward, t_bare, t_core = timed["forward"], timed["bare"], timed["core"]
        print(f"\nmodel forward (batch 1) {t_forward:.3f} s; bare decode+preprocess+forward {t_bare:.3f} s; "
              f"predict_one {t_core:.3f} s", flush=True)
        line("warm predict_one / bare decode+forward", t_core / t_bare, "<= 1.15", t_core / t_bare <= 1.15,
             f"{t_core:.3f} s vs {t_bare:.3f} s")

        if "explain" not in skip:
            t_explain = timed["explain"]
            line("explain / prediction model time", t_explain / t_forward, "<= 3", t_explain / t_forward <= 3,
                 f"{t_explain:.3f} s vs forward {t_forward:.3f} s")
            rss_predict = peak_rss(run_dir, cover, args.threads, "predict")
            rss_explain = peak_rss(run_dir, cover, args.threads, "explain")
            line("explain / prediction peak RSS", rss_explain / rss_predict, "<= 1.5", rss_explain / rss_predict <= 1.5,
                 f"{rss_explain / 1e9:.2f} GB vs {rss_predict / 1e9:.2f} GB, each its own process")

        if "batch" not in skip:
            import pandas as pd

            covers = [make_cover(root / f"c{i}.jpg", (1146, 717)) for i in range(args.rows)]
            pd.DataFrame({"cover": [str(c) for c in covers], "title": [TITLE] * args.rows}).to_csv(
                root / "batch.csv", index=False)
            batch = 8
            ready = torch.stack([run.preprocess_cover(c) for c in covers[:batch]])
            rt = run.tokenize([TITLE] * batch)

            def bare_batch() -> None:
                with torch.no_grad():
                    for _ in range(0, args.rows, batch):
                        run.model.logits(ready, rt["input_ids"], rt["attention_mask"])

            t_bare_batch = median_time(bare_batch, max(1, args.repeats // 2))
            t_batch = median_time(lambda: predict_batch(run, root / "batch.csv", root / "out.csv", batch_size=batch),
                                  max(1, args.repeats // 2))
            ratio = t_bare_batch / t_batch
            line("predict --batch throughput / bare forward", ratio, ">= 0.9", ratio >= 0.9,
                 f"{args.rows / t_batch:.2f} vs {args.rows / t_bare_batch:.2f} rows/s, batches of {batch}")

        if "int8" not in skip:
            quantized = load_run(run_dir, quantize="int8")
            g = torch.Generator().manual_seed(0)
            images = torch.rand(8, 3, 384, 384, generator=g) * 2 - 1
            qt = run.tokenize([TITLE] * 8)

            def fp32() -> None:
                with torch.no_grad():
                    run.model.logits(images, qt["input_ids"], qt["attention_mask"])

            def int8() -> None:
                with torch.no_grad():
                    quantized.model.logits(images, qt["input_ids"], qt["attention_mask"])

            t_fp32, t_int8 = median_time(fp32, args.repeats), median_time(int8, args.repeats)
            p32 = run.class_probabilities(images, qt["input_ids"], qt["attention_mask"])
            p8 = quantized.class_probabilities(images, qt["input_ids"], qt["attention_mask"])
            agree = float((p32.argmax(1) == p8.argmax(1)).mean())
            line("int8 forward speed-up over fp32", t_fp32 / t_int8, ">= 1.8", t_fp32 / t_int8 >= 1.8,
                 f"{t_int8:.3f} s vs {t_fp32:.3f} s for 8 covers; class agreement {agree:.0%} on random-weight "
                 f"outputs, max |dp| {np.abs(p32 - p8).max():.4f}")
            del quantized
            from bilipop.models.compress import export_run

            report = export_run(run_dir, root / "bf16", "bf16")
            p16 = load_run(root / "bf16").class_probabilities(images, qt["input_ids"], qt["attention_mask"])
            print(f"{'bf16 export':<44} weights {report.weights_bytes / 1e6:.0f} MB = "
                  f"{report.weights_bytes / report.source_bytes:.0%} of fp32; class agreement "
                  f"{float((p32.argmax(1) == p16.argmax(1)).mean()):.0%}, max |dp| {np.abs(p32 - p16).max():.4f}",
                  flush=True)

        if "serve" not in skip:
            import httpx

            data = cover.read_bytes()
            api_times, core_times, fwd_times = [], [], []
            with api_server(run_dir, args.threads) as url, \
                    httpx.Client(base_url=url, timeout=120, headers={"X-Bilipop": "1"}) as client:
                for i in range(args.requests + 2):
                    start = time.perf_counter()
                    response = client.post("/api/predict", files={"cover": ("c.jpg", data, "image/jpeg")},
                                           data={"title": TITLE})
                    response.raise_for_status()
                    mid = time.perf_counter()
                    predict_one(run, cover, TITLE)
                    end = time.perf_counter()
                    forward()
                    if i >= 2:
                        api_times.append(mid - start)
                        core_times.append(end - mid)
                        fwd_times.append(time.perf_counter() - end)
            api50, core50, fwd50 = (percentiles(t)[0] for t in (api_times, core_times, fwd_times))
            line("POST /api/predict p50 / in-process predict_one", api50 / core50, "<= 1.2", api50 / core50 <= 1.2,
                 f"{api50:.3f} s vs {core50:.3f} s, {args.requests} requests interleaved")
            line("POST /api/predict p50 / bare forward", api50 / fwd50, "<= 1.3", api50 / fwd50 <= 1.3,
                 f"{api50:.3f} s vs {fwd50:.3f} s")

        if "cold" not in skip:
            del run
            repeats = max(1, args.repeats // 2)
            colds = cold({"bilipop": [sys.executable, "-m", "bilipop", "-q", "predict", str(cover), TITLE, "--model",
                                      str(run_dir), "--json"],
                          "bare": [sys.executable, "-c", BARE_COLD, str(run_dir), str(cover), TITLE]}, repeats, env)
            t_cold, t_bare_cold = colds["bilipop"], colds["bare"]
            line("cold bilipop predict / bare load+forward", t_cold / t_bare_cold, "<= 1.2",
                 t_cold / t_bare_cold <= 1.2, f"{t_cold:.2f} s vs {t_bare_cold:.2f} s")
    print(json.dumps({"done": True}))


if __name__ == "__main__":
    main()
