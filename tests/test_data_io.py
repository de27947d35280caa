"""bilipop.data.io: reading and writing tables of videos, and the labeled table that train and evaluate read."""

from __future__ import annotations

import pandas as pd
import pytest

from bilipop.data.io import read_labeled
from bilipop.errors import InputError


def _labeled(tmp_path, labels, **extra) -> str:
    path = tmp_path / "labeled.csv"
    pd.DataFrame({"bvid": [f"BV1{i:09d}" for i in range(len(labels))], "label": labels, **extra}).to_csv(
        path, index=False)
    return str(path)


def test_read_labeled_gives_int64_classes_and_keeps_the_other_columns(tmp_path):
    table = read_labeled(_labeled(tmp_path, [0, 4, 2], title=["a", "b", "c"]), columns=["title"], command="train")
    assert table["label"].dtype == "int64" and table["label"].tolist() == [0, 4, 2]
    assert table["title"].tolist() == ["a", "b", "c"]


@pytest.mark.parametrize("bad", ["5", "-1", "1.5", "", "high"])
def test_read_labeled_refuses_a_label_outside_the_classes_naming_the_video(tmp_path, bad):
    path = _labeled(tmp_path, ["0", bad, "2"])
    with pytest.raises(InputError, match=r"label of .* must hold integers 0\.\.4 \(bvid BV1000000001 has"):
        read_labeled(path, command="evaluate")


def test_read_labeled_names_the_missing_column_and_the_command(tmp_path):
    with pytest.raises(InputError, match="missing the column cover_path; evaluate needs the output of bilipop label"):
        read_labeled(_labeled(tmp_path, [1]), columns=["cover_path"], command="evaluate")


def test_read_labeled_refuses_a_table_without_rows(tmp_path):
    with pytest.raises(InputError, match="has no rows; train needs labeled videos"):
        read_labeled(_labeled(tmp_path, []), command="train")
