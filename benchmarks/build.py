"""`cxrds build` time against its I/O floor and `tar cf`, and load throughput against raw PIL decoding.

The I/O floor is what any build of both formats must do, measured in the same run: read every PNG and check
its SHA-256, write its bytes twice (once per format), and hash both outputs for SHA256SUMS.

    python benchmarks/build.py [--images 2000] [--size 256]     # up to --images 21295

Synthetic folders are faked from phantom PNGs with provenance rows in the real schema (78% G_NC, 22% G_PC,
as in the release). Prints seconds and ratios, and the peak RSS of the build (run it at two sizes to see that
it stays flat in N).
"""

from __future__ import annotations

import argparse
import io
import resource
import subprocess
import tempfile
import time
from pathlib import Path

from PIL import Image

from builders.release import build_release
from cxr_dataset.fileio import sha256_bytes, sha256_file
from cxr_dataset.imaging import encode_png
from cxr_dataset.loading import load_release, wds_release
from cxr_dataset.schema import PROVENANCE_FIELDS, PROVENANCE_NAME, TASK_CONFIG, TASK_SOURCE_CLASS
from cxr_dataset.sources.phantom import render_phantom
from cxr_dataset.tables import write_table

G_NC_SHARE = 16_537 / 21_295


def fake_synthetic(root: Path, n: int, size: int) -> list[Path]:
    """Two translate-like folders of phantom PNGs (a few distinct images repeated, to save time)."""
    templates = [encode_png(render_phantom("covid", size, seed=0, patient=p, image=0)) for p in range(16)]
    folders = []
    n_nc = round(n * G_NC_SHARE)
    for task, count in (("normal2covid", n_nc), ("pneumonia2covid", n - n_nc)):
        folder = root / task
        (folder / "images").mkdir(parents=True)
        rows = []
        for i in range(count):
            key = f"{TASK_CONFIG[task]}_bench-{i:06d}"
            data = templates[i % len(templates)]
            (folder / "images" / f"{key}.png").write_bytes(data)
            rows.append(
                {
                    "id": key,
                    "source_dataset": "phantom",
                    "source_image_id": f"bench-{i:06d}",
                    "source_patient_id": f"p{i // 3}",
                    "source_md5": "",
                    "source_class": TASK_SOURCE_CLASS[task],
                    "task": task,
                    "split": "train",
                    "checkpoint_sha256": "0" * 64,
                    "config_sha256": "0" * 64,
                    "preset": "tiny",
                    "code_version": "bench",
                    "seed": 0,
                    "precision": "fp32",
                    "sha256": sha256_bytes(data),
                    "width": size,
                    "height": size,
                    "path": f"images/{key}.png",
                }
            )
        write_table(rows, PROVENANCE_FIELDS, folder / PROVENANCE_NAME, {"task": task})
        folders.append(folder)
    return folders


def io_floor(pngs: list[Path], out: Path) -> float:
    """Seconds to read + hash every PNG, write the bytes into two files, and hash both files."""
    start = time.perf_counter()
    outputs = [out / "floor-parquet.bin", out / "floor-tar.bin"]
    with open(outputs[0], "wb") as a, open(outputs[1], "wb") as b:
        for path in pngs:
            data = path.read_bytes()
            sha256_bytes(data)
            a.write(data)
            b.write(data)
    for path in outputs:
        sha256_file(path)
    seconds = time.perf_counter() - start
    for path in outputs:
        path.unlink()
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--size", type=int, default=256)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        folders = fake_synthetic(tmp / "synth", args.images, args.size)
        pngs = sorted(str(p.relative_to(tmp)) for f in folders for p in (f / "images").glob("*.png"))
        list_file = tmp / "files.txt"
        list_file.write_text("\n".join(pngs) + "\n")

        floor_s = io_floor([tmp / p for p in pngs], tmp)
        start = time.perf_counter()
        subprocess.run(["tar", "cf", str(tmp / "plain.tar"), "-C", str(tmp), "-T", str(list_file)], check=True)
        tar_s = time.perf_counter() - start
        start = time.perf_counter()
        release = tmp / "release" / "covid-synthetic-cxr"
        build_release(folders, release)
        build_s = time.perf_counter() - start
        build_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

        blobs = [(tmp / p).read_bytes() for p in pngs]
        start = time.perf_counter()
        for data in blobs:
            with Image.open(io.BytesIO(data)) as img:
                img.convert("L").load()
        raw = len(blobs) / (time.perf_counter() - start)
        import webdataset  # noqa: F401  (imports torch: not part of the decode loop's time)

        start = time.perf_counter()
        n = sum(1 for _ in wds_release(release))
        wds = n / (time.perf_counter() - start)
        dataset = load_release(release)["train"]
        start = time.perf_counter()
        n_hf = sum(1 for row in dataset if row["image"].load() is not None)
        hf = n_hf / (time.perf_counter() - start)

    print(f"{args.images} images at {args.size}²")
    print(f"{'I/O floor (read+hash, 2 writes, hash)':<36} {floor_s:>8.2f} s   1.00x")
    print(f"{'tar cf of the PNGs':<36} {tar_s:>8.2f} s   {tar_s / floor_s:.2f}x")
    print(f"{'cxrds build (parquet+wds+card+sums)':<36} {build_s:>8.2f} s   {build_s / floor_s:.2f}x  (goal <= 1.5x)")
    print(f"{'raw PIL decode of the same bytes':<36} {raw:>8.0f} img/s 1.00x")
    print(f"{'webdataset .decode(pill)':<36} {wds:>8.0f} img/s {wds / raw:.2f}x  (goal >= 0.9x)")
    print(f"{'HF datasets iteration + decode':<36} {hf:>8.0f} img/s {hf / raw:.2f}x")
    print(f"peak RSS after build: {build_rss:.0f} MiB")


if __name__ == "__main__":
    main()
