"""Streaming a release into a trainer: WebDataset pipelines for one GPU or many, HF datasets, random access.

    from cxr_dataset.streaming import StreamConfig, wds_pipeline
    pipeline = wds_pipeline("release/covid-synthetic-cxr", StreamConfig(batch_size=32, num_workers=4))
    loader = torch.utils.data.DataLoader(pipeline, batch_size=None, num_workers=4)

Without resampling every sample of the split is read exactly once per epoch across all ranks and workers,
which needs at least ranks × workers shards (an error says so otherwise); call ``pipeline.set_epoch(e)``
before each epoch, as with DistributedSampler, to reshuffle. Under DDP use ``StreamConfig(resampled=True,
samples_per_rank=N)``: every rank then yields the same number of samples, so no rank waits for another at the end
of an epoch. `hf_dataset` with ``streaming=True`` equalises ranks the same way from the card's row count;
`exact_epoch.ExactEpochSampler` gives exact, equal epochs by index. Both resume mid-epoch through torchdata's
`StatefulDataLoader` (the pipeline's state is (epoch, samples yielded) per worker; every draw is seeded by seed,
rank, worker and epoch).
"""

from __future__ import annotations

import copy
import io
import json
import math
import multiprocessing
import os
import random
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cxr_dataset.errors import ConfigError, ReleaseError
from cxr_dataset.loading import load_release
from cxr_dataset.release_folder import read_release
from cxr_dataset.shard_sources import open_shard, shard_urls
from cxr_dataset.stream_config import StreamConfig
from cxr_dataset.tarstream import iter_samples


def dist_info() -> tuple[int, int]:
    """(rank, world size) from torch.distributed when initialised, else torchrun's environment, else (0, 1)."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))


def decode_sample(sample: dict[str, Any]) -> dict[str, Any]:
    """Raw tar members → ``{"image": uint8 tensor 1×H×W, "label": int, "meta": provenance dict, "key": str}``."""
    return {
        "image": decode_gray(sample["png"]),
        "label": int(sample["cls"]),
        "meta": json.loads(sample["json"]),
        "key": sample["__key__"],
    }


def decode_gray(data: bytes) -> torch.Tensor:
    """PNG bytes → uint8 tensor 1×H×W. 8-bit grayscale PNGs (what a release stores) go through libpng in
    torchvision, ~25% faster than PIL; any other image gets PIL's conversion to L (ITU-R 601-2 luma)."""
    if data[12:16] == b"IHDR" and data[24:26] == b"\x08\x00":  # bit depth 8, colour type 0 (grayscale)
        image = _decode_png(data)
        if image is not None and image.shape[0] == 1:
            return image
    from PIL import Image

    with Image.open(io.BytesIO(data)) as img:
        pixels = np.array(img if img.mode == "L" else img.convert("L"))  # one copy, writable
    return torch.from_numpy(pixels).unsqueeze(0)


def _decode_png(data: bytes) -> torch.Tensor | None:
    """torchvision's libpng decoder (deprecated there in favour of TorchCodec); None where it is gone or
    cannot read the data, so that PIL decides and names the problem."""
    try:
        from torchvision.io import decode_png
    except ImportError:
        return None
    try:
        return decode_png(torch.frombuffer(bytearray(data), dtype=torch.uint8))
    except RuntimeError:
        return None


def _ranks(cfg: StreamConfig) -> tuple[int, int]:
    """(rank, world size): as `cfg` gives them, else `dist_info()`."""
    detected = dist_info()
    return (detected[0] if cfg.rank is None else cfg.rank, detected[1] if cfg.world_size is None else cfg.world_size)


