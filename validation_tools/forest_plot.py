"""The report's answer as a picture: does a generator beat the controls? A forest plot of the paired differences.

One panel per task (comparison) and measure (ΔAUC, ΔSEN at the validation threshold): every regime against the
oversampling control and against real-only, as a point with its 95% interval (patients and seeds resampled),
internal test first, then each external test set; the primary endpoint is drawn filled and named, the
non-inferiority margin is a dashed line on its ΔAUC panel.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from validation_tools.balance import comparison_title
from validation_tools.endpoint import CONTROL, first_models, is_primary
from validation_tools.report_figures import save_figure
from validation_tools.report_render import Figure

MEASURES = (("delta_roc_auc", "ΔAUC"), ("delta_sensitivity", "ΔSEN @val"))


def forest_rows(comparisons: list[dict[str, Any]], results: list[dict[str, Any]], task: str) -> list[dict[str, Any]]:
    """A task's paired rows in plot order (internal test first, against the control first), each with its label
    and whether it is the primary endpoint."""
    first = first_models(results)
    rows = [r for r in comparisons if r["comparison"] == task and r["model"] == first.get(task)]
    order = {"internal": 0}
    rows.sort(key=lambda r: (order.get(r.get("test_set", "internal"), 1), r["against"] != CONTROL, r["regime"]))
    out = []
    for row in rows:
        where = row.get("test_set", "internal")
        label = f"{row['regime']} − {row['against']}" + ("" if where == "internal" else f" [{where}]")
        out.append(row | {"label": label, "primary": is_primary(row, first)})
    return out


def forest_figure(
    comparisons: list[dict[str, Any]], results: list[dict[str, Any]], path: Path, margin: float
) -> Figure | None:
    """The plot, or None when the run made no paired comparison."""
    import matplotlib.pyplot as plt

    tasks = list(dict.fromkeys(r["comparison"] for r in comparisons))
    panels = {task: forest_rows(comparisons, results, task) for task in tasks}
    panels = {task: rows for task, rows in panels.items() if rows}
    if not panels:
        return None
    height = max(len(rows) for rows in panels.values())
    fig, axes = plt.subplots(len(panels), len(MEASURES), figsize=(12, 1.2 + 0.42 * height * len(panels)), squeeze=False)
    for row_axes, (task, rows) in zip(axes, panels.items(), strict=True):
        for ax, (key, name) in zip(row_axes, MEASURES, strict=True):
            for y, row in enumerate(reversed(rows)):
                low, high = row[f"{key}_ci"]
                colour = "tab:red" if row["primary"] else ("tab:blue" if row["against"] == CONTROL else "tab:gray")
                ax.plot([low, high], [y, y], color=colour, linewidth=2 if row["primary"] else 1.2)
                ax.plot(row[key], y, "o", color=colour, markerfacecolor=colour if row["primary"] else "white")
            ax.axvline(0, color="black", linewidth=0.8)
            if key == "delta_roc_auc":
                ax.axvline(margin, color="tab:red", linestyle="--", linewidth=0.8)
            ax.set_yticks(range(len(rows)), [_label(r) for r in reversed(rows)], fontsize=8)
            ax.set_title(f"{comparison_title(task)}: {name}", fontsize=9)
            ax.tick_params(axis="x", labelsize=8)
            ax.grid(axis="x", alpha=0.3)
    return Figure(
        save_figure(fig, path),
        "Does a generator beat the controls?",
        "Paired differences on the real test images, each with its 95% interval (patients and classifier seeds "
        "resampled): every regime against the oversampling control (blue) and against real-only (grey); the "
        f"primary endpoint in red, filled; the dashed red line is the non-inferiority margin ({margin:+.2f} AUC).",
        "A benefit needs an interval wholly right of 0 against the control, not only against real-only; an "
        "interval that crosses 0 shows no difference the data can resolve, and rows marked with a set name in "
        "brackets are external tests.",
    )


def _label(row: dict[str, Any]) -> str:
    return ("★ " if row["primary"] else "") + row["label"]
