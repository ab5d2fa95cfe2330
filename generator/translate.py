"""`cxrds translate`: run a trained G_A over every training image of the task's source class.

Writes ``SYNTH/images/<id>.png`` and ``SYNTH/provenance.parquet`` (`schema.PROVENANCE_FIELDS`): one row per
synthetic image naming its source image and patient, the checkpoint and config hashes, the identity of the
manifest the generator was trained on, the code version and the PNG's SHA-256. The same checkpoint and inputs
always give the same bytes on the same hardware.
"""

from __future__ import annotations

import dataclasses
import io
from collections import Counter, deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from cxr_dataset import __version__
from cxr_dataset.errors import CheckpointError, ConfigError
from cxr_dataset.fileio import atomic_write_bytes, sha256_bytes
from cxr_dataset.imaging import encode_png, read_gray
from cxr_dataset.manifest import read_manifest
from cxr_dataset.options import check_workers
from cxr_dataset.ownership import claimed_output, writing_into
from cxr_dataset.progress import ProgressFn, no_progress
from cxr_dataset.schema import (
    NATIVE_PATIENT_ID,
    PROVENANCE_FIELDS,
    SPLITS,
    SYNTHETIC_LABEL,
    TASK_CONFIG,
    TASK_SOURCE_CLASS,
    make_key,
)
from cxr_dataset.synthetic_folder import IMAGES_DIR, PROVENANCE_NAME, image_path
from cxr_dataset.tables import read_table, write_table
from cxr_dataset.workers import process_pool
from generator import distributed
from generator.checkpoint import load_checkpoint, load_into
from generator.config import PRECISIONS
from generator.cyclegan import check_input_size
from generator.distributed import DistInfo, rank_slice
from generator.export import resolve_checkpoint
from generator.hub_model import to_model_range, to_uint8
from generator.networks import build_generator
from generator.precision import AUTO, autocast, resolve_precision

READ_THREADS = 4  # threads reading and decoding inputs ahead of the device (PIL and hashlib release the GIL)


@dataclass(frozen=True)
class TranslateResult:
    provenance_path: Path
    images: int
    task: str


@dataclass(frozen=True, kw_only=True)
class TranslateConfig:
    """How `translate` runs a generator; checked when made (from code or a TOML file)."""

    batch_size: int = 16  # images per forward pass
    precision: str = AUTO  # "auto" (bf16 where the device has it natively, else fp32), "bf16" or "fp32"
    split: str = "train"  # which split of the prepared folder is translated
    seed_quirk: bool = False  # the seed's output: per-image min-max rescale and a JPEG round trip
    encode_workers: int = 2  # processes encoding PNGs beside the generator
    size: int | None = None  # output size; None: the training size

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.precision not in PRECISIONS:
            raise ConfigError(f"precision must be one of {list(PRECISIONS)}, got {self.precision!r}")
        if self.split not in SPLITS:
            raise ConfigError(f"split must be one of {list(SPLITS)}, got {self.split!r}")
        check_workers(self.encode_workers, "encode_workers")


def translate(
    prepared: Path,
    checkpoint: Path | str,
    out: Path,
    cfg: TranslateConfig | None = None,
    *,
    progress: ProgressFn = no_progress,
) -> TranslateResult:
    """Translate the `cfg.split` images of the checkpoint's source class into synthetic COVID-19 images.

    `cfg.seed_quirk` reproduces the seed's output: each image min-max rescaled to 0-255 and passed through
    JPEG (quality 75), then stored as PNG like every other image. `cfg.precision` `auto` runs bf16 where the
    device has it natively, else fp32; provenance records the one used. Under `torchrun` each rank translates
    every world_size-th image and rank 0 merges the provenance. `checkpoint` is a run folder, a checkpoint
    file, an exported model folder (`cxrds export`) or ``hf://USER/REPO[@revision]``. `cfg.size` translates at
    another size than the training size (the networks are convolutional; the prepared images are resized).

    Example:
        >>> translate(Path("prepared"), Path("runs/nc"), Path("synthetic/nc"), TranslateConfig())  # doctest: +SKIP
    """
    cfg = cfg or TranslateConfig()
    checkpoint = resolve_checkpoint(checkpoint)
    if cfg.size is not None:  # against the generator's networks, before the folder is claimed
        check_input_size(load_checkpoint(checkpoint).config.model, cfg.size, what="translation")
    ddp = distributed.setup()
    precision = resolve_precision(cfg.precision, ddp.device)
    out = Path(out)
    # Rank 0 claims the folder (and seals it at the end); every rank writes its images into it.
    inputs = [prepared, checkpoint]
    claim = claimed_output(out, "synthetic", inputs, command="cxrds translate") if ddp.is_main else writing_into(out)
    with claim:
        if ddp.is_main:
            for stale in (out / IMAGES_DIR).glob(".*.tmp-*"):  # left by a killed run's image writers
                stale.unlink()
        return _translate(prepared, checkpoint, out, dataclasses.replace(cfg, precision=precision), progress, ddp)


