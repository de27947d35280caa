"""The top-level Python API: every advertised name resolves, and importing bilipop stays light."""

import subprocess
import sys

import pandas as pd

import bilipop


def test_every_public_name_resolves_to_a_callable():
    for name in bilipop.__all__:
        if name != "__version__":
            assert callable(getattr(bilipop, name)), name


def test_unknown_name_is_an_attribute_error():
    try:
        bilipop.no_such_function  # noqa: B018
    except AttributeError as exc:
        assert "no_such_function" in str(exc)
    else:
        raise AssertionError("expected AttributeError")


def test_api_runs_the_stages():
    table = pd.DataFrame({"bvid": ["BV1", "BV2", "BV3"], "views": [1, 5, 9], "likes": [0, 1, 2], "coins": [0, 0, 1],
                          "favorites": [0, 0, 0], "shares": [0, 0, 0], "followers": [10, 20, 30],
                          "on_hot_list": [True, True, False]})
    kept, report = bilipop.filter_videos(table)
    assert report.remaining == 2
    labeled, counts = bilipop.label_videos(bilipop.score_videos(kept))
    assert labeled["label"].tolist() == [0, 4]


def test_import_is_light():
    code = "import sys, bilipop; print(sorted(m for m in ('torch', 'pandas', 'requests') if m in sys.modules))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
