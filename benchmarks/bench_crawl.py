"""Crawl cost, throughput, rate-limit accuracy and memory growth against the 2026 stand-in (bilipop.sim).

Claims measured (each crawl runs in a fresh subprocess so its CPU time and peak RSS are its own):
  1. API requests per stored Knowledge video, covers excluded (target <= 1.3), beside a naive design measured on
     the same world in the same run: the same hot lists and upload lists, then ``view`` and ``relation/stat``
     for every upload. Also with ``--widen``.
  2. No limit, N Knowledge videos in the world, with covers: videos per second and crawler CPU per video,
     against the same requests replayed by a bare ``requests`` loop.
  3. ``--rate R``: achieved API rate / R (target >= 0.9) and the most API requests in any 10 s and 1 s window
     (never above R * window).
  4. Peak RSS of a crawl of N videos vs one of N / 10 (target <= 1.2x).
  5. 10 % faults (``FaultConfig.mix``: drops, 5xx, slow and broken replies, 429 and the 2026 block signals on a
     tenth of the API requests, a tenth of the covers broken) with the WBI keys rotating every few seconds, at
     ``--fault-rate`` with the default back-off, beside a fault-free crawl of the same world (target <= 3x the
     time, nothing lost).

To reproduce: ``python benchmarks/bench_crawl.py`` (full: 2,000 Knowledge videos) or ``--videos 500``;
``--only-faults`` runs claim 5 alone.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlencode

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _env import environment  # noqa: E402


def peak_rss_mib() -> float:
    """This process's peak RSS. ``VmHWM`` belongs to the current address space; ``ru_maxrss`` would also count the
    parent's RSS at spawn time (Linux carries the high-water mark across fork + exec)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child_crawl(folder: str, api_base: str, rate: float, widen: bool) -> None:
    """Run one crawl and print its own wall time, CPU time and peak RSS as JSON (the last stdout line)."""
    from bilipop.crawl.crawler import crawl

    start = time.perf_counter()
    summary = crawl(folder, api_base=api_base, rate=rate, cover_rate=0 if rate == 0 else None, widen=widen)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    print(json.dumps({"wall_s": time.perf_counter() - start, "cpu_s": usage.ru_utime + usage.ru_stime,
                      "rss_mib": peak_rss_mib(), "videos": summary.videos, "covers": summary.covers,
                      "requests": summary.requests, "api_requests": summary.api_requests,
                      "examined": summary.examined, "retries": summary.retries, "blocks": summary.blocks,
                      "pauses": summary.pauses, "key_refreshes": summary.key_refreshes,
                      "failed": sum(summary.failed.values())}))


def naive_crawl(api_base: str) -> dict:
    """The design the 2026 crawl is measured against: the same hot lists and upload lists, then for every upload
    ``view`` (v2 ids and counters) and, for each Knowledge one, ``relation/stat`` (followers)."""
    import random

    from bilipop.crawl import api
    from bilipop.crawl.http import HttpClient
    from bilipop.crawl.steps import UPLOADS_PAGE
    from bilipop.crawl.wbi import anti_bot_fields

    client = HttpClient(api_base, rate=0)
    mids: set[int] = set()
    client.get_json("/x/frontend/finger/spi", signed=False)
    lists = [("/x/web-interface/ranking/v2", {"rid": 1010, "type": "all"})]
    pn = 1
    while True:
        envelope = client.get_json("/x/web-interface/popular", {"pn": pn, "ps": 50})
        mids |= {v.owner_mid for v in api.parse_video_list(envelope, "popular")[0]}
        if api.parse_no_more(envelope, "popular"):
            break
        pn += 1
    numbers = api.parse_series_numbers(client.get_json("/x/web-interface/popular/series/list"), "series")
    lists += [("/x/web-interface/popular/series/one", {"number": n}) for n in numbers]
    lists.append(("/x/web-interface/popular/precious", {"page_size": 100, "page": 1}))
    for path, params in lists:
        mids |= {v.owner_mid for v in api.parse_video_list(client.get_json(path, params), path)[0]}
    kept = 0
    rnd = random.Random(0)
    for mid in sorted(mids):
        pn, bvids = 1, []
        while True:
            envelope = client.get_json("/x/space/wbi/arc/search", {"mid": mid, "ps": UPLOADS_PAGE, "pn": pn,
                                                                   **anti_bot_fields(rnd)},
                                       referer=f"https://space.bilibili.com/{mid}")
            page = api.parse_uploads(envelope, "arc/search")
            bvids += [u.bvid for u in page.uploads]
            if not page.uploads or pn * UPLOADS_PAGE >= (page.count or 0):
                break
            pn += 1
        for bvid in bvids:
            envelope = client.get_json("/x/web-interface/view", {"bvid": bvid})
            if envelope["code"] != 0:
                continue
            if api.parse_detail(envelope, "view").video.knowledge:
                client.get_json("/x/relation/stat", {"vmid": mid})
                kept += 1
    client.close()
    return {"api_requests": client.stats.api_requests, "videos": kept}


