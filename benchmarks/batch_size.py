"""A larger per-device batch: which learning rate and how many epochs keep the translations' quality.

    python benchmarks/batch_size.py [--runs 4:5e-4 16:5e-4 16:1e-3 16:2e-3 16:5e-4:8] [--seeds 0 1 2] [--epochs 4]
        [--preset tiny] [--size 64] [--images 400]

Phantom data (normal and COVID-19, findings at full strength) is prepared once. The preset trains normal2covid
at each batch:lr for --epochs (or batch:lr:epochs), once per seed, and translates the held-out test normals.
One real-only small-cnn classifier (normal vs COVID-19, trained by `cxrds baselines` on the real training split)
judges every run: KID and FID in its feature space against the real COVID-19 test images, and the share of
translations it calls COVID-19. Prints a row per run, the mean per setting and each setting's difference from
the first, paired by seed. At the defaults it is toy scale: it shows what a rule does to the tiny generator on
this data, not to the reference ResNet-9 at 256² on real radiographs.
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from builders.release import build_release
from cxr_dataset.imaging import read_gray_batch
from cxr_dataset.manifest import read_manifest
from cxr_dataset.prepare import PrepareConfig, prepare
from cxr_dataset.synthetic_folder import synthetic_rows, verified_images
from generator.config import load_preset
from generator.train import train
from generator.translate import TranslateConfig, translate
from validation_tools.baselines import BaselinesConfig, run_baselines
from validation_tools.baselines_folder import classifier_path
from validation_tools.classifiers import load_classifier
from validation_tools.explain import fid, judged_covid_share, kid_spread, penultimate_features

COMPARISON, REGIME = "normal vs covid", "real"


def parse_run(text: str) -> tuple[int, float, int | None]:
    """batch:lr or batch:lr:epochs."""
    batch, lr, *epochs = text.split(":")
    return int(batch), float(lr), int(epochs[0]) if epochs else None


def images_of(rows: list[dict], size: int) -> torch.Tensor:
    return torch.from_numpy(read_gray_batch([data for _, data in verified_images(rows)], size)).unsqueeze(1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--runs",
        nargs="+",
        type=parse_run,
        default=[(4, 5e-4, None), (16, 5e-4, None), (16, 1e-3, None), (16, 2e-3, None), (16, 5e-4, 8)],
    )
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--preset", default="tiny", help="the runs' lr values are absolute, not the preset's")
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--images", type=int, default=400, help="per class")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        prepared = root / "prepared"
        spec = f"phantom=normal:{args.images},covid:{args.images},per_patient:1"
        fractions = {"train": 0.6, "validation": 0.15, "test": 0.25}
        prepare([spec], prepared, PrepareConfig(size=args.size, seed=0, workers=2, fractions=fractions))
        manifest = read_manifest(prepared)
        real = {
            label: torch.from_numpy(
                read_gray_batch([manifest.image_path(r) for r in manifest.rows(label=label, split="test")], args.size)
            ).unsqueeze(1)
            for label in ("normal", "covid")
        }
        classifier, features = None, {}
        results: dict[tuple[int, float, int], dict[int, dict[str, float]]] = {}
        for batch, lr, epochs in args.runs:
            epochs = epochs or args.epochs
            for seed in args.seeds:
                name = f"b{batch}-lr{lr:g}-e{epochs}-s{seed}"
                cfg = dataclasses.replace(
                    load_preset(args.preset).with_size(args.size), epochs=epochs, batch_size=batch, lr=lr, seed=seed
                )
                start = time.perf_counter()
                trained = train(prepared, "normal2covid", root / "runs" / name, cfg)
                seconds = time.perf_counter() - start
                synthetic = root / "synthetic" / name
                translate(prepared, root / "runs" / name, synthetic, TranslateConfig(split="test"))
                if classifier is None:  # real-only: the synthetic images given to the build do not enter it
                    release = root / "release" / "covid-synthetic-cxr"
                    build_release([synthetic], release)
                    out = root / "baselines"
                    bl = BaselinesConfig(comparisons=(COMPARISON,), regimes=(REGIME,), seeds=(0,), bootstrap=10)
                    run_baselines(release, prepared, out, bl)
                    classifier, _ = load_classifier(classifier_path(out, COMPARISON, REGIME, "small-cnn", 0))
                    features = {label: penultimate_features(classifier, x) for label, x in real.items()}
                    kid_ref = kid_spread(features["normal"], features["covid"])[0]
                    print(f"reference, real normal vs real COVID-19 test images: KID {kid_ref:.4f}")
                    print(f"{'run':<20} {'steps':>6} {'img/s':>6} {'KID':>8} {'FID':>8} {'judged COVID-19':>16}")
                fakes = images_of(synthetic_rows(synthetic)[0], args.size)
                own = penultimate_features(classifier, fakes)
                row = {
                    "kid": kid_spread(own, features["covid"])[0],
                    "fid": fid(own, features["covid"]),
                    "judged": judged_covid_share(classifier, fakes),
                }
                results.setdefault((batch, lr, epochs), {})[seed] = row
                rate = trained.steps * batch / seconds
                print(
                    f"{name:<20} {trained.steps:>6} {rate:>6.1f} {row['kid']:>8.4f} {row['fid']:>8.2f} "
                    f"{row['judged']:>16.2f}"
                )
        first = next(iter(results))
        print(f"\nmean over seeds {args.seeds}; Δ: paired by seed against batch {first[0]}, lr {first[1]:g}")
        for setting, by_seed in results.items():
            line = f"batch {setting[0]:>3}, lr {setting[1]:g}, {setting[2]:>2} epochs"
            for metric in ("kid", "fid", "judged"):
                values = [by_seed[s][metric] for s in args.seeds]
                deltas = [by_seed[s][metric] - results[first][s][metric] for s in args.seeds]
                spread = f"{min(deltas):+.3g}…{max(deltas):+.3g}"
                line += f"  {metric} {np.mean(values):.4g} (Δ {np.mean(deltas):+.3g}, {spread})"
            print(line)


if __name__ == "__main__":
    main()
