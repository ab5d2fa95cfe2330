import shutil

import pytest
from typer.testing import CliRunner

from builders.push import push_release
from cli import app
from cxr_dataset.errors import ReleaseError


def test_push_dry_run_lists_every_file_without_network(release, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    result = push_release(release, "someone/covid-synthetic-cxr", dry_run=True)
    listed = {path for path, _ in result.files}
    assert {"README.md", "croissant.json", "SHA256SUMS"} <= listed
    assert len(listed) == sum(1 for p in release.rglob("*") if p.is_file()) and not result.url


def test_push_refuses_a_release_that_fails_verify(release, tmp_path):
    copy = tmp_path / "r"
    shutil.copytree(release, copy)
    (copy / "croissant.json").write_text("{}")
    with pytest.raises(ReleaseError, match="verify failed"):
        push_release(copy, "someone/x", dry_run=True)


def test_push_bad_repo_id_is_named():
    with pytest.raises(ReleaseError, match="OWNER/NAME"):
        push_release("unused", "no-slash", dry_run=True)


def test_cli_push_dry_run_prints_the_file_table(release):
    result = CliRunner().invoke(app, ["push", str(release), "--repo-id", "someone/cxr", "--dry-run"])
    assert result.exit_code == 0 and "Would upload" in result.output and "croissant.json" in result.output
