import csv
import json
import math
import re

import numpy as np
import pytest

from cxr_dataset.errors import ConfigError
from cxr_dataset.manifest import read_manifest
from validation_tools.baselines import BaselinesConfig, run_baselines
from validation_tools.metrics import bootstrap_ci, point_metrics


def test_metrics_at_a_known_confusion_matrix():
    y = np.array([1, 1, 1, 1, 0, 0, 0, 0])
    p = np.array([0.9, 0.8, 0.7, 0.2, 0.6, 0.3, 0.1, 0.05])  # TP 3, FN 1, FP 1, TN 3
    m = point_metrics(y, p)
    assert (m["tp"], m["fn"], m["fp"], m["tn"]) == (3, 1, 1, 3)
    assert m["sensitivity"] == m["specificity"] == m["precision"] == m["f1"] == 0.75
    assert m["roc_auc"] == pytest.approx(14 / 16) and m["kappa"] == pytest.approx(0.5)


def test_metrics_bootstrap_interval_holds_the_estimate_and_is_seeded():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 200)
    p = np.clip(y * 0.6 + rng.normal(0.2, 0.2, 200), 0, 1)
    ci = bootstrap_ci(y, p, resamples=200, seed=1)
    point = point_metrics(y, p)
    assert all(ci[m][0] <= point[m] <= ci[m][1] for m in ("sensitivity", "roc_auc", "brier"))
    assert ci == bootstrap_ci(y, p, resamples=200, seed=1)


@pytest.fixture(scope="module")
def baselines_run(release, prepared, tmp_path_factory):
    out = tmp_path_factory.mktemp("baselines")
    return out, run_baselines(release, prepared, out, BaselinesConfig(epochs=2, bootstrap=20, seeds=(0, 1)))


def test_baselines_runs_every_comparison_regime_and_control_on_real_test_images(baselines_run, prepared):
    tmp_path, results = baselines_run
    assert [r["regime"] for r in results if r["comparison"] == "normal vs covid" and r["seed"] == 0] == [
        "real",
        "real + G_NC",
        "real + G_NC + G_PC",
        "synthetic only",
        "real (oversampled)",
        "real (class-weighted)",
    ]
    test = [r for r in read_manifest(prepared).rows() if r["split"] == "test"]
    by_regime = {r["regime"]: r for r in results if r["comparison"] == "normal vs covid" and r["seed"] == 0}
    first = by_regime["real"]
    assert first["test_images"] == sum(r["label"] in ("normal", "covid") for r in test)
    assert first["tp"] + first["fn"] == sum(r["label"] == "covid" for r in test)
    assert first["test_patients"] == len({r["patient_id"] for r in test if r["label"] in ("normal", "covid")})
    assert first["skew"] == math.floor(100 * first["train_negatives"] / first["train_positives"]) / 100
    assert by_regime["real + G_NC"]["train_positives"] > first["train_positives"]  # synthetic positives were added
    # the control oversamples the real positives to the own generator's count; class weights keep them as they are
    assert by_regime["real (oversampled)"]["train_positives"] == by_regime["synthetic only"]["train_positives"]
    assert by_regime["real (class-weighted)"]["train_positives"] == first["train_positives"]
    assert 0.0 <= first["threshold"] <= 1.0 and "sensitivity_at_threshold" in first
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert len(saved["results"]) == len(results) == 2 * 6 * 2
    assert saved["validation"] == "the prepared validation split"
    rows = list(csv.DictReader((tmp_path / "metrics.csv").open()))
    assert {"regime", "seed", "roc_auc", "average_precision", "sensitivity_at_threshold"} <= set(rows[0])
    assert {"real (oversampled)", "real (class-weighted)"} <= {r["regime"] for r in rows}


def test_baselines_table_gives_mean_and_sd_over_seeds_and_paired_differences(baselines_run):
    tmp_path, results = baselines_run
    table = (tmp_path / "table.md").read_text()
    aucs = [r["roc_auc"] for r in results if (r["comparison"], r["regime"]) == ("normal vs covid", "real")]
    assert f"{np.mean(aucs):.3f} ± {np.std(aucs, ddof=1):.3f}" in table
    assert "Seeds: 0, 1" in table and "OPTIMISTIC" not in table
    against = {(r["regime"], r["against"]) for r in csv.DictReader((tmp_path / "comparisons.csv").open())}
    assert ("real + G_NC", "real") in against and ("real + G_NC", "real (oversampled)") in against
    assert ("real (oversampled)", "real") in against and ("real", "real (oversampled)") not in against
    assert "| real + G_NC | real (oversampled) |" in table


