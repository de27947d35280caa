"""bilipop.data.labeling: labels at and around the thresholds, quantile and by-age classes, outlier-proof rank
labels, and the warning that names a video which alone moves many labels."""

import math

import numpy as np
import pandas as pd
import pytest
from helpers import DAY, aged_table  # noqa: E402
from typer.testing import CliRunner

from bilipop.cli import app
from bilipop.data.labeling import OUTLIER_SHARE, label_videos
from bilipop.data.scoring import MIN_AGE_S, score_videos
from bilipop.errors import InputError

runner = CliRunner()


# -- --norm rank and the outlier check ---------------------------------------------------------------------------
def lognormal_table(n=3000, seed=1):
    rng = np.random.default_rng(seed)
    views = np.exp(rng.normal(9, 1.5, n)).astype(np.int64)
    cols = {k: (views * np.exp(rng.normal(math.log(r), 0.5, n))).astype(np.int64)
            for k, r in (("likes", 0.02), ("coins", 0.003), ("favorites", 0.004), ("shares", 0.001))}
    return pd.DataFrame({"bvid": [f"BV1{i:09d}" for i in range(n)], "views": views, **cols})


@pytest.mark.parametrize("quantiles", [False, True])
def test_rank_labels_do_not_move_when_one_outlier_is_ten_times_larger(quantiles):
    df = lognormal_table()
    top = int(df["views"].idxmax())
    bigger = df.copy()
    bigger.loc[top, ["views", "likes", "coins", "favorites", "shares"]] *= 10
    scored = score_videos(df, norm="rank")
    assert scored["score"].between(0, 1).all() and scored["s_views"].min() == 0 and scored["s_views"].max() == 1
    thresholds = (0.2, 0.4, 0.6, 0.8)
    a = label_videos(scored, quantiles=quantiles, thresholds=thresholds)[0]["label"]
    b = label_videos(score_videos(bigger, norm="rank"), quantiles=quantiles, thresholds=thresholds)[0]["label"]
    assert (a == b).all()
    # the study's normalisation, by contrast, moves many labels
    paper_a = label_videos(score_videos(df), quantiles=quantiles)[0]["label"]
    paper_b = label_videos(score_videos(bigger), quantiles=quantiles)[0]["label"]
    assert (paper_a != paper_b).mean() > (0.01 if quantiles else 0.05)


def test_rank_ties_share_their_average_rank():
    df = pd.DataFrame({"bvid": list("abcd"), "views": [5, 1, 5, 9], "likes": [0] * 4, "coins": [0] * 4,
                       "favorites": [0] * 4, "shares": [0] * 4})
    out = score_videos(df, weights=[1, 0, 0, 0, 0], norm="rank")
    np.testing.assert_allclose(out["s_views"], [0.5, 0.0, 0.5, 1.0])
    np.testing.assert_allclose(out["s_likes"], [0.0] * 4)


def test_label_warns_naming_the_video_that_alone_moves_many_labels():
    df = lognormal_table()
    top = int(df["views"].idxmax())
    df.loc[top, ["views", "likes", "coins", "favorites", "shares"]] *= 10
    _, report = label_videos(score_videos(df))
    who, share = report.outlier
    assert who == f"bvid {df['bvid'][top]}" and share > OUTLIER_SHARE
    assert any(df["bvid"][top] in w and "--norm rank" in w for w in report.warnings)
    # the same check measured by hand: leave the outlier out, score again, count changed labels
    rest = df.drop(index=top).reset_index(drop=True)
    by_hand = label_videos(score_videos(rest))[0]["label"].to_numpy()
    kept = label_videos(score_videos(df))[0]["label"].drop(index=top).to_numpy()
    assert share == pytest.approx((by_hand != kept).mean())
    # with rank scores no single video matters
    _, report = label_videos(score_videos(df, norm="rank"), quantiles=True)
    assert report.outlier[1] < OUTLIER_SHARE and not any("decides" in w for w in report.warnings)


def test_a_table_with_only_a_score_is_labelled_without_the_check_and_says_so():
    labeled, report = label_videos(pd.DataFrame({"score": [0.0, 0.001, 0.01, 0.03]}))
    assert labeled["label"].tolist() == [0, 1, 3, 4]
    assert report.outlier is None
    assert any("no record of how score made it" in w and "check was skipped" in w for w in report.warnings)


# -- --by-age ----------------------------------------------------------------------------------------------------
def test_by_age_gives_five_equal_classes_within_each_age_bucket():
    df, _ = aged_table(n=500)
    labeled, report = label_videos(score_videos(df, norm="log"), quantiles=True, by_age=4)
    ages = np.maximum(df["fetched_at"] - df["pubdate"], MIN_AGE_S).to_numpy()
    order = np.argsort(ages, kind="stable")
    for bucket in np.array_split(order, 4):
        counts = np.bincount(labeled["label"].to_numpy()[bucket], minlength=5)
        assert counts.max() - counts.min() <= 1
        # within a bucket the classes follow the score
        scores = labeled["score"].to_numpy()[bucket]
        labels = labeled["label"].to_numpy()[bucket]
        assert all(scores[labels == k].max() <= scores[labels == k + 1].min() for k in range(4))
    assert report.by_age == 4 and all(math.isnan(t) for t in report.thresholds)
    # a table scored with an age adjustment carries age_days, which gives the same buckets
    with_age = score_videos(df, norm="log").assign(age_days=ages / DAY)
    again, _ = label_videos(with_age, quantiles=True, by_age=4)
    assert (again["label"] == labeled["label"]).all()


@pytest.mark.parametrize("kwargs,message", [
    ({"by_age": 3}, "together with --quantiles"),
    ({"by_age": 0, "quantiles": True}, "at least 1"),
    ({"by_age": 30, "quantiles": True}, "needs at least 150 rows"),
])
def test_by_age_bad_inputs(kwargs, message):
    df, _ = aged_table(n=100)
    with pytest.raises(InputError, match=message):
        label_videos(score_videos(df), **kwargs)


def test_cli_label_warns_about_an_outlier(tmp_path):
    df = lognormal_table(n=1500)
    top = int(df["views"].idxmax())
    df.loc[top, ["views", "likes", "coins", "favorites", "shares"]] *= 10
    src = tmp_path / "in.csv"
    df.to_csv(src, index=False)
    assert runner.invoke(app, ["score", "-i", str(src), "-o", str(tmp_path / "s.parquet")]).exit_code == 0
    r = runner.invoke(app, ["label", "-i", str(tmp_path / "s.parquet"), "-o", str(tmp_path / "l.parquet")])
    assert r.exit_code == 0, r.output
    assert df["bvid"][top] in r.output and "decides" in r.output


def test_the_checks_cut_counting_equals_searchsorted_even_on_the_cuts():
    from bilipop.data.labeling import _count_cuts

    cuts = (-0.004, -0.002, 0.0, 0.01)
    rng = np.random.default_rng(3)
    values = np.concatenate([rng.normal(0, 0.005, 10_000), np.array(cuts), np.nextafter(np.array(cuts), -1)])
    got = _count_cuts(values, cuts)
    np.testing.assert_array_equal(got, np.searchsorted(np.asarray(cuts), values, side="right"))


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
