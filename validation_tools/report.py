"""`cxrds report`: one folder a reviewer can read: report.md, a self-contained report.html, PNG figures.

A header (release, generators, real data, code, device), the headline table (sensitivity, specificity and
AUC with CIs), every metric, synthetic-image quality (`explain`), and figures with a caption, a reading guide
and plain-language warnings where they show a known failure: class balance, ROC curves, source → synthetic
pairs per generator, real beside synthetic images, Grad-CAM (heat at the borders), a UMAP (synthetic points
apart from every real group), and tiny test sets whose intervals span most of the range.
Everything is read from `cxrds baselines`'s outputs, the release and the prepared real data; nothing is typed in.

This module opens the three inputs once and assembles the report; the measures are in `report_quality.py`, the
figures in `report_figures.py`, the markdown and HTML in `report_render.py`.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from cxr_dataset.fileio import atomic_write_text
from cxr_dataset.manifest import Manifest, read_manifest
from cxr_dataset.ownership import claimed_output
from cxr_dataset.progress import ProgressFn, no_progress
from cxr_dataset.release_folder import Release, read_release
from cxr_dataset.schema import TASKS
from cxr_dataset.splits import per_image_warning
from validation_tools.balance import comparison_title, seed_skew_comparison
from validation_tools.baselines_folder import BaselinesRecord, read_baselines
from validation_tools.baselines_tables import protocol_note, seed_layout_table, summary_blocks
from validation_tools.endpoint import DEFAULT_MARGIN, check_margin, headline
from validation_tools.forest_plot import forest_figure
from validation_tools.metrics import clustered_wilson_interval
from validation_tools.report_figures import (
    balance_figure,
    cam_figure,
    pairs_figure,
    roc_figure,
    sample_grid,
    umap_figure,
)
from validation_tools.report_quality import images_of, quality_rows, source_confounding
from validation_tools.report_render import Figure, ReportContent, to_html, to_markdown
from validation_tools.shortcut_probes import shortcut_probes

FIGURES = ("forest.png", "balance.png", "roc.png", "pairs.png", "samples.png", "cam.png", "umap.png")
WIDE_INTERVAL = 0.5  # a sensitivity CI wider than this is a warning: the test set cannot tell regimes apart


@dataclass(frozen=True)
class ReportResult:
    path: Path
    figures: list[Path]


@dataclass(frozen=True)
class ReportInputs:
    """What the report reads, each opened once: the baselines' record, the release and the prepared real data."""

    baselines: BaselinesRecord
    release: Release
    manifest: Manifest
    rows: list[dict[str, Any]]  # the manifest's, in its order


def write_report(
    baselines: Path,
    release: Path,
    real: Path,
    out: Path,
    *,
    samples: int = 4,
    inception: Path | None = None,
    margin: float = DEFAULT_MARGIN,
    progress: ProgressFn = no_progress,
) -> ReportResult:
    """Write `out/report.md`, `out/report.html` and the figures; `inception` (torchvision Inception-v3
    weights as safetensors) adds FID/KID on its features."""
    check_margin(margin)  # before any work
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    baselines_record = read_baselines(baselines)
    with claimed_output(out, "report", inputs=[baselines, release, real], command="cxrds report") as claim:
        manifest = read_manifest(real)
        inputs = ReportInputs(baselines_record, read_release(release), manifest, manifest.rows())
        return _write_report(inputs, claim.root, samples, inception, progress, margin)


def _write_report(
    inputs: ReportInputs,
    out: Path,
    samples: int,
    inception: Path | None,
    progress: ProgressFn,
    margin: float = DEFAULT_MARGIN,
) -> ReportResult:
    results = inputs.baselines.results
    progress("report", 0, 5, "shortcut probes, class balance, ROC curves")
    probes = shortcut_probes(inputs.manifest, inputs.rows)
    figures = [balance_figure(results, out / "balance.png"), roc_figure(inputs.baselines.predictions, out / "roc.png")]
    progress("report", 1, 5, "source → synthetic pairs, sample grid")
    figures += [pairs_figure(inputs.release, inputs.manifest, inputs.rows, out / "pairs.png", samples)]
    figures += [sample_grid(inputs.release, inputs.manifest, inputs.rows, out / "samples.png", samples)]
    progress("report", 2, 5, "FID/KID, UMAP, Grad-CAM")
    quality, more = _quality_and_cams(inputs, out / "cam.png", inception)
    figures += more
    progress("report", 4, 5, "report.md, report.html")
    content = ReportContent(
        header=_header(inputs),
        notes=_notes(inputs),
        results=results,
        blocks=summary_blocks(results, inputs.baselines.comparisons),
        seed_table=seed_layout_table(results),
        seed_skew=seed_skew_comparison(),
        quality=quality,
        figures=[f for f in figures if f is not None],
        flags=_interval_flags(results, inputs.baselines.predictions),
        endpoint=headline(results, inputs.baselines.comparisons, margin),
        probes=probes,
        answer=forest_figure(
            inputs.baselines.comparisons + inputs.baselines.external_comparisons, results, out / "forest.png", margin
        ),
    )
    atomic_write_text(out / "report.md", to_markdown(content))
    atomic_write_text(out / "report.html", to_html(content))
    progress("report", 5, 5)
    answer = [content.answer.path] if content.answer else []
    return ReportResult(out / "report.md", answer + [f.path for f in content.figures])


