"""Data-parallel training on PyTorch DDP, launched with ``torchrun`` (gloo on CPU, NCCL on GPUs).

Every process draws the same global batch from the same seeded generator and trains on its
own slice, so N processes follow the same trajectory as 1 process at the same global batch.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from lmlab.errors import LmlabError


@dataclass
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def pick_device(name: str, info: DistInfo) -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise LmlabError(f"device {name!r} asked for, but CUDA is not available; use --device cpu")
    if name == "cuda":
        gpus = torch.cuda.device_count()
        if info.local_rank >= gpus:
            raise LmlabError(
                f"torchrun started more processes on this machine than it has GPUs ({gpus}): "
                f"use --nproc_per_node={gpus}, or --device cpu to train on the CPU"
            )
        return torch.device("cuda", info.local_rank)
    return torch.device(name)


def setup(device: str = "auto") -> DistInfo:
    """Join the process group if started by ``torchrun`` (WORLD_SIZE > 1): NCCL when
    ``device`` resolves to GPUs, gloo on CPUs."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    info = DistInfo(int(os.environ["RANK"]), world, int(os.environ.get("LOCAL_RANK", "0")))
    if not dist.is_initialized():
        where = pick_device(device, info)
        if where.type == "cuda":
            torch.cuda.set_device(where)
        dist.init_process_group(backend="nccl" if where.type == "cuda" else "gloo")
    return info


def teardown(info: DistInfo) -> None:
    if info.enabled and dist.is_initialized():
        dist.destroy_process_group()


def _comm_device() -> torch.device:
    """Where collective operations' tensors must live: the GPU for NCCL, else the CPU."""
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def broadcast_flag(flag: bool, info: DistInfo) -> bool:
    """True on every process if it is True on any (e.g. a stop request on one rank)."""
    if not info.enabled:
        return flag
    t = torch.tensor([1 if flag else 0], device=_comm_device())
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())


def all_mean(value: float, info: DistInfo) -> float:
    """The mean of a number over all processes (e.g. the training loss)."""
    if not info.enabled:
        return value
    t = torch.tensor([value], dtype=torch.float64, device=_comm_device())
    dist.all_reduce(t)
    return t.item() / info.world_size


def batch_slice(batch_size: int, info: DistInfo) -> slice:
    if batch_size % info.world_size:
        raise LmlabError(
            f"batch size {batch_size} is not divisible by the {info.world_size} processes; adjust --batch-size"
        )
    per = batch_size // info.world_size
    return slice(info.rank * per, (info.rank + 1) * per)
