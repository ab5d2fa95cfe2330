"""The baselines' classifiers: the models, their input scale, prediction, and saving them without pickle."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from cxr_dataset.fileio import atomic_open

MODELS = ("small-cnn", "vgg16", "resnet50", "densenet121")
MIN_SIZE = 32  # pixels: the smallest image every model takes
# Input scales, as per-channel (mean, std) of pixels in 0..1: "centred" maps gray 0..255 to -2..2 (one channel);
# "imagenet" repeats the gray channel as RGB and uses ImageNet's statistics, as the seed's Keras models did.
NORMALISATIONS: dict[str, tuple[tuple[float, ...], tuple[float, ...]]] = {
    "centred": ((0.5,), (0.25,)),
    "imagenet": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
}


class SmallCNN(nn.Module):
    """Four conv blocks and a linear head: trains in seconds on a CPU at 64²."""

    def __init__(self, classes: int = 2) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        width = 1
        for out in (16, 32, 64, 128):
            layers += [nn.Conv2d(width, out, 3, padding=1), nn.BatchNorm2d(out), nn.ReLU(True), nn.MaxPool2d(2)]
            width = out
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(width, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x).mean(dim=(2, 3)))


def build_model(name: str, pretrained: bool = False, normalisation: str = "centred") -> nn.Module:
    """A 2-class classifier taking N×1×H×W (or N×3×H×W under "imagenet" normalisation); torchvision models see the
    gray channel repeated three times. Every head is the seed's: global average pooling and one dense layer to the
    two classes (softmax in the loss), VGG16's too (not torchvision's 4096-4096 classifier). `normalisation`
    (`NORMALISATIONS`) is kept on the model as `model.normalisation`: `predict_proba` scales inputs by it."""
    if normalisation not in NORMALISATIONS:
        raise ValueError(f"normalisation must be one of {list(NORMALISATIONS)}, got {normalisation!r}")
    if name == "small-cnn":
        if normalisation != "centred":
            raise ValueError("small-cnn takes one channel: its normalisation is 'centred'")
        model: nn.Module = SmallCNN()
    else:
        model = nn.Sequential(_GrayToRGB(), _torchvision_model(name, pretrained))
    model.normalisation = normalisation
    return model


def _torchvision_model(name: str, pretrained: bool) -> nn.Module:
    """torchvision's VGG16, ResNet50 or DenseNet121 with a global-average-pooling head to two classes; ImageNet
    weights for the convolutions when `pretrained` (torchvision downloads them once: opt-in)."""
    import torchvision

    factory = {
        "vgg16": torchvision.models.vgg16,
        "resnet50": torchvision.models.resnet50,
        "densenet121": torchvision.models.densenet121,
    }[name]
    net = factory(weights="DEFAULT" if pretrained else None)
    if name == "vgg16":  # Keras VGG16(include_top=False, pooling="avg") + Dense(2, softmax)
        net.avgpool = nn.AdaptiveAvgPool2d(1)
        net.classifier = nn.Linear(512, 2)
    elif name == "resnet50":  # already global average pooling + fc
        net.fc = nn.Linear(net.fc.in_features, 2)
    else:  # densenet121: already global average pooling + classifier
        net.classifier = nn.Linear(net.classifier.in_features, 2)
    return net


class _GrayToRGB(nn.Module):
    """N×1×H×W → N×3×H×W (three-channel inputs pass unchanged)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.expand(-1, 3, -1, -1)


def save_classifier(model: nn.Module, path: Path, meta: dict[str, Any]) -> None:
    """Weights as safetensors, everything needed to rebuild it in the file's metadata (no pickle)."""
    from safetensors.torch import save

    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    with atomic_open(path) as f:
        f.write(save(state, metadata={"cxrds": json.dumps(meta, sort_keys=True)}))


def load_classifier(path: Path) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild a classifier saved by `save_classifier`."""
    from safetensors import safe_open

    with safe_open(str(path), "pt") as f:
        meta = json.loads(f.metadata()["cxrds"])
        state = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (safe_open is not iterable)
    model = build_model(meta["model"], normalisation=meta.get("normalisation", "centred"))
    model.load_state_dict(state)
    return model.eval(), meta


@torch.inference_mode()
def predict_proba(model: nn.Module, x: torch.Tensor, *, device=None, batch: int = 128) -> np.ndarray:
    """Class probabilities (N×2, float64) of uint8 images N×1×H×W."""
    device = device or next(model.parameters()).device
    model.eval()
    with device_autocast(device):
        scale = getattr(model, "normalisation", "centred")
        parts = [F.softmax(model(normalise(b, device, scale)).float(), dim=1).cpu() for b in x.split(batch)]
    return torch.cat(parts).numpy().astype(np.float64)


def device_autocast(device: torch.device):
    """bf16 on CUDA (the torchvision models are slow in fp32); full precision on CPU, where these nets are small."""
    return torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else contextlib.nullcontext()


def normalise(x: torch.Tensor, device=None, normalisation: str = "centred") -> torch.Tensor:
    """uint8 N×1×H×W → the classifiers' input scale (`NORMALISATIONS`): N×1×H×W centred, N×3×H×W for ImageNet."""
    mean, std = (torch.tensor(v, device=device).view(1, -1, 1, 1) for v in NORMALISATIONS[normalisation])
    x = x.to(device).float() / 255
    return (x.expand(-1, len(mean.flatten()), -1, -1) - mean) / std


def image_batch(pixels: np.ndarray) -> torch.Tensor:
    """N×H×W uint8 → N×1×H×W tensor."""
    return torch.from_numpy(pixels).unsqueeze(1)
