"""nnU-Net's default planner's network choices, in one place: topology, widths, convs per stage, ResEnc blocks.

Strides, kernels and the padded patch come from nnU-Net's own ``get_pool_and_conv_props``
(:func:`nnunet_topology`). The widths and conv counts are constants of nnU-Net's ``ExperimentPlanner`` (and the
ResEnc planners' blocks), which set them in ``__init__``, an ``__init__`` that reads a dataset on disk; they are
written here once, under the planner attribute they copy, and tests/test_plans.py compares them with the
attributes of nnU-Net's planners built on a real dataset, so a new nnU-Net that changes them fails a test.
Everything that plans a network in this project asks this module: the plans presets
(:mod:`nnunet_filternet.plans.presets`) and
the benchmark's built-in plans (:mod:`nnunet_filternet.bench.plans`).

Axes are in nnU-Net's order (z, y, x); spacings in mm, sizes in voxels.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

from nnunet_filternet.errors import FilterNetError
from nnunet_filternet.training.networks import PLAIN_UNET

#: ``ExperimentPlanner.UNet_base_num_features``: the first stage's width.
BASE_FEATURES = 32
#: ``ExperimentPlanner.UNet_max_features_3d``: the widest 3D stage.
MAX_FEATURES_3D = 320
#: ``ExperimentPlanner.UNet_max_features_2d``: the widest 2D stage.
MAX_FEATURES_2D = 512
#: ``ExperimentPlanner.UNet_blocks_per_stage_encoder`` / ``..._decoder`` (all 2): convs per stage.
CONVS_PER_STAGE = 2
#: ``ExperimentPlanner.UNet_featuremap_min_edge_length``: the smallest edge of a bottleneck feature map.
MIN_FEATURE_MAP_EDGE = 4

#: ``network_class_name`` of nnU-Net's residual-encoder U-Net (the ResEnc planners' network).
RESENC_UNET = "dynamic_network_architectures.architectures.unet.ResidualEncoderUNet"
#: ``ResEncUNetPlanner.UNet_blocks_per_stage_encoder``: residual blocks per encoder stage (M, L and XL share them;
#: they differ in their GPU-memory target, hence in patch and batch size).
RESENC_BLOCKS_PER_STAGE: tuple[int, ...] = (1, 3, 4, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6)
#: ``ResEncUNetPlanner.UNet_blocks_per_stage_decoder`` (all 1): convs per decoder stage.
RESENC_DECODER_CONVS = 1


def nnunet_topology(spacing: Sequence[float], patch_size: Sequence[int], exact: bool = False) -> dict:
    """Strides, kernels and patch size from nnU-Net's ``get_pool_and_conv_props``.

    Args:
        spacing: voxel spacing (mm) of the configuration.
        patch_size: requested patch size in voxels.
        exact: keep ``patch_size`` unchanged: use the deepest topology for which nnU-Net needs no padding.
            Otherwise nnU-Net may enlarge the patch to a multiple of its total stride.

    Returns:
        dict with ``patch_size``, ``strides``, ``kernel_sizes``, ``n_stages`` (plain Python types).
    """
    from nnunetv2.experiment_planning.experiment_planners.network_topology import get_pool_and_conv_props

    requested = [int(i) for i in patch_size]
    for max_numpool in (999999, *range(8, 0, -1)):
        _, strides, kernels, patch, _ = get_pool_and_conv_props(
            list(spacing), requested, MIN_FEATURE_MAP_EDGE, max_numpool
        )
        if not exact or [int(i) for i in patch] == requested:
            break
    else:
        raise FilterNetError(f"no nnU-Net topology keeps the patch {requested} unpadded at spacing {list(spacing)}")
    return {
        "patch_size": [int(i) for i in patch],
        "strides": [[int(s) for s in stride] for stride in strides],
        "kernel_sizes": [[int(k) for k in kernel] for kernel in kernels],
        "n_stages": len(strides),
    }


def stage_widths(n_stages: int, base: int = BASE_FEATURES, maximum: int = MAX_FEATURES_3D) -> list[int]:
    """nnU-Net's width rule: ``base`` doubled at every stage, capped at ``maximum`` (e.g. 32, 64, ..., 320, 320)."""
    return [min(int(maximum), int(base) * 2**i) for i in range(n_stages)]


def _dotted(cls: type) -> str:
    """``module.Class``, the way plans name ops."""
    return f"{cls.__module__}.{cls.__name__}"


def plain_unet_configuration(
    patch_size: Sequence[int],
    batch_size: int,
    spacing: Sequence[float],
    data_identifier: str = "nnUNetPlans_3d_fullres",
) -> dict:
    """An nnU-Net configuration dict for a ``PlainConvUNet`` as the default planner writes it for this patch.

    The planner's own search for the patch (shrinking it until its memory estimate fits) is not run: the patch
    is given, and only padded up to what the pooling needs.

    Args:
        patch_size: requested patch in voxels (3 axes: 3d, 2 axes: 2d).
        batch_size: patches per step.
        spacing: voxel spacing in mm, same axes.
        data_identifier: the preprocessed data's folder name.

    Returns:
        The configuration dict (``patch_size``, ``batch_size``, ``spacing``, ``architecture``, ...).
    """
    from dynamic_network_architectures.building_blocks.helper import convert_dim_to_conv_op, get_matching_instancenorm

    topology = nnunet_topology(spacing, patch_size)
    n_stages = topology["n_stages"]
    conv_op = convert_dim_to_conv_op(len(spacing))
    maximum = MAX_FEATURES_3D if len(spacing) == 3 else MAX_FEATURES_2D
    return {
        "data_identifier": data_identifier,
        "preprocessor_name": "DefaultPreprocessor",
        "batch_size": int(batch_size),
        "patch_size": topology["patch_size"],
        "spacing": [float(s) for s in spacing],
        "batch_dice": False,
        "architecture": {
            "network_class_name": PLAIN_UNET,
            "arch_kwargs": {
                "n_stages": n_stages,
                "features_per_stage": stage_widths(n_stages, BASE_FEATURES, maximum),
                "conv_op": _dotted(conv_op),
                "kernel_sizes": topology["kernel_sizes"],
                "strides": topology["strides"],
                "n_conv_per_stage": [CONVS_PER_STAGE] * n_stages,
                "n_conv_per_stage_decoder": [CONVS_PER_STAGE] * (n_stages - 1),
                "conv_bias": True,
                "norm_op": _dotted(get_matching_instancenorm(conv_op)),
                "norm_op_kwargs": {"eps": 1e-5, "affine": True},
                "dropout_op": None,
                "dropout_op_kwargs": None,
                "nonlin": "torch.nn.LeakyReLU",  # spelled as nnU-Net's planner writes it
                "nonlin_kwargs": {"inplace": True},
            },
            "_kw_requires_import": ["conv_op", "norm_op", "dropout_op", "nonlin"],
        },
    }


def resenc_kwargs(plain_kwargs: dict) -> dict:
    """``ResidualEncoderUNet`` kwargs as nnU-Net's ResEnc planners write them, on a plain U-Net's topology.

    Args:
        plain_kwargs: ``PlainConvUNet`` arch_kwargs (not modified).
    """
    out = copy.deepcopy(plain_kwargs)
    del out["n_conv_per_stage"]
    n_stages = out["n_stages"]
    out["n_blocks_per_stage"] = list(RESENC_BLOCKS_PER_STAGE[:n_stages])
    out["n_conv_per_stage_decoder"] = [RESENC_DECODER_CONVS] * (n_stages - 1)
    return out
