"""Numeric precision of the generator: `auto` picks bf16 where the hardware runs it natively, fp32 elsewhere.

bf16 autocast halves the generator's cost on GPUs and on CPUs with native bf16 (AVX-512 BF16 or AMX), but on
CPUs without it PyTorch falls back to scalar kernels that run training several times slower than fp32.
Runs record the resolved value (`bf16` or `fp32`), never `auto`.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable

import torch

from cxr_dataset.errors import ConfigError
from generator.config import PRECISIONS

AUTO = "auto"
RESOLVED = tuple(p for p in PRECISIONS if p != AUTO)


class SlowPrecisionWarning(UserWarning):
    """bf16 was asked for on a device that emulates it."""


def cpu_has_native_bf16() -> bool:
    """True when oneDNN has bf16 instructions on this CPU (AVX-512 BF16 or AMX)."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def native_bf16(device: torch.device, cpu_check: Callable[[], bool] | None = None) -> bool:
    """Whether `device` computes bf16 natively (fast), rather than emulating it.

    `cpu_check` replaces `cpu_has_native_bf16` (tests pass one to stand in for the other kind of CPU).
    """
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported(including_emulation=False)
    if device.type == "cpu":
        return (cpu_check or cpu_has_native_bf16)()
    return False


def resolve_precision(requested: str, device: torch.device, cpu_check: Callable[[], bool] | None = None) -> str:
    """`auto` → bf16 where `device` has native bf16, else fp32; bf16/fp32 pass through (bf16 warns if slow)."""
    if requested not in PRECISIONS:
        raise ConfigError(f"precision must be one of {list(PRECISIONS)}, got {requested!r}")
    native = native_bf16(device, cpu_check)
    if requested == AUTO:
        return "bf16" if native else "fp32"
    if requested == "bf16" and not native:
        warnings.warn(
            f"bf16 on this {device.type} is emulated, not native: training will be several times slower than "
            "fp32; use --precision auto or fp32",
            SlowPrecisionWarning,
            stacklevel=2,
        )
    return requested


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    """bf16 autocast for a resolved `bf16`, nothing for `fp32`."""
    if precision not in RESOLVED:
        raise ConfigError(f"resolve precision {precision!r} before running (one of {list(RESOLVED)})")
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()
