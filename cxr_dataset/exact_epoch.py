"""`ExactEpochSampler`: every sample once per epoch, the same number of samples on every DDP rank.

The map-style counterpart of streaming shards without resampling, for trainers that want exact epochs under DDP
(as wids' `DistributedChunkedSampler`, which leaves the last rank short when the length does not divide):

    release = open_release("cxrds-demo/release/covid-synthetic-cxr")
    dataset = release.random_access()                 # wids over the shard index
    sampler = ExactEpochSampler(dataset, seed=0)      # rank and world size from torch.distributed or torchrun
    loader = DataLoader(dataset, batch_size=32, sampler=sampler, num_workers=4, collate_fn=collate)
    for epoch in range(epochs):
        sampler.set_epoch(epoch)
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sized
from typing import Any

import numpy as np
import torch

from cxr_dataset.errors import ConfigError

SHARDS_PER_WINDOW = 8  # fewer than the 10 shards wids keeps open, so a window's reads never reopen a shard


class ExactEpochSampler(torch.utils.data.Sampler[int]):
    """Indices of `dataset` for this rank: ``ceil(len / world_size)`` per epoch on every rank.

    Each epoch (seeded by (seed, epoch), the same on every rank) shuffles the shards' order and the samples within
    each shard, then gives rank r the r-th contiguous block, so a rank reads about shards / world_size shards. When
    the length does not divide, the epoch's first indices are read a second time (as `DistributedSampler` pads), so
    a few samples are seen twice and none is missed. Within the rank's block, samples are shuffled again across
    windows of at most `SHARDS_PER_WINDOW` consecutive shards (seeded by (seed, epoch, rank)): batches mix shards, and a
    window's shards all stay open in wids' cache. Shard sizes come from wids' `dataset.lengths` (one shard
    otherwise). `state_dict`/`load_state_dict` hold the epoch and the indices given, so torchdata's
    `StatefulDataLoader` resumes it mid-epoch.
    """

    def __init__(
        self,
        dataset: Sized,
        *,
        seed: int = 0,
        shuffle: bool = True,
        rank: int | None = None,
        world_size: int | None = None,
    ) -> None:
        from cxr_dataset.streaming import dist_info

        detected = dist_info()
        self.rank = detected[0] if rank is None else rank
        self.world_size = detected[1] if world_size is None else world_size
        if not 0 <= self.rank < self.world_size:
            raise ConfigError(f"rank must be in [0, {self.world_size}), got {self.rank}")
        lengths = getattr(dataset, "lengths", None)
        self.shard_sizes = [len(dataset)] if lengths is None else [int(n) for n in lengths]
        self.total = sum(self.shard_sizes)
        if self.total != len(dataset):
            raise ConfigError(f"the dataset's shard lengths add up to {self.total}, but it has {len(dataset)} samples")
        if self.total < 1:
            raise ConfigError("ExactEpochSampler: the dataset is empty")
        self.seed, self.shuffle, self.epoch = seed % 2**63, shuffle, 0
        self._given, self._skip = 0, 0

    def set_epoch(self, epoch: int) -> None:
        """Reshuffle for `epoch` (call before each epoch, as with `DistributedSampler`)."""
        self.epoch = epoch

    def __len__(self) -> int:
        return math.ceil(self.total / self.world_size)

    def __iter__(self) -> Iterator[int]:
        indices = self.indices()
        self._given, self._skip = self._skip, 0
        for index in indices[self._given :]:
            self._given += 1
            yield index

    def indices(self) -> list[int]:
        """This rank's indices for the current epoch, in order."""
        starts = np.cumsum([0, *self.shard_sizes[:-1]])
        epoch = self.epoch % 2**63
        if self.shuffle:
            rng = np.random.default_rng([self.seed, epoch])
            shards = rng.permutation(len(self.shard_sizes))
            order = np.concatenate([starts[s] + rng.permutation(self.shard_sizes[s]) for s in shards])
        else:
            order = np.arange(self.total)
        per_rank = len(self)
        padded = np.resize(order, per_rank * self.world_size)  # repeats from the start to fill the last rank
        mine = padded[self.rank * per_rank : (self.rank + 1) * per_rank]
        if self.shuffle:
            shard_of = np.searchsorted(starts, mine, side="right")
            runs = np.flatnonzero(np.r_[True, shard_of[1:] != shard_of[:-1]])  # where each shard's samples begin
            count = math.ceil(len(runs) / SHARDS_PER_WINDOW)  # windows of as equal a number of shards as can be
            windows = np.split(mine, [runs[len(runs) * k // count] for k in range(1, count)])
            rng = np.random.default_rng([self.seed, epoch, self.rank])
            mine = np.concatenate([rng.permutation(window) for window in windows])
        return mine.tolist()

    def state_dict(self) -> dict[str, Any]:
        return {"epoch": self.epoch, "given": self._given}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue `state`'s epoch after the indices it had given."""
        self.epoch, self._skip = int(state["epoch"]), int(state["given"])
