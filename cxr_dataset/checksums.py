"""`SHA256SUMS`: the list of a release's files. A release is exactly what it lists (plus the list itself).

Written by `cxrds build`, read by `cxrds verify` and `cxrds push` (which uploads only what it lists).
"""

from __future__ import annotations

import errno
import os
import re
import stat
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from cxr_dataset.errors import ReleaseError
from cxr_dataset.fileio import atomic_write_text, sha256_file

CHECKSUMS_NAME = "SHA256SUMS"  # a release's or an export's list of its files

_LINE = re.compile(r"([0-9a-f]{64})  (.+)")


def is_safe_relative(name: str) -> bool:
    """A plain relative POSIX path that stays inside its folder: no '/' start, no '..', '.', '\\' or empty part."""
    if not name or name.startswith("/") or "\\" in name or "\0" in name:
        return False
    return all(part not in ("", ".", "..") for part in name.split("/"))


def open_regular(path: Path | str) -> BinaryIO:
    """Open `path` for binary reading only if it is a regular file: a FIFO, device, socket or folder is refused
    before it is opened (so nothing blocks on a pipe nobody writes), a symbolic link is never followed, and the
    file opened is checked again (a swap in between is refused too). `ReleaseError` says which it is; a
    missing file is `FileNotFoundError`."""
    path = Path(path)
    _refuse_special(path, os.lstat(path).st_mode)
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(path, flags)
    except OSError as e:
        if e.errno == errno.ELOOP:
            _refuse_special(path, stat.S_IFLNK)
        raise
    try:
        _refuse_special(path, os.fstat(fd).st_mode)
        if hasattr(os, "O_NONBLOCK"):
            os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def file_kind(mode: int) -> str:
    """What an `os.lstat` mode is, in words: 'a regular file', 'a FIFO', 'a symbolic link'…"""
    if stat.S_ISREG(mode):
        return "a regular file"
    return next((name for test, name in _KINDS if test(mode)), "a special file")


def _refuse_special(path: Path, mode: int) -> None:
    if not stat.S_ISREG(mode):
        raise ReleaseError(f"{path}: {file_kind(mode)}, not a regular file; a release holds regular files only")


_KINDS = (
    (stat.S_ISLNK, "a symbolic link"),
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISDIR, "a folder"),
)


def folder_files(root: Path) -> tuple[set[str], list[str]]:
    """(relative paths of the regular files under `root`, relative paths of everything else: links, devices…).

    Never follows a symbolic link, so nothing outside `root` is listed or read.
    """
    files: set[str] = set()
    others: list[str] = []
    for folder, dirs, names in os.walk(root, followlinks=False):
        base = PurePosixPath(Path(folder).relative_to(root).as_posix())
        for name in list(dirs):
            if os.path.islink(os.path.join(folder, name)):
                others.append((base / name).as_posix())
                dirs.remove(name)
        for name in names:
            mode = os.lstat(os.path.join(folder, name)).st_mode
            (files.add if stat.S_ISREG(mode) else others.append)((base / name).as_posix())
    return files, sorted(others)


def write_checksums(root: Path, known: dict[str, str] | None = None, exclude: set[str] = frozenset()) -> int:
    """Write `SHA256SUMS` (sha256sum format, sorted paths) over every other file; returns the file count.

    `known` maps relative paths to digests already computed in this build (they are not read again);
    `exclude`: top-level names left out (the lock of the command writing the folder).
    """
    known = known or {}
    files, others = folder_files(root)
    files -= exclude
    if others:
        raise ReleaseError(f"{root}: holds links or special files {others[:3]}; a release holds regular files only")
    listed = sorted(files - {CHECKSUMS_NAME})
    atomic_write_text(root / CHECKSUMS_NAME, "".join(f"{known.get(r) or sha256_file(root / r)}  {r}\n" for r in listed))
    return len(listed)


def read_checksums(root: Path) -> dict[str, str]:
    """Relative path → SHA-256 from `root/SHA256SUMS`; `ReleaseError` names the line that is not
    'HEX  relative/path' with a path that stays inside the release."""
    path = Path(root) / CHECKSUMS_NAME
    try:
        with open_regular(path) as f:
            text = f.read().decode("utf-8")
    except FileNotFoundError:
        raise ReleaseError(f"{path} is missing; is {root} a release built by `cxrds build`?") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ReleaseError(f"{path}: unreadable ({e})") from None
    listed: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), 1):
        match = _LINE.fullmatch(line)
        if not match or not is_safe_relative(match[2]) or match[2] == CHECKSUMS_NAME:
            raise ReleaseError(f"{path} line {number}: expected '<sha256>  <relative path>', got {line[:80]!r}")
        if match[2] in listed:
            raise ReleaseError(f"{path} line {number}: {match[2]} is listed twice")
        listed[match[2]] = match[1]
    return listed


def checksum_problems(root: Path, known: dict[str, str] | None = None) -> tuple[int, list[str]]:
    """(files listed, problems): unlisted files, links, missing files and digests that differ.

    `known` maps relative paths to the SHA-256 of their bytes as the caller read them in this run (`verify`
    hashes each shard while reading it): those files are not read again."""
    known = known or {}
    root = Path(root)
    try:
        listed = read_checksums(root)
    except ReleaseError as e:
        return 0, [str(e)]
    files, others = folder_files(root)
    problems = [f"{name}: a link or special file; a release holds regular files only" for name in others]
    problems += [f"{name}: not listed in {CHECKSUMS_NAME}" for name in sorted(files - set(listed) - {CHECKSUMS_NAME})]
    for name, digest in sorted(listed.items()):
        if name not in files:
            problems.append(f"{name}: missing")
        elif (known.get(name) or sha256_file(root / name)) != digest:
            problems.append(f"{name}: SHA-256 differs")
    return len(listed), problems
