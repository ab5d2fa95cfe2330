"""The release folder: its file names, and the one reader every stage uses to find its parts.

    RELEASE/<name>/README.md                                   the dataset card (YAML header: configs, counts)
    RELEASE/<name>/data/<config>/<split>-NNNNN-of-NNNNN.parquet the HF layout, one folder per task config
    RELEASE/<name>/webdataset/<config>-<split>-NNNNNN.tar       WebDataset shards
    RELEASE/<name>/webdataset/<config>-<split>-shardindex.json  their wids index (`all` lists both configs')
    RELEASE/<name>/croissant.json, SHA256SUMS

Builders write these names; loading, streaming, validation and the evaluation read them through
`read_release`, which never looks outside the folder and opens regular files only (never a FIFO or device).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cxr_dataset.checksums import is_safe_relative, open_regular
from cxr_dataset.errors import ReleaseError
from cxr_dataset.schema import ALL_CONFIG, CONFIGS, TASK_CONFIG

RELEASE_SPLIT = "train"  # every synthetic image is training material
CARD_NAME = "README.md"
DATA_DIR = "data"
WDS_DIR = "webdataset"
CROISSANT_NAME = "croissant.json"
TASK_CONFIGS: tuple[str, ...] = tuple(TASK_CONFIG.values())


def parquet_name(config: str, split: str, index: int, count: int) -> str:
    return f"{DATA_DIR}/{config}/{split}-{index:05d}-of-{count:05d}.parquet"


def parquet_pattern(config: str, split: str) -> str:
    """The card's `data_files` glob for one task config's split."""
    return f"{DATA_DIR}/{config}/{split}-*"


def shard_name(config: str, split: str, index: int) -> str:
    return f"{config}-{split}-{index:06d}.tar"


def shard_index_name(config: str, split: str) -> str:
    return f"{config}-{split}-shardindex.json"


def read_card_text(root: Path) -> str:
    """The whole dataset card, from a regular file only (a BOM is dropped)."""
    path = Path(root) / CARD_NAME
    try:
        with open_regular(path) as f:
            return f.read().decode("utf-8-sig")
    except FileNotFoundError:
        raise ReleaseError(f"{path}: no dataset card; is {root} a release built by `cxrds build`?") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ReleaseError(f"{path}: unreadable ({e})") from None


def read_card(root: Path) -> dict[str, Any]:
    """The card's YAML header, parsed by `huggingface_hub` (CRLF line ends and a BOM are fine)."""
    import yaml
    from huggingface_hub import RepoCard

    path = Path(root) / CARD_NAME
    text = read_card_text(root)
    try:
        card = RepoCard(text, ignore_metadata_errors=False)
    except (ValueError, yaml.YAMLError) as e:
        raise ReleaseError(f"{path}: the YAML header does not parse ({str(e).splitlines()[0]})") from None
    meta = card.data.to_dict()
    if not meta:
        raise ReleaseError(f"{path}: no YAML header between '---' lines")
    return meta


