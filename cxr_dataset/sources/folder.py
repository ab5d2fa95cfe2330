"""Class folders: ``root/<class>/*.png|jpg|jpeg``, e.g. a Kaggle-style COVID/Normal/Pneumonia tree.

Folder names map onto the schema's classes through `CLASS_NAMES` (case-insensitive); other folders are
ignored. Folders carry no patient information, so every image counts as its own patient (patient-level
splits then equal image-level splits: use a reader that knows patients where one exists).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from cxr_dataset.errors import SourceError
from cxr_dataset.schema import make_key
from cxr_dataset.sources.base import SourceImage

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
EXTENSIONS = (".png", ".jpg", ".jpeg")
MAX_PIXELS = 100_000_000  # larger files are refused as possible decompression bombs


@dataclass(frozen=True)
class FolderSource:
    root: Path
    kind: str = "folder"

    def records(self) -> list[SourceImage]:
        if not self.root.is_dir():
            raise SourceError(f"folder source {self.root}: not a directory")
        out = []
        for sub in sorted(p for p in self.root.iterdir() if p.is_dir()):
            label = CLASS_NAMES.get(sub.name.lower())
            if label is None:
                continue
            for path in sorted(p for p in sub.iterdir() if p.suffix.lower() in EXTENSIONS):
                key = make_key("folder", label, path.stem)
                out.append(SourceImage(id=key, patient_id=key, label=label, source=self.kind, origin=str(path)))
        if not out:
            raise SourceError(f"folder source {self.root}: no images in class folders {sorted(set(CLASS_NAMES))}")
        return out

    def load(self, record: SourceImage, size: int) -> np.ndarray:
        return load_image_file(Path(record.origin))


def load_image_file(path: Path) -> np.ndarray:
    """Decode an image file to 2-D uint8; 16-bit and float images are min-max scaled, not clipped."""
    if path.stat().st_size == 0:
        raise SourceError(f"{path}: empty file")
    try:
        with Image.open(path) as img:
            if img.width * img.height > MAX_PIXELS:
                raise SourceError(f"{path}: {img.width}×{img.height} exceeds the {MAX_PIXELS:,}-pixel limit")
            img = ImageOps.exif_transpose(img)
            if img.mode in ("I;16", "I;16B", "I", "F"):
                return _scale_to_uint8(np.asarray(img, dtype=np.float64))
            return np.asarray(img.convert("L"))
    except (OSError, Image.DecompressionBombError) as e:
        raise SourceError(f"{path}: not a readable image ({e})") from None


def _scale_to_uint8(pixels: np.ndarray) -> np.ndarray:
    lo, hi = float(pixels.min()), float(pixels.max())
    if hi <= lo:
        return np.zeros(pixels.shape, dtype=np.uint8)
    return np.round((pixels - lo) / (hi - lo) * 255).astype(np.uint8)
