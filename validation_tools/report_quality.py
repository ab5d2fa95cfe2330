"""What the report measures: synthetic-image quality (FID, KID, judged-COVID share against real reference
pairs), where the synthetic images sit among the real ones in a feature space, where Grad-CAM heat lies, and
whether class follows source in the real data."""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from cxr_dataset.imaging import read_gray_batch
from cxr_dataset.manifest import Manifest

SMALL_N = 1000  # below this many images a side, FID is visibly biased upward: read it against the reference rows


def quality_rows(
    manifest: Manifest, rows: list[dict[str, Any]], synthetic: dict[str, Any], size: int, spaces: dict[str, Any]
) -> list[dict[str, Any]]:
    """FID and KID (mean ± SD over subsets) per generator against real COVID-19 images it did not train towards,
    with reference rows in the same feature space: real vs real (two halves of those COVID-19 images, split by
    patient so no patient is on both sides), each generator against its own source class, and the real source
    classes against COVID-19. FID depends on n, so every set is subsampled (seeded) to one common n, the
    smallest set's, and every row prints it. `rows`: the manifest's; `spaces`: name → (features of images, the
    classifier judging them or None)."""
    from validation_tools.explain import fid, judged_covid_share, kid_spread

    real, targets_note, covid_rows = _real_references(manifest, rows, size)
    half_a, half_b = patient_halves(covid_rows)
    sizes = {k: len(v) for k, v in (real | synthetic).items()}
    if min(len(half_a), len(half_b)) >= 2:  # else no reference halves (one patient): the row is left out
        sizes |= {"half a": len(half_a), "half b": len(half_b)}
    n = common_n(sizes)
    picks = {key: _subsample(count, n, key) for key, count in sizes.items()}
    for key, half in (("half a", half_a), ("half b", half_b)):  # indices into the COVID-19 set
        picks[key] = half[picks[key]] if key in picks else half[:0]
    pairs = _pairs(synthetic, real, targets_note)
    out = []
    for space, (features, classifier) in spaces.items():
        full: dict[str, np.ndarray] = {}
        for name, (a_name, a), (b_name, b) in pairs:
            for key, images in ((a_name, a), (b_name, b), ("covid", real["covid"])):
                if images is not None and key not in full:
                    full[key] = features(images)
            source = {"half a": "covid", "half b": "covid"}
            fa = full[source.get(a_name, a_name)][picks[a_name]]
            fb = full[source.get(b_name, b_name)][picks[b_name]]
            if len(fa) < 2 or len(fb) < 2:
                continue
            kid_mean, kid_sd = kid_spread(fa, fb)
            row = {"features": space, "pair": name, "n": f"{len(fa)} vs {len(fb)}", "FID": fid(fa, fb)}
            row |= {"KID": kid_mean, "KID SD": kid_sd, "small n": min(len(fa), len(fb)) < SMALL_N}
            if a_name in synthetic and classifier is not None:
                row["judged covid"] = judged_covid_share(classifier, a)
            out.append(row)
    return out


