"""``export``: a run folder to hand on, without the optimizer checkpoint and with 16-bit weights."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from bilipop.cli import views
from bilipop.cli.console import out, user_errors
from bilipop.cli.main import app


@app.command("export", epilog="Example: bilipop export runs/first runs/first-bf16 --dtype bf16")
def export_cmd(
    run: Annotated[Path, typer.Argument(help="Run folder written by bilipop train.")],
    out_dir: Annotated[Path, typer.Argument(help="Folder to write (replaced whole).")],
    dtype: Annotated[str, typer.Option(help="Weights' precision: bf16, fp16 or fp32.")] = "bf16",
) -> None:
    """Write a run folder to hand on: no optimizer checkpoint, weights in bf16/fp16 (safetensors and JSON only)."""
    from bilipop.models.compress import export_run

    with user_errors():
        report = export_run(run, out_dir, dtype)
    share = report.weights_bytes / report.source_bytes if report.source_bytes else 0.0
    out.print(views.safe(f"exported {run} → {report.out} ({report.dtype}): weights {report.weights_bytes:,} bytes, "
                         f"{share:.0%} of the run's {report.source_bytes:,}"), highlight=False)
