"""Release rows from the seed's v0.1 zips, for `cxrds build --from-release`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cxr_dataset import __version__
from cxr_dataset.errors import SourceError
from cxr_dataset.fileio import atomic_write_bytes, sha256_bytes
from cxr_dataset.imaging import encode_png
from cxr_dataset.progress import ProgressFn, no_progress
from cxr_dataset.schema import RELEASE_PRESET, SYNTHETIC_LABEL, TASK_SOURCE_CLASS, make_key
from cxr_dataset.sources.release import DATASET_NAME, check_release_zip, iter_release_images, release_zips

UNKNOWN_SEED = -1  # the seed's notebooks set none


def rows_from_release(
    zips: list[Path], workdir: Path, *, strict: bool = False, progress: ProgressFn = no_progress
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Convert every member to a grayscale PNG under `workdir`; returns release rows and one meta per zip."""
    rows, metas = [], []
    paths = [p for z in zips for p in release_zips(Path(z))]
    names = [p.name for p in paths]
    if len(set(names)) < len(names):
        raise SourceError(f"release zips {[str(p) for p in paths]}: each asset ({sorted(set(names))}) may come once")
    for path in paths:
        asset, members, md5 = check_release_zip(path, strict=strict)
        metas.append({"task": asset.task, "release_asset": path.name, "release_md5": md5})
        for i, (member, pixels) in enumerate(iter_release_images(path, members), 1):
            png = encode_png(pixels)
            key = make_key(asset.config, "v0-1", str(member.number))
            atomic_write_bytes(workdir / f"{key}.png", png)
            rows.append(
                {
                    "id": key,
                    "label": SYNTHETIC_LABEL,
                    "source_dataset": DATASET_NAME,
                    "source_image_id": f"{path.name}/{member.name}",
                    "source_patient_id": "",
                    "source_md5": md5,
                    "source_license": "",  # the release does not record which real image each came from
                    "source_class": TASK_SOURCE_CLASS[asset.task],
                    "task": asset.task,
                    "split": "train",
                    "checkpoint_sha256": "",
                    "config_sha256": "",
                    "preset": RELEASE_PRESET,
                    "code_version": __version__,
                    "seed": UNKNOWN_SEED,
                    "precision": "",  # the seed's Keras run does not say
                    "sha256": sha256_bytes(png),
                    "width": pixels.shape[1],
                    "height": pixels.shape[0],
                    "_file": workdir / f"{key}.png",
                }
            )
            progress(f"read {path.name}", i, len(members))
    return sorted(rows, key=lambda r: r["id"]), metas
