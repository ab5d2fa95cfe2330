import hashlib

from cxr_dataset.manifest import read_manifest
from cxr_dataset.schema import PROVENANCE_FIELDS
from cxr_dataset.tables import read_table
from generator.checkpoint import load_checkpoint
from generator.translate import TranslateConfig, translate


def test_translate_makes_one_image_per_training_source_image(prepared, synthetic):
    manifest = read_manifest(prepared)
    for task, source_class in (("normal2covid", "normal"), ("pneumonia2covid", "pneumonia")):
        table, meta = read_table(synthetic[task] / "provenance.parquet", PROVENANCE_FIELDS)
        sources = {r["id"] for r in manifest.rows(label=source_class, split="train")}
        assert set(table.column("source_image_id").to_pylist()) == sources
        assert meta["task"] == task


def test_translate_provenance_is_complete_and_matches_the_files(synthetic):
    table, _ = read_table(synthetic["normal2covid"] / "provenance.parquet", PROVENANCE_FIELDS)
    ckpt = load_checkpoint(synthetic["normal2covid"].parents[1] / "runs" / "normal2covid")
    for row in table.to_pylist():
        assert row.pop("source_md5") == ""  # only images read from the seed's zips have one
        assert all(v not in ("", None) for v in row.values())
        data = (synthetic["normal2covid"] / row["path"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == row["sha256"]
        assert row["checkpoint_sha256"] == ckpt.sha256 and row["config_sha256"] == ckpt.config.sha256()
        assert "." not in row["id"]


def test_translate_twice_gives_identical_bytes(prepared, synthetic, tmp_path):
    run = synthetic["normal2covid"].parents[1] / "runs" / "normal2covid"
    translate(prepared, run, tmp_path / "again")
    first = synthetic["normal2covid"]
    for png in sorted((first / "images").glob("*.png")):
        assert (tmp_path / "again/images" / png.name).read_bytes() == png.read_bytes()
    assert (tmp_path / "again/provenance.parquet").read_bytes() == (first / "provenance.parquet").read_bytes()


def test_translate_seed_quirk_rescales_each_image_and_passes_it_through_jpeg():
    import numpy as np

    from generator.translate import seed_output_quirk

    image = np.tile(np.linspace(50, 100, 64).astype(np.uint8), (64, 1))
    out = seed_output_quirk(image)
    assert out.dtype == np.uint8 and out.min() <= 3 and out.max() >= 252
    assert np.array_equal(out, seed_output_quirk(image))


def test_translate_seed_quirk_option_changes_the_outputs_and_is_recorded(prepared, synthetic, tmp_path):
    from cxr_dataset.tables import read_table

    run = synthetic["normal2covid"].parents[1] / "runs" / "normal2covid"
    translate(prepared, run, tmp_path / "quirk", TranslateConfig(seed_quirk=True))
    table, meta = read_table(tmp_path / "quirk/provenance.parquet", PROVENANCE_FIELDS)
    plain, _ = read_table(synthetic["normal2covid"] / "provenance.parquet", PROVENANCE_FIELDS)
    assert meta["seed_quirk"] is True
    assert set(table.column("sha256").to_pylist()).isdisjoint(plain.column("sha256").to_pylist())


def test_translate_at_another_size_than_training(prepared, synthetic, tmp_path):
    import pytest
    from PIL import Image

    from cxr_dataset.errors import ConfigError

    run = synthetic["normal2covid"].parent.parent / "runs" / "normal2covid"
    translate(prepared, run, tmp_path / "big", TranslateConfig(size=128))
    rows = read_table(tmp_path / "big" / "provenance.parquet", PROVENANCE_FIELDS)[0].to_pylist()
    with Image.open(tmp_path / "big" / rows[0]["path"]) as img:
        assert img.size == (128, 128) and rows[0]["width"] == 128
    with pytest.raises(ConfigError, match="translation size 50"):
        translate(prepared, run, tmp_path / "odd", TranslateConfig(size=50))
