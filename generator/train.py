"""`cxrds train`: fit a CycleGAN between a source class (normal or pneumonia) and COVID-19.

The flow follows nanoGPT's train.py: config → seed → data → networks → optimizers → resume → loop.
Every random draw (weights, data order, crops, flips, image pool) comes from a generator seeded by
``(seed, purpose, epoch or step)``, so a resumed run replays exactly what an uninterrupted one would.

Both training domains are small (the paper used 180 images a side), so they are decoded once into
uint8 tensors on the training device and augmented there: no loader workers are needed to keep up.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from cxr_dataset.devices import describe
from cxr_dataset.errors import ConfigError
from cxr_dataset.fileio import atomic_write_bytes, atomic_write_text
from cxr_dataset.imaging import encode_png, read_gray
from cxr_dataset.manifest import Manifest, read_manifest
from cxr_dataset.ownership import claimed_output, note_write, writing_into
from cxr_dataset.progress import ProgressFn, no_progress
from cxr_dataset.schema import SYNTHETIC_LABEL, TASK_SOURCE_CLASS
from generator import distributed
from generator.checkpoint import (
    Checkpoint,
    load_checkpoint,
    load_into,
    optimizer_from_tensors,
    optimizer_to_tensors,
    save_checkpoint,
)
from generator.config import RESUMABLE_CHANGES, TrainConfig, config_differences, flat
from generator.cyclegan import NET_NAMES, CycleGAN, DDPNets, ImagePool, check_input_size, train_step
from generator.distributed import DistInfo
from generator.precision import AUTO, autocast, resolve_precision
from generator.run_folder import CONFIG_NAME, LOG_NAME, has_checkpoints, sample_path


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


def load_domain(manifest: Manifest, label: str, size: int, device: torch.device) -> torch.Tensor:
    """The training split of one class as a uint8 N×1×size×size tensor on `device`."""
    rows = manifest.rows(label=label, split="train")
    if not rows:
        raise ConfigError(f"{manifest.root}: no training images of class {label!r}; check `cxrds prepare` sources")
    pixels = np.empty((len(rows), size, size), dtype=np.uint8)
    for i, row in enumerate(rows):  # one image's bytes at a time, each checked against the manifest
        pixels[i] = read_gray(manifest.read_image(row), size)
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

    Under `torchrun` each rank trains on its own slice of every global batch (`batch_size` per rank)
    with its own image pool; gradients are averaged by DDP and rank 0 writes everything.

    Example:
        >>> train(Path("prepared"), "normal2covid", Path("runs/nc"), load_preset("tiny"))  # doctest: +SKIP
    """
    if task not in TASK_SOURCE_CLASS:
        raise ConfigError(f"task must be one of {list(TASK_SOURCE_CLASS)}, got {task!r}")
    if cfg.model.channels != 1:
        raise ConfigError("training reads grayscale X-rays; model.channels = 3 is only for the speed benchmarks")
    check_input_size(cfg.model, cfg.crop_size)
    ddp = distributed.setup()
    device = ddp.device
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True

    out = Path(out)
    # Rank 0 claims the run folder (and seals it at the end); the other ranks write into it too.
    claim = claimed_output(out, "run", [prepared], command="cxrds train") if ddp.is_main else writing_into(out)
    with claim:
        return _train(prepared, task, out, cfg, resume, progress, ddp)


