"""The Hugging Face layout: ``data/<config>/<split>-NNNNN-of-NNNNN.parquet`` with PNG bytes embedded.

Columns and their arrow types come from `schema.to_hf_features()`, whose `huggingface` metadata lets
`datasets` restore `Image` and `ClassLabel` features even without the card. Files are cut by
`partition.equal_parts`; each carries a page index and content-defined chunks (the Hub deduplicates
unchanged chunks between versions), and the same rows still give the same bytes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from builders.partition import equal_parts
from cxr_dataset.fileio import atomic_open
from cxr_dataset.release_folder import parquet_name

ROWS_PER_GROUP = 100  # the Hub's viewer reads one row group at a time; ~100 images keep it well under 100 MB
ROWS_PER_FILE = 2000  # about 100 MB of 256² PNGs per file


def write_parquet_split(
    root: Path,
    config: str,
    split: str,
    rows: Sequence[dict[str, Any]],
    read_image: Callable[[dict[str, Any]], bytes],
    *,
    rows_per_file: int = ROWS_PER_FILE,
    rows_per_group: int = ROWS_PER_GROUP,
) -> tuple[list[Path], int]:
    """Write `rows` (release rows without the image) as parquet files, reading images one group at a time.

    Returns the files and the split's arrow size in bytes (the card's `num_bytes`).
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    from cxr_dataset.schema import FIELDS, to_hf_features

    features = to_hf_features()
    parts = equal_parts(rows, rows_per_file)
    paths, num_bytes = [], 0
    for index, part in enumerate(parts):
        path = root / parquet_name(config, split, index, len(parts))
        with (
            atomic_open(path) as f,
            pq.ParquetWriter(
                f,
                features.arrow_schema,
                compression=_compression(features.arrow_schema),
                write_page_index=True,
                use_content_defined_chunking=True,
            ) as writer,
        ):
            for start in range(0, len(part), rows_per_group):
                group = part[start : start + rows_per_group]
                batch = {f.name: [_encode(f, r) for r in group] for f in FIELDS if f.dtype != "image"}
                batch["image"] = [{"bytes": read_image(r), "path": None} for r in group]
                table = pa.Table.from_pydict(batch, schema=features.arrow_schema)
                writer.write_table(table)
                num_bytes += table.nbytes
        paths.append(path)
    return paths, num_bytes


def _encode(field, row: dict[str, Any]) -> Any:
    """A row value as stored: class names become their `ClassLabel` index."""
    value = row[field.name]
    return field.names.index(value) if field.dtype == "class" else value


def _compression(schema) -> dict[str, str]:
    """zstd for metadata columns; none for the PNG bytes, which are compressed already."""
    return {name: "none" if name.startswith("image.") else "zstd" for name in _leaf_paths(schema)}


def _leaf_paths(schema) -> list[str]:
    import pyarrow as pa

    def walk(prefix: str, dtype) -> list[str]:
        if pa.types.is_struct(dtype):
            return [
                p for i in range(dtype.num_fields) for p in walk(f"{prefix}.{dtype.field(i).name}", dtype.field(i).type)
            ]
        return [prefix]

    return [p for f in schema for p in walk(f.name, f.type)]
