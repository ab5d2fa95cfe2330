"""Class folders: ``root/<class>/*.png|jpg|jpeg|dcm``, e.g. a Kaggle-style COVID/Normal/Pneumonia tree.

Folder names map onto the schema's classes through `CLASS_NAMES` (case-insensitive); other folders are
ignored. Folders carry no patient information, so every image counts as its own patient (patient-level
splits then equal image-level splits: use a reader that knows patients where one exists).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cxr_dataset.errors import SourceError
from cxr_dataset.schema import make_key
from cxr_dataset.sources.base import SourceImage
from cxr_dataset.sources.files import IMAGE_SUFFIXES, load_image_file

CLASS_NAMES = {
    "normal": "normal",
    "no finding": "normal",
    "no_finding": "normal",
    "pneumonia": "pneumonia",
    "viral pneumonia": "pneumonia",
    "bacterial pneumonia": "pneumonia",
    "covid": "covid",
    "covid-19": "covid",
    "covid19": "covid",
    "covid_19": "covid",
}


@dataclass(frozen=True)
class FolderSource:
    root: Path
    kind: str = "folder"

    def records(self) -> list[SourceImage]:
        if not self.root.is_dir():
            raise SourceError(f"folder source {self.root}: not a directory")
        out, skipped = [], []
        for sub in sorted(p for p in self.root.iterdir() if p.is_dir()):
            label = CLASS_NAMES.get(sub.name.lower())
            if label is None:
                skipped.append(sub.name)
                continue
            by_key: dict[str, Path] = {}
            for path in sorted(p for p in sub.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES):
                key = make_key("folder", label, path.stem)
                if key in by_key:
                    raise SourceError(f"{path} and {by_key[key]}: one image name twice; rename one of them")
                by_key[key] = path
                out.append(SourceImage(id=key, patient_id=key, label=label, source=self.kind, origin=str(path)))
        if skipped:
            warnings.warn(
                f"folder source {self.root}: skipped folders {skipped}, which name no class "
                f"(known: {sorted(CLASS_NAMES)})",
                stacklevel=2,
            )
        if not out:
            raise SourceError(f"folder source {self.root}: no images in class folders {sorted(set(CLASS_NAMES))}")
        return out

    def load(self, record: SourceImage, size: int) -> np.ndarray:
        return load_image_file(Path(record.origin), root=self.root)
