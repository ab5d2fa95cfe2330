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
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from cxr_dataset.errors import ConfigError
from cxr_dataset.fileio import atomic_open, atomic_write_text
from cxr_dataset.imaging import read_gray_batch
from cxr_dataset.manifest import read_manifest
from cxr_dataset.options import check_fraction, check_seed, check_workers
from cxr_dataset.ownership import claimed_output
from cxr_dataset.progress import ProgressFn, no_progress
from cxr_dataset.release_folder import read_release
from cxr_dataset.schema import TASK_CONFIG, TASKS, make_key
from cxr_dataset.user_text import csv_text
from validation_tools.audit import held_out_patients
from validation_tools.balance import COMPARISONS, comparison_title, truncate
from validation_tools.metrics import METRIC_NAMES, bootstrap_ci, point_metrics, wilson_interval, youden_threshold
from validation_tools.paired import Scored, paired_deltas

MODELS = ("small-cnn", "vgg16", "resnet50", "densenet121")
MIN_SIZE = 32  # pixels: the smallest image every model takes
PROTOCOLS = ("leak-free", "seed")
OPTIMIZERS = ("adamw", "adadelta")
METRICS_NAME = "metrics.json"
PREDICTIONS_NAME = "predictions.json"  # test labels, patients and P(covid) per run, for ROC curves and pairs
COMPARISONS_NAME = "comparisons.csv"  # paired differences between regimes
OVERSAMPLED, WEIGHTED = "real (oversampled)", "real (class-weighted)"
OPTIMISTIC = (
    "**Protocol `seed`: OPTIMISTIC.** As in the seed's notebooks, the test images stopped training, chose the "
    "checkpoint and chose the threshold, so every figure here overstates what a new test set would show."
)


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
    seeds: tuple[int, ...] = (0,)  # one run per seed
    pretrained: bool = False  # ImageNet weights (downloads them: off in tests)
    bootstrap: int = 1000  # resamples (by patient) for the 95% intervals
    protocol: str = "leak-free"  # or "seed" (the test set early-stops: optimistic)
    validation_fraction: float = 0.2  # of training patients, carved when the prepared data has no validation split
    accept_unknown_provenance: bool = False  # keep synthetic images that name no source patient
    workers: int = 0  # processes decoding images (0: one per core, up to 8)
    controls: bool = True  # the oversampling and class-weight regimes
    regimes: tuple[str, ...] = ()  # train only these (names as in table.md); empty: every regime

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


class SmallCNN(nn.Module):
    """Four conv blocks and a linear head: trains in seconds on a CPU at 64²."""

    def __init__(self, classes: int = 2) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        width = 1
        for out in (16, 32, 64, 128):
            layers += [nn.Conv2d(width, out, 3, padding=1), nn.BatchNorm2d(out), nn.ReLU(True), nn.MaxPool2d(2)]
            width = out
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(width, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x).mean(dim=(2, 3)))


def build_model(name: str, pretrained: bool = False) -> nn.Module:
    """A 2-class classifier taking N×1×H×W; torchvision models see the gray channel repeated three times."""
    if name == "small-cnn":
        return SmallCNN()
    import torchvision

    factory = {
        "vgg16": torchvision.models.vgg16,
        "resnet50": torchvision.models.resnet50,
        "densenet121": torchvision.models.densenet121,
    }[name]
    if not pretrained:
        net = factory(num_classes=2)
    else:
        net = factory(weights="DEFAULT")
        if name == "vgg16":
            net.classifier[6] = nn.Linear(net.classifier[6].in_features, 2)
        elif name == "resnet50":
            net.fc = nn.Linear(net.fc.in_features, 2)
        else:
            net.classifier = nn.Linear(net.classifier.in_features, 2)
    return nn.Sequential(_GrayToRGB(), net)


