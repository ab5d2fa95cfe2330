"""The synthetic folder (what `cxrds translate` writes) and its one reader:

    SYNTH/provenance.parquet   one row per image (`schema.PROVENANCE_FIELDS`), its path relative to SYNTH
    SYNTH/images/<id>.png      the images

`synthetic_rows` never gives a path outside SYNTH/images: a row whose path is not ``images/<id>.png``, with a
key-safe id, is refused, whatever its checksum says; `verified_images` reads the images those rows name, each
checked against its recorded SHA-256.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from cxr_dataset.errors import ReleaseError, SchemaError
from cxr_dataset.fileio import read_whole, sha256_bytes
from cxr_dataset.schema import PROVENANCE_FIELDS, is_key
from cxr_dataset.tables import read_table_and_digest

PROVENANCE_NAME = "provenance.parquet"
IMAGES_DIR = "images"


def image_path(image_id: str) -> str:
    """An image's path relative to its synthetic folder."""
    return f"{IMAGES_DIR}/{image_id}.png"


def synthetic_rows(folder: Path | str) -> tuple[list[dict[str, Any]], dict[str, Any], str]:
    """The provenance rows of a synthetic folder, each with its image's file as ``_file`` in place of ``path``,
    the table's metadata, and the SHA-256 of the table as read.

    Raises:
        SchemaError: a row's path is not ``images/<id>.png`` (it would read outside the folder or another image).
    """
    table_path = Path(folder) / PROVENANCE_NAME
    table, meta, digest = read_table_and_digest(table_path, PROVENANCE_FIELDS)
    rows = table.to_pylist()
    for row in rows:
        image_id, path = row["id"], row.pop("path")
        if not is_key(image_id) or path != image_path(image_id):
            raise SchemaError(
                f"{table_path}: row {image_id!r} gives path {path!r}; a synthetic image must be "
                f"{IMAGES_DIR}/<id>.png inside the folder (re-run translate)"
            )
        row["_file"] = os.path.join(folder, path)
    return rows, meta, digest


def verified_images(
    rows: Iterable[dict[str, Any]], on_image: Callable[[int], None] = lambda done: None
) -> Iterator[tuple[dict[str, Any], bytes]]:
    """(row, PNG bytes) for each row of `synthetic_rows` (or the seed-release import), checked against the
    SHA-256 its provenance recorded."""
    for done, row in enumerate(rows, 1):
        data = read_whole(row["_file"])
        if sha256_bytes(data) != row["sha256"]:
            raise ReleaseError(f"{row['_file']}: SHA-256 differs from its provenance record; re-run translate")
        on_image(done)
        yield row, data
