"""`cxrds baselines --external`: every trained classifier also scored on other prepared data, reported apart; an
external set sharing patients with the training data is refused."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cxr_dataset.errors import ConfigError
from cxr_dataset.manifest import read_manifest
from cxr_dataset.prepare import PrepareConfig, prepare
from cxr_dataset.sources.phantom import render_phantom
from validation_tools.baselines import BaselinesConfig, run_baselines

EXTERNAL_SIZE = 80  # prepared at another size than the classifiers' 64: read at theirs


def imagefolder_external(root: Path, out: Path, patient_id: str) -> Path:
    """Phantom pneumonia and COVID-19 radiographs (no normals), five patients a class named by `patient_id`
    (formatted with label and number), two images each, as an imagefolder prepared with every patient in training
    (no test split)."""
    lines = ["file_name,label,patient_id"]
    for label in ("pneumonia", "covid"):
        for patient in range(5):
            for k in range(2):
                name = f"images/{label}/{patient}-{k}.png"
                (root / name).parent.mkdir(parents=True, exist_ok=True)
                pixels = render_phantom(label, 96, seed=7, patient=patient, image=k)
                Image.fromarray(pixels).save(root / name)
                lines.append(f"{name},{label},{patient_id.format(label=label, n=patient)}")
    (root / "metadata.csv").write_text("\n".join(lines) + "\n")
    fractions = {"train": 1.0, "validation": 0.0, "test": 0.0}
    prepare([f"imagefolder={root}"], out, PrepareConfig(size=EXTERNAL_SIZE, seed=0, fractions=fractions, workers=1))
    return out


@pytest.fixture(scope="module")
def external(tmp_path_factory) -> Path:
    """Another 'collection' of other patients."""
    root = tmp_path_factory.mktemp("other-collection")
    return imagefolder_external(root, tmp_path_factory.mktemp("external") / "other-site", "other:{label}-{n}")


def test_external_rows_are_scored_on_the_external_images_and_reported_apart(release, prepared, external, tmp_path):
    cfg = BaselinesConfig(
        epochs=1,
        bootstrap=20,
        controls=False,
        regimes=("real", "real + G_PC"),
        external=(str(external),),
        seeds=(0,),
    )
    results = run_baselines(release, prepared, tmp_path, cfg)
    assert {r["test_set"] for r in results} == {"internal"}
    rows = list(csv.DictReader((tmp_path / "metrics.csv").open()))
    outside = [r for r in rows if r["test_set"] == "other-site"]
    internal = [r for r in rows if r["test_set"] == "internal" and r["comparison"] == "pneumonia vs covid"]
    # pneumonia vs covid only (the external set has no normals), one row per trained run
    assert {r["comparison"] for r in outside} == {"pneumonia vs covid"}
    assert sorted(r["regime"] for r in outside) == sorted(r["regime"] for r in internal) == ["real", "real + G_PC"]
    ext_rows = read_manifest(external).rows()
    assert {r["split"] for r in ext_rows} == {"train"}  # no test split: all of it is the external test
    assert {int(r["test_images"]) for r in outside} == {len(ext_rows)}
    assert {int(r["test_patients"]) for r in outside} == {len({r["patient_id"] for r in ext_rows})}
    assert {int(r["tp"]) + int(r["fn"]) for r in outside} == {sum(r["label"] == "covid" for r in ext_rows)}
    record = json.loads((tmp_path / "metrics.json").read_text())["external"]
    assert record["sets"][0]["notes"]["normal vs covid"] == "skipped: no normal images"
    assert record["sets"][0]["notes"]["pneumonia vs covid"].startswith("all of its images (no test split")
    scored = record["predictions"][0]
    assert scored["patient_id"] == [r["patient_id"] for r in ext_rows]  # the external images, none of the internal
    assert len(scored["p_covid"]) == len(ext_rows) and np.isfinite(scored["p_covid"]).all()
    paired = list(csv.DictReader((tmp_path / "comparisons.csv").open()))
    assert {(c["test_set"], c["regime"], c["against"]) for c in paired if c["test_set"] != "internal"} == {
        ("other-site", "real + G_PC", "real")
    }
    table = (tmp_path / "table.md").read_text()
    assert "## External test: other-site" in table and "Normal vs COVID-19: skipped: no normal images" in table
    assert table.index("## External test") > table.index("| real |")  # internal tables first, external apart


def test_an_external_set_sharing_patients_with_the_training_data_is_refused(release, prepared, tmp_path):
    cfg = BaselinesConfig(
        epochs=1, bootstrap=5, controls=False, regimes=("real",), external=(str(prepared),), seeds=(0,)
    )
    with pytest.raises(ConfigError, match=rf"{prepared}: \d+ patients of this external test set are in the training"):
        run_baselines(release, prepared, tmp_path / "out", cfg)


def test_an_external_set_sharing_source_native_patient_ids_is_refused(prepared, tmp_path):
    """Read through another reader the namespaced ids differ ('imagefolder_phantom-covid-00000'); the source's own
    patient ids still match, and refuse the set."""
    from validation_tools.baselines_data import classifier_splits
    from validation_tools.baselines_external import load_external_sets, seen_patients

    rows = read_manifest(prepared).rows()
    splits, _ = classifier_splits(rows, "leak-free", 0.2, 0)
    seen = seen_patients(rows, splits, "leak-free")
    train = sorted({r["patient_id"] for r in rows if r["split"] == "train" and r["label"] == "covid"})
    assert "phantom-covid-00000" in train  # the phantom's own id, which the imagefolder below repeats
    same = imagefolder_external(tmp_path / "folder", tmp_path / "same-patients", "phantom-{label}-{n:05d}")
    assert not {r["patient_id"] for r in read_manifest(same).rows()} & seen  # namespaced: no match
    with pytest.raises(ConfigError, match=r"same-patients: \d+ patients of this external test set are in the train"):
        load_external_sets([same], seen, 64)
    kept = load_external_sets([same], seen, 64, drop_shared=True)[0]
    assert kept.dropped_shared > 0 and kept.tests["pneumonia vs covid"][0].shape[-2:] == (64, 64)
