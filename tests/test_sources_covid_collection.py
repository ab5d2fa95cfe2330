import csv

import numpy as np
import pytest
from PIL import Image

from cxr_dataset.errors import SourceError
from cxr_dataset.manifest import read_manifest
from cxr_dataset.prepare import PrepareConfig, prepare
from cxr_dataset.sources import SourceOptions
from cxr_dataset.sources.covid_collection import CovidCollectionSource, finding_class
from cxr_dataset.splits import paper_splits
from tests.conftest import SHARED

COLUMNS_2020 = [
    "patientid",
    "offset",
    "sex",
    "age",
    "finding",
    "survival",
    "view",
    "modality",
    "date",
    "location",
    "folder",
    "filename",
    "doi",
    "url",
    "license",
    "clinical_notes",
    "other_notes",
    "",
]
COLUMNS_NOW = [*COLUMNS_2020[:5], "RT_PCR_positive", *COLUMNS_2020[5:]]
ROWS = [  # patientid, finding (2020 schema), view, modality, filename
    ("1", "COVID-19", "PA", "X-ray", "a.png"),
    ("1", "COVID-19", "L", "X-ray", "a-lat.png"),
    ("2", "COVID-19", "AP Supine", "X-ray", "b.png"),
    ("3", "COVID-19", "Axial", "CT", "c.png"),
    ("4", "COVID-19, ARDS", "AP", "X-ray", "d.png"),
    ("5", "No Finding", "PA", "X-ray", "e.png"),
    ("6", "Streptococcus", "PA", "X-ray", "f.png"),
    ("7", "SARS", "PA", "X-ray", "g.png"),
    ("8", "COVID-19", "", "X-ray", "h.png"),
]
NOW = {
    "COVID-19": "Pneumonia/Viral/COVID-19",
    "COVID-19, ARDS": "Pneumonia/Viral/COVID-19",
    "Streptococcus": "Pneumonia/Bacterial/Streptococcus",
    "SARS": "Pneumonia/Viral/SARS",
}


def make_collection(root, schema="2020"):
    (root / "images").mkdir(parents=True)
    columns = COLUMNS_2020 if schema == "2020" else COLUMNS_NOW
    with open(root / "metadata.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        for pid, finding, view, modality, filename in ROWS:
            finding = finding if schema == "2020" else NOW.get(finding, finding)
            writer.writerow(
                {
                    "patientid": pid,
                    "finding": finding,
                    "view": view,
                    "modality": modality,
                    "folder": "images",
                    "filename": filename,
                    "doi": f"10.1/{pid}",
                    "url": f"https://x/{pid}",
                    "license": "CC BY",
                }
            )
            Image.fromarray(np.full((40, 30), 100, np.uint8)).save(root / "images" / filename)
    return root


@pytest.mark.parametrize("schema", ["2020", "now"])
def test_covid_collection_default_selects_frontal_covid_xrays_in_both_schemas(tmp_path, schema):
    records = CovidCollectionSource(make_collection(tmp_path, schema)).records()
    assert [r.origin.rsplit("/", 1)[-1] for r in records] == ["a.png", "b.png", "d.png"]
    assert {r.label for r in records} == {"covid"}
    first = records[0]
    assert (first.patient_id, first.view, first.license, first.doi, first.url) == (
        "covid-collection_1",
        "PA",
        "CC BY",
        "10.1/1",
        "https://x/1",
    )


def test_covid_collection_laterals_only_when_asked(tmp_path):
    src = CovidCollectionSource(make_collection(tmp_path), SourceOptions(views=("PA", "L")))
    assert [r.view for r in src.records()] == ["PA", "L"]


@pytest.mark.parametrize("schema", ["2020", "now"])
def test_covid_collection_can_expose_normals_and_pneumonias(tmp_path, schema):
    options = SourceOptions(covid_collection_classes=("covid", "normal", "pneumonia"))
    labels = {
        r.origin.rsplit("/", 1)[-1]: r.label
        for r in CovidCollectionSource(make_collection(tmp_path, schema), options).records()
    }
    assert labels == {"a.png": "covid", "b.png": "covid", "d.png": "covid", "e.png": "normal", "f.png": "pneumonia"}


def test_covid_collection_paper_selection_is_the_seeds(tmp_path):
    records = CovidCollectionSource(make_collection(tmp_path), SourceOptions(paper=True)).records()
    # exact "COVID-19", any view (lateral included), no CT, no empty view
    assert [r.origin.rsplit("/", 1)[-1] for r in records] == ["a.png", "a-lat.png", "b.png"]


def test_covid_collection_finding_vocabulary():
    assert finding_class("Pneumonia/Viral/COVID-19") == "covid"
    assert finding_class("Pneumonia/Viral/SARS") is None and finding_class("todo") is None


def test_covid_collection_missing_columns_name_the_file(tmp_path):
    (tmp_path / "metadata.csv").write_text("a,b\n1,2\n")
    with pytest.raises(SourceError, match="metadata.csv: missing columns"):
        CovidCollectionSource(tmp_path).records()


def test_covid_collection_missing_image_is_rejected_by_name(tmp_path):
    root = make_collection(tmp_path / "c")
    (root / "images" / "b.png").unlink()
    result = prepare([f"covid-collection={root}"], tmp_path / "out", PrepareConfig(size=32, workers=1, skip_bad=True))
    assert len(result.rejects) == 1 and "b.png: missing file" in result.rejects[0]["reason"]


needs_shared = pytest.mark.skipif(not SHARED.is_dir(), reason="../shared/realcxr is not here")


@needs_shared
def test_covid_collection_real_june_2020_sample(tmp_path):
    prepare([f"covid-collection={SHARED / 'covid-chestxray-dataset'}"], tmp_path, PrepareConfig(size=64, workers=2))
    rows = read_manifest(tmp_path).rows()
    assert len(rows) == 40 and {r["label"] for r in rows} == {"covid"}
    assert {r["view"] for r in rows} == {"PA", "AP"} and len({r["patient_id"] for r in rows}) == 40
    assert all(r["license"] and r["url"] for r in rows)


@needs_shared
def test_covid_collection_real_2020_04_19_metadata_gives_the_seeds_226_and_180_46():
    src = CovidCollectionSource(SHARED / "covid-chestxray-dataset-2020-04-19", SourceOptions(paper=True))
    records = src.records()
    assert len(records) == 226
    splits = paper_splits(records)
    assert list(splits.values()).count("train") == 180 and list(splits.values()).count("test") == 46
    default = CovidCollectionSource(SHARED / "covid-chestxray-dataset-2020-04-19").records()
    assert {r.view for r in default} <= {"PA", "AP", "AP Supine"} and len(default) < 238
