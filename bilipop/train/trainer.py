"""``train()``: the core of ``bilipop train``. Checks every input first, builds the model and the loaders, trains
one run per ``vit_weight`` (a sweep writes the study's Table 1 layout) and returns what happened."""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from bilipop.data.schema import LABEL_NAMES, NUM_CLASSES, STAGE_INPUTS
from bilipop.errors import InputError, OutputError
from bilipop.files import WRITE_ERRNOS, missing_parents
from bilipop.layout import CHECKPOINT, CONFIG, COVER_CACHE, DEFAULT_DATA_DIR, SPLIT, TOKENIZER
from bilipop.progress import Progress, ProgressArg, callback, takes_progress
from bilipop.train_config import DEFAULT_LR, MAX_TOKENS, TINY_LR, TrainConfig, run_name

log = logging.getLogger(__name__)


@dataclass
class TrainResult:
    """The run folders written (one per weight), their histories and best epochs, and the settings used."""

    out: Path
    runs: list[Path]
    weights: list[float]
    histories: list[list[dict]]
    best_epochs: list[int | None]
    lr: float
    devices: list[str]
    table1: Path | None = None
    notes: list[str] = field(default_factory=list)
    is_main: bool = True  # False in torchrun processes other than rank 0, which write and report nothing
    config: TrainConfig | None = None  # the settings, the learning rate resolved


@dataclass
class _Shared:
    """What every run of one ``train`` call shares: the table, the split, the devices and the callbacks."""

    out: Path
    data: Path
    table_path: Path
    examples: Any  # bilipop.train.dataset.Examples
    split: dict
    world: Any  # bilipop.train.distributed.World
    devices: list  # torch.device
    autocast: tuple | None
    local_batch: int
    chunks: int
    precision: str
    resume: bool
    progress: Progress | None
    on_epoch: Callable[[dict], None] | None


@takes_progress("training")
def train(config: TrainConfig, *, data: str | Path = DEFAULT_DATA_DIR, input: str | Path | None = None,
          out: str | Path, resume: bool = False, progress: ProgressArg = None,
          on_epoch: Callable[[dict], None] | None = None) -> TrainResult:
    """Train the late-fusion model on a labeled dataset and write a run folder (docs/reference.md).

    Args:
        config: the settings (``TrainConfig``: each field is the flag of the same name); several ``vit_weight``
            values train a sweep (``out/w<weight>/`` each, plus table1.md/csv).
        data: the dataset folder; its ``labeled.parquet`` is read unless ``input`` names a table. Relative cover
            paths are resolved against it.
        out: the run folder to write.
        resume: continue the interrupted run in ``out`` exactly (its settings must match ``config``'s).
        progress: ``progress(done, total)``: covers checked while the table is read, then training steps.
        on_epoch: called with each epoch's history row (``vit_weight`` added).

    Raises:
        InputError, ModelError, DeviceError: bad options, data, weights or devices; nothing is trained then.
    """
    from bilipop.train import distributed
    from bilipop.train.pipeline import autocast_for, check_chunks, parse_devices, precision_name

    if not isinstance(config, TrainConfig):
        raise InputError(f"train() takes a TrainConfig as its first argument, got {type(config).__name__}")
    report = callback(progress)
    weights = list(config.vit_weight)
    data, out = Path(data).resolve(), Path(out)
    table_path = (Path(input) if input is not None else data / STAGE_INPUTS["train"]).resolve()
    if not table_path.is_file():
        raise InputError(f"labeled table {table_path} does not exist; run bilipop label first or pass -i FILE")
    local_rank, local_world_size = distributed.local_from_env()
    devs = parse_devices(config.gpus, config.devices, local_rank=local_rank, local_world_size=local_world_size)
    world = distributed.world_from_env()
    if world.distributed and config.batch_size % world.size:
        raise InputError(f"--batch-size {config.batch_size} does not split over {world.size} processes; use a "
                         "multiple")
    local_batch = config.batch_size // world.size
    n_chunks = check_chunks(config.chunks, local_batch, len(devs)) if len(devs) > 1 else 1
    if len(devs) == 1 and (config.chunks is not None or config.balance):
        log.warning("--chunks and --balance shape the GPipe pipeline, which needs two or more devices; training on "
                    "%s alone ignores them", devs[0])
    if config.given_balance and len(devs) > 1 and len({(w > 0, w < 1) for w in weights}) > 1:
        # A w = 0 or w = 1 run leaves an encoder out, so it has fewer pipeline layers than a fused run: no one
        # --balance fits both, and the second run would fail only after the first had trained.
        raise InputError("--balance cannot fit every run of this sweep: w = 0 and w = 1 leave an encoder out "
                         "and have fewer pipeline layers; drop --balance (each run is then balanced by its layers' "
                         "cost) "
                         "or sweep those weights separately")
    autocast = autocast_for(config.precision, devs)
    notes: list[str] = []
    lr, note = (config.lr, None) if config.lr is not None else default_lr(config.vit, config.bert, weights)
    config = replace(config, lr=lr)
    if note:
        notes.append(note)
        log.info(note)
    sweep = len(weights) > 1
    run_dirs = [out / run_name(w) if sweep else out for w in weights]
    for run_dir in run_dirs:
        _check_out(run_dir, resume)
    # Folders this call makes (--out, its missing parents, the sweep's runs): removed again if training fails
    # before their first checkpoint.
    made = missing_parents(out.resolve()) + [d.resolve() for d in run_dirs if d != out and not d.exists()]

    from bilipop.data.split import make_split
    from bilipop.train.dataset import load_examples

    examples = load_examples(table_path, data, covers=any(w > 0 for w in weights),
                             titles=any(w < 1 for w in weights), progress=report if world.main else None)
    shared = _Shared(out=out, data=data, table_path=table_path, examples=examples,
                     split=make_split(examples.bvids, examples.labels, seed=config.seed), world=world, devices=devs,
                     autocast=autocast, local_batch=local_batch, chunks=n_chunks,
                     precision=config.precision or precision_name(autocast), resume=resume, progress=report,
                     on_epoch=on_epoch)
    distributed.init(world, devs)
    try:
        distributed.barrier(world)  # every process has checked --out before rank 0 writes into it
        histories, bests = [], []
        for w, run_dir in zip(weights, run_dirs, strict=True):
            history, best = _train_one(config.for_weight(w), run_dir, shared)
            histories.append(history)
            bests.append(best)
        table1 = None
        if sweep and world.main:
            from bilipop.train.sweep import write_sweep

            table1 = write_sweep(out, weights, run_dirs, histories)
    except Exception as exc:
        if world.main:
            _remove_unfinished(made)
        if isinstance(exc, OSError) and exc.errno in WRITE_ERRNOS:  # a folder or cover cache that cannot be made
            raise OutputError(f"cannot write in {out}: {exc.strerror}; free some space or choose another "
                              "--out") from exc
        raise
    finally:
        distributed.shutdown(world)
    return TrainResult(out, run_dirs, weights, histories, bests, lr, [str(d) for d in devs], table1, notes,
                       is_main=world.main, config=config)


