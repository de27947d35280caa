"""bilipop.data.filtering: the study's rules, the report of what each removed, and the columns it needs."""

import pandas as pd
import pytest

from bilipop.data.filtering import filter_videos
from bilipop.errors import InputError


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
