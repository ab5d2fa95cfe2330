import dataclasses
import json
import warnings

import pytest
import torch

from cxr_dataset.errors import ConfigError
from cxr_dataset.schema import PROVENANCE_FIELDS
from cxr_dataset.tables import read_table
from generator import precision
from generator.checkpoint import load_checkpoint
from generator.precision import SlowPrecisionWarning, resolve_precision
from generator.train import train
from generator.translate import translate
from tests.conftest import tiny_config

CPU = torch.device("cpu")


def _cpu(native: bool):
    return lambda: native


def test_auto_is_fp32_on_a_cpu_without_native_bf16():
    assert resolve_precision("auto", CPU, _cpu(False)) == "fp32"


def test_auto_is_bf16_on_a_cpu_with_native_bf16():
    assert resolve_precision("auto", CPU, _cpu(True)) == "bf16"


def test_auto_follows_this_machines_cpu():
    expected = "bf16" if torch.ops.mkldnn._is_mkldnn_bf16_supported() else "fp32"
    assert resolve_precision("auto", CPU) == expected


def test_explicit_bf16_without_native_support_warns_that_it_is_slow():
    with pytest.warns(SlowPrecisionWarning, match="emulated"):
        assert resolve_precision("bf16", CPU, _cpu(False)) == "bf16"


def test_explicit_precisions_on_a_native_cpu_pass_through_silently():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert resolve_precision("bf16", CPU, _cpu(True)) == "bf16"
        assert resolve_precision("fp32", CPU, _cpu(False)) == "fp32"


def test_unknown_precision_is_refused():
    with pytest.raises(ConfigError, match=r"precision must be one of \['auto', 'bf16', 'fp32'\], got 'fp8'"):
        resolve_precision("fp8", CPU)


def test_autocast_refuses_an_unresolved_precision():
    with pytest.raises(ConfigError, match="resolve precision 'auto'"):
        precision.autocast(CPU, "auto")


@pytest.mark.parametrize("native", [False, True])
def test_auto_resolves_into_config_checkpoint_and_provenance(prepared, tmp_path, monkeypatch, native):
    monkeypatch.setattr(precision, "cpu_has_native_bf16", _cpu(native))
    expected = "bf16" if native else "fp32"
    cfg = dataclasses.replace(tiny_config(epochs=1, batch_size=8), crop_size=32, load_size=36)  # bf16 may be emulated
    assert cfg.precision == "auto"
    train(prepared, "normal2covid", tmp_path / "run", cfg)
    assert json.loads((tmp_path / "run/config.json").read_text())["precision"] == expected
    assert load_checkpoint(tmp_path / "run").config.precision == expected
    translate(prepared, tmp_path / "run", tmp_path / "synthetic")
    table, meta = read_table(tmp_path / "synthetic/provenance.parquet", PROVENANCE_FIELDS)
    assert set(table.column("precision").to_pylist()) == {expected} and meta["precision"] == expected


def test_auto_on_resume_keeps_the_checkpoints_precision(prepared, tmp_path, monkeypatch):
    monkeypatch.setattr(precision, "cpu_has_native_bf16", _cpu(False))
    cfg = tiny_config(epochs=1, batch_size=8)
    train(prepared, "normal2covid", tmp_path, dataclasses.replace(cfg, precision="fp32"))
    monkeypatch.setattr(precision, "cpu_has_native_bf16", _cpu(True))  # another machine: auto would be bf16 there
    result = train(prepared, "normal2covid", tmp_path, dataclasses.replace(cfg, epochs=2), resume=True)
    assert load_checkpoint(result.checkpoint).config.precision == "fp32"
