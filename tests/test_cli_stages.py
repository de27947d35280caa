"""The filter, score and label commands end to end through the real CLI, and their bad inputs."""

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from bilipop.cli import app

runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture
def videos_csv(tmp_path):
    df = pd.DataFrame({
        "bvid": ["BV1aaaaaaaaa", "BV1bbbbbbbbb", "BV1ccccccccc", "BV1ddddddddd", "BV1eeeeeeeee", "BV1bbbbbbbbb"],
        "title": ["猫为什么怕黄瓜", "黑洞 🕳️ 到底是什么", "一分钟看懂通胀", "大厂面试", "没人看的视频", "旧的"],
        "views": [1000, 250000, 40000, 5000000, 12, 1],
        "likes": [30, 9000, 800, 200000, 0, 0],
        "coins": [2, 700, 90, 30000, 0, 0],
        "favorites": [5, 1200, 150, 80000, 0, 0],
        "shares": [1, 300, 20, 9000, 0, 0],
        "followers": [1200, 80000, 450000, 499999, 30, 80000],
        "on_hot_list": [True, True, True, True, False, True],
        "fetched_at": [10, 10, 10, 10, 10, 5],
    })
    path = tmp_path / "videos.csv"
    df.to_csv(path, index=False)
    return path


def expected_scores(df, weights=(0.75, 0.1, 0.1, 0.05, 0.0)):
    total = np.zeros(len(df))
    for col, w in zip(["views", "likes", "coins", "favorites", "shares"], weights, strict=True):
        x = df[col].to_numpy(dtype=float)
        total += w * (x - x.mean()) / (x.max() - x.min())
    return total


def test_filter_score_label_end_to_end(tmp_path, videos_csv):
    d = tmp_path / "d"
    r = invoke("filter", "-i", videos_csv, "-o", tmp_path / "f.csv")
    assert r.exit_code == 0, r.output
    assert "remaining" in r.output and "duplicate bvid" in r.output
    filtered = pd.read_csv(tmp_path / "f.csv")
    assert filtered["bvid"].tolist() == ["BV1aaaaaaaaa", "BV1bbbbbbbbb", "BV1ccccccccc", "BV1ddddddddd"]

    r = invoke("score", "-i", tmp_path / "f.csv", "-o", d / "scored.parquet")
    assert r.exit_code == 0, r.output
    scored = pd.read_parquet(d / "scored.parquet")
    assert np.max(np.abs(scored["score"].to_numpy() - expected_scores(filtered))) < 1e-12

    r = invoke("label", "--data", d, "-o", tmp_path / "labeled.csv")
    assert r.exit_code == 0, r.output
    labeled = pd.read_csv(tmp_path / "labeled.csv")
    t = np.array([0.00025, 0.0015, 0.005, 0.02])
    assert labeled["label"].tolist() == [int((s >= t).sum()) for s in labeled["score"]]
    assert np.max(np.abs(labeled["score"].to_numpy() - expected_scores(filtered))) < 1e-12
    assert "very high" in r.output


def test_default_files_in_data_folder(tmp_path, videos_csv):
    d = tmp_path / "data"
    assert invoke("filter", "--data", d, "-i", videos_csv).exit_code == 0
    assert (d / "filtered.parquet").is_file()
    assert invoke("score", "--data", d, "--norm", "log").exit_code == 0
    r = invoke("label", "--data", d, "--quantiles")
    assert r.exit_code == 0, r.output
    # ranks by score: BV1a < BV1c < BV1b < BV1d; four rows leave the top class empty, which is warned about
    assert pd.read_parquet(d / "labeled.parquet")["label"].tolist() == [0, 2, 1, 3]
    assert "class 4 (very high) is empty" in r.output


def test_data_env_var(tmp_path, videos_csv, monkeypatch):
    d = tmp_path / "envdata"
    r = runner.invoke(app, ["filter", "-i", str(videos_csv)], env={"BILIPOP_DATA": str(d)})
    assert r.exit_code == 0, r.output
    assert (d / "filtered.parquet").is_file()


def write(tmp_path, name, df):
    path = tmp_path / name
    df.to_csv(path, index=False)
    return path


BAD_INPUTS = [
    (["score", "-i", "{tmp}/nope.csv"], "does not exist"),
    (["score", "-i", "{tmp}/v.txt"], "cannot read"),
    (["score", "-i", "{nocol}"], "missing the column"),
    (["score", "-i", "{neg}"], "negative"),
    (["score", "-i", "{text}"], "non-numeric"),
    (["score", "-i", "{inf}"], "infinite"),
    (["score", "-i", "{good}", "--weights", "0,0,0,0,0"], "all zero"),
    (["score", "-i", "{good}", "--weights", "1,-1,0,0,0"], "non-negative"),
    (["score", "-i", "{good}", "--weights", "a,b"], "numbers separated by commas"),
    (["score", "-i", "{good}", "--norm", "sqrt"], "--norm"),
    (["label", "-i", "{scored}", "--thresholds", "0.1,0.05,0.2,0.3"], "strictly increasing"),
    (["label", "-i", "{good}"], "run bilipop score first"),
    (["label", "-i", "{scored}", "--quantiles", "--thresholds", "0,1,2,3"], "not both"),
    (["filter", "-i", "{good}"], "followers"),
]


