"""Explainability and quality of synthetic images, through the baseline classifiers.

* Grad-CAM (pytorch-grad-cam) heat maps on correctly classified real test images.
* The share of synthetic images that a classifier trained on real images only judges COVID-19.
* FID and KID between synthetic and real COVID-19 images, on the penultimate-layer features of that same
  real-only classifier: an extractor that works offline and knows chest X-rays, unlike an ImageNet Inception
  (whose FIDs are not comparable with these).
* Optionally the same on torchvision Inception-v3 pool features (2,048-d), from weights the user supplies as
  safetensors (`load_inception`). These are torchvision's ImageNet weights, not the TensorFlow ones of the
  original FID, so the numbers rank generators but do not match published FIDs.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from cxr_dataset.errors import ConfigError
from validation_tools.classifiers import SmallCNN, normalise, predict_proba

INCEPTION_SIZE = 299
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
INCEPTION_HOWTO = (
    "convert torchvision's weights once on a machine with network access: python -c \"import torchvision, "
    "safetensors.torch as st; st.save_file(torchvision.models.inception_v3(weights='DEFAULT').state_dict(), "
    "'inception_v3.safetensors')\""
)


def covid_probability(model: nn.Module, images: torch.Tensor) -> np.ndarray:
    return predict_proba(model, images)[:, 1]


def judged_covid_share(model: nn.Module, synthetic: torch.Tensor) -> float:
    """Share of synthetic images the real-only classifier calls COVID-19 (P ≥ 0.5)."""
    return float((covid_probability(model, synthetic) >= 0.5).mean()) if len(synthetic) else float("nan")


@torch.inference_mode()
def penultimate_features(model: nn.Module, images: torch.Tensor, batch: int = 128) -> np.ndarray:
    """The pooled features before the classifier's linear head (SmallCNN only)."""
    if not isinstance(model, SmallCNN):
        raise TypeError("features for FID/KID come from the small-cnn classifier")
    return torch.cat([model.features(normalise(b)).mean(dim=(2, 3)) for b in images.split(batch)]).double().numpy()


def load_inception(path: Path) -> nn.Module:
    """torchvision's Inception-v3 with the weights in a safetensors file, its classifier removed (2,048-d out).

    Only safetensors is read (never a pickle); the auxiliary classifier's weights, if present, are ignored.
    """
    import torchvision
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(path)
    try:
        state = load_file(path)
    except (SafetensorError, OSError, ValueError) as e:
        raise ConfigError(f"{path}: not a readable safetensors file ({e}); {INCEPTION_HOWTO}") from None
    state = {k: v for k, v in state.items() if not k.startswith("AuxLogits.")}
    net = torchvision.models.inception_v3(weights=None, aux_logits=False, init_weights=False, transform_input=True)
    try:
        net.load_state_dict(state)
    except RuntimeError as e:
        raise ConfigError(f"{path}: not torchvision Inception-v3 weights: {str(e).splitlines()[1].strip()}") from None
    net.fc = nn.Identity()
    return net.eval()


@torch.inference_mode()
def inception_features(net: nn.Module, images: torch.Tensor, batch: int = 32) -> np.ndarray:
    """Pool features (N×2,048) of uint8 N×1×H×W images, resized to 299² and shown as RGB like ImageNet."""
    device = next(net.parameters()).device
    mean = torch.tensor(IMAGENET_MEAN, device=device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=device).view(1, 3, 1, 1)
    parts = []
    for chunk in images.split(batch):
        x = chunk.to(device).float().div(255).expand(-1, 3, -1, -1)
        x = F.interpolate(x, size=(INCEPTION_SIZE, INCEPTION_SIZE), mode="bilinear", align_corners=False)
        parts.append(net((x - mean) / std).double().cpu())
    return torch.cat(parts).numpy()


