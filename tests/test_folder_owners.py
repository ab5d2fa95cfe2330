"""Every folder kind's file names are spelled once, in the module that owns the kind (issue 28).

The other modules import the owner's constants (or call its readers). Docstrings, comments and command help
(`help=` of a Typer option) describe layouts to people and may name the files; code may not.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCANNED = (
    "cli.py",
    "cli_console.py",
    "cli_options.py",
    "demo.py",
    "cxr_dataset",
    "generator",
    "builders",
    "validation_tools",
    "benchmarks",
    "examples",
)

OWNERS: dict[str, str] = {
    # the training run folder
    "log.jsonl": "generator/run_folder.py",
    # the export folder
    "model.safetensors": "cxr_dataset/export_folder.py",
    "model.json": "cxr_dataset/export_folder.py",
    # the prepared folder
    "manifest.parquet": "cxr_dataset/manifest.py",
    "rejects.csv": "cxr_dataset/prepare.py",
    # the synthetic folder
    "provenance.parquet": "cxr_dataset/synthetic_folder.py",
    # a release (and an export's checksums)
    "SHA256SUMS": "cxr_dataset/checksums.py",
    "croissant.json": "cxr_dataset/release_folder.py",
    "shardindex.json": "cxr_dataset/release_folder.py",  # <config>-<split>-shardindex.json
    # the baselines output
    "table.md": "validation_tools/baselines_folder.py",
    "metrics.csv": "validation_tools/baselines_folder.py",
    "metrics.json": "validation_tools/baselines_folder.py",
    "comparisons.csv": "validation_tools/baselines_folder.py",
    "predictions.json": "validation_tools/baselines_folder.py",
}


def scanned_files(root: Path = ROOT) -> list[Path]:
    files = []
    for name in SCANNED:
        path = root / name
        files += [path] if path.is_file() else sorted(path.rglob("*.py"))
    return [f for f in files if "__pycache__" not in f.parts]


def _documentation(tree: ast.AST) -> set[int]:
    """ids of the string nodes that document rather than do: docstrings and Typer options' help."""
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                skipped.add(id(first.value))
        if isinstance(node, ast.keyword) and node.arg == "help":
            skipped |= {id(n) for n in ast.walk(node.value)}
    return skipped


def spelled_names(path: Path) -> list[tuple[str, int]]:
    """(file name of OWNERS, line) for each string in `path`'s code that spells one."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    skipped = _documentation(tree)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in skipped:
            found += [(name, node.lineno) for name in OWNERS if name in node.value]
    return found


def violations(root: Path = ROOT) -> list[str]:
    problems = []
    for path in scanned_files(root):
        rel = path.relative_to(root).as_posix()
        found = [(name, line) for name, line in spelled_names(path) if OWNERS[name] != rel]
        problems += [f"{rel}:{line}: {name!r} (owner: {OWNERS[name]})" for name, line in found]
    return problems


def test_each_folder_name_is_spelled_only_by_its_owner():
    assert violations() == []


def test_every_owner_spells_its_names():
    missing = [f"{name} in {owner}" for name, owner in OWNERS.items() if name not in (ROOT / owner).read_text()]
    assert missing == []


@pytest.mark.parametrize("planted", ['LOG = "log.jsonl"\n', 'where = f"{out}/SHA256SUMS"\n'])
def test_a_name_spelled_elsewhere_is_found(tmp_path, planted):
    (tmp_path / "generator").mkdir()
    (tmp_path / "generator" / "train.py").write_text(f'"""Writes log.jsonl and SHA256SUMS."""\n\n{planted}')
    (tmp_path / "generator" / "run_folder.py").write_text('LOG_NAME = "log.jsonl"\n')
    found = violations(tmp_path)
    assert len(found) == 1 and found[0].startswith("generator/train.py:3: "), found
