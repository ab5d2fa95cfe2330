"""`open_release`: the one way in to a release, whatever a trainer wants from it.

    from cxr_dataset import open_release
    release = open_release("cxrds-demo/release/covid-synthetic-cxr")  # a release folder, or a Hub id OWNER/NAME
    ds = release.hf("g_nc")                                           # datasets.load_dataset
    pipeline = release.webdataset(StreamConfig(batch_size=32))        # WebDataset shards, one GPU or many

Each method is a thin door onto `loading` and `streaming`, which hold the work; a local folder is checked once,
when opened.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cxr_dataset.errors import ReleaseError
from cxr_dataset.loading import local_release
from cxr_dataset.release_folder import Release
from cxr_dataset.stream_config import StreamConfig


@dataclass(frozen=True)
class OpenedRelease:
    """A release to read: `source` is what `datasets.load_dataset` is given (a folder or a Hub id); `folder` is
    the checked local release, None for a Hub id."""

    source: str
    folder: Release | None

    def hf(
        self, config: str = "all", *, split: str | None = None, streaming: bool = False, revision: str | None = None
    ):
        """`datasets.load_dataset` on the release, for one config (all, g_nc or g_pc)."""
        from cxr_dataset.loading import load_release

        return load_release(self.source, config, split=split, streaming=streaming, revision=revision)

    def torch(self, cfg: StreamConfig | None = None):
        """HF `datasets` formatted for torch; streamed under DDP, split by node with equal rows per rank."""
        from cxr_dataset.streaming import hf_dataset

        return hf_dataset(self.source, cfg)

    def webdataset(
        self, cfg: StreamConfig | None = None, *, transform: Callable[[dict[str, Any]], dict[str, Any]] | None = None
    ):
        """A WebDataset pipeline of decoded tensors over the shards (`streaming.wds_pipeline`); from the Hub, the
        shards stream as ``hf://`` URLs (at `cfg.revision`)."""
        from cxr_dataset.streaming import wds_pipeline

        if self.folder is None:
            cfg = cfg or StreamConfig()
            return wds_pipeline(self.shard_urls(cfg.config, cfg.split, cfg.revision), cfg, transform=transform)
        return wds_pipeline(self.folder.root, cfg, transform=transform)  # the folder: its shard sizes are checked

    def shard_urls(self, config: str = "all", split: str = "train", revision: str | None = None) -> list[str]:
        """The shards of one config and split: local paths, or ``hf://`` URLs (at `revision`) for a Hub id."""
        from cxr_dataset.shard_sources import hub_shard_urls

        if self.folder is None:
            return hub_shard_urls(self.source, config, split, revision)
        return [str(p) for p in self.folder.shard_paths(config, split)]

    def samples(self, config: str = "all", split: str = "train"):
        """A plain `webdataset.WebDataset`: grayscale PIL images and provenance dicts, in shard order."""
        from cxr_dataset.loading import wds_release

        return wds_release(self._local("reading shards").root, config, split)

    def random_access(self, config: str = "all", split: str = "train"):
        """Any sample by index, through the wids shard index (`streaming.random_access`)."""
        from cxr_dataset.streaming import random_access

        return random_access(self._local("random access").root, config, split)

    def _local(self, what: str) -> Release:
        if self.folder is None:
            raise ReleaseError(
                f"{self.source}: {what} needs a local release folder (clone the dataset repository, or give "
                "`streaming.wds_pipeline` the shard URLs)"
            )
        return self.folder


def open_release(source: Path | str) -> OpenedRelease:
    """Open a release folder (checked now: an error names a missing or broken one) or a Hub id OWNER/NAME."""
    folder = local_release(source)
    return OpenedRelease(str(source) if folder is None else str(folder.root), folder)
