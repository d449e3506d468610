"""FilterNet from nnU-Net plans: zeta rule, widths, parameter budget, shapes, feature-map size, plans round trip."""

from __future__ import annotations

import json

import pytest
import torch
from nnunetv2.utilities.get_network_from_plans import get_network_from_plans
from torch import nn

from nnunet_filternet.errors import FilterNetError
from nnunet_filternet.network import count_parameters
from nnunet_filternet.network.filternet import FilterNet
from nnunet_filternet.network.from_plans import derive_block_b_kernel_sizes, filternet_arch_kwargs

#: A realistic nnU-Net 3d_fullres configuration of thick-slice data (as in nnUNetPlans.json, ops as strings).
PLANS_3D = {
    "n_stages": 6,
    "features_per_stage": [32, 64, 128, 256, 320, 320],
    "conv_op": "torch.nn.modules.conv.Conv3d",
    "kernel_sizes": [[1, 3, 3], [1, 3, 3], [3, 3, 3], [3, 3, 3], [3, 3, 3], [3, 3, 3]],
    "strides": [[1, 1, 1], [1, 2, 2], [1, 2, 2], [2, 2, 2], [2, 2, 2], [1, 2, 2]],
    "n_conv_per_stage": [2, 2, 2, 2, 2, 2],
    "n_conv_per_stage_decoder": [2, 2, 2, 2, 2],
    "conv_bias": True,
    "norm_op": "torch.nn.modules.instancenorm.InstanceNorm3d",
    "norm_op_kwargs": {"eps": 1e-05, "affine": True},
    "dropout_op": None,
    "dropout_op_kwargs": None,
    "nonlin": "torch.nn.LeakyReLU",
    "nonlin_kwargs": {"inplace": True},
}
#: A realistic nnU-Net 2d configuration.
PLANS_2D = {
    **PLANS_3D,
    "n_stages": 7,
    "features_per_stage": [32, 64, 128, 256, 512, 512, 512],
    "conv_op": "torch.nn.modules.conv.Conv2d",
    "kernel_sizes": [[3, 3]] * 7,
    "strides": [[1, 1]] + [[2, 2]] * 6,
    "n_conv_per_stage": [2] * 7,
    "n_conv_per_stage_decoder": [2] * 6,
    "norm_op": "torch.nn.modules.instancenorm.InstanceNorm2d",
}
REQ_IMPORT = ("conv_op", "norm_op", "dropout_op", "nonlin")
FILTERNET = "nnunet_filternet.network.filternet.FilterNet"
PLAIN_UNET = "dynamic_network_architectures.architectures.unet.PlainConvUNet"


def build(class_name: str, arch_kwargs: dict, deep_supervision: bool = False, num_classes: int = 6) -> nn.Module:
    """Build a network exactly as nnU-Net's trainers do (strings for ops, He init)."""
    return get_network_from_plans(class_name, arch_kwargs, REQ_IMPORT, 1, num_classes, True, deep_supervision)


def tiny(plans: dict, features: list[int]) -> dict:
    """The same plans with small widths and fewer stages, for CPU forward passes."""
    n = len(features)
    return {
        **plans,
        "n_stages": n,
        "features_per_stage": features,
        "kernel_sizes": plans["kernel_sizes"][:n],
        "strides": plans["strides"][:n],
        "n_conv_per_stage": plans["n_conv_per_stage"][:n],
        "n_conv_per_stage_decoder": plans["n_conv_per_stage_decoder"][: n - 1],
    }


def test_zeta_rule_isotropic_and_anisotropic():
    isotropic = derive_block_b_kernel_sizes([[3, 3, 3]] * 5)
    assert isotropic == [[7, 7, 7], [5, 5, 5], [3, 3, 3], None, None]  # the paper's setting
    anisotropic = derive_block_b_kernel_sizes(PLANS_3D["kernel_sizes"])
    assert anisotropic == [[1, 7, 7], [1, 5, 5], [3, 3, 3], None, None, None]
    assert derive_block_b_kernel_sizes([[3, 3]] * 2) == [[7, 7], [5, 5]]
    with pytest.raises(FilterNetError, match="odd positive"):
        derive_block_b_kernel_sizes([[3, 3]], in_plane_zeta=(6,))


