"""`StreamConfig`: the options of `streaming.wds_pipeline` and `streaming.hf_dataset`, loadable from TOML."""

from __future__ import annotations

from dataclasses import dataclass

from cxr_dataset.errors import ConfigError
from cxr_dataset.release_folder import check_config


@dataclass(frozen=True, kw_only=True)
class StreamConfig:
    """How `wds_pipeline` and `hf_dataset` stream a release; checked when made (from code or a TOML file)."""

    config: str = "all"  # the release's config: all, g_nc or g_pc
    split: str = "train"  # the split streamed
    batch_size: int | None = None  # WebDataset: collate into batches (images N×1×H×W); None yields single samples
    shuffle: int | None = None  # shuffle buffer (0: off); None: 1000 samples for WebDataset, off for HF datasets
    seed: int = 0  # seeds the shuffles (WebDataset's shard order changes each epoch, deterministically)
    resampled: bool = False  # WebDataset: draw shards with replacement for ever; samples_per_rank sets the epoch
    samples_per_rank: int | str | None = "auto"  # rows per rank and epoch; "auto": HF from the card, WebDataset none
    num_workers: int = 0  # WebDataset: the DataLoader's workers, to check there are enough shards
    rank: int | None = None  # None: `dist_info()`
    world_size: int | None = None  # None: `dist_info()`
    streaming: bool = False  # HF: stream rather than download and memory-map
    revision: str | None = None  # HF: a tag, branch or commit of a Hub dataset
    strategy: str = "auto"  # HF, streaming under several ranks: `split_dataset_by_node`'s strategy
    allow_uneven_ranks: bool = False  # WebDataset without resampling: let ranks read unequal sample counts (the
    # trainer copes, e.g. DDP's join()); otherwise a release whose shards would give them so is refused

    def __post_init__(self) -> None:
        check_config(self.config)
        per_rank = self.samples_per_rank
        if per_rank not in ("auto", None) and not (type(per_rank) is int and per_rank >= 1):
            raise ConfigError(f'samples_per_rank must be a number >= 1, "auto" or None, got {per_rank!r}')
        for name in ("shuffle", "batch_size"):
            if getattr(self, name) is not None and getattr(self, name) < 0:
                raise ConfigError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.num_workers < 0:
            raise ConfigError(f"num_workers must be >= 0, got {self.num_workers}")