def _header(inputs: ReportInputs) -> list[tuple[str, str]]:
    """What the report is about, from the release's card and rows, the manifest and the baselines' record."""
    folder, manifest, baselines = inputs.release, inputs.manifest, inputs.baselines
    generators: dict[tuple, int] = {}
    for row in folder.iter_rows(["task", "preset", "checkpoint_sha256", "precision"]):
        key = (TASKS[row["task"]], row["preset"], row["checkpoint_sha256"][:12], row["precision"] or "not recorded")
        generators[key] = generators.get(key, 0) + 1
    counts: dict[str, int] = {}
    for row in inputs.rows:
        counts[f"{row['label']}/{row['split']}"] = counts.get(f"{row['label']}/{row['split']}", 0) + 1
    sources = ", ".join(sorted({s.partition("=")[0] for s in manifest.meta.get("sources", [])})) or "not recorded"
    cfg = baselines.config
    return [
        (
            "release",
            f"{folder.root.name}, version {folder.version or 'not recorded'}, "
            f"published {folder.card.get('date_published') or 'not recorded'}",
        ),
        *(
            (f"generator {task}", f"preset {preset}, checkpoint {sha}…, {precision}, {n} images")
            for (task, preset, sha, precision), n in sorted(generators.items())
        ),
        (
            "real data",
            f"{sources}; split {manifest.meta.get('split', '?')}; resize {manifest.meta.get('resize', '?')}; "
            f"manifest {manifest.sha256[:12]}…; " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())),
        ),
        (
            "classifiers",
            f"{', '.join(cfg.get('models', []))} at {cfg.get('size', '?')}², seeds {cfg.get('seeds')}, "
            f"up to {cfg.get('epochs')} epochs (early stopping on validation), {cfg.get('bootstrap')} bootstrap draws",
        ),
        (
            "made by",
            f"cxrds {baselines.code_version or 'version not recorded'} on "
            f"{baselines.device or 'a device not recorded'}",
        ),
    ]


def _notes(inputs: ReportInputs) -> list[str]:
    kinds = {s.partition("=")[0] for s in inputs.manifest.meta.get("sources", [])}
    notes = []
    if "phantom" in kinds:
        notes.append(
            "The real data here include the procedural phantom: these figures test the software end to end; "
            "they say nothing about chest X-rays or COVID-19."
        )
    confounded = source_confounding(inputs.rows)
    if confounded is not None:
        notes.append(
            f"Class follows source in the real data ({confounded}). A classifier can learn the source (hospital, "
            "scanner, era, processing) instead of the disease, so these figures rehearse the pipeline on real "
            "radiographs; they are not diagnostic accuracy and do not show that synthetic images help "
            "clinically."
        )
    per_image = per_image_warning(inputs.rows)
    if per_image is not None:
        notes.append(f"Warning: {per_image}.")
    limits = inputs.manifest.meta.get("train_limits") or {}
    if limits:
        notes.append(
            "Training images were limited to rehearse class imbalance (`prepare --limit-train "
            + ",".join(f"{k}={v}" for k, v in sorted(limits.items()))
            + "`): generators and classifiers saw only those; validation and test splits are whole."
        )
    baselines = inputs.baselines
    if baselines.validation is not None and baselines.synthetic is not None:  # older records have neither
        seeds = sorted({r["seed"] for r in baselines.results})
        notes += protocol_note(baselines.config["protocol"], baselines.validation, baselines.synthetic, seeds)
    notes.append(
        "Every number below comes from one test split. A difference between regimes matters only if it "
        "exceeds the intervals and holds across seeds."
    )
    return notes


def _interval_flags(results: list[dict[str, Any]], predictions: list[dict[str, Any]]) -> list[str]:
    """A warning per comparison whose COVID-19 test patients are too few for sensitivity to separate regimes:
    the widest Wilson interval at 0.5 of its runs on the effective number of images (`clustered_wilson_interval`:
    images of one patient that agree count as one; unlike the bootstrap's, it does not collapse at 0 % or 100 %)."""
    flags = []
    for comparison in dict.fromkeys(r["comparison"] for r in results):
        runs = [p for p in predictions if p["comparison"] == comparison]
        widths = []
        for run in runs:
            covid = np.asarray(run["y_true"]) == 1
            hits = np.asarray(run["p_covid"])[covid] >= 0.5
            low, high = clustered_wilson_interval(hits, np.asarray(run["patient_id"])[covid])
            widths.append(high - low)
        if widths and max(widths) >= WIDE_INTERVAL:
            covid = np.asarray(runs[0]["y_true"]) == 1
            patients = len(set(np.asarray(runs[0]["patient_id"])[covid].tolist()))
            flags.append(
                f"{comparison}: only {int(covid.sum())} COVID-19 test images of {patients} patients; a sensitivity "
                f"measured on them has a 95% interval up to {max(widths):.0%} wide (Wilson, adjusted for images "
                "of one patient), so this test set cannot tell the regimes apart."
            )
    return flags