@pytest.fixture(scope="module")
def paper(tmp_path_factory):
    """The phantom prepared with --split paper (no validation split; three images per patient)."""
    from cxr_dataset.prepare import PrepareConfig, prepare
    from tests.conftest import PHANTOM, SIZE

    out = tmp_path_factory.mktemp("paper")
    prepare([PHANTOM], out, PrepareConfig(size=SIZE, seed=0, split="paper", workers=1))
    return out


def test_baselines_leak_free_protocol_carves_validation_from_a_paper_split(release, paper, tmp_path):
    """--split paper has no validation split: leak-free carves one from training patients, seeded and recorded;
    no patient is on both sides (the phantom has three images per patient)."""
    cfg = BaselinesConfig(comparisons=("normal vs covid",), epochs=1, bootstrap=5, controls=False, seeds=(0,))
    results = run_baselines(release, paper, tmp_path / "out", cfg)
    saved = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert saved["validation"].startswith("carved from the training split by patient")
    assert saved["synthetic"]["dropped_held_out"] > 0  # the paper split holds out other patients
    train_patients = {r["patient_id"] for r in read_manifest(paper).rows() if r["split"] == "train"}
    assert results and results[0]["train_negatives"] < sum(
        r["split"] == "train" and r["label"] == "normal" for r in read_manifest(paper).rows()
    )
    assert train_patients
    carved = set(saved["carved_validation_ids"])
    rows = read_manifest(paper).rows()
    validation = {r["patient_id"] for r in rows if r["id"] in carved}
    training = {r["patient_id"] for r in rows if r["split"] == "train" and r["id"] not in carved}
    assert validation and training and not validation & training


def test_baselines_seed_protocol_labels_every_table_optimistic(release, paper, tmp_path):
    """The seed's protocol on the seed's split: optimistic, SEN/SPE at 0.5 only, no paired tables or McNemar."""
    cfg = BaselinesConfig.for_protocol(
        "seed", models=("small-cnn",), size=64, epochs=1, pretrained=False, bootstrap=5, controls=False, seeds=(0,)
    )
    assert (cfg.optimizer, cfg.batch_size) == ("adadelta", 16)
    results = run_baselines(release, paper, tmp_path, cfg)
    table = (tmp_path / "table.md").read_text()
    assert table.startswith("**Protocol `seed`: OPTIMISTIC.**") and "by image, not patient" in table
    assert {r["protocol"] for r in results} == {"seed (optimistic)"}
    assert "seed (optimistic)" in (tmp_path / "metrics.csv").read_text()
    assert [r["regime"] for r in results if r["comparison"] == "pneumonia vs covid"][-1] == "synthetic only"
    assert not any("threshold" in k for r in results for k in r)
    assert "@val" not in table and "paired differences" not in table and "McNemar" not in table
    assert (tmp_path / "comparisons.csv").read_text() == ""


def test_baselines_seed_protocol_refuses_a_patient_split(release, prepared, tmp_path):
    cfg = BaselinesConfig.for_protocol("seed", models=("small-cnn",), size=64, epochs=1, pretrained=False)
    with pytest.raises(ConfigError, match=rf"{prepared}: protocol seed .* --split patient"):
        run_baselines(release, prepared, tmp_path / "out", cfg)


def test_cluster_bootstrap_is_wider_than_the_image_bootstrap_on_clustered_data():
    """Three images per patient that agree with each other: resampling images overstates what the test set
    knows; resampling patients does not."""
    rng = np.random.default_rng(0)
    patients = 40
    y_patient = rng.integers(0, 2, patients)
    p_patient = np.clip(0.5 + (y_patient - 0.5) * 0.3 + rng.normal(0, 0.25, patients), 0, 1)
    y, p = np.repeat(y_patient, 3), np.repeat(p_patient, 3) + rng.normal(0, 0.01, 3 * patients)
    groups = np.repeat(np.arange(patients), 3)
    by_image = bootstrap_ci(y, p, resamples=400, seed=0)
    by_patient = bootstrap_ci(y, p, resamples=400, seed=0, groups=groups)
    width = {k: (v[1] - v[0], by_patient[k][1] - by_patient[k][0]) for k, v in by_image.items()}
    assert width["roc_auc"][1] > 1.4 * width["roc_auc"][0]
    assert width["sensitivity"][1] > 1.4 * width["sensitivity"][0]


