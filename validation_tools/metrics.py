"""Test-set metrics of a COVID-19 detector, each with a bootstrap 95% confidence interval.

COVID-19 is the positive class. Sensitivity is what the seed's tables report (SEN = (positives − FN) /
positives); the rest are the metrics its notebooks computed: specificity, precision, F1, ROC AUC, average
precision, Cohen's κ and the Brier score.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

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
    metric: Callable[..., dict[str, float]] = point_metrics,
) -> dict[str, tuple[float, float]]:
    """(2.5th, 97.5th) percentile of each metric over test sets resampled with replacement: by patient when
    `groups` (one id per image) is given, so that images of one patient come and go together."""
    y_true, p_covid = np.asarray(y_true), np.asarray(p_covid)
    groups = np.arange(len(y_true)) if groups is None else np.asarray(groups)
    samples = {name: [] for name in METRIC_NAMES}
    for index in cluster_resamples(groups, resamples, seed):
        values = metric(y_true[index], p_covid[index], threshold)
        for name in METRIC_NAMES:
            samples[name].append(values[name])
    return {name: _interval(np.asarray(v, dtype=float)) for name, v in samples.items()}


def cluster_resamples(groups: np.ndarray, resamples: int, seed: int):
    """Index arrays of bootstrap test sets: clusters (e.g. patients) drawn with replacement, each bringing all of
    its images. With one image per cluster this is the ordinary bootstrap."""
    rng = np.random.default_rng(seed)
    _, cluster = np.unique(np.asarray(groups), return_inverse=True)
    members = np.argsort(cluster, kind="stable")
    starts = np.r_[0, np.cumsum(np.bincount(cluster))]
    count = len(starts) - 1
    for _ in range(resamples):
        chosen = rng.integers(0, count, count)
        yield np.concatenate([members[starts[c] : starts[c + 1]] for c in chosen])


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


def _interval(values: np.ndarray) -> tuple[float, float]:
    values = values[~np.isnan(values)]
    if not len(values):
        return float("nan"), float("nan")
    low, high = np.percentile(values, [2.5, 97.5])
    return float(low), float(high)


def _ratio(num: float, den: float) -> float:
    return num / den if den else float("nan")


def wilson_interval(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """The Wilson score interval of a proportion: unlike the bootstrap's, it keeps its width at 0 or n."""
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)
