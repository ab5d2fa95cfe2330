"""Outputs are claimed by content: a command replaces only what it can show it wrote (issue 26, item 1)."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from builders.release import build_lock, build_release, build_release_from_zips
from cli import app
from cxr_dataset.errors import OwnershipError, ReleaseError
from cxr_dataset.fileio import atomic_write_text
from cxr_dataset.output_record import JOURNAL_NAME, MARKER_NAME, read_marker
from cxr_dataset.ownership import check_output, claimed_output
from cxr_dataset.prepare import PrepareConfig, prepare
from demo import run_demo
from generator.export import export_generators
from generator.train import train
from generator.translate import translate
from tests.conftest import tiny_config
from validation_tools.baselines import BaselinesConfig, run_baselines
from validation_tools.report import write_report


def _snapshot(folder: Path) -> dict[str, bytes | None]:
    """Every path under `folder` with its bytes (None for a folder)."""
    return {
        p.relative_to(folder).as_posix(): (p.read_bytes() if p.is_file() else None) for p in sorted(folder.rglob("*"))
    }


def _users_folder(folder: Path, files: dict[str, str]) -> Path:
    """A folder of the user's: their own files under the names a cxrds command writes, and their thesis."""
    for name, text in {**files, "thesis.tex": "years of work", "photos/holiday.jpg": "not an x-ray"}.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text)
    return folder


def _sha256sums(folder: Path) -> str:
    """A SHA256SUMS that is right about every file in `folder` (what a user's own checksums look like)."""
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.name != "SHA256SUMS")
    lines = [f"{hashlib.sha256(p.read_bytes()).hexdigest()}  {p.relative_to(folder).as_posix()}\n" for p in files]
    return "".join(lines)


def _baselines_record(folder: Path) -> Path:
    folder.mkdir()
    (folder / "metrics.json").write_text(json.dumps({"results": [], "config": {}}))
    (folder / "predictions.json").write_text("[]")
    return folder


COMMANDS = {
    "build": (
        {"README.md": "# my notes"},
        lambda out, prepared, synthetic, run, tmp: build_release(list(synthetic.values()), out),
    ),
    "prepare": (
        {"manifest.parquet": "my table"},
        lambda out, prepared, synthetic, run, tmp: prepare(
            ["phantom=normal:2,pneumonia:2,covid:2"], out, PrepareConfig(size=32)
        ),
    ),
    "train": (
        {"config.json": '{"model_type": "bert"}'},  # a Hugging Face model folder
        lambda out, prepared, synthetic, run, tmp: train(prepared, "normal2covid", out, tiny_config()),
    ),
    "translate": (
        {"provenance.parquet": "mine", "images/a.png": "mine"},
        lambda out, prepared, synthetic, run, tmp: translate(prepared, run, out),
    ),
    "export": (
        {"model.json": "{}", "README.md": "my model"},
        lambda out, prepared, synthetic, run, tmp: export_generators(run, out),
    ),
    "baselines": (
        {"metrics.json": "{}", "table.md": "my table"},
        lambda out, prepared, synthetic, run, tmp: run_baselines(
            next(iter(synthetic.values())), prepared, out, BaselinesConfig(epochs=1, seeds=(0,))
        ),
    ),
    "report": (
        {"report.md": "my report", "roc.png": "my figure"},
        lambda out, prepared, synthetic, run, tmp: write_report(
            _baselines_record(tmp / "baselines"), tmp / "release", prepared, out
        ),
    ),
    "demo": (
        {"prepared/NOTES.txt": "my notes", "prepared/manifest.parquet": "x", "runs/normal2covid/config.json": "{}"},
        lambda out, prepared, synthetic, run, tmp: run_demo(out),
    ),
}


@pytest.mark.parametrize("command", list(COMMANDS))
def test_a_users_file_under_a_name_the_command_writes_does_not_make_the_folder_its_own(
    command, prepared, synthetic, tmp_path
):
    planted, run_command = COMMANDS[command]
    out = _users_folder(tmp_path / "out", planted)
    if command in ("build", "export"):  # their own list of files, right about every file: still not cxrds'
        (out / "SHA256SUMS").write_text(_sha256sums(out))
    before = _snapshot(out)
    run = synthetic["normal2covid"].parents[1] / "runs" / "normal2covid"
    with pytest.raises(OwnershipError, match="did not write") as refused:
        run_command(out, prepared, synthetic, run, tmp_path)
    assert any(f"{name.partition('/')[0]}: not written by cxrds" in str(refused.value) for name in planted)
    assert _snapshot(out) == before


def _made(folder: Path, kind: str = "report") -> Path:
    with claimed_output(folder, kind, command="test") as claim:
        atomic_write_text(claim.root / "report.md", "made by cxrds")
        atomic_write_text(claim.root / "figures" / "roc.png", "a figure")
    return folder


def test_a_sealed_folder_lists_every_file_with_its_digest(tmp_path):
    marker = read_marker(_made(tmp_path / "out"))
    assert marker is not None and marker.state == "sealed" and marker.folders == ("figures",)
    assert marker.files["report.md"] == {"sha256": hashlib.sha256(b"made by cxrds").hexdigest(), "size": 13}
    assert set(marker.files) == {"report.md", "figures/roc.png"}
    assert not (tmp_path / "out" / JOURNAL_NAME).exists()


def test_a_folder_cxrds_made_is_refused_once_a_user_adds_or_edits_a_file(tmp_path):
    out = _made(tmp_path / "out")
    check_output(out, "report")
    (out / "figures" / "mine.png").write_text("the user's")
    with pytest.raises(OwnershipError, match=r"figures/mine.png: not written by cxrds"):
        check_output(out, "report")
    (out / "figures" / "mine.png").unlink()
    (out / "report.md").write_text("edited by hand")
    with pytest.raises(OwnershipError, match=r"report.md: changed since cxrds wrote it"):
        check_output(out, "report")
    (out / "report.md").write_text("made by cxrds")
    (out / "empty").mkdir()
    with pytest.raises(OwnershipError, match=r"empty/: a folder not recorded"):
        check_output(out, "report")
    (out / "empty").rmdir()
    check_output(out, "report")


