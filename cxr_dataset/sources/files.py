"""Reading one image file of any supported kind (PNG, JPEG, DICOM) into 2-D uint8, with clear errors."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from cxr_dataset.errors import SourceError
from cxr_dataset.imaging import to_uint8
from cxr_dataset.sources.dicom import read_dicom

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".dcm")
MAX_PIXELS = 100_000_000  # larger images are refused as possible decompression bombs


def confined(root: Path, path: Path) -> Path:
    """`path`, if it resolves (links followed) inside the source folder `root`; else `SourceError`."""
    if not Path(path).resolve().is_relative_to(Path(root).resolve()):
        raise SourceError(f"{path}: resolves outside the source folder {root}; refusing to read it")
    return Path(path)


def load_image_file(path: Path, max_pixels: int = MAX_PIXELS, *, root: Path | None = None) -> np.ndarray:
    """Decode `path` to 2-D uint8. 16-bit and float images are scaled to 8 bit, not clipped; EXIF
    orientation is applied; DICOM goes through `read_dicom`. With `root`, a path that leaves it is refused."""
    if root is not None:
        confined(root, path)
    if path.suffix.lower() == ".dcm":
        return read_dicom(path, max_pixels)
    if not path.is_file():
        raise SourceError(f"{path}: missing file")
    if path.stat().st_size == 0:
        raise SourceError(f"{path}: empty file")
    try:
        with warnings.catch_warnings():
            # We apply our own limit from the header; Pillow's warning would only repeat it.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(path)
        with img:
            if img.width * img.height > max_pixels:
                raise SourceError(f"{path}: {img.width}×{img.height} exceeds the {max_pixels:,}-pixel limit")
            img = ImageOps.exif_transpose(img)
            if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
                return to_uint8(np.asarray(img))
            if img.mode in ("RGBA", "LA", "PA"):  # composite transparency on black
                img = Image.alpha_composite(Image.new("RGBA", img.size, "black"), img.convert("RGBA"))
            return np.asarray(img.convert("L"))
    except (OSError, Image.DecompressionBombError, SyntaxError) as e:
        raise SourceError(f"{path}: not a readable image ({e})") from None
