"""Worker processes that die with their parent: a SIGKILLed command leaves no decoders or encoders behind."""

from __future__ import annotations

import contextlib
import ctypes
import signal
import sys
from concurrent.futures import ProcessPoolExecutor

_PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """Linux: ask the kernel to SIGKILL this process when its parent dies (elsewhere a no-op)."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def process_pool(workers: int) -> ProcessPoolExecutor | contextlib.nullcontext[None]:
    """A process pool whose workers die with this process, or a null context ('run here') when workers <= 1."""
    if workers <= 1:
        return contextlib.nullcontext(None)
    return ProcessPoolExecutor(max_workers=workers, initializer=die_with_parent)