def test_paired_deltas_see_a_real_difference_and_none_between_equal_runs():
    from validation_tools.paired import Scored, paired_deltas

    rng = np.random.default_rng(1)
    y = np.r_[np.ones(40, int), np.zeros(60, int)]
    good = [Scored(np.clip(y * 0.5 + rng.normal(0.25, 0.15, 100), 0, 1), 0.5) for _ in range(2)]
    weak = [Scored(np.clip(y * 0.1 + rng.normal(0.4, 0.15, 100), 0, 1), 0.5) for _ in range(2)]
    groups = np.arange(100)
    better = paired_deltas(y, groups, good, weak, resamples=200)
    assert better["delta_roc_auc_ci"][0] > 0 and better["delta_sensitivity"] > 0
    same = paired_deltas(y, groups, good, good, resamples=50)
    assert same["delta_roc_auc"] == same["delta_roc_auc_ci"][0] == same["delta_roc_auc_ci"][1] == 0
    assert "mcnemar_p" not in better  # image-level, held the models fixed: replaced by the ΔSEN interval


def test_baselines_unknown_model_comparison_or_workers_is_refused():
    with pytest.raises(ConfigError, match="models must be among"):
        BaselinesConfig(models=("alexnet",))
    with pytest.raises(ConfigError, match="comparisons must be among"):
        BaselinesConfig(comparisons=("normal vs pneumonia",))
    with pytest.raises(ConfigError, match=r"workers must be in 0\.\.\d+ on this machine"):
        BaselinesConfig(workers=-1)


@pytest.fixture(scope="module")
def report(baselines_run, release, prepared, inception_weights, tmp_path_factory):
    """One report for all report tests (each costs seconds): with Inception features, as users may ask."""
    from validation_tools.report import write_report

    out = tmp_path_factory.mktemp("report") / "report"
    return write_report(baselines_run[0], release, prepared, out, inception=inception_weights)


@pytest.mark.slow
def test_report_writes_readable_figures_and_the_tables(report):
    from PIL import Image

    for figure in report.figures:
        pixels = np.asarray(Image.open(figure).convert("L"), dtype=float)
        assert pixels.shape[0] > 200 and pixels.std() > 10  # drawn on, not blank
    text = report.path.read_text()
    assert all(f"]({p.name})" in text for p in report.figures)
    assert "| small-cnn |" in text and "roc_auc" in text
    assert {"forest.png", "balance.png", "roc.png", "pairs.png", "samples.png", "cam.png", "umap.png"} == {
        p.name for p in report.figures
    }


@pytest.mark.slow
def test_report_header_headline_and_guides(report, release):
    from cxr_dataset.release_folder import read_release

    text = report.path.read_text()
    assert f"**release**: covid-synthetic-cxr, version {read_release(release).version}" in text
    assert "**generator normal2covid**: preset tiny" in text and "**made by**: cxrds" in text
    assert "| regime | positives (skew) | AUC | AP | SEN @0.5 | SPE @0.5 | SEN @val | SPE @val |" in text
    assert "| real + G_NC | real (oversampled) |" in text and "mean ± SD over 2 seeds" in text
    assert "## The seed's skew table against its release" in text and "| 0.79 | 0.77 | 0.79 |" in text
    assert "procedural phantom" in text  # what this real data can and cannot show
    # one primary endpoint, named before the tables, every other comparison secondary
    assert "## Primary endpoint" in text and "ΔAUC of real + G_NC against the oversampling control" in text
    assert "non-inferiority margin -0.020" in text and "is secondary" in text and "| primary |" in text
    sections = [line for line in text.splitlines() if line.startswith("## ")]
    assert sections[0].startswith("## Shortcut probes") and "| Normal vs COVID-19 |" in text  # probes come first
    answer = sections.index("## Does a generator beat the controls?")  # the answer as a picture, next
    assert sections[answer - 1] == "## Primary endpoint" and sections[answer + 1].startswith("## Headline")
    assert "; resize crop; " in text  # how the real images were squared, read back from the manifest
    assert text.count("*") > 20 and "Heat should sit in the lungs" in text  # captions and reading guides


@pytest.mark.slow
def test_report_html_is_self_contained_and_well_formed(report):
    import base64
    import io
    import re
    from html.parser import HTMLParser

    from PIL import Image

    page = (report.path.parent / "report.html").read_text()
    void = {"meta", "img", "br", "hr", "link", "input"}

    class Checker(HTMLParser):
        def __init__(self):
            super().__init__()
            self.stack, self.problems, self.sources = [], [], []

        def handle_starttag(self, tag, attrs):
            self.sources += [v for k, v in attrs if k in ("src", "href")]
            if tag not in void:
                self.stack.append(tag)

        def handle_endtag(self, tag):
            if not self.stack or self.stack.pop() != tag:
                self.problems.append(f"</{tag}> closes nothing open")

    checker = Checker()
    checker.feed(page)
    assert page.startswith("<!DOCTYPE html>") and not checker.problems and checker.stack == []
    assert checker.sources and all(s.startswith("data:image/png;base64,") for s in checker.sources)  # offline
    for source in checker.sources:
        with Image.open(io.BytesIO(base64.b64decode(source.split(",", 1)[1]))) as img:
            assert img.format == "PNG" and img.size[0] > 100
    assert len(checker.sources) == len(report.figures) and len(re.findall("<figcaption>", page)) == len(report.figures)


