"""The run folder: what ``train`` writes and ``evaluate``/``predict`` read (docs/reference.md, "The run folder"). It
needs nothing else, no network: config.json rebuilds the architecture, model.safetensors fills it, tokenizer/ reads
titles. The file names live in ``bilipop.layout`` (no torch there)."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import torch

from bilipop import __version__
from bilipop.errors import InputError, ModelError
from bilipop.files import atomic_folder, atomic_write
from bilipop.layout import CONFIG, FORMAT_VERSION, SWEEP, TOKENIZER, WEIGHTS
from bilipop.models.factory import build_from_arch
from bilipop.models.fusion import FusionModel
from bilipop.models.limits import MAX_CONFIG_BYTES, check_run_config, parse_json
from bilipop.models.preprocess import check_titles, decode_cover, to_tensor, tokenize
from bilipop.models.tokenizer import load_tokenizer
from bilipop.train_config import TrainConfig

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunConfig:
    """What config.json says of a run beyond its architecture: the settings it was trained with, the dataset it
    was trained on and how far it got."""

    settings: TrainConfig
    data: str  # the dataset folder
    input: str  # the labeled table
    best_epoch: int | None
    epochs_done: int
    balance_method: str  # how the pipeline was cut: given, cost or time

    @classmethod
    def parse(cls, config: dict, file: Path) -> RunConfig:
        """The typed view of a config.json object written by ``bilipop train``.

        Raises:
            ModelError: a key is missing or holds a value of the wrong kind.
        """
        try:
            settings = TrainConfig.from_json(config)
            data, table, best, done, method = (config[k] for k in ("data", "input", "best_epoch", "epochs_done",
                                                                  "balance_method"))
            if not all(isinstance(v, str) for v in (data, table, method)) or not isinstance(done, int) or not (
                    best is None or isinstance(best, int)):
                raise InputError("data, input, best_epoch, epochs_done or balance_method holds a value of the "
                                 "wrong kind")
        except KeyError as exc:
            raise ModelError(f"{file} lacks {exc}; the run folder is damaged, train it again") from None
        except InputError as exc:
            raise ModelError(f"{file} does not hold the settings of a run: {exc}; the run folder is damaged, "
                             "train it again") from None
        return cls(settings, data, table, best, done, method)


@dataclass
class LoadedRun:
    """A trained model ready for inference, with the exact preprocessing it was trained with."""

    path: Path
    config: dict  # config.json as read (the web page shows it)
    model: FusionModel
    device: torch.device
    run_config: RunConfig = field(repr=False)  # config.json, typed
    tokenizer: object | None = field(default=None, repr=False)
    quantized: str | None = None  # "int8" after load_run(quantize="int8"): no gradients (no --explain)

    @property
    def settings(self) -> TrainConfig:
        """The settings the run was trained with."""
        return self.run_config.settings

    @property
    def vit_weight(self) -> float:
        """The cover weight w the run was trained with."""
        return self.settings.vit_weight[0]

    @property
    def uses_cover(self) -> bool:
        """Whether the cover branch counts at all (a zero-weight branch ignores its input)."""
        return self.vit_weight > 0

    @property
    def uses_title(self) -> bool:
        """Whether the title branch counts at all."""
        return self.vit_weight < 1

    def preprocess_cover(self, path: str | Path) -> torch.Tensor:
        """(3, H, W) float32, resized and normalised as in training.

        Raises:
            InputError: the file is missing, truncated, unsupported or not an image.
        """
        size = int(self.config["image_size"]) or 32  # a title-only model ignores covers; any size does
        pixels = decode_cover(path, size)
        return to_tensor(pixels, self.config["image_mean"], self.config["image_std"])

    def tokenize(self, titles: list[str], offsets: bool = False) -> dict[str, torch.Tensor]:
        """{"input_ids": (B, T) long, "attention_mask": (B, T) long}, and with ``offsets`` "offset_mapping"
        (B, T, 2): each token's character span in its title ((0, 0) for special and padding tokens).

        Raises:
            InputError: an empty or blank title.
        """
        if self.tokenizer is None:  # a cover-only run (w = 1) has no tokenizer; titles are still checked
            check_titles(titles)
            ones = torch.ones(len(titles), 1, dtype=torch.long)
            out = {"input_ids": ones.clone(), "attention_mask": ones}
            if offsets:
                out["offset_mapping"] = torch.zeros(len(titles), 1, 2, dtype=torch.long)
            return out
        return tokenize(self.tokenizer, titles, int(self.config["max_tokens"]), offsets=offsets)

    @property
    def loss(self) -> str:
        """The loss the run was trained with."""
        return self.settings.loss

    def probabilities(self, images: torch.Tensor | None, input_ids: torch.Tensor | None,
                      attention_mask: torch.Tensor | None) -> torch.Tensor:
        """(B, 5) class probabilities, however the run was trained (``bilipop.models.ordinal``)."""
        from bilipop.models.ordinal import probabilities

        return probabilities(self.logits(images, input_ids, attention_mask), self.loss)

    def class_probabilities(self, images: torch.Tensor | None, input_ids: torch.Tensor | None,
                            attention_mask: torch.Tensor | None):
        """:meth:`probabilities` as a (B, 5) float64 numpy array."""
        with torch.no_grad():
            probs = self.probabilities(images, input_ids, attention_mask)  # (B, 5)
        return probs.double().cpu().numpy()

    def logits(self, images: torch.Tensor | None, input_ids: torch.Tensor | None,
               attention_mask: torch.Tensor | None) -> torch.Tensor:
        """The classifier's raw outputs: (B, 5) for ``ce``, (B, 4) for ``corn``; a branch whose weight is 0
        ignores its input (which may be None)."""
        model = self.model
        to = self.device
        with torch.no_grad():
            return model.logits(
                images.to(to) if images is not None and model.has_vision else None,
                input_ids.to(to) if input_ids is not None and model.has_text else None,
                attention_mask.to(to) if attention_mask is not None and model.has_text else None,
            )


    def cover_vectors(self, images: torch.Tensor) -> torch.Tensor:
        """The cover encoder's output (B, out_dim) for preprocessed covers (B, 3, H, W), on the run's device."""
        with torch.no_grad():
            return self.model.encode_cover(images.to(self.device))

    def title_vectors(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """The title encoder's output (B, out_dim) for tokenized titles, on the run's device."""
        with torch.no_grad():
            return self.model.encode_title(input_ids.to(self.device), attention_mask.to(self.device))

    def fused_probabilities(self, covers: torch.Tensor | None, titles: torch.Tensor | None):
        """(B, 5) float64 class probabilities from encoded covers and titles (rows paired; None for a branch the
        run does not have)."""
        from bilipop.models.ordinal import probabilities

        with torch.no_grad():
            return probabilities(self.model.fuse(covers, titles), self.loss).double().cpu().numpy()


def load_run(run_dir: str | Path, device: str = "cpu", quantize: str | None = None) -> LoadedRun:
    """Load a run folder written by ``bilipop train`` (or ``bilipop export``) for inference on ``device``;
    ``quantize="int8"`` makes its Linear layers dynamic int8 (CPU only, ``bilipop.models.quantize``).

    Raises:
        ModelError: a file is missing, the folder was written by another format version, or the weights do not
            fit the recorded architecture.
    """
    from safetensors.torch import load_file

    from bilipop.models.quantize import check_quantize, quantize_int8

    check_quantize(quantize, device)
    path = Path(run_dir)
    if not path.is_dir():
        raise ModelError(f"run folder {path} does not exist; train one with bilipop train --out {path}")
    config = read_config(path)
    weights = path / WEIGHTS
    if not weights.is_file():
        raise ModelError(f"{weights} is missing: the run did not finish an epoch; train again or pass another run")
    check_run_config(config, path / CONFIG, weights)  # before anything is built from it
    run_config = RunConfig.parse(config, path / CONFIG)
    try:
        dev = torch.device(device)
    except RuntimeError as exc:
        raise ModelError(f"unknown device {device!r}; use cpu or cuda:N") from exc
    if dev.type not in ("cpu", "cuda"):
        raise ModelError(f"device {device!r} is not supported; use cpu or cuda:N")
    if dev.type == "cuda":
        visible = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if (dev.index or 0) >= visible:
            raise ModelError(f"device {device} is not available ({visible} GPU(s) visible); use --device cpu"
                             + (f" or cuda:0..cuda:{visible - 1}" if visible else ""))
    try:
        model = build_from_arch(config["model"])
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ModelError(f"{path / CONFIG} does not describe a model ({type(exc).__name__}: {exc}); the run "
                         "folder is damaged, train it again") from exc
    try:
        state = load_file(str(weights))
        model.load_state_dict(state)
    except Exception as exc:
        raise ModelError(f"cannot load {weights}: {str(exc).splitlines()[0]}; the file is damaged or does not "
                         "belong to this config.json") from exc
    model.to(dev).eval()
    if quantize == "int8":
        model = quantize_int8(model)
    tokenizer = None
    if model.has_text:
        tok_dir = path / TOKENIZER
        if not tok_dir.is_dir():
            raise ModelError(f"{tok_dir} is missing; the run folder is incomplete, train it again")
        tokenizer = load_tokenizer(tok_dir, int(config["max_tokens"]), hint="the run folder is damaged, train it again")
    return LoadedRun(path=path, config=config, model=model, device=dev, tokenizer=tokenizer, run_config=run_config,
                     quantized=quantize)


def read_run_config(path: Path) -> RunConfig:
    """RUN/config.json, typed (``read_config``'s checks, then ``RunConfig.parse``'s).

    Raises:
        ModelError: missing, unreadable, written by another format version, or lacking a setting.
    """
    return RunConfig.parse(read_config(path), Path(path) / CONFIG)


def read_config(path: Path) -> dict:
    """Parse RUN/config.json and check its format version.

    Raises:
        ModelError: missing, unreadable, or written by another format version.
    """
    file = Path(path) / CONFIG
    if not file.is_file() and (Path(path) / SWEEP).is_file():
        runs = sorted(p.name for p in Path(path).iterdir() if (p / CONFIG).is_file())
        raise ModelError(f"{path} is a --vit-weight sweep, not one run: pass one of its runs, e.g. "
                         f"{Path(path) / (runs[0] if runs else 'w0.75')}")
    if not file.is_file():
        raise ModelError(f"{file} is missing: {path} is not a bilipop run folder (bilipop train --out writes one)")
    try:
        if file.stat().st_size > MAX_CONFIG_BYTES:
            raise ModelError(f"{file} is larger than {MAX_CONFIG_BYTES:,} bytes: not a config.json of bilipop "
                             "train; the run folder is damaged, train it again")
        config = parse_json(file.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError) as exc:
        why = str(exc).splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelError(f"cannot read {file}: {why}; the run folder is damaged, train it again") from exc
    if not isinstance(config, dict):
        raise ModelError(f"{file} holds a JSON {type(config).__name__}, not the object bilipop train writes; the "
                         "run folder is damaged, train it again")
    version = config.get("format_version")
    if version != FORMAT_VERSION:
        raise ModelError(f"{path} was written by run format version {version} (bilipop "
                         f"{config.get('bilipop_version', '?')}); this bilipop {__version__} reads version "
                         f"{FORMAT_VERSION}: train the run again or use the bilipop version that wrote it")
    return config


def find_runs(root: str | Path) -> list[Path]:
    """Finished run folders under ``root`` (``root`` itself included), newest first.

    A run counts once it holds both config.json and its weights: a run still in its first epoch has only the
    config, and picking it as "the newest" would make predict fail instead of using the last finished one.
    """
    root = Path(root)
    if not root.is_dir():
        return []
    found = {p.parent for p in root.rglob(CONFIG) if p.parent.name != TOKENIZER and (p.parent / WEIGHTS).is_file()}
    return sorted(found, key=lambda p: (p / CONFIG).stat().st_mtime, reverse=True)


def write_json(path: Path, obj: object) -> Path:
    """Write ``obj`` as indented UTF-8 JSON, atomically."""
    return atomic_write(path, lambda tmp: tmp.write_text(json.dumps(obj, indent=2, ensure_ascii=False) + "\n",
                                                          encoding="utf-8"))


def save_weights(model: torch.nn.Module, path: Path) -> Path:
    """Write the model's weights as safetensors (no pickle), atomically, from whatever devices they live on."""
    from safetensors.torch import save_file

    state = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    return atomic_write(path, lambda tmp: save_file(state, str(tmp), metadata={"format": "pt"}))