def default_lr(vit: str, bert: str, weights: Sequence[float]) -> tuple[float, str | None]:
    """The learning rate when --lr is not given, and the note that says why (None for the study's plain 5e-5).

    1e-3 only when every encoder that trains is ``tiny`` (from scratch); as soon as one is pretrained the study's
    5e-5, since 1e-3 would wreck its pretrained weights (the tiny one then learns more slowly; --lr overrides).
    """
    used = ([("--vit", vit)] if any(w > 0 for w in weights) else []) + (
        [("--bert", bert)] if any(w < 1 for w in weights) else [])
    tiny = [flag for flag, name in used if name == "tiny"]
    if tiny and len(tiny) == len(used):
        return TINY_LR, f"tiny models train from scratch: using --lr {TINY_LR:g} (pass --lr to override)"
    if tiny:
        pretrained = next(flag for flag, name in used if name != "tiny")
        return DEFAULT_LR, (f"{tiny[0]} tiny trains from scratch but {pretrained} is pretrained: using the study's "
                            f"--lr {DEFAULT_LR:g} for both (1e-3 would wreck the pretrained weights; pass --lr to "
                            "override)")
    return DEFAULT_LR, None


def _remove_unfinished(made: list[Path]) -> None:
    """After a failure (a full disk, a bad cover), remove the folders this call made that hold no checkpoint:
    they could not be resumed and would only block the next ``--out``; a folder with one stays for --resume."""
    import shutil

    for folder in reversed(made):  # run folders before the sweep folder above them, --out before its parents
        if folder.is_dir() and not any(folder.rglob(CHECKPOINT)):
            shutil.rmtree(folder, ignore_errors=True)
            log.info("removed %s: it holds no finished epoch", folder)


