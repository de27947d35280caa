"""``evaluate``: predict a run's split, compute every metric beside the floors, write ``RUN/eval/``.

The labeled table comes from ``input`` (a file), else ``data`` (a dataset folder, its ``labeled.parquet``),
else the ``input`` recorded in the run's config. Relative cover paths are resolved as in training: against the
dataset folder (``data``, else the one recorded in the run), else against the table's own folder.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bilipop.data.schema import LABEL_NAMES, STAGE_INPUTS, require_columns
from bilipop.errors import InputError, ModelError
from bilipop.evaluation.baselines import baselines
from bilipop.evaluation.metrics import all_metrics, expected_class
from bilipop.files import atomic_write

log = logging.getLogger(__name__)

SPLITS = ("test", "train", "all")
EVAL_DIR = "eval"
SWEEP_FILE = "sweep.json"  # bilipop.models.run.SWEEP, repeated so that importing this module needs no torch
Progress = Callable[[int, int | None], None]


@dataclass
class EvaluationReport:
    """The metrics of one run on one split (``sweep`` is filled for a sweep folder instead)."""

    run: Path
    split: str
    metrics: dict[str, Any] = field(default_factory=dict)
    baselines: dict[str, Any] = field(default_factory=dict)
    setting: dict[str, Any] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    runs: dict[str, EvaluationReport] = field(default_factory=dict)
    table1: list[dict[str, Any]] = field(default_factory=list)

    @property
    def is_sweep(self) -> bool:
        """True for a sweep folder's report (one sub-report per weight)."""
        return bool(self.runs)

    def to_json(self) -> dict[str, Any]:
        """A run: the metric keys, ``baselines`` and ``n``. A sweep: ``sweep`` (one row per weight),
        ``table1`` (per-epoch history) and ``runs`` (each weight's own object)."""
        if self.is_sweep:
            return {"sweep": self.sweep_rows(), "table1": self.table1,
                    "runs": {name: r.to_json() for name, r in self.runs.items()}}
        return {**{k: v for k, v in self.metrics.items() if k != "n"}, "baselines": self.baselines,
                "n": self.metrics["n"]}

    def sweep_rows(self) -> list[dict[str, Any]]:
        """One summary row per run of a sweep, in the sweep's order."""
        rows = []
        for name, r in self.runs.items():
            study = r.baselines.get("study")
            rows.append({"run": name, "vit_weight": r.setting.get("vit_weight"),
                         "best_epoch": r.setting.get("best_epoch"),
                         "ordinal_accuracy": r.metrics["ordinal_accuracy"], "accuracy": r.metrics["accuracy"],
                         "qwk": r.metrics["qwk"], "macro_mae": r.metrics["macro_mae"],
                         "best_constant": r.baselines["best_constant"]["ordinal_accuracy"],
                         "study": study["ordinal_accuracy"] if study else None, "n": r.metrics["n"]})
        return rows


def _read_json(path: Path, what: str) -> Any:
    if not path.is_file():
        raise ModelError(f"the run folder has no {path.name} ({what}); pass a complete run folder "
                         "written by bilipop train")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelError(f"{path} is damaged ({exc}); train the run again") from None


def read_history(run: Path) -> list[dict[str, Any]]:
    """The rows of ``history.jsonl`` (an empty list when the file is missing)."""
    path = run / "history.jsonl"
    if not path.is_file():
        return []
    rows = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                raise ModelError(f"{path} line {number} is not JSON; the run folder is damaged") from None
    return rows


def _table_and_root(config: dict, data: Path | None, input: Path | None) -> tuple[Path, Path]:
    if input is not None:
        return Path(input), Path(data) if data is not None else Path(input).parent
    if data is not None:
        return Path(data) / STAGE_INPUTS["evaluate"], Path(data)
    recorded = config.get("input")
    if not recorded:
        raise InputError("the run does not record its dataset; pass --data DIR or -i TABLE")
    root = config.get("data") or Path(recorded).parent
    return Path(recorded), Path(root)


def _split_bvids(run: Path, split: str) -> list[str]:
    parts = _read_json(run / "split.json", "the train/test split")
    if not isinstance(parts, dict) or not {"train", "test"} <= set(parts):
        raise ModelError(f"{run / 'split.json'} lacks the train/test lists; train the run again")
    return list(parts["train"]) + list(parts["test"]) if split == "all" else list(parts[split])


