"""The data stages as files: read a table, filter, score or label it, keep its covers findable, write it atomically.

Each ``*_file`` function is what the command of its name does, with the command's option names as keywords
(``bilipop label --by-age 4 -i in.csv`` is ``label_file(input="in.csv", by_age=4)``). The frame-in/frame-out
functions they wrap (``filter_videos``, ``score_videos``, ``label_videos``) are there for tables already in memory.
Without ``input``/``output`` a stage reads the previous stage's file in the dataset folder ``data`` and writes its
own there (docs/reference.md, "The dataset folder").
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bilipop.data.schema import DEFAULT_MAX_FOLLOWERS, DEFAULT_THRESHOLDS, DEFAULT_WEIGHTS, STAGE_FILES, STAGE_INPUTS
from bilipop.layout import DEFAULT_DATA_DIR

if TYPE_CHECKING:
    import pandas as pd

PathLike = str | os.PathLike[str]


@dataclass
class StageResult:
    """What a stage wrote: the table, the stage's report (None for ``score``), and the paths read and written."""

    table: pd.DataFrame
    report: Any
    input: Path
    output: Path


def stage_paths(stage: str, data: PathLike = DEFAULT_DATA_DIR, input: PathLike | None = None,
                output: PathLike | None = None) -> tuple[Path, Path]:
    """The file ``stage`` reads and the one it writes: ``input``/``output`` when given, else its defaults in
    ``data``."""
    src = Path(input) if input is not None else Path(data) / STAGE_INPUTS[stage]
    dst = Path(output) if output is not None else Path(data) / STAGE_FILES[stage]
    return src, dst


def run_stage(stage: str, apply: Callable[[pd.DataFrame], tuple[pd.DataFrame, Any]], *,
              data: PathLike = DEFAULT_DATA_DIR, input: PathLike | None = None,
              output: PathLike | None = None) -> StageResult:
    """Read ``stage``'s input, ``apply`` a frame function returning ``(table, report)``, and write the table.

    The output's extension is checked before anything is read; cover paths relative to a crawl store are made
    absolute when the table is written outside the store's folder (``anchor_cover_paths``).

    Raises:
        BilipopError: from reading, ``apply`` or writing; no output file is left then (an older one stays).
    """
    from bilipop.data.io import anchor_cover_paths, check_output_path, read_table, write_table

    src, dst = stage_paths(stage, data, input, output)
    check_output_path(dst)
    table, report = apply(read_table(src))
    table = anchor_cover_paths(table, src, dst)
    write_table(table, dst)
    return StageResult(table, report, src, dst)


def filter_file(input: PathLike | None = None, output: PathLike | None = None, *, data: PathLike = DEFAULT_DATA_DIR,
                max_followers: int = DEFAULT_MAX_FOLLOWERS, require_hot: bool = True) -> StageResult:
    """``bilipop filter``: :func:`bilipop.data.filtering.filter_videos` from file to file (report: FilterReport)."""
    from bilipop.data.filtering import filter_videos

    return run_stage("filter", lambda df: filter_videos(df, max_followers=max_followers, require_hot=require_hot),
                     data=data, input=input, output=output)


def score_file(input: PathLike | None = None, output: PathLike | None = None, *, data: PathLike = DEFAULT_DATA_DIR,
               weights: Sequence[float] = DEFAULT_WEIGHTS, norm: str = "paper", age: str = "none") -> StageResult:
    """``bilipop score``: :func:`bilipop.data.scoring.score_videos` from file to file (report: None)."""
    from bilipop.data.scoring import score_videos

    return run_stage("score", lambda df: (score_videos(df, weights=weights, norm=norm, age=age), None),
                     data=data, input=input, output=output)


def label_file(input: PathLike | None = None, output: PathLike | None = None, *, data: PathLike = DEFAULT_DATA_DIR,
               thresholds: Sequence[float] = DEFAULT_THRESHOLDS, quantiles: bool = False,
               by_age: int | None = None) -> StageResult:
    """``bilipop label``: :func:`bilipop.data.labeling.label_videos` from file to file (report: LabelReport, whose
    ``warnings`` name empty or small classes)."""
    from bilipop.data.labeling import label_videos

    return run_stage("label", lambda df: label_videos(df, thresholds=thresholds, quantiles=quantiles, by_age=by_age),
                     data=data, input=input, output=output)
