"""``evaluate``: predict a run's split, compute every metric with its 95 % bootstrap interval beside the floors,
measure calibration, and write ``RUN/eval/<split>/`` (one folder per split, so no split overwrites another's).

The labeled table comes from ``input`` (a file), else ``data`` (a dataset folder, its ``labeled.parquet``),
else the ``input`` recorded in the run's config. Relative cover paths are resolved as in training: against the
dataset folder (``data``, else the one recorded in the run), else against the table's own folder.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bilipop.data.schema import LABEL_NAMES, STAGE_INPUTS
from bilipop.errors import InputError, ModelError
from bilipop.evaluation.baselines import baselines
from bilipop.evaluation.metrics import all_metrics
from bilipop.evaluation.results import (
    Bootstrap,
    ClassRow,
    EpochRow,
    Floors,
    Metrics,
    PairedDifference,
    RunDifference,
    SweepRow,
    Verdict,
)
from bilipop.layout import EVAL_DIR, HISTORY, METRICS, SPLIT, SWEEP
from bilipop.models.limits import parse_json
from bilipop.progress import ProgressArg, takes_progress
from bilipop.stats.credit import expected_class

if TYPE_CHECKING:
    from bilipop.models.run import RunConfig

log = logging.getLogger(__name__)

SPLITS = ("test", "valid", "train", "all")
SMALL_CLASS = 10  # videos per class below which the intervals come with a warning
PARTS = ("train", "valid", "test")


@dataclass
class EvaluationReport:
    """The metrics of one run on one split (``runs`` is filled for a sweep folder instead)."""

    run: Path
    split: str
    metrics: Metrics | None = None  # None for a sweep
    baselines: Floors | None = None  # None for a sweep
    setting: dict[str, Any] = field(default_factory=dict)  # the settings the run was trained with
    files: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    runs: dict[str, EvaluationReport] = field(default_factory=dict)
    table1: list[EpochRow] = field(default_factory=list)
    selection: str | None = None  # "selected on test (as the study)" etc. when the split chose the kept epoch
    credit: Any = None  # each row's ordinal credit (numpy), for paired comparisons between the runs of a sweep
    truth: Any = None

    @property
    def is_sweep(self) -> bool:
        """True for a sweep folder's report (one sub-report per weight)."""
        return bool(self.runs)

    @property
    def verdict(self) -> Verdict | None:
        """Whether the model is above the best constant with 95 % confidence (None for a sweep)."""
        if self.metrics is None or self.baselines is None:
            return None
        return Verdict.of(self.metrics, self.baselines)

    def to_json(self) -> dict[str, Any]:
        """A run: ``run``, ``split``, ``n``, ``setting``, ``selection``, every metric, ``ci`` (metric -> [lo, hi]),
        ``ece`` and ``calibration`` (the reliability bins), ``baselines`` (each floor with its own ``ci``) and
        ``beats_best_constant``. A sweep: ``run``, ``split``, ``sweep`` (one row per weight, with intervals and the
        paired difference from the best run), ``table1`` (per-epoch history) and ``runs`` (each run's object)."""
        if self.metrics is None or self.baselines is None:
            return {"run": str(self.run), "split": self.split,
                    "sweep": [asdict(row) for row in self.sweep_rows()],
                    "table1": [asdict(row) for row in self.table1],
                    "runs": {name: r.to_json() for name, r in self.runs.items()}}
        figures = self.metrics.to_json()
        return {"run": str(self.run), "split": self.split, "n": figures.pop("n"), "setting": self.setting,
                "selection": self.selection, **figures, "baselines": self.baselines.to_json()}

    def sweep_rows(self) -> list[SweepRow]:
        """One summary row per run of a sweep, in the sweep's order; ``vs_best`` is the paired difference of its
        ordinal accuracy from the best run's, with its interval and whether the two differ at 95 %."""
        from bilipop.evaluation.intervals import paired_difference

        runs = {name: (r, r.metrics, r.baselines) for name, r in self.runs.items()
                if r.metrics is not None and r.baselines is not None}
        best = max(runs.values(), key=lambda entry: entry[1].ordinal_accuracy)[0]
        rows = []
        for name, (r, metrics, floors) in runs.items():
            same_rows = r.truth is not None and best.truth is not None and len(r.truth) == len(best.truth) \
                and bool((r.truth == best.truth).all())
            vs_best = None
            if r is not best and same_rows:
                vs_best = RunDifference(**paired_difference(r.credit, best.credit, r.truth))
            rows.append(SweepRow(
                run=name, vit_weight=r.setting["vit_weight"], best_epoch=r.setting["best_epoch"],
                ordinal_accuracy=metrics.ordinal_accuracy, ci=metrics.ci["ordinal_accuracy"],
                accuracy=metrics.accuracy, qwk=metrics.qwk, macro_mae=metrics.macro_mae, ece=metrics.ece,
                best_constant=floors.best_constant.ordinal_accuracy,
                beats_best_constant=metrics.beats_best_constant.confident, is_best=r is best, vs_best=vs_best,
                study=floors.study.ordinal_accuracy if floors.study else None, n=metrics.n))
        return rows


