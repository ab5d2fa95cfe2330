"""docs/architecture.md's "Who imports what" table says, for every top-level package, module and script folder of
the repository, which of ours it imports; the real import statements (read with `ast`) must say the same."""

import ast
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
HEADING = "## Who imports what"
ROW = re.compile(r"^\| `([\w.]+)` \| (.*?) \|")
SKIP = {"tests"}  # tests import whatever they test


def claimed(text: str) -> dict[str, set[str]]:
    """The table under HEADING: `| `unit` | `a`, `b` |` (or `nothing`), up to the first line that is not a row."""
    lines = text.split(HEADING, 1)[1].splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("|"))
    claims = {}
    for line in lines[start:]:
        if not line.startswith("|"):
            break
        if match := ROW.match(line):
            claims[match[1].removesuffix(".py")] = set(re.findall(r"`(\w+)`", match[2]))
    return claims


def units(root: Path) -> dict[str, list[Path]]:
    """Every top-level module (`cli.py`) and folder of Python files (a package, or scripts such as `benchmarks/`)."""
    found: dict[str, list[Path]] = {}
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(root).parts
        if parts[0] in SKIP or any(p.startswith(".") or p.endswith(".egg-info") or p == "build" for p in parts):
            continue
        found.setdefault(parts[0].removesuffix(".py") if len(parts) == 1 else parts[0], []).append(path)
    return found


def actual(root: Path) -> dict[str, set[str]]:
    """For each unit, the other units its absolute import statements name (relative imports stay inside)."""
    found = units(root)
    imports = {}
    for unit, paths in found.items():
        names = set()
        for path in paths:
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if isinstance(node, ast.Import):
                    names |= {alias.name.split(".")[0] for alias in node.names}
                elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                    names.add(node.module.split(".")[0])
        imports[unit] = (names & set(found)) - {unit}
    return imports


def mismatches(claims: dict[str, set[str]], real: dict[str, set[str]]) -> list[str]:
    wrong = [f"{unit}: not in the table" for unit in sorted(real.keys() - claims.keys())]
    wrong += [f"{unit}: in the table, not in the tree" for unit in sorted(claims.keys() - real.keys())]
    for unit in sorted(claims.keys() & real.keys()):
        if claims[unit] != real[unit]:
            missing, extra = sorted(real[unit] - claims[unit]), sorted(claims[unit] - real[unit])
            wrong.append(f"{unit}: imports {missing} the table does not say; the table claims {extra} it does not")
    return wrong


def test_architecture_import_table_matches_the_real_imports():
    claims = claimed((REPO / "docs" / "architecture.md").read_text())
    assert {"cxr_dataset", "generator", "builders", "validation_tools", "cli", "demo"} <= claims.keys()
    assert not mismatches(claims, actual(REPO)), "docs/architecture.md, 'Who imports what', is wrong"


def test_a_wrong_claim_is_caught():
    real = actual(REPO)
    claims = {unit: set(names) for unit, names in real.items()}
    claims["benchmarks"] = claims["benchmarks"] - {"validation_tools"}  # "only cli and the demo import it"
    claims["cxr_dataset"] = claims["cxr_dataset"] | {"generator"}
    del claims["examples"]
    assert mismatches(claims, real) == [
        "examples: not in the table",
        "benchmarks: imports ['validation_tools'] the table does not say; the table claims [] it does not",
        "cxr_dataset: imports [] the table does not say; the table claims ['generator'] it does not",
    ]
