"""A folder's record of what `cxrds` wrote there (its marker, and the journal of a folder being written), and what
in the folder that record does not account for: the judgement `ownership` acts on.

A sealed folder's marker (`.cxrds-output.json`) lists every file with its size and SHA-256 and every folder; a
release or an export lists its files in `SHA256SUMS` instead, and its marker is one of them. While a command
writes, its marker says so and the journal names every path before it is written.
"""

from __future__ import annotations

import json
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

MARKER_NAME = ".cxrds-output.json"
JOURNAL_NAME = ".cxrds-journal"
LOCK_NAME = ".cxrds-lock"
KINDS = ("prepared", "run", "synthetic", "release", "export", "baselines", "report", "demo", "staging")
# Kinds whose file list is their SHA256SUMS (push uploads what it lists); their marker is one of the files.
CHECKSUMMED_KINDS = frozenset({"release", "export"})
WRITING, SEALED = "writing", "sealed"
_TMP_INFIX = ".tmp-"  # fileio.atomic_open's temporary names: .NAME.tmp-PID


@dataclass(frozen=True)
class Marker:
    """What a folder's marker says: its kind, the command, and (sealed) every file and folder it holds."""

    kind: str
    state: str = SEALED
    command: str = ""
    version: str = ""
    files: dict[str, dict[str, Any]] = field(default_factory=dict)  # path → {"size", "sha256"} or {"kind"}
    folders: tuple[str, ...] = ()
    pid: int | None = None

    def to_json(self) -> str:
        data: dict[str, Any] = {"kind": self.kind, "state": self.state, "written_by": self.command}
        data["version"] = self.version
        if self.kind not in CHECKSUMMED_KINDS:
            data["files"] = self.files
            data["folders"] = list(self.folders)
        if self.state == WRITING:
            data["pid"] = self.pid
        return json.dumps(data, indent=1, sort_keys=True) + "\n"


def read_marker(folder: Path) -> Marker | None:
    """The marker of `folder`, or None when it has none or it is not one of ours (by content)."""
    path = Path(folder) / MARKER_NAME
    try:
        if not stat.S_ISREG(os.lstat(path).st_mode):
            return None
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, RecursionError):
        return None
    if not isinstance(data, dict) or data.get("kind") not in KINDS or data.get("state") not in (WRITING, SEALED):
        return None
    files, folders = data.get("files", {}), data.get("folders", [])
    if not isinstance(files, dict) or not isinstance(folders, list):
        return None
    return Marker(
        data["kind"],
        data["state"],
        str(data.get("written_by", "")),
        str(data.get("version", "")),
        files,
        tuple(map(str, folders)),
        data.get("pid"),
    )


def marker_kind(folder: Path) -> str | None:
    """The kind recorded in `folder`'s marker, or None when it has no readable marker."""
    marker = read_marker(folder)
    return marker.kind if marker else None


def unaccounted(root: Path, kind: str) -> list[str]:
    """What in `root` a `kind` command cannot show it wrote ([] for an empty folder or one wholly its own)."""
    root = Path(root)
    marker = read_marker(root)
    if marker is None:  # named at the top level only: a folder of someone else's is not walked
        with os.scandir(root) as it:
            names = sorted(e.name for e in it if not _is_bookkeeping(e, owned=False))
        return [f"{name}: not written by cxrds" for name in names]
    entries = folder_entries(root)
    if marker.kind != kind:
        return [f"{MARKER_NAME}: a {marker.kind} folder's, not a {kind} one's"]
    if marker.state == SEALED and kind in CHECKSUMMED_KINDS:
        return _checksummed_problems(root, entries)
    journal = _read_journal(root) if marker.state == WRITING else set()
    allowed_dirs = set(marker.folders) | {p.rstrip("/") for p in journal}
    for name in [*marker.files, *journal]:
        allowed_dirs.update(p.as_posix() for p in PurePosixPath(name.rstrip("/")).parents if p.name)
    problems = []
    for name, what in sorted(entries.items()):
        if what == "dir":
            if name not in allowed_dirs:
                problems.append(f"{name}/: a folder not recorded")
        elif what.startswith("claim:"):
            listed = marker.files.get(name + "/", {}).get("kind")
            sub_kind = what.removeprefix("claim:")
            if listed != sub_kind and name + "/" not in journal:
                problems.append(f"{name}/: a {sub_kind} folder this one did not record")
            else:
                problems += [f"{name}/{p}" for p in unaccounted(root / name, sub_kind)]
        elif what != "file":
            problems.append(f"{name}: a link or special file")
        elif name in journal or _temporary_of(name, journal):
            continue
        elif name not in marker.files:
            problems.append(f"{name}: not written by cxrds")
        elif not _matches(root / name, marker.files[name]):
            problems.append(f"{name}: changed since cxrds wrote it")
    return problems


