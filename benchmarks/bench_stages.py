"""score + label on a large table, as ratios to a bare pandas read of the same file.

Targets: score + label in under 3x the time of the read; their peak extra memory under 3x the table's in-memory size.

    python benchmarks/bench_stages.py [--rows 1000000]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _env import environment  # noqa: E402

from bilipop.data.io import read_table  # noqa: E402
from bilipop.data.labeling import label_videos  # noqa: E402
from bilipop.data.scoring import score_videos  # noqa: E402


def make_table(rows: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    views = np.floor(rng.lognormal(7, 2.5, rows)).astype(np.int64)
    def share(median):
        return np.floor(views * rng.lognormal(np.log(median), 1.0, rows)).astype(np.int64)
    return pd.DataFrame({
        "bvid": [f"BV1{i:09d}" for i in range(rows)],
        "title": [f"标题 {i % 977} 知识区" for i in range(rows)],
        "views": views, "likes": share(0.019), "coins": share(0.0003), "favorites": share(0.0033),
        "shares": share(0.0001), "followers": rng.integers(0, 1_000_000, rows),
    })


def best_of(repeats: int, fn):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return min(times), result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "scored_input.parquet"
        make_table(args.rows).to_parquet(path, index=False)
        read_s, df = best_of(args.repeats, lambda: pd.read_parquet(path))
        ours_read_s, df = best_of(args.repeats, lambda: read_table(path))
        work_s, _ = best_of(args.repeats, lambda: label_videos(score_videos(df))[0])
        table_bytes = df.memory_usage(deep=True).sum()
        tracemalloc.start()
        label_videos(score_videos(df))
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    print(f"Result ({args.rows:,} rows, best of {args.repeats})")
    print(f"  bare pandas read_parquet:      {read_s:8.3f} s")
    print(f"  bilipop read_table:            {ours_read_s:8.3f} s  ({ours_read_s / read_s:.2f}x the bare read)")
    print(f"  score + label:                 {work_s:8.3f} s  ({work_s / read_s:.2f}x the bare read; target < 3x)")
    print(f"  table in memory:               {table_bytes / 2**20:8.1f} MiB")
    print(f"  peak extra memory (tracemalloc): {peak / 2**20:6.1f} MiB  ({peak / table_bytes:.2f}x the table; "
          "target < 3x)")
    print("Environment")
    print(environment())


if __name__ == "__main__":
    main()
