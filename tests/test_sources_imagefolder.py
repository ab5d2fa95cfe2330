"""The Hugging Face imagefolder layout as a source: labels, patients, extra columns kept, paths confined."""

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cxr_dataset.errors import SourceError
from cxr_dataset.manifest import read_manifest
from cxr_dataset.prepare import PrepareConfig, prepare

REHEARSAL = Path(__file__).resolve().parents[2] / "shared" / "cxr-rehearsal"


def _imagefolder(root: Path, rows: list[dict], metadata: str = "csv") -> Path:
    rng = np.random.default_rng(0)
    for row in rows:
        path = root / row["file_name"]
        if ".." not in row["file_name"]:
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(rng.integers(0, 255, (70, 90), dtype=np.uint8)).save(path)
    if metadata == "csv":
        with open(root / "metadata.csv", "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
    else:
        (root / "metadata.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return root


ROWS = [
    {"file_name": "images/a.png", "label": "Normal", "patient_id": "p1", "sex": "F", "age": "40", "license": "CC0"},
    {"file_name": "images/b.png", "label": "normal", "patient_id": "p1", "sex": "F", "age": "41", "license": "CC0"},
    {"file_name": "images/c.png", "label": "COVID-19", "patient_id": "p2", "sex": "M", "age": "", "license": "CC BY"},
    {"file_name": "images/d.png", "label": "Pneumonia", "patient_id": "p3", "sex": "", "age": "7", "license": ""},
    {"file_name": "images/e.png", "label": "tuberculosis", "patient_id": "p4", "sex": "M", "age": "", "license": ""},
]


@pytest.mark.parametrize("metadata", ["csv", "jsonl"])
def test_imagefolder_keeps_patients_labels_and_every_other_column(tmp_path, metadata):
    root = _imagefolder(tmp_path / "data", ROWS, metadata)
    with pytest.warns(UserWarning, match="skipped 1 rows whose 'label' names no class"):
        prepare([f"imagefolder={root}"], tmp_path / "out", PrepareConfig(size=64, workers=1))
    rows = {Path(r["origin"]).name: r for r in read_manifest(tmp_path / "out").rows()}
    assert sorted(rows) == ["a.png", "b.png", "c.png", "d.png"]  # tuberculosis is no class of ours
    assert rows["a.png"]["patient_id"] == rows["b.png"]["patient_id"] != rows["c.png"]["patient_id"]
    assert [rows[n]["label"] for n in ("a.png", "c.png", "d.png")] == ["normal", "covid", "pneumonia"]
    assert json.loads(rows["a.png"]["extra"]) == {"age": "40", "sex": "F"} and rows["a.png"]["license"] == "CC0"
    assert rows["a.png"]["source"] == "imagefolder"


def test_imagefolder_path_out_of_the_folder_is_a_reject_not_a_read(tmp_path):
    secret = tmp_path / "secret.png"
    Image.fromarray(np.zeros((64, 64), np.uint8)).save(secret)
    rows = [*ROWS[:3], {**ROWS[3], "file_name": "../secret.png"}]
    root = _imagefolder(tmp_path / "data", rows)
    with pytest.raises(SourceError, match="resolves outside the source folder"):
        prepare([f"imagefolder={root}"], tmp_path / "out", PrepareConfig(size=64, workers=1))
    assert "secret.png" in (tmp_path / "out" / "rejects.csv").read_text()


def test_imagefolder_label_column_is_configurable_and_missing_columns_are_named(tmp_path):
    rows = [{"file_name": r["file_name"], "finding": r["label"]} for r in ROWS[:4]]
    root = _imagefolder(tmp_path / "data", rows)
    with pytest.raises(SourceError, match=r"missing columns \['label'\]"):
        prepare([f"imagefolder={root}"], tmp_path / "a", PrepareConfig(size=64, workers=1))
    prepare([f"imagefolder={root}"], tmp_path / "b", PrepareConfig(size=64, workers=1, imagefolder_label="finding"))
    assert len(read_manifest(tmp_path / "b").rows()) == 4


@pytest.mark.skipif(not REHEARSAL.is_dir(), reason="../shared/cxr-rehearsal is not here")
def test_imagefolder_reads_the_real_rehearsal_set(tmp_path):
    result = prepare([f"imagefolder={REHEARSAL}"], tmp_path / "out", PrepareConfig(size=64, workers=2))
    rows = read_manifest(tmp_path / "out").rows()
    by_label = {label: sum(r["label"] == label for r in rows) for label in ("normal", "pneumonia", "covid")}
    assert by_label == {"normal": 307, "pneumonia": 281, "covid": 260} and not result.rejects
    assert len({r["patient_id"] for r in rows}) == 511
    assert {json.loads(r["extra"])["source"] for r in rows} >= {"ieee8023"} and all(r["license"] for r in rows)
