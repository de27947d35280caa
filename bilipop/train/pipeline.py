"""GPipe pipeline parallelism: every use of torchgpipe lives in this module, so another backend (e.g.
``torch.distributed.pipelining``) could replace it in one place.

The fusion model is already one flat ``nn.Sequential`` (``bilipop.models.fusion``); here it is cut into partitions
over the devices and run in ``chunks`` micro-batches. The cut (``--balance``) is by default computed from a cost
model: the floating-point operations of each layer on one sample row, counted by ``torch.utils.flop_counter``
(with twice the layer's parameter count as a floor, for layers such as embeddings whose work it does not count).
That count depends on the shapes only, so the same command always cuts the model the same way; timing the layers
(``--balance time``) adapts to the hardware but differs from run to run.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import torch
from torch import nn

from bilipop.errors import DeviceError, InputError
from bilipop.train_config import CHECKPOINT_MODES, PRECISIONS

log = logging.getLogger(__name__)


def parse_devices(gpus: int | None, devices: Sequence[str] | str | None, *, local_rank: int = 0,
                  local_world_size: int = 1, available: int | None = None) -> list[torch.device]:
    """The devices to train on: ``--devices`` as given, else ``--gpus N`` (cuda:0..N-1), else every visible GPU,
    else the CPU.

    Under torchrun with several processes on one machine (``local_world_size`` > 1) the GPUs are shared out: the
    process with ``local_rank`` r takes cuda:r·N..r·N+N-1, where N is ``--gpus`` or, by default, an equal share of
    the visible GPUs — so that no two processes drive the same GPU. ``--devices`` is always taken as given.

    Raises:
        DeviceError: more GPUs than visible, an unknown or absent device, or both options given.
        InputError: a negative --gpus.
    """
    if available is None:
        available = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if gpus is not None and devices:
        raise InputError("give either --gpus or --devices, not both")
    if devices:
        names = devices.split(",") if isinstance(devices, str) else list(devices)
        out = []
        for name in (n.strip() for n in names if n.strip()):
            try:
                dev = torch.device(name)
            except RuntimeError:
                raise DeviceError(f"--devices: {name!r} is not a device; use cpu or cuda:N") from None
            if dev.type == "cuda":
                dev = torch.device("cuda", dev.index or 0)
                if not available:
                    raise DeviceError(f"--devices: {name.strip()} asks for a GPU, but no GPU is visible here (no "
                                      "CUDA device, or CUDA_VISIBLE_DEVICES hides them); use cpu, e.g. "
                                      "--devices cpu,cpu")
                if dev.index >= available:
                    raise DeviceError(f"--devices: {dev} does not exist ({available} GPU(s) visible); use "
                                      f"cuda:0..cuda:{max(available - 1, 0)} or cpu")
            elif dev.type != "cpu":
                raise DeviceError(f"--devices: {name!r} is not supported; use cpu or cuda:N")
            out.append(dev)
        if not out:
            raise DeviceError("--devices is empty; list devices such as cpu,cpu or cuda:0,cuda:1")
        return out
    if gpus is not None:
        if gpus < 0:
            raise InputError(f"--gpus must be 0 or more, got {gpus}")
        if gpus > available:
            fix = (f"use --gpus {available} or fewer" if available else
                   "leave out --gpus to train on the CPU, or pass --devices cpu,cpu to pipeline over CPU devices")
            raise DeviceError(f"--gpus {gpus} asks for more GPUs than the {available} visible here; {fix}")
        if gpus == 0:
            return [torch.device("cpu")]
        if gpus * local_world_size > available:
            raise DeviceError(f"{local_world_size} processes on this machine with --gpus {gpus} each need "
                              f"{gpus * local_world_size} GPUs, but {available} are visible; use --gpus "
                              f"{available // local_world_size} or fewer, or torchrun --nproc_per_node "
                              f"{max(available // gpus, 1)}")
        return [torch.device("cuda", local_rank * gpus + i) for i in range(gpus)]
    if available:
        share = available // local_world_size
        if share == 0:
            raise DeviceError(f"{local_world_size} processes on this machine share {available} GPU(s); use "
                              f"torchrun --nproc_per_node {available} or fewer")
        return [torch.device("cuda", local_rank * share + i) for i in range(share)]
    return [torch.device("cpu")]


def check_chunks(chunks: int | None, batch_size: int, n_devices: int) -> int:
    """Micro-batches per batch: ``chunks`` or 4 per device (keeps the bubble (K-1)/(M+K-1) small).

    Raises:
        DeviceError: fewer than one chunk, or a batch size that does not split into the micro-batches.
    """
    chunks = 4 * n_devices if chunks is None else int(chunks)
    if chunks < 1:
        raise DeviceError(f"--chunks must be at least 1, got {chunks}")
    if batch_size % chunks:
        raise DeviceError(f"--batch-size {batch_size} does not split into {chunks} equal micro-batches; use a "
                          f"batch size that is a multiple of {chunks} or change --chunks")
    return chunks


def check_balance(balance: Sequence[int] | None, n_layers: int, n_devices: int) -> list[int] | None:
    """Raises DeviceError unless ``balance`` has one positive count per device summing to the model's layers."""
    if balance is None:
        if n_layers < n_devices:
            raise DeviceError(f"the model has {n_layers} pipeline layers, fewer than the {n_devices} devices; "
                              "use fewer devices")
        return None
    balance = [int(b) for b in balance]
    if len(balance) != n_devices or any(b < 1 for b in balance) or sum(balance) != n_layers:
        raise DeviceError(f"--balance {','.join(map(str, balance))} must give {n_devices} positive counts (one "
                          f"per device) summing to the model's {n_layers} pipeline layers (input, encoder "
                          "blocks, head)")
    return balance


