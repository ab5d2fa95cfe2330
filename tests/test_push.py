"""Publishing: what a push uploads, deletes and tags, checked without the network, and the Hub's record
compared with the folder."""

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

REPO = Path(__file__).resolve().parents[1]


def _files(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


def test_push_dry_run_offline_lists_every_file_and_says_deletions_are_unknown(release):
    result = push_release(release, "someone/covid-synthetic-cxr", dry_run=True)
    listed = [path for path, _ in result.plan.upload]
    assert listed == _files(release) and not result.url
    assert not result.plan.remote_listed and "could not be read" in result.note


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
    assert "datasets/someone/cxr: the Hub could not be read or written" in real.output


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