def _translate(
    prepared: Path, checkpoint: Path, out: Path, opts: TranslateConfig, progress: ProgressFn, ddp: DistInfo
) -> TranslateResult:
    """`translate` in the claimed `out`, with `opts.precision` resolved for `ddp.device`."""
    batch_size, precision, split, seed_quirk = opts.batch_size, opts.precision, opts.split, opts.seed_quirk
    device = ddp.device
    ddp.barrier()
    ckpt = load_checkpoint(checkpoint)
    cfg, task = ckpt.config, ckpt.meta["task"]
    g_a = build_generator(cfg.model).to(device).eval()
    load_into(g_a, ckpt.tensors("nets.G_A."), f"{ckpt.tensors_path} [G_A]")
    if device.type == "cuda":
        g_a = g_a.to(memory_format=torch.channels_last)

    manifest = read_manifest(prepared)
    every = manifest.rows(label=TASK_SOURCE_CLASS[task], split=split)
    if not every:
        raise ConfigError(f"{prepared}: no {split!r} images of class {TASK_SOURCE_CLASS[task]!r} to translate")
    rows = rank_slice(every, ddp)
    size = opts.size or cfg.crop_size
    if size != cfg.crop_size:
        check_input_size(cfg.model, size, what="translation")
    # The generator's training data, by identity: `validate --real` compares it with the real data it is given.
    trained_on = ckpt.meta.get("manifest_sha256") or ""
    common = {
        "source_class": TASK_SOURCE_CLASS[task],
        "task": task,
        "split": split,
        "checkpoint_sha256": ckpt.sha256,
        "config_sha256": ckpt.meta["config_sha256"],
        "train_manifest_sha256": trained_on,
        "preset": cfg.preset,
        "code_version": __version__,
        "seed": cfg.seed,
        "precision": precision,
        "width": size,
        "height": size,
        "source_md5": "",  # only images read from an archive (the seed's zips) have one
    }
    provenance = []
    batches = [rows[start : start + batch_size] for start in range(0, len(rows), batch_size)]
    with process_pool(opts.encode_workers) as pool, ThreadPoolExecutor(READ_THREADS) as readers:
        pending: list = []
        # Inputs are read, checked and decoded by threads a few batches ahead, while the device works.
        for batch, pixels in zip(batches, _ahead(readers, lambda b: _read_inputs(manifest, b, size), batches)):
            outputs = _generate(g_a, pixels, device, precision, where=f"{ckpt.tensors_path} [G_A]")
            jobs = [
                (out, image_path(make_key(TASK_CONFIG[task], r["id"])), img, seed_quirk)
                for r, img in zip(batch, outputs)
            ]
            # PNG encoding runs in worker processes while the next batch is on the device.
            pending.append((batch, pool.map(_encode_and_write, jobs) if pool else map(_encode_and_write, jobs)))
            while len(pending) > 2 or (pending and batch is batches[-1]):
                done_batch, results = pending.pop(0)
                for row, (rel, digest) in zip(done_batch, results):
                    provenance.append(
                        {
                            **common,
                            "id": Path(rel).stem,
                            "source_dataset": row["source"],
                            "source_image_id": row["id"],
                            "source_patient_id": row["patient_id"],
                            NATIVE_PATIENT_ID: row[NATIVE_PATIENT_ID],
                            "source_license": row["license"],
                            "sha256": digest,
                            "path": rel,
                        }
                    )
                if ddp.is_main:
                    progress(f"translate {task}", min(len(provenance) * ddp.world_size, len(every)), len(every))
    # What the card's "how it was made" needs: the resolved config and how the real images were prepared.
    prepared_with = {k: manifest.meta.get(k) for k in ("split", "seed", "size", "resize", "fractions")}
    prepared_with["source_kinds"] = sorted({spec.partition("=")[0] for spec in manifest.meta.get("sources", [])})
    # The generator's target domain: the real COVID-19 images that taught it what to make (licences travel).
    targets = manifest.rows(label=SYNTHETIC_LABEL, split="train")
    meta = {
        "task": task,
        "target_sources": dict(sorted(Counter(r["source"] for r in targets).items())),
        "target_licenses": dict(sorted(Counter(r["license"] for r in targets).items())),
        "trained_on_this_manifest": trained_on == manifest.sha256,
        "checkpoint": str(ckpt.json_path),
        "manifest_sha256": manifest.sha256,
        "train_manifest_sha256": trained_on,
        "seed_quirk": seed_quirk,
        "precision": precision,
        "config": cfg.to_dict(),
        "prepared": prepared_with,
    }
    path = _write_provenance(provenance, out, ddp, meta)
    distributed.teardown(ddp)
    return TranslateResult(path, len(every), task)


