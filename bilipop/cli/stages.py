"""The data stages: ``filter``, ``score`` and ``label``, each one call of bilipop.data.stages and one table."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from bilipop.cli import views
from bilipop.cli.console import out, user_errors, warn
from bilipop.cli.main import app
from bilipop.cli.options import DataDir, InputFile, OutputFile, comma_list, parse_floats
from bilipop.data.schema import DEFAULT_MAX_FOLLOWERS, DEFAULT_THRESHOLDS, DEFAULT_WEIGHTS
from bilipop.errors import InputError


@app.command("filter", epilog="Example: bilipop filter --data data --max-followers 500000")
def filter_cmd(
    data: DataDir = Path("data"),
    input: InputFile = None,
    output: OutputFile = None,
    max_followers: Annotated[
        int, typer.Option(help="Drop uploaders with at least this many followers.")
    ] = DEFAULT_MAX_FOLLOWERS,
    require_hot: Annotated[
        bool, typer.Option("--require-hot/--no-require-hot", help="Keep only uploaders seen on the hot list.")
    ] = True,
) -> None:
    """Clean the crawl: de-duplicate, drop bad counters, keep small uploaders who have been on the hot list."""
    from bilipop.data.stages import filter_file

    with user_errors():
        done = filter_file(input, output, data=data, max_followers=max_followers, require_hot=require_hot)
    out.print(views.filter_table(done.report, done.input, done.output))


@app.command("score", epilog="Example: bilipop score --data data --weights 0.75,0.1,0.1,0.05,0 --norm paper")
def score_cmd(
    data: DataDir = Path("data"),
    input: InputFile = None,
    output: OutputFile = None,
    weights: Annotated[
        str, typer.Option(help="Weights of views, likes, coins, favorites, shares (non-negative, not all zero).")
    ] = comma_list(DEFAULT_WEIGHTS),
    norm: Annotated[str, typer.Option(
        help="paper: (x - mean) / (max - min), the study; log: the same on log1p(x); rank: percentile ranks in "
             "[0, 1], unmoved by outliers (cut them with label --quantiles).")] = "paper",
    age: Annotated[str, typer.Option(
        help="none: raw counters, the study; per-day: each counter divided by the video's age in days; residual: "
             "log1p(counter) minus a curve of log-age fitted on the table. Age = fetched_at - pubdate, at least "
             "1 hour.")] = "none",
) -> None:
    """Compute the study's popularity score from the five counters."""
    from bilipop.data.stages import score_file

    with user_errors():
        ws = parse_floats(weights, "--weights")
        done = score_file(input, output, data=data, weights=ws, norm=norm, age=age)
    out.print(views.score_table(done.table, ws, done.input, done.output))


@app.command("label", epilog="Example: bilipop label --data data --thresholds 0.00025,0.0015,0.005,0.02")
def label_cmd(
    data: DataDir = Path("data"),
    input: InputFile = None,
    output: OutputFile = None,
    thresholds: Annotated[
        str, typer.Option(help="Four increasing cuts; a score equal to a cut goes to the upper class.")
    ] = comma_list(DEFAULT_THRESHOLDS),
    quantiles: Annotated[
        bool, typer.Option("--quantiles", help="Cut at the 20/40/60/80th percentiles instead (equal classes).")
    ] = False,
    by_age: Annotated[int | None, typer.Option(
        "--by-age", metavar="N",
        help="With --quantiles: five equal classes within each of N equal-count buckets of the video's age.")] = None,
) -> None:
    """Cut the score into the study's five ordered popularity classes and print their sizes."""
    from bilipop.data.stages import label_file

    with user_errors():
        if quantiles and thresholds != comma_list(DEFAULT_THRESHOLDS):
            raise InputError("give --thresholds or --quantiles, not both")
        cuts = [] if quantiles else parse_floats(thresholds, "--thresholds")
        done = label_file(input, output, data=data, thresholds=cuts, quantiles=quantiles, by_age=by_age)
    report = done.report
    out.print(views.label_table(done.table, report, done.input, done.output))
    for message in report.warnings:
        warn(message)
