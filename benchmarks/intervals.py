"""How `cxrds baselines`' intervals behave where the truth is known, measured on simulated predictions shaped like
the committed real-radiograph run (`validation_tools/score_simulation.py`: 19 COVID-19 and 40 negative test
patients, 1–5 near-identical images each, seeds whose AUCs differ by SD 0.0075).

    python benchmarks/intervals.py [--sims 1000] [--resamples 1000] [--seeds 1,2,3,5,8]

Prints, per number of classifier seeds: how often the 95% ΔAUC and ΔSEN intervals exclude 0 when both regimes come
from one model distribution (nominal 5%) and their mean width; then how often the single-model AUC interval covers
the model's true AUC at true AUCs 0.90, 0.95 and 0.97. docs/evaluation.md quotes its output.
"""

from __future__ import annotations

import argparse

import numpy as np
from threadpoolctl import threadpool_limits

from validation_tools import score_simulation as sim
from validation_tools.metrics import bootstrap_ci
from validation_tools.paired import paired_deltas

TRUE_AUC, SEED_AUC_SD = 0.95, 0.0075


def null_rates(seeds: int, sims: int, resamples: int) -> dict[str, float]:
    """Share of planted-null comparisons whose intervals exclude 0, and the intervals' mean width."""
    rng = np.random.default_rng(seeds)
    separation, seed_sd = sim.separation_for(TRUE_AUC), sim.seed_sd_for(TRUE_AUC, SEED_AUC_SD)
    rows = []
    for i in range(sims):
        test = sim.test_set(rng)
        a, _ = sim.scored_runs(rng, test, separation, seed_sd, seeds)
        b, _ = sim.scored_runs(rng, test, separation, seed_sd, seeds)
        rows.append(paired_deltas(test.y_true, test.patients, a, b, resamples=resamples, seed=i))
    out = {}
    for metric in ("roc_auc", "sensitivity"):
        intervals = np.array([r[f"delta_{metric}_ci"] for r in rows])
        out[f"{metric} excludes 0"] = float(np.mean((intervals[:, 0] > 0) | (intervals[:, 1] < 0)))
        out[f"{metric} width"] = float(np.mean(intervals[:, 1] - intervals[:, 0]))
    return out


def coverage(auc: float, sims: int, resamples: int) -> tuple[float, float]:
    """Share of single-model AUC intervals that hold the model's true AUC, and their mean width."""
    rng = np.random.default_rng(int(auc * 1000))
    hits, widths = [], []
    for i in range(sims):
        test = sim.test_set(rng)
        (run,), (truth,) = sim.scored_runs(rng, test, sim.separation_for(auc), 0.0, 1)
        low, high = bootstrap_ci(test.y_true, run.p_covid, resamples=resamples, seed=i, groups=test.patients)["roc_auc"]
        hits.append(low <= truth <= high)
        widths.append(high - low)
    return float(np.mean(hits)), float(np.mean(widths))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sims", type=int, default=1000)
    parser.add_argument("--resamples", type=int, default=1000)
    parser.add_argument("--seeds", default="1,2,3,5,8")
    args = parser.parse_args()
    with threadpool_limits(limits=1, user_api="blas"):  # small matrices: threads only contend
        print(f"planted null, {args.sims} comparisons, {args.resamples} resamples, true AUC {TRUE_AUC}")
        for seeds in map(int, args.seeds.split(",")):
            rates = null_rates(seeds, args.sims, args.resamples)
            print(f"  {seeds} seeds: " + ", ".join(f"{k} {v:.3f}" for k, v in rates.items()), flush=True)
        print(f"single-model AUC interval, {args.sims} test sets")
        for auc in (0.90, 0.95, 0.97):
            covered, width = coverage(auc, args.sims, args.resamples)
            print(f"  true AUC {auc}: covered {covered:.3f}, mean width {width:.3f}", flush=True)


if __name__ == "__main__":
    main()
