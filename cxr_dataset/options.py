"""Checks of numeric options shared by several commands, made before any work starts."""

from __future__ import annotations

import os

from cxr_dataset.errors import ConfigError

MAX_WORKERS_PER_CORE = 4  # more processes than this per core only add memory (each holds its own decoder)


def check_workers(workers: int, name: str = "workers", *, zero_means_auto: bool = False) -> int:
    """`workers` if it is 1..4×cores (or 0 when `zero_means_auto`); `ConfigError` otherwise."""
    limit = MAX_WORKERS_PER_CORE * (os.cpu_count() or 1)
    low = 0 if zero_means_auto else 1
    if not low <= workers <= limit:
        raise ConfigError(f"{name} must be in {low}..{limit} on this machine ({os.cpu_count()} cores), got {workers}")
    return workers


def check_fraction(value: float, name: str) -> float:
    """`value` if it is a share in 0..1; `ConfigError` otherwise."""
    if not 0.0 <= value <= 1.0:
        raise ConfigError(f"{name} must be between 0 and 1, got {value}")
    return value


MAX_SEED = 2**32 - 1  # numpy's and torch's generators both take 0..2**32-1


def check_seed(seed: int, name: str = "seed") -> int:
    """`seed` if it is in 0..2**32-1 (what every random generator here accepts); `ConfigError` otherwise."""
    if not 0 <= seed <= MAX_SEED:
        raise ConfigError(f"{name} must be in 0..{MAX_SEED}, got {seed}")
    return seed
