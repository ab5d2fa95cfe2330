"""The one definition of every table and sample the toolkit writes or reads.

Three tables share one catalogue of fields:

* the prepared **manifest** (`cxrds prepare`): one row per real image;
* the **provenance** table (`cxrds translate`): one row per synthetic image;
* the release **sample** (`cxrds build`): what `load_dataset` and WebDataset users see.

Everything else (HF `Features`, the card's `dataset_info`, arrow schemas, WebDataset members) is derived
from these tuples by the pure functions below, so no writer or reader keeps its own copy.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from cxr_dataset.errors import SchemaError

if TYPE_CHECKING:
    import datasets
    import pyarrow as pa

# One class vocabulary for every source; each source reader maps its own labels onto it.
CLASSES: tuple[str, ...] = ("normal", "pneumonia", "covid")
SOURCE_CLASSES: tuple[str, ...] = ("normal", "pneumonia")
TASKS: tuple[str, ...] = ("normal2covid", "pneumonia2covid")
SPLITS: tuple[str, ...] = ("train", "validation", "test")
# The paper's generator names: G_NC translates Normal → COVID, G_PC Pneumonia → COVID.
TASK_SOURCE_CLASS: dict[str, str] = {"normal2covid": "normal", "pneumonia2covid": "pneumonia"}
TASK_CONFIG: dict[str, str] = {"normal2covid": "g_nc", "pneumonia2covid": "g_pc"}
ALL_CONFIG = "all"
CONFIGS: tuple[str, ...] = (ALL_CONFIG, *TASK_CONFIG.values())
SYNTHETIC_LABEL = "covid"
RELEASE_PRESET = "seed-v0.1"  # the `preset` of rows read from the seed's released zips (no provenance)

# The folders' file names are owned by each folder's module: `manifest` (prepared), `synthetic_folder`,
# `release_folder`, `checksums`, `export_folder`, and in the generator package `run_folder`.

# The source's own patient id, kept beside the namespaced `patient_id` key in every table (manifest, provenance,
# release), so that an audit can match patients across readers that namespace them differently.
NATIVE_PATIENT_ID = "native_patient_id"

_KEY_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")


@dataclass(frozen=True)
class Field:
    """One column: its name, its type, where it lives in a WebDataset sample, and what it means.

    `dtype` is one of "image", "class", "string", "int64". A "class" field is a `ClassLabel`
    over `names` in the release and a validated string in the internal tables.
    """

    name: str
    dtype: str
    doc: str
    names: tuple[str, ...] = ()
    wds_ext: str = "json"

    def __post_init__(self) -> None:
        if self.dtype not in ("image", "class", "string", "int64"):
            raise SchemaError(f"field {self.name!r}: unknown dtype {self.dtype!r}")
        if (self.dtype == "class") != bool(self.names):
            raise SchemaError(f"field {self.name!r}: class fields need names, others must not have them")


_CATALOGUE: dict[str, Field] = {
    f.name: f
    for f in (
        Field("image", "image", "8-bit grayscale PNG.", wds_ext="png"),
        Field("id", "string", "Unique sample key: letters, digits, '_' and '-' only (no dots)."),
        Field("label", "class", "Diagnostic class of the image; every synthetic image is covid.", CLASSES),
        Field(
            "source_class", "class", "Class of the real image the synthetic one was translated from.", SOURCE_CLASSES
        ),
        Field("task", "class", "Translation: normal2covid (G_NC) or pneumonia2covid (G_PC).", TASKS),
        Field("split", "string", "Split of the real source image (train, validation or test)."),
        Field(
            "paper_split",
            "string",
            "Split the seed's rule (`--split paper`) gives the image, whatever `--split` chose: the v0.1 audit's key.",
        ),
        Field(
            "patient_id",
            "string",
            "Patient key for joins, namespaced by reader (e.g. 'covid-collection_19'); the image's own id where the "
            "source names no patients.",
        ),
        Field(
            NATIVE_PATIENT_ID,
            "string",
            "The patient id as the source dataset writes it, not namespaced (of the real source image, for synthetic "
            "rows): what the leakage audit joins on across readers. Empty: the source names no patients (a class "
            "folder, an imagefolder without patient_id, the seed's v0.1 zips), so splits and bootstraps are per image.",
        ),
        Field("source", "string", "Source kind and dataset, e.g. 'phantom' or 'rsna'."),
        Field(
            "origin",
            "string",
            "Where the source image came from: its path relative to its source's folder (a release zip's member "
            "as ZIP::MEMBER), or a phantom spec.",
        ),
        Field("path", "string", "Image path relative to the table's folder."),
        Field("sha256", "string", "SHA-256 of the stored PNG bytes."),
        Field("view", "string", "Radiographic view (PA, AP, AP Supine, L), or empty when unknown."),
        Field("license", "string", "Licence of the source image, as its dataset states it."),
        Field("doi", "string", "DOI of the publication the source image came from, or empty."),
        Field("url", "string", "Web page of the source image, or empty."),
        Field("extra", "string", "The source's other metadata columns for this image, as a JSON object, or empty."),
        Field("width", "int64", "Image width in pixels."),
        Field("height", "int64", "Image height in pixels."),
        Field("source_dataset", "string", "Dataset of the real source image."),
        Field("source_image_id", "string", "Manifest id of the real source image."),
        Field("source_patient_id", "string", "Patient key (the manifest's `patient_id`) of the real source image."),
        Field("source_md5", "string", "MD5 of the archive the image was read from (the seed's v0.1 zips), else empty."),
        Field(
            "source_license", "string", "Licence of the real source image, as its dataset states it (empty: unknown)."
        ),
        Field("checkpoint_sha256", "string", "SHA-256 of the generator checkpoint's tensors file."),
        Field("config_sha256", "string", "SHA-256 of the generator's resolved config (canonical JSON)."),
        Field(
            "train_manifest_sha256",
            "string",
            "Identity (SHA-256) of the prepared manifest the generator was trained on; empty: not recorded "
            "(the seed's v0.1 zips).",
        ),
        Field("preset", "string", "Generator preset the config was resolved from."),
        Field("code_version", "string", "cxrds version that made the image."),
        Field("seed", "int64", "Seed of the run that made the image."),
        Field("precision", "string", "Arithmetic of the generator's forward pass: bf16 or fp32 (empty: unknown)."),
    )
}

_PROVENANCE_NAMES = (
    "id",
    "source_dataset",
    "source_image_id",
    "source_patient_id",
    NATIVE_PATIENT_ID,
    "source_md5",
    "source_license",
    "source_class",
    "task",
    "split",
    "checkpoint_sha256",
    "config_sha256",
    "train_manifest_sha256",
    "preset",
    "code_version",
    "seed",
    "precision",
    "sha256",
    "width",
    "height",
)


def _pick(names: Sequence[str]) -> tuple[Field, ...]:
    return tuple(_CATALOGUE[n] for n in names)


MANIFEST_FIELDS: tuple[Field, ...] = _pick(
    (
        "id",
        "patient_id",
        NATIVE_PATIENT_ID,
        "label",
        "split",
        "paper_split",
        "source",
        "origin",
        "view",
        "license",
        "doi",
        "url",
        "extra",
        "path",
        "sha256",
        "width",
        "height",
    )
)
PROVENANCE_FIELDS: tuple[Field, ...] = _pick((*_PROVENANCE_NAMES, "path"))
# The release sample: the image, its label, and its full provenance.
FIELDS: tuple[Field, ...] = _pick(("image", "label", *_PROVENANCE_NAMES))


def field_names(fields: Sequence[Field]) -> list[str]:
    return [f.name for f in fields]


MAX_KEY = 90  # a tar member name "<key>.json" must fit ustar's 100 bytes


def is_key(text: str) -> bool:
    """Whether `text` could come from `make_key` (so it is safe in a file name: no dots, no separators)."""
    return bool(text) and len(text) <= MAX_KEY and not _KEY_UNSAFE.search(text)


def make_key(*parts: str) -> str:
    """Join `parts` into a key safe for WebDataset and HF (no dots, no slashes, at most 90 characters:
    longer keys keep their start and end in a hash)."""
    key = "_".join(_KEY_UNSAFE.sub("-", p).strip("-") for p in parts)
    if not key:
        raise SchemaError(f"cannot make a key from {parts!r}")
    if len(key) > MAX_KEY:
        key = f"{key[: MAX_KEY - 17]}-{hashlib.sha256(key.encode()).hexdigest()[:16]}"
    return key


def to_hf_features(fields: Sequence[Field] = FIELDS) -> datasets.Features:
    """HF `Features` of the release: `Image`, `ClassLabel` for class fields, `Value` otherwise."""
    import datasets

    def feature(f: Field) -> Any:
        if f.dtype == "image":
            return datasets.Image()
        if f.dtype == "class":
            return datasets.ClassLabel(names=list(f.names))
        return datasets.Value(f.dtype)

    return datasets.Features({f.name: feature(f) for f in fields})


def to_release_arrow_schema(fields: Sequence[Field] = FIELDS) -> pa.Schema:
    """The release's parquet schema, with the ``huggingface`` metadata from which `datasets` restores
    `to_hf_features()` (tested); made without importing `datasets`, which would cost a build ~1 s."""
    import pyarrow as pa

    types = {"string": pa.string(), "class": pa.int64(), "int64": pa.int64()}
    image = pa.struct([("bytes", pa.binary()), ("path", pa.string())])  # what `datasets.Image` stores

    def feature(f: Field) -> dict[str, Any]:
        if f.dtype == "image":
            return {"_type": "Image"}
        if f.dtype == "class":
            return {"names": list(f.names), "_type": "ClassLabel"}
        return {"dtype": f.dtype, "_type": "Value"}

    features = {"info": {"features": {f.name: feature(f) for f in fields}}}
    columns = [pa.field(f.name, image if f.dtype == "image" else types[f.dtype]) for f in fields]
    return pa.schema(columns, metadata={"huggingface": json.dumps(features)})


def to_card_features(fields: Sequence[Field] = FIELDS) -> list[dict[str, Any]]:
    """The `dataset_info.features` list of a dataset card's YAML."""

    def dtype(f: Field) -> Any:
        if f.dtype == "class":
            return {"class_label": {"names": {str(i): n for i, n in enumerate(f.names)}}}
        return f.dtype

    return [{"name": f.name, "dtype": dtype(f)} for f in fields]


