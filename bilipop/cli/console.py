"""Where the commands write: results to stdout, messages and progress to stderr, and the error boundary that turns
a BilipopError into one line and exit code 1. The root options (-q, --debug) set ``STATE``; everything here reads
it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import typer
from rich.console import Console

from bilipop.cli import views
from bilipop.errors import BilipopError

out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)


@dataclass
class State:
    verbose: bool = False
    quiet: bool = False
    debug: bool = False


STATE = State()


@contextmanager
def user_errors() -> Iterator[None]:
    """Turn a BilipopError into a one-line message and exit code 1 (re-raised as is with --debug)."""
    try:
        yield
    except BilipopError as exc:
        if STATE.debug:
            raise
        err.print(f"[bold red]error:[/] {views.safe(exc)}", highlight=False)
        raise typer.Exit(1) from None
    except KeyboardInterrupt:
        if STATE.debug:
            raise
        err.print("[yellow]interrupted[/]")
        raise typer.Exit(130) from None


def note(message: str) -> None:
    """A message for the user on stderr, silenced by -q (shown as given: no markup, no control sequences)."""
    if not STATE.quiet:
        err.print(views.safe(message), highlight=False)


def warn(message: str, *, markup: bool = False) -> None:
    """A warning on stderr (shown even with -q); ``markup`` only for our own text, never a user's."""
    err.print(f"[yellow]warning:[/] {message if markup else views.safe(message)}", highlight=False)


@contextmanager
def progress_bar(description: str) -> Iterator[Callable[[int, int | None], None]]:
    """Yield ``callback(done, total)`` that drives a progress bar on stderr (none with -q or off a terminal)."""
    if STATE.quiet or not err.is_terminal:
        yield _no_progress
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                  console=err, transient=True) as bar:
        task = bar.add_task(description, total=None)

        def update(done: int, total: int | None = None) -> None:
            bar.update(task, completed=done, total=total)

        yield update


def _no_progress(done: int, total: int | None = None) -> None:
    pass


def show(items: list) -> None:
    """Print renderables from bilipop.cli.views (user text in them is already escaped)."""
    for item in items:
        out.print(item, highlight=False)


def print_json(data: object) -> None:
    import json

    typer.echo(json.dumps(data, ensure_ascii=False))
