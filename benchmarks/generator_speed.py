"""Generator throughput: our training/translation settings against the reference configuration, with MFU.

The reference configuration is junyanz's CycleGAN as published: ResNet-9 generator, fp32, batch 1, grayscale
replicated to 3 channels. Ours: the same networks on native 1-channel input at `--precision auto` (bf16 where the
device has it natively, else fp32; on CUDA also channels_last and fused Adam). Every figure is measured in this run
on this device; ratios are ours / reference.

The settings are timed in turns (round 1: reference step, our step, our `cxrds train` loop; round 2: the same; ...),
so that a shared machine's drift falls on all of them alike: each figure is the median over `--runs` rounds with its
range, and "loop/step" is the median of the per-round ratios of the loop at pace to our bare step. FLOPs per step
are counted with `torch.utils.flop_counter`; MFU is achieved FLOP/s over the peak of a large GEMM measured in this
run in the setting's precision (its best over the start and every round), and beside it over the datasheet (CUDA) or
an estimate (CPU: cores × clock × FLOP/cycle, which knows neither boost clocks nor the real FMA width).

    python benchmarks/generator_speed.py                  # 128² on CPU: 5 rounds
    python benchmarks/generator_speed.py --sizes 128 256  # CUDA: also peak memory, projected 21,295-image time
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import tempfile
import time
from dataclasses import dataclass, field
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
TRAIN, STEP = ("train.py", "train"), ("cyclegan.py", "train_step")  # what --profile compares, by file and name
# Dense peak TFLOP/s by CUDA device name: (bf16 tensor cores, fp32 with TF32 tensor cores).
CUDA_PEAKS = {"H100": (989.0, 494.0), "H200": (989.0, 494.0), "A100": (312.0, 156.0), "L4": (121.0, 60.0)}


def stated_peak_tflops(device: torch.device, precision: str) -> tuple[float, str]:
    """The device's peak for `precision` from its datasheet (CUDA) or an estimate (CPU), and where it comes from."""
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


def measured_peak_tflops(device: torch.device, precision: str, repeats: int = 5) -> tuple[float, str]:
    """The best TFLOP/s of an n×n×n matrix product in `precision` (TF32 allowed on CUDA, as in training), and how
    it was measured. n doubles from 256 until one product takes 0.25 s, at most 2048 (CPU) or 8192 (CUDA): an
    emulated bf16 product on a CPU without native bf16 runs about 100× slower than fp32."""
    dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    generator = torch.Generator(device=device).manual_seed(0)
    largest, n = (8192 if device.type == "cuda" else 2048), 256
    while True:
        a = torch.randn(n, n, device=device, dtype=dtype, generator=generator)
        b = torch.randn(n, n, device=device, dtype=dtype, generator=generator)
        a @ b  # warm-up: kernel choice, thread pool
        if _timed_product(a, b, device) > 0.25 or n >= largest:
            break
        n *= 2
    best = min(_timed_product(a, b, device) for _ in range(repeats))
    return 2 * n**3 / best / 1e12, f"measured: best of {repeats} {n}³ {precision} GEMMs"


def _timed_product(a: torch.Tensor, b: torch.Tensor, device: torch.device) -> float:
    _sync(device)
    start = time.perf_counter()
    a @ b
    _sync(device)
    return time.perf_counter() - start


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


class BareStep:
    """`train_step` alone on fixed random images, set up (and warmed up) once; `run(steps)` times one run.

    With `cfg.compile`, FLOPs are counted on the eager networks (the counter cannot see into compiled code)."""

    def __init__(self, cfg: TrainConfig, device: torch.device) -> None:
        self.cfg, self.device, self.done = cfg, device, 0
        nets = CycleGAN(cfg.model, seeded(0, "init")).to(device)
        fast_layout = device.type == "cuda"
        if fast_layout:
            nets = nets.to(memory_format=torch.channels_last)
        fused = {"fused": True} if device.type == "cuda" else {"foreach": True}
        self.nets = nets
        self.opt_g = torch.optim.Adam(nets.generators(), lr=cfg.lr, betas=(cfg.beta1, cfg.beta2), **fused)
        self.opt_d = torch.optim.Adam(nets.discriminators(), lr=cfg.lr, betas=(cfg.beta1, cfg.beta2), **fused)
        self.pools = (ImagePool(cfg.pool_size), ImagePool(cfg.pool_size))
        shape = (cfg.batch_size, cfg.model.channels, cfg.crop_size, cfg.crop_size)
        a, b = torch.rand(shape, device=device) * 2 - 1, torch.rand(shape, device=device) * 2 - 1
        if fast_layout:
            a, b = a.contiguous(memory_format=torch.channels_last), b.contiguous(memory_format=torch.channels_last)
        self.a, self.b = a, b
        counter = FlopCounterMode(display=False)
        with counter:  # also the warm-up step
            self._step()
        self.flops_per_image = counter.get_total_flops() / cfg.batch_size
        if cfg.compile:  # as `cxrds train --compile` does; the first steps compile (and record CUDA graphs)
            for name in NET_NAMES:
                getattr(nets, name).compile(mode=cfg.compile_mode)
            for _ in range(3):
                self._step()
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats()

    def _step(self) -> None:
        self.done += 1
        rng = seeded(0, "step", self.done)
        train_step(self.nets, self.opt_g, self.opt_d, self.pools, self.a, self.b, self.cfg, rng)

    def run(self, steps: int) -> float:
        """Images/s (per domain) over `steps` steps."""
        _sync(self.device)
        start = time.perf_counter()
        for _ in range(steps):
            self._step()
        _sync(self.device)
        return steps * self.cfg.batch_size / (time.perf_counter() - start)

    def peak_gib(self) -> float:
        return torch.cuda.max_memory_allocated() / 2**30 if self.device.type == "cuda" else 0.0


