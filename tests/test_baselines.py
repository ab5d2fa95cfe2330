import json
import math

import numpy as np
import pytest

from cxr_dataset.baselines import BenchmarkConfig, run_benchmark
from cxr_dataset.errors import ConfigError
from cxr_dataset.manifest import read_manifest
from cxr_dataset.metrics import bootstrap_ci, point_metrics


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
def benchmarked(release, prepared, tmp_path_factory):
    out = tmp_path_factory.mktemp("benchmark")
    return out, run_benchmark(release, prepared, out, BenchmarkConfig(epochs=2, bootstrap=20))


def test_benchmark_runs_every_comparison_and_regime_on_real_test_images(benchmarked, prepared):
    tmp_path, results = benchmarked
    assert [(r["comparison"], r["regime"]) for r in results][:4] == [
        ("normal vs covid", "real"),
        ("normal vs covid", "real + G_NC"),
        ("normal vs covid", "real + G_NC + G_PC"),
        ("normal vs covid", "synthetic only"),
    ]
    test = [r for r in read_manifest(prepared).rows() if r["split"] == "test"]
    first = results[0]
    assert first["test_images"] == sum(r["label"] in ("normal", "covid") for r in test)
    assert first["tp"] + first["fn"] == sum(r["label"] == "covid" for r in test)
    assert first["skew"] == math.floor(100 * first["train_negatives"] / first["train_positives"]) / 100
    assert results[1]["train_positives"] > first["train_positives"]  # synthetic positives were added
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert len(saved["results"]) == len(results) == 8
    assert "| small-cnn |" in (tmp_path / "table.md").read_text()


def test_benchmark_unknown_model_comparison_or_workers_is_refused():
    with pytest.raises(ConfigError, match="models must be among"):
        BenchmarkConfig(models=("alexnet",))
    with pytest.raises(ConfigError, match="comparisons must be among"):
        BenchmarkConfig(comparisons=("normal vs pneumonia",))
    with pytest.raises(ConfigError, match=r"workers must be in 0\.\.\d+ on this machine"):
        BenchmarkConfig(workers=-1)


@pytest.mark.slow
def test_report_writes_readable_figures_and_the_tables(benchmarked, release, prepared, tmp_path):
    from PIL import Image

    from cxr_dataset.report import write_report

    result = write_report(benchmarked[0], release, prepared, tmp_path)
    for figure in result.figures:
        pixels = np.asarray(Image.open(figure).convert("L"), dtype=float)
        assert pixels.shape[0] > 200 and pixels.std() > 10  # drawn on, not blank
    text = result.path.read_text()
    assert all(f"]({p.name})" in text for p in result.figures)
    assert "| small-cnn |" in text and "roc_auc" in text


def test_explain_fid_and_kid_grow_with_the_distance_between_feature_sets():
    from cxr_dataset.explain import fid, kid

    rng = np.random.default_rng(0)
    a, b = rng.normal(0, 1, (300, 8)), rng.normal(0, 1, (300, 8))
    far = rng.normal(1.5, 1, (300, 8))
    assert fid(a, b) < 0.5 < fid(a, far) and abs(kid(a, b)) < 0.05 < kid(a, far)


def test_report_includes_grad_cam_and_synthetic_quality(benchmarked, release, prepared, tmp_path):
    from cxr_dataset.report import write_report

    result = write_report(benchmarked[0], release, prepared, tmp_path)
    assert {"cam.png", "umap.png"} <= {p.name for p in result.figures}
    text = result.path.read_text()
    assert "## Synthetic image quality" in text and "| FID | KID |" in text


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

    from cxr_dataset.explain import fid, inception_features, load_inception

    net = load_inception(inception_weights)
    images = torch.randint(0, 256, (6, 1, 64, 64), dtype=torch.uint8)
    features = inception_features(net, images, batch=4)
    assert features.shape == (6, 2048) and np.isfinite(features).all()
    assert features.std(axis=0).max() > 0  # the images are told apart
    assert fid(features, features) == pytest.approx(0, abs=1e-3 * fid(features[:3], features[3:]))


def test_inception_refuses_pickles_and_other_weights(inception_weights, benchmarked, tmp_path):
    import torch

    from cxr_dataset.explain import load_inception

    pickled = tmp_path / "inception.pth"
    torch.save({"w": torch.zeros(2)}, pickled)
    with pytest.raises(ConfigError, match="inception.pth: not a readable safetensors file"):
        load_inception(pickled)
    other = next((benchmarked[0] / "models").glob("*.safetensors"))
    with pytest.raises(ConfigError, match="not torchvision Inception-v3 weights"):
        load_inception(other)


@pytest.mark.slow
def test_report_adds_inception_fid_when_given_weights(benchmarked, release, prepared, inception_weights, tmp_path):
    from cxr_dataset.report import write_report

    text = write_report(benchmarked[0], release, prepared, tmp_path, inception=inception_weights).path.read_text()
    assert "FID (Inception) | KID (Inception) |" in text


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
