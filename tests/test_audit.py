"""validate --real: the skew table, the leakage audit and duplicate detection, each shown to catch a planted fault."""

import shutil

import numpy as np
import pytest
from PIL import Image

from cxr_dataset.errors import ConfigError
from cxr_dataset.fileio import sha256_file
from cxr_dataset.loading import load_release
from cxr_dataset.manifest import read_manifest, write_manifest
from cxr_dataset.sources.phantom import render_phantom
from validation_tools.audit import dhash, near_duplicate_pairs
from validation_tools.balance import skew_table
from validation_tools.validate import validate_release

AUDITS = (
    "leakage: synthetic from held-out patients",
    "leakage: patients in two splits",
    "duplicates: real across splits",
    "duplicates: synthetic vs real held-out",
)


def test_audit_skew_table_from_the_seeds_counts():
    rows = skew_table({"normal": 16_537, "pneumonia": 4_758, "covid": 180}, {"g_nc": 16_537, "g_pc": 4_758})
    normal = {r["regime"]: r["skew"] for r in rows if r["comparison"] == "normal vs covid"}
    assert normal["real"] == 91.87 and normal["real + G_NC"] == 0.98  # as the seed printed


def _failed(report):
    return {c.name for c in report.checks if not c.ok}


@pytest.fixture
def real_copy(prepared, tmp_path):
    copy = tmp_path / "prepared"
    shutil.copytree(prepared, copy)
    return copy


def _rewrite(root, change):
    manifest = read_manifest(root)
    rows = manifest.rows()
    change(rows, root)
    write_manifest(rows, root, manifest.meta)


def test_audit_passes_on_a_clean_release(release, prepared):
    report = validate_release(release, real=prepared)
    assert not _failed(report), report.to_json()
    assert {r["comparison"] for r in report.skew} == {"normal vs covid", "pneumonia vs covid"}


def test_audit_catches_a_synthetic_image_from_a_test_patient(release, real_copy):
    patient = load_release(release, "g_nc")["train"][0]["source_patient_id"]

    def move(rows, _):
        for r in rows:
            if r["patient_id"] == patient:
                r["split"] = "test"

    _rewrite(real_copy, move)
    assert "leakage: synthetic from held-out patients" in _failed(validate_release(release, real=real_copy))


def test_audit_catches_a_patient_in_two_splits(release, real_copy):
    def split_patient(rows, _):
        first = next(r for r in rows if r["split"] == "train")
        first["split"] = "validation"  # its patient's other images stay in train

    _rewrite(real_copy, split_patient)
    assert "leakage: patients in two splits" in _failed(validate_release(release, real=real_copy))


@pytest.mark.parametrize("noise", [0.0, 3.0])
def test_audit_catches_exact_and_near_duplicates_across_splits(release, real_copy, noise):
    pair = {}

    def duplicate(rows, root):
        train = next(r for r in rows if r["split"] == "train")
        test = next(r for r in rows if r["split"] == "test")
        pixels = np.asarray(Image.open(root / train["path"]), dtype=np.float64)
        noisy = np.clip(pixels + np.random.default_rng(0).normal(0, noise, pixels.shape), 0, 255).astype(np.uint8)
        Image.fromarray(noisy if noise else pixels.astype(np.uint8)).save(root / test["path"])
        test["sha256"] = sha256_file(root / test["path"])
        pair.update(train=train["id"], test=test["id"])

    _rewrite(real_copy, duplicate)
    report = validate_release(release, real=real_copy)
    assert "duplicates: real across splits" in _failed(report)
    named = {(d["a"], d["b"]) for d in report.near_duplicates if d["check"] == "real"}
    assert {(pair["train"], pair["test"]), (pair["test"], pair["train"])} & named  # the pair is named
    assert '"near_duplicates"' in report.to_json()


def test_audit_near_duplicates_separate_copies_from_other_patients():
    a = render_phantom("normal", 128, seed=0, patient=1, image=0)
    noisy = np.clip(a + np.random.default_rng(1).normal(0, 3, a.shape), 0, 255).astype(np.uint8)
    others = [render_phantom("normal", 128, seed=0, patient=p, image=0) for p in range(2, 12)]
    hashes = [dhash(Image.fromarray(x)) for x in (a, noisy, *others)]
    assert [(i, j) for i, j, _ in near_duplicate_pairs(hashes)] == [(0, 1)]


def test_audit_synthetic_images_without_a_source_patient_fail_unless_accepted(prepared, tmp_path):
    """The seed's v0.1 zips record no source patient: the audit must say it cannot check them, not 'clean'."""
    from builders.release import build_release_from_zips
    from cxr_dataset.sources.seed_zips import SeedZipWarning
    from tests.test_sources_seed_zips import make_seed_zips

    zips = make_seed_zips(tmp_path / "zips", n_nc=5, n_pc=3)
    release = tmp_path / "rel" / "covid-synthetic-cxr"
    with pytest.warns(SeedZipWarning):
        build_release_from_zips([zips / "G_NC.zip", zips / "G_PC.zip"], release)
    refused = validate_release(release, real=prepared)
    check = next(c for c in refused.checks if c.name == "leakage: synthetic of unknown source")
    assert not refused.ok and not check.ok and "8 of 8 synthetic images name no source patient" in check.detail
    held = next(c for c in refused.checks if c.name == "leakage: synthetic from held-out patients")
    assert "none of the 0 synthetic images with a recorded source patient" in held.detail
    accepted = validate_release(release, real=prepared, accept_unknown_provenance=True)
    check = next(c for c in accepted.checks if c.name == "leakage: synthetic of unknown source")
    assert check.ok and "NOT checked" in check.detail


def test_baselines_refuse_synthetic_images_without_a_source_patient_unless_accepted(prepared, tmp_path):
    from builders.release import build_release_from_zips
    from cxr_dataset.sources.seed_zips import SeedZipWarning
    from tests.test_sources_seed_zips import make_seed_zips
    from validation_tools.baselines_data import synthetic_images

    zips = make_seed_zips(tmp_path / "zips", n_nc=5, n_pc=3)
    release = tmp_path / "rel" / "covid-synthetic-cxr"
    with pytest.warns(SeedZipWarning):
        build_release_from_zips([zips / "G_NC.zip", zips / "G_PC.zip"], release)
    with pytest.raises(ConfigError, match="8 synthetic images name no source patient.*--accept-unknown-provenance"):
        synthetic_images(release, {}, 32)
    images, counts = synthetic_images(release, {}, 32, accept_unknown=True)
    assert counts == {"kept": 8, "dropped_held_out": 0, "unknown_source_kept": 8}
    assert {k: len(v) for k, v in images.items()} == {"g_nc": 5, "g_pc": 3}


def test_seed_skew_table_two_published_cells_follow_from_the_release_and_all_six_from_4122_pneumonia():
    from validation_tools.balance import seed_skew_comparison

    rows = seed_skew_comparison()
    assert len(rows) == 6
    assert sum(r["published"] == r["from the release"] for r in rows) == 2
    assert all(r["published"] == r["with 4,122 pneumonia"] for r in rows)
