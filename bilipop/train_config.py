"""``TrainConfig``: every setting of ``bilipop train`` in one frozen, typed, self-checking object, with the study's
defaults.

The CLI builds one from its flags, ``bilipop.train.train`` takes one, and the run's config.json holds the one the
run was trained with (``to_json``/``from_json``), so that ``--resume``, ``evaluate`` and ``predict`` read typed
fields instead of guessing. It imports nothing heavy (no torch), so that ``--help`` can show the defaults.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any

from bilipop.errors import InputError

# The study's model and training settings (README, "What it does").
DEFAULT_VIT = "B_16_imagenet1k"
DEFAULT_BERT = "bert-base-chinese"
DEFAULT_VISION = "vit"
DEFAULT_TEXT = "bert"
DEFAULT_VIT_WEIGHT = 0.75
DEFAULT_EPOCHS = 5
DEFAULT_BATCH_SIZE = 32
#: AdamW's learning rate for pretrained encoders; tiny models, trained from scratch, get TINY_LR.
DEFAULT_LR = 5e-5
TINY_LR = 1e-3
DEFAULT_CHECKPOINT = "except_last"
DEFAULT_DROPOUT = 0.1
#: 5-way cross-entropy, as the study; "corn" is the rank-consistent ordinal loss (LOSSES).
DEFAULT_LOSS = "ce"
#: The name of the small randomly initialised encoders that train on a CPU in seconds.
TINY = "tiny"
#: Title tokens kept (longer titles are truncated).
MAX_TOKENS = 64

CHECKPOINT_MODES = ("never", "except_last", "always")
PRECISIONS = ("bf16", "fp16", "fp32")
BALANCE_METHODS = ("cost", "time")
SELECT_ON = ("valid", "test")
LOSSES = ("ce", "corn")
CLASS_WEIGHTS = ("none", "balanced")

#: Field metadata: a resumed run must be given the same value as the run it continues (any other changes the
#: computation, so the result would be neither run's).
_SAME_ON_RESUME = {"same_on_resume": True}


@dataclass(frozen=True)
class TrainConfig:
    """The settings of one ``bilipop train`` call; each field is the flag of the same name.

    Built from user input, it checks itself and raises ``InputError`` naming the flag. config.json holds the
    settings a run was trained with, resolved: the learning rate chosen, the devices used (``gpus`` is then None),
    the micro-batches, the precision and the pipeline cut.
    """

    vit: str = field(default=DEFAULT_VIT, metadata=_SAME_ON_RESUME)
    bert: str = field(default=DEFAULT_BERT, metadata=_SAME_ON_RESUME)
    vision: str = field(default=DEFAULT_VISION, metadata=_SAME_ON_RESUME)
    text: str = field(default=DEFAULT_TEXT, metadata=_SAME_ON_RESUME)
    #: One cover weight w (of w * vision + (1 - w) * text), or several for a sweep (Table 1).
    vit_weight: tuple[float, ...] = field(default=(DEFAULT_VIT_WEIGHT,), metadata=_SAME_ON_RESUME)
    epochs: int = DEFAULT_EPOCHS
    batch_size: int = field(default=DEFAULT_BATCH_SIZE, metadata=_SAME_ON_RESUME)
    #: None: the study's 5e-5, or 1e-3 when only tiny models train (``bilipop.train.trainer.default_lr``).
    lr: float | None = field(default=None, metadata=_SAME_ON_RESUME)
    gpus: int | None = None
    devices: tuple[str, ...] | None = None
    chunks: int | None = None
    #: Pipeline layers per device, or how to find them: "cost" (None) or "time".
    balance: tuple[int, ...] | str | None = None
    checkpoint: str = DEFAULT_CHECKPOINT
    precision: str | None = None
    cache: bool = False
    seed: int = field(default=0, metadata=_SAME_ON_RESUME)
    num_workers: int | None = None
    select_on: str = field(default="valid", metadata=_SAME_ON_RESUME)
    vit_heads: int | None = None
    loss: str = field(default=DEFAULT_LOSS, metadata=_SAME_ON_RESUME)
    class_weights: str = field(default="none", metadata=_SAME_ON_RESUME)
    #: Build the named encoders with random weights instead of loading pretrained ones (training from scratch).
    random_init: bool = field(default=False, metadata=_SAME_ON_RESUME)
    #: Dropout of the encoders (0 makes runs comparable step by step, e.g. in tests); not a flag.
    dropout: float = DEFAULT_DROPOUT

    def __post_init__(self) -> None:
        weights = self.vit_weight
        weights = (weights,) if isinstance(weights, int | float) else tuple(weights)
        object.__setattr__(self, "vit_weight", tuple(float(w) for w in weights))
        if isinstance(self.devices, str):
            devices = tuple(d.strip() for d in self.devices.split(",")) if self.devices else None
            object.__setattr__(self, "devices", devices)
        elif self.devices is not None:
            object.__setattr__(self, "devices", tuple(str(d) for d in self.devices))
        if self.balance is not None and not isinstance(self.balance, str):
            object.__setattr__(self, "balance", tuple(int(b) for b in self.balance))
        self._check()

    def _check(self) -> None:
        weights = self.vit_weight
        if not weights:
            raise InputError("--vit-weight needs at least one number between 0 and 1, e.g. 0.75")
        if any(not 0 <= w <= 1 for w in weights):
            raise InputError(f"--vit-weight values must be between 0 and 1, got {','.join(f'{w:g}' for w in weights)}")
        if len({run_name(w) for w in weights}) != len(weights):
            raise InputError("--vit-weight lists the same weight twice")
        if self.epochs < 1:
            raise InputError(f"--epochs must be at least 1, got {self.epochs}")
        if self.batch_size < 1:
            raise InputError(f"--batch-size must be at least 1, got {self.batch_size}")
        if self.lr is not None and not self.lr > 0:
            raise InputError(f"--lr must be a positive number, got {self.lr}")
        if self.num_workers is not None and self.num_workers < 0:
            raise InputError(f"num_workers must be 0 or more, got {self.num_workers}")
        if self.checkpoint not in CHECKPOINT_MODES:
            raise InputError(f"--checkpoint must be one of {', '.join(CHECKPOINT_MODES)}, got {self.checkpoint!r}")
        if self.precision is not None and self.precision not in PRECISIONS:
            raise InputError(f"--precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        if self.select_on not in SELECT_ON:
            raise InputError(f"--select-on must be one of {', '.join(SELECT_ON)}, got {self.select_on!r}")
        if self.loss not in LOSSES:
            raise InputError(f"--loss must be one of {', '.join(LOSSES)}, got {self.loss!r}")
        if self.class_weights not in CLASS_WEIGHTS:
            raise InputError(f"--class-weights must be one of {', '.join(CLASS_WEIGHTS)}, got "
                             f"{self.class_weights!r}")
        if isinstance(self.balance, str) and self.balance not in BALANCE_METHODS:
            raise InputError(f"--balance takes layer counts such as 3,3, or one of {', '.join(BALANCE_METHODS)}; "
                             f"got {self.balance!r}")

    @property
    def given_balance(self) -> tuple[int, ...] | None:
        """The layer counts per device when they are fixed (given, or saved by the run), else None."""
        return self.balance if isinstance(self.balance, tuple) else None

    @property
    def balance_method(self) -> str:
        """How the pipeline is cut: "given" counts, "time" (by timing the layers) or "cost" (the default)."""
        return "given" if self.given_balance else "time" if self.balance == "time" else "cost"

    def for_weight(self, w: float) -> TrainConfig:
        """The settings of the sweep's run for cover weight ``w``."""
        return replace(self, vit_weight=(w,))

    def to_json(self) -> dict[str, Any]:
        """The fields as JSON values (lists for tuples; one run's ``vit_weight`` as a plain number)."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            out[f.name] = list(value) if isinstance(value, tuple) else value
        if len(self.vit_weight) == 1:
            out["vit_weight"] = self.vit_weight[0]
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> TrainConfig:
        """The settings from a config.json object (its other keys are ignored).

        Raises:
            InputError: a field is missing or holds a value that ``TrainConfig`` refuses.
        """
        missing = [f.name for f in fields(cls) if f.name not in data]
        if missing:
            raise InputError(f"it lacks {', '.join(missing)}")
        try:
            return cls(**{f.name: data[f.name] for f in fields(cls)})
        except (TypeError, ValueError) as exc:
            raise InputError(f"a setting has the wrong type ({exc})") from None

    def resume_mismatch(self, saved: TrainConfig) -> str | None:
        """What differs from ``saved`` (the settings of the run being resumed) in a setting that must stay the
        same, as ``--flag saved-value, not new-value``; None when it may be resumed."""
        for f in fields(self):
            if f.metadata.get("same_on_resume") and getattr(self, f.name) != getattr(saved, f.name):
                return f"--{f.name.replace('_', '-')} {_shown(getattr(saved, f.name))}, not " \
                       f"{_shown(getattr(self, f.name))}"
        return None


def run_name(w: float) -> str:
    """The folder of a sweep's run for cover weight ``w``: ``w0.75``."""
    return f"w{w:g}"


def _shown(value: object) -> str:
    if isinstance(value, tuple):
        return ",".join(f"{v:g}" if isinstance(v, float) else str(v) for v in value)
    return str(value)

