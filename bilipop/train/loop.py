"""The training loop of one run: AdamW, the run's loss (cross-entropy or CORN), per-epoch history, the best
epoch's weights kept, and a checkpoint after every epoch from which ``--resume`` continues exactly (same order,
same dropout, same result).

Exact resume rests on four things: the loader's order depends only on (seed, epoch), the dropout masks depend only
on (seed, epoch, layer, dataset row) (``bilipop.models.noise``), the pipeline balance is saved in config.json and
reused, and the checkpoint holds the model, optimizer and GradScaler state. None of it depends on the number of
pipeline stages, the chunks or the number of processes, so those may change between runs without changing the
result beyond float rounding.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import torch
from torch.utils.data import DataLoader, DistributedSampler, Subset, default_collate

from bilipop.errors import InputError, ModelError
from bilipop.files import atomic_write
from bilipop.layout import CHECKPOINT, CONFIG, HISTORY, WEIGHTS
from bilipop.models.fusion import FusionModel
from bilipop.models.ordinal import loss_function, predicted
from bilipop.models.preprocess import to_tensor
from bilipop.models.run import save_weights, write_json
from bilipop.progress import Progress
from bilipop.stats.credit import ordinal_credit
from bilipop.train import distributed
from bilipop.train.pipeline import build_pipeline, output_device, pipeline_balance, time_balance
from bilipop.train_config import TrainConfig

log = logging.getLogger(__name__)
HISTORY_KEYS = ("epoch", "train_loss", "train_ordinal_accuracy", "valid_loss", "valid_ordinal_accuracy", "seconds")
#: Consecutive fp16 steps skipped after which the run stops: halving the loss scale from 65536 takes at most ~17
#: skips to fit, so more means a forward pass that overflows, which no loss scale can help.
MAX_SKIPPED_IN_A_ROW = 50


@dataclass
class Setup:
    """Everything one run needs, prepared by ``bilipop.train.trainer``."""

    model: FusionModel
    run_dir: Path
    config: TrainConfig  # one run's settings (one vit_weight), resolved: lr, devices, chunks, precision
    train_loader: DataLoader
    valid_loader: DataLoader
    devices: list[torch.device]
    image_mean: tuple[float, ...]
    image_std: tuple[float, ...]
    autocast: tuple[str, torch.dtype] | None = None
    world: distributed.World = field(default_factory=distributed.World)
    class_weights: list[float] | None = None  # per class, for the training loss only

    def __post_init__(self) -> None:
        self.train_loss = loss_function(self.config.loss, self.class_weights)
        self.valid_loss = loss_function(self.config.loss)  # the plain loss, comparable across weightings


def fit(setup: Setup, *, state: dict | None = None, progress: Progress | None = None,
        on_epoch: Callable[[dict], None] | None = None) -> tuple[list[dict], int | None]:
    """Train for ``setup.config.epochs`` epochs, continuing from ``state`` (a checkpoint, read and checked by
    the trainer) when given.

    Returns the history rows and the best epoch (highest valid ordinal accuracy, then lowest valid loss).
    """
    run, model, world, config = setup.run_dir, setup.model, setup.world, setup.config
    history: list[dict] = []
    best: int | None = None
    if state is not None:
        model.load_state_dict(state["model"])
        history, best = list(state["history"]), state["best_epoch"]
        log.info("resuming %s after epoch %d", run, state["epoch"])
    model.set_autocast(setup.autocast)
    module = _place(setup)
    balance = pipeline_balance(module)
    module = distributed.wrap(module, world)
    if config.lr is None:
        raise ValueError("Setup.config.lr is None; bilipop.train.trainer resolves the learning rate before fit()")
    optimizer = torch.optim.AdamW(module.parameters(), lr=config.lr)
    if state is not None:
        optimizer.load_state_dict(state["optimizer"])
    # Only fp16 needs loss scaling (bf16 has fp32's range); a disabled scaler passes everything through.
    fp16_device = setup.autocast[0] if setup.autocast is not None and setup.autocast[1] == torch.float16 else None
    use_scaler = fp16_device is not None
    scaler = torch.amp.GradScaler(fp16_device or "cuda", enabled=use_scaler)
    if state is not None and use_scaler and state.get("scaler"):
        scaler.load_state_dict(state["scaler"])
    if world.main:
        _write_history(run, history)

    steps = len(setup.train_loader)
    for epoch in range(len(history) + 1, config.epochs + 1):
        started = time.perf_counter()
        torch.manual_seed(config.seed * 1_000_003 + epoch)
        model.set_noise_seed(config.seed * 1_000_003 + epoch)
        cast(DistributedSampler, setup.train_loader.sampler).set_epoch(epoch)  # make_loader's sampler
        module.train()
        sums = [0.0, 0.0, 0.0]  # loss * rows, ordinal score, rows
        skipped = in_a_row = 0
        for step, batch in enumerate(_batches(setup.train_loader), start=1):
            logits, labels = _forward(module, setup, batch)
            loss = setup.train_loss(logits, labels)
            stepped = _step(loss, optimizer, scaler, world, epoch)
            if torch.isfinite(loss):
                _accumulate(sums, loss, predicted(logits, config.loss), labels)
            if stepped:
                in_a_row = 0
            else:
                skipped, in_a_row = skipped + 1, in_a_row + 1
                if in_a_row >= MAX_SKIPPED_IN_A_ROW:
                    raise ModelError(f"{in_a_row} fp16 steps in a row overflowed at epoch {epoch}; use --precision "
                                     "bf16 or fp32, or lower --lr")
            if progress and world.main:
                progress((epoch - 1) * steps + step, config.epochs * steps)
        train_loss, train_acc = _means(distributed.all_sum(sums, world))
        valid_loss, valid_acc, valid_ci = evaluate(module, setup)
        row: dict[str, Any] = dict(zip(HISTORY_KEYS, (epoch, train_loss, train_acc, valid_loss, valid_acc,
                                                  round(time.perf_counter() - started, 3)), strict=True))
        row["valid_ordinal_accuracy_ci"] = valid_ci
        if use_scaler:
            row["skipped_steps"] = skipped
            if skipped:
                log.warning("epoch %d: %d of %d fp16 steps overflowed and were skipped (loss scale now %g)", epoch,
                            skipped, steps, scaler.get_scale())
        history.append(row)
        if best is None or _better(row, history[best - 1]):
            best = epoch
            if world.main:
                save_weights(model, run / WEIGHTS)
        if world.main:
            _write_history(run, history)
            _write_checkpoint(run / CHECKPOINT, model, optimizer, scaler if use_scaler else None, epoch,
                              history, best)
            write_json(run / CONFIG, {**json.loads((run / CONFIG).read_text(encoding="utf-8")),
                                      "best_epoch": best, "epochs_done": epoch, "balance": balance})
        distributed.barrier(world)
        if on_epoch and world.main:
            on_epoch(row)
    return history, best


def _step(loss: torch.Tensor, optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler,
          world: distributed.World, epoch: int) -> bool:
    """One optimizer step; False when it was skipped.

    The loss is checked before ``backward``, so a non-finite one never reaches the weights or the optimizer state:
    in fp16 (GradScaler on) the step is skipped and the loss scale lowered, as for an overflow in the gradients,
    which the GradScaler itself skips; otherwise the run stops with the last checkpoint intact. Every process
    takes the same decision, or the others would wait for its gradients forever.
    """
    optimizer.zero_grad(set_to_none=True)
    finite = bool(torch.isfinite(loss).all())
    if world.distributed:
        finite = distributed.all_sum([0.0 if finite else 1.0], world)[0] == 0
    if not finite:
        if scaler.is_enabled():
            scaler.update(scaler.get_scale() * scaler.get_backoff_factor())
            return False
        raise ModelError(f"the training loss became {loss.item()} at epoch {epoch}; lower --lr or use "
                         "--precision fp32")
    scale = scaler.get_scale() if scaler.is_enabled() else 1.0
    scaler.scale(loss).backward()
    scaler.step(optimizer)
    scaler.update()
    return not scaler.is_enabled() or scaler.get_scale() >= scale


def evaluate(module: torch.nn.Module, setup: Setup) -> tuple[float, float, list[float]]:
    """Mean (unweighted) loss, ordinal accuracy and its 95 % bootstrap interval on the part the run selects on (valid,
    or test with ``--select-on test``); every process measures all of it."""
    from bilipop.stats.bootstrap import mean_interval

    module.eval()
    sums = [0.0, 0.0, 0.0]
    credits, truths = [], []
    with torch.no_grad():
        for batch in _batches(setup.valid_loader):
            logits, labels = _forward(module, setup, batch)
            preds = predicted(logits, setup.config.loss)
            _accumulate(sums, setup.valid_loss(logits, labels), preds, labels)
            credits.append(ordinal_credit((preds - labels).abs()).cpu())
            truths.append(labels.cpu())
    loss, acc = _means(sums)
    ci = mean_interval(torch.cat(credits).double().numpy(), torch.cat(truths).numpy()) if credits else [acc, acc]
    return loss, acc, ci


def _batches(loader: DataLoader):
    """The loader's batches; a cover that fails in a worker process comes back as a one-line InputError (the
    worker's copy carries the whole worker traceback in its message)."""
    batches = iter(loader)
    while True:
        try:
            batch = next(batches)
        except StopIteration:
            return
        except InputError as exc:
            lines = str(exc).strip().splitlines()
            raise InputError(lines[-1].split("InputError: ", 1)[-1]) from None
        yield batch


