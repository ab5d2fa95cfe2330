"""The audit cannot call a release clean without knowing: it matches patients on the sources' own ids across
readers, fails when the release's source patients are none of the data's, warns where images name no patient,
checks the v0.1 source set only against the seed's exact counts, compares synthetic images with every held-out
split, and the card says what provenance the rows hold."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from cli import app
from cxr_dataset.fileio import sha256_file
from cxr_dataset.loading import load_release
from cxr_dataset.manifest import read_manifest, write_manifest
from cxr_dataset.prepare import PrepareConfig, prepare
from cxr_dataset.schema import NATIVE_PATIENT_ID
from validation_tools.audit import SEED_PAPER_TRAIN, training_patients_held_out, v01_source_set
from validation_tools.validate import SOURCE_PATIENTS_CHECK, V01_CHECK, validate_release

runner = CliRunner()
HELD_OUT_CHECK = "leakage: synthetic from held-out patients"
SYNTHETIC_NEAR_CHECK = "duplicates: synthetic vs real held-out"


def _check(report, name):
    return next(c for c in report.checks if c.name == name)


def _copy_with(prepared: Path, tmp_path: Path, change) -> Path:
    """A copy of the prepared folder whose manifest rows went through `change(rows, root)`."""
    copy = tmp_path / "prepared"
    shutil.copytree(prepared, copy)
    manifest = read_manifest(copy)
    rows = manifest.rows()
    change(rows, copy)
    write_manifest(rows, copy, manifest.meta)
    return copy


def test_validate_fails_when_none_of_the_release_source_patients_is_in_the_data(release, prepared, tmp_path):
    """Patients of other data (other keys, other native ids): nothing can be held out, and the CLI says so."""

    def elsewhere(rows, _):
        for r in rows:
            r["patient_id"], r[NATIVE_PATIENT_ID] = f"other_{r['patient_id']}", f"other-{r[NATIVE_PATIENT_ID]}"

    other = _copy_with(prepared, tmp_path, elsewhere)
    report = tmp_path / "report.json"
    result = runner.invoke(app, ["validate", str(release), "--real", str(other), "--json", str(report)])
    assert result.exit_code == 1, result.output
    check = next(c for c in json.loads(report.read_text())["checks"] if c["name"] == SOURCE_PATIENTS_CHECK)
    assert not check["ok"] and check["detail"].startswith("0 of the ")
    assert "these images do not come from this data" in check["detail"]
    assert _check(validate_release(release, real=prepared), SOURCE_PATIENTS_CHECK).ok


def test_audit_joins_on_native_patient_ids_across_readers(release, prepared, tmp_path):
    """The manifest's keys namespaced by another reader: the native ids still meet the release's patients, so a
    synthetic image of a test patient is caught."""
    patient = load_release(release, "g_nc")["train"][0]["source_patient_id"]

    def other_reader(rows, _):
        for r in rows:
            moved = r["patient_id"] == patient
            r["patient_id"] = f"imagefolder_{r[NATIVE_PATIENT_ID]}"
            if moved:
                r["split"] = "test"

    report = validate_release(release, real=_copy_with(prepared, tmp_path, other_reader))
    assert _check(report, SOURCE_PATIENTS_CHECK).ok
    assert not _check(report, HELD_OUT_CHECK).ok


def _class_folder(root: Path) -> Path:
    for label in ("normal", "pneumonia", "covid"):
        (root / label).mkdir(parents=True)
        for i in range(2):
            Image.fromarray(np.full((20, 24), 40 * i + 60, np.uint8)).save(root / label / f"{i}.png")
    return root


def test_sources_without_patients_warn_at_prepare_and_in_validate(release, tmp_path):
    out = tmp_path / "prepared"
    with pytest.warns(UserWarning, match=r"name no patient \(folder: 6 of 6\).*per image"):
        prepare([f"folder={_class_folder(tmp_path / 'tree')}"], out, PrepareConfig(size=32, workers=1))
    with pytest.warns(UserWarning, match="per image"):
        report = validate_release(release, real=out)
    assert len(report.warnings) == 1 and "folder: 6 of 6" in report.warnings[0]


def test_sources_with_patients_do_not_warn(release, prepared):
    assert validate_release(release, real=prepared).warnings == []


def test_imagefolder_without_patient_column_warns_at_prepare(tmp_path):
    tree = _class_folder(tmp_path / "tree")
    files = sorted(p.relative_to(tree).as_posix() for p in tree.rglob("*.png"))
    (tree / "metadata.csv").write_text("file_name,label\n" + "".join(f"{f},{f.split('/')[0]}\n" for f in files))
    with pytest.warns(UserWarning, match=r"imagefolder: 6 of 6.*per image"):
        prepare([f"imagefolder={tree}"], tmp_path / "prepared", PrepareConfig(size=32, workers=1))


def _v01_rows(counts: dict[str, int]) -> list[dict[str, str]]:
    return [{"label": label, "paper_split": "train", "split": "train"} for label, n in counts.items() for _ in range(n)]


def test_v01_source_set_needs_the_seed_paper_split_counts():
    synthetic = [{"task": 0, "preset": "seed-v0.1"}, {"task": 1, "preset": "seed-v0.1"}]
    assert SEED_PAPER_TRAIN == {"normal": 16_537, "pneumonia": 4_758, "covid": 180}
    rows = _v01_rows(SEED_PAPER_TRAIN)
    exact = v01_source_set(synthetic, rows)
    assert exact["seed_counts"] and exact["held_out_targets"] == 0
    rows[0]["split"] = "test"  # one of the seed's training normals held out here: counted
    assert v01_source_set(synthetic, rows)["tasks"]["g_nc"]["held_out_sources"] == 1
    short = v01_source_set(synthetic, _v01_rows(SEED_PAPER_TRAIN | {"covid": 179}))
    assert not short["seed_counts"] and short["paper_train"]["covid"] == 179


def test_validate_cannot_check_v01_against_a_paper_split_of_other_counts(tmp_path):
    """A phantom prepared with --split paper has paper_split set, but not the seed's images: cannot check."""
    from builders.release import build_release_from_zips
    from cxr_dataset.sources.seed_zips import SeedZipWarning
    from tests.conftest import PHANTOM, SIZE
    from tests.test_sources_seed_zips import make_seed_zips

    zips = make_seed_zips(tmp_path / "zips", n_nc=3, n_pc=2)
    release = tmp_path / "rel" / "covid-synthetic-cxr"
    with pytest.warns(SeedZipWarning):
        build_release_from_zips([zips / "G_NC.zip", zips / "G_PC.zip"], release)
    real = tmp_path / "paper"
    prepare([PHANTOM], real, PrepareConfig(size=SIZE, seed=0, split="paper", workers=1))
    refused = _check(validate_release(release, real=real), V01_CHECK)
    assert not refused.ok and refused.detail.startswith("cannot check") and "16,537 normal" in refused.detail
    accepted = _check(validate_release(release, real=real, accept_unknown_provenance=True), V01_CHECK)
    assert accepted.ok and accepted.detail.startswith("cannot check") and "NOT checked" in accepted.detail
    card = (release / "README.md").read_text()
    assert "full provenance" not in card and "**no provenance**" in card and "seed's v0.1 zips" in card


