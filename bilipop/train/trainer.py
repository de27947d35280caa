"""``train()``: the core of ``bilipop train``. Checks every input first, builds the model and the loaders, trains
one run per ``--vit-weight`` (a sweep writes the study's Table 1 layout) and returns what happened."""

from __future__ import annotations

import csv
import io
import logging
import os
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bilipop.data.schema import DEFAULT_DATA_DIR, LABEL_NAMES, NUM_CLASSES, STAGE_INPUTS
from bilipop.errors import InputError, OutputError
from bilipop.files import WRITE_ERRNOS, atomic_write, missing_parents
from bilipop.layout import (
    CHECKPOINT,
    CONFIG,
    COVER_CACHE,
    DEFAULT_BATCH_SIZE,
    DEFAULT_BERT,
    DEFAULT_CHECKPOINT,
    DEFAULT_EPOCHS,
    DEFAULT_LR,
    DEFAULT_TEXT,
    DEFAULT_VISION,
    DEFAULT_VIT,
    DEFAULT_VIT_WEIGHT,
    MAX_TOKENS,
    SPLIT,
    SWEEP,
    TABLE1_CSV,
    TABLE1_MD,
    TINY_LR,
    TOKENIZER,
)
from bilipop.progress import ProgressArg, takes_progress

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


SELECT_ON = ("valid", "test")


def _weight_dir(w: float) -> str:
    return f"w{w:g}"


