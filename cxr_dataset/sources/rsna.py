"""The RSNA Pneumonia Detection Challenge (2018): labels CSV plus DICOM or JPG images.

Shih et al., "Augmenting the NIH Chest Radiograph Dataset with Expert Annotations of Possible Pneumonia",
Radiology: AI (2019); images from NIH ChestX-ray8 (Wang et al., CVPR 2017). RSNA/Kaggle terms apply.

Layout (PATH is the challenge folder): ``stage_2_train_labels.csv`` (one row per box: patientId, x, y,
width, height, Target), optionally ``stage_2_detailed_class_info.csv`` (patientId, class), and images as
``stage_2_train_images/<patientId>.dcm`` or ``stage_2_train_images_jpg/<patientId>.jpg``, or flat in PATH.
Stage-1 file names are accepted too.

Labels: Target 1 → pneumonia. Normal is `SourceOptions.rsna_normal`: ``target0`` (every Target-0 patient,
RSNA "Normal" and "No Lung Opacity / Not Normal": 20,672 in stage 2, the seed's choice) or
``normal-only`` (class "Normal", 8,851; needs the class-info CSV). One image per patient.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from cxr_dataset.errors import SourceError
from cxr_dataset.schema import make_key
from cxr_dataset.sources.base import PAPER_TRAIN_FRACTION, SourceImage, SourceOptions
from cxr_dataset.sources.dicom import read_view
from cxr_dataset.sources.files import confined, load_image_file, read_csv_rows

KIND = "rsna"
STAGES = ("stage_2", "stage_1")
IMAGE_PLACES = (
    "{stage}_train_images/{pid}.dcm",
    "{stage}_train_images_jpg/{pid}.jpg",
    "{pid}.dcm",
    "{pid}.jpg",
    "{pid}.png",
)


def _find(root: Path, name: str, required: bool) -> Path | None:
    for stage in STAGES:
        path = root / f"{stage}_{name}"
        if path.is_file():
            return path
    if required:
        raise SourceError(f"{root}: no {STAGES[0]}_{name} (or {STAGES[1]}_{name}); is this the RSNA challenge folder?")
    return None


@dataclass(frozen=True)
class RsnaSource:
    root: Path
    options: SourceOptions = field(default_factory=SourceOptions)
    kind: str = KIND

    def label_rows(self) -> list[dict[str, str]]:
        rows = read_csv_rows(_find(self.root, "train_labels.csv", required=True), ("patientId", "Target"))
        bad = next((r for r in rows if r["Target"] not in ("0", "1")), None)
        if bad is not None:
            raise SourceError(f"{self.root}: Target must be 0 or 1, got {bad['Target']!r} for {bad['patientId']}")
        return rows

    def records(self) -> list[SourceImage]:
        rows = self.label_rows()
        normal_ids = None
        if self.options.rsna_normal == "normal-only":
            info = _find(self.root, "detailed_class_info.csv", required=False)
            if info is None:
                raise SourceError(f"{self.root}: --rsna-normal normal-only needs stage_2_detailed_class_info.csv")
            normal_ids = {r["patientId"] for r in read_csv_rows(info, ("patientId", "class")) if r["class"] == "Normal"}
        stage = next((s for s in STAGES if (self.root / f"{s}_train_labels.csv").is_file()), STAGES[0])
        out, seen = [], set()
        for row in rows:
            pid = row["patientId"]
            if pid in seen:
                continue
            seen.add(pid)
            label = "pneumonia" if row["Target"] == "1" else "normal"
            if label == "normal" and normal_ids is not None and pid not in normal_ids:
                continue
            key = make_key(KIND, pid)
            out.append(
                SourceImage(
                    id=key,
                    patient_id=key,
                    native_patient_id=pid,
                    label=label,
                    source=KIND,
                    origin=str(self._image_path(stage, pid)),
                    license="RSNA Pneumonia Detection Challenge terms; NIH ChestX-ray8",
                )
            )
        return out

    def _image_path(self, stage: str, pid: str) -> Path:
        candidates = [self.root / p.format(stage=stage, pid=pid) for p in IMAGE_PLACES]
        # A missing image keeps its expected path, so the reject report names the file that is absent.
        return next((c for c in candidates if c.is_file()), candidates[0])

    def paper_splits(self, records: list[SourceImage]) -> dict[str, str]:
        """The seed's split in CSV order: normals cut at 80% of images; pneumonia cut at 80% of *box rows*,
        so the first 7,644 of 9,555 rows (4,758 patients) train and the remaining 1,254 patients test."""
        normals = [r for r in records if r.label == "normal"]
        n_train = math.floor(PAPER_TRAIN_FRACTION * len(normals))
        out = {r.id: "train" if i < n_train else "test" for i, r in enumerate(normals)}
        positive_rows = [r["patientId"] for r in self.label_rows() if r["Target"] == "1"]
        cut = math.floor(PAPER_TRAIN_FRACTION * len(positive_rows))
        train_patients = {make_key(KIND, p) for p in positive_rows[:cut]}
        out.update({r.id: "train" if r.id in train_patients else "test" for r in records if r.label == "pneumonia"})
        return out

    def load(self, record: SourceImage, size: int) -> np.ndarray:
        return load_image_file(Path(record.origin), root=self.root)

    def read_view(self, record: SourceImage) -> str:
        """ViewPosition from the DICOM header (PA or AP in the challenge); "" for the JPG copies."""
        path = confined(self.root, Path(record.origin))
        return read_view(path) if path.suffix.lower() == ".dcm" else ""
