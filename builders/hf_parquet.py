"""The Hugging Face layout: ``data/<config>/<split>-NNNNN-of-NNNNN.parquet`` with PNG bytes embedded.

Columns and their arrow types come from `schema.to_release_arrow_schema()`, whose `huggingface` metadata
lets `datasets` restore `Image` and `ClassLabel` features even without the card. Files are cut by
`partition.part_sizes`; each carries a page index (min/max statistics for the metadata columns only) and
content-defined chunks (the Hub deduplicates unchanged chunks between versions), and the same rows still give
the same bytes.
"""

from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path
from typing import Any

from builders.partition import PartFiles, part_sizes
from cxr_dataset.fileio import HashingWriter
from cxr_dataset.release_folder import parquet_name

ROWS_PER_GROUP = 100  # the Hub's viewer reads one row group at a time; ~100 images keep it well under 100 MB
ROWS_PER_FILE = 2000  # about 100 MB of 256² PNGs per file


class ParquetFiles(PartFiles):
    """A config's split as parquet files under `root` (`add` each (release row, PNG bytes) pair of `count`, in
    order; `parts`: only these files), one row group of `rows_per_group` at a time.

    After the last file: `digests` (each file's SHA-256, hashed while written) and `num_bytes` (the arrow size
    of the rows written here: the card's `num_bytes`).
    """

    def __init__(
        self,
        root: Path,
        config: str,
        split: str,
        count: int,
        *,
        parts: range | None = None,
        rows_per_file: int = ROWS_PER_FILE,
        rows_per_group: int = ROWS_PER_GROUP,
    ) -> None:
        from cxr_dataset.schema import FIELDS, to_release_arrow_schema

        super().__init__(part_sizes(count, rows_per_file), parts)
        self.root, self.config, self.split, self.rows_per_group = root, config, split, rows_per_group
        self.schema = to_release_arrow_schema()
        self.columns = [f for f in FIELDS if f.dtype != "image"]
        self.class_index = {
            f.name: {name: i for i, name in enumerate(f.names)} for f in self.columns if f.dtype == "class"
        }
        self.digests: dict[Path, str] = {}
        self.num_bytes = 0
        self._group: list[tuple[dict[str, Any], bytes]] = []

    def path(self, index: int) -> Path:
        return self.root / parquet_name(self.config, self.split, index, len(self.sizes))

    def begin(self, file: ExitStack, out: HashingWriter) -> None:
        import pyarrow.parquet as pq

        self._writer = file.enter_context(
            pq.ParquetWriter(
                out,
                self.schema,
                compression=_compression(self.schema),
                use_dictionary=_metadata_columns(self.schema),
                write_statistics=_metadata_columns(self.schema),  # min/max of PNG bytes would say nothing
                write_page_index=True,
                use_content_defined_chunking=True,
            )
        )

    def write(self, row: dict[str, Any], data: bytes) -> None:
        self._group.append((row, data))
        if len(self._group) == self.rows_per_group:
            self._write_group()

    def end(self) -> None:
        if self._group:
            self._write_group()

    def finished(self, index: int, path: Path, out: HashingWriter) -> None:
        self.digests[path] = out.sha256

    def _write_group(self) -> None:
        import pyarrow as pa

        group, self._group = self._group, []
        batch = {}
        for field in self.columns:
            values = [row[field.name] for row, _ in group]
            if field.name in self.class_index:  # a class name becomes its `ClassLabel` index
                values = [self.class_index[field.name][v] for v in values]
            batch[field.name] = values
        images = pa.array([data for _, data in group], pa.binary())
        batch["image"] = pa.StructArray.from_arrays(
            [images, pa.nulls(len(group), pa.string())], fields=list(self.schema.field("image").type)
        )
        table = pa.Table.from_pydict(batch, schema=self.schema)
        self._writer.write_table(table)
        self.num_bytes += table.nbytes


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
