"""bilipop.data.io: reading and writing tables of videos, and the labeled table that train and evaluate read."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from bilipop.data.io import read_labeled, read_table, write_table
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


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_round_trip_keeps_dtypes_and_text(tmp_path, suffix):
    df = pd.DataFrame({
        "bvid": ["BV1xx411c7mD", "BV1yy411c7mE"],
        "title": ["量子力学 🚀 入门", "NA"],
        "owner_name": ["null", "科普君"],
        "views": [12345678901, 0], "followers": [499_999, 3],
        "on_hot_list": [True, False],
        "score": [0.1 + 0.2, -1e-300],
        "label": [4, 0],
    })
    path = write_table(df, tmp_path / f"t{suffix}")
    back = read_table(path)
    assert back["title"].tolist() == ["量子力学 🚀 入门", "NA"]
    assert back["owner_name"].tolist() == ["null", "科普君"]
    assert back["views"].dtype == np.int64 and back["views"].tolist() == [12345678901, 0]
    assert back["on_hot_list"].tolist() == [True, False]
    assert back["score"].tolist() == [0.1 + 0.2, -1e-300]  # exact, not approximately
    assert back["label"].dtype == np.int64
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp files left


def test_failed_write_leaves_nothing(tmp_path):
    class Boom(pd.DataFrame):
        def to_csv(self, *a, **k):
            with open(a[0], "w") as fh:
                fh.write("partial")
            raise OSError("disk full")

    with pytest.raises(InputError, match="cannot write .*out.csv: disk full"):
        write_table(Boom({"a": [1]}), tmp_path / "out.csv")
    assert list(tmp_path.iterdir()) == []
