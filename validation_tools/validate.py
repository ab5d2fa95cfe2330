"""`cxrds validate`: a release's integrity (`cxr_dataset.verify`) plus, given the prepared real data it was
made from, the skew table, the leakage audit and duplicate detection."""

from __future__ import annotations

import io
from collections import Counter, defaultdict
from pathlib import Path

from PIL import Image

from cxr_dataset.manifest import read_manifest
from cxr_dataset.options import check_fraction
from cxr_dataset.progress import ProgressFn, no_progress
from cxr_dataset.release_folder import read_release
from cxr_dataset.schema import TASK_CONFIG, TASKS
from cxr_dataset.verify import ValidationReport, verify_release
from validation_tools.audit import (
    DEFAULT_NEAR_FRACTION,
    dhash,
    dhash_file,
    near_duplicate_pairs,
    patients_in_several_splits,
    synthetic_leaks,
    unknown_provenance,
    v01_source_set,
)
from validation_tools.balance import skew_table


def validate_release(
    root: Path,
    *,
    real: Path | None = None,
    near_duplicate_fraction: float = DEFAULT_NEAR_FRACTION,
    accept_unknown_provenance: bool = False,
    progress: ProgressFn = no_progress,
) -> ValidationReport:
    """Every check a release must pass before anyone trains on it: `verify_release`'s integrity checks and,
    given the prepared real data it was made from, the skew table, the leakage audit and duplicate detection.

    Synthetic images that name no source patient cannot be audited: they fail the audit unless
    `accept_unknown_provenance`, and are then reported as accepted, never as clean."""
    check_fraction(near_duplicate_fraction, "near_duplicate_fraction")
    report = verify_release(root, progress=progress)
    if real is not None:
        manifest = read_manifest(real)
        _audit_against_real(Path(root), manifest, report, near_duplicate_fraction, accept_unknown_provenance, progress)
    return report


def _audit_against_real(
    root: Path, manifest, report: ValidationReport, fraction: float, accept_unknown: bool, progress: ProgressFn
) -> None:

    real_rows = manifest.rows()
    synthetic = list(read_release(root).iter_rows(["id", "source_patient_id", "task", "preset", "image"]))
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
    v01 = v01_source_set(synthetic, real_rows)
    if v01 is not None:
        parts = [
            f"{config.upper()}: {t['synthetic']} v0.1 images translated from the {t['possible_sources']} real images "
            f"the seed's split trained on, {t['held_out_sources']} of them validation/test images here"
            for config, t in v01["tasks"].items()
        ]
        parts.append(
            f"{v01['held_out_targets']} of the {v01['targets']} COVID-19 generator targets are validation/test "
            "images here"
        )
        report.add(
            "leakage: v0.1 source set",
            not v01["held_out_targets"] and not any(t["held_out_sources"] for t in v01["tasks"].values()),
            "; ".join(parts) + " (prepare with --split paper to keep them all in training)",
        )
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
