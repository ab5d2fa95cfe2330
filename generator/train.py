"""`cxrds train`: fit a CycleGAN between a source class (normal or pneumonia) and COVID-19.

The flow follows nanoGPT's train.py: config → seed → data → networks → optimizers → resume → loop.
Every random draw (weights, data order, crops, flips, image pool) comes from a generator seeded by
``(seed, purpose, epoch or step)``, so a resumed run replays exactly what an uninterrupted one would.

Both training domains are small (the paper used 180 images a side), so they are decoded once into
uint8 tensors on the training device and augmented there: no loader workers are needed to keep up.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from cxr_dataset.errors import ConfigError
from cxr_dataset.fileio import atomic_write_bytes
from cxr_dataset.imaging import encode_png, read_gray
from cxr_dataset.manifest import Manifest, read_manifest
from cxr_dataset.progress import ProgressFn, no_progress
from cxr_dataset.schema import SYNTHETIC_LABEL, TASK_SOURCE_CLASS
from generator.checkpoint import (
    load_checkpoint,
    load_into,
    optimizer_from_tensors,
    optimizer_to_tensors,
    save_checkpoint,
)
from generator.config import TrainConfig
from generator.cyclegan import NET_NAMES, CycleGAN, ImagePool, autocast, train_step

LOG_NAME = "log.jsonl"


@dataclass(frozen=True)
class TrainResult:
    checkpoint: Path
    steps: int
    first_losses: dict[str, float]
    last_losses: dict[str, float]
    images_per_second: float


def seeded(seed: int, purpose: str, n: int = 0) -> torch.Generator:
    """A CPU generator determined by (seed, purpose, n): no hidden global RNG state anywhere."""
    tag = int.from_bytes(purpose.encode()[:8].ljust(8, b"\0"), "little")
    state = np.random.SeedSequence([seed, tag, n]).generate_state(2, dtype=np.uint64)
    return torch.Generator().manual_seed(int(state[0] >> np.uint64(1)))


def pick_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def load_domain(manifest: Manifest, label: str, size: int, device: torch.device) -> torch.Tensor:
    """The training split of one class as a uint8 N×1×size×size tensor on `device`."""
    rows = manifest.rows(label=label, split="train")
    if not rows:
        raise ConfigError(f"{manifest.root}: no training images of class {label!r}; check `cxrds prepare` sources")
    pixels = np.stack([read_gray(manifest.image_path(r), size) for r in rows])
    return torch.from_numpy(pixels).unsqueeze(1).to(device)


def augment(images: torch.Tensor, index: torch.Tensor, cfg: TrainConfig, rng: torch.Generator) -> torch.Tensor:
    """Random crop to `crop_size` and optional flip, scaled to [-1, 1] float."""
    n, c = len(index), cfg.crop_size
    slack = images.shape[-1] - c
    offsets = torch.randint(slack + 1, (n, 2), generator=rng).tolist()
    flips = (torch.rand(n, generator=rng) < 0.5).tolist() if cfg.flip else [False] * n
    batch = []
    for i, (oy, ox), flip in zip(index.tolist(), offsets, flips):
        crop = images[i, :, oy : oy + c, ox : ox + c]
        batch.append(crop.flip(-1) if flip else crop)
    return torch.stack(batch).float().div_(127.5).sub_(1.0)


def train(
    prepared: Path,
    task: str,
    out: Path,
    cfg: TrainConfig,
    *,
    resume: bool = False,
    progress: ProgressFn = no_progress,
) -> TrainResult:
    """Train `cfg` on `prepared` for `task`, writing checkpoints, samples and a JSONL log under `out`.

    Example:
        >>> train(Path("prepared"), "normal2covid", Path("runs/nc"), load_preset("tiny"))  # doctest: +SKIP
    """
    if task not in TASK_SOURCE_CLASS:
        raise ConfigError(f"task must be one of {list(TASK_SOURCE_CLASS)}, got {task!r}")
    if cfg.model.channels != 1:
        raise ConfigError("training reads grayscale X-rays; model.channels = 3 is only for benchmarks")
    device = pick_device()
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True

    manifest = read_manifest(prepared)
    domain_a = load_domain(manifest, TASK_SOURCE_CLASS[task], cfg.load_size, device)
    domain_b = load_domain(manifest, SYNTHETIC_LABEL, cfg.load_size, device)
    steps_per_epoch = math.ceil(max(len(domain_a), len(domain_b)) / cfg.batch_size)

    nets = CycleGAN(cfg.model, seeded(cfg.seed, "init")).to(device)
    if device.type == "cuda":
        nets = nets.to(memory_format=torch.channels_last)
    fast = {"fused": True} if device.type == "cuda" else {"foreach": True}
    opt_g = torch.optim.Adam(nets.generators(), lr=cfg.lr, betas=(cfg.beta1, cfg.beta2), **fast)
    opt_d = torch.optim.Adam(nets.discriminators(), lr=cfg.lr, betas=(cfg.beta1, cfg.beta2), **fast)
    pools = (ImagePool(cfg.pool_size), ImagePool(cfg.pool_size))

    step = 0
    has_checkpoints = any((out / "checkpoints").glob("step-*.json"))
    if resume and has_checkpoints:
        step = _restore(out, cfg, nets, opt_g, opt_d, pools, device)
    elif has_checkpoints:
        raise ConfigError(f"{out} already holds checkpoints; pass --resume to continue, or choose a new --out")
    out.mkdir(parents=True, exist_ok=True)
    if cfg.compile:
        for name in NET_NAMES:  # in place: state_dict keys stay unprefixed
            getattr(nets, name).compile()

    total = cfg.total_epochs * steps_per_epoch
    first: dict[str, float] = {}
    last: dict[str, float] = {}
    started, seen = time.perf_counter(), 0
    with open(out / LOG_NAME, "a") as log:
        while step < total:
            epoch, in_epoch = divmod(step, steps_per_epoch)
            for opt in (opt_g, opt_d):
                for group in opt.param_groups:
                    group["lr"] = cfg.lr * cfg.lr_factor(epoch)
            order = torch.randperm(len(domain_a), generator=seeded(cfg.seed, "order", epoch))
            order = order.repeat(math.ceil(steps_per_epoch * cfg.batch_size / len(order)))
            rng = seeded(cfg.seed, "step", step)
            index_a = order[in_epoch * cfg.batch_size : (in_epoch + 1) * cfg.batch_size]
            index_b = torch.randint(len(domain_b), (cfg.batch_size,), generator=rng)
            real_a = augment(domain_a, index_a, cfg, rng)
            real_b = augment(domain_b, index_b, cfg, rng)
            losses = train_step(nets, opt_g, opt_d, pools, real_a, real_b, cfg, rng)
            step, seen = step + 1, seen + cfg.batch_size
            if step % cfg.log_every == 0 or step == total or not first:
                last = {k: round(float(v), 6) for k, v in losses.items()}  # a device sync: only when logging
                first = first or last
                rate = seen / (time.perf_counter() - started)
                log.write(json.dumps({"step": step, "epoch": epoch, **last, "img_per_s": round(rate, 2)}) + "\n")
                log.flush()
                info = f"cycle {last['cycle_A']:.3f} D {last['D_A']:.3f} {rate:.1f} img/s"
                progress(f"train {task}", step, total, info)
            if step % steps_per_epoch == 0 or step == total:
                _save(out, step, task, cfg, nets, opt_g, opt_d, pools, manifest.sha256)
                _write_samples(out / "samples" / f"step-{step:09d}.png", nets, domain_a, domain_b, cfg)
    rate = seen / max(time.perf_counter() - started, 1e-9)
    return TrainResult(load_checkpoint(out).json_path, step, first, last, rate)


def _save(out, step, task, cfg, nets, opt_g, opt_d, pools, manifest_sha256) -> Path:
    tensors = {f"nets.{name}.{k}": v for name in NET_NAMES for k, v in getattr(nets, name).state_dict().items()}
    groups = {}
    for name, opt in (("G", opt_g), ("D", opt_d)):
        opt_tensors, groups[name] = optimizer_to_tensors(opt, f"optim.{name}")
        tensors.update(opt_tensors)
    for name, pool in zip("AB", pools):
        if pool.images is not None:
            tensors[f"pool.{name}"] = pool.images
    meta = {
        "config": cfg.to_dict(),
        "config_sha256": cfg.sha256(),
        "task": task,
        "param_groups": groups,
        "manifest_sha256": manifest_sha256,
    }
    return save_checkpoint(out, step, tensors, meta, cfg.keep_last)


def _restore(out, cfg, nets, opt_g, opt_d, pools, device) -> int:
    ckpt = load_checkpoint(out)
    if ckpt.config != cfg:
        raise ConfigError(
            f"{ckpt.json_path}: --resume needs the same config; it was trained with "
            f"{ckpt.config.preset!r} ({ckpt.meta['config_sha256'][:12]}…), asked for {cfg.preset!r} "
            f"({cfg.sha256()[:12]}…)"
        )
    tensors = {k: v.to(device) for k, v in ckpt.tensors().items()}
    for name in NET_NAMES:
        prefix = f"nets.{name}."
        load_into(
            getattr(nets, name),
            {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)},
            f"{ckpt.tensors_path} [{name}]",
        )
    optimizer_from_tensors(opt_g, tensors, "optim.G", ckpt.meta["param_groups"]["G"])
    optimizer_from_tensors(opt_d, tensors, "optim.D", ckpt.meta["param_groups"]["D"])
    for name, pool in zip("AB", pools):
        pool.images = tensors.get(f"pool.{name}")
    return int(ckpt.meta["step"])


@torch.inference_mode()
def _write_samples(path: Path, nets: CycleGAN, domain_a, domain_b, cfg: TrainConfig, n: int = 4) -> None:
    """A grid with one row per example: A, G_A(A), G_B(G_A(A)), B, G_B(B)."""
    c = cfg.crop_size
    a = domain_a[:n, :, :c, :c].float() / 127.5 - 1
    b = domain_b[: len(a), :, :c, :c].float() / 127.5 - 1
    a = a[: len(b)]
    with autocast(a.device, cfg.precision):
        fake_b = nets.G_A(a)
        columns = [a, fake_b, nets.G_B(fake_b), b, nets.G_B(b)]
    grid = torch.cat([torch.cat(list(col.float()), dim=-2) for col in columns], dim=-1)[0]
    pixels = ((grid.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).cpu().numpy()
    atomic_write_bytes(path, encode_png(pixels))
