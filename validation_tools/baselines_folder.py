"""The output folder of `cxrds baselines`: the one place that names its files, writes them and reads them back.

    BASELINES/table.md            the tables a reader sees (protocol note, summaries, paired differences)
              metrics.csv         every run: comparison × regime × model × seed, one row each
              metrics.json        the record: config, code version, device, validation, synthetic counts,
                                  results and comparisons (what `cxrds report` reads)
              comparisons.csv     paired differences between regimes
              predictions.json    test labels, patients and P(covid) per run, for ROC curves and pairs
              models/<key>.safetensors  one classifier per run (`classifier_path`)

`cxrds baselines` writes it through `write_baselines`; `cxrds report` and the CLI read it through
`read_baselines`. Light on purpose (no torch): the CLI imports it to name the files in its help.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cxr_dataset.errors import ReleaseError
from cxr_dataset.fileio import atomic_write_text
from cxr_dataset.schema import make_key

KIND = "baselines"  # the folder's kind in its ownership marker
TABLE_NAME = "table.md"
METRICS_CSV_NAME = "metrics.csv"
METRICS_NAME = "metrics.json"
COMPARISONS_NAME = "comparisons.csv"
PREDICTIONS_NAME = "predictions.json"
MODELS_DIR = "models"
# The folder's contents as the CLI's help lists them.
LISTING = ", ".join([TABLE_NAME, METRICS_CSV_NAME, COMPARISONS_NAME, METRICS_NAME, f"{MODELS_DIR}/"])


def model_file(comparison: str, regime: str, model: str, seed: int) -> str:
    """A classifier's file name, e.g. 'normal-vs-covid_real-G_NC_small-cnn_s0.safetensors'."""
    return f"{make_key(comparison, regime, model, f's{seed}')}.safetensors"


def classifier_path(root: Path, comparison: str, regime: str, model: str, seed: int) -> Path:
    """Where one run's classifier lies in the folder `root`."""
    return Path(root) / MODELS_DIR / model_file(comparison, regime, model, seed)


def write_baselines(
    root: Path,
    *,
    record: dict[str, Any],
    predictions: list[dict[str, Any]],
    metrics_csv: str,
    comparisons_csv: str,
    table: str,
) -> None:
    """Write every file but the classifiers (saved as they are trained, at `classifier_path`)."""
    root = Path(root)
    atomic_write_text(root / PREDICTIONS_NAME, json.dumps(predictions) + "\n")
    atomic_write_text(root / METRICS_NAME, json.dumps(record, indent=2) + "\n")
    atomic_write_text(root / METRICS_CSV_NAME, metrics_csv)
    atomic_write_text(root / COMPARISONS_NAME, comparisons_csv)
    atomic_write_text(root / TABLE_NAME, table)


@dataclass(frozen=True)
class BaselinesRecord:
    """A baselines folder as `read_baselines` found it: the record of metrics.json and the test predictions."""

    root: Path
    results: list[dict[str, Any]]  # one per run, as in metrics.csv
    comparisons: list[dict[str, Any]]  # paired differences, as in comparisons.csv
    config: dict[str, Any]  # the BaselinesConfig it ran with, as a dict
    predictions: list[dict[str, Any]]  # per run: threshold, y_true, patient_id, p_covid
    code_version: str = ""
    device: str = ""
    validation: str | None = None  # where the validation images came from (None: an older record)
    synthetic: dict[str, int] | None = None  # synthetic images kept and dropped
    external_comparisons: list[dict[str, Any]] = field(default_factory=list)  # paired rows of `--external` sets

    @property
    def table_path(self) -> Path:
        return self.root / TABLE_NAME

    def table_text(self) -> str:
        """table.md as written."""
        return self.table_path.read_text(encoding="utf-8")

    def classifier_path(self, comparison: str, regime: str, model: str, seed: int) -> Path:
        return classifier_path(self.root, comparison, regime, model, seed)


def read_baselines(root: Path) -> BaselinesRecord:
    """Read a folder `cxrds baselines` wrote; `ReleaseError` naming the folder when a part is missing or is not
    what it writes."""
    root = Path(root)
    metrics_path, predictions_path = root / METRICS_NAME, root / PREDICTIONS_NAME
    if not metrics_path.is_file() or not predictions_path.is_file():
        raise ReleaseError(f"{root}: no {METRICS_NAME}/{PREDICTIONS_NAME}; run `cxrds baselines --out {root}`")
    # Undecodable JSON is let through as it is: the CLI's boundary names the exception.
    record = json.loads(metrics_path.read_text(encoding="utf-8"))
    predictions = json.loads(predictions_path.read_text(encoding="utf-8"))
    if not isinstance(record, dict) or not isinstance(record.get("results"), list) or not isinstance(predictions, list):
        raise ReleaseError(f"{root}: {METRICS_NAME} or {PREDICTIONS_NAME} is not what `cxrds baselines` writes")
    return BaselinesRecord(
        root=root,
        results=record["results"],
        comparisons=record.get("comparisons", []),
        config=record.get("config", {}),
        predictions=predictions,
        code_version=record.get("code_version", ""),
        device=record.get("device", ""),
        validation=record.get("validation"),
        synthetic=record.get("synthetic"),
        external_comparisons=(record.get("external") or {}).get("comparisons", []),
    )
