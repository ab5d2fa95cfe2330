"""`cxrds prepare`: read sources, split them, and write 8-bit square PNGs plus `manifest.parquet`."""

from __future__ import annotations

import csv
import dataclasses
import io
import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cxr_dataset.errors import CxrdsError, SourceError
from cxr_dataset.fileio import atomic_write_bytes, atomic_write_text, sha256_bytes, sha256_file
from cxr_dataset.imaging import RESIZE_MODES, encode_png, to_square
from cxr_dataset.manifest import prepared_image_path, write_manifest
from cxr_dataset.options import check_workers
from cxr_dataset.ownership import claim_output
from cxr_dataset.progress import ProgressFn, no_progress
from cxr_dataset.schema import MANIFEST_NAME
from cxr_dataset.sources import Source, SourceImage, SourceOptions, open_source, source_path
from cxr_dataset.sources.base import DEFAULT_VIEWS
from cxr_dataset.sources.files import confined
from cxr_dataset.splits import (
    DEFAULT_FRACTIONS,
    SPLIT_MODES,
    check_split_fractions,
    limit_training,
    paper_splits,
    patient_splits,
)
from cxr_dataset.workers import process_pool

REJECTS_NAME = "rejects.csv"
CACHE_NAME = ".prepare-cache.jsonl"


@dataclass(frozen=True)
class PrepareResult:
    manifest_path: Path
    counts: dict[tuple[str, str], int]  # (class, split) → images
    rejects: list[dict[str, str]] = field(default_factory=list)


def prepare(
    sources: list[str],
    out: Path,
    *,
    size: int = 256,
    split: str = "patient",
    seed: int = 0,
    fractions: dict[str, float] = DEFAULT_FRACTIONS,
    resize: str = "pad",
    views: tuple[str, ...] = DEFAULT_VIEWS,
    covid_collection_classes: tuple[str, ...] = ("covid",),
    rsna_normal: str = "target0",
    imagefolder_label: str = "label",
    train_limits: dict[str, int] | None = None,
    strict: bool = False,
    workers: int = 2,
    skip_bad: bool = False,
    progress: ProgressFn = no_progress,
) -> PrepareResult:
    """Prepare `sources` (``KIND=PATH`` strings) into `out`.

    Rejected images are listed in `out/rejects.csv`; unless `skip_bad`, any reject raises `SourceError`
    after the report is written, and no manifest is written. `train_limits` (class → images) keeps a seeded
    subset of a class's training images and leaves the rest out, e.g. {"covid": 30} to rehearse imbalance.
    A re-run reuses every image already prepared from an unchanged source file with the same settings
    (`out/.prepare-cache.jsonl`), so an interrupted run finishes where it stopped.

    Example:
        >>> prepare(["phantom=30"], Path("prepared"), size=64)  # doctest: +SKIP
    """
    if split not in SPLIT_MODES:
        raise SourceError(f"split must be one of {list(SPLIT_MODES)}, got {split!r}")
    if resize not in RESIZE_MODES:
        raise SourceError(f"resize must be one of {list(RESIZE_MODES)}, got {resize!r}")
    if split == "patient":
        check_split_fractions(fractions)
    check_workers(workers)
    if not 8 <= size <= 8192:
        raise SourceError(f"size must be in 8..8192 pixels, got {size}")
    options = SourceOptions(
        seed=seed,
        paper=split == "paper",
        views=tuple(views),
        strict=strict,
        covid_collection_classes=tuple(covid_collection_classes),
        rsna_normal=rsna_normal,
        imagefolder_label=imagefolder_label,
    )
    out = Path(out)
    claim_output(out, "prepared", inputs=[p for p in map(source_path, sources) if p is not None])
    opened = [open_source(spec, options) for spec in sources]
    jobs = [(src, rec) for src in opened for rec in src.records()]
    if not jobs:
        raise SourceError(f"sources {sources} selected no images")
    duplicates = [k for k, n in Counter(rec.id for _, rec in jobs).items() if n > 1]
    if duplicates:
        raise SourceError(f"sources {sources}: image ids occur twice, e.g. {duplicates[:3]}")

    splits = _assign_splits(opened, jobs, split, seed, fractions)
    paper = splits if split == "paper" else _assign_splits(opened, jobs, "paper", seed, fractions)
    if train_limits:
        left_out = limit_training([rec for _, rec in jobs], splits, train_limits, seed=seed)
        jobs = [(src, rec) for src, rec in jobs if rec.id not in left_out]
    settings = f"{size}:{resize}"
    cache = _read_cache(out / CACHE_NAME)
    rows, rejects = [], []
    tasks = [(src, rec, size, resize, out, settings, cache.get(rec.id)) for src, rec in jobs]
    # A run that fails from here on leaves no manifest, so later stages refuse the folder rather than
    # pair an old manifest with new images.
    (out / MANIFEST_NAME).unlink(missing_ok=True)
    with process_pool(workers) as pool, open(out / CACHE_NAME, "a") as journal:
        results = pool.map(_prepare_one, tasks, chunksize=8) if pool else map(_prepare_one, tasks)
        for i, (rec, row, detail) in enumerate(results, 1):
            if row is not None:
                rows.append({**row, "split": splits[rec.id], "paper_split": paper[rec.id]})
                # Written as results arrive: an interrupted run keeps what it finished.
                journal.write(json.dumps({"id": rec.id, "fingerprint": detail, "row": row}) + "\n")
            else:
                rejects.append({"id": rec.id, "source": rec.source, "origin": rec.origin, "reason": detail})
            progress("prepare", i, len(tasks))

    _write_rejects(out / REJECTS_NAME, rejects)
    if rejects and not skip_bad:
        origin, reason = rejects[0]["origin"], rejects[0]["reason"]
        first = reason if reason.startswith(origin) else f"{origin}: {reason}"
        raise SourceError(
            f"{len(rejects)} of {len(tasks)} images rejected (first: {first}); see {out / REJECTS_NAME}, "
            "or pass --skip-bad to keep going"
        )
    meta = {
        "sources": sources,
        "split": split,
        "seed": seed,
        "size": size,
        "resize": resize,
        "fractions": fractions,
        "train_limits": dict(train_limits or {}),
        "options": dataclasses.asdict(options),
    }
    path = write_manifest(rows, out, meta)
    return PrepareResult(path, dict(Counter((r["label"], r["split"]) for r in rows)), rejects)


