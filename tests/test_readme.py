"""The README's promises that a test can hold it to: two commands, the second is what CI runs, every command shown."""

import re
from pathlib import Path

import typer.main

from bilipop.cli import app

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def quick_start_commands() -> list[str]:
    section = README.split("## Two commands", 1)[1].split("\n## ", 1)[0]
    return [block.strip() for block in re.findall(r"```bash\n(.*?)```", section, flags=re.S)]


def test_exactly_two_commands_demo_then_tests():
    commands = quick_start_commands()
    assert len(commands) == 2
    assert all("\n" not in c for c in commands)
    assert commands[0].endswith("bilipop demo")
    assert commands[1].endswith("python -m pytest -q")


def test_ci_runs_the_readme_test_command():
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    assert quick_start_commands()[1] in ci


def test_every_command_is_shown_with_output_in_the_session_and_listed_by_help():
    from typer.testing import CliRunner

    names = sorted(typer.main.get_command(app).commands)
    assert names == sorted(["crawl", "filter", "score", "label", "train", "evaluate", "predict", "export", "demo",
                            "serve"])
    session = README.split("## A real session", 1)[1].split("\n## ", 1)[0]
    help_text = CliRunner().invoke(app, ["--help"]).output
    for name in names:
        assert name in help_text, name
        if name != "demo":  # the demo's own output sits under "Two commands"
            assert f"$ bilipop {name}" in session, name
    assert "$ bilipop demo" in README
