"""How a split is cut into files: equal parts (sizes differ by at most one row), a multiple of 8 of them
where the data allow, so that ranks and workers of 2, 4 or 8 each get whole files of the same size."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TypeVar

PART_MULTIPLE = 8

T = TypeVar("T")


def part_count(n: int, per_part: int) -> int:
    """Parts for `n` items: about `per_part` each, rounded up to a multiple of 8 when n allows."""
    wanted = max(1, math.ceil(n / per_part))
    if n >= PART_MULTIPLE:
        wanted = min(math.ceil(wanted / PART_MULTIPLE) * PART_MULTIPLE, n // PART_MULTIPLE * PART_MULTIPLE)
    return wanted


def equal_parts(items: Sequence[T], per_part: int) -> list[Sequence[T]]:
    """`items` in `part_count` consecutive parts whose lengths differ by at most one."""
    count = part_count(len(items), per_part)
    return [items[i * len(items) // count : (i + 1) * len(items) // count] for i in range(count)]
