"""The Block B encoder E_B: one ``BlockBStage`` per resolution, returning the skips for the decoder.

The paper's FilterNet is Y = D_A(E_B(I)): Block B stages at half the U-Net's width below full resolution, and
the U-Net's own decoder D_A (Block A, the plans' widths). The skips leave the encoder at the stages' own widths
(``output_channels``); ``decoder.BlockADecoder`` concatenates them as they are.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from dynamic_network_architectures.building_blocks.helper import maybe_convert_scalar_to_list
from torch import nn

from nnunet_filternet.errors import FilterNetError
from nnunet_filternet.network.block_b import BlockBStage


def per_stage(name: str, value, n_stages: int) -> list:
    """Broadcast an int to one entry per stage and check the length of a list (message names ``name``)."""
    if isinstance(value, int):
        return [value] * n_stages
    value = list(value)
    if len(value) != n_stages:
        raise FilterNetError(f"{name}: expected {n_stages} entries (one per stage, n_stages), found {len(value)}")
    return value


def block_b_features(features_per_stage: Sequence[int], halve_downsampled: bool = True) -> list[int]:
    """Block B widths: stage 0 keeps the plans' width, down-sampled stages get half of it (paper).

    Args:
        features_per_stage: the plans' widths per stage.
        halve_downsampled: False keeps every plans width.

    Returns:
        Width per stage, e.g. [32, 64, 128, 256] -> [32, 32, 64, 128].
    """
    if not halve_downsampled:
        return list(features_per_stage)
    return [features_per_stage[0], *(max(1, f // 2) for f in features_per_stage[1:])]


class BlockBEncoder(nn.Module):
    """Encoder of Block B stages with the attributes nnU-Net's ``UNetDecoder`` reads from an encoder.

    Args:
        input_channels: image channels.
        n_stages: number of resolutions.
        features_per_stage: width of each stage (already the Block B widths, see ``block_b_features``).
        conv_op: ``nn.Conv2d`` or ``nn.Conv3d``.
        kernel_sizes: plans' kernel per stage (list per axis or int).
        strides: plans' stride per stage (list per axis or int).
        n_conv_per_stage: plans' convs per stage (int or list).
        block_b_kernel_sizes: zeta per stage (list per axis, or None for no extra conv).
        conv_bias, norm_op, norm_op_kwargs, dropout_op, dropout_op_kwargs, nonlin, nonlin_kwargs, nonlin_first:
            as in ``PlainConvEncoder``.
        return_skips: forward returns every stage's output (True) or only the last.
    """

    def __init__(
        self,
        input_channels: int,
        n_stages: int,
        features_per_stage: Sequence[int] | int,
        conv_op: type[nn.Module],
        kernel_sizes: Sequence | int,
        strides: Sequence | int,
        n_conv_per_stage: Sequence[int] | int,
        block_b_kernel_sizes: Sequence[Sequence[int] | None],
        conv_bias: bool = False,
        norm_op: type[nn.Module] | None = None,
        norm_op_kwargs: dict | None = None,
        dropout_op: type[nn.Module] | None = None,
        dropout_op_kwargs: dict | None = None,
        nonlin: type[nn.Module] | None = None,
        nonlin_kwargs: dict | None = None,
        return_skips: bool = True,
        nonlin_first: bool = False,
    ):
        super().__init__()
        features_per_stage = per_stage("features_per_stage", features_per_stage, n_stages)
        kernel_sizes = [
            maybe_convert_scalar_to_list(conv_op, k) for k in per_stage("kernel_sizes", kernel_sizes, n_stages)
        ]
        strides = [maybe_convert_scalar_to_list(conv_op, s) for s in per_stage("strides", strides, n_stages)]
        n_conv_per_stage = per_stage("n_conv_per_stage", n_conv_per_stage, n_stages)
        block_b_kernel_sizes = per_stage("block_b_kernel_sizes", block_b_kernel_sizes, n_stages)
        for stage, zeta in enumerate(block_b_kernel_sizes):
            if zeta is not None and (len(zeta) != len(kernel_sizes[stage]) or any(z < 1 or z % 2 == 0 for z in zeta)):
                raise FilterNetError(
                    f"block_b_kernel_sizes[{stage}]: expected None or {len(kernel_sizes[stage])} odd positive "
                    f"kernel sizes, found {zeta}"
                )
        stages = []
        for s in range(n_stages):
            stages.append(
                BlockBStage(
                    conv_op=conv_op,
                    input_channels=input_channels if s == 0 else features_per_stage[s - 1],
                    output_channels=features_per_stage[s],
                    kernel_size=kernel_sizes[s],
                    stride=strides[s],
                    n_convs=n_conv_per_stage[s],
                    block_b_kernel_size=block_b_kernel_sizes[s],
                    conv_bias=conv_bias,
                    norm_op=norm_op,
                    norm_op_kwargs=norm_op_kwargs,
                    dropout_op=dropout_op,
                    dropout_op_kwargs=dropout_op_kwargs,
                    nonlin=nonlin,
                    nonlin_kwargs=nonlin_kwargs,
                    nonlin_first=nonlin_first,
                )
            )
        self.stages = nn.Sequential(*stages)
        self.return_skips = return_skips
        self.block_b_kernel_sizes = block_b_kernel_sizes
        self.features_per_stage = features_per_stage
        # what UNetDecoder reads from its encoder
        self.output_channels = features_per_stage
        self.strides = strides
        self.kernel_sizes = kernel_sizes
        self.conv_op = conv_op
        self.conv_bias = conv_bias
        self.norm_op = norm_op
        self.norm_op_kwargs = norm_op_kwargs
        self.dropout_op = dropout_op
        self.dropout_op_kwargs = dropout_op_kwargs
        self.nonlin = nonlin
        self.nonlin_kwargs = nonlin_kwargs

    def forward(self, x: torch.Tensor) -> list[torch.Tensor] | torch.Tensor:
        """x: B C *spatial -> every stage's output (highest resolution first), or the last one.

        Output s has ``output_channels[s]`` channels and the spatial size after the strides of stages 0..s.
        """
        skips = []
        for stage in self.stages:
            x = stage(x)
            skips.append(x)
        return skips if self.return_skips else skips[-1]

    def compute_conv_feature_map_size(self, input_size: Sequence[int]) -> np.int64:
        """Number of conv output elements (batch 1) for an input of spatial size ``input_size``."""
        output = np.int64(0)
        for stage in self.stages:
            output += stage.compute_conv_feature_map_size(input_size)
            input_size = [i // s for i, s in zip(input_size, stage.stride)]
        return output
