"""`cxrds prepare`: read sources, split them, and write 8-bit square PNGs plus `manifest.parquet`."""

from __future__ import annotations

import dataclasses
import json
import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cxr_dataset.errors import ConfigError, CxrdsError, SourceError
from cxr_dataset.fileio import atomic_write_bytes, atomic_write_text, sha256_bytes, sha256_file
from cxr_dataset.imaging import DEFAULT_RESIZE, RESIZE_MODES, encode_png, to_square
from cxr_dataset.manifest import MANIFEST_NAME, prepared_image_path, write_manifest
from cxr_dataset.options import check_seed, check_workers
from cxr_dataset.ownership import claimed_output, note_write
from cxr_dataset.progress import ProgressFn, no_progress
from cxr_dataset.schema import CLASSES, NATIVE_PATIENT_ID
from cxr_dataset.sources import KIND_ALIASES, Source, SourceImage, SourceOptions, open_source, source_path
from cxr_dataset.sources.base import DEFAULT_VIEWS
from cxr_dataset.sources.files import confined
from cxr_dataset.splits import (
    DEFAULT_FRACTIONS,
    SPLIT_MODES,
    check_split_fractions,
    limit_training,
    paper_splits,
    patient_splits,
    per_image_warning,
)
from cxr_dataset.user_text import csv_text
from cxr_dataset.workers import process_pool

REJECTS_NAME = "rejects.csv"
CACHE_NAME = ".prepare-cache.jsonl"
CACHED_FIELDS = ("sha256", "file_view")  # what a row takes from its source's bytes alone, so may be reused


@dataclass(frozen=True)
class PrepareResult:
    manifest_path: Path
    counts: dict[tuple[str, str], int]  # (class, split) → images
    rejects: list[dict[str, str]] = field(default_factory=list)


@dataclass(frozen=True, kw_only=True)
class PrepareConfig:
    """How `prepare` reads, splits and converts its sources; checked when made (from code or a TOML file)."""

    size: int = 256  # square output size in pixels
    split: str = "patient"  # "patient" (seeded, patient-level) or "paper" (the seed's order)
    seed: int = 0  # seeds the split (and phantom pixels)
    fractions: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_FRACTIONS))  # of split "patient"
    resize: str = DEFAULT_RESIZE  # non-square images: "crop" (centre), "pad" (black borders) or "stretch"
    views: tuple[str, ...] = DEFAULT_VIEWS  # covid-collection views kept
    covid_collection_classes: tuple[str, ...] = ("covid",)  # covid-collection classes: covid, normal, pneumonia
    rsna_normal: str = "target0"  # RSNA normals: every Target-0 patient (the seed's) or "normal-only"
    imagefolder_label: str = "label"  # imagefolder sources: the metadata column holding the class
    train_limits: dict[str, int] = field(default_factory=dict)  # class → training images kept, e.g. {"covid": 30}
    strict: bool = False  # refuse release zips whose MD5 differs from the published one
    workers: int = 2  # worker processes; 1 converts in this process
    skip_bad: bool = False  # keep going past unreadable images (listed in rejects.csv) rather than fail

    def __post_init__(self) -> None:
        if self.split not in SPLIT_MODES:
            raise SourceError(f"split must be one of {list(SPLIT_MODES)}, got {self.split!r}")
        if self.resize not in RESIZE_MODES:
            raise SourceError(f"resize must be one of {list(RESIZE_MODES)}, got {self.resize!r}")
        if self.split == "patient":
            check_split_fractions(self.fractions)
        check_workers(self.workers)
        check_seed(self.seed)
        if not 8 <= self.size <= 8192:
            raise SourceError(f"size must be in 8..8192 pixels, got {self.size}")
        limits = self.train_limits
        if limits and (set(limits) - set(CLASSES) or min(limits.values()) < 1):
            raise ConfigError(f"training limits must name classes of the sources with counts >= 1, got {limits}")
        self.source_options()  # the sources' own options (e.g. covid-collection classes), before any folder

    def source_options(self) -> SourceOptions:
        """What the source readers take from this config."""
        return SourceOptions(
            seed=self.seed,
            paper=self.split == "paper",
            views=tuple(self.views),
            strict=self.strict,
            covid_collection_classes=tuple(self.covid_collection_classes),
            rsna_normal=self.rsna_normal,
            imagefolder_label=self.imagefolder_label,
        )