def save_tokenizer(tokenizer, folder: Path) -> None:
    """Write the tokenizer files into ``folder`` (replaced whole, via a temporary folder); None writes nothing.

    Raises:
        OutputError: no space or no permission; ``folder`` is left as it was.
    """
    if tokenizer is None:
        return
    atomic_folder(folder, lambda tmp: tokenizer.save_pretrained(str(tmp)))
    old_temp = folder.with_name(folder.name + ".tmp")  # where bilipop 0.1 staged it; a kill left it behind
    if old_temp.is_dir() and not old_temp.is_symlink():
        import shutil

        shutil.rmtree(old_temp, ignore_errors=True)


def write_config(folder: Path, config: dict) -> Path:
    """Write RUN/config.json stamped with the run format version that ``read_config`` checks."""
    return write_json(Path(folder) / CONFIG, {"format_version": FORMAT_VERSION, "bilipop_version": __version__,
                                              **config})


def save_model(folder: Path, model: torch.nn.Module, tokenizer, config: dict, settings: TrainConfig) -> None:
    """Write config.json, tokenizer/ and model.safetensors: everything load_run needs, for a model built outside
    ``train`` (``config``: its architecture and preprocessing; ``settings``: what it stands for; no dataset and
    no epoch are recorded)."""
    folder.mkdir(parents=True, exist_ok=True)
    save_tokenizer(tokenizer, folder / TOKENIZER)
    save_weights(model, folder / WEIGHTS)
    write_config(folder, {"data": "", "input": "", **settings.to_json(), "balance_method": settings.balance_method,
                          "best_epoch": None, "epochs_done": 0, **config})
