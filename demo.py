"""The whole pipeline end to end on phantom data: what `cxrds demo` runs.

The only module besides `cli` that imports all three packages: it composes the stages, it adds none.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from pathlib import Path

from builders.release import BuildResult, build_release
from cxr_dataset.errors import ConfigError
from cxr_dataset.loading import load_release, wds_release
from cxr_dataset.ownership import claimed_output, remove_owned
from cxr_dataset.prepare import PrepareConfig, PrepareResult, prepare
from cxr_dataset.progress import ProgressFn, no_progress
from cxr_dataset.schema import TASKS
from cxr_dataset.sources import open_source
from cxr_dataset.sources.phantom import DEMO_SPEC
from cxr_dataset.sources.phantom import MAX_SIZE as PHANTOM_MAX_SIZE
from cxr_dataset.sources.phantom import MIN_SIZE as PHANTOM_MIN_SIZE
from generator.config import Preset, TrainConfig, load_preset
from generator.cyclegan import check_input_size
from generator.train import TrainResult, train
from generator.translate import TranslateResult, translate
from validation_tools.baselines import BaselinesConfig, run_baselines
from validation_tools.report import write_report
from validation_tools.validate import ValidationReport, validate_release

RELEASE_NAME = "covid-synthetic-cxr"


@dataclass
class DemoResult:
    out: Path
    release: Path
    prepared: PrepareResult
    trained: dict[str, TrainResult] = field(default_factory=dict)
    translated: dict[str, TranslateResult] = field(default_factory=dict)
    built: BuildResult | None = None
    validation: ValidationReport | None = None
    hf_rows: int = 0
    baselines: list[dict] = field(default_factory=list)
    report: Path | None = None
    wds_samples: int = 0
    stage_seconds: dict[str, float] = field(default_factory=dict)


def run_demo(
    out: Path,
    *,
    size: int = 64,
    phantom: str = DEMO_SPEC,
    epochs: int | None = None,
    seed: int = 0,
    workers: int = 2,
    progress: ProgressFn = no_progress,
) -> DemoResult:
    """prepare → train (both tasks) → translate → build → validate → baselines → report → load, under `out`."""
    # Every option is checked before the folder is claimed.
    if not PHANTOM_MIN_SIZE <= size <= PHANTOM_MAX_SIZE:
        raise ConfigError(f"size must be in {PHANTOM_MIN_SIZE}..{PHANTOM_MAX_SIZE} pixels (the phantom's), got {size}")
    check_input_size(_train_config(size, seed, epochs).model, size)
    open_source(f"phantom={phantom}")
    # The demo owns this folder and starts each stage's folder afresh.
    with claimed_output(out, "demo", command="cxrds demo") as claim:
        return _run_demo(claim.root, size, phantom, epochs, seed, workers, progress)


def _run_demo(
    out: Path, size: int, phantom: str, epochs: int | None, seed: int, workers: int, progress: ProgressFn
) -> DemoResult:
    clock = time.perf_counter()
    seconds: dict[str, float] = {}

    def lap(stage: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        seconds[stage] = seconds.get(stage, 0.0) + now - clock
        clock = now

    prepared = out / "prepared"
    remove_owned(prepared, "prepared")
    result = DemoResult(
        out,
        out / "release" / RELEASE_NAME,
        prepare(
            [f"phantom={phantom}"], prepared, PrepareConfig(size=size, seed=seed, workers=workers), progress=progress
        ),
    )
    lap("prepare")
    cfg = _train_config(size, seed, epochs)
    for task in TASKS:
        run = out / "runs" / task
        remove_owned(run, "run")  # start each run afresh
        result.trained[task] = train(prepared, task, run, cfg, progress=progress)
        lap("train")
        result.translated[task] = translate(prepared, run, out / "synthetic" / task, progress=progress)
        lap("translate")
    result.built = build_release([out / "synthetic" / t for t in TASKS], result.release, progress=progress)
    lap("build")
    result.validation = validate_release(result.release, real=prepared, progress=progress)
    lap("validate")
    result.baselines = run_baselines(
        result.release,
        prepared,
        out / "baselines",
        BaselinesConfig(epochs=5, bootstrap=200, seeds=(seed,)),
        progress=progress,
    )
    result.report = write_report(out / "baselines", result.release, prepared, out / "report", progress=progress).path
    lap("baselines + report")
    result.hf_rows = load_release(result.release)["train"].num_rows
    result.wds_samples = sum(1 for _ in wds_release(result.release))
    lap("load")
    result.stage_seconds = seconds
    return result


def _train_config(size: int, seed: int, epochs: int | None) -> TrainConfig:
    """The tiny preset at `size`², seeded, for `epochs` (None: the preset's); `ConfigError` on a bad value."""
    cfg = replace(load_preset(Preset.TINY).with_size(size), seed=seed)
    return cfg if epochs is None else replace(cfg, epochs=epochs)
