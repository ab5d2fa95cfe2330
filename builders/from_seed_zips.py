"""Synthetic folders from the seed's v0.1 zips, for `cxrds build --from-seed-zips`: each zip becomes a folder of
the kind `cxrds translate` writes (`cxr_dataset.synthetic_folder`), which the build then reads as any other."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cxr_dataset import __version__
from cxr_dataset.errors import SourceError
from cxr_dataset.fileio import atomic_write_bytes, sha256_bytes
from cxr_dataset.imaging import encode_png
from cxr_dataset.progress import ProgressFn, no_progress
from cxr_dataset.schema import NATIVE_PATIENT_ID, PROVENANCE_FIELDS, RELEASE_PRESET, TASK_SOURCE_CLASS, make_key
from cxr_dataset.sources.seed_zips import DATASET_NAME, check_seed_zip, iter_seed_zip_images, seed_zip_paths
from cxr_dataset.synthetic_folder import PROVENANCE_NAME, image_path
from cxr_dataset.tables import write_table

UNKNOWN_SEED = -1  # the seed's notebooks set none


def synthetic_from_seed_zips(
    zips: list[Path], workdir: Path, *, strict: bool = False, progress: ProgressFn = no_progress
) -> list[Path]:
    """Convert every member to a grayscale PNG in a synthetic folder per zip under `workdir`, with provenance
    rows naming the asset, the member and the zip's MD5; returns the folders."""
    paths = [p for z in zips for p in seed_zip_paths(Path(z))]
    names = [p.name for p in paths]
    if len(set(names)) < len(names):
        raise SourceError(f"release zips {[str(p) for p in paths]}: each asset ({sorted(set(names))}) may come once")
    folders = []
    for path in paths:
        asset, members, md5 = check_seed_zip(path, strict=strict)
        folder = workdir / asset.config
        rows: list[dict[str, Any]] = []
        for i, (member, pixels) in enumerate(iter_seed_zip_images(path, members), 1):
            png = encode_png(pixels)
            key = make_key(asset.config, "v0-1", str(member.number))
            atomic_write_bytes(folder / image_path(key), png)
            rows.append(
                {
                    "id": key,
                    "source_dataset": DATASET_NAME,
                    "source_image_id": f"{path.name}/{member.name}",
                    "source_patient_id": "",
                    NATIVE_PATIENT_ID: "",
                    "source_md5": md5,
                    "source_license": "",  # the release does not record which real image each came from
                    "source_class": TASK_SOURCE_CLASS[asset.task],
                    "task": asset.task,
                    "split": "train",
                    "checkpoint_sha256": "",
                    "config_sha256": "",
                    "train_manifest_sha256": "",  # the seed's generators' training data is not recorded
                    "preset": RELEASE_PRESET,
                    "code_version": __version__,
                    "seed": UNKNOWN_SEED,
                    "precision": "",  # the seed's Keras run does not say
                    "sha256": sha256_bytes(png),
                    "width": pixels.shape[1],
                    "height": pixels.shape[0],
                    "path": image_path(key),
                }
            )
            progress(f"read {path.name}", i, len(members))
        meta = {"task": asset.task, "release_asset": path.name, "release_md5": md5}
        write_table(rows, PROVENANCE_FIELDS, folder / PROVENANCE_NAME, meta)
        folders.append(folder)
    return folders
