"""Exact epochs under DDP: every sample once, equal counts per rank, shard-local blocks, resumable."""

from collections import Counter

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
        assert sum(counts.values()) - total == len(ranks[0]) * world_size - total  # only the padding repeats
        assert max(counts.values()) <= 1 + -(-world_size // total)


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


def test_exact_epoch_sampler_resumes_mid_epoch_through_stateful_dataloader(release):
    from torchdata.stateful_dataloader import StatefulDataLoader

    dataset = random_access(release, "all")

    def loader():
        sampler = ExactEpochSampler(dataset, seed=2, rank=0, world_size=2)
        sampler.set_epoch(1)
        return StatefulDataLoader(dataset, batch_size=3, sampler=sampler, collate_fn=collate)

    whole = [batch["key"] for batch in loader()]
    interrupted = loader()
    it = iter(interrupted)
    done = [next(it)["key"] for _ in range(2)]
    state = interrupted.state_dict()
    resumed = loader()
    resumed.load_state_dict(state)
    assert done + [batch["key"] for batch in resumed] == whole
