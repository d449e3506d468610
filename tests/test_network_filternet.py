"""FilterNet from nnU-Net plans: zeta rule, widths, residual, parameter budget, shapes, feature-map size, plans."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F
from nnunetv2.utilities.get_network_from_plans import get_network_from_plans
from torch import nn

from nnunet_filternet.errors import FilterNetError
from nnunet_filternet.network import count_parameters
from nnunet_filternet.network.block_b import BlockBStage
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
    assert stored["halve_downsampled_features"] is True and "halve_decoder_features" not in stored
    assert len(network.encoder.stages[3].convs) == 2  # deeper stages: the residual block only
    with pytest.raises(FilterNetError, match="spacing with 3 entries"):
        filternet_arch_kwargs(PLANS_3D, spacing=(0.7, 0.7))
    with pytest.raises(FilterNetError, match="missing keys"):
        filternet_arch_kwargs({"n_stages": 2})


def conv_out_channels(module: nn.Module) -> set[int]:
    """Output widths of every (transposed) conv inside ``module``."""
    conv_types = (nn.Conv2d, nn.Conv3d, nn.ConvTranspose2d, nn.ConvTranspose3d)
    return {m.out_channels for m in module.modules() if isinstance(m, conv_types)}


def decoder_shapes(network: nn.Module) -> dict[str, tuple[int, ...]]:
    """Parameter names and shapes of a U-Net's decoder (without the encoder it holds a reference to)."""
    return {k: tuple(v.shape) for k, v in network.decoder.state_dict().items() if not k.startswith("encoder.")}


def convs_by_kernel(network: nn.Module) -> tuple[int, int, int]:
    """(convs with a kernel > 1, 1x1 convs outside the segmentation heads, segmentation heads) of a network."""
    heads = {id(m) for m in network.decoder.seg_layers}
    convs = [m for m in network.modules() if isinstance(m, (nn.Conv2d, nn.Conv3d))]
    spatial = sum(max(m.kernel_size) > 1 for m in convs)
    pointwise = sum(max(m.kernel_size) == 1 and id(m) not in heads for m in convs)
    return spatial, pointwise, len(heads)


@pytest.mark.parametrize("plans", [PLANS_3D, PLANS_2D], ids=["3d_fullres", "2d"])
def test_no_convolution_that_the_papers_decoder_lacks(plans):
    """FilterNet's convs are the U-Net's plus one zeta conv per Block B stage that has one, and nothing else."""
    kwargs = filternet_arch_kwargs(plans)
    with torch.device("meta"):
        filternet = build(FILTERNET, kwargs, deep_supervision=True)
        plain = build(PLAIN_UNET, plans, deep_supervision=True)
    n_zeta = sum(z is not None for z in kwargs["block_b_kernel_sizes"])
    spatial, pointwise, heads = convs_by_kernel(plain)
    assert pointwise == 0
    assert convs_by_kernel(filternet) == (spatial + n_zeta, 0, heads)  # no 1x1 widening, no residual projection
    transposed = (nn.ConvTranspose2d, nn.ConvTranspose3d)
    count = [sum(isinstance(m, transposed) for m in n.modules()) for n in (filternet, plain)]
    assert count[0] == count[1] == plans["n_stages"] - 1


