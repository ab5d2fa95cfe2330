"""One error boundary: every failure is one line and an exit status, options are refused before any folder is
made, and text from users or their data shows as written in the terminal, the card, the report and CSV files."""

import ast
import csv
import html
import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from builders.card import render_card
from cli import app
from cxr_dataset.user_text import csv_text, markdown_text
from validation_tools.report_render import ReportContent, to_html, to_markdown

runner = CliRunner()
HOSTILE = ["<script>alert(1)</script>", "=cmd|' /C calc'!A0", "a | b", "line\nbreak", "&lt;b&gt;", "\\|"]


def _one_line_error(result, *needles):
    """The command failed with exactly one line on stderr holding every needle, and no traceback."""
    assert result.exit_code not in (0, None), result.output
    assert "Traceback" not in result.output and isinstance(result.exception, (SystemExit, type(None)))
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def _nested_json(depth: int) -> str:
    return "[" * depth + "]" * depth


# --- every exception is one line ----------------------------------------------------------------------------


def test_an_unexpected_error_is_one_line_naming_the_command_and_where_to_see_the_traceback(tmp_path):
    baselines = tmp_path / "baselines"
    baselines.mkdir()
    (baselines / "metrics.json").write_text(_nested_json(100_000))  # json.loads: RecursionError
    (baselines / "predictions.json").write_text("[]")
    args = ["report", "--baselines", baselines, "--release", tmp_path / "r", "--real", tmp_path / "p"]
    result = runner.invoke(app, [*map(str, args), "--out", str(tmp_path / "report")])
    line = _one_line_error(result, "cxrds report failed: RecursionError", "re-run with --debug for the traceback")
    assert result.exit_code == 1 and len(line) < 500
    assert not (tmp_path / "report").exists()


def test_debug_lets_the_traceback_through(tmp_path):
    baselines = tmp_path / "baselines"
    baselines.mkdir()
    (baselines / "metrics.json").write_text(_nested_json(100_000))
    (baselines / "predictions.json").write_text("[]")
    args = ["--debug", "report", "--baselines", baselines, "--release", tmp_path, "--real", tmp_path]
    result = runner.invoke(app, [*map(str, args), "--out", str(tmp_path / "report")])
    assert isinstance(result.exception, RecursionError)  # raised on, for typer to print with its traceback


def test_imagefolder_metadata_nested_too_deep_names_the_file_and_the_line(tmp_path):
    root = tmp_path / "imagefolder"
    root.mkdir()
    row = json.dumps({"file_name": "a.png", "label": "normal"})
    deep = '{"file_name": "b.png", "label": "normal", "x": ' + _nested_json(100_000) + "}"
    (root / "metadata.jsonl").write_text(f"{row}\n{deep}\n")
    result = runner.invoke(app, ["prepare", "--source", f"imagefolder={root}", "--out", str(tmp_path / "out")])
    _one_line_error(result, f"{root / 'metadata.jsonl'}: line 2 nests its values too deep to read")


