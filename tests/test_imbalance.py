"""Planted-truth controls of the dataset's argument on phantom data at 1:50: the evaluation can see a generator
that helps, and does not see one that cannot.

`cxrds baselines` (`run_baselines`) answers whether synthetic positives help a classifier more than oversampling
the real ones, with a paired ΔAUC and its 95 % interval (real + the generator against the oversampling control,
the same seeds and test patients). These tests plant the answer and check the evaluation finds it, at 1:50 (300
training normals, 6 real COVID-19; 150 normal and 18 COVID-19 test patients, findings at strength STRENGTH, faint
enough that oversampling the 6 is not at its ceiling), over SEEDS:

- power: a "perfect generator" whose positives are fresh renders of the true COVID-19 class (new patients of the
  same phantom: `validation_tools.planted_generators`, kind "truth") beats oversampling; the interval lies above 0;
- specificity: a generator of seeded noise does not; its interval does not lie above 0.

Both generators write a synthetic folder in `cxrds translate`'s format, built into a release as any generator's
output is. No CycleGAN is trained here, and nothing is asserted about one: the tiny CycleGAN's own ΔAUC on the
same data is a measurement (`benchmarks/imbalance_study.py`, quoted in docs/evaluation.md, "Planted-truth
controls"), so a better generator changes a number in the docs, not the suite."""

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from builders.release import build_release
from cxr_dataset.errors import ConfigError
from cxr_dataset.imaging import read_gray
from cxr_dataset.manifest import read_manifest
from cxr_dataset.sources.phantom import render_phantom
from cxr_dataset.synthetic_folder import synthetic_rows
from validation_tools.baselines import OVERSAMPLED, BaselinesConfig, run_baselines
from validation_tools.baselines_folder import read_baselines
from validation_tools.planted_generators import FRESH_PATIENTS, STRENGTH, imbalanced_phantom, write_planted_generator

NEGATIVES_PER_POSITIVE = 50
SEEDS = (0, 1, 2)
BOOSTED = "real + G_NC"


@pytest.fixture(scope="module")
def imbalanced(tmp_path_factory) -> tuple[Path, Path]:
    """Phantom data prepared at 1:50 (validation and test untouched): the root for outputs and the prepared folder."""
    root = tmp_path_factory.mktemp("imbalance")
    kept = imbalanced_phantom(
        root / "prepared", normals=500, covid=60, ratio=NEGATIVES_PER_POSITIVE, strength=STRENGTH, workers=2
    )
    assert kept == (300, 6)
    return root, root / "prepared"


def against_oversampling(root: Path, prepared: Path, kind: str) -> dict[str, Any]:
    """Write the planted `kind` generator, build its release, run the baselines (real + it, and the oversampling
    control); the paired comparison of the two as the baselines folder records it, with the runs' results."""
    write_planted_generator(prepared, root / kind, kind)
    release = root / f"{kind}-release" / "covid-synthetic-cxr"
    build_release([root / kind], release)
    cfg = BaselinesConfig(
        comparisons=("normal vs covid",), epochs=10, seeds=SEEDS, bootstrap=200, regimes=(BOOSTED, OVERSAMPLED)
    )
    results = run_baselines(release, prepared, root / f"{kind}-baselines", cfg)
    boosted = [r for r in results if r["regime"] == BOOSTED]
    assert {(r["seed"], r["train_negatives"], r["train_positives"]) for r in boosted} == {(s, 300, 306) for s in SEEDS}
    (row,) = [
        c
        for c in read_baselines(root / f"{kind}-baselines").comparisons
        if (c["regime"], c["against"]) == (BOOSTED, OVERSAMPLED)
    ]
    return row


@pytest.mark.slow
def test_a_generator_of_true_covid_images_beats_oversampling_at_1_to_50(imbalanced):
    row = against_oversampling(*imbalanced, "truth")
    low, high = row["delta_roc_auc_ci"]
    assert low > 0, f"real + true COVID-19 renders vs oversampling: ΔAUC {row['delta_roc_auc']:+.3f} [{low}, {high}]"


@pytest.mark.slow
def test_a_generator_of_noise_does_not_beat_oversampling_at_1_to_50(imbalanced):
    row = against_oversampling(*imbalanced, "noise")
    low, high = row["delta_roc_auc_ci"]
    assert not low > 0, f"real + noise vs oversampling: ΔAUC {row['delta_roc_auc']:+.3f} [{low}, {high}]"


def test_the_planted_truth_is_fresh_renders_of_covid_one_per_training_normal(prepared, tmp_path):
    """The truth generator's images are new COVID-19 patients of the prepared data's phantom, none a prepared
    image, each standing in for one training normal; noise is noise; non-phantom kinds are refused by name."""
    manifest = read_manifest(prepared)
    normals = manifest.rows(label="normal", split="train")
    write_planted_generator(prepared, tmp_path / "truth", "truth", seed=1)
    rows, meta, _ = synthetic_rows(tmp_path / "truth")
    assert meta["planted"] == "truth" and {r["preset"] for r in rows} == {"planted-truth"}
    assert sorted(r["source_image_id"] for r in rows) == sorted(r["id"] for r in normals)
    assert {r["source_patient_id"] for r in rows} == {r["patient_id"] for r in normals}
    size = int(manifest.meta["size"])
    for i in (0, len(rows) - 1):  # seed 1's patients, in the order of the normals they stand in for
        fresh = render_phantom("covid", size, seed=0, patient=2 * FRESH_PATIENTS + i, image=0)
        assert np.array_equal(read_gray(Path(rows[i]["_file"])), fresh)
    prepared_pixels = [read_gray(manifest.read_image(r)) for r in manifest.rows()]
    assert not any(np.array_equal(read_gray(Path(r["_file"])), p) for r in rows for p in prepared_pixels)
    write_planted_generator(prepared, tmp_path / "noise", "noise")
    noise = read_gray(Path(synthetic_rows(tmp_path / "noise")[0][0]["_file"]))
    assert noise.std() > 60  # uniform over 0-255: SD ≈ 74; a radiograph is far smoother
    with pytest.raises(ConfigError, match="must be one of"):
        write_planted_generator(prepared, tmp_path / "other", "cyclegan")
