"""Streaming throughput: `wds_pipeline` through a DataLoader with 0/1/2 workers, against a raw decode loop.

    python benchmarks/stream.py [--images 4000] [--size 256]

The raw loop decodes the same PNG bytes (already in memory) to uint8 tensors in one process; the pipeline reads
the shards from disk, parses the tar stream, decodes PNG + JSON + label and shuffles, unbatched and in batches
of 32 (workers hand batches to the main process far more cheaply than single samples). Ratios: pipeline / raw.
"""

from __future__ import annotations

import argparse
import io
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from build import fake_synthetic

from builders.release import build_release
from cxr_dataset.release_folder import read_release
from cxr_dataset.streaming import wds_pipeline


def raw_rate(release: Path) -> float:
    blobs = []
    for shard in read_release(release).shard_paths():
        with tarfile.open(shard) as tar:
            blobs += [tar.extractfile(m).read() for m in tar if m.name.endswith(".png")]
    start = time.perf_counter()
    for data in blobs:
        with Image.open(io.BytesIO(data)) as img:
            torch.from_numpy(np.array(img))  # the stored PNGs are mode L already
    return len(blobs) / (time.perf_counter() - start)


def pipeline_rate(release: Path, workers: int, batch_size: int | None) -> float:
    pipeline = wds_pipeline(release, num_workers=workers, batch_size=batch_size)
    loader = torch.utils.data.DataLoader(pipeline, batch_size=None, num_workers=workers)
    start = time.perf_counter()
    n = sum(len(item["key"]) if batch_size else 1 for item in loader)
    return n / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=4000)
    parser.add_argument("--size", type=int, default=256)
    args = parser.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        folders = fake_synthetic(Path(tmp) / "synth", args.images, args.size)
        release = Path(tmp) / "release" / "covid-synthetic-cxr"
        build_release(folders, release)
        raw = raw_rate(release)
        print(f"{args.images} samples at {args.size}², {len(read_release(release).shard_paths())} shards")
        print(f"{'raw decode loop (1 process)':<36} {raw:>8.0f} samples/s  1.00x")
        for batch_size in (None, 32):
            for workers in (0, 1, 2):
                rate = pipeline_rate(release, workers, batch_size)
                label = f"wds_pipeline, {workers} workers, batch {batch_size or '-'}"
                print(f"{label:<36} {rate:>8.0f} samples/s  {rate / raw:.2f}x")


if __name__ == "__main__":
    main()
