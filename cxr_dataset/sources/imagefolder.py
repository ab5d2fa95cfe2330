"""The Hugging Face `imagefolder` layout: ``root/metadata.csv`` (or ``metadata.jsonl``) with a ``file_name``
column of image paths relative to the root, a label column, optionally ``patient_id``, and anything else.

Labels map onto the schema's classes through the folder source's names (case-insensitive: normal, No Finding,
pneumonia, COVID-19, ...); rows of other labels are skipped with a warning naming them. ``view``,
``license`` and ``url`` fill the manifest's columns of those names; every other column is kept, as JSON, in
the manifest's ``extra``. Without ``patient_id`` (no column, an empty cell, JSON ``null``) an image is its own
patient. Paths that leave the root become reject rows, never reads.
"""

from __future__ import annotations

import json
import warnings
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cxr_dataset.errors import SourceError
from cxr_dataset.schema import make_key
from cxr_dataset.sources.base import SourceImage
from cxr_dataset.sources.files import MAX_FILE_BYTES, load_image_file, read_csv_rows
from cxr_dataset.sources.folder import CLASS_NAMES

KIND = "imagefolder"
OWN_COLUMNS = ("file_name", "patient_id", "view", "license", "url")


@dataclass(frozen=True)
class ImageFolderSource:
    root: Path
    label_column: str = "label"
    kind: str = KIND

    def records(self) -> list[SourceImage]:
        rows, where = self._metadata()
        out, unknown, seen = [], Counter(), {}
        for number, row in enumerate(rows, 2):
            name = str(row.get("file_name") or "")
            label = CLASS_NAMES.get(str(row.get(self.label_column) or "").strip().lower())
            if not name:
                raise SourceError(f"{where}: row {number} has no file_name")
            if label is None:
                unknown[str(row.get(self.label_column))] += 1
                continue
            key = make_key(KIND, Path(name).with_suffix("").as_posix())
            if key in seen:
                raise SourceError(f"{where}: rows {seen[key]} and {number} name the same image {name!r}")
            seen[key] = number
            patient = str(row.get("patient_id") or "").strip()
            extra = {k: v for k, v in row.items() if k not in (*OWN_COLUMNS, self.label_column) and v not in ("", None)}
            out.append(
                SourceImage(
                    id=key,
                    patient_id=make_key(KIND, patient) if patient else key,
                    native_patient_id=patient,
                    label=label,
                    source=KIND,
                    origin=str(self.root / name),  # confined to the root when loaded
                    view=str(row.get("view") or ""),
                    license=str(row.get("license") or ""),
                    url=str(row.get("url") or ""),
                    extra=json.dumps(extra, sort_keys=True, ensure_ascii=False) if extra else "",
                )
            )
        if unknown:
            warnings.warn(
                f"{where}: skipped {sum(unknown.values())} rows whose {self.label_column!r} names no class: "
                f"{dict(unknown.most_common(5))} (known: {sorted(CLASS_NAMES)})",
                stacklevel=2,
            )
        if not out:
            raise SourceError(f"{where}: no rows with a known class in column {self.label_column!r}")
        return out

    def load(self, record: SourceImage, size: int) -> np.ndarray:
        return load_image_file(Path(record.origin), root=self.root)

    def _metadata(self) -> tuple[list[dict], Path]:
        csv_path, jsonl_path = self.root / "metadata.csv", self.root / "metadata.jsonl"
        if csv_path.is_file():
            return read_csv_rows(csv_path, ("file_name", self.label_column)), csv_path
        if not jsonl_path.is_file():
            raise SourceError(f"imagefolder source {self.root}: no metadata.csv or metadata.jsonl")
        if jsonl_path.stat().st_size > MAX_FILE_BYTES:
            raise SourceError(f"{jsonl_path}: larger than {MAX_FILE_BYTES:,} bytes")
        rows = []
        for number, line in enumerate(jsonl_path.read_text(encoding="utf-8-sig").splitlines(), 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise SourceError(f"{jsonl_path}: line {number} is not JSON ({e.msg})") from None
            except RecursionError:
                raise SourceError(f"{jsonl_path}: line {number} nests its values too deep to read") from None
            if not isinstance(row, dict) or "file_name" not in row or self.label_column not in row:
                raise SourceError(f"{jsonl_path}: line {number} needs file_name and {self.label_column!r}")
            # JSON null is a missing value, as an empty CSV cell is: a null patient_id is no patient id.
            rows.append({k: v if isinstance(v, str) else "" if v is None else json.dumps(v) for k, v in row.items()})
        return rows, jsonl_path
