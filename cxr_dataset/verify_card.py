"""`cxrds verify`: the card's body counts and licence, and croissant.json, against the rows as read."""

from __future__ import annotations

import html
import json
import re
from collections import Counter
from typing import TYPE_CHECKING, Any

from cxr_dataset.checksums import CHECKSUMS_NAME, is_safe_relative, open_regular, read_checksums
from cxr_dataset.errors import ReleaseError
from cxr_dataset.licences import MIXED_NAME, Licences, derive_licences
from cxr_dataset.release_folder import CROISSANT_NAME, Release, read_card_text
from cxr_dataset.verify_read import SHOWN, ConfigRead

if TYPE_CHECKING:
    from cxr_dataset.verify import IntegrityReport

MAX_CROISSANT = 64 << 20  # bytes; croissant.json lists files, it never comes near this

_CONFIG_ROW = re.compile(r"^\| `([^`]+)`(?: \(default\))? \| ([^|]+?) \| (\d+) \| (\d+) \| (\d+) \|\s*$", re.M)
_TOTAL = re.compile(r"holds \*\*(\d+) synthetic")


def _plain(text: str) -> str:
    """Card text as the data wrote it: the card escapes data by character references (`user_text.markdown_text`),
    which `html.unescape` gives back."""
    return html.unescape(text)


def check_card(
    report: IntegrityReport, release: Release, reads: dict[str, ConfigRead], parts: list[ConfigRead]
) -> Licences | None:
    """The card's body counts and its licence, against the rows; returns the licence the rows give."""
    try:
        text = read_card_text(release.root)
    except ReleaseError as e:
        report.add("card counts", False, str(e))
        report.add("card licence", False, str(e))
        return None
    problems = []
    table = {(c, s): tuple(map(int, n)) for c, s, *n in _CONFIG_ROW.findall(text)}
    for where, read in reads.items():
        config, split = where.split("/")
        said = table.get((config, split))
        actual = (read.rows, read.by_class["normal"], read.by_class["pneumonia"])
        if said is None:
            problems.append(f"no row for {where} in the card's table of configs")
        elif said != actual:
            problems.append(f"{where}: the card says rows, normal-, pneumonia-source {said}; the rows are {actual}")
    total = _TOTAL.search(text)
    rows = sum(p.rows for p in parts)
    if total is None or int(total[1]) != rows:
        problems.append(f"the card says it holds {total[1] if total else 'no number of'} images; there are {rows}")
    report.add("card counts", not problems, "; ".join(problems[:SHOWN]) or f"the card's figures are the rows' ({rows})")

    source: Counter = Counter()
    for part in parts:
        source.update(part.licences)
    table_source, target, recorded = _licence_table(text)
    problems = []
    if table_source is None:
        problems.append("the card has no licence table under '## Licences'")
        table_source = {}
    licences = derive_licences(dict(source), target, recorded)
    said_source = {k: v for k, v in table_source.items() if v}
    if said_source != licences.source:
        problems.append(f"the card's licence table counts {said_source} source images; the rows {licences.source}")
    card = release.card
    if card.get("license") != licences.hub_id:
        problems.append(
            f"the card's license is {card.get('license')!r}; the inputs' licences make it {licences.hub_id!r}"
        )
    if (card.get("license_name") == MIXED_NAME) != (licences.hub_id == "other"):
        problems.append(f"the card's license_name is {card.get('license_name')!r} with license {licences.hub_id!r}")
    if licences.statement not in _plain(text):
        problems.append(f"the card does not state the inputs' terms: {licences.statement.replace('**', '')!r}")
    report.add(
        "card licence",
        not problems,
        "; ".join(problems[:SHOWN]) or f"{licences.hub_id}, as the inputs' licences give it",
    )
    return licences


def _licence_table(text: str) -> tuple[dict[str, int] | None, dict[str, int], bool]:
    """(source counts, target counts, whether targets are recorded) from the card's licence table."""
    section = text.partition("\n## Licences\n")[2].partition("\n## ")[0]
    lines = [line.strip() for line in section.splitlines() if line.strip().startswith("|")]
    if len(lines) < 2:
        return None, {}, True
    source: dict[str, int] = {}
    target: dict[str, int] = {}
    recorded = True
    for line in lines[2:]:  # after the header and the |---| line
        cells = [_plain(c.strip()) for c in line.split("|")[1:-1]]  # a '|' of the data is escaped
        if len(cells) != 3:
            return None, {}, True
        name, n_source, n_target = cells
        source[name] = int(n_source) if n_source.isdigit() else -1
        if n_target.isdigit():
            target[name] = int(n_target)
        else:
            recorded = False
    return source, target, recorded


def check_croissant(report: IntegrityReport, release: Release, licences: Licences | None, rows: dict[str, int]) -> None:
    """croissant.json: a FileObject with the right SHA-256 for every parquet file and no other, the licence the
    rows give, and each config's record set with its count."""
    path = release.root / CROISSANT_NAME
    try:
        with open_regular(path) as f:
            text = f.read(MAX_CROISSANT + 1)
        if len(text) > MAX_CROISSANT:
            raise ValueError(f"larger than {MAX_CROISSANT >> 20} MiB")
        data = json.loads(text)
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
    except (OSError, ValueError, UnicodeDecodeError, ReleaseError) as e:
        report.add("croissant", False, f"{CROISSANT_NAME}: unreadable ({e})")
        return
    try:
        digests = read_checksums(release.root)
    except ReleaseError as e:
        report.add("croissant", False, f"cannot compare with {CHECKSUMS_NAME} ({e})")
        return
    problems = []
    objects = [d for d in _list(data.get("distribution")) if isinstance(d, dict) and d.get("@type") == "cr:FileObject"]
    described = Counter(str(d.get("contentUrl")) for d in objects)
    for obj in objects:
        url, digest = str(obj.get("contentUrl")), obj.get("sha256")
        if not is_safe_relative(url) or url not in digests:
            problems.append(f"{url}: described, but not a file of the release")
        elif digest != digests[url]:
            problems.append(
                f"{url}: {CROISSANT_NAME} says SHA-256 {str(digest)[:12]}…, the file's is {digests[url][:12]}…"
            )
    problems += [f"{url}: described {n} times" for url, n in described.items() if n > 1]
    try:
        stored = {p.relative_to(release.root).as_posix() for c in release.counts for p in release.data_files(c)}
    except ReleaseError:
        stored = set()  # the parquet rows check says why
    problems += [f"{url}: a parquet file {CROISSANT_NAME} does not describe" for url in sorted(stored - set(described))]
    if licences is not None:
        said = data.get("license")
        if (said if isinstance(said, list) else [said]) != [licences.reference]:
            problems.append(f"licence {said!r}; the inputs' licences give {licences.reference!r}")
    sets = {r.get("@id") or r.get("name"): r for r in _list(data.get("recordSet")) if isinstance(r, dict)}
    for where, n in rows.items():
        config = where.split("/")[0]
        description = str(sets.get(config, {}).get("description", ""))
        match = re.match(r"config \S+: (\d+) synthetic images", description)
        if config not in sets:
            problems.append(f"no record set for config {config}")
        elif match and int(match[1]) != n:
            problems.append(f"record set {config} says {match[1]} images; there are {n} rows")
    report.add(
        "croissant",
        not problems,
        "; ".join(problems[:SHOWN]) or f"{len(objects)} parquet files with their SHA-256, licence and counts right",
    )


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []
