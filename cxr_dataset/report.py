"""`cxrds report`: one folder a reviewer can read: report.md, the metrics table with CIs, and PNG figures.

Figures: class balance of every training regime, ROC curves per comparison and regime, a grid of real
COVID-19 images beside synthetic ones, Grad-CAM maps and a UMAP; plus synthetic-image quality (`explain`).
Everything is read from `cxrds benchmark`'s outputs, the release and the prepared real data; nothing is typed in.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cxr_dataset.balance import comparison_title
from cxr_dataset.baselines import METRICS_NAME, PREDICTIONS_NAME, seed_layout_table
from cxr_dataset.errors import ReleaseError
from cxr_dataset.fileio import atomic_write_text
from cxr_dataset.imaging import read_gray, read_gray_batch
from cxr_dataset.manifest import read_manifest
from cxr_dataset.metrics import METRIC_NAMES
from cxr_dataset.ownership import claim_output
from cxr_dataset.progress import ProgressFn, no_progress
from cxr_dataset.release_folder import TASK_CONFIGS, read_release

FIGURES = ("balance.png", "roc.png", "samples.png", "cam.png", "umap.png")


@dataclass(frozen=True)
class ReportResult:
    path: Path
    figures: list[Path]


def write_report(
    benchmark: Path,
    release: Path,
    real: Path,
    out: Path,
    *,
    samples: int = 4,
    inception: Path | None = None,
    progress: ProgressFn = no_progress,
) -> ReportResult:
    """Write `out/report.md` and its figures; `inception` (torchvision Inception-v3 weights as safetensors)
    adds FID/KID on its features."""
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    metrics_path, predictions_path = Path(benchmark) / METRICS_NAME, Path(benchmark) / PREDICTIONS_NAME
    if not metrics_path.is_file() or not predictions_path.is_file():
        raise ReleaseError(
            f"{benchmark}: no {METRICS_NAME}/{PREDICTIONS_NAME}; run `cxrds benchmark --out {benchmark}`"
        )
    results = json.loads(metrics_path.read_text())["results"]
    predictions = json.loads(predictions_path.read_text())
    out = claim_output(out, "report", inputs=[benchmark, release, real])
    progress("report", 0, 5, "class balance")
    figures = [_balance_figure(results, out / "balance.png")]
    progress("report", 1, 5, "ROC curves")
    figures.append(_roc_figure(predictions, out / "roc.png"))
    progress("report", 2, 5, "sample grid")
    figures.append(_sample_grid(Path(release), Path(real), out / "samples.png", samples))
    progress("report", 3, 5, "FID/KID, UMAP, Grad-CAM")
    quality, cam = _quality_and_cams(Path(benchmark), Path(release), Path(real), out / "cam.png", results, inception)
    figures += cam
    progress("report", 4, 5, "report.md")
    atomic_write_text(out / "report.md", _markdown(results, figures, quality))
    progress("report", 5, 5)
    return ReportResult(out / "report.md", figures)


def _balance_figure(results: list[dict[str, Any]], path: Path) -> Path:
    import matplotlib.pyplot as plt

    runs = _first_runs(results)
    comparisons = list(dict.fromkeys(r["comparison"] for r in runs))
    fig, axes = plt.subplots(1, len(comparisons), figsize=(6 * len(comparisons), 4), squeeze=False)
    for ax, comparison in zip(axes[0], comparisons, strict=True):
        rows = [r for r in runs if r["comparison"] == comparison]
        x = np.arange(len(rows))
        ax.bar(x - 0.2, [r["train_negatives"] for r in rows], 0.4, label="negatives (real)")
        ax.bar(x + 0.2, [r["train_positives"] for r in rows], 0.4, label="COVID-19 positives")
        ax.set_xticks(x, [r["regime"].replace(" + ", "\n+ ") for r in rows], fontsize=8)
        ax.set_title(f"{comparison_title(comparison)}: training images")
        ax.set_ylabel("images")
        ax.legend(fontsize=8)
    return _save(fig, path)


def _roc_figure(predictions: list[dict[str, Any]], path: Path) -> Path:
    import matplotlib.pyplot as plt
    from sklearn.metrics import roc_auc_score, roc_curve

    runs = _first_runs(predictions)
    comparisons = list(dict.fromkeys(r["comparison"] for r in runs))
    fig, axes = plt.subplots(1, len(comparisons), figsize=(5 * len(comparisons), 4.5), squeeze=False)
    for ax, comparison in zip(axes[0], comparisons, strict=True):
        for run in (r for r in runs if r["comparison"] == comparison):
            y, p = np.asarray(run["y_true"]), np.asarray(run["p_covid"])
            if 0 < y.sum() < len(y):
                fpr, tpr, _ = roc_curve(y, p)
                ax.plot(fpr, tpr, label=f"{run['regime']} (AUC {roc_auc_score(y, p):.2f})")
        ax.plot([0, 1], [0, 1], "k:", linewidth=0.8)
        ax.set(
            xlabel="1 − specificity", ylabel="sensitivity", title=f"{comparison_title(comparison)} ({runs[0]['model']})"
        )
        ax.legend(fontsize=7, loc="lower right")
    return _save(fig, path)


def _sample_grid(release: Path, real: Path, path: Path, n: int) -> Path:
    """Row 1: real COVID-19 training images; rows 2-3: synthetic images of each task config."""
    import matplotlib.pyplot as plt
    import pyarrow.parquet as pq
    from PIL import Image

    manifest = read_manifest(real)
    rows = {"real COVID-19": [read_gray(manifest.image_path(r)) for r in manifest.rows(label="covid")[:n]]}
    folder = read_release(release)
    for config in TASK_CONFIGS:
        files = folder.data_files(config) if config in folder.counts else []
        if files:
            table = pq.read_table(files[0], columns=["image"]).slice(0, n).to_pylist()
            images = [np.asarray(Image.open(io.BytesIO(r["image"]["bytes"])).convert("L")) for r in table]
            rows[f"synthetic {config.upper()}"] = images
    fig, axes = plt.subplots(len(rows), n, figsize=(2 * n, 2.1 * len(rows)), squeeze=False)
    for axes_row, (name, images) in zip(axes, rows.items(), strict=True):
        for i, ax in enumerate(axes_row):
            ax.axis("off")
            if i < len(images):
                ax.imshow(images[i], cmap="gray", vmin=0, vmax=255)
        axes_row[0].set_title(name, fontsize=9, loc="left")
    return _save(fig, path)


def _quality_and_cams(benchmark: Path, release: Path, real: Path, cam_path: Path, results, inception: Path | None):
    """Quality rows per comparison from its real-only small-cnn (judged-COVID share, FID, KID; with `inception`
    also on Inception-v3 features), and a Grad-CAM grid from the model trained with both generators' images.
    Empty when no small-cnn was benchmarked."""
    import torch

    from cxr_dataset.audit import held_out_patients
    from cxr_dataset.baselines import load_classifier, model_file, synthetic_images
    from cxr_dataset.explain import (
        cam_maps,
        covid_probability,
        fid,
        inception_features,
        judged_covid_share,
        kid,
        load_inception,
        penultimate_features,
    )

    runs = [r for r in results if r["model"] == "small-cnn"]
    if not runs:
        return [], []
    seed = runs[0]["seed"]
    manifest = read_manifest(real)
    rows = manifest.rows()
    first, meta = load_classifier(benchmark / "models" / model_file(runs[0]["comparison"], "real", "small-cnn", seed))
    size = meta["size"]  # every classifier of one benchmark run shares it
    synthetic = synthetic_images(release, held_out_patients(rows), size)
    every = torch.cat(list(synthetic.values()))
    covid = _images(manifest, manifest.rows(label="covid", split="train"), size)
    on_inception = {}
    if inception is not None:
        net = load_inception(inception)
        real_features, synth_features = inception_features(net, covid), inception_features(net, every)
        on_inception = {
            "FID (Inception)": fid(real_features, synth_features),
            "KID (Inception)": kid(real_features, synth_features),
        }
    quality, cam_rows = [], []
    for comparison in dict.fromkeys(r["comparison"] for r in runs):
        model, _ = load_classifier(benchmark / "models" / model_file(comparison, "real", "small-cnn", seed))
        real_features, synth_features = penultimate_features(model, covid), penultimate_features(model, every)
        quality.append(
            {
                "comparison": comparison,
                **{f"judged covid ({c})": judged_covid_share(model, x) for c, x in synthetic.items()},
                "FID": fid(real_features, synth_features),
                "KID": kid(real_features, synth_features),
                **on_inception,
            }
        )
        both = [r["regime"] for r in runs if r["comparison"] == comparison][2]  # real + both generators
        model, _ = load_classifier(benchmark / "models" / model_file(comparison, both, "small-cnn", seed))
        negative = comparison.split(" vs ")[0]
        test = [r for r in rows if r["split"] == "test" and r["label"] in (negative, "covid")]
        images = _images(manifest, test, size)
        truth = np.array([int(r["label"] == "covid") for r in test])
        right = (covid_probability(model, images) >= 0.5).astype(int) == truth
        for label in (1, 0):
            chosen = np.nonzero(right & (truth == label))[0][:4]
            if len(chosen):
                maps = cam_maps(model, images[chosen], [label] * len(chosen))
                cam_rows.append(
                    (
                        f"{comparison_title(comparison)}: {'COVID-19' if label else negative}",
                        images[chosen, 0].numpy(),
                        maps,
                    )
                )
    figures = [_cam_figure(cam_rows, cam_path)] if cam_rows else []
    groups = {
        f"real {label}": [r for r in rows if r["label"] == label][:300] for label in ("normal", "pneumonia", "covid")
    }
    embed = {name: _images(manifest, chosen, size) for name, chosen in groups.items() if chosen}
    embed["synthetic"] = every[:300]
    figures.append(
        _umap_figure({n: penultimate_features(first, x) for n, x in embed.items()}, cam_path.with_name("umap.png"))
    )
    return quality, figures


def _images(manifest, rows: list[dict[str, Any]], size: int):
    """The rows' images as a uint8 N×1×size×size tensor."""
    import torch

    return torch.from_numpy(read_gray_batch([manifest.image_path(r) for r in rows], size)).unsqueeze(1)


