"""Train a small classifier from the release through Hugging Face `datasets`.

    python examples/train_hf.py --release release/covid-synthetic-cxr      # a local folder
    python examples/train_hf.py --release USER/covid-synthetic-cxr          # or a Hub id

As in `train_wds_ddp.py`, the target is the source class (every synthetic image is COVID-19); the point is
the data path.
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F
from train_wds_ddp import small_cnn

from cxr_dataset import StreamConfig, open_release


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--release", required=True)
    parser.add_argument("--config", default="all")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=16)
    args = parser.parse_args()

    torch.manual_seed(0)
    ds = open_release(args.release).torch(StreamConfig(config=args.config))
    loader = torch.utils.data.DataLoader(
        ds, batch_size=args.batch_size, shuffle=True, generator=torch.Generator().manual_seed(0)
    )
    model = small_cnn()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    for epoch in range(args.epochs):
        seen, total = 0, 0.0
        for batch in loader:
            x = batch["image"].float().div(255)
            x = x.unsqueeze(1) if x.ndim == 3 else x  # datasets' torch format: N×C×H×W (N×H×W for older versions)
            y = batch["source_class"].long()
            loss = F.cross_entropy(model(x), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            seen, total = seen + len(y), total + loss.item() * len(y)
        print(f"epoch {epoch}: {seen} samples, loss {total / max(seen, 1):.4f}", flush=True)


if __name__ == "__main__":
    main()
