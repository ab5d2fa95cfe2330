"""`croissant.json`: the release described in Croissant 1.0 (MLCommons), made with mlcroissant.

One `cr:FileSet` per config (its parquet files) plus a `cr:FileObject` with the real SHA-256 for every
parquet file, and one `cr:RecordSet` per config whose fields come from `schema.to_croissant_fields()`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from cxr_dataset.fileio import atomic_write_text, sha256_file
from cxr_dataset.schema import to_croissant_fields

CROISSANT_NAME = "croissant.json"
PARQUET = "application/x-parquet"
CITATION = (
    "Zunair, H., Hamza, A. B. Synthesis of COVID-19 chest X-rays using unpaired image-to-image translation. "
    "Social Network Analysis and Mining 11, 23 (2021). https://doi.org/10.1007/s13278-021-00731-5"
)


def croissant_metadata(
    root: Path, configs: dict[str, int], *, name: str, description: str, version: str
) -> dict[str, Any]:
    """The JSON-LD of the release at `root` (its parquet files must exist: their hashes go in)."""
    import mlcroissant as mlc

    types = {
        "sc:ImageObject": mlc.DataType.IMAGE_OBJECT,
        "sc:Integer": mlc.DataType.INTEGER,
        "sc:Text": mlc.DataType.TEXT,
    }
    distribution: list = []
    record_sets = []
    for config in configs:
        files = sorted((root / "data" / config).glob("*.parquet"))
        for path in files:
            rel = path.relative_to(root).as_posix()
            distribution.append(
                mlc.FileObject(id=rel, name=rel, content_url=rel, encoding_formats=[PARQUET], sha256=sha256_file(path))
            )
        distribution.append(
            mlc.FileSet(
                id=f"parquet-{config}",
                name=f"parquet-{config}",
                encoding_formats=[PARQUET],
                includes=[f"data/{config}/*.parquet"],
            )
        )
        fields = [
            mlc.Field(
                id=f"{config}/{f['name']}",
                name=f["name"],
                description=f["description"],
                data_types=[types[f["data_type"]]],
                source=mlc.Source(
                    file_set=f"parquet-{config}",
                    extract=mlc.Extract(column=f["name"]),
                    transforms=[mlc.Transform(json_path=f["json_path"])] if f["json_path"] else [],
                ),
            )
            for f in to_croissant_fields()
        ]
        record_sets.append(
            mlc.RecordSet(
                id=config,
                name=config,
                fields=fields,
                description=f"config {config}: {configs[config]} synthetic images",
            )
        )
    metadata = mlc.Metadata(
        name=name,
        description=description,
        url="https://doi.org/10.1007/s13278-021-00731-5",
        license=["MIT"],
        cite_as=CITATION,
        version=version,
        keywords=["medical", "chest-xray", "synthetic", "covid-19"],
        distribution=distribution,
        record_sets=record_sets,
        date_published=None,
    )
    return metadata.to_json()


def write_croissant(root: Path, configs: dict[str, int], *, name: str, description: str, version: str) -> Path:
    data = croissant_metadata(root, configs, name=name, description=description, version=version)
    path = root / CROISSANT_NAME
    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")
    return path
