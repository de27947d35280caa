"""``bilipop demo``'s cost: wall and CPU time of each phase, best of 3, each run in a fresh process and folder.

Claims: (1) the whole demo, interpreter start and imports included, runs in under 40 s on two cores, the crawl in
under 15 s; (2) the sim draws a cover the crawler asks for (``@480w_270h_1c.jpg``) many times faster than by
drawing the full-size source, encoding, decoding and resizing it (the baseline, timed in the same run).

On a shared machine the wall time depends on what else runs; the CPU time (user + system of the process) does
not much, and on an otherwise idle machine the demo's wall time is about its CPU time (it runs on one thread).

    python benchmarks/bench_demo.py [--repeats 3] [--videos N] [--epochs N] [--seed 0]   (default: the demo's own)
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _env import environment  # noqa: E402


def one_run(folder: str, videos: int, epochs: int, seed: int) -> dict:
    """In the child: run the demo through its core function and time each phase."""
    started_cpu = time.process_time()
    from bilipop.demo import STAGES, run_demo

    marks: dict[str, tuple[float, float]] = {}
    phases: dict[str, dict[str, float]] = {}

    def on_start(name: str) -> None:
        marks[name] = (time.perf_counter(), time.process_time())

    def on_done(name: str, result: object) -> None:
        wall, cpu = marks[name]
        phases[name] = {"wall": time.perf_counter() - wall, "cpu": time.process_time() - cpu}

    result = run_demo(folder, videos=videos, epochs=epochs, seed=seed, on_start=on_start, on_done=on_done)
    v = result.verdict
    return {"phases": {name: phases[name] for name in STAGES}, "cpu_total": time.process_time() - started_cpu,
            "verdict": {"ordinal_accuracy": v.ordinal_accuracy, "best_constant": v.best_constant,
                        "difference_ci": v.ci, "qwk": v.qwk, "n": v.n, "beats": v.beats},
            "found_best": result.question.found_best}


def timed_child(videos: int, epochs: int, seed: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="bench-demo-") as folder:
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        out = subprocess.run([sys.executable, __file__, "--child", folder, "--videos", str(videos),
                              "--epochs", str(epochs), "--seed", str(seed)], check=True, capture_output=True,
                             text=True).stdout
        wall = time.perf_counter() - started
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
    data = json.loads(out.strip().splitlines()[-1])
    data["wall_process"] = wall
    data["cpu_process"] = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return data


def cover_costs(n: int = 40) -> tuple[float, float]:
    """ms per crawler-sized cover: drawn at that size (now) vs drawn full size and resized (before)."""
    from bilipop.sim import images
    from bilipop.sim.world import World

    videos = [v for v in World(400, 1).videos if v.cover_width >= 1280][:n]

    def per_cover(fn) -> float:
        best = float("inf")
        for _ in range(3):
            started = time.perf_counter()
            for v in videos:
                fn(v)
            best = min(best, (time.perf_counter() - started) / len(videos) * 1000)
        return best

    def now(v) -> bytes:
        return images.encode(images.draw_cover(v, images.fitted_size(v.cover_width, v.cover_height, 480, 270)),
                             "jpg", None)

    def before(v) -> bytes:
        return images.variant(images.encode(images.draw_cover(v), v.cover_ext), "480w_270h_1c.jpg")[0]

    return per_cover(now), per_cover(before)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--videos", type=int, default=None)
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    from bilipop.demo import DEMO_EPOCHS, DEMO_VIDEOS, STAGES

    videos, epochs = args.videos or DEMO_VIDEOS, args.epochs or DEMO_EPOCHS
    if args.child:
        print(json.dumps(one_run(args.child, videos, epochs, args.seed)))
        return

    load_before = os.getloadavg()
    runs = [timed_child(videos, epochs, args.seed) for _ in range(args.repeats)]
    load_after = os.getloadavg()
    now_ms, before_ms = cover_costs()

    def best(key: str, phase: str | None = None) -> float:
        return min(r["phases"][phase][key] if phase else r[key] for r in runs)

    print(f"Result (--videos {videos} --epochs {epochs} --seed {args.seed}; best of {args.repeats}, each a fresh "
          "process and folder)")
    print(f"  {'phase':<10} {'wall s':>8} {'CPU s':>8}")
    for phase in STAGES:
        print(f"  {phase:<10} {best('wall', phase):8.2f} {best('cpu', phase):8.2f}")
    crawl_ok = best("wall", "crawl") < 15
    total_ok = best("wall_process") < 40
    print(f"  {'whole':<10} {best('wall_process'):8.2f} {best('cpu_process'):8.2f}   (interpreter start and "
          "imports included)")
    print(f"  target: whole < 40 s wall -> {'met' if total_ok else 'NOT met'}; crawl < 15 s wall -> "
          f"{'met' if crawl_ok else 'NOT met'}")
    for r in runs:
        v = r["verdict"]
        print(f"  run: ordinal accuracy {v['ordinal_accuracy']:.3f} vs best constant {v['best_constant']:.3f}, "
              f"difference's 95% interval {v['difference_ci'][0]:+.3f} to {v['difference_ci'][1]:+.3f}, "
              f"QWK {v['qwk']:.3f}, n = {v['n']}, "
              f"beats: {v['beats']}, ranking found the best pair: {r['found_best']}; whole {r['wall_process']:.1f} s "
              f"wall, {r['cpu_process']:.1f} s CPU")
    print(f"  cover at 480x270 for the crawler: {now_ms:.1f} ms drawn at that size vs {before_ms:.1f} ms drawn full "
          f"size and resized (baseline) = {before_ms / now_ms:.1f}x faster")
    print(f"  load average (1/5/15 min) before {load_before[0]:.2f}/{load_before[1]:.2f}/{load_before[2]:.2f}, "
          f"after {load_after[0]:.2f}/{load_after[1]:.2f}/{load_after[2]:.2f}")
    print("Environment")
    import numpy  # noqa: F401  (listed in the Environment block)
    import PIL  # noqa: F401
    import torch  # noqa: F401
    import transformers  # noqa: F401

    print(environment())


if __name__ == "__main__":
    main()
