"""The licences a release inherits, counted from its rows and the translation records; the derivation of the
terms from those counts lives in `cxr_dataset.licences`, so `cxrds verify` checks a card with the same rule.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from cxr_dataset.licences import LICENCE_URLS, UNKNOWN, Licences, derive_licences

__all__ = ["LICENCE_URLS", "UNKNOWN", "Licences", "per_manifest", "summarise"]


def summarise(rows: list[dict[str, Any]], metas: list[dict[str, Any]]) -> Licences:
    """Count licences over release rows (`source_license`) and translation metadata (`target_licenses`)."""
    source = Counter(r.get("source_license") or UNKNOWN for r in rows)
    target: Counter = Counter()
    recorded = True
    for meta in per_manifest(metas):
        if "target_licenses" in meta:
            target.update({licence or UNKNOWN: n for licence, n in meta["target_licenses"].items()})
        else:
            recorded = False
    return derive_licences(dict(source), dict(target), recorded)


def per_manifest(metas: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One translation record per prepared manifest: generators trained from the same manifest share its
    COVID-19 images, which must be counted once."""
    seen: dict[Any, dict[str, Any]] = {}
    for i, meta in enumerate(metas):
        seen.setdefault(meta.get("manifest_sha256") or i, meta)
    return list(seen.values())
