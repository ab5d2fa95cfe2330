"""Paired comparison of two training regimes scored on the same real test images.

The unit of resampling is the patient: a test set with several images per patient is resampled by patient
(cluster bootstrap), so intervals keep their coverage when images of one patient are alike. Differences are
averaged over classifier seeds inside each resample, so one interval speaks for the whole set of seeds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from validation_tools.metrics import cluster_resamples, ranking_metrics


@dataclass(frozen=True)
class Scored:
    """One classifier's test predictions: P(covid) per image and the threshold it was chosen to use."""

    p_covid: np.ndarray
    threshold: float


def paired_deltas(
    y_true: np.ndarray,
    groups: np.ndarray,
    a: list[Scored],
    b: list[Scored],
    *,
    resamples: int = 1000,
    seed: int = 0,
) -> dict[str, object]:
    """Mean over seeds of a − b in AUC, AP and sensitivity at each run's threshold, with 95% intervals from a
    patient-level bootstrap; per seed, McNemar's exact p on the images one run gets right and the other wrong.

    `a[i]` and `b[i]` are the same classifier seed trained on two regimes."""
    if len(a) != len(b) or not a:
        raise ValueError("paired comparison needs the same seeds on both sides")
    y_true = np.asarray(y_true, dtype=int)

    def deltas(index: np.ndarray) -> np.ndarray:
        y = y_true[index]
        if not 0 < y.sum() < len(y):
            return np.full(3, np.nan)
        out = []
        for ra, rb in zip(a, b, strict=True):
            auc_a, ap_a = ranking_metrics(y, ra.p_covid[index])
            auc_b, ap_b = ranking_metrics(y, rb.p_covid[index])
            sen_a = float(np.mean(ra.p_covid[index][y == 1] >= ra.threshold))
            sen_b = float(np.mean(rb.p_covid[index][y == 1] >= rb.threshold))
            out.append((auc_a - auc_b, ap_a - ap_b, sen_a - sen_b))
        return np.mean(out, axis=0)

    point = deltas(np.arange(len(y_true)))
    samples = np.array([deltas(i) for i in cluster_resamples(groups, resamples, seed)])
    samples = samples[~np.isnan(samples).any(axis=1)]
    low, high = np.percentile(samples, [2.5, 97.5], axis=0) if len(samples) else (point * np.nan, point * np.nan)
    per_seed_sen = [
        float(np.mean(ra.p_covid[y_true == 1] >= ra.threshold) - np.mean(rb.p_covid[y_true == 1] >= rb.threshold))
        for ra, rb in zip(a, b, strict=True)
    ]
    mcnemar = [mcnemar_p(y_true, ra, rb) for ra, rb in zip(a, b, strict=True)]
    return {
        "seeds": len(a),
        **{f"delta_{m}": float(point[k]) for k, m in enumerate(("roc_auc", "average_precision", "sensitivity"))},
        **{
            f"delta_{m}_ci": [float(low[k]), float(high[k])]
            for k, m in enumerate(("roc_auc", "average_precision", "sensitivity"))
        },
        "seeds_sensitivity_higher": sum(d > 0 for d in per_seed_sen),
        "seeds_sensitivity_lower": sum(d < 0 for d in per_seed_sen),
        "mcnemar_p": mcnemar,
    }


def mcnemar_p(y_true: np.ndarray, a: Scored, b: Scored) -> float:
    """Exact two-sided McNemar test on the images exactly one of the two classifiers gets right."""
    right_a = (a.p_covid >= a.threshold).astype(int) == y_true
    right_b = (b.p_covid >= b.threshold).astype(int) == y_true
    only_a, only_b = int(np.sum(right_a & ~right_b)), int(np.sum(right_b & ~right_a))
    n = only_a + only_b
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, k) for k in range(min(only_a, only_b) + 1)) / 2**n
    return min(1.0, 2 * tail)