def evaluate(run: str | os.PathLike[str], data: str | os.PathLike[str] | None = None,
             input: str | os.PathLike[str] | None = None, split: str = "test",
             progress: Progress | None = None, device: str = "cpu") -> EvaluationReport:
    """Evaluate a run folder (or each run of a sweep folder) on ``split`` and write ``RUN/eval/``.

    Args:
        run: a run folder from ``bilipop train``, or a sweep folder (holding ``sweep.json``).
        data: dataset folder whose ``labeled.parquet`` to use. input: a labeled table (wins over ``data``).
        split: ``test`` (default, the part the model never trained on), ``train`` or ``all``.
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
    if (run / SWEEP_FILE).is_file():
        return _evaluate_sweep(run, data, input, split, progress, device)
    return _evaluate_run(run, data, input, split, progress, device)


def _evaluate_sweep(run: Path, data, input, split: str, progress, device: str) -> EvaluationReport:
    sweep = _read_json(run / SWEEP_FILE, "the list of the sweep's runs")
    names = sweep.get("runs") if isinstance(sweep, dict) else None
    if not names:
        raise ModelError(f"{run / SWEEP_FILE} lists no runs; train the sweep again")
    report = EvaluationReport(run=run, split=split)
    for name in names:
        sub = _evaluate_run(run / name, data, input, split, progress, device)
        report.runs[name] = sub
        report.warnings += [f"{name}: {w}" for w in sub.warnings]
        for row in read_history(run / name):
            report.table1.append({"vit_weight": sub.setting.get("vit_weight"), "epoch": row.get("epoch"),
                                  "train_ordinal_accuracy": row.get("train_ordinal_accuracy"),
                                  "valid_ordinal_accuracy": row.get("valid_ordinal_accuracy")})
    target = run / EVAL_DIR / "metrics.json"
    _write_json(target, {"split": split, **report.to_json()})
    report.files["metrics"] = str(target)
    return report


def _evaluate_run(run: Path, data, input, split: str, progress, device: str) -> EvaluationReport:
    from bilipop.data.io import read_table
    from bilipop.evaluation.plots import confusion_png, curves_png
    from bilipop.models.preprocess import resolve_cover
    from bilipop.models.run import load_run
    from bilipop.prediction.predict import predict_pairs

    loaded = load_run(run, device=device)
    config = loaded.config
    table_path, root = _table_and_root(config, Path(data) if data else None, Path(input) if input else None)
    table = read_table(table_path)
    # As in training: a cover-only run (w = 1) needs no titles, a title-only run (w = 0) no covers.
    w = loaded.vit_weight
    needed = ["bvid", "label"] + (["cover_path"] if w > 0 else []) + (["title"] if w < 1 else [])
    require_columns(table.columns, needed, what=f"the table {table_path}",
                    hint="evaluate needs a labeled table (bilipop label)")
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
    if rows["label"].isna().any():
        raise InputError(f"column label of {table_path} has missing values; run bilipop label again")
    covers = [str(resolve_cover(p, root, table_path)) for p in rows["cover_path"]] if w > 0 else [""] * len(rows)
    titles = rows["title"].tolist() if w < 1 else [""] * len(rows)
    bvids = rows["bvid"].tolist()
    probs = predict_pairs(loaded, covers, titles, batch_size=int(config.get("batch_size") or 32),
                          progress=progress, where=lambda i: f"video {bvids[i]}: ")
    truth = rows["label"].astype("int64").to_numpy()
    expected = expected_class(probs)
    scores = None
    if "score" in rows.columns and rows["score"].notna().all():
        scores = rows["score"].astype("float64").tolist()
    report.metrics = all_metrics(truth, probs.argmax(axis=1), expected=expected.tolist(), scores=scores)
    for k, entry in enumerate(report.metrics["per_class"]):
        entry.update({"class": k, "name": LABEL_NAMES[k]})
    report.setting = {key: config.get(key) for key in ("vision", "text", "vit", "bert", "vit_weight", "epochs",
                                                          "best_epoch", "input")}
    report.baselines = baselines(truth, vision=config.get("vision", "vit"), text=config.get("text", "bert"),
                                 vit_weight=config.get("vit_weight"))
    folder = run / EVAL_DIR
    report.files["confusion"] = str(confusion_png(report.metrics["confusion"], LABEL_NAMES,
                                                  folder / "confusion.png",
                                                  title=f"Confusion matrix: {run.name}, {split} split"))
    history = read_history(run)
    if history:
        report.files["curves"] = str(curves_png(history, folder / "curves.png", title=f"Training: {run.name}"))
    else:
        report.warnings.append(f"{run / 'history.jsonl'} is missing or empty; no curves.png drawn")
    target = folder / "metrics.json"
    report.files["metrics"] = str(target)
    _write_json(target, {"run": str(run), "split": split, "table": str(table_path), "setting": report.setting,
                         **report.to_json(), "warnings": report.warnings})
    return report


def _write_json(path: Path, data: dict) -> Path:
    text = json.dumps(data, ensure_ascii=False, indent=2)
    return atomic_write(path, lambda tmp: tmp.write_text(text + "\n", encoding="utf-8"))
