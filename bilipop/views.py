"""How results look on a terminal: the rich tables and lines that the commands print.

Only the CLI imports this module (it needs rich); each function turns a core function's result into renderables,
so that ``cli.py`` keeps to parsing options and making one core call per command.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich.console import RenderableType
from rich.markup import escape
from rich.table import Table

from bilipop.data.schema import COUNTERS, LABEL_NAMES

EPOCH_COLUMNS = ("vit_weight", "epoch", "train_loss", "train_ordinal_accuracy", "valid_loss",
                 "valid_ordinal_accuracy", "seconds")


def fmt(value: object, digits: int = 4) -> str:
    """A metric for a table cell: fixed decimals for floats, an en dash for a missing value."""
    return "–" if value is None else f"{value:.{digits}f}" if isinstance(value, float) else str(value)


# Data stages ----------------------------------------------------------------------------------------------------
def filter_table(report: Any, src: Path, dst: Path) -> Table:
    """Rows in, rows removed by each rule, rows remaining."""
    table = Table(title=f"filter: {src} → {dst}", title_justify="left")
    table.add_column("rule")
    table.add_column("rows", justify="right")
    table.add_row("input", f"{report.input_rows:,}")
    for rule, n in report.removed.items():
        table.add_row(f"removed: {rule}", f"{n:,}")
    table.add_row("[bold]remaining[/]", f"[bold]{report.remaining:,}[/]")
    return table


def score_table(scored: Any, weights: Sequence[float], src: Path, dst: Path) -> Table:
    """Each counter's weight and range, then the score's."""
    table = Table(title=f"score: {len(scored):,} videos, {src} → {dst}", title_justify="left")
    for col in ("", "weight", "min", "mean", "max"):
        table.add_column(col, justify="right" if col else "left")
    for col, w in zip(COUNTERS, weights, strict=True):
        raw = scored[col]
        table.add_row(col, f"{w:g}", f"{raw.min():,}", f"{raw.mean():,.1f}", f"{raw.max():,}")
    s = scored["score"]
    table.add_row("[bold]score[/]", "", f"{s.min():.6f}", f"{s.mean():.6f}", f"{s.max():.6f}")
    return table


def label_table(labeled: Any, report: Any, src: Path, dst: Path) -> Table:
    """Each class with the score it starts at, its size and its share."""
    how = "quantiles" if report.quantiles else "thresholds"
    table = Table(title=f"label ({how}): {len(labeled):,} videos, {src} → {dst}", title_justify="left")
    for col in ("class", "name", "score from", "videos", "share"):
        table.add_column(col, justify="left" if col == "name" else "right")
    lows = ["-inf", *(f"{t:g}" for t in report.thresholds)]
    for k, name in enumerate(LABEL_NAMES):
        table.add_row(str(k), name, lows[k], f"{report.counts[k]:,}", f"{report.shares[k]:.1%}")
    return table


# Crawl ----------------------------------------------------------------------------------------------------------
def crawl_status(p: Any) -> str:
    """Two lines on a CrawlProgress: phase and its progress, request rate, blocks and ETA; then the counts."""
    eta = "?" if p.eta_s is None else f"{int(p.eta_s) // 3600}:{int(p.eta_s) % 3600 // 60:02d}:{int(p.eta_s) % 60:02d}"
    step = f" {p.done:,}/{p.total:,}" if p.total else ""
    status = f"crawl {p.phase}{step} · {p.request_rate:.1f} req/s · blocks {p.blocks} · ETA {eta}"
    counts = (f"Knowledge videos {p.videos:,}/{p.videos_target or '?'} · examined {p.examined:,} · other sections "
              f"{p.other:,} · requests {p.requests:,}")
    return f"{status}{' · ' + p.note if p.note else ''}\n  {counts}"


def crawl_table(summary: Any, section: str, data: Path) -> Table:
    """The crawl's final summary."""
    table = Table(title=f"crawl: {section} → {data}", title_justify="left", show_header=False)
    table.add_column("what")
    table.add_column("count", justify="right")
    for name, value in summary.rows():
        table.add_row(name, value)
    if summary.warnings:
        table.add_row("[yellow]warnings (logged above)[/]", f"{len(summary.warnings):,}")
    return table


# Training -------------------------------------------------------------------------------------------------------
def epoch_header() -> str:
    """The header over the rows of ``epoch_line``."""
    return "  ".join(f"{c:>{max(len(c), 8)}}" for c in EPOCH_COLUMNS)


def epoch_line(row: dict) -> str:
    """One history row as a line under ``epoch_header``."""
    cells = [f"{row['vit_weight']:g}", str(row["epoch"])] + [
        f"{row[c]:.4f}" for c in EPOCH_COLUMNS[2:6]] + [f"{row['seconds']:.1f}"]
    return "  ".join(f"{v:>{max(len(c), 8)}}" for c, v in zip(EPOCH_COLUMNS, cells, strict=True))