@takes_progress("training")
def train(data: str | Path = DEFAULT_DATA_DIR, input: str | Path | None = None, out: str | Path = "runs/run",
          vit: str = DEFAULT_VIT, bert: str = DEFAULT_BERT, vision: str = DEFAULT_VISION, text: str = DEFAULT_TEXT,
          vit_weight: Sequence[float] | float = (DEFAULT_VIT_WEIGHT,), epochs: int = DEFAULT_EPOCHS,
          batch_size: int = DEFAULT_BATCH_SIZE, lr: float | None = None, gpus: int | None = None,
          devices: Sequence[str] | str | None = None, chunks: int | None = None,
          balance: Sequence[int] | str | None = None, checkpoint: str = DEFAULT_CHECKPOINT,
          precision: str | None = None, cache: bool = False, seed: int = 0, resume: bool = False,
          num_workers: int | None = None, progress: ProgressArg = None,
          on_epoch: Callable[[dict], None] | None = None, dropout: float = 0.1, select_on: str = "valid",
          vit_heads: int | None = None, loss: str = "ce", class_weights: str = "none",
          random_init: bool = False) -> TrainResult:
    """Train the late-fusion model on a labeled dataset and write a run folder (docs/reference.md).

    Args:
        lr: None means the study's 5e-5, or 1e-3 when a ``tiny`` model trains from scratch.
        vit_weight: one weight, or several for a sweep (``out/w<weight>/`` each, plus table1.md/csv).
        gpus, devices: see ``bilipop.train.pipeline.parse_devices``; two or more devices train through GPipe.
        balance: pipeline layers per device; None or "cost" cuts by a cost model of the layers (the same on every
            run), "time" by timing them (adapts to the hardware, differs between runs). Saved in config.json and
            reused by ``resume``.
        select_on: the part whose figures history.jsonl reports and whose best epoch is kept: "valid" (default),
            or "test" to reproduce the study's protocol (its "valid" set was its test set).
        vit_heads: attention heads of a ``--vit PATH`` checkpoint that is not a known ViT name (the head count
            leaves no trace in the weights' shapes).
        precision: bf16, fp16 or fp32; None picks bf16/fp16 on GPUs and fp32 on CPU.
        progress: ``progress(done, total)``: covers checked while the table is read, then training steps.
        on_epoch: called with each epoch's history row (``vit_weight`` added).
        dropout: dropout of the encoders (0 makes runs comparable step by step, e.g. in tests).
        loss: ``ce`` (the study) or ``corn`` (rank-consistent ordinal; ``bilipop.models.ordinal``).
        class_weights: ``none`` or ``balanced`` (``n / (5 n_k)`` from the train part's labels).

    Raises:
        InputError, ModelError, DeviceError: bad options, data, weights or devices; nothing is trained then.
    """
    from bilipop.train import distributed
    from bilipop.train.pipeline import BALANCE_METHODS, autocast_for, check_chunks, parse_devices

    weights = [float(vit_weight)] if isinstance(vit_weight, int | float) else [float(w) for w in vit_weight]
    _check_options(weights, epochs, batch_size, lr, num_workers, checkpoint)
    if select_on not in SELECT_ON:
        raise InputError(f"--select-on must be one of {', '.join(SELECT_ON)}, got {select_on!r}")
    from bilipop.models.ordinal import check_loss

    check_loss(loss, class_weights)
    if isinstance(balance, str):
        if balance not in BALANCE_METHODS:
            raise InputError(f"--balance takes layer counts such as 3,3, or one of {', '.join(BALANCE_METHODS)}; "
                             f"got {balance!r}")
        balance_method, balance = balance, None
    else:
        balance_method = "given" if balance else "cost"
    data, out = Path(data).resolve(), Path(out)
    table_path = (Path(input) if input is not None else data / STAGE_INPUTS["train"]).resolve()
    if not table_path.is_file():
        raise InputError(f"labeled table {table_path} does not exist; run bilipop label first or pass -i FILE")
    local_rank, local_world_size = distributed.local_from_env()
    devs = parse_devices(gpus, devices, local_rank=local_rank, local_world_size=local_world_size)
    world = distributed.world_from_env()
    if world.distributed and batch_size % world.size:
        raise InputError(f"--batch-size {batch_size} does not split over {world.size} processes; use a multiple")
    local_batch = batch_size // world.size
    n_chunks = check_chunks(chunks, local_batch, len(devs)) if len(devs) > 1 else 1
    if len(devs) == 1 and (chunks is not None or balance):
        log.warning("--chunks and --balance shape the GPipe pipeline, which needs two or more devices; training on "
                    "%s alone ignores them", devs[0])
    if balance and len(devs) > 1 and len({(w > 0, w < 1) for w in weights}) > 1:
        # A w = 0 or w = 1 run leaves an encoder out, so it has fewer pipeline layers than a fused run: no one
        # --balance fits both, and the second run would fail only after the first had trained.
        raise InputError("--balance cannot fit every run of this sweep: w = 0 and w = 1 leave an encoder out "
                         "and have fewer pipeline layers; drop --balance (each run is then balanced by its layers' "
                         "cost) "
                         "or sweep those weights separately")
    autocast = autocast_for(precision, devs)
    notes: list[str] = []
    if lr is None:
        lr, note = default_lr(vit, bert, weights)
        if note:
            notes.append(note)
            log.info(note)
    sweep = len(weights) > 1
    run_dirs = [out / _weight_dir(w) if sweep else out for w in weights]
    for run_dir in run_dirs:
        _check_out(run_dir, resume)
    # Folders this call makes (--out, its missing parents, the sweep's runs): removed again if training fails
    # before their first checkpoint.
    made = missing_parents(out.resolve()) + [d.resolve() for d in run_dirs if d != out and not d.exists()]

    from bilipop.data.split import make_split
    from bilipop.train.dataset import load_examples

    examples = load_examples(table_path, data, covers=any(w > 0 for w in weights),
                             titles=any(w < 1 for w in weights), progress=progress if world.main else None)
    split = make_split(examples.bvids, examples.labels, seed=seed)
    distributed.init(world, devs)
    try:
        distributed.barrier(world)  # every process has checked --out before rank 0 writes into it
        histories, bests = [], []
        for w, run_dir in zip(weights, run_dirs, strict=True):
            options = dict(vit=vit, bert=bert, vision=vision, text=text, vit_weight=w, epochs=epochs,
                           batch_size=batch_size, lr=lr, devices=[str(d) for d in devs], chunks=n_chunks,
                           balance=list(balance) if balance else None, balance_method=balance_method,
                           checkpoint=checkpoint, precision=precision or _precision_name(autocast), seed=seed,
                           cache=cache, select_on=select_on, vit_heads=vit_heads, loss=loss, random_init=random_init,
                           class_weights=class_weights)
            history, best = _train_one(run_dir, out, data, table_path, examples, split, options, world, devs,
                                       autocast, local_batch, num_workers, resume, dropout, progress, on_epoch)
            histories.append(history)
            bests.append(best)
        table1 = _write_sweep(out, weights, run_dirs, histories) if sweep and world.main else None
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
                       is_main=world.main)


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