class TrainLoop:
    """The whole `cxrds train` loop on phantom images (prepared once at load size, so crops and flips run too);
    `run()` trains one fresh epoch of `steps` steps and returns (images/s at pace, images/s of the whole call).

    At pace is from the log between the first step and the last: the loop with its data, augmentation and
    logging, without start-up, the first step and the final checkpoint and grid (logged only then, so no sync
    per step); the whole call has all of them."""

    def __init__(self, cfg: TrainConfig, steps: int, folder: Path) -> None:
        per_class = max(4, steps * cfg.batch_size * 10 // 7)  # 70% of the phantom is the training split
        self.prepared, self.folder, self.runs = folder / "prepared", folder, 0
        spec = f"phantom=normal:{per_class},covid:{per_class},per_patient:1"
        prepare([spec], self.prepared, PrepareConfig(size=cfg.load_size, workers=min(4, os.cpu_count() or 1)))
        self.cfg = dataclasses.replace(cfg, epochs=1, epochs_decay=0, log_every=10**9)

    def run(self) -> tuple[float, float]:
        self.runs += 1
        out = self.folder / f"run-{self.runs}"
        whole = train(self.prepared, "normal2covid", out, self.cfg).images_per_second
        log = read_log(out)
        first, last = log[0], log[-1]
        paced = (last["step"] - first["step"]) * self.cfg.batch_size / (last["elapsed_s"] - first["elapsed_s"])
        return paced, whole


def print_profile(loop: TrainLoop, shown: int = 12) -> None:
    """One more loop run under cProfile: its time in `train_step` against the whole call, and the functions that
    take the most time of their own outside it."""
    import cProfile
    import pstats

    profiler = cProfile.Profile()
    profiler.runcall(loop.run)
    stats = pstats.Stats(profiler)
    total = max(t for (path, _, name), (*_, t, _) in stats.stats.items() if (Path(path).name, name) == TRAIN)
    in_step = sum(t for (path, _, name), (*_, t, _) in stats.stats.items() if (Path(path).name, name) == STEP)
    print(f"      profile of one loop run: {total:.2f} s in train(), {in_step:.2f} s of it in train_step", end="")
    print(f" ({in_step / total:.1%})")
    stats.sort_stats("tottime").print_stats(shown)


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


@dataclass
class Setting:
    """One row: a label, its bare step and steps per run, and the rates of every round."""

    label: str
    bare: BareStep
    steps: int
    rates: list[float] = field(default_factory=list)

    @property
    def cfg(self) -> TrainConfig:
        return self.bare.cfg


def spread(values: list[float], digits: int = 3) -> str:
    """median [min–max] of `values`."""
    return f"{statistics.median(values):.{digits}f} [{min(values):.{digits}f}–{max(values):.{digits}f}]"


def settings_for(size: int, args: argparse.Namespace, ours: str, device: torch.device, steps: int) -> list[Setting]:
    """The reference step, then our step per batch size, then compiled ones if asked, each set up and warmed up
    now. Only a compiled setting may fail (its row says so): the first two are what every ratio is against."""
    configs = [("reference: 3ch fp32 b1, step", _config(size, 3, "fp32", 1), False)]
    configs += [(f"ours: 1ch {ours} b{batch}, step", _config(size, 1, ours, batch), False) for batch in args.batch]
    for mode in args.compile or ([] if args.compile is None else ["default"]):
        compiled = dataclasses.replace(configs[1][1], compile=True, compile_mode=mode)
        name = "compiled" if mode == "default" else mode
        configs.append((f"ours: 1ch {ours} b{args.batch[0]} {name}, step", compiled, True))
    settings = []
    for label, cfg, may_fail in configs:
        try:
            bare = BareStep(cfg, device)
        except Exception as error:
            if not may_fail:
                raise
            print(f"{size:>5} {label:<36} failed: {type(error).__name__}: {str(error).splitlines()[0][:200]}")
            continue
        run_steps = steps if cfg.batch_size > 1 else steps * 2
        settings.append(Setting(label, bare, run_steps))
    return settings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[128])
    parser.add_argument("--steps", type=int, default=None, help="timed steps per run (default: 2 CPU, 30 CUDA)")
    parser.add_argument("--runs", type=int, default=5, help="rounds: every setting is timed once a round, in turns")
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
    parser.add_argument("--peak-tflops", type=float, default=None, help="the device's stated peak, for MFU")
    parser.add_argument("--no-loop", action="store_true", help="skip the `cxrds train` loop rows")
    parser.add_argument(
        "--profile", action="store_true", help="also profile one more loop run: where its time goes besides the step"
    )
    args = parser.parse_args()
    device = DistInfo().device
    cuda = device.type == "cuda"
    if cuda:
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = True
    steps = args.steps or (30 if cuda else 2)
    ours = resolve_precision(args.precision, device)
    name = torch.cuda.get_device_name() if cuda else f"CPU {describe('cpu')}, {torch.get_num_threads()} threads"
    print(f"device: {name}; torch {torch.__version__}; ours at --precision {args.precision} → {ours}")
    peaks = {}
    for precision in ("fp32", "bf16"):  # both, whichever ours uses: what native bf16 would give here
        measured, how = measured_peak_tflops(device, precision)
        stated, source = (
            (args.peak_tflops, "--peak-tflops") if args.peak_tflops else stated_peak_tflops(device, precision)
        )
        peaks[precision] = (measured, stated)
        print(f"peak {precision}: {measured:.3f} TFLOP/s {how}; {stated:.3f} stated ({source})")
    for size in args.sizes:
        run_size(size, args, ours, device, steps, peaks)


