"""Generator throughput: our training/translation settings against the reference configuration.

The reference configuration is junyanz's CycleGAN as published: ResNet-9 generator, fp32, batch 1, grayscale
replicated to 3 channels. Ours: the same networks on native 1-channel input with bf16 autocast (and, on CUDA,
channels_last). Both are measured in the same run on the same device; ratios are ours / reference.

    python benchmarks/generator.py                  # 128² on CPU (a few minutes on 2 cores)
    python benchmarks/generator.py --sizes 128 256  # on CUDA: also peak memory and the projected 21,295-image time
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

# Run as a script, this file's folder comes first on sys.path and this module would shadow the
# `generator` package it benchmarks; drop that entry before importing.
sys.path = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import torch  # noqa: E402

from generator.config import TrainConfig, load_preset  # noqa: E402
from generator.cyclegan import CycleGAN, ImagePool, train_step  # noqa: E402
from generator.distributed import DistInfo  # noqa: E402
from generator.networks import build_generator  # noqa: E402
from generator.precision import autocast  # noqa: E402
from generator.train import seeded  # noqa: E402

RELEASE_IMAGES = 21_295


def _config(size: int, channels: int, precision: str, batch: int) -> TrainConfig:
    cfg = load_preset("cyclegan").with_size(size)
    return dataclasses.replace(
        cfg, model=dataclasses.replace(cfg.model, channels=channels), precision=precision, batch_size=batch
    )


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def train_rate(cfg: TrainConfig, device: torch.device, steps: int, warmup: int) -> tuple[float, float]:
    """Training images/s (per domain) and peak CUDA memory in GiB (0 on CPU)."""
    nets = CycleGAN(cfg.model, seeded(0, "init")).to(device)
    fast_layout = device.type == "cuda" and cfg.precision == "bf16"
    if fast_layout:
        nets = nets.to(memory_format=torch.channels_last)
    fused = {"fused": True} if device.type == "cuda" else {"foreach": True}
    opt_g = torch.optim.Adam(nets.generators(), lr=cfg.lr, betas=(cfg.beta1, cfg.beta2), **fused)
    opt_d = torch.optim.Adam(nets.discriminators(), lr=cfg.lr, betas=(cfg.beta1, cfg.beta2), **fused)
    pools = (ImagePool(cfg.pool_size), ImagePool(cfg.pool_size))
    shape = (cfg.batch_size, cfg.model.channels, cfg.crop_size, cfg.crop_size)
    a, b = torch.rand(shape, device=device) * 2 - 1, torch.rand(shape, device=device) * 2 - 1
    if fast_layout:
        a, b = a.contiguous(memory_format=torch.channels_last), b.contiguous(memory_format=torch.channels_last)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    for i in range(warmup + steps):
        if i == warmup:
            _sync(device)
            start = time.perf_counter()
        train_step(nets, opt_g, opt_d, pools, a, b, cfg, seeded(0, "step", i))
    _sync(device)
    rate = steps * cfg.batch_size / (time.perf_counter() - start)
    peak = torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda" else 0.0
    return rate, peak


@torch.inference_mode()
def translate_rate(cfg: TrainConfig, device: torch.device, batches: int, batch: int) -> float:
    """Generator forward passes per second (images/s), without PNG encoding."""
    net = build_generator(cfg.model).to(device).eval()
    x = torch.rand(batch, cfg.model.channels, cfg.crop_size, cfg.crop_size, device=device) * 2 - 1
    if device.type == "cuda" and cfg.precision == "bf16":
        net, x = net.to(memory_format=torch.channels_last), x.contiguous(memory_format=torch.channels_last)
    for i in range(batches + 1):
        if i == 1:
            _sync(device)
            start = time.perf_counter()
        with autocast(device, cfg.precision):
            net(x)
    _sync(device)
    return batches * batch / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[128])
    parser.add_argument("--steps", type=int, default=None, help="timed training steps (default: 5 CPU, 30 CUDA)")
    parser.add_argument("--batch", type=int, default=4, help="our training batch size")
    args = parser.parse_args()
    device = DistInfo().device
    cuda = device.type == "cuda"
    if cuda:
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = True
    steps = args.steps or (30 if cuda else 5)
    name = torch.cuda.get_device_name() if cuda else f"CPU, {torch.get_num_threads()} threads"
    print(f"device: {name}; torch {torch.__version__}")
    print(
        f"{'size':>5} {'setting':<34} {'train img/s':>11} {'ratio':>6} {'translate img/s':>15} {'ratio':>6}"
        + (f" {'peak GiB':>8}" if cuda else "")
    )
    for size in args.sizes:
        settings = [
            ("reference: 3ch fp32 batch 1", _config(size, 3, "fp32", 1)),
            (f"ours: 1ch fp32 batch {args.batch}", _config(size, 1, "fp32", args.batch)),
            (f"ours: 1ch bf16 batch {args.batch}", _config(size, 1, "bf16", args.batch)),
        ]
        base_train = base_translate = None
        for label, cfg in settings:
            train_ips, peak = train_rate(cfg, device, steps if cfg.batch_size > 1 else steps * 2, warmup=2)
            translate_ips = translate_rate(cfg, device, batches=5 if not cuda else 50, batch=16 if not cuda else 64)
            base_train = base_train or train_ips
            base_translate = base_translate or translate_ips
            line = (
                f"{size:>5} {label:<34} {train_ips:>11.2f} {train_ips / base_train:>5.2f}x "
                f"{translate_ips:>15.1f} {translate_ips / base_translate:>5.2f}x"
            )
            print(line + (f" {peak:>8.2f}" if cuda else ""), flush=True)
        if cuda:
            print(
                f"      projected forward time for {RELEASE_IMAGES:,} images at {size}²: "
                f"{RELEASE_IMAGES / translate_ips:.1f} s (bf16, without PNG encoding)"
            )


if __name__ == "__main__":
    main()