def test_report_flags_a_domain_gap_border_heat_and_tiny_test_sets():
    from validation_tools.report import _interval_flags
    from validation_tools.report_quality import border_share, domain_gap, synthetic_neighbour_share

    rng = np.random.default_rng(0)
    real = {"real covid": rng.normal(0, 1, (200, 8)), "real normal": rng.normal(0.5, 1, (200, 8))}
    near = domain_gap({**real, "synthetic G_NC": rng.normal(0, 1, (100, 8))})
    far = domain_gap({**real, "synthetic G_NC": rng.normal(6, 1, (100, 8))})
    assert near < 1.5 < 2 < far
    mixed = synthetic_neighbour_share({**real, "synthetic G_NC": rng.normal(0, 1, (100, 8))})
    apart = synthetic_neighbour_share({**real, "synthetic G_NC": rng.normal(3, 0.5, (100, 8))})
    assert mixed < 0.4 < 0.9 < apart  # 100 of 500 are synthetic: 0.2 when they mix
    maps = np.zeros((2, 64, 64))
    maps[:, :6, :] = 1  # heat on the top edge, where a text marker would be
    assert border_share(maps) == 1.0 and border_share(np.ones((2, 64, 64))) < 0.5
    # 0 %: the bootstrap interval is 0 %–0 %; Wilson's on 3 patients is 0–56 %
    run = {"comparison": "normal vs covid", "y_true": [1, 1, 1, 0], "p_covid": [0.1, 0.2, 0.3, 0.1]}
    flags = _interval_flags([run], [run | {"patient_id": ["a", "b", "c", "d"]}])
    assert "only 3 COVID-19 test images of 3 patients" in flags[0] and "56% wide" in flags[0]
    # 12 images of 3 patients, alike within each: as wide as 3 images, not 12
    clustered = {"comparison": "normal vs covid", "y_true": [1] * 12, "p_covid": [0.1] * 12}
    flags = _interval_flags([clustered], [clustered | {"patient_id": list("aaaabbbbcccc")}])
    assert "12 COVID-19 test images of 3 patients" in flags[0] and "56% wide" in flags[0]
    many = {"comparison": "normal vs covid", "y_true": [1] * 100, "p_covid": [0.9] * 90 + [0.1] * 10}
    assert _interval_flags([many], [many | {"patient_id": list(range(100))}]) == []


def test_wilson_interval_keeps_its_width_at_the_ends():
    from validation_tools.metrics import wilson_interval

    low, high = wilson_interval(0, 3)
    assert low == 0 and 0.56 < high < 0.57  # the textbook 0/3: 0–56 %
    assert wilson_interval(3, 3)[0] > 0.43 and wilson_interval(50, 100) == pytest.approx((0.4038, 0.5962), abs=1e-4)


def test_clustered_wilson_interval_counts_alike_images_of_one_patient_once():
    from validation_tools.metrics import clustered_wilson_interval, wilson_interval

    alike = clustered_wilson_interval(np.r_[np.ones(8), np.zeros(8)], np.repeat(np.arange(4), 4))
    assert alike == pytest.approx(wilson_interval(2, 4))  # 4 patients, each all right or all wrong
    mixed = clustered_wilson_interval(np.tile([1.0, 0.0], 8), np.repeat(np.arange(4), 4))
    assert mixed == pytest.approx(wilson_interval(8, 16))  # no patient effect: every image counts


@pytest.mark.parametrize("shape", [(40, 30, 256), (300, 200, 16)], ids=["fewer-images", "fewer-features"])
def test_explain_fid_routes_agree(shape):
    from validation_tools.explain import _trace_sqrt

    rng = np.random.default_rng(0)
    na, nb, d = shape
    a, b = rng.normal(size=(na, d)), rng.normal(0.3, 1.5, size=(nb, d))
    a, b = a - a.mean(0), b - b.mean(0)
    assert _trace_sqrt(a, b, route="images") == pytest.approx(_trace_sqrt(a, b, route="features"), rel=1e-6)


