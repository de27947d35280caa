"""bilipop predict's three forms: the command checks that exactly one was asked for and hands each to its own
function in bilipop.cli.predict with the options it takes (no model is loaded here)."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from bilipop.cli import app
from bilipop.cli import predict as predict_module

runner = CliRunner()
FORMS = ("predict_single", "predict_ranking", "predict_batch")


@pytest.fixture
def calls(monkeypatch):
    seen: list[tuple[str, tuple, dict]] = []
    for name in FORMS:
        monkeypatch.setattr(predict_module, name,
                            lambda *args, _name=name, **kwargs: seen.append((_name, args, kwargs)))
    return seen


def test_cover_and_title_go_to_the_single_form(calls):
    r = runner.invoke(app, ["predict", "c.jpg", "标题", "--model", "runs/x", "--explain", "--json"])
    assert r.exit_code == 0, r.output
    assert calls == [("predict_single", (Path("runs/x"), Path("c.jpg"), "标题"),
                      {"explain": True, "device": "cpu", "quantize": None, "json_output": True})]


def test_repeated_cover_and_title_go_to_the_ranking(calls):
    r = runner.invoke(app, ["predict", "--cover", "a.jpg", "--cover", "b.jpg", "--title", "t", "--device", "cuda:1"])
    assert r.exit_code == 0, r.output
    assert calls == [("predict_ranking", (None, [Path("a.jpg"), Path("b.jpg")], ["t"]),
                      {"device": "cuda:1", "quantize": None, "json_output": False})]
    calls.clear()
    assert runner.invoke(app, ["predict", "--title", "only a title", "--quantize", "int8"]).exit_code == 0
    assert calls == [("predict_ranking", (None, [], ["only a title"]),
                      {"device": "cpu", "quantize": "int8", "json_output": False})]


def test_batch_goes_to_the_batch_form(calls):
    r = runner.invoke(app, ["predict", "--batch", "in.csv", "-o", "-", "--no-escape-formulas"])
    assert r.exit_code == 0, r.output
    assert calls == [("predict_batch", (None, Path("in.csv"), Path("-")),
                      {"escape_formulas": False, "device": "cpu", "quantize": None, "json_output": False})]


@pytest.mark.parametrize(("args", "message"), [
    ([], "use exactly one form"),
    (["c.jpg", "t", "--title", "u"], "use exactly one form"),
    (["--cover", "a.jpg", "--explain"], "--explain works with a single COVER TITLE only"),
    (["c.jpg", "t", "-o", "out.csv"], "-o/--output goes with --batch"),
    (["c.jpg"], "give both COVER and TITLE"),
    (["--batch", "in.csv"], "--batch needs -o/--output OUT.csv"),
    (["--batch", "in.csv", "-o", "-", "--json"], "-o - writes the CSV to stdout"),
])
def test_a_mixed_or_partial_form_is_a_usage_error_and_reaches_no_form(calls, args, message):
    r = runner.invoke(app, ["predict", *args])
    assert r.exit_code == 2
    assert message in " ".join(r.output.replace("│", " ").split()), r.output
    assert calls == []
