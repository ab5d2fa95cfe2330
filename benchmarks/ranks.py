"""Rows per rank when a release streams through `hf_dataset` (`StreamConfig(streaming=True)`) under DDP, measured.

    python benchmarks/ranks.py [--world-sizes 2,3,4,8]

Writes parquet files with the row counts of the full release (G_NC 16,537 and G_PC 4,758 rows; an id column
only) in two layouts: the old one (2,000 rows per file, the last one short: 9 + 3 files) and the current one
(`builders.partition.equal_parts`: 16 + 8 equal files). Each rank's stream of config `all` is counted after
`split_dataset_by_node` alone, and through `EqualRankStream` as `hf_dataset` returns it by default.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from builders.partition import equal_parts
from cxr_dataset.streaming import EqualRankStream

COUNTS = {"g_nc": 16_537, "g_pc": 4_758}


def old_layout(n: int, per_file: int = 2000) -> list[range]:
    return [range(i, min(i + per_file, n)) for i in range(0, n, per_file)]


def write(folder: Path, parts: dict[str, list[range]]) -> list[str]:
    files, start = [], 0
    for config, ranges in parts.items():
        for i, rows in enumerate(ranges):
            path = folder / config / f"train-{i:05d}-of-{len(ranges):05d}.parquet"
            path.parent.mkdir(parents=True, exist_ok=True)
            pq.write_table(pa.table({"id": [start + r for r in rows]}), path)
            files.append(str(path))
        start += 1_000_000
    return files


def per_rank(files: list[str], world: int, equal: bool) -> list[int]:
    import datasets
    from datasets.distributed import split_dataset_by_node

    total = sum(COUNTS.values())
    counts = []
    for rank in range(world):
        ds = datasets.load_dataset("parquet", data_files={"train": files}, split="train", streaming=True)
        ds = split_dataset_by_node(ds, rank=rank, world_size=world)
        counts.append(sum(1 for _ in (EqualRankStream(ds, total // world) if equal else ds)))
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--world-sizes", default="2,3,4,8")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        old = write(Path(tmp, "old"), {c: old_layout(n) for c, n in COUNTS.items()})
        new = write(Path(tmp, "new"), {c: equal_parts(range(n), 2000) for c, n in COUNTS.items()})
        print(f"files: old {len(old)}, new {len(new)}; {sum(COUNTS.values())} rows in config 'all'")
        print("world | old files, split only | new files, split only | new files, hf_dataset (equalised)")
        for world in map(int, args.world_sizes.split(",")):
            rows = [per_rank(old, world, False), per_rank(new, world, False), per_rank(new, world, True)]
            spread = [max(r) - min(r) for r in rows]
            print(f"{world:5d} | " + " | ".join(f"{r} (spread {s})" for r, s in zip(rows, spread, strict=True)))
            assert len(set(rows[2])) == 1, "equalised ranks differ"


if __name__ == "__main__":
    main()
