"""Regenerate docs/cli.md (from the Typer app) and docs/schema.md (from the schema); --check only compares."""

from __future__ import annotations

import argparse
import html
import re
import subprocess
import sys
import tempfile
from pathlib import Path

DOCS = Path(__file__).resolve().parent
CODE_SPAN = re.compile(r"(`[^`\n]*`)")
ANGLED = re.compile(r"[^\s(),;`]*<[^\s<>`]*>[^\s(),;`]*")


def plain(markdown: str) -> str:
    """Typer's docs escape help text as HTML (`&#x27;`, `&lt;`): give the characters back, as written in cli.py.

    A word holding `<...>` outside a code span (`ROOT/<class>/*.png`) becomes a code span, so markdown shows it
    instead of reading it as an HTML tag."""

    def angled(match: re.Match) -> str:
        word = match[0].rstrip(".")
        return f"`{word}`" + match[0][len(word) :]

    parts = CODE_SPAN.split(html.unescape(markdown))
    return "".join(part if part.startswith("`") else ANGLED.sub(angled, part) for part in parts)


def generated() -> dict[str, str]:
    from cxr_dataset.schema import to_markdown

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "cli.md"
        subprocess.run(
            [sys.executable, "-m", "typer", "cli", "utils", "docs", "--name", "cxrds", "--output", str(out)],
            check=True,
            capture_output=True,
            cwd=DOCS.parent,
        )
        return {"cli.md": plain(out.read_text()), "schema.md": to_markdown()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="exit 1 if a file differs from what it would be")
    args = parser.parse_args()
    stale = []
    for name, text in generated().items():
        if args.check:
            if (DOCS / name).read_text() != text:
                stale.append(name)
        else:
            (DOCS / name).write_text(text)
    if stale:
        sys.exit(f"stale: {', '.join(stale)}; run python docs/make_docs.py")


if __name__ == "__main__":
    main()
