"""The CPU-fast instance norm equals nn.InstanceNorm (values, gradients, state dict); the kernel policy gives it to the
network of every trainer, stock nnU-Net included, and to no architecture by itself."""

from __future__ import annotations

import pytest
import torch
from dynamic_network_architectures.architectures.unet import PlainConvUNet
from torch import nn

from nnunet_filternet.network.boundary_aware_fcn import BoundaryAwareFCN
from nnunet_filternet.network.filternet import FilterNet
from nnunet_filternet.network.norm import (
    CPUFastInstanceNorm2d,
    CPUFastInstanceNorm3d,
    cpu_fast_norm_op,
    use_cpu_fast_instance_norms,
)


def _pair(fast_cls, plain_cls, channels, **kwargs):
    torch.manual_seed(0)
    plain = plain_cls(channels, **kwargs)
    fast = fast_cls(channels, **kwargs)
    if plain.affine:  # non-trivial affine parameters, the same in both
        with torch.no_grad():
            plain.weight.uniform_(0.5, 1.5)
            plain.bias.uniform_(-0.5, 0.5)
    fast.load_state_dict(plain.state_dict())
    return fast, plain


@pytest.mark.parametrize(
    ("fast_cls", "plain_cls", "shape"),
    [
        (CPUFastInstanceNorm3d, nn.InstanceNorm3d, (2, 3, 4, 5, 6)),
        (CPUFastInstanceNorm2d, nn.InstanceNorm2d, (2, 3, 7, 5)),
    ],
)
@pytest.mark.parametrize("affine", [True, False])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_values_and_gradients_equal_instance_norm(fast_cls, plain_cls, shape, affine, dtype):
    fast, plain = _pair(fast_cls, plain_cls, shape[1], eps=1e-5, affine=affine)
    fast, plain = fast.to(dtype), plain.to(dtype)
    x = (3 * torch.randn(shape, dtype=dtype) + 2).requires_grad_()
    grad = torch.randn(shape, dtype=dtype)
    outputs, grads = [], []
    for module in (fast, plain):
        x.grad = None
        y = module(x)
        y.backward(grad)
        outputs.append(y.detach())
        grads.append([x.grad.clone()] + [p.grad.clone() for p in module.parameters()])
    tol = {"rtol": 1e-5, "atol": 1e-5} if dtype == torch.float32 else {"rtol": 1e-10, "atol": 1e-10}
    torch.testing.assert_close(outputs[0], outputs[1], **tol)
    assert len(grads[0]) == len(grads[1]) == (3 if affine else 1)
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b, **tol)


def test_same_module_type_and_state_dict_as_instance_norm():
    fast, plain = _pair(CPUFastInstanceNorm3d, nn.InstanceNorm3d, 4, eps=1e-5, affine=True)
    assert isinstance(fast, nn.InstanceNorm3d)
    assert fast.state_dict().keys() == plain.state_dict().keys()
    plain.load_state_dict(fast.state_dict())  # checkpoints go both ways


def test_running_statistics_fall_back_to_pytorch():
    fast, plain = _pair(CPUFastInstanceNorm3d, nn.InstanceNorm3d, 3, affine=True, track_running_stats=True)
    x = torch.randn(2, 3, 4, 5, 6)
    for _ in range(3):
        fast(x), plain(x)  # training mode updates the running statistics alike
    torch.testing.assert_close(fast.running_mean, plain.running_mean)
    fast.eval(), plain.eval()
    torch.testing.assert_close(fast(x), plain(x))  # eval uses the running statistics, as PyTorch does
    per_sample = torch.nn.functional.group_norm(x, 3, fast.weight, fast.bias, fast.eps)
    assert not torch.allclose(fast(x), per_sample, atol=1e-3)  # not the per-sample statistics of the CPU path


def test_unbatched_input_is_left_to_pytorch():
    fast, plain = _pair(CPUFastInstanceNorm2d, nn.InstanceNorm2d, 3, affine=True)
    x = torch.randn(3, 5, 6)  # C Y X
    torch.testing.assert_close(fast(x), plain(x))


