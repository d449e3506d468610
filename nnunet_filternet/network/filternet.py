"""FilterNet: the Block B encoder E_B with the U-Net's decoder D_A (Block A, deep supervision), Y_hat = D_A(E_B(I)).

Widths (paper: "FilterNet reduces feature channels in block B at down-sampled scales by a factor of 2 compared
with block A used in UNet"; D_A "consists of block A's"): the encoder's stages below full resolution have half
the plans' width, the decoder keeps the plans' widths and takes the narrower skips as they are
(``decoder.BlockADecoder``; docs/architecture.md).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from dynamic_network_architectures.building_blocks.helper import convert_conv_op_to_dim
from dynamic_network_architectures.initialization.weight_init import InitWeights_He
from torch import nn

from nnunet_filternet.errors import FilterNetError
from nnunet_filternet.network.decoder import BlockADecoder
from nnunet_filternet.network.encoder import BlockBEncoder, block_b_features, per_stage
from nnunet_filternet.network.from_plans import derive_block_b_kernel_sizes


class FilterNet(nn.Module):
    """FilterNet from the same keyword arguments as ``PlainConvUNet`` (nnU-Net plans' arch_kwargs), plus:

    Args:
        block_b_kernel_sizes: zeta per stage (list per axis, None for no extra conv); None derives them from
            the kernels with ``from_plans.derive_block_b_kernel_sizes`` (7, 5, 3 in-plane, 1 where the plans'
            kernel is 1, no extra conv below the third stage).
        halve_downsampled_features: Block B stages at down-sampled scales get half the plans' width (stage 0
            keeps it). The decoder always has the plans' widths.

    ``forward(x)`` returns the logits B num_classes *spatial, or with deep supervision a list of them, highest
    resolution first, exactly like ``PlainConvUNet``.
    """

    def __init__(
        self,
        input_channels: int,
        n_stages: int,
        features_per_stage: int | Sequence[int],
        conv_op: type[nn.Module],
        kernel_sizes: int | Sequence,
        strides: int | Sequence,
        n_conv_per_stage: int | Sequence[int],
        num_classes: int,
        n_conv_per_stage_decoder: int | Sequence[int],
        conv_bias: bool = False,
        norm_op: type[nn.Module] | None = None,
        norm_op_kwargs: dict | None = None,
        dropout_op: type[nn.Module] | None = None,
        dropout_op_kwargs: dict | None = None,
        nonlin: type[nn.Module] | None = None,
        nonlin_kwargs: dict | None = None,
        deep_supervision: bool = False,
        block_b_kernel_sizes: Sequence[Sequence[int] | None] | None = None,
        halve_downsampled_features: bool = True,
        nonlin_first: bool = False,
    ):
        super().__init__()
        if n_stages < 1:
            raise FilterNetError(f"FilterNet: expected n_stages >= 1, found {n_stages}")
        kernel_sizes = per_stage("kernel_sizes", kernel_sizes, n_stages)
        if block_b_kernel_sizes is None:
            dim = convert_conv_op_to_dim(conv_op)
            block_b_kernel_sizes = derive_block_b_kernel_sizes(
                [[k] * dim if isinstance(k, int) else k for k in kernel_sizes]
            )
        n_conv_per_stage_decoder = per_stage("n_conv_per_stage_decoder", n_conv_per_stage_decoder, n_stages - 1)
        plans_features = per_stage("features_per_stage", features_per_stage, n_stages)
        features = block_b_features(plans_features, halve_downsampled_features)
        self.encoder = BlockBEncoder(
            input_channels=input_channels,
            n_stages=n_stages,
            features_per_stage=features,
            conv_op=conv_op,
            kernel_sizes=kernel_sizes,
            strides=strides,
            n_conv_per_stage=n_conv_per_stage,
            block_b_kernel_sizes=block_b_kernel_sizes,
            conv_bias=conv_bias,
            norm_op=norm_op,
            norm_op_kwargs=norm_op_kwargs,
            dropout_op=dropout_op,
            dropout_op_kwargs=dropout_op_kwargs,
            nonlin=nonlin,
            nonlin_kwargs=nonlin_kwargs,
            return_skips=True,
            nonlin_first=nonlin_first,
        )
        self.decoder = BlockADecoder(
            self.encoder, num_classes, n_conv_per_stage_decoder, deep_supervision, plans_features, nonlin_first
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor | list[torch.Tensor]:
        """x: B input_channels *spatial -> logits B num_classes *spatial (list with deep supervision)."""
        return self.decoder(self.encoder(x))

    def compute_conv_feature_map_size(self, input_size: Sequence[int]) -> np.int64:
        """Number of conv output elements for one sample of spatial size ``input_size`` (nnU-Net's planners)."""
        if len(input_size) != convert_conv_op_to_dim(self.encoder.conv_op):
            raise FilterNetError(f"FilterNet: expected the spatial input size only, e.g. (z, y, x), found {input_size}")
        return self.encoder.compute_conv_feature_map_size(input_size) + self.decoder.compute_conv_feature_map_size(
            input_size
        )

    @staticmethod
    def initialize(module: nn.Module) -> None:
        """He initialisation of convs, as nnU-Net's ``PlainConvUNet`` (use ``network.apply(FilterNet.initialize)``)."""
        InitWeights_He(1e-2)(module)
