"""A ``--vit-weight`` sweep's own files: the study's Table 1 layout (table1.md, table1.csv) and sweep.json, which
lists its runs."""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path

from bilipop.files import atomic_write
from bilipop.layout import SWEEP, TABLE1_CSV, TABLE1_MD


def write_sweep(out: Path, weights: list[float], run_dirs: list[Path], histories: list[list[dict]]) -> Path:
    """table1.csv and table1.md: train and valid ordinal accuracy per weight and epoch, the valid figure with its
    95 % bootstrap interval, so that a reader can see which weights differ beyond the noise."""
    from bilipop.models.run import write_json

    cols = ("vit_weight", "epoch", "train_ordinal_accuracy", "valid_ordinal_accuracy", "valid_ci_low",
            "valid_ci_high")
    rows = [(w, r["epoch"], r["train_ordinal_accuracy"], r["valid_ordinal_accuracy"],
             *(r.get("valid_ordinal_accuracy_ci") or (float("nan"), float("nan"))))
            for w, history in zip(weights, histories, strict=True) for r in history]
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(cols)
    writer.writerows((f"{w:g}", e, f"{a:.4f}", f"{b:.4f}", f"{lo:.4f}", f"{hi:.4f}") for w, e, a, b, lo, hi in rows)
    atomic_write(out / TABLE1_CSV, lambda tmp: tmp.write_text(buf.getvalue(), encoding="utf-8"))
    lines = ["| ViT weight | epoch | train ordinal accuracy | valid ordinal accuracy | valid 95 % interval |",
             "|---:|---:|---:|---:|---:|"]
    lines += [f"| {w:g} | {e} | {a:.4f} | {b:.4f} | [{lo:.4f}, {hi:.4f}] |" for w, e, a, b, lo, hi in rows]
    lines += ["", "Valid = the run's valid part (split.json) unless trained with --select-on test; intervals: 95 % "
              "bootstrap, 1,000 resamples stratified by class. Weights whose intervals overlap may not differ."]
    md = "\n".join(lines) + "\n"
    atomic_write(out / TABLE1_MD, lambda tmp: tmp.write_text(md, encoding="utf-8"))
    write_json(out / SWEEP, {"weights": weights, "runs": [os.path.relpath(d, out) for d in run_dirs]})
    return out / TABLE1_MD
