"""Publishing: what a push uploads, deletes and tags, checked without the network, and the Hub's record
compared with the folder."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from builders.push import RemoteFile, git_blob_id, plan_push, push_release, remote_problems
from builders.release import BuildConfig, build_release
from cli import app
from cxr_dataset.checksums import read_checksums
from cxr_dataset.errors import ReleaseError
from cxr_dataset.release_folder import read_release
from tests.hub_standin import HubStandIn

REPO = Path(__file__).resolve().parents[1]


def _files(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


def test_push_dry_run_offline_lists_every_file_and_says_deletions_are_unknown(release):
    result = push_release(release, "someone/covid-synthetic-cxr", dry_run=True)
    listed = [path for path, _ in result.plan.upload]
    assert listed == _files(release) and not result.url
    assert not result.plan.remote_listed and "HF_HUB_OFFLINE is set" in result.note


def test_push_plans_deleting_what_an_earlier_build_left_on_the_hub(release, synthetic, tmp_path):
    rebuilt = tmp_path / "rebuilt" / "covid-synthetic-cxr"
    build_release([synthetic["normal2covid"]], rebuilt, BuildConfig(samples_per_shard=4))  # fewer files: G_NC only
    on_hub = [*_files(release), ".gitattributes"]  # the earlier, full build
    plan = plan_push(rebuilt, "someone/cxr", remote_files=on_hub, tag="v1.0.0")
    stale = sorted(set(_files(release)) - set(_files(rebuilt)))
    assert any("g_pc" in name for name in stale) and plan.delete == stale  # the Hub keeps .gitattributes
    assert [name for name, _ in plan.upload] == _files(rebuilt)
    assert plan.tag == "v1.0.0" and plan.version == "1.0.0" and "SHA256SUMS sha256 " in plan.description
    nothing = plan_push(release, "someone/cxr", remote_files=on_hub)
    assert nothing.delete == [] and nothing.tag is None


def test_push_tag_must_match_the_dataset_version(release):
    with pytest.raises(ReleaseError, match="does not match the release's dataset version '1.0.0'"):
        plan_push(release, "someone/cxr", remote_files=[], tag="v2.0.0")


def test_push_hub_record_is_compared_with_the_folder(release):
    sums = read_checksums(release)

    def record(name: str) -> RemoteFile:
        path = release / name
        lfs = name.endswith((".parquet", ".tar"))
        return RemoteFile(name, path.stat().st_size, sums[name] if lfs else None, git_blob_id(path))

    remote = [record(name) for name in _files(release)] + [RemoteFile(".gitattributes", 10, None, "0" * 40)]
    assert remote_problems(release, remote) == []
    parquet = next(i for i, f in enumerate(remote) if f.path.endswith(".parquet"))
    card = next(i for i, f in enumerate(remote) if f.path == "README.md")
    bad = list(remote)
    bad[parquet] = RemoteFile(bad[parquet].path, bad[parquet].size, "f" * 64, bad[parquet].blob_id)
    bad[card] = RemoteFile("README.md", bad[card].size, None, "e" * 40)
    problems = remote_problems(release, [*bad[:-2], RemoteFile("data/old.parquet", 1, "a" * 64, "b" * 40)])
    assert any("SHA-256" in p for p in problems) and any("README.md: the Hub's git blob" in p for p in problems)
    assert any("data/old.parquet: on the Hub but not in SHA256SUMS" in p for p in problems)
    assert any(p.endswith("missing on the Hub") for p in problems)


def test_push_git_blob_id_is_gits(tmp_path):
    (tmp_path / "f").write_bytes(b"hello\n")
    assert git_blob_id(tmp_path / "f") == "ce013625030ba8dba906f756967f9e9ca394464a"  # `git hash-object`


def test_push_refuses_a_release_that_fails_verify(release, tmp_path):
    copy = tmp_path / "r"
    shutil.copytree(release, copy)
    (copy / "croissant.json").write_text("{}")
    with pytest.raises(ReleaseError, match="verify failed"):
        push_release(copy, "someone/x", dry_run=True)


def test_push_bad_repo_id_is_named():
    with pytest.raises(ReleaseError, match="OWNER/NAME"):
        plan_push(Path("unused"), "no-slash", remote_files=None)


def test_cli_push_dry_run_prints_the_plan_and_a_real_push_offline_is_one_line(release):
    dry = CliRunner().invoke(app, ["push", str(release), "--repo-id", "someone/cxr", "--dry-run", "--tag", "v1.0.0"])
    assert dry.exit_code == 0 and "Would upload" in dry.output and "croissant.json" in dry.output
    assert "files to delete unknown" in dry.output and "tag v1.0.0" in dry.output
    real = CliRunner().invoke(app, ["push", str(release), "--repo-id", "someone/cxr"])
    assert real.exit_code == 1 and "Traceback" not in real.output
    assert "datasets/someone/cxr: HF_HUB_OFFLINE is set" in real.output


def test_push_revision_reaches_the_hub_request(tmp_path):
    """A local stand-in for the Hub's HTTP API records what load_release asks for."""
    script = (
        "import http.server, threading, sys\n"
        "paths = []\n"
        "class H(http.server.BaseHTTPRequestHandler):\n"
        "    def do_GET(self):\n"
        "        paths.append(self.path); self.send_response(404); self.end_headers()\n"
        "    do_HEAD = do_GET\n"
        "    def log_message(self, *a): pass\n"
        "server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), H)\n"
        "threading.Thread(target=server.serve_forever, daemon=True).start()\n"
        "import os; os.environ['HF_ENDPOINT'] = f'http://127.0.0.1:{server.server_port}'\n"
        "os.environ.pop('HF_HUB_OFFLINE', None)\n"
        "from cxr_dataset.loading import load_release\n"
        "try:\n"
        "    load_release('someone/covid-synthetic-cxr', 'g_nc', revision='v1.2.3')\n"
        "except Exception as e:\n"
        "    print(type(e).__name__)\n"
        "print('\\n'.join(paths))\n"
    )
    run = subprocess.run(
        [sys.executable, "-c", script],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        env={**__import__("os").environ, "PYTHONPATH": str(REPO)},
    )
    assert run.returncode == 0, run.stderr[-2000:]
    assert "/datasets/someone/covid-synthetic-cxr/resolve/v1.2.3/" in run.stdout, run.stdout


