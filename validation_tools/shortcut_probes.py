"""Shortcut probes: can a binary task of the prepared data be solved without looking at the disease?

Per task (`COMPARISONS`: normal vs covid, pneumonia vs covid), three small logistic regressions, each scored
by patient-grouped cross-validation (a patient's images all fall in one fold, so a probe never scores a
patient it trained on):

- **border**: the image with its inner 70 % blacked out (the outer 15 % of each side kept), averaged onto a
  16×16 grid; it sees frame, padding, labels and collimation, not the lungs;
- **thumbnail**: the whole image averaged onto an 8×8 grid (global brightness, shape, borders);
- **source**: where the data has a `source` column with more than one value among the task's images, the
  8×8 thumbnail plus the border predicting the source (one-vs-rest, macro AUC over sources).

A probe whose AUC reaches `WARN_AUC` says the task can be solved without the disease. Cramér's V of label
against source is given per task (a 2×k table, so V reaches 1 when class follows source), not only over all
three classes, whose table caps lower.
"""

from __future__ import annotations

import contextlib
import html
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from cxr_dataset.imaging import read_gray_batch
from cxr_dataset.manifest import Manifest
from validation_tools.balance import COMPARISONS, comparison_title
from validation_tools.metrics import ranking_metrics

PROBE_SIZE = 64  # images are read at this size (a multiple of both grids)
BORDER_KEEP = 0.15  # share of each side the border probe keeps
BORDER_GRID = 16
THUMBNAIL_GRID = 8
FOLDS = 5
L2 = 1.0  # ridge penalty on standardised features (sum of log-losses + L2/2 · |w|²)
WARN_AUC = 0.8
POSITIVE = "covid"


@dataclass(frozen=True)
class ProbeResult:
    probe: str  # "border", "thumbnail 8×8" or "source"
    auc: float  # NaN when the task has too few patients of a class
    detail: str  # what it predicts from what


@dataclass(frozen=True)
class TaskShortcuts:
    task: str  # a COMPARISONS key, e.g. "pneumonia vs covid"
    images: int
    patients: int
    sources: dict[str, dict[str, int]]  # label → source → images
    cramers_v: float | None  # label vs source; None with a single source
    probes: list[ProbeResult]

    def warnings(self) -> list[str]:
        """One plain sentence per probe at or above `WARN_AUC`."""
        title = comparison_title(self.task)
        out = []
        for p in self.probes:
            if not p.auc >= WARN_AUC:
                continue
            if p.probe == "source":
                follows = f" and class follows source (Cramér's V {self.cramers_v:.2f})" if self.cramers_v else ""
                out.append(
                    f"{title}: the source can be told from the pixels (source probe AUC {p.auc:.3f}){follows}: "
                    "the task can be solved by recognising where an image comes from, without the disease."
                )
            else:
                out.append(
                    f"{title}: a logistic regression on the {p.detail} separates the classes (AUC {p.auc:.3f}): "
                    "the task can be solved without looking at the disease."
                )
        return out


def row_source(row: dict[str, Any]) -> str:
    """Where an image comes from: the metadata's own `source` column where the reader kept one (`extra`),
    else the reader."""
    extra = json.loads(row.get("extra") or "{}")
    return str(extra.get("source") or row["source"])


def border_features(images: np.ndarray, keep: float = BORDER_KEEP, grid: int = BORDER_GRID) -> np.ndarray:
    """N×H×W images with the inner (1 − 2·keep) of each side set to 0, averaged onto a grid×grid of cells;
    only cells that hold some border pixel are returned (N×cells)."""
    _, h, w = images.shape
    my, mx = round(keep * h), round(keep * w)
    mask = np.ones((h, w), dtype=np.float64)
    mask[my : h - my, mx : w - mx] = 0
    pooled = _pool(images.astype(np.float64) * mask, grid)
    kept = _pool(mask[None], grid)[0] > 0
    return pooled[:, kept]


def thumbnail_features(images: np.ndarray, grid: int = THUMBNAIL_GRID) -> np.ndarray:
    """N×H×W images averaged onto grid×grid (N×grid²)."""
    return _pool(images.astype(np.float64), grid).reshape(len(images), -1)


