"""Options shared by several commands, declared once, and the parsers of the comma lists that options take."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from bilipop.errors import InputError

DataDir = Annotated[
    Path,
    typer.Option("--data", envvar="BILIPOP_DATA", help="Dataset folder: bilipop.db, covers/ and one file per stage."),
]
InputFile = Annotated[
    Path | None, typer.Option("--input", "-i", help="Read this file instead of the stage's default in --data.")
]
OutputFile = Annotated[
    Path | None,
    typer.Option("--output", "-o", help="Write this .csv or .parquet instead of the stage's default in --data."),
]
JsonFlag = Annotated[bool, typer.Option("--json", help="Print the result as one JSON object.")]
DeviceOpt = Annotated[str, typer.Option("--device", help="Run the model on cpu, cuda or cuda:N.")]
QuantizeOpt = Annotated[str | None, typer.Option("--quantize", help="int8: dynamic int8 Linear layers for CPU "
                                                                    "inference (faster; no --explain).")]
ModelOpt = Annotated[
    Path | None, typer.Option("--model", help="Run folder (default: $BILIPOP_MODEL, else the newest under ./runs).")
]


def parse_floats(text: str, option: str) -> list[float]:
    """Parse a comma list of numbers given to ``option``; a bad item is a user error (exit 1)."""
    try:
        return [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise InputError(f"{option} takes numbers separated by commas, got {text!r}") from None


def parse_counts(text: str, option: str) -> list[int]:
    """Parse a comma list of whole numbers given to ``option``; a bad item is a user error (exit 1)."""
    values = parse_floats(text, option)
    if any(v != int(v) for v in values):
        raise InputError(f"{option} takes whole numbers separated by commas, got {text!r}")
    return [int(v) for v in values]


def comma_list(numbers: tuple[float, ...]) -> str:
    """Numbers as the comma list that an option's default shows."""
    return ",".join(f"{x:g}" for x in numbers)
