"""`open_release`: one way in to a release, each door reading the same rows as the function behind it."""

from pathlib import Path

import pytest

import cxr_dataset
from cxr_dataset import StreamConfig, open_release
from cxr_dataset.errors import ReleaseError
from cxr_dataset.release_folder import read_release


def _keys(release_path: Path, config: str = "all") -> set[str]:
    return {row["id"] for row in read_release(release_path).iter_rows(["id"], configs=(config,))}


def test_every_door_of_a_local_release_reads_its_rows(release):
    opened = open_release(release)
    assert opened.folder is not None and opened.folder.root == read_release(release).root
    keys = _keys(release, "g_nc")

    assert set(opened.hf("g_nc", split="train")["id"]) == keys
    assert {s["key"] for s in opened.webdataset(StreamConfig(config="g_nc", shuffle=0))} == keys
    assert {s["__key__"] for s in opened.samples("g_nc")} == keys
    indexed = opened.random_access("g_nc")
    assert {indexed[i]["key"] for i in range(len(indexed))} == keys
    assert len(opened.torch(StreamConfig(config="g_nc"))) == len(keys)


def test_a_string_path_opens_the_same_folder_as_a_path(release, monkeypatch):
    monkeypatch.chdir(release.parent)
    assert open_release(f"./{release.name}").source == open_release(release).source


def test_a_hub_id_is_opened_without_a_folder_and_local_only_doors_say_so(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    opened = open_release("someone/covid-synthetic-cxr")
    assert (opened.source, opened.folder) == ("someone/covid-synthetic-cxr", None)
    with pytest.raises(ReleaseError, match="needs a local release folder"):
        opened.random_access()


def test_a_missing_or_foreign_folder_is_refused_when_opened(tmp_path):
    with pytest.raises(ReleaseError, match="no such release folder"):
        open_release(tmp_path / "absent")
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "README.md").write_text("my notes\n")
    with pytest.raises(ReleaseError):
        open_release(tmp_path / "notes")


def test_importing_the_package_does_not_load_datasets():
    import subprocess
    import sys

    code = "import sys, cxr_dataset.schema; print('datasets' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip() == "False"
    assert cxr_dataset.open_release is open_release


def test_a_release_pushed_to_the_hub_streams_from_it_as_hf_urls(release, hub):
    """build → push → `open_release(OWNER/NAME).webdataset()`: the shards stream over hf:// (the Hub stand-in)."""
    import os
    import subprocess
    import sys

    from builders.push import push_release

    push_release(release, "someone/covid-synthetic-cxr", tag="v1.0.0")
    code = (
        "from cxr_dataset import StreamConfig, open_release\n"
        "release = open_release('someone/covid-synthetic-cxr')\n"
        "for s in release.webdataset(StreamConfig(config='g_nc', shuffle=0, revision='v1.0.0')):\n"
        "    print(s['key'], tuple(s['image'].shape))\n"
    )
    env = {**os.environ, "HF_ENDPOINT": hub.url, "HF_HUB_OFFLINE": "0", "PYTHONPATH": str(Path(__file__).parents[1])}
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    streamed = [line.split()[0] for line in run.stdout.splitlines()]
    assert sorted(streamed) == sorted(_keys(release, "g_nc"))
    assert any("/resolve/v1.0.0/webdataset/g_nc-train-" in path for _, path in hub.requests)
