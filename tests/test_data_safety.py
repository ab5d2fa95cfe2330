"""Hostile and careless input: no command deletes or leaks what it does not own, or ships garbage."""

import csv
import io
import json
import os
import shutil
import tarfile

import numpy as np
import pytest
from PIL import Image
from safetensors.torch import save_file
from typer.testing import CliRunner

from builders.push import push_release
from builders.release import BuildConfig, build_release
from cli import app
from cxr_dataset.checksums import write_checksums
from cxr_dataset.errors import CheckpointError, OwnershipError, ReleaseError, SchemaError
from cxr_dataset.fileio import sha256_file
from cxr_dataset.prepare import PrepareConfig, prepare
from cxr_dataset.verify import verify_release
from generator.checkpoint import load_checkpoint
from generator.train import train
from generator.translate import translate
from tests.conftest import PHANTOM, SIZE, tiny_config
from tests.test_sources_covid_collection import make_collection
from tests.test_sources_rsna import make_rsna


def _thesis(folder):
    folder.mkdir(parents=True)
    (folder / "chapter1.tex").write_text("years of work")
    return folder


def _copy(release, tmp_path):
    copy = tmp_path / "copy" / "covid-synthetic-cxr"
    shutil.copytree(release, copy)
    return copy


def _failed(report):
    return {c.name: c.detail for c in report.checks if not c.ok}


# --- ownership of output folders ---------------------------------------------------------------------


def test_build_refuses_a_folder_of_someone_elses_files_and_leaves_it_intact(synthetic, tmp_path):
    thesis = _thesis(tmp_path / "thesis")
    with pytest.raises(OwnershipError, match="holds files `cxrds` did not write"):
        build_release(list(synthetic.values()), thesis)
    assert (thesis / "chapter1.tex").read_text() == "years of work"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["thesis"]


def test_build_refuses_its_own_synthetic_input_as_out(synthetic):
    folder = synthetic["normal2covid"]
    before = sorted(p.name for p in folder.rglob("*"))
    with pytest.raises(OwnershipError, match="is an input of this command"):
        build_release(list(synthetic.values()), folder)
    with pytest.raises(OwnershipError, match="is an input of this command"):
        build_release(list(synthetic.values()), folder.parent)  # an ancestor of an input
    assert sorted(p.name for p in folder.rglob("*")) == before


def test_build_refuses_an_existing_file_as_out(synthetic, tmp_path):
    (tmp_path / "notes.txt").write_text("keep me")
    with pytest.raises(OwnershipError, match="is not a folder"):
        build_release(list(synthetic.values()), tmp_path / "notes.txt")
    assert (tmp_path / "notes.txt").read_text() == "keep me" and not list(tmp_path.glob(".notes*"))


@pytest.mark.parametrize("where", ["home", "cwd"])
def test_build_refuses_the_home_folder_and_the_working_directory_even_when_empty(
    synthetic, tmp_path, monkeypatch, where
):
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setenv("HOME", str(empty)) if where == "home" else monkeypatch.chdir(empty)
    with pytest.raises(OwnershipError, match="your home folder" if where == "home" else "the working directory"):
        build_release(list(synthetic.values()), empty)
    assert empty.is_dir()


def test_build_into_an_empty_folder_replaces_it(synthetic, tmp_path):
    (tmp_path / "covid-synthetic-cxr").mkdir()
    build_release(list(synthetic.values()), tmp_path / "covid-synthetic-cxr", BuildConfig(samples_per_shard=4))
    assert verify_release(tmp_path / "covid-synthetic-cxr").ok


@pytest.mark.parametrize("processes", [1, 2])
@pytest.mark.parametrize("which", [0, -1], ids=["first-portion", "last-portion"])
def test_build_failure_names_the_image_and_removes_its_staging_folder(synthetic, tmp_path, processes, which):
    broken = tmp_path / "synthetic"
    shutil.copytree(synthetic["normal2covid"], broken)
    image = sorted((broken / "images").glob("*.png"))[which]
    image.write_bytes(image.read_bytes() + b"x")
    with pytest.raises(ReleaseError, match=f"{image.name}: SHA-256 differs from its provenance"):
        build_release([broken], tmp_path / "out" / "covid-synthetic-cxr", BuildConfig(processes=processes))
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


