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

import numpy as np
import torch

from cxr_dataset.errors import ConfigError


class ExactEpochSampler(torch.utils.data.Sampler[int]):
    """Indices of `dataset` for this rank: ``ceil(len / world_size)`` per epoch on every rank.

    Each epoch (seeded by (seed, epoch), the same on every rank) shuffles the shards' order and the samples within
    each shard, then gives rank r the r-th contiguous block, so a rank reads about shards / world_size shards. When
    the length does not divide, the epoch's first few indices are read a second time (as `DistributedSampler`
    pads), so a few samples are seen twice and none is missed. The rank's block is shuffled again by (seed, epoch,
    rank). Shard sizes come from wids' `dataset.lengths` (one shard otherwise). Deterministic per epoch, so
    torchdata's `StatefulDataLoader` resumes it mid-epoch by skipping what was already read.
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
        self.shard_sizes = [int(n) for n in getattr(dataset, "lengths", None) or [len(dataset)]]
        self.total = sum(self.shard_sizes)
        if self.total < 1:
            raise ConfigError("ExactEpochSampler: the dataset is empty")
        self.seed, self.shuffle, self.epoch = seed, shuffle, 0

    def set_epoch(self, epoch: int) -> None:
        """Reshuffle for `epoch` (call before each epoch, as with `DistributedSampler`)."""
        self.epoch = epoch

    def __len__(self) -> int:
        return math.ceil(self.total / self.world_size)

    def __iter__(self) -> Iterator[int]:
        starts = np.cumsum([0, *self.shard_sizes[:-1]])
        if self.shuffle:
            rng = np.random.default_rng([self.seed, self.epoch])
            shards = rng.permutation(len(self.shard_sizes))
            order = np.concatenate([starts[s] + rng.permutation(self.shard_sizes[s]) for s in shards])
        else:
            order = np.arange(self.total)
        per_rank = len(self)
        padded = np.resize(order, per_rank * self.world_size)  # repeats from the start to fill the last rank
        mine = padded[self.rank * per_rank : (self.rank + 1) * per_rank]
        if self.shuffle:
            mine = np.random.default_rng([self.seed, self.epoch, self.rank]).permutation(mine)
        return iter(mine.tolist())
