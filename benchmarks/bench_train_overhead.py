"""Training-step overhead of bilipop's loop against a bare PyTorch loop on the same tiny model and batches.

Claim: one epoch of ``bilipop.train`` (train + valid pass, history, best-weights and checkpoint files) takes at
most 1.05x the time of a bare loop doing only forward, cross-entropy, backward and AdamW over the same loaders.
Both use the cover cache (filled by a first epoch that is not timed) so that JPEG decoding is out of the picture.
The fastest epoch of each is compared: on a shared machine, the minimum is the figure least disturbed by others.

To reproduce: ``python benchmarks/bench_train_overhead.py [--rows 600 --epochs 4]``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _env import environment  # noqa: E402


def bare_epoch(model, loaders, mean, std, optimizer) -> float:
    from bilipop.models.preprocess import to_tensor

    start = time.perf_counter()
    model.train()
    for images, ids, mask, labels, _rows in loaders[0]:
        logits = model.logits(to_tensor(images, mean, std), ids, mask)
        loss = torch.nn.functional.cross_entropy(logits, labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    model.eval()
    with torch.no_grad():
        for images, ids, mask, _labels, _rows in loaders[1]:
            model.logits(to_tensor(images, mean, std), ids, mask)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=600)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads, the same for both loops")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from bilipop.data.split import make_split
    from bilipop.data.synthetic import make_labeled_dataset
    from bilipop.models.factory import create_model
    from bilipop.train.dataset import CoverCache, CoverTitleDataset, load_examples, make_loader
    from bilipop.train.trainer import train
    from bilipop.train_config import TrainConfig

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        table = make_labeled_dataset(tmp / "data", n=args.rows, seed=0, image_size=96)
        common = dict(vit="tiny", bert="tiny", batch_size=args.batch_size, num_workers=0, cache=True, seed=0)
        result = train(TrainConfig(epochs=args.epochs + 1, **common), data=tmp / "data", out=tmp / "run")
        ours = [row["seconds"] for row in result.histories[0][1:]]  # epoch 1 fills the cache

        examples = load_examples(table, tmp / "data", covers=True, titles=True)
        split = make_split(examples.bvids, examples.labels, seed=0)
        built = create_model(vit="tiny", bert="tiny", vit_weight=0.75, titles=examples.titles, seed=0)
        cache = CoverCache(tmp / "run" / "cover_cache", examples.covers, built.image_size)  # already filled
        dataset = CoverTitleDataset(examples, image_size=built.image_size, tokenizer=built.tokenizer, cache=cache)
        index = {b: i for i, b in enumerate(examples.bvids)}
        loaders = [make_loader(dataset, [index[b] for b in split[part]], batch_size=args.batch_size,
                               shuffle=part == "train", seed=0, num_workers=0) for part in ("train", "valid")]
        optimizer = torch.optim.AdamW(built.model.parameters(), lr=1e-3)
        bare_epoch(built.model, loaders, built.image_mean, built.image_std, optimizer)  # warm-up
        bare = []
        for epoch in range(args.epochs):
            loaders[0].sampler.set_epoch(epoch)
            bare.append(bare_epoch(built.model, loaders, built.image_mean, built.image_std, optimizer))

    ratio = min(ours) / min(bare)
    print("Result")
    print(f"  rows={args.rows} batch={args.batch_size} epochs timed={args.epochs} threads={args.threads} (tiny ViT "
          "+ tiny BERT, cached covers)")
    print(f"  bilipop epoch (fastest): {min(ours) * 1000:.1f} ms   epochs: "
          f"{', '.join(f'{s * 1000:.0f}' for s in ours)}")
    print(f"  bare loop epoch (fastest): {min(bare) * 1000:.1f} ms   epochs: "
          f"{', '.join(f'{s * 1000:.0f}' for s in bare)}")
    print(f"  overhead ratio bilipop / bare: {ratio:.3f}x (target <= 1.05x)")
    print("Environment")
    print(environment())


if __name__ == "__main__":
    main()