def _place(setup: Setup) -> torch.nn.Module:
    model, devices = setup.model, setup.devices
    if len(devices) == 1:
        return model.to(devices[0])
    ds = cast(Subset, setup.train_loader.dataset)  # make_loader's dataset
    config = setup.config
    chunks = config.chunks or 1
    sample_batch = default_collate([ds[i] for i in range(min(len(ds), chunks * 2))])
    sample = _inputs(model, setup, sample_batch, torch.device("cpu"))
    balance: Sequence[int] | None = config.given_balance
    if balance is None and config.balance_method == "time":
        # Timings differ from process to process; every process must cut the model the same way.
        balance = distributed.broadcast(time_balance(model, devices, sample), setup.world)
    return build_pipeline(model, devices, chunks=chunks, balance=balance, checkpoint=config.checkpoint,
                          sample=sample)


def _inputs(model: FusionModel, setup: Setup, batch, device: torch.device) -> tuple[torch.Tensor, ...]:
    images, ids, mask, _, rows = batch
    pixels = to_tensor(images.to(device, non_blocking=True), setup.image_mean, setup.image_std) \
        if model.has_vision else None
    if model.has_text:
        ids, mask = ids.to(device, non_blocking=True), mask.to(device, non_blocking=True)
    return model.pack(pixels, ids if model.has_text else None, mask if model.has_text else None, rows.to(device))


