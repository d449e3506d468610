"""3D convolution that runs oneDNN in channels-last layout on the CPU when it is narrow (same result, faster there).

PyTorch's CPU convolution (oneDNN) reorders a contiguous (B, C, Z, Y, X) tensor into a blocked layout of 8 or
16 channels per block before it convolves, and back afterwards, forward and backward. With few channels the
reorders and the half-empty blocks cost more than the arithmetic; in channels-last layout (B, Z, Y, X, C)
oneDNN convolves without them. Measured on this project's CPU (1 thread, forward + backward of one conv, the
layout changed before and after the conv, so the rest of the network still sees contiguous tensors):
8 -> 8 channels 0.59x the time, 16 -> 16 0.66x, 32 -> 32 0.85x, 64 -> 64 and wider 1.0x; in a whole training
step, convs of 32 channels in channels-last made nnU-Net's widths (32-320) slower, so only convs of at most
:data:`MAX_CHANNELS` channels take this path (the `tiny` preset's and FilterNet's narrow encoder stages;
none at nnU-Net's default widths). docs/benchmarks.md has the step before and after.

The layout is changed inside ``forward`` only: parameters, their gradients, the optimizer's state and the
module's input and output stay contiguous, so checkpoints, nnU-Net's code and other devices see a plain
``nn.Conv3d`` (CUDA and every other device take PyTorch's own path unchanged). The values are those of
``nn.Conv3d`` up to float rounding (another order of summation).

No architecture chooses it: :func:`use_cpu_fast_convs` applies it to every network a trainer builds, through
``training/kernel_policy.py``, as :mod:`.norm` does for the instance norms.
"""

from __future__ import annotations

import torch
from torch import nn

#: Convs with at most this many input and output channels run channels-last on the CPU (module docstring).
MAX_CHANNELS = 16


class CPUChannelsLastConv3d(nn.Conv3d):
    """``nn.Conv3d`` (x: B C_in Z Y X -> B C_out Z' Y' X', contiguous) computed in channels-last layout on the CPU."""

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        if input.device.type != "cpu" or input.dim() != 5:
            return super().forward(input)
        layout = torch.channels_last_3d
        weight = self.weight.contiguous(memory_format=layout)
        return self._conv_forward(input.contiguous(memory_format=layout), weight, self.bias).contiguous()


def is_narrow_conv3d(module: nn.Module, max_channels: int = MAX_CHANNELS) -> bool:
    """Whether ``module`` is a plain ``nn.Conv3d`` (not a subclass) of at most ``max_channels`` in and out."""
    return type(module) is nn.Conv3d and max(module.in_channels, module.out_channels) <= max_channels


def use_cpu_fast_convs(network: nn.Module, max_channels: int = MAX_CHANNELS) -> nn.Module:
    """Make every narrow plain ``nn.Conv3d`` of ``network`` a :class:`CPUChannelsLastConv3d`, in place.

    The modules keep their identity, parameters and buffers (only their class changes), so the state dict and
    every reference to them (dynamic-network-architectures holds each conv as an attribute and inside an
    ``nn.Sequential``) are unchanged. Wider convs, 2D and transposed convs and subclasses are left alone.

    Returns:
        ``network`` itself.
    """
    for module in network.modules():
        if is_narrow_conv3d(module, max_channels):
            module.__class__ = CPUChannelsLastConv3d
    return network
