"""FID between two halves of real COVID-19 images, split by image (one patient on both sides) and by patient
(`report_quality.patient_halves`), at one n, over seeds: what the report's reference row measured before and
measures now.

    python benchmarks/quality_halves.py ../shared/cxr-rehearsal [--seeds 50] [--side 32] [--dims 32]

The folder is an imagefolder (metadata.csv: file_name, label, patient_id). Features: the images at SIDE² pixels
(0..1), projected on their first DIMS principal components (a fixed, classifier-free space; the report uses a
trained classifier's features, so compare the two splits here, not these numbers with the report's).
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import numpy as np
from PIL import Image

from validation_tools.explain import fid
from validation_tools.report_quality import patient_halves


def covid_features(root: Path, side: int, dims: int) -> tuple[np.ndarray, list[dict[str, str]]]:
    """PCA features of the folder's COVID-19 images, and their metadata rows."""
    with open(root / "metadata.csv", newline="", encoding="utf-8") as f:
        rows = [r for r in csv.DictReader(f) if r["label"].lower() in ("covid", "covid-19")]
    pixels = np.stack(
        [
            np.asarray(Image.open(root / r["file_name"]).convert("L").resize((side, side)), np.float64).ravel() / 255
            for r in rows
        ]
    )
    centred = pixels - pixels.mean(0)
    _, _, components = np.linalg.svd(centred, full_matrices=False)
    return centred @ components[:dims].T, rows


def halves_fid(features: np.ndarray, rows: list[dict[str, str]], seeds: int) -> dict[str, list[float]]:
    """FID per seed of halves split by image and by patient, both subsampled to the smaller patient half's n."""
    out: dict[str, list[float]] = {"by image": [], "by patient": [], "n": []}
    for seed in range(seeds):
        rng = np.random.default_rng(seed)
        a, b = patient_halves(rows, seed=seed)
        n = min(len(a), len(b))
        out["n"].append(n)
        out["by patient"].append(fid(features[rng.permutation(a)[:n]], features[rng.permutation(b)[:n]]))
        order = rng.permutation(len(rows))
        out["by image"].append(fid(features[order[:n]], features[order[n : 2 * n]]))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--seeds", type=int, default=50)
    parser.add_argument("--side", type=int, default=32)
    parser.add_argument("--dims", type=int, default=32)
    args = parser.parse_args()
    features, rows = covid_features(args.folder, args.side, args.dims)
    patients = len({r["patient_id"] for r in rows})
    print(f"{len(rows)} COVID-19 images of {patients} patients; {args.side}² pixels, {args.dims} PCA dims")
    measured = halves_fid(features, rows, args.seeds)
    print(f"n per half: {min(measured['n'])}-{max(measured['n'])} (the smaller patient half's, per seed)")
    for name in ("by image", "by patient"):
        values = measured[name]
        print(
            f"halves {name}: FID {np.mean(values):.1f} ± {np.std(values, ddof=1):.1f} (mean ± SD, {args.seeds} seeds)"
        )


if __name__ == "__main__":
    main()
