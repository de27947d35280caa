"""Inference from a run folder: one cover and title, every combination of competing candidates, or a CSV batch.

Everything here goes through the run's own ``LoadedRun.preprocess_cover`` / ``tokenize`` / ``logits``, so a
prediction uses exactly the preprocessing of training. torch is imported only inside the functions, and pandas
only by the batch mode, so that ``bilipop predict`` starts as fast as the model allows.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from bilipop.data.schema import LABEL_NAMES, blank_title
from bilipop.errors import InputError, ModelError
from bilipop.progress import Progress, ProgressArg, callback, takes_progress

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from bilipop.models.run import LoadedRun
    from bilipop.prediction.explain import Explanation

log = logging.getLogger(__name__)

MODEL_ENV = "BILIPOP_MODEL"
RUNS_DIR = "runs"
BATCH_SIZE = 32
# What makes Excel, LibreOffice and Google Sheets read a cell as a formula (OWASP's CSV injection list).
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
_PLAIN_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


@dataclass
class Prediction:
    """One cover and title's predicted class, the five class probabilities and the expected class."""

    label: int
    label_name: str
    probabilities: list[float]
    expected_class: float
    explanation: Explanation | None = None

    def to_json(self) -> dict[str, Any]:
        """The documented JSON object of ``predict --json`` (``explanation`` only with --explain)."""
        data = {"label": self.label, "label_name": self.label_name, "probabilities": self.probabilities,
                "expected_class": self.expected_class}
        if self.explanation is not None:
            data["explanation"] = self.explanation.to_json()
        return data


@dataclass
class Candidate:
    """One cover x title combination of a ranking and its prediction.

    In a ranking ``label`` is the class nearest the expected class, so that it never contradicts the order (the
    most likely class alone can: a flat distribution over 1..4 outranks a peaked one on 1 while its single most
    likely class is lower); ``most_likely`` keeps the argmax. ``p_beats_next`` is the probability that this
    candidate's class is above the next candidate's, ties counting half, from the two predicted distributions
    taken as independent (None for the last).
    """

    cover: str
    title: str
    prediction: Prediction
    rank: int = 0
    p_beats_next: float | None = None

    @property
    def label(self) -> int:
        """The class nearest the expected class (monotone in the ranking's order)."""
        top = len(self.prediction.probabilities) - 1
        return min(max(int(self.prediction.expected_class + 0.5), 0), top)

    def to_json(self) -> dict[str, Any]:
        """``rank``, ``cover``, ``title``, ``label``/``label_name`` (nearest the expected class),
        ``most_likely``/``most_likely_name`` (the argmax), ``probabilities``, ``expected_class``, ``p_beats_next``."""
        p = self.prediction
        return {"rank": self.rank, "cover": self.cover, "title": self.title, "label": self.label,
                "label_name": LABEL_NAMES[self.label], "most_likely": p.label, "most_likely_name": p.label_name,
                "probabilities": p.probabilities, "expected_class": p.expected_class,
                "p_beats_next": self.p_beats_next}


def beat_probability(p: Sequence[float], q: Sequence[float]) -> float:
    """P(X > Y) + P(X = Y) / 2 for independent classes X ~ ``p`` and Y ~ ``q`` (0.5 for equal distributions)."""
    above = sum(p[a] * q[b] for a in range(len(p)) for b in range(len(q)) if a > b)
    tie = sum(p[a] * q[a] for a in range(min(len(p), len(q))))
    return float(above + tie / 2)


@dataclass
class BatchReport:
    """What ``predict --batch`` did: input, output, rows and the count of each predicted class."""

    input: Path
    output: Path
    rows: int
    class_counts: list[int] = field(default_factory=list)


def resolve_model(model: str | os.PathLike[str] | None = None) -> Path:
    """The run folder to predict with: ``model``, else ``$BILIPOP_MODEL``, else the newest run under ``./runs``.

    Raises:
        ModelError: none of them gives a run folder.
    """
    if model is not None and str(model) != "":
        return Path(model)
    env = os.environ.get(MODEL_ENV, "")
    if env:
        return Path(env)
    if Path(RUNS_DIR).is_dir():
        from bilipop.models.run import find_runs

        runs = find_runs(RUNS_DIR)
        if runs:
            log.info("using the newest run %s", runs[0])
            return Path(runs[0])
    raise ModelError(f"no model found: pass --model RUN, set ${MODEL_ENV}, or train one first "
                     f"(bilipop train --out {RUNS_DIR}/first)")


