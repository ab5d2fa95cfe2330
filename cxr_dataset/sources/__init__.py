"""Source readers, one module per dataset, looked up by the kind the CLI names (``KIND=PATH``)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from cxr_dataset.errors import SourceError
from cxr_dataset.sources.base import Source, SourceImage
from cxr_dataset.sources.folder import FolderSource
from cxr_dataset.sources.phantom import PhantomSource

# kind → factory(argument, seed). Real readers join this table in their own modules.
SOURCE_KINDS: dict[str, Callable[[str, int], Source]] = {
    "phantom": lambda arg, seed: PhantomSource.from_spec(arg, seed=seed),
    "folder": lambda arg, seed: FolderSource(Path(arg)),
}


def open_source(spec: str, seed: int = 0) -> Source:
    """Open ``KIND=PATH`` (e.g. ``phantom=40``); raises `SourceError` naming the valid kinds."""
    kind, sep, arg = spec.partition("=")
    if not sep or not arg:
        raise SourceError(f"source {spec!r}: expected KIND=PATH, e.g. 'phantom=40'")
    if kind not in SOURCE_KINDS:
        raise SourceError(f"source {spec!r}: kind must be one of {sorted(SOURCE_KINDS)}, got {kind!r}")
    return SOURCE_KINDS[kind](arg, seed)


__all__ = ["SOURCE_KINDS", "FolderSource", "PhantomSource", "Source", "SourceImage", "open_source"]
