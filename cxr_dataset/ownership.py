"""Which output folders a command may write into, and so replace: only those it made.

Every command that writes a folder claims it first. A claim succeeds on a missing or empty folder (and
marks it with a small JSON file), on a folder marked by the same kind of command, and on one that carries
that kind's own signature files (outputs made before markers existed); it refuses everything else, and
always refuses `/`, the home folder, the working directory and any folder that is, or holds, an input.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterable
from pathlib import Path

from cxr_dataset.errors import OwnershipError
from cxr_dataset.fileio import atomic_write_text

MARKER_NAME = ".cxrds-output.json"

# Files that identify a folder of each kind written before markers existed (a release carries no marker:
# it holds exactly what its SHA256SUMS lists).
SIGNATURES: dict[str, tuple[str, ...]] = {
    "prepared": ("manifest.parquet",),
    "run": ("config.json",),
    "synthetic": ("provenance.parquet",),
    "release": ("README.md", "SHA256SUMS"),
    "export": ("model.json", "SHA256SUMS"),
    "baselines": ("metrics.json",),
    "report": ("report.md",),
    "demo": ("prepared/manifest.parquet",),
    "staging": (),  # a build's scratch folder beside its release
}


def check_output(out: Path, kind: str, inputs: Iterable[Path] = ()) -> None:
    """Raise `OwnershipError` unless a `kind` command may write into (and replace files of) `out`."""
    if kind not in SIGNATURES:
        raise ValueError(f"unknown output kind {kind!r}")
    path = Path(out)
    where = path.resolve()
    protected = {Path("/").resolve(): "the root folder", Path.home().resolve(): "your home folder"}
    protected[Path.cwd().resolve()] = "the working directory"
    if where in protected:
        raise OwnershipError(f"{out}: refusing to write into {protected[where]}; name a new folder for the output")
    for source in inputs:
        source = Path(source).resolve()
        if where == source or where in source.parents:
            raise OwnershipError(
                f"{out}: is an input of this command ({source}) or holds one; name a new folder for the output"
            )
    if not path.exists() and not path.is_symlink():
        return
    if path.is_symlink() or not path.is_dir():
        raise OwnershipError(f"{out}: exists and is not a folder; name a new folder for the output")
    owner = marker_kind(path)
    if owner == kind:
        return
    if owner is not None:
        raise OwnershipError(f"{out}: was written by `cxrds` as a {owner} folder, not a {kind} one; use another")
    if not any(path.iterdir()):
        return
    signature = SIGNATURES[kind]
    if signature and all((path / name).is_file() for name in signature):
        return
    raise OwnershipError(
        f"{out}: holds files `cxrds` did not write; it replaces only folders it made. "
        "Name a new or empty folder, or remove this one yourself"
    )


def claim_output(out: Path, kind: str, inputs: Iterable[Path] = ()) -> Path:
    """`check_output`, then create `out` and mark it as a `kind` folder (a release is left unmarked)."""
    check_output(out, kind, inputs)
    path = Path(out)
    try:
        path.mkdir(parents=True, exist_ok=True)
        if kind != "release" and marker_kind(path) is None:
            atomic_write_text(path / MARKER_NAME, json.dumps({"kind": kind, "written_by": "cxrds"}) + "\n")
    except OSError as e:
        raise OwnershipError(f"{out}: cannot create the output folder ({e.strerror or e})") from None
    return path


def marker_kind(folder: Path) -> str | None:
    """The kind recorded in `folder`'s marker, or None when it has no readable marker."""
    try:
        data = json.loads((Path(folder) / MARKER_NAME).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    kind = data.get("kind") if isinstance(data, dict) else None
    return kind if kind in SIGNATURES else None


def remove_owned(folder: Path, kind: str) -> None:
    """Remove `folder` if it exists, after `check_output` says a `kind` command made it (or it is empty)."""
    folder = Path(folder)
    if folder.exists() or folder.is_symlink():
        check_output(folder, kind)
        shutil.rmtree(folder)