def wds_pipeline(
    source: str | Path | list[str],
    cfg: StreamConfig | None = None,
    *,
    transform: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
):
    """A `webdataset.DataPipeline` over a release's shards (see the module docstring).

    Args:
        source: release folder, brace pattern or URL list (`shard_urls`).
        cfg: config, split, batching, shuffling, resampling, workers and ranks (`StreamConfig`).
        transform: applied to each decoded sample dict.

    Raises:
        ConfigError: fewer shards than ranks × workers without resampling, or resampling without an epoch length.
    """
    import torchvision.io  # noqa: F401 (`decode_gray`'s decoder, imported here once rather than in each worker)
    import webdataset as wds

    cfg = cfg or StreamConfig()
    batch_size, seed, resampled, num_workers = cfg.batch_size, cfg.seed, cfg.resampled, cfg.num_workers
    shuffle = 1000 if cfg.shuffle is None else cfg.shuffle
    samples_per_rank = None if cfg.samples_per_rank == "auto" else cfg.samples_per_rank
    urls = shard_urls(source, cfg.config, cfg.split)
    if not urls:
        raise ReleaseError(f"{source}: no shards for {cfg.config}/{cfg.split}")
    rank, world_size = _ranks(cfg)
    readers = world_size * max(1, num_workers)
    if resampled and not samples_per_rank:
        raise ConfigError("resampled=True streams for ever: give samples_per_rank to set the epoch length")
    if not resampled and world_size > 1 and not cfg.allow_uneven_ranks:
        _check_even_ranks(source, cfg, readers)
    if not resampled and len(urls) < readers:
        raise ConfigError(
            f"{len(urls)} shards cannot feed {world_size} ranks × {max(1, num_workers)} workers = {readers} readers "
            "without some reading nothing (and DDP hanging); use resampled=True with samples_per_rank, "
            "fewer workers, or more shards"
        )

    epoch = SharedEpoch()
    if resampled:
        stages: list[Any] = [_ResampledShards(urls, seed, rank, epoch)]
    else:
        stages = [wds.SimpleShardList(urls), _ShardSplit(rank, world_size, seed if shuffle else None, epoch)]
    stages.append(_read_shards)
    if shuffle:
        stages.append(_SampleShuffle(shuffle, seed, rank, epoch))
    stages.append(wds.map(decode_sample))
    if transform is not None:
        stages.append(wds.map(transform))
    if batch_size:
        stages.append(wds.batched(batch_size, collation_fn=collate, partial=not resampled))
    limit = None
    if resampled:
        per_worker = math.ceil(samples_per_rank / max(1, num_workers))
        limit = math.ceil(per_worker / batch_size) if batch_size else per_worker
    position = _Position(epoch, limit)
    pipeline = wds.DataPipeline(*stages, position)
    pipeline.set_epoch = epoch.set  # like DistributedSampler.set_epoch: call it before each epoch
    pipeline.state_dict, pipeline.load_state_dict = position.state_dict, position.load_state_dict
    return pipeline


def _check_even_ranks(source: str | Path | list[str], cfg: StreamConfig, readers: int) -> None:
    """`ConfigError` when a release's shards would give DDP ranks unequal sample counts (the rank with fewer
    finishes first and the others wait for ever); a warning when the shards' sizes are unknown (URLs)."""
    if isinstance(source, list) or not Path(source).is_dir():
        warnings.warn(
            "streaming shard URLs to several ranks without resampling: their sizes are unknown here, so ranks may "
            "read unequal sample counts and DDP hang; prefer StreamConfig(resampled=True, samples_per_rank=N)",
            RuntimeWarning,
            stacklevel=3,
        )
        return
    sizes = [int(shard["nsamples"]) for shard in read_release(source).shard_list(cfg.config, cfg.split)]
    if len(set(sizes)) > 1 or len(sizes) % readers:
        raise ConfigError(
            f"{source}: {len(sizes)} shards of {min(sizes)}-{max(sizes)} samples cannot give {readers} readers "
            "(ranks × workers) equal sample counts without resampling, and DDP hangs when one rank runs out; use "
            "StreamConfig(resampled=True, samples_per_rank=N), or allow_uneven_ranks=True if the trainer copes "
            "(e.g. DDP's join())"
        )


def collate(samples: list[dict[str, Any]]) -> dict[str, Any]:
    """Stack images and labels; keep provenance and keys as lists."""
    return {
        "image": torch.stack([s["image"] for s in samples]),
        "label": torch.tensor([s["label"] for s in samples]),
        "meta": [s["meta"] for s in samples],
        "key": [s["key"] for s in samples],
    }


