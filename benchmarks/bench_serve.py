"""``bilipop serve``: latency of ``POST /api/predict`` beside the bare model on the same input.

Target: the p50 of 50 requests to /api/predict (one cover and one title, keep-alive HTTP client, the server in its
own process as a user runs it) at most 1.5x the p50 of the bare model's forward on the same input, measured in
the same run. Two more baselines are printed: the in-process core call on the same file (decode + tokenize +
forward, what the server does once the upload is in) and a cold ``bilipop predict`` (a fresh process each time,
what a creator waited for before this command existed). The run is a tiny one trained by this script, on CPU.

    python benchmarks/bench_serve.py [--requests 50] [--cover-size 1146x717]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _env import environment  # noqa: E402

TITLE = "三分钟看懂黑洞：为什么连光都逃不出来？"


def make_run(root: Path) -> Path:
    from bilipop.data.synthetic import make_labeled_dataset
    from bilipop.train.trainer import train
    from bilipop.train_config import TrainConfig

    make_labeled_dataset(root / "data", n=120, seed=0, image_size=64)
    run = root / "run"
    train(TrainConfig(vit="tiny", bert="tiny", epochs=1, batch_size=32, devices="cpu", num_workers=0),
          data=root / "data", out=run)
    return run


def make_cover(path: Path, size: tuple[int, int]) -> Path:
    """A JPEG the size of a real upload (Bilibili's recommended 1146 x 717 by default)."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    small = rng.integers(0, 256, (size[1] // 16 + 1, size[0] // 16 + 1, 3), dtype=np.uint8)
    Image.fromarray(small).resize(size, Image.Resampling.BICUBIC).save(path, quality=90)
    return path


def percentiles(times: list[float]) -> tuple[float, float]:
    ordered = sorted(times)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return statistics.median(ordered), p95


@contextmanager
def api_server(run: Path, threads: int) -> Iterator[str]:
    """``bilipop serve`` in its own process, as a user starts it; yields its URL."""
    bilipop = Path(sys.executable).with_name("bilipop")
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    proc = subprocess.Popen([str(bilipop), "serve", "--model", str(run), "--port", "0"], stderr=subprocess.PIPE,
                            text=True, env=env)
    try:
        line = proc.stderr.readline()
        if " on http" not in line:
            raise SystemExit(f"bilipop serve did not start: {line}{proc.stderr.read()}")
        yield line.split(" on ", 1)[1].split()[0]
    finally:
        proc.terminate()
        proc.wait(30)


def latencies(run: Path, cover: Path, requests: int, threads: int) -> dict[str, list[float]]:
    """API, bare forward and in-process core call, interleaved so that machine noise hits all three alike."""
    import httpx
    import torch

    from bilipop.models.run import load_run
    from bilipop.prediction.predict import predict_one

    torch.set_num_threads(threads)
    loaded = load_run(run)
    tokens = loaded.tokenize([TITLE])
    image = loaded.preprocess_cover(cover)[None]  # (1, 3, H, W)
    data = cover.read_bytes()
    answers = {}
    server_ms: list[float] = []
    with api_server(run, threads) as url, httpx.Client(base_url=url, timeout=60, headers={"X-Bilipop": "1"}) as client:
        def api() -> None:
            response = client.post("/api/predict", files={"cover": (cover.name, data, "image/jpeg")},
                                   data={"title": TITLE})
            response.raise_for_status()
            answers["api"] = response.json()
            server_ms.append(float(response.headers["server-timing"].split("dur=")[1]) / 1000)

        def forward() -> None:
            with torch.no_grad():
                loaded.logits(image, tokens["input_ids"], tokens["attention_mask"]).softmax(-1)

        def core() -> None:
            answers["core"] = predict_one(loaded, cover, TITLE).to_json()

        times: dict[str, list[float]] = {"api": [], "forward": [], "core": []}
        calls = {"api": api, "forward": forward, "core": core}
        for i in range(requests + 5):  # 5 warm-up rounds, not counted
            for name, fn in calls.items():
                start = time.perf_counter()
                fn()
                if i >= 5:
                    times[name].append(time.perf_counter() - start)
    if answers["api"] != answers["core"]:
        raise SystemExit(f"the API answered {answers['api']}, the core {answers['core']}")
    times["server"] = server_ms[-requests:]
    return times


def cold_predict(run: Path, cover: Path, repeats: int, threads: int) -> list[float]:
    cmd = [sys.executable, "-m", "bilipop", "-q", "predict", str(cover), TITLE, "--model", str(run), "--json"]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    times = []
    for _ in range(repeats + 1):
        start = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True, env=env)
        times.append(time.perf_counter() - start)
    return times[1:]  # the first one warms the file cache


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=50, help="timed requests (and bare calls)")
    parser.add_argument("--cover-size", default="1146x717", help="the uploaded cover's size, WxH")
    parser.add_argument("--cold", type=int, default=3, help="cold bilipop predict runs")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch intra-op threads, the same for the server, the bare calls and the cold runs "
                             "(1: a tiny model gains nothing from more, and a shared 2-core machine stays fair)")
    args = parser.parse_args()
    size = tuple(int(x) for x in args.cover_size.lower().split("x"))
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        run = make_run(Path(tmp))
        cover = make_cover(Path(tmp) / "cover.jpg", size)  # type: ignore[arg-type]
        times = latencies(run, cover, args.requests, args.threads)
        cold = cold_predict(run, cover, args.cold, args.threads)
    api, forward, core, server = times["api"], times["forward"], times["core"], times["server"]
    (api50, api95), (fw50, fw95), (core50, core95) = percentiles(api), percentiles(forward), percentiles(core)
    srv50, srv95 = percentiles(server)
    cold50 = statistics.median(cold)
    ms = 1000
    print(f"Result (tiny run, CPU, {args.threads} torch thread(s), one {size[0]}x{size[1]} JPEG cover + one title, "
          f"{args.requests} requests)")
    print(f"  POST /api/predict:            p50 {api50 * ms:7.2f} ms  p95 {api95 * ms:7.2f} ms")
    print(f"    of which in the server:     p50 {srv50 * ms:7.2f} ms  p95 {srv95 * ms:7.2f} ms  "
          "(Server-Timing: request received to answer ready)")
    print(f"  bare forward, same input:     p50 {fw50 * ms:7.2f} ms  p95 {fw95 * ms:7.2f} ms  "
          f"-> API p50 {api50 / fw50:.2f}x (target <= 1.5x)")
    print(f"  in-process predict_one:       p50 {core50 * ms:7.2f} ms  p95 {core95 * ms:7.2f} ms  "
          f"-> API p50 {api50 / core50:.2f}x")
    print(f"  cold bilipop predict:         median of {args.cold} {cold50:7.2f} s  "
          f"-> {cold50 / api50:,.0f}x the API's p50")
    print("  the API's answer equals predict_one's: yes")
    print(f"  1-minute load average: {load_before:.1f} before, {os.getloadavg()[0]:.1f} after "
          f"({os.cpu_count()} logical cores; above that, every hand-off between processes waits for a CPU)")
    print("Environment")
    print(environment())
    print("To Reproduce")
    print(f"  python benchmarks/bench_serve.py --requests {args.requests} --cover-size {args.cover_size} "
          f"--threads {args.threads}")


if __name__ == "__main__":
    main()
