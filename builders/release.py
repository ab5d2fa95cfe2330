"""`cxrds build`: turn translation outputs into a release folder users can load.

``RELEASE/<name>/`` gets the layout `cxr_dataset.release_folder` describes: the dataset card, parquet files,
WebDataset shards with wids indexes, ``croissant.json`` and ``SHA256SUMS``. The folder is built beside its
target and swapped in at the end, so a failed build never leaves a half-replaced release.
"""

from __future__ import annotations

import datetime
import os
import re
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from builders.card import made_with_summary, render_card, source_titles
from builders.croissant import CREATORS, UNNAMED_CREATOR, DatasetInfo, write_croissant
from builders.from_seed_zips import synthetic_from_seed_zips
from builders.hf_parquet import ROWS_PER_FILE
from builders.licences import summarise
from builders.portion_process import PortionProcess
from builders.portions import split_portions, write_portions
from builders.release_rows import ReleaseRows, read_release_rows
from builders.webdataset import SAMPLES_PER_SHARD, write_shard_index
from cxr_dataset.errors import ReleaseError
from cxr_dataset.fileio import atomic_write_text
from cxr_dataset.options import check_workers
from cxr_dataset.ownership import Claim, check_output, claimed_output, remove_owned
from cxr_dataset.progress import ProgressFn, no_progress
from cxr_dataset.release_folder import CARD_NAME, RELEASE_SPLIT, WDS_DIR, check_repo_id, hub_url, parquet_pattern
from cxr_dataset.schema import (
    ALL_CONFIG,
)

DEFAULT_VERSION = "1.0.0"
ONE_PROCESS_BELOW = 1000  # images: a smaller build is written in one process, without the others' start-up
MAX_PROCESSES = 8  # a config's eighths are the finest cuts where both formats' files end
_SEMVER = re.compile(r"(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)")


@dataclass(frozen=True)
class ReleaseVersion:
    """The dataset's own version (distinct from the code's) and its publication date, YYYY-MM-DD.

    The date defaults to ``SOURCE_DATE_EPOCH`` when set (reproducible rebuilds), else today (UTC)."""

    version: str = DEFAULT_VERSION
    date_published: str | None = None

    def resolved(self) -> ReleaseVersion:
        if not _SEMVER.fullmatch(self.version):
            raise ReleaseError(f"dataset version must be MAJOR.MINOR.PATCH, e.g. 1.0.0; got {self.version!r}")
        date = self.date_published or _default_date()
        try:
            datetime.date.fromisoformat(date)
        except ValueError:
            raise ReleaseError(f"date published must be YYYY-MM-DD, got {date!r}") from None
        return ReleaseVersion(self.version, date)


def _default_date() -> str:
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    now = datetime.datetime.fromtimestamp(int(epoch), datetime.UTC) if epoch else datetime.datetime.now(datetime.UTC)
    return now.date().isoformat()


@dataclass(frozen=True)
class BuildResult:
    root: Path
    counts: dict[str, int]  # config → rows
    files: int


@dataclass(frozen=True, kw_only=True)
class BuildConfig:
    """How `build_release` writes a release; checked when made (from code or a TOML file). Any value of
    `processes` gives the same bytes."""

    dataset_version: str = DEFAULT_VERSION  # the dataset's own version, MAJOR.MINOR.PATCH (card, Croissant, tag)
    date_published: str | None = None  # YYYY-MM-DD; None: SOURCE_DATE_EPOCH's date if set, else today (UTC)
    processes: int = 0  # processes writing it; 0: `build_processes` (1, 2, 4 or 8 as cores and rows allow)
    rows_per_file: int = ROWS_PER_FILE  # rows per parquet file
    samples_per_shard: int = SAMPLES_PER_SHARD  # samples per WebDataset shard
    strict: bool = False  # the seed's zips only: refuse zips whose MD5 differs from the published one
    repo_id: str | None = None  # OWNER/NAME on the Hub: the card's snippets and Croissant's url name it
    gated: bool = False  # the card asks the Hub to gate access: users accept the inputs' terms first (`push` gates)
    creators: tuple[str, ...] = ()  # who made it (Croissant); none given: the seed's authors for its zips, else the
    # toolkit's users, unnamed

    def __post_init__(self) -> None:
        self.version()
        if self.repo_id is not None:
            check_repo_id(self.repo_id)
        check_workers(self.processes, "processes", zero_means_auto=True)
        for name in ("rows_per_file", "samples_per_shard"):
            if getattr(self, name) < 1:
                raise ReleaseError(f"{name} must be >= 1, got {getattr(self, name)}")

    def version(self) -> ReleaseVersion:
        """The dataset's version, its date resolved (today's, unless given or ``SOURCE_DATE_EPOCH`` is set)."""
        return ReleaseVersion(self.dataset_version, self.date_published).resolved()