@pytest.mark.parametrize("path", ["../secret.png", "ABSOLUTE", "images/../../secret.png", "images/other.png"])
def test_build_never_reads_an_image_outside_the_synthetic_folder(synthetic, tmp_path, path):
    from cxr_dataset.schema import PROVENANCE_FIELDS
    from cxr_dataset.synthetic_folder import PROVENANCE_NAME
    from cxr_dataset.tables import read_table, write_table

    folder = tmp_path / "synthetic"
    shutil.copytree(synthetic["normal2covid"], folder)
    secret = tmp_path / "secret.png"
    secret.write_bytes(next((folder / "images").iterdir()).read_bytes())
    path = str(secret) if path == "ABSOLUTE" else path
    table, meta = read_table(folder / PROVENANCE_NAME, PROVENANCE_FIELDS)
    rows = table.to_pylist()
    rows[0] = {**rows[0], "path": path, "sha256": sha256_file(secret)}  # a provenance table that points away
    write_table(rows, PROVENANCE_FIELDS, folder / PROVENANCE_NAME, meta)
    with pytest.raises(SchemaError, match=f"provenance.parquet: row {rows[0]['id']!r} gives path {path!r}"):
        build_release([folder], tmp_path / "out" / "covid-synthetic-cxr")
    assert not (tmp_path / "out" / "covid-synthetic-cxr").exists()


@pytest.mark.parametrize("path", ["../secret.png", "ABSOLUTE", "images/covid/x.png"])
def test_a_prepared_manifest_never_points_outside_its_folder(prepared, tmp_path, path):
    from cxr_dataset.manifest import MANIFEST_NAME, read_manifest
    from cxr_dataset.schema import MANIFEST_FIELDS
    from cxr_dataset.tables import read_table, write_table

    folder = tmp_path / "prepared"
    shutil.copytree(prepared, folder)
    secret = tmp_path / "secret.png"
    path = str(secret) if path == "ABSOLUTE" else path
    table, meta = read_table(folder / MANIFEST_NAME, MANIFEST_FIELDS)
    rows = table.to_pylist()
    rows[-1] = {**rows[-1], "path": path}
    write_table(rows, MANIFEST_FIELDS, folder / MANIFEST_NAME, meta)
    with pytest.raises(SchemaError, match=f"manifest.parquet: row {rows[-1]['id']!r} gives path {path!r}"):
        read_manifest(folder)


@pytest.mark.parametrize("sibling", [".covid-synthetic-cxr.building", ".covid-synthetic-cxr.old"])
def test_build_refuses_to_remove_someone_elses_folder_beside_the_release(synthetic, tmp_path, sibling):
    out = tmp_path / "covid-synthetic-cxr"
    build_release(list(synthetic.values()), out, BuildConfig(samples_per_shard=4))
    before = sorted(p.relative_to(out) for p in out.rglob("*"))
    foreign = _thesis(tmp_path / sibling)
    with pytest.raises(OwnershipError, match="did not write"):
        build_release(list(synthetic.values()), out, BuildConfig(samples_per_shard=4))
    assert (foreign / "chapter1.tex").read_text() == "years of work"
    assert sorted(p.relative_to(out) for p in out.rglob("*")) == before and verify_release(out).ok


def test_demo_refuses_to_start_afresh_over_a_stage_folder_it_did_not_make(tmp_path):
    from cxr_dataset.ownership import claimed_output

    with claimed_output(tmp_path / "demo", "demo") as claim:
        demo = claim.root
    _thesis(demo / "prepared")
    result = CliRunner().invoke(app, ["demo", "--out", str(demo)])
    assert result.exit_code == 1 and "prepared/chapter1.tex: not written by cxrds" in result.output
    assert (demo / "prepared" / "chapter1.tex").read_text() == "years of work"


def test_train_and_translate_refuse_folders_they_did_not_make(prepared, synthetic, tmp_path):
    thesis = _thesis(tmp_path / "thesis")
    with pytest.raises(OwnershipError, match="did not write"):
        train(prepared, "normal2covid", thesis, tiny_config())
    run = synthetic["normal2covid"].parents[1] / "runs" / "normal2covid"
    with pytest.raises(OwnershipError, match="did not write"):
        translate(prepared, run, thesis)
    with pytest.raises(OwnershipError, match="is an input"):
        translate(prepared, run, prepared)
    with pytest.raises(OwnershipError, match="a run folder, not a synthetic one"):
        translate(prepared, run, synthetic["normal2covid"].parents[1] / "runs" / "pneumonia2covid")
    assert sorted(p.name for p in thesis.iterdir()) == ["chapter1.tex"]


