"""`cxrds benchmark`: baseline COVID-19 classifiers trained on the seed's regimes, tested on real images only.

For each comparison (Normal vs COVID, Pneumonia vs COVID) and regime (real; real + its own generator's
images; real + both generators'; synthetic positives only), a classifier is trained on the real *training*
split plus the regime's synthetic images, early-stopped and chosen on the real *validation* split, and scored
on the real *test* split (the seed's notebooks used the test folder for both). Synthetic images whose source
patient is held out are dropped first.
"""

from __future__ import annotations

import csv
import io
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

from cxr_dataset.audit import held_out_patients
from cxr_dataset.balance import COMPARISONS, comparison_title, truncate
from cxr_dataset.errors import ConfigError
from cxr_dataset.fileio import atomic_open, atomic_write_text
from cxr_dataset.imaging import read_gray_batch
from cxr_dataset.manifest import read_manifest
from cxr_dataset.metrics import METRIC_NAMES, bootstrap_ci, point_metrics
from cxr_dataset.options import check_workers
from cxr_dataset.ownership import claim_output
from cxr_dataset.progress import ProgressFn, no_progress
from cxr_dataset.release_folder import read_release
from cxr_dataset.schema import TASK_CONFIG, TASKS, make_key

MODELS = ("small-cnn", "vgg16", "resnet50", "densenet121")
METRICS_NAME = "metrics.json"
PREDICTIONS_NAME = "predictions.json"  # test labels and P(covid) per run, for ROC curves


@dataclass(frozen=True, kw_only=True)
class BenchmarkConfig:
    models: tuple[str, ...] = ("small-cnn",)  # torchvision's vgg16/resnet50/densenet121 are slow on a CPU
    comparisons: tuple[str, ...] = tuple(COMPARISONS)  # 'normal vs covid', 'pneumonia vs covid'
    size: int = 64  # images are resized to size²
    epochs: int = 20  # at most; early stopping on the validation loss
    patience: int = 3  # epochs without validation improvement before stopping
    batch_size: int = 32
    lr: float = 1e-3  # AdamW
    seeds: tuple[int, ...] = (0,)  # one run per seed
    pretrained: bool = False  # ImageNet weights (downloads them: off in tests)
    bootstrap: int = 1000  # resamples for the 95% intervals
    workers: int = 0  # processes decoding images (0: one per core, up to 8)

    def __post_init__(self) -> None:
        unknown = sorted(set(self.models) - set(MODELS))
        if unknown:
            raise ConfigError(f"models must be among {list(MODELS)}, got {unknown}")
        unknown = sorted(set(self.comparisons) - set(COMPARISONS))
        if unknown or not self.comparisons:
            raise ConfigError(f"comparisons must be among {list(COMPARISONS)}, got {unknown or 'none'}")
        check_workers(self.workers, zero_means_auto=True)


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


def run_benchmark(
    release: Path, real: Path, out: Path, cfg: BenchmarkConfig, *, progress: ProgressFn = no_progress
) -> list[dict[str, Any]]:
    """Train and score every comparison × regime × model × seed; writes metrics.csv, metrics.json, table.md."""
    out = claim_output(out, "benchmark", inputs=[release, real])  # before hours of training, not after
    manifest = read_manifest(real)
    rows = manifest.rows()
    held = held_out_patients(rows)
    workers = cfg.workers or min(os.cpu_count() or 1, 8)
    synthetic = synthetic_images(Path(release), held, cfg.size, workers)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    # Every real image once, kept on the device: the classifiers train from memory.
    pixels = _stack(read_gray_batch([manifest.image_path(r) for r in rows], cfg.size, workers)).to(device)
    synthetic = {config: images.to(device) for config, images in synthetic.items()}

    def real_set(labels: tuple[str, ...], split: str) -> tuple[torch.Tensor, torch.Tensor]:
        chosen = [i for i, r in enumerate(rows) if r["split"] == split and r["label"] in labels]
        return pixels[chosen], torch.tensor([int(rows[i]["label"] == "covid") for i in chosen])

    results, predictions = [], []
    jobs = [(c, m, s) for c in cfg.comparisons for m in cfg.models for s in cfg.seeds]
    done, total = 0, len(jobs) * 4
    for comparison, model_name, seed in jobs:
        negative, order = COMPARISONS[comparison]
        neg_x, _ = real_set((negative,), "train")
        pos_x, _ = real_set(("covid",), "train")
        val = real_set((negative, "covid"), "validation")
        test = real_set((negative, "covid"), "test")
        if not len(val[1]) or not len(test[1]):
            raise ConfigError(
                f"{real}: the {comparison} benchmark needs real validation and test images of both classes"
            )
        regimes = {
            "real": [pos_x],
            f"real + {order[0].upper()}": [pos_x, synthetic.get(order[0])],
            f"real + {order[0].upper()} + {order[1].upper()}": [
                pos_x,
                synthetic.get(order[0]),
                synthetic.get(order[1]),
            ],
            "synthetic only": [synthetic.get(order[0]), synthetic.get(order[1])],
        }
        for regime, positive_sets in regimes.items():
            positives = torch.cat([p for p in positive_sets if p is not None and len(p)] or [pos_x[:0]])
            x = torch.cat([neg_x, positives])
            y = torch.cat([torch.zeros(len(neg_x), dtype=torch.long), torch.ones(len(positives), dtype=torch.long)])
            if len(positives) == 0:
                continue
            p_test, epochs_run, model = _fit_and_score(model_name, x, y, val, test[0], cfg, seed, device)
            save_classifier(
                model,
                Path(out) / "models" / model_file(comparison, regime, model_name, seed),
                {"model": model_name, "comparison": comparison, "regime": regime, "seed": seed, "size": cfg.size},
            )
            y_test = test[1].numpy()
            point = point_metrics(y_test, p_test)
            ci = bootstrap_ci(y_test, p_test, resamples=cfg.bootstrap, seed=seed)
            results.append(
                {
                    "comparison": comparison,
                    "regime": regime,
                    "model": model_name,
                    "seed": seed,
                    "train_negatives": len(neg_x),
                    "train_positives": len(positives),
                    "skew": truncate(len(neg_x) / len(positives)),
                    "epochs": epochs_run,
                    "test_images": len(y_test),
                    **{k: point[k] for k in ("tp", "tn", "fp", "fn")},
                    **{m: point[m] for m in METRIC_NAMES},
                    **{f"{m}_ci": list(ci[m]) for m in METRIC_NAMES},
                }
            )
            predictions.append(
                {k: results[-1][k] for k in ("comparison", "regime", "model", "seed")}
                | {"y_true": y_test.tolist(), "p_covid": [round(float(p), 6) for p in p_test]}
            )
            done += 1
            progress("benchmark", done, total, f"{comparison}, {regime}, {model_name}")
    _write_outputs(Path(out), results, predictions, cfg, device)
    return results


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