class _GrayToRGB(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.expand(-1, 3, -1, -1)


def run_baselines(
    release: Path, real: Path, out: Path, cfg: BaselinesConfig, *, progress: ProgressFn = no_progress
) -> list[dict[str, Any]]:
    """Train and score every comparison × regime × model × seed; writes metrics.csv, metrics.json,
    comparisons.csv, predictions.json and table.md."""
    # Claimed before hours of training, not after.
    with claimed_output(out, "baselines", inputs=[release, real], command="cxrds baselines") as claim:
        return _run_baselines(release, real, claim.root, cfg, progress)


def _run_baselines(
    release: Path, real: Path, out: Path, cfg: BaselinesConfig, progress: ProgressFn
) -> list[dict[str, Any]]:
    manifest = read_manifest(real)
    rows = manifest.rows()
    splits, validation_note = _classifier_splits(rows, cfg)
    held = held_out_patients([r | {"split": splits[r["id"]]} for r in rows])
    workers = cfg.workers or min(os.cpu_count() or 1, 8)
    synthetic, provenance = synthetic_images(Path(release), held, cfg.size, workers, cfg.accept_unknown_provenance)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    # Every real image once, kept on the device: the classifiers train from memory.
    pixels = _stack(read_gray_batch([manifest.image_path(r) for r in rows], cfg.size, workers)).to(device)
    synthetic = {config: images.to(device) for config, images in synthetic.items()}

    def real_set(labels: tuple[str, ...], split: str) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
        chosen = [i for i, r in enumerate(rows) if splits[r["id"]] == split and r["label"] in labels]
        y = torch.tensor([int(rows[i]["label"] == "covid") for i in chosen])
        return pixels[chosen], y, [rows[i]["patient_id"] for i in chosen]

    results, predictions = [], []
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
        for regime, positives, weighted in _regimes(pos_x, synthetic, order, len(neg_x), seed, cfg.controls):
            if len(positives) == 0 or (cfg.regimes and regime not in cfg.regimes):
                continue
            x = torch.cat([neg_x, positives])
            y = torch.cat([torch.zeros(len(neg_x), dtype=torch.long), torch.ones(len(positives), dtype=torch.long)])
            weights = len(y) / (2 * torch.bincount(y, minlength=2).float()) if weighted else None
            p_val, p_test, epochs_run, model = _fit_and_score(
                model_name, x, y, val[:2], test[0], cfg, seed, device, weights
            )
            save_classifier(
                model,
                Path(out) / "models" / model_file(comparison, regime, model_name, seed),
                {"model": model_name, "comparison": comparison, "regime": regime, "seed": seed, "size": cfg.size},
            )
            threshold = youden_threshold(val[1].numpy(), p_val)
            results.append(
                {"comparison": comparison, "regime": regime, "model": model_name, "seed": seed}
                | {"protocol": cfg.protocol + (" (optimistic)" if cfg.protocol == "seed" else "")}
                | {"train_negatives": len(neg_x), "train_positives": len(positives)}
                | {"skew": truncate(len(neg_x) / len(positives)), "epochs": epochs_run}
                | _scores(test[1].numpy(), np.asarray(test[2]), p_test, threshold, cfg.bootstrap, seed)
            )
            predictions.append(
                {k: results[-1][k] for k in ("comparison", "regime", "model", "seed")}
                | {"threshold": threshold, "y_true": test[1].tolist(), "patient_id": test[2]}
                | {"p_covid": [round(float(p), 6) for p in p_test]}
            )
            done += 1
            progress("baselines", done, total, f"{comparison}, {regime}, {model_name}")
    comparisons = paired_comparisons(predictions, cfg.bootstrap)
    context = {"validation": validation_note, "synthetic": provenance}
    _write_outputs(Path(out), results, predictions, comparisons, cfg, context, device)
    return results


def regime_names() -> list[str]:
    """Every regime name of every comparison."""
    names = ["real"]
    for _, (first, second) in COMPARISONS.values():
        names += [f"real + {first.upper()}", f"real + {first.upper()} + {second.upper()}"]
    return [*names, "synthetic only", OVERSAMPLED, WEIGHTED]


def _regimes(pos_x, synthetic, order, negatives: int, seed: int, controls: bool):
    """(name, positives, class-weighted loss) per regime; the seed's four first, then the two controls."""
    own, other = synthetic.get(order[0]), synthetic.get(order[1])
    parts = {
        "real": [pos_x],
        f"real + {order[0].upper()}": [pos_x, own],
        f"real + {order[0].upper()} + {order[1].upper()}": [pos_x, own, other],
        "synthetic only": [own],  # the task's own generator, as the seed trained it
    }
    if other is None or not len(other):
        del parts[f"real + {order[0].upper()} + {order[1].upper()}"]  # the same images as real + the own generator
    for name, sets in parts.items():
        yield name, torch.cat([p for p in sets if p is not None and len(p)] or [pos_x[:0]]), False
    if controls and len(pos_x):
        target = len(own) if own is not None and len(own) else negatives
        rng = torch.Generator().manual_seed(seed)
        whole, rest = divmod(max(target, len(pos_x)), len(pos_x))
        index = torch.cat([torch.arange(len(pos_x)).repeat(whole), torch.randperm(len(pos_x), generator=rng)[:rest]])
        yield OVERSAMPLED, pos_x[index], False
        yield WEIGHTED, pos_x, True


def _scores(y: np.ndarray, patients: np.ndarray, p: np.ndarray, threshold: float, resamples: int, seed: int):
    """Test metrics at 0.5 and at the validation threshold, with patient-bootstrap and Wilson intervals."""
    at_half, at_val = point_metrics(y, p), point_metrics(y, p, threshold)
    ci = bootstrap_ci(y, p, resamples=resamples, seed=seed, groups=patients)
    ci_val = bootstrap_ci(y, p, resamples=resamples, seed=seed, groups=patients, threshold=threshold)
    positives, negatives = int(y.sum()), int(len(y) - y.sum())
    return (
        {"test_images": len(y), "test_patients": len(set(patients.tolist()))}
        | {k: at_half[k] for k in ("tp", "tn", "fp", "fn")}
        | {m: at_half[m] for m in METRIC_NAMES}
        | {f"{m}_ci": list(ci[m]) for m in METRIC_NAMES}
        | {"sensitivity_wilson": list(wilson_interval(at_half["tp"], positives))}
        | {"specificity_wilson": list(wilson_interval(at_half["tn"], negatives))}
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


def _classifier_splits(rows: list[dict[str, Any]], cfg: BaselinesConfig) -> tuple[dict[str, str], str]:
    """Image id → the split the classifiers use it as, and a sentence saying where validation came from."""
    splits = {r["id"]: r["split"] for r in rows}
    if cfg.protocol == "seed":
        return splits, "the TEST split (the seed's protocol): early stopping, checkpoint and threshold saw it"
    if any(s == "validation" for s in splits.values()):
        return splits, "the prepared validation split"
    carved = carve_validation(rows, cfg.validation_fraction, seed=min(cfg.seeds))
    note = (
        f"carved from the training split by patient: {len({r['patient_id'] for r in rows if r['id'] in carved})} "
        f"patients, {len(carved)} images ({cfg.validation_fraction:.0%} per class, seed {min(cfg.seeds)})"
    )
    return {i: "validation" if i in carved else s for i, s in splits.items()}, note


def carve_validation(rows: list[dict[str, Any]], fraction: float, *, seed: int) -> set[str]:
    """Ids of training images moved to validation: per class, a seeded `fraction` of the training patients
    (at least one where a class has two), every image of a chosen patient."""
    rng = np.random.default_rng([seed, 2])
    train = [r for r in rows if r["split"] == "train"]
    chosen: set[str] = set()
    for label in sorted({r["label"] for r in train}):
        patients = sorted({r["patient_id"] for r in train if r["label"] == label} - chosen)
        take = max(round(len(patients) * fraction), 1 if len(patients) >= 2 else 0)
        chosen.update(patients[i] for i in rng.permutation(len(patients))[:take])
    return {r["id"] for r in train if r["patient_id"] in chosen}


def model_file(comparison: str, regime: str, model: str, seed: int) -> str:
    """A classifier's file name, e.g. 'normal-vs-covid_real-G_NC_small-cnn_s0.safetensors'."""
    return f"{make_key(comparison, regime, model, f's{seed}')}.safetensors"


def save_classifier(model: nn.Module, path: Path, meta: dict[str, Any]) -> None:
    """Weights as safetensors, everything needed to rebuild it in the file's metadata (no pickle)."""
    from safetensors.torch import save

    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    with atomic_open(path) as f:
        f.write(save(state, metadata={"cxrds": json.dumps(meta, sort_keys=True)}))


def load_classifier(path: Path) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild a classifier saved by `save_classifier`."""
    from safetensors import safe_open

    with safe_open(str(path), "pt") as f:
        meta = json.loads(f.metadata()["cxrds"])
        state = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (safe_open is not iterable)
    model = build_model(meta["model"])
    model.load_state_dict(state)
    return model.eval(), meta


def synthetic_images(
    release: Path, held: dict[str, str], size: int, workers: int = 1, accept_unknown: bool = False
) -> tuple[dict[str, torch.Tensor], dict[str, int]]:
    """Task config → uint8 N×1×size×size of the release's images, minus those of held-out patients; and the
    counts of what was kept and dropped. Images that name no source patient cannot be checked: refused unless
    `accept_unknown`, then kept and counted."""
    encoded: dict[str, list[bytes]] = {}
    counts = {"kept": 0, "dropped_held_out": 0, "unknown_source_kept": 0}
    unknown = []
    for row in read_release(release).iter_rows(["id", "task", "source_patient_id", "image"]):
        if row["source_patient_id"] in held:
            counts["dropped_held_out"] += 1
            continue
        if not row["source_patient_id"]:
            unknown.append(row["id"])
            if not accept_unknown:
                continue
            counts["unknown_source_kept"] += 1
        counts["kept"] += 1
        encoded.setdefault(TASK_CONFIG[TASKS[row["task"]]], []).append(row["image"]["bytes"])
    if unknown and not accept_unknown:
        raise ConfigError(
            f"{release}: {len(unknown)} synthetic images name no source patient (e.g. {unknown[0]}), so none can be "
            "checked against the held-out patients; pass --accept-unknown-provenance to train on them knowingly"
        )
    return {config: _stack(read_gray_batch(data, size, workers)) for config, data in encoded.items()}, counts


def _stack(pixels: np.ndarray) -> torch.Tensor:
    """N×H×W uint8 → N×1×H×W tensor."""
    return torch.from_numpy(pixels).unsqueeze(1)


def _fit_and_score(model_name, x, y, val, test_x, cfg: BaselinesConfig, seed: int, device, weights=None):
    """Train with early stopping on the validation loss; return the best model's P(covid) on the validation and
    test images, the epochs run and the model. `weights`: per-class loss weights (the class-weight control)."""
    torch.manual_seed(seed)  # torchvision builds its weights from the global generator
    model = build_model(model_name, cfg.pretrained).to(device)
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
            with _autocast(device):
                logits = model(normalise(x[index], device))
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


@torch.inference_mode()
def predict_proba(model: nn.Module, x: torch.Tensor, *, device=None, batch: int = 128) -> np.ndarray:
    """Class probabilities (N×2, float64) of uint8 images N×1×H×W."""
    device = device or next(model.parameters()).device
    model.eval()
    with _autocast(device):
        parts = [F.softmax(model(normalise(b, device)).float(), dim=1).cpu() for b in x.split(batch)]
    return torch.cat(parts).numpy().astype(np.float64)


def _autocast(device: torch.device):
    """bf16 on CUDA (the torchvision models are slow in fp32); full precision on CPU, where these nets are small."""
    import contextlib

    return torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else contextlib.nullcontext()


def normalise(x: torch.Tensor, device=None) -> torch.Tensor:
    """uint8 N×1×H×W → the classifiers' input scale."""
    return (x.to(device).float() / 255 - 0.5) / 0.25


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

    record = {"config": asdict(cfg), "code_version": __version__, "device": describe(device)}
    record |= context | {"results": results, "comparisons": comparisons}
    atomic_write_text(out / PREDICTIONS_NAME, json.dumps(predictions) + "\n")
    atomic_write_text(out / METRICS_NAME, json.dumps(record, indent=2) + "\n")
    atomic_write_text(out / "metrics.csv", _csv(results))
    atomic_write_text(out / COMPARISONS_NAME, _csv(comparisons))
    atomic_write_text(out / "table.md", summary_tables(results, comparisons, cfg, context))


def _csv(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return ""
    cells = ({k: json.dumps(v) if isinstance(v, list) else v for k, v in r.items()} for r in rows)
    return csv_text(cells, list(rows[0]))


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")


def _mean_sd(values: list[float], scale: float = 1.0, places: int = 3) -> str:
    values = [v * scale for v in values if not math.isnan(v)]
    if not values:
        return "n/a"
    if len(values) == 1:
        return f"{values[0]:.{places}f}"
    return f"{np.mean(values):.{places}f} ± {np.std(values, ddof=1):.{places}f}"


def _interval(point: float, ci: list[float], places: int = 3) -> str:
    return f"{point:+.{places}f} [{ci[0]:+.{places}f}, {ci[1]:+.{places}f}]"


def summary_blocks(
    results: list[dict[str, Any]], comparisons: list[dict[str, Any]]
) -> list[tuple[str, list[str], list[list[str]]]]:
    """(title, columns, rows) per comparison and model: each regime's metrics as mean ± SD over seeds, then the
    paired differences against real-only and against the oversampling control."""
    blocks = []
    for comparison in dict.fromkeys(r["comparison"] for r in results):
        for model in dict.fromkeys(r["model"] for r in results if r["comparison"] == comparison):
            rows = [r for r in results if (r["comparison"], r["model"]) == (comparison, model)]
            first, seeds = rows[0], len({r["seed"] for r in rows})
            cells = []
            for regime in dict.fromkeys(r["regime"] for r in rows):
                runs = [r for r in rows if r["regime"] == regime]
                cells.append(
                    [regime, f"{runs[0]['train_positives']} ({runs[0]['skew']:.2f})"]
                    + [_mean_sd([r[m] for r in runs]) for m in SUMMARY_METRICS]
                )
            blocks.append(
                (
                    f"{comparison_title(comparison)}, {model}: mean ± SD over {_count(seeds, 'seed')}; "
                    f"{first['test_images']} real test images ({first['tp'] + first['fn']} COVID-19) of "
                    f"{first['test_patients']} patients",
                    ["regime", "positives (skew)", "AUC", "AP", "SEN @0.5", "SPE @0.5", "SEN @val", "SPE @val"],
                    cells,
                )
            )
            paired = [c for c in comparisons if (c["comparison"], c["model"]) == (comparison, model)]
            if paired:
                blocks.append(
                    (
                        f"{comparison_title(comparison)}, {model}: paired differences (regime − baseline on the "
                        f"same test images, mean over {_count(paired[0]['seeds'], 'seed')}, 95% CI from a "
                        "patient-level bootstrap; McNemar at each run's validation threshold)",
                        ["regime", "against", "ΔAUC", "ΔAP", "ΔSEN @val", "seeds SEN up / down", "McNemar p < 0.05"],
                        [
                            [
                                c["regime"],
                                c["against"],
                                _interval(c["delta_roc_auc"], c["delta_roc_auc_ci"]),
                                _interval(c["delta_average_precision"], c["delta_average_precision_ci"]),
                                _interval(c["delta_sensitivity"], c["delta_sensitivity_ci"]),
                                f"{c['seeds_sensitivity_higher']} / {c['seeds_sensitivity_lower']}",
                                f"{sum(p < 0.05 for p in c['mcnemar_p'])} of {len(c['mcnemar_p'])} seeds",
                            ]
                            for c in paired
                        ],
                    )
                )
    return blocks


SUMMARY_METRICS = (
    "roc_auc",
    "average_precision",
    "sensitivity",
    "specificity",
    "sensitivity_at_threshold",
    "specificity_at_threshold",
)


def protocol_note(cfg: dict[str, Any], context: dict[str, Any], seeds: list[int]) -> list[str]:
    """What every table of one run rests on: protocol, validation, seeds, synthetic images kept and dropped."""
    kept = context["synthetic"]
    lines = [OPTIMISTIC] if cfg["protocol"] == "seed" else []
    lines.append(
        f"Protocol `{cfg['protocol']}`; validation: {context['validation']}. Seeds: {', '.join(map(str, seeds))} "
        f"(mean ± SD over seeds; every seed in metrics.csv). Synthetic images used: {kept['kept']}; dropped as "
        f"derived from held-out patients: {kept['dropped_held_out']}"
        + (f"; of unknown source, kept unchecked: {kept['unknown_source_kept']}" if kept["unknown_source_kept"] else "")
        + ". Thresholds: 0.5 and the one chosen on validation (Youden's J)."
    )
    return lines


def summary_tables(
    results: list[dict[str, Any]], comparisons: list[dict[str, Any]], cfg: BaselinesConfig, context: dict[str, Any]
) -> str:
    """table.md: the protocol note, the summary and paired blocks, then the seed's own layout."""
    lines = []
    for note in protocol_note(asdict(cfg), context, sorted({r["seed"] for r in results})):
        lines += [note, ""]
    for title, columns, rows in summary_blocks(results, comparisons):
        lines += [f"### {title}", "", "| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
        lines += ["| " + " | ".join(row) + " |" for row in rows]
        lines.append("")
    return "\n".join([*lines, seed_layout_table(results)])


def seed_layout_table(results: list[dict[str, Any]]) -> str:
    """The seed's layout: per comparison, one row per model, one column per regime: SEN % at 0.5 (FN, skew),
    mean ± SD over seeds."""
    lines = []
    for comparison in dict.fromkeys(r["comparison"] for r in results):
        rows = [r for r in results if r["comparison"] == comparison]
        regimes = list(dict.fromkeys(r["regime"] for r in rows))
        lines += [
            f"### {comparison_title(comparison)}: sensitivity % at 0.5 on real test COVID-19 (FN, skew), "
            "the seed's layout",
            "",
            "| model | " + " | ".join(regimes) + " |",
            "|---|" + "---|" * len(regimes),
        ]
        for model in dict.fromkeys(r["model"] for r in rows):
            cells = []
            for regime in regimes:
                runs = [r for r in rows if r["model"] == model and r["regime"] == regime]
                fn = _mean_sd([r["fn"] for r in runs], places=1)
                cells.append(
                    f"{_mean_sd([r['sensitivity'] for r in runs], 100, 2)} (FN {fn}, skew {runs[0]['skew']:.2f})"
                )
            lines.append(f"| {model} | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)
