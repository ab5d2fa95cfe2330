import pytest

from cxr_dataset.errors import ConfigError
from generator.config import ModelConfig, Preset, TrainConfig, from_dict, load_preset


@pytest.mark.parametrize("preset", list(Preset))
def test_config_every_preset_loads(preset):
    assert load_preset(preset).preset == preset.value


def test_config_paper_preset_matches_the_seed():
    cfg = load_preset("paper")
    assert (cfg.model.generator, cfg.model.ngf, cfg.batch_size, cfg.pool_size, cfg.epochs_decay) == (
        "unet",
        32,
        16,
        0,
        0,
    )
    assert cfg.lambda_identity == 1.0 and cfg.lambda_cycle == 10.0


def test_config_cyclegan_preset_matches_the_reference():
    cfg = load_preset("cyclegan")
    assert (cfg.model.n_blocks, cfg.model.ngf, cfg.pool_size, cfg.epochs, cfg.epochs_decay) == (9, 64, 50, 100, 100)
    assert (cfg.load_size, cfg.crop_size, cfg.lambda_identity) == (286, 256, 5.0)


def test_config_from_dict_names_an_unknown_key():
    with pytest.raises(ConfigError, match=r"config.model: unknown keys \['ngff'\]"):
        from_dict(TrainConfig, {"model": {"ngff": 3}})


def test_config_from_dict_names_a_wrongly_typed_key():
    with pytest.raises(ConfigError, match=r"config\.batch_size: expected int, got str"):
        from_dict(TrainConfig, {"batch_size": "4"})


def test_config_invalid_value_is_refused():
    with pytest.raises(ConfigError, match=r"model\.generator must be one of"):
        ModelConfig(generator="vit")


def test_config_user_overrides_file_is_applied(tmp_path):
    path = tmp_path / "mine.toml"
    path.write_text("epochs = 3\n[model]\nn_blocks = 6\n")
    cfg = load_preset("cyclegan", path)
    assert cfg.epochs == 3 and cfg.model.n_blocks == 6 and cfg.model.ngf == 64


def test_config_with_size_keeps_the_load_crop_ratio():
    cfg = load_preset("cyclegan").with_size(128)
    assert (cfg.crop_size, cfg.load_size) == (128, 143)


def test_config_linear_decay_reaches_near_zero():
    cfg = load_preset("cyclegan")
    assert cfg.lr_factor(0) == 1.0 and cfg.lr_factor(99) == 1.0
    assert 0 < cfg.lr_factor(199) < 0.02


def test_config_compile_mode_is_one_of_torch_compiles_and_old_configs_default_it():
    with pytest.raises(ConfigError, match="compile_mode must be one of .*'reduce-overhead'.*got 'fast'"):
        TrainConfig(compile=True, compile_mode="fast")
    old = {k: v for k, v in TrainConfig().to_dict().items() if k != "compile_mode"}  # a run saved before the key
    assert from_dict(TrainConfig, old).compile_mode == "default"
