"""Text from users and their data made safe where it is rendered: markdown (the card, the report) and CSV.

Rich markup on the terminal is escaped in `cli.py` (`rich.markup.escape`), HTML with `html.escape`. Only what
would change the document's structure is escaped, so ordinary text ("CC BY 4.0", URLs, paths, "p < 0.05")
keeps its bytes and builds of ordinary inputs stay identical.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Mapping
from typing import Any

# A cell starting with one of these is a formula to Excel, LibreOffice and Google Sheets (OWASP: CSV injection).
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
# What could change a markdown document's structure, each replaced by a character reference: '<' opening raw HTML
# or an autolink (a letter, '/', '!' or '?' follows), '|' ending a table cell, a line break (as markdown or Python's
# `splitlines` sees one) ending a row or a paragraph, a backslash before punctuation (an escape), '&' opening a
# reference. `html.unescape` gives the text back, so a reader of the document can compare it with the data.
_MARKDOWN = re.compile(r"<(?=[A-Za-z/!?])|\||[\n\r\x0b\x0c\x1c-\x1e\x85\u2028\u2029]|\\(?=[!-/:-@\[-`{-~])|&(?=#?\w+;)")


def markdown_text(value: Any) -> str:
    """`value` as one line of markdown that shows as written: no HTML tag, no cell or line break, no escape."""
    return _MARKDOWN.sub(lambda m: f"&#{ord(m.group())};", str(value))


def csv_cell(value: Any) -> Any:
    """`value`, with a text cell that a spreadsheet would run as a formula prefixed by ' (numbers stay numbers)."""
    if isinstance(value, str) and value.startswith(FORMULA_PREFIXES):
        return "'" + value
    return value


class _Lines(io.StringIO):
    """Rows written with the terminator "\r\n" kept as "\n": the csv module quotes a cell holding a character of
    its terminator only, and a bare "\r" in an unquoted cell would end the row for a reader."""

    def write(self, text: str) -> int:
        return super().write(text[:-2] + "\n" if text.endswith("\r\n") else text)


def csv_text(rows: Iterable[Mapping[str, Any]], fieldnames: list[str]) -> str:
    """A CSV document (header, then `rows`, lines ending in "\n") whose text cells are `csv_cell`s: every CSV
    cxrds writes."""
    buf = _Lines()
    writer = csv.DictWriter(buf, fieldnames=fieldnames, lineterminator="\r\n")  # one write per row
    writer.writeheader()
    writer.writerows({k: csv_cell(v) for k, v in row.items()} for row in rows)
    return buf.getvalue()
