"""The COVID-19 Image Data Collection (ieee8023/covid-chestxray-dataset): ``metadata.csv`` + ``images/``.

Cohen, Morrison, Dao, "COVID-19 image data collection", arXiv:2003.11597 (2020). Licences are per image
(column ``license``; many CC BY-NC-SA); the metadata itself is CC BY-NC-SA 4.0.

Works with the 2020 schema (``finding`` = ``COVID-19``, no ``RT_PCR_positive``) and the current one
(``finding`` = ``Pneumonia/Viral/COVID-19``, more columns): COVID-19 is matched as a substring.

Default selection: modality ``X-ray``, views PA, AP, AP Supine (``SourceOptions.views``), and
``finding`` containing ``COVID-19`` → covid. Optionally ``No Finding`` → normal and the infectious
non-COVID pneumonias → pneumonia (``SourceOptions.covid_collection_classes``).

Paper selection (``SourceOptions.paper``), as the seed's notebook did: rows with non-empty finding, view,
modality and filename; modality not CT; ``finding == "COVID-19"`` exactly; any view; metadata order.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from cxr_dataset.errors import SourceError
from cxr_dataset.schema import make_key
from cxr_dataset.sources.base import SourceImage, SourceOptions
from cxr_dataset.sources.files import load_image_file, read_csv_rows

KIND = "covid-collection"
REQUIRED_COLUMNS = ("patientid", "finding", "view", "modality", "filename")
# 2020-schema findings that are infectious pneumonias (SARS, ARDS, Lipoid and 'todo' are left out).
PNEUMONIA_FINDINGS_2020 = {
    "Pneumonia",
    "Streptococcus",
    "Pneumocystis",
    "Klebsiella",
    "E.Coli",
    "Varicella",
    "Legionella",
    "Mycoplasma Bacterial Pneumonia",
    "Bacterial",
    "Influenza",
    "Chlamydophila",
    "Staphylococcus",
}
PNEUMONIA_PREFIXES = ("Pneumonia/Viral/", "Pneumonia/Bacterial/", "Pneumonia/Fungal/")  # current schema


def finding_class(finding: str) -> str | None:
    """Map a `finding` value of either schema onto the class vocabulary (None: not used)."""
    if "COVID-19" in finding:
        return "covid"
    if finding == "No Finding":
        return "normal"
    if finding in PNEUMONIA_FINDINGS_2020 or finding.startswith(PNEUMONIA_PREFIXES):
        name = finding.rsplit("/", 1)[-1]
        return None if name in ("SARS", "MERS-CoV") else "pneumonia"
    return None


def read_metadata(path: Path) -> list[dict[str, str]]:
    """Rows of `metadata.csv`, checking the columns both schemas share."""
    if not path.is_file():
        raise SourceError(f"{path}: no metadata.csv; expected the covid-chestxray-dataset folder")
    rows = read_csv_rows(path, REQUIRED_COLUMNS, "; is this covid-chestxray-dataset's metadata.csv?")
    return [{k: (v or "").strip() for k, v in row.items() if k} for row in rows]


@dataclass(frozen=True)
class CovidCollectionSource:
    root: Path
    options: SourceOptions = field(default_factory=SourceOptions)
    kind: str = KIND

    def select(self, rows: list[dict[str, str]]) -> list[tuple[dict[str, str], str]]:
        """(row, class) pairs the options keep, in metadata order."""
        kept = []
        for row in rows:
            if self.options.paper:
                if (
                    all(row[c] for c in ("finding", "view", "modality", "filename"))
                    and row["modality"] != "CT"
                    and row["finding"] == "COVID-19"
                ):
                    kept.append((row, "covid"))
                continue
            label = finding_class(row["finding"])
            if (
                label in self.options.covid_collection_classes
                and row["modality"] == "X-ray"
                and row["view"] in self.options.views
                and row["filename"]
            ):
                kept.append((row, label))
        return kept

    def records(self) -> list[SourceImage]:
        out, seen = [], set()
        for row, label in self.select(read_metadata(self.root / "metadata.csv")):
            key = make_key(KIND, Path(row["filename"]).stem)
            if key in seen:  # the same file listed twice: keep its first row
                continue
            seen.add(key)
            path = self.root / (row.get("folder") or "images") / row["filename"]
            out.append(
                SourceImage(
                    id=key,
                    patient_id=make_key(KIND, row["patientid"]),
                    native_patient_id=row["patientid"].strip(),
                    label=label,
                    source=KIND,
                    origin=str(path),
                    view=row["view"],
                    license=row.get("license", ""),
                    doi=row.get("doi", ""),
                    url=row.get("url", ""),
                )
            )
        return out

    def load(self, record: SourceImage, size: int) -> np.ndarray:
        return load_image_file(Path(record.origin), root=self.root)