def _umap_figure(features: dict[str, np.ndarray], path: Path) -> Path:
    """UMAP (umap-learn, seeded) of the real-only classifier's features, coloured by group."""
    import warnings

    import matplotlib.pyplot as plt
    import umap
    from sklearn.neighbors import NearestNeighbors

    stacked = np.concatenate(list(features.values()))
    k = min(15, len(stacked) - 1)
    # Exact neighbours from scikit-learn: at report sizes they are fast, and they spare umap's NN-descent,
    # whose JIT compilation took 12 of a small report's 20 seconds.
    distances, indices = NearestNeighbors(n_neighbors=k).fit(stacked).kneighbors(stacked)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "n_jobs overridden by random_state": we want the seed
        reducer = umap.UMAP(n_neighbors=k, random_state=0, precomputed_knn=(indices, distances, None))
        points = reducer.fit_transform(stacked)
    fig, ax = plt.subplots(figsize=(5.5, 4.5))
    start = 0
    for name, group in features.items():
        ax.scatter(*points[start : start + len(group)].T, s=8, alpha=0.7, label=f"{name} ({len(group)})")
        start += len(group)
    ax.set(title="UMAP of the real-only classifier's features", xticks=[], yticks=[])
    ax.legend(fontsize=8)
    return _save(fig, path)


