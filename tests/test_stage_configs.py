"""The stages' frozen configs: checked when made, loaded from TOML by the one `from_dict`, given to the CLI by
--config (options typed on the command line win)."""

import dataclasses

import pytest
from typer.testing import CliRunner

from builders.release import BuildConfig
from cli import app
from cxr_dataset.configs import from_dict, load_config
from cxr_dataset.errors import ConfigError, CxrdsError
from cxr_dataset.manifest import read_manifest
from cxr_dataset.prepare import PrepareConfig
from cxr_dataset.streaming import StreamConfig
from generator.translate import TranslateConfig

CONFIGS = (PrepareConfig, TranslateConfig, BuildConfig, StreamConfig)


@pytest.mark.parametrize("cls", CONFIGS)
def test_stage_configs_are_frozen_keyword_only_and_refuse_unknown_keys(cls):
    cfg = cls()
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.seed = 1  # type: ignore[misc]
    with pytest.raises(TypeError):
        cls(0)
    with pytest.raises(ConfigError, match=r"config: unknown keys \['nosuch'\]"):
        from_dict(cls, {"nosuch": 1})


@pytest.mark.parametrize(
    "cls, data, message",
    [
        (PrepareConfig, {"size": "64"}, r"config\.size: expected int, got str"),
        (PrepareConfig, {"views": "PA"}, r"config\.views: expected array, got str"),
        (PrepareConfig, {"fractions": {"train": "0.7"}}, r"config\.fractions\.train: expected float, got str"),
        (TranslateConfig, {"seed_quirk": 1}, r"config\.seed_quirk: expected bool, got int"),
        (BuildConfig, {"processes": 1.5}, r"config\.processes: expected int, got float"),
        (StreamConfig, {"shuffle": True}, r"config\.shuffle: expected int or NoneType, got bool"),
    ],
)
def test_stage_configs_from_dict_name_a_wrongly_typed_key(cls, data, message):
    with pytest.raises(ConfigError, match=message):
        from_dict(cls, data)


@pytest.mark.parametrize(
    "cls, bad, message",
    [
        (PrepareConfig, {"size": 4}, "size must be in 8..8192"),
        (PrepareConfig, {"split": "random"}, "split must be one of"),
        (PrepareConfig, {"train_limits": {"cats": 3}}, "training limits must name classes"),
        (TranslateConfig, {"batch_size": 0}, "batch_size must be >= 1"),
        (TranslateConfig, {"precision": "fp16"}, "precision must be one of"),
        (BuildConfig, {"dataset_version": "v1"}, "MAJOR.MINOR.PATCH"),
        (BuildConfig, {"date_published": "27/11/2026"}, "YYYY-MM-DD"),
        (StreamConfig, {"config": "g_xx"}, "config must be one of"),
        (StreamConfig, {"samples_per_rank": 0}, "samples_per_rank must be"),
    ],
)
def test_stage_configs_check_values_when_made(cls, bad, message):
    with pytest.raises(CxrdsError, match=message):
        cls(**bad)


def test_stage_configs_load_from_toml_with_arrays_and_tables(tmp_path):
    path = tmp_path / "prepare.toml"
    path.write_text('size = 64\nviews = ["PA"]\n[fractions]\ntrain = 0.6\nvalidation = 0.2\ntest = 0.2\n')
    cfg = load_config(PrepareConfig, path)
    assert (cfg.size, cfg.views, cfg.fractions["train"]) == (64, ("PA",), 0.6)
    path.write_text("size = 64\nsizes = 3\n")
    with pytest.raises(ConfigError, match=rf"{path}: unknown keys \['sizes'\]"):
        load_config(PrepareConfig, path)


def test_stage_configs_cli_config_file_is_used_and_typed_options_win(tmp_path):
    config = tmp_path / "prepare.toml"
    config.write_text("size = 64\nseed = 3\nworkers = 1\n")
    args = ["prepare", "--source", "phantom=4", "--config", str(config)]
    result = CliRunner().invoke(app, [*args, "--out", str(tmp_path / "a"), "--seed", "5"])
    assert result.exit_code == 0, result.output
    meta = read_manifest(tmp_path / "a").meta
    assert (meta["size"], meta["seed"]) == (64, 5)


def test_stage_configs_cli_config_file_with_an_unknown_key_is_refused_before_the_folder(tmp_path):
    config = tmp_path / "prepare.toml"
    config.write_text("sizes = 16\n")
    args = ["prepare", "--source", "phantom=4", "--config", str(config), "--out", str(tmp_path / "a")]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 1 and "unknown keys ['sizes']" in result.output
    assert not (tmp_path / "a").exists()
