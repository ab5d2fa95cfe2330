import pytest
import torch

from generator.config import ModelConfig
from generator.networks import (
    PatchDiscriminator,
    ResnetGenerator,
    UnetGenerator,
    build_generator,
    count_parameters,
)


def test_networks_parameter_counts_match_the_published_figures():
    assert count_parameters(ResnetGenerator(3, 64, 9)) == 11_378_179  # reference resnet_9blocks
    assert count_parameters(UnetGenerator(3, 32, "layer")) == 1_545_425  # the seed's Keras U-Net
    assert count_parameters(PatchDiscriminator(3, 64, 3)) == 2_764_737  # reference n_layers 3


@pytest.mark.parametrize(
    ("net", "shape"),
    [
        (UnetGenerator(1, 8), (2, 1, 64, 64)),
        (ResnetGenerator(1, 8, 2), (2, 1, 64, 64)),
        (PatchDiscriminator(1, 8, 3), (2, 1, 6, 6)),  # reference: 30×30 at 256²
        (PatchDiscriminator(1, 8, 3, "layer", final_stride=2), (2, 1, 4, 4)),  # the seed: 16×16 at 256²
    ],
)
def test_networks_output_shapes_on_one_channel(net, shape):
    assert net(torch.randn(2, 1, 64, 64)).shape == shape


def test_networks_init_is_seeded_by_the_generator_passed():
    cfg = ModelConfig(ngf=8, n_blocks=1)
    a = build_generator(cfg, torch.Generator().manual_seed(1)).state_dict()
    b = build_generator(cfg, torch.Generator().manual_seed(1)).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
