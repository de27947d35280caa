"""``python -m bilipop.sim``: serve a simulated Bilibili on 127.0.0.1 and print its base URL (first stdout line)."""

from __future__ import annotations

import argparse
import dataclasses
import logging
import signal
import sys
import threading
from pathlib import Path

from bilipop.errors import BilipopError
from bilipop.sim.faults import FaultConfig
from bilipop.sim.server import SimServer

MODES = {"challenge": "sec_challenge", "region": "region_412", "empty-hot-lists": "empty_hot_lists",
         "empty-uploads": "empty_uploads"}


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m bilipop.sim",
        description="Serve a local Bilibili-compatible API, cover images and robots.txt on 127.0.0.1.",
        epilog="Example: python -m bilipop.sim --port 0 --videos 500 --seed 1 --faults 0.1",
    )
    p.add_argument("--port", type=int, default=0, help="TCP port (0: any free one; the URL is printed).")
    p.add_argument("--videos", type=int, default=500,
                   help="Number of Knowledge videos in the world (other sections add about half as many).")
    p.add_argument("--seed", type=int, default=1, help="Seed of the world and of the faults.")
    p.add_argument("--faults", type=float, default=0.0, metavar="P",
                   help="Switch every fault on at probability P (the 2026 block signals: code 0 with v_voucher, "
                        "-352, -401, 429; and -799/-412, 5xx, drops, slow replies, bad images, ...).")
    p.add_argument("--mode", action="append", default=[], choices=sorted(MODES),
                   help="Switch on one of the 2026 refusals (repeatable): challenge (HTTP 412 with X-BILI-SEC-TOKEN "
                        "on every API request), region (view answers 412, nav 200), empty-hot-lists, "
                        "empty-uploads.")
    p.add_argument("--key-rotation", type=float, default=None, metavar="S",
                   help="New WBI keys every S seconds.")
    p.add_argument("--redirect", type=float, default=0.0, metavar="SHARE",
                   help="Share of videos whose view/detail is redirected to another host.")
    p.add_argument("--rate-limit", type=float, default=None, metavar="R",
                   help="Answer HTTP 412 above R API requests per second.")
    p.add_argument("--robots", default="allow",
                   help='"allow", "disallow" (like api.bilibili.com) or the path of a robots.txt file to serve.')
    p.add_argument("--verbose", "-v", action="store_true", help="Log every request to stderr.")
    return p


def config(args: argparse.Namespace) -> FaultConfig:
    """The faults and modes the command line asks for.

    Raises:
        InputError: a value out of range.
    """
    faults = FaultConfig.all(args.faults) if args.faults > 0 else FaultConfig()
    modes = {MODES[m]: True for m in args.mode}
    return dataclasses.replace(faults, key_rotation_s=args.key_rotation, redirect=args.redirect, **modes)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING, stream=sys.stderr,
                        format="%(asctime)s %(name)s: %(message)s")
    if not 0.0 <= args.faults <= 1.0:
        print(f"Error: --faults is a probability between 0 and 1, got {args.faults}; try --faults 0.1.",
              file=sys.stderr)
        return 1
    robots = args.robots
    if robots not in ("allow", "disallow"):
        try:
            robots = Path(robots).read_text(encoding="utf-8")
        except OSError as exc:
            print(f"Error: cannot read robots file {args.robots!r} ({exc.strerror}); give \"allow\", \"disallow\" "
                  "or the path of a readable robots.txt.", file=sys.stderr)
            return 1
    try:
        faults = config(args)
        sim = SimServer(videos=args.videos, seed=args.seed, faults=faults, robots=robots,
                        rate_limit=args.rate_limit, port=args.port)
        sim.start()
    except (BilipopError, OSError) as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 1
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    print(sim.base_url, flush=True)
    try:
        stop.wait()
    except KeyboardInterrupt:
        pass
    finally:
        sim.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
