"""Generator throughput: our training/translation settings against the reference configuration, with MFU.

The reference configuration is junyanz's CycleGAN as published: ResNet-9 generator, fp32, batch 1, grayscale
replicated to 3 channels. Ours: the same networks on native 1-channel input at `--precision auto` (bf16 where
the device has it natively, else fp32; on CUDA also channels_last and fused Adam). Every figure is measured in
this run on this device; ratios are ours / reference. FLOPs per step are counted with
`torch.utils.flop_counter`; MFU is achieved FLOP/s over the device's peak (`--peak-tflops`, or a table/estimate).
The last rows time the whole `cxrds train` loop (data, augmentation, logging, checkpoints) on phantom images.

    python benchmarks/generator_speed.py                  # 128² on CPU: median of 3 runs a setting
    python benchmarks/generator_speed.py --sizes 128 256  # CUDA: also peak memory, projected 21,295-image time
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import tempfile
import time
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

from cxr_dataset.devices import describe
from cxr_dataset.prepare import PrepareConfig, prepare
from generator.config import TrainConfig, load_preset
from generator.cyclegan import NET_NAMES, CycleGAN, ImagePool, train_step
from generator.distributed import DistInfo
from generator.networks import build_generator
from generator.precision import autocast, cpu_has_native_bf16, resolve_precision
from generator.run_folder import read_log
from generator.train import seeded, train

RELEASE_IMAGES = 21_295
# Dense peak TFLOP/s by CUDA device name: (bf16 tensor cores, fp32 with TF32 tensor cores).
CUDA_PEAKS = {"H100": (989.0, 494.0), "H200": (989.0, 494.0), "A100": (312.0, 156.0), "L4": (121.0, 60.0)}


def device_peak_tflops(device: torch.device, precision: str) -> tuple[float, str]:
    """The device's peak for `precision`, and where the number comes from."""
    if device.type == "cuda":
        name = torch.cuda.get_device_name()
        for key, (bf16, fp32) in CUDA_PEAKS.items():
            if key in name:
                return (bf16 if precision == "bf16" else fp32), f"{key} datasheet, dense"
        return float("nan"), f"unknown card {name!r}: pass --peak-tflops"
    cores = len(os.sched_getaffinity(0))
    ghz = _cpu_ghz()
    capability = torch.backends.cpu.get_cpu_capability()
    per_cycle = 64 if "AVX512" in capability else 32 if "AVX2" in capability else 8  # fp32: 2 FMA pipes
    if precision == "bf16" and cpu_has_native_bf16():
        per_cycle *= 2
    return cores * ghz * per_cycle / 1e3, f"estimate: {cores} cores × {ghz:.2f} GHz × {per_cycle} FLOP/cycle"


def _cpu_ghz() -> float:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("cpu MHz"):
                return float(line.split(":")[1]) / 1e3
    except OSError:
        pass
    return float("nan")


def _config(size: int, channels: int, precision: str, batch: int) -> TrainConfig:
    cfg = load_preset("cyclegan").with_size(size)
    return dataclasses.replace(
        cfg, model=dataclasses.replace(cfg.model, channels=channels), precision=precision, batch_size=batch
    )


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def step_rate(cfg: TrainConfig, device: torch.device, steps: int, runs: int) -> tuple[list[float], float, float]:
    """Bare `train_step`: images/s of each run (per domain), FLOPs per step, peak CUDA GiB (0 on CPU).

    With `cfg.compile`, FLOPs are counted on the eager networks (the counter cannot see into compiled code)."""
    nets = CycleGAN(cfg.model, seeded(0, "init")).to(device)
    fast_layout = device.type == "cuda"
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
    counter = FlopCounterMode(display=False)
    with counter:  # also the warm-up step
        train_step(nets, opt_g, opt_d, pools, a, b, cfg, seeded(0, "step", 0))
    if cfg.compile:  # as `cxrds train --compile` does; the first steps compile (and record CUDA graphs)
        for name in NET_NAMES:
            getattr(nets, name).compile(mode=cfg.compile_mode)
        for i in range(3):
            train_step(nets, opt_g, opt_d, pools, a, b, cfg, seeded(0, "warm-up", i))
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    rates = []
    for run in range(runs):
        _sync(device)
        start = time.perf_counter()
        for i in range(steps):
            train_step(nets, opt_g, opt_d, pools, a, b, cfg, seeded(0, "step", 1 + run * steps + i))
        _sync(device)
        rates.append(steps * cfg.batch_size / (time.perf_counter() - start))
    peak = torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda" else 0.0
    return rates, counter.get_total_flops(), peak


