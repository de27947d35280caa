"""``predict``: one command, three forms, each its own function: a single COVER TITLE, a ranking of candidate
covers and titles (--cover/--title), and a CSV of videos (--batch). The command checks that exactly one form was
asked for and hands over to it."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from bilipop.cli import views
from bilipop.cli.console import note, out, print_json, progress_bar, show, user_errors
from bilipop.cli.main import app
from bilipop.cli.options import DeviceOpt, JsonFlag, ModelOpt, QuantizeOpt


@app.command("predict", epilog='Example: bilipop predict cover.jpg "三分钟看懂相对论" --model runs/first')
def predict_cmd(
    cover: Annotated[Path | None, typer.Argument(help="Cover image (JPEG, PNG or WebP).")] = None,
    title: Annotated[str | None, typer.Argument(help="The video's title.")] = None,
    model: ModelOpt = None,
    covers: Annotated[list[Path] | None, typer.Option("--cover", help="A candidate cover; repeat to rank several.")]
    = None,
    titles: Annotated[list[str] | None, typer.Option("--title", help="A candidate title; repeat to rank several.")]
    = None,
    batch: Annotated[
        Path | None, typer.Option("--batch", help="Predict every row of a CSV with columns cover,title.")
    ] = None,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Where --batch writes (.csv/.parquet; - for "
                                                                        "CSV on stdout).")]
    = None,
    escape_formulas: Annotated[
        bool, typer.Option("--escape-formulas/--no-escape-formulas",
                           help="In --batch CSV, put ' before text starting with = + - @ (or a tab or CR) so that "
                                "spreadsheets show it rather than run it as a formula.")
    ] = True,
    json_output: JsonFlag = False,
    explain: Annotated[
        bool, typer.Option("--explain", help="Save a cover heatmap beside the cover and list the key title tokens.")
    ] = False,
    device: DeviceOpt = "cpu",
    quantize: QuantizeOpt = None,
) -> None:
    """Predict a video's popularity class from its cover and title; rank candidates; or predict a CSV."""
    single = cover is not None or title is not None
    ranking = bool(covers) or bool(titles)
    if sum((single, ranking, batch is not None)) != 1:
        raise typer.BadParameter("use exactly one form: COVER TITLE, or --cover/--title (ranking), "
                                 "or --batch IN.csv -o OUT.csv")
    if explain and not single:
        raise typer.BadParameter("--explain works with a single COVER TITLE only")
    if output is not None and batch is None:
        raise typer.BadParameter("-o/--output goes with --batch")
    if single and (cover is None or title is None):
        raise typer.BadParameter("give both COVER and TITLE")
    if batch is not None and output is None:
        raise typer.BadParameter("--batch needs -o/--output OUT.csv")
    if output is not None and str(output) == "-" and json_output:
        raise typer.BadParameter("-o - writes the CSV to stdout, where --json would go too: use one of them")
    if cover is not None and title is not None:
        predict_single(model, cover, title, explain=explain, device=device, quantize=quantize,
                       json_output=json_output)
    elif batch is not None and output is not None:
        predict_batch(model, batch, output, escape_formulas=escape_formulas, device=device, quantize=quantize,
                      json_output=json_output)
    else:
        predict_ranking(model, covers or [], titles or [], device=device, quantize=quantize, json_output=json_output)


def predict_single(model: Path | None, cover: Path, title: str, *, explain: bool, device: str,
                   quantize: str | None = None, json_output: bool) -> None:
    """One cover and title: the class and its five probabilities (and, with ``explain``, the heatmap and tokens)."""
    from bilipop.prediction import predict as core

    with user_errors():
        result = core.predict_one(model, cover, title, explain=explain, device=device, quantize=quantize)
    if json_output:
        print_json(result.to_json())
    else:
        show(views.prediction_lines(result))


def predict_ranking(model: Path | None, covers: list[Path], titles: list[str], *, device: str,
                    quantize: str | None = None, json_output: bool) -> None:
    """Every combination of the candidate covers and titles, best expected class first."""
    from bilipop.prediction import predict as core

    with user_errors():
        ranked = core.rank_candidates(model, covers, titles, device=device, quantize=quantize)
    if json_output:
        print_json(core.ranking_json(ranked))
    else:
        out.print(views.ranking_table(ranked))


def predict_batch(model: Path | None, batch: Path, output: Path, *, escape_formulas: bool, device: str,
                  quantize: str | None = None, json_output: bool) -> None:
    """Every row of the CSV ``batch`` into ``output`` (``-``: CSV on stdout, the summary then goes to stderr)."""
    import sys

    from bilipop.prediction import predict as core

    to_stdout = str(output) == "-"
    with user_errors(), progress_bar("predicting") as progress:
        report = core.predict_batch(model, batch, sys.stdout if to_stdout else output, progress=progress,
                                    device=device, escape_formulas=escape_formulas, quantize=quantize)
    if json_output:
        print_json({"input": str(report.input), "output": str(report.output), "rows": report.rows,
                    "class_counts": report.class_counts})
        return
    summary = (f"predicted {report.rows:,} videos: {report.input} → {'stdout' if to_stdout else report.output}; "
               f"class counts {report.class_counts}")
    if to_stdout:
        note(summary)  # stdout holds the CSV
    else:
        out.print(views.safe(summary), highlight=False)
