import json

import pytest
from typer.testing import CliRunner

from cli import app

runner = CliRunner()
COMMANDS = ["prepare", "train", "translate", "build", "validate", "demo"]


@pytest.mark.parametrize("command", COMMANDS)
def test_cli_every_command_has_help_saying_what_it_reads_and_writes(command):
    result = runner.invoke(app, [command, "--help"])
    assert result.exit_code == 0
    assert "Usage" in result.output and "--" in result.output


def test_cli_prepare_then_validate_errors_exit_1_with_one_line(tmp_path):
    result = runner.invoke(app, ["prepare", "--source", "nosuch=1", "--out", str(tmp_path)])
    assert result.exit_code == 1
    assert "error:" in result.output and "kind must be one of" in result.output
    assert "Traceback" not in result.output
    assert "error:" in result.stderr and "error:" not in result.stdout  # a pipe of the results stays clean


def test_cli_validate_fails_on_a_damaged_release(release, tmp_path):
    import shutil

    copy = tmp_path / "r"
    shutil.copytree(release, copy)
    assert runner.invoke(app, ["validate", str(copy)]).exit_code == 0
    next((copy / "data" / "g_nc").glob("*.parquet")).unlink()
    result = runner.invoke(app, ["validate", str(copy), "--json", str(tmp_path / "report.json")])
    assert result.exit_code == 1 and "FAIL" in result.output
    assert '"ok": false' in (tmp_path / "report.json").read_text()


def test_cli_stages_chain_end_to_end(tmp_path):
    def ok(*args):
        result = runner.invoke(app, [str(a) for a in args])
        assert result.exit_code == 0, result.output
        return result.output

    ok("prepare", "--source", "phantom=normal:9,covid:9", "--out", tmp_path / "p", "--size", 64, "--workers", 1)
    ok(
        "train",
        "--prepared",
        tmp_path / "p",
        "--task",
        "normal2covid",
        "--out",
        tmp_path / "r",
        "--preset",
        "tiny",
        "--epochs",
        1,
        "--size",
        64,
        "--batch-size",
        2,
        "--lr",
        1e-3,
    )
    run_config = json.loads((tmp_path / "r" / "config.json").read_text())
    assert (run_config["batch_size"], run_config["lr"]) == (2, 1e-3)
    ok("translate", "--prepared", tmp_path / "p", "--checkpoint", tmp_path / "r", "--out", tmp_path / "s")
    out = ok(
        "build", "--synthetic", tmp_path / "s", "--out", tmp_path / "rel" / "covid-synthetic-cxr", "--processes", 2
    )
    assert "g_nc" in out
    ok("validate", tmp_path / "rel" / "covid-synthetic-cxr")


def test_cli_version():
    from cxr_dataset import __version__

    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0 and result.output.strip() == f"cxrds {__version__}"


def test_cli_train_names_an_unknown_compile_mode_before_reading_anything(tmp_path):
    args = ["train", "--prepared", str(tmp_path / "p"), "--task", "normal2covid", "--out", str(tmp_path / "run")]
    result = runner.invoke(app, [*args, "--compile-mode", "turbo"])
    assert result.exit_code == 1 and "compile_mode must be one of" in result.output and "'turbo'" in result.output
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("lr", ["0", "-1e-4", "nan"])
def test_cli_train_refuses_a_learning_rate_that_is_not_positive(tmp_path, lr):
    args = ["train", "--prepared", str(tmp_path / "p"), "--task", "normal2covid", "--out", str(tmp_path / "run")]
    result = runner.invoke(app, [*args, "--lr", lr])
    assert result.exit_code == 1 and "lr must be a positive number" in result.output
    assert not (tmp_path / "run").exists()
