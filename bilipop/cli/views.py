"""How results look on a terminal: the rich tables and lines that the commands print.

Only the CLI imports this module (it needs rich); each function turns a core function's result into renderables,
so that each command's module keeps to parsing options and making one core call.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import RenderableType
from rich.markup import escape
from rich.table import Table

from bilipop.data.schema import COUNTERS, LABEL_NAMES

if TYPE_CHECKING:
    from bilipop.evaluation.report import EvaluationReport
    from bilipop.evaluation.results import EpochRow, Verdict
    from bilipop.prediction.predict import Candidate, Prediction

# Terminal control sequences in text from strangers (titles, file names): CSI (colours, clear screen, cursor),
# OSC (window title, hyperlinks, clipboard), DCS/SOS/PM/APC strings, other escapes, 8-bit C1 codes, the other C0
# controls and the bidirectional overrides that reorder what is shown.
_CONTROL = re.compile(
    r"(?:\x1b\[|\x9b)[0-?]*[ -/]*[@-~]?"
    r"|(?:\x1b[\]PX^_]|[\x90\x98\x9d\x9e\x9f])(?:[^\x07\x1b\x9c]*)(?:\x07|\x1b\\|\x9c)?"
    r"|\x1b[ -/]*[0-~]?"
    r"|[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]"
)


def clean(text: object, *, one_line: bool = True) -> str:
    """``text`` without terminal control sequences (a title's ``\\e]0;...\\a`` or ``\\e[2J`` is shown, not run);
    with ``one_line``, tabs and line breaks become spaces so that one message stays one line. Data files keep the
    text as it was."""
    text = _CONTROL.sub("", str(text))
    return text.replace("\t", " ").replace("\n", " ") if one_line else text


def safe(text: object) -> str:
    """User text for a rich renderable: control sequences removed and markup escaped (``[bold]x`` is shown as
    typed, ``[/]x.csv`` is no markup error)."""
    return escape(clean(text))


EPOCH_COLUMNS = ("vit_weight", "epoch", "train_loss", "train_ordinal_accuracy", "valid_loss",
                 "valid_ordinal_accuracy", "seconds")


def fmt(value: object, digits: int = 4) -> str:
    """A metric for a table cell: fixed decimals for floats, an en dash for a missing value."""
    return "–" if value is None else f"{value:.{digits}f}" if isinstance(value, float) else str(value)


# Data stages ----------------------------------------------------------------------------------------------------
def filter_table(report: Any, src: Path, dst: Path) -> Table:
    """Rows in, rows removed by each rule, rows remaining."""
    table = Table(title=f"filter: {safe(src)} → {safe(dst)}", title_justify="left")
    table.add_column("rule")
    table.add_column("rows", justify="right")
    table.add_row("input", f"{report.input_rows:,}")
    for rule, n in report.removed.items():
        table.add_row(f"removed: {rule}", f"{n:,}")
    table.add_row("[bold]remaining[/]", f"[bold]{report.remaining:,}[/]")
    return table


def score_table(scored: Any, weights: Sequence[float], src: Path, dst: Path) -> Table:
    """Each counter's weight and range, then the score's."""
    table = Table(title=f"score: {len(scored):,} videos, {safe(src)} → {safe(dst)}", title_justify="left")
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
    if getattr(report, "by_age", None):
        how = f"quantiles within {report.by_age} age buckets"
    table = Table(title=f"label ({how}): {len(labeled):,} videos, {safe(src)} → {safe(dst)}", title_justify="left")
    for col in ("class", "name", "score from", "videos", "share"):
        table.add_column(col, justify="left" if col == "name" else "right")
    lows = ["-inf", *("per bucket" if t != t else f"{t:g}" for t in report.thresholds)]
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
    return f"{status}{' · ' + safe(p.note) if p.note else ''}\n  {counts}"


def crawl_table(summary: Any, section: str, data: Path) -> Table:
    """The crawl's final summary."""
    table = Table(title=f"crawl: {safe(section)} → {safe(data)}", title_justify="left", show_header=False)
    table.add_column("what")
    table.add_column("count", justify="right")
    for name, value in summary.rows():
        table.add_row(safe(name), safe(value))
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
def span(ci: object, digits: int = 4, signed: bool = False) -> str:
    """A 95 % interval as ``[lo, hi]`` (an en dash when there is none)."""
    if not isinstance(ci, list | tuple) or len(ci) != 2 or None in ci:
        return "–"
    sign = "+" if signed else ""
    return f"[{ci[0]:{sign}.{digits}f}, {ci[1]:{sign}.{digits}f}]"


_MODEL_ROWS = (("ordinal_accuracy", "[bold]ordinal accuracy[/]"), ("accuracy", "exact accuracy"),
               ("within1_accuracy", "within-one accuracy"), ("mae", "MAE"), ("macro_mae", "macro MAE"),
               ("qwk", "weighted kappa (QWK)"), ("spearman", "Spearman vs score"),
               ("ece", "calibration error (ECE)"))


def verdict(v: Verdict) -> str:
    """Whether the model is above the best constant with 95 % confidence (paired bootstrap): the one rendering
    of a verdict, under evaluate's table and, after "verdict:", as the demo's last line."""
    how = (f"{v.difference:+.4f}, 95 % interval {span(v.ci, signed=True)}; paired bootstrap, {v.resamples:,} "
           "resamples stratified by class")
    best = f"(class {v.best_constant_class}, {fmt(v.best_constant)})"
    if v.beats:
        return f"[green]the model is above the best constant[/] {best} with 95 % confidence: {how}"
    return f"[yellow]the model is NOT above the best constant[/] {best} with 95 % confidence: {how}"


def evaluation_views(report: EvaluationReport, title: str) -> list[RenderableType]:
    """The metrics with their 95 % intervals, the floors with theirs, whether the model beats the best constant,
    the per-class table and the confusion matrix; every table fits 80 columns without cutting a number."""
    metrics, floors, judged = report.metrics, report.baselines, report.verdict
    if metrics is None or floors is None or judged is None:
        raise ValueError("evaluation_views shows one run; use sweep_views for a sweep")
    study = floors.study
    summary = Table(title=safe(title), title_justify="left")
    summary.add_column("metric", no_wrap=True)
    summary.add_column("model", justify="right", no_wrap=True)
    summary.add_column("95 % interval", justify="right")
    for key, name in _MODEL_ROWS:
        value = fmt(getattr(metrics, key))
        summary.add_row(name, f"[bold]{value}[/]" if key == "ordinal_accuracy" else value, span(metrics.ci[key]))
    lines: list[RenderableType] = [summary]
    if report.selection:
        lines.append(f"[bold yellow]{escape(report.selection)}[/]")
    lines.append(verdict(judged))
    floor_table = Table(title="floors on the same videos (a model must beat them)", title_justify="left")
    for col in ("floor", "ordinal acc.", "95 % interval", "exact acc.", "MAE"):
        floor_table.add_column(col, justify="left" if col == "floor" else "right")
    for floor, name in ((floors.majority_class, "majority class"), (floors.best_constant, "best constant"),
                        (floors.uniform_random, "uniform random")):
        label = f"{name} ({floor.klass})" if floor.klass is not None else name
        floor_table.add_row(label, fmt(floor.ordinal_accuracy), span((floor.ci or {}).get("ordinal_accuracy")),
                            fmt(floor.accuracy), fmt(floor.mae))
    if study:
        floor_table.add_row(f"study, epoch {study.epoch}", fmt(study.ordinal_accuracy), "–", "", "")
    best = floors.study_best
    lines += [floor_table,
              "the floors depend only on the class counts, which stratified resampling keeps, so their intervals "
              f"are points; study's best: {best.ordinal_accuracy} (w = {best.vit_weight}, epoch {best.epoch})"]
    per = Table(title="per class", title_justify="left")
    for col in ("class", "name", "precision", "recall", "F1", "support"):
        per.add_column(col, justify="left" if col == "name" else "right")
    for row in metrics.per_class:
        per.add_row(str(row.klass), row.name, fmt(row.precision, 3), fmt(row.recall, 3), fmt(row.f1, 3),
                    str(row.support))
    matrix = Table(title="confusion (rows: true class, columns: predicted)", title_justify="left")
    matrix.add_column("true \\ pred")
    for k in range(len(metrics.confusion)):
        matrix.add_column(str(k), justify="right")
    for k, counts in enumerate(metrics.confusion):
        matrix.add_row(f"{k} {LABEL_NAMES[k]}", *(f"[bold]{v}[/]" if j == k else str(v) for j, v in enumerate(counts)))
    return [*lines, per, matrix]


def sweep_views(report: EvaluationReport, title: str) -> list[RenderableType]:
    """One row per weight of a sweep with its interval and its paired difference from the best run, then the
    study's Table 1 layout (train / valid per epoch, the valid figure with its interval)."""
    rows = report.sweep_rows()
    sweep = Table(title=safe(title), title_justify="left")
    for col in ("run", "ord. acc.", "95 % interval", "− best", "95 % interval", "differs"):
        sweep.add_column(col, justify="left" if col in ("run", "differs") else "right",
                         no_wrap=col != "run", overflow="fold")
    for row in rows:
        vs = row.vs_best
        if row.is_best:
            against = ("best", "", "")
        elif vs:
            against = (f"{vs.difference:+.4f}", span(vs.ci, 3, signed=True), "yes" if vs.differs else "no")
        else:
            against = ("–", "", "")
        sweep.add_row(safe(row.run), f"[bold]{fmt(row.ordinal_accuracy)}[/]", span(row.ci, 3), *against)
    constants = sorted({fmt(row.best_constant) for row in rows})
    note = ("[dim]− best: paired difference from the best run on the same videos; differs: whether its 95 % "
            "interval excludes 0 (no: the two runs cannot be told apart here). Best constant: "
            f"{', '.join(constants)}[/]")
    weights = list(dict.fromkeys(r.vit_weight for r in report.table1))
    epochs = sorted({r.epoch for r in report.table1 if r.epoch is not None})
    if not epochs:
        return [sweep, note]
    table1 = Table(title="Table 1 shape: ordinal accuracy per epoch, train / valid [95 % interval]",
                   title_justify="left")
    table1.add_column("epoch", justify="right")
    for w in weights:
        table1.add_column(f"w = {fmt(w, 2)}", justify="right")
    cells = {(r.vit_weight, r.epoch): r for r in report.table1}
    for e in epochs:
        table1.add_row(str(e), *(_table1_cell(cells[w, e]) if (w, e) in cells else "" for w in weights))
    return [sweep, note, table1]


def _table1_cell(row: EpochRow) -> str:
    ci = row.valid_ordinal_accuracy_ci
    cell = f"{fmt(row.train_ordinal_accuracy)} / {fmt(row.valid_ordinal_accuracy)}"
    return f"{cell} {span(ci, 3)}" if ci else cell


# Prediction -----------------------------------------------------------------------------------------------------
def prediction_lines(result: Prediction) -> list[str]:
    """The class, the five probabilities as bars, and the explanation when there is one."""
    lines = [f"[bold]class {result.label}: {result.label_name}[/]  (expected class {result.expected_class:.2f})"]
    for k, p in enumerate(result.probabilities):
        bar = "█" * round(p * 30)
        lines.append(f"  {k} {LABEL_NAMES[k]:<10} {bar:<30} {p:6.1%}")
    explanation = result.explanation
    if explanation:
        if explanation.heatmap:
            lines.append(f"cover heatmap: {safe(explanation.heatmap)}")
        if explanation.tokens:
            lines.append("title tokens that mattered most (drop in the predicted class's probability):")
            lines.extend(f"  {escape(repr(token.token))}: {token.drop:+.4f}" for token in explanation.tokens)
    return lines


def ranking_table(ranked: Sequence[Candidate]) -> RenderableType:
    """Competing cover and title combinations, best expected class first: each one's class (the one nearest its
    expected class, so it never contradicts the order), its five class probabilities, and the probability that it
    beats the next one. A cover is shown by its file name above the title; long text folds onto more lines rather
    than being cut, so the table fits 80 columns whether or not it goes to a terminal."""
    from rich.console import Group

    table = Table(title=f"{len(ranked)} combinations, best first", title_justify="left")
    table.add_column("#", justify="right", no_wrap=True)
    table.add_column("cover / title", overflow="fold", ratio=1)
    table.add_column("class", no_wrap=True)
    table.add_column("exp.", justify="right", no_wrap=True)
    table.add_column("P(0..4) %", justify="right", no_wrap=True)
    table.add_column("beats next", justify="right")
    names = [Path(c.cover).name for c in ranked]
    for c, name in zip(ranked, names, strict=True):
        # titles and paths are the user's text: escaped, so that "[red]" in a title is printed, not applied
        probs = " ".join(f"{100 * p:2.0f}" for p in c.prediction.probabilities)
        beats = "–" if c.p_beats_next is None else f"{c.p_beats_next:.0%}"
        table.add_row(str(c.rank), f"[dim]{safe(name)}[/]\n{safe(c.title)}",
                      f"{c.label} {LABEL_NAMES[c.label]}", f"{c.prediction.expected_class:.2f}", probs, beats)
    notes = ["[dim]class: nearest the expected class (exp.); beats next: probability that its class is above the "
             "next one's, ties counting half, from the two predicted distributions[/]"]
    paths = dict(zip(names, (c.cover for c in ranked), strict=True))
    if len(paths) < len({c.cover for c in ranked}):  # two folders hold covers of the same name
        notes.append("covers: " + "; ".join(f"#{c.rank} {safe(c.cover)}" for c in ranked))
    return Group(table, *notes)


# Demo -----------------------------------------------------------------------------------------------------------
def creator_views(question: Any) -> list[RenderableType]:
    """The two covers and two titles, then their four combinations as ranked, with the world's stated effect."""
    good_cover, plain_cover = (safe(Path(c).name) for c in question.covers)
    good_title, plain_title = (safe(t) for t in question.titles)
    legend = (f"covers: {good_cover} (bright, saturated, a caption band, a face) and {plain_cover} (dark, grey, "
              f"neither)\ntitles: A \"{good_title}\" (a hook word, a number, an emoji) and B \"{plain_title}\" "
              "(none of them)")
    table = Table(title="the four combinations, best predicted first (effect: what the world's stated cause adds, "
                        "in log views)", title_justify="left")
    for col in ("rank", "cover", "title", "class", "expected", "P(beats next)", "effect"):
        table.add_column(col, justify="left" if col in ("cover", "title", "class") else "right")
    for rank, o in enumerate(question.options, 1):
        nxt = "" if o.p_beats_next is None else f"{o.p_beats_next:.0%}"
        table.add_row(str(rank), safe(Path(o.cover).name), "A" if o.appealing_title else "B",
                      f"{o.label} {LABEL_NAMES[o.label]}", f"{o.expected_class:.2f}", nxt, f"{o.stated_effect:+.1f}")
    if question.found_order:
        found = ("[green]the ranking found the better ones:[/] the appealing cover with the appealing title first, "
                 "the plain pair last, as the world's stated cause says")
    elif question.found_best:
        found = ("[yellow]the ranking found the best pair[/] (appealing cover and title first), but not the "
                 "order of the other three")
    else:
        found = "[red]the ranking did not find the better ones[/]: the appealing cover with the appealing title " \
                "is not first"
    return [legend, table, found]
