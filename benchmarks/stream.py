"""Streaming throughput: `wds_pipeline` through a DataLoader with 0/1/2 workers, against a raw decode loop.

    python benchmarks/stream.py [--images 4000] [--size 256]

The raw loop (the yardstick) decodes the same PNG bytes, already in memory, to uint8 tensors with PIL in one
process; a second raw loop does the same with the libpng decoder the pipeline uses. The pipeline reads the shards
from disk, parses the tar stream, decodes PNG + JSON + label and shuffles, unbatched and in batches of 32
(workers hand batches to the main process far more cheaply than single samples). Every figure is the median of
`--runs` passes after one untimed sample (imports); ratios are against the PIL loop.
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import tarfile
import tempfile
import time
from functools import partial
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from build import fake_synthetic

from builders.release import build_release
from cxr_dataset.release_folder import read_release
from cxr_dataset.streaming import StreamConfig, decode_gray, wds_pipeline


def stored_pngs(release: Path) -> list[bytes]:
    blobs = []
    for shard in read_release(release).shard_paths():
        with tarfile.open(shard) as tar:
            blobs += [tar.extractfile(m).read() for m in tar if m.name.endswith(".png")]
    return blobs


def pil_decode(data: bytes) -> torch.Tensor:
    with Image.open(io.BytesIO(data)) as img:
        return torch.from_numpy(np.array(img))  # the stored PNGs are mode L already


def raw_rate(blobs: list[bytes], decode) -> float:
    decode(blobs[0])
    start = time.perf_counter()
    for data in blobs:
        decode(data)
    return len(blobs) / (time.perf_counter() - start)


def pipeline_rate(release: Path, workers: int, batch_size: int | None) -> float:
    pipeline = wds_pipeline(release, StreamConfig(num_workers=workers, batch_size=batch_size))
    loader = torch.utils.data.DataLoader(pipeline, batch_size=None, num_workers=workers)
    start = time.perf_counter()
    n = sum(len(item["key"]) if batch_size else 1 for item in loader)
    return n / (time.perf_counter() - start)


def median_rate(measure, runs: int) -> float:
    return statistics.median(measure() for _ in range(runs))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=4000)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        folders = fake_synthetic(Path(tmp) / "synth", args.images, args.size)
        release = Path(tmp) / "release" / "covid-synthetic-cxr"
        build_release(folders, release)
        blobs = stored_pngs(release)
        print(f"{args.images} samples at {args.size}², {len(read_release(release).shard_paths())} shards")
        raw = median_rate(partial(raw_rate, blobs, pil_decode), args.runs)
        print(f"{'raw PIL decode loop (1 process)':<38} {raw:>8.0f} samples/s  1.00x")
        libpng = median_rate(partial(raw_rate, blobs, decode_gray), args.runs)
        print(f"{'raw decode_gray loop (1 process)':<38} {libpng:>8.0f} samples/s  {libpng / raw:.2f}x")
        for batch_size in (None, 32):
            for workers in (0, 1, 2):
                rate = median_rate(partial(pipeline_rate, release, workers, batch_size), args.runs)
                label = f"wds_pipeline, {workers} workers, batch {batch_size or '-'}"
                print(f"{label:<38} {rate:>8.0f} samples/s  {rate / raw:.2f}x")


if __name__ == "__main__":
    main()
