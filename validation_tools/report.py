"""`cxrds report`: one folder a reviewer can read: report.md, a self-contained report.html, PNG figures.

A header (release, generators, real data, code, device), the headline table (sensitivity, specificity and
AUC with CIs), every metric, synthetic-image quality (`explain`), and figures with a caption, a reading guide
and plain-language warnings where they show a known failure: class balance, ROC curves, source → synthetic
pairs per generator, real beside synthetic images, Grad-CAM (heat at the borders), a UMAP (synthetic points
apart from every real group), and tiny test sets whose intervals span most of the range.
Everything is read from `cxrds baselines`'s outputs, the release and the prepared real data; nothing is typed in.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from cxr_dataset.errors import ReleaseError
from cxr_dataset.fileio import atomic_open, atomic_write_text
from cxr_dataset.imaging import read_gray, read_gray_batch
from cxr_dataset.manifest import read_manifest
from cxr_dataset.ownership import claimed_output
from cxr_dataset.progress import ProgressFn, no_progress
from cxr_dataset.release_folder import TASK_CONFIGS, read_release
from cxr_dataset.schema import TASK_CONFIG, TASKS
from validation_tools.balance import comparison_title, seed_skew_comparison
from validation_tools.baselines import (
    METRICS_NAME,
    PREDICTIONS_NAME,
    protocol_note,
    seed_layout_table,
    summary_blocks,
)
from validation_tools.metrics import wilson_interval
from validation_tools.report_render import Figure, ReportContent, to_html, to_markdown

FIGURES = ("balance.png", "roc.png", "pairs.png", "samples.png", "cam.png", "umap.png")
WIDE_INTERVAL = 0.5  # a sensitivity CI wider than this is a warning: the test set cannot tell regimes apart
BORDER_HEAT = 0.6  # Grad-CAM mass in the outer eighth of each side (44% of the area) above this: shortcut warning
APART = 2.0  # synthetic→nearest-real distance over real→nearest-real spacing above this: a domain-gap warning
CLUSTERED = 0.8  # share of a synthetic image's 10 nearest neighbours that are synthetic, above this: a warning


@dataclass(frozen=True)
class ReportResult:
    path: Path
    figures: list[Path]


def write_report(
    baselines: Path,
    release: Path,
    real: Path,
    out: Path,
    *,
    samples: int = 4,
    inception: Path | None = None,
    progress: ProgressFn = no_progress,
) -> ReportResult:
    """Write `out/report.md`, `out/report.html` and the figures; `inception` (torchvision Inception-v3
    weights as safetensors) adds FID/KID on its features."""
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    metrics_path, predictions_path = Path(baselines) / METRICS_NAME, Path(baselines) / PREDICTIONS_NAME
    if not metrics_path.is_file() or not predictions_path.is_file():
        raise ReleaseError(
            f"{baselines}: no {METRICS_NAME}/{PREDICTIONS_NAME}; run `cxrds baselines --out {baselines}`"
        )
    bench = json.loads(metrics_path.read_text())
    predictions = json.loads(predictions_path.read_text())
    with claimed_output(out, "report", inputs=[baselines, release, real], command="cxrds report") as claim:
        return _write_report(
            bench, predictions, Path(baselines), Path(release), Path(real), claim.root, samples, inception, progress
        )


def _write_report(
    bench: dict[str, Any],
    predictions: list[dict[str, Any]],
    baselines: Path,
    release: Path,
    real: Path,
    out: Path,
    samples: int,
    inception: Path | None,
    progress: ProgressFn,
) -> ReportResult:
    results = bench["results"]
    progress("report", 0, 5, "class balance, ROC curves")
    figures = [_balance_figure(results, out / "balance.png"), _roc_figure(predictions, out / "roc.png")]
    progress("report", 1, 5, "source → synthetic pairs, sample grid")
    figures += [_pairs_figure(release, real, out / "pairs.png", samples)]
    figures += [_sample_grid(release, real, out / "samples.png", samples)]
    progress("report", 2, 5, "FID/KID, UMAP, Grad-CAM")
    accept_unknown = bench["config"].get("accept_unknown_provenance", False)
    quality, more = _quality_and_cams(baselines, release, real, out / "cam.png", results, inception, accept_unknown)
    figures += more
    progress("report", 4, 5, "report.md, report.html")
    content = ReportContent(
        header=_header(release, real, bench),
        notes=_notes(real, bench),
        results=results,
        blocks=summary_blocks(results, bench.get("comparisons", [])),
        seed_table=seed_layout_table(results),
        seed_skew=seed_skew_comparison(),
        quality=quality,
        figures=[f for f in figures if f is not None],
        flags=_interval_flags(results),
    )
    atomic_write_text(out / "report.md", to_markdown(content))
    atomic_write_text(out / "report.html", to_html(content))
    progress("report", 5, 5)
    return ReportResult(out / "report.md", [f.path for f in content.figures])


def _header(release: Path, real: Path, bench: dict[str, Any]) -> list[tuple[str, str]]:
    """What the report is about, from the release's card and rows, the manifest and the baselines' record."""
    folder = read_release(release)
    generators: dict[tuple, int] = {}
    for row in folder.iter_rows(["task", "preset", "checkpoint_sha256", "precision"]):
        key = (TASKS[row["task"]], row["preset"], row["checkpoint_sha256"][:12], row["precision"] or "not recorded")
        generators[key] = generators.get(key, 0) + 1
    manifest = read_manifest(real)
    counts: dict[str, int] = {}
    for row in manifest.rows():
        counts[f"{row['label']}/{row['split']}"] = counts.get(f"{row['label']}/{row['split']}", 0) + 1
    sources = ", ".join(sorted({s.partition("=")[0] for s in manifest.meta.get("sources", [])})) or "not recorded"
    cfg = bench.get("config", {})
    return [
        (
            "release",
            f"{release.name}, version {folder.version or 'not recorded'}, "
            f"published {folder.card.get('date_published') or 'not recorded'}",
        ),
        *(
            (f"generator {task}", f"preset {preset}, checkpoint {sha}…, {precision}, {n} images")
            for (task, preset, sha, precision), n in sorted(generators.items())
        ),
        (
            "real data",
            f"{sources}; split {manifest.meta.get('split', '?')}; manifest {manifest.sha256[:12]}…; "
            + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())),
        ),
        (
            "classifiers",
            f"{', '.join(cfg.get('models', []))} at {cfg.get('size', '?')}², seeds {cfg.get('seeds')}, "
            f"up to {cfg.get('epochs')} epochs (early stopping on validation), {cfg.get('bootstrap')} bootstrap draws",
        ),
        (
            "made by",
            f"cxrds {bench.get('code_version', 'version not recorded')} on "
            f"{bench.get('device', 'a device not recorded')}",
        ),
    ]


def _notes(real: Path, bench: dict[str, Any]) -> list[str]:
    manifest = read_manifest(real)
    kinds = {s.partition("=")[0] for s in manifest.meta.get("sources", [])}
    notes = []
    if "phantom" in kinds:
        notes.append(
            "The real data here include the procedural phantom: these figures test the software end to end; "
            "they say nothing about chest X-rays or COVID-19."
        )
    confounded = source_confounding(manifest.rows())
    if confounded is not None:
        notes.append(
            f"Class follows source in the real data ({confounded}). A classifier can learn the source (hospital, "
            "scanner, era, processing) instead of the disease, so these figures rehearse the pipeline on real "
            "radiographs; they are not diagnostic accuracy and do not show that synthetic images help "
            "clinically."
        )
    limits = manifest.meta.get("train_limits") or {}
    if limits:
        notes.append(
            "Training images were limited to rehearse class imbalance (`prepare --limit-train "
            + ",".join(f"{k}={v}" for k, v in sorted(limits.items()))
            + "`): generators and classifiers saw only those; validation and test splits are whole."
        )
    if "validation" in bench and "synthetic" in bench:
        seeds = sorted({r["seed"] for r in bench["results"]})
        notes += protocol_note(bench["config"], bench, seeds)
    notes.append(
        "Every number below comes from one test split. A difference between regimes matters only if it "
        "exceeds the intervals and holds across seeds."
    )
    return notes


def source_confounding(rows: list[dict[str, Any]], threshold: float = 0.5) -> str | None:
    """A sentence on how far class follows the original source (Cramér's V ≥ `threshold`), else None.

    The source is the metadata's own `source` column where the source kept one (imagefolder `extra`)."""

    def origin(row: dict[str, Any]) -> str:
        extra = json.loads(row["extra"] or "{}")
        return str(extra.get("source") or row["source"])

    labels = sorted({r["label"] for r in rows})
    sources = sorted({origin(r) for r in rows})
    if len(labels) < 2 or len(sources) < 2:
        return None
    table = np.zeros((len(labels), len(sources)))
    for r in rows:
        table[labels.index(r["label"]), sources.index(origin(r))] += 1
    expected = table.sum(1, keepdims=True) * table.sum(0, keepdims=True) / table.sum()
    chi2 = float(((table - expected) ** 2 / expected).sum())
    v = (chi2 / (table.sum() * (min(table.shape) - 1))) ** 0.5
    if v < threshold:
        return None
    share = ", ".join(
        f"{label}: " + " / ".join(f"{s} {int(n)}" for s, n in zip(sources, table[i], strict=True) if n)
        for i, label in enumerate(labels)
    )
    return f"Cramér's V {v:.2f}; {share}"


def _interval_flags(results: list[dict[str, Any]]) -> list[str]:
    """A warning per comparison whose COVID-19 test images are too few for sensitivity to separate regimes:
    the widest Wilson interval of its rows (which, unlike the bootstrap's, does not collapse at 0 % or 100 %)."""
    flags = []
    for comparison in dict.fromkeys(r["comparison"] for r in results):
        rows = [r for r in results if r["comparison"] == comparison]
        positives = rows[0]["tp"] + rows[0]["fn"]
        width = max(high - low for low, high in (wilson_interval(r["tp"], r["tp"] + r["fn"]) for r in rows))
        if width >= WIDE_INTERVAL:
            flags.append(
                f"{comparison}: only {positives} COVID-19 test images; a sensitivity measured on them has a 95% "
                f"interval up to {width:.0%} wide (Wilson), so this test set cannot tell the regimes apart."
            )
    return flags


def _balance_figure(results: list[dict[str, Any]], path: Path) -> Figure:
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
    return Figure(
        _save(fig, path),
        "Training images per regime",
        "Real negatives and COVID-19 positives (real, plus each regime's synthetic images) in each training set.",
        "The real-only bars show the imbalance the synthetic images are meant to offset; the test set is real "
        "and the same for every regime.",
    )


def _roc_figure(predictions: list[dict[str, Any]], path: Path) -> Figure:
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
        _save(fig, path),
        "ROC curves on the real test images",
        "Sensitivity against 1 − specificity over every threshold, one curve per regime (first model and seed).",
        "Curves nearer the top-left corner rank COVID-19 images above negatives better; the dotted diagonal is "
        "chance. Regimes whose curves overlap differ only in where a 0.5 threshold falls.",
    )


