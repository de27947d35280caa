"""filter → score → label: the study's numbers, computed by hand, and the CSV/Parquet stage files."""

import math

import numpy as np
import pandas as pd
import pytest

from bilipop.data.filtering import filter_videos
from bilipop.data.io import read_table, write_table
from bilipop.data.labeling import label_videos
from bilipop.data.scoring import score_videos
from bilipop.errors import InputError


def table(**cols):
    n = len(next(iter(cols.values())))
    base = {
        "bvid": [f"BV1{i:09d}" for i in range(n)],
        "views": [0] * n, "likes": [0] * n, "coins": [0] * n, "favorites": [0] * n, "shares": [0] * n,
    }
    base.update(cols)
    return pd.DataFrame(base)


def test_score_matches_hand_computation():
    df = table(views=[0, 10, 20, 30], likes=[4, 4, 0, 0], coins=[1, 2, 3, 10], favorites=[5, 5, 5, 5],
               shares=[1, 0, 0, 0])
    out = score_videos(df)
    # views: mean 15, span 30
    assert out["s_views"].tolist() == pytest.approx([-0.5, -1 / 6, 1 / 6, 0.5], abs=1e-15)
    # likes: mean 2, span 4
    assert out["s_likes"].tolist() == pytest.approx([0.5, 0.5, -0.5, -0.5], abs=1e-15)
    # coins: mean 4, span 9
    assert out["s_coins"].tolist() == pytest.approx([-3 / 9, -2 / 9, -1 / 9, 6 / 9], abs=1e-15)
    # favorites: max == min -> zeros
    assert out["s_favorites"].tolist() == [0.0, 0.0, 0.0, 0.0]
    expected = [0.75 * v + 0.1 * li + 0.1 * c for v, li, c in
                zip([-0.5, -1 / 6, 1 / 6, 0.5], [0.5, 0.5, -0.5, -0.5], [-3 / 9, -2 / 9, -1 / 9, 6 / 9], strict=True)]
    assert np.max(np.abs(out["score"].to_numpy() - expected)) < 1e-12
    # shares weighs 0 by default: its normalised column is kept but does not move the score
    assert out["s_shares"].tolist() == pytest.approx([0.75, -0.25, -0.25, -0.25])


def test_score_ties_and_zero_weights():
    df = table(views=[5, 5, 5, 8], likes=[1, 1, 1, 1])
    out = score_videos(df, weights=[1, 0, 0, 0, 0])
    assert out["score"].tolist() == pytest.approx([-0.25, -0.25, -0.25, 0.75], abs=1e-15)
    assert out["score"].iloc[0] == out["score"].iloc[1] == out["score"].iloc[2]


def test_score_log_norm():
    views = [0, 9, 99, 999]
    out = score_videos(table(views=views), weights=[1, 0, 0, 0, 0], norm="log")
    logs = [math.log1p(v) for v in views]
    mean, span = sum(logs) / 4, max(logs) - min(logs)
    assert np.max(np.abs(out["score"].to_numpy() - [(x - mean) / span for x in logs])) < 1e-12


def test_score_does_not_modify_input():
    df = table(views=[1, 2, 3])
    score_videos(df)
    assert "score" not in df.columns


@pytest.mark.parametrize(
    "weights, message",
    [([0, 0, 0, 0, 0], "all zero"), ([1, -1, 0, 0, 0], "non-negative"), ([1, 1], "needs 5 numbers")],
)
def test_score_rejects_bad_weights(weights, message):
    with pytest.raises(InputError, match=message):
        score_videos(table(views=[1, 2]), weights=weights)


def test_score_error_names_the_video():
    with pytest.raises(InputError, match=r"column views .* \(first at bvid BV1000000001, value -2\)"):
        score_videos(table(views=[1, -2, -3]))
    with pytest.raises(InputError, match=r"first at table row 2,"):
        score_videos(table(views=[1, -2]).drop(columns="bvid"))