# Evaluation -----------------------------------------------------------------------------------------------------
def evaluation_views(result: dict, title: str) -> list[RenderableType]:
    """The metrics beside the floors and the study's figure, the per-class table and the confusion matrix."""
    floors = result["baselines"]
    study = floors["study"]
    summary = Table(title=title, title_justify="left")
    summary.add_column("metric", no_wrap=True)
    for col in ("model", "majority class", "best constant", "uniform random",
                f"study, epoch {study['epoch']}" if study else "study"):
        summary.add_column(col, justify="right")
    consts = [floors["majority_class"], floors["best_constant"], floors["uniform_random"]]
    for key, name in (("ordinal_accuracy", "[bold]ordinal accuracy[/]"), ("accuracy", "exact accuracy"),
                      ("within1_accuracy", "within-one accuracy"), ("mae", "MAE")):
        paper = fmt(study["ordinal_accuracy"]) if study and key == "ordinal_accuracy" else ""
        summary.add_row(name, f"[bold]{fmt(result[key])}[/]", *(fmt(c[key]) for c in consts), paper)
    for key, name in (("macro_mae", "macro MAE"), ("qwk", "weighted kappa (QWK)"),
                      ("spearman", "Spearman vs score")):
        summary.add_row(name, fmt(result[key]), "", "", "", "")
    best = floors["study_best"]
    constants = (f"constants: majority = class {floors['majority_class']['class']}, best constant = class "
                 f"{floors['best_constant']['class']}; study's best: {best['ordinal_accuracy']} "
                 f"(w = {best['vit_weight']}, epoch {best['epoch']})")
    per = Table(title="per class", title_justify="left")
    for col in ("class", "name", "precision", "recall", "F1", "support"):
        per.add_column(col, justify="left" if col == "name" else "right")
    for k, row in enumerate(result["per_class"]):
        per.add_row(str(k), LABEL_NAMES[k], fmt(row["precision"], 3), fmt(row["recall"], 3),
                    fmt(row["f1"], 3), str(row["support"]))
    matrix = Table(title="confusion (rows: true class, columns: predicted)", title_justify="left")
    matrix.add_column("true \\ pred")
    for k in range(len(result["confusion"])):
        matrix.add_column(str(k), justify="right")
    for k, row in enumerate(result["confusion"]):
        matrix.add_row(f"{k} {LABEL_NAMES[k]}", *(f"[bold]{v}[/]" if j == k else str(v) for j, v in enumerate(row)))
    return [summary, constants, per, matrix]


def sweep_views(result: dict, title: str) -> list[RenderableType]:
    """One row per weight of a sweep, then the study's Table 1 layout (train / valid per epoch)."""
    sweep = Table(title=title, title_justify="left")
    for col in ("run", "vit weight", "ordinal accuracy", "accuracy", "QWK", "macro MAE", "best constant",
                "study", "n"):
        sweep.add_column(col, justify="left" if col == "run" else "right")
    for row in result["sweep"]:
        sweep.add_row(row["run"], fmt(row["vit_weight"], 2), f"[bold]{fmt(row['ordinal_accuracy'])}[/]",
                      fmt(row["accuracy"]), fmt(row["qwk"]), fmt(row["macro_mae"]),
                      fmt(row["best_constant"]), fmt(row["study"]), str(row["n"]))
    weights = list(dict.fromkeys(r["vit_weight"] for r in result["table1"]))
    epochs = sorted({r["epoch"] for r in result["table1"] if r["epoch"] is not None})
    if not epochs:
        return [sweep]
    table1 = Table(title="Table 1 shape: ordinal accuracy per epoch (train / valid)", title_justify="left")
    table1.add_column("epoch", justify="right")
    for w in weights:
        table1.add_column(f"w = {fmt(w, 2)}", justify="right")
    cells = {(r["vit_weight"], r["epoch"]): r for r in result["table1"]}
    for e in epochs:
        table1.add_row(str(e), *(
            f"{fmt(cells[w, e]['train_ordinal_accuracy'])} / {fmt(cells[w, e]['valid_ordinal_accuracy'])}"
            if (w, e) in cells else "" for w in weights))
    return [sweep, table1]


# Prediction -----------------------------------------------------------------------------------------------------
def prediction_lines(result: dict) -> list[str]:
    """The class, the five probabilities as bars, and the explanation when there is one."""
    lines = [f"[bold]class {result['label']}: {result['label_name']}[/]  "
             f"(expected class {result['expected_class']:.2f})"]
    for k, p in enumerate(result["probabilities"]):
        bar = "█" * round(p * 30)
        lines.append(f"  {k} {LABEL_NAMES[k]:<10} {bar:<30} {p:6.1%}")
    explanation = result.get("explanation")
    if explanation:
        if explanation["heatmap"]:
            lines.append(f"cover heatmap: {escape(str(explanation['heatmap']))}")
        if explanation["tokens"]:
            lines.append("title tokens that mattered most (drop in the predicted class's probability):")
            lines.extend(f"  {escape(repr(token['token']))}: {token['drop']:+.4f}" for token in explanation["tokens"])
    return lines


def ranking_table(ranked: list[dict]) -> Table:
    """Competing cover and title combinations, best expected class first."""
    table = Table(title=f"{len(ranked)} combinations, best first", title_justify="left")
    for col in ("rank", "cover", "title", "class", "expected class"):
        table.add_column(col, justify="right" if col in ("rank", "expected class") else "left")
    for rank, c in enumerate(ranked, 1):
        # titles and paths are the user's text: escaped, so that "[red]" in a title is printed, not applied
        table.add_row(str(rank), escape(c["cover"]), escape(c["title"]), f"{c['label']} {c['label_name']}",
                      f"{c['expected_class']:.3f}")
    return table
