"""Does `prepare --resize` add a class-aligned border? Black edge strips and shortcut-probe AUCs per mode.

    python benchmarks/resize_shortcut.py [--data ../shared/cxr-rehearsal ...] [--size 64] [--modes crop,pad,stretch]

Each imagefolder dataset (`--data`, repeatable; default the shared rehearsal and within-source sets) is
prepared at --size² with each resize mode, into a temporary folder. Printed per dataset and mode: the share
of images per class with a whole black edge strip (a top or bottom row, or a left or right column, all at
most --black of 255), and the shortcut probes of `cxrds report` (validation_tools/shortcut_probes.py: border,
8×8 thumbnail, source; patient-grouped cross-validated AUC) with Cramér's V of label × source, per task.
"""

from __future__ import annotations

import argparse
import tempfile
import warnings
from pathlib import Path

import numpy as np

from cxr_dataset.imaging import RESIZE_MODES, read_gray_batch
from cxr_dataset.manifest import read_manifest
from cxr_dataset.prepare import PrepareConfig, prepare
from validation_tools.shortcut_probes import probe_rows, shortcut_probes

SHARED = Path(__file__).resolve().parents[2] / "shared"
DEFAULT_DATA = [SHARED / "cxr-rehearsal", SHARED / "cxr-within-source"]


def black_edge(images: np.ndarray, level: int) -> np.ndarray:
    """Per image: is a whole outer row (top, bottom) or column (left, right) at most `level`?"""
    edges = [images[:, 0, :], images[:, -1, :], images[:, :, 0], images[:, :, -1]]
    return np.any([edge.max(axis=1) <= level for edge in edges], axis=0)


def measure(data: Path, mode: str, size: int, level: int, workers: int) -> None:
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = Path(tmp) / "prepared"
        prepare([f"imagefolder={data}"], out, PrepareConfig(size=size, resize=mode, workers=workers))
        manifest = read_manifest(out)
        rows = manifest.rows()
        print(f"\n### {data.name}, --resize {mode} (manifest records {manifest.meta['resize']!r}), {size}²\n")
        images = read_gray_batch([manifest.image_path(r) for r in rows], size, workers)
        strip = black_edge(images, level)
        for label in sorted({r["label"] for r in rows}):
            chosen = np.array([r["label"] == label for r in rows])
            print(f"- {label}: {strip[chosen].mean():.0%} of {chosen.sum()} images have a whole black edge strip")
        columns, table = probe_rows(shortcut_probes(manifest, rows, workers=workers))
        print("\n| " + " | ".join(columns) + " |\n|" + "---|" * len(columns))
        print("\n".join("| " + " | ".join(row) + " |" for row in table))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, action="append", help="an imagefolder dataset (repeatable)")
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--modes", default=",".join(RESIZE_MODES))
    parser.add_argument("--black", type=int, default=0, help="an edge counts as black at or below this value")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    for data in args.data or DEFAULT_DATA:
        if not (data / "metadata.csv").is_file():
            print(f"{data}: not found, skipped")
            continue
        for mode in args.modes.split(","):
            measure(data, mode, args.size, args.black, args.workers)


if __name__ == "__main__":
    main()
