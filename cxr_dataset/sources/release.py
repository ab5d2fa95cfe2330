"""The seed's v0.1 release: ``G_NC.zip`` (``G1/<n>.jpg``, 16,537) and ``G_PC.zip`` (``G2/<n>_g2.jpg``, 4,758).

Zunair & Hamza, "Synthetic COVID-19 Chest X-ray Dataset for Computer-Aided Diagnosis", arXiv:2106.09759
(MIT). Every image is a synthetic COVID-19 X-ray; the release records no source image or patient.

Members are read straight from the zip, never extracted; a member that is absolute, climbs out with
``..``, is a link, or does not fit the layout makes the whole zip refused. An MD5 that differs from the
published one is a warning, or an error with ``strict``.
"""

from __future__ import annotations

import hashlib
import re
import stat
import warnings
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from cxr_dataset.errors import SourceError
from cxr_dataset.schema import make_key
from cxr_dataset.sources.base import SourceImage
from cxr_dataset.sources.files import MAX_FILE_BYTES, load_image_bytes

KIND = "release"
DATASET_NAME = "zunair-hamza-v0.1"  # the source_dataset of rows built from these zips
_COMPRESSIONS = (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA)


@dataclass(frozen=True)
class ReleaseAsset:
    name: str
    config: str
    task: str
    member: re.Pattern
    md5: str
    count: int


# Published in the seed's README (v0.1 assets); counts from SEED-FACTS.
ASSETS = {
    a.name: a
    for a in (
        ReleaseAsset(
            "G_NC.zip",
            "g_nc",
            "normal2covid",
            re.compile(r"G1/([1-9][0-9]*)\.jpg"),
            "bd82149d00283fca892bc41e997a3070",
            16_537,
        ),
        ReleaseAsset(
            "G_PC.zip",
            "g_pc",
            "pneumonia2covid",
            re.compile(r"G2/([1-9][0-9]*)_g2\.jpg"),
            "acf56668f97be81fd8c05c4308f80c61",
            4_758,
        ),
    )
}


class ReleaseWarning(UserWarning):
    """A release zip differs from the published one (MD5) but has the expected layout."""


@dataclass(frozen=True)
class ReleaseMember:
    number: int
    name: str


def md5_file(path: Path) -> str:
    h = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def check_release_zip(path: Path, *, strict: bool = False) -> tuple[ReleaseAsset, list[ReleaseMember], str]:
    """Identify a release zip by name, verify its MD5 and layout; returns the asset, its members sorted by
    number, and the zip's MD5."""
    asset = ASSETS.get(path.name)
    if asset is None:
        raise SourceError(f"{path}: unknown release asset; expected one of {sorted(ASSETS)}")
    try:
        with zipfile.ZipFile(path) as zf:
            infos = zf.infolist()
    except (zipfile.BadZipFile, OSError) as e:
        raise SourceError(f"{path}: not a readable zip ({e})") from None
    members = []
    for info in infos:
        name = info.filename
        if name.startswith("/") or "\\" in name or ".." in name.split("/") or (len(name) > 1 and name[1] == ":"):
            raise SourceError(f"{path}: unsafe member {name!r} (absolute or outside the archive); refused")
        if stat.S_ISLNK(info.external_attr >> 16):
            raise SourceError(f"{path}: member {name!r} is a symbolic link; refused")
        if info.is_dir():
            continue
        match = asset.member.fullmatch(name)
        if match is None:
            raise SourceError(f"{path}: member {name!r} does not fit the v0.1 layout ({asset.member.pattern})")
        if info.flag_bits & 0x1:
            raise SourceError(f"{path}: member {name!r} is encrypted; refused")
        if info.compress_type not in _COMPRESSIONS:
            raise SourceError(f"{path}: member {name!r} uses compression method {info.compress_type}; unsupported")
        if info.file_size > MAX_FILE_BYTES:
            raise SourceError(f"{path}: member {name!r} unpacks to {info.file_size:,} bytes, over the limit")
        members.append(ReleaseMember(int(match.group(1)), name))
    repeated = sorted({m.name for m in members if sum(n.number == m.number for n in members) > 1})
    if repeated:
        raise SourceError(f"{path}: members {repeated[:3]} occur twice; refused")
    actual = md5_file(path)
    if actual != asset.md5:
        message = (
            f"{path}: MD5 {actual} differs from the published {asset.md5} "
            f"({len(members)} members; the release has {asset.count})"
        )
        if strict:
            raise SourceError(message + "; refused (--strict)")
        warnings.warn(message, ReleaseWarning, stacklevel=2)
    return asset, sorted(members, key=lambda m: m.number), actual


def release_zips(path: Path) -> list[Path]:
    """`path` itself if it is a zip, else the release assets found in the folder."""
    if path.is_file():
        return [path]
    found = [path / name for name in sorted(ASSETS) if (path / name).is_file()]
    if not found:
        raise SourceError(f"{path}: no {' or '.join(sorted(ASSETS))} here")
    return found


def iter_release_images(path: Path, members: list[ReleaseMember]) -> Iterator[tuple[ReleaseMember, np.ndarray]]:
    """Each member decoded to 2-D uint8 (the release's JPEGs are RGB with near-equal channels)."""
    with zipfile.ZipFile(path) as zf:
        for m in members:
            yield m, read_member_image(zf, path, m.name)


def read_member_image(zf: zipfile.ZipFile, path: Path | str, name: str) -> np.ndarray:
    """One member, size-capped and CRC-checked, decoded within the pixel limit; `SourceError` otherwise."""
    where = f"{path}::{name}"
    try:
        info = zf.getinfo(name)
        if info.file_size > MAX_FILE_BYTES:
            raise SourceError(f"{where}: unpacks to {info.file_size:,} bytes, over the limit")
        with zf.open(info) as f:
            data = f.read(MAX_FILE_BYTES + 1)
    except (OSError, KeyError, EOFError, RuntimeError, NotImplementedError, zipfile.BadZipFile) as e:
        raise SourceError(f"{where}: unreadable member ({e})") from None
    if len(data) > MAX_FILE_BYTES:
        raise SourceError(f"{where}: unpacks to more than {MAX_FILE_BYTES:,} bytes")
    return load_image_bytes(data, where)


@lru_cache(maxsize=4)
def _open_zip(path: str) -> zipfile.ZipFile:
    """One open handle per zip per process: reading the central directory of 16,537 members is not free."""
    return zipfile.ZipFile(path)


@dataclass(frozen=True)
class ReleaseSource:
    """The release's images as a prepare source: every image is class covid and its own 'patient'."""

    path: Path
    strict: bool = False
    kind: str = KIND

    def records(self) -> list[SourceImage]:
        out = []
        for zip_path in release_zips(self.path):
            asset, members, _ = check_release_zip(zip_path, strict=self.strict)
            for m in members:
                key = make_key(KIND, asset.config, str(m.number))
                out.append(
                    SourceImage(
                        id=key,
                        patient_id=key,
                        label="covid",
                        source=f"{KIND}-v0.1",
                        origin=f"{zip_path}::{m.name}",
                        license="MIT",
                    )
                )
        return out

    def load(self, record: SourceImage, size: int) -> np.ndarray:
        zip_path, _, member = record.origin.partition("::")
        return read_member_image(_open_zip(zip_path), zip_path, member)
