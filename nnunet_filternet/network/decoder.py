"""D_A for a narrower encoder: nnU-Net's ``UNetDecoder`` at the plans' widths, fed skips at their own widths.

The paper's FilterNet is Y = D_A(E_B(I)): the U-Net's decoder (Block A, the plans' widths) on the Block B encoder,
whose stages below full resolution are half as wide. At each scale s the paper's decoder up-samples the level
below with a transposed conv to the plans' width w_s, concatenates the encoder's skip as it is (width e_s), and
reduces the w_s + e_s channels to w_s with the plans' convs; deep supervision as nnU-Net's.

nnU-Net's ``UNetDecoder`` builds each stage from ``encoder.output_channels`` alone (transposed conv to the skip's
width, first conv from twice that width). :class:`BlockADecoder` gives it a view of the encoder that reports the
plans' widths (and the bottleneck's own width, so the first transposed conv reads the narrow bottleneck), then
replaces only the first conv of each stage whose skip is narrower, by one that reads w_s + e_s channels. Forward,
deep supervision and ``compute_conv_feature_map_size`` are ``UNetDecoder``'s own.
"""

from __future__ import annotations

from collections.abc import Sequence

from dynamic_network_architectures.building_blocks.unet_decoder import UNetDecoder
from torch import nn

from nnunet_filternet.errors import FilterNetError


class EncoderAtDecoderWidths:
    """An encoder as ``UNetDecoder`` reads it, with ``output_channels`` replaced by the decoder's widths.

    Every other attribute (``conv_op``, ``strides``, ``kernel_sizes``, norm, nonlin, ...) is the encoder's. Not a
    module: the encoder stays registered once, in the network that owns it.

    Args:
        encoder: the encoder (attributes of dynamic-network-architectures' encoders).
        output_channels: width per stage as the decoder sees it.
    """

    def __init__(self, encoder: nn.Module, output_channels: Sequence[int]):
        self.encoder = encoder
        self.output_channels = [int(c) for c in output_channels]

    def __getattr__(self, name: str):
        if name.startswith("__") or name == "encoder":  # copy / pickle probe dunders before __init__ ran
            raise AttributeError(name)
        return getattr(self.encoder, name)


def replace_module(root: nn.Module, old: nn.Module, new: nn.Module) -> None:
    """Replace every reference to ``old`` among the sub-modules of ``root`` by ``new`` (in place).

    dynamic-network-architectures holds each conv both as an attribute and inside an ``nn.Sequential``.
    """
    places = [(parent, name) for parent in root.modules() for name, child in parent.named_children() if child is old]
    if not places:
        raise FilterNetError(f"replace_module: {type(old).__name__} is not a sub-module of {type(root).__name__}")
    for parent, name in places:
        setattr(parent, name, new)


def with_input_channels(conv: nn.Module, input_channels: int) -> nn.Module:
    """A freshly initialised conv like ``conv`` (kernel, stride, padding, dilation, bias) reading ``input_channels``."""
    return type(conv)(
        input_channels,
        conv.out_channels,
        conv.kernel_size,
        stride=conv.stride,
        padding=conv.padding,
        dilation=conv.dilation,
        bias=conv.bias is not None,
    )


class BlockADecoder(UNetDecoder):
    """``UNetDecoder`` at ``features_per_stage`` whose skips have the encoder's own ``output_channels``.

    Decoder stage s (deepest first, at scale n - 2 - s) has ``features_per_stage[n - 2 - s]`` channels: a
    transposed conv from the level below (the bottleneck at its own width for s = 0) to that width, the
    concatenation with the skip, the plans' convs. Where skip and decoder widths agree, a stage is
    ``UNetDecoder``'s, parameter for parameter.

    Args:
        encoder: the encoder whose skips the forward receives (``output_channels``, ``strides``, ops).
        num_classes, n_conv_per_stage, deep_supervision, nonlin_first: as ``UNetDecoder``.
        features_per_stage: the plans' widths, one per encoder stage (the bottleneck's entry is not used: the
            decoder has no stage there).

    ``self.encoder`` is an :class:`EncoderAtDecoderWidths` view: ``self.encoder.output_channels`` lists the
    decoder's widths (and the bottleneck's own), which ``UNetDecoder.compute_conv_feature_map_size`` reads for the
    transposed convs' outputs.
    """

    def __init__(
        self,
        encoder: nn.Module,
        num_classes: int,
        n_conv_per_stage: int | Sequence[int],
        deep_supervision: bool,
        features_per_stage: Sequence[int],
        nonlin_first: bool = False,
    ):
        skip_widths = [int(c) for c in encoder.output_channels]
        if len(features_per_stage) != len(skip_widths):
            raise FilterNetError(
                f"BlockADecoder: expected {len(skip_widths)} features_per_stage (one per encoder stage), "
                f"found {len(features_per_stage)}"
            )
        widths = [*(int(f) for f in features_per_stage[:-1]), skip_widths[-1]]
        super().__init__(
            EncoderAtDecoderWidths(encoder, widths),
            num_classes,
            n_conv_per_stage,
            deep_supervision,
            nonlin_first=nonlin_first,
        )
        for s, stage in enumerate(self.stages):
            skip, width = skip_widths[-(s + 2)], widths[-(s + 2)]
            if skip != width:
                first = stage.convs[0]
                replace_module(first, first.conv, with_input_channels(first.conv, width + skip))
                first.input_channels = width + skip
        self.skip_widths = skip_widths