def _sample_grid(release: Path, real: Path, path: Path, n: int) -> Figure:
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
    return Figure(
        _save(fig, path),
        "Real COVID-19 images beside synthetic ones",
        "Top row: real COVID-19 images of the prepared data; below: the first synthetic images of each generator.",
        "Synthetic images should look like the top row in what matters (opacities, their place in the lungs), "
        "not only in texture or brightness.",
    )


def _pairs_figure(release: Path, real: Path, path: Path, n: int) -> Figure | None:
    """Per generator, `n` real source images (top) above the synthetic images made from them (bottom)."""
    import matplotlib.pyplot as plt
    from PIL import Image

    manifest = read_manifest(real)
    by_id = {r["id"]: r for r in manifest.rows()}
    folder = read_release(release)
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
        _save(fig, path),
        "Source → synthetic pairs per generator",
        "Each column: a real source image (upper row) and the synthetic image the generator made from it (lower).",
        "A translation model should keep the patient's anatomy (outline, ribs, devices) and change the lungs; "
        "a pair that differs everywhere means the generator invents images, one that differs nowhere means it "
        "learned nothing.",
    )


def _quality_and_cams(
    baselines: Path, release: Path, real: Path, cam_path: Path, results, inception: Path | None, accept_unknown: bool
):
    """Quality rows per comparison from its real-only small-cnn (judged-COVID share, FID, KID; with `inception`
    also on Inception-v3 features), and a Grad-CAM grid from the model trained with both generators' images.
    Empty when no small-cnn was trained."""
    from validation_tools.audit import held_out_patients
    from validation_tools.baselines import load_classifier, model_file, synthetic_images
    from validation_tools.explain import (
        cam_maps,
        covid_probability,
        inception_features,
        load_inception,
        penultimate_features,
    )

    runs = [r for r in results if r["model"] == "small-cnn"]
    if not runs:
        return [], []
    seed = runs[0]["seed"]
    manifest = read_manifest(real)
    rows = manifest.rows()
    first, meta = load_classifier(baselines / "models" / model_file(runs[0]["comparison"], "real", "small-cnn", seed))
    size = meta["size"]  # every classifier of one baselines run shares it
    synthetic, _ = synthetic_images(release, held_out_patients(rows), size, accept_unknown=accept_unknown)
    spaces = {}
    for comparison in dict.fromkeys(r["comparison"] for r in runs):
        model, _ = load_classifier(baselines / "models" / model_file(comparison, "real", "small-cnn", seed))
        spaces[f"small-cnn, real-only, {comparison}"] = (partial(penultimate_features, model), model)
    if inception is not None:
        spaces["Inception-v3"] = (partial(inception_features, load_inception(inception)), None)
    quality = quality_rows(manifest, synthetic, size, spaces)
    cam_rows = []
    for comparison in dict.fromkeys(r["comparison"] for r in runs):
        with_synthetic = [r for r in runs if r["comparison"] == comparison and r["regime"].startswith("real + ")]
        both = max(with_synthetic, key=lambda r: r["train_positives"])["regime"]  # real + both generators
        model, _ = load_classifier(baselines / "models" / model_file(comparison, both, "small-cnn", seed))
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
    embed |= {f"synthetic {config.upper()}": images[:300] for config, images in synthetic.items()}
    features = {n: penultimate_features(first, x) for n, x in embed.items()}
    figures.append(_umap_figure(features, cam_path.with_name("umap.png")))
    return quality, figures