def _posts(hub: HubStandIn) -> list[str]:
    return [path for method, path in hub.requests if method != "GET"]


def test_push_publishes_tags_and_names_the_head_it_planned_against(release, hub):
    first = push_release(release, "someone/cxr", tag="v1.0.0")
    repo = hub.repos[("datasets", "someone/cxr")]
    assert set(repo.commits[repo.head]) == {".gitattributes", *read_checksums(release), "SHA256SUMS"}
    assert repo.tags == {"v1.0.0": repo.head} and first.url.endswith(repo.head)
    planned_against = hub.commit_headers[-1]["parentCommit"]
    assert planned_against and planned_against != repo.head  # the repository's first commit, not None


def test_push_refuses_an_existing_tag_before_committing_anything(release, hub):
    push_release(release, "someone/cxr", tag="v1.0.0")
    repo = hub.repos[("datasets", "someone/cxr")]
    tagged, posts = repo.head, len(_posts(hub))
    with pytest.raises(ReleaseError, match="tag v1.0.0 already exists.*nothing was committed"):
        push_release(release, "someone/cxr", tag="v1.0.0")
    with pytest.raises(ReleaseError, match="tag v1.0.0 already exists"):
        push_release(release, "someone/cxr", tag="v1.0.0", dry_run=True)
    assert len(_posts(hub)) == posts and repo.head == tagged  # main did not move past the tag

    push_release(release, "someone/cxr", tag="v1.0.0", force_tag=True)
    assert repo.tags["v1.0.0"] == repo.head


def test_a_push_that_raced_another_commit_is_refused_by_the_hub(release, hub, monkeypatch):
    """The commit carries the head the deletions were planned against: a commit in between makes it fail."""
    from huggingface_hub import HfApi

    hub.create("datasets", "someone/cxr")
    repo = hub.repos[("datasets", "someone/cxr")]
    create_commit = HfApi.create_commit

    def another_push_lands_first(self, *args, **kwargs):
        repo.commit({**repo.commits[repo.head], "theirs.parquet": b"another build"})
        return create_commit(self, *args, **kwargs)

    monkeypatch.setattr(HfApi, "create_commit", another_push_lands_first)
    with pytest.raises(ReleaseError, match="datasets/someone/cxr: the Hub could not be read or written"):
        push_release(release, "someone/cxr")
    assert "theirs.parquet" in repo.commits[repo.head]  # the other push's file was not deleted unseen


