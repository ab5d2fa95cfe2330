"""Run under torchrun: stream a release through the HF and the WebDataset paths as a DDP trainer would.

    torchrun --standalone --nproc-per-node 3 tests/ddp_stream_check.py RELEASE PREPARED OUT

Each rank reads 2 epochs through a DataLoader with 2 persistent workers and all-reduces once per batch, as
DDP's gradient sync does, so a rank with more batches than another blocks for ever (the caller's timeout
catches it). A third path reads the shards without resampling and without the all-reduce (ranks may then
differ by a shard): every sample exactly once per epoch. A fourth mixes the synthetic positives with PREPARED's
real negatives (`mixed_stream`). A fifth reads all but the last shard by index (`random_access`) through
`ExactEpochSampler`, with the all-reduce: exact, equal epochs where the ranks do not divide the length.
Writes OUT/rank<R>.json: path → epochs → sample ids.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
import torch.distributed as dist

from cxr_dataset.exact_epoch import ExactEpochSampler
from cxr_dataset.mixing import MixConfig, mixed_stream
from cxr_dataset.streaming import StreamConfig, collate, hf_dataset, random_access, wds_pipeline


def ids(rows: list[dict]) -> list[str]:
    return [r["id"] for r in rows]


def keys(batch: dict) -> list[str]:
    return batch["key"]


def read(
    dataset, to_ids, epochs: int = 2, batch_size: int | None = 2, sync: bool = True, sampler=None
) -> list[list[str]]:
    collate_fn = to_ids if sampler is None else lambda samples: to_ids(collate(samples))
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=batch_size, num_workers=2, persistent_workers=True, collate_fn=collate_fn, sampler=sampler
    )
    seen = []
    for epoch in range(epochs):
        (sampler if sampler is not None else dataset).set_epoch(epoch)
        seen.append([])
        for batch in loader:
            if sync:
                dist.all_reduce(torch.ones(1))  # a DDP step: every rank must take part
            seen[-1] += batch
    return seen


class AllButLastShard(torch.utils.data.Dataset):
    """A wids dataset without its last shard, its shard `lengths` kept (the sampler's shard logic runs)."""

    def __init__(self, dataset) -> None:
        self.dataset, self.lengths = dataset, list(dataset.lengths[:-1])

    def __len__(self) -> int:
        return sum(self.lengths)

    def __getitem__(self, index: int) -> dict:
        return self.dataset[index]


def mixed_keys(samples: list[dict]) -> list[str]:
    return [("synthetic:" if s["synthetic"] else "real:") + s["key"] for s in samples]


def main(release: str, prepared: str, out: str) -> None:
    dist.init_process_group("gloo")
    result = {
        "hf": read(hf_dataset(release, StreamConfig(streaming=True, shuffle=8, seed=0)), ids),
        "wds": read(
            wds_pipeline(
                release, StreamConfig(batch_size=2, num_workers=2, resampled=True, samples_per_rank=8, shuffle=8)
            ),
            keys,
            batch_size=None,
        ),
        "wds_exact": read(
            wds_pipeline(release, StreamConfig(batch_size=2, num_workers=2, allow_uneven_ranks=True)),
            keys,
            batch_size=None,
            sync=False,
        ),
        "mixed": read(mixed_stream(release, prepared, MixConfig(samples_per_rank=10)), mixed_keys),
    }
    by_index = AllButLastShard(random_access(Path(release)))  # 3 ranks do not divide it: padding
    result["sampler"] = read(by_index, keys, batch_size=2, sampler=ExactEpochSampler(by_index, seed=0))
    Path(out, f"rank{dist.get_rank()}.json").write_text(json.dumps(result))
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    main(*sys.argv[1:4])