def build_release(
    synthetic: list[Path], out: Path, cfg: BuildConfig | None = None, *, progress: ProgressFn = no_progress
) -> BuildResult:
    """Build a release in `out` from one or more `cxrds translate` output folders as `cfg` (default:
    `BuildConfig()`) says.

    Example:
        >>> build_release([Path("synth/nc"), Path("synth/pc")], Path("release/covid-synthetic-cxr"))  # doctest: +SKIP
    """
    cfg = cfg or BuildConfig()
    version = cfg.version()
    check_output(out, "release", inputs=synthetic)
    release = read_release_rows(synthetic)  # bad input is refused before anything is written
    with build_lock(Path(out)):
        return _write_release(release, Path(out), cfg, version, progress)


def build_release_from_zips(
    zips: list[Path], out: Path, cfg: BuildConfig | None = None, *, progress: ProgressFn = no_progress
) -> BuildResult:
    """Build the same layout from the seed's v0.1 zips (`G_NC.zip`, `G_PC.zip`, or a folder holding them).

    Each JPEG becomes an 8-bit grayscale PNG; provenance names the asset, the member and the zip's MD5.
    """
    cfg = cfg or BuildConfig()
    out, version = Path(out), cfg.version()
    check_output(out, "release", inputs=zips)
    with build_lock(out), _staging(out.with_name(f".{out.name}.from-release")) as workdir:
        synthetic = synthetic_from_seed_zips(zips, workdir.root, strict=cfg.strict, progress=progress)
        return _write_release(read_release_rows(synthetic), out, cfg, version, progress)


def _write_release(
    release: ReleaseRows, out: Path, cfg: BuildConfig, version: ReleaseVersion, progress: ProgressFn
) -> BuildResult:
    """Write each task config once; `all` is declared as the union of their files, so no image is stored twice.
    The caller holds the build's lock."""
    with _staging(out.with_name(f".{out.name}.building")) as claim:
        staging = claim.root
        # Each process writes both formats for its portion of every config's rows (its own read of the provenance
        # and of its images, its own GIL); this one writes the first portion, then the card and croissant.json.
        rows, metas, parts = release.rows, release.metas, release.parts()
        sizes = {name: len(part) for name, part in parts.items()}
        counts = {ALL_CONFIG: len(rows), **sizes}  # rows per config, `all` included
        rows_per_file, samples_per_shard = cfg.rows_per_file, cfg.samples_per_shard
        portions = split_portions(sizes, rows_per_file, samples_per_shard, cfg.processes or build_processes(len(rows)))
        others: list[PortionProcess] = []
        try:
            for portion in portions[1:]:
                if any(s.rows for s in portion):
                    others.append(
                        PortionProcess(
                            staging,
                            RELEASE_SPLIT,
                            release.folders,
                            release.digests,
                            portion,
                            rows_per_file=rows_per_file,
                            per_shard=samples_per_shard,
                        )
                    )
            if others:
                _import_card_libraries()
            # Progress is this process's portion; the others keep pace.
            total = sum(len(portion.rows) for portion in portions[0])
            written = write_portions(
                staging,
                RELEASE_SPLIT,
                parts,
                portions[0],
                rows_per_file=rows_per_file,
                per_shard=samples_per_shard,
                on_image=lambda done: progress("build", done, total),
            )
            for other in others:
                written = written.then(other.result())
        finally:
            for other in others:
                other.stop()
        configs = {ALL_CONFIG: rows, **parts}
        data_files = {name: [parquet_pattern(name, RELEASE_SPLIT)] for name in parts}
        data_files[ALL_CONFIG] = [glob for name in parts for glob in data_files[name]]
        num_bytes = {name: written.num_bytes[name] for name in parts}
        download_size = {name: sum((staging / p).stat().st_size for p in written.parquet[name]) for name in parts}
        num_bytes[ALL_CONFIG], download_size[ALL_CONFIG] = sum(num_bytes.values()), sum(download_size.values())
        card = render_card(
            {n: {RELEASE_SPLIT: r} for n, r in configs.items()},
            num_bytes,
            data_files,
            made_with=metas,
            repo_id=cfg.repo_id,
            folder_name=out.name,
            gated=cfg.gated,
            download_size=download_size,
            version=version.version,
            date_published=version.date_published,
        )
        atomic_write_text(staging / CARD_NAME, card)
        parquet_files = {path: digest for name in parts for path, digest in written.parquet[name].items()}
        info = _dataset_info(out.name, rows, metas, version, cfg)
        write_croissant(staging, counts, data_files, parquet_files, info)
        shards = {name: written.shards[name] for name in parts}
        shards[ALL_CONFIG] = [entry for name in parts for entry in shards[name]]
        known = parquet_files | {f"{WDS_DIR}/{entry['url']}": entry["sha256"] for entry in shards[ALL_CONFIG]}
        for name, entries in shards.items():
            write_shard_index(staging / WDS_DIR, name, RELEASE_SPLIT, entries)
        files = claim.seal_checksummed("release", known)  # the release holds exactly what SHA256SUMS lists
        _swap_in(staging, out)
    return BuildResult(out, counts, files)