def as_run(model: LoadedRun | str | os.PathLike[str] | None, device: str = "cpu",
           quantize: str | None = None) -> LoadedRun:
    """A loaded run from a LoadedRun (returned as is), a run folder, or None (see :func:`resolve_model`), on
    ``device`` and quantized as ``quantize`` says (``"int8"`` or None) unless it is already loaded."""
    if model is not None and hasattr(model, "logits"):
        return model  # type: ignore[return-value]  # hasattr(logits): a LoadedRun, which mypy cannot narrow to
    from bilipop.models.run import load_run

    return load_run(resolve_model(model), device=device, quantize=quantize)


def check_title(title: object, where: str = "") -> str:
    """Return ``title``, or raise InputError (prefixed with ``where``) when it is empty or blank."""
    if not isinstance(title, str) or blank_title(title):
        raise InputError(f"{where}the title is empty; give the video's title text")
    return title


def _prediction(probabilities: np.ndarray) -> Prediction:
    from bilipop.stats.credit import expected_class

    label = int(probabilities.argmax())
    return Prediction(label=label, label_name=LABEL_NAMES[label],
                      probabilities=[float(p) for p in probabilities],
                      expected_class=float(expected_class(probabilities)))


def predict_pairs(run: LoadedRun, covers: Sequence[str | Path], titles: Sequence[str], *,
                  batch_size: int = BATCH_SIZE, progress: Progress | None = None,
                  where: Callable[[int], str] | None = None) -> np.ndarray:
    """Class probabilities (N, 5) of each (cover, title) pair, computed in batches.

    Args:
        where: names row ``i`` in an error message (e.g. ``"row 3: "``).

    Raises:
        InputError: a cover is missing or not an image, or a title is empty (the message names the row).
    """
    import numpy as np
    import torch

    if len(covers) != len(titles):
        raise InputError(f"{len(covers)} covers but {len(titles)} titles; they must pair up")
    use_cover, use_title = run.uses_cover, run.uses_title
    name = where or (lambda i: "")
    total = len(covers)

    def prepare(start: int, stop: int):
        images = ids = mask = None
        current = start
        try:
            if use_cover:
                tensors = []
                for i in range(start, stop):
                    current = i
                    tensors.append(run.preprocess_cover(covers[i]))
                images = torch.stack(tensors)  # (B, 3, H, W)
            if use_title:
                for i in range(start, stop):
                    current = i
                    check_title(titles[i])
                tokens = run.tokenize(list(titles[start:stop]))
                ids, mask = tokens["input_ids"], tokens["attention_mask"]  # (B, T)
        except InputError as exc:
            raise InputError(f"{name(current)}{exc}") from None
        return images, ids, mask

    starts = list(range(0, total, batch_size))
    parts = []
    if len(starts) == 1:  # one batch: nothing to overlap, and a thread hand-off costs milliseconds on a busy CPU
        probabilities = run.class_probabilities(*prepare(0, total))
        if progress is not None:
            progress(total, total)
        return probabilities
    # Decoding the next batch's covers overlaps the model's forward on this one (Pillow and torch both release
    # the GIL), so a batch costs about max(decode, forward) rather than their sum.
    with ThreadPoolExecutor(max_workers=1) as pool:
        pending = pool.submit(prepare, 0, min(batch_size, total)) if starts else None
        for start in starts:
            stop = min(start + batch_size, total)
            images, ids, mask = pending.result()  # type: ignore[union-attr]  # not None: there are starts
            if stop < total:
                pending = pool.submit(prepare, stop, min(stop + batch_size, total))
            parts.append(run.class_probabilities(images, ids, mask))
            if progress is not None:
                progress(stop, total)
    return np.concatenate(parts) if parts else np.zeros((0, len(LABEL_NAMES)))


