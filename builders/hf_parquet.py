"""The Hugging Face layout: ``data/<config>/<split>-NNNNN-of-NNNNN.parquet`` with PNG bytes embedded.

Columns and their arrow types come from `schema.to_release_arrow_schema()`, whose `huggingface` metadata
lets `datasets` restore `Image` and `ClassLabel` features even without the card. Files are cut by
`partition.part_sizes`; each carries a page index (min/max statistics for the metadata columns only) and
content-defined chunks (the Hub deduplicates unchanged chunks between versions), and the same rows still give
the same bytes.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from builders.partition import part_sizes, stream_parts
from cxr_dataset.fileio import HashingWriter, atomic_open
from cxr_dataset.release_folder import parquet_name

ROWS_PER_GROUP = 100  # the Hub's viewer reads one row group at a time; ~100 images keep it well under 100 MB
ROWS_PER_FILE = 2000  # about 100 MB of 256² PNGs per file


def write_parquet_split(
    root: Path,
    config: str,
    split: str,
    samples: Iterator[tuple[dict[str, Any], bytes]],
    count: int,
    *,
    rows_per_file: int = ROWS_PER_FILE,
    rows_per_group: int = ROWS_PER_GROUP,
) -> tuple[dict[Path, str], int]:
    """Write `count` (release row, PNG bytes) pairs as parquet files, one row group at a time.

    Returns each file's SHA-256 (hashed while written) and the split's arrow size in bytes (the card's
    `num_bytes`).
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    from cxr_dataset.schema import FIELDS, to_release_arrow_schema

    schema = to_release_arrow_schema()
    image_type = schema.field("image").type
    columns = [f for f in FIELDS if f.dtype != "image"]
    class_index = {f.name: {name: i for i, name in enumerate(f.names)} for f in columns if f.dtype == "class"}
    sizes = part_sizes(count, rows_per_file)
    digests, num_bytes = {}, 0
    for index, part in enumerate(stream_parts(samples, sizes)):
        path = root / parquet_name(config, split, index, len(sizes))
        with atomic_open(path) as f:
            out, written = HashingWriter(f), 0
            with pq.ParquetWriter(
                out,
                schema,
                compression=_compression(schema),
                use_dictionary=_metadata_columns(schema),
                write_statistics=_metadata_columns(schema),  # min/max of PNG bytes would say nothing
                write_page_index=True,
                use_content_defined_chunking=True,
            ) as writer:
                while group := list(itertools.islice(part, rows_per_group)):
                    batch = {}
                    for field in columns:
                        values = [row[field.name] for row, _ in group]
                        if field.name in class_index:  # a class name becomes its `ClassLabel` index
                            values = [class_index[field.name][v] for v in values]
                        batch[field.name] = values
                    images = pa.array([data for _, data in group], pa.binary())
                    batch["image"] = pa.StructArray.from_arrays(
                        [images, pa.nulls(len(group), pa.string())], fields=list(image_type)
                    )
                    table = pa.Table.from_pydict(batch, schema=schema)
                    writer.write_table(table)
                    num_bytes += table.nbytes
                    written += len(group)
            out.flush()
            if written != sizes[index]:
                raise ValueError(f"{path.name}: the stream ended after {written} of {sizes[index]} rows")
        digests[path] = out.sha256
    return digests, num_bytes


def _compression(schema) -> dict[str, str]:
    """zstd for metadata columns; none for the PNG bytes, which are compressed already."""
    return {name: "none" if name.startswith("image.") else "zstd" for name in _leaf_paths(schema)}


def _metadata_columns(schema) -> list[str]:
    """Every column but the image's: the ones worth a dictionary (each image is distinct)."""
    return [name for name in _leaf_paths(schema) if not name.startswith("image.")]


def _leaf_paths(schema) -> list[str]:
    import pyarrow as pa

    def walk(prefix: str, dtype) -> list[str]:
        if pa.types.is_struct(dtype):
            return [
                p for i in range(dtype.num_fields) for p in walk(f"{prefix}.{dtype.field(i).name}", dtype.field(i).type)
            ]
        return [prefix]

    return [p for f in schema for p in walk(f.name, f.type)]
