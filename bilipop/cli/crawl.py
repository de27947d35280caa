"""``crawl``: the hot lists, their uploaders and the Knowledge videos into a store, with a live status line."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer

from bilipop.cli import views
from bilipop.cli.console import STATE, err, out, user_errors, warn
from bilipop.cli.main import app
from bilipop.cli.options import DataDir
from bilipop.crawl.api import DEFAULT_API_BASE


@contextmanager
def crawl_display() -> Iterator[Callable[[object], None] | None]:
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

    with user_errors(), crawl_display() as show:
        summary = crawl(data=data, section=section, max_videos=max_videos, tids=tids, rate=rate,
                        api_base=api_base, ignore_robots=ignore_robots, widen=widen,
                        refresh=refresh, progress=show, on_plan=say_plan)
    out.print(views.crawl_table(summary, section, data))
