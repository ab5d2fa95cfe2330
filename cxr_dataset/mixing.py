"""Synthetic positives mixed with real negatives, streamed at a chosen ratio: what users train on.

    from cxr_dataset.mixing import MixConfig, mixed_stream
    stream = mixed_stream("release/covid-synthetic-cxr", "prepared", MixConfig(synthetic_fraction=0.5))
    loader = torch.utils.data.DataLoader(stream, batch_size=32, num_workers=2)

Every rank yields exactly `samples_per_rank` samples per epoch (DataLoader workers share them), of which
round(n × `synthetic_fraction`) per worker are synthetic COVID-19 images drawn from the release's shards and the
rest real images of the negative classes, drawn from a prepared folder's training split or an imagefolder (its
`metadata.csv`), without replacement until each is used up. Labels are the schema's class indices (`CLASSES`:
normal 0, pneumonia 1, covid 2), as in the release. Every draw is seeded by (seed, rank, worker, epoch); call
``stream.set_epoch(e)`` before each epoch.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

import torch

from cxr_dataset.errors import ConfigError, SourceError
from cxr_dataset.options import check_fraction, check_seed
from cxr_dataset.schema import CLASSES, SYNTHETIC_LABEL

NEGATIVE_CLASSES = tuple(c for c in CLASSES if c != SYNTHETIC_LABEL)


@dataclass(frozen=True, kw_only=True)
class MixConfig:
    synthetic_fraction: float = 0.5  # share of each worker's samples that are synthetic positives
    negatives: tuple[str, ...] = NEGATIVE_CLASSES  # real classes drawn as negatives
    samples_per_rank: int = 1024  # samples each rank yields per epoch (equal steps under DDP)
    config: str = "all"  # the release config the positives come from: all, g_nc or g_pc
    seed: int = 0
    rank: int | None = None  # None: from torch.distributed or torchrun's environment
    world_size: int | None = None

    def __post_init__(self) -> None:
        check_fraction(self.synthetic_fraction, "synthetic_fraction")
        check_seed(self.seed, "seed")
        unknown = sorted(set(self.negatives) - set(NEGATIVE_CLASSES))
        if unknown or not self.negatives:
            raise ConfigError(f"negatives must be among {list(NEGATIVE_CLASSES)}, got {unknown or 'none'}")
        if self.samples_per_rank < 1:
            raise ConfigError(f"samples_per_rank must be >= 1, got {self.samples_per_rank}")


@dataclass(frozen=True)
class RealImage:
    key: str
    label: str
    path: Path
    patient_id: str
    root: Path | None = None  # an imagefolder's (its images are decoded and cropped to size); None: prepared

    def pixels(self, size: int) -> torch.Tensor:
        """uint8 1×size×size: a prepared PNG as it is, an imagefolder's image decoded and centre-cropped."""
        from cxr_dataset.streaming import decode_gray

        if self.root is None:
            return decode_gray(self.path.read_bytes())
        from cxr_dataset.imaging import to_square
        from cxr_dataset.sources.files import load_image_file

        return torch.from_numpy(to_square(load_image_file(self.path, root=self.root), size, "crop")).unsqueeze(0)


def real_negatives(real: Path | str, classes: tuple[str, ...] = NEGATIVE_CLASSES) -> list[RealImage]:
    """The training images of `classes` in a prepared folder (its manifest), or every image of them in an
    imagefolder (``metadata.csv``: file_name, label, patient_id)."""
    from cxr_dataset.manifest import MANIFEST_NAME, read_manifest

    real = Path(real)
    if (real / MANIFEST_NAME).is_file():
        manifest = read_manifest(real)
        rows = [r for r in manifest.rows(split="train") if r["label"] in classes]
        images = [RealImage(r["id"], r["label"], manifest.image_path(r), r["patient_id"]) for r in rows]
    else:
        from cxr_dataset.sources.imagefolder import ImageFolderSource

        records = [r for r in ImageFolderSource(real).records() if r.label in classes]
        images = [RealImage(r.id, r.label, Path(r.origin), r.patient_id, real) for r in records]
    if not images:
        raise SourceError(
            f"{real}: no real images of {list(classes)} to mix with (a prepared folder's training "
            "split, or an imagefolder)"
        )
    return images


