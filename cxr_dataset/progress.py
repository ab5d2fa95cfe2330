"""How long-running library functions report progress without knowing about the terminal."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Protocol


class ProgressFn(Protocol):
    def __call__(self, stage: str, done: int, total: int, info: str = "") -> None:
        """Report that `done` of `total` items of `stage` are finished; `info` is a short status."""


def no_progress(stage: str, done: int, total: int, info: str = "") -> None:
    """The default callback: report nothing."""


class PlainProgress:
    """Progress as plain text lines, for logs, CI, nohup and SLURM where no bar can draw.

    One line when a stage starts, then at most one every `interval` seconds, and one when it finishes:
    ``train: 120/400 (30%) 3.2/s, ETA 1 min 28 s · loss 0.41``.
    """

    def __init__(
        self, write: Callable[[str], None], interval: float = 10.0, clock: Callable[[], float] | None = None
    ) -> None:
        self.write, self.interval = write, interval
        self.clock = clock or time.monotonic
        self._started: dict[str, tuple[float, int]] = {}  # stage → (time, done) of its first report
        self._last: dict[str, float | None] = {}  # None once the stage's final line is out

    def __call__(self, stage: str, done: int, total: int, info: str = "") -> None:
        now, finished = self.clock(), done >= total
        if stage in self._started and self._last[stage] is None:  # finished earlier
            if finished:
                return
            del self._started[stage]  # the stage runs again (e.g. the second task's training)
        if stage not in self._started:
            self._started[stage] = (now, done)
        elif not finished and now - self._last[stage] < self.interval:
            return
        self._last[stage] = None if finished else now
        self.write(self.line(stage, done, total, info, now))

    def line(self, stage: str, done: int, total: int, info: str, now: float) -> str:
        began, first = self._started[stage]
        elapsed = now - began
        text = f"{stage}: {done}/{total}" + (f" ({100 * done // total}%)" if total else "")
        rate = (done - first) / elapsed if elapsed > 0 and done > first else 0.0
        if rate:
            text += f" {rate:.1f}/s"
            if done < total:
                text += f", ETA {duration((total - done) / rate)}"
        if done >= total:
            text += f", done in {duration(elapsed)}"
        return text + (f" · {info}" if info else "")


def duration(seconds: float) -> str:
    """3 s, 1 min 28 s, 2 h 05 min."""
    whole = round(seconds)
    if whole < 60:
        return f"{whole} s"
    if whole < 3600:
        return f"{whole // 60} min {whole % 60:02d} s"
    return f"{whole // 3600} h {whole % 3600 // 60:02d} min"