def _read_shards(src: Iterator[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """Open each shard URL (`open_shard`) and yield its samples."""
    for shard in src:
        with open_shard(shard["url"]) as stream:
            yield from iter_samples(stream, shard["url"])


class SharedEpoch:
    """The epoch number the shuffles are seeded with, in shared memory: persistent DataLoader workers, which
    keep their copy of the pipeline across epochs, see each `set_epoch` too."""

    def __init__(self) -> None:
        self._shared = multiprocessing.RawValue("q", 0)

    @property
    def value(self) -> int:
        return self._shared.value

    def set(self, epoch: int) -> None:
        self._shared.value = epoch


class _ResampledShards(torch.utils.data.IterableDataset):
    """Shards drawn with replacement for ever, seeded by (seed, rank, worker, epoch): a resumed epoch draws
    the same shards as the original."""

    def __init__(self, urls: list[str], seed: int, rank: int, epoch: SharedEpoch) -> None:
        self.urls, self.seed, self.rank, self.epoch = urls, seed, rank, epoch

    def __iter__(self) -> Iterator[dict[str, Any]]:
        info = torch.utils.data.get_worker_info()
        worker = info.id if info else 0
        rng = random.Random(hash((self.seed, self.rank, worker, self.epoch.value, 1)))  # ints hash alike everywhere
        while True:
            yield {"url": rng.choice(self.urls)}


class _Position:
    """The last stage: counts what this worker has yielded this epoch, ends a resampled epoch at `limit`, and
    after `load_state_dict` skips what was yielded before, so a `StatefulDataLoader` resumes mid-epoch."""

    def __init__(self, epoch: SharedEpoch, limit: int | None) -> None:
        self.epoch, self.limit, self.yielded, self.skip = epoch, limit, 0, 0

    def __call__(self, src: Iterator[Any]) -> Iterator[Any]:
        skip, self.skip, self.yielded = self.skip, 0, 0
        for item in src:
            if self.limit is not None and self.yielded >= self.limit:
                return
            self.yielded += 1
            if self.yielded > skip:
                yield item

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.epoch.value, "yielded": self.yielded}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.epoch.set(int(state["epoch"]))
        self.skip = int(state["yielded"])


class _ShardSplit:
    """Shuffle the shard list the same way on every rank (seed, epoch), then keep this rank's and this
    worker's shards: every (world × workers)-th, from its own offset."""

    def __init__(self, rank: int, world_size: int, seed: int | None, epoch: SharedEpoch) -> None:
        self.rank, self.world_size, self.seed, self.epoch = rank, world_size, seed, epoch

    def __call__(self, src: Iterator[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        shards = list(src)
        if self.seed is not None:
            random.Random(self.seed * 1_000_003 + self.epoch.value).shuffle(shards)
        info = torch.utils.data.get_worker_info()
        worker, workers = (info.id, info.num_workers) if info else (0, 1)
        reader, readers = self.rank * workers + worker, self.world_size * workers
        mine = shards[reader::readers]
        if not mine:
            raise ConfigError(f"rank {self.rank} worker {worker}: no shards left for {readers} readers")
        yield from mine


class _SampleShuffle:
    """A shuffle buffer seeded by (seed, rank, worker, epoch)."""

    def __init__(self, size: int, seed: int, rank: int, epoch: SharedEpoch) -> None:
        self.size, self.seed, self.rank, self.epoch = size, seed, rank, epoch

    def __call__(self, src: Iterator[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        info = torch.utils.data.get_worker_info()
        rng = random.Random(hash((self.seed, self.rank, info.id if info else 0, self.epoch.value)))
        buffer: list[dict[str, Any]] = []
        for sample in src:
            if len(buffer) < self.size:
                buffer.append(sample)
                continue
            i = rng.randrange(len(buffer))
            buffer[i], sample = sample, buffer[i]
            yield sample
        rng.shuffle(buffer)
        yield from buffer


def hf_dataset(source: str | Path, cfg: StreamConfig | None = None):
    """`datasets.load_dataset` on a release folder or Hub id (at `cfg.revision`: a tag, branch or commit),
    formatted for torch.

    With `cfg.streaming` under several ranks, the stream is split by node (`split_dataset_by_node` with
    `cfg.strategy`: whole parquet files per rank when they divide evenly, else every world_size-th row; no
    duplicates either way) and, unless `cfg.samples_per_rank` is None, wrapped in `EqualRankStream` so that every
    rank yields the same number of rows and no DDP rank waits for ever at the end of an epoch. "auto" takes
    the split's row count from the card, divided by the world size (rounded down). `cfg.shuffle` > 0 shuffles
    the stream (file order and a buffer of that many rows) with `cfg.seed`, the same on every rank; call
    `set_epoch(e)` before each epoch to reshuffle. Mid-epoch resume through torchdata's
    `StatefulDataLoader` is exact without shuffling (datasets does not save a shuffle buffer's content, and
    with DataLoader workers cannot restore a shuffled stream's state at all).
    """
    from datasets.distributed import split_dataset_by_node

    cfg = cfg or StreamConfig()
    config, split, shuffle, seed = cfg.config, cfg.split, cfg.shuffle or 0, cfg.seed
    ds = load_release(source, config, split=split, streaming=cfg.streaming, revision=cfg.revision)
    ds = ds.with_format("torch")
    if not cfg.streaming:
        return ds.shuffle(seed=seed) if shuffle else ds
    if shuffle:
        ds = ds.shuffle(seed=seed, buffer_size=shuffle)
    rank, world_size = _ranks(cfg)
    if world_size == 1:
        return ds
    ds = split_dataset_by_node(ds, rank=rank, world_size=world_size, strategy=cfg.strategy)
    samples_per_rank = cfg.samples_per_rank
    if samples_per_rank is None:
        return ds
    if samples_per_rank == "auto":
        splits = ds.info.splits or {}
        if split not in splits or not splits[split].num_examples:
            raise ConfigError(
                f"{source}: the card gives no row count for {config}/{split}; pass samples_per_rank=N "
                "(or None to accept unequal ranks)"
            )
        samples_per_rank = splits[split].num_examples // world_size
    return EqualRankStream(ds, int(samples_per_rank))


class EqualRankStream(torch.utils.data.IterableDataset):
    """Exactly `samples_per_rank` rows per rank and epoch from a rank's share of an HF stream.

    The quota is divided evenly among DataLoader workers; a worker whose share runs short starts its share
    again (as DistributedSampler pads by repeating), one that has more stops at its quota. Workers' shares
    are whole parquet files, so a few rows per epoch may repeat while as many wait for the next epoch.
    `set_epoch` reaches the wrapped dataset, whose epoch lives in shared memory (persistent workers see it).
    `state_dict`/`load_state_dict` let torchdata's `StatefulDataLoader` resume mid-epoch.
    """

    def __init__(self, dataset, samples_per_rank: int) -> None:
        if samples_per_rank < 1:
            raise ConfigError(f"samples_per_rank must be at least 1, got {samples_per_rank}")
        self.dataset, self.samples_per_rank = dataset, samples_per_rank
        self._done, self._resume, self._reading = 0, None, None

    def set_epoch(self, epoch: int) -> None:
        self.dataset.set_epoch(epoch)

    def state_dict(self) -> dict[str, Any]:
        """Rows given so far this epoch and the wrapped stream's position (in this worker; None before it
        has started reading, when the stream's state is not yet this worker's)."""
        return {"done": self._done, "dataset": None if self._reading is None else self._reading.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._resume = state

    def __iter__(self) -> Iterator[dict[str, Any]]:
        info = torch.utils.data.get_worker_info()
        worker, workers = (info.id, info.num_workers) if info else (0, 1)
        quota = self.samples_per_rank // workers + (worker < self.samples_per_rank % workers)
        self._done, fresh, self._reading = 0, True, self.dataset
        if self._resume is not None and self._resume["dataset"] is not None:  # continue the saved pass
            self._done, fresh = self._resume["done"], False
            self._reading = copy.deepcopy(self.dataset)  # the saved position applies to this pass only
            self._reading.load_state_dict(self._resume["dataset"])
        self._resume = None
        while self._done < quota:
            before = self._done
            for row in self._reading:
                self._done += 1
                yield row
                if self._done == quota:
                    return
            if self._done == before and fresh:
                raise ConfigError(
                    f"worker {worker} of {workers} has no rows of this rank's share to read; "
                    "use fewer DataLoader workers (at most the files per rank) or a release with more files"
                )
            fresh, self._reading = True, self.dataset


def random_access(release: Path, config: str = "all", split: str = "train"):
    """Index any sample of a release without reading the others, through its wids index (`wids.ShardListDataset`).

    ``ds[i]`` is decoded like the pipeline's samples: ``{"image", "label", "meta", "key"}``.
    """
    import wids

    folder = read_release(release)
    folder.shard_list(config, split)  # checked before wids opens anything
    return wids.ShardListDataset(str(folder.shard_index_path(config, split)), transformations=[_from_wids])


def _from_wids(sample: dict[str, Any]) -> dict[str, Any]:
    members = {ext: sample[f".{ext}"].getvalue() for ext in ("png", "cls", "json")}
    return decode_sample({**members, "__key__": sample["__key__"]})