def run_size(size: int, args: argparse.Namespace, ours: str, device: torch.device, steps: int, peaks: dict) -> None:
    """Every setting at `size`, in turns for `args.runs` rounds, then a row each."""
    cuda = device.type == "cuda"
    settings = settings_for(size, args, ours, device, steps)  # [0]: the reference, [1]: ours at the first batch
    with tempfile.TemporaryDirectory() as tmp:
        loop, loop_rates = None, []  # per round: (images/s at pace, of the whole call)
        if not args.no_loop:
            loop = TrainLoop(settings[1].cfg, max(steps, 2) + 1, Path(tmp))
        for _ in range(args.runs):
            for setting in settings:
                setting.rates.append(setting.bare.run(setting.steps))
            if loop is not None:
                loop_rates.append(loop.run())
            for precision in {s.cfg.precision for s in settings}:  # the peak too drifts: its best over the rounds
                measured, stated = peaks[precision]
                peaks[precision] = (max(measured, measured_peak_tflops(device, precision, repeats=2)[0]), stated)
        if loop is not None and args.profile:
            print_profile(loop)
    print(
        f"{'size':>5} {'setting':<36} {'img/s median [range]':>24} {'ratio':>6} {'GFLOP/img':>9} {'TFLOP/s':>8}"
        f" {'MFU meas.':>9} {'MFU stated':>10} {'translate img/s':>15}" + (f" {'peak GiB':>8}" if cuda else "")
    )
    base = statistics.median(settings[0].rates)
    for setting in settings:
        cfg, rate = setting.cfg, statistics.median(setting.rates)
        achieved = setting.bare.flops_per_image * rate / 1e12
        measured, stated = peaks.get(cfg.precision, (float("nan"), float("nan")))
        translate = translate_rate(cfg, device, batches=5 if not cuda else 50, batch=16 if not cuda else 64)
        print(
            f"{size:>5} {setting.label:<36} {spread(setting.rates):>24} {rate / base:>5.2f}x "
            f"{setting.bare.flops_per_image / 1e9:>9.1f} {achieved:>8.3f} {achieved / measured:>9.1%} "
            f"{achieved / stated:>10.1%} {translate:>15.1f}" + (f" {setting.bare.peak_gib():>8.2f}" if cuda else ""),
            flush=True,
        )
    if loop is not None:
        paced, whole = (list(rates) for rates in zip(*loop_rates))
        for label, rates in (("cxrds train loop, at pace", paced), ("cxrds train call, whole", whole)):
            print(f"{size:>5} {'ours: ' + label:<36} {spread(rates):>24} {statistics.median(rates) / base:>5.2f}x")
        ratios = [p / s for p, s in zip(paced, settings[1].rates)]
        print(
            f"      loop at pace / our bare step ({settings[1].label}): {spread(ratios, 2)} over {len(ratios)} rounds"
        )
    if cuda:
        print(
            f"      projected forward time for {RELEASE_IMAGES:,} images at {size}²: "
            f"{RELEASE_IMAGES / translate:.1f} s ({ours}, without PNG encoding)"
        )


if __name__ == "__main__":
    main()
