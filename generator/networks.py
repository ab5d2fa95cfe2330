"""The CycleGAN's networks: ResNet and U-Net generators, PatchGAN discriminator.

Parameter counts at 3 channels (`count_parameters`; checked in tests against the published figures):
ResNet 9 blocks, ngf 64: 11,378,179; the seed's U-Net, ngf 32: 1,545,425; PatchGAN n_layers 3,
ndf 64: 2,764,737. At 1 channel (our default) the first and last convolutions shrink accordingly.

.. note:: The seed's Keras model ordered its layers conv → activation → norm; ours use the reference's
   conv → norm → activation throughout. Its upsampling is nearest-neighbour followed by a 'same' conv, as here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn

if TYPE_CHECKING:  # no import of cxrds at run time: `cxrds export` ships this file as cxrds_networks.py
    from generator.config import ModelConfig


class ScalarLayerNorm(nn.Module):
    """keras-contrib `InstanceNormalization(axis=None)`: normalise over C, H, W; one scalar scale and shift."""

    def __init__(self, eps: float = 1e-3) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(1))
        self.bias = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = x.mean(dim=(1, 2, 3), keepdim=True)
        var = x.var(dim=(1, 2, 3), keepdim=True, unbiased=False)
        return (x - mean) * torch.rsqrt(var + self.eps) * self.weight + self.bias


def _norm(kind: str, channels: int) -> nn.Module:
    return nn.InstanceNorm2d(channels) if kind == "instance" else ScalarLayerNorm()


class ResnetBlock(nn.Module):
    def __init__(self, dim: int, norm: str) -> None:
        super().__init__()
        self.block = nn.Sequential(
            nn.ReflectionPad2d(1),
            nn.Conv2d(dim, dim, 3),
            _norm(norm, dim),
            nn.ReLU(True),
            nn.ReflectionPad2d(1),
            nn.Conv2d(dim, dim, 3),
            _norm(norm, dim),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.block(x)


class ResnetGenerator(nn.Module):
    """Johnson et al.'s encoder / residual blocks / decoder, as in the reference `resnet_9blocks`."""

    def __init__(self, channels: int = 1, ngf: int = 64, n_blocks: int = 9, norm: str = "instance") -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.ReflectionPad2d(3), nn.Conv2d(channels, ngf, 7), _norm(norm, ngf), nn.ReLU(True)]
        for mult in (1, 2):  # two stride-2 downsamplings
            layers += [
                nn.Conv2d(ngf * mult, ngf * mult * 2, 3, stride=2, padding=1),
                _norm(norm, ngf * mult * 2),
                nn.ReLU(True),
            ]
        layers += [ResnetBlock(ngf * 4, norm) for _ in range(n_blocks)]
        for mult in (4, 2):
            layers += [
                nn.ConvTranspose2d(ngf * mult, ngf * mult // 2, 3, stride=2, padding=1, output_padding=1),
                _norm(norm, ngf * mult // 2),
                nn.ReLU(True),
            ]
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, channels, 7), nn.Tanh()]
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


def _same_conv(c_in: int, c_out: int) -> nn.Sequential:
    """Kernel-4, stride-1 convolution with TensorFlow's 'same' padding (one before, two after)."""
    return nn.Sequential(nn.ZeroPad2d((1, 2, 1, 2)), nn.Conv2d(c_in, c_out, 4))


class UnetGenerator(nn.Module):
    """The seed's U-Net: 4 × (conv k4 s2, LeakyReLU 0.2, norm), 3 × (upsample, conv, ReLU, norm, skip), tanh."""

    def __init__(self, channels: int = 1, ngf: int = 32, norm: str = "layer") -> None:
        super().__init__()
        widths = [ngf, ngf * 2, ngf * 4, ngf * 8]
        self.down = nn.ModuleList()
        c_in = channels
        for w in widths:
            self.down.append(
                nn.Sequential(nn.Conv2d(c_in, w, 4, stride=2, padding=1), _norm(norm, w), nn.LeakyReLU(0.2, True))
            )
            c_in = w
        self.up = nn.ModuleList()
        for w in widths[2::-1]:
            self.up.append(
                nn.Sequential(nn.Upsample(scale_factor=2), _same_conv(c_in, w), _norm(norm, w), nn.ReLU(True))
            )
            c_in = 2 * w  # concatenated with the encoder's output of the same width
        self.out = nn.Sequential(nn.Upsample(scale_factor=2), _same_conv(c_in, channels), nn.Tanh())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for layer in self.down:
            x = layer(x)
            skips.append(x)
        for layer, skip in zip(self.up, skips[-2::-1]):
            x = torch.cat([layer(x), skip], dim=1)
        return self.out(x)


class PatchDiscriminator(nn.Module):
    """PatchGAN: a map of real/fake scores (no sigmoid; the LSGAN loss takes raw scores)."""

    def __init__(
        self, channels: int = 1, ndf: int = 64, n_layers: int = 3, norm: str = "instance", final_stride: int = 1
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(channels, ndf, 4, stride=2, padding=1), nn.LeakyReLU(0.2, True)]
        width = ndf
        for n in range(1, n_layers + 1):
            stride = 2 if n < n_layers else final_stride
            nxt = ndf * min(2**n, 8)
            layers += [nn.Conv2d(width, nxt, 4, stride=stride, padding=1), _norm(norm, nxt), nn.LeakyReLU(0.2, True)]
            width = nxt
        # The reference's last conv shrinks the map by 2 (30×30 at 256²); the seed's keeps it ('same').
        layers.append(nn.Conv2d(width, 1, 4, padding=1) if final_stride == 1 else _same_conv(width, 1))
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


def build_generator(cfg: ModelConfig, rng: torch.Generator | None = None) -> nn.Module:
    if cfg.generator == "resnet":
        net = ResnetGenerator(cfg.channels, cfg.ngf, cfg.n_blocks, cfg.norm)
    else:
        net = UnetGenerator(cfg.channels, cfg.ngf, cfg.norm)
    return init_weights(net, rng)


def build_discriminator(cfg: ModelConfig, rng: torch.Generator | None = None) -> nn.Module:
    net = PatchDiscriminator(cfg.channels, cfg.ndf, cfg.d_layers, cfg.norm, cfg.d_final_stride)
    return init_weights(net, rng)


def init_weights(net: nn.Module, rng: torch.Generator | None = None, std: float = 0.02) -> nn.Module:
    """The reference's 'normal' init: conv weights N(0, 0.02) drawn from `rng`, biases 0."""
    for m in net.modules():
        if isinstance(m, nn.Conv2d | nn.ConvTranspose2d):
            nn.init.normal_(m.weight, 0.0, std, generator=rng)
            nn.init.zeros_(m.bias)
    return net


def count_parameters(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())