@pytest.mark.parametrize(
    ("plans", "widths"),
    [(PLANS_3D, [6, 10, 14, 22]), (PLANS_2D, [8, 12, 20]), (PLANS_3D, [32, 64, 128, 256, 320, 320])],
    ids=["3d_irregular", "2d_irregular", "3d_fullres"],
)
def test_decoder_widths_follow_the_plans_and_take_the_skips_as_they_are(plans, widths):
    """D_A at the plans' widths: up-sample to w_s, concatenate the Block B skip (e_s channels), convs to w_s."""
    plans = tiny(plans, widths)
    half = [widths[0]] + [w // 2 for w in widths[1:]]
    kwargs = filternet_arch_kwargs(plans)
    with torch.device("meta"):
        filternet = build(FILTERNET, kwargs, deep_supervision=True)
        plain = build(PLAIN_UNET, plans, deep_supervision=True)
    for s, stage in enumerate(filternet.encoder.stages):  # Block B: zeta conv and plans convs alike
        assert conv_out_channels(stage) == {half[s]}, f"encoder stage {s}"
    decoder = filternet.decoder
    scales = range(len(widths) - 2, -1, -1)  # decoder stages, deepest first
    below = [half[-1], *widths[-2:0:-1]]  # what each transposed conv reads: the narrow bottleneck, then D_A
    transposed = [(t.in_channels, t.out_channels) for t in decoder.transpconvs]
    assert transposed == [(b, widths[s]) for b, s in zip(below, scales)]
    first = [(st.convs[0].conv.in_channels, st.convs[0].conv.out_channels) for st in decoder.stages]
    assert first == [(widths[s] + half[s], widths[s]) for s in scales]
    assert [conv_out_channels(st) for st in decoder.stages] == [{widths[s]} for s in scales]
    assert [h.in_channels for h in decoder.seg_layers] == [widths[s] for s in scales]
    # every other decoder parameter is the stock U-Net's, shape for shape
    narrow = {
        f"stages.{i}.convs.0.{part}.weight"
        for i, s in enumerate(scales)
        if half[s] != widths[s]
        for part in ("conv", "all_modules.0")
    }
    ours, stock = decoder_shapes(filternet), decoder_shapes(plain)
    assert ours.keys() == stock.keys()
    assert {k for k in ours if ours[k] != stock[k]} == narrow | {"transpconvs.0.weight"}
    assert filternet.decoder.encoder.output_channels == [*widths[:-1], half[-1]]  # what UNetDecoder's sizes read


def test_plans_of_earlier_versions_build_or_say_why_not():
    """``halve_decoder_features: false`` (the decoder at the plans' widths) still builds; true is named."""
    from nnunet_filternet.training.networks import arch_kwargs_for

    kwargs = {**filternet_arch_kwargs(tiny(PLANS_2D, [4, 8])), "halve_decoder_features": False}
    built = arch_kwargs_for(FILTERNET, FILTERNET, kwargs, (1.0, 1.0))
    assert "halve_decoder_features" not in built and "halve_decoder_features" in kwargs  # input untouched
    with torch.device("meta"):
        assert isinstance(build(FILTERNET, built), FilterNet)
    with pytest.raises(FilterNetError, match="halve_decoder_features: true"):
        arch_kwargs_for(FILTERNET, FILTERNET, {**kwargs, "halve_decoder_features": True}, (1.0, 1.0))


@pytest.mark.parametrize("plans", [PLANS_3D, PLANS_2D], ids=["3d_fullres", "2d"])
def test_parameter_budget_against_plain_unet(plans):
    """Paper, Table II: 1.44 M / 1.97 M = 0.73x; here 0.57x (3d_fullres) and 0.59x (2d), docs/architecture.md."""
    kwargs = filternet_arch_kwargs(plans)
    with torch.device("meta"):
        plain = count_parameters(build(PLAIN_UNET, plans))
        filternet = count_parameters(build(FILTERNET, kwargs))
        full_width = count_parameters(build(FILTERNET, {**kwargs, "halve_downsampled_features": False}))
    assert 0.5 < filternet / plain < 0.65
    assert full_width > plain  # without halving, the zeta convs make it larger


def silence(module: nn.Module) -> None:
    """Zero the weights and biases of every conv in ``module`` (its output becomes 0, also after a norm)."""
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, (nn.Conv2d, nn.Conv3d)):
                m.weight.zero_()
                if m.bias is not None:
                    m.bias.zero_()


def block_b_stage(
    input_channels: int, output_channels: int, stride: list[int], n_convs: int = 2, zeta: list[int] | None = (1, 5, 5)
) -> BlockBStage:
    return BlockBStage(
        conv_op=nn.Conv3d,
        input_channels=input_channels,
        output_channels=output_channels,
        kernel_size=[1, 3, 3],
        stride=stride,
        n_convs=n_convs,
        block_b_kernel_size=None if zeta is None else list(zeta),
        conv_bias=True,
        norm_op=nn.InstanceNorm3d,
        norm_op_kwargs={"eps": 1e-5, "affine": True},
        nonlin=nn.LeakyReLU,
        nonlin_kwargs={"negative_slope": 0.01},
    )


def pointwise_convs(module: nn.Module) -> int:
    return sum(isinstance(m, nn.Conv3d) and max(m.kernel_size) == 1 for m in module.modules())


