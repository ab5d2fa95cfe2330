"""The intervals `cxrds baselines` prints, checked where the truth is known: simulated predictions shaped like the
committed real-radiograph run (19 COVID-19 and 40 negative test patients, 1–5 near-identical images each, 3
classifier seeds whose AUCs differ by SD 0.0075), through the functions the command runs (`paired_comparisons`,
`_scores`). Bootstrap resamples are 200 here (1,000 in `cxrds baselines`) to keep the file to seconds.
"""

import json

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from validation_tools import score_simulation as sim
from validation_tools.baselines import _scores, paired_comparisons
from validation_tools.metrics import bootstrap_ci
from validation_tools.paired import Scored, paired_deltas

TRUE_AUC, SEED_AUC_SD, SEEDS, RESAMPLES = 0.95, 0.0075, 3, 200


@pytest.fixture(autouse=True)
def one_blas_thread():
    """The matrices are small: threads only contend on a shared CPU."""
    with threadpool_limits(limits=1, user_api="blas"):
        yield


def _comparison(rng, test, regime_auc: float, control_auc: float = TRUE_AUC, seed_auc_sd: float = SEED_AUC_SD):
    """One `paired_comparisons` row: real + G_NC against the oversampling control, 3 seeds each."""
    seed_sd = sim.seed_sd_for(TRUE_AUC, seed_auc_sd)
    regime, _ = sim.scored_runs(rng, test, sim.separation_for(regime_auc), seed_sd, SEEDS)
    control, _ = sim.scored_runs(rng, test, sim.separation_for(control_auc), seed_sd, SEEDS)
    runs = sim.predictions(test, regime, "real + G_NC") + sim.predictions(test, control, "real (oversampled)")
    (row,) = [c for c in paired_comparisons(runs, RESAMPLES) if c["regime"] == "real + G_NC"]
    return row


def _excludes_zero(interval: list[float]) -> bool:
    return interval[0] > 0 or interval[1] < 0


def test_paired_intervals_exclude_zero_at_most_at_the_nominal_rate_on_a_planted_null():
    """Both regimes drawn from one model distribution: 1,000 simulated comparisons, binomial bound for 5%."""
    rng = np.random.default_rng(27)
    rows = [_comparison(rng, sim.test_set(rng), TRUE_AUC) for _ in range(1000)]
    auc_rate = np.mean([_excludes_zero(r["delta_roc_auc_ci"]) for r in rows])
    sen_rate = np.mean([_excludes_zero(r["delta_sensitivity_ci"]) for r in rows])
    print(f"null: ΔAUC intervals exclude 0 in {auc_rate:.1%}, ΔSEN in {sen_rate:.1%} of 1,000")
    assert auc_rate <= 0.065 and sen_rate <= 0.065
    assert all(r["resampled"] == "patients, seeds" for r in rows)


def test_paired_intervals_see_a_planted_benefit():
    """Power: the generator's regime truly better (AUC 0.95 against 0.88) is seen most of the time."""
    rng = np.random.default_rng(5)
    rows = [_comparison(rng, sim.test_set(rng), TRUE_AUC, control_auc=0.88) for _ in range(100)]
    power = np.mean([r["delta_roc_auc_ci"][0] > 0 for r in rows])
    print(f"power: ΔAUC intervals above 0 in {power:.0%} of 100 (true ΔAUC +0.07)")
    assert power >= 0.5


def test_single_model_auc_interval_covers_the_true_auc():
    """`bootstrap_ci`'s ROC AUC interval (what `_scores` writes to metrics.csv) over 500 simulated test sets."""
    rng = np.random.default_rng(11)
    covered = []
    for i in range(500):
        test = sim.test_set(rng)
        (run,), (truth,) = sim.scored_runs(rng, test, sim.separation_for(TRUE_AUC), 0.0, 1)
        low, high = bootstrap_ci(test.y_true, run.p_covid, resamples=RESAMPLES, seed=i, groups=test.patients)["roc_auc"]
        covered.append(low <= truth <= high)
    print(f"single-model AUC intervals cover the true AUC in {np.mean(covered):.1%} of 500")
    assert np.mean(covered) >= 0.92


def test_scores_need_the_patient_groups_on_clustered_images():
    """Several near-identical images per patient: an interval that resamples images as if independent is too
    narrow to cover the truth as often as it says (the bug this catches: `_scores` or `paired_comparisons`
    dropping the patient ids)."""
    rng = np.random.default_rng(3)
    covered = []
    for i in range(100):
        test = sim.test_set(rng, most_images=8)
        (run,), (truth,) = sim.scored_runs(rng, test, sim.separation_for(0.9), 0.0, 1)
        low, high = _scores(test.y_true, test.patients, run.p_covid, run.threshold, RESAMPLES, i)["roc_auc_ci"]
        covered.append(low <= truth <= high)
    assert np.mean(covered) >= 0.9


def test_paired_comparisons_need_the_patient_groups_on_clustered_images():
    """The same through `paired_comparisons`: with seeds alike, patients are the noise that remains."""
    rng = np.random.default_rng(4)
    rows = [_comparison(rng, sim.test_set(rng, most_images=8), TRUE_AUC, seed_auc_sd=0.001) for _ in range(150)]
    rates = [np.mean([_excludes_zero(r[f"delta_{m}_ci"]) for r in rows]) for m in ("roc_auc", "sensitivity")]
    print(f"clustered null: ΔAUC, ΔSEN intervals exclude 0 in {rates[0]:.1%}, {rates[1]:.1%} of 150")
    assert max(rates) <= 0.09


def test_one_seed_is_named_as_leaving_training_noise_out_and_generator_runs_are_resampled():
    rng = np.random.default_rng(0)
    test = sim.test_set(rng)
    (a,), _ = sim.scored_runs(rng, test, 2.0, 0.1, 1)
    (b,), _ = sim.scored_runs(rng, test, 2.0, 0.1, 1)
    one = paired_deltas(test.y_true, test.patients, [a], [b], resamples=50)
    assert one["resampled"].startswith("patients only")
    runs = [Scored(a.p_covid, a.threshold, "g1"), Scored(b.p_covid, b.threshold, "g2")]
    two = paired_deltas(test.y_true, test.patients, runs, [b, a], resamples=50)
    assert two["generator_runs"] == 2 and two["seeds"] == 2
    json.dumps(two)  # metrics.json takes it as it is (no numpy scalars)
    assert two["delta_roc_auc"] == pytest.approx(0.0, abs=1e-12)
    assert two["delta_roc_auc_ci"][0] < 0 < two["delta_roc_auc_ci"][1]
