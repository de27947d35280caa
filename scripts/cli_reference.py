"""Write docs/cli.md, the command-line reference, from the Typer app itself.

    python scripts/cli_reference.py            # rewrite docs/cli.md
    python scripts/cli_reference.py --check    # exit 1 when docs/cli.md differs from the app

The page is built from the click objects behind the app (names, flags, defaults, environment variables, help
texts), not from `--help`'s rich output, so it does not depend on the terminal's width or colours. It lives
outside the package: it is a maintainer's tool, and importing the CLI from the core would run against the
import layers. tests/test_cli_main_reference.py fails when docs/cli.md is out of date, so a changed flag is
regenerated before it merges. Parameters are told apart by click's `param_type_name` rather than by class, since
Typer may bring a click of its own.
"""

from __future__ import annotations

import enum
import inspect
import sys
import typing
from pathlib import Path
from typing import Any

import typer.main

ROOT = Path(__file__).resolve().parents[1]
TARGET = ROOT / "docs" / "cli.md"

HEADER = """# Command-line reference

Generated from the Typer app by `python scripts/cli_reference.py`; do not edit by hand (a test compares this page
with the app). For what the commands do together, see the [README](../README.md) and [the session](session.md).
"""


def _plain(text: str | None) -> str:
    """A help text as Markdown: rich's escaped brackets unescaped, lines joined, table pipes escaped."""
    if not text:
        return ""
    text = inspect.cleandoc(text).replace("\\[", "[")
    return " ".join(text.split()).replace("|", "\\|")


def _is_option(param: Any) -> bool:
    return getattr(param, "param_type_name", None) == "option"


def _is_argument(param: Any) -> bool:
    return getattr(param, "param_type_name", None) == "argument"


def _default(param: Any) -> str:
    if param.required:
        return "required"
    value = param.default
    if callable(value):
        return ""
    if _is_option(param) and param.is_flag and not param.secondary_opts:
        return "off" if not value else "on"
    if _is_option(param) and param.is_flag:  # --x/--no-x
        return param.opts[0] if value else param.secondary_opts[0]
    if value is None or value == ():
        return ""
    if isinstance(value, enum.Enum):
        value = value.value
    if isinstance(value, (list, tuple)):
        return ", ".join(f"`{v}`" for v in value)
    return f"`{value}`"


def _flags(param: Any) -> str:
    names = sorted(param.opts, key=len) + list(param.secondary_opts)
    return ", ".join(f"`{n}`" for n in names)


_TYPE_NAMES = {"str": "TEXT", "int": "INTEGER", "float": "FLOAT", "Path": "PATH", "bool": ""}


def _base(annotation: Any) -> Any:
    """`Path | None` and `list[Path] | None` as `Path`: the kind of one value."""
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    return _base(args[0]) if typing.get_origin(annotation) is not None and args else annotation


def _metavar(param: Any, ctx: Any) -> str:
    """The kind of value an option takes, from click's type or, where Typer builds that lazily, the annotation."""
    if _is_option(param) and param.is_flag:
        return ""
    kind = getattr(param, "type", None)
    if kind is not None and isinstance(getattr(kind, "name", None), str):  # a click ParamType
        choices = getattr(kind, "choices", None)
        if choices:
            return "|".join(str(getattr(c, "value", c)) for c in choices)
        return kind.name.upper()
    annotation = _base(getattr(getattr(param, "type_descriptor", None), "annotation", None))
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return "|".join(str(member.value) for member in annotation)
    name = getattr(annotation, "__name__", "")
    return _TYPE_NAMES.get(name, name.upper())


def _usage(command: Any, name: str, ctx: Any) -> str:
    pieces = [f"bilipop {name}", "[OPTIONS]"]
    for param in command.params:
        if _is_argument(param):
            shown = param.name.upper()
            if param.nargs != 1:
                shown += "..."
            pieces.append(shown if param.required else f"[{shown}]")
    return " ".join(pieces)


def _option_rows(command: Any, ctx: Any) -> list[str]:
    rows = []
    for param in command.params:
        if not _is_option(param) or param.hidden:
            continue
        env = param.envvar if isinstance(param.envvar, str) else ", ".join(param.envvar or ())
        rows.append(f"| {_flags(param)} | {_metavar(param, ctx)} | {_default(param)} | "
                    f"{f'`{env}`' if env else ''} | {_plain(param.help)} |")
    return rows


def _argument_rows(command: Any) -> list[str]:
    rows = []
    for param in command.params:
        if _is_argument(param):
            help_text = getattr(param, "help", None)
            rows.append(f"| `{param.name.upper()}` | {'required' if param.required else 'optional'} | "
                        f"{_plain(help_text)} |")
    return rows


def _command_section(command: Any, name: str, ctx: Any) -> list[str]:
    lines = [f"## bilipop {name}", "", _plain(command.help), "", "```", _usage(command, name, ctx), "```", ""]
    arguments = _argument_rows(command)
    if arguments:
        lines += ["| argument | | meaning |", "|---|---|---|", *arguments, ""]
    options = _option_rows(command, ctx)
    if options:
        lines += ["| option | value | default | environment | meaning |", "|---|---|---|---|---|", *options, ""]
    if command.epilog:
        lines += [_plain(command.epilog).replace("Example: ", "Example: `", 1) + "`"
                  if command.epilog.startswith("Example: ") else _plain(command.epilog), ""]
    return lines


def render(app: typer.Typer) -> str:
    """The Markdown reference of every command of `app`, in the order `--help` lists them."""
    group = typer.main.get_command(app)
    ctx = group.context_class(group, info_name="bilipop")
    lines = [HEADER, "## bilipop", "", _plain(group.help), "", "```", "bilipop [OPTIONS] COMMAND [ARGS]...", "```",
             ""]
    options = _option_rows(group, ctx)
    if options:
        lines += ["Options before the command apply to every command.", "",
                  "| option | value | default | environment | meaning |", "|---|---|---|---|---|", *options, ""]
    names = group.list_commands(ctx) if hasattr(group, "list_commands") else []
    lines += ["Commands: " + ", ".join(f"[`{n}`](#bilipop-{n})" for n in names) + ".", ""]
    for name in names:
        command = group.get_command(ctx, name)
        if command is not None and not command.hidden:
            lines += _command_section(command, name, command.context_class(command, parent=ctx, info_name=name))
    return "\n".join(lines).rstrip("\n") + "\n"


def main(argv: list[str]) -> int:
    from bilipop.cli import app

    text = render(app)
    if argv == ["--check"]:
        current = TARGET.read_text(encoding="utf-8") if TARGET.exists() else ""
        if current != text:
            print(f"{TARGET.relative_to(ROOT)} is out of date: run python scripts/cli_reference.py", file=sys.stderr)
            return 1
        return 0
    if argv:
        print("usage: python scripts/cli_reference.py [--check]", file=sys.stderr)
        return 2
    TARGET.write_text(text, encoding="utf-8")
    print(f"wrote {TARGET.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
