"""The ``bilipop`` command line: one short function per command, each a thin layer over one core function.

Results go to stdout, messages and progress to stderr. A BilipopError becomes a one-line message and exit code 1
(the traceback only with ``--debug``); usage errors are Typer's own (exit code 2).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import click
import typer
from rich.console import Console
from typer.core import TyperGroup

from bilipop import __version__, views
from bilipop.crawl.api import DEFAULT_API_BASE
from bilipop.data.schema import DEFAULT_MAX_FOLLOWERS, DEFAULT_THRESHOLDS, DEFAULT_WEIGHTS
from bilipop.demo import DEMO_EPOCHS, DEMO_VIDEOS
from bilipop.errors import BilipopError, InputError
from bilipop.train_config import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_BERT,
    DEFAULT_CHECKPOINT,
    DEFAULT_EPOCHS,
    DEFAULT_TEXT,
    DEFAULT_VISION,
    DEFAULT_VIT,
    DEFAULT_VIT_WEIGHT,
    TrainConfig,
)


class _PipelineOrder(TyperGroup):
    """Lists the commands in the order of the pipeline rather than the order they are defined in."""

    order = ("crawl", "filter", "score", "label", "train", "evaluate", "predict", "export", "demo")

    def list_commands(self, ctx: click.Context) -> list[str]:
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
out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)
log = logging.getLogger("bilipop")


@dataclass
class State:
    verbose: bool = False
    quiet: bool = False
    debug: bool = False


STATE = State()


# ---------------------------------------------------------------------------------------------------------------
# Options shared by several commands, declared once.
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
        yield lambda done, total=None: None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                  console=err, transient=True) as bar:
        task = bar.add_task(description, total=None)

        def update(done: int, total: int | None = None) -> None:
            bar.update(task, completed=done, total=total)

        yield update


def parse_floats(text: str, option: str) -> list[float]:
    """Parse a comma list of numbers given to ``option``; a bad item is a user error (exit 1)."""
    try:
        return [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise InputError(f"{option} takes numbers separated by commas, got {text!r}") from None


def _comma_list(numbers: tuple[float, ...]) -> str:
    return ",".join(f"{x:g}" for x in numbers)


# ---------------------------------------------------------------------------------------------------------------
# Data stages
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
    ] = _comma_list(DEFAULT_WEIGHTS),
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
    ] = _comma_list(DEFAULT_THRESHOLDS),
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
        if quantiles and thresholds != _comma_list(DEFAULT_THRESHOLDS):
            raise InputError("give --thresholds or --quantiles, not both")
        cuts = [] if quantiles else parse_floats(thresholds, "--thresholds")
        done = label_file(input, output, data=data, thresholds=cuts, quantiles=quantiles, by_age=by_age)
    report = done.report
    out.print(views.label_table(done.table, report, done.input, done.output))
    for message in report.warnings:
        warn(message)


# ---------------------------------------------------------------------------------------------------------------
# Crawl
@contextmanager
def _crawl_display() -> Iterator[Callable[[object], None] | None]:
    """A live status line on a terminal, a plain line every 10 s otherwise, nothing with -q."""
    if STATE.quiet:
        yield None
        return
    if not err.is_terminal:
        last = [float("-inf")]

        def plain(p: object) -> None:
            import time

            if time.monotonic() - last[0] >= 10:
                last[0] = time.monotonic()
                err.print(views.crawl_status(p), highlight=False)

        yield plain
        return
    from rich.live import Live

    with Live(console=err, transient=True, refresh_per_second=4) as live:
        yield lambda p: live.update(views.crawl_status(p))


@app.command("crawl", epilog="Example: bilipop crawl --section knowledge --data data --max-videos 500 --rate 1")
def crawl_cmd(
    section: Annotated[str, typer.Option(help="The section to crawl; the only one is knowledge (知识, v2 main 1010).")
                       ] = "knowledge",
    data: DataDir = Path("data"),
    max_videos: Annotated[
        int | None, typer.Option(help="Stop once the store holds this many Knowledge videos (default: all found).")
    ] = None,
    tids: Annotated[
        str | None, typer.Option(help="v2 sub-partitions to keep, e.g. 2094,2090 (default: all twelve of Knowledge, "
                                      "2084-2095; the old ids such as 201 were renumbered in 2025).")
    ] = None,
    rate: Annotated[
        float, typer.Option(help="API requests per second, with jitter; covers have a limit of their own. "
                                 "0 (no limit) only for a local --api-base.")
    ] = 1.0,
    api_base: Annotated[
        str, typer.Option(help="The API origin; give a local `python -m bilipop.sim` address to crawl a stand-in.")
    ] = DEFAULT_API_BASE,
    ignore_robots: Annotated[
        bool, typer.Option("--ignore-robots", help="Fetch what robots.txt disallows. Only with the right to crawl "
                                                    "the site anyway (your own server, written permission).")
    ] = False,
    widen: Annotated[
        bool, typer.Option("--widen", help="Also walk the uploaders of Knowledge videos in the Related lists of hot "
                                           "uploaders' videos (Related comes free with each video, but each new "
                                           "uploader costs one request per 30 uploads plus up to one per upload: "
                                           "on the stand-in, about 3x the requests for 2x the videos). Their "
                                           "videos are stored; filter keeps only hot-list uploaders.")
    ] = False,
    refresh: Annotated[
        bool, typer.Option("--refresh", help="Re-read the counters of every stored video (one request each).")
    ] = False,
) -> None:
    """Crawl the hot lists, their uploaders' uploads, the Knowledge videos among them and their covers into
    DIR/bilipop.db; run it again to resume."""
    from bilipop.crawl.crawler import CrawlPlan, crawl

    if ignore_robots:
        warn("[bold]--ignore-robots: robots.txt will NOT be obeyed.[/] Crawl only what you have the right to "
             "crawl, keep --rate low, and stop if asked to.", markup=True)
    def say_plan(plan: CrawlPlan) -> None:
        if not STATE.quiet:
            for line in plan.lines:
                err.print(line, highlight=False, markup=False)

    with user_errors(), _crawl_display() as show:
        summary = crawl(data=data, section=section, max_videos=max_videos, tids=tids, rate=rate,
                        api_base=api_base, ignore_robots=ignore_robots, widen=widen,
                        refresh=refresh, progress=show, on_plan=say_plan)
    out.print(views.crawl_table(summary, section, data))




# ---------------------------------------------------------------------------------------------------------------
# Training
def _print_epoch_row(row: dict, header: list[bool]) -> None:
    if not header:
        out.print(views.epoch_header(), style="bold")
        header.append(True)
    out.print(views.epoch_line(row))


def _parse_balance(text: str | None) -> list[int] | str | None:
    if text is None or text.strip() in ("cost", "time"):
        return None if text is None else text.strip()
    return _parse_counts(text, "--balance")


def _parse_counts(text: str, option: str) -> list[int]:
    values = parse_floats(text, option)
    if any(v != int(v) for v in values):
        raise InputError(f"{option} takes whole numbers separated by commas, got {text!r}")
    return [int(v) for v in values]


@app.command("train", epilog="Example: bilipop train --data data --out runs/first --vit tiny --bert tiny "
                             "--devices cpu,cpu --epochs 3")
def train_cmd(
    data: DataDir = Path("data"),
    input: InputFile = None,
    out_dir: Annotated[Path, typer.Option("--out", help="Run folder to write (a sweep writes RUN/w<weight>/).")] = ...,
    vit: Annotated[str, typer.Option(help="Cover model: pretrained name, tiny, or a .pth path (with --vision vgg: "
                                          "vgg16, random, tiny or a path).")] = DEFAULT_VIT,
    bert: Annotated[str, typer.Option(help="Title model: Hugging Face name, tiny, or a save_pretrained folder.")
                    ] = DEFAULT_BERT,
    vision: Annotated[str, typer.Option(help="Cover encoder: vit or vgg (the study's Table 2).")] = DEFAULT_VISION,
    text: Annotated[str, typer.Option(help="Title encoder: bert or rnn (the study's Table 2).")] = DEFAULT_TEXT,
    vit_weight: Annotated[str, typer.Option(help="Cover weight w in w*vision + (1-w)*text; a comma list sweeps "
                                                 "(Table 1).")] = f"{DEFAULT_VIT_WEIGHT:g}",
    epochs: Annotated[int, typer.Option(help="Training epochs.")] = DEFAULT_EPOCHS,
    batch_size: Annotated[int, typer.Option(help="Rows per step (over all processes).")] = DEFAULT_BATCH_SIZE,
    lr: Annotated[float | None, typer.Option(help="AdamW learning rate \\[default: 5e-5; 1e-3 with tiny models].")
                  ] = None,
    gpus: Annotated[int | None, typer.Option(help="Use cuda:0..N-1 (GPipe when N >= 2) \\[default: every visible "
                                                  "GPU, else CPU].")] = None,
    devices: Annotated[str | None, typer.Option(help="GPipe over these devices, e.g. cpu,cpu or cuda:0,cuda:2.")
                       ] = None,
    chunks: Annotated[int | None, typer.Option(help="GPipe micro-batches per batch \\[default: 4 per device].")
                      ] = None,
    balance: Annotated[str | None, typer.Option(help="Pipeline layers per device, e.g. 3,3; or time (by timing, "
                                                     "differs between runs) \\[default: cost, from each layer's "
                                                     "FLOPs: the same every run].")] = None,
    checkpoint: Annotated[str, typer.Option(help="GPipe activation checkpointing: never, except_last or always.")
                          ] = DEFAULT_CHECKPOINT,
    precision: Annotated[str | None, typer.Option(help="bf16, fp16 or fp32 \\[default: bf16/fp16 on GPU, fp32 on "
                                                       "CPU].")] = None,
    cache: Annotated[bool, typer.Option("--cache", help="Keep resized covers in a uint8 memmap (RUN/cover_cache) "
                                                        "so later epochs skip JPEG decoding.")] = False,
    seed: Annotated[int, typer.Option(help="Seed of the split, the initial weights and the batch order.")] = 0,
    resume: Annotated[bool, typer.Option("--resume", help="Continue an interrupted run in --out exactly.")] = False,
    num_workers: Annotated[int | None, typer.Option(help="DataLoader worker processes \\[default: 0 for small "
                                                         "datasets, else up to 4].")] = None,
    select_on: Annotated[str, typer.Option(help="Part that history.jsonl reports and the kept epoch is chosen on: "
                                                "valid, or test to reproduce the study's protocol.")] = "valid",
    vit_heads: Annotated[int | None, typer.Option(help="Attention heads of a --vit PATH checkpoint that is not a "
                                                       "known ViT (its weights do not record it).")] = None,
    loss: Annotated[str, typer.Option(help="ce: 5-way cross-entropy (the study); corn: rank-consistent ordinal "
                                           "(CORN), same five probabilities out.")] = "ce",
    class_weights: Annotated[str, typer.Option(help="none, or balanced: weight each class by n / (5 n_k) of the "
                                                    "train part (helps the rare top classes).")] = "none",
    random_init: Annotated[bool, typer.Option("--random-init", help="The --vit/--bert architectures with random "
                                                                    "weights: no weights read or downloaded.")
                           ] = False,
) -> None:
    """Train the ViT + BERT late-fusion classifier and write a self-contained run folder."""
    from bilipop.train.trainer import train

    header: list[bool] = []
    with user_errors():
        config = TrainConfig(
            vit=vit, bert=bert, vision=vision, text=text, vit_weight=tuple(parse_floats(vit_weight, "--vit-weight")),
            epochs=epochs, batch_size=batch_size, lr=lr, gpus=gpus, devices=devices, chunks=chunks,
            balance=_parse_balance(balance), checkpoint=checkpoint, precision=precision, cache=cache, seed=seed,
            num_workers=num_workers, select_on=select_on, vit_heads=vit_heads, loss=loss,
            class_weights=class_weights, random_init=random_init,
        )
    with user_errors(), progress_bar("training") as update:
        result = train(config, data=data, input=input, out=out_dir, resume=resume, progress=update,
                       on_epoch=lambda row: _print_epoch_row(row, header))
    if not result.is_main:  # torchrun: rank 0 reports for everyone
        return
    for w, run, best, history in zip(result.weights, result.runs, result.best_epochs, result.histories,
                                     strict=True):
        if best is not None:
            row = history[best - 1]
            part = "TEST part, as the study" if select_on == "test" else "valid part"
            note(f"w={w:g}: best epoch {best} (ordinal accuracy {row['valid_ordinal_accuracy']:.4f} on the {part}) "
                 f"kept in {run}")
    if result.table1 is not None:
        note(f"Table 1 layout written to {result.table1} and {result.table1.with_suffix('.csv')}")




# ---------------------------------------------------------------------------------------------------------------
# Evaluation and prediction
def _show(items: list) -> None:
    """Print renderables from bilipop.views (user text in them is already escaped)."""
    for item in items:
        out.print(item, highlight=False)


def _print_json(data: object) -> None:
    import json

    typer.echo(json.dumps(data, ensure_ascii=False))


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
        _print_json(report.to_json())
    elif report.metrics is None:
        _show(views.sweep_views(report, f"evaluate {run} (sweep, {split} split)"))
    else:
        _show(views.evaluation_views(report, f"evaluate {run} ({split} split, n = {report.metrics.n:,})"))
    note(f"wrote {', '.join(report.files.values())}")


@app.command("predict", epilog='Example: bilipop predict cover.jpg "三分钟看懂相对论" --model runs/first')
def predict_cmd(
    cover: Annotated[Path | None, typer.Argument(help="Cover image (JPEG, PNG or WebP).")] = None,
    title: Annotated[str | None, typer.Argument(help="The video's title.")] = None,
    model: Annotated[
        Path | None, typer.Option("--model", help="Run folder (default: $BILIPOP_MODEL, else the newest under ./runs).")
    ] = None,
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
    from bilipop.prediction import predict as core

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
    to_stdout = output is not None and str(output) == "-"
    if to_stdout and json_output:
        raise typer.BadParameter("-o - writes the CSV to stdout, where --json would go too: use one of them")
    with user_errors():
        if quantize is not None:
            from bilipop.models.run import load_run

            model = load_run(core.resolve_model(model), device=device, quantize=quantize)
        if single:
            result = core.predict_one(model, cover, title, explain=explain, device=device).to_json()
        elif ranking:
            ranked = core.ranking_json(core.rank_candidates(model, covers or [], titles or [], device=device))
        else:
            with progress_bar("predicting") as progress:
                import sys

                report = core.predict_batch(model, batch, sys.stdout if to_stdout else output, progress=progress,
                                            device=device, escape_formulas=escape_formulas)
    if single and json_output:
        _print_json(result)
    elif single:
        _show(views.prediction_lines(result))
    elif ranking:
        if json_output:
            _print_json(ranked)
            return
        out.print(views.ranking_table(ranked["candidates"]))
    elif json_output:
        _print_json({"input": str(report.input), "output": str(report.output), "rows": report.rows,
                     "class_counts": report.class_counts})
    else:
        summary = (f"predicted {report.rows:,} videos: {report.input} → {'stdout' if to_stdout else report.output}; "
                   f"class counts {report.class_counts}")
        if to_stdout:
            note(summary)  # stdout holds the CSV
        else:
            out.print(views.safe(summary), highlight=False)




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


# ---------------------------------------------------------------------------------------------------------------
# Demo
@app.command("demo", epilog="Example: bilipop demo --dir bilipop-demo --seed 1")
def demo_cmd(
    dir: Annotated[Path, typer.Option("--dir", help="Folder for the dataset (DIR/data) and the run (DIR/runs/demo).")]
    = Path("bilipop-demo"),
    videos: Annotated[int, typer.Option(help="Knowledge videos in the simulated world (the crawl keeps those of "
                                             "uploaders on its hot lists).")] = DEMO_VIDEOS,
    epochs: Annotated[int, typer.Option(help="Training epochs of the tiny models.")] = DEMO_EPOCHS,
    seed: Annotated[int, typer.Option(help="Seed of the simulated world and of training.")] = 0,
) -> None:
    """Run the whole study on simulated data: crawl a local stand-in, filter, score, label, train, evaluate, and
    rank two covers x two titles."""
    import time

    from bilipop import demo

    started = time.perf_counter()
    captions = demo.stage_captions(epochs)
    header: list[bool] = []

    def start(name: str) -> None:
        out.print(f"\n[bold cyan]── {demo.STAGES.index(name) + 1}/{len(demo.STAGES)} {captions[name]}[/]",
                  highlight=False)
        if name == "crawl":
            live["crawl"] = displays.enter_context(_crawl_display())
        elif name == "train":
            live["train"] = displays.enter_context(progress_bar("training"))

    def done(name: str, result: object) -> None:
        displays.close()
        if name == "crawl":
            out.print(views.crawl_table(result, "knowledge", data))
        elif name == "filter":
            out.print(views.filter_table(result.report, result.input, result.output))
        elif name == "score":
            out.print(views.score_table(result.table, DEFAULT_WEIGHTS, result.input, result.output))
        elif name == "label":
            out.print(views.label_table(result.table, result.report, result.input, result.output))
        elif name == "train" and result.best_epochs[0] is not None:
            note(f"best epoch {result.best_epochs[0]} kept in {run} (chosen on the valid part; the test part stays "
                 "unseen)")
        elif name == "evaluate":
            _show(views.evaluation_views(result, f"evaluate {run} (test split, n = {result.metrics.n:,})"))
        elif name == "rank":
            _show(views.creator_views(result))

    with user_errors():
        demo.check_demo_args(videos, epochs)
        data, run = demo.demo_paths(dir)
    out.print("[bold]bilipop demo[/]: the data below is [bold yellow]SIMULATED[/] — bilipop.sim serves a made-up "
              f"Knowledge section of {videos} videos on 127.0.0.1; nothing is fetched from Bilibili.",
              highlight=False)
    # The crawl's status line and the training bar are live displays: one at a time, open during their stage.
    displays, live = ExitStack(), {}
    with user_errors(), displays:
        result = demo.run_demo(dir, videos=videos, epochs=epochs, seed=seed, on_start=start, on_done=done,
                               crawl_progress=lambda p: live["crawl"] and live["crawl"](p),
                               train_progress=lambda d, t=None: live["train"](d, t),
                               on_epoch=lambda row: _print_epoch_row(row, header))
    cover, title = result.question.options[0].cover, result.question.options[0].title
    data, run, cover, title = (views.safe(x) for x in (data, run, cover, title))
    out.print(f"\n[bold]Done[/] in {time.perf_counter() - started:.0f} s. The dataset is in {data}, the model in "
              f"{run}. Go on by hand, e.g.\n"
              f"  bilipop evaluate {run} --json\n"
              f"  bilipop predict {cover} \"{title}\" --model {run} --explain\n", highlight=False)
    if result.verdict is not None:
        out.print(f"verdict: {views.verdict(result.verdict)}", highlight=False)


# ---------------------------------------------------------------------------------------------------------------
# Web page and API (the optional web extra)
@app.command("serve", epilog="Example: bilipop serve --model bilipop-demo/runs/demo --port 8765")
def serve_cmd(
    model: Annotated[
        Path | None, typer.Option("--model", help="Run folder (default: $BILIPOP_MODEL, else the newest under ./runs).")
    ] = None,
    host: Annotated[str, typer.Option(help="Address to listen on; 0.0.0.0 opens the page to the whole network.")]
    = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on (0: any free port).")] = 8765,
    device: DeviceOpt = "cpu",
    quantize: QuantizeOpt = None,
) -> None:
    """Serve a web page that compares covers and titles, and a JSON API (needs: pip install "bilipop\\[web]")."""
    from bilipop.serve.server import is_loopback, serve

    if not is_loopback(host):
        warn(f"--host {host}: anyone who can reach this machine can use the page and the API; there is no login")
    with user_errors():
        try:
            serve(model, host=host, port=port, device=device, quantize=quantize,
                  ready=lambda url: note(f"serving the model on {url} (Ctrl+C to stop)"))
        except KeyboardInterrupt:  # Ctrl+C is how a server is stopped: not an error
            note("stopped")
