"""Receptive-field gain of Block B: the formula (+22 in-plane) and the gain measured on the built encoders."""

from __future__ import annotations

import pytest
import torch
from dynamic_network_architectures.building_blocks.plain_conv_encoder import PlainConvEncoder
from torch import nn

from nnunet_filternet.network.encoder import BlockBEncoder
from nnunet_filternet.network.from_plans import derive_block_b_kernel_sizes
from nnunet_filternet.network.receptive_field import receptive_field_gain


def test_gain_is_22_in_plane_with_nnunet_strides():
    isotropic = derive_block_b_kernel_sizes([[3, 3, 3]] * 4)
    assert receptive_field_gain(isotropic, [[1, 1, 1], [2, 2, 2], [2, 2, 2], [2, 2, 2]]) == (22, 22, 22)
    anisotropic = derive_block_b_kernel_sizes([[1, 3, 3], [1, 3, 3], [3, 3, 3], [3, 3, 3]])
    strides = [[1, 1, 1], [1, 2, 2], [1, 2, 2], [2, 2, 2]]
    assert receptive_field_gain(anisotropic, strides) == (2, 22, 22)  # z: only the 3x3x3 zeta at stage 2


def measured_extent(encoder: nn.Module, shape: tuple[int, ...]) -> list[int]:
    """Width, per axis, of the input region that influences the centre voxel of the encoder's last output."""
    x = torch.rand(1, 1, *shape, dtype=torch.float64, requires_grad=True)
    out = encoder(x)
    out[(0, 0, *(s // 2 for s in out.shape[2:]))].backward()
    support = x.grad[0, 0] != 0
    extent = []
    for axis in range(len(shape)):
        other = tuple(a for a in range(len(shape)) if a != axis)
        hit = support.any(dim=other).nonzero()[:, 0]
        assert hit.min() > 0 and hit.max() < shape[axis] - 1  # not clipped by the image border
        extent.append(int(hit.max() - hit.min() + 1))
    return extent


@pytest.mark.parametrize(
    ("kernels", "strides", "shape"),
    [
        ([[3, 3]] * 3, [[1, 1], [2, 2], [2, 2]], (64, 64)),
        ([[1, 3, 3], [1, 3, 3], [3, 3, 3]], [[1, 1, 1], [1, 2, 2], [1, 2, 2]], (9, 64, 64)),
    ],
    ids=["2d", "3d-anisotropic"],
)
def test_measured_gain_over_the_plain_encoder_equals_the_formula(kernels, strides, shape):
    torch.manual_seed(0)
    conv_op = nn.Conv2d if len(shape) == 2 else nn.Conv3d
    common = {
        "input_channels": 1,
        "n_stages": 3,
        "features_per_stage": [2, 2, 2],
        "conv_op": conv_op,
        "kernel_sizes": kernels,
        "strides": strides,
        "n_conv_per_stage": 2,
        "nonlin": nn.LeakyReLU,  # no norm: instance norm would spread every voxel over the whole image
        "return_skips": False,
    }
    zeta = derive_block_b_kernel_sizes(kernels)
    block_b = BlockBEncoder(block_b_kernel_sizes=zeta, **common).double()
    plain = PlainConvEncoder(**common).double()
    gain = [b - p for b, p in zip(measured_extent(block_b, shape), measured_extent(plain, shape))]
    assert tuple(gain) == receptive_field_gain(zeta, strides)
