"""Where shards live: a release folder's wids index, a Hub repository's (as ``hf://`` URLs), a brace pattern or a
list of URLs; and opening one shard as a byte stream, whatever its scheme."""

from __future__ import annotations

import json
from pathlib import Path
from typing import BinaryIO

from cxr_dataset.checksums import is_safe_relative
from cxr_dataset.errors import ReleaseError
from cxr_dataset.release_folder import WDS_DIR, read_release, shard_index_name


def shard_urls(source: str | Path | list[str], config: str = "all", split: str = "train") -> list[str]:
    """Shard URLs from a release folder (its wids index), a brace pattern (``s3://b/g_nc-train-{000000..000007}.tar``)
    or a list of URLs (local paths, ``pipe:`` commands, fsspec URLs)."""
    if isinstance(source, list):
        return [str(u) for u in source]
    if Path(source).is_dir():
        return [str(p) for p in read_release(source).shard_paths(config, split)]
    import braceexpand

    return list(braceexpand.braceexpand(str(source)))


def hub_shard_urls(repo_id: str, config: str = "all", split: str = "train", revision: str | None = None) -> list[str]:
    """A Hub dataset repository's shards as ``hf://`` URLs, from its wids index (read through fsspec)."""
    root = f"hf://datasets/{repo_id}" + (f"@{revision}" if revision else "") + f"/{WDS_DIR}"
    index_url = f"{root}/{shard_index_name(config, split)}"
    try:
        with open_shard(index_url) as f:
            shards = json.load(f)["shardlist"]
        urls = [str(shard["url"]) for shard in shards]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ReleaseError(f"{index_url}: no shard index to stream from ({type(e).__name__}: {e})") from None
    unsafe = [u for u in urls if not is_safe_relative(u)]
    if unsafe:
        raise ReleaseError(f"{index_url}: shard urls must be files of {WDS_DIR}/, got {unsafe[0]!r}")
    return [f"{root}/{url}" for url in urls]


def open_shard(url: str) -> BinaryIO:
    """A shard as a binary stream: a local path (or ``file://``), ``pipe:`` and ``http(s)://`` through
    webdataset's `gopen`, and any other ``scheme://`` through fsspec (``s3://`` with s3fs, ``gs://`` with gcsfs,
    ``hf://datasets/OWNER/NAME/...`` with huggingface_hub, ``memory://``)."""
    scheme = url.split("://", 1)[0] if "://" in url else ""
    if url.startswith("pipe:") or scheme in ("http", "https"):
        import webdataset as wds

        return wds.gopen(url)
    if scheme in ("", "file"):
        return open(url.removeprefix("file://"), "rb")
    import fsspec

    try:
        return fsspec.open(url, "rb").open()
    except ImportError as e:
        raise ReleaseError(f"{url}: no filesystem for {scheme}:// is installed ({e})") from None
    except ValueError as e:
        raise ReleaseError(f"{url}: fsspec knows no {scheme}:// filesystem ({e})") from None
