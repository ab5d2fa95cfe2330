import datasets
import pyarrow as pa
import pytest

from cxr_dataset.errors import SchemaError
from cxr_dataset.schema import (
    FIELDS,
    MANIFEST_FIELDS,
    Field,
    check_columns,
    encode_wds_sample,
    field_names,
    make_key,
    to_arrow_schema,
    to_card_features,
    to_hf_features,
    to_release_arrow_schema,
    wds_members,
)


def test_schema_card_features_round_trip_to_hf_features():
    assert datasets.Features._from_yaml_list(to_card_features()) == to_hf_features()


def test_schema_release_arrow_schema_is_what_datasets_makes_of_the_features():
    """Written without `datasets`; `datasets` must read back the same features from it, with the same types."""
    ours = to_release_arrow_schema()
    assert datasets.Features.from_arrow_schema(ours) == to_hf_features()
    assert ours.equals(to_hf_features().arrow_schema)  # types and names (metadata aside)


def test_schema_hf_features_use_image_and_class_labels():
    features = to_hf_features()
    assert isinstance(features["image"], datasets.Image)
    assert features["label"].names == ["normal", "pneumonia", "covid"]
    assert features["task"].names == ["normal2covid", "pneumonia2covid"]


def test_schema_wds_sample_has_exactly_the_declared_members():
    row = {f.name: ("covid" if f.name == "label" else "x") for f in FIELDS}
    sample = encode_wds_sample(row, b"png-bytes")
    assert tuple(sorted(k for k in sample if k != "__key__")) == wds_members() == ("cls", "json", "png")
    assert sample["cls"] == b"2"


def test_schema_make_key_removes_dots_and_slashes():
    key = make_key("g_nc", "dir/some.image.png")
    assert "." not in key and "/" not in key
    assert key == "g_nc_dir-some-image-png"


def test_schema_field_rejects_class_without_names():
    with pytest.raises(SchemaError, match="class fields need names"):
        Field("x", "class", "doc")


def test_schema_check_columns_names_missing_and_bad_values():
    table = pa.table({n: ["a"] for n in field_names(MANIFEST_FIELDS) if n != "sha256"})
    with pytest.raises(SchemaError, match="missing columns \\['sha256'\\]"):
        check_columns(table, MANIFEST_FIELDS, "m.parquet")
    table = table.append_column("sha256", pa.array(["h"]))
    with pytest.raises(SchemaError, match="column 'label' has values \\['a'\\]"):
        check_columns(table, MANIFEST_FIELDS, "m.parquet")


def test_schema_arrow_schema_stores_classes_as_strings():
    schema = to_arrow_schema(MANIFEST_FIELDS)
    assert schema.field("label").type == pa.string()
    assert schema.field("width").type == pa.int64()


def test_schema_make_key_caps_long_keys_and_keeps_them_distinct():
    a = make_key("g_nc", "covid-collection", "x" * 200 + "a")
    b = make_key("g_nc", "covid-collection", "x" * 200 + "b")
    assert len(a) == len(b) == 90 and a != b and a.startswith("g_nc_covid-collection_xxx")
