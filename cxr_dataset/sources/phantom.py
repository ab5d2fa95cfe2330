"""Procedural chest-X-ray phantom: the embedded data source of the demo and the tests.

Each image is an 8-bit grayscale PA chest radiograph drawn from simple shapes: body outline, two lung
fields, heart and mediastinum, spine, ribs, clavicles, soft blur and noise. The three classes differ the
way the real findings do:

* ``normal``: clear lungs;
* ``pneumonia``: one dense, focal lobar consolidation in one lung;
* ``covid``: bilateral, peripheral, lower-zone ground-glass opacities (hazy, patchy).

A patient's anatomy and disease are fixed by ``(seed, class, patient)``; each of their images adds its own
pose, exposure and noise. Nothing here is medical data; it only makes the pipeline testable offline.

Spec syntax (``cxrds prepare --source phantom=SPEC``): ``N`` (N images per class) or
``normal:N,pneumonia:N,covid:N[,per_patient:K]`` (default K = 3 images per patient).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageFilter

from cxr_dataset.errors import SourceError
from cxr_dataset.schema import CLASSES
from cxr_dataset.sources.base import SourceImage

MIN_SIZE, MAX_SIZE = 64, 512
DEFAULT_PER_PATIENT = 3
DEMO_SPEC = "normal:96,pneumonia:72,covid:48"  # the demo's images per class


@dataclass(frozen=True)
class PhantomSource:
    """Generated images per class; `seed` fixes every pixel."""

    counts: dict[str, int] = field(default_factory=dict)
    per_patient: int = DEFAULT_PER_PATIENT
    seed: int = 0
    kind: str = "phantom"

    @classmethod
    def from_spec(cls, spec: str, seed: int = 0) -> PhantomSource:
        """Parse ``N`` or ``normal:N,pneumonia:N,covid:N[,per_patient:K]``."""
        spec = spec.strip()
        if spec.isdigit():
            return cls(counts={c: int(spec) for c in CLASSES}, seed=seed)
        counts: dict[str, int] = {}
        per_patient = DEFAULT_PER_PATIENT
        for item in filter(None, spec.split(",")):
            key, sep, value = item.partition(":")
            if not sep or not value.strip().isdigit() or key not in (*CLASSES, "per_patient"):
                raise SourceError(
                    f"phantom spec {spec!r}: bad item {item!r}; expected N or "
                    f"'normal:N,pneumonia:N,covid:N[,per_patient:K]'"
                )
            if key == "per_patient":
                per_patient = int(value)
            else:
                counts[key] = int(value)
        if per_patient < 1 or not counts:
            raise SourceError(f"phantom spec {spec!r}: needs at least one class count and per_patient >= 1")
        return cls(counts=counts, per_patient=per_patient, seed=seed)

    def records(self) -> list[SourceImage]:
        out = []
        for label in CLASSES:
            for i in range(self.counts.get(label, 0)):
                patient, k = divmod(i, self.per_patient)
                pid = f"phantom-{label}-{patient:05d}"
                out.append(
                    SourceImage(
                        id=f"{pid}-{k}",
                        patient_id=pid,
                        label=label,
                        source=self.kind,
                        origin=f"phantom:{self.seed}:{label}:{patient}:{k}",
                    )
                )
        return out

    def load(self, record: SourceImage, size: int) -> np.ndarray:
        _, seed, label, patient, k = record.origin.split(":")
        return render_phantom(label, size, seed=int(seed), patient=int(patient), image=int(k))


def render_phantom(label: str, size: int, *, seed: int, patient: int, image: int) -> np.ndarray:
    """Draw one ``size``×``size`` uint8 radiograph of class `label` (deterministic in all arguments)."""
    if label not in CLASSES:
        raise SourceError(f"phantom: unknown class {label!r}; expected one of {list(CLASSES)}")
    if not MIN_SIZE <= size <= MAX_SIZE:
        raise SourceError(f"phantom: size {size} out of range {MIN_SIZE}-{MAX_SIZE}")
    cls_index = CLASSES.index(label)
    anatomy = np.random.default_rng([seed, cls_index, patient])
    shot = np.random.default_rng([seed, cls_index, patient, image, 1])

    # Pose: a small rotation and shift per image; coordinates run over [-1, 1], y downwards.
    angle = shot.normal(0, 0.03)
    dx, dy = shot.normal(0, 0.025, size=2)
    grid = (np.arange(size) + 0.5) / size * 2 - 1
    yy, xx = np.meshgrid(grid, grid, indexing="ij")
    x = math.cos(angle) * xx - math.sin(angle) * yy - dx
    y = math.sin(angle) * xx + math.cos(angle) * yy - dy

    body_w = anatomy.uniform(0.80, 0.93)
    lung_rx, lung_ry = anatomy.uniform(0.27, 0.32), anatomy.uniform(0.55, 0.62)
    lung_cx, lung_cy = anatomy.uniform(0.38, 0.43), anatomy.uniform(-0.02, 0.06)
    heart_r = anatomy.uniform(0.27, 0.33)
    edge = 3.0 / size  # soft edges about one or two pixels wide at any size

    body = _soft(1 - np.sqrt((x / body_w) ** 2 + ((y - 0.25) / 1.35) ** 2), edge)
    neck = _soft(0.2 - np.abs(x), edge) * _soft(-0.7 - y, edge)
    # Thicker tissue in the middle of the chest attenuates more.
    img = 0.06 + 0.42 * np.maximum(body, neck) * (1 - 0.25 * np.clip(np.abs(x) / body_w, 0, 1) ** 2)

    lungs = np.zeros_like(x)
    for side in (-1, 1):
        # Apex narrower than base: the lung's half-width grows from top to bottom.
        t = np.clip((y - (lung_cy - lung_ry)) / (2 * lung_ry), 0, 1)
        rx = lung_rx * (0.45 + 0.55 * np.sqrt(t))
        d = ((x - side * lung_cx) / rx) ** 2 + ((y - lung_cy) / lung_ry) ** 2
        lungs = np.maximum(lungs, _soft(1 - d, 4 * edge))
    img -= 0.30 * lungs

    heart = _soft(1 - ((x - 0.12) / heart_r) ** 2 - ((y - 0.36) / (0.75 * heart_r)) ** 2, 4 * edge)
    mediastinum = _soft(0.11 - np.abs(x + 0.01), edge) * _soft(0.45 - y, edge) * _soft(y + 0.75, edge)
    img += 0.26 * heart * lungs + 0.08 * mediastinum
    spine = _soft(0.065 - np.abs(x), edge) * (0.85 + 0.15 * np.cos(y * 38))
    img += 0.12 * spine

    for k in range(9):
        y0 = lung_cy - lung_ry + 0.08 + 0.125 * k
        centre = y0 + 0.9 * (np.abs(x) - 0.42) ** 2 - 0.08
        img += 0.07 * np.exp(-(((y - centre) / 0.028) ** 2)) * lungs * _soft(np.abs(x) - 0.08, edge)
    for side in (-1, 1):
        u = side * x
        line = -0.66 - 0.14 * (u - 0.1)  # clavicle rises towards the midline
        img += 0.12 * np.exp(-(((y - line) / 0.03) ** 2)) * _soft(u - 0.08, edge) * _soft(0.68 - u, edge)

    if label == "pneumonia":
        img += 0.30 * _consolidation(x, y, anatomy, lung_cx, lung_cy, lung_ry, edge) * lungs
    elif label == "covid":
        img += 0.24 * _ground_glass(x, y, anatomy, shot, size, lung_cx, lung_cy, lung_rx, lung_ry) * lungs

    img += 0.035 * _smooth_noise(shot, size, cells=12) + shot.normal(0, 0.012, size=img.shape)
    gain, gamma = shot.uniform(0.9, 1.1), shot.uniform(0.85, 1.15)
    img = np.clip(img * gain, 0, 1) ** gamma
    out = Image.fromarray(np.round(img * 255).astype(np.uint8), mode="L")
    return np.asarray(out.filter(ImageFilter.GaussianBlur(radius=size / 320)))


def _soft(v: np.ndarray, width: float) -> np.ndarray:
    """Smooth 0→1 step at v = 0 (inside where v > 0)."""
    return 0.5 * (1 + np.tanh(v / width))


def _consolidation(x, y, rng, lung_cx, lung_cy, lung_ry, edge) -> np.ndarray:
    """One dense lobar blob in one lung, its lower edge cut straight as by a fissure."""
    side = rng.choice((-1, 1))
    zone = rng.choice((-0.45, 0.0, 0.45))  # upper, middle or lower lobe
    cx, cy = side * (lung_cx + rng.uniform(-0.06, 0.06)), lung_cy + zone * lung_ry
    rx, ry = rng.uniform(0.13, 0.18), rng.uniform(0.14, 0.2)
    blob = _soft(1 - ((x - cx) / rx) ** 2 - ((y - cy) / ry) ** 2, 6 * edge)
    return blob * _soft(cy + 0.6 * ry - y, edge)


def _ground_glass(x, y, anatomy, shot, size, lung_cx, lung_cy, lung_rx, lung_ry) -> np.ndarray:
    """Hazy patches along the outer, lower edge of both lungs, with a mottled texture."""
    haze = np.zeros_like(x)
    for side in (-1, 1):
        for _ in range(int(anatomy.integers(3, 6))):
            cx = side * (lung_cx + lung_rx * anatomy.uniform(0.35, 0.8))
            cy = lung_cy + lung_ry * anatomy.uniform(0.05, 0.75)
            r = anatomy.uniform(0.09, 0.15)
            haze += np.exp(-(((x - cx) ** 2 + (y - cy) ** 2) / (2 * r * r)))
    mottle = 0.6 + 0.4 * _smooth_noise(shot, size, cells=24)
    return np.clip(haze, 0, 1.2) * mottle


def _smooth_noise(rng: np.random.Generator, size: int, cells: int) -> np.ndarray:
    """Band-limited noise in about [-1, 1]: a coarse random grid upsampled bicubically."""
    coarse = Image.fromarray(rng.normal(0, 0.5, size=(cells, cells)).astype(np.float32), mode="F")
    return np.asarray(coarse.resize((size, size), Image.Resampling.BICUBIC), dtype=np.float64)
