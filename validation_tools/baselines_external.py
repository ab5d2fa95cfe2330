"""External tests of `cxrds baselines --external PREPARED`: other prepared data (another site or collection) on
which every trained classifier is scored as well, reported apart from the internal test.

Per comparison an external set gives its test split when that holds both classes, else all of its images of the
two classes (the choice is recorded in a note); a comparison whose classes it lacks is skipped with a note. Its
images are read at the classifiers' size. It must not share patients (namespaced or source-native ids) with the
images the classifiers trained or were tuned on: refused, unless the shared patients' images are dropped on request
(and counted).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cxr_dataset.errors import ConfigError
from cxr_dataset.imaging import read_gray_batch
from cxr_dataset.manifest import read_manifest
from validation_tools.balance import COMPARISONS, comparison_title
from validation_tools.baselines_tables import summary_blocks
from validation_tools.classifiers import image_batch, load_classifier, predict_proba

INTERNAL = "internal"  # the test_set of the prepared data's own test split
NATIVE_PATIENT = "native_patient_id"  # the manifest's source-native patient id, where it records one
Tensors = tuple[torch.Tensor, torch.Tensor, list[str]]  # images, labels (1: COVID-19), patient ids


@dataclass(frozen=True)
class ExternalSet:
    """One external test: per comparison its images at the classifiers' size (absent: skipped) and notes."""

    name: str  # the folder's name: the test_set column of its rows
    root: Path
    tests: dict[str, Tensors] = field(default_factory=dict)  # comparison → images, labels, patients
    notes: dict[str, str] = field(default_factory=dict)  # comparison → which images, or why skipped
    dropped_shared: int = 0  # images left out because their patient is in the training data

    def record(self) -> dict[str, Any]:
        """What metrics.json keeps of it."""
        return {"name": self.name, "path": str(self.root), "notes": self.notes, "dropped_shared": self.dropped_shared}


def seen_patients(rows: Sequence[dict[str, Any]], splits: dict[str, str], protocol: str) -> set[str]:
    """Patient ids (namespaced and source-native) of the images the classifiers trained or were tuned on: train
    and validation as the classifiers use them, and the test split too under the seed protocol (it early-stops)."""
    used = {"train", "validation"} | ({"test"} if protocol == "seed" else set())
    return {p for r in rows if splits[r["id"]] in used for p in _patients(r)}


def load_external_sets(
    paths: Sequence[str | Path],
    seen: set[str],
    size: int,
    *,
    workers: int = 1,
    drop_shared: bool = False,
    training: Path | None = None,
) -> list[ExternalSet]:
    """Read each external prepared folder; `ConfigError` naming it when it shares patients with `seen` (unless
    `drop_shared`), when two share a name, or when it serves no comparison."""
    out: list[ExternalSet] = []
    for path in map(Path, paths):
        name = path.resolve().name
        if name == INTERNAL or name in {e.name for e in out}:
            raise ConfigError(f"{path}: external test sets need distinct folder names other than {INTERNAL!r}")
        manifest = read_manifest(path)
        rows = [r for r in manifest.rows() if r["label"] in ("normal", "pneumonia", "covid")]
        shared = [r for r in rows if set(_patients(r)) & seen]
        if shared and not drop_shared:
            patients = sorted({r["patient_id"] for r in shared})
            raise ConfigError(
                f"{path}: {len(patients)} patients of this external test set are in the training data of "
                f"{training or 'the classifiers'} (e.g. {patients[0]}); an external test must not share patients. "
                "Pass --external-drop-shared to leave their images out"
            )
        rows = [r for r in rows if not set(_patients(r)) & seen]
        pixels = image_batch(read_gray_batch([manifest.image_path(r) for r in rows], size, workers))
        ext = ExternalSet(name, path, dropped_shared=len(shared))
        for comparison, (negative, _) in COMPARISONS.items():
            index, note = _choose(rows, negative)
            ext.notes[comparison] = note
            if index:
                y = torch.tensor([int(rows[i]["label"] == "covid") for i in index])
                ext.tests[comparison] = (pixels[index], y, [rows[i]["patient_id"] for i in index])
        if not ext.tests:
            raise ConfigError(f"{path}: no comparison has images of both its classes here: {ext.notes}")
        out.append(ext)
    return out


