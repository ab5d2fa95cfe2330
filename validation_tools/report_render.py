"""The report's content rendered twice: `report.md` and a self-contained `report.html` (figures embedded).

`report.py` computes what the report says (`ReportContent`); this module only lays it out, so the two
files always say the same thing.
"""

from __future__ import annotations

import base64
import html
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cxr_dataset.user_text import markdown_text
from validation_tools.metrics import METRIC_NAMES, wilson_interval
from validation_tools.shortcut_probes import TaskShortcuts, probe_html, probe_markdown


@dataclass(frozen=True)
class Figure:
    path: Path
    title: str
    caption: str  # what is shown
    guide: str  # how to read it
    flags: list[str] = field(default_factory=list)  # what in it looks wrong, in plain words


@dataclass
class ReportContent:
    header: list[tuple[str, str]]  # (what, value): release, generators, real data, code, device
    notes: list[str]  # read-before-anything remarks (e.g. what the real data can and cannot show)
    results: list[dict[str, Any]]  # `cxrds baselines` rows
    blocks: list[tuple[str, list[str], list[list[str]]]]  # (title, columns, rows): mean ± SD, paired differences
    seed_table: str  # the seed's layout, markdown
    seed_skew: list[dict[str, Any]]  # the seed's published skew cells beside its release's counts
    quality: list[dict[str, Any]]
    figures: list[Figure]
    flags: list[str]  # report-wide warnings (e.g. tiny test sets)
    endpoint: list[str] = field(default_factory=list)  # the primary endpoint's lines (`endpoint.headline`)
    probes: list[TaskShortcuts] = field(default_factory=list)  # shortcut probes per task: the first section
    answer: Figure | None = None  # the forest plot of paired differences, right after the primary endpoint


GUIDES = {
    "headline": "Per comparison and model, each regime as mean ± SD over classifier seeds. SEN: share of real "
    "COVID-19 test images called COVID-19; SPE: share of real negatives called negative; at 0.5 and at the "
    "threshold chosen on validation (@val). AUC and AP rank over all thresholds (AUC 0.5 = chance). The two "
    "controls use no synthetic image: the real positives oversampled to the generator's count, and a "
    "class-weighted loss. The paired table gives each regime minus real-only and minus the oversampling "
    "control on the same test images, averaged over seeds, with a 95% interval from resampling test patients "
    "and classifier seeds (training noise included). "
    "Synthetic images help only where an interval clears 0 against the control, not only against real-only; "
    "a gain in SEN at 0.5 that vanishes @val is a shift of the class prior, not better detection.",
    "skew": "Skew = training negatives / positives, truncated to two decimals as the seed printed it. Only 2 of "
    "the seed's 6 published cells follow from its release's counts (16,537 normal, 4,758 pneumonia, 180 "
    "COVID-19); all 6 follow if 4,122 pneumonia images were used, so the published Pneumonia-vs-COVID-19 "
    "cells do not describe the released G_PC.",
    "quality": "FID/KID per generator against real COVID-19 images it did not train towards, in the feature space "
    "named in the first column (a real-only classifier's, or Inception-v3's when weights were given); lower is "
    "closer. Every row is measured at one n, the smallest set's (column n; each set subsampled, seeded), since FID "
    "depends on n. Read each against the reference rows of the same space: two halves of the same real COVID-19 "
    "images, split by patient (the score of no difference at this n: FID is biased upward at small n, ⚠ below "
    "1,000 a side), each "
    "generator against its own source class (did it move away from it?), and the real source classes against "
    "COVID-19 (how far it had to go). KID: mean ± SD over 20 random subsets. Judged COVID-19: the share of a "
    "generator's images the real-only classifier calls COVID-19. Scores on a small classifier's features are "
    "not comparable with published Inception FIDs.",
}


