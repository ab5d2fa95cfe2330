"""Progress where no bar can draw: plain lines with rate and ETA, throttled, when stdout is not a terminal."""

import subprocess
import sys
from pathlib import Path

from cxr_dataset.progress import PlainProgress, duration

REPO = Path(__file__).resolve().parents[1]


def test_plain_progress_prints_start_every_interval_and_end_with_rate_and_eta():
    now, lines = [0.0], []
    progress = PlainProgress(lines.append, interval=10, clock=lambda: now[0])
    for done in range(101):
        now[0] = done * 0.5
        progress("train", done, 100, "loss 0.4")
    progress("train", 100, 100)  # a repeated final report prints nothing
    assert lines[0] == "train: 0/100 (0%) · loss 0.4"
    assert lines[1] == "train: 20/100 (20%) 2.0/s, ETA 40 s · loss 0.4"
    assert lines[-1] == "train: 100/100 (100%) 2.0/s, done in 50 s · loss 0.4" and len(lines) == 6
    progress("train", 0, 10)  # the stage runs again (the second task): a new first line
    assert lines[-1] == "train: 0/10 (0%)"


def test_duration_reads_like_a_person_would_say_it():
    assert [duration(s) for s in (3, 88, 7500)] == ["3 s", "1 min 28 s", "2 h 05 min"]


def test_cli_without_a_terminal_prints_progress_lines(tmp_path):
    command = ["prepare", "--source", "phantom=normal:6,pneumonia:6,covid:6", "--out", str(tmp_path / "p")]
    run = subprocess.run(
        [sys.executable, "-m", "cli", *command, "--size", "64"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    lines = [line for line in run.stderr.splitlines() if line.startswith("prepare: ")]
    assert lines and lines[-1].startswith("prepare: 18/18 (100%)") and "done in" in lines[-1]
    assert "prepare: " not in run.stdout and "Prepared" in run.stdout  # progress on stderr, the result on stdout
