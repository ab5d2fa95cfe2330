"""Loading a release: through Hugging Face `datasets` (parquet) or `webdataset` (tar shards)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from cxr_dataset.errors import ReleaseError
from cxr_dataset.release_folder import Release, check_config, read_release

if TYPE_CHECKING:
    import webdataset


def load_release(
    release: Path | str,
    config: str = "all",
    *,
    split: str | None = None,
    streaming: bool = False,
    revision: str | None = None,
):
    """`datasets.load_dataset` on a local release folder or a Hub id (at `revision`), for one config.

    A folder that exists is read as a local release (never looked up on the Hub); a path that does not
    exist is an error naming it, not a Hub lookup that might fall back to another build in the cache.

    Example:
        >>> ds = load_release("release/covid-synthetic-cxr", "g_nc")  # doctest: +SKIP
        >>> ds["train"].features["label"].names
        ['normal', 'pneumonia', 'covid']
    """
    import datasets

    check_config(config)
    return datasets.load_dataset(release_source(release), config, split=split, streaming=streaming, revision=revision)


def release_source(release: Path | str) -> str:
    """`release` as `load_dataset` should see it: a checked local release folder, or a Hub id OWNER/NAME."""
    folder = local_release(release)
    return str(release) if folder is None else str(folder.root)


def local_release(release: Path | str) -> Release | None:
    """The checked local release folder `release` names, or None when it is a Hub id OWNER/NAME.

    A `Path`, anything that starts like a path (``/``, ``.``, ``~``), has more than one ``/``, or whose first
    part is a local folder is local: it must be a release folder."""
    text = str(release)
    head = text.split("/", 1)[0]
    local = (
        isinstance(release, Path)
        or Path(text).exists()
        or text.startswith(("/", ".", "~"))
        or text.count("/") != 1
        or Path(head).is_dir()
    )
    if not local:
        return None
    path = Path(text).expanduser()
    if not path.is_dir():
        hint = "" if text.count("/") != 1 else f" (for the Hub repository {text}, run from a folder without {head}/)"
        raise ReleaseError(f"{path}: no such release folder; build one with `cxrds build`{hint}")
    return read_release(path.absolute())


def wds_release(release: Path, config: str = "all", split: str = "train") -> webdataset.WebDataset:
    """A `webdataset.WebDataset` over a release's shards, decoding PNGs to grayscale PIL and JSON to dicts."""
    import webdataset as wds

    urls = [str(p) for p in read_release(release).shard_paths(config, split)]
    # "pill" decodes to PIL images in mode L: X-rays stay one-channel ("pil" would give RGB).
    return wds.WebDataset(urls, shardshuffle=False, empty_check=False).decode("pill")
