"""The seed's v0.1 release: ``G_NC.zip`` (``G1/<n>.jpg``, 16,537) and ``G_PC.zip`` (``G2/<n>_g2.jpg``, 4,758).

Zunair & Hamza, "Synthetic COVID-19 Chest X-ray Dataset for Computer-Aided Diagnosis", arXiv:2106.09759
(MIT). Every image is a synthetic COVID-19 X-ray; the release records no source image or patient.

Members are read straight from the zip, never extracted; a member that is absolute, climbs out with
``..``, is a link, or does not fit the layout makes the whole zip refused. An MD5 that differs from the
published one is a warning, or an error with ``strict``.
"""

from __future__ import annotations

import hashlib
import lzma
import re
import stat
import struct
import warnings
import zipfile
import zlib
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from cxr_dataset.errors import SourceError
from cxr_dataset.schema import make_key
from cxr_dataset.sources.base import SourceImage
from cxr_dataset.sources.files import MAX_FILE_BYTES, UnknownSignatureError, load_image_stream

KIND = "release"
DATASET_NAME = "zunair-hamza-v0.1"  # the source_dataset of rows built from these zips
_COMPRESSIONS = (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA)
MAX_ZIP_MEMBERS = 100_000  # the larger asset has 16,537; a zip declaring more is refused before it is listed
DIRECTORY_BYTES_PER_MEMBER = 256  # the central directory may average this much per member (names are short)
# What reading a damaged member raises: OS errors, a bad CRC, a truncated or corrupt compressed stream.
_MEMBER_ERRORS = (OSError, KeyError, EOFError, RuntimeError, NotImplementedError, zipfile.BadZipFile)
_MEMBER_ERRORS += (zlib.error, lzma.LZMAError)


@dataclass(frozen=True)
class SeedZipAsset:
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
        SeedZipAsset(
            "G_NC.zip",
            "g_nc",
            "normal2covid",
            re.compile(r"G1/([1-9][0-9]*)\.jpg"),
            "bd82149d00283fca892bc41e997a3070",
            16_537,
        ),
        SeedZipAsset(
            "G_PC.zip",
            "g_pc",
            "pneumonia2covid",
            re.compile(r"G2/([1-9][0-9]*)_g2\.jpg"),
            "acf56668f97be81fd8c05c4308f80c61",
            4_758,
        ),
    )
}


class SeedZipWarning(UserWarning):
    """A release zip differs from the published one (MD5) but has the expected layout."""


@dataclass(frozen=True)
class SeedZipMember:
    number: int
    name: str


def md5_file(path: Path) -> str:
    h = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def check_seed_zip(path: Path, *, strict: bool = False) -> tuple[SeedZipAsset, list[SeedZipMember], str]:
    """Identify a release zip by name, verify its MD5 and layout; returns the asset, its members sorted by
    number, and the zip's MD5."""
    asset = ASSETS.get(path.name)
    if asset is None:
        raise SourceError(f"{path}: unknown release asset; expected one of {sorted(ASSETS)}")
    try:
        check_directory_size(path)
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
        members.append(SeedZipMember(int(match.group(1)), name))
    counts = Counter(m.number for m in members)  # one pass: the release has 16,537 members
    repeated = sorted({m.name for m in members if counts[m.number] > 1})
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
        warnings.warn(message, SeedZipWarning, stacklevel=2)
    return asset, sorted(members, key=lambda m: m.number), actual


