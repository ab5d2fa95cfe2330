"""Typed configs of the CycleGAN, the presets that fill them, and strict loading from TOML/JSON dicts.

A preset is a TOML file in `generator/presets/` holding only overrides of the defaults below; the
defaults are the reference CycleGAN's (junyanz/pytorch-CycleGAN-and-pix2pix, options/*.py).
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import json
import math
import tomllib
import typing
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from cxr_dataset.configs import from_dict, merge, read_toml
from cxr_dataset.errors import ConfigError
from cxr_dataset.options import check_seed

COMPILE_MODES = ("default", "reduce-overhead", "max-autotune")  # torch.compile's; the last two add CUDA graphs
PRECISIONS = ("auto", "bf16", "fp32")  # auto: bf16 where the device runs it natively, else fp32 (generator.precision)
# Keys a resumed run may change: the schedule's length and bookkeeping that does not touch the numerics.
RESUMABLE_CHANGES = frozenset(
    {"epochs", "epochs_decay", "log_every", "save_every", "sample_every", "keep_last", "allow_large"}
)
# A config whose networks are larger than this is refused unless it sets `allow_large = true` (`footprint`).
MAX_PARAMETERS = 1_000_000_000  # the four networks together; the reference CycleGAN has 28 M
MAX_TRAINING_BYTES = 256 << 30  # one fp32 training step, estimated; the reference at 256², batch 1: 3.5 GiB
# The keys the estimate depends on, with the values a refusal compares against (the reference's).
SIZE_KEYS = {"model.ngf": 64, "model.n_blocks": 9, "model.ndf": 64, "model.d_layers": 3, "crop_size": 256}
SIZE_KEYS |= {"batch_size": 1, "pool_size": 50}


class Preset(enum.StrEnum):
    """Named starting points: `cyclegan` (reference), `paper` (the seed's Keras setup), `tiny` (demo, tests)."""

    CYCLEGAN = "cyclegan"
    PAPER = "paper"
    TINY = "tiny"


@dataclass(frozen=True, kw_only=True)
class ModelConfig:
    """What it takes to rebuild the networks (all translation needs)."""

    generator: str = "resnet"  # "resnet" (reference resnet_9blocks) or "unet" (the seed's Keras U-Net)
    ngf: int = 64  # generator base filters (reference 64; the seed 32)
    n_blocks: int = 9  # residual blocks of the ResNet generator
    ndf: int = 64  # discriminator base filters
    d_layers: int = 3  # PatchGAN strided layers: 3 gives the reference 70×70 receptive field
    d_final_stride: int = 1  # 1: reference PatchGAN (30×30 map at 256²); 2: the seed's (16×16)
    norm: str = "instance"  # "instance" (reference, no affine) or "layer" (the seed's keras-contrib axis=None)
    channels: int = 1  # native grayscale; 3 replicates gray to RGB like the reference

    def __post_init__(self) -> None:
        for name, least in (("ngf", 1), ("ndf", 1), ("n_blocks", 0), ("d_layers", 0)):
            if getattr(self, name) < least:
                raise ConfigError(f"model.{name} must be >= {least}, got {getattr(self, name)}")
        _one_of("model.generator", self.generator, ("resnet", "unet"))
        _one_of("model.norm", self.norm, ("instance", "layer"))
        _one_of("model.channels", self.channels, (1, 3))
        _one_of("model.d_final_stride", self.d_final_stride, (1, 2))


@dataclass(frozen=True, kw_only=True)
class TrainConfig:
    """Everything one training run depends on; saved resolved with every checkpoint."""

    preset: str = Preset.CYCLEGAN.value  # which preset these values were resolved from
    model: ModelConfig = field(default_factory=ModelConfig)
    lambda_cycle: float = 10.0  # weight of each cycle-consistency L1 term
    lambda_identity: float = 5.0  # absolute weight of each identity L1 term (reference: 0.5 × lambda_cycle)
    pool_size: int = 50  # image pool of past fakes shown to D (Shrivastava et al.); 0 disables it
    lr: float = 2e-4  # Adam learning rate for G and D
    beta1: float = 0.5  # Adam β1
    beta2: float = 0.999  # Adam β2
    epochs: int = 100  # epochs at the initial learning rate
    epochs_decay: int = 100  # further epochs with the rate decaying linearly to zero
    batch_size: int = 1  # images per domain per step
    load_size: int = 286  # images are resized to this, then randomly cropped ...
    crop_size: int = 256  # ... to this, the training resolution
    flip: bool = True  # random horizontal flips
    precision: str = "auto"  # "bf16" autocast, "fp32", or "auto" (bf16 where native); runs record the resolved one
    compile: bool = False  # torch.compile the networks (CUDA; slow to start)
    compile_mode: str = "default"  # with compile: reduce-overhead replays each step as CUDA graphs
    seed: int = 0  # fixes initial weights, data order, crops, flips and the image pool
    log_every: int = 10  # steps between JSONL log lines
    save_every: int = 0  # steps between checkpoints; 0 = at the end of every epoch
    sample_every: int = 0  # steps between sample grids; 0 = only at the end
    keep_last: int = 3  # checkpoints kept in RUN/checkpoints
    allow_large: bool = False  # train networks past MAX_PARAMETERS / MAX_TRAINING_BYTES (see `footprint`)

    def __post_init__(self) -> None:
        _one_of("precision", self.precision, PRECISIONS)
        _one_of("compile_mode", self.compile_mode, COMPILE_MODES)
        _one_of("preset", self.preset, [p.value for p in Preset])
        if not 0 < self.crop_size <= self.load_size:
            raise ConfigError(f"crop_size must be in 1..load_size ({self.load_size}), got {self.crop_size}")
        for name in ("epochs", "batch_size", "log_every", "keep_last"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("epochs_decay", "save_every", "sample_every", "pool_size"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} must be >= 0, got {getattr(self, name)}")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise ConfigError(f"lr must be a positive number, got {self.lr}")
        if not self.allow_large:
            check_footprint(self)
        check_seed(self.seed)

    @property
    def total_epochs(self) -> int:
        return self.epochs + self.epochs_decay

    def lr_factor(self, epoch: int) -> float:
        """The reference's 'linear' policy: 1 for `epochs` epochs, then linearly towards 0."""
        return 1.0 - max(0, epoch + 1 - self.epochs) / float(self.epochs_decay + 1)

    def with_size(self, size: int) -> TrainConfig:
        """Train at `size`², keeping the preset's load/crop ratio (286/256 for the reference)."""
        return dataclasses.replace(self, crop_size=size, load_size=round(size * self.load_size / self.crop_size))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def sha256(self) -> str:
        """Hash of the canonical JSON of the resolved config."""
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()


@dataclass(frozen=True)
class Footprint:
    """What a config's networks cost, estimated from the config alone (nothing is built)."""

    parameters: int  # G_A, G_B, D_A, D_B
    training_bytes: int  # one training step, fp32: weights, gradients, Adam's moments, activations, image pools

    def over(self) -> bool:
        """Past `MAX_PARAMETERS` or `MAX_TRAINING_BYTES`."""
        return self.parameters > MAX_PARAMETERS or self.training_bytes > MAX_TRAINING_BYTES


def footprint(cfg: TrainConfig) -> Footprint:
    """Parameters (exact: `networks.count_parameters` agrees) and training memory (activations as each
    convolution's input plus three times its output, within a factor of 2 of what autograd keeps)."""
    model, size = cfg.model, cfg.crop_size
    g_params, g_act = _generator_size(model, size)
    d_params, d_act = _discriminator_size(model, size)
    parameters = 2 * g_params + 2 * d_params
    # A generator step holds six generator passes (fake, cycle, identity per direction) and the discriminators'
    # passes on the fakes; the discriminator step four more passes: 6 G + 4 D bounds both.
    activations = cfg.batch_size * (6 * g_act + 4 * d_act)
    pools = 2 * cfg.pool_size * model.channels * size * size
    return Footprint(parameters, 4 * (4 * parameters + activations + pools))


def generator_parameters(model: ModelConfig) -> int:
    """Parameters of one generator of `model`."""
    return _generator_size(model, 0)[0]


def check_footprint(cfg: TrainConfig) -> None:
    """`ConfigError` (one line, naming the key that makes it large) when `footprint` is past the limits."""
    size = footprint(cfg)
    if not size.over():
        return
    values = flat(cfg)
    # The key to name: the one whose reference value shrinks the estimate most.
    smaller = {key: _with(cfg, key, default).training_bytes for key, default in SIZE_KEYS.items()}
    key = min(smaller, key=lambda k: (smaller[k], k))
    raise ConfigError(
        f"{key} = {values[key]}: the networks would have {size.parameters:,} parameters and need about "
        f"{size.training_bytes / 2**30:,.1f} GiB to train (limits {MAX_PARAMETERS:,} parameters, "
        f"{MAX_TRAINING_BYTES / 2**30:,.0f} GiB; estimated from {', '.join(SIZE_KEYS)}); set "
        "allow_large = true in the --config file to allow it"
    )


def _with(cfg: TrainConfig, key: str, value: int) -> Footprint:
    """The footprint of `cfg` with one dotted size key set to `value` (no validation)."""
    if key.startswith("model."):
        model = dataclasses.replace(cfg.model, **{key[len("model.") :]: value})
        return footprint(dataclasses.replace(cfg, model=model, allow_large=True))
    if key == "crop_size":
        return footprint(
            dataclasses.replace(cfg, crop_size=value, load_size=max(value, cfg.load_size), allow_large=True)
        )
    return footprint(dataclasses.replace(cfg, **{key: value}, allow_large=True))


def _conv(c_in: int, c_out: int, k: int) -> int:
    return c_in * c_out * k * k + c_out


def _generator_size(model: ModelConfig, s: int) -> tuple[int, int]:
    """(parameters, activation elements at `s`², one image) of one generator, as `networks` builds it."""
    c, g, norm = model.channels, model.ngf, 2 if model.norm == "layer" else 0  # instance norm: no affine
    if model.generator == "resnet":
        b = model.n_blocks
        params = _conv(c, g, 7) + _conv(g, 2 * g, 3) + _conv(2 * g, 4 * g, 3) + 2 * b * _conv(4 * g, 4 * g, 3)
        params += _conv(4 * g, 2 * g, 3) + _conv(2 * g, g, 3) + _conv(g, c, 7) + norm * (5 + 2 * b)
        h1 = (s + 1) // 2
        h2 = (h1 + 1) // 2
        act = c * (s + 6) ** 2 + 3 * g * s * s  # convolution input + 3 × its output, layer by layer
        act += g * s * s + 3 * 2 * g * h1 * h1 + 2 * g * h1 * h1 + 3 * 4 * g * h2 * h2
        act += 2 * b * (4 * g * (h2 + 2) ** 2 + 3 * 4 * g * h2 * h2)
        act += 4 * g * h2 * h2 + 3 * 2 * g * (2 * h2) ** 2 + 2 * g * (2 * h2) ** 2 + 3 * g * (4 * h2) ** 2
        act += g * (4 * h2 + 6) ** 2 + 3 * c * (4 * h2) ** 2
        return params, act
    widths = [g, 2 * g, 4 * g, 8 * g]
    params, act, c_in, side = 7 * norm, 0, c, s
    for w in widths:
        params += _conv(c_in, w, 4)
        act += c_in * side * side + 3 * w * (side // 2) ** 2
        c_in, side = w, side // 2
    for w in widths[2::-1]:
        params += _conv(c_in, w, 4)
        act += c_in * (2 * side + 3) ** 2 + 3 * w * (2 * side) ** 2
        c_in, side = 2 * w, 2 * side
    params += _conv(c_in, c, 4)
    act += c_in * (2 * side + 3) ** 2 + 3 * c * (2 * side) ** 2
    return params, act


def _discriminator_size(model: ModelConfig, s: int) -> tuple[int, int]:
    """(parameters, activation elements at `s`², one image) of one PatchGAN discriminator."""
    c, d, n = model.channels, model.ndf, model.d_layers
    norm = 2 if model.norm == "layer" else 0
    params = _conv(c, d, 4)
    act, side = c * s * s + 3 * d * (s // 2) ** 2, s // 2
    width = d
    for layer in range(1, min(n, 3) + 1):  # widths double up to 8 × ndf, then stay
        params += _conv(width, d * 2**layer, 4) + norm
        width = d * 2**layer
    params += max(0, n - 3) * (_conv(8 * d, 8 * d, 4) + norm) + _conv(width, 1, 4)
    width = d
    for layer in range(1, min(n, 64) + 1):  # past 64 halvings every map is empty
        nxt = d * 2 ** min(layer, 3)
        out = side // 2 if layer < n or model.d_final_stride == 2 else max(side - 1, 0)
        act += width * side * side + 3 * nxt * out * out
        width, side = nxt, out
    act += width * side * side + 3 * (max(side - 1, 0) ** 2 if model.d_final_stride == 1 else side * side)
    return params, act


def config_differences(old: TrainConfig, new: TrainConfig) -> list[str]:
    """Dotted names of the keys whose values differ, e.g. ['batch_size', 'model.ngf']."""
    before, after = flat(old), flat(new)
    return sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))


def flat(cfg: TrainConfig) -> dict[str, Any]:
    """The config as one level of dotted keys: {'lr': 0.0002, 'model.ngf': 64, ...}."""

    def walk(data: dict[str, Any], prefix: str) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in data.items():
            out.update(walk(value, f"{prefix}{key}.") if isinstance(value, dict) else {f"{prefix}{key}": value})
        return out

    return walk(cfg.to_dict(), "")


def load_preset(preset: Preset | str, overrides_file: Path | None = None) -> TrainConfig:
    """Defaults, then the preset's TOML, then an optional user TOML of further overrides."""
    try:
        preset = Preset(preset)
    except ValueError:
        raise ConfigError(f"preset must be one of {[p.value for p in Preset]}, got {preset!r}") from None
    text = resources.files("generator.presets").joinpath(f"{preset.value}.toml").read_text()
    data = merge(TrainConfig().to_dict(), {**tomllib.loads(text), "preset": preset.value})
    if overrides_file is not None:
        data = merge(data, read_toml(overrides_file))
    return from_dict(TrainConfig, data, where=f"preset {preset.value}")


def _one_of(name: str, value: object, allowed: typing.Iterable[object]) -> None:
    allowed = list(allowed)
    if value not in allowed:
        raise ConfigError(f"{name} must be one of {allowed}, got {value!r}")
