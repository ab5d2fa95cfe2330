"""The report's figures, each with a caption, a reading guide and plain-language warnings where it shows a
known failure: class balance, ROC curves, source → synthetic pairs, real beside synthetic images, Grad-CAM
(heat at the borders) and a UMAP (synthetic points apart from every real group)."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np

from cxr_dataset.fileio import atomic_open
from cxr_dataset.imaging import read_gray
from cxr_dataset.manifest import Manifest
from cxr_dataset.release_folder import TASK_CONFIGS, Release
from cxr_dataset.schema import TASK_CONFIG
from validation_tools.balance import comparison_title
from validation_tools.report_quality import border_share, domain_gap, synthetic_neighbour_share
from validation_tools.report_render import Figure

BORDER_HEAT = 0.6  # Grad-CAM mass in the outer eighth of each side (44% of the area) above this: shortcut warning
APART = 2.0  # synthetic→nearest-real distance over real→nearest-real spacing above this: a domain-gap warning
CLUSTERED = 0.8  # share of a synthetic image's 10 nearest neighbours that are synthetic, above this: a warning


def balance_figure(results: list[dict[str, Any]], path: Path) -> Figure:
    import matplotlib.pyplot as plt

    runs = _first_runs(results)
    comparisons = list(dict.fromkeys(r["comparison"] for r in runs))
    fig, axes = plt.subplots(1, len(comparisons), figsize=(6 * len(comparisons), 5), squeeze=False)
    for ax, comparison in zip(axes[0], comparisons, strict=True):
        rows = [r for r in runs if r["comparison"] == comparison]
        x = np.arange(len(rows))
        ax.bar(x - 0.2, [r["train_negatives"] for r in rows], 0.4, label="negatives (real)")
        ax.bar(x + 0.2, [r["train_positives"] for r in rows], 0.4, label="COVID-19 positives")
        ax.set_xticks(x, [r["regime"] for r in rows], fontsize=8, rotation=30, ha="right")  # long names: no overlap
        ax.set_title(f"{comparison_title(comparison)}: training images")
        ax.set_ylabel("images")
        ax.legend(fontsize=8)
    return Figure(
        save_figure(fig, path),
        "Training images per regime",
        "Real negatives and COVID-19 positives (real, plus each regime's synthetic images) in each training set.",
        "The real-only bars show the imbalance the synthetic images are meant to offset; the test set is real "
        "and the same for every regime.",
    )


def roc_figure(predictions: list[dict[str, Any]], path: Path) -> Figure:
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
    return Figure(
        save_figure(fig, path),
        "ROC curves on the real test images",
        "Sensitivity against 1 − specificity over every threshold, one curve per regime (first model and seed).",
        "Curves nearer the top-left corner rank COVID-19 images above negatives better; the dotted diagonal is "
        "chance. Regimes whose curves overlap differ only in where a 0.5 threshold falls.",
    )


def sample_grid(folder: Release, manifest: Manifest, rows: list[dict[str, Any]], path: Path, n: int) -> Figure:
    """Row 1: real COVID-19 training images; rows 2-3: synthetic images of each task config."""
    import matplotlib.pyplot as plt
    import pyarrow.parquet as pq
    from PIL import Image

    covid = [r for r in rows if r["label"] == "covid"][:n]
    grid = {"real COVID-19": [read_gray(manifest.image_path(r)) for r in covid]}
    for config in TASK_CONFIGS:
        files = folder.data_files(config) if config in folder.counts else []
        if files:
            table = pq.read_table(files[0], columns=["image"]).slice(0, n).to_pylist()
            images = [np.asarray(Image.open(io.BytesIO(r["image"]["bytes"])).convert("L")) for r in table]
            grid[f"synthetic {config.upper()}"] = images
    fig, axes = plt.subplots(len(grid), n, figsize=(2 * n, 2.1 * len(grid)), squeeze=False)
    for axes_row, (name, images) in zip(axes, grid.items(), strict=True):
        for i, ax in enumerate(axes_row):
            ax.axis("off")
            if i < len(images):
                ax.imshow(images[i], cmap="gray", vmin=0, vmax=255)
        axes_row[0].set_title(name, fontsize=9, loc="left")
    return Figure(
        save_figure(fig, path),
        "Real COVID-19 images beside synthetic ones",
        "Top row: real COVID-19 images of the prepared data; below: the first synthetic images of each generator.",
        "Synthetic images should look like the top row in what matters (opacities, their place in the lungs), "
        "not only in texture or brightness.",
    )


def pairs_figure(folder: Release, manifest: Manifest, rows: list[dict[str, Any]], path: Path, n: int) -> Figure | None:
    """Per generator, `n` real source images (top) above the synthetic images made from them (bottom)."""
    import matplotlib.pyplot as plt
    from PIL import Image

    by_id = {r["id"]: r for r in rows}
    pairs: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {}
    for task, config in TASK_CONFIG.items():
        chosen: list[tuple[np.ndarray, np.ndarray]] = []
        for row in folder.iter_rows(["source_image_id", "image"], configs=(config,)):
            source = by_id.get(row["source_image_id"])
            if source is not None:
                synthetic = np.asarray(Image.open(io.BytesIO(row["image"]["bytes"])).convert("L"))
                chosen.append((read_gray(manifest.image_path(source)), synthetic))
            if len(chosen) == n:
                break  # the first row group of each config, not the whole release
        if chosen:
            pairs[task] = chosen
    if not pairs:
        return None  # e.g. the seed's zips: no source images recorded
    fig, axes = plt.subplots(2 * len(pairs), n, figsize=(2 * n, 4.2 * len(pairs)), squeeze=False)
    for t, (task, chosen) in enumerate(sorted(pairs.items())):
        for i in range(n):
            for r in (0, 1):
                ax = axes[2 * t + r][i]
                ax.axis("off")
                if i < len(chosen):
                    ax.imshow(chosen[i][r], cmap="gray", vmin=0, vmax=255)
        source_class = task.split("2")[0]
        axes[2 * t][0].set_title(f"{task}: real {source_class} (source)", fontsize=9, loc="left")
        axes[2 * t + 1][0].set_title(f"{task}: synthetic COVID-19 made from it", fontsize=9, loc="left")
    return Figure(
        save_figure(fig, path),
        "Source → synthetic pairs per generator",
        "Each column: a real source image (upper row) and the synthetic image the generator made from it (lower).",
        "A translation model should keep the patient's anatomy (outline, ribs, devices) and change the lungs; "
        "a pair that differs everywhere means the generator invents images, one that differs nowhere means it "
        "learned nothing.",
    )


def umap_figure(features: dict[str, np.ndarray], path: Path) -> Figure:
    """UMAP (umap-learn, seeded) of the real-only classifier's features, coloured by group, with a warning
    when synthetic images sit apart from every real one in that feature space."""
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
    ratio, clustered = domain_gap(features), synthetic_neighbour_share(features)
    pool_share = sum(len(f) for n, f in features.items() if n.startswith("synthetic")) / len(stacked)
    return Figure(
        save_figure(fig, path),
        "Real and synthetic images in the classifier's feature space (UMAP)",
        "Each point is one image, placed by UMAP from the real-only classifier's penultimate features.",
        "Synthetic COVID-19 points should fall among the real COVID-19 points. UMAP keeps neighbourhoods, not "
        "distances: read clusters, not gaps. Measured on the features themselves: synthetic neighbours of a "
        f"synthetic image {clustered:.0%} (mixed: {pool_share:.0%}); distance to the nearest real image "
        f"{ratio:.1f}× the spacing between real images.",
        _feature_space_flags(clustered, pool_share, ratio),
    )


def _feature_space_flags(clustered: float, pool_share: float, ratio: float) -> list[str]:
    """Warnings when synthetic images cluster among themselves or lie apart from every real image."""
    flags = []
    if clustered > CLUSTERED:
        flags.append(
            f"The synthetic images cluster among themselves: {clustered:.0%} of each one's 10 nearest neighbours "
            f"in the classifier's feature space are synthetic, where {pool_share:.0%} would be expected if they "
            "mixed with the real images. A classifier can tell them apart from real COVID-19 images, and may "
            "learn 'synthetic' instead of 'COVID-19'."
        )
    if ratio > APART:
        flags.append(
            f"The synthetic images lie apart from all real images: in the classifier's feature space the median "
            f"distance from a synthetic image to the nearest real one is {ratio:.1f}× the spacing between real "
            "images. The generator has not reached the real look, and a classifier can tell the two apart "
            "(it may learn 'synthetic', not 'COVID-19')."
        )
    return flags


def cam_figure(rows, path: Path) -> Figure:
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
    share = border_share(np.concatenate([maps for _, _, maps in rows]))
    flags = []
    if share > BORDER_HEAT:
        flags.append(
            f"{share:.0%} of the Grad-CAM heat lies in the outer eighth of the images (44% of their area), where "
            "text markers, collimation edges and devices are, not in the lungs: the classifier may be using "
            "such shortcuts rather than the disease."
        )
    return Figure(
        save_figure(fig, path),
        "Where the classifier looks (Grad-CAM)",
        "Correctly classified real test images of the model trained with both generators' images; warm colours "
        "mark the regions that raised its score for the true class.",
        "Heat should sit in the lungs. Heat on borders, letters or devices means a shortcut that will not "
        f"transfer to other hospitals (here {share:.0%} of the heat is in the outer eighth).",
        flags,
    )


def _first_runs(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The runs of the first model and seed (figures show one model; the tables show all)."""
    if not runs:
        return []
    model, seed = runs[0]["model"], runs[0]["seed"]
    return [r for r in runs if r["model"] == model and r["seed"] == seed]


def save_figure(fig, path: Path) -> Path:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    with atomic_open(path) as f:
        fig.savefig(f, format="png", dpi=110, metadata={"Software": None})  # no version stamp: same bytes
    plt.close(fig)
    return path
