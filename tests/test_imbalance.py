"""The dataset's argument, run end to end on phantom data at 1:50, over three classifier seeds, with controls.

Everything runs for real: phantom → prepare → CycleGAN (tiny preset, 300 steps) trained on the imbalanced real
training split (300 normal, 6 COVID-19; findings at 0.6 strength) → translate → build → baselines. What the data
says, measured 2026-11-28 on a 2-core AMD EPYC (Zen 3, AVX2; fp32), means ± SD over seeds 0-2, 18 COVID-19
among 168 test images:

- the translations carry the finding: a classifier trained on them alone reaches AUC 0.72 ± 0.01 on real test
  images (seeded noise in their place: 0.42 ± 0.13), and real + G_NC keeps AUC 0.97 ± 0.02 (noise: 0.58 ± 0.15);
- they do not beat plain rebalancing: oversampling the 6 real positives gives AUC 0.999 ± 0.001 and AP 0.99
  against 0.97 and 0.90 with synthetic positives (paired ΔAUC −0.026, 95% CI −0.060 to −0.009, patient
  bootstrap). They buy sensitivity with specificity: sensitivity/specificity 0.83/0.96 against 0.76/0.99 at 0.5,
  0.96/0.86 against 0.87/1.00 at the validation threshold.

The first test pins both findings; the second shows the signal checks fail when the translations are noise.
A generator that turns the second finding round must change this test and the docs that quote it. (Until
2026-11-27 the generator trained 600 steps: AUC 0.68 alone, 0.97 added, and at the validation threshold both
regimes had sensitivity 0.89; halved for CI time, the findings held.)"""

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
from cxr_dataset.prepare import PrepareConfig, prepare
from cxr_dataset.schema import PROVENANCE_FIELDS
from cxr_dataset.synthetic_folder import PROVENANCE_NAME
from cxr_dataset.tables import read_table, write_table
from generator.config import load_preset
from generator.train import train
from generator.translate import translate
from validation_tools.baselines import OVERSAMPLED, BaselinesConfig, run_baselines

NEGATIVES_PER_POSITIVE = 50
SEEDS = (0, 1, 2)


def keep_covid_training_images(prepared, ratio: int) -> tuple[int, int]:
    """Drop real COVID-19 training rows until normals : COVID-19 = ratio : 1 (validation and test untouched)."""
    manifest = read_manifest(prepared)
    rows = manifest.rows()
    normals = len(manifest.rows(label="normal", split="train"))
    covid = [r["id"] for r in rows if r["label"] == "covid" and r["split"] == "train"]
    dropped = set(covid[normals // ratio :])
    write_manifest([r for r in rows if r["id"] not in dropped], prepared, manifest.meta)
    return normals, len(covid) - len(dropped)


def mean_metric(results: list[dict], regime: str, metric: str) -> float:
    return float(np.mean([r[metric] for r in results if r["regime"] == regime]))


def missing_signal(results: list[dict]) -> list[str]:
    """Checks that the synthetic images carry the COVID-19 finding, on the mean over seeds; what fails."""
    alone, added = mean_metric(results, "synthetic only", "roc_auc"), mean_metric(results, "real + G_NC", "roc_auc")
    return [
        problem
        for ok, problem in (
            (alone > 0.6, f"synthetic only: AUC {alone:.3f} <= 0.6 on real test images"),
            (added > 0.85, f"real + G_NC: AUC {added:.3f} <= 0.85"),
        )
        if not ok
    ]


@pytest.fixture(scope="module")
def imbalanced(tmp_path_factory):
    """Prepared data at 1:50 and the generator's translations of its training normals."""
    root = tmp_path_factory.mktemp("imbalance")
    prepared = root / "prepared"
    fractions = {"train": 0.6, "validation": 0.1, "test": 0.3}
    spec = "phantom=normal:500,covid:60,per_patient:1,strength:0.6"
    prepare([spec], prepared, PrepareConfig(size=64, seed=0, workers=2, fractions=fractions))
    assert keep_covid_training_images(prepared, NEGATIVES_PER_POSITIVE) == (300, 6)
    cfg = dataclasses.replace(load_preset("tiny").with_size(64), epochs=4)  # 300 steps
    trained = train(prepared, "normal2covid", root / "run", cfg)
    # The generator learned: the cycle loss of the last logged steps is well under the first step's.
    log = [json.loads(line) for line in (root / "run" / "log.jsonl").read_text().splitlines()]
    assert log[-1]["step"] == trained.steps == 300 and log[-1]["img_per_s"] > 0
    assert sum(e["cycle_A"] for e in log[-10:]) / 10 < 0.3 * log[0]["cycle_A"]
    translate(prepared, root / "run", root / "synthetic")
    return root, prepared


def _baselines(root, prepared, synthetic, name, regimes):
    release = root / name / "covid-synthetic-cxr"
    build_release([synthetic], release)
    cfg = BaselinesConfig(comparisons=("normal vs covid",), epochs=10, seeds=SEEDS, bootstrap=10, regimes=regimes)
    return run_baselines(release, prepared, root / f"{name}-baselines", cfg)


@pytest.mark.slow
def test_synthetic_positives_carry_the_finding_but_do_not_beat_oversampling_at_1_to_50(imbalanced):
    root, prepared = imbalanced
    regimes = ("real + G_NC", "synthetic only", OVERSAMPLED)  # real-only is not asserted on: left out (CI time)
    results = _baselines(root, prepared, root / "synthetic", "release", regimes)
    boosted = next(r for r in results if r["regime"] == "real + G_NC")
    assert (boosted["train_negatives"], boosted["train_positives"]) == (300, 306)
    assert {r["seed"] for r in results} == set(SEEDS)
    assert not missing_signal(results)
    for metric in ("roc_auc", "average_precision"):  # the measured answer: oversampling does better
        assert mean_metric(results, "real + G_NC", metric) < mean_metric(results, OVERSAMPLED, metric)


@pytest.mark.slow
def test_the_signal_checks_fail_when_the_synthetic_images_are_noise(imbalanced):
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
    results = _baselines(root, prepared, noise, "noise-release", ("real + G_NC", "synthetic only"))
    assert len(missing_signal(results)) == 2
