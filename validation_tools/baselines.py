"""`cxrds baselines`: COVID-19 classifiers trained on each regime of real and synthetic positives, tested on real
images only, with the controls a synthetic-data claim has to beat.

Regimes per comparison (Normal vs COVID, Pneumonia vs COVID): real; real + the task's own generator; real + both
generators; synthetic positives of the own generator only (the seed's four); and two controls without synthetic
images: the real positives oversampled to the own generator's count, and a class-weighted loss. Each is trained
on the real training split plus its synthetic images and scored on the real test split, at 0.5 and at the
threshold chosen on validation (Youden's J). Synthetic images whose source patient is held out are dropped.

Protocols: `leak-free` (default) early-stops and chooses the threshold on a validation split, carved by patient
from the training split when the prepared data has none (e.g. `--split paper`); `seed` repeats the seed's
notebooks, which used the test set for that, so every table it writes says it is optimistic.

This module trains and scores; the models are in `classifiers.py`, the tables in `baselines_tables.py`, and the
output folder's files in `baselines_folder.py`.
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from cxr_dataset.errors import ConfigError
from cxr_dataset.imaging import read_gray_batch
from cxr_dataset.manifest import read_manifest
from cxr_dataset.options import check_fraction, check_seed, check_workers
from cxr_dataset.ownership import claimed_output
from cxr_dataset.progress import ProgressFn, no_progress
from validation_tools.audit import held_out_keys
from validation_tools.balance import COMPARISONS, truncate
from validation_tools.baselines_data import (
    OVERSAMPLED,
    WEIGHTED,
    classifier_splits,
    regime_names,
    synthetic_images,
    training_regimes,
)
from validation_tools.baselines_external import (
    INTERNAL,
    external_tables,
    load_external_sets,
    score_externals,
    seen_patients,
)
from validation_tools.baselines_folder import KIND, classifier_path, write_baselines
from validation_tools.baselines_tables import csv_table, summary_tables
from validation_tools.classifiers import (
    MIN_SIZE,
    MODELS,
    build_model,
    device_autocast,
    image_batch,
    normalise,
    predict_proba,
    save_classifier,
)
from validation_tools.metrics import METRIC_NAMES, bootstrap_ci, point_metrics, youden_threshold
from validation_tools.paired import Scored, paired_deltas

PROTOCOLS = ("leak-free", "seed")
OPTIMIZERS = ("adamw", "adadelta")
Tensors = tuple[torch.Tensor, torch.Tensor, list[str]]  # images, labels (1: COVID-19), patient ids


@dataclass(frozen=True, kw_only=True)
class BaselinesConfig:
    models: tuple[str, ...] = ("small-cnn",)  # torchvision's vgg16/resnet50/densenet121 are slow on a CPU
    comparisons: tuple[str, ...] = tuple(COMPARISONS)  # 'normal vs covid', 'pneumonia vs covid'
    size: int = 64  # images are resized to size²
    epochs: int = 20  # at most; early stopping on the validation loss
    patience: int = 3  # epochs without validation improvement before stopping
    batch_size: int = 32
    optimizer: str = "adamw"  # or "adadelta" (the seed's, with ReduceLROnPlateau)
    lr: float = 1e-3
    seeds: tuple[int, ...] = (0, 1, 2)  # one run per seed; three, as `cxrds baselines` (intervals include their spread)
    pretrained: bool = False  # ImageNet weights (downloads them: off in tests)
    bootstrap: int = 1000  # resamples (by patient) for the 95% intervals
    protocol: str = "leak-free"  # or "seed" (the test set early-stops: optimistic)
    validation_fraction: float = 0.2  # of training patients, carved when the prepared data has no validation split
    accept_unknown_provenance: bool = False  # keep synthetic images that name no source patient
    workers: int = 0  # processes decoding images (0: one per core, up to 8)
    controls: bool = True  # the oversampling and class-weight regimes
    regimes: tuple[str, ...] = ()  # train only these (names as in the tables); empty: every regime
    external: tuple[str, ...] = ()  # other prepared folders every classifier is also scored on (reported apart)
    external_drop_shared: bool = False  # leave out external images of training patients instead of refusing

    def __post_init__(self) -> None:
        unknown = sorted(set(self.models) - set(MODELS))
        if unknown:
            raise ConfigError(f"models must be among {list(MODELS)}, got {unknown}")
        unknown = sorted(set(self.comparisons) - set(COMPARISONS))
        if unknown or not self.comparisons:
            raise ConfigError(f"comparisons must be among {list(COMPARISONS)}, got {unknown or 'none'}")
        if self.protocol not in PROTOCOLS:
            raise ConfigError(f"protocol must be one of {list(PROTOCOLS)}, got {self.protocol!r}")
        if self.optimizer not in OPTIMIZERS:
            raise ConfigError(f"optimizer must be one of {list(OPTIMIZERS)}, got {self.optimizer!r}")
        if not self.seeds:
            raise ConfigError("seeds: give at least one")
        for seed in self.seeds:
            check_seed(seed, "seeds")
        for name in ("epochs", "batch_size", "bootstrap"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not MIN_SIZE <= self.size <= 8192:  # every model halves it five times (small-cnn four)
            raise ConfigError(f"size must be in {MIN_SIZE}..8192 pixels, got {self.size}")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise ConfigError(f"lr must be a positive number, got {self.lr}")
        unknown = sorted(set(self.regimes) - set(regime_names()))
        if unknown:
            raise ConfigError(f"regimes must be among {regime_names()}, got {unknown}")
        check_fraction(self.validation_fraction, "validation_fraction")
        check_workers(self.workers, zero_means_auto=True)

    @classmethod
    def for_protocol(cls, protocol: str = "leak-free", **overrides: Any) -> BaselinesConfig:
        """The protocol's defaults (the seed's: its three ImageNet models at 256², Adadelta 1e-3, batch 16, up
        to 200 epochs) under the given overrides; None means "the protocol's"."""
        base = {"protocol": protocol}
        if protocol == "seed":
            base |= {
                "models": ("vgg16", "resnet50", "densenet121"),
                "size": 256,
                "epochs": 200,
                "patience": 10,
                "batch_size": 16,
                "optimizer": "adadelta",
                "lr": 1e-3,
                "pretrained": True,
            }
        return cls(**base | {k: v for k, v in overrides.items() if v is not None})


def run_baselines(
    release: Path, real: Path, out: Path, cfg: BaselinesConfig, *, progress: ProgressFn = no_progress
) -> list[dict[str, Any]]:
    """Train and score every comparison × regime × model × seed; writes the baselines folder
    (`baselines_folder.py`): the classifiers, per-run metrics and predictions, paired comparisons and tables."""
    # Claimed before hours of training, not after.
    inputs = [release, real, *map(Path, cfg.external)]
    with claimed_output(out, KIND, inputs=inputs, command="cxrds baselines") as claim:
        return _run_baselines(release, real, claim.root, cfg, progress)


def _run_baselines(
    release: Path, real: Path, out: Path, cfg: BaselinesConfig, progress: ProgressFn
) -> list[dict[str, Any]]:
    manifest = read_manifest(real)
    if cfg.protocol == "seed" and manifest.meta.get("split") != "paper":
        raise ConfigError(
            f"{real}: protocol seed repeats the seed's paper split, but this data was prepared with --split "
            f"{manifest.meta.get('split', '?')}; prepare it with `cxrds prepare --split paper` or use --protocol "
            "leak-free"
        )
    rows = manifest.rows()
    splits, validation_note = classifier_splits(rows, cfg.protocol, cfg.validation_fraction, min(cfg.seeds))
    held = held_out_keys([r | {"split": splits[r["id"]]} for r in rows])
    workers = cfg.workers or min(os.cpu_count() or 1, 8)
    seen = seen_patients(rows, splits, cfg.protocol)
    externals = load_external_sets(
        cfg.external, seen, cfg.size, workers=workers, drop_shared=cfg.external_drop_shared, training=real
    )
    synthetic, provenance = synthetic_images(Path(release), held, cfg.size, workers, cfg.accept_unknown_provenance)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    # Every real image once, kept on the device: the classifiers train from memory.
    pixels = image_batch(read_gray_batch([manifest.image_path(r) for r in rows], cfg.size, workers)).to(device)
    synthetic = {config: images.to(device) for config, images in synthetic.items()}

    def real_set(labels: tuple[str, ...], split: str) -> Tensors:
        chosen = [i for i, r in enumerate(rows) if splits[r["id"]] == split and r["label"] in labels]
        y = torch.tensor([int(rows[i]["label"] == "covid") for i in chosen])
        return pixels[chosen], y, [rows[i]["patient_id"] for i in chosen]

    results, predictions, external_results, external_predictions = [], [], [], []
    scores = partial(_scores, resamples=cfg.bootstrap)  # the internal test's scoring, for the external tests
    jobs = [(c, m, s) for c in cfg.comparisons for m in cfg.models for s in cfg.seeds]
    done, total = 0, len(jobs) * (len(cfg.regimes) or (6 if cfg.controls else 4))
    for comparison, model_name, seed in jobs:
        negative, order = COMPARISONS[comparison]
        neg_x, _, _ = real_set((negative,), "train")
        pos_x, _, _ = real_set(("covid",), "train")
        val = real_set((negative, "covid"), "test" if cfg.protocol == "seed" else "validation")
        test = real_set((negative, "covid"), "test")
        if len(set(val[1].tolist())) < 2 or len(set(test[1].tolist())) < 2:
            raise ConfigError(
                f"{real}: the {comparison} classifiers need real validation and test images of both classes"
            )
        for regime, positives, weighted in training_regimes(pos_x, synthetic, order, len(neg_x), seed, cfg.controls):
            if len(positives) == 0 or (cfg.regimes and regime not in cfg.regimes):
                continue
            run = {"comparison": comparison, "regime": regime, "model": model_name, "seed": seed}
            result, prediction = _train_and_score(run, neg_x, positives, weighted, val, test, cfg, device, out)
            results.append(result)
            predictions.append(prediction)
            path = classifier_path(out, comparison, regime, model_name, seed)
            scored = score_externals(externals, result, prediction["threshold"], path, scores, device)
            external_results += scored[0]
            external_predictions += scored[1]
            done += 1
            progress("baselines", done, total, f"{comparison}, {regime}, {model_name}")
    # The seed protocol tuned on the test set: no paired tables or McNemar on top of it.
    comparisons, external_comparisons = [], []
    if cfg.protocol != "seed":
        comparisons = [{"test_set": INTERNAL} | c for c in paired_comparisons(predictions, cfg.bootstrap)]
        for ext in externals:
            runs = [p for p in external_predictions if p["test_set"] == ext.name]
            external_comparisons += [{"test_set": ext.name} | c for c in paired_comparisons(runs, cfg.bootstrap)]
    carved = sorted(r["id"] for r in rows if splits[r["id"]] == "validation" != r["split"])
    context = {"validation": validation_note, "carved_validation_ids": carved, "synthetic": provenance}
    context["external"] = {
        "sets": [e.record() for e in externals],
        "results": external_results,
        "comparisons": external_comparisons,
        "predictions": external_predictions,
    }
    context["external_tables"] = external_tables(externals, external_results, external_comparisons)
    _write_outputs(Path(out), results, predictions, comparisons, cfg, context, device)
    return results


def _train_and_score(
    run: dict[str, Any],
    neg_x: torch.Tensor,
    positives: torch.Tensor,
    weighted: bool,
    val: Tensors,
    test: Tensors,
    cfg: BaselinesConfig,
    device: torch.device,
    out: Path,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """One run (`run`: comparison, regime, model, seed): train, save the classifier, score it on the test images;
    its row of results and its predictions."""
    x = torch.cat([neg_x, positives])
    y = torch.cat([torch.zeros(len(neg_x), dtype=torch.long), torch.ones(len(positives), dtype=torch.long)])
    weights = len(y) / (2 * torch.bincount(y, minlength=2).float()) if weighted else None
    seed = run["seed"]
    p_val, p_test, epochs_run, model = _fit_and_score(run["model"], x, y, val[:2], test[0], cfg, seed, device, weights)
    path = classifier_path(out, run["comparison"], run["regime"], run["model"], seed)
    # everything needed to rebuild it
    save_classifier(model, path, run | {"size": cfg.size, "normalisation": model.normalisation})
    # The seed protocol's validation is the test set: SEN/SPE at 0.5 only, no threshold tuned on it.
    threshold = youden_threshold(val[1].numpy(), p_val) if cfg.protocol != "seed" else 0.5
    result = (
        {"test_set": INTERNAL}
        | run
        | {"protocol": cfg.protocol + (" (optimistic)" if cfg.protocol == "seed" else "")}
        | {"train_negatives": len(neg_x), "train_positives": len(positives)}
        | {"skew": truncate(len(neg_x) / len(positives)), "epochs": epochs_run}
        | _scores(test[1].numpy(), np.asarray(test[2]), p_test, threshold, cfg.bootstrap, seed)
    )
    if cfg.protocol == "seed":
        result = {k: v for k, v in result.items() if "threshold" not in k}
    prediction = (
        {"test_set": INTERNAL}
        | run
        | {"threshold": threshold, "y_true": test[1].tolist(), "patient_id": test[2]}
        | {"p_covid": [round(float(p), 6) for p in p_test]}
    )
    return result, prediction


def _scores(y: np.ndarray, patients: np.ndarray, p: np.ndarray, threshold: float, resamples: int, seed: int):
    """Test metrics at 0.5 and at the validation threshold, with patient-bootstrap intervals (`bootstrap_ci`)."""
    at_half, at_val = point_metrics(y, p), point_metrics(y, p, threshold)
    ci = bootstrap_ci(y, p, resamples=resamples, seed=seed, groups=patients)
    ci_val = bootstrap_ci(y, p, resamples=resamples, seed=seed, groups=patients, threshold=threshold)
    return (
        {"test_images": len(y), "test_patients": len(set(patients.tolist()))}
        | {k: at_half[k] for k in ("tp", "tn", "fp", "fn")}
        | {m: at_half[m] for m in METRIC_NAMES}
        | {f"{m}_ci": list(ci[m]) for m in METRIC_NAMES}
        | {"threshold": threshold, "fn_at_threshold": at_val["fn"], "fp_at_threshold": at_val["fp"]}
        | {f"{m}_at_threshold": at_val[m] for m in ("sensitivity", "specificity")}
        | {f"{m}_at_threshold_ci": list(ci_val[m]) for m in ("sensitivity", "specificity")}
    )


def paired_comparisons(predictions: list[dict[str, Any]], resamples: int) -> list[dict[str, Any]]:
    """Each regime against real-only and against the oversampling control, same test images, seeds paired."""
    out = []
    keys = dict.fromkeys((p["comparison"], p["model"]) for p in predictions)
    for comparison, model in keys:
        runs = [p for p in predictions if (p["comparison"], p["model"]) == (comparison, model)]
        by_regime: dict[str, dict[int, dict]] = {}
        for run in runs:
            by_regime.setdefault(run["regime"], {})[run["seed"]] = run
        for baseline in ("real", OVERSAMPLED):
            for regime, seeds in by_regime.items():
                # against real-only: every other regime; against the control: those with synthetic images
                skipped = {"real", baseline} | ({WEIGHTED} if baseline == OVERSAMPLED else set())
                if baseline not in by_regime or regime in skipped:
                    continue
                common = sorted(set(seeds) & set(by_regime[baseline]))
                if not common:
                    continue
                first = seeds[common[0]]
                stats = paired_deltas(
                    np.asarray(first["y_true"]),
                    np.asarray(first["patient_id"]),
                    [_scored(seeds[s]) for s in common],
                    [_scored(by_regime[baseline][s]) for s in common],
                    resamples=resamples,
                )
                out.append({"comparison": comparison, "model": model, "regime": regime, "against": baseline} | stats)
    return out


def _scored(run: dict[str, Any]) -> Scored:
    return Scored(np.asarray(run["p_covid"], dtype=float), run["threshold"])


def _fit_and_score(model_name, x, y, val, test_x, cfg: BaselinesConfig, seed: int, device, weights=None):
    """Train with early stopping on the validation loss; return the best model's P(covid) on the validation and
    test images, the epochs run and the model. `weights`: per-class loss weights (the class-weight control)."""
    torch.manual_seed(seed)  # torchvision builds its weights from the global generator
    model = build_model(model_name, cfg.pretrained, input_normalisation(model_name, cfg)).to(device)
    plateau = None
    if cfg.optimizer == "adadelta":  # the seed's Keras setup: Adadelta, the rate cut on a validation plateau
        optimizer = torch.optim.Adadelta(model.parameters(), lr=cfg.lr, rho=0.95, eps=1e-7)
        plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, factor=0.1, patience=max(cfg.patience // 2, 1))
    else:
        optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr)
    weights = None if weights is None else weights.to(device)
    rng = torch.Generator().manual_seed(seed)
    best, best_state, stale, epochs_run = math.inf, None, 0, 0
    for epoch in range(1, cfg.epochs + 1):
        epochs_run = epoch
        model.train()
        for index in torch.randperm(len(x), generator=rng).split(cfg.batch_size):
            if len(index) < 2:
                continue  # BatchNorm needs two samples
            with device_autocast(device):
                logits = model(normalise(x[index], device, model.normalisation))
            loss = F.cross_entropy(logits.float(), y[index].to(device), weight=weights)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        p_val = torch.from_numpy(predict_proba(model, val[0], device=device, batch=cfg.batch_size * 4))
        val_loss = F.cross_entropy(
            torch.log(p_val.clamp_min(1e-7)), val[1], weight=None if weights is None else weights.cpu().double()
        ).item()
        if plateau is not None:
            plateau.step(val_loss)
        if val_loss < best - 1e-4:
            best, stale = val_loss, 0
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        else:
            stale += 1
            if stale >= cfg.patience:
                break
    model.load_state_dict(best_state)
    batch = cfg.batch_size * 4
    p_val = predict_proba(model, val[0], device=device, batch=batch)[:, 1]
    return p_val, predict_proba(model, test_x, device=device, batch=batch)[:, 1], epochs_run, model


def input_normalisation(model_name: str, cfg: BaselinesConfig) -> str:
    """ImageNet statistics for the torchvision models under the seed protocol or ImageNet weights (the seed's
    Keras models); the small CNN's one gray channel is centred."""
    return "imagenet" if model_name != "small-cnn" and (cfg.protocol == "seed" or cfg.pretrained) else "centred"


def _write_outputs(
    out: Path,
    results: list[dict[str, Any]],
    predictions: list[dict[str, Any]],
    comparisons: list[dict[str, Any]],
    cfg: BaselinesConfig,
    context: dict[str, Any],
    device,
) -> None:
    from cxr_dataset import __version__
    from cxr_dataset.devices import describe

    tables = context.pop("external_tables", "")
    record = {"config": asdict(cfg), "code_version": __version__, "device": describe(device)}
    record |= context | {"results": results, "comparisons": comparisons}
    table = summary_tables(results, comparisons, cfg.protocol, context["validation"], context["synthetic"])
    table += ("\n" + tables) if tables else ""
    write_baselines(
        out,
        record=record,
        predictions=predictions,
        metrics_csv=csv_table(results + context["external"]["results"]),
        comparisons_csv=csv_table(comparisons + context["external"]["comparisons"]),
        table=table,
    )