@pytest.mark.parametrize("args, message", BAD_INPUTS)
def test_bad_input_is_one_line_exit_1_and_no_output(tmp_path, args, message):
    good = pd.DataFrame({"bvid": ["BV1", "BV2"], "views": [1, 2], "likes": [1, 1], "coins": [0, 0],
                         "favorites": [0, 0], "shares": [0, 0]})
    paths = {
        "tmp": tmp_path,
        "good": write(tmp_path, "good.csv", good),
        "nocol": write(tmp_path, "nocol.csv", good.drop(columns="likes")),
        "neg": write(tmp_path, "neg.csv", good.assign(views=[1, -5])),
        "text": write(tmp_path, "text.csv", good.assign(coins=["1", "lots"])),
        "inf": write(tmp_path, "inf.csv", good.assign(views=["1", "inf"])),
        "scored": write(tmp_path, "scored.csv", good.assign(score=[0.1, 0.2])),
    }
    (tmp_path / "v.txt").write_text("x")
    out = tmp_path / "out.csv"
    r = invoke(*[a.format(**paths) for a in args], "-o", out)
    assert r.exit_code == 1, r.output
    assert message in r.output
    assert "Traceback" not in r.output
    assert len(r.output.strip().splitlines()) == 1
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out")]


@pytest.mark.parametrize("stage", ["filter", "score"])
def test_an_infinite_counter_is_dropped_by_filter_and_refused_by_score(tmp_path, videos_csv, stage):
    df = pd.read_csv(videos_csv).astype({"views": object})
    df.loc[0, "views"] = "inf"
    src = write(tmp_path, "inf.csv", df)
    r = invoke(stage, "-i", src, "-o", tmp_path / "out.csv")
    if stage == "score":
        assert r.exit_code == 1 and "column views has a missing, non-numeric, infinite" in r.output, r.output
        assert not (tmp_path / "out.csv").exists()
    else:
        assert r.exit_code == 0, r.output
        assert "BV1aaaaaaaaa" not in pd.read_csv(tmp_path / "out.csv")["bvid"].tolist()


def test_filter_keeps_a_fractional_counter_as_it_is(tmp_path, videos_csv):
    df = pd.read_csv(videos_csv).astype({"likes": float})
    df.loc[0, "likes"] = 30.5
    r = invoke("filter", "-i", write(tmp_path, "frac.csv", df), "-o", tmp_path / "out.csv")
    assert r.exit_code == 0, r.output
    assert pd.read_csv(tmp_path / "out.csv")["likes"].iloc[0] == 30.5  # not silently cut to 30


@pytest.mark.parametrize("stage", ["filter", "score", "label"])
def test_an_unwritable_output_is_one_line_exit_1(tmp_path, videos_csv, stage):
    d = tmp_path / "d"
    assert invoke("filter", "--data", d, "-i", videos_csv).exit_code == 0
    assert invoke("score", "--data", d).exit_code == 0
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where a folder should be")
    r = invoke(stage, "--data", d, "-o", blocker / "out.csv", *(["-i", videos_csv] if stage == "filter" else []))
    assert r.exit_code == 1, r.output
    assert "cannot write" in r.output and "Traceback" not in r.output
    assert len(r.output.strip().splitlines()) == 1


def test_bad_output_extension(tmp_path, videos_csv):
    r = invoke("filter", "-i", videos_csv, "-o", tmp_path / "out.xlsx")
    assert r.exit_code == 1 and ".csv or .parquet" in r.output
    assert not (tmp_path / "out.xlsx").exists()


def test_debug_shows_the_traceback(tmp_path):
    r = invoke("--debug", "score", "-i", tmp_path / "nope.csv")
    assert r.exit_code != 0
    assert r.exception is not None and "does not exist" in str(r.exception)


def test_version_and_help_list_every_command():
    r = invoke("--version")
    assert r.exit_code == 0 and r.output.startswith("bilipop ")
    r = invoke("--help")
    for cmd in ("filter", "score", "label"):
        assert cmd in r.output


def test_help_lists_the_commands_in_pipeline_order():
    text = invoke("--help").output
    positions = [text.index(f" {name} ") for name in
                 ("crawl", "filter", "score", "label", "train", "evaluate", "predict", "demo")]
    assert positions == sorted(positions)


def test_every_command_help_ends_with_an_example():
    import typer.main

    group = typer.main.get_command(app)
    for name, cmd in group.commands.items():
        assert cmd.epilog and cmd.epilog.startswith("Example: bilipop "), name
        assert cmd.help, name


def test_import_and_help_do_not_import_torch():
    code = ("import sys; from typer.testing import CliRunner; from bilipop.cli import app; "
            "r = CliRunner().invoke(app, ['--help']); assert r.exit_code == 0; "
            "print('torch' in sys.modules, 'pandas' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["False", "False"]
