"""What ``evaluate`` finds, typed: the model's metrics with their intervals, the floors beside them, the verdict,
and a sweep's rows. Views read their attributes; ``to_json`` gives the objects of ``--json`` and metrics.json."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

#: A 95 % interval [low, high], or None where the metric has none (Spearman without scores).
Interval = list[float] | None


@dataclass(frozen=True)
class ClassRow:
    """Precision, recall, F1 and support of one class."""

    klass: int  # "class" in JSON
    name: str
    precision: float
    recall: float
    f1: float
    support: int

    def to_json(self) -> dict[str, Any]:
        return {"precision": self.precision, "recall": self.recall, "f1": self.f1, "support": self.support,
                "class": self.klass, "name": self.name}


@dataclass(frozen=True)
class PairedDifference:
    """The model's ordinal accuracy minus the best constant's on the same resampled rows (paired bootstrap)."""

    difference: float
    ci: list[float]
    confident: bool  # the interval lies above 0
    level: float
    resamples: int


@dataclass(frozen=True)
class Bootstrap:
    """How the intervals were drawn."""

    resamples: int
    level: float
    stratified_by: str
    seed: int


@dataclass(frozen=True)
class Metrics:
    """The model's figures on one split, each with its 95 % interval in ``ci`` (metric name -> interval)."""

    n: int
    ordinal_accuracy: float
    accuracy: float
    within1_accuracy: float
    mae: float
    macro_mae: float
    qwk: float | None
    spearman: float | None
    confusion: list[list[int]]
    per_class: list[ClassRow]
    ece: float
    calibration: list[dict[str, Any]]  # the reliability diagram's bins
    ci: dict[str, Interval]
    beats_best_constant: PairedDifference
    bootstrap: Bootstrap

    def to_json(self) -> dict[str, Any]:
        return {"ordinal_accuracy": self.ordinal_accuracy, "accuracy": self.accuracy,
                "within1_accuracy": self.within1_accuracy, "mae": self.mae, "macro_mae": self.macro_mae,
                "qwk": self.qwk, "spearman": self.spearman, "confusion": self.confusion,
                "per_class": [row.to_json() for row in self.per_class], "n": self.n, "ece": self.ece,
                "calibration": self.calibration, "ci": self.ci,
                "beats_best_constant": asdict(self.beats_best_constant), "bootstrap": asdict(self.bootstrap)}


@dataclass(frozen=True)
class Floor:
    """A trivial predictor's figures on the same videos: a constant class (``klass``) or uniform guessing."""

    ordinal_accuracy: float
    accuracy: float
    within1_accuracy: float
    mae: float
    klass: int | None = None
    class_name: str | None = None
    ci: dict[str, Interval] | None = None

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Floor:
        return cls(data["ordinal_accuracy"], data["accuracy"], data["within1_accuracy"], data["mae"],
                   data.get("class"), data.get("class_name"), data.get("ci"))

    def to_json(self) -> dict[str, Any]:
        named = {"class": self.klass, "class_name": self.class_name} if self.klass is not None else {}
        return {**named, "ordinal_accuracy": self.ordinal_accuracy, "accuracy": self.accuracy,
                "within1_accuracy": self.within1_accuracy, "mae": self.mae,
                **({"ci": self.ci} if self.ci is not None else {})}


@dataclass(frozen=True)
class StudyFigure:
    """A test ordinal accuracy the study reports, with its setting."""

    epoch: int
    ordinal_accuracy: float
    vision: str
    text: str
    vit_weight: float | None


@dataclass(frozen=True)
class Floors:
    """The floors a model must beat, and the study's figures for comparison."""

    majority_class: Floor
    best_constant: Floor
    uniform_random: Floor
    study: StudyFigure | None  # the study's figure for this run's setting, if it reports one
    study_best: StudyFigure

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Floors:
        """From ``bilipop.evaluation.baselines.baselines``'s dict (the floors' ``ci`` added)."""
        return cls(Floor.from_json(data["majority_class"]), Floor.from_json(data["best_constant"]),
                   Floor.from_json(data["uniform_random"]),
                   StudyFigure(**data["study"]) if data["study"] else None, StudyFigure(**data["study_best"]))

    def to_json(self) -> dict[str, Any]:
        return {"majority_class": self.majority_class.to_json(), "best_constant": self.best_constant.to_json(),
                "uniform_random": self.uniform_random.to_json(),
                "study": asdict(self.study) if self.study else None, "study_best": asdict(self.study_best)}


@dataclass(frozen=True)
class Verdict:
    """Whether the model is above the best constant with 95 % confidence (the paired bootstrap of ``Metrics``)."""

    beats: bool
    difference: float  # the model's ordinal accuracy minus the best constant's
    ci: list[float]  # the difference's 95 % interval
    resamples: int
    ordinal_accuracy: float
    best_constant: float  # its ordinal accuracy
    best_constant_class: int | None
    qwk: float | None
    n: int

    @classmethod
    def of(cls, metrics: Metrics, floors: Floors) -> Verdict:
        beats, best = metrics.beats_best_constant, floors.best_constant
        return cls(beats.confident, beats.difference, beats.ci, beats.resamples, metrics.ordinal_accuracy,
                   best.ordinal_accuracy, best.klass, metrics.qwk, metrics.n)

    @property
    def margin(self) -> float:
        """How far the model's ordinal accuracy is above the best constant's."""
        return self.difference


@dataclass(frozen=True)
class RunDifference:
    """One run's ordinal accuracy minus another's on the same rows (paired bootstrap)."""

    difference: float
    ci: list[float]
    differs: bool  # the interval excludes 0


@dataclass(frozen=True)
class SweepRow:
    """One run of a sweep: its figure with its interval, and its paired difference from the best run."""

    run: str
    vit_weight: float | None
    best_epoch: int | None
    ordinal_accuracy: float
    ci: Interval
    accuracy: float
    qwk: float | None
    macro_mae: float
    ece: float
    best_constant: float
    beats_best_constant: bool
    is_best: bool
    vs_best: RunDifference | None  # None for the best run, or when the two runs' rows differ
    study: float | None
    n: int


@dataclass(frozen=True)
class EpochRow:
    """One epoch of one run of a sweep: the study's Table 1 layout."""

    vit_weight: float | None
    epoch: int | None
    train_ordinal_accuracy: float | None
    valid_ordinal_accuracy: float | None
    valid_ordinal_accuracy_ci: Interval
