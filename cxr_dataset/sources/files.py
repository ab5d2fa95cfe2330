"""Reading one image file of any supported kind (PNG, JPEG, DICOM) into 2-D uint8, with clear errors."""

from __future__ import annotations

import csv
import io
import warnings
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from cxr_dataset.errors import SourceError
from cxr_dataset.imaging import to_uint8
from cxr_dataset.sources.dicom import read_dicom

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".dcm")
MAX_PIXELS = 100_000_000  # larger images are refused as possible decompression bombs
MAX_FILE_BYTES = 1 << 30  # larger files (or archive members, uncompressed) are refused before reading
# What an archive member must start with to be decoded (Pillow's format name by leading bytes).
IMAGE_SIGNATURES = {b"\x89PNG\r\n\x1a\n": "PNG", b"\xff\xd8\xff": "JPEG"}
SIGNATURE_BYTES = max(len(s) for s in IMAGE_SIGNATURES)


class UnknownSignatureError(SourceError):
    """A stream's first bytes are not a JPEG's or PNG's; nothing past them was read."""


def read_csv_rows(path: Path, required: tuple[str, ...], hint: str = "") -> list[dict[str, str]]:
    """Rows of a UTF-8 CSV (BOM allowed) that has the `required` columns; `SourceError` names the file and
    the problem (missing columns, bytes that are not UTF-8, malformed CSV)."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            missing = [c for c in required if c not in (reader.fieldnames or [])]
            if missing:
                raise SourceError(f"{path}: missing columns {missing}{hint}")
            return list(reader)
    except UnicodeDecodeError as e:
        raise SourceError(f"{path}: not UTF-8 text (byte {e.start}: {e.reason}); save it as UTF-8") from None
    except csv.Error as e:
        raise SourceError(f"{path}: malformed CSV ({e})") from None
    except OSError as e:
        raise SourceError(f"{path}: unreadable ({e.strerror or e})") from None


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
    if not path.is_file():
        raise SourceError(f"{path}: missing file")
    size = path.stat().st_size
    if size == 0:
        raise SourceError(f"{path}: empty file")
    if size > MAX_FILE_BYTES:
        raise SourceError(f"{path}: {size:,} bytes exceeds the {MAX_FILE_BYTES:,}-byte limit")
    if path.suffix.lower() == ".dcm":
        return read_dicom(path, max_pixels)
    return _decode(path, str(path), max_pixels)


def load_image_bytes(data: bytes, where: str, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """`load_image_stream` for bytes already read; `where` names them in errors."""
    return load_image_stream(io.BytesIO(data), where, max_pixels)


def load_image_stream(stream: BinaryIO, where: str, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Decode a seekable stream (an archive member) read as it decodes, never whole: its first bytes must be a
    PNG or JPEG signature, else `SourceError` after reading only those; `where` names it in errors."""
    head = stream.read(SIGNATURE_BYTES)
    if not head:
        raise SourceError(f"{where}: empty file")
    kind = image_kind(head)
    if kind is None:
        raise UnknownSignatureError(
            f"{where}: not a readable image (starts with 0x{head.hex()}; expected a JPEG or PNG)"
        )
    stream.seek(0)
    return _decode(stream, where, max_pixels, formats=(kind,))


def image_kind(head: bytes) -> str | None:
    """Pillow's format name ("PNG", "JPEG") for data starting with `head`, or None."""
    return next((kind for magic, kind in IMAGE_SIGNATURES.items() if head.startswith(magic)), None)


def _decode(source: Path | BinaryIO, where: str, max_pixels: int, formats: tuple[str, ...] | None = None) -> np.ndarray:
    try:
        with warnings.catch_warnings():
            # We apply our own limit from the header; Pillow's warning would only repeat it.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(source, formats=formats)
        with img:
            if img.width * img.height > max_pixels:
                raise SourceError(f"{where}: {img.width}×{img.height} exceeds the {max_pixels:,}-pixel limit")
            img = ImageOps.exif_transpose(img)
            if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
                return to_uint8(np.asarray(img))
            if img.mode in ("RGBA", "LA", "PA"):  # composite transparency on black
                img = Image.alpha_composite(Image.new("RGBA", img.size, "black"), img.convert("RGBA"))
            return np.asarray(img.convert("L"))
    except UnidentifiedImageError:  # its message holds the stream's repr, not a name
        raise SourceError(f"{where}: not a readable image (no decoder recognises it)") from None
    except Image.DecompressionBombError as e:  # Pillow's own, larger limit, checked when the header is read
        raise SourceError(f"{where}: exceeds the {max_pixels:,}-pixel limit ({e})") from None
    except (OSError, SyntaxError, ValueError) as e:
        raise SourceError(f"{where}: not a readable image ({e})") from None
