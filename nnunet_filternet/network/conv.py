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

A 2D convolution of ONE input channel (the first conv of a network on a one-channel image: Block B's 7 x 7 zeta
conv, nnU-Net's first 3 x 3 conv) spends most of its backward on the weight gradient, which oneDNN computes
slowly for one input channel (2.7 ms for 16 x 1 x 48 x 48 images, 8 output channels, 7 x 7). That gradient is
itself a convolution: of the zero-padded images with the output gradient, batch and channels swapped
(:class:`CPUOneChannelConv2d`: 1.6 ms there; 0.72 -> 0.62 ms for a 3 x 3 kernel; the same values up to float
rounding). The forward and the input's gradient are PyTorch's.

No architecture chooses either: :func:`use_cpu_fast_convs` applies them to every network a trainer builds,
through ``training/kernel_policy.py``, as :mod:`.norm` does for the instance norms.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
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


class CPUOneChannelConv2d(nn.Conv2d):
    """``nn.Conv2d`` of one input channel (x: B 1 Y X -> B C_out Y X) whose weight gradient, on the CPU, is one
    convolution of the padded images with the output gradient (module docstring); elsewhere PyTorch's own."""

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        if not _takes_one_channel_path(self, input):
            return super().forward(input)
        return _OneChannelConv2d.apply(input, self.weight, self.bias, tuple(self.padding))


def _takes_one_channel_path(conv: nn.Conv2d, input: torch.Tensor) -> bool:
    return (
        input.device.type == "cpu"
        and input.dim() == 4
        and not torch.compiler.is_compiling()
        and conv.in_channels == 1
        and conv.groups == 1
        and conv.padding_mode == "zeros"
        and isinstance(conv.padding, tuple)
        and all(s == 1 for s in conv.stride)
        and all(d == 1 for d in conv.dilation)
    )


class _OneChannelConv2d(torch.autograd.Function):
    """F.conv2d(x, w, b, padding=p) for x of one channel, stride and dilation 1; backward as the class says."""

    @staticmethod
    def forward(ctx, x, weight, bias, padding):
        ctx.save_for_backward(x, weight)
        ctx.padding, ctx.has_bias = padding, bias is not None
        return F.conv2d(x, weight, bias, padding=padding)

    @staticmethod
    def backward(ctx, grad):
        x, weight = ctx.saved_tensors
        (py, px), grad_x = ctx.padding, None
        if ctx.needs_input_grad[0]:
            grad_x = torch.ops.aten.convolution_backward(
                grad, x, weight, None, [1, 1], [py, px], [1, 1], False, [0, 0], 1, [True, False, False]
            )[0]
        grad_weight = None
        if ctx.needs_input_grad[1]:  # dW[o, 0, i, j] = sum_b,y,x g[b, o, y, x] x_pad[b, 0, y + i, x + j]
            padded = F.pad(x, (px, px, py, py))
            grad_weight = F.conv2d(padded.transpose(0, 1), grad.transpose(0, 1)).transpose(0, 1)
        grad_bias = grad.sum((0, 2, 3)) if ctx.has_bias and ctx.needs_input_grad[2] else None
        return grad_x, grad_weight, grad_bias, None


def is_narrow_conv3d(module: nn.Module, max_channels: int = MAX_CHANNELS) -> bool:
    """Whether ``module`` is a plain ``nn.Conv3d`` (not a subclass) of at most ``max_channels`` in and out."""
    return type(module) is nn.Conv3d and max(module.in_channels, module.out_channels) <= max_channels


def use_cpu_fast_convs(network: nn.Module, max_channels: int = MAX_CHANNELS) -> nn.Module:
    """Make every narrow plain ``nn.Conv3d`` of ``network`` a :class:`CPUChannelsLastConv3d` and every plain
    ``nn.Conv2d`` of one input channel a :class:`CPUOneChannelConv2d`, in place.

    The modules keep their identity, parameters and buffers (only their class changes), so the state dict and
    every reference to them (dynamic-network-architectures holds each conv as an attribute and inside an
    ``nn.Sequential``) are unchanged. Wider 3D convs, other 2D convs, transposed convs and subclasses are left
    alone.

    Returns:
        ``network`` itself.
    """
    for module in network.modules():
        if is_narrow_conv3d(module, max_channels):
            module.__class__ = CPUChannelsLastConv3d
        elif type(module) is nn.Conv2d and module.in_channels == 1:
            module.__class__ = CPUOneChannelConv2d
    return network