def to_markdown(content: ReportContent) -> str:
    """report.md; text that comes from the data (names, paths, metadata) is `markdown_text`, shown as written."""
    md = markdown_text
    lines = ["# cxrds evaluation report", ""]
    lines += [f"- **{md(what)}**: {md(value)}" for what, value in content.header]
    lines += probe_markdown(content.probes)  # first: can the tasks be solved without the disease?
    lines += [""] + [f"> {md(note)}" for note in content.notes] + ([""] if content.notes else [])
    lines += [f"> **Warning.** {md(flag)}" for flag in content.flags] + ([""] if content.flags else [])
    lines += _endpoint_markdown(content.endpoint)
    lines += _figure_markdown(content.answer, level="##") if content.answer else []
    lines += ["## Headline: each regime over seeds, and against the controls", "", GUIDES["headline"], ""]
    for title, columns, rows in content.blocks:
        lines += [f"### {md(title)}", "", *_markdown_table(columns, rows), ""]
    lines += ["## Sensitivity in the seed's layout", "", content.seed_table]
    lines += ["## The seed's skew table against its release", "", GUIDES["skew"], ""]
    lines += _markdown_table(*_records(content.seed_skew))
    lines += ["", "## All metrics, every seed", ""]
    lines += _markdown_table(*_all_metrics(content.results))
    if content.quality:
        lines += ["", "## Synthetic image quality", "", GUIDES["quality"], ""]
        lines += _markdown_table(*_quality(content.quality))
    lines += ["", "## Figures", ""]
    for fig in content.figures:
        lines += _figure_markdown(fig)
    return "\n".join(lines).rstrip() + "\n"


def to_html(content: ReportContent) -> str:
    """One HTML5 file with every figure inlined as a data URI: it opens anywhere, offline."""
    e = html.escape
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        "<title>cxrds evaluation report</title>",
        f"<style>{_CSS}</style>",
        "</head>",
        "<body>",
        "<main>",
        "<h1>cxrds evaluation report</h1>",
        "<dl>" + "".join(f"<dt>{e(w)}</dt><dd>{e(v)}</dd>" for w, v in content.header) + "</dl>",
        *probe_html(content.probes),
    ]
    parts += [f'<p class="note">{e(note)}</p>' for note in content.notes]
    parts += [f'<p class="flag"><strong>Warning.</strong> {e(flag)}</p>' for flag in content.flags]
    parts += _endpoint_html(content.endpoint)
    parts += _figure_html(content.answer, level="h2") if content.answer else []
    parts += ["<h2>Headline: each regime over seeds, and against the controls</h2>", f"<p>{e(GUIDES['headline'])}</p>"]
    for title, columns, rows in content.blocks:
        parts += [f"<h3>{e(title)}</h3>", _html_table(columns, rows)]
    parts += ["<h2>The seed's skew table against its release</h2>", f"<p>{e(GUIDES['skew'])}</p>"]
    parts.append(_html_table(*_records(content.seed_skew)))
    parts += ["<h2>All metrics, every seed</h2>", _html_table(*_all_metrics(content.results))]
    if content.quality:
        parts += ["<h2>Synthetic image quality</h2>", f"<p>{e(GUIDES['quality'])}</p>"]
        parts.append(_html_table(*_quality(content.quality)))
    parts.append("<h2>Figures</h2>")
    for fig in content.figures:
        parts += _figure_html(fig)
    parts += ["</main>", "</body>", "</html>"]
    return "\n".join(parts) + "\n"


def percent(value: float) -> str:
    return "n/a" if value != value else f"{100 * value:.0f}%"  # NaN: undefined (e.g. no positives)


def _with_ci(row: dict[str, Any], metric: str) -> str:
    value, (low, high) = row[metric], row[f"{metric}_ci"]
    if value != value:
        return "n/a"
    if metric in ("sensitivity", "specificity", "precision"):
        return f"{percent(value)} ({percent(low)}–{percent(high)})"
    return f"{value:.3f} ({low:.3f}–{high:.3f})"


def _proportion(hits: int, misses: int) -> str:
    """hits / (hits + misses) with its Wilson 95% interval."""
    if hits + misses == 0:
        return "n/a"
    low, high = wilson_interval(hits, hits + misses)
    return f"{percent(hits / (hits + misses))} ({percent(low)}–{percent(high)})"


def _figure_markdown(fig: Figure, level: str = "###") -> list[str]:
    lines = [f"{level} {fig.title}", "", f"![{fig.path.stem}]({fig.path.name})", "", f"*{fig.caption}* {fig.guide}"]
    return [*lines, *[f"> **Warning.** {markdown_text(flag)}" for flag in fig.flags], ""]


def _figure_html(fig: Figure, level: str = "h3") -> list[str]:
    e = html.escape
    data = base64.b64encode(fig.path.read_bytes()).decode("ascii")
    return [
        "<figure>",
        f"<{level}>{e(fig.title)}</{level}>",
        f'<img src="data:image/png;base64,{data}" alt="{e(fig.title)}">',
        f"<figcaption><strong>{e(fig.caption)}</strong> {e(fig.guide)}</figcaption>",
        *[f'<p class="flag"><strong>Warning.</strong> {e(flag)}</p>' for flag in fig.flags],
        "</figure>",
    ]


