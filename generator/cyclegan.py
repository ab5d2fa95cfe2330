"""The CycleGAN: two generators, two discriminators, their losses, and one training step.

Names follow the reference and the paper: domain A is the source class (normal or pneumonia), domain B is
COVID-19. ``G_A: A → B`` is the paper's G_NC (or G_PC), ``G_B: B → A`` its inverse; ``D_A`` judges B images
(real B vs G_A(A)), ``D_B`` judges A images. Losses are LSGAN (MSE on raw patch scores), cycle L1 and
identity L1 (Zhu et al. 2017, eqs. 1-3).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from cxr_dataset.errors import ConfigError
from generator.config import ModelConfig, TrainConfig
from generator.networks import build_discriminator, build_generator
from generator.precision import autocast

NET_NAMES = ("G_A", "G_B", "D_A", "D_B")
LOSS_NAMES = ("G_A", "G_B", "cycle_A", "cycle_B", "idt_A", "idt_B", "D_A", "D_B")


class ImagePool:
    """A buffer of past fakes; each query returns, per image, either it or (p = 0.5) an older one it replaces.

    Random choices come from the caller's generator, and the buffer is a plain tensor, so a checkpoint
    restores it exactly.
    """

    def __init__(self, size: int) -> None:
        self.size = size
        self.images: torch.Tensor | None = None

    def query(self, fakes: torch.Tensor, rng: torch.Generator) -> torch.Tensor:
        if self.size == 0:
            return fakes.detach()  # D's loss must not reach back into G's graph, already freed by G's step
        out = []
        for img in fakes.detach():
            img = img.unsqueeze(0)
            n = 0 if self.images is None else len(self.images)
            if n < self.size:
                self.images = img.clone() if self.images is None else torch.cat([self.images, img])
                out.append(img)
            elif torch.rand((), generator=rng).item() < 0.5:
                i = int(torch.randint(n, (), generator=rng))
                out.append(self.images[i : i + 1].clone())
                self.images[i] = img[0]
            else:
                out.append(img)
        return torch.cat(out)


class CycleGAN(nn.Module):
    """Holds the four networks; `generator(direction)` gives the one translation needs."""

    def __init__(self, cfg: ModelConfig, rng: torch.Generator | None = None) -> None:
        super().__init__()
        self.G_A, self.G_B = build_generator(cfg, rng), build_generator(cfg, rng)
        self.D_A, self.D_B = build_discriminator(cfg, rng), build_discriminator(cfg, rng)

    def generators(self) -> list[nn.Parameter]:
        return [*self.G_A.parameters(), *self.G_B.parameters()]

    def discriminators(self) -> list[nn.Parameter]:
        return [*self.D_A.parameters(), *self.D_B.parameters()]


@dataclass(frozen=True)
class DDPNets:
    """The four networks, each wrapped in DistributedDataParallel; `train_step` takes it like a `CycleGAN`."""

    G_A: nn.Module
    G_B: nn.Module
    D_A: nn.Module
    D_B: nn.Module

    def discriminators(self) -> list[nn.Parameter]:
        return [*self.D_A.parameters(), *self.D_B.parameters()]


def check_input_size(model: ModelConfig, size: int, what: str = "training") -> None:
    """`ConfigError` unless the networks take `size`² images and give `size`² back (shapes only: meta device)."""
    try:
        with torch.device("meta"), torch.no_grad():
            fake = build_generator(model)(torch.zeros(1, model.channels, size, size))
            build_discriminator(model)(fake)
        fits = tuple(fake.shape[-2:]) == (size, size)
    except RuntimeError:
        fits = False
    if not fits:
        raise ConfigError(f"{what} size {size}² does not fit the {model.generator} networks; try a multiple of 32")


def _unwrapped(net: nn.Module) -> nn.Module:
    return getattr(net, "module", net)


def _lsgan(scores: torch.Tensor, target_real: bool) -> torch.Tensor:
    scores = scores.float()
    return F.mse_loss(scores, torch.full_like(scores, 1.0 if target_real else 0.0))


def train_step(
    nets: CycleGAN | DDPNets,
    opt_g: torch.optim.Optimizer,
    opt_d: torch.optim.Optimizer,
    pools: tuple[ImagePool, ImagePool],
    real_a: torch.Tensor,
    real_b: torch.Tensor,
    cfg: TrainConfig,
    rng: torch.Generator,
) -> dict[str, torch.Tensor]:
    """One optimisation step: generators first (discriminators frozen), then discriminators.

    Losses come back as detached 0-d tensors (no device sync here). In the generator step the
    discriminators run unwrapped: they only pass gradients through, so DDP has nothing to reduce.
    """
    if cfg.compile:  # a new step: CUDA graphs (compile mode reduce-overhead) may reuse the last step's outputs
        torch.compiler.cudagraph_mark_step_begin()
    amp = autocast(real_a.device, cfg.precision)
    for p in nets.discriminators():
        p.requires_grad_(False)
    with amp:
        fake_b, fake_a = nets.G_A(real_a), nets.G_B(real_b)
        rec_a, rec_b = nets.G_B(fake_b), nets.G_A(fake_a)
        losses = {
            "G_A": _lsgan(_unwrapped(nets.D_A)(fake_b), True),
            "G_B": _lsgan(_unwrapped(nets.D_B)(fake_a), True),
            "cycle_A": F.l1_loss(rec_a.float(), real_a) * cfg.lambda_cycle,
            "cycle_B": F.l1_loss(rec_b.float(), real_b) * cfg.lambda_cycle,
        }
        if cfg.lambda_identity > 0:
            losses["idt_A"] = F.l1_loss(nets.G_A(real_b).float(), real_b) * cfg.lambda_identity
            losses["idt_B"] = F.l1_loss(nets.G_B(real_a).float(), real_a) * cfg.lambda_identity
    opt_g.zero_grad(set_to_none=True)
    sum(losses.values()).backward()
    opt_g.step()

    for p in nets.discriminators():
        p.requires_grad_(True)
    pooled_b, pooled_a = pools[0].query(fake_b.float(), rng), pools[1].query(fake_a.float(), rng)
    with amp:
        losses["D_A"] = 0.5 * (_lsgan(nets.D_A(real_b), True) + _lsgan(nets.D_A(pooled_b), False))
        losses["D_B"] = 0.5 * (_lsgan(nets.D_B(real_a), True) + _lsgan(nets.D_B(pooled_a), False))
    opt_d.zero_grad(set_to_none=True)
    (losses["D_A"] + losses["D_B"]).backward()
    opt_d.step()
    return {k: v.detach() for k, v in losses.items()}
