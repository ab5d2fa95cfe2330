"""`cxrds prepare` throughput against a plain PIL open-convert-resize-save loop over the same files.

    python benchmarks/prepare.py [--images 300] [--source-size 1024] [--size 256]

Source files are phantom radiographs written as PNG at --source-size; both sides read them, convert to
8-bit grayscale, resize to --size and write PNG. Prints images/s, the ratio (ours / plain loop), and peak
resident memory of this process and of its worker processes.
"""

from __future__ import annotations

import argparse
import resource
import shutil
import tempfile
import time
from pathlib import Path

from PIL import Image

from cxr_dataset.prepare import PrepareConfig, prepare
from cxr_dataset.sources.phantom import render_phantom


def make_sources(root: Path, n: int, size: int) -> list[Path]:
    paths = []
    for i in range(n):
        label = ("normal", "covid")[i % 2]
        path = root / label / f"img{i:05d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        img = Image.fromarray(render_phantom(label, 512, seed=0, patient=i, image=0))
        img.resize((size, size), Image.Resampling.BICUBIC).save(path)
        paths.append(path)
    return paths


def plain_loop(paths: list[Path], out: Path, size: int) -> float:
    out.mkdir(parents=True)
    start = time.perf_counter()
    for p in paths:
        with Image.open(p) as img:
            img.convert("L").resize((size, size), Image.Resampling.LANCZOS).save(out / p.name)
    return len(paths) / (time.perf_counter() - start)


def ours(root: Path, out: Path, size: int, workers: int, n: int) -> float:
    start = time.perf_counter()
    prepare([f"folder={root}"], out, PrepareConfig(size=size, workers=workers))
    return n / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=300)
    parser.add_argument("--source-size", type=int, default=1024)
    parser.add_argument("--size", type=int, default=256)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        paths = make_sources(tmp / "src", args.images, args.source_size)
        base = plain_loop(paths, tmp / "plain", args.size)
        print(f"{args.images} images {args.source_size}² → {args.size}²")
        print(f"{'plain PIL loop (1 process)':<34} {base:>8.1f} img/s  1.00x")
        for workers in (1, 2):
            rate = ours(tmp / "src", tmp / f"ours{workers}", args.size, workers, args.images)
            print(f"{f'cxrds prepare, {workers} worker(s)':<34} {rate:>8.1f} img/s  {rate / base:.2f}x")
        start = time.perf_counter()
        # unchanged: all reused
        prepare([f"folder={tmp / 'src'}"], tmp / "ours2", PrepareConfig(size=args.size, workers=2))
        print(f"{'cxrds prepare, re-run (cached)':<34} {args.images / (time.perf_counter() - start):>8.1f} img/s")
        shutil.rmtree(tmp / "src")
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(f"peak RSS: {own:.0f} MiB (this process), {children:.0f} MiB (largest worker)")


if __name__ == "__main__":
    main()