def _check_out(run_dir: Path, resume: bool) -> None:
    if run_dir.exists() and not run_dir.is_dir():
        raise InputError(f"--out {run_dir} is a file; give a folder for the run")
    if resume:
        # Interrupted before its first checkpoint, a run has nothing to continue from: --resume starts it over
        # (any other answer would leave the folder usable neither with nor without --resume).
        if not (run_dir / CHECKPOINT).is_file() and (run_dir / CONFIG).is_file() and _epochs_done(run_dir):
            raise InputError(f"{run_dir} has no checkpoint.pt to resume from; train again without --resume "
                             "into a new --out")
    elif (run_dir / CONFIG).is_file():
        raise InputError(f"{run_dir} already holds a run; pass --resume to continue it or choose another --out")


def _epochs_done(run_dir: Path) -> int:
    from bilipop.models.run import read_run_config

    return read_run_config(run_dir).epochs_done


def _cover_cache(out: Path, examples, size: int, world):
    """The run's cover cache, made and filled by one process per machine (LOCAL_RANK 0) while the others wait at
    a barrier, then opened by all: processes racing to create the same memmap would truncate each other's."""
    from bilipop.train import distributed
    from bilipop.train.dataset import CoverCache

    local_rank, local_size = distributed.local_from_env()
    folder = out / COVER_CACHE
    if world.size > local_size:
        # Several machines share the run folder (README): one cache per machine, so that their leaders do not race
        folder = folder / socket.gethostname()
    leader = local_rank == 0
    built = None
    if leader:
        built = CoverCache(folder, examples.covers, size)
        built.fill(examples.bvids)
    distributed.barrier(world)
    return built if built is not None else CoverCache(folder, examples.covers, size, create=False)


def _train_one(config: TrainConfig, run_dir: Path, shared: _Shared) -> tuple[list[dict], int | None]:
    """Train one run (one cover weight) into ``run_dir``, or continue it with ``shared.resume``."""
    from bilipop.models.factory import create_model
    from bilipop.models.run import read_run_config, save_tokenizer, write_config, write_json
    from bilipop.models.tokenizer import load_tokenizer
    from bilipop.train.dataset import CoverTitleDataset, default_workers, make_loader
    from bilipop.train.loop import Setup, fit

    w, world, devs, examples, split = config.vit_weight[0], shared.world, shared.devices, shared.examples, \
        shared.split
    resuming = shared.resume and (run_dir / CONFIG).is_file()
    previous = read_run_config(run_dir) if resuming else None
    balance_method = config.balance_method
    if previous is not None:
        mismatch = config.resume_mismatch(previous.settings)
        if mismatch:
            raise InputError(f"{run_dir} was trained with {mismatch}; resume with the same settings or train into "
                             "a new --out")
        if (run_dir / SPLIT).is_file():
            from bilipop.data.split import load_or_make_split

            split = load_or_make_split(run_dir / SPLIT, examples.bvids, examples.labels, seed=config.seed)
        saved_cut = previous.settings.given_balance
        if balance_method != "given" and saved_cut and len(devs) > 1 and len(saved_cut) == len(devs):
            # The cut the run started with, whatever chose it: a resumed run continues the same computation.
            config = replace(config, balance=saved_cut)
            balance_method = previous.balance_method
    index = {b: i for i, b in enumerate(examples.bvids)}
    train_idx = [index[b] for b in split["train"] if b in index]
    select_idx = [index[b] for b in split[config.select_on] if b in index]
    # The tiny tokenizer learns its vocabulary from the training part only: valid and test titles stay unseen.
    built = create_model(vision=config.vision, text=config.text, vit=config.vit, bert=config.bert, vit_weight=w,
                         titles=[examples.titles[i] for i in train_idx], dropout=config.dropout, seed=config.seed,
                         vit_heads=config.vit_heads, loss=config.loss,
                         pretrained=not config.random_init)
    if len(devs) > 1:
        from bilipop.train.pipeline import check_balance

        check_balance(config.given_balance, len(built.model), len(devs))  # before anything is written
    if resuming and built.tokenizer is not None and (run_dir / TOKENIZER).is_dir():
        built.tokenizer = load_tokenizer(run_dir / TOKENIZER, MAX_TOKENS,
                                         hint="the run folder is damaged: train again into a new --out")
    # A resume that fails must fail before it rewrites the folder: the checkpoint is read (once) and checked here.
    state = _read_checkpoint(run_dir, built.model) if resuming else None
    # What ran, so that config.json reproduces it: the devices used rather than --gpus, the micro-batches, the
    # precision (the pipeline's cut follows once the pipeline is built).
    config = replace(config, gpus=None, devices=tuple(str(d) for d in devs), chunks=shared.chunks,
                     precision=shared.precision)
    record = {
        "data": str(shared.data), "input": str(shared.table_path), **config.to_json(),
        "balance_method": balance_method,
        "image_size": built.image_size, "image_mean": list(built.image_mean), "image_std": list(built.image_std),
        "max_tokens": MAX_TOKENS, "num_classes": NUM_CLASSES, "label_names": list(LABEL_NAMES),
        "best_epoch": previous.best_epoch if previous else None,
        "epochs_done": previous.epochs_done if previous else 0, "model": built.arch,
    }
    if world.main:
        run_dir.mkdir(parents=True, exist_ok=True)
        write_json(run_dir / SPLIT, split)
        save_tokenizer(built.tokenizer, run_dir / TOKENIZER)
        write_config(run_dir, record)
    weights = None
    if config.class_weights == "balanced":
        from bilipop.models.ordinal import balanced_weights

        weights = balanced_weights([examples.labels[i] for i in train_idx], NUM_CLASSES)
        log.info("balanced class weights %s", ", ".join(f"{x:.3g}" for x in weights))
    cover_cache = _cover_cache(shared.out, examples, built.image_size, world) if config.cache and built.image_size \
        else None
    dataset = CoverTitleDataset(examples, image_size=built.image_size, tokenizer=built.tokenizer,
                                max_tokens=MAX_TOKENS, cache=cover_cache)
    workers = default_workers(len(dataset)) if config.num_workers is None else config.num_workers
    drop_last = ragged_last_batch(len(train_idx), world.size, shared.local_batch, shared.chunks) \
        if world.distributed and len(devs) > 1 else False
    if drop_last and world.main:
        log.warning("torchrun with GPipe: each epoch's last %d row(s) per process are left out; they do not split "
                    "into %d equal micro-batches, which DistributedDataParallel's static graph needs (choose a "
                    "--batch-size that divides the %d training rows to keep them)", drop_last, shared.chunks,
                    len(train_idx))
    train_loader = make_loader(dataset, train_idx, batch_size=shared.local_batch, shuffle=True, seed=config.seed,
                               num_workers=workers, rank=world.rank, world_size=world.size,
                               drop_last=bool(drop_last))
    valid_loader = make_loader(dataset, select_idx, batch_size=shared.local_batch, shuffle=False, seed=config.seed,
                               num_workers=workers)
    setup = Setup(model=built.model, run_dir=run_dir, config=config, train_loader=train_loader,
                  valid_loader=valid_loader, devices=devs, image_mean=built.image_mean, image_std=built.image_std,
                  autocast=shared.autocast, world=world, class_weights=weights)
    on_epoch = shared.on_epoch

    def row_callback(row: dict) -> None:
        if on_epoch:
            on_epoch({"vit_weight": w, **row})

    return fit(setup, state=state, progress=shared.progress, on_epoch=row_callback)