def test_card_says_full_provenance_when_every_row_has_it(release):
    card = (release / "README.md").read_text()
    assert "with its label and full provenance" in card and "no provenance" not in card


def test_synthetic_near_duplicates_are_sought_in_validation_and_test(release, prepared, tmp_path):
    """Copies of two synthetic images planted over a validation image and a test image of the clustered phantom
    (3 images per patient): validate names both."""
    synthetic = load_release(release, "g_nc")["train"]
    planted = {}

    def plant(rows, root):
        for split, sample in zip(("validation", "test"), synthetic, strict=False):
            target = next(r for r in rows if r["split"] == split)
            sample["image"].convert("L").save(root / target["path"])
            target["sha256"] = sha256_file(root / target["path"])
            planted[split] = (sample["id"], target["id"])

    report = validate_release(release, real=_copy_with(prepared, tmp_path, plant))
    assert not _check(report, SYNTHETIC_NEAR_CHECK).ok
    found = {
        d["b_split"]: (d["a"], d["b"]) for d in report.near_duplicates if d["check"] == "synthetic vs real held-out"
    }
    assert found.get("validation") == planted["validation"] and found.get("test") == planted["test"]


def test_imagefolder_keeps_the_patient_id_as_written_beside_its_key(tmp_path):
    tree = _class_folder(tmp_path / "tree")
    files = sorted(p.relative_to(tree).as_posix() for p in tree.rglob("*.png"))
    lines = "".join(f"{f},{f.split('/')[0]},P {i // 2}.x\n" for i, f in enumerate(files))
    (tree / "metadata.csv").write_text("file_name,label,patient_id\n" + lines)
    prepare([f"imagefolder={tree}"], tmp_path / "prepared", PrepareConfig(size=32, workers=1))
    rows = read_manifest(tmp_path / "prepared").rows()
    assert {(r["patient_id"], r[NATIVE_PATIENT_ID]) for r in rows} == {
        (f"imagefolder_P-{p}-x", f"P {p}.x") for p in range(3)
    }


def test_generator_training_patients_are_matched_on_native_ids_across_readers():
    training = [{"patient_id": "covid-collection_19", NATIVE_PATIENT_ID: "19", "split": "train", "label": "covid"}]
    here = [{"patient_id": "imagefolder_19", NATIVE_PATIENT_ID: "19", "split": "test", "label": "covid"}]
    assert training_patients_held_out(training, ["normal2covid"], here) == {"covid-collection_19": "test"}
    assert training_patients_held_out(training, ["normal2covid"], [here[0] | {NATIVE_PATIENT_ID: "20"}]) == {}


def test_baselines_drop_synthetic_images_of_a_patient_held_out_under_another_readers_key(release):
    """`synthetic_images` (what `cxrds baselines` and `report` train from) matches held-out patients on the
    source's own id too: a manifest made through another reader names the same patient under another key."""
    from cxr_dataset.release_folder import read_release
    from cxr_dataset.schema import NATIVE_PATIENT_ID
    from validation_tools.audit import held_out_keys
    from validation_tools.baselines_data import synthetic_images

    rows = list(read_release(release).iter_rows(["source_patient_id", NATIVE_PATIENT_ID]))
    native = rows[0][NATIVE_PATIENT_ID]
    assert native and f"imagefolder_{native}" != rows[0]["source_patient_id"]
    other_reader = [{"patient_id": f"imagefolder_{native}", NATIVE_PATIENT_ID: native, "split": "test"}]
    _, counts = synthetic_images(release, held_out_keys(other_reader), size=32)
    assert counts["dropped_held_out"] == sum(r[NATIVE_PATIENT_ID] == native for r in rows) > 0
