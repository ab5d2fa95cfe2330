"""Leakage and duplicate audits between a release and the real data it was made from.

A synthetic image is a translation of one real image, so it carries that patient: if the patient sits in a
real validation or test split, a model trained on the synthetic image has seen the test patient. The generator
that made it carries every patient it was trained on the same way, so the manifest it was trained on must be the
one given (or none of its training patients held out there). Duplicates (exact by SHA-256, near by a 64-bit
difference hash) across splits leak the same way.

Patients are matched on their keys (`patient_id`, namespaced by reader) and on the ids their sources write
(`native_patient_id`), so a release made through one reader still meets its patients in a manifest prepared through
another. Two datasets that happen to use one id for different patients then read as one patient: a false alarm,
never a missed leak.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from cxr_dataset.schema import NATIVE_PATIENT_ID, RELEASE_PRESET, TASK_CONFIG, TASK_SOURCE_CLASS, TASKS
from cxr_dataset.sources.seed_zips import ASSETS

HELD_OUT = ("validation", "test")
# Real training images per class of the seed's paper split (SEED-FACTS): what its v0.1 images derive from.
SEED_PAPER_TRAIN = {TASK_SOURCE_CLASS[a.task]: a.count for a in ASSETS.values()} | {"covid": 180}

PatientKey = tuple[str, str]


def patient_keys(patient_id: str, native_patient_id: str) -> set[PatientKey]:
    """What one patient is matched on: its namespaced key and, where its source names it, its native id."""
    keys = {("key", patient_id)} if patient_id else set()
    return keys | ({("native", native_patient_id)} if native_patient_id else set())


def _real_keys(row: dict) -> set[PatientKey]:
    return patient_keys(row["patient_id"], row.get(NATIVE_PATIENT_ID, ""))


def source_keys(row: dict) -> set[PatientKey]:
    """A synthetic row's source patient; none when it names no source patient (the seed's v0.1 zips)."""
    if not row["source_patient_id"]:
        return set()
    return patient_keys(row["source_patient_id"], row.get(NATIVE_PATIENT_ID, ""))


def held_out_keys(manifest_rows: Iterable[dict]) -> dict[PatientKey, str]:
    """Every key of every patient with an image in a validation or test split → that split."""
    return {k: r["split"] for r in manifest_rows if r["split"] in HELD_OUT for k in _real_keys(r)}


def source_patient_overlap(release_rows: Iterable[dict], manifest_rows: Iterable[dict]) -> tuple[int, int]:
    """(source patients the release names, how many of them are patients of the manifest, any split)."""
    real = {k for r in manifest_rows for k in _real_keys(r)}
    named: dict[str, set[PatientKey]] = {}
    for r in release_rows:
        if r["source_patient_id"]:
            named.setdefault(r["source_patient_id"], set()).update(source_keys(r))
    return len(named), sum(bool(keys & real) for keys in named.values())


def synthetic_leaks(release_rows: Iterable[dict], manifest_rows: Sequence[dict]) -> list[str]:
    """Ids of synthetic images whose source patient is held out in the real data."""
    held = held_out_keys(manifest_rows)
    return [r["id"] for r in release_rows if source_keys(r) & held.keys()]


def training_patients(manifest_rows: Iterable[dict], tasks: Iterable[str]) -> set[str]:
    """Patients a generator of each of `tasks` trained on when trained on these rows: the training split of the
    task's source class and of COVID-19 (what `cxrds train` reads)."""
    labels = {TASK_SOURCE_CLASS[t] for t in tasks} | {"covid"}
    return {r["patient_id"] for r in manifest_rows if r["split"] == "train" and r["label"] in labels}


def training_patients_held_out(
    training_rows: Iterable[dict], tasks: Iterable[str], manifest_rows: Iterable[dict]
) -> dict[str, str]:
    """patient id → split, for each patient the generators of `tasks` trained on (in `training_rows`, the manifest
    they were trained on) that is a validation or test patient in `manifest_rows`."""
    held = held_out_keys(manifest_rows)
    labels = {TASK_SOURCE_CLASS[t] for t in tasks} | {"covid"}
    out: dict[str, str] = {}
    for r in training_rows:
        if r["split"] == "train" and r["label"] in labels:
            splits = [held[k] for k in sorted(_real_keys(r)) if k in held]
            if splits:
                out[r["patient_id"]] = splits[0]
    return dict(sorted(out.items()))


def unknown_provenance(release_rows: Iterable[dict]) -> list[str]:
    """Ids of synthetic images that name no source patient (e.g. the seed's v0.1 zips): they cannot be checked
    against held-out patients, so no leakage check may call them clean."""
    return [r["id"] for r in release_rows if not r["source_patient_id"]]


