"""`cxrds validate`: a release's integrity (`cxr_dataset.verify`) plus, given the prepared real data it was
made from, the skew table, the leakage audit (the generators' training data included) and duplicate detection."""

from __future__ import annotations

import io
import warnings
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image

from cxr_dataset.manifest import Manifest, read_manifest
from cxr_dataset.options import check_fraction
from cxr_dataset.progress import ProgressFn, no_progress
from cxr_dataset.release_folder import read_release
from cxr_dataset.schema import NATIVE_PATIENT_ID, TASK_CONFIG, TASKS
from cxr_dataset.splits import per_image_warning
from cxr_dataset.verify import IntegrityReport, verify_release
from validation_tools.audit import (
    DEFAULT_NEAR_FRACTION,
    dhash,
    dhash_file,
    near_duplicate_pairs,
    patients_in_several_splits,
    source_patient_overlap,
    synthetic_leaks,
    training_patients,
    training_patients_held_out,
    unknown_provenance,
    v01_source_set,
)
from validation_tools.balance import skew_table


@dataclass
class ValidationReport(IntegrityReport):
    """`verify_release`'s integrity report, plus what only the real data (`--real`) gives: the skew table and the
    near-duplicate pairs (their checks are among `checks`). `--json` writes every field, `ok` first."""

    skew: list[dict[str, Any]] = field(default_factory=list)  # `balance.skew_table` rows, with --real
    # near-duplicate pairs found with --real: {"check", "a", "a_split", "b", "b_split", "differing_bits"}
    near_duplicates: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)  # what passes but limits the checks (also warned)

    @classmethod
    def of(cls, integrity: IntegrityReport) -> ValidationReport:
        return cls(integrity.root, integrity.checks, integrity.counts)


def validate_release(
    root: Path,
    *,
    real: Path | None = None,
    near_duplicate_fraction: float = DEFAULT_NEAR_FRACTION,
    accept_unknown_provenance: bool = False,
    trained_on: list[Path] | None = None,
    progress: ProgressFn = no_progress,
) -> ValidationReport:
    """Every check a release must pass before anyone trains on it: `verify_release`'s integrity checks and,
    given the prepared real data it was made from, the skew table, the leakage audit and duplicate detection.

    Synthetic images that name no source patient, or whose generators' training manifest is not recorded, cannot
    be audited: they fail the audit unless `accept_unknown_provenance`, and are then reported as accepted, never
    as clean. Generators trained on another manifest than `real` fail it; `trained_on` (prepared folders) gives
    the rows of such training manifests, so that the audit names their patients held out in `real` instead."""
    check_fraction(near_duplicate_fraction, "near_duplicate_fraction")
    training = [read_manifest(p) for p in trained_on or []]  # read first: a wrong folder fails before the work
    report = ValidationReport.of(verify_release(root, progress=progress))
    if real is not None:
        manifest = read_manifest(real)
        _audit_against_real(
            Path(root), manifest, report, near_duplicate_fraction, accept_unknown_provenance, training, progress
        )
    return report