def test_score_rejects_negative_and_non_numeric_counters():
    with pytest.raises(InputError, match="negative"):
        score_videos(table(views=[1, -2]))
    with pytest.raises(InputError, match="non-numeric"):
        score_videos(table(likes=["3", "many"]))
    with pytest.raises(InputError, match="missing the columns views, coins"):
        score_videos(pd.DataFrame({"likes": [1]}))


T = (0.00025, 0.0015, 0.005, 0.02)


def test_labels_at_and_around_every_threshold():
    eps = 1e-12
    scores = [-1.0, 0.0]
    expected = [0, 0]
    for k, t in enumerate(T):
        scores += [t - eps, t, t + eps]
        expected += [k, k + 1, k + 1]
    scores.append(5.0)
    expected.append(4)
    out, report = label_videos(pd.DataFrame({"score": scores}))
    assert out["label"].tolist() == expected
    assert report.counts == np.bincount(expected, minlength=5).tolist()
    assert sum(report.shares) == pytest.approx(1.0)


def test_label_warns_on_empty_and_small_classes():
    _, report = label_videos(pd.DataFrame({"score": [0.0] * 30 + [0.03]}))
    assert any("class 1" in w and "empty" in w for w in report.warnings)
    assert any("class 4" in w and "3.2%" in w for w in report.warnings)


@pytest.mark.parametrize("n", [5, 7, 23, 100])
def test_quantiles_give_equal_classes(n):
    rng = np.random.default_rng(n)
    scores = rng.normal(size=n).round(1)  # rounding makes ties
    out, report = label_videos(pd.DataFrame({"score": scores}), quantiles=True)
    counts = np.bincount(out["label"], minlength=5)
    assert counts.max() - counts.min() <= 1
    # ordered: every score in class k+1 is >= every score in class k
    for k in range(4):
        assert out.loc[out.label == k, "score"].max() <= out.loc[out.label == k + 1, "score"].min()
    assert report.quantiles


def test_thresholds_must_increase():
    with pytest.raises(InputError, match="strictly increasing"):
        label_videos(pd.DataFrame({"score": [0.1]}), thresholds=[0.1, 0.1, 0.2, 0.3])
    with pytest.raises(InputError, match="run bilipop score first"):
        label_videos(pd.DataFrame({"views": [1]}))


def test_filter_rules_and_report():
    df = pd.DataFrame({
        "bvid": ["BV1a", "BV1a", "BV1b", "BV1c", "BV1d", "BV1e", "BV1f", "BV1g"],
        "views": [10, 11, 5, -1, 7, 7, 7, None],
        "likes": [1, 1, 1, 1, 1, 1, 1, 1], "coins": [0] * 8, "favorites": [0] * 8, "shares": [0] * 8,
        "followers": [100, 100, 499_999, 10, 500_000, 10, 10, 10],
        "on_hot_list": [True, True, True, True, True, False, True, True],
        "fetched_at": [2, 1, 1, 1, 1, 1, 1, 1],
    })
    out, report = filter_videos(df)
    assert out["bvid"].tolist() == ["BV1a", "BV1b", "BV1f"]
    assert out.loc[0, "views"] == 10  # the newest fetch of BV1a wins
    assert list(report.removed.values()) == [1, 2, 1, 1]
    assert report.input_rows == 8 and report.remaining == 3
    out2, report2 = filter_videos(df, require_hot=False, max_followers=1_000_000)
    assert set(out2["bvid"]) == {"BV1a", "BV1b", "BV1d", "BV1e", "BV1f"}
    assert "uploader never on the hot list" not in report2.removed


def test_filter_needs_its_columns():
    with pytest.raises(InputError, match="followers"):
        filter_videos(pd.DataFrame({"bvid": ["x"], "views": [1], "likes": [1], "coins": [1], "favorites": [1],
                                    "shares": [1], "on_hot_list": [True]}))


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
