"""Provenance compared wherever it is read: a manifest's identity follows its images, settings and split (not the
source folder's path); translate records the generator's training manifest; `validate --real` fails when the
generators were trained on other data (naming the patients when it can); `train --resume` refuses another
prepared folder; imagefolder rows with a null patient id are each their own patient."""

from __future__ import annotations

import json
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from builders.release import BuildConfig, build_release, build_release_from_zips
from cli import app
from cxr_dataset.errors import ConfigError
from cxr_dataset.manifest import read_manifest
from cxr_dataset.prepare import PrepareConfig, prepare
from cxr_dataset.schema import PROVENANCE_FIELDS
from cxr_dataset.sources.imagefolder import ImageFolderSource
from cxr_dataset.sources.seed_zips import SeedZipWarning
from cxr_dataset.synthetic_folder import PROVENANCE_NAME
from cxr_dataset.tables import read_table
from generator.train import train
from generator.translate import translate
from tests.conftest import PHANTOM, SIZE, tiny_config
from tests.test_sources_seed_zips import make_seed_zips
from validation_tools.audit import training_patients_held_out
from validation_tools.validate import GENERATORS_CHECK, validate_release

OTHER_FRACTIONS = {"train": 0.5, "validation": 0.25, "test": 0.25}  # same images as `prepared`, another split


def _check(report, name: str = GENERATORS_CHECK):
    return next(c for c in report.checks if c.name == name)


def _sources(root: Path) -> Path:
    """A class folder and an imagefolder with a few small images each."""
    rng = np.random.default_rng(0)
    for label, n in (("normal", 3), ("covid", 2)):
        (root / "tree" / label).mkdir(parents=True)
        for i in range(n):
            Image.fromarray(rng.integers(0, 255, (30, 40), dtype=np.uint8)).save(root / "tree" / label / f"{i}.png")
    (root / "hf" / "images").mkdir(parents=True)
    lines = []
    for i, label in enumerate(("normal", "covid", "pneumonia")):
        Image.fromarray(rng.integers(0, 255, (40, 30), dtype=np.uint8)).save(root / "hf" / "images" / f"{i}.png")
        lines.append(json.dumps({"file_name": f"images/{i}.png", "label": label, "patient_id": f"p{i}"}))
    (root / "hf" / "metadata.jsonl").write_text("\n".join(lines) + "\n")
    return root


def _mtimes(folder: Path) -> dict[str, int]:
    return {p.name: p.stat().st_mtime_ns for p in folder.rglob("*.png")}


def test_identical_images_prepared_from_a_moved_and_differently_spelled_folder_have_one_identity(tmp_path, monkeypatch):
    here = _sources(tmp_path / "here")
    prepare(
        [f"folder={here / 'tree'}", f"imagefolder={here / 'hf'}"], tmp_path / "a", PrepareConfig(size=16, workers=1)
    )
    moved = tmp_path / "elsewhere" / "renamed"
    shutil.copytree(here, moved)
    monkeypatch.chdir(tmp_path / "elsewhere")
    prepare(
        ["folder=./renamed/tree/", "imagefolder=renamed/../renamed/hf"],
        tmp_path / "b",
        PrepareConfig(size=16, workers=1),
    )
    a, b = read_manifest(tmp_path / "a"), read_manifest(tmp_path / "b")
    assert a.sha256 == b.sha256
    assert (tmp_path / "a" / "manifest.parquet").read_bytes() == (tmp_path / "b" / "manifest.parquet").read_bytes()
    assert {r["origin"] for r in a.rows(label="covid")} == {"covid/0.png", "covid/1.png", "images/1.png"}
    assert a.meta["sources"] == ["folder", "imagefolder"]
    # Other settings or another split are another identity.
    prepare(["folder=renamed/tree"], tmp_path / "c", PrepareConfig(size=16, workers=1, seed=1))
    assert read_manifest(tmp_path / "c").sha256 != a.sha256


def test_prepare_cache_follows_the_source_bytes_not_the_path_nor_stale_metadata(tmp_path):
    """Zips moved elsewhere are reused from the cache, a member with new bytes is not (the cache is keyed by the
    members' bytes, not their paths), and an edited patient id is never answered from the cache."""
    here = _sources(tmp_path / "here")
    make_seed_zips(here / "zips", n_nc=2, n_pc=1)
    out = tmp_path / "out"
    with pytest.warns(SeedZipWarning):
        prepare([f"release={here / 'zips'}", f"imagefolder={here / 'hf'}"], out, PrepareConfig(size=16, workers=1))
    before = _mtimes(out)
    moved = tmp_path / "moved"
    shutil.move(here, moved)
    metadata = moved / "hf" / "metadata.jsonl"
    metadata.write_text(metadata.read_text().replace('"p0"', '"p9"'))
    with zipfile.ZipFile(moved / "zips" / "G_PC.zip", "w") as zf:  # same member name, other bytes
        zf.writestr("G2/1_g2.jpg", (moved / "hf" / "images" / "2.png").read_bytes())
    with pytest.warns(SeedZipWarning):
        prepare([f"seed-zips={moved / 'zips'}", f"imagefolder={moved / 'hf'}"], out, PrepareConfig(size=16, workers=1))
    after = _mtimes(out)
    assert {name for name in before if after[name] != before[name]} == {"release_g_pc_1.png"}  # only new bytes
    rows = {r["id"]: r for r in read_manifest(out).rows()}
    assert rows["imagefolder_images-0"]["patient_id"] == "imagefolder_p9"
    assert rows["release_g_nc_1"]["origin"] == "G_NC.zip::G1/1.jpg"
    fresh = tmp_path / "fresh"
    with pytest.warns(SeedZipWarning):
        prepare([f"release={moved / 'zips'}", f"imagefolder={moved / 'hf'}"], fresh, PrepareConfig(size=16, workers=1))
    assert read_manifest(fresh).sha256 == read_manifest(out).sha256


