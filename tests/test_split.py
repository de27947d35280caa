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


def test_split_is_stratified_deterministic_and_order_free():
    bvids, labels = _table()
    split = make_split(bvids, labels, seed=3)
    by = dict(zip(bvids, labels, strict=True))
    test_counts = [sum(1 for b in split["test"] if by[b] == k) for k in range(5)]
    assert test_counts == [2, 2, 1, 3, 1]  # 1/11 of each class, and a tiny class still gets one test row
    assert set(split["train"]) | set(split["test"]) == set(bvids)
    assert not set(split["train"]) & set(split["test"])
    assert make_split(bvids[::-1], labels[::-1], seed=3) == split
    assert make_split(bvids, labels, seed=4)["test"] != split["test"]


def test_saved_split_is_reused_and_checked(tmp_path):
    bvids, labels = _table()
    path = tmp_path / "split.json"
    first = load_or_make_split(path, bvids, labels, seed=0)
    assert json.loads(path.read_text()) == first
    # A different seed does not matter once split.json exists: the saved split wins.
    assert load_or_make_split(path, bvids, labels, seed=9) == first
    with pytest.raises(InputError, match="not in the table"):
        load_or_make_split(path, bvids[5:], labels[5:], seed=0)


def test_split_rejects_bad_tables():
    with pytest.raises(InputError, match="duplicate"):
        make_split(["BV1", "BV1", "BV2"], [0, 0, 1])
    with pytest.raises(InputError, match="at least 2"):
        make_split(["BV1"], [0])
    with pytest.raises(InputError, match="no test part"):
        make_split(["BV1", "BV2", "BV3"], [0, 1, 4])  # one row per class: the test part would be empty