def _check_options(weights, epochs, batch_size, lr, num_workers, checkpoint) -> None:
    from bilipop.train.pipeline import CHECKPOINT_MODES

    if not weights:
        raise InputError("--vit-weight needs at least one number between 0 and 1, e.g. 0.75")
    if any(not 0 <= w <= 1 for w in weights):
        raise InputError(f"--vit-weight values must be between 0 and 1, got {','.join(f'{w:g}' for w in weights)}")
    if len({_weight_dir(w) for w in weights}) != len(weights):
        raise InputError("--vit-weight lists the same weight twice")
    if epochs < 1:
        raise InputError(f"--epochs must be at least 1, got {epochs}")
    if batch_size < 1:
        raise InputError(f"--batch-size must be at least 1, got {batch_size}")
    if lr is not None and not lr > 0:
        raise InputError(f"--lr must be a positive number, got {lr}")
    if num_workers is not None and num_workers < 0:
        raise InputError(f"num_workers must be 0 or more, got {num_workers}")
    if checkpoint not in CHECKPOINT_MODES:
        raise InputError(f"--checkpoint must be one of {', '.join(CHECKPOINT_MODES)}, got {checkpoint!r}")


def _precision_name(autocast) -> str:
    if autocast is None:
        return "fp32"
    import torch

    return "bf16" if autocast[1] == torch.bfloat16 else "fp16"


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
    from bilipop.models.run import read_config

    return int(read_config(run_dir).get("epochs_done") or 0)


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