def _cam_figure(rows, path: Path) -> Path:
    import matplotlib.pyplot as plt

    columns = max(len(images) for _, images, _ in rows)
    fig, axes = plt.subplots(len(rows), columns, figsize=(2 * columns, 2.1 * len(rows)), squeeze=False)
    for axes_row, (name, images, maps) in zip(axes, rows, strict=True):
        for i, ax in enumerate(axes_row):
            ax.axis("off")
            if i < len(images):
                ax.imshow(images[i], cmap="gray", vmin=0, vmax=255)
                ax.imshow(maps[i], cmap="jet", alpha=0.35, vmin=0, vmax=1)
        axes_row[0].set_title(f"{name} (Grad-CAM, correctly classified)", fontsize=8, loc="left")
    return _save(fig, path)


def _markdown(results: list[dict[str, Any]], figures: list[Path], quality: list[dict[str, Any]]) -> str:
    header = "| comparison | regime | model | seed | " + " | ".join(METRIC_NAMES) + " |"
    lines = [
        "# cxrds benchmark report",
        "",
        "Classifiers were trained on the real training split plus each regime's synthetic positives, "
        "early-stopped on the real validation split, and scored on the real test split. Intervals are "
        "bootstrap 95% CIs over the test images.",
        "",
        "## Sensitivity in the seed's layout",
        "",
        seed_layout_table(results),
        "## All metrics",
        "",
        header,
        "|" + "---|" * (4 + len(METRIC_NAMES)),
    ]
    for r in results:
        cells = [f"{r[m]:.3f} ({r[f'{m}_ci'][0]:.3f}–{r[f'{m}_ci'][1]:.3f})" for m in METRIC_NAMES]
        lines.append(f"| {r['comparison']} | {r['regime']} | {r['model']} | {r['seed']} | " + " | ".join(cells) + " |")
    if quality:
        names = list(dict.fromkeys(k for q in quality for k in q if k != "comparison"))
        lines += [
            "",
            "## Synthetic image quality",
            "",
            "Judged by the small CNN trained on real images only: the share of synthetic images it calls "
            "COVID-19, and FID/KID between synthetic and real COVID-19 training images on its penultimate "
            "features (not comparable with ImageNet-Inception FIDs). Where given, the Inception columns use "
            "torchvision's Inception-v3 pool features of the same images.",
            "",
            "| comparison | " + " | ".join(names) + " |",
            "|---|" + "---|" * len(names),
        ]
        for q in quality:
            lines.append(f"| {q['comparison']} | " + " | ".join(f"{q.get(n, float('nan')):.4g}" for n in names) + " |")
    lines += ["", "## Figures", ""]
    lines += [f"![{p.stem}]({p.name})" for p in figures]
    return "\n".join(lines) + "\n"


def _first_runs(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The runs of the first model and seed (figures show one model; the tables show all)."""
    if not runs:
        return []
    model, seed = runs[0]["model"], runs[0]["seed"]
    return [r for r in runs if r["model"] == model and r["seed"] == seed]


def _save(fig, path: Path) -> Path:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(path, dpi=110, metadata={"Software": None})  # no version stamp: same inputs, same bytes
    plt.close(fig)
    return path
