"""Print a pip constraints file pinning every dependency of pyproject.toml at its declared floor.

`make test-floors` installs the project under it, so the floors are stated once (in pyproject.toml) and tested.
Usage: python .ci/floors.py [EXTRA ...] > floors.txt  (torch and torchvision are left out: the Makefile pins them).
"""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

PYPROJECT = Path(__file__).resolve().parent.parent / "pyproject.toml"
PINNED_ELSEWHERE = {"torch", "torchvision"}
FLOOR = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\[[^\]]*\])?\s*>=\s*([^,;\s]+)\s*(?:;.*)?$")


def floors(pyproject: Path, extras: list[str]) -> dict[str, str]:
    """Each requirement's name and `>=` floor, from the project's dependencies and the named extras."""
    project = tomllib.loads(pyproject.read_text())["project"]
    optional = project.get("optional-dependencies", {})
    unknown = [extra for extra in extras if extra not in optional]
    if unknown:
        raise SystemExit(f"{pyproject}: no extra named {', '.join(unknown)}")
    requirements = list(project["dependencies"]) + [req for extra in extras for req in optional[extra]]
    found: dict[str, str] = {}
    for requirement in requirements:
        match = FLOOR.match(requirement)
        if match is None:
            raise SystemExit(f"{pyproject}: {requirement!r} states no `>=` floor")
        name, version = re.sub(r"[-_.]+", "-", match[1]).lower(), match[2]
        if name not in PINNED_ELSEWHERE:
            found[name] = max(found.get(name, version), version, key=_version_key)
    return found


def _version_key(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", version))


def main() -> None:
    for name, version in sorted(floors(PYPROJECT, sys.argv[1:]).items()):
        print(f"{name}=={version}")


if __name__ == "__main__":
    main()