SMALL_N = 1000  # below this many images a side, FID is visibly biased upward: read it against the reference rows


def quality_rows(manifest, synthetic: dict[str, Any], size: int, spaces: dict[str, Any]) -> list[dict[str, Any]]:
    """FID and KID (mean ± SD over subsets) per generator against real COVID-19 images it did not train towards,
    with reference rows in the same feature space: real vs real (two halves of those COVID-19 images), each
    generator against its own source class, and the real source classes against COVID-19. n on every row."""
    from validation_tools.explain import fid, judged_covid_share, kid_spread

    rows = manifest.rows()
    held = [r for r in rows if r["label"] == "covid" and r["split"] != "train"]
    targets_note = "COVID-19 not trained towards (validation + test)"
    if len(held) < 4:  # nothing held out: the generator's own targets are all there is
        held, targets_note = [r for r in rows if r["label"] == "covid"], "COVID-19 incl. the generator's targets"
    real = {"covid": _images(manifest, held, size)}
    for label in ("normal", "pneumonia"):
        chosen = [r for r in rows if r["label"] == label and r["split"] != "train"] or [
            r for r in rows if r["label"] == label
        ]
        if chosen:
            real[label] = _images(manifest, chosen, size)
    half = np.random.default_rng(0).permutation(len(real["covid"]))
    halves = {"half a": half[: len(half) // 2], "half b": half[len(half) // 2 :]}  # of the COVID-19 features
    out = []
    for space, (features, classifier) in spaces.items():
        cache: dict[str, np.ndarray] = {}
        pairs = []
        for config, images in synthetic.items():
            source = "normal" if config == "g_nc" else "pneumonia"
            pairs.append((f"{config.upper()} vs real {targets_note}", (config, images), ("covid", real["covid"])))
            if source in real:
                pairs.append(
                    (
                        f"reference: {config.upper()} vs real {source} (its source)",
                        (config, images),
                        (source, real[source]),
                    )
                )
        pairs.append(("reference: real COVID-19 vs real COVID-19 (two halves)", ("half a", None), ("half b", None)))
        for label in ("normal", "pneumonia"):
            if label in real:
                pairs.append(
                    (f"reference: real {label} vs real COVID-19", (label, real[label]), ("covid", real["covid"]))
                )
        for name, (a_name, a), (b_name, b) in pairs:
            for key, images in ((a_name, a), (b_name, b), ("covid", real["covid"])):
                if images is not None and key not in cache:
                    cache[key] = features(images)
            for key, index in halves.items():
                cache[key] = cache["covid"][index]
            fa, fb = cache[a_name], cache[b_name]
            if len(fa) < 2 or len(fb) < 2:
                continue
            kid_mean, kid_sd = kid_spread(fa, fb)
            row = {"features": space, "pair": name, "n": f"{len(fa)} vs {len(fb)}", "FID": fid(fa, fb)}
            spread = "one subset, no spread" if kid_sd != kid_sd else f"± {kid_sd:.2g}"
            row |= {"KID": f"{kid_mean:.4g} {spread}", "small n": min(len(fa), len(fb)) < SMALL_N}
            if a_name in synthetic and classifier is not None:
                row["judged covid"] = judged_covid_share(classifier, a)
            out.append(row)
    return out


def _images(manifest, rows: list[dict[str, Any]], size: int):
    """The rows' images as a uint8 N×1×size×size tensor."""
    import torch

    return torch.from_numpy(read_gray_batch([manifest.image_path(r) for r in rows], size)).unsqueeze(1)


def _umap_figure(features: dict[str, np.ndarray], path: Path) -> Figure:
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
    return Figure(
        _save(fig, path),
        "Real and synthetic images in the classifier's feature space (UMAP)",
        "Each point is one image, placed by UMAP from the real-only classifier's penultimate features.",
        "Synthetic COVID-19 points should fall among the real COVID-19 points. UMAP keeps neighbourhoods, not "
        "distances: read clusters, not gaps. Measured on the features themselves: synthetic neighbours of a "
        f"synthetic image {clustered:.0%} (mixed: {pool_share:.0%}); distance to the nearest real image "
        f"{ratio:.1f}× the spacing between real images.",
        flags,
    )


def synthetic_neighbour_share(features: dict[str, np.ndarray], k: int = 10) -> float:
    """Mean share of synthetic images among each synthetic image's `k` nearest neighbours (itself excluded)
    in a pool of real and synthetic features: a nearest-neighbour two-sample test."""
    from sklearn.neighbors import NearestNeighbors

    pool = np.concatenate(list(features.values()))
    synthetic = np.concatenate([[n.startswith("synthetic")] * len(f) for n, f in features.items()])
    k = min(k, len(pool) - 1)
    _, neighbours = NearestNeighbors(n_neighbors=k + 1).fit(pool).kneighbors(pool[synthetic])
    return float(synthetic[neighbours[:, 1:]].mean())


def domain_gap(features: dict[str, np.ndarray]) -> float:
    """Median distance from each synthetic image to its nearest real image, over the median distance from each
    real image to its nearest other real image (features keyed 'real ...' and 'synthetic ...'). 1: as close
    as real images are to each other."""
    from sklearn.neighbors import NearestNeighbors

    real = np.concatenate([f for n, f in features.items() if n.startswith("real")])
    synthetic = np.concatenate([f for n, f in features.items() if n.startswith("synthetic")])
    index = NearestNeighbors(n_neighbors=2).fit(real)
    spacing = float(np.median(index.kneighbors(real)[0][:, 1]))
    apart = float(np.median(index.kneighbors(synthetic, n_neighbors=1)[0][:, 0]))
    return apart / spacing if spacing > 0 else float("inf")


def _cam_figure(rows, path: Path) -> Figure:
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
        _save(fig, path),
        "Where the classifier looks (Grad-CAM)",
        "Correctly classified real test images of the model trained with both generators' images; warm colours "
        "mark the regions that raised its score for the true class.",
        "Heat should sit in the lungs. Heat on borders, letters or devices means a shortcut that will not "
        f"transfer to other hospitals (here {share:.0%} of the heat is in the outer eighth).",
        flags,
    )


def border_share(maps: np.ndarray) -> float:
    """Share of the total Grad-CAM mass (N×H×W) within the outer eighth of each side."""
    height, width = maps.shape[-2:]
    inner = np.zeros((height, width), bool)
    inner[height // 8 : height - height // 8, width // 8 : width - width // 8] = True
    total = float(maps.sum())
    return float(maps[..., ~inner].sum()) / total if total > 0 else 0.0


def _first_runs(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The runs of the first model and seed (figures show one model; the tables show all)."""
    if not runs:
        return []
    model, seed = runs[0]["model"], runs[0]["seed"]
    return [r for r in runs if r["model"] == model and r["seed"] == seed]


def _save(fig, path: Path) -> Path:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    with atomic_open(path) as f:
        fig.savefig(f, format="png", dpi=110, metadata={"Software": None})  # no version stamp: same bytes
    plt.close(fig)
    return path