def _children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError, IndexError):
            continue
        if int(fields[1]) == pid and fields[0] != "Z":
            found.append(int(stat.parent.name))
    return found


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_a_killed_prepare_worker_is_one_line_saying_a_worker_died_and_how_to_rerun(tmp_path):
    args = ["prepare", "--source", "phantom=300", "--out", tmp_path / "out", "--size", 64, "--workers", 2]
    proc = subprocess.Popen(
        [sys.executable, "-m", "cli", *map(str, args)],
        cwd=Path(__file__).parents[1],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        while len(workers := _children(proc.pid)) < 2:
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
            time.sleep(0.02)
        # The parent held still while a worker is killed, as the kernel's OOM killer would kill it: its
        # pool still has most of the 900 images to hand out.
        os.kill(proc.pid, signal.SIGSTOP)
        os.kill(workers[0], signal.SIGKILL)
        os.kill(proc.pid, signal.SIGCONT)
        stdout, stderr = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 1, stdout + stderr
    assert "Traceback" not in stderr and len(stderr.strip().splitlines()) == 1, stderr
    assert "cxrds prepare: a worker process died" in stderr and "--workers 1" in stderr and "re-run" in stderr


def test_push_refuses_a_malformed_repo_id_before_verifying_anything(tmp_path):
    not_a_release = tmp_path / "folder"
    not_a_release.mkdir()  # a verify would fail on it: the repo id must be named first
    result = runner.invoke(app, ["push", str(not_a_release), "--repo-id", "../x", "--dry-run"])
    _one_line_error(result, "--repo-id must be OWNER/NAME, got '../x'")
    assert "verify" not in result.stderr


# --- options refused before any folder is made --------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["baselines", "--release", "R", "--real", "P", "--seeds", "0,x"], "expected comma-separated whole numbers"),
        (["baselines", "--release", "R", "--real", "P", "--seeds", "-1"], "seeds must be in 0.."),
        (["baselines", "--release", "R", "--real", "P", "--epochs", "0"], "epochs must be >= 1"),
        (["baselines", "--release", "R", "--real", "P", "--size", "0"], "size must be in 32..8192"),
        (["prepare", "--source", "phantom=9", "--seed", "-1"], "seed must be in 0.."),
        (["prepare", "--source", "nosuch=1"], "kind must be one of"),
        (["prepare", "--source", "phantom=x"], "phantom spec 'x'"),
        (["prepare", "--source", "phantom=9", "--limit-train", "covid=0"], "training limits must name classes"),
        (["prepare", "--source", "phantom=9", "--covid-classes", "covid,flu"], "covid-collection classes must be"),
        (["train", "--prepared", "P", "--task", "normal2covid", "--seed", "-1"], "seed must be in 0.."),
        (["demo", "--seed", "-1"], "seed must be in 0.."),
        (["demo", "--size", "3"], "size must be in 64..512"),
        (["demo", "--size", "32"], "size must be in 64..512"),
        (["demo", "--size", "66"], "does not fit"),
        (["demo", "--epochs", "0"], "epochs must be >= 1"),
        (["demo", "--phantom", "normal:-1"], "phantom spec"),
    ],
)
def test_every_command_refuses_a_bad_option_before_making_its_folder(tmp_path, args, message):
    args = [str(tmp_path / a) if a in ("R", "P") else a for a in args]
    result = runner.invoke(app, [*args, "--out", str(tmp_path / "out")])
    assert result.exit_code in (1, 2) and message in result.output, result.output
    assert "Traceback" not in result.output and not isinstance(result.exception, ValueError)
    assert not (tmp_path / "out").exists()


def test_translate_refuses_a_size_the_generator_cannot_take_before_making_its_folder(prepared, synthetic, tmp_path):
    run = synthetic["normal2covid"].parents[1] / "runs" / "normal2covid"
    args = ["translate", "--prepared", str(prepared), "--checkpoint", str(run), "--out", str(tmp_path / "out")]
    result = runner.invoke(app, [*args, "--size", "50"])
    _one_line_error(result, "translation size 50² does not fit")
    assert not (tmp_path / "out").exists()


# --- user text shown as written -----------------------------------------------------------------------------


