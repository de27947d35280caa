"""Training across processes and machines, launched by torchrun (WORLD_SIZE > 1).

Each process drives its own model (plain, or a GPipe over its local devices) on its share of every batch; the
gradients are averaged by DistributedDataParallel. gloo on CPU, NCCL on GPUs. Only rank 0 writes the run folder.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import TypeVar

import torch
from torch import nn

from bilipop.errors import DeviceError

log = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(frozen=True)
class World:
    """This process's place among the torchrun processes (rank 0 of 1 without torchrun)."""

    rank: int = 0
    size: int = 1

    @property
    def main(self) -> bool:
        """Rank 0: the process that writes the run folder and reports."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        """More than one process takes part."""
        return self.size > 1


def world_from_env() -> World:
    """This process's rank and the number of processes, as torchrun sets them (one process without torchrun)."""
    try:
        return World(int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1")))
    except ValueError as exc:
        raise DeviceError(f"RANK/WORLD_SIZE are not integers ({exc}); launch with torchrun") from exc


def local_from_env() -> tuple[int, int]:
    """This process's rank among those on its machine and their number (LOCAL_RANK, LOCAL_WORLD_SIZE; 0, 1 alone)."""
    try:
        return int(os.environ.get("LOCAL_RANK", "0")), int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
    except ValueError as exc:
        raise DeviceError(f"LOCAL_RANK/LOCAL_WORLD_SIZE are not integers ({exc}); launch with torchrun") from exc


def init(world: World, devices: list[torch.device]) -> None:
    """Join the process group (no-op for a single process).

    Raises:
        DeviceError: the group cannot be formed (e.g. an unreachable master address).
    """
    if not world.distributed:
        return
    import torch.distributed as dist

    if dist.is_initialized():
        return
    backend = "nccl" if devices[0].type == "cuda" else "gloo"
    if backend == "nccl":
        # NCCL's collectives run on the current device: make it this process's first GPU, not everyone's cuda:0
        torch.cuda.set_device(devices[0])
    try:
        dist.init_process_group(backend=backend)
    except (RuntimeError, ValueError) as exc:
        raise DeviceError(f"cannot join the torchrun process group ({backend}): {str(exc).splitlines()[0]}; "
                          "check MASTER_ADDR/MASTER_PORT and that every node runs the same command") from exc
    log.info("process %d of %d joined (%s)", world.rank, world.size, backend)


def wrap(module: nn.Module, world: World) -> nn.Module:
    """DDP around the (possibly pipelined) model; static_graph is required with GPipe (docs/reference.md,
    "GPipe notes")."""
    if not world.distributed:
        return module
    from torch.nn.parallel import DistributedDataParallel

    return DistributedDataParallel(module, device_ids=None, static_graph=True)


def all_sum(values: list[float], world: World) -> list[float]:
    """Sum ``values`` over all processes (identity for one process)."""
    if not world.distributed:
        return values
    import torch.distributed as dist

    t = torch.tensor(values, dtype=torch.float64)
    if dist.get_backend() == "nccl":  # NCCL reduces GPU tensors only
        t = t.to(torch.device("cuda", torch.cuda.current_device()))
    dist.all_reduce(t)
    return t.tolist()


def broadcast(value: T, world: World) -> T:
    """Rank 0's ``value`` on every process (identity for one process)."""
    if not world.distributed:
        return value
    import torch.distributed as dist

    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def barrier(world: World) -> None:
    """Wait until every process gets here (no-op for a single process)."""
    if world.distributed:
        import torch.distributed as dist

        dist.barrier()


def shutdown(world: World) -> None:
    """Leave the process group (no-op for a single process)."""
    if world.distributed:
        import torch.distributed as dist

        if dist.is_initialized():
            dist.destroy_process_group()
