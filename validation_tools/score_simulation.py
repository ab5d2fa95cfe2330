"""Simulated test predictions shaped like a `cxrds baselines` run, for checking its intervals where the truth is
known: the coverage test (`tests/test_intervals.py`) and the measurements in docs/evaluation.md
(`benchmarks/intervals.py`).

A test patient has a latent difficulty shared by every classifier; each of its 1–5 images adds a little of its
own (near-identical views of one patient); each trained classifier (a regime × seed) adds its own noise, mostly
per patient (it sees near-identical images alike), a little per image, and its own separation, drawn around its
regime's, so seeds differ in AUC by a chosen SD. A model's score is the
logistic of separation × label + the three noises, and its true AUC (over the population of patients and
images) is Φ(separation / √(2·total variance)).
"""

from __future__ import annotations

from dataclasses import dataclass
from statistics import NormalDist

import numpy as np

from validation_tools.paired import Scored

PATIENT_SD, IMAGE_SD = 0.8, 0.25  # latent noises (logit scale) per patient and image, shared by every model
MODEL_PATIENT_SD, MODEL_IMAGE_SD = 0.45, 0.2  # each model's own, per patient and per image
TOTAL_SD = float(np.sqrt(PATIENT_SD**2 + IMAGE_SD**2 + MODEL_PATIENT_SD**2 + MODEL_IMAGE_SD**2))
_NORMAL = NormalDist()


@dataclass(frozen=True)
class TestSet:
    y_true: np.ndarray  # 1: COVID-19, per image
    patients: np.ndarray  # patient id per image
    latent: np.ndarray  # patient + image noise per image, shared by every model


def separation_for(auc: float) -> float:
    """The separation whose true AUC is `auc`."""
    return _NORMAL.inv_cdf(auc) * np.sqrt(2) * TOTAL_SD


def true_auc(separation: float) -> float:
    return _NORMAL.cdf(separation / (np.sqrt(2) * TOTAL_SD))


def seed_sd_for(auc: float, auc_sd: float) -> float:
    """The SD of a model's separation that makes seeds' true AUCs differ by about `auc_sd` near `auc`."""
    z = _NORMAL.inv_cdf(auc)
    return auc_sd * np.sqrt(2) * TOTAL_SD / (np.exp(-z * z / 2) / np.sqrt(2 * np.pi))


def test_set(
    rng: np.random.Generator, covid_patients: int = 19, negative_patients: int = 40, most_images: int = 5
) -> TestSet:
    """Patients with 1..`most_images` images each; near-identical images of one patient (IMAGE_SD small)."""
    labels = np.r_[np.ones(covid_patients, int), np.zeros(negative_patients, int)]
    counts = rng.integers(1, most_images + 1, len(labels))
    patients = np.repeat(np.arange(len(labels)), counts)
    latent = rng.normal(0, PATIENT_SD, len(labels))[patients] + rng.normal(0, IMAGE_SD, len(patients))
    return TestSet(labels[patients], patients, latent)


def scored_runs(
    rng: np.random.Generator, test: TestSet, separation: float, seed_sd: float, seeds: int
) -> tuple[list[Scored], list[float]]:
    """`seeds` trained classifiers of one regime: their predictions (threshold at each one's midpoint, off by a
    little, as a threshold chosen on validation is) and their true AUCs."""
    runs, aucs = [], []
    for _ in range(seeds):
        own = separation + rng.normal(0, seed_sd)
        noise = rng.normal(0, MODEL_PATIENT_SD, test.patients.max() + 1)[test.patients]
        noise += rng.normal(0, MODEL_IMAGE_SD, len(test.y_true))
        logit = own * (test.y_true - 0.5) + test.latent + noise
        threshold = 1 / (1 + np.exp(-rng.normal(0, 0.2)))
        runs.append(Scored(np.round(1 / (1 + np.exp(-logit)), 6), float(threshold)))
        aucs.append(true_auc(own))
    return runs, aucs


def predictions(test: TestSet, runs: list[Scored], regime: str, comparison: str = "normal vs covid") -> list[dict]:
    """The runs as `cxrds baselines` records its predictions (one dict per seed), for `paired_comparisons`."""
    return [
        {"comparison": comparison, "regime": regime, "model": "small-cnn", "seed": seed}
        | {"threshold": run.threshold, "y_true": test.y_true.tolist(), "patient_id": test.patients.tolist()}
        | {"p_covid": run.p_covid.tolist()}
        for seed, run in enumerate(runs)
    ]