def prepare(
    sources: list[str], out: Path, cfg: PrepareConfig | None = None, *, progress: ProgressFn = no_progress
) -> PrepareResult:
    """Prepare `sources` (``KIND=PATH`` strings) into `out` as `cfg` (default: `PrepareConfig()`) says.

    Rejected images are listed in `out/rejects.csv`; unless `cfg.skip_bad`, any reject raises `SourceError`
    after the report is written, and no manifest is written. `cfg.train_limits` (class → images) keeps a seeded
    subset of a class's training images and leaves the rest out, e.g. {"covid": 30} to rehearse imbalance.
    A re-run reuses every image already prepared from the same source bytes with the same settings
    (`out/.prepare-cache.jsonl`, keyed by content), so an interrupted run finishes where it stopped.
    The manifest records each origin relative to its source's folder and each source without its path, so
    the same images prepared from a moved or differently spelled folder give the same manifest, byte for byte.

    Example:
        >>> prepare(["phantom=30"], Path("prepared"), PrepareConfig(size=64))  # doctest: +SKIP
    """
    cfg = cfg or PrepareConfig()
    options = cfg.source_options()
    for spec in sources:  # each KIND=PATH parsed (kind, path, phantom counts) before the folder is claimed
        open_source(spec, options)
    out = Path(out)
    inputs = [p for p in map(source_path, sources) if p is not None]
    with claimed_output(out, "prepared", inputs, command="cxrds prepare"):
        return _prepare_into(sources, out, cfg, progress)


def _prepare_into(sources: list[str], out: Path, cfg: PrepareConfig, progress: ProgressFn) -> PrepareResult:
    options, split, seed, fractions = cfg.source_options(), cfg.split, cfg.seed, cfg.fractions
    size, resize = cfg.size, cfg.resize
    opened = [open_source(spec, options) for spec in sources]
    jobs = [(src, rec) for src in opened for rec in src.records()]
    if not jobs:
        raise SourceError(f"sources {sources} selected no images")
    duplicates = [k for k, n in Counter(rec.id for _, rec in jobs).items() if n > 1]
    if duplicates:
        raise SourceError(f"sources {sources}: image ids occur twice, e.g. {duplicates[:3]}")

    splits = _assign_splits(opened, jobs, split, seed, fractions)
    paper = splits if split == "paper" else _assign_splits(opened, jobs, "paper", seed, fractions)
    if cfg.train_limits:
        left_out = limit_training([rec for _, rec in jobs], splits, cfg.train_limits, seed=seed)
        jobs = [(src, rec) for src, rec in jobs if rec.id not in left_out]
    settings = f"{size}:{resize}"
    cache = _read_cache(out / CACHE_NAME)
    rows, rejects = [], []
    tasks = [(src, rec, size, resize, out, settings, cache.get(rec.id)) for src, rec in jobs]
    # A run that fails from here on leaves no manifest, so later stages refuse the folder rather than
    # pair an old manifest with new images.
    (out / MANIFEST_NAME).unlink(missing_ok=True)
    note_write(out / CACHE_NAME)  # appended to, so journaled by hand
    with process_pool(cfg.workers) as pool, open(out / CACHE_NAME, "a") as journal:
        results = pool.map(_prepare_one, tasks, chunksize=8) if pool else map(_prepare_one, tasks)
        for i, (rec, row, detail) in enumerate(results, 1):
            if row is not None:
                image = row.pop("_image")
                rows.append({**row, "split": splits[rec.id], "paper_split": paper[rec.id]})
                # Written as results arrive: an interrupted run keeps what it finished.
                journal.write(json.dumps({"id": rec.id, "fingerprint": detail, "image": image}) + "\n")
            else:
                rejects.append({"id": rec.id, "source": rec.source, "origin": rec.origin, "reason": detail})
            progress("prepare", i, len(tasks))

    _write_rejects(out / REJECTS_NAME, rejects)
    if rejects and not cfg.skip_bad:
        origin, reason = rejects[0]["origin"], rejects[0]["reason"]
        first = reason if reason.startswith(origin) else f"{origin}: {reason}"
        raise SourceError(
            f"{len(rejects)} of {len(tasks)} images rejected (first: {first}); see {out / REJECTS_NAME}, "
            "or pass --skip-bad to keep going"
        )
    meta = {
        "sources": [recorded_source(spec) for spec in sources],
        "split": split,
        "seed": seed,
        "size": size,
        "resize": resize,
        "fractions": fractions,
        "train_limits": dict(cfg.train_limits),
        "options": dataclasses.asdict(options),
    }
    path = write_manifest(rows, out, meta)
    note = per_image_warning(rows)
    if note:
        warnings.warn(f"{out / MANIFEST_NAME}: {note}", stacklevel=2)
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


