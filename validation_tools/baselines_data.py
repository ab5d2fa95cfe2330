"""What the baselines' classifiers see: which split each real image serves as (validation carved by patient when
the prepared data has none), the release's synthetic images minus those of held-out patients, and the positives
of each training regime."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cxr_dataset.errors import ConfigError
from cxr_dataset.imaging import read_gray_batch
from cxr_dataset.release_folder import Release, read_release
from cxr_dataset.schema import NATIVE_PATIENT_ID, TASK_CONFIG, TASKS
from validation_tools.audit import PatientKey, source_keys
from validation_tools.balance import COMPARISONS
from validation_tools.classifiers import image_batch

OVERSAMPLED, WEIGHTED = "real (oversampled)", "real (class-weighted)"


def classifier_splits(
    rows: list[dict[str, Any]], protocol: str, fraction: float, seed: int
) -> tuple[dict[str, str], str]:
    """Image id → the split the classifiers use it as, and a sentence saying where validation came from. Protocol
    `leak-free` carves a `fraction` of the training patients (seeded by `seed`) when there is no validation split."""
    splits = {r["id"]: r["split"] for r in rows}
    if protocol == "seed":
        train = {r["patient_id"] for r in rows if r["split"] == "train"}
        shared = {r["patient_id"] for r in rows if r["split"] == "test"} & train
        return splits, (
            "the TEST split (the seed's protocol): early stopping and the checkpoint saw it; "
            f"{len(shared)} test patients also have training images (the paper split is by image, not patient)"
        )
    if any(s == "validation" for s in splits.values()):
        return splits, "the prepared validation split"
    carved = carve_validation(rows, fraction, seed=seed)
    note = (
        f"carved from the training split by patient: {len({r['patient_id'] for r in rows if r['id'] in carved})} "
        f"patients, {len(carved)} images ({fraction:.0%} per class, seed {seed})"
    )
    return {i: "validation" if i in carved else s for i, s in splits.items()}, note


def carve_validation(rows: list[dict[str, Any]], fraction: float, *, seed: int) -> set[str]:
    """Ids of training images moved to validation: per class, a seeded `fraction` of the training patients
    (at least one where a class has two), every image of a chosen patient."""
    rng = np.random.default_rng([seed, 2])
    train = [r for r in rows if r["split"] == "train"]
    chosen: set[str] = set()
    for label in sorted({r["label"] for r in train}):
        patients = sorted({r["patient_id"] for r in train if r["label"] == label} - chosen)
        take = max(round(len(patients) * fraction), 1 if len(patients) >= 2 else 0)
        chosen.update(patients[i] for i in rng.permutation(len(patients))[:take])
    return {r["id"] for r in train if r["patient_id"] in chosen}


def synthetic_images(
    release: Path | Release, held: dict[PatientKey, str], size: int, workers: int = 1, accept_unknown: bool = False
) -> tuple[dict[str, torch.Tensor], dict[str, int]]:
    """Task config → uint8 N×1×size×size of the release's images, minus those of held-out patients (`held`:
    `audit.held_out_keys`, matched on the namespaced key and the source's own id); and the
    counts of what was kept and dropped. Images that name no source patient cannot be checked: refused unless
    `accept_unknown`, then kept and counted."""
    encoded: dict[str, list[bytes]] = {}
    counts = {"kept": 0, "dropped_held_out": 0, "unknown_source_kept": 0}
    unknown = []
    folder = release if isinstance(release, Release) else read_release(release)
    for row in folder.iter_rows(["id", "task", "source_patient_id", NATIVE_PATIENT_ID, "image"]):
        if source_keys(row) & held.keys():
            counts["dropped_held_out"] += 1
            continue
        if not row["source_patient_id"]:
            unknown.append(row["id"])
            if not accept_unknown:
                continue
            counts["unknown_source_kept"] += 1
        counts["kept"] += 1
        encoded.setdefault(TASK_CONFIG[TASKS[row["task"]]], []).append(row["image"]["bytes"])
    if unknown and not accept_unknown:
        raise ConfigError(
            f"{folder.root}: {len(unknown)} synthetic images name no source patient (e.g. {unknown[0]}), so none can "
            "be checked against the held-out patients; pass --accept-unknown-provenance to train on them knowingly"
        )
    return {config: image_batch(read_gray_batch(data, size, workers)) for config, data in encoded.items()}, counts


def regime_names() -> list[str]:
    """Every regime name of every comparison."""
    names = ["real"]
    for _, (first, second) in COMPARISONS.values():
        names += [f"real + {first.upper()}", f"real + {first.upper()} + {second.upper()}"]
    return [*names, "synthetic only", OVERSAMPLED, WEIGHTED]


def training_regimes(
    pos_x: torch.Tensor,
    synthetic: dict[str, torch.Tensor],
    order: tuple[str, str],
    negatives: int,
    seed: int,
    controls: bool,
) -> Iterator[tuple[str, torch.Tensor, bool]]:
    """(name, positives, class-weighted loss) per regime; the seed's four first, then the two controls."""
    own, other = synthetic.get(order[0]), synthetic.get(order[1])
    parts = {
        "real": [pos_x],
        f"real + {order[0].upper()}": [pos_x, own],
        f"real + {order[0].upper()} + {order[1].upper()}": [pos_x, own, other],
        "synthetic only": [own],  # the task's own generator, as the seed trained it
    }
    if other is None or not len(other):
        del parts[f"real + {order[0].upper()} + {order[1].upper()}"]  # the same images as real + the own generator
    for name, sets in parts.items():
        yield name, torch.cat([p for p in sets if p is not None and len(p)] or [pos_x[:0]]), False
    if controls and len(pos_x):
        target = len(own) if own is not None and len(own) else negatives
        rng = torch.Generator().manual_seed(seed)
        whole, rest = divmod(max(target, len(pos_x)), len(pos_x))
        index = torch.cat([torch.arange(len(pos_x)).repeat(whole), torch.randperm(len(pos_x), generator=rng)[:rest]])
        yield OVERSAMPLED, pos_x[index], False
        yield WEIGHTED, pos_x, True
