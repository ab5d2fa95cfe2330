"""The seed's classifiers as its Keras notebooks built them: global average pooling and one dense layer to two
classes, inputs scaled by ImageNet's statistics under the seed protocol. Forward passes at 32² only."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from validation_tools.baselines import BaselinesConfig, input_normalisation
from validation_tools.classifiers import build_model, normalise, predict_proba

IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


@pytest.mark.parametrize(("name", "features"), [("vgg16", 512), ("resnet50", 2048), ("densenet121", 1024)])
def test_torchvision_heads_are_global_average_pooling_and_one_dense_layer(name, features):
    torch.manual_seed(0)
    model = build_model(name)
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(features, 2)]  # no 4096-4096 classifier
    pools = [m for m in model.modules() if isinstance(m, nn.AdaptiveAvgPool2d)]
    assert name == "densenet121" or [p.output_size for p in pools] in ([1], [(1, 1)])  # densenet pools in forward
    with torch.inference_mode():
        assert model.eval()(torch.zeros(2, 1, 32, 32)).shape == (2, 2)


def test_normalisation_constants_centred_and_imagenet():
    x = torch.tensor([0, 51, 255], dtype=torch.uint8).view(3, 1, 1, 1)
    centred = normalise(x)
    assert centred.shape == (3, 1, 1, 1)
    assert centred.flatten().tolist() == pytest.approx([(v / 255 - 0.5) / 0.25 for v in (0, 51, 255)])
    imagenet = normalise(x, normalisation="imagenet")
    assert imagenet.shape == (3, 3, 1, 1)
    for i, v in enumerate((0, 51, 255)):
        expected = [(v / 255 - m) / s for m, s in zip(IMAGENET_MEAN, IMAGENET_STD, strict=True)]
        assert imagenet[i].flatten().tolist() == pytest.approx(expected, rel=1e-6)


def test_seed_protocol_scales_the_seed_models_by_imagenet_and_predictions_follow_the_model():
    seed = BaselinesConfig.for_protocol("seed", pretrained=False)
    assert {m: input_normalisation(m, seed) for m in seed.models} == dict.fromkeys(seed.models, "imagenet")
    assert input_normalisation("small-cnn", seed) == "centred"  # one gray channel; not one of the seed's models
    assert input_normalisation("vgg16", BaselinesConfig(models=("vgg16",))) == "centred"
    torch.manual_seed(0)
    model = build_model("vgg16", normalisation="imagenet").eval()
    x = torch.randint(0, 256, (2, 1, 32, 32), dtype=torch.uint8)
    with torch.inference_mode():
        expected = torch.softmax(model(normalise(x, normalisation="imagenet")), dim=1)
        centred = torch.softmax(model(normalise(x)), dim=1)
    assert predict_proba(model, x) == pytest.approx(expected.double().numpy(), abs=1e-5)
    assert not torch.allclose(expected, centred)
