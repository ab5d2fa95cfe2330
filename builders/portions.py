"""A build's rows in portions, one per process: each process writes both formats' files for its rows of every
config, reading and checking each image once.

A portion of a config is a run of rows that starts and ends where a parquet file and a shard both do (both are
cut into a multiple of 8 equal parts, so a config's halves, quarters and eighths are such places), so each
process makes whole files and the release is the same bytes however many processes portion its rows.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from builders.hf_parquet import ParquetFiles
from builders.partition import part_bounds, part_sizes
from builders.webdataset import TarShards
from cxr_dataset.release_folder import WDS_DIR
from cxr_dataset.synthetic_folder import verified_images


@dataclass(frozen=True)
class Portion:
    """The rows of `config` (of `count` in the release) that one process writes: whole files of both formats."""

    config: str
    count: int
    rows: range

    def files(self, per_file: int) -> range:
        """The indexes of the files of `per_file` rows (as `part_sizes` cuts them) that hold exactly `rows`."""
        bounds = part_bounds(part_sizes(self.count, per_file))
        return range(bounds.index(self.rows.start), bounds.index(self.rows.stop))


def split_portions(counts: dict[str, int], rows_per_file: int, per_shard: int, processes: int) -> list[list[Portion]]:
    """Each config cut into `processes` runs of rows where both formats' files end, nearest to equal runs
    (equal to a row when `processes` divides 8 and the config has 8 rows or more, as both formats then have a
    multiple of 8 files): portion `i` holds the `i`-th run of every config (a run may be empty)."""
    portions: list[list[Portion]] = [[] for _ in range(processes)]
    for config, count in counts.items():
        common = set(part_bounds(part_sizes(count, rows_per_file))) & set(part_bounds(part_sizes(count, per_shard)))
        cuts = [min(sorted(common), key=lambda c: abs(c - i * count / processes)) for i in range(processes + 1)]
        for portion, start, stop in zip(portions, cuts, cuts[1:], strict=False):
            portion.append(Portion(config, count, range(start, stop)))
    return portions


@dataclass
class Written:
    """What a process wrote, by config: parquet files (path in the release → SHA-256), their arrow size in
    bytes, and the wids entries of its shards in order."""

    parquet: dict[str, dict[str, str]] = field(default_factory=dict)
    num_bytes: dict[str, int] = field(default_factory=dict)
    shards: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def then(self, later: Written) -> Written:
        """Both processes' files, this one's rows first in each config."""
        configs = dict.fromkeys([*self.parquet, *later.parquet])
        return Written(
            {c: self.parquet.get(c, {}) | later.parquet.get(c, {}) for c in configs},
            {c: self.num_bytes.get(c, 0) + later.num_bytes.get(c, 0) for c in configs},
            {c: self.shards.get(c, []) + later.shards.get(c, []) for c in configs},
        )


def write_portions(
    root: Path,
    split: str,
    parts: dict[str, list[dict[str, Any]]],
    portions: list[Portion],
    *,
    rows_per_file: int,
    per_shard: int,
    on_image: Callable[[int], None] = lambda done: None,
) -> Written:
    """Write the parquet files and shards of `portions` of each config's rows (`parts`) into the release folder
    `root`, each image read once and checked against its provenance."""
    written, done = Written(), 0
    for portion in portions:
        with (
            ParquetFiles(
                root,
                portion.config,
                split,
                portion.count,
                parts=portion.files(rows_per_file),
                rows_per_file=rows_per_file,
            ) as parquet,
            TarShards(
                root / WDS_DIR,
                portion.config,
                split,
                portion.count,
                parts=portion.files(per_shard),
                per_shard=per_shard,
            ) as tars,
        ):
            rows = parts[portion.config][portion.rows.start : portion.rows.stop]
            for row, data in verified_images(rows, lambda n, before=done: on_image(before + n)):
                parquet.add(row, data)
                tars.add(row, data)
        done += len(rows)
        written.parquet[portion.config] = {p.relative_to(root).as_posix(): d for p, d in parquet.digests.items()}
        written.num_bytes[portion.config] = parquet.num_bytes
        written.shards[portion.config] = tars.entries
    return written
