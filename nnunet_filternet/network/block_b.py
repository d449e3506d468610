"""One Block B stage: the stage's convs with an extra conv of kernel zeta, and a short identity skip.

Layout of a stage with n plans convs of kernel K, stride S and zeta Z (paper: Block B)::

    x -> [conv K, stride S] -> h -> [conv Z] -> [conv K] ... -> [conv K, no nonlin] -> (+) -> nonlin -> out
                               h ---------------------- identity ----------------------^

    stage 0 (no stride):  x -> [conv Z] -> h -> [conv K] -> [conv K, no nonlin] -> (+ h) -> nonlin -> out

The zeta conv is the first conv at the stage's own resolution: the first conv of a stage without stride
(stage 0), the second one behind nnU-Net's strided conv otherwise (nnU-Net down-samples with a strided conv
where the paper max-pools before the block). So each zeta conv widens the receptive field by exactly
(Z - 1) x (cumulative stride).

The paper's short skip is "an addition to achieve identity mapping": the identity spans every conv whose input
already has the stage's output width and resolution, i.e. all convs after the first one, which changes the width
(and the resolution below full scale). At stage 0 that is the paper's block exactly (zeta conv from the image
channels, identity around Block A's two convs); below, nnU-Net's strided conv changes width and resolution where
the paper's pooling and zeta conv did, and the identity spans the zeta conv and the plans' second conv. Where the
first conv changes nothing (same width, no stride) the identity spans the whole stage. Only a stage of a single
conv that changes the shape has nothing to span: its skip is a projection over the whole stage, as
dynamic_network_architectures' ``BasicBlockD`` (ResNet-D: average pooling by the stride, then a 1x1 conv + norm
where the width changes).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from dynamic_network_architectures.building_blocks.helper import get_matching_pool_op, maybe_convert_scalar_to_list
from dynamic_network_architectures.building_blocks.simple_conv_blocks import ConvDropoutNormReLU
from torch import nn


class BlockBStage(nn.Module):
    """A Block B encoder stage (see the module docstring for the layout).

    Args:
        conv_op: ``nn.Conv2d`` or ``nn.Conv3d``.
        input_channels: channels of the stage input.
        output_channels: channels of every conv of the stage.
        kernel_size: the plans' conv kernel of the stage (per axis).
        stride: the plans' stride of the stage (per axis).
        n_convs: the plans' number of convs of the stage (>= 1).
        block_b_kernel_size: zeta per axis, or None for no extra conv (residual block only).
        conv_bias, norm_op, norm_op_kwargs, dropout_op, dropout_op_kwargs, nonlin, nonlin_kwargs, nonlin_first:
            as in dynamic_network_architectures' ``ConvDropoutNormReLU``.
    """

    def __init__(
        self,
        conv_op: type[nn.Module],
        input_channels: int,
        output_channels: int,
        kernel_size: Sequence[int] | int,
        stride: Sequence[int] | int,
        n_convs: int,
        block_b_kernel_size: Sequence[int] | None,
        conv_bias: bool = False,
        norm_op: type[nn.Module] | None = None,
        norm_op_kwargs: dict | None = None,
        dropout_op: type[nn.Module] | None = None,
        dropout_op_kwargs: dict | None = None,
        nonlin: type[nn.Module] | None = None,
        nonlin_kwargs: dict | None = None,
        nonlin_first: bool = False,
    ):
        super().__init__()
        self.input_channels = input_channels
        self.output_channels = output_channels
        self.stride = maybe_convert_scalar_to_list(conv_op, stride)
        kernels = [maybe_convert_scalar_to_list(conv_op, kernel_size)] * n_convs
        has_stride = any(s != 1 for s in self.stride)
        #: index in ``convs`` of the zeta conv (None: no extra conv)
        self.zeta_index = None if block_b_kernel_size is None else (1 if has_stride else 0)
        if self.zeta_index is not None:
            kernels.insert(self.zeta_index, list(block_b_kernel_size))
        common = {
            "conv_op": conv_op,
            "conv_bias": conv_bias,
            "norm_op": norm_op,
            "norm_op_kwargs": norm_op_kwargs,
            "dropout_op": dropout_op,
            "dropout_op_kwargs": dropout_op_kwargs,
            "nonlin_first": nonlin_first,
        }
        convs = []
        for index, kernel in enumerate(kernels):
            last = index == len(kernels) - 1
            convs.append(
                ConvDropoutNormReLU(
                    input_channels=input_channels if index == 0 else output_channels,
                    output_channels=output_channels,
                    kernel_size=kernel,
                    stride=self.stride if index == 0 else 1,
                    nonlin=None if last else nonlin,  # the last nonlin comes after the addition
                    nonlin_kwargs=None if last else nonlin_kwargs,
                    **common,
                )
            )
        self.convs = nn.Sequential(*convs)
        first_keeps_shape = input_channels == output_channels and not has_stride
        #: index of the first conv inside the residual: 0 (the whole stage) or 1 (after the shape-changing conv)
        self.residual_from = 0 if first_keeps_shape or len(convs) == 1 else 1
        needs_projection = self.residual_from == 0 and not first_keeps_shape
        self.skip = (
            self._make_projection(conv_op, input_channels, output_channels, has_stride, norm_op, norm_op_kwargs)
            if needs_projection
            else nn.Identity()
        )
        self.nonlin = nonlin(**(nonlin_kwargs or {})) if nonlin is not None else nn.Identity()

    def _make_projection(
        self, conv_op, input_channels, output_channels, has_stride, norm_op, norm_op_kwargs
    ) -> nn.Module:
        """Average pooling by the stride and/or a 1x1 conv + norm where the width changes (as ``BasicBlockD``)."""
        ops = []
        if has_stride:
            pool = get_matching_pool_op(conv_op=conv_op, adaptive=False, pool_type="avg")
            ops.append(pool(self.stride, self.stride, ceil_mode=True))  # ceil: same size as the strided conv
        if input_channels != output_channels:
            ops.append(
                ConvDropoutNormReLU(
                    conv_op=conv_op,
                    input_channels=input_channels,
                    output_channels=output_channels,
                    kernel_size=1,
                    stride=1,
                    conv_bias=False,
                    norm_op=norm_op,
                    norm_op_kwargs=norm_op_kwargs,
                )
            )
        return nn.Sequential(*ops)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: B C_in *spatial -> B C_out *(spatial / stride)."""
        for index, conv in enumerate(self.convs):
            if index == self.residual_from:
                shortcut = self.skip(x)
            x = conv(x)
        return self.nonlin(x + shortcut)

    def compute_conv_feature_map_size(self, input_size: Sequence[int]) -> np.int64:
        """Number of conv output elements (batch 1) for an input of spatial size ``input_size``."""
        output = self.convs[0].compute_conv_feature_map_size(input_size)
        size_after_stride = [i // s for i, s in zip(input_size, self.stride)]
        for conv in self.convs[1:]:
            output += conv.compute_conv_feature_map_size(size_after_stride)
        if any(isinstance(m, ConvDropoutNormReLU) for m in self.skip.modules()):
            output += np.prod([self.output_channels, *size_after_stride], dtype=np.int64)
        return output
