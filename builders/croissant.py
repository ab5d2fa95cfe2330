"""`croissant.json`: the release described in Croissant 1.0 (MLCommons), made with mlcroissant.

A `cr:FileObject` with the real SHA-256 for every parquet file, one `cr:FileSet` per config (the globs the
card declares), and one `cr:RecordSet` per config whose fields come from `schema.to_croissant_fields()`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from cxr_dataset.fileio import atomic_write_text
from cxr_dataset.schema import to_croissant_fields

CROISSANT_NAME = "croissant.json"
PARQUET = "application/x-parquet"
CITATION = (
    "Zunair, H., Hamza, A. B. Synthesis of COVID-19 chest X-rays using unpaired image-to-image translation. "
    "Social Network Analysis and Mining 11, 23 (2021). https://doi.org/10.1007/s13278-021-00731-5"
)


def croissant_metadata(
    configs: dict[str, int],
    data_files: dict[str, list[str]],
    parquet: dict[str, str],
    *,
    name: str,
    description: str,
    version: str,
) -> dict[str, Any]:
    """The JSON-LD of a release: `parquet` maps each parquet file (relative path) to its SHA-256."""
    import mlcroissant as mlc

    types = {
        "sc:ImageObject": mlc.DataType.IMAGE_OBJECT,
        "sc:Integer": mlc.DataType.INTEGER,
        "sc:Text": mlc.DataType.TEXT,
    }
    distribution: list = []
    record_sets = []
    # Every parquet file once, with its hash; then one file set per config (`all` spans the task configs).
    for rel, digest in sorted(parquet.items()):
        distribution.append(
            mlc.FileObject(id=rel, name=rel, content_url=rel, encoding_formats=[PARQUET], sha256=digest)
        )
    for config in configs:
        globs = [f"{pattern}.parquet" for pattern in data_files[config]]
        distribution.append(
            mlc.FileSet(id=f"parquet-{config}", name=f"parquet-{config}", encoding_formats=[PARQUET], includes=globs)
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


def write_croissant(
    root: Path,
    configs: dict[str, int],
    data_files: dict[str, list[str]],
    parquet: dict[str, str],
    *,
    name: str,
    description: str,
    version: str,
) -> Path:
    data = croissant_metadata(configs, data_files, parquet, name=name, description=description, version=version)
    path = root / CROISSANT_NAME
    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")
    return path
