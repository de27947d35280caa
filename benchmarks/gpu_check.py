"""The Python half of ``benchmarks/gpu_check.sh``: a training step at the study's real sizes, plain and through
GPipe, and the cover loader beside the GPU's consumption, written as one Markdown report.

Measured (each in the same run, on the same machine):
  * ViT-B/16 at 384 px + BERT-base shapes (random init; no weights to download), late fusion w = 0.75, bf16
    autocast, AdamW: ms/step, samples/s, peak GPU memory and model FLOPs utilisation (MFU: forward FLOPs counted
    by ``torch.utils.flop_counter`` x 3 for forward + backward, over the GPU's dense bf16 peak), plain on one GPU
    and through GPipe (over every GPU, or cuda:0 twice when there is one: the pipeline's cost without its gain),
    and their step-time ratio.
  * The cover loader: covers/s decoded and resized to 384 px by 4 worker processes from synthetic 1146x717 JPEGs
    (a Bilibili cover's size), against the covers/s the plain training step consumes.

``--dry-run`` runs the same code on the CPU with tiny sizes, so the script itself is tested without a GPU.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch  # noqa: E402
from _env import environment  # noqa: E402

#: Dense bf16 peak (no sparsity) by device-name fragment, in TFLOP/s; BILIPOP_PEAK_TFLOPS overrides.
PEAK_BF16_TFLOPS = {"H200": 989.0, "H100 SXM": 989.0, "H100 PCIe": 756.0, "H100": 989.0, "A100": 312.0,
                    "L40S": 362.0, "A10G": 125.0, "L4": 121.0, "RTX 4090": 165.0, "A6000": 155.0}


def study_arch(dry: bool) -> dict:
    """config.json "model" entry of the study's model (or a tiny one for --dry-run)."""
    from bilipop.models.vision import ViTSpec

    if dry:
        vit = ViTSpec(patches=8, dim=64, ff_dim=128, num_heads=2, num_layers=4, image_size=64, out_dim=64)
        bert = dict(vocab_size=500, hidden_size=64, num_hidden_layers=4, num_attention_heads=2,
                    intermediate_size=128, max_position_embeddings=64)
        out_dim = 64
    else:
        vit = ViTSpec()  # ViT-B/16 at 384 px: 12 blocks, hidden 768, MLP 3072, 12 heads
        bert = dict(vocab_size=21128, hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                    intermediate_size=3072, max_position_embeddings=512)  # bert-base-chinese's shapes
        out_dim = 1000
    return {"vit_weight": 0.75, "out_dim": out_dim, "num_classes": 5, "outputs": 5,
            "vision": {"kind": "vit", "spec": vit.to_dict()}, "text": {"kind": "bert", "config": bert}}


def make_batch(arch: dict, batch: int, tokens: int, device: torch.device):
    g = torch.Generator().manual_seed(0)
    size = arch["vision"]["spec"]["image_size"]
    images = torch.randn(batch, 3, size, size, generator=g)
    ids = torch.randint(5, arch["text"]["config"]["vocab_size"], (batch, tokens), generator=g)
    mask = torch.ones(batch, tokens, dtype=torch.long)
    labels = torch.randint(0, 5, (batch,), generator=g)
    return [t.to(device) for t in (images, ids, mask)], labels


def forward_flops(model, inputs) -> int:
    from torch.utils.flop_counter import FlopCounterMode

    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(model.pack(*inputs))
    return int(counter.get_total_flops())


def sync(devices) -> None:
    for d in {str(d) for d in devices}:
        if d.startswith("cuda"):
            torch.cuda.synchronize(d)