@pytest.mark.parametrize(
    ("input_channels", "output_channels", "stride", "zeta"),
    [(1, 4, [1, 1, 1], (1, 7, 7)), (4, 6, [1, 2, 2], (1, 5, 5)), (4, 6, [2, 2, 2], None), (4, 4, [1, 2, 2], None)],
    ids=["stage0_zeta_first", "strided_zeta_second", "strided_no_zeta", "strided_same_width"],
)
def test_block_b_identity_spans_the_convs_after_the_first(input_channels, output_channels, stride, zeta):
    """Paper: "a short skip connection of addition to achieve identity mapping". The first conv changes the width
    (and resolution); the identity adds its output h to the rest: silence the rest and the stage gives nonlin(h)."""
    torch.manual_seed(0)
    x = torch.randn(2, input_channels, 3, 9, 9)
    stage = block_b_stage(input_channels, output_channels, stride, zeta=zeta)
    assert stage.residual_from == 1 and isinstance(stage.skip, nn.Identity) and pointwise_convs(stage) == 0
    silence(stage.convs[1:])
    with torch.no_grad():
        h = stage.convs[0](x)
        torch.testing.assert_close(stage(x), F.leaky_relu(h, 0.01))  # identity; nonlin after the addition
        assert h.abs().max() > 0.1


def test_block_b_identity_spans_a_stage_that_keeps_the_shape():
    torch.manual_seed(0)
    x = torch.randn(2, 4, 3, 9, 9)
    same = block_b_stage(4, 4, [1, 1, 1])
    assert same.residual_from == 0 and isinstance(same.skip, nn.Identity)
    silence(same.convs)
    torch.testing.assert_close(same(x), F.leaky_relu(x, 0.01))


def test_block_b_projects_only_a_single_conv_that_changes_the_shape():
    """Nothing left to span: the skip spans the stage, ResNet-D's pool + 1x1 conv + norm (``BasicBlockD``)."""
    torch.manual_seed(0)
    x = torch.randn(2, 4, 3, 9, 9)
    down = block_b_stage(4, 6, [1, 2, 2], n_convs=1, zeta=None)
    assert down.residual_from == 0 and pointwise_convs(down) == 1
    silence(down.convs)
    projection = down.skip[-1]
    with torch.no_grad():
        projection.norm.weight.uniform_(0.5, 1.5)
        projection.norm.bias.uniform_(-0.5, 0.5)
        pooled = F.avg_pool3d(x, (1, 2, 2), (1, 2, 2), ceil_mode=True)  # 9 -> 5, as the strided conv
        expected = F.instance_norm(
            F.conv3d(pooled, projection.conv.weight), weight=projection.norm.weight, bias=projection.norm.bias
        )
        torch.testing.assert_close(down(x), F.leaky_relu(expected, 0.01))
    assert down.compute_conv_feature_map_size((4, 16, 16)) == 2 * 6 * 4 * 8 * 8  # conv + projection


def test_the_image_reaches_the_output_through_the_identities():
    """Silence every conv inside the Block B identities: the first convs and the identities carry the image."""
    torch.manual_seed(0)
    network = build(FILTERNET, filternet_arch_kwargs(tiny(PLANS_3D, [4, 8, 8, 16])), num_classes=3).eval()
    for stage in network.encoder.stages:
        silence(stage.convs[stage.residual_from :])
    with torch.no_grad():
        outputs = [network(torch.rand(1, 1, 4, 32, 32)) for _ in range(2)]
    assert (outputs[0] - outputs[1]).abs().max() > 1e-3


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


def test_conv_feature_map_size_in_2d_with_irregular_widths():
    """The decoder's transposed convs write the plans' widths, not the narrower skips' (``BlockADecoder``'s view)."""
    network = build(FILTERNET, filternet_arch_kwargs(tiny(PLANS_2D, [6, 10, 14])), deep_supervision=True).eval()
    assert network.compute_conv_feature_map_size((24, 20)) == conv_outputs(network, torch.rand(1, 1, 24, 20))


def test_bad_block_b_kernel_sizes_raise():
    arch = {**filternet_arch_kwargs(tiny(PLANS_2D, [4, 8])), "block_b_kernel_sizes": [[4, 4], None]}
    with pytest.raises(FilterNetError, match=r"block_b_kernel_sizes\[0\]"):
        build(FILTERNET, arch)
    with pytest.raises(FilterNetError, match="expected 2 entries"):
        build(FILTERNET, {**arch, "block_b_kernel_sizes": [[7, 7]]})
