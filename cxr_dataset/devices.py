"""The device a figure was measured on, in words: GPU name, or the CPU model and its vector extension."""

from __future__ import annotations

from pathlib import Path

import torch


def describe(device: torch.device | str = "cpu") -> str:
    """'NVIDIA H200' or 'AMD EPYC 7B13 (AVX2)': what a reader needs to compare a timing or a result."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{cpu_model()} ({torch.backends.cpu.get_cpu_capability()})"


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform

    return platform.processor() or platform.machine() or "unknown CPU"
