"""The tiny CycleGAN's paired ΔAUC against oversampling on phantom data at 1:50, beside the planted-truth controls.

    python benchmarks/imbalance_study.py [--seeds 0,1,2] [--epochs 4] [--bootstrap 1000] [--out DIR]

The data of `tests/test_imbalance.py` (`validation_tools.planted_generators.imbalanced_phantom`: 300 training
normals, 6 real COVID-19, 150 + 18 test patients, faint findings). A CycleGAN (tiny preset) is trained on its
training split and translates the training normals; the perfect generator (fresh renders of the true COVID-19
class) and the noise generator write theirs. Each is built into a release and run through `run_baselines` (real
+ the generator, synthetic only, and the oversampling control, per seed), and the paired comparison of real + it
against oversampling is printed as `cxrds baselines` records it. The test asserts the controls' sides of 0; the
CycleGAN's number is a measurement, quoted in docs/evaluation.md ("Planted-truth controls"), never asserted.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from builders.release import build_release
from cxr_dataset.devices import describe
from generator.config import load_preset
from generator.train import train
from generator.translate import translate
from validation_tools.baselines import OVERSAMPLED, BaselinesConfig, run_baselines
from validation_tools.baselines_folder import read_baselines
from validation_tools.planted_generators import imbalanced_phantom, write_planted_generator

BOOSTED = "real + G_NC"
REGIMES = (BOOSTED, "synthetic only", OVERSAMPLED)


def cyclegan_folder(prepared: Path, root: Path, epochs: int) -> Path:
    """Train the tiny CycleGAN on the prepared training split and translate the training normals."""
    cfg = dataclasses.replace(load_preset("tiny").with_size(64), epochs=epochs)
    trained = train(prepared, "normal2covid", root / "run", cfg)
    print(f"cyclegan: {trained.steps} steps trained")
    translate(prepared, root / "run", root / "cyclegan")
    return root / "cyclegan"


def study(name: str, synthetic: Path, prepared: Path, root: Path, cfg: BaselinesConfig) -> None:
    """Build `synthetic` into a release, run the baselines and print real + it against oversampling."""
    release = root / f"{name}-release" / "covid-synthetic-cxr"
    build_release([synthetic], release)
    started = time.perf_counter()
    results = run_baselines(release, prepared, root / f"{name}-baselines", cfg)
    seconds = time.perf_counter() - started
    (row,) = [
        c
        for c in read_baselines(root / f"{name}-baselines").comparisons
        if (c["regime"], c["against"]) == (BOOSTED, OVERSAMPLED)
    ]

    def auc(regime: str) -> str:
        values = [r["roc_auc"] for r in results if r["regime"] == regime]
        return f"{np.mean(values):.3f} ± {np.std(values, ddof=1) if len(values) > 1 else 0:.3f}"

    low, high = row["delta_roc_auc_ci"]
    print(
        f"{name:8s} | AUC real + G {auc(BOOSTED)}, synthetic only {auc('synthetic only')}, oversampled "
        f"{auc(OVERSAMPLED)} | ΔAUC vs oversampling {row['delta_roc_auc']:+.3f} [{low:+.3f}, {high:+.3f}] | "
        f"ΔAP {row['delta_average_precision']:+.3f} | {seconds:.0f} s"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--epochs", type=int, default=4, help="CycleGAN epochs (4: 300 steps, as the old test)")
    parser.add_argument("--bootstrap", type=int, default=1000)
    parser.add_argument("--out", type=Path, default=None, help="keep the outputs here (default: a temporary folder)")
    args = parser.parse_args()
    seeds = tuple(int(s) for s in args.seeds.split(","))
    cfg = BaselinesConfig(
        comparisons=("normal vs covid",), epochs=10, seeds=seeds, bootstrap=args.bootstrap, regimes=REGIMES
    )
    print(
        f"{datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC; {describe('cpu')}; torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads; seeds {list(seeds)}, {args.bootstrap} resamples"
    )
    with tempfile.TemporaryDirectory() as tmp:
        root = args.out or Path(tmp)
        prepared = root / "prepared"
        kept = imbalanced_phantom(prepared, workers=2)
        print(f"training split: {kept[0]} normals, {kept[1]} COVID-19")
        folders = {"cyclegan": cyclegan_folder(prepared, root, args.epochs)}
        for kind in ("truth", "noise"):
            folders[kind] = write_planted_generator(prepared, root / kind, kind).parent
        for name, folder in folders.items():
            study(name, folder, prepared, root, cfg)


if __name__ == "__main__":
    main()