def _endpoint_markdown(endpoint: list[str]) -> list[str]:
    """The primary endpoint's section (its lines are made from the run's numbers, no user text)."""
    return ["## Primary endpoint", "", *[f"{line}\n" for line in endpoint]] if endpoint else []


def _endpoint_html(endpoint: list[str]) -> list[str]:
    if not endpoint:
        return []
    return ["<h2>Primary endpoint</h2>"] + [
        "<p>" + html.escape(line).replace("**Primary endpoint**", "<strong>Primary endpoint</strong>") + "</p>"
        for line in endpoint
    ]


def _records(rows: list[dict[str, Any]]) -> tuple[list[str], list[list[str]]]:
    columns = list(rows[0]) if rows else []
    return columns, [[str(r[c]) for c in columns] for r in rows]


def _all_metrics(results: list[dict[str, Any]]) -> tuple[list[str], list[list[str]]]:
    columns = ["comparison", "regime", "model", "seed", *METRIC_NAMES]
    return columns, [
        [r["comparison"], r["regime"], r["model"], str(r["seed"])] + [_with_ci(r, m) for m in METRIC_NAMES]
        for r in results
    ]


def _quality(quality: list[dict[str, Any]]) -> tuple[list[str], list[list[str]]]:
    """FID to one decimal on a per-feature-space scale (stated in the features cell: small classifiers' features
    give FIDs far below 1), KID × 10³ with its SD over subsets."""
    scales = {space: fid_scale([q["FID"] for q in quality if q["features"] == space]) for space in _spaces(quality)}
    columns = ["features (FID scale)", "pair", "n", "FID", "KID × 10³ (mean ± SD)", "judged COVID-19"]
    cells = [
        [
            q["features"] + (f" (FID × 10^{scales[q['features']]})" if scales[q["features"]] else ""),
            q["pair"] + (" ⚠ small n" if q["small n"] else ""),
            q["n"],
            "n/a" if q["FID"] != q["FID"] else f"{q['FID'] * 10 ** scales[q['features']]:.1f}",
            _kid(q["KID"], q["KID SD"]),
            percent(q["judged covid"]) if "judged covid" in q else "",
        ]
        for q in quality
    ]
    return columns, cells


def fid_scale(values: list[float]) -> int:
    """The power of ten that brings a feature space's largest FID to at least 10 (0 when it already is)."""
    finite = [abs(v) for v in values if v == v and v != 0]
    if not finite or max(finite) >= 10:
        return 0
    return max(0, math.ceil(1 - math.log10(max(finite))))


def _kid(mean: float, sd: float) -> str:
    if mean != mean:
        return "n/a"
    return f"{mean * 1e3:.2f}" + (" (one subset)" if sd != sd else f" ± {sd * 1e3:.2f}")


def _spaces(quality: list[dict[str, Any]]) -> list[str]:
    return list(dict.fromkeys(q["features"] for q in quality))


def _markdown_table(columns: list[str], rows: list[list[str]]) -> list[str]:
    return [
        "| " + " | ".join(map(markdown_text, columns)) + " |",
        "|" + "---|" * len(columns),
        *("| " + " | ".join(map(markdown_text, row)) + " |" for row in rows),
    ]


def _html_table(columns: list[str], rows: list[list[str]]) -> str:
    e = html.escape
    head = "".join(f"<th>{e(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{e(cell)}</td>" for cell in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


_CSS = (
    "body{font-family:system-ui,sans-serif;margin:0;color:#222;background:#fafafa}"
    "main{max-width:1100px;margin:0 auto;padding:1.5rem}"
    "dl{display:grid;grid-template-columns:max-content 1fr;gap:.2rem 1rem}dt{font-weight:600}dd{margin:0}"
    "table{border-collapse:collapse;margin:.5rem 0 1.5rem;font-size:.85rem}"
    "th,td{border:1px solid #ccc;padding:.25rem .5rem;text-align:left}th{background:#eee}"
    "figure{margin:1.5rem 0;background:#fff;padding:1rem;border:1px solid #ddd}"
    "img{max-width:100%;height:auto}figcaption{font-size:.9rem;margin-top:.5rem}"
    ".note{background:#eef5ff;padding:.5rem .75rem;border-left:4px solid #4a7bd0}"
    ".flag{background:#fff4e5;padding:.5rem .75rem;border-left:4px solid #e08a00}"
)