def test_a_killed_commands_folder_is_taken_up_again_but_not_with_a_users_file_added(tmp_path):
    out = tmp_path / "out"
    with pytest.raises(KeyboardInterrupt), claimed_output(out, "report", command="test") as claim:
        atomic_write_text(claim.root / "report.md", "half done")
        raise KeyboardInterrupt
    marker = read_marker(out)
    assert marker is not None and marker.state == "writing"
    assert (out / JOURNAL_NAME).read_text() == "report.md\n"
    check_output(out, "report")  # a rerun may take it up: the journal names what the killed run wrote
    (out / "notes.txt").write_text("the user's")
    with pytest.raises(OwnershipError, match="notes.txt: not written by cxrds"):
        check_output(out, "report")
    (out / "notes.txt").unlink()
    _made(out)
    assert read_marker(out).state == "sealed"


def test_a_second_command_into_a_folder_being_written_is_refused_by_name(tmp_path):
    busy = rf"`cxrds train` \(pid {os.getpid()}\) is writing here now"
    with claimed_output(tmp_path / "out", "run", command="cxrds train") as claim:
        with pytest.raises(OwnershipError, match=busy), claimed_output(claim.root, "run", command="cxrds train"):
            pass
        atomic_write_text(claim.root / "log.jsonl", "{}\n")
    check_output(tmp_path / "out", "run")


def test_a_second_build_from_the_seeds_zips_leaves_the_first_builds_staging_alone(tmp_path):
    out = tmp_path / "rel" / "covid-synthetic-cxr"
    staging = out.with_name(f".{out.name}.from-release")
    with build_lock(out), claimed_output(staging, "staging", lock=False) as claim:
        atomic_write_text(claim.root / "normal2covid" / "provenance.parquet", "the first build's")
        with pytest.raises(ReleaseError, match="another build is writing here"):
            build_release_from_zips([tmp_path / "G_NC.zip"], out)
        assert (staging / "normal2covid" / "provenance.parquet").read_text() == "the first build's"


def test_a_stage_folder_inside_the_demos_is_judged_by_its_own_record(tmp_path):
    with claimed_output(tmp_path / "demo", "demo") as demo:
        _made(demo.root / "report")
    check_output(demo.root, "demo")
    assert read_marker(demo.root).files == {"report/": {"kind": "report"}}
    (demo.root / "report" / "notes.txt").write_text("the user's")
    with pytest.raises(OwnershipError, match="report/notes.txt: not written by cxrds"):
        check_output(demo.root, "demo")
    (demo.root / "report" / "notes.txt").unlink()
    _made(demo.root / "later")  # made after the demo finished: not the demo's to replace
    with pytest.raises(OwnershipError, match="later/: a report folder this one did not record"):
        check_output(demo.root, "demo")


def test_a_release_is_replaced_only_when_it_is_exactly_what_its_checksums_list(release, tmp_path):
    import shutil

    from cxr_dataset.checksums import read_checksums

    assert MARKER_NAME in read_checksums(release) and read_marker(release).kind == "release"
    copy = tmp_path / "covid-synthetic-cxr"
    shutil.copytree(release, copy)
    check_output(copy, "release")
    (copy / "README.md").write_text((copy / "README.md").read_text() + "\nmy edit\n")
    with pytest.raises(OwnershipError, match="README.md: changed since cxrds wrote it"):
        check_output(copy, "release")


def test_validate_json_replaces_only_its_own_report(release, prepared, tmp_path):
    runner = CliRunner()
    sums = (release / "SHA256SUMS").read_bytes()
    refused = runner.invoke(app, ["validate", str(release), "--json", str(release / "SHA256SUMS")])
    assert refused.exit_code == 1 and "is an input of this command" in refused.output
    assert (release / "SHA256SUMS").read_bytes() == sums and "Traceback" not in refused.output
    manifest = (prepared / "manifest.parquet").read_bytes()
    refused = runner.invoke(app, ["validate", str(release), "--json", str(prepared / "manifest.parquet")])
    assert refused.exit_code == 1 and "was not written by `cxrds` as a validation file" in refused.output
    assert (prepared / "manifest.parquet").read_bytes() == manifest
    missing = runner.invoke(app, ["validate", str(release), "--json", str(tmp_path / "no" / "such" / "v.json")])
    assert missing.exit_code == 1 and "does not exist" in missing.output and "Traceback" not in missing.output
    for _ in range(2):  # its own report it replaces
        written = runner.invoke(app, ["validate", str(release), "--json", str(tmp_path / "v.json")])
        assert written.exit_code == 0, written.output
    assert json.loads((tmp_path / "v.json").read_text())["cxrds_output"] == "validation"


def test_a_users_file_named_like_cxrds_bookkeeping_is_not_taken_for_it(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / JOURNAL_NAME).write_text("notes.txt\n")  # a journal with no marker of ours names nothing
    with pytest.raises(OwnershipError, match=f"{JOURNAL_NAME}: not written by cxrds"):
        check_output(out, "report")
    (out / JOURNAL_NAME).unlink()
    (out / ".cxrds-lock").write_text("the user's")  # a lock file is bookkeeping only while it is empty
    with pytest.raises(OwnershipError, match=".cxrds-lock: not written by cxrds"):
        check_output(out, "report")
    assert (out / ".cxrds-lock").read_text() == "the user's"
