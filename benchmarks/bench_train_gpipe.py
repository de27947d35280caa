"""GPipe over CPU devices: measured step time for K partitions and M micro-batches next to the bubble model.

Model: with K equal partitions on K independent workers, a step takes (T1 / K) * (M + K - 1) / M, where T1 is the
plain single-device step; the idle (bubble) fraction is (K - 1) / (M + K - 1).

Finding: torchgpipe 0.0.7 binds one worker thread per *distinct* device (``worker.spawn_workers``), so every
"cpu" partition shares one thread and CPU partitions never overlap. On CPU devices the measured column is therefore
the cost of micro-batching (smaller kernels, scheduling, copies), not a pipeline speedup; the bubble model applies
to distinct GPUs. CPU devices exist to test the pipeline's correctness (tests/test_train_pipeline.py).

To reproduce: ``python benchmarks/bench_train_gpipe.py [--batch 48 --steps 5]``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _env import environment  # noqa: E402


def small_model():
    from bilipop.models.fusion import FusionModel
    from bilipop.models.text import build_bert, split_bert
    from bilipop.models.vision import ViTSpec, build_vit, split_vision

    torch.manual_seed(0)
    vit = build_vit(ViTSpec(patches=8, dim=128, ff_dim=512, num_heads=4, num_layers=6, dropout_rate=0.0,
                            image_size=64, out_dim=64))
    bert = build_bert({"vocab_size": 500, "hidden_size": 128, "num_hidden_layers": 6, "num_attention_heads": 4,
                       "intermediate_size": 512, "max_position_embeddings": 64, "hidden_dropout_prob": 0.0,
                       "attention_probs_dropout_prob": 0.0})
    return FusionModel(split_vision(vit), split_bert(bert, 64), vit_weight=0.75, out_dim=64)


def step_time(module, inputs, labels, steps: int) -> float:
    def one() -> None:
        out = module(inputs)
        logits = out[0] if isinstance(out, tuple) else out
        torch.nn.functional.cross_entropy(logits, labels).backward()

    one()  # warm-up
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        one()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--batch", type=int, default=48)
    parser.add_argument("--steps", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(1)

    from bilipop.train.pipeline import build_pipeline

    model = small_model()
    g = torch.Generator().manual_seed(0)
    images = torch.randn(args.batch, 3, 64, 64, generator=g)
    ids = torch.randint(5, 500, (args.batch, 32), generator=g)
    mask = torch.ones(args.batch, 32, dtype=torch.long)
    labels = torch.randint(0, 5, (args.batch,), generator=g)
    inputs = model.pack(images, ids, mask)
    t1 = step_time(model, inputs, labels, args.steps)
    n = len(model)  # 1 input + 6 ViT + 6 BERT + 1 head
    rows = []
    for k, balance in ((2, [7, 7]), (3, [5, 5, 4])):
        for m in (1, 2, 4, 8, 12):
            gpipe = build_pipeline(small_model(), ["cpu"] * k, chunks=m, balance=balance,
                                   checkpoint="never", sample=inputs)
            tk = step_time(gpipe, inputs, labels, args.steps)
            rows.append((k, m, balance, tk, (k - 1) / (m + k - 1), k * m / (m + k - 1), t1 / tk))

    print("Result")
    print(f"  ViT (6 blocks, dim 128, 64 px) + BERT (6 layers, dim 128, 32 tokens), batch {args.batch}, "
          f"{n} pipeline layers, forward+backward, checkpoint=never, 1 intra-op thread per partition")
    print(f"  plain model, one device: {t1 * 1000:.0f} ms/step")
    print("  K  M  balance   ms/step  bubble (K-1)/(M+K-1)  model speedup  measured speedup")
    for k, m, balance, tk, bubble, model_speedup, measured in rows:
        print(f"  {k}  {m:<2} {','.join(map(str, balance)):<9} {tk * 1000:7.0f}  {bubble:20.2f}  "
              f"{model_speedup:13.2f}  {measured:16.2f}")
    print("  note: torchgpipe runs all 'cpu' partitions in one worker thread: no overlap on CPU (see docstring)")
    print("Environment")
    print(environment())


if __name__ == "__main__":
    main()