class MixedStream(torch.utils.data.IterableDataset):
    """See the module docstring; built by `mixed_stream`."""

    def __init__(self, shard_urls: list[str], negatives: list[RealImage], size: int, cfg: MixConfig) -> None:
        from cxr_dataset.streaming import SharedEpoch, dist_info

        super().__init__()
        detected = dist_info()
        self.rank = detected[0] if cfg.rank is None else cfg.rank
        self.world_size = detected[1] if cfg.world_size is None else cfg.world_size
        self.shard_urls, self.negatives, self.size, self.cfg = shard_urls, negatives, size, cfg
        self.epoch = SharedEpoch()  # persistent DataLoader workers see each set_epoch too

    def set_epoch(self, epoch: int) -> None:
        self.epoch.set(epoch)

    def __len__(self) -> int:
        return self.cfg.samples_per_rank

    def __iter__(self):
        info = torch.utils.data.get_worker_info()
        worker, workers = (info.id, info.num_workers) if info else (0, 1)
        share, extra = divmod(self.cfg.samples_per_rank, workers)
        n = share + (worker < extra)
        rng = random.Random(f"{self.cfg.seed}/{self.rank}/{worker}/{self.epoch.value}")
        synthetic = round(n * self.cfg.synthetic_fraction)
        order = [True] * synthetic + [False] * (n - synthetic)
        rng.shuffle(order)
        positives, negatives = self._positives(rng), self._negatives(rng)
        for is_synthetic in order:
            yield next(positives) if is_synthetic else next(negatives)

    def _positives(self, rng: random.Random):
        """Synthetic samples for ever: a shard drawn at random, its samples in a shuffled order."""
        from cxr_dataset.shard_sources import open_shard
        from cxr_dataset.streaming import decode_sample
        from cxr_dataset.tarstream import iter_samples

        while True:
            url = rng.choice(self.shard_urls)
            with open_shard(url) as stream:
                samples = list(iter_samples(stream, url))
            rng.shuffle(samples)
            for sample in samples:
                yield decode_sample(sample) | {"synthetic": True}

    def _negatives(self, rng: random.Random):
        """Real negatives for ever: each pass a fresh shuffle, every image once per pass."""
        while True:
            for image in rng.sample(self.negatives, len(self.negatives)):
                pixels = image.pixels(self.size)
                meta = {"id": image.key, "label": image.label, "patient_id": image.patient_id}
                yield {"image": pixels, "label": CLASSES.index(image.label), "meta": meta, "key": image.key} | {
                    "synthetic": False
                }


def mixed_stream(release: Path | str, real: Path | str, cfg: MixConfig | None = None) -> MixedStream:
    """Synthetic positives of `release` (a release folder or a Hub id) mixed with real negatives of `real`."""
    from cxr_dataset.dataset_release import open_release

    cfg = cfg or MixConfig()
    urls = open_release(release).shard_urls(cfg.config)
    negatives = real_negatives(real, cfg.negatives)
    return MixedStream(urls, negatives, _checked_size(urls[0], negatives[0]), cfg)


def _checked_size(shard_url: str, negative: RealImage) -> int:
    """The synthetic images' size; `ConfigError` when prepared real images have another (no batch would stack)."""
    from cxr_dataset.shard_sources import open_shard
    from cxr_dataset.streaming import decode_sample
    from cxr_dataset.tarstream import iter_samples

    with open_shard(shard_url) as stream:
        synthetic = decode_sample(next(iter(iter_samples(stream, shard_url))))["image"].shape[-2:]
    real = negative.pixels(int(synthetic[-1])).shape[-2:]
    if tuple(synthetic) != tuple(real):
        raise ConfigError(
            f"{negative.path}: real images are {tuple(real)} and the synthetic ones {tuple(synthetic)}; prepare the "
            "real data at the release's size (cxrds prepare --size)"
        )
    return int(synthetic[-1])
