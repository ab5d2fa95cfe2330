"""DICOM pixels to 8-bit grayscale, through pydicom.

Order of operations, as the standard has them: modality LUT (rescale slope/intercept), then VOI LUT or
window centre/width when the file has one, then linear scaling of the result to 0-255, then inversion for
MONOCHROME1 (where high values are dark). Compressed transfer syntaxes decode through pydicom's pixel
plugins: JPEG baseline and JPEG 2000 via Pillow; others (JPEG-LS, lossless JPEG) with `pip install
cxrds[dicom-codecs]` (pylibjpeg).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cxr_dataset.errors import SourceError
from cxr_dataset.imaging import to_uint8

GRAYSCALE = ("MONOCHROME1", "MONOCHROME2")


def read_dicom(path: Path, max_pixels: int) -> np.ndarray:
    """Decode a DICOM file to a 2-D uint8 array; raises `SourceError` naming the file and the problem."""
    import pydicom
    from pydicom.errors import InvalidDicomError
    from pydicom.pixels import apply_modality_lut, apply_voi_lut

    if not path.is_file():
        raise SourceError(f"{path}: missing file")
    if path.stat().st_size == 0:
        raise SourceError(f"{path}: empty file")
    try:
        ds = pydicom.dcmread(path)
    except (InvalidDicomError, OSError, ValueError) as e:
        raise SourceError(f"{path}: not a readable DICOM file ({e})") from None
    if "PixelData" not in ds:
        raise SourceError(f"{path}: DICOM without pixel data")
    photometric = str(ds.get("PhotometricInterpretation", ""))
    if photometric not in GRAYSCALE:
        raise SourceError(f"{path}: photometric interpretation {photometric!r} unsupported; expected {GRAYSCALE}")
    try:
        rows, cols = int(ds.get("Rows", 0)), int(ds.get("Columns", 0))
    except (TypeError, ValueError):
        rows = cols = 0
    if rows <= 0 or cols <= 0:
        raise SourceError(f"{path}: DICOM without valid Rows/Columns")
    frames, samples = _count(ds, path, "NumberOfFrames"), _count(ds, path, "SamplesPerPixel")
    total = rows * cols * frames * samples  # every frame and sample would be decoded: count them all
    if total > max_pixels:
        shape = f"{cols}×{rows}" + (f" × {frames} frames" if frames > 1 else "")
        shape += f" × {samples} samples" if samples > 1 else ""
        raise SourceError(f"{path}: {shape} ({total:,} pixels) exceeds the {max_pixels:,}-pixel limit")
    if frames > 1:
        raise SourceError(f"{path}: expected one 2-D frame, the header declares {frames} frames")
    try:
        pixels = ds.pixel_array
    except (RuntimeError, NotImplementedError, ValueError, AttributeError, KeyError, TypeError) as e:
        syntax = ds.file_meta.get("TransferSyntaxUID", "?")
        raise SourceError(
            f"{path}: cannot decode pixels (transfer syntax {syntax}): {e}; try `pip install cxrds[dicom-codecs]`"
        ) from None
    if pixels.ndim != 2:
        raise SourceError(f"{path}: expected one 2-D frame, got pixel array of shape {pixels.shape}")
    values = apply_modality_lut(pixels, ds)
    if "VOILUTSequence" in ds or "WindowCenter" in ds:
        values = apply_voi_lut(values, ds, index=0)
    out = to_uint8(values)
    return 255 - out if photometric == "MONOCHROME1" else out


def _count(ds, path: Path, keyword: str) -> int:
    """A header count that defaults to 1 (NumberOfFrames, SamplesPerPixel); 0 or absent reads as 1, as pydicom
    decodes it; anything else that is not a positive integer is `SourceError`."""
    value = ds.get(keyword)
    if value is None or value == "":
        return 1
    try:
        count = int(value)
    except (TypeError, ValueError):
        count = -1
    if count < 0:
        raise SourceError(f"{path}: {keyword} must be a positive integer, got {value!r}")
    return max(count, 1)


def read_view(path: Path) -> str:
    """The file's ViewPosition (PA, AP, LL...) from its header alone, or "" when absent or unreadable."""
    import pydicom
    from pydicom.errors import InvalidDicomError

    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=["ViewPosition"])
    except (InvalidDicomError, OSError, ValueError):
        return ""
    return str(ds.get("ViewPosition", "") or "").strip()