def test_prepare_refuses_its_source_folder_as_out(tmp_path):
    collection = make_collection(tmp_path / "collection")
    with pytest.raises(OwnershipError, match="is an input"):
        prepare([f"covid-collection={collection}"], collection, PrepareConfig(size=32, workers=1))
    with pytest.raises(OwnershipError, match="is an input"):
        prepare([f"covid-collection={collection}"], tmp_path, PrepareConfig(size=32, workers=1))


def test_demo_refuses_a_folder_of_someone_elses_files(tmp_path):
    thesis = _thesis(tmp_path / "thesis")
    (thesis / "prepared").mkdir()
    result = CliRunner().invoke(app, ["demo", "--out", str(thesis)])
    assert result.exit_code == 1 and "did not write" in result.output and "Traceback" not in result.output
    assert sorted(p.name for p in thesis.iterdir()) == ["chapter1.tex", "prepared"]


# --- the release is what SHA256SUMS lists --------------------------------------------------------------


def test_verify_fails_and_push_skips_an_unlisted_secret(release, tmp_path):
    copy = _copy(release, tmp_path)
    (copy / ".env").write_text("HF_TOKEN=hf_secret")
    assert ".env: not listed in SHA256SUMS" in _failed(verify_release(copy))["checksums"]
    with pytest.raises(Exception, match="verify failed"):
        push_release(copy, "someone/x", dry_run=True)


def test_push_lists_exactly_the_checksummed_files(release):
    result = push_release(release, "someone/x", dry_run=True)
    listed = (release / "SHA256SUMS").read_text().splitlines()
    assert sorted(name for name, _ in result.plan.upload) == sorted(
        [line.split("  ", 1)[1] for line in listed] + ["SHA256SUMS"]
    )


def test_verify_fails_on_a_symlink_even_when_listed(release, tmp_path):
    outside = tmp_path / "private.txt"
    outside.write_text("not for the Hub")
    copy = _copy(release, tmp_path)
    (copy / "notes.txt").symlink_to(outside)
    with open(copy / "SHA256SUMS", "a") as f:
        f.write(f"{sha256_file(outside)}  notes.txt\n")
    assert "notes.txt: a link or special file" in _failed(verify_release(copy))["checksums"]


def test_verify_fails_on_a_listed_path_that_leaves_the_release(release, tmp_path):
    copy = _copy(release, tmp_path)
    with open(copy / "SHA256SUMS", "a") as f:
        f.write(f"{'0' * 64}  ../../etc/passwd\n")
    assert "expected '<sha256>  <relative path>'" in _failed(verify_release(copy))["checksums"]


@pytest.mark.parametrize("kind", ["symlink", "hardlink", "absolute"])
def test_verify_fails_on_tar_members_that_are_not_plain_sample_files(release, tmp_path, kind):
    copy = _copy(release, tmp_path)
    shard = sorted((copy / "webdataset").glob("g_nc-*.tar"))[0]
    with tarfile.open(shard, "a") as tar:
        info = tarfile.TarInfo("/etc/evil.png" if kind == "absolute" else "evil.png")
        if kind == "symlink":
            info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
        elif kind == "hardlink":
            info.type, info.linkname = tarfile.LNKTYPE, "/etc/passwd"
        tar.addfile(info, io.BytesIO(b"") if kind == "absolute" else None)
    (copy / "SHA256SUMS").unlink()
    write_checksums(copy)
    failed = _failed(verify_release(copy))
    assert any("is not a plain file of a sample" in d for d in failed.values()), failed


