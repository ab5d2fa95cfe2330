"""Loading a release: through Hugging Face `datasets` (parquet) or `webdataset` (tar shards)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

from cxr_dataset.errors import ReleaseError
from cxr_dataset.schema import CONFIGS

if TYPE_CHECKING:
    import webdataset


def load_release(release: Path | str, config: str = "all", *, streaming: bool = False):
    """`datasets.load_dataset` on a local release folder or a Hub id, for one config.

    Example:
        >>> ds = load_release("release/covid-synthetic-cxr", "g_nc")  # doctest: +SKIP
        >>> ds["train"].features["label"].names
        ['normal', 'pneumonia', 'covid']
    """
    import datasets

    if config not in CONFIGS:
        raise ReleaseError(f"config must be one of {list(CONFIGS)}, got {config!r}")
    return datasets.load_dataset(str(release), config, streaming=streaming)


def shard_paths(release: Path, config: str = "all", split: str = "train") -> list[Path]:
    """The WebDataset shards of one config and split, in order, as its wids index lists them."""
    index = Path(release) / "webdataset" / f"{config}-{split}-shardindex.json"
    if not index.is_file():
        raise ReleaseError(f"{index}: no shard index; is {release} a release built by `cxrds build`?")
    return [index.parent / shard["url"] for shard in json.loads(index.read_text())["shardlist"]]


def wds_release(release: Path, config: str = "all", split: str = "train") -> webdataset.WebDataset:
    """A `webdataset.WebDataset` over a release's shards, decoding PNGs to grayscale PIL and JSON to dicts."""
    import webdataset as wds

    urls = [str(p) for p in shard_paths(release, config, split)]
    # "pill" decodes to PIL images in mode L: X-rays stay one-channel ("pil" would give RGB).
    return wds.WebDataset(urls, shardshuffle=False, empty_check=False).decode("pill")