def _train_one(run_dir, out, data, table_path, examples, split, options, world, devs, autocast, local_batch,
               num_workers, resume, dropout, progress, on_epoch):
    from bilipop.models.registry import create_model
    from bilipop.models.run import read_config, save_tokenizer, write_config
    from bilipop.models.tokenizer import load_tokenizer
    from bilipop.train.dataset import CoverTitleDataset, default_workers, make_loader
    from bilipop.train.loop import Setup, fit

    w = options["vit_weight"]
    resuming = resume and (run_dir / CONFIG).is_file()
    previous = read_config(run_dir) if resuming else {}
    if resuming:
        _check_same(previous, options, run_dir)
        if (run_dir / SPLIT).is_file():
            from bilipop.data.split import load_or_make_split

            split = load_or_make_split(run_dir / SPLIT, examples.bvids, examples.labels, seed=options["seed"])
        if options["balance_method"] != "given" and previous.get("balance") and len(devs) > 1 \
                and len(previous["balance"]) == len(devs):
            # The cut the run started with, whatever chose it: a resumed run continues the same computation.
            options = {**options, "balance": list(previous["balance"]),
                       "balance_method": previous.get("balance_method", options["balance_method"])}
    index = {b: i for i, b in enumerate(examples.bvids)}
    train_idx = [index[b] for b in split["train"] if b in index]
    select_idx = [index[b] for b in split[options["select_on"]] if b in index]
    # The tiny tokenizer learns its vocabulary from the training part only: valid and test titles stay unseen.
    built = create_model(vision=options["vision"], text=options["text"], vit=options["vit"], bert=options["bert"],
                         vit_weight=w, titles=[examples.titles[i] for i in train_idx], dropout=dropout,
                         seed=options["seed"], vit_heads=options["vit_heads"], loss=options["loss"],
                         pretrained=not options.get("random_init", False))
    if len(devs) > 1:
        from bilipop.train.pipeline import check_balance

        check_balance(options["balance"], len(built.model), len(devs))  # before anything is written
    if resuming and built.tokenizer is not None and (run_dir / TOKENIZER).is_dir():
        built.tokenizer = load_tokenizer(run_dir / TOKENIZER, MAX_TOKENS,
                                         hint="the run folder is damaged: train again into a new --out")
    if resuming:
        _check_checkpoint(run_dir, built.model)  # a resume that fails must fail before it rewrites the folder
    config = {
        "data": str(data), "input": str(table_path), **options,
        "image_size": built.image_size, "image_mean": list(built.image_mean), "image_std": list(built.image_std),
        "max_tokens": MAX_TOKENS, "num_classes": NUM_CLASSES, "label_names": list(LABEL_NAMES),
        "best_epoch": None, "epochs_done": 0, "model": built.arch,
    }
    if world.main:
        from bilipop.models.run import write_json

        run_dir.mkdir(parents=True, exist_ok=True)
        write_json(run_dir / SPLIT, split)
        save_tokenizer(built.tokenizer, run_dir / TOKENIZER)
        write_config(run_dir, {**config, "best_epoch": previous.get("best_epoch"),
                               "epochs_done": previous.get("epochs_done", 0)})
    weights = None
    if options["class_weights"] == "balanced":
        from bilipop.models.ordinal import balanced_weights

        weights = balanced_weights([examples.labels[i] for i in train_idx], NUM_CLASSES)
        log.info("balanced class weights %s", ", ".join(f"{x:.3g}" for x in weights))
    cover_cache = _cover_cache(out, examples, built.image_size, world) if options["cache"] and built.image_size \
        else None
    dataset = CoverTitleDataset(examples, image_size=built.image_size, tokenizer=built.tokenizer,
                                max_tokens=MAX_TOKENS, cache=cover_cache)
    workers = default_workers(len(dataset)) if num_workers is None else num_workers
    seed = options["seed"]
    drop_last = ragged_last_batch(len(train_idx), world.size, local_batch, options["chunks"]) \
        if world.distributed and len(devs) > 1 else False
    if drop_last and world.main:
        log.warning("torchrun with GPipe: each epoch's last %d row(s) per process are left out; they do not split "
                    "into %d equal micro-batches, which DistributedDataParallel's static graph needs (choose a "
                    "--batch-size that divides the %d training rows to keep them)", drop_last,
                    options["chunks"], len(train_idx))
    train_loader = make_loader(dataset, train_idx, batch_size=local_batch, shuffle=True, seed=seed,
                               num_workers=workers, rank=world.rank, world_size=world.size,
                               drop_last=bool(drop_last))
    valid_loader = make_loader(dataset, select_idx, batch_size=local_batch, shuffle=False, seed=seed,
                               num_workers=workers)
    setup = Setup(model=built.model, run_dir=run_dir, config=config, train_loader=train_loader,
                  valid_loader=valid_loader, devices=devs, image_mean=built.image_mean, image_std=built.image_std,
                  lr=options["lr"], epochs=options["epochs"], seed=seed, chunks=options["chunks"],
                  balance=options["balance"], balance_method=options["balance_method"],
                  checkpoint=options["checkpoint"], autocast=autocast, world=world, loss=options["loss"],
                  class_weights=weights)

    def row_callback(row: dict) -> None:
        if on_epoch:
            on_epoch({"vit_weight": w, **row})

    return fit(setup, resume=resuming, progress=progress, on_epoch=row_callback)