@pytest.fixture(scope="module")
def other_split(tmp_path_factory) -> Path:
    """The session's phantom images prepared with another split: B, where `prepared` is A."""
    out = tmp_path_factory.mktemp("other-split")
    prepare([PHANTOM], out, PrepareConfig(size=SIZE, seed=0, fractions=OTHER_FRACTIONS, workers=1))
    return out


@pytest.fixture(scope="module")
def translated_elsewhere(synthetic, other_split, tmp_path_factory) -> Path:
    """A release of B's normals translated by the generator trained on A."""
    root = tmp_path_factory.mktemp("elsewhere")
    run = synthetic["normal2covid"].parents[1] / "runs" / "normal2covid"
    translate(other_split, run, root / "synthetic")
    build_release([root / "synthetic"], root / "release", BuildConfig(samples_per_shard=8))
    return root


def test_translate_records_the_generators_training_manifest(prepared, other_split, translated_elsewhere):
    table, meta = read_table(translated_elsewhere / "synthetic" / PROVENANCE_NAME, PROVENANCE_FIELDS)
    trained_on = read_manifest(prepared).sha256
    assert set(table.column("train_manifest_sha256").to_pylist()) == {trained_on}
    assert meta["train_manifest_sha256"] == trained_on and meta["trained_on_this_manifest"] is False
    assert meta["manifest_sha256"] == read_manifest(other_split).sha256 != trained_on


def test_validate_fails_when_the_generators_were_trained_on_another_split_and_names_the_patients(
    prepared, other_split, translated_elsewhere
):
    a, b = read_manifest(prepared), read_manifest(other_split)
    expected = training_patients_held_out(a.rows(), ["normal2covid"], b.rows())
    assert expected  # the planted leak: some of A's training patients are B's validation/test patients
    release = translated_elsewhere / "release"

    report = validate_release(release, real=other_split)
    check = _check(report)
    assert not report.ok and not check.ok
    assert a.sha256 in check.detail and b.sha256 in check.detail and "--trained-on" in check.detail

    named = _check(validate_release(release, real=other_split, trained_on=[prepared]))
    assert not named.ok and f"{len(expected)} of its" in named.detail
    assert all(p in named.detail for p in list(expected)[:10])

    result = CliRunner().invoke(
        app, ["validate", str(release), "--real", str(other_split), "--trained-on", str(prepared)]
    )
    assert result.exit_code == 1 and "FAIL" in result.output


def test_validate_against_the_training_manifest_passes_the_generator_check(release, prepared):
    check = _check(validate_release(release, real=prepared))
    assert check.ok and read_manifest(prepared).sha256 in check.detail


def test_validate_with_unrelated_real_data_fails(release, prepared, tmp_path):
    unrelated = tmp_path / "unrelated"
    prepare(["phantom=normal:6,pneumonia:6,covid:6"], unrelated, PrepareConfig(size=SIZE, seed=7, workers=1))
    report = validate_release(release, real=unrelated)
    check = _check(report)
    assert not report.ok and not check.ok
    assert read_manifest(prepared).sha256 in check.detail and read_manifest(unrelated).sha256 in check.detail


def test_resume_with_another_prepared_folder_is_refused_naming_both_identities(
    synthetic, prepared, other_split, tmp_path
):
    run = tmp_path / "run"
    shutil.copytree(synthetic["normal2covid"].parents[1] / "runs" / "normal2covid", run)
    a, b = read_manifest(prepared).sha256, read_manifest(other_split).sha256
    with pytest.raises(ConfigError, match=f"trained on the prepared manifest {a}.*is manifest {b}"):
        train(other_split, "normal2covid", run, tiny_config(), resume=True)
    # The same images and split prepared into another folder are the same data: the run resumes (nothing left).
    again = tmp_path / "again"
    prepare([PHANTOM], again, PrepareConfig(size=SIZE, seed=0, workers=1))
    assert train(again, "normal2covid", run, tiny_config(), resume=True).steps > 0


def test_release_from_the_seeds_zips_cannot_be_checked_and_fails(prepared, tmp_path):
    zips = make_seed_zips(tmp_path / "zips", n_nc=3, n_pc=2)
    release = tmp_path / "rel" / "covid-synthetic-cxr"
    with pytest.warns(SeedZipWarning):
        build_release_from_zips([zips / "G_NC.zip", zips / "G_PC.zip"], release)
    report = validate_release(release, real=prepared)
    check = _check(report)
    assert not report.ok and not check.ok and "cannot be checked" in check.detail
    accepted = _check(validate_release(release, real=prepared, accept_unknown_provenance=True))
    assert accepted.ok and "NOT checked" in accepted.detail and "trained on this manifest" not in accepted.detail


def test_imagefolder_jsonl_rows_with_null_patient_ids_are_each_their_own_patient(tmp_path):
    root = tmp_path / "hf"
    (root / "images").mkdir(parents=True)
    rows = [{"file_name": f"images/{i}.png", "label": "normal", "patient_id": None} for i in range(27)]
    rows += [{"file_name": f"images/s{i}.png", "label": "covid", "patient_id": "same"} for i in range(2)]
    (root / "metadata.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    records = ImageFolderSource(root).records()
    patients = [r.patient_id for r in records if r.label == "normal"]
    assert len(set(patients)) == 27 and all(r.patient_id == r.id for r in records if r.label == "normal")
    assert len({r.patient_id for r in records if r.label == "covid"}) == 1