def _pool(images: np.ndarray, grid: int) -> np.ndarray:
    n, h, w = images.shape
    if h % grid or w % grid:
        raise ValueError(f"images of {h}×{w} do not divide into a {grid}×{grid} grid")
    return images.reshape(n, grid, h // grid, grid, w // grid).mean(axis=(2, 4))


def cramers_v(labels: Sequence[str], sources: Sequence[str]) -> float | None:
    """Cramér's V of the label × source table (0: independent, 1: one determines the other); None when
    either has a single value."""
    rows, cols = sorted(set(labels)), sorted(set(sources))
    if len(rows) < 2 or len(cols) < 2:
        return None
    table = np.zeros((len(rows), len(cols)))
    for label, source in zip(labels, sources, strict=True):
        table[rows.index(label), cols.index(source)] += 1
    expected = table.sum(1, keepdims=True) * table.sum(0, keepdims=True) / table.sum()
    chi2 = float(((table - expected) ** 2 / expected).sum())
    return (chi2 / (table.sum() * (min(table.shape) - 1))) ** 0.5


def grouped_folds(groups: Sequence[str], labels: np.ndarray, folds: int = FOLDS, seed: int = 0) -> np.ndarray:
    """A fold index per image: every image of a patient in one fold, each class's patients dealt round the
    folds in a seeded order (a patient counts under its most frequent label)."""
    rng = np.random.default_rng(seed)
    per_patient: dict[str, list[int]] = {}
    for g, y in zip(groups, labels, strict=True):
        per_patient.setdefault(g, []).append(int(y))
    fold_of, start = {}, 0
    for value in sorted(set(int(y) for y in labels)):
        patients = sorted(g for g, ys in per_patient.items() if max(set(ys), key=ys.count) == value)
        for i, g in enumerate(rng.permutation(patients)):
            fold_of[str(g)] = (start + i) % folds
        start += len(patients)
    return np.array([fold_of[g] for g in groups])


def fit_logistic(x: np.ndarray, y: np.ndarray, l2: float = L2, iterations: int = 50) -> tuple[np.ndarray, float]:
    """Ridge logistic regression by Newton's method: weights and intercept (the intercept unpenalised)."""
    design = np.c_[x, np.ones(len(x))]
    penalty = np.full(design.shape[1], l2)
    penalty[-1] = 0.0
    beta = np.zeros(design.shape[1])
    for _ in range(iterations):
        p = 1.0 / (1.0 + np.exp(-np.clip(design @ beta, -30, 30)))
        gradient = design.T @ (p - y) + penalty * beta
        hessian = (design * (p * (1 - p))[:, None]).T @ design + np.diag(penalty + 1e-9)
        step = np.linalg.solve(hessian, gradient)
        beta -= step
        if np.abs(step).max() < 1e-6:
            break
    return beta[:-1], float(beta[-1])


def cross_validated_scores(
    x: np.ndarray, y: np.ndarray, groups: Sequence[str], folds: int = FOLDS, seed: int = 0
) -> np.ndarray:
    """Out-of-fold scores of `fit_logistic` on standardised features, folds grouped by patient."""
    fold = grouped_folds(groups, y, folds, seed)
    scores = np.zeros(len(y))
    for k in np.unique(fold):
        train, test = fold != k, fold == k
        if len(np.unique(y[train])) < 2:  # a fold that saw one class scores no better than chance
            scores[test] = 0.5
            continue
        mean, sd = x[train].mean(0), x[train].std(0) + 1e-6
        w, b = fit_logistic((x[train] - mean) / sd, y[train])
        scores[test] = (x[test] - mean) / sd @ w + b
    return scores


def probe_auc(x: np.ndarray, y: np.ndarray, groups: Sequence[str], folds: int = FOLDS) -> float:
    """Cross-validated AUC of a probe; NaN unless each class has at least two patients."""
    patients = [{g for g, v in zip(groups, y, strict=True) if v == value} for value in (0, 1)]
    if min(len(p) for p in patients) < 2:
        return float("nan")
    folds = min(folds, *(len(p) for p in patients))
    with _one_blas_thread():  # small matrices: threads only contend (25× slower on a busy 2-core machine)
        return ranking_metrics(y, cross_validated_scores(x, y, groups, folds))[0]


def _one_blas_thread() -> contextlib.AbstractContextManager:
    try:
        from threadpoolctl import threadpool_limits  # installed with the validation extra (scikit-learn's)
    except ImportError:
        return contextlib.nullcontext()
    return threadpool_limits(limits=1, user_api="blas")


def source_auc(x: np.ndarray, sources: Sequence[str], groups: Sequence[str], folds: int = FOLDS) -> float:
    """Macro one-vs-rest AUC of predicting the source (two sources: the AUC of one against the other)."""
    names = sorted(set(sources))
    targets = names[1:] if len(names) == 2 else names
    aucs = [probe_auc(x, np.array([s == name for s in sources], dtype=float), groups, folds) for name in targets]
    return float(np.mean(aucs))


def probe_task(
    images: np.ndarray, labels: np.ndarray, groups: Sequence[str], sources: Sequence[str]
) -> list[ProbeResult]:
    """The border and thumbnail probes on one task's N×H×W images (labels 1 = positive), and the source probe
    where the images come from more than one source."""
    border, thumbnail = border_features(images), thumbnail_features(images)
    keep = round(100 * (1 - 2 * BORDER_KEEP))
    results = [
        ProbeResult("border", probe_auc(border, labels, groups), f"image border alone (inner {keep} % masked out)"),
        ProbeResult("thumbnail 8×8", probe_auc(thumbnail, labels, groups), "8×8 thumbnail"),
    ]
    if len(set(sources)) > 1:
        auc = source_auc(np.c_[thumbnail, border], sources, groups)
        results.append(
            ProbeResult("source", auc, f"source ({', '.join(sorted(set(sources)))}) from thumbnail and border")
        )
    return results


def shortcut_probes(manifest: Manifest, rows: list[dict[str, Any]], *, workers: int = 1) -> list[TaskShortcuts]:
    """Every task's probes and Cramér's V over all of the prepared data (every split), read from its images."""
    out = []
    for task, (negative, _) in COMPARISONS.items():
        chosen = [r for r in rows if r["label"] in (negative, POSITIVE)]
        if {r["label"] for r in chosen} != {negative, POSITIVE}:
            continue  # a task needs both of its classes
        labels = [r["label"] for r in chosen]
        sources = [row_source(r) for r in chosen]
        groups = [r["patient_id"] for r in chosen]
        images = read_gray_batch([manifest.image_path(r) for r in chosen], PROBE_SIZE, workers)
        table: dict[str, dict[str, int]] = {}
        for label, source in zip(labels, sources, strict=True):
            table.setdefault(label, {}).setdefault(source, 0)
            table[label][source] += 1
        y = np.array([label == POSITIVE for label in labels], dtype=float)
        out.append(
            TaskShortcuts(
                task=task,
                images=len(chosen),
                patients=len(set(groups)),
                sources=table,
                cramers_v=cramers_v(labels, sources),
                probes=probe_task(images, y, groups, sources),
            )
        )
    return out


GUIDE = (
    "Each probe is a logistic regression on a few low-resolution pixel features, scored by patient-grouped "
    f"{FOLDS}-fold cross-validation over all of the prepared data: the image border alone (the inner 70 % "
    "blacked out), an 8×8 thumbnail, and, where the data names more than one source, the source from those "
    f"pixels. None of them can see the disease; an AUC of {WARN_AUC} or more means the task, as this data poses "
    "it, can be solved without it, and a classifier's score may measure the shortcut. Cramér's V: how far class "
    "follows source within the task (1: completely)."
)


def probe_rows(tasks: list[TaskShortcuts]) -> tuple[list[str], list[list[str]]]:
    """(columns, rows) of the probe table: one row per task."""
    names = ["border", "thumbnail 8×8", "source"]
    columns = ["task", "images", "patients", *(f"{n} AUC" for n in names), "Cramér's V (label × source)"]
    rows = []
    for t in tasks:
        aucs = {p.probe: p.auc for p in t.probes}
        cells = [_auc_cell(aucs[n]) if n in aucs else "one source" for n in names]
        v = "one source" if t.cramers_v is None else f"{t.cramers_v:.2f}"
        rows.append([comparison_title(t.task), str(t.images), str(t.patients), *cells, v])
    return columns, rows


def _auc_cell(auc: float) -> str:
    if auc != auc:
        return "n/a (too few patients)"
    return f"{auc:.3f}" + (" ⚠" if auc >= WARN_AUC else "")


def probe_markdown(tasks: list[TaskShortcuts]) -> list[str]:
    """The report's probe section as markdown lines (warnings first), opening with a blank line."""
    if not tasks:
        return []
    columns, rows = probe_rows(tasks)
    warnings = [f"> **Warning.** {w}" for t in tasks for w in t.warnings()]
    lines = ["", "## Shortcut probes: can each task be solved without the disease?", ""]
    lines += [*warnings, ""] if warnings else []
    lines += [GUIDE, "", "| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    return lines + ["| " + " | ".join(row) + " |" for row in rows]


def probe_html(tasks: list[TaskShortcuts]) -> list[str]:
    """The report's probe section as HTML parts (warnings first)."""
    if not tasks:
        return []
    e = html.escape
    columns, rows = probe_rows(tasks)
    parts = ["<h2>Shortcut probes: can each task be solved without the disease?</h2>"]
    parts += [f'<p class="flag"><strong>Warning.</strong> {e(w)}</p>' for t in tasks for w in t.warnings()]
    head = "".join(f"<th>{e(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{e(c)}</td>" for c in row) + "</tr>" for row in rows)
    parts += [f"<p>{e(GUIDE)}</p>", f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"]
    return parts
