import csv

import numpy as np
import pytest
from PIL import Image

from cxr_dataset.errors import SourceError
from cxr_dataset.manifest import read_manifest
from cxr_dataset.prepare import PrepareConfig, prepare
from cxr_dataset.sources import SourceOptions
from cxr_dataset.sources.rsna import RsnaSource
from tests.conftest import SHARED
from tests.test_dicom import write_dicom

PATIENTS = [
    ("p1", "0", "Normal"),
    ("p2", "1", "Lung Opacity"),
    ("p2", "1", "Lung Opacity"),
    ("p3", "0", "No Lung Opacity / Not Normal"),
    ("p4", "1", "Lung Opacity"),
]


def make_rsna(root, images="dicom", class_info=True):
    root.mkdir(parents=True)
    with open(root / "stage_2_train_labels.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["patientId", "x", "y", "width", "height", "Target"])
        for pid, target, _ in PATIENTS:
            w.writerow([pid, *(["10", "10", "5", "5"] if target == "1" else ["", "", "", ""]), target])
    if class_info:
        with open(root / "stage_2_detailed_class_info.csv", "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["patientId", "class"])
            w.writerows([(pid, cls) for pid, _, cls in PATIENTS])
    pixels = np.tile(np.arange(0, 256, 8, dtype=np.uint8), (32, 1))
    views = {pid: "AP" if target == "1" else "PA" for pid, target, _ in PATIENTS}
    for pid in sorted({p for p, _, _ in PATIENTS}):
        if images == "dicom":
            (root / "stage_2_train_images").mkdir(exist_ok=True)
            write_dicom(root / "stage_2_train_images" / f"{pid}.dcm", pixels, ViewPosition=views[pid])
        else:
            (root / "stage_2_train_images_jpg").mkdir(exist_ok=True)
            Image.fromarray(pixels).save(root / "stage_2_train_images_jpg" / f"{pid}.jpg")
    return root


@pytest.mark.parametrize("images", ["dicom", "jpg"])
def test_rsna_one_image_per_patient_target0_normals(tmp_path, images):
    root = make_rsna(tmp_path / "rsna", images)
    result = prepare([f"rsna={root}"], tmp_path / "out", PrepareConfig(size=32, workers=1))
    rows = read_manifest(tmp_path / "out").rows()
    assert sorted((r["patient_id"], r["label"]) for r in rows) == [
        ("rsna_p1", "normal"),
        ("rsna_p2", "pneumonia"),
        ("rsna_p3", "normal"),
        ("rsna_p4", "pneumonia"),
    ]
    assert sum(result.counts.values()) == 4
    expected = {"normal": "PA", "pneumonia": "AP"} if images == "dicom" else {"normal": "", "pneumonia": ""}
    assert all(r["view"] == expected[r["label"]] for r in rows)  # from the DICOM header's ViewPosition


def test_rsna_normal_only_keeps_class_normal(tmp_path):
    src = RsnaSource(make_rsna(tmp_path / "rsna"), SourceOptions(rsna_normal="normal-only"))
    assert [(r.patient_id, r.label) for r in src.records()] == [
        ("rsna_p1", "normal"),
        ("rsna_p2", "pneumonia"),
        ("rsna_p4", "pneumonia"),
    ]


def test_rsna_normal_only_without_class_info_says_what_is_missing(tmp_path):
    src = RsnaSource(make_rsna(tmp_path / "rsna", class_info=False), SourceOptions(rsna_normal="normal-only"))
    with pytest.raises(SourceError, match="needs stage_2_detailed_class_info.csv"):
        src.records()


def test_rsna_missing_image_is_rejected_naming_the_file(tmp_path):
    root = make_rsna(tmp_path / "rsna")
    (root / "stage_2_train_images" / "p3.dcm").unlink()
    with pytest.raises(SourceError, match="1 of 4 images rejected"):
        prepare([f"rsna={root}"], tmp_path / "out", PrepareConfig(size=32, workers=1))
    assert "p3.dcm: missing file" in (tmp_path / "out" / "rejects.csv").read_text()


def write_stage2_structure(path):
    """A labels CSV with the real stage-2 structure: 30,227 rows, 26,684 patients, 9,555 Target-1 rows
    for 6,012 patients, boxes of one patient on consecutive rows, classes interleaved."""
    positives = [2] * 2886 + [1] * 1872 + [2] * 657 + [1] * 597  # boxes per Target-1 patient, in CSV order
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["patientId", "x", "y", "width", "height", "Target"])
        negatives = (f"neg{n:05d}" for n in range(20_672))
        for i, boxes in enumerate(positives):
            w.writerows([f"pos{i:05d}", 1, 1, 1, 1, 1] for _ in range(boxes))
            w.writerows([next(negatives), "", "", "", "", 0] for _ in range(3))  # 3 normals after each
        w.writerows([pid, "", "", "", "", 0] for pid in negatives)


def test_rsna_paper_split_on_the_stage2_structure_gives_16537_and_4758(tmp_path):
    root = tmp_path / "rsna"
    root.mkdir()
    write_stage2_structure(root / "stage_2_train_labels.csv")
    with open(root / "stage_2_train_labels.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 30_227 and len({r["patientId"] for r in rows}) == 26_684
    assert sum(r["Target"] == "1" for r in rows) == 9_555
    src = RsnaSource(root, SourceOptions(paper=True))
    records = src.records()
    splits = src.paper_splits(records)
    count = {(label, split): 0 for label in ("normal", "pneumonia") for split in ("train", "test")}
    for r in records:
        count[(r.label, splits[r.id])] += 1
    assert count == {
        ("normal", "train"): 16_537,
        ("normal", "test"): 4_135,
        ("pneumonia", "train"): 4_758,
        ("pneumonia", "test"): 1_254,
    }


@pytest.mark.skipif(not SHARED.is_dir(), reason="../shared/realcxr is not here")
def test_rsna_real_stage1_dicoms(tmp_path):
    root = SHARED / "dicom" / "rsna"
    result = prepare([f"rsna={root}"], tmp_path / "a", PrepareConfig(size=64, workers=2))
    assert {k[0] for k in result.counts} == {"normal", "pneumonia"}
    rows = read_manifest(tmp_path / "a").rows()
    assert sum(r["label"] == "normal" for r in rows) == 11 and sum(r["label"] == "pneumonia" for r in rows) == 5
    assert {r["view"] for r in rows} <= {"PA", "AP"} and all(r["view"] for r in rows)
    only = RsnaSource(root, SourceOptions(rsna_normal="normal-only")).records()
    assert sum(r.label == "normal" for r in only) == 4
