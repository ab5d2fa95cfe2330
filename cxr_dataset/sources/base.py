"""What every source reader yields: a list of images with ids, patients and classes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np


@dataclass(frozen=True)
class SourceImage:
    """One real image before preparation; `origin` tells the reader how to load its pixels."""

    id: str
    patient_id: str
    label: str
    source: str
    origin: str


class Source(Protocol):
    """A reader of one dataset. Instances must pickle: `prepare` loads pixels in worker processes."""

    kind: str

    def records(self) -> list[SourceImage]:
        """Every selected image, in the source's own order (the paper split depends on it)."""
        ...

    def load(self, record: SourceImage, size: int) -> np.ndarray:
        """The record's pixels as a 2-D uint8 array (`size` is a hint; `prepare` resizes)."""
        ...