def test_explain_fid_and_kid_grow_with_the_distance_between_feature_sets():
    from validation_tools.explain import fid, kid

    rng = np.random.default_rng(0)
    a, b = rng.normal(0, 1, (300, 8)), rng.normal(0, 1, (300, 8))
    far = rng.normal(1.5, 1, (300, 8))
    assert fid(a, b) < 0.5 < fid(a, far) and abs(kid(a, b)) < 0.05 < kid(a, far)


@pytest.mark.slow
def test_report_includes_grad_cam_and_synthetic_quality(report):
    assert {"cam.png", "umap.png"} <= {p.name for p in report.figures}
    text = report.path.read_text()
    assert "## Synthetic image quality" in text and "| FID | KID × 10³ (mean ± SD) |" in text
    assert "| G_NC vs real COVID-19" in text
    assert "reference: real COVID-19 vs real COVID-19 (two halves, by patient)" in text
    table = text.partition("## Synthetic image quality")[2].partition("\n## ")[0]
    rows = [line.split(" | ") for line in table.splitlines() if line.startswith("| ") and " vs " in line]
    assert rows and all(re.fullmatch(r"\d+\.\d", row[3]) for row in rows)  # FID: one decimal, on a stated scale
    assert "reference: G_PC vs real pneumonia (its source)" in text and "⚠ small n" in text


@pytest.fixture(scope="module")
def inception_weights(tmp_path_factory):
    """torchvision's Inception-v3 with freshly initialised weights, saved the way the docs tell users to."""
    import torch
    import torchvision
    from safetensors.torch import save_file

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("inception") / "inception_v3.safetensors"
    save_file(torchvision.models.inception_v3(weights=None, init_weights=True).state_dict(), path)
    return path


def test_inception_features_from_user_weights(inception_weights):
    import torch

    from validation_tools.explain import fid, inception_features, load_inception

    net = load_inception(inception_weights)
    images = torch.randint(0, 256, (6, 1, 64, 64), dtype=torch.uint8)
    features = inception_features(net, images, batch=4)
    assert features.shape == (6, 2048) and np.isfinite(features).all()
    assert features.std(axis=0).max() > 0  # the images are told apart
    assert fid(features, features) == pytest.approx(0, abs=1e-3 * fid(features[:3], features[3:]))


def test_inception_refuses_pickles_and_other_weights(inception_weights, baselines_run, tmp_path):
    import torch

    from validation_tools.explain import load_inception

    pickled = tmp_path / "inception.pth"
    torch.save({"w": torch.zeros(2)}, pickled)
    with pytest.raises(ConfigError, match="inception.pth: not a readable safetensors file"):
        load_inception(pickled)
    other = next((baselines_run[0] / "models").glob("*.safetensors"))
    with pytest.raises(ConfigError, match="not torchvision Inception-v3 weights"):
        load_inception(other)


@pytest.mark.slow
def test_report_adds_inception_fid_when_given_weights(report):
    assert "| Inception-v3 | G_NC vs real COVID-19" in report.path.read_text()


@pytest.mark.parametrize("seed", range(5))
def test_metrics_equal_scikit_learn_with_ties(seed):
    from sklearn.metrics import average_precision_score, brier_score_loss, cohen_kappa_score, roc_auc_score

    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, 300)
    p = np.round(np.clip(0.3 * y + rng.normal(0.35, 0.25, 300), 0, 1), 1)  # coarse: many tied scores
    m = point_metrics(y, p)
    assert m["roc_auc"] == pytest.approx(roc_auc_score(y, p))
    assert m["average_precision"] == pytest.approx(average_precision_score(y, p))
    assert m["kappa"] == pytest.approx(cohen_kappa_score(y, (p >= 0.5).astype(int)))
    assert m["brier"] == pytest.approx(brier_score_loss(y, p))


def test_report_notes_when_class_follows_source_and_not_when_sources_mix():
    import json as _json

    from validation_tools.report_quality import source_confounding

    def rows(pairs):
        return [
            {"label": label, "source": "imagefolder", "extra": _json.dumps({"source": source})}
            for label, source, n in pairs
            for _ in range(n)
        ]

    confounded = source_confounding(rows([("normal", "nih", 40), ("covid", "ieee8023", 30), ("covid", "nih", 2)]))
    assert (
        confounded is not None
        and confounded.startswith("Cramér's V 0.9")
        and "covid: ieee8023 30 / nih 2" in confounded
    )
    assert (
        source_confounding(rows([("normal", "a", 20), ("normal", "b", 20), ("covid", "a", 10), ("covid", "b", 10)]))
        is None
    )
