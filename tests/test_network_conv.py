"""The CPU channels-last conv equals nn.Conv3d (values, gradients, state dict, contiguous tensors in and out); the
kernel policy gives it to the narrow 3D convs of every trainer's network and leaves the others alone."""

from __future__ import annotations

import pytest
import torch
from dynamic_network_architectures.architectures.unet import PlainConvUNet
from torch import nn

from nnunet_filternet.network.conv import (
    MAX_CHANNELS,
    CPUChannelsLastConv3d,
    CPUOneChannelConv2d,
    is_narrow_conv3d,
    use_cpu_fast_convs,
)
from nnunet_filternet.network.filternet import FilterNet


@pytest.mark.parametrize(
    ("cin", "cout", "kernel", "stride", "padding"),
    [(1, 8, (1, 7, 7), 1, (0, 3, 3)), (8, 8, (5, 5, 5), 1, 2), (8, 16, (3, 3, 3), (1, 2, 2), 1), (16, 6, 1, 1, 0)],
)
def test_channels_last_conv_equals_conv3d_values_and_gradients(cin, cout, kernel, stride, padding):
    torch.manual_seed(0)
    plain = nn.Conv3d(cin, cout, kernel, stride, padding, bias=True)
    fast = CPUChannelsLastConv3d(cin, cout, kernel, stride, padding, bias=True)
    fast.load_state_dict(plain.state_dict())
    x = torch.randn(2, cin, 6, 20, 22, dtype=torch.float64)
    plain, fast = plain.double(), fast.double()
    xs = [x.clone().requires_grad_(True) for _ in range(2)]
    ys = [m(xi) for m, xi in zip((plain, fast), xs)]
    assert ys[1].is_contiguous() and ys[1].shape == ys[0].shape
    torch.testing.assert_close(ys[1], ys[0])
    upstream = torch.randn_like(ys[0])
    for y in ys:
        y.backward(upstream)
    torch.testing.assert_close(xs[1].grad, xs[0].grad)
    torch.testing.assert_close(fast.weight.grad, plain.weight.grad)
    torch.testing.assert_close(fast.bias.grad, plain.bias.grad)
    assert fast.weight.is_contiguous() and fast.weight.grad.is_contiguous() and xs[1].grad.is_contiguous()


def test_the_cpu_path_runs_channels_last(monkeypatch):
    """What makes it fast: oneDNN sees channels-last input and weight (checked on the tensors handed to it)."""
    seen = []
    fast = CPUChannelsLastConv3d(8, 8, 3, padding=1)
    original = nn.Conv3d._conv_forward

    def spy(self, input, weight, bias):
        seen.append((input.is_contiguous(memory_format=torch.channels_last_3d),
                     weight.is_contiguous(memory_format=torch.channels_last_3d)))  # fmt: skip
        return original(self, input, weight, bias)

    monkeypatch.setattr(nn.Conv3d, "_conv_forward", spy)
    fast(torch.randn(2, 8, 4, 10, 10))
    assert seen == [(True, True)]


def test_policy_swaps_only_narrow_plain_conv3d_and_keeps_the_state_dict():
    torch.manual_seed(0)
    net = PlainConvUNet(1, 4, (8, 16, 32, 64), nn.Conv3d, 3, (1, 2, 2, 2), 2, 6, 2, conv_bias=True,
                        norm_op=nn.InstanceNorm3d, nonlin=nn.LeakyReLU)  # fmt: skip
    before = {k: v.clone() for k, v in net.state_dict().items()}
    x = torch.randn(1, 1, 8, 32, 32)
    with torch.no_grad():
        expected = net(x)
    assert use_cpu_fast_convs(net) is net
    swapped = [m for m in net.modules() if isinstance(m, CPUChannelsLastConv3d)]
    plain = [m for m in net.modules() if type(m) is nn.Conv3d]
    assert swapped and all(max(m.in_channels, m.out_channels) <= MAX_CHANNELS for m in swapped)
    assert plain and all(max(m.in_channels, m.out_channels) > MAX_CHANNELS for m in plain)
    assert not any(isinstance(m, CPUChannelsLastConv3d) for m in net.modules() if isinstance(m, nn.ConvTranspose3d))
    assert net.state_dict().keys() == before.keys()
    assert all(torch.equal(net.state_dict()[k], v) for k, v in before.items())
    with torch.no_grad():
        torch.testing.assert_close(net(x), expected, rtol=1e-4, atol=1e-5)
    assert not is_narrow_conv3d(nn.Conv2d(8, 8, 3)) and not is_narrow_conv3d(nn.ConvTranspose3d(8, 8, 2))


def test_no_architecture_chooses_it():
    net = FilterNet(1, 3, (8, 16, 32), nn.Conv3d, 3, (1, 2, 2), 2, 2, 2, norm_op=nn.InstanceNorm3d)
    assert not any(isinstance(m, CPUChannelsLastConv3d) for m in net.modules())


@pytest.mark.parametrize(("cout", "kernel", "padding", "bias", "input_grad"),
                         [(8, 7, 3, True, False), (4, 3, 1, False, True), (3, (3, 5), (1, 2), True, True)])  # fmt: skip
def test_one_channel_conv_equals_conv2d_values_and_gradients(cout, kernel, padding, bias, input_grad):
    """Its weight gradient (a convolution of the padded images with the output gradient) is nn.Conv2d's, as are
    the values, the bias's gradient and the input's (when the input wants one)."""
    torch.manual_seed(1)
    plain = nn.Conv2d(1, cout, kernel, padding=padding, bias=bias).double()
    fast = CPUOneChannelConv2d(1, cout, kernel, padding=padding, bias=bias).double()
    fast.load_state_dict(plain.state_dict())
    x = torch.randn(3, 1, 11, 13, dtype=torch.float64)
    xs = [x.clone().requires_grad_(input_grad) for _ in range(2)]
    ys = [m(xi) for m, xi in zip((plain, fast), xs)]
    assert ys[1].grad_fn is not None and "OneChannel" in type(ys[1].grad_fn).__name__  # the fast path ran
    torch.testing.assert_close(ys[1], ys[0])
    upstream = torch.randn_like(ys[0])
    for y in ys:
        y.backward(upstream)
    torch.testing.assert_close(fast.weight.grad, plain.weight.grad)
    if bias:
        torch.testing.assert_close(fast.bias.grad, plain.bias.grad)
    if input_grad:
        torch.testing.assert_close(xs[1].grad, xs[0].grad)


def test_policy_gives_2d_one_channel_convs_the_fast_weight_gradient():
    net = PlainConvUNet(1, 3, (8, 16, 32), nn.Conv2d, 3, (1, 2, 2), 2, 4, 2, conv_bias=True,
                        norm_op=nn.InstanceNorm2d, nonlin=nn.LeakyReLU)  # fmt: skip
    use_cpu_fast_convs(net)
    fast = [m for m in net.modules() if isinstance(m, CPUOneChannelConv2d)]
    assert len(fast) == 1 and fast[0].in_channels == 1
    assert all(m.in_channels > 1 for m in net.modules() if type(m) is nn.Conv2d)