def patient_halves(rows: list[dict[str, Any]], seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Indices into `rows` of two halves that share no patient: patients shuffled with `seed`, each added to
    the half with fewer images so far (deterministic; the halves differ by at most one patient's images)."""
    by_patient: dict[str, list[int]] = {}
    for i, r in enumerate(rows):
        by_patient.setdefault(r["patient_id"], []).append(i)
    patients = sorted(by_patient)
    halves: tuple[list[int], list[int]] = ([], [])
    for p in np.random.default_rng(seed).permutation(len(patients)):
        smaller = halves[0] if len(halves[0]) <= len(halves[1]) else halves[1]
        smaller.extend(by_patient[patients[p]])
    return np.array(sorted(halves[0]), dtype=int), np.array(sorted(halves[1]), dtype=int)


def common_n(sizes: dict[str, int]) -> int:
    """The n every quality row is measured at: the smallest set's (FID's bias depends on n)."""
    return min(sizes.values(), default=0)


def _subsample(count: int, n: int, key: str) -> np.ndarray:
    """`n` of `count` indices, sorted, drawn with a seed named by `key` (so each set's draw is stable)."""
    rng = np.random.default_rng(list(key.encode()))
    return np.sort(rng.permutation(count)[:n])


def _real_references(
    manifest: Manifest, rows: list[dict[str, Any]], size: int
) -> tuple[dict[str, Any], str, list[dict[str, Any]]]:
    """Real images per class to measure against (held-out ones where there are any), what the COVID-19 ones
    are, and their rows."""
    held = [r for r in rows if r["label"] == "covid" and r["split"] != "train"]
    targets_note = "COVID-19 not trained towards (validation + test)"
    if len(held) < 4:  # nothing held out: the generator's own targets are all there is
        held, targets_note = [r for r in rows if r["label"] == "covid"], "COVID-19 incl. the generator's targets"
    real = {"covid": images_of(manifest, held, size)}
    for label in ("normal", "pneumonia"):
        chosen = [r for r in rows if r["label"] == label and r["split"] != "train"] or [
            r for r in rows if r["label"] == label
        ]
        if chosen:
            real[label] = images_of(manifest, chosen, size)
    return real, targets_note, held


def _pairs(synthetic: dict[str, Any], real: dict[str, Any], targets_note: str) -> list[tuple[str, tuple, tuple]]:
    """(row name, (name, images), (name, images)) to compare: each generator against its target and its source,
    then the references (images None: the two halves of the real COVID-19 features)."""
    pairs = []
    for config, images in synthetic.items():
        source = "normal" if config == "g_nc" else "pneumonia"
        pairs.append((f"{config.upper()} vs real {targets_note}", (config, images), ("covid", real["covid"])))
        if source in real:
            pairs.append(
                (
                    f"reference: {config.upper()} vs real {source} (its source)",
                    (config, images),
                    (source, real[source]),
                )
            )
    pairs.append(
        ("reference: real COVID-19 vs real COVID-19 (two halves, by patient)", ("half a", None), ("half b", None))
    )
    for label in ("normal", "pneumonia"):
        if label in real:
            pairs.append((f"reference: real {label} vs real COVID-19", (label, real[label]), ("covid", real["covid"])))
    return pairs


def images_of(manifest: Manifest, rows: list[dict[str, Any]], size: int):
    """The rows' images as a uint8 N×1×size×size tensor."""
    import torch

    return torch.from_numpy(read_gray_batch([manifest.image_path(r) for r in rows], size)).unsqueeze(1)


def synthetic_neighbour_share(features: dict[str, np.ndarray], k: int = 10) -> float:
    """Mean share of synthetic images among each synthetic image's `k` nearest neighbours (itself excluded)
    in a pool of real and synthetic features: a nearest-neighbour two-sample test."""
    from sklearn.neighbors import NearestNeighbors

    pool = np.concatenate(list(features.values()))
    synthetic = np.concatenate([[n.startswith("synthetic")] * len(f) for n, f in features.items()])
    k = min(k, len(pool) - 1)
    _, neighbours = NearestNeighbors(n_neighbors=k + 1).fit(pool).kneighbors(pool[synthetic])
    return float(synthetic[neighbours[:, 1:]].mean())


def domain_gap(features: dict[str, np.ndarray]) -> float:
    """Median distance from each synthetic image to its nearest real image, over the median distance from each
    real image to its nearest other real image (features keyed 'real ...' and 'synthetic ...'). 1: as close
    as real images are to each other."""
    from sklearn.neighbors import NearestNeighbors

    real = np.concatenate([f for n, f in features.items() if n.startswith("real")])
    synthetic = np.concatenate([f for n, f in features.items() if n.startswith("synthetic")])
    index = NearestNeighbors(n_neighbors=2).fit(real)
    spacing = float(np.median(index.kneighbors(real)[0][:, 1]))
    apart = float(np.median(index.kneighbors(synthetic, n_neighbors=1)[0][:, 0]))
    return apart / spacing if spacing > 0 else float("inf")


def border_share(maps: np.ndarray) -> float:
    """Share of the total Grad-CAM mass (N×H×W) within the outer eighth of each side."""
    height, width = maps.shape[-2:]
    inner = np.zeros((height, width), bool)
    inner[height // 8 : height - height // 8, width // 8 : width - width // 8] = True
    total = float(maps.sum())
    return float(maps[..., ~inner].sum()) / total if total > 0 else 0.0


def source_confounding(rows: list[dict[str, Any]], threshold: float = 0.5) -> str | None:
    """A sentence on how far class follows the original source (Cramér's V ≥ `threshold`), else None.

    The source is the metadata's own `source` column where the source kept one (imagefolder `extra`)."""

    def origin(row: dict[str, Any]) -> str:
        extra = json.loads(row["extra"] or "{}")
        return str(extra.get("source") or row["source"])

    labels = sorted({r["label"] for r in rows})
    sources = sorted({origin(r) for r in rows})
    if len(labels) < 2 or len(sources) < 2:
        return None
    table = np.zeros((len(labels), len(sources)))
    for r in rows:
        table[labels.index(r["label"]), sources.index(origin(r))] += 1
    expected = table.sum(1, keepdims=True) * table.sum(0, keepdims=True) / table.sum()
    chi2 = float(((table - expected) ** 2 / expected).sum())
    v = (chi2 / (table.sum() * (min(table.shape) - 1))) ** 0.5
    if v < threshold:
        return None
    share = ", ".join(
        f"{label}: " + " / ".join(f"{s} {int(n)}" for s, n in zip(sources, table[i], strict=True) if n)
        for i, label in enumerate(labels)
    )
    return f"Cramér's V {v:.2f}; {share}"