def ragged_last_batch(rows: int, world_size: int, local_batch: int, chunks: int) -> int:
    """Rows of each process's last batch when they do not split into ``chunks`` equal micro-batches, else 0.

    GPipe cuts such a batch into fewer micro-batches, so each parameter's gradient hook fires fewer times than in
    the other steps and DistributedDataParallel's static graph (needed with GPipe) reduces the gradients wrongly;
    under torchrun that batch is dropped.
    """
    per_process = -(-rows // world_size)  # DistributedSampler pads every share to the same length
    last = per_process % local_batch
    return last if last % chunks else 0


_MUST_MATCH = ("vit", "bert", "vision", "text", "vit_weight", "batch_size", "lr", "seed", "select_on", "loss",
               "class_weights")
#: What a run folder written before an option existed was trained with.
_SAVED_DEFAULTS = {"select_on": "valid", "loss": "ce", "class_weights": "none"}


def _check_checkpoint(run_dir: Path, model) -> None:
    """Raise ModelError unless RUN/checkpoint.pt (when there is one) can be read and fits ``model``."""
    import torch

    from bilipop.errors import ModelError

    path = run_dir / CHECKPOINT
    if not path.is_file():
        return
    try:  # mmap: only the shapes are looked at here, the tensors are read when the loop loads them
        state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception as exc:
        raise ModelError(f"cannot read {path} ({str(exc).strip().splitlines()[0] if str(exc).strip() else 'empty'})"
                         "; the checkpoint is damaged: train again without --resume into a new --out") from None
    saved = state.get("model") if isinstance(state, dict) else None
    ours = model.state_dict()
    if not isinstance(saved, dict) or not all(k in state for k in ("optimizer", "history", "best_epoch")) or {
            k: tuple(v.shape) for k, v in saved.items() if hasattr(v, "shape")} != {
            k: tuple(v.shape) for k, v in ours.items()}:
        raise ModelError(f"{path} does not belong to this run's model (damaged, or from other settings); train "
                         "again without --resume into a new --out")


def _check_same(saved: dict, options: dict, run_dir: Path) -> None:
    for key in _MUST_MATCH:
        value = saved.get(key, _SAVED_DEFAULTS.get(key))
        if value != options[key]:
            flag = "--" + key.replace("_", "-")
            raise InputError(f"{run_dir} was trained with {flag} {value}, not {options[key]}; resume with "
                             "the same settings or train into a new --out")


def _write_sweep(out: Path, weights, run_dirs, histories) -> Path:
    """table1.csv and table1.md: train and valid ordinal accuracy per weight and epoch, the valid figure with its
    95 % bootstrap interval, so that a reader can see which weights differ beyond the noise."""
    from bilipop.models.run import write_json

    cols = ("vit_weight", "epoch", "train_ordinal_accuracy", "valid_ordinal_accuracy", "valid_ci_low",
            "valid_ci_high")
    rows = [(w, r["epoch"], r["train_ordinal_accuracy"], r["valid_ordinal_accuracy"],
             *(r.get("valid_ordinal_accuracy_ci") or (float("nan"), float("nan"))))
            for w, history in zip(weights, histories, strict=True) for r in history]
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(cols)
    writer.writerows((f"{w:g}", e, f"{a:.4f}", f"{b:.4f}", f"{lo:.4f}", f"{hi:.4f}") for w, e, a, b, lo, hi in rows)
    atomic_write(out / TABLE1_CSV, lambda tmp: tmp.write_text(buf.getvalue(), encoding="utf-8"))
    lines = ["| ViT weight | epoch | train ordinal accuracy | valid ordinal accuracy | valid 95 % interval |",
             "|---:|---:|---:|---:|---:|"]
    lines += [f"| {w:g} | {e} | {a:.4f} | {b:.4f} | [{lo:.4f}, {hi:.4f}] |" for w, e, a, b, lo, hi in rows]
    lines += ["", "Valid = the run's valid part (split.json) unless trained with --select-on test; intervals: 95 % "
              "bootstrap, 1,000 resamples stratified by class. Weights whose intervals overlap may not differ."]
    md = "\n".join(lines) + "\n"
    atomic_write(out / TABLE1_MD, lambda tmp: tmp.write_text(md, encoding="utf-8"))
    write_json(out / SWEEP, {"weights": weights, "runs": [os.path.relpath(d, out) for d in run_dirs]})
    return out / TABLE1_MD
