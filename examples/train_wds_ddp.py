"""Train a small classifier from a release's WebDataset shards, with DDP under torchrun.

    torchrun --standalone --nproc-per-node 2 examples/train_wds_ddp.py --release release/covid-synthetic-cxr
    python examples/train_wds_ddp.py --release release/covid-synthetic-cxr        # one process

The target here is the source class (normal- vs pneumonia-derived), since every synthetic image is COVID-19:
the point is the data path. In real use, mix these shards with real negatives. Every rank streams the same
number of samples per epoch (resampled shards), so DDP never waits on a rank that ran out. With
`--exact-epochs` every sample is read once an epoch instead, by index through the wids shard index and
`ExactEpochSampler` (equal counts per rank too).
"""

from __future__ import annotations

import argparse
import os

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from cxr_dataset import ExactEpochSampler, StreamConfig, open_release
from cxr_dataset.streaming import collate


def small_cnn(classes: int = 2) -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, stride=2, padding=1),
        nn.ReLU(),
        nn.Conv2d(16, 32, 3, stride=2, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(32, classes),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--release", required=True)
    parser.add_argument("--config", default="all")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--samples-per-rank", type=int, default=64)
    parser.add_argument("--num-workers", type=int, default=2)
    parser.add_argument("--exact-epochs", action="store_true", help="every sample once an epoch (by index)")
    args = parser.parse_args()

    ddp = int(os.environ.get("RANK", -1)) != -1
    if ddp:
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    rank = dist.get_rank() if ddp else 0
    device = torch.device(f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}" if torch.cuda.is_available() else "cpu")
    torch.manual_seed(0)

    release = open_release(args.release)
    if args.exact_epochs:
        dataset = release.random_access(args.config)
        epochs = sampler = ExactEpochSampler(dataset, seed=0)
        loader_options = {"batch_size": args.batch_size, "sampler": sampler, "collate_fn": collate}
    else:
        options = StreamConfig(
            config=args.config,
            batch_size=args.batch_size,
            resampled=True,
            samples_per_rank=args.samples_per_rank,
            num_workers=args.num_workers,
            seed=0,
        )
        dataset = epochs = release.webdataset(options)
        loader_options = {"batch_size": None}
    loader = torch.utils.data.DataLoader(
        dataset, num_workers=args.num_workers, persistent_workers=args.num_workers > 0, **loader_options
    )
    model = small_cnn().to(device)
    if ddp:
        model = nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)

    for epoch in range(args.epochs):
        epochs.set_epoch(epoch)  # reshuffles, as DistributedSampler.set_epoch does
        seen, total = 0, 0.0
        for batch in loader:
            x = batch["image"].to(device).float().div_(255)
            y = torch.tensor([m["source_class"] == "pneumonia" for m in batch["meta"]], dtype=torch.long, device=device)
            loss = F.cross_entropy(model(x), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            seen, total = seen + len(y), total + loss.item() * len(y)
        print(f"rank {rank} epoch {epoch}: {seen} samples, loss {total / max(seen, 1):.4f}", flush=True)
    if ddp:
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
