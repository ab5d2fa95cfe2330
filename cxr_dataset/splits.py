"""Train/validation/test assignment: patient-level and seeded by default, or the seed paper's file order."""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence

import numpy as np

from cxr_dataset.errors import ConfigError
from cxr_dataset.schema import NATIVE_PATIENT_ID
from cxr_dataset.sources.base import PAPER_TRAIN_FRACTION, SourceImage

SPLIT_MODES = ("patient", "paper")
DEFAULT_FRACTIONS = {"train": 0.7, "validation": 0.1, "test": 0.2}


def per_image_warning(rows: Iterable[Mapping[str, str]]) -> str | None:
    """A one-line warning naming each source whose images (manifest rows) name no patient, or None when every
    image names one: each such image is its own patient, so its split and bootstrap are per image."""
    total: Counter[str] = Counter()
    without: Counter[str] = Counter()
    for r in rows:
        total[r["source"]] += 1
        without[r["source"]] += not r[NATIVE_PATIENT_ID]
    parts = [f"{source}: {without[source]} of {total[source]}" for source in sorted(total) if without[source]]
    if not parts:
        return None
    return (
        f"images that name no patient ({', '.join(parts)}) each count as their own patient: the split and the "
        "bootstrap intervals are per image for them, so one patient's images may sit in two splits"
    )


def check_split_fractions(fractions: dict[str, float]) -> None:
    """`ConfigError` unless `fractions` gives train, validation and test, each in 0..1, summing to 1."""
    if (
        set(fractions) != set(DEFAULT_FRACTIONS)
        or any(not 0.0 <= f <= 1.0 for f in fractions.values())
        or not math.isclose(sum(fractions.values()), 1.0)
    ):
        raise ConfigError(
            f"split fractions must give train, validation and test, each in 0..1, summing to 1; got {fractions}"
        )


def patient_splits(
    records: Sequence[SourceImage], *, seed: int, fractions: dict[str, float] = DEFAULT_FRACTIONS
) -> dict[str, str]:
    """Map image id → split so that no patient is in two splits.

    Patients are stratified by their set of classes, shuffled with `seed`, and cut by `fractions`
    (train/validation/test). A stratum with at least three patients gets at least one per non-empty split.
    """
    check_split_fractions(fractions)
    classes_of: dict[str, set[str]] = defaultdict(set)
    for r in records:
        classes_of[r.patient_id].add(r.label)
    strata: dict[tuple[str, ...], list[str]] = defaultdict(list)
    for pid in sorted(classes_of):
        strata[tuple(sorted(classes_of[pid]))].append(pid)

    rng = np.random.default_rng(seed)
    split_of_patient: dict[str, str] = {}
    for stratum in sorted(strata):
        patients = [strata[stratum][i] for i in rng.permutation(len(strata[stratum]))]
        n = len(patients)
        n_val, n_test = (_share(n, fractions[s]) for s in ("validation", "test"))
        for i, pid in enumerate(patients):
            split_of_patient[pid] = "test" if i < n_test else "validation" if i < n_test + n_val else "train"
    return {r.id: split_of_patient[r.patient_id] for r in records}


def paper_splits(records: Sequence[SourceImage]) -> dict[str, str]:
    """The seed's rule: per class, in source order, the first floor(0.8·n) images train, the rest test."""
    by_class: dict[str, list[SourceImage]] = defaultdict(list)
    for r in records:
        by_class[r.label].append(r)
    out = {}
    for group in by_class.values():
        n_train = math.floor(PAPER_TRAIN_FRACTION * len(group))
        out.update({r.id: "train" if i < n_train else "test" for i, r in enumerate(group)})
    return out


def limit_training(
    records: Sequence[SourceImage], splits: dict[str, str], limits: dict[str, int], *, seed: int
) -> set[str]:
    """Ids to leave out so that each class in `limits` keeps at most that many training images (seeded).

    Rehearses class imbalance on a balanced sample: the held-out splits stay whole, and every later stage
    (generators, classifiers) sees the same few training images of the class.
    """
    unknown = sorted(set(limits) - {r.label for r in records})
    if unknown or any(n < 1 for n in limits.values()):
        raise ConfigError(f"training limits must name classes of the sources with counts >= 1, got {limits}")
    rng = np.random.default_rng([seed, 1])  # apart from the split's stream
    dropped: set[str] = set()
    for label in sorted(limits):
        train = sorted(r.id for r in records if r.label == label and splits[r.id] == "train")
        if len(train) > limits[label]:
            dropped.update(train[i] for i in rng.permutation(len(train))[limits[label] :])
    return dropped


def _share(n: int, fraction: float) -> int:
    """Patients for a held-out split: rounded, but at least one when there are enough to go round."""
    if fraction <= 0:
        return 0
    return max(round(n * fraction), 1 if n >= 3 else 0)
