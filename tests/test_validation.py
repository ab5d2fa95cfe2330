import shutil

import pytest
import yaml

from cxr_dataset.errors import ReleaseError
from validation_tools.validate import validate_release


@pytest.fixture
def copy(release, tmp_path):
    target = tmp_path / "covid-synthetic-cxr"
    shutil.copytree(release, target)
    return target


def _failed(report):
    return {c.name for c in report.checks if not c.ok}


def test_validation_passes_on_a_fresh_build(release):
    report = validate_release(release)
    assert report.ok, report.to_json()
    assert (
        report.counts["all/train"]["rows"] == report.counts["g_nc/train"]["rows"] + report.counts["g_pc/train"]["rows"]
    )


def test_validation_catches_a_flipped_byte(copy):
    shard = sorted((copy / "webdataset").glob("g_nc-*.tar"))[0]
    data = bytearray(shard.read_bytes())
    data[700] ^= 0x01
    shard.write_bytes(bytes(data))
    assert "checksums" in _failed(validate_release(copy))


def test_validation_catches_a_missing_shard(copy):
    sorted((copy / "webdataset").glob("g_pc-*.tar"))[0].unlink()
    assert {"webdataset g_pc/train", "webdataset all/train", "checksums"} <= _failed(validate_release(copy))


def test_validation_catches_a_count_mismatch_against_the_card(copy):
    card = (copy / "README.md").read_text()
    head, body = card[4:].split("\n---\n", 1)
    meta = yaml.safe_load(head)
    meta["dataset_info"][0]["splits"][0]["num_examples"] += 1
    (copy / "README.md").write_text("---\n" + yaml.safe_dump(meta, sort_keys=False) + "---\n" + body)
    assert {"parquet rows all/train", "webdataset all/train"} <= _failed(validate_release(copy))


def test_validation_of_a_folder_without_card_is_a_clear_error(tmp_path):
    with pytest.raises(ReleaseError, match="no dataset card"):
        validate_release(tmp_path)
