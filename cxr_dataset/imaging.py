"""Pixel conversions shared by every stage: 8-bit grayscale, square resize, deterministic PNG."""

from __future__ import annotations

import io
from collections.abc import Sequence
from functools import partial
from pathlib import Path

import numpy as np
from PIL import Image

from cxr_dataset.workers import process_pool

RESIZE_MODES = ("crop", "pad", "stretch")
DEFAULT_RESIZE = "crop"  # adds no border: padding gave non-square sources (one class's, often) a black edge


def to_square(pixels: np.ndarray, size: int, mode: str = DEFAULT_RESIZE) -> np.ndarray:
    """Resize a 2-D uint8 image to `size`×`size`: centre-crop the long side, pad the short side with black,
    or stretch (change the aspect ratio)."""
    if mode not in RESIZE_MODES:
        raise ValueError(f"resize mode must be one of {list(RESIZE_MODES)}, got {mode!r}")
    h, w = pixels.shape
    if (h, w) == (size, size):
        return pixels
    if mode == "stretch":
        return np.asarray(Image.fromarray(pixels, mode="L").resize((size, size), Image.Resampling.LANCZOS))
    side = max(h, w) if mode == "pad" else min(h, w)
    square = np.zeros((side, side), dtype=np.uint8)
    # Paste (pad) or cut (crop) the centred overlap of the two frames.
    oy, ox = (side - h) // 2, (side - w) // 2
    sy, sx = max(-oy, 0), max(-ox, 0)
    ty, tx = max(oy, 0), max(ox, 0)
    ch, cw = min(h, side), min(w, side)
    square[ty : ty + ch, tx : tx + cw] = pixels[sy : sy + ch, sx : sx + cw]
    img = Image.fromarray(square, mode="L").resize((size, size), Image.Resampling.LANCZOS)
    return np.asarray(img)


def to_uint8(values: np.ndarray) -> np.ndarray:
    """Scale any numeric image linearly onto 0-255 (a constant image becomes black); 16-bit data is
    scaled, never clipped."""
    values = np.asarray(values, dtype=np.float64)
    lo, hi = float(values.min()), float(values.max())
    if hi <= lo:
        return np.zeros(values.shape, dtype=np.uint8)
    return np.round((values - lo) * (255.0 / (hi - lo))).astype(np.uint8)


def encode_png(pixels: np.ndarray) -> bytes:
    """Encode a 2-D uint8 array as PNG; the same pixels always give the same bytes."""
    buf = io.BytesIO()
    Image.fromarray(pixels, mode="L").save(buf, format="PNG", compress_level=6)
    return buf.getvalue()


def read_gray(source: Path | bytes, size: int | None = None) -> np.ndarray:
    """Read an image file (or its bytes) as a 2-D uint8 array, resized (bicubic) to `size`² when given."""
    with Image.open(io.BytesIO(source) if isinstance(source, bytes) else source) as img:
        gray = img.convert("L")
        if size is not None and gray.size != (size, size):
            gray = gray.resize((size, size), Image.Resampling.BICUBIC)
        return np.asarray(gray)


def read_gray_batch(sources: Sequence[Path | bytes], size: int, workers: int = 1) -> np.ndarray:
    """`read_gray` over many images into one uint8 N×size×size array, decoding in `workers` processes."""
    out = np.zeros((len(sources), size, size), dtype=np.uint8)
    read = partial(read_gray, size=size)
    if workers > 1 and len(sources) > 64:
        with process_pool(workers) as pool:
            pixels = pool.map(read, sources, chunksize=max(16, len(sources) // (8 * workers)))
            for i, image in enumerate(pixels):
                out[i] = image
    else:
        for i, source in enumerate(sources):
            out[i] = read(source)
    return out
