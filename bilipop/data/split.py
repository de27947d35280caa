"""The train/test split: deterministic, stratified by label, test share 1/11 (the study's train:test = 10:1),
saved as split.json and reused, so that resumed runs, sweeps and ``evaluate`` all see the same test part."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from bilipop.errors import InputError

TEST_SHARE = 1 / 11


def make_split(bvids: Sequence[str], labels: Sequence[int], *, seed: int = 0,
               test_share: float = TEST_SHARE) -> dict:
    """Return ``{"train": [...], "test": [...], "seed": seed}``, each class split in the same proportion.

    Every class with at least two rows puts at least one row in each part; the order of the input does not
    matter (rows are sorted by bvid first).

    Raises:
        InputError: fewer than two rows, duplicate bvids, no class with two rows (no test part), or a test
            share outside (0, 1).
    """
    if not 0 < test_share < 1:
        raise InputError(f"the test share must be between 0 and 1, got {test_share}")
    if len(bvids) != len(labels):
        raise InputError("bvids and labels differ in length")
    if len(set(bvids)) != len(bvids):
        raise InputError("the table has duplicate bvids; run bilipop filter first, which removes them")
    if len(bvids) < 2:
        raise InputError(f"the table has {len(bvids)} row(s); at least 2 are needed to split into train and test")
    rng = np.random.default_rng(seed)
    by_class: dict[int, list[str]] = {}
    for bvid, label in sorted(zip(bvids, labels, strict=True)):
        by_class.setdefault(int(label), []).append(bvid)
    train: list[str] = []
    test: list[str] = []
    for label in sorted(by_class):
        members = by_class[label]
        order = rng.permutation(len(members))
        n_test = int(round(len(members) * test_share))
        if len(members) >= 2:
            n_test = min(max(n_test, 1), len(members) - 1)
        test += [members[i] for i in order[:n_test]]
        train += [members[i] for i in order[n_test:]]
    if not test:
        # Otherwise training reports a valid loss and accuracy of 0 measured on nothing.
        raise InputError(f"the {len(bvids)} rows are each alone in their class, so no test part can be held out; "
                         "at least one class needs two videos (label more data)")
    return {"train": sorted(train), "test": sorted(test), "seed": seed}


def load_or_make_split(path: Path, bvids: Sequence[str], labels: Sequence[int], *, seed: int = 0) -> dict:
    """Reuse ``path`` when it exists (checking it against the table), else make a split and write it.

    Raises:
        InputError: the saved split names videos that are not in the table, or is unreadable.
    """
    from bilipop.data.io import atomic_write

    path = Path(path)
    if path.is_file():
        try:
            split = json.loads(path.read_text(encoding="utf-8"))
            parts = set(split["train"]) | set(split["test"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise InputError(f"cannot read {path}: {exc}; delete it to make a new split") from exc
        missing = parts - set(bvids)
        if missing:
            raise InputError(f"{path} names {len(missing)} video(s) not in the table (e.g. {sorted(missing)[0]}); "
                             "train with the table the run was made from, or use a new --out")
        return split
    split = make_split(bvids, labels, seed=seed)
    atomic_write(path, lambda tmp: tmp.write_text(json.dumps(split) + "\n", encoding="utf-8"))
    return split
