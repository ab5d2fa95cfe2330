"""cxrds: make, package and check the Synthetic COVID-19 Chest X-ray Dataset (Zunair & Hamza, 2021).

`cxr_dataset` is the library users import (`open_release` is the way in to a release): the schema, source
readers, splits, the prepared manifest, loading and streaming. Training lives in `generator`, packaging in `builders`.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("cxrds")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"

__all__ = ["ExactEpochSampler", "StreamConfig", "__version__", "open_release"]


def __getattr__(name: str):
    """`open_release`, `StreamConfig` and `ExactEpochSampler` on first use, so importing a submodule does not load
    `datasets`."""
    if name == "open_release":
        from cxr_dataset.dataset_release import open_release

        return open_release
    if name == "StreamConfig":
        from cxr_dataset.stream_config import StreamConfig

        return StreamConfig
    if name == "ExactEpochSampler":
        from cxr_dataset.exact_epoch import ExactEpochSampler

        return ExactEpochSampler
    raise AttributeError(f"module 'cxr_dataset' has no attribute {name!r}")
