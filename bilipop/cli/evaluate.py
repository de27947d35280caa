"""``evaluate``: a run's metrics beside the trivial floors and the study's figure (or a sweep's table)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from bilipop.cli import views
from bilipop.cli.console import note, print_json, progress_bar, show, user_errors, warn
from bilipop.cli.main import app
from bilipop.cli.options import DeviceOpt, InputFile, JsonFlag


@app.command("evaluate", epilog="Example: bilipop evaluate runs/first --split test --json")
def evaluate_cmd(
    run: Annotated[Path, typer.Argument(help="Run folder from bilipop train (or a sweep folder).")],
    data: Annotated[
        Path | None, typer.Option("--data", help="Dataset folder to read labeled.parquet from (default: the "
                                  "dataset recorded in the run).")
    ] = None,
    input: InputFile = None,
    split: Annotated[str, typer.Option(help="test (never trained or chosen on), valid (where the kept epoch was "
                                            "chosen), train or all. Results go to RUN/eval/SPLIT/.")] = "test",
    json_output: JsonFlag = False,
    device: DeviceOpt = "cpu",
) -> None:
    """Score a trained run with the study's ordinal accuracy, beside the trivial floors and the study's figure."""
    from bilipop.evaluation.report import evaluate

    with user_errors(), progress_bar("predicting") as progress:
        report = evaluate(run, data=data, input=input, split=split, progress=progress, device=device)
    for message in report.warnings:
        warn(message)
    if json_output:
        print_json(report.to_json())
    elif report.metrics is None:
        show(views.sweep_views(report, f"evaluate {run} (sweep, {split} split)"))
    else:
        show(views.evaluation_views(report, f"evaluate {run} ({split} split, n = {report.metrics.n:,})"))
    note(f"wrote {', '.join(report.files.values())}")