def _check_unused_inputs(run: LoadedRun, covers: Sequence[str | Path], titles: Sequence[str],
                         where: Callable[[int], str] | None = None) -> None:
    """A zero-weight branch ignores its input (w = 0: covers, w = 1: titles), but a cover or title the user gave
    that is unusable is still a mistake, whichever run predicts: check those too (a cheap 1/8-scale decode).

    Raises:
        InputError: a missing, truncated or non-image cover, or an empty title (named by ``where``).
    """
    from bilipop.models.preprocess import check_cover

    use_cover, use_title = run.uses_cover, run.uses_title
    name = where or (lambda i: "")
    if not use_cover:
        for i, cover in enumerate(covers):
            try:
                check_cover(cover)
            except InputError as exc:
                raise InputError(f"{name(i)}{exc}") from None
    if not use_title:
        for i, title in enumerate(titles):
            check_title(title, name(i))


def predict_one(model: LoadedRun | str | os.PathLike[str] | None, cover: str | Path, title: str,
                explain: bool = False, device: str = "cpu", quantize: str | None = None) -> Prediction:
    """Predict one video's class from its cover and title.

    With ``explain`` the result carries ``explanation``: a heatmap of the cover saved as ``<cover stem>.explain.png``
    beside the cover, and the title tokens whose removal would lower the predicted class's probability most, both
    from the one forward and backward pass that also gives the prediction (``bilipop.prediction.explain``).

    Raises:
        InputError: the cover is missing, truncated or not an image; the title is empty.
        ModelError: no usable run folder.
    """
    check_title(title)
    run = as_run(model, device, quantize)
    _check_unused_inputs(run, [cover], [title])
    if not explain:
        return _prediction(predict_pairs(run, [cover], [title])[0])
    from bilipop.prediction.explain import explain_prediction

    probabilities, explanation = explain_prediction(run, cover, title)
    result = _prediction(probabilities)
    result.explanation = explanation
    return result


def rank_candidates(model: LoadedRun | str | os.PathLike[str] | None, covers: Sequence[str | Path],
                    titles: Sequence[str], device: str = "cpu", quantize: str | None = None) -> list[Candidate]:
    """Score every cover x title combination; the best expected class first (ties keep the input order), each
    with its rank and the probability that it beats the next (see :class:`Candidate`).

    Raises:
        InputError: no covers or titles, a bad cover or an empty title.
    """
    if not covers or not titles:
        raise InputError("ranking needs at least one --cover and one --title")
    for i, title in enumerate(titles):
        check_title(title, f"title {i + 1}: ")
    run = as_run(model, device, quantize)
    _check_unused_inputs(run, covers, titles)
    pairs = [(str(c), t) for c in covers for t in titles]
    from bilipop.prediction.cross import cross_probabilities

    return rank(pairs, cross_probabilities(run, covers, titles))



def rank(pairs: Sequence[tuple[str, str]], probabilities: np.ndarray) -> list[Candidate]:
    """Order (cover, title) pairs with their (N, 5) class probabilities: highest expected class first (ties keep
    the input order), each with its rank and the probability that it beats the next."""
    candidates = [Candidate(c, t, _prediction(p)) for (c, t), p in zip(pairs, probabilities, strict=True)]
    ranked = sorted(candidates, key=lambda c: -c.prediction.expected_class)
    for i, candidate in enumerate(ranked):
        candidate.rank = i + 1
        if i + 1 < len(ranked):
            candidate.p_beats_next = beat_probability(candidate.prediction.probabilities,
                                                      ranked[i + 1].prediction.probabilities)
    return ranked


def ranking_json(candidates: Sequence[Candidate]) -> dict[str, Any]:
    """The documented JSON object of the ranking form of ``predict --json`` (``bilipop serve``'s /api/rank too)."""
    return {"candidates": [c.to_json() for c in candidates]}


def _read_batch(path: Path):
    import pandas as pd

    if path.suffix.lower() == ".csv" and path.is_file():
        try:
            return pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8")
        except Exception as exc:  # pandas raises many types for a damaged file
            raise InputError(f"cannot read {path}: {type(exc).__name__}: {exc}".splitlines()[0]) from exc
    from bilipop.data.io import read_table

    return read_table(path)


