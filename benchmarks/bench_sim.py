"""The local Bilibili server's speed, as ratios to a bare http.server answering a fixed JSON in the same run.

Claims: (1) a signed ``view`` costs the sim little more than a bare server's reply, so crawler tests are bound by the
crawler, not by the sim; (2) sending each reply in one segment avoids the ~40 ms delayed-ACK stall per request;
(3) covers are drawn on request and cached: start-up draws none (it stays well under a second for 5,000 videos)
and a cached cover is much cheaper than a first one.

    python benchmarks/bench_sim.py [--requests 300] [--videos 500]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from threading import Thread

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _env import environment  # noqa: E402

from bilipop.crawl import wbi  # noqa: E402
from bilipop.sim import SimServer  # noqa: E402
from bilipop.sim.handler import Handler  # noqa: E402

FIXED = json.dumps({"code": 0, "message": "0", "ttl": 1, "data": {"x": "y" * 1500}}).encode()


class _Bare(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    wbufsize = 64 * 1024
    disable_nagle_algorithm = True

    def do_GET(self) -> None:  # noqa: N802
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(FIXED)))
        self.end_headers()
        self.wfile.write(FIXED)

    def log_message(self, *args: object) -> None:
        pass


def per_second(n: int, fn) -> float:
    start = time.perf_counter()
    for i in range(n):
        fn(i)
    return n / (time.perf_counter() - start)


def bare_rate(n: int) -> float:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Bare)
    httpd.daemon_threads = True
    Thread(target=httpd.serve_forever, daemon=True).start()
    session, url = requests.Session(), f"http://127.0.0.1:{httpd.server_address[1]}/x"
    try:
        return per_second(n, lambda i: session.get(url, timeout=5))
    finally:
        httpd.shutdown()
        httpd.server_close()


def view_rate(sim: SimServer, n: int) -> float:
    session = requests.Session()
    img = session.get(sim.base_url + "/x/web-interface/nav", timeout=5).json()["data"]["wbi_img"]
    mixin = wbi.mixin_key(wbi.key_from_url(img["img_url"]), wbi.key_from_url(img["sub_url"]))
    bvids = [v.bvid for v in sim.world.videos]

    def one(i: int) -> None:
        reply = session.get(sim.base_url + "/x/web-interface/view",
                            params=wbi.sign({"bvid": bvids[i % len(bvids)]}, mixin), timeout=5).json()
        if reply["code"] != 0:
            raise RuntimeError(reply)

    return per_second(n, one)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--videos", type=int, default=500)
    args = parser.parse_args()
    n = args.requests

    bare = bare_rate(n)
    with SimServer(videos=args.videos, seed=1) as sim:
        view = view_rate(sim, n)
        session = requests.Session()
        pics = [v for v in sim.world.videos if v.cover_ext == "jpg" and v.cover_width == 1920][:20]
        cold = per_second(len(pics), lambda i: session.get(f"{sim.base_url}/bfs/archive/{pics[i].cover}.jpg"))
        warm = per_second(len(pics), lambda i: session.get(f"{sim.base_url}/bfs/archive/{pics[i].cover}.jpg"))
    # The same sim with the standard library's default of unbuffered replies (headers and body apart).
    handler = Handler
    saved = handler.wbufsize, handler.disable_nagle_algorithm
    handler.wbufsize, handler.disable_nagle_algorithm = 0, False
    try:
        with SimServer(videos=args.videos, seed=1) as sim:
            unbuffered = view_rate(sim, max(20, n // 10))
    finally:
        handler.wbufsize, handler.disable_nagle_algorithm = saved

    starts = {}
    for size in (args.videos, args.videos * 10):
        t = time.perf_counter()
        SimServer(videos=size, seed=1)
        starts[size] = time.perf_counter() - t

    print("Result")
    print(f"  bare http.server, fixed 1.5 kB JSON:   {bare:8.1f} requests/s (baseline)")
    print(f"  sim signed view:                       {view:8.1f} requests/s = {view / bare:.2f}x baseline")
    print(f"  sim view, unbuffered replies:          {unbuffered:8.1f} requests/s = {unbuffered / bare:.2f}x baseline"
          f" (one-segment replies are {view / unbuffered:.1f}x faster)")
    print(f"  1920x1080 JPEG cover, first request:   {cold:8.1f} covers/s")
    print(f"  same cover, cached:                    {warm:8.1f} covers/s = {warm / cold:.1f}x the first request")
    print(f"  world start-up, {args.videos} videos:          {starts[args.videos] * 1000:8.1f} ms")
    print(f"  world start-up, {args.videos * 10} videos:         {starts[args.videos * 10] * 1000:8.1f} ms "
          f"= {starts[args.videos * 10] / starts[args.videos]:.1f}x for 10x the videos (no cover drawn yet)")
    print(f"  settings: --requests {n} --videos {args.videos}")
    print("Environment")
    print(environment())


if __name__ == "__main__":
    main()
