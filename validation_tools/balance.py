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
            "synthetic only": synthetic.get(first, 0),  # the task's own generator, as the seed trained it
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


# The seed's published skew cells (SEED-FACTS) and the counts of its release: 16,537 training normals (G_NC),
# 4,758 training pneumonias (G_PC), 180 COVID-19 training images.
SEED_PUBLISHED_SKEW = {
    ("normal vs covid", "real"): 91.87,
    ("normal vs covid", "real + G_NC"): 0.98,
    ("normal vs covid", "real + G_NC + G_PC"): 0.79,
    ("pneumonia vs covid", "real"): 22.9,
    ("pneumonia vs covid", "real + G_PC"): 0.95,
    ("pneumonia vs covid", "real + G_PC + G_NC"): 0.19,
}
SEED_RELEASE_COUNTS = {"normal": 16_537, "pneumonia": 4_758, "covid": 180}
PNEUMONIA_THE_CELLS_FIT = 4_122  # the pneumonia count (real and G_PC) for which all six published cells follow


def seed_skew_comparison() -> list[dict[str, object]]:
    """Each published cell beside the skew the release's counts give, and beside the skew with 4,122 pneumonia
    images: only 2 of 6 cells follow from the release, all 6 from 4,122."""
    counts = SEED_RELEASE_COUNTS
    released = skew_table(counts, {"g_nc": counts["normal"], "g_pc": counts["pneumonia"]})
    fitted = skew_table(
        counts | {"pneumonia": PNEUMONIA_THE_CELLS_FIT},
        {"g_nc": counts["normal"], "g_pc": PNEUMONIA_THE_CELLS_FIT},
    )
    fitted_skew = {(r["comparison"], r["regime"]): r["skew"] for r in fitted}
    rows = []
    for r in released:
        key = (r["comparison"], r["regime"])
        if key in SEED_PUBLISHED_SKEW:
            rows.append(
                {
                    "comparison": r["comparison"],
                    "regime": r["regime"],
                    "published": SEED_PUBLISHED_SKEW[key],
                    "from the release": r["skew"],
                    f"with {PNEUMONIA_THE_CELLS_FIT:,} pneumonia": fitted_skew[key],
                }
            )
    return rows