def time_steps(module, model, inputs, labels, devices, warmup: int, steps: int) -> float:
    """Median seconds per training step (forward, backward, AdamW step)."""
    optimizer = torch.optim.AdamW(module.parameters(), lr=1e-5)
    packed = model.pack(*inputs)
    target = labels.to(devices[-1])
    times = []
    for i in range(warmup + steps):
        sync(devices)
        started = time.perf_counter()
        out = module(packed)
        logits = out[0] if isinstance(out, tuple) else out
        loss = torch.nn.functional.cross_entropy(logits, target)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        sync(devices)
        if i >= warmup:
            times.append(time.perf_counter() - started)
    return sorted(times)[len(times) // 2]


def peak_tflops(dry: bool) -> tuple[float | None, str]:
    if os.environ.get("BILIPOP_PEAK_TFLOPS"):
        return float(os.environ["BILIPOP_PEAK_TFLOPS"]), "BILIPOP_PEAK_TFLOPS"
    if dry or not torch.cuda.is_available():
        return None, "no GPU"
    name = torch.cuda.get_device_name(0)
    for fragment, value in PEAK_BF16_TFLOPS.items():
        if fragment in name:
            return value, f"dense bf16 peak of {fragment}"
    return None, f"unknown peak for {name}: set BILIPOP_PEAK_TFLOPS"


def train_step_rows(args) -> tuple[list[dict], list[str]]:
    from bilipop.models.factory import build_from_arch
    from bilipop.train.pipeline import build_pipeline, check_chunks, cost_balance

    notes = []
    arch = study_arch(args.dry_run)
    if args.dry_run:
        plain_devices = [torch.device("cpu")]
        pipe_devices = [torch.device("cpu")] * 2
    else:
        n = torch.cuda.device_count()
        plain_devices = [torch.device("cuda", 0)]
        pipe_devices = [torch.device("cuda", i) for i in range(n)] if n > 1 else [torch.device("cuda", 0)] * 2
        if n == 1:
            notes.append("one GPU: GPipe runs its two stages both on cuda:0, which measures the pipeline's overhead "
                         "(micro-batches, recompute, copies) without its gain")
    autocast = (plain_devices[0].type, torch.bfloat16)
    peak, peak_source = peak_tflops(args.dry_run)
    rows = []
    torch.manual_seed(0)
    model = build_from_arch(arch)
    model.set_autocast(autocast)
    inputs, labels = make_batch(arch, args.batch, args.tokens, torch.device("cpu"))
    flops = forward_flops(model, [t[:1] for t in inputs]) * args.batch * 3  # forward + backward ~ 3 forwards
    for mode in ("plain", "gpipe"):
        torch.manual_seed(0)
        model = build_from_arch(arch)
        model.set_autocast(autocast)
        devices = plain_devices if mode == "plain" else pipe_devices
        if not args.dry_run:
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
        try:
            if mode == "plain":
                module = model.to(devices[0])
                balance, chunks = None, 1
            else:
                chunks = check_chunks(None, args.batch, len(devices))
                sample = model.pack(*[t[:2] for t in inputs])
                balance = cost_balance(model, len(devices), sample)
                module = build_pipeline(model, devices, chunks=chunks, balance=balance, checkpoint="except_last",
                                        sample=sample)
            on = [t.to(devices[0]) for t in inputs]
            seconds = time_steps(module, model, on, labels, devices, args.warmup, args.steps)
        except Exception as exc:  # report, do not abort the whole check: the other half still tells something
            rows.append({"mode": mode, "error": f"{type(exc).__name__}: {str(exc).splitlines()[0][:300]}"})
            continue
        peak_mem = None if args.dry_run else max(torch.cuda.max_memory_allocated(d) for d in
                                                 {d for d in devices}) / 2 ** 30
        achieved = flops / seconds / 1e12
        rows.append({"mode": mode, "devices": ",".join(map(str, devices)), "balance": balance, "chunks": chunks,
                     "ms_per_step": seconds * 1000, "samples_per_s": args.batch / seconds,
                     "peak_memory_gib": peak_mem, "tflops": achieved,
                     "mfu": achieved / peak if peak else None})
        del module, model
    notes.append(f"MFU peak: {peak_source}" + (f" ({peak:g} TFLOP/s)" if peak else ""))
    notes.append(f"model FLOPs per step: {flops / 1e12:.2f} TFLOP (forward counted, x 3 for the backward), "
                 f"batch {args.batch}, {args.tokens} title tokens")
    return rows, notes


def loader_row(args, consumed_per_s: float | None) -> dict:
    import numpy as np
    from PIL import Image

    from bilipop.train.dataset import CoverTitleDataset, Examples, make_loader

    size = 64 if args.dry_run else 384
    with tempfile.TemporaryDirectory() as tmp:
        rng = np.random.default_rng(0)
        covers = []
        base = rng.integers(0, 255, (717, 1146, 3), dtype=np.uint8)
        for i in range(args.covers):
            path = Path(tmp) / f"c{i}.jpg"
            Image.fromarray(np.roll(base, i * 7, axis=1)).save(path, quality=90)
            covers.append(path)
        examples = Examples([f"BV{i:010d}" for i in range(len(covers))], ["t"] * len(covers), covers,
                            np.zeros(len(covers), dtype=np.int64))
        dataset = CoverTitleDataset(examples, image_size=size)
        loader = make_loader(dataset, range(len(covers)), batch_size=32, shuffle=False, seed=0,
                             num_workers=args.workers)
        for _ in loader:  # epoch 1 starts the (persistent) workers and warms the file cache
            pass
        started, n = time.perf_counter(), 0
        for batch in loader:  # epoch 2, timed from its first request to its last batch
            n += batch[0].shape[0]
        seconds = time.perf_counter() - started
    rate = n / seconds if seconds > 0 else float("nan")
    return {"workers": args.workers, "image_size": size, "covers": n, "covers_per_s": rate,
            "gpu_consumes_per_s": consumed_per_s,
            "keeps_up": None if not consumed_per_s else rate >= consumed_per_s}


def _fmt(value, digits=1, suffix=""):
    return "–" if value is None else f"{value:,.{digits}f}{suffix}"


def report(args, rows, notes, loader, pytest_summary: str) -> str:
    gpu = "none (dry run on the CPU, tiny sizes)" if args.dry_run else ", ".join(
        f"cuda:{i} {torch.cuda.get_device_name(i)}" for i in range(torch.cuda.device_count()))
    lines = [f"# bilipop GPU check — {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}", "",
             "## Result", "", f"**pytest -m gpu**: {pytest_summary}", "",
             "**Training step**, " + ("tiny ViT + tiny BERT at 64 px (dry run)" if args.dry_run else
                                      "ViT-B/16 at 384 px + BERT-base shapes, random init")
             + ", late fusion w = 0.75, bf16 autocast, AdamW, checkpoint except_last for GPipe", "",
             "| mode | devices | balance | chunks | ms/step | samples/s | peak memory | TFLOP/s | MFU |",
             "|---|---|---|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['mode']} | failed: {r['error']} | | | | | | | |")
            continue
        lines.append(f"| {r['mode']} | {r['devices']} | {','.join(map(str, r['balance'] or [])) or '–'} | "
                     f"{r['chunks']} | {_fmt(r['ms_per_step'])} | {_fmt(r['samples_per_s'])} | "
                     f"{_fmt(r['peak_memory_gib'], 2, ' GiB')} | {_fmt(r['tflops'], 2)} | "
                     f"{_fmt(None if r['mfu'] is None else 100 * r['mfu'], 1, ' %')} |")
    ok = {r["mode"]: r for r in rows if "error" not in r}
    if len(ok) == 2:
        lines += ["", f"GPipe / plain step time: **{ok['gpipe']['ms_per_step'] / ok['plain']['ms_per_step']:.2f}x**"]
    lines += ["", f"**Cover loader**, {loader['workers']} workers, {loader['image_size']} px, "
              f"{loader['covers']} synthetic 1146x717 JPEGs: {_fmt(loader['covers_per_s'])} covers/s; the plain "
              f"step consumes {_fmt(loader['gpu_consumes_per_s'])} covers/s: "
              + ("keeps up" if loader["keeps_up"] else "does NOT keep up (use --cache or more workers)"
                 if loader["keeps_up"] is False else "–")]
    lines += ["", *[f"- {n}" for n in notes], "", "## Environment", "", "```",
              f"GPU: {gpu}", f"CUDA: {torch.version.cuda}", environment(), "```", "", "## To reproduce", "",
              "```", "benchmarks/gpu_check.sh REPORT.md" + ("   # --dry-run: CPU, tiny sizes" if args.dry_run
                                                          else ""), "```", ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="Markdown report to write")
    parser.add_argument("--pytest-summary", default="not run")
    parser.add_argument("--dry-run", action="store_true", help="CPU, tiny sizes: checks the script, not a GPU")
    parser.add_argument("--batch", type=int, default=None)
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--warmup", type=int, default=None)
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--covers", type=int, default=None)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--json", type=Path, default=None, help="also write the raw figures here")
    args = parser.parse_args()
    if not args.dry_run and not torch.cuda.is_available():
        sys.exit("gpu_check: no CUDA GPU is visible; use --dry-run to check the script on the CPU")
    args.batch = args.batch or (8 if args.dry_run else 32)
    args.tokens = min(args.tokens, 32) if args.dry_run else args.tokens
    args.warmup = args.warmup if args.warmup is not None else (1 if args.dry_run else 3)
    args.steps = args.steps or (2 if args.dry_run else 10)
    args.covers = args.covers or (64 if args.dry_run else 512)
    if args.dry_run:
        torch.set_num_threads(max(1, min(4, os.cpu_count() or 1)))
    rows, notes = train_step_rows(args)
    plain = next((r for r in rows if r["mode"] == "plain" and "error" not in r), None)
    loader = loader_row(args, plain["samples_per_s"] if plain else None)
    text = report(args, rows, notes, loader, args.pytest_summary)
    args.out.write_text(text, encoding="utf-8")
    if args.json:
        args.json.write_text(json.dumps({"train": rows, "loader": loader, "notes": notes}, indent=2))
    print(text)


if __name__ == "__main__":
    main()
