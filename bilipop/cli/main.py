"""The root of the command line: the Typer app, the order ``bilipop --help`` lists the commands in, and the options
that come before any command (``--version``, ``-v``, ``-q``, ``--debug``)."""

from __future__ import annotations

import logging
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from bilipop import __version__
from bilipop.cli import views
from bilipop.cli.console import STATE, out


class _PipelineOrder(TyperGroup):
    """Lists the commands in the order of the pipeline rather than the order they are defined in."""

    order = ("crawl", "filter", "score", "label", "train", "evaluate", "predict", "export", "demo")

    def list_commands(self, ctx: Any) -> list[str]:  # a click Context: typer >= 0.2x brings its own click
        names = super().list_commands(ctx)
        return sorted(names, key=lambda n: self.order.index(n) if n in self.order else len(self.order))


app = typer.Typer(
    cls=_PipelineOrder,
    name="bilipop",
    help="Predict how popular a Bilibili video will be from its cover image and title.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
    add_completion=False,
    rich_markup_mode="rich",
)


def _version(value: bool) -> None:
    if value:
        out.print(f"bilipop {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[
        bool | None, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log more detail to stderr.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars or notes; errors only.")] = False,
    debug: Annotated[bool, typer.Option("--debug", help="Show the full traceback of an error.")] = False,
) -> None:
    """Predict how popular a Bilibili video will be from its cover image and title."""
    STATE.verbose, STATE.quiet, STATE.debug = verbose, quiet, debug
    level = logging.ERROR if quiet else logging.DEBUG if (verbose or debug) else logging.WARNING
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s", force=True)
    for handler in logging.getLogger().handlers:  # log lines quote paths and titles too
        handler.setFormatter(_ShownFormatter("%(levelname)s %(name)s: %(message)s"))
    logging.getLogger("bilipop").setLevel(logging.DEBUG if (verbose or debug) else logging.INFO if not quiet
                                          else logging.ERROR)
    if quiet:
        _quiet_hub()


def _quiet_hub() -> None:
    """-q for transformers and huggingface_hub too: their progress bars and advice go to stderr on their own."""
    import os
    import sys

    # Read when they are first imported (never before this: --help does not import them) ...
    os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"
    os.environ["TRANSFORMERS_VERBOSITY"] = "error"
    os.environ["TRANSFORMERS_NO_ADVISORY_WARNINGS"] = "1"
    # ... or switched off now where they already are (bilipop used as a library, tests).
    if "huggingface_hub" in sys.modules:
        from huggingface_hub.utils import disable_progress_bars

        disable_progress_bars()
    if "transformers" in sys.modules:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        hf_logging.set_verbosity_error()


class _ShownFormatter(logging.Formatter):
    """Log lines without terminal control sequences (a title or path in a message could carry them)."""

    def format(self, record: logging.LogRecord) -> str:
        return views.clean(super().format(record), one_line=False)
