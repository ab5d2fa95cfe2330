"""A `cxrds export` loaded without cxrds: the two generators as a `PyTorchModelHubMixin` model.

`cxrds export` ships this file as ``cxrds_generators.py`` and `generator/networks.py` as ``cxrds_networks.py``
beside ``config.json`` and ``model.safetensors``, so a clone of the model repository needs only torch,
safetensors and huggingface_hub::

    from cxrds_generators import CycleGANGenerators          # from the repository's files
    generators = CycleGANGenerators.from_pretrained("OWNER/NAME")  # or the export folder
    covid = generators.translate(images)                      # uint8 N×H×W in, uint8 N×H×W out

`translate` is the arithmetic `cxrds translate` uses, so both give the same bytes. Weights load from
safetensors only (never a pickle) and every tensor must match (strict).
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import torch
from huggingface_hub import PyTorchModelHubMixin
from torch import nn

try:
    from generator.networks import build_generator
except ImportError:  # inside an export, beside cxrds_networks.py
    from cxrds_networks import build_generator  # type: ignore[no-redef]


def to_model_range(images: torch.Tensor) -> torch.Tensor:
    """uint8 images (N×1×H×W) as the generators take them: float in [-1, 1]."""
    return images.float().div_(127.5).sub_(1.0)


def to_uint8(output: torch.Tensor) -> torch.Tensor:
    """A generator's output back to uint8 images."""
    return ((output.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)


class CycleGANGenerators(
    nn.Module,
    PyTorchModelHubMixin,
    library_name="cxrds",
    tags=["cyclegan", "chest-xray", "synthetic", "covid-19"],
    pipeline_tag="image-to-image",
):
    """`nets.G_A` (the task's source class → COVID-19) and `nets.G_B` (back), as `config.json` describes them."""

    def __init__(self, model: dict[str, Any], task: str, crop_size: int) -> None:
        super().__init__()
        settings = SimpleNamespace(**model)
        self.task, self.crop_size = task, crop_size
        self.nets = nn.Module()
        self.nets.G_A = build_generator(settings)
        self.nets.G_B = build_generator(settings)
        self.eval()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """G_A on images in [-1, 1] (N×C×H×W)."""
        return self.nets.G_A(x)

    @torch.inference_mode()
    def translate(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 grayscale images (N×H×W, at `crop_size`) → synthetic COVID-19 ones, uint8 N×H×W."""
        return to_uint8(self(to_model_range(images.unsqueeze(1)))).squeeze(1)

    @classmethod
    def _from_pretrained(cls, *, strict: bool = True, **kwargs: Any) -> CycleGANGenerators:
        """Every tensor must be there and match: a partial load is an error, not random weights."""
        return super()._from_pretrained(strict=True, **kwargs)

    @classmethod
    def _load_as_pickle(cls, *args: Any, **kwargs: Any) -> CycleGANGenerators:
        raise OSError("this model loads from its safetensors file only; a pickled file is never unpickled")
