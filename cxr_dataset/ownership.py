"""Which outputs a command may write into, and so replace: only those it made, judged by their content.

A command claims its output folder before it writes (`claimed_output`). The claim succeeds on a missing or
empty folder, and on a folder whose contents are exactly what a command of the same kind recorded there:

- a sealed folder's marker (`.cxrds-output.json`) lists every file with its size and SHA-256 and every
  folder; a release or an export lists its files in `SHA256SUMS` instead, and its marker is one of them;
- while a command writes, its marker says so and a journal beside it names every path before the path is
  written (`note_write`, which `fileio.atomic_open` calls), so a killed run's folder is still accounted for;
- a folder that holds its own marker (a stage folder inside the demo's) is one entry of its parent's list,
  and is judged by its own.

Anything else (a file not listed, a listed file whose bytes changed, an empty folder nobody recorded) is
refused with one line naming it, and nothing is touched. A folder another live command is writing into is
refused naming that command (an OS file lock, released when its process dies). `/`, the home folder, the
working directory and any folder that is, or holds, an input are always refused.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cxr_dataset.errors import OwnershipError
from cxr_dataset.output_record import (
    CHECKSUMMED_KINDS,
    JOURNAL_NAME,
    KINDS,
    LOCK_NAME,
    MARKER_NAME,
    SEALED,
    WRITING,
    Marker,
    folder_entries,
    read_marker,
    unaccounted,
)

_ACTIVE_ENV = "CXRDS_WRITING_INTO"  # the folders this process (and its children) is writing into
_SHOWN = 3  # paths named in a refusal


def check_output(out: Path, kind: str, inputs: Iterable[Path] = ()) -> None:
    """Raise `OwnershipError` unless a `kind` command may write into (and replace files of) `out`."""
    if kind not in KINDS:
        raise ValueError(f"unknown output kind {kind!r}")
    path = Path(out)
    _refuse_protected(path, inputs)
    if not path.exists() and not path.is_symlink():
        return
    if path.is_symlink() or not path.is_dir():
        raise OwnershipError(f"{out}: exists and is not a folder; name a new folder for the output")
    marker = read_marker(path)
    if marker is not None and marker.kind != kind:
        raise OwnershipError(f"{out}: was written by `cxrds` as a {marker.kind} folder, not a {kind} one; use another")
    _raise_if_busy(path, marker)
    problems = unaccounted(path, kind)
    if problems:
        shown = "; ".join(problems[:_SHOWN]) + (
            f" (and {len(problems) - _SHOWN} more)" if len(problems) > _SHOWN else ""
        )
        raise OwnershipError(
            f"{out}: holds files `cxrds` did not write ({shown}); it replaces only folders whose whole contents "
            "it made. Name a new or empty folder, or remove this one yourself"
        )


def _refuse_protected(path: Path, inputs: Iterable[Path]) -> None:
    where = path.resolve()
    protected = {Path("/").resolve(): "the root folder", Path.home().resolve(): "your home folder"}
    protected[Path.cwd().resolve()] = "the working directory"
    if where in protected:
        raise OwnershipError(f"{path}: refusing to write into {protected[where]}; name a new folder for the output")
    for source in inputs:
        source = Path(source).resolve()
        if where == source or where in source.parents or source in where.parents:
            raise OwnershipError(
                f"{path}: is an input of this command ({source}), holds one or lies inside one; "
                "name a folder outside the inputs for the output"
            )


def _raise_if_busy(path: Path, marker: Marker | None) -> None:
    """Refuse a folder whose marker says a command is writing into it and whose lock that command holds."""
    if marker is None or marker.state != WRITING:
        return
    lock = _try_lock(path)
    if lock is None:
        who = f"`{marker.command}`" + (f" (pid {marker.pid})" if marker.pid else "")
        raise OwnershipError(f"{path}: {who} is writing here now (it holds {path / LOCK_NAME}); wait for it to finish")
    lock.release()


def _try_lock(folder: Path):
    from filelock import FileLock, Timeout

    lock = FileLock(folder / LOCK_NAME, timeout=0, mode=0o644)
    try:
        lock.acquire()
    except Timeout:
        return None
    return lock


@dataclass
class Claim:
    """A folder a command is writing into: `seal` records what it holds once the command has finished."""

    root: Path
    kind: str
    command: str
    previous: Marker | None

    def seal(self) -> None:
        """Record every file (size, SHA-256) and folder, and drop the journal: the folder is now complete.
        A release or an export is sealed by its SHA256SUMS instead; a staging folder is never sealed."""
        from cxr_dataset import __version__
        from cxr_dataset.fileio import atomic_write_text

        if self.kind in CHECKSUMMED_KINDS:
            self.seal_checksummed(self.kind)
            return
        if self.kind == "staging":
            return
        files: dict[str, dict[str, Any]] = {}
        folders = []
        for name, what in sorted(folder_entries(self.root).items()):
            if what == "dir":
                folders.append(name)
            elif what.startswith("claim:"):
                files[name + "/"] = {"kind": what.removeprefix("claim:")}
            elif what == "file":
                files[name] = _file_record(self.root / name)
        marker = Marker(self.kind, SEALED, self.command, __version__, files, tuple(folders))
        atomic_write_text(self.root / MARKER_NAME, marker.to_json())
        (self.root / JOURNAL_NAME).unlink(missing_ok=True)

    def seal_checksummed(self, kind: str, known: dict[str, str] | None = None) -> int:
        """Make the folder a sealed `kind` (release or export): its marker, then `SHA256SUMS` over every file,
        the marker included (`known`: digests already computed). Returns the number of files listed."""
        from cxr_dataset import __version__
        from cxr_dataset.checksums import write_checksums
        from cxr_dataset.fileio import atomic_write_text

        marker = Marker(kind, SEALED, self.command, __version__).to_json()
        with _paused():
            atomic_write_text(self.root / MARKER_NAME, marker)
            (self.root / JOURNAL_NAME).unlink(missing_ok=True)
            return write_checksums(self.root, known=known, exclude={LOCK_NAME})


def _file_record(path: Path) -> dict[str, Any]:
    from cxr_dataset.fileio import sha256_file

    return {"sha256": sha256_file(path), "size": path.stat().st_size}


@contextmanager
def claimed_output(
    out: Path, kind: str, inputs: Iterable[Path] = (), *, command: str = "", lock: bool = True
) -> Iterator[Claim]:
    """Claim `out` for a `kind` command for the duration of the block, and seal it when the block succeeds.

    While the block runs the folder is locked (a second command is refused by name), its marker says it is
    being written, and every path written under it through `fileio` is journaled first. On failure the
    marker and journal stay, so a rerun may take the folder up again. `lock=False` for a folder a lock
    beside it already guards (a build's staging folder, which is renamed into the release)."""
    check_output(out, kind, inputs)
    root = Path(out)
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OwnershipError(f"{out}: cannot create the output folder ({e.strerror or e})") from None
    held = _try_lock(root) if lock else None
    if lock and held is None:
        _raise_if_busy(root, read_marker(root) or Marker(kind, WRITING, "another cxrds command"))
        raise OwnershipError(f"{out}: another command holds {root / LOCK_NAME}; wait for it to finish")
    try:
        previous = read_marker(root)
        # A folder left writing by a killed run keeps its journal, and what the journal names stays claimable.
        if previous is None or previous.state != WRITING:
            (root / JOURNAL_NAME).unlink(missing_ok=True)
        _write_writing_marker(root, kind, command or f"cxrds {kind}", previous)
        note_claim(root)
        claim = Claim(root, kind, command or f"cxrds {kind}", previous)
        with writing_into(root):
            yield claim
            claim.seal()
    finally:
        if held is not None:
            (root / LOCK_NAME).unlink(missing_ok=True)  # removed while held: filelock retries on a removed file
            held.release()


def _write_writing_marker(root: Path, kind: str, command: str, previous: Marker | None) -> None:
    from cxr_dataset.fileio import atomic_write_text

    files = previous.files if previous else {}
    folders = previous.folders if previous else ()
    if previous is not None and previous.kind in CHECKSUMMED_KINDS and previous.state == SEALED:
        from cxr_dataset.checksums import CHECKSUMS_NAME, read_checksums

        files = {name: {"sha256": digest} for name, digest in read_checksums(root).items()}
        files[CHECKSUMS_NAME] = _file_record(root / CHECKSUMS_NAME)
    marker = Marker(kind, WRITING, command, "", files, folders, os.getpid())
    with _paused():
        atomic_write_text(root / MARKER_NAME, marker.to_json())


def note_claim(root: Path) -> None:
    """Record, in the claim that encloses `root` (the demo's, around a stage), that `root` is a folder of its own."""
    note_write(Path(root) / "", folder=True)


@contextmanager
def writing_into(root: Path) -> Iterator[None]:
    """Journal every write under `root` made by this process and the processes it starts, for the block."""
    active = os.environ.get(_ACTIVE_ENV, "")
    os.environ[_ACTIVE_ENV] = os.pathsep.join(filter(None, [active, os.path.abspath(root)]))
    try:
        yield
    finally:
        if active:
            os.environ[_ACTIVE_ENV] = active
        else:
            os.environ.pop(_ACTIVE_ENV, None)


@contextmanager
def _paused() -> Iterator[None]:
    active = os.environ.pop(_ACTIVE_ENV, None)
    try:
        yield
    finally:
        if active is not None:
            os.environ[_ACTIVE_ENV] = active


def note_write(path: Path, *, folder: bool = False) -> None:
    """Journal `path` in the innermost folder being written into that holds it (before it is written)."""
    active = os.environ.get(_ACTIVE_ENV)
    if not active:
        return
    target = os.path.abspath(path)
    roots = [r for r in active.split(os.pathsep) if target.startswith(r + os.sep) and target != r]
    if not roots:
        return
    root = max(roots, key=len)
    name = os.path.relpath(target, root).replace(os.sep, "/") + ("/" if folder else "")
    fd = os.open(os.path.join(root, JOURNAL_NAME), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (name + "\n").encode("utf-8"))  # one write per line: whole lines even from several processes
    finally:
        os.close(fd)


def remove_owned(folder: Path, kind: str) -> None:
    """Remove `folder` if it exists, after `check_output` says a `kind` command made all of it (or it is empty)."""
    folder = Path(folder)
    if folder.exists() or folder.is_symlink():
        check_output(folder, kind)
        shutil.rmtree(folder)


def check_output_file(path: Path, kind: str, inputs: Iterable[Path] = ()) -> None:
    """Refuse a single-file output that would replace a file a `kind` command did not write, land inside an
    input, or whose folder does not exist."""
    path = Path(path)
    _refuse_protected(path, inputs)
    if not path.parent.is_dir():
        raise OwnershipError(f"{path}: its folder {path.parent} does not exist; create it or name another file")
    if not path.exists() and not path.is_symlink():
        return
    if path.is_symlink() or not path.is_file():
        raise OwnershipError(f"{path}: exists and is not a regular file; name a new file")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, RecursionError):
        data = None
    if not isinstance(data, dict) or data.get("cxrds_output") != kind:
        raise OwnershipError(f"{path}: exists and was not written by `cxrds` as a {kind} file; name a new file")


def write_output_file(path: Path, kind: str, data: dict[str, Any], inputs: Iterable[Path] = ()) -> None:
    """Write `data` as JSON to `path`, marked as a `kind` file, after `check_output_file` allows it."""
    from cxr_dataset.fileio import atomic_write_text

    check_output_file(path, kind, inputs)
    atomic_write_text(Path(path), json.dumps({"cxrds_output": kind, **data}, indent=2, sort_keys=True) + "\n")