def _choose(rows: list[dict[str, Any]], negative: str) -> tuple[list[int], str]:
    """Row indices of one comparison's external test and the note saying which images they are."""
    labels = (negative, "covid")
    chosen = [i for i, r in enumerate(rows) if r["label"] in labels]
    test = [i for i in chosen if rows[i]["split"] == "test"]
    if {rows[i]["label"] for i in test} == set(labels):
        which, chosen = "its test split", test
    elif {rows[i]["label"] for i in chosen} == set(labels):
        which = "all of its images (no test split with both classes)"
    else:
        missing = sorted(set(labels) - {rows[i]["label"] for i in chosen})
        return [], f"skipped: no {' or '.join(missing)} images"
    positives = sum(rows[i]["label"] == "covid" for i in chosen)
    patients = len({rows[i]["patient_id"] for i in chosen})
    return chosen, f"{which}: {len(chosen)} images ({positives} COVID-19) of {patients} patients"


def score_externals(
    externals: Sequence[ExternalSet],
    result: dict[str, Any],
    threshold: float,
    classifier: Path,
    scores: Callable[..., dict[str, Any]],
    device: torch.device,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """One trained run's saved classifier scored on each external set that has its comparison: rows as the
    internal test's (`result` with `scores`' metrics, at the run's own threshold) and predictions."""
    rows, predictions, model = [], [], None
    kept = ("comparison", "regime", "model", "seed", "protocol", "train_negatives", "train_positives", "skew", "epochs")
    run = {k: result[k] for k in kept}
    for ext in externals:
        if result["comparison"] not in ext.tests:
            continue
        x, y, patients = ext.tests[result["comparison"]]
        model = model or load_classifier(classifier)[0].to(device)
        p = predict_proba(model, x, device=device)[:, 1]
        row = {"test_set": ext.name} | run | scores(y.numpy(), np.asarray(patients), p, threshold, seed=run["seed"])
        rows.append({k: v for k, v in row.items() if k in result})  # the internal row's columns (seed: no threshold)
        predictions.append(
            {"test_set": ext.name}
            | {k: run[k] for k in ("comparison", "regime", "model", "seed")}
            | {"threshold": threshold, "y_true": y.tolist(), "patient_id": patients}
            | {"p_covid": [round(float(v), 6) for v in p]}
        )
    return rows, predictions


def _patients(row: dict[str, Any]) -> list[str]:
    return [p for p in (row["patient_id"], row.get(NATIVE_PATIENT, "")) if p]


def external_tables(
    externals: Sequence[ExternalSet], results: list[dict[str, Any]], comparisons: list[dict[str, Any]]
) -> str:
    """table.md's external sections: per set, which images each comparison used, then the same summary and
    paired blocks as the internal test."""
    lines: list[str] = []
    for ext in externals:
        lines += [f"## External test: {ext.name}", ""]
        lines += [f"- {comparison_title(c)}: {note}" for c, note in ext.notes.items()]
        if ext.dropped_shared:
            lines.append(f"- {ext.dropped_shared} images left out: their patients are in the training data")
        lines.append("")
        mine = [r for r in results if r["test_set"] == ext.name]
        paired = [c for c in comparisons if c["test_set"] == ext.name]
        for title, columns, rows in summary_blocks(mine, paired) if mine else []:
            lines += [f"### {ext.name}: {title}", "", "| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
            lines += ["| " + " | ".join(row) + " |" for row in rows]
            lines.append("")
    return "\n".join(lines)