def synthetic_images(release: Path, held: dict[str, str], size: int, workers: int = 1) -> dict[str, torch.Tensor]:
    """Task config → uint8 N×1×size×size of the release's images, minus those of held-out patients."""
    encoded: dict[str, list[bytes]] = {}
    for row in read_release(release).iter_rows(["task", "source_patient_id", "image"]):
        if row["source_patient_id"] not in held:
            encoded.setdefault(TASK_CONFIG[TASKS[row["task"]]], []).append(row["image"]["bytes"])
    return {config: _stack(read_gray_batch(data, size, workers)) for config, data in encoded.items()}


def _stack(pixels: np.ndarray) -> torch.Tensor:
    """N×H×W uint8 → N×1×H×W tensor."""
    return torch.from_numpy(pixels).unsqueeze(1)


def _fit_and_score(model_name, x, y, val, test_x, cfg: BenchmarkConfig, seed: int, device):
    """Train with early stopping on the validation loss; return the best model's P(covid) on the test images,
    the epochs run and the model."""
    torch.manual_seed(seed)  # torchvision builds its weights from the global generator
    model = build_model(model_name, cfg.pretrained).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr)
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
            loss = F.cross_entropy(logits.float(), y[index].to(device))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        val_loss = F.cross_entropy(
            torch.log(
                torch.from_numpy(predict_proba(model, val[0], device=device, batch=cfg.batch_size * 4)).clamp_min(1e-7)
            ),
            val[1],
        ).item()
        if val_loss < best - 1e-4:
            best, stale = val_loss, 0
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        else:
            stale += 1
            if stale >= cfg.patience:
                break
    model.load_state_dict(best_state)
    return predict_proba(model, test_x, device=device, batch=cfg.batch_size * 4)[:, 1], epochs_run, model


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
    out: Path, results: list[dict[str, Any]], predictions: list[dict[str, Any]], cfg: BenchmarkConfig, device
) -> None:
    from cxr_dataset import __version__
    from cxr_dataset.devices import describe

    record = {"config": asdict(cfg), "code_version": __version__, "device": describe(device), "results": results}
    atomic_write_text(out / PREDICTIONS_NAME, json.dumps(predictions) + "\n")
    atomic_write_text(out / METRICS_NAME, json.dumps(record, indent=2) + "\n")
    buf = io.StringIO()
    if results:
        writer = csv.DictWriter(buf, fieldnames=list(results[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows({k: json.dumps(v) if isinstance(v, list) else v for k, v in r.items()} for r in results)
    atomic_write_text(out / "metrics.csv", buf.getvalue())
    atomic_write_text(out / "table.md", seed_layout_table(results))


def seed_layout_table(results: list[dict[str, Any]]) -> str:
    """The seed's layout: per comparison, one row per model, one column per regime: SEN % (FN) and skew."""
    lines = []
    for comparison in dict.fromkeys(r["comparison"] for r in results):
        rows = [r for r in results if r["comparison"] == comparison]
        regimes = list(dict.fromkeys(r["regime"] for r in rows))
        lines += [
            f"### {comparison_title(comparison)}: sensitivity % on real test COVID-19 (FN, skew; 95% CI)",
            "",
            "| model | " + " | ".join(regimes) + " |",
            "|---|" + "---|" * len(regimes),
        ]
        for model in dict.fromkeys(r["model"] for r in rows):
            cells = []
            for regime in regimes:
                runs = [r for r in rows if r["model"] == model and r["regime"] == regime]
                r = runs[0]
                low, high = r["sensitivity_ci"]
                cells.append(
                    f"{100 * r['sensitivity']:.2f} (FN {r['fn']}, skew {r['skew']:.2f}; "
                    f"{100 * low:.1f}–{100 * high:.1f})"
                )
            lines.append(f"| {model} | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)