def _read_json(path: Path, what: str) -> Any:
    if not path.is_file():
        raise ModelError(f"the run folder has no {path.name} ({what}); pass a complete run folder "
                         "written by bilipop train")
    try:
        return parse_json(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise ModelError(f"{path} is damaged ({exc}); train the run again") from None


def read_history(run: Path) -> list[dict[str, Any]]:
    """The rows of ``history.jsonl`` (an empty list when the file is missing)."""
    path = run / HISTORY
    if not path.is_file():
        return []
    rows = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if line.strip():
            try:
                rows.append(json.loads(line))  # as the loop's json.dumps wrote it (NaN for a non-finite figure)
            except (ValueError, RecursionError):
                raise ModelError(f"{path} line {number} is not JSON; the run folder is damaged") from None
    return rows


def _table_and_root(recorded: RunConfig, data: Path | None, input: Path | None) -> tuple[Path, Path]:
    if input is not None:
        return Path(input), Path(data) if data is not None else Path(input).parent
    if data is not None:
        return Path(data) / STAGE_INPUTS["evaluate"], Path(data)
    return Path(recorded.input), Path(recorded.data)


def _split_bvids(run: Path, split: str) -> list[str]:
    parts = _read_json(run / SPLIT, "the train/valid/test split")
    if not isinstance(parts, dict) or not all(isinstance(parts.get(name), list) for name in PARTS):
        raise ModelError(f"{run / SPLIT} lacks the train/valid/test lists; train the run again")
    if split == "all":
        return [b for name in PARTS for b in parts[name]]
    return list(parts[split])


def selection_note(chosen_on: str, split: str) -> str | None:
    """How the evaluated split relates to the part the kept epoch was chosen on (None when it played no part)."""
    if split == "test" and chosen_on == "test":
        return "selected on test (as the study): the kept epoch was chosen on these videos, so the figure is optimistic"
    if split == "valid" and chosen_on == "valid":
        return "selected on valid: the kept epoch was chosen on these videos; the test split is the unbiased figure"
    return None


@takes_progress("evaluating")
def evaluate(run: str | os.PathLike[str], data: str | os.PathLike[str] | None = None,
             input: str | os.PathLike[str] | None = None, split: str = "test",
             progress: ProgressArg = None, device: str = "cpu") -> EvaluationReport:
    """Evaluate a run folder (or each run of a sweep folder) on ``split`` and write ``RUN/eval/``.

    Args:
        run: a run folder from ``bilipop train``, or a sweep folder (holding ``sweep.json``).
        data: dataset folder whose ``labeled.parquet`` to use. input: a labeled table (wins over ``data``).
        split: ``test`` (default: never trained on, nor chosen on unless the run was trained with
            ``--select-on test``), ``valid`` (where the kept epoch was chosen), ``train`` or ``all``.
        progress: called with ``(done, total)`` rows as predictions are made.

    Raises:
        InputError: a bad split, an unreadable table, missing columns, or no rows of the split in the table.
        ModelError: a missing or damaged run folder.
    """
    if split not in SPLITS:
        raise InputError(f"--split must be one of {', '.join(SPLITS)}, got {split!r}")
    run = Path(run)
    if not run.is_dir():
        raise ModelError(f"run folder {run} does not exist; pass a folder written by bilipop train")
    if (run / SWEEP).is_file():
        return _evaluate_sweep(run, data, input, split, progress, device)
    return _evaluate_run(run, data, input, split, progress, device)


def _evaluate_sweep(run: Path, data, input, split: str, progress, device: str) -> EvaluationReport:
    from bilipop.models.run import write_json

    sweep = _read_json(run / SWEEP, "the list of the sweep's runs")
    names = sweep.get("runs") if isinstance(sweep, dict) else None
    if not names:
        raise ModelError(f"{run / SWEEP} lists no runs; train the sweep again")
    report = EvaluationReport(run=run, split=split)
    for name in names:
        sub = _evaluate_run(run / name, data, input, split, progress, device)
        report.runs[name] = sub
        report.warnings += [f"{name}: {w}" for w in sub.warnings]
        for row in read_history(run / name):
            report.table1.append(EpochRow(sub.setting["vit_weight"], row.get("epoch"),
                                          row.get("train_ordinal_accuracy"), row.get("valid_ordinal_accuracy"),
                                          row.get("valid_ordinal_accuracy_ci")))
    target = run / EVAL_DIR / split / METRICS
    write_json(target, {**report.to_json(), "warnings": report.warnings})
    report.files["metrics"] = str(target)
    return report


def _evaluate_run(run: Path, data, input, split: str, progress, device: str) -> EvaluationReport:
    import numpy as np

    from bilipop.data.io import read_labeled
    from bilipop.evaluation.calibration import expected_calibration_error, reliability
    from bilipop.evaluation.intervals import metric_intervals
    from bilipop.evaluation.plots import calibration_png, confusion_png, curves_png
    from bilipop.models.preprocess import resolve_cover
    from bilipop.models.run import load_run, write_json
    from bilipop.prediction.predict import predict_pairs

    loaded = load_run(run, device=device)
    recorded, settings = loaded.run_config, loaded.settings
    table_path, root = _table_and_root(recorded, Path(data) if data else None, Path(input) if input else None)
    # As in training: a cover-only run (w = 1) needs no titles, a title-only run (w = 0) no covers.
    w = loaded.vit_weight
    table = read_labeled(table_path, columns=(["cover_path"] if w > 0 else []) + (["title"] if w < 1 else []),
                         command="evaluate")
    wanted = _split_bvids(run, split)
    rows = table[table["bvid"].isin(set(wanted))]
    rows = rows.drop_duplicates("bvid")
    report = EvaluationReport(run=run, split=split)
    if rows.empty:
        raise InputError(f"none of the {len(wanted)} {split} videos of the run are in {table_path}; "
                         "pass the dataset the run was trained on with --data or -i")
    if len(rows) < len(wanted):
        report.warnings.append(f"{len(wanted) - len(rows)} of the {len(wanted)} {split} videos are not in "
                               f"{table_path}; evaluated the other {len(rows)}")
    covers = [str(resolve_cover(p, root, table_path)) for p in rows["cover_path"]] if w > 0 else [""] * len(rows)
    titles = rows["title"].tolist() if w < 1 else [""] * len(rows)
    bvids = rows["bvid"].tolist()
    probs = predict_pairs(loaded, covers, titles, batch_size=settings.batch_size,
                          progress=progress, where=lambda i: f"video {bvids[i]}: ")
    truth = rows["label"].astype("int64").to_numpy()
    expected = expected_class(probs)
    scores = None
    if "score" in rows.columns and rows["score"].notna().all():
        scores = rows["score"].astype("float64").tolist()
    pred = probs.argmax(axis=1)
    figures = all_metrics(truth, pred, expected=expected.tolist(), scores=scores)
    balance = settings.balance
    report.setting = {"vision": settings.vision, "text": settings.text, "vit": settings.vit, "bert": settings.bert,
                      "vit_weight": w, "epochs": settings.epochs, "best_epoch": recorded.best_epoch,
                      "select_on": settings.select_on, "seed": settings.seed, "precision": settings.precision,
                      "balance": list(balance) if isinstance(balance, tuple) else balance, "input": recorded.input}
    report.selection = selection_note(settings.select_on, split)
    floors = baselines(truth, vision=settings.vision, text=settings.text, vit_weight=w)
    spread = metric_intervals(truth, pred, probs, expected=expected.tolist(), scores=scores,
                              best_constant=floors["best_constant"]["class"],
                              majority=floors["majority_class"]["class"])
    for name, cis in spread["floors"].items():
        floors[name]["ci"] = cis
    report.baselines = Floors.from_json(floors)
    beats = PairedDifference(**spread["beats_best_constant"])
    report.metrics = Metrics(
        n=figures["n"], ordinal_accuracy=figures["ordinal_accuracy"], accuracy=figures["accuracy"],
        within1_accuracy=figures["within1_accuracy"], mae=figures["mae"], macro_mae=figures["macro_mae"],
        qwk=figures["qwk"], spearman=figures["spearman"], confusion=figures["confusion"],
        per_class=[ClassRow(k, LABEL_NAMES[k], **row) for k, row in enumerate(figures["per_class"])],
        ece=expected_calibration_error(probs, truth), calibration=reliability(probs, truth), ci=spread["ci"],
        beats_best_constant=beats, bootstrap=Bootstrap(beats.resamples, 0.95, "true class", 0))
    report.credit, report.truth = spread["credit"], truth
    smallest = int(min(np.bincount(truth, minlength=len(LABEL_NAMES))[np.unique(truth)]))
    if smallest < SMALL_CLASS:
        report.warnings.append(f"a class has only {smallest} video(s) in the {split} split: with so few the "
                               "bootstrap intervals understate the uncertainty (a class that is all right, or all "
                               "wrong, resamples to itself)")
    folder = run / EVAL_DIR / split
    report.files["confusion"] = str(confusion_png(report.metrics.confusion, LABEL_NAMES,
                                                  folder / "confusion.png",
                                                  title=f"Confusion matrix: {run.name}, {split} split"))
    report.files["calibration"] = str(calibration_png(report.metrics.calibration, folder / "calibration.png",
                                                      title=f"Reliability diagram: {run.name}, {split} split",
                                                      ece=report.metrics.ece))
    history = read_history(run)
    if history:
        report.files["curves"] = str(curves_png(history, folder / "curves.png", title=f"Training: {run.name}",
                                                valid_part=report.setting["select_on"]))
    else:
        report.warnings.append(f"{run / HISTORY} is missing or empty; no curves.png drawn")
    target = folder / METRICS
    report.files["metrics"] = str(target)
    write_json(target, {**report.to_json(), "table": str(table_path), "warnings": report.warnings})
    return report