def test_an_exported_model_is_tagged_in_the_model_repository(prepared, tmp_path, hub):
    from generator.export import export_generators
    from generator.train import train
    from tests.conftest import tiny_config

    train(prepared, "normal2covid", tmp_path / "run", tiny_config())
    export_generators(tmp_path / "run", tmp_path / "export")
    push_release(tmp_path / "export", "someone/cxr-g-nc", tag="v1.0.0")
    model = hub.repos[("models", "someone/cxr-g-nc")]
    assert model.tags == {"v1.0.0": model.head} and ("datasets", "someone/cxr-g-nc") not in hub.repos
    assert ("POST", f"/api/models/someone/cxr-g-nc/tag/{model.head}") in hub.requests


def test_an_endpoint_that_refuses_connections_is_tried_once_and_named(release, monkeypatch):
    import socket

    from huggingface_hub import constants

    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    endpoint = f"http://127.0.0.1:{closed.getsockname()[1]}"
    closed.close()  # nothing listens there now
    monkeypatch.setattr(constants, "ENDPOINT", endpoint)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    attempts = []
    connect = socket.socket.connect

    def counted(self, address):
        if address[1] == int(endpoint.rsplit(":", 1)[1]):
            attempts.append(address)
        return connect(self, address)

    monkeypatch.setattr(socket.socket, "connect", counted)
    with pytest.raises(ReleaseError, match=f"cannot reach {endpoint}.*nothing was sent"):
        push_release(release, "someone/cxr")
    assert len(attempts) == 1
    dry = push_release(release, "someone/cxr", dry_run=True)
    assert not dry.plan.remote_listed and endpoint in dry.note and len(attempts) == 2


def test_a_card_built_for_a_repository_loads_from_it_and_is_pushed_only_there(release, synthetic, tmp_path):
    built = tmp_path / "for-hub" / "covid-synthetic-cxr"
    build_release([synthetic["normal2covid"]], built, BuildConfig(repo_id="someone/cxr"))
    card = (built / "README.md").read_text()
    assert 'load_dataset("someone/cxr")' in card and 'snapshot_download("someone/cxr"' in card
    assert "OWNER/" not in card and "croissant.json" in read_checksums(built)  # the card stays listed
    assert json.loads((built / "croissant.json").read_text())["url"] == "https://huggingface.co/datasets/someone/cxr"
    assert plan_push(built, "someone/cxr", remote_files=None).repo_id == "someone/cxr"
    with pytest.raises(ReleaseError, match="built for someone/cxr.*not other/cxr.*--repo-id other/cxr"):
        plan_push(built, "other/cxr", remote_files=None)

    unnamed = (release / "README.md").read_text()  # built without --repo-id: the folder form and a placeholder
    assert 'load_dataset("covid-synthetic-cxr")' in unnamed and 'load_dataset("OWNER/covid-synthetic-cxr")' in unnamed
    assert plan_push(release, "anyone/cxr", remote_files=None).repo_id == "anyone/cxr"
    with pytest.raises(ReleaseError, match="--repo-id must be OWNER/NAME"):
        BuildConfig(repo_id="no-owner")


def test_a_gated_release_is_gated_on_the_hub_before_its_files_are_uploaded(synthetic, tmp_path, hub):
    built = tmp_path / "gated" / "covid-synthetic-cxr"
    build_release([synthetic["normal2covid"]], built, BuildConfig(gated=True))
    card = read_release(built).card
    assert card["extra_gated_prompt"] and list(card["extra_gated_fields"].values()) == ["checkbox"]
    assert plan_push(built, "someone/cxr", remote_files=None).gated
    push_release(built, "someone/cxr")
    repo = hub.repos[("datasets", "someone/cxr")]
    first_commit = next(iter(repo.commits))  # the repository's own first commit: no files of ours yet
    assert repo.settings == [{"gated": "auto", "head": first_commit}] and repo.head != first_commit
