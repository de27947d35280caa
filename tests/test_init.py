"""The top-level Python API: every advertised name resolves, and importing bilipop stays light."""

import subprocess
import sys

import pandas as pd

import bilipop


def test_every_public_name_resolves_to_a_callable():
    for name in bilipop.__all__:
        if name not in ("__version__", "crawl", "train"):
            assert callable(getattr(bilipop, name)), name


def test_crawl_and_train_are_their_subpackages_whatever_was_imported_first():
    import bilipop.crawl.crawler  # noqa: F401  (importing a submodule binds the package on bilipop)
    import bilipop.train.trainer  # noqa: F401

    assert bilipop.crawl.__name__ == "bilipop.crawl" and callable(bilipop.crawl.crawl)
    assert bilipop.train.__name__ == "bilipop.train" and callable(bilipop.train.train)


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
