"""How long-running library functions report progress without knowing about the terminal."""

from __future__ import annotations

from typing import Protocol


class ProgressFn(Protocol):
    def __call__(self, stage: str, done: int, total: int, info: str = "") -> None:
        """Report that `done` of `total` items of `stage` are finished; `info` is a short status."""


def no_progress(stage: str, done: int, total: int, info: str = "") -> None:
    """The default callback: report nothing."""
