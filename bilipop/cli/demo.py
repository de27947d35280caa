"""``demo``: the whole study on a simulated world, each stage shown as the command of its own would show it."""

from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path
from typing import Annotated, Any

import typer

from bilipop.cli import views
from bilipop.cli.console import note, out, progress_bar, show, user_errors
from bilipop.cli.crawl import crawl_display
from bilipop.cli.main import app
from bilipop.cli.train import print_epoch_row
from bilipop.data.schema import DEFAULT_WEIGHTS
from bilipop.demo import DEMO_EPOCHS, DEMO_VIDEOS


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
            live["crawl"] = displays.enter_context(crawl_display())
        elif name == "train":
            live["train"] = displays.enter_context(progress_bar("training"))

    def done(name: str, result: Any) -> None:  # each stage returns its own kind of result
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
            show(views.evaluation_views(result, f"evaluate {run} (test split, n = {result.metrics.n:,})"))
        elif name == "rank":
            show(views.creator_views(result))

    with user_errors():
        demo.check_demo_args(videos, epochs)
        data, run = demo.demo_paths(dir)
    out.print("[bold]bilipop demo[/]: the data below is [bold yellow]SIMULATED[/] — bilipop.sim serves a made-up "
              f"Knowledge section of {videos} videos on 127.0.0.1; nothing is fetched from Bilibili.",
              highlight=False)
    # The crawl's status line and the training bar are live displays: one at a time, open during their stage.
    displays, live = ExitStack(), dict[str, Any]()

    def train_progress(done: int, total: int | None = None) -> None:
        live["train"](done, total)

    with user_errors(), displays:
        result = demo.run_demo(dir, videos=videos, epochs=epochs, seed=seed, on_start=start, on_done=done,
                               crawl_progress=lambda p: live["crawl"] and live["crawl"](p),
                               train_progress=train_progress,
                               on_epoch=lambda row: print_epoch_row(row, header))
    assert result.question is not None  # run_demo returns after its last stage, the question, or raises
    best = result.question.options[0]
    shown_data, shown_run, cover, title = (views.safe(x) for x in (data, run, best.cover, best.title))
    out.print(f"\n[bold]Done[/] in {time.perf_counter() - started:.0f} s. The dataset is in {shown_data}, the model in "
              f"{shown_run}. Go on by hand, e.g.\n"
              f"  bilipop evaluate {shown_run} --json\n"
              f"  bilipop predict {cover} \"{title}\" --model {shown_run} --explain\n", highlight=False)
    if result.verdict is not None:
        out.print(f"verdict: {views.verdict(result.verdict)}", highlight=False)
