import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_docs_cli_and_schema_references_are_up_to_date():
    result = subprocess.run([sys.executable, "docs/make_docs.py", "--check"], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