def autocast_for(precision: str | None, devices: Sequence[torch.device]) -> tuple[str, torch.dtype] | None:
    """The autocast (device type, dtype) for ``--precision``; None means full fp32.

    Default (None): bf16 on GPUs that support it, else fp16 on GPUs, fp32 on CPU.

    Raises:
        DeviceError: fp16 asked for on CPU.
        InputError: an unknown precision.
    """
    on_cuda = devices[0].type == "cuda"
    if precision is None:
        if not on_cuda:
            return None
        precision = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    if precision not in PRECISIONS:
        raise InputError(f"--precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if precision == "fp32":
        return None
    if precision == "fp16" and not on_cuda:
        raise DeviceError("--precision fp16 needs CUDA; use bf16 or fp32 on CPU")
    return ("cuda" if on_cuda else "cpu", torch.bfloat16 if precision == "bf16" else torch.float16)


def precision_name(autocast: tuple[str, torch.dtype] | None) -> str:
    """The ``--precision`` that ``autocast_for`` answered with ``autocast``."""
    if autocast is None:
        return "fp32"
    return "bf16" if autocast[1] == torch.bfloat16 else "fp16"


def build_pipeline(model: nn.Sequential, devices: Sequence[torch.device], *, chunks: int,
                   balance: Sequence[int] | None, checkpoint: str, sample: tuple[torch.Tensor, ...]) -> nn.Module:
    """Wrap ``model`` in torchgpipe's GPipe. The modules are shared, not copied: ``model.state_dict()`` stays the
    plain model's, with parameters spread over the devices. Build the optimizer after this call.

    Raises:
        DeviceError: a bad balance or checkpoint mode.
    """
    from torchgpipe import GPipe

    if checkpoint not in CHECKPOINT_MODES:
        raise DeviceError(f"--checkpoint must be one of {', '.join(CHECKPOINT_MODES)}, got {checkpoint!r}")
    balance = check_balance(balance, len(model), len(devices))
    if balance is None:
        balance = cost_balance(model, len(devices), sample)
    return GPipe(model, balance=list(balance), devices=list(devices), chunks=chunks, checkpoint=checkpoint)


def layer_costs(model: nn.Sequential, sample: tuple[torch.Tensor, ...]) -> list[int]:
    """Cost of each child of ``model``: its floating-point operations on the first row of ``sample`` (forward, no
    grad, eval mode), at least twice its parameter count. Depends on the shapes alone: deterministic."""
    from torch.utils.flop_counter import FlopCounterMode

    was_training = model.training
    model.eval()
    costs = []
    state = tuple(t[:1] for t in sample)
    try:
        with torch.no_grad():
            for child in model:
                with FlopCounterMode(display=False) as counter:
                    state = child(state)
                params = sum(p.numel() for p in child.parameters())
                costs.append(max(int(counter.get_total_flops()), 2 * params, 1))
    finally:
        model.train(was_training)
    return costs


def partition(costs: Sequence[int], parts: int) -> list[int]:
    """Cut ``costs`` into ``parts`` contiguous non-empty runs whose largest sum is as small as possible (the
    pipeline's slowest stage sets its pace); among equal cuts the one with the earliest boundaries wins."""
    n = len(costs)
    if not 1 <= parts <= n:
        raise DeviceError(f"cannot cut {n} pipeline layers into {parts} stages")
    prefix = [0]
    for c in costs:
        prefix.append(prefix[-1] + int(c))
    inf = float("inf")
    # best[k][i]: the smallest possible largest stage when the first i layers form k stages
    best = [[inf] * (n + 1) for _ in range(parts + 1)]
    cut = [[0] * (n + 1) for _ in range(parts + 1)]
    best[0][0] = 0
    for k in range(1, parts + 1):
        for i in range(k, n - (parts - k) + 1):
            for j in range(k - 1, i):
                value = max(best[k - 1][j], prefix[i] - prefix[j])
                if value < best[k][i]:
                    best[k][i], cut[k][i] = value, j
    sizes, i = [], n
    for k in range(parts, 0, -1):
        j = cut[k][i]
        sizes.append(i - j)
        i = j
    return sizes[::-1]


def cost_balance(model: nn.Sequential, n_devices: int, sample: tuple[torch.Tensor, ...]) -> list[int]:
    """Layers per device from the cost model (:func:`layer_costs`): the same answer on every run and process."""
    check_balance(None, len(model), n_devices)
    balance = partition(layer_costs(model, sample), n_devices)
    log.info("pipeline balance by layer cost: %s", ",".join(map(str, balance)))
    return balance


def time_balance(model: nn.Sequential, devices: Sequence[torch.device], sample: tuple[torch.Tensor, ...]
                 ) -> list[int]:
    """Layers per device from timing each layer on ``sample`` (about a second)."""
    from torchgpipe.balance import balance_by_time

    check_balance(None, len(model), len(devices))
    # Timed on the first device; with identical devices the layer costs carry over to the others.
    balance = balance_by_time(len(devices), model, tuple(t.to(devices[0]) for t in sample), timeout=1.0,
                              device=devices[0])
    log.info("pipeline balance by timing: %s", ",".join(map(str, balance)))
    return list(balance)


def pipeline_balance(module: nn.Module) -> list[int] | None:
    """The balance a GPipe wrapper uses (None for a plain module)."""
    inner = getattr(module, "module", module)  # DistributedDataParallel keeps the wrapped module here
    balance = getattr(inner, "balance", None)
    return list(balance) if balance is not None else None


def output_device(module: nn.Module, fallback: torch.device) -> torch.device:
    """Where the model's output, hence the loss target, lives: a GPipe's last device, else ``fallback``."""
    inner = getattr(module, "module", module)
    devices = getattr(inner, "devices", None)
    return devices[-1] if devices else fallback