def test_an_out_path_holding_rich_markup_is_printed_as_written(tmp_path):
    out = tmp_path / "x[/red]y[bold]"
    args = ["prepare", "--source", "phantom=3", "--out", str(out), "--size", "64", "--workers", "1"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert str(out / "manifest.parquet") in result.stdout.replace("\n", "")


def _card(licences: list[str], asset: str, repo_name: str) -> str:
    """The card of a release whose rows and generators' training targets carry `licences`."""
    rows = [
        {
            "source_class": "normal",
            "task": "normal2covid",
            "checkpoint_sha256": "0" * 64,
            "preset": "tiny",
            "config_sha256": "1" * 64,
            "width": 64,
            "source_dataset": "imagefolder",
            "code_version": "0.0.0",
            "source_license": licence,
            "source_patient_id": "p1",
        }
        for licence in licences
    ]
    made_with = [
        {
            "task": "normal2covid",
            "release_asset": asset,
            "release_md5": "2" * 32,
            "target_licenses": {licence: 2 for licence in licences},
        }
    ]
    configs = {"all": {"train": rows}, "g_nc": {"train": rows}}
    sizes = {"all": 1, "g_nc": 1}
    files = {"all": ["data/all/*.parquet"], "g_nc": ["data/g_nc/*.parquet"]}
    return render_card(
        configs,
        sizes,
        files,
        made_with=made_with,
        repo_id=None,
        folder_name=repo_name,
        download_size=sizes,
        version="1.0.0",
        date_published="2026-11-27",
    )


def test_hostile_licence_text_keeps_the_cards_licence_table_whole_and_shows_as_written():
    licences = [*HOSTILE, "CC BY 4.0", "https://creativecommons.org/licenses/by/4.0/"]
    card = _card(licences, asset="<img src=x onerror=alert(1)>|G_NC.zip", repo_name='x"); import os; ("')
    assert "<script" not in card and "<img" not in card
    table = card.partition("\n## Licences\n")[2].partition("\n## ")[0]
    lines = [line for line in table.splitlines() if line.startswith("|")][2:]
    assert len(lines) == len(licences)
    cells = [line.split("|")[1:-1] for line in lines]
    assert all(len(c) == 3 for c in cells)
    assert sorted(html.unescape(c[0].strip()) for c in cells) == sorted(licences)
    assert "| CC BY 4.0 | 1 | 2 |" in card  # ordinary text keeps its bytes
    assert "| https://creativecommons.org/licenses/by/4.0/ | 1 | 2 |" in card
    settings = next(line for line in card.splitlines() if "(MD5 " in line)
    assert settings.count("|") == 6 and "&#124;G_NC.zip" in settings
    code = [line.partition("#")[0] for line in card.splitlines() if line.startswith("ds = load_dataset(")]
    calls = [ast.parse(line.strip()).body for line in code]  # the folder name stays one Python string
    assert all(len(body) == 1 and isinstance(body[0].value.args[0], ast.Constant) for body in calls)


def _content(**text) -> ReportContent:
    return ReportContent(
        header=[("release", text["header"])],
        notes=[text["note"]],
        results=[],
        blocks=[("a block", ["regime", "AUC"], [[text["cell"], "0.5"]])],
        seed_table="",
        seed_skew=[],
        quality=[],
        figures=[],
        flags=[text["flag"]],
    )


@pytest.mark.parametrize("hostile", HOSTILE)
def test_report_shows_text_from_the_data_as_written_in_markdown_and_html(hostile):
    content = _content(header=hostile, note=f"sources: {hostile}", cell=hostile, flag=hostile)
    markdown, page = to_markdown(content), to_html(content)
    for document in (markdown, page):
        assert "<script" not in document
    assert "| " + markdown_text(hostile) + " | 0.5 |" in markdown.splitlines()
    assert html.unescape(markdown_text(hostile)) == hostile


def test_markdown_and_csv_escaping_leave_ordinary_text_alone():
    ordinary = ["CC BY 4.0", "CC BY-NC-SA 4.0", "https://x.org/a_b?c=1&d=2", "p < 0.05", "MIT (generated by cxrds)"]
    assert [markdown_text(t) for t in ordinary] == ordinary
    text = csv_text([{"name": "CC BY 4.0", "delta": -0.25, "n": 3}], ["name", "delta", "n"])
    assert text == "name,delta,n\nCC BY 4.0,-0.25,3\n"  # a negative number stays a number


@pytest.mark.parametrize("cell", ["=1+1", "+1", "-1+1", "@SUM(A1)", "\t=1", "\r=1", "=cmd|' /C calc'!A0"])
def test_csv_cells_a_spreadsheet_would_run_are_written_as_text(cell):
    rows = list(csv.reader(io.StringIO(csv_text([{"a": cell}], ["a"]), newline="")))
    assert rows == [["a"], ["'" + cell]]


def test_rejects_csv_written_by_prepare_neutralises_formula_cells(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    root = Path("=1+1")  # a source folder named like a formula: its path starts the origin cell
    root.mkdir()
    Image.fromarray(np.full((40, 40), 90, np.uint8)).save(root / "good.png")
    (root / "bad.png").write_bytes(b"not a png")
    rows = [{"file_name": "good.png", "label": "normal"}, {"file_name": "bad.png", "label": "normal"}]
    (root / "metadata.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    args = ["prepare", "--source", f"imagefolder={root}", "--out", "out", "--size", "32", "--workers", "1"]
    result = runner.invoke(app, [*args, "--skip-bad"])
    assert result.exit_code == 0, result.output
    with open(tmp_path / "out" / "rejects.csv", newline="") as f:
        (reject,) = list(csv.DictReader(f))
    assert reject["origin"] == "'=1+1/bad.png" and not reject["reason"].startswith(("=", "+", "-", "@"))