def _audit_against_real(
    root: Path,
    manifest: Manifest,
    report: ValidationReport,
    fraction: float,
    accept_unknown: bool,
    training: list[Manifest],
    progress: ProgressFn,
) -> None:
    real_rows = manifest.rows()
    release = read_release(root)
    # A release built before the column existed records no training manifest: it reads as not recorded.
    stored = _stored_columns(release)
    wanted = ("id", "source_patient_id", NATIVE_PATIENT_ID, "task", "preset", "image", TRAIN_MANIFEST)
    columns = [c for c in wanted if c in stored]
    synthetic = [{TRAIN_MANIFEST: "", NATIVE_PATIENT_ID: "", **r} for r in release.iter_rows(columns)]
    note = per_image_warning(real_rows)
    if note:
        report.warnings.append(f"{manifest.root}: {note}")
        warnings.warn(report.warnings[-1], stacklevel=2)
    train_counts = Counter(r["label"] for r in real_rows if r["split"] == "train")
    per_config = Counter(TASK_CONFIG[TASKS[r["task"]]] for r in synthetic)
    report.skew = skew_table(dict(train_counts), dict(per_config))

    leaks = synthetic_leaks(synthetic, real_rows)
    unknown = unknown_provenance(synthetic)
    known = len(synthetic) - len(unknown)
    report.add(
        "leakage: synthetic from held-out patients",
        not leaks,
        f"{len(leaks)} synthetic images come from validation/test patients: {leaks[:5]}"
        if leaks
        else f"none of the {known} synthetic images with a recorded source patient comes from a validation/test "
        f"patient" + (f"; {len(unknown)} others cannot be checked" if unknown else ""),
    )
    if unknown:
        accepted = " (accepted with --accept-unknown-provenance: NOT checked)" if accept_unknown else ""
        report.add(
            "leakage: synthetic of unknown source",
            accept_unknown,
            f"{len(unknown)} of {len(synthetic)} synthetic images name no source patient (e.g. {unknown[0]}), so "
            f"none of them can be checked against the held-out patients{accepted}"
            + ("" if accept_unknown else "; pass --accept-unknown-provenance to accept that knowingly"),
        )
    _audit_source_patients(report, synthetic, real_rows)
    _audit_generators(report, synthetic, manifest, training, accept_unknown)
    _audit_v01(report, synthetic, real_rows, accept_unknown)
    crossing = patients_in_several_splits(real_rows)
    report.add(
        "leakage: patients in two splits",
        not crossing,
        f"{len(crossing)} patients, e.g. {list(crossing.items())[:3]} (the seed's --split paper allows this)"
        if crossing
        else f"each of {len({r['patient_id'] for r in real_rows})} patients is in one split",
    )

    real_hashes = []
    for i, r in enumerate(real_rows, 1):
        real_hashes.append(dhash_file(manifest.image_path(r)))
        progress("hash real", i, len(real_rows))
    splits = [r["split"] for r in real_rows]
    exact = defaultdict(set)
    for r in real_rows:
        exact[r["sha256"]].add(r["split"])
    exact_cross = sum(1 for s in exact.values() if len(s) > 1)
    near = near_duplicate_pairs(real_hashes, max_fraction=fraction)
    near_cross = [(i, j, d) for i, j, d in near if splits[i] != splits[j]]
    report.add(
        "duplicates: real across splits",
        not exact_cross and not near_cross,
        f"{exact_cross} exact, {len(near_cross)} near (dHash, <= {fraction:.0%} of bits differ) pairs across splits; "
        f"{len(near) - len(near_cross)} near pairs within a split",
    )
    held = [i for i, s in enumerate(splits) if s != "train"]
    synthetic_hashes = [dhash(Image.open(io.BytesIO(r["image"]["bytes"]))) for r in synthetic]
    near_synthetic = near_duplicate_pairs(synthetic_hashes, [real_hashes[i] for i in held], max_fraction=fraction)
    for i, j, bits in near:
        report.near_duplicates.append(
            {"check": "real", "a": real_rows[i]["id"], "a_split": splits[i], "b": real_rows[j]["id"]}
            | {"b_split": splits[j], "differing_bits": bits}
        )
    for i, j, bits in near_synthetic:
        report.near_duplicates.append(
            {"check": "synthetic vs real held-out", "a": synthetic[i]["id"], "a_split": "synthetic"}
            | {"b": real_rows[held[j]]["id"], "b_split": splits[held[j]], "differing_bits": bits}
        )
    report.add(
        "duplicates: synthetic vs real held-out",
        not near_synthetic,
        f"{len(near_synthetic)} synthetic-vs-held-out pairs with <= {fraction:.0%} of dHash bits differing",
    )
    report.counts["real/train"] = {"rows": sum(train_counts.values()), "source_class": dict(train_counts), "task": {}}


TRAIN_MANIFEST = "train_manifest_sha256"
SOURCE_PATIENTS_CHECK = "provenance: source patients in this data"
V01_CHECK = "leakage: v0.1 source set"
GENERATORS_CHECK = "leakage: generators' training data"


def _audit_source_patients(report: ValidationReport, synthetic: list[dict], real_rows: list[dict]) -> None:
    """A release whose source patients are none of the manifest's was not made from this data: then every
    leakage check against it passes without meaning anything, so the audit fails."""
    named, found = source_patient_overlap(synthetic, real_rows)
    if not named:
        return
    report.add(
        SOURCE_PATIENTS_CHECK,
        found > 0,
        f"{found} of the {named} source patients the release names are patients of this data"
        + (" (matched on keys and on the sources' own patient ids)" if found else "")
        + (
            ""
            if found
            else ": these images do not come from this data, so no leakage check against it means anything; "
            "validate against the prepared data the release was made from"
        ),
    )


