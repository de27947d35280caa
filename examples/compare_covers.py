"""Rank candidate covers and titles for one video with bilipop's Python API.

    python examples/compare_covers.py --model runs/first --cover a.jpg --cover b.jpg \
        --title "三分钟看懂黑洞" --title "黑洞到底是什么？"

Every cover is paired with every title; the pairs are printed best first by expected class (0 = very low,
4 = very high), so a creator can see which combination the model expects to do best and by how much.
"""

from __future__ import annotations

import argparse

from bilipop.models.run import load_run
from bilipop.prediction.predict import rank_candidates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="a run folder written by bilipop train")
    parser.add_argument("--cover", action="append", required=True, help="a candidate cover (repeat)")
    parser.add_argument("--title", action="append", required=True, help="a candidate title (repeat)")
    args = parser.parse_args()

    run = load_run(args.model)  # load once, score every combination in one batch
    ranked = rank_candidates(run, args.cover, args.title)
    best = ranked[0].prediction.expected_class
    for rank, candidate in enumerate(ranked, start=1):
        p = candidate.prediction
        print(f"{rank:2d}. expected {p.expected_class:.2f} ({p.expected_class - best:+.2f} vs the best)  "
              f"class {p.label} {p.label_name:<9}  {candidate.cover}  {candidate.title}")


if __name__ == "__main__":
    main()