def _train(
    prepared: Path, task: str, out: Path, cfg: TrainConfig, resume: bool, progress: ProgressFn, ddp: DistInfo
) -> TrainResult:
    device = ddp.device
    ddp.barrier()
    resuming = has_checkpoints(out)
    if resuming and not resume:
        raise ConfigError(f"{out} already holds checkpoints; pass --resume to continue, or choose a new --out")
    ckpt = load_checkpoint(out) if resuming else None
    # `auto` on resume keeps the checkpoint's precision, so the run continues exactly as it began.
    requested = ckpt.config.precision if ckpt is not None and cfg.precision == AUTO else cfg.precision
    cfg = dataclasses.replace(cfg, precision=resolve_precision(requested, device))

    manifest = read_manifest(prepared)
    if ckpt is not None:
        check_same_manifest(ckpt, manifest)
    domain_a = load_domain(manifest, TASK_SOURCE_CLASS[task], cfg.load_size, device)
    domain_b = load_domain(manifest, SYNTHETIC_LABEL, cfg.load_size, device)
    global_batch = cfg.batch_size * ddp.world_size
    steps_per_epoch = math.ceil(max(len(domain_a), len(domain_b)) / global_batch)

    nets = CycleGAN(cfg.model, seeded(cfg.seed, "init")).to(device)
    if device.type == "cuda":
        nets = nets.to(memory_format=torch.channels_last)
    fast = {"fused": True} if device.type == "cuda" else {"foreach": True}
    opt_g = torch.optim.Adam(nets.generators(), lr=cfg.lr, betas=(cfg.beta1, cfg.beta2), **fast)
    opt_d = torch.optim.Adam(nets.discriminators(), lr=cfg.lr, betas=(cfg.beta1, cfg.beta2), **fast)
    pools = (ImagePool(cfg.pool_size), ImagePool(cfg.pool_size))

    state = TrainState(
        cfg=cfg, task=task, manifest_sha256=manifest.sha256, nets=nets, opt_g=opt_g, opt_d=opt_d, pools=pools, ddp=ddp
    )
    step = 0 if ckpt is None else _restore(ckpt, state, steps_per_epoch)
    if ddp.is_main:
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out / CONFIG_NAME, json.dumps(cfg.to_dict(), indent=2, sort_keys=True) + "\n")
    if cfg.compile:
        for name in NET_NAMES:  # in place: state_dict keys stay unprefixed
            getattr(nets, name).compile(mode=cfg.compile_mode)
    model = wrap_ddp(nets, device) if ddp.enabled else nets

    total = cfg.total_epochs * steps_per_epoch
    first: dict[str, float] = {}
    last: dict[str, float] = {}
    started, seen = time.perf_counter(), 0
    measured_on = describe(device)  # every timing in the log names what it was measured on
    if ddp.is_main:
        note_write(out / LOG_NAME)  # appended to, so journaled by hand
    log = open(out / LOG_NAME, "a") if ddp.is_main else None  # noqa: SIM115 (closed in finally)
    order_epoch, order = -1, torch.empty(0, dtype=torch.long)
    try:
        progress(f"train {task}", step, total, "first step")  # a line before the first (slowest) step
        while step < total:
            epoch, in_epoch = divmod(step, steps_per_epoch)
            if epoch != order_epoch:  # once an epoch: its learning rate and its order, shared by all ranks
                for opt in (opt_g, opt_d):
                    for group in opt.param_groups:
                        group["lr"] = cfg.lr * cfg.lr_factor(epoch)
                order = torch.randperm(len(domain_a), generator=seeded(cfg.seed, "order", epoch))
                order = order.repeat(math.ceil(steps_per_epoch * global_batch / len(order)))
                order_epoch = epoch
            # Each rank takes its own part of the epoch's global batch.
            begin = in_epoch * global_batch + ddp.rank * cfg.batch_size
            rng = seeded(cfg.seed, "step", step * ddp.world_size + ddp.rank)
            index_b = torch.randint(len(domain_b), (cfg.batch_size,), generator=rng)
            real_a = augment(domain_a, order[begin : begin + cfg.batch_size], cfg, rng)
            real_b = augment(domain_b, index_b, cfg, rng)
            if device.type == "cuda":
                real_a = real_a.contiguous(memory_format=torch.channels_last)
                real_b = real_b.contiguous(memory_format=torch.channels_last)
            losses = train_step(model, opt_g, opt_d, pools, real_a, real_b, cfg, rng)
            step, seen = step + 1, seen + global_batch
            if step % cfg.log_every == 0 or step == total or not first:
                last = {k: round(v, 6) for k, v in ddp.mean(losses).items()}  # a device sync: only when logging
                first = first or last
                elapsed = time.perf_counter() - started
                rate = seen / elapsed
                if log is not None:
                    entry = {"step": step, "epoch": epoch, **last, "img_per_s": round(rate, 2)}
                    log.write(json.dumps({**entry, "elapsed_s": round(elapsed, 3), "device": measured_on}) + "\n")
                    log.flush()
                    info = f"cycle {last['cycle_A']:.3f} D {last['D_A']:.3f} {rate:.1f} img/s"
                    progress(f"train {task}", step, total, info)
            # The last step is always saved: the run's result is its last checkpoint.
            at_epoch_end = step % steps_per_epoch == 0
            if step == total or (step % cfg.save_every == 0 if cfg.save_every else at_epoch_end):
                _save(out, step, state)
            if ((cfg.sample_every and step % cfg.sample_every == 0) or step == total) and ddp.is_main:
                _write_samples(sample_path(out, step), nets, domain_a, domain_b, cfg)
    finally:
        if log is not None:
            log.close()
    rate = seen / max(time.perf_counter() - started, 1e-9)
    ddp.barrier()
    result = TrainResult(load_checkpoint(out).json_path, step, first, last, rate)
    distributed.teardown(ddp)
    return result


