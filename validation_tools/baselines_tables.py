"""The baselines' tables: each regime's metrics as mean ± SD over seeds, the paired differences, the seed's own
layout, and the note every table rests on. Shared by the baselines folder's table (`cxrds baselines`) and the
report."""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np

from cxr_dataset.user_text import csv_text
from validation_tools.balance import comparison_title
from validation_tools.baselines_folder import METRICS_CSV_NAME
from validation_tools.endpoint import first_models, is_primary

OPTIMISTIC = (
    "**Protocol `seed`: OPTIMISTIC.** As in the seed's notebooks, the test images stopped training and chose the "
    "checkpoint, and the paper split is by image, not patient (one patient's images fall in both training and test), "
    "so every figure here overstates what a new test set of new patients would show."
)
SUMMARY_METRICS = (
    "roc_auc",
    "average_precision",
    "sensitivity",
    "specificity",
    "sensitivity_at_threshold",
    "specificity_at_threshold",
)


def csv_table(rows: list[dict[str, Any]]) -> str:
    """Rows as CSV (lists as JSON; user text neutralised); empty without rows."""
    if not rows:
        return ""
    cells = ({k: json.dumps(v) if isinstance(v, list) else v for k, v in r.items()} for r in rows)
    return csv_text(cells, list(rows[0]))


def protocol_note(protocol: str, validation: str, synthetic: dict[str, int], seeds: list[int]) -> list[str]:
    """What every table of one run rests on: protocol, validation, seeds, synthetic images kept and dropped."""
    lines = [OPTIMISTIC] if protocol == "seed" else []
    lines.append(
        f"Protocol `{protocol}`; validation: {validation}. Seeds: {', '.join(map(str, seeds))} "
        f"(mean ± SD over seeds; every seed in {METRICS_CSV_NAME}). Synthetic images used: {synthetic['kept']}; "
        f"dropped as derived from held-out patients: {synthetic['dropped_held_out']}"
        + (
            f"; of unknown source, kept unchecked: {synthetic['unknown_source_kept']}"
            if synthetic["unknown_source_kept"]
            else ""
        )
        + (
            ". Threshold: 0.5 only (none is tuned on the test set; no paired tables)."
            if protocol == "seed"
            else ". Thresholds: 0.5 and the one chosen on validation (Youden's J)."
        )
    )
    return lines


def summary_tables(
    results: list[dict[str, Any]],
    comparisons: list[dict[str, Any]],
    protocol: str,
    validation: str,
    synthetic: dict[str, int],
) -> str:
    """The baselines folder's table: the protocol note, the summary and paired blocks, then the seed's own layout."""
    lines = []
    for note in protocol_note(protocol, validation, synthetic, sorted({r["seed"] for r in results})):
        lines += [note, ""]
    for title, columns, rows in summary_blocks(results, comparisons):
        lines += [f"### {title}", "", "| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
        lines += ["| " + " | ".join(row) + " |" for row in rows]
        lines.append("")
    return "\n".join([*lines, seed_layout_table(results)])


def summary_blocks(
    results: list[dict[str, Any]], comparisons: list[dict[str, Any]]
) -> list[tuple[str, list[str], list[list[str]]]]:
    """(title, columns, rows) per comparison and model: each regime's metrics as mean ± SD over seeds, then the
    paired differences against real-only and against the oversampling control."""
    blocks, first = [], first_models(results)
    secondary = len(comparisons) - sum(is_primary(c, first) for c in comparisons)
    for comparison in dict.fromkeys(r["comparison"] for r in results):
        for model in dict.fromkeys(r["model"] for r in results if r["comparison"] == comparison):
            rows = [r for r in results if (r["comparison"], r["model"]) == (comparison, model)]
            blocks.append(_summary_block(comparison, model, rows))
            paired = [c for c in comparisons if (c["comparison"], c["model"]) == (comparison, model)]
            if paired:
                blocks.append(_paired_block(comparison, model, paired, first, secondary))
    return blocks


def _summary_block(comparison: str, model: str, rows: list[dict[str, Any]]) -> tuple[str, list[str], list[list[str]]]:
    first, seeds = rows[0], len({r["seed"] for r in rows})
    headers = dict(zip(SUMMARY_METRICS, ["AUC", "AP", "SEN @0.5", "SPE @0.5", "SEN @val", "SPE @val"], strict=True))
    metrics = [m for m in SUMMARY_METRICS if m in first]  # the seed protocol has no threshold tuned on validation
    cells = []
    for regime in dict.fromkeys(r["regime"] for r in rows):
        runs = [r for r in rows if r["regime"] == regime]
        cells.append(
            [regime, f"{runs[0]['train_positives']} ({runs[0]['skew']:.2f})"]
            + [_mean_sd([r[m] for r in runs]) for m in metrics]
        )
    return (
        f"{comparison_title(comparison)}, {model}: mean ± SD over {_count(seeds, 'seed')}; "
        f"{first['test_images']} real test images ({first['tp'] + first['fn']} COVID-19) of "
        f"{first['test_patients']} patients",
        ["regime", "positives (skew)", *(headers[m] for m in metrics)],
        cells,
    )


def _paired_block(
    comparison: str, model: str, paired: list[dict[str, Any]], first: dict[str, str], secondary: int
) -> tuple[str, list[str], list[list[str]]]:
    return (
        f"{comparison_title(comparison)}, {model}: paired differences (regime − baseline on the "
        f"same test images, mean over {_count(paired[0]['seeds'], 'seed')}, 95% CI from a hierarchical bootstrap "
        f"resampling {paired[0].get('resampled', 'patients')}). Primary: real + the task's generator against the "
        f"oversampling control (ΔAUC); every other row is secondary ({secondary} in this run). No McNemar test: "
        "it counted images, not patients, and tested accuracy with the trained models held fixed; read the ΔSEN "
        "interval instead",
        ["regime", "against", "endpoint", "ΔAUC", "ΔAP", "ΔSEN @val", "seeds SEN up / down"],
        [
            [
                c["regime"],
                c["against"],
                "primary" if is_primary(c, first) else "secondary",
                _interval(c["delta_roc_auc"], c["delta_roc_auc_ci"]),
                _interval(c["delta_average_precision"], c["delta_average_precision_ci"]),
                _interval(c["delta_sensitivity"], c["delta_sensitivity_ci"]),
                f"{c['seeds_sensitivity_higher']} / {c['seeds_sensitivity_lower']}",
            ]
            for c in paired
        ],
    )


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
