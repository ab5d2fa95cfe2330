"""The prepared manifest: one validated table of real images that every later stage reads."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa

from cxr_dataset.errors import SchemaError
from cxr_dataset.fileio import sha256_bytes, sha256_file
from cxr_dataset.schema import MANIFEST_FIELDS, is_key
from cxr_dataset.tables import read_table, write_table

MANIFEST_NAME = "manifest.parquet"  # PREPARED/ (beside it, `prepare` writes rejects.csv and its cache)
IMAGES_DIR = "images"


def prepared_image_path(label: str, image_id: str) -> str:
    """An image's path relative to its prepared folder."""
    return f"{IMAGES_DIR}/{label}/{image_id}.png"


@dataclass(frozen=True)
class Manifest:
    """A prepared folder: `root` holds `manifest.parquet` and the PNGs its `path` column names."""

    root: Path
    table: pa.Table
    meta: dict[str, Any]
    sha256: str

    def rows(self, *, label: str | None = None, split: str | None = None) -> list[dict[str, Any]]:
        """Rows as dicts, sorted by id, optionally filtered by class and split."""
        return [
            r
            for r in self.table.to_pylist()
            if (label is None or r["label"] == label) and (split is None or r["split"] == split)
        ]

    def image_path(self, row: dict[str, Any]) -> Path:
        return self.root / row["path"]

    def read_image(self, row: dict[str, Any]) -> bytes:
        """The row's PNG bytes, checked against its SHA-256; `SchemaError` if missing or changed."""
        path = self.image_path(row)
        try:
            data = path.read_bytes()
        except OSError as e:
            raise SchemaError(f"{path}: cannot read a prepared image ({e.strerror}); re-run `cxrds prepare`") from None
        if sha256_bytes(data) != row["sha256"]:
            raise SchemaError(f"{path}: SHA-256 differs from the manifest; re-run `cxrds prepare`")
        return data


def write_manifest(rows: list[dict[str, Any]], root: Path, meta: dict[str, Any]) -> Path:
    """Write `root/manifest.parquet`; `meta` records the sources, split mode and seed that made it."""
    return write_table(rows, MANIFEST_FIELDS, root / MANIFEST_NAME, meta)


def read_manifest(root: Path) -> Manifest:
    """Load and validate `root/manifest.parquet`; raises `SchemaError` naming the file and the problem."""
    path = Path(root) / MANIFEST_NAME
    if not path.is_file():
        raise SchemaError(f"{path}: no manifest; run `cxrds prepare --out {root}` first")
    table, meta = read_table(path, MANIFEST_FIELDS)
    for image_id, label, rel in zip(*(table.column(c).to_pylist() for c in ("id", "label", "path"))):
        if not is_key(image_id) or rel != prepared_image_path(label, image_id):
            raise SchemaError(
                f"{path}: row {image_id!r} gives path {rel!r}; a prepared image must be images/<label>/<id>.png "
                "inside the folder (re-run `cxrds prepare`)"
            )
    return Manifest(Path(root), table, meta, sha256_file(path))
