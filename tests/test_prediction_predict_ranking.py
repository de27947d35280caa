"""Rankings that mean what they say: order by expected class, a class column that follows the order, the
probability of beating the next candidate, and a table that keeps every name and number whole at 80 columns."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from typer.testing import CliRunner

from bilipop.cli import app
from bilipop.prediction.predict import beat_probability, rank

runner = CliRunner()


def test_beat_probability_on_constructed_distributions():
    one_hot = np.eye(5)
    assert beat_probability(one_hot[2], one_hot[1]) == 1.0
    assert beat_probability(one_hot[1], one_hot[2]) == 0.0
    assert beat_probability(one_hot[3], one_hot[3]) == 0.5  # a sure tie counts half
    p = [0.0, 0.5, 0.5, 0.0, 0.0]
    # X > Y when X = 2 (0.5); X = Y when X = 1 (0.5), counted half
    assert beat_probability(p, one_hot[1]) == pytest.approx(0.75)
    spread = [0.5, 0.0, 0.0, 0.0, 0.5]
    assert beat_probability(spread, one_hot[2]) == pytest.approx(0.5)
    rng = np.random.default_rng(0)
    for _ in range(20):  # P(X > Y) + P(X = Y)/2 and the reverse always add up to 1
        a, b = rng.dirichlet(np.ones(5)), rng.dirichlet(np.ones(5))
        assert beat_probability(a, b) + beat_probability(b, a) == pytest.approx(1.0)
        assert beat_probability(a, a) == pytest.approx(0.5)


def test_class_column_never_contradicts_the_order():
    # The case: a flat distribution over the upper classes ranks above a peaked one, yet its single most
    # likely class is lower ("very low" above "low" by argmax).
    probs = np.array([
        [0.30, 0.00, 0.00, 0.35, 0.35],  # expected 2.45, argmax 3
        [0.00, 0.10, 0.80, 0.10, 0.00],  # expected 2.00, argmax 2
        [0.34, 0.00, 0.00, 0.00, 0.66],  # expected 2.64, argmax 4
        [0.40, 0.00, 0.30, 0.30, 0.00],  # expected 1.50, argmax 0
        [0.00, 0.60, 0.40, 0.00, 0.00],  # expected 1.40, argmax 1
    ])
    pairs = [(f"c{i}.jpg", f"t{i}") for i in range(len(probs))]
    ranked = rank(pairs, probs)
    expected = [c.prediction.expected_class for c in ranked]
    assert expected == sorted(expected, reverse=True)
    assert [c.cover for c in ranked] == ["c2.jpg", "c0.jpg", "c1.jpg", "c3.jpg", "c4.jpg"]
    labels = [c.label for c in ranked]
    assert labels == sorted(labels, reverse=True)  # the class follows the order
    argmax = [c.prediction.label for c in ranked]
    assert argmax != sorted(argmax, reverse=True)  # ... which the most likely class alone would not
    assert [c.rank for c in ranked] == [1, 2, 3, 4, 5]
    for c, nxt in zip(ranked, ranked[1:], strict=False):
        assert c.p_beats_next == pytest.approx(beat_probability(c.prediction.probabilities,
                                                                nxt.prediction.probabilities))
    assert ranked[-1].p_beats_next is None
    data = ranked[0].to_json()
    assert set(data) == {"rank", "cover", "title", "label", "label_name", "most_likely", "most_likely_name",
                         "probabilities", "expected_class", "p_beats_next"}
    assert (data["label"], data["label_name"], data["most_likely"]) == (3, "high", 4)


def _column(output: str, index: int) -> str:
    """The text of one table column, its folded pieces joined."""
    pieces = [line.split("│")[index].strip() for line in output.splitlines() if line.startswith("│")]
    return "".join(pieces)


def test_cli_ranking_json_and_table_keep_everything_at_80_columns(tiny_run, tmp_path):
    from bilipop.data.io import read_table

    table = read_table(tiny_run["table"])
    long_name = "a_cover_with_a_very_long_file_name_from_the_creator_2024_final_version_two.jpg"
    covers = [tiny_run["data"] / table["cover_path"].iloc[0], tmp_path / "deep" / "folder" / long_name]
    covers[1].parent.mkdir(parents=True)
    shutil.copy(tiny_run["data"] / table["cover_path"].iloc[1], covers[1])
    titles = ["三分钟看懂相对论：从光速不变到时间膨胀，一个高中生也能听懂的物理入门第一讲", "历史 为什么"]
    args = ["predict", "--model", str(tiny_run["run"])]
    for c in covers:
        args += ["--cover", str(c)]
    for t in titles:
        args += ["--title", t]
    res = runner.invoke(app, [*args, "--json"])
    assert res.exit_code == 0, res.output
    candidates = json.loads(res.stdout)["candidates"]
    assert [c["rank"] for c in candidates] == [1, 2, 3, 4]
    assert all(c["p_beats_next"] is not None for c in candidates[:-1]) and candidates[-1]["p_beats_next"] is None
    labels = [c["label"] for c in candidates]
    assert labels == sorted(labels, reverse=True)

    res = runner.invoke(app, args)  # CliRunner is not a terminal: rich lays the table out at 80 columns
    assert res.exit_code == 0, res.output
    table_lines = [line for line in res.stdout.splitlines() if line[:1] in "┏┃┡│└"]
    assert table_lines and max(len(line) for line in table_lines) <= 80
    assert "…" not in res.stdout
    text = _column(res.stdout, 2)
    for c in candidates:
        assert f"{c['expected_class']:.2f}" in res.stdout
        assert " ".join(f"{100 * p:2.0f}" for p in c["probabilities"]) in res.stdout
    assert text.count(long_name) == 2 and str(tmp_path) not in text  # the file name, whole, not the folder
    assert text.count(titles[0].replace(" ", "")) == 2
