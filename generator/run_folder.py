"""The training run folder (`cxrds train`): its file names, and the small readers the other stages use.

    RUN/config.json                                   the resolved config
    RUN/log.jsonl                                     one JSON object per logged step (appended to)
    RUN/checkpoints/step-NNNNNNNNN.{safetensors,json} the latest checkpoints (`generator.checkpoint`)
    RUN/samples/step-NNNNNNNNN.png                    sample grids

`generator.train` writes it; `generator.checkpoint` finds its checkpoints, `generator.export` its latest
sample grid, the benchmarks its log. Nothing else spells these names.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

CONFIG_NAME = "config.json"
LOG_NAME = "log.jsonl"
CHECKPOINTS_DIR = "checkpoints"
SAMPLES_DIR = "samples"
CHECKPOINT_PATTERN = "step-*.json"  # for messages: what a run's checkpoints look like
_STEP_JSON = re.compile(r"step-(\d{9})\.json$")


def step_stem(step: int) -> str:
    """A step's file name without suffix: ``step-NNNNNNNNN`` (nine digits, so names sort by step)."""
    return f"step-{step:09d}"


def checkpoint_base(run: Path, step: int) -> Path:
    """``RUN/checkpoints/step-NNNNNNNNN``: add ``.safetensors`` or ``.json``."""
    return Path(run) / CHECKPOINTS_DIR / step_stem(step)


def sample_path(run: Path, step: int) -> Path:
    return Path(run) / SAMPLES_DIR / f"{step_stem(step)}.png"


def checkpoint_files(folder: Path) -> list[Path]:
    """Checkpoint JSON files directly in `folder` (a run's checkpoints folder), oldest step first."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if _STEP_JSON.search(p.name))


def run_checkpoints(run: Path) -> list[Path]:
    """A run folder's checkpoint JSON files, oldest step first."""
    return checkpoint_files(Path(run) / CHECKPOINTS_DIR)


def has_checkpoints(run: Path) -> bool:
    return any((Path(run) / CHECKPOINTS_DIR).glob(CHECKPOINT_PATTERN))


def latest_sample(run: Path) -> Path | None:
    """The run's latest sample grid, or None when it has none."""
    found = sorted((Path(run) / SAMPLES_DIR).glob("step-*.png"))
    return found[-1] if found else None


def run_of_checkpoint(json_path: Path) -> Path:
    """The run folder a checkpoint's JSON lies in (``RUN/checkpoints/step-….json`` → ``RUN``)."""
    return Path(json_path).parent.parent


def read_log(run: Path) -> list[dict[str, Any]]:
    """The run's log: one dict per logged step, in order."""
    return [json.loads(line) for line in (Path(run) / LOG_NAME).read_text().splitlines()]