def to_croissant_fields(fields: Sequence[Field] = FIELDS) -> list[dict[str, str]]:
    """Croissant `cr:Field` facts per column: name, schema.org data type, description, and for images the
    JSON path of the PNG bytes inside the parquet struct (HF stores images as {bytes, path})."""
    types = {"image": "sc:ImageObject", "class": "sc:Integer", "int64": "sc:Integer", "string": "sc:Text"}
    out = []
    for f in fields:
        doc = f.doc if f.dtype != "class" else f"{f.doc} Class index into {list(f.names)}."
        out.append(
            {
                "name": f.name,
                "data_type": types[f.dtype],
                "description": doc,
                "json_path": "bytes" if f.dtype == "image" else "",
            }
        )
    return out


def to_markdown() -> str:
    """docs/schema.md: every table's columns with their types and meanings."""
    tables = (
        ("Release sample (`cxrds build`)", FIELDS),
        ("Prepared manifest (`cxrds prepare`)", MANIFEST_FIELDS),
        ("Provenance (`cxrds translate`)", PROVENANCE_FIELDS),
    )
    out = ["# Schema", "", "Generated from `cxr_dataset/schema.py` by `python docs/make_docs.py`; do not edit.", ""]
    for title, fields in tables:
        out += [f"## {title}", "", "| column | type | WebDataset member | meaning |", "|---|---|---|---|"]
        for f in fields:
            kind = f"class: {', '.join(f.names)}" if f.dtype == "class" else f.dtype
            out.append(f"| `{f.name}` | {kind} | `.{f.wds_ext}` | {f.doc} |")
        out.append("")
    out += [
        "WebDataset samples hold exactly the members "
        + ", ".join(f"`.{m}`" for m in wds_members())
        + " (`.cls` is the label index).",
        "",
    ]
    return "\n".join(out)


