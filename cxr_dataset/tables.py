"""Reading and writing the toolkit's parquet tables, always against a field tuple of `schema`."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from cxr_dataset.errors import SchemaError
from cxr_dataset.fileio import atomic_open, read_whole, sha256_bytes
from cxr_dataset.schema import Field, check_columns, field_names, to_arrow_schema

_META_KEY = b"cxrds"


def write_table(rows: list[dict[str, Any]], fields: Sequence[Field], path: Path, meta: dict[str, Any]) -> Path:
    """Write `rows` sorted by id, with `meta` as JSON in the file's schema metadata (atomically)."""
    schema = to_arrow_schema(fields).with_metadata({_META_KEY: json.dumps(meta, sort_keys=True)})
    try:
        table = pa.Table.from_pylist(sorted(rows, key=lambda r: r["id"]), schema=schema)
    except (pa.ArrowInvalid, pa.ArrowTypeError, KeyError) as e:
        raise SchemaError(f"{path}: rows do not fit {field_names(fields)}: {e}") from None
    with atomic_open(path) as f:
        pq.write_table(table, f)
    return path


def read_table(path: Path, fields: Sequence[Field]) -> tuple[pa.Table, dict[str, Any]]:
    """Read and validate a table; returns it (columns in schema order) and its metadata."""
    table, meta, _ = read_table_and_digest(path, fields)
    return table, meta


def read_table_and_digest(path: Path, fields: Sequence[Field]) -> tuple[pa.Table, dict[str, Any], str]:
    """`read_table`, and the SHA-256 of the bytes it read (to tell whether a second read saw the same file)."""
    if not path.is_file():
        raise SchemaError(f"{path}: file not found")
    try:
        data = read_whole(path)
        table = pq.ParquetFile(pa.BufferReader(data)).read()
    except (pa.ArrowInvalid, OSError) as e:
        raise SchemaError(f"{path}: not a readable parquet file ({e})") from None
    check_columns(table, fields, str(path))
    ids = table.column("id").to_pylist()
    if len(set(ids)) != len(ids):
        raise SchemaError(f"{path}: duplicate values in column 'id'")
    meta = json.loads((table.schema.metadata or {}).get(_META_KEY, b"{}"))
    return table.select(field_names(fields)), meta, sha256_bytes(data)
