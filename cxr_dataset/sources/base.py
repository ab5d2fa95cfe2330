"""What every source reader yields: a list of images with ids, patients and classes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from cxr_dataset.errors import SourceError
from cxr_dataset.schema import CLASSES

DEFAULT_VIEWS = ("PA", "AP", "AP Supine")  # frontal views; lateral "L" only when asked
RSNA_NORMAL_RULES = ("target0", "normal-only")
PAPER_TRAIN_FRACTION = 0.8  # the seed notebooks: first 80% of each class (in file order) for training


@dataclass(frozen=True)
class SourceImage:
    """One real image before preparation; `origin` tells the reader how to load its pixels."""

    id: str
    patient_id: str  # the namespaced join key (e.g. ``imagefolder_P1``); the image's own id where none is known
    label: str
    source: str
    origin: str
    view: str = ""
    license: str = ""
    doi: str = ""
    url: str = ""
    extra: str = ""  # the source's other metadata columns, as a JSON object
    native_patient_id: str = ""  # the patient id as the source writes it; empty: the source names no patients


@dataclass(frozen=True, kw_only=True)
class SourceOptions:
    """Selection settings shared by the readers (the CLI's `prepare` options)."""

    seed: int = 0  # phantom pixels
    paper: bool = False  # select rows exactly as the seed's notebooks did (for `--split paper`)
    views: tuple[str, ...] = DEFAULT_VIEWS  # covid-collection views to keep
    covid_collection_classes: tuple[str, ...] = ("covid",)  # add "normal" (No Finding), "pneumonia"
    rsna_normal: str = "target0"  # "target0": every Target-0 patient (the seed); "normal-only": class Normal
    strict: bool = False  # refuse (not just warn about) a release zip whose MD5 differs
    imagefolder_label: str = "label"  # the imagefolder source's label column

    def __post_init__(self) -> None:
        if self.rsna_normal not in RSNA_NORMAL_RULES:
            raise SourceError(f"rsna normal rule must be one of {list(RSNA_NORMAL_RULES)}, got {self.rsna_normal!r}")
        unknown = sorted(set(self.covid_collection_classes) - set(CLASSES))
        if unknown:
            raise SourceError(f"covid-collection classes must be among {list(CLASSES)}, got {unknown}")


class Source(Protocol):
    """A reader of one dataset. Instances must pickle: `prepare` loads pixels in worker processes."""

    kind: str

    def records(self) -> list[SourceImage]:
        """Every selected image, in the source's own order (the paper split depends on it)."""
        ...

    def load(self, record: SourceImage, size: int) -> np.ndarray:
        """The record's pixels as a 2-D uint8 array (`size` is a hint; `prepare` resizes)."""
        ...

    # Optional: `read_view(record) -> str`, the view from the image file when the source's tables lack it
    # (RSNA: the DICOM header's ViewPosition). `prepare` calls it in its workers, after `load`.
    # Optional: `fingerprint(record) -> str`, a digest of the record's bytes where `origin` names no plain file
    # (a zip member); `prepare` reuses a cached image only while it is unchanged.
