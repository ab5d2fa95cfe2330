"""The FID/KID reference halves of real COVID-19 share no patient, and every quality row is measured at one n."""

from __future__ import annotations

import numpy as np
import torch

from cxr_dataset.manifest import read_manifest
from validation_tools.report_quality import patient_halves, quality_rows


def test_patient_halves_share_no_patient_and_cover_every_image():
    sizes = [1, 5, 2, 22, 3, 1, 4, 2, 6, 1]  # images per patient, as in the COVID-19 collection
    rows = [{"patient_id": f"p{p}"} for p, n in enumerate(sizes) for _ in range(n)]
    a, b = patient_halves(rows, seed=3)
    patients_a, patients_b = {rows[i]["patient_id"] for i in a}, {rows[i]["patient_id"] for i in b}
    assert not patients_a & patients_b
    assert sorted([*a, *b]) == list(range(len(rows)))
    assert [x.tolist() for x in patient_halves(rows, seed=3)] == [a.tolist(), b.tolist()]  # seeded


def test_quality_rows_share_one_n_and_halves_split_by_patient(prepared):
    """On the clustered phantom (3 images per patient): every row at the same n, the halves row among them."""
    manifest = read_manifest(prepared)
    rows = manifest.rows()
    synthetic = {"g_nc": torch.from_numpy(np.random.default_rng(0).integers(0, 256, (40, 1, 16, 16), np.uint8))}

    def pixels(images: torch.Tensor) -> np.ndarray:
        return images.reshape(len(images), -1)[:, :8].double().numpy()

    quality = quality_rows(manifest, rows, synthetic, 16, {"pixels": (pixels, None)})
    held = [r for r in rows if r["label"] == "covid" and r["split"] != "train"]
    a, b = patient_halves(held)
    n = min(len(a), len(b))
    assert {q["n"] for q in quality} == {f"{n} vs {n}"}
    assert any("two halves, by patient" in q["pair"] for q in quality)
    assert not {held[i]["patient_id"] for i in a} & {held[i]["patient_id"] for i in b}