def patients_in_several_splits(manifest_rows: Iterable[dict]) -> dict[str, list[str]]:
    splits: dict[str, set[str]] = defaultdict(set)
    for r in manifest_rows:
        splits[r["patient_id"]].add(r["split"])
    return {p: sorted(s) for p, s in splits.items() if len(s) > 1}


HASH_SIDE = 32  # 32×32 gradient signs: 1,024 bits (9×8, 64 bits, cannot tell one chest X-ray from another)
DEFAULT_NEAR_FRACTION = 0.08  # at most 8% of the bits differ: a re-encoded or noisy copy, not another patient


def dhash(image: Image.Image) -> np.ndarray:
    """Difference hash: is each pixel of a 33×32 grayscale thumbnail brighter than its right neighbour,
    packed into 16 uint64 words."""
    small = np.asarray(image.convert("L").resize((HASH_SIDE + 1, HASH_SIDE), Image.Resampling.BILINEAR), np.int16)
    return np.packbits(small[:, 1:] > small[:, :-1]).view(np.uint64)


def dhash_file(path: Path) -> np.ndarray:
    with Image.open(path) as img:
        return dhash(img)


def near_duplicate_pairs(
    hashes_a: Sequence[np.ndarray],
    hashes_b: Sequence[np.ndarray] | None = None,
    *,
    max_fraction: float = DEFAULT_NEAR_FRACTION,
    chunk: int = 256,
) -> list[tuple[int, int, int]]:
    """(i, j, differing bits) of hash pairs within `max_fraction` of the bits: within `hashes_a` (i < j), or
    across a × b."""
    a = np.stack(hashes_a) if len(hashes_a) else np.zeros((0, HASH_SIDE * HASH_SIDE // 64), np.uint64)
    b = a if hashes_b is None else (np.stack(hashes_b) if len(hashes_b) else a[:0])
    limit = int(max_fraction * a.shape[1] * 64)
    pairs = []
    for start in range(0, len(a), chunk):
        distance = _popcount(a[start : start + chunk, None, :] ^ b[None, :, :]).sum(axis=-1)
        for i, j in zip(*np.nonzero(distance <= limit), strict=True):
            if hashes_b is None and j <= i + start:
                continue
            pairs.append((int(i) + start, int(j), int(distance[i, j])))
    return pairs


def _popcount(x: np.ndarray) -> np.ndarray:
    """Bits set per uint64 (numpy < 2.0 has no bitwise_count)."""
    if hasattr(np, "bitwise_count"):
        return np.bitwise_count(x)
    return np.unpackbits(x.view(np.uint8).reshape(*x.shape, 8), axis=-1).sum(axis=-1)


def v01_source_set(release_rows: Sequence[dict], manifest_rows: Sequence[dict]) -> dict[str, Any] | None:
    """What the seed's v0.1 images (no provenance) may derive from, checked against this prepared split.

    The seed translated every image its paper split trained on (G_NC: the training normals; G_PC: the training
    pneumonias) towards its training COVID-19 images. So if any of those real images is a validation or test
    image here, up to that many v0.1 images derive from it, and a target COVID-19 image held out here was seen
    by the generator. None when the release holds no v0.1 rows.

    A manifest's `paper_split` says only which rule it applied: the set is the seed's only when the rule kept
    exactly the seed's training images per class (`SEED_PAPER_TRAIN`). `seed_counts` says whether it did; when
    it did not, the numbers are about other images and say nothing of what the v0.1 images came from."""
    v01 = Counter(r["task"] for r in release_rows if r["preset"] == RELEASE_PRESET)
    if not v01:
        return None
    labels = [TASK_SOURCE_CLASS[TASKS[t]] for t in sorted(v01)] + ["covid"]
    found = Counter(r["label"] for r in manifest_rows if r["paper_split"] == "train")
    out: dict[str, Any] = {
        "tasks": {},
        "paper_train": {label: found[label] for label in labels},
        "seed_paper_train": {label: SEED_PAPER_TRAIN[label] for label in labels},
    }
    out["seed_counts"] = out["paper_train"] == out["seed_paper_train"]
    for task, count in sorted(v01.items()):
        label = TASK_SOURCE_CLASS[TASKS[task]]
        sources = [r for r in manifest_rows if r["label"] == label and r["paper_split"] == "train"]
        out["tasks"][TASK_CONFIG[TASKS[task]]] = {
            "synthetic": count,
            "possible_sources": len(sources),
            "held_out_sources": sum(r["split"] in HELD_OUT for r in sources),
        }
    targets = [r for r in manifest_rows if r["label"] == "covid" and r["paper_split"] == "train"]
    out["targets"] = len(targets)
    out["held_out_targets"] = sum(r["split"] in HELD_OUT for r in targets)
    return out
