import csv
import hashlib

import numpy as np
import pytest
from PIL import Image

from cxr_dataset.errors import SchemaError, SourceError
from cxr_dataset.imaging import to_square
from cxr_dataset.manifest import read_manifest
from cxr_dataset.prepare import PrepareConfig, prepare
from tests.test_dicom import RAMP8, write_dicom


def test_prepare_phantom_writes_pngs_and_a_manifest(prepared):
    manifest = read_manifest(prepared)
    rows = manifest.rows()
    assert len(rows) == 60
    assert {r["label"] for r in rows} == {"normal", "pneumonia", "covid"}
    for r in rows[:5]:
        data = manifest.image_path(r).read_bytes()
        assert hashlib.sha256(data).hexdigest() == r["sha256"]
        with Image.open(manifest.image_path(r)) as img:
            assert img.mode == "L" and img.size == (64, 64)
    assert manifest.meta["split"] == "patient" and manifest.meta["seed"] == 0


def test_prepare_is_reproducible_and_parallel_equals_serial(tmp_path):
    prepare(["phantom=4"], tmp_path / "a", PrepareConfig(size=64, workers=1))
    prepare(["phantom=4"], tmp_path / "b", PrepareConfig(size=64, workers=2))
    assert (tmp_path / "a/manifest.parquet").read_bytes() == (tmp_path / "b/manifest.parquet").read_bytes()


def _class_tree(root):
    for label in ("normal", "COVID-19"):
        (root / label).mkdir(parents=True)
        for i in range(3):
            Image.fromarray(np.full((40, 60), 50 * i, np.uint8)).save(root / label / f"img{i}.png")


