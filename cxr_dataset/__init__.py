"""cxrds: make, package and check the Synthetic COVID-19 Chest X-ray Dataset (Zunair & Hamza, 2021).

`cxr_dataset` is the library users import: the schema, source readers, splits, the prepared manifest,
loading and streaming, and validation. Training lives in `generator`, packaging in `builders`.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("cxrds")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"