def fid(a: np.ndarray, b: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to two feature sets (rows are images).

    Exact and finite also when there are fewer images than features (singular covariances); see `_trace_sqrt`.
    """
    centred_a, centred_b = a - a.mean(0), b - b.mean(0)
    trace_a = (centred_a**2).sum() / (len(a) - 1)
    trace_b = (centred_b**2).sum() / (len(b) - 1)
    mean_gap = ((a.mean(0) - b.mean(0)) ** 2).sum()
    return float(max(mean_gap + trace_a + trace_b - 2 * _trace_sqrt(centred_a, centred_b), 0.0))


def _trace_sqrt(centred_a: np.ndarray, centred_b: np.ndarray, *, route: str = "auto") -> float:
    """tr √(Σa Σb) from centred features. The non-zero eigenvalues of Σa Σb are the squared singular values
    of Ca Cbᵀ / √((na−1)(nb−1)), so the trace is that na×nb matrix's nuclear norm ("images" route: cheap when
    there are fewer images than features, as with Inception's 2,048). Otherwise ("features" route) Σ √λ of
    the symmetric PSD d×d matrix √Σa Σb √Σa, by eigendecompositions."""
    (na, d), nb = centred_a.shape, len(centred_b)
    scale = (na - 1) * (nb - 1)
    if route == "images" or (route == "auto" and min(na, nb) ** 2 * max(na, nb) < d**3):
        return float(np.linalg.svd(centred_a @ centred_b.T, compute_uv=False).sum() / np.sqrt(scale))
    cov_a, cov_b = centred_a.T @ centred_a / (na - 1), centred_b.T @ centred_b / (nb - 1)
    values, vectors = np.linalg.eigh(cov_a)
    root_a = (vectors * np.sqrt(np.clip(values, 0, None))) @ vectors.T
    return float(np.sqrt(np.clip(np.linalg.eigvalsh(root_a @ cov_b @ root_a), 0, None)).sum())


def kid(a: np.ndarray, b: np.ndarray, *, subsets: int = 20, size: int = 100, seed: int = 0) -> float:
    """Kernel inception distance: unbiased MMD² with the cubic polynomial kernel, averaged over subsets."""
    return kid_spread(a, b, subsets=subsets, size=size, seed=seed)[0]


def kid_spread(
    a: np.ndarray, b: np.ndarray, *, subsets: int = 20, size: int = 100, seed: int = 0
) -> tuple[float, float]:
    """KID's mean and standard deviation over `subsets` random subsets of min(size, n) images a side; the SD is
    NaN when both sides are smaller than `size` (every subset is then the whole set)."""
    rng = np.random.default_rng(seed)
    n = min(size, len(a), len(b))
    if n < 2:
        return float("nan"), float("nan")
    if n == len(a) == len(b):
        subsets = 1
    d = a.shape[1]
    values = []
    for _ in range(subsets):
        x, y = a[rng.choice(len(a), n, replace=False)], b[rng.choice(len(b), n, replace=False)]
        kxx, kyy, kxy = ((x @ x.T) / d + 1) ** 3, ((y @ y.T) / d + 1) ** 3, ((x @ y.T) / d + 1) ** 3
        off = (kxx.sum() - np.trace(kxx) + kyy.sum() - np.trace(kyy)) / (n * (n - 1))
        values.append(off - 2 * kxy.mean())
    return float(np.mean(values)), float(np.std(values, ddof=1)) if len(values) > 1 else float("nan")


def cam_maps(model: nn.Module, images: torch.Tensor, targets: list[int]) -> np.ndarray:
    """Grad-CAM maps (N×H×W in [0, 1]) for each image's target class, at the last convolutional block."""
    from pytorch_grad_cam import GradCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    with GradCAM(model=model, target_layers=[_last_block(model)]) as cam:
        return cam(input_tensor=normalise(images), targets=[ClassifierOutputTarget(t) for t in targets])


def _last_block(model: nn.Module) -> nn.Module:
    if isinstance(model, SmallCNN):
        return model.features[-2]  # the last ReLU, before pooling
    net = model[1]
    return {"ResNet": lambda: net.layer4[-1], "VGG": lambda: net.features[-1], "DenseNet": lambda: net.features[-1]}[
        type(net).__name__
    ]()
