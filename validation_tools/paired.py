"""Paired comparison of two training regimes scored on the same real test images, with intervals that include
training noise.

A hierarchical bootstrap: each resample draws generator runs (when the runs name several), classifier seeds
within them, and test patients, all with replacement; the difference is averaged over the seeds drawn. Patients
are shared by both regimes (the same test images), so their draw is common; seeds are paired (`a[i]` and `b[i]`
are one seed trained on two regimes). Two seeds or more are needed for training noise to enter; with three, the
bootstrap of a mean under-states its spread by (k − 1)/k, so the seed-level deviation of each resample is
scaled by √(k / (k − 1)) (the usual small-sample correction). Coverage is tested on simulated runs shaped like
the committed one (`tests/test_intervals.py`, docs/evaluation.md).

No McNemar test: it counted images, not patients, tested accuracy, not sensitivity, and held each trained model
fixed; the ΔSEN interval here answers its question with patients and seeds resampled.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from validation_tools.bootstrap import cluster_weights, weighted_ranking

DELTAS = ("roc_auc", "average_precision", "sensitivity")


@dataclass(frozen=True)
class Scored:
    """One classifier's test predictions: P(covid) per image, the threshold it was chosen to use, and the
    generator run whose images trained it ("" when one run or none)."""

    p_covid: np.ndarray
    threshold: float
    generator_run: str = ""


def paired_deltas(
    y_true: np.ndarray,
    groups: np.ndarray,
    a: list[Scored],
    b: list[Scored],
    *,
    resamples: int = 1000,
    seed: int = 0,
) -> dict[str, object]:
    """Mean over seeds of a − b in AUC, AP and sensitivity at each run's threshold, with 95% percentile intervals
    from the hierarchical bootstrap (generator runs, seeds, patients: see the module's note).

    `groups` holds each test image's patient id."""
    if len(a) != len(b) or not a:
        raise ValueError("paired comparison needs the same seeds on both sides")
    y_true = np.asarray(y_true, dtype=int)
    rng = np.random.default_rng(seed)
    full = np.ones((1, len(y_true)))
    patients = cluster_weights(groups, resamples, rng)
    point = np.mean([_deltas(y_true, ra, rb, full)[0] for ra, rb in zip(a, b, strict=True)], axis=0)
    per_seed = np.stack([_deltas(y_true, ra, rb, patients) for ra, rb in zip(a, b, strict=True)], axis=1)
    samples = _over_training_runs(per_seed, [r.generator_run for r in a], rng)
    samples = samples[~np.isnan(samples).any(axis=1)]
    low, high = np.percentile(samples, [2.5, 97.5], axis=0) if len(samples) else (point * np.nan, point * np.nan)
    per_seed_sen = [float(_deltas(y_true, ra, rb, full)[0, 2]) for ra, rb in zip(a, b, strict=True)]
    return {
        "seeds": len(a),
        "generator_runs": len({r.generator_run for r in a}),
        "resampled": "patients, seeds" if len(a) > 1 else "patients only (one seed: training noise left out)",
        **{f"delta_{m}": float(point[k]) for k, m in enumerate(DELTAS)},
        **{f"delta_{m}_ci": [float(low[k]), float(high[k])] for k, m in enumerate(DELTAS)},
        "seeds_sensitivity_higher": int(sum(d > 0 for d in per_seed_sen)),
        "seeds_sensitivity_lower": int(sum(d < 0 for d in per_seed_sen)),
    }


def _deltas(y_true: np.ndarray, a: Scored, b: Scored, weights: np.ndarray) -> np.ndarray:
    """(resamples × 3): ΔAUC, ΔAP, ΔSEN of one seed pair per row of patient weights."""
    auc_a, ap_a = weighted_ranking(y_true, a.p_covid, weights)
    auc_b, ap_b = weighted_ranking(y_true, b.p_covid, weights)
    positive = weights * (y_true == 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        sen = (positive @ ((a.p_covid >= a.threshold) * 1.0 - (b.p_covid >= b.threshold))) / positive.sum(axis=1)
    return np.stack([auc_a - auc_b, ap_a - ap_b, sen], axis=1)


def _over_training_runs(per_seed: np.ndarray, runs: list[str], rng: np.random.Generator) -> np.ndarray:
    """(resamples × 3): per resample, generator runs drawn with replacement, seeds drawn within each, and the
    mean over the seeds drawn, its deviation from the resample's all-seed mean scaled by √(k / (k − 1)) at the
    top level drawn (k its count). `per_seed`: resamples × seeds × 3 (patients already resampled)."""
    resamples, seeds = per_seed.shape[:2]
    with warnings.catch_warnings():  # a resample holding one class is NaN for every seed: left out later
        warnings.simplefilter("ignore", RuntimeWarning)
        centre = np.nanmean(per_seed, axis=1)
    if seeds == 1:
        return centre
    names = list(dict.fromkeys(runs))
    members = [np.array([i for i, r in enumerate(runs) if r == name]) for name in names]
    weights = np.zeros((resamples, seeds))
    chosen_runs = rng.integers(0, len(names), (resamples, len(names)))
    for column in range(len(names)):
        for run, index in enumerate(members):
            rows = np.nonzero(chosen_runs[:, column] == run)[0]
            picks = index[rng.integers(0, len(index), (len(rows), len(index)))]
            np.add.at(weights, (np.repeat(rows, len(index)), picks.ravel()), 1.0)
    drawn = np.einsum("rs,rsm->rm", weights, np.nan_to_num(per_seed)) / weights.sum(axis=1, keepdims=True)
    drawn[np.isnan(per_seed).any(axis=1)] = np.nan
    top = len(names) if len(names) > 1 else seeds
    return centre + np.sqrt(top / (top - 1)) * (drawn - centre) if top > 1 else centre
