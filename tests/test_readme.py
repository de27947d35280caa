"""The README's promises that a test can hold it to: short, two commands (the second is what CI runs), a demo excerpt
and a session that are real output, the commands and flags it shows exist, and a link to every page under docs/."""

import re
import shlex
from pathlib import Path

import typer.main

from bilipop.cli import app

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def section(text: str, heading: str) -> str:
    return text.split(f"\n## {heading}\n", 1)[1].split("\n## ", 1)[0]


def blocks(text: str, language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", text, flags=re.S)


def quick_start_commands() -> list[str]:
    return [block.strip() for block in blocks(section(README, "Two commands"), "bash")]


def test_exactly_two_commands_demo_then_tests():
    commands = quick_start_commands()
    assert len(commands) == 2
    assert all("\n" not in c for c in commands)
    assert commands[0].endswith("&& pip install -e . && bilipop demo")
    assert commands[1].endswith("python -m pytest -q")
    assert all(c.startswith("python3 -m venv .venv && . .venv/bin/activate && pip install torch==") for c in commands)


def test_ci_runs_the_readme_test_command():
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    assert quick_start_commands()[1] in ci


def test_a_newcomer_reads_it_in_five_minutes():
    assert len(README.splitlines()) <= 250
    headings = re.findall(r"^## (.+)$", README, flags=re.M)
    assert headings == ["Two commands", "What it does", "A short session", "The study's model on a CPU", "The web page",
                        "When the real site refuses", "Documentation"]
    first = README.split("\n\n")[1]  # the one sentence under the title
    assert first.count(". ") == 0 and first.rstrip().endswith(")."), first


def test_the_what_it_does_table_has_a_row_per_stage():
    rows = [line for line in section(README, "What it does").splitlines() if line.startswith("| ")]
    commands = [re.search(r"`bilipop (\w+)", row).group(1) for row in rows[1:]]
    assert commands == ["crawl", "filter", "score", "label", "train", "evaluate", "predict", "serve"]


def test_the_demo_excerpt_is_the_real_output_in_docs_demo():
    (excerpt,) = blocks(section(README, "Two commands"), "console")
    lines = excerpt.rstrip("\n").split("\n")
    assert 15 <= len(lines) <= 25 and lines[0] == "$ bilipop demo" and lines[-1].startswith("verdict: ")
    full = blocks((ROOT / "docs" / "demo.md").read_text(encoding="utf-8"), "console")[0].split("\n")
    at = 0
    for line in lines:
        if line == "...":
            continue
        assert line in full[at:], line  # in the real output, in the same order
        at = full.index(line, at) + 1


def test_the_short_session_shows_real_output_from_docs_session():
    part = section(README, "A short session")
    session = (ROOT / "docs" / "session.md").read_text(encoding="utf-8")
    shown = blocks(part, "console")
    assert shown
    for block in shown:
        assert block in session


def test_the_short_session_uses_real_commands_and_flags():
    group = typer.main.get_command(app)
    ctx = group.context_class(group, info_name="bilipop")
    (commands,) = blocks(section(README, "A short session"), "bash")
    seen = []
    for line in commands.splitlines():
        for piece in re.split(r"&&|#.*$", line):
            words = shlex.split(piece.strip()) if piece.strip() else []
            if words[:1] != ["bilipop"]:
                continue
            command = group.get_command(ctx, words[1])
            assert command is not None, words
            flags = {flag for param in command.params for flag in [*param.opts, *param.secondary_opts]}
            for word in words[2:]:
                if word.startswith("-"):
                    assert word in flags, (words[1], word)
            seen.append(words[1])
    assert seen == ["crawl", "filter", "score", "label", "train", "evaluate", "predict"]


def test_the_readme_links_every_docs_page():
    linked = set(re.findall(r"\]\((docs/[^)#]+)", README))
    pages = {f"docs/{p.name}" for p in (ROOT / "docs").glob("*.md")}
    assert pages <= linked, pages - linked
    assert {"CHANGELOG.md", "benchmarks/README.md"} <= set(re.findall(r"\]\(([^)#]+)\)", README))