def _quality_and_cams(
    inputs: ReportInputs, cam_path: Path, inception: Path | None
) -> tuple[list[dict[str, Any]], list[Figure]]:
    """Quality rows per comparison from its real-only small-cnn (judged-COVID share, FID, KID; with `inception`
    also on Inception-v3 features), a Grad-CAM grid from the model trained with both generators' images, and a
    UMAP in the first real-only classifier's feature space. Empty when no small-cnn was trained."""
    from validation_tools.audit import held_out_keys
    from validation_tools.baselines_data import synthetic_images
    from validation_tools.classifiers import load_classifier

    baselines = inputs.baselines
    runs = [r for r in baselines.results if r["model"] == "small-cnn"]
    if not runs:
        return [], []
    seed = runs[0]["seed"]
    first, meta = load_classifier(baselines.classifier_path(runs[0]["comparison"], "real", "small-cnn", seed))
    size = meta["size"]  # every classifier of one baselines run shares it
    accept_unknown = baselines.config.get("accept_unknown_provenance", False)
    synthetic, _ = synthetic_images(inputs.release, held_out_keys(inputs.rows), size, accept_unknown=accept_unknown)
    spaces = _feature_spaces(baselines, runs, seed, inception)
    quality = quality_rows(inputs.manifest, inputs.rows, synthetic, size, spaces)
    cam_rows = _cam_rows(inputs, runs, seed, size)
    figures = [cam_figure(cam_rows, cam_path)] if cam_rows else []
    features = _umap_features(first, inputs, synthetic, size)
    figures.append(umap_figure(features, cam_path.with_name("umap.png")))
    return quality, figures


def _feature_spaces(
    baselines: BaselinesRecord, runs: list[dict[str, Any]], seed: int, inception: Path | None
) -> dict[str, Any]:
    """Name → (features of images, the classifier that judges them or None): each comparison's real-only
    small-cnn, and Inception-v3 when its weights are given."""
    from validation_tools.classifiers import load_classifier
    from validation_tools.explain import inception_features, load_inception, penultimate_features

    spaces = {}
    for comparison in dict.fromkeys(r["comparison"] for r in runs):
        model, _ = load_classifier(baselines.classifier_path(comparison, "real", "small-cnn", seed))
        spaces[f"small-cnn, real-only, {comparison}"] = (partial(penultimate_features, model), model)
    if inception is not None:
        spaces["Inception-v3"] = (partial(inception_features, load_inception(inception)), None)
    return spaces


def _cam_rows(inputs: ReportInputs, runs: list[dict[str, Any]], seed: int, size: int) -> list[tuple]:
    """(title, images, Grad-CAM maps) per comparison and class: up to four correctly classified real test images
    of the small-cnn trained with both generators' images."""
    from validation_tools.classifiers import load_classifier
    from validation_tools.explain import cam_maps, covid_probability

    cam_rows = []
    for comparison in dict.fromkeys(r["comparison"] for r in runs):
        with_synthetic = [r for r in runs if r["comparison"] == comparison and r["regime"].startswith("real + ")]
        both = max(with_synthetic, key=lambda r: r["train_positives"])["regime"]  # real + both generators
        model, _ = load_classifier(inputs.baselines.classifier_path(comparison, both, "small-cnn", seed))
        negative = comparison.split(" vs ")[0]
        test = [r for r in inputs.rows if r["split"] == "test" and r["label"] in (negative, "covid")]
        images = images_of(inputs.manifest, test, size)
        truth = np.array([int(r["label"] == "covid") for r in test])
        right = (covid_probability(model, images) >= 0.5).astype(int) == truth
        for label in (1, 0):
            chosen = np.nonzero(right & (truth == label))[0][:4]
            if len(chosen):
                maps = cam_maps(model, images[chosen], [label] * len(chosen))
                title = f"{comparison_title(comparison)}: {'COVID-19' if label else negative}"
                cam_rows.append((title, images[chosen, 0].numpy(), maps))
    return cam_rows


def _umap_features(classifier, inputs: ReportInputs, synthetic: dict[str, Any], size: int) -> dict[str, np.ndarray]:
    """Up to 300 images per real class and per generator, as `classifier`'s penultimate features."""
    from validation_tools.explain import penultimate_features

    groups = {
        f"real {label}": [r for r in inputs.rows if r["label"] == label][:300]
        for label in ("normal", "pneumonia", "covid")
    }
    embed = {name: images_of(inputs.manifest, chosen, size) for name, chosen in groups.items() if chosen}
    embed |= {f"synthetic {config.upper()}": images[:300] for config, images in synthetic.items()}
    return {n: penultimate_features(classifier, x) for n, x in embed.items()}
