"""Saved network weights must be finite: a run that diverged (NaN or ±inf in a tensor) is neither translated,
exported nor pushed. One check for all three, upstream of `generator` and `builders` (torch is imported only
when a check runs)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from cxr_dataset.errors import CheckpointError

if TYPE_CHECKING:
    import torch


def check_finite(tensors: Mapping[str, torch.Tensor] | Iterable[tuple[str, torch.Tensor]], where: str) -> None:
    """`CheckpointError` naming the first floating-point tensor holding NaN or ±inf; `where` names its file."""
    import torch

    for name, value in tensors.items() if isinstance(tensors, Mapping) else tensors:
        if value.is_floating_point() and not torch.isfinite(value).all():
            raise CheckpointError(f"{where}: tensor {name} holds NaN or infinite values; the run diverged")


def check_finite_file(path: Path, prefixes: tuple[str, ...] = ("",)) -> None:
    """`check_finite` over a safetensors file's tensors whose names start with one of `prefixes`, one tensor in
    memory at a time."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(path, framework="pt") as f:
            names = [name for name in f.keys() if name.startswith(prefixes)]  # noqa: SIM118 (no __iter__)
            check_finite(((name, f.get_tensor(name)) for name in names), str(path))
    except (SafetensorError, OSError) as e:
        raise CheckpointError(f"{path}: not a readable safetensors file ({e})") from None
