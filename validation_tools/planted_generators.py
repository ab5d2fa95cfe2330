"""Planted-truth controls of `cxrds baselines`: generators whose answer is known before anything is trained.

On phantom data the true COVID-19 distribution is the renderer itself, so a "generator" that draws fresh COVID-19
renders (new patients, the prepared data's seed, size and finding strength) is as good as a generator can be, and
one that draws seeded noise is useless. Each writes a synthetic folder in `cxrds translate`'s format (one positive
per training image of the task's source class, provenance naming that image), so `cxrds build` and
`cxrds baselines` take it like any generator's output. An evaluation that cannot tell these two apart cannot judge
a real generator: `tests/test_imbalance.py` and `benchmarks/imbalance_study.py` use them.

`imbalanced_phantom` makes the data they are judged on: phantom images prepared as usual, then real COVID-19
training images dropped to a negatives : positives ratio (validation and test untouched).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from cxr_dataset import __version__
from cxr_dataset.errors import ConfigError
from cxr_dataset.fileio import atomic_write_bytes, sha256_bytes
from cxr_dataset.imaging import encode_png
from cxr_dataset.manifest import Manifest, read_manifest, write_manifest
from cxr_dataset.ownership import claimed_output
from cxr_dataset.prepare import PrepareConfig, prepare
from cxr_dataset.schema import PROVENANCE_FIELDS, SYNTHETIC_LABEL, TASK_CONFIG, TASK_SOURCE_CLASS, make_key
from cxr_dataset.sources.phantom import render_phantom
from cxr_dataset.synthetic_folder import PROVENANCE_NAME, image_path
from cxr_dataset.tables import write_table

PLANTED = ("truth", "noise")  # fresh renders of the true COVID-19 class; seeded uniform noise
# Findings faint enough that oversampling 6 real positives stays off its ceiling (measured: docs/evaluation.md).
STRENGTH = 0.3
FRESH_PATIENTS = 1_000_000  # planted renders draw patients from here on (per planted seed), far from prepared ones


def imbalanced_phantom(
    out: Path,
    *,
    normals: int = 500,
    covid: int = 60,
    ratio: int = 50,
    strength: float = STRENGTH,
    size: int = 64,
    workers: int = 1,
) -> tuple[int, int]:
    """Prepare phantom normals and COVID-19 images (one image per patient, findings at `strength`; splits
    60/10/30 %, seed 0) into `out`, then drop real COVID-19 training rows until normals : COVID-19 = `ratio` : 1.
    Returns the training normals and COVID-19 images kept (by default 300 and 6; 150 + 18 test patients)."""
    spec = f"phantom=normal:{normals},covid:{covid},per_patient:1,strength:{strength:g}"
    fractions = {"train": 0.6, "validation": 0.1, "test": 0.3}
    prepare([spec], out, PrepareConfig(size=size, seed=0, workers=workers, fractions=fractions))
    manifest = read_manifest(out)
    rows = manifest.rows()
    train_normals = len(manifest.rows(label="normal", split="train"))
    train_covid = [r["id"] for r in rows if r["label"] == "covid" and r["split"] == "train"]
    dropped = set(train_covid[train_normals // ratio :])
    write_manifest([r for r in rows if r["id"] not in dropped], out, manifest.meta)
    return train_normals, len(train_covid) - len(dropped)


def write_planted_generator(prepared: Path, out: Path, kind: str, *, task: str = "normal2covid", seed: int = 0) -> Path:
    """Write a synthetic folder at `out` whose positives are `kind` ("truth": fresh phantom COVID-19 renders;
    "noise": seeded uniform noise), one per training image of the task's source class; returns its provenance.

    Raises:
        ConfigError: `kind` or `task` unknown, or `prepared` is not phantom data (the truth is only known there).
    """
    if kind not in PLANTED:
        raise ConfigError(f"planted generator must be one of {list(PLANTED)}, got {kind!r}")
    if task not in TASK_SOURCE_CLASS:
        raise ConfigError(f"task must be one of {list(TASK_SOURCE_CLASS)}, got {task!r}")
    manifest = read_manifest(prepared)
    sources = manifest.rows(label=TASK_SOURCE_CLASS[task], split="train")
    if not sources:
        raise ConfigError(f"{prepared}: no training images of class {TASK_SOURCE_CLASS[task]!r} to stand in for")
    phantom_seed, strength = _phantom_truth(manifest, prepared)
    size = int(manifest.meta["size"])
    common = _common_provenance(task, kind, seed, size) | {"train_manifest_sha256": manifest.sha256}
    rng = np.random.default_rng([seed, PLANTED.index(kind)])
    rows = []
    with claimed_output(out, "synthetic", [prepared], command=f"planted {kind} generator"):
        for i, source in enumerate(sources):
            if kind == "truth":
                patient = FRESH_PATIENTS * (seed + 1) + i
                pixels = render_phantom(
                    SYNTHETIC_LABEL, size, seed=phantom_seed, patient=patient, image=0, strength=strength
                )
            else:
                pixels = rng.integers(0, 256, (size, size), dtype=np.uint8)
            data = encode_png(pixels)
            image_id = make_key(TASK_CONFIG[task], source["id"])
            atomic_write_bytes(Path(out) / image_path(image_id), data)
            rows.append(
                _shared_with_manifest(source)
                | common
                | {"id": image_id, "sha256": sha256_bytes(data), "path": image_path(image_id)}
                | {"source_dataset": source["source"], "source_image_id": source["id"]}
                | {"source_patient_id": source["patient_id"], "source_license": source["license"]}
            )
        meta = {
            "task": task,
            "planted": kind,
            "manifest_sha256": manifest.sha256,
            "train_manifest_sha256": manifest.sha256,
            "trained_on_this_manifest": True,
            "phantom": {"seed": phantom_seed, "strength": strength, "fresh_patients_from": FRESH_PATIENTS * (seed + 1)},
        }
        return write_table(rows, PROVENANCE_FIELDS, Path(out) / PROVENANCE_NAME, meta)


def _phantom_truth(manifest: Manifest, prepared: Path) -> tuple[int, float]:
    """The renderer seed and finding strength of the prepared COVID-19 images (their origin
    ``phantom:SEED:covid:PATIENT:IMAGE[:STRENGTH]``); `ConfigError` unless all are phantom with one of each."""
    found = set()
    for row in manifest.rows(label=SYNTHETIC_LABEL):
        kind, _, rest = row["origin"].partition(":")
        parts = rest.split(":")
        if kind != "phantom" or len(parts) not in (4, 5):
            raise ConfigError(
                f"{prepared}: image {row['id']} comes from {row['origin']!r}; a planted-truth generator needs "
                "phantom data (`cxrds prepare --source phantom=...`), where the true COVID-19 images are known"
            )
        found.add((int(parts[0]), float(parts[4]) if len(parts) == 5 else 1.0))
    if len(found) != 1:
        raise ConfigError(
            f"{prepared}: COVID-19 images from {len(found)} phantom settings (seed, strength); need exactly one"
        )
    return found.pop()


def _shared_with_manifest(source: dict[str, Any]) -> dict[str, Any]:
    """The source image's values of the provenance columns the manifest also has by name (e.g. the native
    patient id); the planted folder's own values of id, split, size and checksum are set over them."""
    return {f.name: source[f.name] for f in PROVENANCE_FIELDS if f.name in source}


def _common_provenance(task: str, kind: str, seed: int, size: int) -> dict[str, Any]:
    """Provenance fields shared by every image of a planted folder; no checkpoint or config exists to hash (the
    manifest it was made from stands as the training data: it fixed the renderer's seed, size and strength)."""
    return {
        "source_class": TASK_SOURCE_CLASS[task],
        "task": task,
        "split": "train",
        "checkpoint_sha256": "",
        "config_sha256": "",
        "preset": f"planted-{kind}",
        "code_version": __version__,
        "seed": seed,
        "precision": "",
        "width": size,
        "height": size,
        "source_md5": "",
    }
