"""The cluster bootstrap, vectorised: a resample of test patients is a weight per image (how many times its patient
was drawn), so every metric of a thousand resamples is a few matrix products instead of a thousand loops, and
the weighted metrics equal those of the resampled images exactly. BCa intervals (bias-corrected and accelerated,
Efron 1987) with the acceleration from the leave-one-patient-out jackknife.
"""

from __future__ import annotations

from statistics import NormalDist

import numpy as np

_NORMAL = NormalDist()
PAIRWISE_LIMIT = 4_000_000  # positives × negatives above which ranks are cumulated, not compared pairwise


def cluster_ids(groups: np.ndarray) -> tuple[np.ndarray, int]:
    """Each image's cluster index (0..count-1) and the number of clusters."""
    _, cluster = np.unique(np.asarray(groups), return_inverse=True)
    return cluster.ravel(), int(cluster.max()) + 1 if len(cluster) else 0


def cluster_weights(groups: np.ndarray, resamples: int, rng: np.random.Generator) -> np.ndarray:
    """(resamples × images) weights: clusters (patients) drawn with replacement, each image weighted by the
    number of times its cluster was drawn. With one image per cluster this is the ordinary bootstrap."""
    cluster, count = cluster_ids(groups)
    draws = rng.integers(0, count, (resamples, count)) + count * np.arange(resamples)[:, None]
    counts = np.bincount(draws.ravel(), minlength=resamples * count).reshape(resamples, count)
    return counts[:, cluster].astype(float)


def jackknife_weights(groups: np.ndarray) -> np.ndarray:
    """(clusters × images) weights: each row leaves one cluster out."""
    cluster, count = cluster_ids(groups)
    return 1.0 - (np.arange(count)[:, None] == cluster[None, :])