def check_directory_size(path: Path) -> None:
    """Refuse a zip whose end record declares more than `MAX_ZIP_MEMBERS` members, or a central directory
    larger than they need, before `zipfile` lists it (its listing holds every entry in memory)."""
    with open(path, "rb") as f:
        end = f.seek(0, 2)
        start = max(0, end - (22 + 0xFFFF))  # the end record (22 bytes) and its comment (at most 64 KiB)
        f.seek(start)
        tail = f.read()
        at = tail.rfind(b"PK\x05\x06")
        if at < 0 or len(tail) - at < 22:
            return  # not a zip: zipfile says so
        members, directory = struct.unpack("<HL", tail[at + 10 : at + 16])
        locator = tail[at - 20 : at] if at >= 20 else b""
        if (members == 0xFFFF or directory == 0xFFFFFFFF) and locator[:4] == b"PK\x06\x07":  # zip64
            f.seek(struct.unpack("<Q", locator[8:16])[0])
            record = f.read(56)
            if record[:4] == b"PK\x06\x06" and len(record) == 56:
                members, directory = struct.unpack("<QQ", record[32:48])
    if members > MAX_ZIP_MEMBERS or directory > MAX_ZIP_MEMBERS * DIRECTORY_BYTES_PER_MEMBER:
        raise SourceError(
            f"{path}: declares {members:,} members in a {directory:,}-byte directory; at most "
            f"{MAX_ZIP_MEMBERS:,} members and {MAX_ZIP_MEMBERS * DIRECTORY_BYTES_PER_MEMBER:,} bytes are read "
            "(`cxr_dataset.sources.seed_zips.MAX_ZIP_MEMBERS`)"
        )


def seed_zip_paths(path: Path) -> list[Path]:
    """`path` itself if it is a zip, else the release assets found in the folder."""
    if path.is_file():
        return [path]
    found = [path / name for name in sorted(ASSETS) if (path / name).is_file()]
    if not found:
        raise SourceError(f"{path}: no {' or '.join(sorted(ASSETS))} here")
    return found


def iter_seed_zip_images(path: Path, members: list[SeedZipMember]) -> Iterator[tuple[SeedZipMember, np.ndarray]]:
    """Each member decoded to 2-D uint8 (the release's JPEGs are RGB with near-equal channels)."""
    with zipfile.ZipFile(path) as zf:
        for m in members:
            yield m, read_member_image(zf, path, m.name)


def read_member_image(zf: zipfile.ZipFile, path: Path | str, name: str) -> np.ndarray:
    """One member, size-capped and CRC-checked, decoded within the pixel limit; `SourceError` otherwise.

    The member is decoded as it is read, never held whole: one that does not start like a JPEG or PNG is
    refused after its first bytes; the rest of a decoded one is read through in blocks so the CRC is checked.
    """
    where = f"{path}::{name}"
    try:
        info = zf.getinfo(name)
        if info.file_size > MAX_FILE_BYTES:
            raise SourceError(f"{where}: unpacks to {info.file_size:,} bytes, over the limit")
        with zf.open(info) as f:  # zipfile stops at the declared size, so at most MAX_FILE_BYTES come out
            try:
                pixels = load_image_stream(f, where)
            except UnknownSignatureError:
                raise  # refused from its first bytes: the rest is not read
            except SourceError:
                _read_through(f)  # a damaged member is reported as such (bad CRC), not as a bad image
                raise
            _read_through(f)
    except _MEMBER_ERRORS as e:
        raise SourceError(f"{where}: unreadable member ({e})") from None
    return pixels


def _read_through(f: zipfile.ZipExtFile) -> None:
    """Read the rest of a member in 1 MiB blocks: zipfile checks its CRC at the end."""
    while f.read(1 << 20):
        pass


@lru_cache(maxsize=4)
def _open_zip(path: str) -> zipfile.ZipFile:
    """One open handle per zip per process: reading the central directory of 16,537 members is not free."""
    return zipfile.ZipFile(path)


@dataclass(frozen=True)
class SeedZipSource:
    """The release's images as a prepare source: every image is class covid and its own 'patient'."""

    path: Path
    strict: bool = False
    kind: str = KIND

    def records(self) -> list[SourceImage]:
        out = []
        for zip_path in seed_zip_paths(self.path):
            asset, members, _ = check_seed_zip(zip_path, strict=self.strict)
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

    def fingerprint(self, record: SourceImage) -> str:
        """The member's SHA-256 (read in blocks), so `prepare`'s cache follows its bytes, not the zip's path."""
        zip_path, _, member = record.origin.partition("::")
        digest = hashlib.sha256()
        try:
            with _open_zip(zip_path).open(member) as f:
                while block := f.read(1 << 20):
                    digest.update(block)
        except _MEMBER_ERRORS as e:
            raise SourceError(f"{zip_path}::{member}: unreadable member ({e})") from None
        return digest.hexdigest()