def _assign_splits(
    opened: list[Source], jobs: list[tuple[Source, SourceImage]], mode: str, seed: int, fractions: dict[str, float]
) -> dict[str, str]:
    if mode == "patient":
        return patient_splits([rec for _, rec in jobs], seed=seed, fractions=fractions)
    # The paper's split is per source (its file order), so each source may define its own rule.
    out: dict[str, str] = {}
    for src in opened:
        rule = getattr(src, "paper_splits", paper_splits)
        out.update(rule([rec for s, rec in jobs if s is src]))
    return out


def fingerprint(src: Source, rec: SourceImage, settings: str) -> str:
    """What the prepared image depends on: the source bytes (or generator spec) and the settings."""
    custom, root = getattr(src, "fingerprint", None), getattr(src, "root", None)
    if custom is not None:
        basis = custom(rec)
    elif Path(rec.origin).is_file():
        basis = sha256_file(confined(root, Path(rec.origin)) if root is not None else Path(rec.origin))
    else:
        basis = rec.origin
    return sha256_bytes(f"{basis}|{settings}".encode())


def _prepare_one(task) -> tuple[SourceImage, dict[str, Any] | None, str]:
    """Load, convert and write one image, or reuse it from the cache.

    Returns (record, manifest row without split, fingerprint) or (record, None, reject reason).
    """
    src, rec, size, resize, out, settings, cached = task
    try:
        digest = fingerprint(src, rec, settings)
        if cached and cached["fingerprint"] == digest and _still_there(out, cached["row"]):
            return rec, {"extra": rec.extra, **cached["row"]}, digest  # rows cached before `extra` existed
        pixels = to_square(src.load(rec, size), size, resize)
    except CxrdsError as e:
        return rec, None, str(e)
    except Exception as e:  # the one boundary: whatever a decoder raises on a bad file becomes a reject row
        return rec, None, f"{rec.origin}: {type(e).__name__}: {e}"
    data = encode_png(pixels)
    rel = prepared_image_path(rec.label, rec.id)
    atomic_write_bytes(out / rel, data)
    row = {
        "id": rec.id,
        "patient_id": rec.patient_id,
        "label": rec.label,
        "source": rec.source,
        "origin": rec.origin,
        "view": rec.view or (src.read_view(rec) if hasattr(src, "read_view") else ""),
        "license": rec.license,
        "doi": rec.doi,
        "url": rec.url,
        "extra": rec.extra,
        "path": rel,
        "sha256": sha256_bytes(data),
        "width": size,
        "height": size,
    }
    return rec, row, digest


def _still_there(out: Path, row: dict[str, Any]) -> bool:
    path = out / row["path"]
    return path.is_file() and sha256_file(path) == row["sha256"]


def _read_cache(path: Path) -> dict[str, dict[str, Any]]:
    """id → {fingerprint, row} from earlier runs; a torn last line (a crash mid-write) is ignored."""
    cache: dict[str, dict[str, Any]] = {}
    if path.is_file():
        for line in path.read_text().splitlines():
            try:
                entry = json.loads(line)
                cache[entry["id"]] = entry
            except (json.JSONDecodeError, KeyError, TypeError):
                continue
    return cache


def _write_rejects(path: Path, rejects: list[dict[str, str]]) -> None:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=["id", "source", "origin", "reason"], lineterminator="\n")
    writer.writeheader()
    writer.writerows(rejects)
    atomic_write_text(path, buf.getvalue())