def test_fast_op_only_replaces_instance_norms():
    assert cpu_fast_norm_op(nn.InstanceNorm3d) is CPUFastInstanceNorm3d
    assert cpu_fast_norm_op(nn.InstanceNorm2d) is CPUFastInstanceNorm2d
    assert cpu_fast_norm_op(nn.BatchNorm3d) is nn.BatchNorm3d
    assert cpu_fast_norm_op(None) is None


def _kwargs():
    return {
        "input_channels": 1,
        "n_stages": 3,
        "features_per_stage": [4, 8, 16],
        "conv_op": nn.Conv3d,
        "kernel_sizes": [[1, 3, 3], [1, 3, 3], [3, 3, 3]],
        "strides": [[1, 1, 1], [1, 2, 2], [2, 2, 2]],
        "n_conv_per_stage": 2,
        "num_classes": 3,
        "n_conv_per_stage_decoder": 1,
        "conv_bias": True,
        "norm_op": nn.InstanceNorm3d,
        "norm_op_kwargs": {"eps": 1e-5, "affine": True},
        "nonlin": nn.LeakyReLU,
        "nonlin_kwargs": {"inplace": True},
    }


@pytest.mark.parametrize("network_cls", [FilterNet, BoundaryAwareFCN, PlainConvUNet])
def test_no_architecture_chooses_the_kernel(network_cls):
    network = network_cls(**_kwargs())
    assert {type(m) for m in network.modules() if isinstance(m, nn.InstanceNorm3d)} == {nn.InstanceNorm3d}


def test_swap_makes_every_plain_instance_norm_fast_in_place_and_keeps_values(monkeypatch):
    class CustomNorm(nn.InstanceNorm3d):
        pass

    torch.manual_seed(0)
    network = PlainConvUNet(**_kwargs())
    network.add_module("custom", CustomNorm(8))  # not in the forward path: only its type is checked
    network.add_module("bn", nn.BatchNorm3d(4))
    plain = {id(m) for m in network.modules() if type(m) is nn.InstanceNorm3d}
    state = {k: v.clone() for k, v in network.state_dict().items()}
    x = torch.randn(2, 1, 4, 16, 16)
    expected = network(x)[0].detach()

    assert use_cpu_fast_instance_norms(network) is network
    assert {id(m) for m in network.modules() if type(m) is CPUFastInstanceNorm3d} == plain and plain
    assert (type(network.custom), type(network.bn)) == (CustomNorm, nn.BatchNorm3d)
    block = network.encoder.stages[0][0].convs[0]  # dynamic-network-architectures runs block.all_modules
    assert block.all_modules[1] is block.norm and type(block.norm) is CPUFastInstanceNorm3d
    assert network.state_dict().keys() == state.keys()
    calls = []
    group_norm = torch.nn.functional.group_norm
    monkeypatch.setattr("nnunet_filternet.network.norm.F.group_norm", lambda *a: calls.append(1) or group_norm(*a))
    torch.testing.assert_close(network(x)[0].detach(), expected, rtol=1e-5, atol=1e-5)
    assert len(calls) == len(plain)  # the forward runs the fused kernel in every norm


def test_other_devices_take_pytorchs_own_instance_norm(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("group norm must only run on the CPU")

    fast = CPUFastInstanceNorm3d(3, affine=True, device="meta")
    monkeypatch.setattr("nnunet_filternet.network.norm.F.group_norm", refuse)
    out = fast(torch.empty(2, 3, 4, 5, 6, device="meta"))  # a non-CPU device without needing a GPU
    assert out.device.type == "meta" and out.shape == (2, 3, 4, 5, 6)
    with pytest.raises(AssertionError, match="only run on the CPU"):
        fast.to_empty(device="cpu")(torch.randn(2, 3, 4, 5, 6))
