"""What ``GET /api/model`` says about the served run: a summary of its config and its evaluation metrics.

No web library and no torch here: the summary is read from the run folder's JSON files only.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from bilipop.layout import EVAL_DIR, WEIGHTS

log = logging.getLogger(__name__)

#: Where ``evaluate`` leaves the test part's metrics (``RUN/eval/<split>/metrics.json``, one folder per split).
METRICS_FILES = (f"{EVAL_DIR}/test/metrics.json",)
#: config.json keys that are not a summary: the architecture dict and the dataset's local paths.
_NOT_SUMMARY = ("model", "data", "input")


def config_summary(config: dict[str, Any]) -> dict[str, Any]:
    """The run's settings a reader compares runs by (scalars and short lists; no architecture, no local paths)."""
    summary: dict[str, Any] = {}
    for key, value in config.items():
        if key in _NOT_SUMMARY:
            continue
        if isinstance(value, str | int | float | bool) or value is None:
            summary[key] = value
        elif isinstance(value, list) and len(value) <= 8 and all(isinstance(v, str | int | float) for v in value):
            summary[key] = value
    return summary


def read_metrics(run: Path) -> tuple[dict[str, Any] | None, str | None]:
    """The run's evaluation metrics and the file they came from (relative to the run), or (None, None).

    A metrics file older than the weights describes an earlier model: it is still returned, with ``stale``
    set so that the page can say so. A damaged file counts as absent (logged).
    """
    weights = run / WEIGHTS
    for name in METRICS_FILES:
        path = run / name
        if not path.is_file():
            continue
        try:
            metrics = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            log.warning("ignoring %s: %s", path, exc)
            continue
        if not isinstance(metrics, dict):
            log.warning("ignoring %s: not a JSON object", path)
            continue
        metrics.pop("run", None)  # a local path; the run is named by model_info's "name"
        metrics.pop("table", None)
        if isinstance(metrics.get("setting"), dict):
            metrics["setting"].pop("input", None)
        metrics["stale"] = weights.is_file() and path.stat().st_mtime < weights.stat().st_mtime
        return metrics, name
    return None, None


def model_info(run: Path, config: dict[str, Any]) -> dict[str, Any]:
    """The JSON of ``GET /api/model``: ``name``, ``config`` (the summary), ``metrics`` and ``metrics_file``
    (None when the run has not been evaluated: ``bilipop evaluate RUN`` writes them)."""
    metrics, source = read_metrics(run)
    return {"name": run.resolve().name, "config": config_summary(config), "metrics": metrics,
            "metrics_file": source}
