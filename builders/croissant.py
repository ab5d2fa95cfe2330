"""`croissant.json`: the release described in Croissant 1.0 (MLCommons), made with mlcroissant.

A `cr:FileObject` with the real SHA-256 for every parquet file, one `cr:FileSet` per config (the globs the
card declares) and one for the WebDataset tars, one `cr:RecordSet` per config whose fields come from
`schema.to_croissant_fields()`, and the Responsible-AI fields from `cards/responsible_ai.toml`.
"""

from __future__ import annotations

import datetime
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cards import responsible_ai
from cxr_dataset.fileio import atomic_write_text
from cxr_dataset.release_folder import CROISSANT_NAME, RELEASE_SPLIT, WDS_DIR, shard_index_name
from cxr_dataset.schema import to_croissant_fields

PARQUET = "application/x-parquet"
TAR = "application/x-tar"
PAPER_URL = "https://doi.org/10.1007/s13278-021-00731-5"
CREATORS = ("Hasib Zunair", "A. Ben Hamza")  # the dataset's design and the original release (the seed's zips)
UNNAMED_CREATOR = "the builder of this release, unnamed (cxrds build --creator NAME names them)"
CONFORMS_TO = ["http://mlcommons.org/croissant/1.0", "http://mlcommons.org/croissant/RAI/1.0"]
CITATION = (
    "Zunair, H., Hamza, A. B. Synthesis of COVID-19 chest X-rays using unpaired image-to-image translation. "
    "Social Network Analysis and Mining 11, 23 (2021). https://doi.org/10.1007/s13278-021-00731-5"
)


@dataclass(frozen=True)
class DatasetInfo:
    """What describes a release beyond its files."""

    name: str
    description: str
    version: str
    date_published: str  # YYYY-MM-DD
    url: str = PAPER_URL
    source_datasets: tuple[str, ...] = ()
    license: str = "https://opensource.org/license/mit"  # a URL, or the terms in words
    creators: tuple[str, ...] = CREATORS  # who made this release: the paper's authors only for the seed's zips
    preprocessing: str = ""  # how the real images were prepared (size, resize mode, bit depth)
    generators: tuple[str, ...] = ()  # the generators that made (and so labelled) the images, in words


def croissant_metadata(
    configs: dict[str, int], data_files: dict[str, list[str]], parquet: dict[str, str], info: DatasetInfo
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
    distribution.append(
        mlc.FileSet(
            id="webdataset-tars",
            name="webdataset-tars",
            description="The same samples as WebDataset shards (members .png, .json provenance, .cls label); "
            f"{WDS_DIR}/{shard_index_name('<config>', RELEASE_SPLIT)} lists each config's shards with size and "
            "checksums.",
            encoding_formats=[TAR],
            includes=[f"{WDS_DIR}/*.tar"],
        )
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
    rai = responsible_ai()
    metadata = mlc.Metadata(
        name=info.name,
        description=info.description,
        url=info.url,
        license=[info.license],
        cite_as=CITATION,
        version=info.version,
        date_published=datetime.datetime.fromisoformat(info.date_published),
        conforms_to=CONFORMS_TO,
        creators=[mlc.Person(name=person) for person in info.creators],
        keywords=["medical", "chest-xray", "synthetic", "synthetic data", "covid-19"],
        distribution=distribution,
        record_sets=record_sets,
        data_collection=rai["collection"] + " Real sources: " + "; ".join(info.source_datasets) + ".",
        data_collection_type=["Synthetic data: image-to-image translation (CycleGAN) of real chest X-rays"],
        data_use_cases=[text.replace("**", "") for text in rai["use_cases"]],
        data_limitations=[*rai["limitations"], "Out of scope: " + rai["out_of_scope"]],
        data_biases=rai["biases"],
        personal_sensitive_information=[rai["sensitive_information"]],
        data_preprocessing_protocol=[info.preprocessing] if info.preprocessing else [],
        data_manipulation_protocol=[rai["manipulation"]],
        data_annotation_protocol=[rai["annotation"]],
        annotations_per_item="1 (the generator's target class, COVID-19)",
        machine_annotation_tools=list(info.generators),
        data_social_impact=rai["social_impact"],
        data_release_maintenance_plan=rai["maintenance"],
    )
    return metadata.to_json()


def write_croissant(
    root: Path, configs: dict[str, int], data_files: dict[str, list[str]], parquet: dict[str, str], info: DatasetInfo
) -> Path:
    data = croissant_metadata(configs, data_files, parquet, info)
    path = root / CROISSANT_NAME
    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")
    return path