def recorded_source(spec: str) -> str:
    """A ``KIND=PATH`` spec as the manifest records it: the kind alone, since where a source lies and how its
    path was typed say nothing about the images (a phantom's spec, which makes them, is kept whole)."""
    kind = spec.partition("=")[0]
    return spec if source_path(spec) is None else KIND_ALIASES.get(kind, kind)


def recorded_origin(src: Source, rec: SourceImage) -> str:
    """`rec.origin` as the manifest records it: relative to its source's folder (a release zip's member as
    ``ZIP::MEMBER``, the zip relative to the folder holding it), or as it is when it names no file."""
    root = getattr(src, "root", None) or getattr(src, "path", None)
    if root is None:
        return rec.origin
    base = Path(root) if Path(root).is_dir() else Path(root).parent
    path, sep, member = rec.origin.partition("::")
    try:
        relative = Path(path).relative_to(base).as_posix()
    except ValueError:  # not under its root: no reader builds such an origin, but never record it as relative
        return rec.origin
    return f"{relative}{sep}{member}"


def fingerprint(src: Source, rec: SourceImage, settings: str) -> str:
    """What the prepared image depends on: the source bytes (or generator spec) and the settings."""
    custom, root = getattr(src, "fingerprint", None), getattr(src, "root", None)
    if custom is not None:
        basis = custom(rec)
    elif Path(rec.origin).is_file():
        basis = sha256_file(confined(root, Path(rec.origin)) if root is not None else Path(rec.origin))
    else:
        basis = recorded_origin(src, rec)
    return sha256_bytes(f"{basis}|{settings}".encode())


def _prepare_one(task) -> tuple[SourceImage, dict[str, Any] | None, str]:
    """Load, convert and write one image, or reuse it from the cache.

    Returns (record, manifest row without split, fingerprint) or (record, None, reject reason).
    """
    src, rec, size, resize, out, settings, cached = task
    rel = prepared_image_path(rec.label, rec.id)
    data = None
    try:
        digest = fingerprint(src, rec, settings)
        image = _cached_image(out / rel, digest, cached)
        if image is None:
            data = encode_png(to_square(src.load(rec, size), size, resize))
            file_view = src.read_view(rec) if hasattr(src, "read_view") else ""
            image = {"sha256": sha256_bytes(data), "file_view": file_view}
    except CxrdsError as e:
        return rec, None, str(e)
    except Exception as e:  # the one boundary: whatever a decoder raises on a bad file becomes a reject row
        return rec, None, f"{rec.origin}: {type(e).__name__}: {e}"
    if data is not None:
        atomic_write_bytes(out / rel, data)
    row = {
        "id": rec.id,
        "patient_id": rec.patient_id,
        NATIVE_PATIENT_ID: rec.native_patient_id,
        "label": rec.label,
        "source": rec.source,
        "origin": recorded_origin(src, rec),
        "view": rec.view or image["file_view"],
        "license": rec.license,
        "doi": rec.doi,
        "url": rec.url,
        "extra": rec.extra,
        "path": rel,
        "sha256": image["sha256"],
        "width": size,
        "height": size,
        "_image": image,  # for the cache journal, not the manifest
    }
    return rec, row, digest


def _cached_image(path: Path, digest: str, cached: dict[str, Any] | None) -> dict[str, str] | None:
    """What an earlier run derived from the same source bytes and settings (the PNG's SHA-256 and the view read
    from the file), if its PNG is still at `path`; None otherwise. Only content is reused: every other column
    comes from the current record, so an edited metadata table, or a moved source, is never answered from the
    cache (a journal from before content keys holds no "image" and is redone)."""
    if not cached or cached.get("fingerprint") != digest:
        return None
    image = cached.get("image")
    if not isinstance(image, dict) or not all(isinstance(image.get(k), str) for k in CACHED_FIELDS):
        return None
    if not path.is_file() or sha256_file(path) != image["sha256"]:
        return None
    return {k: image[k] for k in CACHED_FIELDS}


def _read_cache(path: Path) -> dict[str, dict[str, Any]]:
    """id → {fingerprint, image} from earlier runs; a torn last line (a crash mid-write) is ignored."""
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
    atomic_write_text(path, csv_text(rejects, ["id", "source", "origin", "reason"]))
