"""The dataset's reason to exist, shown on phantom data: at 1:50, synthetic positives help a COVID-19 classifier
beyond plain rebalancing, and the same test fails when the "synthetic" images are noise.

Everything runs for real: phantom → prepare → CycleGAN (tiny preset) trained on the imbalanced real training
split → translate → build → baselines with three classifier seeds and both controls (the real positives
oversampled to the synthetic count; a class-weighted loss). The claim is asserted on the mean over seeds,
against real-only and against oversampling. The phantom's findings are at 0.6 strength: at full strength six
positives teach the classifier nearly everything. It also checks that training lowers the cycle loss.
"""

import dataclasses
import io
import json
import shutil

import numpy as np
import pytest
from PIL import Image

from builders.release import build_release
from cxr_dataset.fileio import sha256_bytes
from cxr_dataset.manifest import read_manifest, write_manifest
from cxr_dataset.prepare import prepare
from cxr_dataset.schema import PROVENANCE_FIELDS, PROVENANCE_NAME
from cxr_dataset.tables import read_table, write_table
from generator.config import load_preset
from generator.train import train
from generator.translate import translate
from validation_tools.baselines import OVERSAMPLED, BaselinesConfig, run_baselines

NEGATIVES_PER_POSITIVE = 50
SEEDS = (0, 1, 2)
CLAIM_METRICS = ("roc_auc", "average_precision", "sensitivity_at_threshold")


def keep_covid_training_images(prepared, ratio: int) -> tuple[int, int]:
    """Drop real COVID-19 training rows until normals : COVID-19 = ratio : 1 (validation and test untouched)."""
    manifest = read_manifest(prepared)
    rows = manifest.rows()
    normals = len(manifest.rows(label="normal", split="train"))
    covid = [r["id"] for r in rows if r["label"] == "covid" and r["split"] == "train"]
    dropped = set(covid[normals // ratio :])
    write_manifest([r for r in rows if r["id"] not in dropped], prepared, manifest.meta)
    return normals, len(covid) - len(dropped)


def shortfalls(results: list[dict]) -> list[str]:
    """Where 'real + G_NC' does not beat real-only and the oversampling control on the mean over seeds."""

    def mean(regime: str, metric: str) -> float:
        return float(np.mean([r[metric] for r in results if r["regime"] == regime]))

    return [
        f"{metric}: real + G_NC {mean('real + G_NC', metric):.3f} <= {control} {mean(control, metric):.3f}"
        for control in ("real", OVERSAMPLED)
        for metric in CLAIM_METRICS
        if mean("real + G_NC", metric) <= mean(control, metric)
    ]


@pytest.fixture(scope="module")
def imbalanced(tmp_path_factory):
    """Prepared data at 1:50 and the generator's translations of its training normals."""
    root = tmp_path_factory.mktemp("imbalance")
    prepared = root / "prepared"
    fractions = {"train": 0.6, "validation": 0.1, "test": 0.3}
    spec = "phantom=normal:500,covid:60,per_patient:1,strength:0.6"
    prepare([spec], prepared, size=64, seed=0, workers=2, fractions=fractions)
    assert keep_covid_training_images(prepared, NEGATIVES_PER_POSITIVE) == (300, 6)
    cfg = dataclasses.replace(load_preset("tiny").with_size(64), epochs=12)  # 900 steps
    trained = train(prepared, "normal2covid", root / "run", cfg)
    # The generator learned: the cycle loss of the last logged steps is well under the first step's.
    log = [json.loads(line) for line in (root / "run" / "log.jsonl").read_text().splitlines()]
    assert log[-1]["step"] == trained.steps == 900 and log[-1]["img_per_s"] > 0
    assert sum(e["cycle_A"] for e in log[-10:]) / 10 < 0.3 * log[0]["cycle_A"]
    translate(prepared, root / "run", root / "synthetic")
    return root, prepared


def _baselines(root, prepared, synthetic, name):
    release = root / name / "covid-synthetic-cxr"
    build_release([synthetic], release)
    cfg = BaselinesConfig(comparisons=("normal vs covid",), epochs=10, seeds=SEEDS, bootstrap=10)
    return run_baselines(release, prepared, root / f"{name}-baselines", cfg)


@pytest.mark.slow
def test_synthetic_positives_beat_real_only_and_oversampling_at_1_to_50(imbalanced):
    root, prepared = imbalanced
    results = _baselines(root, prepared, root / "synthetic", "release")
    real = next(r for r in results if r["regime"] == "real")
    boosted = next(r for r in results if r["regime"] == "real + G_NC")
    assert (real["train_negatives"], real["train_positives"], boosted["train_positives"]) == (300, 6, 306)
    assert not shortfalls(results)


@pytest.mark.slow
def test_the_same_claim_fails_when_the_synthetic_images_are_noise(imbalanced):
    """The control of the test above: translations replaced by seeded noise (provenance kept, hashes updated)."""
    root, prepared = imbalanced
    noise = root / "noise"
    shutil.copytree(root / "synthetic", noise)
    table, meta = read_table(noise / PROVENANCE_NAME, PROVENANCE_FIELDS)
    rows, rng = table.to_pylist(), np.random.default_rng(0)
    for row in rows:
        buf = io.BytesIO()
        Image.fromarray(rng.integers(0, 256, (row["height"], row["width"]), dtype=np.uint8)).save(buf, "PNG")
        (noise / row["path"]).write_bytes(buf.getvalue())
        row["sha256"] = sha256_bytes(buf.getvalue())
    write_table(rows, PROVENANCE_FIELDS, noise / PROVENANCE_NAME, meta)
    assert shortfalls(_baselines(root, prepared, noise, "noise-release"))