@pytest.mark.parametrize(
    ("damage", "check"),
    [
        ("SHA256SUMS", "checksums"),
        ("webdataset/g_nc-train-shardindex.json", "webdataset g_nc/train"),
        ("parquet", "images g_nc/train"),
    ],
)
def test_verify_reports_damaged_files_as_failures_not_tracebacks(release, tmp_path, damage, check):
    copy = _copy(release, tmp_path)
    target = sorted((copy / "data" / "g_nc").glob("*.parquet"))[0] if damage == "parquet" else copy / damage
    data = target.read_bytes()
    target.write_bytes(b"\xff\xfe" + data[: len(data) // 2])
    assert check in _failed(verify_release(copy))


def test_cli_verify_of_a_damaged_card_prints_one_line(release, tmp_path):
    copy = _copy(release, tmp_path)
    (copy / "README.md").write_bytes(b"---\nconfigs: [\n---\n")
    result = CliRunner().invoke(app, ["verify", str(copy)])
    assert result.exit_code == 1 and "YAML header does not parse" in result.output
    assert "Traceback" not in result.output


def test_tar_reader_refuses_a_member_larger_than_the_file_without_allocating_it(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    info = tarfile.TarInfo("x.png")
    info.size = 8**11 - 1  # 8 GiB claimed (ustar's largest), a few bytes present
    (tmp_path / "evil.tar").write_bytes(info.tobuf(format=tarfile.USTAR_FORMAT) + b"tiny")
    script = (
        "import resource, sys\n"
        "resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))\n"  # 1 GiB of address space
        "from cxr_dataset.tarstream import iter_members\n"
        "try:\n"
        f"    list(iter_members(open({str(tmp_path / 'evil.tar')!r}, 'rb'), 'evil.tar'))\n"
        "except ValueError as e:\n"
        "    print(e)\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=Path(__file__).parents[1])
    assert proc.returncode == 0, proc.stderr
    assert "evil.tar: truncated tar (a member wants 8589934591 bytes, 4 left)" in proc.stdout


# --- sources stay inside their root --------------------------------------------------------------------


def _secret(tmp_path):
    secret = tmp_path / "secret.png"
    Image.fromarray(np.full((40, 30), 7, np.uint8)).save(secret)
    return secret


@pytest.mark.parametrize("how", ["dotdot", "absolute"])
def test_collection_metadata_cannot_prepare_a_file_outside_its_folder(tmp_path, how):
    secret = _secret(tmp_path)
    root = make_collection(tmp_path / "collection")
    rows = list(csv.DictReader((root / "metadata.csv").read_text().splitlines()))
    rows[0]["filename"] = "../../secret.png" if how == "dotdot" else str(secret)
    with open(root / "metadata.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    result = prepare([f"covid-collection={root}"], tmp_path / "out", PrepareConfig(size=32, workers=1, skip_bad=True))
    assert [r["reason"] for r in result.rejects] == [
        f"{root / 'images' / rows[0]['filename']}: resolves outside the source folder {root}; refusing to read it"
    ]


def test_rsna_patient_id_cannot_reach_outside_its_folder(tmp_path):
    _secret(tmp_path)
    root = make_rsna(tmp_path / "rsna", images="jpg")
    with open(root / "stage_2_train_labels.csv", "a", newline="") as f:
        csv.writer(f).writerow(["../../../secret", "", "", "", "", "0"])
    result = prepare([f"rsna={root}"], tmp_path / "out", PrepareConfig(size=32, workers=1, skip_bad=True))
    assert len(result.rejects) == 1 and "outside the source folder" in result.rejects[0]["reason"]


def test_folder_source_symlink_leaving_the_folder_is_refused(tmp_path):
    secret = _secret(tmp_path)
    root = tmp_path / "folder"
    (root / "normal").mkdir(parents=True)
    Image.fromarray(np.full((40, 30), 90, np.uint8)).save(root / "normal" / "a.png")
    (root / "normal" / "b.png").symlink_to(secret)
    result = prepare([f"folder={root}"], tmp_path / "out", PrepareConfig(size=32, workers=1, skip_bad=True))
    assert [r["id"] for r in result.rejects] == ["folder_normal_b"]


# --- no silent garbage ---------------------------------------------------------------------------------


def _rewrite_checkpoint(run, change):
    ckpt = load_checkpoint(run)
    tensors = ckpt.tensors()
    change(tensors)
    save_file(tensors, ckpt.tensors_path)
    meta = json.loads(ckpt.json_path.read_text())
    meta["tensors_sha256"] = sha256_file(ckpt.tensors_path)
    ckpt.json_path.write_text(json.dumps(meta))


def test_translate_refuses_a_checkpoint_with_nan_weights(prepared, tmp_path):
    train(prepared, "normal2covid", tmp_path / "run", tiny_config())
    _rewrite_checkpoint(tmp_path / "run", lambda t: t["nets.G_A.model.1.weight"].fill_(float("nan")))
    with pytest.raises(CheckpointError, match=r"\[G_A\]: tensor model\.1\.weight holds NaN or infinite values"):
        translate(prepared, tmp_path / "run", tmp_path / "out")
    assert not list((tmp_path / "out").glob("images/*.png"))


def test_translate_refuses_a_generator_whose_output_is_constant(prepared, tmp_path):
    train(prepared, "normal2covid", tmp_path / "run", tiny_config())

    def zero_last_conv(tensors):
        names = [k for k in tensors if k.startswith("nets.G_A.model.") and k.endswith(".weight")]
        tensors[max(names, key=lambda k: int(k.split(".")[3]))].zero_()  # output = tanh(bias) everywhere

    _rewrite_checkpoint(tmp_path / "run", zero_last_conv)
    with pytest.raises(CheckpointError, match="output is a constant image"):
        translate(prepared, tmp_path / "run", tmp_path / "out")


def test_a_failed_reprepare_leaves_a_folder_later_stages_refuse(tmp_path):
    out = tmp_path / "prepared"
    prepare([PHANTOM], out, PrepareConfig(size=SIZE, workers=1))
    bad = tmp_path / "bad"
    (bad / "normal").mkdir(parents=True)
    (bad / "normal" / "x.png").write_bytes(b"not a png")
    with pytest.raises(Exception, match="rejected"):
        prepare([PHANTOM, f"folder={bad}"], out, PrepareConfig(size=SIZE * 2, workers=1))
    with pytest.raises(SchemaError, match="no manifest"):
        train(out, "normal2covid", tmp_path / "run", tiny_config())


def test_train_refuses_a_prepared_image_changed_after_prepare(tmp_path):
    out = tmp_path / "prepared"
    prepare([PHANTOM], out, PrepareConfig(size=SIZE, workers=1))
    victim = sorted((out / "images" / "normal").glob("*.png"))[0]
    Image.fromarray(np.zeros((SIZE, SIZE), np.uint8)).save(victim)
    with pytest.raises(SchemaError, match=f"{victim.name}: SHA-256 differs from the manifest"):
        train(out, "normal2covid", tmp_path / "run", tiny_config())


# --- options and messages ------------------------------------------------------------------------------


def test_cli_translate_refuses_an_unknown_precision_in_one_line(prepared, synthetic, tmp_path):
    run = synthetic["normal2covid"].parents[1] / "runs" / "normal2covid"
    args = ["translate", "--prepared", str(prepared), "--checkpoint", str(run), "--out", str(tmp_path / "o")]
    result = CliRunner().invoke(app, [*args, "--precision", "fp8"])
    assert result.exit_code == 1 and "precision must be one of ['auto', 'bf16', 'fp32'], got 'fp8'" in result.output
    assert "Traceback" not in result.output and not (tmp_path / "o").exists()


def test_cli_errors_print_square_brackets_as_written(tmp_path):
    folder = tmp_path / "[bold]release"
    folder.mkdir()
    result = CliRunner().invoke(app, ["verify", str(folder)])
    assert result.exit_code == 1 and "[bold]release/README.md: no dataset card" in result.output


def test_ownership_marker_is_written_and_kinds_do_not_mix(tmp_path):
    from cxr_dataset.output_record import MARKER_NAME, marker_kind
    from cxr_dataset.ownership import check_output, claimed_output

    with claimed_output(tmp_path / "run", "run"):
        pass
    assert marker_kind(tmp_path / "run") == "run" and (tmp_path / "run" / MARKER_NAME).is_file()
    check_output(tmp_path / "run", "run")
    with pytest.raises(OwnershipError, match="a run folder, not a report one"):
        check_output(tmp_path / "run", "report")
    assert os.listdir(tmp_path / "run") == [MARKER_NAME]


# --- bounded reading and one error boundary ------------------------------------------------------------


def _zip_with(tmp_path, members, name="G_NC.zip"):
    """A G_NC.zip holding `members` (name, bytes) in the seed's layout."""
    import zipfile

    folder = tmp_path / "zips"
    folder.mkdir(exist_ok=True)
    with zipfile.ZipFile(folder / name, "w") as zf:
        for member, data in members:
            zf.writestr(member, data)
    return folder / name


def _patch_central_directory(path, offset, value: bytes):
    """Overwrite bytes at `offset` of the first central-directory entry (and its local header twin)."""
    data = bytearray(path.read_bytes())
    central = data.index(b"PK\x01\x02")
    data[central + offset : central + offset + len(value)] = value
    data[offset - 2 : offset - 2 + len(value)] = value  # local header fields sit 2 bytes earlier
    path.write_bytes(bytes(data))


def _build_from(zips, tmp_path):
    from builders.release import build_release_from_zips

    return build_release_from_zips(zips, tmp_path / "rel" / "covid-synthetic-cxr")


def _warned(function, *args):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the MD5 differs from the published one: expected here
        return function(*args)


def _png_claiming(width, height):
    import struct
    import zlib

    buf = io.BytesIO()
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(buf, "PNG")
    data = bytearray(buf.getvalue())
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    return bytes(data)


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("huge header", "exceeds the 100,000,000-pixel limit"),
        ("not an image", "not a readable image"),
        ("encrypted", "is encrypted; refused"),
        ("compression", "uses compression method 98; unsupported"),
        ("bad crc", "unreadable member"),
        ("repeated", "occur twice; refused"),
    ],
)
def test_release_zip_defects_are_one_line_errors(tmp_path, case, message):
    from cxr_dataset.errors import SourceError

    good = _png_claiming(4, 4)
    members = {
        "huge header": [("G1/1.jpg", _png_claiming(60000, 60000))],
        "not an image": [("G1/1.jpg", b"hello, not a JPEG")],
        "repeated": [("G1/1.jpg", good), ("G1/1.jpg", good)],
    }.get(case, [("G1/1.jpg", good)])
    path = _warned(_zip_with, tmp_path, members)
    if case == "encrypted":
        _patch_central_directory(path, 8, b"\x01\x00")
    elif case == "compression":
        _patch_central_directory(path, 10, b"\x62\x00")
    elif case == "bad crc":
        data = bytearray(path.read_bytes())
        data[data.index(good) + 40] ^= 0xFF  # stored member: flip a byte of its data
        path.write_bytes(bytes(data))
    with pytest.raises(SourceError, match=message):
        _warned(_build_from, [path], tmp_path)
    assert not (tmp_path / "rel").exists() or not any((tmp_path / "rel").iterdir())


def test_release_zip_member_over_the_byte_limit_is_refused_before_reading(tmp_path, monkeypatch):
    from cxr_dataset.errors import SourceError
    from cxr_dataset.sources import seed_zips

    path = _zip_with(tmp_path, [("G1/1.jpg", bytes(4096))])
    monkeypatch.setattr(seed_zips, "MAX_FILE_BYTES", 1024)
    with pytest.raises(SourceError, match="unpacks to 4,096 bytes, over the limit"):
        _warned(_build_from, [path], tmp_path)


def test_the_same_release_zip_twice_is_refused(tmp_path):
    from cxr_dataset.errors import SourceError

    path = _zip_with(tmp_path, [("G1/1.jpg", _png_claiming(4, 4))])
    with pytest.raises(SourceError, match="each asset .* may come once"):
        _warned(_build_from, [path, path], tmp_path)


def test_a_dicom_without_rows_is_a_reject_row_in_a_skip_bad_run(tmp_path):
    from tests.test_dicom import write_dicom

    root = tmp_path / "folder"
    (root / "normal").mkdir(parents=True)
    Image.fromarray(np.full((40, 30), 90, np.uint8)).save(root / "normal" / "good.png")
    path = write_dicom(root / "normal" / "norows.dcm", np.zeros((8, 8), np.uint8))
    import pydicom

    ds = pydicom.dcmread(path)
    del ds.Rows
    ds.save_as(path)
    result = prepare([f"folder={root}"], tmp_path / "out", PrepareConfig(size=32, workers=1, skip_bad=True))
    assert [r["id"] for r in result.rejects] == ["folder_normal_norows"]
    assert "Rows" in result.rejects[0]["reason"]


def test_metadata_csv_that_is_not_utf8_is_named(tmp_path):
    from cxr_dataset.errors import SourceError

    root = make_collection(tmp_path / "collection")
    (root / "metadata.csv").write_bytes((root / "metadata.csv").read_bytes() + "é,\n".encode("latin-1"))
    with pytest.raises(SourceError, match=r"metadata.csv: not UTF-8 text"):
        prepare([f"covid-collection={root}"], tmp_path / "out", PrepareConfig(size=32, workers=1))


@pytest.mark.parametrize(
    ("meta_change", "message"),
    [
        (lambda m: m.pop("tensors_file"), r"missing or mistyped keys \['tensors_file'\]"),
        (lambda m: m.update(tensors_file="../../elsewhere.safetensors"), "must be a .safetensors file beside"),
    ],
)
def test_checkpoint_json_with_missing_keys_or_an_outside_tensors_file_is_refused(
    prepared, tmp_path, meta_change, message
):
    train(prepared, "normal2covid", tmp_path / "run", tiny_config())
    ckpt = load_checkpoint(tmp_path / "run")
    meta = json.loads(ckpt.json_path.read_text())
    meta_change(meta)
    ckpt.json_path.write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match=message):
        load_checkpoint(tmp_path / "run")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["prepare", "--source", "phantom=9", "--fractions", "1.2,-0.1,-0.1"], "each in 0..1"),
        (["prepare", "--source", "phantom=9", "--workers", "500"], "workers must be in 1.."),
        (["train", "--prepared", "P", "--task", "normal2covid", "--size", "3"], "does not fit"),
    ],
)
def test_cli_refuses_senseless_options_in_one_line(tmp_path, args, message):
    args = [str(tmp_path / "p") if a == "P" else a for a in args]
    result = CliRunner().invoke(app, [*args, "--out", str(tmp_path / "out")])
    assert result.exit_code == 1 and message in result.output and "Traceback" not in result.output
    assert not (tmp_path / "out").exists()