def _audit_v01(report: ValidationReport, synthetic: list[dict], real_rows: list[dict], accept_unknown: bool) -> None:
    """The seed's v0.1 images came from its paper split's training images: checkable only against a manifest
    whose paper split holds exactly the seed's counts, otherwise "cannot check" (a failure unless accepted)."""
    v01 = v01_source_set(synthetic, real_rows)
    if v01 is None:
        return
    if not v01["seed_counts"]:
        found = ", ".join(f"{n:,} {label}" for label, n in v01["paper_train"].items())
        seed = ", ".join(f"{n:,} {label}" for label, n in v01["seed_paper_train"].items())
        accepted = " (accepted with --accept-unknown-provenance: NOT checked)" if accept_unknown else ""
        report.add(
            V01_CHECK,
            accept_unknown,
            f"cannot check: this data's paper split trains on {found} images, the seed's on {seed}, so it is not "
            f"the set the v0.1 images were translated from{accepted}"
            + (
                ""
                if accept_unknown
                else "; prepare the seed's sources with --split paper, or pass "
                "--accept-unknown-provenance to accept that knowingly"
            ),
        )
        return
    parts = [
        f"{config.upper()}: {t['synthetic']} v0.1 images translated from the {t['possible_sources']} real images "
        f"the seed's split trained on, {t['held_out_sources']} of them validation/test images here"
        for config, t in v01["tasks"].items()
    ]
    parts.append(
        f"{v01['held_out_targets']} of the {v01['targets']} COVID-19 generator targets are validation/test images here"
    )
    report.add(
        V01_CHECK,
        not v01["held_out_targets"] and not any(t["held_out_sources"] for t in v01["tasks"].values()),
        "; ".join(parts) + " (prepare with --split paper to keep them all in training)",
    )


def _stored_columns(release) -> set[str]:
    """The columns every stored parquet file of the release holds."""
    import pyarrow.parquet as pq

    names = [set(pq.ParquetFile(p).schema_arrow.names) for p in release.stored_files()]
    return set.intersection(*names) if names else set()


def _audit_generators(
    report: ValidationReport,
    synthetic: list[dict],
    manifest: Manifest,
    training: list[Manifest],
    accept_unknown: bool,
) -> None:
    """Whether the generators saw any of `manifest`'s validation/test patients while training. A generator
    trained on `manifest` saw only its training split. One trained on another manifest fails the check, unless
    that manifest's rows are given (`training`) and none of its training patients is held out here; their
    patients are named otherwise. A generator whose training manifest is not recorded (the seed's v0.1 zips)
    cannot be checked: it fails unless `accept_unknown`, and is never called clean."""
    by_identity: dict[str, list[dict]] = defaultdict(list)
    for r in synthetic:
        by_identity[r[TRAIN_MANIFEST]].append(r)
    given = {m.sha256: m for m in training}
    parts, failed = [], False
    for identity in sorted(by_identity, key=lambda i: (i != manifest.sha256, i)):
        if not identity:
            continue
        rows = by_identity[identity]
        tasks = sorted({TASKS[r["task"]] for r in rows})
        if identity == manifest.sha256:
            parts.append(f"{len(rows)} synthetic images come from generators trained on this manifest ({identity})")
        elif identity in given:
            training_rows = given[identity].rows()
            held = training_patients_held_out(training_rows, tasks, manifest.rows())
            seen = len(training_patients(training_rows, tasks))
            failed |= bool(held)
            parts.append(
                f"{len(rows)} synthetic images come from generators ({', '.join(tasks)}) trained on the manifest "
                f"{identity} ({given[identity].root}), not this one ({manifest.sha256}): "
                + (
                    f"{len(held)} of its {seen} training patients are validation/test patients here: "
                    + ", ".join(f"{p} ({split})" for p, split in list(held.items())[:10])
                    + (", ..." if len(held) > 10 else "")
                    if held
                    else f"none of its {seen} training patients is a validation/test patient here"
                )
            )
        else:
            failed = True
            parts.append(
                f"{len(rows)} synthetic images come from generators ({', '.join(tasks)}) trained on the manifest "
                f"{identity}, not this one ({manifest.sha256}): its training patients may be validation/test "
                "patients here; validate against the prepared data they were trained on, or pass that folder "
                "with --trained-on to name them"
            )
    unknown = by_identity.get("", [])
    if unknown:
        failed |= not accept_unknown
        accepted = " (accepted with --accept-unknown-provenance: NOT checked)" if accept_unknown else ""
        parts.append(
            f"{len(unknown)} of {len(synthetic)} synthetic images come from generators whose training manifest is "
            "not recorded (e.g. the seed's v0.1 zips), so whether they were trained on validation/test patients "
            f"here cannot be checked{accepted}"
            + ("" if accept_unknown else "; pass --accept-unknown-provenance to accept that knowingly")
        )
    unused = [f"{m.root} ({m.sha256})" for m in training if m.sha256 not in by_identity]
    if unused:
        parts.append(f"no generator of this release was trained on --trained-on {', '.join(unused)}")
    report.add(GENERATORS_CHECK, not failed, "; ".join(parts) or "the release holds no synthetic images")
