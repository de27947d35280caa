"""The train/valid/test split: deterministic, stratified by label, saved as split.json and reused, so that resumed
runs, sweeps and ``evaluate`` all see the same parts.

The test part is 1/11 of the videos (the study's train:test = 10:1); the valid part, on which training reports its
per-epoch figures and chooses the epoch it keeps, is 1/10 of the rest. The test part is then touched by nothing
but ``evaluate`` (unless ``train --select-on test`` reproduces the study's protocol, which chose on it).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from bilipop.errors import InputError

TEST_SHARE = 1 / 11
VALID_SHARE = 1 / 10  # of what the test part leaves
PARTS = ("train", "valid", "test")


def _take(n: int, share: float) -> int:
    """Rows of a class of ``n`` that go to a part of ``share``: at least one and never all, when n >= 2."""
    k = int(round(n * share))
    return min(max(k, 1), n - 1) if n >= 2 else 0


def make_split(bvids: Sequence[str], labels: Sequence[int] | np.ndarray, *, seed: int = 0,
               test_share: float = TEST_SHARE, valid_share: float = VALID_SHARE) -> dict:
    """Return ``{"train": [...], "valid": [...], "test": [...], "seed": seed}``, each class split in the same
    proportions: ``test_share`` of it to test, then ``valid_share`` of the rest to valid.

    A class of two rows or more gives at least one row to test, and one of three or more at least one to valid;
    the order of the input does not matter (rows are sorted by bvid first).

    Raises:
        InputError: fewer than three rows, duplicate bvids, shares outside (0, 1), or classes too small to leave
            any row for the test or the valid part.
    """
    if not 0 < test_share < 1 or not 0 < valid_share < 1:
        raise InputError(f"the test and valid shares must be between 0 and 1, got {test_share} and {valid_share}")
    if len(bvids) != len(labels):
        raise InputError("bvids and labels differ in length")
    if len(set(bvids)) != len(bvids):
        raise InputError("the table has duplicate bvids; run bilipop filter first, which removes them")
    if len(bvids) < 3:
        raise InputError(f"the table has {len(bvids)} row(s); at least 3 are needed to split into train, valid "
                         "and test")
    rng = np.random.default_rng(seed)
    by_class: dict[int, list[str]] = {}
    for bvid, label in sorted(zip(bvids, labels, strict=True)):
        by_class.setdefault(int(label), []).append(bvid)
    parts: dict[str, list[str]] = {name: [] for name in PARTS}
    for label in sorted(by_class):
        members = [by_class[label][i] for i in rng.permutation(len(by_class[label]))]
        n_test = _take(len(members), test_share)
        n_valid = _take(len(members) - n_test, valid_share)
        parts["test"] += members[:n_test]
        parts["valid"] += members[n_test:n_test + n_valid]
        parts["train"] += members[n_test + n_valid:]
    # Otherwise training reports figures measured on nothing.
    if not parts["test"]:
        raise InputError(f"the {len(bvids)} rows are each alone in their class, so no test part can be held out; "
                         "at least one class needs two videos (label more data)")
    if not parts["valid"]:
        raise InputError(f"no class of the {len(bvids)} rows has three videos, so no valid part can be held out "
                         "beside the test part; label more data")
    return {**{name: sorted(rows) for name, rows in parts.items()}, "seed": seed}


def read_split(path: Path) -> dict:
    """The parts saved in ``path``.

    Raises:
        InputError: the file is unreadable, lacks one of the train/valid/test lists, or its parts overlap.
    """
    try:
        split = json.loads(Path(path).read_text(encoding="utf-8"))
        if not all(isinstance(split.get(name), list) for name in PARTS):
            raise TypeError("train, valid and test must be lists")
        parts = {name: [str(b) for b in split[name]] for name in PARTS}
    except (OSError, ValueError, TypeError, AttributeError) as exc:
        raise InputError(f"cannot read {path}: {exc}; delete it to make a new split") from exc
    seen: set[str] = set()
    for name in PARTS:
        if seen & set(parts[name]):
            raise InputError(f"{path}: the {name} part shares videos with another part; the split is damaged")
        seen |= set(parts[name])
    return {**split, **parts}


def load_or_make_split(path: Path, bvids: Sequence[str], labels: Sequence[int] | np.ndarray, *, seed: int = 0) -> dict:
    """Reuse ``path`` when it exists (checking it against the table), else make a split and write it.

    Raises:
        InputError: the saved split names videos that are not in the table, has an empty valid part (training
            would select its epoch on nothing), or is unreadable.
    """
    from bilipop.files import atomic_write

    path = Path(path)
    if path.is_file():
        split = read_split(path)
        if not split["valid"]:
            raise InputError(f"{path} has no valid part, so no epoch can be selected; train again into a new --out")
        missing = set().union(*(split[name] for name in PARTS)) - set(bvids)
        if missing:
            raise InputError(f"{path} names {len(missing)} video(s) not in the table (e.g. {sorted(missing)[0]}); "
                             "train with the table the run was made from, or use a new --out")
        return split
    split = make_split(bvids, labels, seed=seed)
    atomic_write(path, lambda tmp: tmp.write_text(json.dumps(split) + "\n", encoding="utf-8"))
    return split
