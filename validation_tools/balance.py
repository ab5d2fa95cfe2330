"""Class balance of the seed's training regimes: real only, plus each generator's images, synthetic only.

Skew is negatives / positives in the training set, the ratio the seed's tables print (SEED-FACTS: "91.87 real,
0.98 with G_NC" for Normal vs COVID = 16,537 / 180 and 16,537 / (180 + 16,537)), truncated, as the seed did, to
two decimals.
"""

from __future__ import annotations

import math

# Each task's comparison and the order the seed added synthetic sets in.
COMPARISONS = {
    "normal vs covid": ("normal", ("g_nc", "g_pc")),
    "pneumonia vs covid": ("pneumonia", ("g_pc", "g_nc")),
}


def comparison_title(comparison: str) -> str:
    """'normal vs covid' → 'Normal vs COVID-19'."""
    return comparison.replace("normal", "Normal").replace("pneumonia", "Pneumonia").replace("covid", "COVID-19")


def truncate(value: float, places: int = 2) -> float:
    """The seed's rounding: cut, don't round (0.989 → 0.98)."""
    scale = 10**places
    return math.floor(value * scale + 1e-9) / scale


def skew_table(real: dict[str, int], synthetic: dict[str, int]) -> list[dict[str, object]]:
    """Rows of (comparison, regime, negatives, positives, skew) from real training counts per class and
    synthetic counts per config (g_nc, g_pc)."""
    rows = []
    for comparison, (negative, order) in COMPARISONS.items():
        first, second = order
        regimes = {
            "real": real.get("covid", 0),
            f"real + {first.upper()}": real.get("covid", 0) + synthetic.get(first, 0),
            f"real + {first.upper()} + {second.upper()}": real.get("covid", 0)
            + sum(synthetic.get(c, 0) for c in order),
            "synthetic only": sum(synthetic.get(c, 0) for c in order),
        }
        for regime, positives in regimes.items():
            negatives = real.get(negative, 0)
            skew = truncate(negatives / positives) if positives else float("inf")
            rows.append(
                {
                    "comparison": comparison,
                    "regime": regime,
                    "negatives": negatives,
                    "positives": positives,
                    "skew": skew,
                }
            )
    return rows
