"""The licence a release inherits, derived from counts alone: of the real images translated (source domain)
and of the real COVID-19 images the generators were trained towards (target domain), with the most restrictive
terms stated.

`cxrds build` counts them from the rows and the translation records (`builders.licences.summarise`);
`cxrds verify` from the parquet rows and the card's own table, and checks the card says what this derives.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

NONCOMMERCIAL = re.compile(r"\bNC\b|non-?commercial", re.IGNORECASE)
SHAREALIKE = re.compile(r"\bSA\b|share-?alike", re.IGNORECASE)
PERMISSIVE = re.compile(r"^(MIT|CC0|CC[ -]BY( 4\.0)?|Apache|public domain)\b", re.IGNORECASE)
UNKNOWN = "not recorded"
LICENCE_URLS = {
    "mit": "https://opensource.org/license/mit",
    "cc-by-nc-4.0": "https://creativecommons.org/licenses/by-nc/4.0/",
    "cc-by-nc-sa-4.0": "https://creativecommons.org/licenses/by-nc-sa/4.0/",
}
MIXED_NAME = "mixed-input-licences"  # the card's `license_name` when `license` is "other"


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


def derive_licences(source: dict[str, int], target: dict[str, int], target_recorded: bool) -> Licences:
    """The release's terms from licence counts (empty names are `UNKNOWN`): the most restrictive found."""
    source, target = _merge_unknown(source), _merge_unknown(target)
    names = sorted(set(source) | set(target))
    hub_id, statement = _most_restrictive(names, unknown=UNKNOWN in names or not target_recorded)
    return Licences(dict(sorted(source.items())), dict(sorted(target.items())), target_recorded, hub_id, statement)


def _merge_unknown(counts: dict[str, int]) -> dict[str, int]:
    merged: dict[str, int] = {}
    for name, n in counts.items():
        merged[name or UNKNOWN] = merged.get(name or UNKNOWN, 0) + n
    return merged


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