def _forward(module: torch.nn.Module, setup: Setup, batch) -> tuple[torch.Tensor, torch.Tensor]:
    out = module(_inputs(setup.model, setup, batch, setup.devices[0]))
    logits = out[0] if isinstance(out, tuple) else out  # (B, 5) on the last device
    return logits, batch[3].to(output_device(module, setup.devices[0]))


def _accumulate(sums: list[float], loss: torch.Tensor, preds: torch.Tensor, labels: torch.Tensor) -> None:
    n = labels.shape[0]
    sums[0] += loss.item() * n
    sums[1] += ordinal_credit((preds - labels).abs()).sum().item()
    sums[2] += n


def _means(sums: list[float]) -> tuple[float, float]:
    n = max(sums[2], 1.0)
    return sums[0] / n, sums[1] / n


def _better(row: dict, best: dict) -> bool:
    return (row["valid_ordinal_accuracy"], -row["valid_loss"]) > (best["valid_ordinal_accuracy"],
                                                                     -best["valid_loss"])


def _write_history(run: Path, history: list[dict]) -> None:
    text = "".join(json.dumps(row) + "\n" for row in history)
    atomic_write(run / HISTORY, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def _write_checkpoint(path: Path, model, optimizer, scaler, epoch: int, history: list[dict], best: int) -> None:
    state = {"epoch": epoch, "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
             "optimizer": optimizer.state_dict(), "scaler": scaler.state_dict() if scaler else None,
             "history": history, "best_epoch": best}
    atomic_write(path, lambda tmp: torch.save(state, tmp))
