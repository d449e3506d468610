"""Boundary-Aware FCN (comparison model): shared plain encoder, region and edge decoders, fusion Phi.

Both decoders are nnU-Net's ``UNetDecoder`` on one ``PlainConvEncoder`` (Block A). The fusion Phi takes
concat(region logits, edge logits) at each output resolution, applies ``phi_n_convs`` conv-norm-nonlin
layers (the plans' stage-0 kernel and width) and a 1x1 conv to ``num_classes`` final logits; one Phi is
shared by all deep-supervision resolutions. The edge decoder also has ``num_classes`` outputs: its targets
(``nnunet_filternet.edge.targets.edge_targets``) label each compartment's boundary with the compartment.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from dynamic_network_architectures.building_blocks.helper import convert_conv_op_to_dim, maybe_convert_scalar_to_list
from dynamic_network_architectures.building_blocks.plain_conv_encoder import PlainConvEncoder
from dynamic_network_architectures.building_blocks.simple_conv_blocks import StackedConvBlocks
from dynamic_network_architectures.building_blocks.unet_decoder import UNetDecoder
from dynamic_network_architectures.initialization.weight_init import InitWeights_He
from torch import nn

from nnunet_filternet.errors import FilterNetError
from nnunet_filternet.network.encoder import per_stage


class BoundaryAwareFCN(nn.Module):
    """Boundary-Aware FCN from ``PlainConvUNet``'s keyword arguments plus ``phi_n_convs`` (>= 0).

    ``forward(x)`` in train mode returns ``(final, region, edge)``, each a tensor B num_classes *spatial or,
    with deep supervision, a list of them (highest resolution first). In eval mode it returns only ``final``,
    so nnU-Net's predictor and validation work unchanged. ``.decoder`` is the region decoder: nnU-Net's
    ``set_deep_supervision_enabled`` toggles it, and the edge decoder follows it.
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
        nonlin_first: bool = False,
        phi_n_convs: int = 2,
    ):
        super().__init__()
        if phi_n_convs < 0:
            raise FilterNetError(f"BoundaryAwareFCN: expected phi_n_convs >= 0, found {phi_n_convs}")
        features_per_stage = per_stage("features_per_stage", features_per_stage, n_stages)
        kernel_sizes = per_stage("kernel_sizes", kernel_sizes, n_stages)
        n_conv_per_stage = per_stage("n_conv_per_stage", n_conv_per_stage, n_stages)
        n_conv_per_stage_decoder = per_stage("n_conv_per_stage_decoder", n_conv_per_stage_decoder, n_stages - 1)
        self.encoder = PlainConvEncoder(
            input_channels=input_channels,
            n_stages=n_stages,
            features_per_stage=features_per_stage,
            conv_op=conv_op,
            kernel_sizes=kernel_sizes,
            strides=strides,
            n_conv_per_stage=n_conv_per_stage,
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
        self.decoder = UNetDecoder(
            self.encoder, num_classes, n_conv_per_stage_decoder, deep_supervision, nonlin_first=nonlin_first
        )
        self.edge_decoder = UNetDecoder(
            self.encoder, num_classes, n_conv_per_stage_decoder, deep_supervision, nonlin_first=nonlin_first
        )
        self.phi_n_convs = phi_n_convs
        self.phi_width = features_per_stage[0]
        fusion = []
        if phi_n_convs > 0:
            fusion.append(
                StackedConvBlocks(
                    num_convs=phi_n_convs,
                    conv_op=conv_op,
                    input_channels=2 * num_classes,
                    output_channels=self.phi_width,
                    kernel_size=maybe_convert_scalar_to_list(conv_op, kernel_sizes[0]),
                    initial_stride=1,
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
        fusion.append(conv_op(self.phi_width if phi_n_convs > 0 else 2 * num_classes, num_classes, 1, 1, 0, bias=True))
        self.fusion = nn.Sequential(*fusion)
        self.num_classes = num_classes

    def _fuse(self, region: torch.Tensor, edge: torch.Tensor) -> torch.Tensor:
        return self.fusion(torch.cat([region, edge], dim=1))

    def forward(self, x: torch.Tensor):
        """x: B input_channels *spatial -> (final, region, edge) in train mode, final in eval mode."""
        self.edge_decoder.deep_supervision = self.decoder.deep_supervision  # nnU-Net toggles .decoder only
        skips = self.encoder(x)
        region = self.decoder(skips)
        edge = self.edge_decoder(skips)
        if isinstance(region, list):
            final = [self._fuse(r, e) for r, e in zip(region, edge)]
        else:
            final = self._fuse(region, edge)
        return (final, region, edge) if self.training else final

    def compute_conv_feature_map_size(self, input_size: Sequence[int]) -> np.int64:
        """Number of conv output elements for one sample of spatial size ``input_size`` (nnU-Net's planners)."""
        if len(input_size) != convert_conv_op_to_dim(self.encoder.conv_op):
            raise FilterNetError(
                f"BoundaryAwareFCN: expected the spatial input size only, e.g. (z, y, x), found {input_size}"
            )
        output = self.encoder.compute_conv_feature_map_size(input_size)
        output += self.decoder.compute_conv_feature_map_size(input_size)
        output += self.edge_decoder.compute_conv_feature_map_size(input_size)
        sizes, size = [], list(input_size)  # resolutions of the decoder outputs, highest first
        for stride in self.encoder.strides[:-1]:
            size = [i // s for i, s in zip(size, stride)]
            sizes.append(size)
        per_voxel = self.phi_n_convs * self.phi_width + self.num_classes
        for size in sizes if self.decoder.deep_supervision else sizes[:1]:
            output += np.prod([per_voxel, *size], dtype=np.int64)
        return output

    @staticmethod
    def initialize(module: nn.Module) -> None:
        """He initialisation of convs, as nnU-Net's ``PlainConvUNet``."""
        InitWeights_He(1e-2)(module)
