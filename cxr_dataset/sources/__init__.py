"""Source readers, one module per dataset, looked up by the kind the CLI names (``KIND=PATH``).

| kind | PATH | classes |
|---|---|---|
| ``phantom`` | ``N`` or ``normal:N,pneumonia:N,covid:N[,per_patient:K]`` | all three, generated |
| ``covid-collection`` | covid-chestxray-dataset folder (``metadata.csv``, ``images/``) | covid (+ normal, pneumonia) |
| ``rsna`` | RSNA Pneumonia Detection Challenge folder (labels CSV, DICOM or JPG) | normal, pneumonia |
| ``folder`` | ``ROOT/<class>/*.png|jpg|dcm`` | by folder name |
| ``imagefolder`` | HF imagefolder: ``metadata.csv`` or ``.jsonl`` (``file_name``, label, ``patient_id``) | by label |
| ``release`` | the seed's ``G_NC.zip`` / ``G_PC.zip``, or their folder | covid (synthetic) |
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from cxr_dataset.errors import SourceError
from cxr_dataset.sources.base import Source, SourceImage, SourceOptions
from cxr_dataset.sources.covid_collection import CovidCollectionSource
from cxr_dataset.sources.folder import FolderSource
from cxr_dataset.sources.imagefolder import ImageFolderSource
from cxr_dataset.sources.phantom import PhantomSource
from cxr_dataset.sources.rsna import RsnaSource
from cxr_dataset.sources.seed_zips import DATASET_NAME as SEED_ZIPS_DATASET
from cxr_dataset.sources.seed_zips import SeedZipSource

SOURCE_KINDS: dict[str, Callable[[str, SourceOptions], Source]] = {
    "phantom": lambda arg, opt: PhantomSource.from_spec(arg, seed=opt.seed),
    "covid-collection": lambda arg, opt: CovidCollectionSource(Path(arg), opt),
    "rsna": lambda arg, opt: RsnaSource(Path(arg), opt),
    "folder": lambda arg, opt: FolderSource(Path(arg)),
    "imagefolder": lambda arg, opt: ImageFolderSource(Path(arg), opt.imagefolder_label),
    "seed-zips": lambda arg, opt: SeedZipSource(Path(arg), strict=opt.strict),
}
KIND_ALIASES = {"release": "seed-zips"}  # old names, still accepted; manifests record the current one
SOURCE_KINDS.update({old: SOURCE_KINDS[new] for old, new in KIND_ALIASES.items()})

# What each kind names in the `source_dataset` column stands for, for cards and Croissant.
SOURCE_TITLES: dict[str, str] = {
    "phantom": "cxrds procedural phantom (generated, not real X-rays)",
    "covid-collection": "COVID-19 Image Data Collection (ieee8023/covid-chestxray-dataset)",
    "rsna": "RSNA Pneumonia Detection Challenge (Kaggle, 2018)",
    "folder": "local image folder",
    "imagefolder": "local imagefolder dataset (metadata.csv)",
    SEED_ZIPS_DATASET: "Synthetic COVID-19 Chest X-ray Dataset v0.1 (Zunair & Hamza, 2021)",
}


def source_title(kind: str) -> str:
    """A source kind in words; unknown kinds stay as they are."""
    return SOURCE_TITLES.get(kind, kind)


def open_source(spec: str, options: SourceOptions | None = None) -> Source:
    """Open ``KIND=PATH`` (e.g. ``phantom=40``); raises `SourceError` naming the valid kinds."""
    kind, sep, arg = spec.partition("=")
    if not sep or not arg:
        raise SourceError(f"source {spec!r}: expected KIND=PATH, e.g. 'phantom=40'")
    if kind not in SOURCE_KINDS:
        raise SourceError(f"source {spec!r}: kind must be one of {sorted(SOURCE_KINDS)}, got {kind!r}")
    if kind != "phantom" and not Path(arg).exists():
        raise SourceError(f"source {spec!r}: {arg} does not exist")
    return SOURCE_KINDS[kind](arg, options or SourceOptions())


def source_path(spec: str) -> Path | None:
    """The file or folder a ``KIND=PATH`` spec reads (None for the generated phantom)."""
    kind, _, arg = spec.partition("=")
    return None if kind == "phantom" or not arg else Path(arg)


__all__ = [
    "SOURCE_KINDS",
    "SOURCE_TITLES",
    "Source",
    "SourceImage",
    "SourceOptions",
    "open_source",
    "source_path",
    "source_title",
]