def test_filternet_arch_kwargs_are_stored_in_plans_and_build_filternet():
    kwargs = filternet_arch_kwargs(PLANS_3D, spacing=(7.0, 0.7, 0.7))
    assert "block_b_kernel_sizes" not in PLANS_3D  # input untouched
    stored = json.loads(json.dumps(kwargs))  # what nnUNetPlans.json keeps
    assert stored["block_b_kernel_sizes"] == [[1, 7, 7], [1, 5, 5], [3, 3, 3], None, None, None]
    with torch.device("meta"):
        network = build(FILTERNET, stored)
    assert isinstance(network, FilterNet)
    zeta_convs = [stage.convs[1 if s else 0].conv for s, stage in enumerate(network.encoder.stages[:3])]
    assert [tuple(c.kernel_size) for c in zeta_convs] == [(1, 7, 7), (1, 5, 5), (3, 3, 3)]
    assert network.encoder.output_channels == [32, 32, 64, 128, 160, 160]  # halved below full resolution
    assert len(network.encoder.stages[3].convs) == 2  # deeper stages: the residual block only
    with pytest.raises(FilterNetError, match="spacing with 3 entries"):
        filternet_arch_kwargs(PLANS_3D, spacing=(0.7, 0.7))
    with pytest.raises(FilterNetError, match="missing keys"):
        filternet_arch_kwargs({"n_stages": 2})


@pytest.mark.parametrize("plans", [PLANS_3D, PLANS_2D], ids=["3d_fullres", "2d"])
def test_fewer_parameters_than_plain_unet(plans):
    with torch.device("meta"):
        filternet = build(FILTERNET, filternet_arch_kwargs(plans))
        plain = build(PLAIN_UNET, plans)
    assert count_parameters(filternet) < 0.5 * count_parameters(plain)
    with torch.device("meta"):  # without halving, the extra convs and projections make it larger
        full_width = build(FILTERNET, {**filternet_arch_kwargs(plans), "halve_downsampled_features": False})
    assert count_parameters(full_width) > count_parameters(plain)


@pytest.mark.parametrize(
    ("plans", "features", "shape"),
    [(PLANS_3D, [4, 8, 8, 16], (4, 32, 32)), (PLANS_2D, [4, 8, 8], (24, 20))],
    ids=["3d", "2d"],
)
def test_forward_shapes_with_and_without_deep_supervision(plans, features, shape):
    torch.manual_seed(0)
    arch = filternet_arch_kwargs(tiny(plans, features))
    network = build(FILTERNET, arch, deep_supervision=True, num_classes=3)
    x = torch.rand(2, 1, *shape)
    outputs = network(x)
    assert isinstance(outputs, list) and len(outputs) == len(features) - 1
    expected, size = [], list(shape)
    for stride in arch["strides"][:-1]:
        size = [s // t for s, t in zip(size, stride)]
        expected.append((2, 3, *size))
    assert [tuple(o.shape) for o in outputs] == expected
    network.decoder.deep_supervision = False  # what nnU-Net's set_deep_supervision_enabled does
    single = network(x)
    assert isinstance(single, torch.Tensor) and single.shape == (2, 3, *shape)
    torch.testing.assert_close(single, outputs[0])


def conv_outputs(network: nn.Module, x: torch.Tensor) -> int:
    """Elements written by every conv / transposed conv in one forward pass of ``x``."""
    total = 0

    def hook(module, inputs, output):
        nonlocal total
        total += output.numel()

    conv_types = (nn.Conv2d, nn.Conv3d, nn.ConvTranspose2d, nn.ConvTranspose3d)
    handles = [m.register_forward_hook(hook) for m in network.modules() if isinstance(m, conv_types)]
    with torch.no_grad():
        network(x)
    for handle in handles:
        handle.remove()
    return total


@pytest.mark.parametrize("deep_supervision", [False, True])
def test_conv_feature_map_size_counts_every_conv_output(deep_supervision):
    arch = filternet_arch_kwargs(tiny(PLANS_3D, [4, 8, 8, 16]))
    network = build(FILTERNET, arch, deep_supervision=deep_supervision).eval()
    sizes = [network.compute_conv_feature_map_size(s) for s in ((4, 16, 16), (4, 32, 32), (8, 32, 32))]
    assert 0 < sizes[0] < sizes[1] < sizes[2]
    assert sizes[1] == conv_outputs(network, torch.rand(1, 1, 4, 32, 32))
    with pytest.raises(FilterNetError, match="spatial input size only"):
        network.compute_conv_feature_map_size((1, 1, 4, 32, 32))


def test_bad_block_b_kernel_sizes_raise():
    arch = {**filternet_arch_kwargs(tiny(PLANS_2D, [4, 8])), "block_b_kernel_sizes": [[4, 4], None]}
    with pytest.raises(FilterNetError, match=r"block_b_kernel_sizes\[0\]"):
        build(FILTERNET, arch)
    with pytest.raises(FilterNetError, match="expected 2 entries"):
        build(FILTERNET, {**arch, "block_b_kernel_sizes": [[7, 7]]})
