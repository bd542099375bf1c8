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
        if torch.cuda.is_available():
            return torch.device("cuda", info.local_rank)
        return torch.device("cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise LmlabError(f"device {name!r} asked for, but CUDA is not available; use --device cpu")
    if name == "cuda" and info.enabled:
        return torch.device("cuda", info.local_rank)
    return torch.device(name)


def setup() -> DistInfo:
    """Join the process group if started by ``torchrun`` (WORLD_SIZE > 1)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    info = DistInfo(int(os.environ["RANK"]), world, int(os.environ.get("LOCAL_RANK", "0")))
    if not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        if backend == "nccl":
            torch.cuda.set_device(info.local_rank)
        dist.init_process_group(backend=backend)
    return info


def teardown(info: DistInfo) -> None:
    if info.enabled and dist.is_initialized():
        dist.destroy_process_group()


def broadcast_flag(flag: bool, info: DistInfo) -> bool:
    """True on every process if it is True on any (e.g. a stop request on one rank)."""
    if not info.enabled:
        return flag
    t = torch.tensor([1 if flag else 0])
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())


def batch_slice(batch_size: int, info: DistInfo) -> slice:
    if batch_size % info.world_size:
        raise LmlabError(
            f"batch size {batch_size} is not divisible by the {info.world_size} processes; adjust --batch-size"
        )
    per = batch_size // info.world_size
    return slice(info.rank * per, (info.rank + 1) * per)
