"""WebDataset shards: ``webdataset/<config>-<split>-NNNNNN.tar`` plus a wids ``shardindex.json``.

Tar headers are fixed (mtime 0, uid/gid 0, owner 'cxrds', mode 0444) and members sorted, so the same
rows always give the same bytes. Shard counts are multiples of 8 where there are enough samples, so that
`split_by_node` and `split_by_worker` divide them evenly.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from cxr_dataset.fileio import atomic_open, atomic_write_text
from cxr_dataset.schema import encode_wds_sample

SAMPLES_PER_SHARD = 1000
SHARD_MULTIPLE = 8


def shard_count(n: int, per_shard: int = SAMPLES_PER_SHARD) -> int:
    """Shards for `n` samples: about `per_shard` each, rounded up to a multiple of 8 when n allows."""
    wanted = max(1, math.ceil(n / per_shard))
    if n >= SHARD_MULTIPLE:
        wanted = min(math.ceil(wanted / SHARD_MULTIPLE) * SHARD_MULTIPLE, n // SHARD_MULTIPLE * SHARD_MULTIPLE)
    return wanted


def shard_name(config: str, split: str, index: int) -> str:
    return f"{config}-{split}-{index:06d}.tar"


def write_wds_split(
    folder: Path,
    config: str,
    split: str,
    rows: Sequence[dict[str, Any]],
    read_image: Callable[[dict[str, Any]], bytes],
    *,
    per_shard: int = SAMPLES_PER_SHARD,
) -> list[Path]:
    """Write `rows` into evenly filled shards and their wids index; returns the shard paths."""
    from webdataset import TarWriter

    count = shard_count(len(rows), per_shard)
    paths, index = [], []
    for i in range(count):
        part = rows[i * len(rows) // count : (i + 1) * len(rows) // count]
        path = folder / shard_name(config, split, i)
        with atomic_open(path) as f, TarWriter(f, mtime=0, user="cxrds", group="cxrds", encoder=False) as tar:
            for row in part:
                tar.write(encode_wds_sample(row, read_image(row)))
        paths.append(path)
        index.append({"url": path.name, "nsamples": len(part)})
    shard_index = {
        "__kind__": "wids-shard-index-v1",
        "wids_version": 1,
        "name": f"{config}-{split}",
        "shardlist": index,
    }
    atomic_write_text(folder / f"{config}-{split}-shardindex.json", json.dumps(shard_index, indent=2) + "\n")
    return paths