def neutralise_formulas(table: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``table`` whose text cells a spreadsheet would take for a formula (starting with ``=``, ``+``,
    ``-``, ``@``, a tab or a carriage return) start with ``'`` instead, so that opening a CSV of strangers' titles
    runs nothing. A cell that is a plain number (``-3``, ``+1.5e3``) is left alone: it is read as a number anyway.
    """
    import pandas as pd

    out = table.copy()
    for col in out.columns:
        if out[col].dtype == object or pd.api.types.is_string_dtype(out[col]):
            out[col] = out[col].map(_neutralise_cell)
    return out


def _neutralise_cell(value: object) -> object:
    if isinstance(value, str) and value[:1] in _FORMULA_STARTS and not _PLAIN_NUMBER.fullmatch(value):
        return "'" + value
    return value


@takes_progress("predicting")
def predict_batch(model: LoadedRun | str | os.PathLike[str] | None, input: str | os.PathLike[str],
                  output: str | os.PathLike[str] | TextIO, progress: ProgressArg = None,
                  batch_size: int = BATCH_SIZE, device: str = "cpu", escape_formulas: bool = True,
                  quantize: str | None = None) -> BatchReport:
    """Predict every row of a table with columns ``cover`` and ``title`` and write it with the predictions.

    Relative cover paths are resolved against the input file's folder. The output (``.csv`` or ``.parquet``, or
    CSV into an open text stream such as stdout) keeps the input columns and adds ``label``, ``label_name``,
    ``expected_class`` and ``p0``..``p4``; it is written only when every row succeeded. In CSV, text cells that a
    spreadsheet would run as a formula get a leading ``'`` (see :func:`neutralise_formulas`) unless
    ``escape_formulas`` is False; Parquet keeps every cell as it was.

    Raises:
        InputError: unreadable input, missing columns, a bad row (named), or an output of an unknown kind.
        OutputError: the output cannot be written (no space, no permission); an older file is kept.
    """
    from bilipop.data.io import check_output_path, write_table
    from bilipop.data.schema import require_columns
    from bilipop.stats.credit import expected_class

    stream = output if hasattr(output, "write") else None
    input = Path(input)
    target = Path("-")  # the output's path; "-" for a stream
    if stream is None:
        target = check_output_path(output)  # type: ignore[arg-type]  # no write(): a path, not a TextIO
        if input.resolve() == target.resolve():
            raise InputError(f"the output {target} would overwrite the input; choose another -o")
    table = _read_batch(input)
    require_columns(table.columns, ["cover", "title"], what=f"the batch file {input}",
                    hint="it needs one row per video with its cover path and title")
    if len(table) == 0:
        raise InputError(f"the batch file {input} has no rows")
    base = input.parent
    covers = [str(c) if Path(str(c)).is_absolute() else str(base / str(c)) for c in table["cover"]]
    titles = [t if isinstance(t, str) else "" for t in table["title"]]
    run = as_run(model, device, quantize)

    def where(i: int) -> str:
        return f"{input} row {i + 1}: "

    _check_unused_inputs(run, covers, titles, where)
    probs = predict_pairs(run, covers, titles, batch_size=batch_size, progress=callback(progress), where=where)
    labels = probs.argmax(axis=1)
    result = table.copy()
    result["label"] = labels
    result["label_name"] = [LABEL_NAMES[k] for k in labels]
    result["expected_class"] = expected_class(probs)
    for k in range(probs.shape[1]):
        result[f"p{k}"] = probs[:, k]
    if escape_formulas and (stream is not None or target.suffix.lower() == ".csv"):
        result = neutralise_formulas(result)
    if stream is not None:
        from bilipop.data.io import csv_options

        result.to_csv(stream, index=False, **csv_options(result))
    else:
        write_table(result, target)
    counts = [int((labels == k).sum()) for k in range(probs.shape[1])]
    return BatchReport(input=input, output=target, rows=len(result), class_counts=counts)
