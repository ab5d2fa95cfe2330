"""How a split is cut into files: equal parts (sizes differ by at most one row), a multiple of 8 of them
where the data allow, so that ranks and workers of 2, 4 or 8 each get whole files of the same size; and
`PartFiles`, what both formats' writers share: files of such parts, written as samples arrive."""

from __future__ import annotations

import math
from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any, TypeVar

from cxr_dataset.fileio import HashingWriter, atomic_open

PART_MULTIPLE = 8

T = TypeVar("T")


def part_count(n: int, per_part: int) -> int:
    """Parts for `n` items: about `per_part` each, rounded up to a multiple of 8 when n allows."""
    wanted = max(1, math.ceil(n / per_part))
    if n >= PART_MULTIPLE:
        wanted = min(math.ceil(wanted / PART_MULTIPLE) * PART_MULTIPLE, n // PART_MULTIPLE * PART_MULTIPLE)
    return wanted


def part_sizes(n: int, per_part: int) -> list[int]:
    """The lengths of `equal_parts`: `part_count` consecutive parts that differ by at most one."""
    count = part_count(n, per_part)
    return [(i + 1) * n // count - i * n // count for i in range(count)]


def equal_parts(items: Sequence[T], per_part: int) -> list[Sequence[T]]:
    """`items` in `part_count` consecutive parts whose lengths differ by at most one."""
    parts, start = [], 0
    for size in part_sizes(len(items), per_part):
        parts.append(items[start : start + size])
        start += size
    return parts


def part_bounds(sizes: Sequence[int]) -> list[int]:
    """Where each part starts, and where the last ends: [0, sizes[0], sizes[0] + sizes[1], ..., sum]."""
    bounds = [0]
    for size in sizes:
        bounds.append(bounds[-1] + size)
    return bounds


class PartFiles:
    """The files of one config's split, cut into parts of `sizes`, written as samples arrive (`add`).

    This writer makes the files numbered in `parts` (another process may make the others) from their samples
    in order, each through `fileio.atomic_open`: whole under its name once its last sample is in, never if the
    samples stop early. Use it as a context manager. A subclass says where a file goes and how it begins,
    takes a sample and ends; `out` hashes what passes.
    """

    md5 = False  # whether `out` also computes an MD5

    def __init__(self, sizes: list[int], parts: range | None = None) -> None:
        self.sizes = sizes  # of every part of the split, written here or not
        self.parts = range(len(sizes)) if parts is None else parts
        self._todo = iter(self.parts)
        self._file: ExitStack | None = None
        self._index, self._left = -1, 0

    def path(self, index: int) -> Path:
        raise NotImplementedError

    def begin(self, file: ExitStack, out: HashingWriter) -> None:
        """Start a file; a writer over `out` entered into `file` is closed before `out` is flushed."""

    def write(self, row: dict[str, Any], data: bytes) -> None:
        raise NotImplementedError

    def end(self) -> None:
        """What a file needs after its last sample, before it is closed."""

    def finished(self, index: int, path: Path, out: HashingWriter) -> None:
        """Record a file that is now whole under its name."""

    def add(self, row: dict[str, Any], data: bytes) -> None:
        if self._file is None:
            index = next(self._todo, None)
            if index is None:
                raise ValueError(f"more samples than parts {self.parts.start}..{self.parts.stop - 1} hold")
            self._file, self._index, self._left = ExitStack(), index, self.sizes[index]
            self.out = HashingWriter(self._file.enter_context(atomic_open(self.path(index))), md5=self.md5)
            self._file.callback(self.out.flush)
            self.begin(self._file, self.out)
        self.write(row, data)
        self._left -= 1
        if self._left == 0:
            self.end()
            self._file.close()  # fsynced, then renamed to its name
            self._file = None
            self.finished(self._index, self.path(self._index), self.out)

    def close(self) -> None:
        """Check that every file of `parts` is whole; a file left open is removed."""
        if self._file is not None:
            index, written = self._index, self.sizes[self._index] - self._left
        else:
            index, written = next(self._todo, None), 0
        if index is None:
            return
        error = ValueError(f"{self.path(index).name}: the stream ended after {written} of {self.sizes[index]} samples")
        self._abort(ValueError, error, None)
        raise error

    def _abort(self, *exc: Any) -> None:
        if self._file is not None:
            self._file.__exit__(*exc)  # its temporary is removed
            self._file = None

    def __enter__(self) -> PartFiles:
        return self

    def __exit__(self, *exc: Any) -> None:
        if exc[0] is None:
            self.close()
        else:
            self._abort(*exc)
