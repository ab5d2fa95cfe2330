"""The README runs as written: every block marked `<!-- test -->` is executed, from a folder holding the
demo's output (`cxrds-demo/`, made by the real `cxrds demo` with stdout redirected, as in CI or a log)."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BLOCK = re.compile(r"(?:<!-- (test|not tested: [^>]+) -->\n)?```(bash|python)\n(.*?)\n```", re.DOTALL)


def _blocks() -> list[tuple[int, str | None, str, str]]:
    text = (REPO / "README.md").read_text()
    return [(text[: m.start()].count("\n") + 1, m[1], m[2], m[3]) for m in BLOCK.finditer(text)]


def _env() -> dict[str, str]:
    venv_bin = str(Path(sys.executable).parent)  # `python`, `cxrds` and `torchrun` as the README's reader has them
    return {**os.environ, "PATH": f"{venv_bin}{os.pathsep}{os.environ['PATH']}", "HF_HUB_OFFLINE": "1"}


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("readme")
    for name in ("examples", "benchmarks"):
        (folder / name).symlink_to(REPO / name)
    demo = subprocess.run(
        ["cxrds", "demo", "--out", "cxrds-demo", "--epochs", "1", "--phantom", "normal:12,pneumonia:12,covid:12"],
        cwd=folder,
        env={**_env(), "CXRDS_PROGRESS_SECONDS": "1"},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert demo.returncode == 0, demo.stdout[-3000:] + demo.stderr[-3000:]
    out = demo.stdout
    # without a terminal the progress arrives as plain lines on stderr, one stage after another
    for stage in ("prepare: ", "train normal2covid: ", "translate pneumonia2covid: ", "build: ", "report: "):
        assert stage in demo.stderr, f"no {stage!r} progress line in the demo's output"
    rows = int(out.split("load_dataset: ")[1].split()[0])
    assert rows == int(out.split("webdataset: ")[1].split()[0]) > 0
    return folder


def test_readme_every_code_block_says_whether_ci_runs_it():
    unmarked = [line for line, marker, _, _ in _blocks() if marker is None]
    assert not unmarked, f"README.md blocks at lines {unmarked} need <!-- test --> or <!-- not tested: why -->"
    assert sum(marker == "test" for _, marker, _, _ in _blocks()) >= 6


@pytest.mark.slow
@pytest.mark.parametrize("block", [b for b in _blocks() if b[1] == "test"], ids=lambda b: f"line {b[0]}")
def test_readme_block_runs_as_written(work, block):
    line, _, language, code = block
    command = ["bash", "-euo", "pipefail", "-c", code] if language == "bash" else [sys.executable, "-c", code]
    run = subprocess.run(command, cwd=work, env=_env(), capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, f"README.md line {line}:\n{code}\n---\n{run.stdout[-2000:]}\n{run.stderr[-3000:]}"
