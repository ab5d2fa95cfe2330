import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_docs_cli_and_schema_references_are_up_to_date():
    result = subprocess.run([sys.executable, "docs/make_docs.py", "--check"], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_imports_go_upstream_only():
    """cxr_dataset imports no other package of ours; generator and builders do not import the validation tools."""
    import ast

    root = Path(__file__).resolve().parents[1]
    forbidden = {
        "cxr_dataset": {"generator", "builders", "validation_tools", "cli", "demo"},
        "generator": {"builders", "validation_tools", "cli", "demo"},
        "builders": {"generator", "validation_tools", "cli", "demo"},
        "validation_tools": {"generator", "builders", "cli", "demo"},
    }
    wrong = []
    for package, banned in forbidden.items():
        for path in sorted((root / package).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text())):
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
                if isinstance(node, ast.ImportFrom) and node.module and not node.level:
                    names = [node.module]
                wrong += [f"{path.relative_to(root)}: {n}" for n in names if n.split(".")[0] in banned]
    assert not wrong