def test_cli_validate_refuses_a_negative_near_duplicate_fraction(release):
    result = CliRunner().invoke(app, ["validate", str(release), "--near-duplicate-fraction", "-1"])
    assert result.exit_code == 1 and "near_duplicate_fraction must be between 0 and 1, got -1.0" in result.output


def test_cli_os_errors_are_one_line_with_the_path(synthetic, tmp_path):
    too_long = tmp_path / ("x" * 300) / "covid-synthetic-cxr"
    args = ["build", "--synthetic", str(synthetic["normal2covid"]), "--out", str(too_long)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 1 and "File name too long" in result.output and "Traceback" not in result.output
    assert result.output.count("\n") <= 3


def test_folder_source_names_a_file_stem_used_twice_and_skipped_folders(tmp_path):
    from cxr_dataset.errors import SourceError

    root = tmp_path / "folder"
    for sub in ("normal", "xrays-misc"):
        (root / sub).mkdir(parents=True)
    Image.fromarray(np.full((40, 30), 90, np.uint8)).save(root / "normal" / "x.png")
    with pytest.warns(UserWarning, match=r"skipped folders \['xrays-misc'\]"):
        prepare([f"folder={root}"], tmp_path / "out", PrepareConfig(size=32, workers=1))
    Image.fromarray(np.full((40, 30), 90, np.uint8)).save(root / "normal" / "x.jpg")
    with pytest.raises(SourceError, match="x.png and .*x.jpg: one image name twice"):
        prepare([f"folder={root}"], tmp_path / "out2", PrepareConfig(size=32, workers=1))


# --- kill -9, Ctrl-C and a full disk -------------------------------------------------------------------


def _cli(*args):
    import signal
    import subprocess
    import sys
    from pathlib import Path

    command = [sys.executable, "-m", "cli", *map(str, args)]
    return subprocess.Popen(
        command,
        cwd=Path(__file__).parents[1],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        # As from a terminal: a test run started in the background (`make test &`) inherits an ignored SIGINT,
        # which Python would keep ignoring in the child.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )


@pytest.mark.slow
def test_ctrl_c_during_training_says_how_to_resume_and_the_rerun_finishes(prepared, tmp_path):
    import signal
    import time

    run = tmp_path / "run"
    args = ["train", "--prepared", prepared, "--task", "normal2covid", "--out", run, "--preset", "tiny"]
    args += ["--size", SIZE, "--epochs", 4]
    proc = _cli(*args)
    deadline = time.monotonic() + 120
    while not list((run / "checkpoints").glob("step-*.json")):
        assert proc.poll() is None and time.monotonic() < deadline, proc.stdout.read()
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    output = proc.communicate(timeout=60)[0]
    assert proc.returncode == 130 and "interrupted" in output and "re-run" in output and "Traceback" not in output
    resumed = _cli(*args, "--resume")
    assert resumed.wait(timeout=600) == 0, resumed.stdout.read()
    last = json.loads((run / "log.jsonl").read_text().splitlines()[-1])
    assert last["epoch"] == 3 and load_checkpoint(run).meta["step"] == last["step"]


def test_pool_workers_die_with_a_sigkilled_parent(tmp_path):
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    script = (
        "import os, time\n"
        "from cxr_dataset.workers import process_pool\n"
        "with process_pool(2) as pool:\n"
        "    futures = [pool.submit(os.getpid) for _ in range(8)]\n"
        "    print(' '.join(sorted({str(f.result()) for f in futures})), flush=True)\n"
        "    time.sleep(600)\n"
    )
    parent = subprocess.Popen(
        [sys.executable, "-c", script], cwd=Path(__file__).parents[1], stdout=subprocess.PIPE, text=True
    )
    workers = [int(p) for p in parent.stdout.readline().split()]
    assert workers and all(_alive(p) for p in workers)
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    deadline = time.monotonic() + 10
    while any(_alive(p) for p in workers) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(_alive(p) for p in workers)


def test_builds_portion_process_dies_with_a_sigkilled_parent(synthetic, tmp_path):
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    # Every image is a FIFO that nobody writes: the portion process blocks on its first one until its parent is
    # killed, and the test sees it waiting there (alive, not failed) before the kill.
    folder = tmp_path / "synthetic"
    shutil.copytree(synthetic["normal2covid"], folder)
    for image in (folder / "images").iterdir():
        image.unlink()
        os.mkfifo(image)
    script = (
        "import sys, time\n"
        "from pathlib import Path\n"
        "from builders.release_rows import read_release_rows\n"
        "from builders.portion_process import PortionProcess\n"
        "from builders.portions import split_portions\n"
        "folder = Path(sys.argv[1])\n"
        "read = read_release_rows([folder])\n"
        "theirs = split_portions({n: len(p) for n, p in read.parts().items()}, 8, 4, 1)[0]\n"
        "portion = PortionProcess(folder.parent / 'rel', 'train', [folder], read.digests, theirs, rows_per_file=8, "
        "per_shard=4)\n"
        "print(portion.process.pid, flush=True)\n"
        "time.sleep(600)\n"
    )
    parent = subprocess.Popen(
        [sys.executable, "-c", script, str(folder)],
        cwd=Path(__file__).parents[1],
        stdout=subprocess.PIPE,
        text=True,
    )
    child = int(parent.stdout.readline())
    deadline, held = time.monotonic() + 60, None
    while held is None and time.monotonic() < deadline:
        for image in (folder / "images").iterdir():
            try:  # succeeds once a reader waits on this FIFO: the child, which then blocks reading it
                held = os.open(image, os.O_WRONLY | os.O_NONBLOCK)
                break
            except OSError:
                pass
        time.sleep(0.05)
    assert held is not None and _alive(child)
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    deadline = time.monotonic() + 10
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    os.close(held)
    assert not _alive(child)


def _alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] != "Z"  # a zombie has exited
    except FileNotFoundError:
        return False


def test_translate_removes_temporary_files_a_killed_run_left(prepared, synthetic, tmp_path):
    from cxr_dataset.fileio import atomic_open
    from cxr_dataset.ownership import claimed_output

    run = synthetic["normal2covid"].parents[1] / "runs" / "normal2covid"
    translate(prepared, run, tmp_path / "out")
    stale = tmp_path / "out" / "images" / f".g_nc_x.png.tmp-{os.getpid()}"
    with (
        pytest.raises(KeyboardInterrupt),
        claimed_output(tmp_path / "out", "synthetic") as claim,
        atomic_open(claim.root / "images" / "g_nc_x.png") as f,  # the state a run killed mid-write leaves
    ):
        f.write(b"half a png")
        os.link(stale, stale.with_name("kept"))
        raise KeyboardInterrupt
    stale.with_name("kept").rename(stale)
    translate(prepared, run, tmp_path / "out")
    assert not stale.exists()


@pytest.fixture
def tiny_disk(tmp_path):
    """A 64 KiB tmpfs (needs root and mount rights; skipped elsewhere)."""
    import subprocess

    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(disk)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {mounted.stderr.decode().strip()}")
    yield disk
    subprocess.run(["umount", str(disk)], check=True)


@pytest.mark.parametrize("processes", ["1", "2"])
def test_build_on_a_full_disk_is_one_line_and_leaves_nothing_behind(prepared, tmp_path, tiny_disk, processes):
    big = tmp_path / "big"
    train(prepared, "normal2covid", tmp_path / "run", tiny_config())
    translate(prepared, tmp_path / "run", big)
    args = ["build", "--synthetic", str(big), "--out", str(tiny_disk / "release"), "--processes", processes]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 1 and "No space left on device" in result.output, result.output
    assert "Traceback" not in result.output and os.listdir(tiny_disk) == []