def child_replay(url_file: str) -> None:
    """The baseline: GET every URL of a file with one plain requests.Session, reading each body."""
    import requests

    urls = Path(url_file).read_text().splitlines()
    session = requests.Session()
    start = time.perf_counter()
    for url in urls:
        session.get(url, timeout=30).content  # noqa: B018
    usage = resource.getrusage(resource.RUSAGE_SELF)
    print(json.dumps({"wall_s": time.perf_counter() - start, "cpu_s": usage.ru_utime + usage.ru_stime,
                      "requests": len(urls)}))


def run_child(*args: str) -> dict:
    done = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        sys.exit(f"child {args[0]} failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def max_in_window(times: list[float], window: float) -> int:
    best, j = 0, 0
    for i, t in enumerate(times):
        while times[j] <= t - window:
            j += 1
        best = max(best, i - j + 1)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--videos", type=int, default=2000, help="Knowledge videos of the large no-limit world")
    parser.add_argument("--rate", type=float, default=5.0, help="--rate of the rate-limit run")
    parser.add_argument("--rate-videos", type=int, default=100, help="world size of the rate-limit run")
    parser.add_argument("--fault-videos", type=int, default=300, help="world size of the fault comparison")
    parser.add_argument("--fault-rate", type=float, default=5.0, help="--rate of the fault comparison")
    parser.add_argument("--key-rotation", type=float, default=3.0, help="seconds between new WBI keys")
    parser.add_argument("--only-faults", action="store_true", help="run the fault comparison (claim 5) alone")
    args = parser.parse_args()

    from bilipop.sim import SimServer

    faults = fault_comparison(args)
    if args.only_faults:
        print("Result")
        print_faults(args, faults)
        print_environment()
        return

    small_n = max(10, args.videos // 10)
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        results = {}
        for name, n in (("small", small_n), ("large", args.videos)):
            with SimServer(videos=n, seed=1) as sim:
                results[name] = run_child("--child-crawl", str(tmp_path / name), sim.base_url, "0", "0")
                recorded = list(sim.requests)
                if name == "large":
                    must_hold = len(sim.truth()["must_hold"])
                    knowledge = len(sim.truth()["knowledge"])
                    results["naive"] = naive_crawl(sim.base_url)
            if name == "large":
                with SimServer(videos=n, seed=1) as sim:
                    results["widen"] = run_child("--child-crawl", str(tmp_path / "widen"), sim.base_url, "0", "1")
                # A fresh server of the same seed (same WBI keys, so the recorded signatures stay valid) draws
                # every cover again, as it did for the crawl: the baseline pays the same server-side cost.
                with SimServer(videos=n, seed=1) as fresh:
                    urls = [f"{fresh.base_url}{path}" + (f"?{urlencode(query)}" if query else "")
                            for _, _, path, query in recorded]
                    (tmp_path / "urls.txt").write_text("\n".join(urls))
                    results["replay"] = run_child("--child-replay", str(tmp_path / "urls.txt"))
        with SimServer(videos=args.rate_videos, seed=2) as sim:
            results["rate"] = run_child("--child-crawl", str(tmp_path / "rate"), sim.base_url, str(args.rate), "0")
            api_times = sorted(t for t, _, path, _ in sim.requests if not path.startswith("/bfs/"))

    large, small, replay, naive, widen = (results[k] for k in ("large", "small", "replay", "naive", "widen"))
    achieved = (len(api_times) - 1) / (api_times[-1] - api_times[0])
    worst10, worst1 = max_in_window(api_times, 10.0), max_in_window(api_times, 1.0)
    ours = large["api_requests"] / large["videos"]
    theirs = naive["api_requests"] / naive["videos"]
    print("Result")
    print(f"  world: {knowledge:,} visible Knowledge videos, {must_hold:,} of them by uploaders on the hot lists")
    print("  API requests per stored Knowledge video (covers excluded), target <= 1.3:")
    print(f"    bilipop: {large['api_requests']:,} requests / {large['videos']:,} videos = {ours:.3f} "
          f"({large['examined']:,} uploads examined)")
    print(f"    naive (list -> view -> relation/stat per video): {naive['api_requests']:,} / {naive['videos']:,} "
          f"= {theirs:.3f} -> bilipop/naive {ours / theirs:.2f}x")
    print(f"    --widen: {widen['api_requests']:,} / {widen['videos']:,} = "
          f"{widen['api_requests'] / widen['videos']:.3f}; {widen['api_requests'] / large['api_requests']:.2f}x the "
          f"requests for {widen['videos'] / large['videos']:.2f}x the videos")
    print(f"  no limit, {large['videos']:,} videos + {large['covers']:,} covers, {large['requests']:,} requests:")
    print(f"    {large['videos'] / large['wall_s']:.1f} videos/s ({large['wall_s']:.1f} s); "
          f"crawler CPU {large['cpu_s'] / large['videos'] * 1000:.2f} ms/video")
    print(f"    baseline, the same {replay['requests']:,} requests replayed by a bare requests loop: "
          f"{replay['wall_s']:.1f} s wall, {replay['cpu_s']:.1f} s CPU -> crawl/baseline wall "
          f"{large['wall_s'] / replay['wall_s']:.2f}x, CPU {large['cpu_s'] / replay['cpu_s']:.2f}x")
    print(f"  --rate {args.rate:g}, {len(api_times)} API requests over {api_times[-1] - api_times[0]:.1f} s: "
          f"achieved/configured {achieved / args.rate:.3f} (target >= 0.9); most in any 10 s window "
          f"{worst10} (limit {args.rate * 10:g}); in any 1 s window {worst1} (limit {args.rate:g})")
    print(f"  peak RSS: {large['videos']:,} videos {large['rss_mib']:.1f} MiB vs {small['videos']:,} videos "
          f"{small['rss_mib']:.1f} MiB -> {large['rss_mib'] / small['rss_mib']:.3f}x (target <= 1.2x)")
    print_faults(args, faults)
    print_environment()


def fault_comparison(args: argparse.Namespace) -> dict:
    """Claim 5: the same world crawled without faults, then through the 10 % mix with rotating keys."""
    from bilipop.sim import FaultConfig, SimServer

    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, faults in (("clean", None), ("faults", FaultConfig.mix(0.1, key_rotation_s=args.key_rotation))):
            with SimServer(videos=args.fault_videos, seed=3, faults=faults) as sim:
                results[name] = run_child("--child-crawl", str(Path(tmp) / name), sim.base_url,
                                          str(args.fault_rate), "0")
                results[name]["must_hold"] = len(sim.truth()["must_hold"])
                results[name]["generations"] = sim.keys.generation
    return results


def print_faults(args: argparse.Namespace, results: dict) -> None:
    clean, faulty = results["clean"], results["faults"]
    print(f"  10 % faults, keys rotating every {args.key_rotation:g} s, --rate {args.fault_rate:g}, default back-off "
          f"(a world of {clean['must_hold']:,} videos to hold):")
    for name, run in (("fault-free", clean), ("10 % faults", faulty)):
        print(f"    {name}: {run['wall_s']:.1f} s, {run['videos']:,}/{run['must_hold']:,} videos, {run['covers']:,} "
              f"covers, {run['api_requests']:,} API requests ({run['retries']:,} retries, {run['blocks']:,} blocks, "
              f"{run['pauses']:,} pauses, {run['key_refreshes']:,} new keys over {run['generations']} rotations, "
              f"{run['failed']:,} videos failed)")
    print(f"    faults/fault-free time {faulty['wall_s'] / clean['wall_s']:.2f}x (target <= 3x); nothing lost: "
          f"{faulty['videos'] == faulty['must_hold'] and faulty['covers'] == faulty['videos']}")


def print_environment() -> None:
    print("Environment")
    import torch  # noqa: F401  (only so that its version is listed: the crawl itself never imports it)

    print(environment())
    print("server: bilipop.sim in the benchmark process, crawler in a subprocess, both on 127.0.0.1")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child-crawl":
        child_crawl(sys.argv[2], sys.argv[3], float(sys.argv[4]), sys.argv[5] == "1")  # widen
    elif len(sys.argv) > 1 and sys.argv[1] == "--child-replay":
        child_replay(sys.argv[2])
    else:
        main()
