"""The primary endpoint: which comparison it is, how its interval is read against the margin and the ceiling, and
that every other comparison is marked secondary (tables and the report's headline)."""

import pytest

from cxr_dataset.errors import ConfigError
from validation_tools.baselines_tables import summary_blocks
from validation_tools.endpoint import CONTROL, check_margin, headline, primary_endpoints

NC, BOTH = "real + G_NC", "real + G_NC + G_PC"


def _results(control_auc: float, models=("small-cnn",)) -> list[dict]:
    rows = []
    for model in models:
        for regime in ("real", NC, BOTH, CONTROL):
            for seed in (0, 1):
                rows.append(
                    {"comparison": "normal vs covid", "regime": regime, "model": model, "seed": seed}
                    | {"roc_auc": control_auc if regime == CONTROL else 0.9, "train_positives": 10, "skew": 1.0}
                    | {"test_images": 50, "tp": 10, "fn": 10, "test_patients": 30}
                    | dict.fromkeys(("average_precision", "sensitivity", "specificity"), 0.8)
                    | dict.fromkeys(("sensitivity_at_threshold", "specificity_at_threshold"), 0.8)
                )
    return rows


def _paired(regime: str, against: str, interval=(-0.01, 0.03), model="small-cnn") -> dict:
    return {"comparison": "normal vs covid", "model": model, "regime": regime, "against": against, "seeds": 2} | {
        "resampled": "patients, seeds",
        "delta_roc_auc": sum(interval) / 2,
        "delta_roc_auc_ci": list(interval),
        "delta_average_precision": 0.0,
        "delta_average_precision_ci": [0.0, 0.0],
        "delta_sensitivity": 0.0,
        "delta_sensitivity_ci": [0.0, 0.0],
        "seeds_sensitivity_higher": 0,
        "seeds_sensitivity_lower": 0,
    }


def _comparisons(primary_interval=(-0.01, 0.03), models=("small-cnn",)) -> list[dict]:
    rows = []
    for model in models:
        rows += [_paired(r, "real", model=model) for r in (NC, BOTH, CONTROL)]
        rows += [_paired(NC, CONTROL, primary_interval, model), _paired(BOTH, CONTROL, model=model)]
    return rows


def test_the_primary_endpoint_is_the_own_generator_against_oversampling_on_the_first_model():
    results, comparisons = _results(0.9, ("small-cnn", "resnet50")), _comparisons(models=("small-cnn", "resnet50"))
    (endpoint,) = primary_endpoints(results, comparisons)
    assert (endpoint.regime, endpoint.model, endpoint.interval) == (NC, "small-cnn", (-0.01, 0.03))
    assert endpoint.control_auc == pytest.approx(0.9) and endpoint.margin == -0.02
    lines = headline(results, comparisons, -0.02)
    assert lines[0].startswith("**Primary endpoint** (Normal vs COVID-19, small-cnn): ΔAUC of real + G_NC")
    assert "margin -0.020" in lines[0] and "Every other comparison (9) is secondary" in lines[-1]


@pytest.mark.parametrize(
    ("interval", "reading"),
    [
        ((0.01, 0.05), "better than the control"),
        ((-0.015, 0.02), "non-inferior to the control"),
        ((-0.05, 0.01), "inconclusive"),
        ((-0.09, -0.03), "inferior to the control"),
    ],
)
def test_the_endpoint_is_read_against_the_margin(interval, reading):
    (endpoint,) = primary_endpoints(_results(0.9), _comparisons(interval), margin=-0.02)
    assert endpoint.reading.startswith(reading)


def test_a_control_at_its_ceiling_cannot_show_a_benefit_whatever_the_interval():
    (endpoint,) = primary_endpoints(_results(0.995), _comparisons((0.001, 0.004)))
    assert "cannot show a benefit" in endpoint.reading and "0.995" in endpoint.reading


def test_the_margin_must_be_a_non_positive_auc_difference():
    assert check_margin(-0.05) == -0.05
    for bad in (0.02, -1.5, float("nan")):
        with pytest.raises(ConfigError, match="margin must be a ΔAUC in"):
            check_margin(bad)


def test_no_primary_endpoint_is_said_in_words():
    comparisons = [c for c in _comparisons() if c["against"] != CONTROL]
    assert headline(_results(0.9), comparisons, -0.02)[0].startswith("No primary endpoint")


def test_the_baselines_table_marks_primary_and_secondary_rows():
    (_, (title, columns, rows)) = summary_blocks(_results(0.9), _comparisons())
    assert "endpoint" in columns and "No McNemar" in title and "secondary (4 in this run)" in title
    marks = {(r[0], r[1]): r[columns.index("endpoint")] for r in rows}
    assert marks.pop((NC, CONTROL)) == "primary" and set(marks.values()) == {"secondary"}