def build_processes(rows: int) -> int:
    """How many processes write a build of `rows` by default: one per usable core, as a power of two (so that
    the portions are equal) up to 8; one below `ONE_PROCESS_BELOW` rows."""
    if rows < ONE_PROCESS_BELOW:
        return 1
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return 1 << (min(cores, MAX_PROCESSES).bit_length() - 1)


def _import_card_libraries() -> None:
    """Import what the card and croissant.json are made with (about a second) while the portion processes start:
    they are made after every portion is written, on the build's last stretch, where one core works."""
    import jinja2  # noqa: F401
    import mlcroissant  # noqa: F401
    import yaml  # noqa: F401


def _dataset_info(
    name: str, rows: list[dict[str, Any]], metas: list[dict[str, Any]], version: ReleaseVersion, cfg: BuildConfig
) -> DatasetInfo:
    """What croissant.json says of the release beyond its files."""
    repo_id, creators = cfg.repo_id, cfg.creators
    preprocessing, generators = made_with_summary(metas)
    description = (
        f"{len(rows)} synthetic COVID-19 chest X-rays made by CycleGAN translation of normal (G_NC) "
        "and pneumonia (G_PC) X-rays, each with its provenance."
    )
    return DatasetInfo(
        name,
        description,
        version.version,
        version.date_published,
        source_datasets=tuple(source_titles(rows)),
        license=summarise(rows, metas).reference,
        **({"url": hub_url(repo_id)} if repo_id else {}),
        creators=creators or (CREATORS if all("release_asset" in m for m in metas) else (UNNAMED_CREATOR,)),
        preprocessing=preprocessing,
        generators=generators,
    )


@contextmanager
def _staging(folder: Path) -> Iterator[Claim]:
    """A scratch folder of this build beside the release, under the build's lock: a killed build's is redone
    from the start, and it is removed on every way out (after a success it has been renamed to the release)."""
    remove_owned(folder, "staging")
    try:
        with claimed_output(folder, "staging", command="cxrds build", lock=False) as claim:
            yield claim
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@contextmanager
def build_lock(out: Path) -> Iterator[None]:
    """Refuse a second build into the same folder while one runs. The OS releases the lock when its process
    dies, so a killed build never blocks the next. The lock file is removed while still held (filelock
    retries on a removed file), so a finished build leaves nothing beside the release. It also guards the
    build's staging folders beside the release."""
    from filelock import FileLock, Timeout

    lock = out.with_name(f".{out.name}.lock")
    lock.parent.mkdir(parents=True, exist_ok=True)
    try:
        held = FileLock(lock, timeout=0).acquire()
    except Timeout:
        raise ReleaseError(f"{out}: another build is writing here; wait for it to finish") from None
    with held:
        try:
            yield
        finally:
            lock.unlink(missing_ok=True)


def _swap_in(staging: Path, out: Path) -> None:
    """Replace `out` by `staging` with two renames; the old release is removed only after.

    Only an empty folder or a release (exactly what its SHA256SUMS lists, its marker among them) is ever
    replaced, at `out` or at `.NAME.old`."""
    old = out.with_name(f".{out.name}.old")
    check_output(out, "release")
    remove_owned(old, "release")
    if out.exists():
        out.rename(old)
    staging.rename(out)
    remove_owned(old, "release")
