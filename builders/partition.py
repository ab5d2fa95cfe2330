"""How a split is cut into files: equal parts (sizes differ by at most one row), a multiple of 8 of them
where the data allow, so that ranks and workers of 2, 4 or 8 each get whole files of the same size."""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator, Sequence
from typing import TypeVar

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


def stream_parts(items: Iterator[T], sizes: Sequence[int]) -> Iterator[Iterator[T]]:
    """Consecutive parts of `sizes` items from one iterator; each part must be used up before the next."""
    for size in sizes:
        yield itertools.islice(items, size)