def _read_inputs(manifest, batch: list[dict], size: int) -> np.ndarray:
    """A batch of prepared images, each checked against the manifest, as uint8 N×size×size."""
    return np.stack([read_gray(manifest.read_image(row), size) for row in batch])


def _ahead(pool: ThreadPoolExecutor, fn, items: list, depth: int = 2 * READ_THREADS):
    """`fn` of each item in order, computed in `pool` up to `depth` items ahead of the consumer."""
    futures: deque = deque()
    for item in items:
        futures.append(pool.submit(fn, item))
        if len(futures) > depth:
            yield futures.popleft().result()
    while futures:
        yield futures.popleft().result()


@torch.inference_mode()
def _generate(g_a: torch.nn.Module, pixels: np.ndarray, device: torch.device, precision: str, where: str) -> np.ndarray:
    """Run G_A on a batch of uint8 images; returns uint8 N×size×size. Non-finite or constant output (a
    diverged or broken generator) is refused rather than written as black images."""
    x = to_model_range(torch.from_numpy(pixels).unsqueeze(1).to(device))
    if device.type == "cuda":
        x = x.contiguous(memory_format=torch.channels_last)
    with autocast(device, precision):
        y = g_a(x).float()
    if not torch.isfinite(y).all():
        raise CheckpointError(f"{where}: the generator's output holds NaN or infinite values; the run diverged")
    flat = y.flatten(1)
    if bool((flat.amax(1) == flat.amin(1)).any()):
        raise CheckpointError(f"{where}: the generator's output is a constant image; the checkpoint is broken")
    return to_uint8(y).squeeze(1).cpu().numpy()


def _encode_and_write(job: tuple[Path, str, np.ndarray, bool]) -> tuple[str, str]:
    """Encode one output (optionally with the seed's quirk) and write it; returns (relative path, SHA-256)."""
    out, rel, image, seed_quirk = job
    if seed_quirk:
        image = seed_output_quirk(image)
    data = encode_png(image)
    atomic_write_bytes(out / rel, data)
    return rel, sha256_bytes(data)


def seed_output_quirk(image: np.ndarray) -> np.ndarray:
    """scipy.misc.imsave's behaviour in the seed: min-max rescale to 0-255, then a JPEG (quality 75) round trip."""
    lo, hi = int(image.min()), int(image.max())
    if hi > lo:
        image = np.round((image.astype(np.float64) - lo) * (255.0 / (hi - lo))).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(image, mode="L").save(buf, format="JPEG", quality=75)
    return read_gray(buf.getvalue())


def _write_provenance(rows: list[dict], out: Path, ddp: DistInfo, meta: dict) -> Path:
    """Single process: write the table. Under torchrun: each rank writes its part, rank 0 merges them."""
    final = out / PROVENANCE_NAME
    if not ddp.enabled:
        return write_table(rows, PROVENANCE_FIELDS, final, meta)
    part = out / f".provenance.rank-{ddp.rank:05d}.parquet"
    write_table(rows, PROVENANCE_FIELDS, part, meta)
    ddp.barrier()
    if ddp.is_main:
        parts = [out / f".provenance.rank-{r:05d}.parquet" for r in range(ddp.world_size)]
        merged = [row for p in parts for row in read_table(p, PROVENANCE_FIELDS)[0].to_pylist()]
        write_table(merged, PROVENANCE_FIELDS, final, {**meta, "world_size": ddp.world_size})
        for p in parts:
            p.unlink()
    ddp.barrier()
    return final
