"""Exact epochs under DDP: every sample once, equal counts per rank, shard-local blocks, resumable."""

from collections import Counter

import numpy as np
import pytest
import torch

from cxr_dataset.errors import ConfigError
from cxr_dataset.exact_epoch import ExactEpochSampler
from cxr_dataset.streaming import collate, random_access


class Shards:
    """A stand-in with wids' shape: `lengths` per shard, indexable by global position."""

    def __init__(self, lengths):
        self.lengths = lengths

    def __len__(self):
        return sum(self.lengths)

    def __getitem__(self, index):
        return index


@pytest.mark.parametrize("world_size", [1, 2, 3, 4, 7])
@pytest.mark.parametrize("lengths", [[10, 10, 10], [16, 16, 5], [3], [1, 1]])
def test_exact_epoch_sampler_covers_every_index_with_equal_ranks(lengths, world_size):
    total = sum(lengths)
    for epoch in range(2):
        ranks = []
        for rank in range(world_size):
            sampler = ExactEpochSampler(Shards(lengths), seed=3, rank=rank, world_size=world_size)
            sampler.set_epoch(epoch)
            ranks.append(list(sampler))
        assert {len(r) for r in ranks} == {-(-total // world_size)} == {len(sampler)}
        counts = Counter(i for r in ranks for i in r)
        assert set(counts) == set(range(total))  # none missed
        assert max(counts.values()) - min(counts.values()) <= 1  # the padding spreads repeats over distinct indices


def test_exact_epoch_sampler_reshuffles_by_epoch_and_repeats_an_epoch():
    sampler = ExactEpochSampler(Shards([20, 20, 20]), seed=0, rank=1, world_size=2)
    first = list(sampler)
    sampler.set_epoch(1)
    second = list(sampler)
    sampler.set_epoch(0)
    assert first != second and list(sampler) == first
    other_seed = ExactEpochSampler(Shards([20, 20, 20]), seed=1, rank=1, world_size=2)
    assert list(other_seed) != first


def test_exact_epoch_sampler_keeps_a_rank_on_few_shards():
    lengths = [10] * 8
    for rank in range(4):
        indices = list(ExactEpochSampler(Shards(lengths), seed=5, rank=rank, world_size=4))
        assert len({i // 10 for i in indices}) == 2  # a rank's block is two whole shards, not all eight


def _shard_opens(indices: list[int], shard_size: int, cache: int = 10) -> int:
    """How many times a reader with wids' cache of `cache` open shards (least recently used first out) opens one."""
    open_shards: list[int] = []
    opens = 0
    for shard in (i // shard_size for i in indices):
        if shard in open_shards:
            open_shards.remove(shard)
        else:
            opens += 1
            if len(open_shards) == cache:
                open_shards.pop(0)
        open_shards.append(shard)
    return opens


@pytest.mark.parametrize("world_size", [1, 2])
def test_exact_epoch_sampler_opens_each_shard_once_and_mixes_shards_in_batches(world_size):
    """One GPU reads 22 shards of the release's shape: each opened once through wids' cache, yet a batch of 32
    draws on several shards (a block read shard by shard would give one-shard batches)."""
    lengths = [100] * 22
    for rank in range(world_size):
        indices = list(ExactEpochSampler(Shards(lengths), seed=0, rank=rank, world_size=world_size))
        assert _shard_opens(indices, 100) == len({i // 100 for i in indices})
        batches = [indices[i : i + 32] for i in range(0, len(indices) - 31, 32)]
        assert min(len({i // 100 for i in batch}) for batch in batches) >= 4


def test_exact_epoch_sampler_refuses_shard_lengths_that_do_not_add_up():
    class Mislabelled(Shards):
        def __len__(self):
            return 7

    with pytest.raises(ConfigError, match="add up to 6, but it has 7 samples"):
        ExactEpochSampler(Mislabelled([3, 3]), rank=0, world_size=1)
    assert len(ExactEpochSampler(Shards(np.array([3, 3])), rank=0, world_size=1)) == 6  # wids' lengths: an array


def test_exact_epoch_sampler_without_shuffle_is_in_order():
    assert list(ExactEpochSampler(Shards([3, 2]), shuffle=False, rank=1, world_size=2)) == [3, 4, 0]


def test_exact_epoch_sampler_rejects_bad_ranks_and_empty_data():
    with pytest.raises(ConfigError, match=r"rank must be in \[0, 2\)"):
        ExactEpochSampler(Shards([4]), rank=2, world_size=2)
    with pytest.raises(ConfigError, match="empty"):
        ExactEpochSampler(Shards([0]), rank=0, world_size=1)


def test_exact_epoch_sampler_over_a_release_reads_each_sample_once(release):
    dataset = random_access(release, "all")
    keys = []
    for rank in range(2):
        sampler = ExactEpochSampler(dataset, seed=0, rank=rank, world_size=2)
        loader = torch.utils.data.DataLoader(dataset, batch_size=4, sampler=sampler, collate_fn=collate)
        keys.append([k for batch in loader for k in batch["key"]])
    assert len(keys[0]) == len(keys[1])
    assert set(keys[0] + keys[1]) == {dataset[i]["key"] for i in range(len(dataset))}


@pytest.mark.parametrize("workers", [0, 2])
def test_exact_epoch_sampler_resumes_mid_epoch_through_stateful_dataloader(release, workers):
    """The saved state holds the epoch: a resumed job need not call set_epoch before loading it."""
    from torchdata.stateful_dataloader import StatefulDataLoader

    dataset = random_access(release, "all")

    def loader(epoch=None):
        sampler = ExactEpochSampler(dataset, seed=2, rank=0, world_size=2)
        if epoch is not None:
            sampler.set_epoch(epoch)
        return StatefulDataLoader(dataset, batch_size=3, sampler=sampler, collate_fn=collate, num_workers=workers)

    whole = [batch["key"] for batch in loader(epoch=1)]
    interrupted = loader(epoch=1)
    it = iter(interrupted)
    done = [next(it)["key"] for _ in range(2)]
    state = interrupted.state_dict()
    resumed = loader()
    resumed.load_state_dict(state)
    assert done + [batch["key"] for batch in resumed] == whole
