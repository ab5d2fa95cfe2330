"""`cxrds verify`: the integrity of a release folder, as its files declare it.

Checks: the card's declared counts against the parquet rows and the WebDataset samples, per config;
every image decodes as 8-bit grayscale of the declared size and matches its SHA-256; labels and classes
are within the schema; `SHA256SUMS` holds for every file. Reads one row group at a time.
"""

from __future__ import annotations

import io
import json
import tarfile
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
from PIL import Image

from cxr_dataset.checksums import checksum_problems
from cxr_dataset.errors import ReleaseError
from cxr_dataset.fileio import sha256_bytes
from cxr_dataset.progress import ProgressFn, no_progress
from cxr_dataset.release_folder import Release, read_release
from cxr_dataset.schema import CHECKSUMS_NAME, FIELDS, field_names, wds_members


@dataclass
class Check:
    name: str
    ok: bool
    detail: str


@dataclass
class ValidationReport:
    root: str
    checks: list[Check] = field(default_factory=list)
    counts: dict[str, dict[str, Any]] = field(default_factory=dict)  # config → {"rows", "source_class", "task"}
    skew: list[dict[str, Any]] = field(default_factory=list)  # `balance.skew_table` rows, with --real
    # near-duplicate pairs found with --real: {"check", "a", "a_split", "b", "b_split", "differing_bits"}
    near_duplicates: list[dict[str, Any]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)

    def add(self, name: str, ok: bool, detail: str) -> None:
        self.checks.append(Check(name, ok, detail))

    def to_json(self) -> str:
        return json.dumps({"ok": self.ok, **asdict(self)}, indent=2, sort_keys=True)


def verify_release(root: Path, *, progress: ProgressFn = no_progress) -> ValidationReport:
    """Integrity: checksums, counts against the card, every image decodes as declared. Records failures,
    never raises for them."""
    import pyarrow.parquet as pq

    root = Path(root)
    report = ValidationReport(str(root))
    release = read_release(root)
    declared = release.counts
    if not declared:
        report.add("card", False, "README.md declares no dataset_info splits")
    total = sum(n for splits in declared.values() for n in splits.values())
    done = 0
    for config, splits in declared.items():
        for split, expected in splits.items():
            try:
                files, problems = release.data_files(config, split), []
            except ReleaseError as e:
                files, problems = [], [str(e)]
            rows = 0
            by_class, by_task = Counter(), Counter()
            for path in files:
                try:
                    parquet = pq.ParquetFile(path)
                    missing = set(field_names(FIELDS)) - set(parquet.schema_arrow.names)
                    if missing:
                        problems.append(f"{path.name}: missing columns {sorted(missing)}")
                        continue
                    for batch in parquet.iter_batches(batch_size=100):
                        for row in batch.to_pylist():
                            rows += 1
                            problems += _check_row(row, f"{path.name} id={row['id']}")
                            by_class[_class_name("source_class", row["source_class"])] += 1
                            by_task[_class_name("task", row["task"])] += 1
                            done += 1
                            progress("validate", done, total)
                except (pa.ArrowException, OSError) as e:
                    problems.append(f"{path.name}: unreadable parquet ({str(e).splitlines()[0]})")
            where = f"{config}/{split}"
            report.add(
                f"parquet rows {where}",
                rows == expected and bool(files),
                f"{rows} rows in {len(files)} files; card declares {expected}",
            )
            detail = "; ".join(problems[:5]) or f"{rows} decode, sizes and hashes ok"
            report.add(f"images {where}", not problems, detail)
            report.counts[where] = {"rows": rows, "source_class": dict(by_class), "task": dict(by_task)}
            wds_count, wds_problems = _count_wds(release, config, split)
            report.add(
                f"webdataset {where}",
                wds_count == expected and not wds_problems,
                "; ".join(wds_problems[:5]) or f"{wds_count} samples; card declares {expected}",
            )
    _check_sums(root, report)
    return report


def _check_row(row: dict[str, Any], where: str) -> list[str]:
    image = row["image"]["bytes"]
    if sha256_bytes(image) != row["sha256"]:
        return [f"{where}: image bytes do not match column sha256"]
    try:
        with Image.open(io.BytesIO(image)) as img:
            img.load()
            if img.mode != "L" or img.size != (row["width"], row["height"]):
                return [f"{where}: image is {img.mode} {img.size}, expected L ({row['width']}, {row['height']})"]
    except OSError as e:
        return [f"{where}: image does not decode ({e})"]
    if _class_name("label", row["label"]) != "covid":
        return [f"{where}: label {row['label']} is not covid"]
    return []


def _class_name(name: str, index: int) -> str:
    names = next(f.names for f in FIELDS if f.name == name)
    return names[index] if 0 <= index < len(names) else f"<invalid {index}>"


def _count_wds(release: Release, config: str, split: str) -> tuple[int, list[str]]:
    """Samples in the shards the config's wids index lists, and any disagreement with the index or schema."""
    try:
        shards = [(s["url"], s["nsamples"]) for s in release.shard_list(config, split)]
    except ReleaseError as e:
        return 0, [str(e)]
    folder = release.shard_index_path(config, split).parent
    members: dict[str, set[str]] = {}
    problems = []
    for url, nsamples in shards:
        keys = set()
        try:
            with tarfile.open(folder / url) as tar:
                length = (folder / url).stat().st_size
                for info in tar:
                    if not info.isreg() or "/" in info.name or info.name.startswith("."):
                        problems.append(f"{url}: member {info.name!r} is not a plain file of a sample")
                        continue
                    if info.offset_data + info.size > length:
                        problems.append(f"{url}: member {info.name!r} claims {info.size} bytes past the end")
                        continue
                    key, _, ext = info.name.partition(".")
                    members.setdefault(key, set()).add(ext)
                    keys.add(key)
        except (tarfile.TarError, OSError) as e:
            problems.append(f"{url}: unreadable tar ({e})")
            continue
        if len(keys) != nsamples:
            problems.append(f"{url}: {len(keys)} samples, index says {nsamples}")
    expected = set(wds_members())
    problems += [f"{k}: members {sorted(v)}, expected {sorted(expected)}" for k, v in members.items() if v != expected]
    return len(members), problems


def _check_sums(root: Path, report: ValidationReport) -> None:
    listed, problems = checksum_problems(root)
    report.add("checksums", not problems, "; ".join(problems[:5]) or f"{listed} files match {CHECKSUMS_NAME}")