def weighted_ranking(y_true: np.ndarray, score: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """ROC AUC and average precision per row of `weights`, defined as `metrics.ranking_metrics` defines them on
    the images repeated by their weights (ties as one step); NaN where a row holds one class only."""
    y = np.asarray(y_true) == 1
    score, w = np.asarray(score, dtype=float), np.atleast_2d(weights)
    if y.sum() * (~y).sum() > PAIRWISE_LIMIT:
        return _ranking_by_cumsum(y, score, w)
    wp, wn = w[:, y], w[:, ~y]
    positives, negatives = wp.sum(axis=1), wn.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        auc = np.sum((wp @ _beats(score[y], score[~y])) * wn, axis=1) / (positives * negatives)
        # AP = mean over positives (weighted) of the precision at their own score
        above_pos = wp @ (score[y][:, None] >= score[y][None, :]).astype(float)
        above_neg = wn @ (score[~y][:, None] >= score[y][None, :]).astype(float)
        ap = np.sum(wp * above_pos / np.where(above_pos > 0, above_pos + above_neg, 1), axis=1) / positives
    defined = (positives > 0) & (negatives > 0)
    return np.where(defined, auc, np.nan), np.where(defined, ap, np.nan)


def auc_with_variance(
    y_true: np.ndarray, score: np.ndarray, groups: np.ndarray, weights: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """ROC AUC and its clustered variance (Obuchowski 1997: structural components summed per patient) per row
    of `weights`, each resampled patient copy counting as a patient; the studentised bootstrap divides by it."""
    y = np.asarray(y_true) == 1
    score, w = np.asarray(score, dtype=float), np.atleast_2d(weights)
    cluster, count = cluster_ids(groups)
    beats = _beats(score[y], score[~y])
    wp, wn = w[:, y], w[:, ~y]
    positives, negatives = wp.sum(axis=1), wn.sum(axis=1)
    in_pos = (cluster[y][:, None] == np.arange(count)).astype(float)  # positive image × patient
    in_neg = (cluster[~y][:, None] == np.arange(count)).astype(float)
    first = np.zeros(count, dtype=int)
    first[cluster[::-1]] = np.arange(len(cluster))[::-1]
    copies = w[:, first]  # times each patient was drawn
    with np.errstate(invalid="ignore", divide="ignore"):
        auc = np.sum((wp @ beats) * wn, axis=1) / (positives * negatives)
        v10 = ((wn @ beats.T) / negatives[:, None]) @ in_pos - in_pos.sum(axis=0) * auc[:, None]
        v01 = ((wp @ beats) / positives[:, None]) @ in_neg - in_neg.sum(axis=0) * auc[:, None]
        drawn_pos, drawn_neg = copies @ (in_pos.sum(axis=0) > 0), copies @ (in_neg.sum(axis=0) > 0)
        drawn = copies.sum(axis=1)
        s10 = drawn_pos / ((drawn_pos - 1) * positives) * np.sum(copies * v10**2, axis=1)
        s01 = drawn_neg / ((drawn_neg - 1) * negatives) * np.sum(copies * v01**2, axis=1)
        s11 = drawn / (drawn - 1) * np.sum(copies * v10 * v01, axis=1)
        variance = s10 / positives + s01 / negatives + 2 * s11 / (positives * negatives)
    defined = (positives > 0) & (negatives > 0)
    known = defined & np.isfinite(variance)  # a class of one patient has no variance estimate
    return np.where(defined, auc, np.nan), np.where(known, variance, np.nan)


def studentised_interval(
    point: float, variance: float, samples: np.ndarray, variances: np.ndarray, level: float = 0.95
) -> tuple[float, float]:
    """The bootstrap-t interval of an AUC: the point minus the quantiles of (sample − point) / SE(sample), times
    the point's SE, clipped to [0, 1]. Resamples of perfect separation (SE 0) carry no t and are left out; a
    point of SE 0 (a perfect AUC) gives the point itself: no bootstrap can widen it. (On the logit scale the
    interval is narrower but covered a true AUC of 0.95 in only 91–93% of simulated test sets: docs/evaluation.md.)"""
    if point != point or variance != variance or variance <= 0:
        return float(point), float(point)
    keep = ~np.isnan(samples) & ~np.isnan(variances) & (variances > 0)
    t = (samples[keep] - point) / np.sqrt(variances[keep])
    if not len(t):
        return float(point), float(point)
    high_t, low_t = np.quantile(t, [(1 + level) / 2, (1 - level) / 2])
    se = float(np.sqrt(variance))
    return float(np.clip(point - high_t * se, 0, 1)), float(np.clip(point - low_t * se, 0, 1))


def _beats(positive: np.ndarray, negative: np.ndarray) -> np.ndarray:
    """(positives × negatives): 1 where the positive scores higher, ½ on a tie."""
    return (positive[:, None] > negative[None, :]) + 0.5 * (positive[:, None] == negative[None, :]).astype(float)


def _ranking_by_cumsum(y: np.ndarray, score: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """`weighted_ranking` for large test sets: cumulative sums down the ranking (memory linear in images)."""
    order = np.argsort(-score, kind="mergesort")
    ranked, truth, w = score[order], y[order].astype(float), w[:, order]
    ends = np.r_[np.nonzero(np.diff(ranked))[0], len(ranked) - 1]  # last index of each distinct score
    tps = np.cumsum(w * truth, axis=1)[:, ends]
    fps = np.cumsum(w * (1 - truth), axis=1)[:, ends]
    positives, negatives = tps[:, -1:], fps[:, -1:]
    defined = (positives[:, 0] > 0) & (negatives[:, 0] > 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        tpr = np.hstack([np.zeros((len(w), 1)), tps]) / positives
        fpr = np.hstack([np.zeros((len(w), 1)), fps]) / negatives
        auc = np.sum(np.diff(fpr, axis=1) * (tpr[:, 1:] + tpr[:, :-1]) / 2, axis=1)
        precision = np.where(tps + fps > 0, tps / np.where(tps + fps > 0, tps + fps, 1), 0.0)
        ap = np.sum(np.diff(tpr, axis=1) * precision, axis=1)
    return np.where(defined, auc, np.nan), np.where(defined, ap, np.nan)


def weighted_point_metrics(
    y_true: np.ndarray, p_covid: np.ndarray, threshold: float, weights: np.ndarray
) -> dict[str, np.ndarray]:
    """Every metric of `metrics.METRIC_NAMES` per row of `weights` (NaN where undefined)."""
    y = np.asarray(y_true, dtype=float)
    p = np.asarray(p_covid, dtype=float)
    w = np.atleast_2d(weights)
    called = (p >= threshold).astype(float)
    w = np.ascontiguousarray(w, dtype=float)
    tp, fn = w @ (called * y), w @ ((1 - called) * y)
    fp, tn = w @ (called * (1 - y)), w @ ((1 - called) * (1 - y))
    n = tp + tn + fp + fn
    auc, ap = weighted_ranking(y, p, w)
    with np.errstate(invalid="ignore", divide="ignore"):
        chance = ((tp + fp) * (tp + fn) + (fn + tn) * (fp + tn)) / n**2
        both = (tp + fn > 0) & (tn + fp > 0)
        return {
            "sensitivity": tp / (tp + fn),
            "specificity": tn / (tn + fp),
            "precision": tp / (tp + fp),
            "f1": 2 * tp / (2 * tp + fp + fn),
            "roc_auc": auc,
            "average_precision": ap,
            "kappa": np.where(both, ((tp + tn) / n - chance) / (1 - chance), np.nan),
            "brier": (w @ (p - y) ** 2) / n,
        }


def bca_interval(point: float, samples: np.ndarray, jackknife: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    """The BCa interval of a statistic from its bootstrap `samples` and leave-one-cluster-out `jackknife` values;
    NaN values (resamples where it is undefined) are left out."""
    samples = samples[~np.isnan(samples)]
    if not len(samples) or point != point:
        return float("nan"), float("nan")
    if np.all(samples == samples[0]):
        return float(samples[0]), float(samples[0])
    below = (np.sum(samples < point) + 0.5 * np.sum(samples == point)) / len(samples)
    bias = _NORMAL.inv_cdf(min(max(below, 1 / (len(samples) + 1)), len(samples) / (len(samples) + 1)))
    jackknife = jackknife[~np.isnan(jackknife)]
    spread = jackknife.mean() - jackknife if len(jackknife) > 2 else np.zeros(1)
    scale = np.sum(spread**2) ** 1.5
    acceleration = float(np.sum(spread**3) / (6 * scale)) if scale > 0 else 0.0
    bounds = []
    for tail in ((1 - level) / 2, (1 + level) / 2):
        z = _NORMAL.inv_cdf(tail)
        bounds.append(_NORMAL.cdf(bias + (bias + z) / (1 - acceleration * (bias + z))))
    low, high = np.quantile(samples, bounds)
    return float(low), float(high)