@pytest.mark.parametrize(
    ("name", "content", "reason"),
    [
        ("zero.png", b"", "empty file"),
        ("text.png", b"this is not an image", "not a readable image"),
        ("trunc.png", None, "not a readable image"),
    ],
)
def test_prepare_rejects_bad_files_and_fails_without_skip_bad(tmp_path, name, content, reason):
    root = tmp_path / "src"
    _class_tree(root)
    bad = root / "normal" / name
    if content is None:  # a PNG cut in half
        Image.fromarray(np.zeros((200, 200), np.uint8)).save(bad)
        content = bad.read_bytes()[: len(bad.read_bytes()) // 2]
    bad.write_bytes(content)
    with pytest.raises(SourceError, match="1 of 7 images rejected"):
        prepare([f"folder={root}"], tmp_path / "out", PrepareConfig(size=32, workers=1))
    with open(tmp_path / "out/rejects.csv") as f:
        rejects = list(csv.DictReader(f))
    assert len(rejects) == 1 and reason in rejects[0]["reason"] and name in rejects[0]["origin"]
    assert not (tmp_path / "out/manifest.parquet").exists()

    result = prepare([f"folder={root}"], tmp_path / "out", PrepareConfig(size=32, workers=1, skip_bad=True))
    assert sum(result.counts.values()) == 6 and len(result.rejects) == 1


@pytest.mark.parametrize("resize", ["pad", "crop", "stretch", None])
def test_prepare_folder_squares_as_asked_and_maps_class_names(tmp_path, resize):
    _class_tree(tmp_path / "src")
    cfg = PrepareConfig(size=32, workers=1) if resize is None else PrepareConfig(size=32, workers=1, resize=resize)
    prepare([f"folder={tmp_path / 'src'}"], tmp_path / "out", cfg)
    manifest = read_manifest(tmp_path / "out")
    rows = manifest.rows()
    assert sorted({r["label"] for r in rows}) == ["covid", "normal"]
    assert manifest.meta["resize"] == (resize or "crop")  # the default adds no border, and is recorded
    with Image.open(tmp_path / "out" / rows[-1]["path"]) as img:
        top_row = np.asarray(img)[0]
    # 40×60 of grey 100: padding adds black above and below; cropping and stretching add nothing
    assert img.size == (32, 32) and top_row.max() == (0 if resize == "pad" else 100)


def test_to_square_crops_the_long_side_or_stretches_it_whole():
    pixels = np.full((40, 60), 200, np.uint8)
    pixels[:, :10] = 0  # a black band at the left, outside the centred 40×40
    assert to_square(pixels, 20, "crop").min() > 150  # the band is cut off
    assert to_square(pixels, 20, "stretch")[:, 0].max() < 50  # the band is kept, narrower
    assert to_square(pixels, 20, "pad")[0].max() == 0  # black rows added above and below
    with pytest.raises(ValueError, match="resize mode"):
        to_square(pixels, 20, "squash")


def test_prepare_16bit_images_are_scaled_not_clipped(tmp_path):
    (tmp_path / "src/normal").mkdir(parents=True)
    ramp = np.linspace(0, 4095, 64 * 64).reshape(64, 64).astype(np.uint16)
    Image.fromarray(ramp).save(tmp_path / "src/normal/ramp.png")
    prepare([f"folder={tmp_path / 'src'}"], tmp_path / "out", PrepareConfig(size=64, workers=1))
    with Image.open(tmp_path / "out/images/normal/folder_normal_ramp.png") as img:
        pixels = np.asarray(img)
    assert pixels.min() == 0 and pixels.max() == 255


@pytest.mark.parametrize("spec", ["phantom", "nosuch=3", "phantom="])
def test_prepare_bad_source_spec_names_the_valid_kinds(tmp_path, spec):
    with pytest.raises(SourceError, match="source"):
        prepare([spec], tmp_path, PrepareConfig(size=64))


def test_manifest_missing_is_a_clear_error(tmp_path):
    with pytest.raises(SchemaError, match="run `cxrds prepare"):
        read_manifest(tmp_path)


def _mtimes(folder):
    return {p.name: p.stat().st_mtime_ns for p in folder.rglob("*.png")}


def test_prepare_rerun_reuses_unchanged_images_and_redoes_changed_ones(tmp_path):
    _class_tree(tmp_path / "src")
    prepare([f"folder={tmp_path / 'src'}"], tmp_path / "out", PrepareConfig(size=32, workers=1))
    before = _mtimes(tmp_path / "out")
    Image.fromarray(np.full((40, 60), 7, np.uint8)).save(tmp_path / "src/normal/img1.png")
    prepare([f"folder={tmp_path / 'src'}"], tmp_path / "out", PrepareConfig(size=32, workers=1))
    after = _mtimes(tmp_path / "out")
    changed = {name for name in before if before[name] != after[name]}
    assert changed == {"folder_normal_img1.png"}


def test_prepare_interrupted_run_finishes_where_it_stopped(tmp_path):
    _class_tree(tmp_path / "src")
    (tmp_path / "src/normal/bad.png").write_bytes(b"")
    with pytest.raises(SourceError):  # stops without a manifest, as a crash would
        prepare([f"folder={tmp_path / 'src'}"], tmp_path / "out", PrepareConfig(size=32, workers=1))
    done = _mtimes(tmp_path / "out")
    with open(tmp_path / "out/.prepare-cache.jsonl", "a") as f:
        f.write('{"id": "torn')  # a line cut by the crash
    (tmp_path / "src/normal/bad.png").unlink()
    prepare([f"folder={tmp_path / 'src'}"], tmp_path / "out", PrepareConfig(size=32, workers=1))
    assert _mtimes(tmp_path / "out") == done and len(read_manifest(tmp_path / "out").rows()) == 6


def test_prepare_rejects_a_decompression_bomb_by_its_header(tmp_path):
    _class_tree(tmp_path / "src")
    Image.new("1", (10_001, 10_001)).save(tmp_path / "src/normal/bomb.png")  # 100,020,001 pixels, tiny file
    result = prepare([f"folder={tmp_path / 'src'}"], tmp_path / "out", PrepareConfig(size=32, workers=1, skip_bad=True))
    assert len(result.rejects) == 1 and "pixel limit" in result.rejects[0]["reason"]


def test_prepare_paper_split_and_seed_are_recorded(tmp_path):
    prepare(["phantom=10"], tmp_path, PrepareConfig(size=64, split="paper", seed=3, workers=1))
    manifest = read_manifest(tmp_path)
    assert manifest.meta["split"] == "paper" and manifest.meta["seed"] == 3
    assert {r["split"] for r in manifest.rows()} == {"train", "test"}


def test_prepare_rejects_a_dicom_without_pixels_and_keeps_the_good_one(tmp_path):
    (tmp_path / "src" / "normal").mkdir(parents=True)
    write_dicom(tmp_path / "src/normal/good.dcm", np.ascontiguousarray(RAMP8))
    write_dicom(tmp_path / "src/normal/empty.dcm", RAMP8, pixel_data=False)
    result = prepare([f"folder={tmp_path / 'src'}"], tmp_path / "out", PrepareConfig(size=32, workers=1, skip_bad=True))
    assert sum(result.counts.values()) == 1
    assert [r["reason"].split(": ", 1)[1] for r in result.rejects] == ["DICOM without pixel data"]


def test_prepare_limit_train_leaves_out_training_images_of_one_class_and_records_it(tmp_path):
    from cxr_dataset.manifest import read_manifest

    whole = prepare(["phantom=normal:30,covid:30"], tmp_path / "a", PrepareConfig(size=64, workers=1))
    capped = prepare(
        ["phantom=normal:30,covid:30"], tmp_path / "b", PrepareConfig(size=64, workers=1, train_limits={"covid": 4})
    )
    assert capped.counts[("covid", "train")] == 4 < whole.counts[("covid", "train")]
    assert {k: v for k, v in capped.counts.items() if k != ("covid", "train")} == {
        k: v for k, v in whole.counts.items() if k != ("covid", "train")
    }
    assert read_manifest(tmp_path / "b").meta["train_limits"] == {"covid": 4}