def check_same_manifest(ckpt: Checkpoint, manifest: Manifest) -> None:
    """A run resumes only on the prepared data it was trained on (by identity: the manifest's SHA-256, which
    follows the images, the settings and the split, not the folder's path); else `ConfigError` naming both."""
    recorded = ckpt.meta.get("manifest_sha256") or "none recorded"
    if recorded != manifest.sha256:
        raise ConfigError(
            f"{ckpt.json_path}: this run was trained on the prepared manifest {recorded}, but {manifest.root} "
            f"is manifest {manifest.sha256}; resume with the prepared folder the run was made on, "
            "or start a new --out"
        )


def wrap_ddp(nets: CycleGAN, device: torch.device) -> DDPNets:
    """Each network in its own DistributedDataParallel (they have separate optimizers and steps)."""
    from torch.nn.parallel import DistributedDataParallel

    ids = [device.index] if device.type == "cuda" else None
    return DDPNets(*(DistributedDataParallel(getattr(nets, name), device_ids=ids) for name in NET_NAMES))


@dataclass(frozen=True, kw_only=True)
class TrainState:
    """What a checkpoint saves and a resume restores (the networks, their optimizers, this rank's image pools),
    with the config, task and prepared manifest they belong to."""

    cfg: TrainConfig
    task: str
    manifest_sha256: str
    nets: CycleGAN  # unwrapped: rank 0 saves these, never the DDP wrappers
    opt_g: torch.optim.Optimizer
    opt_d: torch.optim.Optimizer
    pools: tuple[ImagePool, ImagePool]  # this rank's pools of past fakes, A and B
    ddp: DistInfo


def _save(out: Path, step: int, state: TrainState) -> None:
    """Rank 0 writes unwrapped nets, optimizers and every rank's image pools; all ranks wait for it."""
    cfg, nets, opt_g, opt_d, pools, ddp = state.cfg, state.nets, state.opt_g, state.opt_d, state.pools, state.ddp
    pool_images = ddp.gather([None if p.images is None else p.images.cpu() for p in pools])
    if ddp.is_main:
        tensors = {f"nets.{name}.{k}": v for name in NET_NAMES for k, v in getattr(nets, name).state_dict().items()}
        groups = {}
        for name, opt in (("G", opt_g), ("D", opt_d)):
            opt_tensors, groups[name] = optimizer_to_tensors(opt, f"optim.{name}")
            tensors.update(opt_tensors)
        for rank, images in enumerate(pool_images):
            for name, pool in zip("AB", images):
                if pool is not None:
                    tensors[f"pool.{name}.r{rank}"] = pool
        meta = {
            "config": cfg.to_dict(),
            "config_sha256": cfg.sha256(),
            "task": state.task,
            "param_groups": groups,
            "manifest_sha256": state.manifest_sha256,
            "world_size": ddp.world_size,
        }
        save_checkpoint(out, step, tensors, meta, cfg.keep_last)
    ddp.barrier()


