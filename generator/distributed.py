"""Rank facts for `torchrun`, read once: one process per device, gloo on CPU, NCCL on CUDA.

    torchrun --standalone --nproc-per-node 8 -m cli train --prepared P --task normal2covid --out RUN
    torchrun --standalone --nproc-per-node 8 -m cli translate --prepared P --checkpoint RUN --out SYNTH

Without torchrun's environment (RANK unset) everything runs as a single process and no group is created.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, TypeVar

import torch
import torch.distributed as dist

T = TypeVar("T")


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0 writes checkpoints, logs, samples and merged tables."""
        return self.rank == 0

    @property
    def device(self) -> torch.device:
        if torch.cuda.is_available():
            return torch.device("cuda", self.local_rank)
        return torch.device("cpu")

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()

    def gather(self, obj: T) -> list[T]:
        """Every rank's `obj`, in rank order (a list of one without torchrun)."""
        if not self.enabled:
            return [obj]
        out: list[Any] = [None] * self.world_size
        dist.all_gather_object(out, obj)
        return out

    def mean(self, values: dict[str, torch.Tensor]) -> dict[str, float]:
        """Average scalar tensors over ranks (a device sync: call it only when logging)."""
        stacked = torch.stack([v.float() for v in values.values()])
        if self.enabled:
            dist.all_reduce(stacked)
            stacked /= self.world_size
        return dict(zip(values, stacked.tolist()))


def setup() -> DistInfo:
    """Read torchrun's environment and join the process group (once per process)."""
    if int(os.environ.get("RANK", -1)) == -1:
        return DistInfo()
    info = DistInfo(int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"]), int(os.environ.get("LOCAL_RANK", 0)))
    if not dist.is_initialized():
        if torch.cuda.is_available():
            torch.cuda.set_device(info.local_rank)
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    return info


def teardown(info: DistInfo) -> None:
    if info.enabled and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def rank_slice(items: list[T], info: DistInfo) -> list[T]:
    """This rank's share: items rank, rank + world, …: disjoint across ranks, together all of them."""
    return items[info.rank :: info.world_size]