@dataclass(frozen=True)
class Release:
    """A release folder as its card declares it. Lists files; reading rows is up to the caller."""

    root: Path
    card: dict[str, Any]
    counts: dict[str, dict[str, int]]  # config → split → rows the card declares
    patterns: dict[tuple[str, str], list[str]] = field(default_factory=dict)  # (config, split) → data_files globs

    @property
    def version(self) -> str:
        return str(self.card.get("version", ""))

    def splits(self, config: str) -> list[str]:
        return list(self.counts.get(config, {}))

    def data_files(self, config: str, split: str = RELEASE_SPLIT) -> list[Path]:
        """The parquet files the card's globs match, sorted; a glob that leaves the folder is refused."""
        files: set[Path] = set()
        for pattern in self.patterns.get((config, split), []):
            if not isinstance(pattern, str) or not is_safe_relative(pattern):
                raise ReleaseError(f"{self.root / CARD_NAME}: data_files pattern {pattern!r} leaves the release")
            files |= {p for p in self.root.glob(pattern) if p.suffix == ".parquet" and not p.is_symlink()}
        return sorted(files)

    def stored_files(self, split: str = RELEASE_SPLIT, configs: tuple[str, ...] = TASK_CONFIGS) -> list[Path]:
        """Every parquet file of `configs` once (default: the task configs'; `all` is their union)."""
        return [p for config in configs if config in self.counts for p in self.data_files(config, split)]

    def shard_index_path(self, config: str = ALL_CONFIG, split: str = RELEASE_SPLIT) -> Path:
        return self.root / WDS_DIR / shard_index_name(config, split)

    def shard_list(self, config: str = ALL_CONFIG, split: str = RELEASE_SPLIT) -> list[dict[str, Any]]:
        """The wids index's entries (url, nsamples, filesize, sha256); urls must be plain files of webdataset/."""
        path = self.shard_index_path(config, split)
        try:
            with open_regular(path) as f:
                shards = json.loads(f.read().decode("utf-8"))["shardlist"]
            for shard in shards:
                shard["nsamples"] = int(shard["nsamples"])
                if not isinstance(shard["url"], str) or not is_safe_relative(shard["url"]) or "/" in shard["url"]:
                    raise ReleaseError(f"{path}: shard url {shard['url']!r} is not a file of {path.parent}")
        except FileNotFoundError:
            raise ReleaseError(f"{path}: no shard index; is {self.root} a release built by `cxrds build`?") from None
        except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError) as e:
            raise ReleaseError(f"{path}: not a wids shard index ({type(e).__name__}: {e})") from None
        return shards

    def shard_paths(self, config: str = ALL_CONFIG, split: str = RELEASE_SPLIT) -> list[Path]:
        """The WebDataset shards of one config and split, in the order the wids index lists them."""
        return [self.root / WDS_DIR / shard["url"] for shard in self.shard_list(config, split)]

    def iter_rows(
        self,
        columns: list[str],
        split: str = RELEASE_SPLIT,
        batch_size: int = 100,
        configs: tuple[str, ...] = TASK_CONFIGS,
    ) -> Iterator[dict]:
        """Every stored row of `configs` once (task configs in order), reading `batch_size` rows at a time:
        a caller that stops early reads no further."""
        import pyarrow.parquet as pq

        for path in self.stored_files(split, configs):
            with open_regular(path) as f:
                for batch in pq.ParquetFile(f).iter_batches(batch_size=batch_size, columns=columns):
                    yield from batch.to_pylist()


def read_release(root: Path | str) -> Release:
    """Read and check a release folder's card: which configs and splits it declares, their counts and globs."""
    root = Path(root)
    if not root.is_dir():
        raise ReleaseError(f"{root}: no such release folder (build one with `cxrds build`)")
    card = read_card(root)
    where = root / CARD_NAME
    try:
        counts = {
            str(info["config_name"]): {str(sp["name"]): int(sp["num_examples"]) for sp in info.get("splits", [])}
            for info in card.get("dataset_info", [])
        }
        patterns = {
            (str(c["config_name"]), str(f["split"])): [f["path"]] if isinstance(f["path"], str) else list(f["path"])
            for c in card.get("configs", [])
            for f in c.get("data_files", [])
        }
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise ReleaseError(f"{where}: dataset_info or configs malformed ({type(e).__name__}: {e})") from None
    unknown = sorted(set(counts) - set(CONFIGS))
    if unknown:
        raise ReleaseError(f"{where}: unknown configs {unknown}; this toolkit knows {list(CONFIGS)}")
    return Release(root, card, counts, patterns)


def check_config(config: str) -> None:
    if config not in CONFIGS:
        raise ReleaseError(f"config must be one of {list(CONFIGS)}, got {config!r}")


HUB_DATASETS = "https://huggingface.co/datasets/"


def check_repo_id(repo_id: str, option: str = "--repo-id") -> None:
    """`ReleaseError` unless `repo_id` is OWNER/NAME as the Hub accepts it."""
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import validate_repo_id

    try:
        if repo_id.count("/") != 1:
            raise HFValidationError("it must name an owner and a repository")
        validate_repo_id(repo_id)
    except HFValidationError as e:
        raise ReleaseError(f"{option} must be OWNER/NAME, got {repo_id!r}: {e}") from None


def hub_url(repo_id: str) -> str:
    """The dataset repository's page, as Croissant's `url` names a release built for it."""
    return HUB_DATASETS + repo_id


def published_repo_id(root: Path) -> str | None:
    """The Hub repository a release was built for (`cxrds build --repo-id`), from its croissant.json's url;
    None when it was built for none."""
    path = Path(root) / CROISSANT_NAME
    try:
        with open_regular(path) as f:
            url = json.loads(f.read()).get("url", "")
    except (OSError, ValueError, AttributeError) as e:
        raise ReleaseError(f"{path}: unreadable ({e})") from None
    return url.removeprefix(HUB_DATASETS) if isinstance(url, str) and url.startswith(HUB_DATASETS) else None