def _restore(ckpt: Checkpoint, state: TrainState, steps_per_epoch: int) -> int:
    """Load nets, optimizers and this rank's pools into `state`; returns the step to continue from.

    Only the schedule's length (and logging/saving cadence) may change: `--epochs N` extends a finished
    or stopped run, exactly as if planned from the start while no trained epoch's learning rate changes.
    """
    cfg, nets, opt_g, opt_d, pools, ddp = state.cfg, state.nets, state.opt_g, state.opt_d, state.pools, state.ddp
    changed = config_differences(ckpt.config, cfg)
    refused = [k for k in changed if k not in RESUMABLE_CHANGES]
    if refused:
        old, new = flat(ckpt.config), flat(cfg)
        detail = ", ".join(f"{k} {old[k]!r} → {new[k]!r}" for k in refused)
        raise ConfigError(
            f"{ckpt.json_path}: --resume can change only {sorted(RESUMABLE_CHANGES)}; this run changes {detail}. "
            "Start a new --out to train with another config"
        )
    step = int(ckpt.meta["step"])
    if step > cfg.total_epochs * steps_per_epoch:
        raise ConfigError(
            f"{ckpt.json_path}: already trained {step} steps, more than the {cfg.total_epochs} epochs asked for "
            f"({cfg.total_epochs * steps_per_epoch} steps); ask for more --epochs"
        )
    trained_epochs = math.ceil(step / steps_per_epoch)
    if any(ckpt.config.lr_factor(e) != cfg.lr_factor(e) for e in range(trained_epochs)):
        warnings.warn(
            f"{ckpt.json_path}: the new schedule gives some of the {trained_epochs} trained epochs another learning "
            "rate; the run continues, but not as a run planned this way from the start would have",
            stacklevel=2,
        )
    if ckpt.meta["world_size"] != ddp.world_size:
        raise ConfigError(
            f"{ckpt.json_path}: saved by {ckpt.meta['world_size']} processes; resume with the same number "
            f"(got {ddp.world_size}) so that every rank gets its image pool back"
        )
    tensors = {k: v.to(ddp.device) for k, v in ckpt.tensors().items()}
    for name in NET_NAMES:
        prefix = f"nets.{name}."
        state = {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}
        load_into(getattr(nets, name), state, f"{ckpt.tensors_path} [{name}]")
    optimizer_from_tensors(opt_g, tensors, "optim.G", ckpt.meta["param_groups"]["G"])
    optimizer_from_tensors(opt_d, tensors, "optim.D", ckpt.meta["param_groups"]["D"])
    for name, pool in zip("AB", pools):
        pool.images = tensors.get(f"pool.{name}.r{ddp.rank}")
    return step


SAMPLE_COLUMNS = ("source", "to COVID", "and back", "COVID", "to source")  # A, G_A(A), G_B(G_A(A)), B, G_B(B)


@torch.inference_mode()
def _write_samples(path: Path, nets: CycleGAN, domain_a, domain_b, cfg: TrainConfig, n: int = 4) -> None:
    """A grid with one row per example and a labelled column each: A, G_A(A), G_B(G_A(A)), B, G_B(B)."""
    c = cfg.crop_size
    a = domain_a[:n, :, :c, :c].float() / 127.5 - 1
    b = domain_b[: len(a), :, :c, :c].float() / 127.5 - 1
    a = a[: len(b)]
    # Eager even under --compile: a grid of n images would otherwise compile (and graph) new shapes.
    eager = cfg.compile and hasattr(torch.compiler, "set_stance")  # torch >= 2.6
    stance = torch.compiler.set_stance("force_eager") if eager else contextlib.nullcontext()
    with stance, autocast(a.device, cfg.precision):
        fake_b = nets.G_A(a)
        columns = [a, fake_b, nets.G_B(fake_b), b, nets.G_B(b)]
    grid = torch.cat([torch.cat(list(col.float()), dim=-2) for col in columns], dim=-1)[0]
    pixels = ((grid.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).cpu().numpy()
    atomic_write_bytes(path, encode_png(np.concatenate([column_labels(SAMPLE_COLUMNS, c), pixels])))


def column_labels(names: tuple[str, ...], width: int, height: int = 12) -> np.ndarray:
    """A black strip with one white label per `width`-pixel column (Pillow's built-in bitmap font: the same
    pixels on every machine)."""
    from PIL import Image, ImageDraw, ImageFont

    strip = Image.new("L", (width * len(names), height), 0)
    draw, font = ImageDraw.Draw(strip), ImageFont.load_default_imagefont()
    for i, name in enumerate(names):
        draw.text((i * width + 2, 1), name, fill=255, font=font)
    return np.asarray(strip)
