"""docs/cli.md is generated from the Typer app by scripts/cli_reference.py; a changed flag fails here until the page
is regenerated (python scripts/cli_reference.py)."""

import importlib.util
from pathlib import Path
from typing import Annotated

import typer
import typer.main

from bilipop.cli import app

ROOT = Path(__file__).resolve().parents[1]


def _script():
    spec = importlib.util.spec_from_file_location("cli_reference", ROOT / "scripts" / "cli_reference.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_docs_cli_md_is_what_the_app_generates():
    page = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    assert page == _script().render(app), "docs/cli.md is out of date: run python scripts/cli_reference.py"


def test_every_command_and_every_flag_is_on_the_page():
    page = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    group = typer.main.get_command(app)
    ctx = group.context_class(group, info_name="bilipop")
    names = group.list_commands(ctx)
    assert len(names) >= 9
    for name in names:
        assert f"## bilipop {name}\n" in page, name
        command = group.get_command(ctx, name)
        for param in command.params:
            for flag in [*param.opts, *param.secondary_opts]:
                shown = f"`{flag.upper()}`" if param.param_type_name == "argument" else f"`{flag}`"
                assert shown in page, (name, flag)


def _tiny_app(default: int, help_text: str) -> typer.Typer:
    tiny = typer.Typer(add_completion=False)

    @tiny.command("go")
    def go(
        run: Annotated[Path, typer.Argument(help="Where to go.")],
        speed: Annotated[int, typer.Option(help=help_text)] = default,
        fast: Annotated[bool, typer.Option("--fast/--slow", help="Hurry.")] = True,
    ) -> None:
        """Go somewhere."""

    @tiny.command("stay")
    def stay(days: Annotated[int, typer.Option("--days", "-d", envvar="TINY_DAYS", help="How long.")] = 2) -> None:
        """Stay put."""

    return tiny


def test_a_changed_default_or_help_changes_the_page():
    render = _script().render
    page = render(_tiny_app(3, "Steps per second \\[default: 3]. A | B."))
    assert "## bilipop go\n\nGo somewhere." in page and "## bilipop stay" in page
    assert "bilipop go [OPTIONS] RUN" in page and "| `RUN` | required | Where to go. |" in page
    assert "| `--speed` | INTEGER | `3` |  | Steps per second [default: 3]. A \\| B. |" in page
    assert "| `--fast`, `--slow` |  | --fast |  | Hurry. |" in page
    assert "| `-d`, `--days` | INTEGER | `2` | `TINY_DAYS` | How long. |" in page
    assert render(_tiny_app(4, "Steps per second \\[default: 3]. A | B.")) != page
    assert render(_tiny_app(3, "Steps per minute.")) != page


def test_the_script_checks_and_writes(tmp_path, monkeypatch, capsys):
    script = _script()
    target = tmp_path / "cli.md"
    monkeypatch.setattr(script, "TARGET", target)
    monkeypatch.setattr(script, "ROOT", tmp_path)
    assert script.main(["--check"]) == 1  # missing
    assert script.main([]) == 0 and target.read_text(encoding="utf-8") == script.render(app)
    assert script.main(["--check"]) == 0
    target.write_text(target.read_text(encoding="utf-8").replace("`--epochs`", "`--epoch`"), encoding="utf-8")
    assert script.main(["--check"]) == 1
    assert "out of date" in capsys.readouterr().err
