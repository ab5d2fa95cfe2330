"""`cxrds translate`: run a trained G_A over every training image of the task's source class.

Writes ``SYNTH/images/<id>.png`` and ``SYNTH/provenance.parquet`` (`schema.PROVENANCE_FIELDS`): one row per
synthetic image naming its source image and patient, the checkpoint and config hashes, the code version
and the PNG's SHA-256. The same checkpoint and inputs always give the same bytes on the same hardware.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from cxr_dataset import __version__
from cxr_dataset.errors import ConfigError
from cxr_dataset.fileio import atomic_write_bytes, sha256_bytes
from cxr_dataset.imaging import encode_png, read_gray
from cxr_dataset.manifest import read_manifest
from cxr_dataset.progress import ProgressFn, no_progress
from cxr_dataset.schema import PROVENANCE_FIELDS, PROVENANCE_NAME, TASK_CONFIG, TASK_SOURCE_CLASS, make_key
from cxr_dataset.tables import write_table
from generator.checkpoint import load_checkpoint, load_into
from generator.cyclegan import autocast
from generator.networks import build_generator
from generator.train import pick_device


@dataclass(frozen=True)
class TranslateResult:
    provenance_path: Path
    images: int
    task: str


@torch.inference_mode()
def translate(
    prepared: Path,
    checkpoint: Path,
    out: Path,
    *,
    batch_size: int = 16,
    precision: str = "bf16",
    split: str = "train",
    progress: ProgressFn = no_progress,
) -> TranslateResult:
    """Translate the `split` images of the checkpoint's source class into synthetic COVID-19 images.

    Example:
        >>> translate(Path("prepared"), Path("runs/nc"), Path("synthetic/nc"))  # doctest: +SKIP
    """
    if batch_size < 1:
        raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
    ckpt = load_checkpoint(checkpoint)
    cfg, task = ckpt.config, ckpt.meta["task"]
    device = pick_device()
    g_a = build_generator(cfg.model).to(device).eval()
    load_into(g_a, ckpt.tensors("nets.G_A."), f"{ckpt.tensors_path} [G_A]")

    manifest = read_manifest(prepared)
    rows = manifest.rows(label=TASK_SOURCE_CLASS[task], split=split)
    if not rows:
        raise ConfigError(f"{prepared}: no {split!r} images of class {TASK_SOURCE_CLASS[task]!r} to translate")
    size = cfg.crop_size
    common = {
        "source_class": TASK_SOURCE_CLASS[task],
        "task": task,
        "split": split,
        "checkpoint_sha256": ckpt.sha256,
        "config_sha256": ckpt.meta["config_sha256"],
        "preset": cfg.preset,
        "code_version": __version__,
        "seed": cfg.seed,
        "width": size,
        "height": size,
    }
    provenance = []
    for start in range(0, len(rows), batch_size):
        batch = rows[start : start + batch_size]
        pixels = np.stack([read_gray(manifest.image_path(r), size) for r in batch])
        x = torch.from_numpy(pixels).unsqueeze(1).to(device).float().div_(127.5).sub_(1.0)
        with autocast(device, precision):
            y = g_a(x).float()
        outputs = ((y.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).squeeze(1).cpu().numpy()
        for row, image in zip(batch, outputs):
            key = make_key(TASK_CONFIG[task], row["id"])
            data = encode_png(image)
            rel = f"images/{key}.png"
            atomic_write_bytes(out / rel, data)
            provenance.append(
                {
                    **common,
                    "id": key,
                    "source_dataset": row["source"],
                    "source_image_id": row["id"],
                    "source_patient_id": row["patient_id"],
                    "sha256": sha256_bytes(data),
                    "path": rel,
                }
            )
        progress(f"translate {task}", len(provenance), len(rows))
    meta = {"task": task, "checkpoint": str(ckpt.json_path), "manifest_sha256": manifest.sha256}
    path = write_table(provenance, PROVENANCE_FIELDS, out / PROVENANCE_NAME, meta)
    return TranslateResult(path, len(provenance), task)