def to_arrow_schema(fields: Sequence[Field]) -> pa.Schema:
    """Arrow schema of an internal table (manifest, provenance): class fields are strings."""
    import pyarrow as pa

    types = {"string": pa.string(), "class": pa.string(), "int64": pa.int64()}
    return pa.schema([pa.field(f.name, types[f.dtype], nullable=False) for f in fields])


def wds_members(fields: Sequence[Field] = FIELDS) -> tuple[str, ...]:
    """Member extensions of every WebDataset sample, sorted: ('cls', 'json', 'png')."""
    return tuple(sorted({f.wds_ext for f in fields} | {"cls"}))


def encode_wds_sample(row: Mapping[str, Any], image_bytes: bytes) -> dict[str, Any]:
    """One release row (class fields as names) → a flat WebDataset sample dict."""
    meta = {f.name: row[f.name] for f in FIELDS if f.wds_ext == "json"}
    return {
        "__key__": row["id"],
        "png": image_bytes,
        "cls": str(CLASSES.index(row["label"])).encode(),
        "json": json.dumps(meta, sort_keys=True, separators=(",", ":")).encode(),
    }


def check_columns(table: pa.Table, fields: Sequence[Field], where: str) -> None:
    """Raise `SchemaError` unless `table` has every field with allowed class values."""
    missing = [f.name for f in fields if f.name not in table.column_names]
    if missing:
        raise SchemaError(f"{where}: missing columns {missing}; expected {field_names(fields)}")
    for f in fields:
        if f.dtype != "class":
            continue
        bad = sorted(set(table.column(f.name).to_pylist()) - set(f.names))
        if bad:
            raise SchemaError(f"{where}: column {f.name!r} has values {bad}; expected one of {list(f.names)}")
