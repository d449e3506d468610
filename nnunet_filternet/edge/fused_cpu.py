"""The edge loss in one fused CPU kernel (``edge/native``), as an autograd function, and when it applies.

``EdgeLoss`` hands its probabilities here when :func:`applies` says so: a float32 CPU tensor outside
``torch.compile`` and fake-tensor tracing, an ``EdgeGate`` (rho and the Gaussian) on the last two spatial axes
(2D images, or 3D volumes filtered in plane: the paper's data), the 5-tap Gaussian, each class block contiguous,
and the kernel built. Everywhere else (CUDA, float64, the Laplacian-only gate, 3D kernels) the PyTorch operators
of ``edge/filter.py`` run. Both compute the same loss, d loss / d probabilities and d loss / d sigma (sigma's
through d taps / d sigma, ``kernels.gaussian_taps_derivative``; the prediction's side only with
``constant_target``), up to float rounding: tests/test_edge_fused.py compares them.

Why: at the small widths of the CPU demo the PyTorch operators make some 70 passes over the output per step
(about 5 ms, 5-7 % of a step); the kernel makes one pass forward and one backward per slice, in buffers that
stay in the cache (docs/benchmarks.md, issue 25).
"""

from __future__ import annotations

import ctypes

import torch

from nnunet_filternet.edge import native
from nnunet_filternet.edge.kernels import GAUSSIAN_SIZE, gaussian_taps, gaussian_taps_derivative


def applies(gate, probabilities: torch.Tensor) -> bool:
    """Whether the fused kernel computes this edge loss (see the module docstring)."""
    from torch._subclasses.fake_tensor import is_fake

    from nnunet_filternet.edge.gate import EdgeGate

    spatial = probabilities.ndim - 2
    return (
        isinstance(gate, EdgeGate)
        and probabilities.device.type == "cpu"
        and probabilities.dtype == torch.float32
        and not torch.compiler.is_compiling()
        and not is_fake(probabilities)
        and gate.axes == tuple(range(spatial - 2, spatial))
        and GAUSSIAN_SIZE == 5
        and probabilities.shape[0] * probabilities.shape[1] > 0
        and probabilities[0, 0].is_contiguous()
        and native.library() is not None
    )


def fused_edge_loss(
    gate, probabilities: torch.Tensor, target: torch.Tensor, classes: torch.Tensor, weights: torch.Tensor,
    constant_target: bool,
) -> torch.Tensor:  # fmt: skip
    """sum_c w_c mean |G * (rho(L * P_c) - E_c)|, differentiable in ``probabilities`` and the gate's sigma.

    Args:
        gate: the ``EdgeGate`` (its sigma and normalisation).
        probabilities: B C *spatial float32 (one channel per used class; a view of the softmax is fine).
        target: label map B 1 *spatial (any dtype; taken as ``labels.long()``, like ``EdgeGate.label_edges``).
        classes: the C class indices (1D).
        weights: the C class weights w_c (1D).
        constant_target: sigma's gradient through the prediction's side only (``EdgeLoss``).

    Returns:
        Scalar float32 tensor.
    """
    sigma = gate.sigma
    with torch.no_grad():
        s = sigma.detach().to(torch.float32)
        taps = gaussian_taps(s, gate.normalisation)
        derivative = gaussian_taps_derivative(taps, s, gate.normalisation) if sigma.requires_grad else None
    labels = target.long().to(torch.float32).reshape(target.shape[0], *target.shape[2:]).contiguous()
    return _FusedEdgeLoss.apply(
        probabilities, sigma, labels, classes.to(torch.float32), weights.to(torch.float64), taps, derivative,
        bool(constant_target),
    )  # fmt: skip


def _pointer(tensor: torch.Tensor | None, kind):
    return ctypes.cast(tensor.data_ptr(), ctypes.POINTER(kind)) if tensor is not None else None


def _f32(tensor):
    return _pointer(tensor, ctypes.c_float)


def _f64(tensor):
    return _pointer(tensor, ctypes.c_double)


def _sizes(probabilities: torch.Tensor) -> tuple[int, int, int, int, int]:
    """B C Z Y X of a B C Y X or B C Z Y X tensor (Z = 1 for images)."""
    b, c, *spatial = probabilities.shape
    return (b, c, 1, *spatial) if len(spatial) == 2 else (b, c, *spatial)


def _check(status: int) -> None:
    if status != 0:
        raise MemoryError("edge gate: the fused CPU kernel could not allocate its slice buffers")


class _FusedEdgeLoss(torch.autograd.Function):
    """Forward: the per-class sums of |D| in one kernel call (keeping the mask, sign(D) and the Gaussian passes'
    inputs when a gradient is wanted); backward: one more call from them."""

    @staticmethod
    def forward(ctx, probabilities, sigma, labels, classes, weights, taps, derivative, constant_target):
        sizes = _sizes(probabilities)
        save = ctx.needs_input_grad[0] or ctx.needs_input_grad[1]
        kept = [torch.empty(probabilities.shape, dtype=torch.float32) if save else None for _ in range(4)]
        abs_sums = torch.zeros(sizes[1], dtype=torch.float64)
        _check(
            native.library().filternet_edge_forward(
                _f32(probabilities), probabilities.stride(0), probabilities.stride(1), _f32(labels), *sizes,
                _f32(classes), _f32(taps), int(constant_target), int(save), *(_f32(t) for t in kept), _f64(abs_sums),
            )
        )  # fmt: skip
        voxels = probabilities.numel() // probabilities.shape[1]
        ctx.save_for_backward(weights, taps, derivative, *kept)
        ctx.voxels, ctx.sizes = voxels, sizes
        return ((abs_sums * weights).sum() / voxels).to(torch.float32)

    @staticmethod
    def backward(ctx, grad):
        weights, taps, derivative, mask, a, t, sign = ctx.saved_tensors
        scale = weights * (float(grad) / ctx.voxels)
        grad_probabilities = torch.empty(mask.shape, dtype=torch.float32)
        wants_sigma = ctx.needs_input_grad[1] and derivative is not None
        dsigma = torch.zeros((), dtype=torch.float64)
        _check(
            native.library().filternet_edge_backward(
                *ctx.sizes, _f32(taps), _f32(derivative if wants_sigma else None), _f64(scale),
                _f32(mask), _f32(a), _f32(t), _f32(sign), _f32(grad_probabilities), _f64(dsigma),
            )
        )  # fmt: skip
        grad_sigma = dsigma.to(torch.float32) if wants_sigma else None
        return grad_probabilities, grad_sigma, None, None, None, None, None, None
