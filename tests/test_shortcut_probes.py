"""Shortcut probes (validation_tools/shortcut_probes.py): a planted class-aligned border is flagged, the same
images without it are not; Cramér's V per binary task; the report opens with the probes."""

import csv
import json

import numpy as np
import pytest
from PIL import Image

from cxr_dataset.manifest import read_manifest
from cxr_dataset.prepare import PrepareConfig, prepare
from cxr_dataset.sources.phantom import render_phantom
from validation_tools.report_render import ReportContent, to_html, to_markdown
from validation_tools.shortcut_probes import WARN_AUC, cramers_v, grouped_folds, shortcut_probes

PATIENTS = 14  # per class, two images each: 56 images, prepared at 32²


def _planted(root, *, strip: bool, source_follows_class: bool):
    """An imagefolder of phantom *normal* renders under both labels (so nothing but what is planted tells
    the classes apart); with `strip`, every COVID-19 image gets a black band along its top."""
    (root / "images").mkdir(parents=True)
    rows = []
    for label in ("normal", "covid"):
        for patient in range(PATIENTS):
            for image in range(2):
                pixels = render_phantom("normal", 64, seed=int(label == "covid"), patient=patient, image=image)
                if strip and label == "covid":
                    pixels = pixels.copy()
                    pixels[:8] = 0
                name = f"images/{label}_{patient}_{image}.png"
                Image.fromarray(pixels).save(root / name)
                source = ("nih" if label == "normal" else "other") if source_follows_class else "ab"[patient % 2]
                rows.append({"file_name": name, "label": label, "patient_id": f"{label}{patient}", "source": source})
    with open(root / "metadata.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    prepare([f"imagefolder={root}"], root.parent / f"{root.name}-prepared", PrepareConfig(size=32, workers=1))
    manifest = read_manifest(root.parent / f"{root.name}-prepared")
    return shortcut_probes(manifest, manifest.rows())


@pytest.fixture(scope="module")
def with_strip(tmp_path_factory):
    return _planted(tmp_path_factory.mktemp("strip") / "data", strip=True, source_follows_class=True)


@pytest.fixture(scope="module")
def without_strip(tmp_path_factory):
    return _planted(tmp_path_factory.mktemp("plain") / "data", strip=False, source_follows_class=False)


def test_border_probe_flags_a_planted_class_aligned_black_strip(with_strip):
    (task,) = with_strip  # only normal and covid: the pneumonia task is left out
    aucs = {p.probe: p.auc for p in task.probes}
    assert task.task == "normal vs covid" and task.images == 4 * PATIENTS and task.patients == 2 * PATIENTS
    assert aucs["border"] >= WARN_AUC and "source" in aucs
    warnings = task.warnings()
    assert any("border alone" in w and "without looking at the disease" in w for w in warnings)


def test_probes_pass_the_same_images_without_the_strip(without_strip):
    (task,) = without_strip
    aucs = {p.probe: p.auc for p in task.probes}
    assert set(aucs) == {"border", "thumbnail 8×8", "source"}
    assert all(auc < WARN_AUC for auc in aucs.values()), aucs
    assert task.warnings() == []


def test_cramers_v_per_binary_task_reaches_one_where_the_three_class_table_does_not(with_strip, without_strip):
    labels = ["normal"] * 4 + ["pneumonia"] * 4 + ["covid"] * 4
    sources = ["nih"] * 8 + ["ieee8023", "mhh"] * 2
    overall = cramers_v(labels, sources)
    assert overall is not None and overall < 0.9  # the 3×3 table caps below 1
    for negative in ("normal", "pneumonia"):
        chosen = [i for i, label in enumerate(labels) if label in (negative, "covid")]
        assert cramers_v([labels[i] for i in chosen], [sources[i] for i in chosen]) == pytest.approx(1.0)
    assert cramers_v(["normal", "covid"], ["nih", "nih"]) is None  # one source: nothing to measure
    assert with_strip[0].cramers_v == pytest.approx(1.0)  # read from the metadata's source column
    assert without_strip[0].cramers_v == pytest.approx(0.0, abs=1e-9)
    assert with_strip[0].sources == {"normal": {"nih": 2 * PATIENTS}, "covid": {"other": 2 * PATIENTS}}


def test_grouped_folds_keep_each_patient_in_one_fold_and_each_class_in_every_fold():
    groups = [f"p{i // 3}" for i in range(60)]  # 20 patients, 3 images each
    labels = np.array([int(i // 3 < 8) for i in range(60)])
    fold = grouped_folds(groups, labels, folds=4)
    assert all(len({f for g, f in zip(groups, fold) if g == patient}) == 1 for patient in set(groups))
    assert all(set(labels[fold == k]) == {0, 1} for k in range(4))


def test_report_opens_with_the_probe_section_and_its_warnings(with_strip):
    content = ReportContent(
        header=[("release", "r")],
        notes=["a note"],
        results=[],
        blocks=[("a block", ["regime", "AUC"], [["real", "0.5"]])],
        seed_table="",
        seed_skew=[],
        quality=[],
        figures=[],
        flags=["a flag"],
        probes=with_strip,
    )
    markdown, page = to_markdown(content), to_html(content)
    sections = [line for line in markdown.splitlines() if line.startswith("## ")]
    assert sections[0] == "## Shortcut probes: can each task be solved without the disease?"
    probe_part = markdown.split("## Headline")[0]
    assert "> **Warning.** Normal vs COVID-19: a logistic regression on the image border alone" in probe_part
    assert "| Normal vs COVID-19 | 56 | 28 |" in probe_part and "| 1.00 |" in probe_part
    assert probe_part.index("Shortcut probes") < probe_part.index("a note")
    assert page.index("<h2>Shortcut probes") < min(page.index("a note"), page.index("<h2>Headline"))


def test_row_source_reads_the_metadata_column_before_the_reader():
    from validation_tools.shortcut_probes import row_source

    assert row_source({"source": "imagefolder", "extra": json.dumps({"source": "nih"})}) == "nih"
    assert row_source({"source": "phantom", "extra": ""}) == "phantom"
