"""bilipop.data.split: three disjoint stratified parts, deterministic, saved and checked when reused."""

import json

import pytest

from bilipop.data.split import load_or_make_split, make_split
from bilipop.errors import InputError


def _table(n_per_class=(22, 22, 11, 33, 2)):
    bvids, labels = [], []
    for label, n in enumerate(n_per_class):
        bvids += [f"BV{label}{i:09d}" for i in range(n)]
        labels += [label] * n
    return bvids, labels


def _counts(part, by):
    return [sum(1 for b in part if by[b] == k) for k in range(5)]


def test_three_disjoint_stratified_parts_deterministic_and_order_free():
    bvids, labels = _table()
    split = make_split(bvids, labels, seed=3)
    by = dict(zip(bvids, labels, strict=True))
    # test: 1/11 of each class (a tiny class still gets one row); valid: 1/10 of what is left of each class
    assert _counts(split["test"], by) == [2, 2, 1, 3, 1]
    assert _counts(split["valid"], by) == [2, 2, 1, 3, 0]  # the class of 2 has 1 left: it stays in train
    assert _counts(split["train"], by) == [18, 18, 9, 27, 1]
    parts = [set(split[name]) for name in ("train", "valid", "test")]
    assert parts[0] | parts[1] | parts[2] == set(bvids)
    assert not parts[0] & parts[1] and not parts[0] & parts[2] and not parts[1] & parts[2]
    assert make_split(bvids[::-1], labels[::-1], seed=3) == split
    other = make_split(bvids, labels, seed=4)
    assert other["test"] != split["test"] and other["valid"] != split["valid"]


def test_shares_on_a_large_table():
    bvids, labels = _table((1100, 2200, 3300, 1100, 1100))
    split = make_split(bvids, labels, seed=0)
    by = dict(zip(bvids, labels, strict=True))
    assert _counts(split["test"], by) == [100, 200, 300, 100, 100]
    assert _counts(split["valid"], by) == [100, 200, 300, 100, 100]


def test_saved_split_is_reused_and_checked(tmp_path):
    bvids, labels = _table()
    path = tmp_path / "split.json"
    first = load_or_make_split(path, bvids, labels, seed=0)
    assert json.loads(path.read_text()) == first
    # A different seed does not matter once split.json exists: the saved split wins.
    assert load_or_make_split(path, bvids, labels, seed=9) == first
    with pytest.raises(InputError, match="not in the table"):
        load_or_make_split(path, bvids[5:], labels[5:], seed=0)
    # A damaged split.json is refused, never half-used: a part missing, or a valid part to select on that is empty.
    path.write_text(json.dumps({"train": first["train"] + first["valid"], "test": first["test"], "seed": 0}))
    with pytest.raises(InputError, match="train, valid and test must be lists"):
        load_or_make_split(path, bvids, labels, seed=0)
    path.write_text(json.dumps({**first, "train": first["train"] + first["valid"], "valid": []}))
    with pytest.raises(InputError, match="no valid part"):
        load_or_make_split(path, bvids, labels, seed=0)
    overlapping = {**first, "valid": first["valid"] + first["test"][:1]}
    path.write_text(json.dumps(overlapping))
    with pytest.raises(InputError, match="shares videos"):
        load_or_make_split(path, bvids, labels, seed=0)


def test_split_rejects_bad_tables():
    with pytest.raises(InputError, match="duplicate"):
        make_split(["BV1", "BV1", "BV2"], [0, 0, 1])
    with pytest.raises(InputError, match="at least 3"):
        make_split(["BV1", "BV2"], [0, 0])
    with pytest.raises(InputError, match="no test part"):
        make_split(["BV1", "BV2", "BV3"], [0, 1, 4])  # one row per class: the test part would be empty
    with pytest.raises(InputError, match="no valid part"):
        make_split(["BV1", "BV2", "BV3", "BV4"], [0, 0, 1, 1])  # two per class: test takes one, train the other
