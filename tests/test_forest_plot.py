"""The report's forest plot: which rows it draws, in which order, and which one is the primary endpoint."""

from PIL import Image

from validation_tools.endpoint import CONTROL
from validation_tools.forest_plot import forest_figure, forest_rows

TASK = "normal vs covid"


def _row(regime: str, against: str, test_set: str = "internal", model: str = "small-cnn") -> dict:
    return {
        "comparison": TASK,
        "model": model,
        "regime": regime,
        "against": against,
        "test_set": test_set,
        "delta_roc_auc": 0.01,
        "delta_roc_auc_ci": [-0.02, 0.04],
        "delta_sensitivity": 0.05,
        "delta_sensitivity_ci": [-0.1, 0.2],
    }


RESULTS = [{"comparison": TASK, "model": "small-cnn"}, {"comparison": TASK, "model": "resnet50"}]
COMPARISONS = [
    _row("real + G_NC", "real"),
    _row("real + G_NC", CONTROL, "within-source"),
    _row("real + G_NC + G_PC", CONTROL),
    _row("real + G_NC", CONTROL),
    _row("real + G_NC", CONTROL, model="resnet50"),  # the first model's rows only
]


def test_rows_put_the_internal_control_comparisons_first_and_mark_one_primary():
    rows = forest_rows(COMPARISONS, RESULTS, TASK)
    assert [r["label"] for r in rows] == [
        f"real + G_NC − {CONTROL}",
        f"real + G_NC + G_PC − {CONTROL}",
        "real + G_NC − real",
        f"real + G_NC − {CONTROL} [within-source]",
    ]
    assert [r["primary"] for r in rows] == [True, False, False, False]


def test_the_figure_is_drawn_and_absent_without_comparisons(tmp_path):
    figure = forest_figure(COMPARISONS, RESULTS, tmp_path / "forest.png", margin=-0.02)
    assert figure is not None and Image.open(figure.path).size[0] > 800
    assert "primary endpoint" in figure.caption and "-0.02" in figure.caption
    assert forest_figure([], RESULTS, tmp_path / "none.png", margin=-0.02) is None
