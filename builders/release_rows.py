"""The rows a release is built from: every synthetic folder's provenance, merged, sorted by id, split by config.

Every process of a build reads them here (`builders.release`, and `builders.portion_process` for a second portion of
the rows) and they compare what each read by the provenance tables' SHA-256.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cxr_dataset.errors import ReleaseError
from cxr_dataset.schema import SYNTHETIC_LABEL, TASK_CONFIG
from cxr_dataset.synthetic_folder import synthetic_rows


@dataclass(frozen=True)
class ReleaseRows:
    folders: list[Path]  # the synthetic folders read
    rows: list[dict[str, Any]]  # release rows (class fields as names), sorted by id, each with its `_file`
    metas: list[dict[str, Any]]  # each table's metadata: task, resolved config, how the real images were prepared
    digests: list[str]  # SHA-256 of each provenance table as read

    def parts(self) -> dict[str, list[dict[str, Any]]]:
        """The rows of each task config that has any (`all` is their union, stored once)."""
        parts = {name: [r for r in self.rows if r["task"] == task] for task, name in TASK_CONFIG.items()}
        return {name: part for name, part in parts.items() if part}


def read_release_rows(synthetic: list[Path] | list[str]) -> ReleaseRows:
    """Release rows from the provenance tables of `cxrds translate` output folders.

    Raises:
        ReleaseError: no folders, or an id in two of them.
    """
    if not synthetic:
        raise ReleaseError("no synthetic folders given; pass --synthetic SYNTH (the output of `cxrds translate`)")
    rows: dict[str, dict[str, Any]] = {}
    metas, digests = [], []
    for folder in synthetic:
        folder_rows, meta, digest = synthetic_rows(folder)
        metas.append(meta)
        digests.append(digest)
        for r in folder_rows:
            if r["id"] in rows:
                raise ReleaseError(f"{folder}: id {r['id']!r} also occurs in another synthetic folder")
            r["label"] = SYNTHETIC_LABEL
            rows[r["id"]] = r
    return ReleaseRows([Path(f) for f in synthetic], [rows[k] for k in sorted(rows)], metas, digests)