def loop_rates(cfg: TrainConfig, runs: int, steps: int) -> tuple[list[float], list[float]]:
    """The whole `cxrds train` loop on phantom images (prepared at load size, so crops and flips run too).

    Per run: (images/s from the log between the first and the last step: the loop at pace, with its data,
    augmentation and logging; images/s of the whole call: with start-up, the first step and the checkpoint)."""
    per_class = max(4, steps * cfg.batch_size * 10 // 7)  # 70% of the phantom is the training split
    paced, whole = [], []
    with tempfile.TemporaryDirectory() as tmp:
        prepared = Path(tmp) / "prepared"
        spec = f"phantom=normal:{per_class},covid:{per_class},per_patient:1"
        prepare([spec], prepared, PrepareConfig(size=cfg.load_size, workers=min(4, os.cpu_count() or 1)))
        run_cfg = dataclasses.replace(cfg, epochs=1, epochs_decay=0, log_every=1)
        for run in range(runs):
            out = Path(tmp) / f"run-{run}"
            whole.append(train(prepared, "normal2covid", out, run_cfg).images_per_second)
            log = read_log(out)
            first, last = log[0], log[-1]
            paced.append((last["step"] - first["step"]) * cfg.batch_size / (last["elapsed_s"] - first["elapsed_s"]))
    return paced, whole


@torch.inference_mode()
def translate_rate(cfg: TrainConfig, device: torch.device, batches: int, batch: int) -> float:
    """Generator forward passes per second (images/s), without PNG encoding."""
    net = build_generator(cfg.model).to(device).eval()
    x = torch.rand(batch, cfg.model.channels, cfg.crop_size, cfg.crop_size, device=device) * 2 - 1
    if device.type == "cuda":
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
    parser.add_argument("--steps", type=int, default=None, help="timed steps per run (default: 3 CPU, 30 CUDA)")
    parser.add_argument("--runs", type=int, default=3, help="runs per setting; the median is reported")
    parser.add_argument("--batch", type=int, nargs="+", default=[4], help="our training batch sizes (a row each)")
    parser.add_argument(
        "--compile",
        nargs="*",
        metavar="MODE",
        default=None,
        help="also time ours at the first batch size with torch.compile (as `cxrds train --compile`), a row per "
        "mode (default: default; reduce-overhead adds CUDA graphs)",
    )
    parser.add_argument("--precision", default="auto", help="ours: auto, bf16 or fp32")
    parser.add_argument("--peak-tflops", type=float, default=None, help="the device's peak, for MFU")
    parser.add_argument("--no-loop", action="store_true", help="skip the `cxrds train` loop rows")
    args = parser.parse_args()
    device = DistInfo().device
    cuda = device.type == "cuda"
    if cuda:
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = True
    steps = args.steps or (30 if cuda else 3)
    ours = resolve_precision(args.precision, device)
    name = torch.cuda.get_device_name() if cuda else f"CPU {describe('cpu')}, {torch.get_num_threads()} threads"
    print(f"device: {name}; torch {torch.__version__}; ours at --precision {args.precision} → {ours}")
    print(
        f"{'size':>5} {'setting':<36} {'img/s':>8} {'ratio':>6} {'GFLOP/img':>9} {'TFLOP/s':>8} {'MFU':>6}"
        f" {'translate img/s':>15}" + (f" {'peak GiB':>8}" if cuda else "")
    )
    for size in args.sizes:
        reference = _config(size, 3, "fp32", 1)
        settings = [("reference: 3ch fp32 b1, step", reference)]
        for batch in args.batch:
            settings.append((f"ours: 1ch {ours} b{batch}, step", _config(size, 1, ours, batch)))
        if args.compile is not None:  # the first batch size only: each compilation takes a minute or more
            for at, mode in enumerate(args.compile or ["default"], start=2):
                compiled = dataclasses.replace(settings[1][1], compile=True, compile_mode=mode)
                name = "compiled" if mode == "default" else mode
                settings.insert(at, (f"ours: 1ch {ours} b{args.batch[0]} {name}, step", compiled))
        our_cfg = settings[1][1]
        base = None
        for label, cfg in settings:
            try:
                rates, flops, memory = step_rate(cfg, device, steps if cfg.batch_size > 1 else steps * 2, args.runs)
            except Exception as error:  # one failing setting (a compile mode) must not lose the other rows
                print(f"{size:>5} {label:<36} failed: {type(error).__name__}: {str(error).splitlines()[0][:200]}")
                continue
            rate = statistics.median(rates)
            base = base or rate
            achieved = flops / cfg.batch_size * rate / 1e12
            peak, source = (
                (args.peak_tflops, "--peak-tflops") if args.peak_tflops else device_peak_tflops(device, cfg.precision)
            )
            translate = translate_rate(cfg, device, batches=5 if not cuda else 50, batch=16 if not cuda else 64)
            print(
                f"{size:>5} {label:<36} {rate:>8.3f} {rate / base:>5.2f}x {flops / cfg.batch_size / 1e9:>9.1f} "
                f"{achieved:>8.3f} {achieved / peak:>6.1%} {translate:>15.1f}"
                + (f" {memory:>8.2f}" if cuda else "")
                + f"   runs: {', '.join(f'{r:.3f}' for r in rates)}",
                flush=True,
            )
        print(f"      MFU against a peak of {peak:.3f} TFLOP/s ({source})")
        if not args.no_loop:
            paced, whole = loop_rates(our_cfg, args.runs, max(steps, 4))
            for label, rates in (("cxrds train loop, at pace", paced), ("cxrds train call, whole", whole)):
                rate = statistics.median(rates)
                print(
                    f"{size:>5} {f'ours: {label}':<36} {rate:>8.3f} {rate / base:>5.2f}x"
                    f"   runs: {', '.join(f'{r:.3f}' for r in rates)}",
                    flush=True,
                )
        if cuda:
            print(
                f"      projected forward time for {RELEASE_IMAGES:,} images at {size}²: "
                f"{RELEASE_IMAGES / translate:.1f} s ({ours}, without PNG encoding)"
            )


if __name__ == "__main__":
    main()
