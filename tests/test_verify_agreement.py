"""A release's formats must agree: parquet rows, tar samples, the wids index, the card and Croissant describe the
same samples. Each tampering below is done as a careful forger would, fixing every digest it can (the row's
sha256, the index's sizes and digests, croissant.json, SHA256SUMS) so that only the disagreement is left."""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import shutil
import tarfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image, ImageOps

from builders.push import push_release
from cxr_dataset.checksums import write_checksums
from cxr_dataset.errors import ReleaseError
from cxr_dataset.verify import verify_release

WDS = "webdataset"


def _copy(release: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "copy" / release.name
    shutil.copytree(release, copy)
    return copy


def _resum(root: Path) -> None:
    """Regenerate SHA256SUMS, as a forger would, so that the checksums hold."""
    (root / "SHA256SUMS").unlink()
    write_checksums(root)


def _failed(report) -> dict[str, str]:
    return {c.name: c.detail for c in report.checks if not c.ok}


def _shard(root: Path, samples: int = 1) -> Path:
    """The first g_nc shard holding at least `samples` samples."""
    index = json.loads((root / WDS / "g_nc-train-shardindex.json").read_text())
    return root / WDS / next(e["url"] for e in index["shardlist"] if e["nsamples"] >= samples)


def _rewrite_tar(path: Path, edit: Callable[[list[tuple[str, bytes]]], list[tuple[str, bytes]]]) -> None:
    """Rewrite a shard's members through `edit`, then fix every index entry's size and digests for it."""
    with tarfile.open(path) as tar:
        members = [(m.name, tar.extractfile(m).read()) for m in tar.getmembers()]
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for name, data in edit(members):
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o444
            tar.addfile(info, io.BytesIO(data))
    path.write_bytes(out.getvalue())
    for index_path in path.parent.glob("*-shardindex.json"):
        index = json.loads(index_path.read_text())
        for entry in index["shardlist"]:
            if entry["url"] == path.name:
                data = path.read_bytes()
                entry["filesize"] = len(data)
                entry["md5sum"] = hashlib.md5(data, usedforsecurity=False).hexdigest()
                entry["sha256"] = hashlib.sha256(data).hexdigest()
        index_path.write_text(json.dumps(index, indent=2) + "\n")


def _replace_member(ext: str, new: Callable[[bytes], bytes]) -> Callable[[list], list]:
    def edit(members: list[tuple[str, bytes]]) -> list[tuple[str, bytes]]:
        first = next(i for i, (name, _) in enumerate(members) if name.endswith(f".{ext}"))
        members[first] = (members[first][0], new(members[first][1]))
        return members

    return edit


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def mirror_a_parquet_image_and_fix_its_sha256(root: Path) -> None:
    path = sorted((root / "data" / "g_nc").glob("*.parquet"))[0]
    table = pq.read_table(path)
    rows: list[dict[str, Any]] = table.to_pylist()
    with Image.open(io.BytesIO(rows[0]["image"]["bytes"])) as image:
        mirrored = _png(ImageOps.mirror(image))
    assert mirrored != rows[0]["image"]["bytes"]
    rows[0]["image"]["bytes"], rows[0]["sha256"] = mirrored, hashlib.sha256(mirrored).hexdigest()
    pq.write_table(pa.Table.from_pylist(rows, schema=table.schema), path)
    croissant = json.loads((root / "croissant.json").read_text())
    for entry in croissant["distribution"]:
        if entry.get("contentUrl") == path.relative_to(root).as_posix():
            entry["sha256"] = hashlib.sha256(path.read_bytes()).hexdigest()
    (root / "croissant.json").write_text(json.dumps(croissant, indent=2))


def change_a_tar_cls(root: Path) -> None:
    _rewrite_tar(_shard(root), _replace_member("cls", lambda data: b"0"))


def black_out_a_tar_png(root: Path) -> None:
    def black(data: bytes) -> bytes:
        with Image.open(io.BytesIO(data)) as image:
            return _png(Image.new("L", image.size, 0))

    _rewrite_tar(_shard(root), _replace_member("png", black))


def add_a_duplicate_key_to_a_tar(root: Path) -> None:
    """A copy of the shard's first sample at its end: the loader yields 16 samples of 15."""

    def duplicate(members: list[tuple[str, bytes]]) -> list[tuple[str, bytes]]:
        key = members[0][0].split(".")[0]
        return members + [(name, data) for name, data in members if name.split(".")[0] == key]

    _rewrite_tar(_shard(root, samples=2), duplicate)


def list_a_shard_twice_in_the_index(root: Path) -> None:
    path = root / WDS / "g_nc-train-shardindex.json"
    index = json.loads(path.read_text())
    index["shardlist"].append(next(e for e in index["shardlist"] if e["nsamples"] == 2))  # 17 samples of 15
    path.write_text(json.dumps(index, indent=2) + "\n")


def zero_a_croissant_sha256(root: Path) -> None:
    croissant = json.loads((root / "croissant.json").read_text())
    next(e for e in croissant["distribution"] if e["@type"] == "cr:FileObject")["sha256"] = "0" * 64
    (root / "croissant.json").write_text(json.dumps(croissant, indent=2))


def _edit_card(old: str, new: str, name: str) -> Callable[[Path], None]:
    def edit(root: Path) -> None:
        card = (root / "README.md").read_text()
        assert old in card
        (root / "README.md").write_text(card.replace(old, new, 1))

    edit.__name__ = name
    return edit


edit_the_card_licence = _edit_card("\nlicense: mit\n", "\nlicense: cc-by-4.0\n", "edit_the_card_licence")
edit_the_card_licence_statement = _edit_card(
    "released under MIT.", "released under CC0.", "edit_the_card_licence_statement"
)
edit_the_card_counts = _edit_card(
    "| `g_nc` | train | 15 | 15 | 0 |", "| `g_nc` | train | 14 | 14 | 0 |", "edit_the_card_counts"
)

TAMPERINGS = [  # (tampering, the check that must fail, what its detail must say)
    (mirror_a_parquet_image_and_fix_its_sha256, "formats agree g_nc/train", "is not the parquet row's image"),
    (change_a_tar_cls, "formats agree g_nc/train", ".cls is b'0', the parquet row's label is 2 (covid)"),
    (black_out_a_tar_png, "formats agree g_nc/train", "is not the parquet row's image"),
    (add_a_duplicate_key_to_a_tar, "webdataset g_nc/train", "duplicate key"),
    (list_a_shard_twice_in_the_index, "shard index g_nc/train", "is listed 2 times"),
    (zero_a_croissant_sha256, "croissant", "croissant.json says SHA-256 000000000000…"),
    (edit_the_card_licence, "card licence", "the card's license is 'cc-by-4.0'; the inputs' licences make it 'mit'"),
    (edit_the_card_licence_statement, "card licence", "the card does not state the inputs' terms"),
    (edit_the_card_counts, "card counts", "g_nc/train: the card says rows, normal-, pneumonia-source (14, 14, 0)"),
]


@pytest.mark.parametrize(("tamper", "check", "detail"), TAMPERINGS, ids=[t[0].__name__ for t in TAMPERINGS])
def test_verify_fails_when_a_release_s_formats_disagree_though_its_checksums_hold(
    release, tmp_path, tamper, check, detail
):
    copy = _copy(release, tmp_path)
    tamper(copy)
    _resum(copy)
    report = verify_release(copy)
    failed = _failed(report)
    assert "checksums" not in failed and check in failed, failed
    assert detail in failed[check], failed[check]


def test_verify_counts_a_shard_listed_twice_as_the_loader_would(release, tmp_path):
    copy = _copy(release, tmp_path)
    list_a_shard_twice_in_the_index(copy)
    _resum(copy)
    assert "17 samples in 9 listed shards; card declares 15" in _failed(verify_release(copy))["webdataset g_nc/train"]


def _finishes(call: Callable[[], Any], fifo: Path, seconds: float = 60) -> dict[str, Any]:
    """`call`'s result or exception; fails (after unblocking it) if it is still waiting on `fifo` after `seconds`."""
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["result"] = call()
        except Exception as e:
            outcome["error"] = e

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        with contextlib.suppress(OSError):  # a writer lets the blocked reader's open return, so the thread ends
            os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        pytest.fail(f"still blocked on the FIFO {fifo} after {seconds} s")
    return outcome


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_a_fifo_named_like_a_parquet_file_fails_verify_and_push_at_once_in_one_line(release, tmp_path):
    copy = _copy(release, tmp_path)
    fifo = sorted((copy / "data" / "g_nc").glob("*.parquet"))[0]
    fifo.unlink()
    os.mkfifo(fifo)
    name = fifo.relative_to(copy).as_posix()

    report = _finishes(lambda: verify_release(copy), fifo)["result"]
    failed = _failed(report)
    assert failed["regular files"].startswith(f"{name}: a FIFO; a release holds regular files only")
    assert f"{fifo.name}: unreadable parquet ({fifo}: a FIFO, not a regular file" in failed["images g_nc/train"]

    error = _finishes(lambda: push_release(copy, "someone/x", dry_run=True), fifo)["error"]
    assert isinstance(error, ReleaseError) and "\n" not in str(error)
    assert f"verify failed (regular files: {name}: a FIFO" in str(error)