def _checksummed_problems(root: Path, entries: dict[str, str]) -> list[str]:
    """A sealed release or export: exactly the files its SHA256SUMS lists, the marker among them."""
    from cxr_dataset.checksums import CHECKSUMS_NAME, read_checksums
    from cxr_dataset.errors import ReleaseError
    from cxr_dataset.fileio import sha256_file

    try:
        listed = read_checksums(root)
    except ReleaseError as e:
        return [str(e)]
    if MARKER_NAME not in listed:
        return [f"{CHECKSUMS_NAME}: does not list {MARKER_NAME}"]
    dirs = {p.as_posix() for name in listed for p in PurePosixPath(name).parents if p.name}
    problems = []
    for name, what in sorted(entries.items()):
        if (what == "dir" and name in dirs) or name == CHECKSUMS_NAME:
            continue
        if what != "file" or name not in listed:
            problems.append(f"{name}: not listed in {CHECKSUMS_NAME}")
        elif sha256_file(root / name) != listed[name]:
            problems.append(f"{name}: changed since cxrds wrote it")
    return problems


def folder_entries(root: Path) -> dict[str, str]:
    """Relative path → "file", "dir", "claim:KIND" (a folder with its own marker: not entered) or "other".
    The folder's own marker and journal (when the marker is ours) and an empty lock file are bookkeeping."""
    out: dict[str, str] = {}
    owned = read_marker(root) is not None

    def walk(folder: Path, prefix: str) -> None:
        with os.scandir(folder) as it:
            for entry in it:
                name = prefix + entry.name
                if not prefix and _is_bookkeeping(entry, owned):
                    continue
                if entry.is_dir(follow_symlinks=False):
                    sub = read_marker(Path(entry.path))
                    if sub is not None:
                        out[name] = f"claim:{sub.kind}"
                        continue
                    out[name] = "dir"
                    walk(Path(entry.path), name + "/")
                else:
                    out[name] = "file" if entry.is_file(follow_symlinks=False) else "other"

    walk(Path(root), "")
    return out


def _is_bookkeeping(entry: os.DirEntry, owned: bool) -> bool:
    """The marker and journal of a folder we own, and an empty lock file (it holds nothing to lose)."""
    if entry.name not in (MARKER_NAME, JOURNAL_NAME, LOCK_NAME) or not entry.is_file(follow_symlinks=False):
        return False
    if entry.name == LOCK_NAME:
        return entry.stat(follow_symlinks=False).st_size == 0
    return owned


def _temporary_of(name: str, journal: set[str]) -> bool:
    """`name` is atomic_open's temporary for a journaled path (a killed writer's)."""
    folder, _, base = name.rpartition("/")
    if not base.startswith(".") or _TMP_INFIX not in base:
        return False
    target = base[1:].rpartition(_TMP_INFIX)[0]
    return (f"{folder}/{target}" if folder else target) in journal


def _matches(path: Path, recorded: dict[str, Any]) -> bool:
    from cxr_dataset.fileio import sha256_file

    try:
        size = recorded.get("size")
        return (size is None or path.stat().st_size == size) and sha256_file(path) == recorded.get("sha256")
    except OSError:
        return False


def _read_journal(root: Path) -> set[str]:
    try:
        text = (root / JOURNAL_NAME).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return set()
    return {line for line in text.splitlines() if line}
