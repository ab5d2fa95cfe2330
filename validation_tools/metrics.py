"""Test-set metrics of a COVID-19 detector, each with a bootstrap 95% confidence interval.

COVID-19 is the positive class. Sensitivity is what the seed's tables report (SEN = (positives − FN) /
positives); the rest are the metrics its notebooks computed: specificity, precision, F1, ROC AUC, average
precision, Cohen's κ and the Brier score.
"""

from __future__ import annotations

import math

import numpy as np

from validation_tools.bootstrap import (
    auc_with_variance,
    bca_interval,
    cluster_weights,
    jackknife_weights,
    studentised_interval,
    weighted_point_metrics,
)

METRIC_NAMES = ("sensitivity", "specificity", "precision", "f1", "roc_auc", "average_precision", "kappa", "brier")


def point_metrics(y_true: np.ndarray, p_covid: np.ndarray, threshold: float = 0.5) -> dict[str, float]:
    """All metrics at one threshold on the COVID-19 probability; undefined ones (one class only) are NaN.

    Plain numpy (the bootstrap calls this a thousand times per run); tested against scikit-learn.
    """
    y_true = np.asarray(y_true, dtype=int)
    p_covid = np.asarray(p_covid, dtype=float)
    y_pred = (p_covid >= threshold).astype(int)
    tp = int(((y_pred == 1) & (y_true == 1)).sum())
    tn = int(((y_pred == 0) & (y_true == 0)).sum())
    fp = int(((y_pred == 1) & (y_true == 0)).sum())
    fn = int(((y_pred == 0) & (y_true == 1)).sum())
    n = len(y_true)
    both = 0 < y_true.sum() < n
    auc, ap = ranking_metrics(y_true, p_covid) if both else (float("nan"), float("nan"))
    chance = ((tp + fp) * (tp + fn) + (fn + tn) * (fp + tn)) / n**2 if n else float("nan")
    out = {
        "sensitivity": _ratio(tp, tp + fn),
        "specificity": _ratio(tn, tn + fp),
        "precision": _ratio(tp, tp + fp),
        "f1": _ratio(2 * tp, 2 * tp + fp + fn),
        "roc_auc": auc,
        "average_precision": ap,
        "kappa": _ratio((tp + tn) / n - chance, 1 - chance) if both else float("nan"),
        "brier": float(np.mean((p_covid - y_true) ** 2)),
    }
    return out | {"tp": tp, "tn": tn, "fp": fp, "fn": fn}


def ranking_metrics(y_true: np.ndarray, score: np.ndarray) -> tuple[float, float]:
    """ROC AUC (trapezoids, ties as one step) and average precision (Σ ΔR·P), as scikit-learn defines them."""
    order = np.argsort(-score, kind="mergesort")
    ranked, truth = score[order], y_true[order]
    ends = np.r_[np.nonzero(np.diff(ranked))[0], len(ranked) - 1]  # last index of each distinct score
    tps = np.cumsum(truth)[ends]
    fps = ends + 1 - tps
    tpr, fpr = np.r_[0, tps] / tps[-1], np.r_[0, fps] / fps[-1]
    auc = float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2))
    ap = float(np.sum(np.diff(tpr) * tps / (tps + fps)))
    return auc, ap


def bootstrap_ci(
    y_true: np.ndarray,
    p_covid: np.ndarray,
    *,
    resamples: int = 1000,
    seed: int = 0,
    threshold: float = 0.5,
    groups: np.ndarray | None = None,
) -> dict[str, tuple[float, float]]:
    """A 95% interval of each metric over test sets resampled with replacement: by patient when `groups` (one id
    per image) is given, so that images of one patient come and go together. ROC AUC: the studentised (bootstrap-t)
    interval with the clustered AUC variance; the others: BCa, its acceleration from leaving
    one patient out.
    (Percentile intervals covered a true AUC near 0.97 in ~86% of simulated test sets of this project's size;
    see docs/evaluation.md for what these reach.)"""
    y_true, p_covid = np.asarray(y_true), np.asarray(p_covid, dtype=float)
    groups = np.arange(len(y_true)) if groups is None else np.asarray(groups)
    weights = cluster_weights(groups, resamples, np.random.default_rng(seed))
    point = point_metrics(y_true, p_covid, threshold)
    samples = weighted_point_metrics(y_true, p_covid, threshold, weights)
    jackknife = weighted_point_metrics(y_true, p_covid, threshold, jackknife_weights(groups))
    out = {name: bca_interval(point[name], samples[name], jackknife[name]) for name in METRIC_NAMES}
    if 0 < y_true.sum() < len(y_true):
        auc, variance = auc_with_variance(y_true, p_covid, groups, np.ones((1, len(y_true))))
        aucs, variances = auc_with_variance(y_true, p_covid, groups, weights)
        if np.isfinite(variance[0]):  # else (a class of one patient) BCa's stays
            out["roc_auc"] = studentised_interval(float(auc[0]), float(variance[0]), aucs, variances)
    return out


def youden_threshold(y_true: np.ndarray, p_covid: np.ndarray) -> float:
    """The threshold on P(covid) that maximises sensitivity + specificity − 1 (Youden's J) on these images;
    0.5 when they hold one class only."""
    y_true, p_covid = np.asarray(y_true, dtype=int), np.asarray(p_covid, dtype=float)
    positives, negatives = y_true.sum(), len(y_true) - y_true.sum()
    if not positives or not negatives:
        return 0.5
    candidates = np.unique(p_covid)
    j = [
        np.sum(p_covid[y_true == 1] >= t) / positives - np.sum(p_covid[y_true == 0] >= t) / negatives
        for t in candidates
    ]
    return float(candidates[int(np.argmax(j))])


def _ratio(num: float, den: float) -> float:
    return num / den if den else float("nan")


def wilson_interval(successes: float, n: float, z: float = 1.96) -> tuple[float, float]:
    """The Wilson score interval of a proportion of independent trials: unlike the bootstrap's, it keeps its
    width at 0 or n. `n` may be an effective size (see `clustered_wilson_interval`)."""
    if n <= 0:
        return 0.0, 1.0
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def clustered_wilson_interval(hits: np.ndarray, groups: np.ndarray) -> tuple[float, float]:
    """The Wilson interval of a proportion of images that come in clusters (patients): on the effective size
    n / deff, with the design effect deff = 1 + (m − 1)·ICC (Kish; m the mean cluster size, ICC the one-way
    ANOVA estimate, clipped to [0, 1]). Images of one patient that agree count as one."""
    hits = np.asarray(hits, dtype=float)
    _, cluster = np.unique(np.asarray(groups), return_inverse=True)
    n, count = len(hits), int(cluster.max()) + 1 if len(hits) else 0
    if count < 2 or count == n:
        return wilson_interval(float(hits.sum()), n)
    sizes = np.bincount(cluster)
    means = np.bincount(cluster, weights=hits) / sizes
    between = np.sum(sizes * (means - hits.mean()) ** 2) / (count - 1)
    within = np.sum((hits - means[cluster]) ** 2) / (n - count)
    m0 = (n - np.sum(sizes**2) / n) / (count - 1)
    total = between + (m0 - 1) * within
    icc = float(np.clip((between - within) / total, 0, 1)) if total > 0 else 1.0
    effective = n / (1 + (sizes.mean() - 1) * icc)
    return wilson_interval(float(hits.mean()) * effective, effective)
