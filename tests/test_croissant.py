import hashlib
import json

import mlcroissant as mlc

from cxr_dataset.release_folder import read_release

# Croissant 1.0 (docs.mlcommons.org/croissant/docs/croissant-spec.html): properties every dataset must have.
# mlcroissant's validator only warns about some of them, so we check them ourselves.
REQUIRED = ("@context", "@type", "conformsTo", "name", "description", "license", "url", "distribution", "recordSet")


def _croissant(release):
    return json.loads((release / "croissant.json").read_text())


def test_croissant_has_the_required_properties(release):
    data = _croissant(release)
    assert all(data.get(key) for key in REQUIRED), [k for k in REQUIRED if not data.get(k)]
    assert data["@type"] == "sc:Dataset" and "croissant/1.0" in str(data["conformsTo"])
    for record_set in data["recordSet"]:
        assert record_set["field"] and all(f.get("dataType") and f.get("source") for f in record_set["field"])


def test_croissant_file_objects_carry_the_real_sha256(release):
    objects = [d for d in _croissant(release)["distribution"] if d["@type"] == "cr:FileObject"]
    assert objects
    for d in objects:
        assert hashlib.sha256((release / d["contentUrl"]).read_bytes()).hexdigest() == d["sha256"]


def test_croissant_records_read_back_with_mlcroissant(release):
    dataset = mlc.Dataset(jsonld=str(release / "croissant.json"))
    declared = {config: splits["train"] for config, splits in read_release(release).counts.items()}
    for config, count in declared.items():
        records = list(dataset.records(config))
        assert len(records) == count
    first = records[0]
    assert first[f"{config}/image"].mode == "L" and first[f"{config}/label"] == 2


def test_croissant_loads_without_warnings_and_carries_the_rai_fields_and_version(release):
    from cards import responsible_ai

    metadata = mlc.Dataset(jsonld=str(release / "croissant.json")).metadata
    assert not metadata.issues.warnings and not metadata.issues.errors
    rai = responsible_ai()
    assert (
        metadata.data_biases == rai["biases"]
        and metadata.data_limitations[: len(rai["limitations"])] == (rai["limitations"])
    )
    assert metadata.data_use_cases and "synthetic" in metadata.data_collection_type[0].lower()
    assert metadata.version == read_release(release).version == "1.0.0" and metadata.date_published
    tars = next(d for d in _croissant(release)["distribution"] if d["@id"] == "webdataset-tars")
    assert tars["@type"] == "cr:FileSet" and tars["includes"] == "webdataset/*.tar"


def test_croissant_conforms_to_rai_and_says_how_the_images_were_made(release, synthetic, tmp_path):
    from builders.croissant import UNNAMED_CREATOR
    from builders.release import BuildConfig, build_release

    data = _croissant(release)
    assert "http://mlcommons.org/croissant/RAI/1.0" in data["conformsTo"]
    metadata = mlc.Dataset(jsonld=str(release / "croissant.json")).metadata
    assert not metadata.issues.warnings and not metadata.issues.errors
    assert "64²" in metadata.data_preprocessing_protocol[0] and "crop" in metadata.data_preprocessing_protocol[0]
    assert {tool.split(":")[0] for tool in metadata.machine_annotation_tools} == {"normal2covid", "pneumonia2covid"}
    assert metadata.data_annotation_protocol and metadata.data_manipulation_protocol
    assert [c.name for c in metadata.creators] == [UNNAMED_CREATOR]  # built from our own data: not the paper's

    named = tmp_path / "named" / "covid-synthetic-cxr"
    build_release([synthetic["normal2covid"]], named, BuildConfig(creators=("A. Builder",)))
    assert [c.name for c in mlc.Dataset(jsonld=str(named / "croissant.json")).metadata.creators] == ["A. Builder"]
