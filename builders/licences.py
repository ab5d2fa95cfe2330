"""The licences a release inherits: of the real images translated (source domain) and of the real COVID-19
images the generators were trained towards (target domain), counted, with the most restrictive terms stated.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from typing import Any

NONCOMMERCIAL = re.compile(r"\bNC\b|non-?commercial", re.IGNORECASE)
SHAREALIKE = re.compile(r"\bSA\b|share-?alike", re.IGNORECASE)
PERMISSIVE = re.compile(r"^(MIT|CC0|CC[ -]BY( 4\.0)?|Apache|public domain)\b", re.IGNORECASE)
UNKNOWN = "not recorded"
LICENCE_URLS = {
    "mit": "https://opensource.org/license/mit",
    "cc-by-nc-4.0": "https://creativecommons.org/licenses/by-nc/4.0/",
    "cc-by-nc-sa-4.0": "https://creativecommons.org/licenses/by-nc-sa/4.0/",
}


@dataclass(frozen=True)
class Licences:
    source: dict[str, int]  # licence → synthetic images translated from a real image under it
    target: dict[str, int]  # licence → real COVID-19 images the generators were trained towards
    target_recorded: bool  # False when some generator's training targets are not recorded (the seed's zips)
    hub_id: str  # the card's `license:` value: the most restrictive terms found
    statement: str  # those terms in plain words

    @property
    def reference(self) -> str:
        """A URL for the terms, or the statement where there is no single licence."""
        return LICENCE_URLS.get(self.hub_id, self.statement.replace("**", ""))


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
    names = sorted(set(source) | set(target))
    hub_id, statement = _most_restrictive(names, unknown=UNKNOWN in names or not recorded)
    return Licences(dict(sorted(source.items())), dict(sorted(target.items())), recorded, hub_id, statement)


def per_manifest(metas: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One translation record per prepared manifest: generators trained from the same manifest share its
    COVID-19 images, which must be counted once."""
    seen: dict[Any, dict[str, Any]] = {}
    for i, meta in enumerate(metas):
        seen.setdefault(meta.get("manifest_sha256") or i, meta)
    return list(seen.values())


def _most_restrictive(names: list[str], unknown: bool) -> tuple[str, str]:
    noncommercial = [n for n in names if NONCOMMERCIAL.search(n)]
    if any(SHAREALIKE.search(n) for n in noncommercial):
        hub_id, terms = "cc-by-nc-sa-4.0", "non-commercial use only, share-alike (CC BY-NC-SA)"
    elif noncommercial:
        hub_id, terms = "cc-by-nc-4.0", "non-commercial use only (CC BY-NC)"
    elif not unknown and all(PERMISSIVE.search(n) for n in names):
        return "mit", "Every input image is under permissive terms; the synthetic images are released under MIT."
    else:
        hub_id, terms = "other", "mixed terms: check each source's"
    restrictive = ", ".join(noncommercial) or "terms other than MIT"
    statement = (
        f"The synthetic images derive from real images, some under {restrictive}: treat this dataset as "
        f"**{terms}** unless you have cleared the inputs' terms."
    )
    if unknown:
        statement += f" The licence of some inputs is {UNKNOWN}: check them before any use those terms would forbid."
    return hub_id, statement
