"""The primary endpoint, fixed before the numbers are read: per comparison (task), ΔAUC of real + the task's own
generator against the oversampling control on the internal test split (first model trained), read against a
non-inferiority margin. Every other paired comparison is secondary, and their number is printed beside it, so a
reader can weigh a "significant" secondary row against how many were looked at. When the control is already at
its ceiling (AUC ≥ 0.99) the comparison cannot show a benefit, and the headline says so.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from cxr_dataset.errors import ConfigError
from validation_tools.balance import COMPARISONS, comparison_title

CONTROL = "real (oversampled)"  # baselines.OVERSAMPLED (not imported: baselines imports this module's users)
DEFAULT_MARGIN = -0.02  # ΔAUC below which the generator's regime is worse than the control
CEILING = 0.99  # control AUC at or above which no benefit can show


@dataclass(frozen=True)
class Endpoint:
    comparison: str
    model: str
    regime: str
    delta: float  # ΔAUC, mean over seeds
    interval: tuple[float, float]  # 95%, patients and seeds resampled
    control_auc: float  # the control's AUC, mean over seeds
    margin: float

    @property
    def reading(self) -> str:
        """What the interval supports, in one sentence."""
        low, high = self.interval
        if self.control_auc >= CEILING:
            return (
                f"the control is at its ceiling (AUC {self.control_auc:.3f} ≥ {CEILING}): this comparison cannot "
                "show a benefit"
            )
        if low > 0:
            return "better than the control: the interval lies above 0"
        if low >= self.margin:
            return (
                f"non-inferior to the control (the interval stays above the margin {self.margin:+.3f}); "
                "no benefit shown"
            )
        if high < self.margin:
            return f"inferior to the control: the interval lies below the margin {self.margin:+.3f}"
        return f"inconclusive: the interval reaches below the margin {self.margin:+.3f}"


def check_margin(margin: float) -> float:
    """A non-inferiority margin on ΔAUC: a finite number in [-1, 0]; ConfigError otherwise."""
    if not (math.isfinite(margin) and -1 <= margin <= 0):
        raise ConfigError(f"margin must be a ΔAUC in [-1, 0] (e.g. {DEFAULT_MARGIN}), got {margin}")
    return margin


def primary_regime(comparison: str) -> str:
    """real + the comparison's own generator, as `cxrds baselines` names the regime."""
    return f"real + {COMPARISONS[comparison][1][0].upper()}"


def is_primary(row: dict[str, Any], first_model: dict[str, str]) -> bool:
    """Whether a paired-comparison row is its comparison's primary endpoint; `first_model`: comparison → the
    first model trained on it (`first_models`)."""
    return (
        _internal(row)
        and row["against"] == CONTROL
        and row["regime"] == primary_regime(row["comparison"])
        and row["model"] == first_model.get(row["comparison"])
    )


def first_models(results: list[dict[str, Any]]) -> dict[str, str]:
    """comparison → the first model of its rows (the order `cxrds baselines` trained them)."""
    out: dict[str, str] = {}
    for row in results:
        out.setdefault(row["comparison"], row["model"])
    return out


def primary_endpoints(
    results: list[dict[str, Any]], comparisons: list[dict[str, Any]], margin: float = DEFAULT_MARGIN
) -> list[Endpoint]:
    """One endpoint per comparison that trained both its generator's regime and the control."""
    check_margin(margin)
    first = first_models(results)
    endpoints = []
    for row in comparisons:
        if not is_primary(row, first):
            continue
        control = [
            r["roc_auc"]
            for r in results
            if (r["comparison"], r["model"], r["regime"]) == (row["comparison"], row["model"], CONTROL) and _internal(r)
        ]
        endpoints.append(
            Endpoint(
                row["comparison"],
                row["model"],
                row["regime"],
                row["delta_roc_auc"],
                (row["delta_roc_auc_ci"][0], row["delta_roc_auc_ci"][1]),
                float(np.nanmean(control)) if control else float("nan"),
                margin,
            )
        )
    return endpoints


def headline(results: list[dict[str, Any]], comparisons: list[dict[str, Any]], margin: float) -> list[str]:
    """The report's primary-endpoint lines: each endpoint with its interval and reading, then how many
    comparisons are secondary."""
    endpoints = primary_endpoints(results, comparisons, margin)
    if not endpoints:
        return [
            "No primary endpoint: the run has no paired comparison of real + the task's generator against the "
            "oversampling control (train both regimes to read one)."
        ]
    lines = [
        f"**Primary endpoint** ({comparison_title(e.comparison)}, {e.model}): ΔAUC of {e.regime} against the "
        f"oversampling control on the internal test split, {e.delta:+.3f} [{e.interval[0]:+.3f}, "
        f"{e.interval[1]:+.3f}] (95%, test patients and classifier seeds resampled), non-inferiority margin "
        f"{e.margin:+.3f}: {e.reading}."
        for e in endpoints
    ]
    secondary = len(comparisons) - len(endpoints)
    lines.append(
        f"Every other comparison ({secondary}) is secondary: with {secondary} intervals at 95%, about "
        f"{0.05 * secondary:.1f} would exclude 0 by chance alone."
    )
    return lines


def _internal(row: dict[str, Any]) -> bool:
    """Rows of the internal test split (`--external` rows name their test set)."""
    return not row.get("external") and row.get("test_set", "internal") == "internal"