def ragged_last_batch(rows: int, world_size: int, local_batch: int, chunks: int) -> int:
    """Rows of each process's last batch when they do not split into ``chunks`` equal micro-batches, else 0.

    GPipe cuts such a batch into fewer micro-batches, so each parameter's gradient hook fires fewer times than in
    the other steps and DistributedDataParallel's static graph (needed with GPipe) reduces the gradients wrongly;
    under torchrun that batch is dropped.
    """
    per_process = -(-rows // world_size)  # DistributedSampler pads every share to the same length
    last = per_process % local_batch
    return last if last % chunks else 0


def _read_checkpoint(run_dir: Path, model) -> dict | None:
    """RUN/checkpoint.pt (None when there is none), read once and checked against ``model``.

    Raises:
        ModelError: the file cannot be read or does not fit ``model``.
    """
    import torch

    from bilipop.errors import ModelError

    path = run_dir / CHECKPOINT
    if not path.is_file():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ModelError(f"cannot read {path} ({str(exc).strip().splitlines()[0] if str(exc).strip() else 'empty'})"
                         "; the checkpoint is damaged: train again without --resume into a new --out") from None
    saved = state.get("model") if isinstance(state, dict) else None
    ours = model.state_dict()
    if not isinstance(saved, dict) or not all(k in state for k in ("epoch", "optimizer", "history", "best_epoch")) \
            or {k: tuple(v.shape) for k, v in saved.items() if hasattr(v, "shape")} != {
            k: tuple(v.shape) for k, v in ours.items()}:
        raise ModelError(f"{path} does not belong to this run's model (damaged, or from other settings); train "
                         "again without --resume into a new --out")
    return state
