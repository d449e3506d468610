"""The edge loss in one fused CPU kernel (``edge/native``), as an autograd function, and when it applies.

``EdgeLoss`` hands its logits here when :func:`applies` says so: a float32 CPU tensor outside ``torch.compile``
and fake-tensor tracing, an ``EdgeGate`` (rho and the Gaussian) on the last two spatial axes (2D images, or 3D
volumes filtered in plane: the paper's data), the 5-tap Gaussian, each channel's block contiguous, and the kernel
built. Everywhere else (CUDA, float64, the Laplacian-only gate, 3D kernels) the PyTorch operators of
``edge/filter.py`` run, after ``torch.softmax``. Both compute the same loss, d loss / d logits and d loss / d sigma
(sigma's through d taps / d sigma, ``kernels.gaussian_taps_values``; the prediction's side only with
``constant_target``), up to float rounding: tests/test_edge_fused.py compares them.

The kernel takes the softmax itself (its own vectorised exp, within 2 ulp of expf), reads the label map in its
own dtype, and computes sigma's share already in the forward (sum sign(D) dD / dsigma per class), so that the
backward needs only the softmax and one byte per class and voxel (the clamp mask and sign(D)).

Why: at the small widths of the CPU demo the PyTorch operators make some 70 passes over the output per step
(about 5 ms, 5-7 % of a step); the kernel makes one pass forward and one backward per slice, in buffers that
stay in the cache (docs/benchmarks.md, issue 25).
"""

from __future__ import annotations

import ctypes
from collections.abc import Sequence

import torch
from torch._subclasses.fake_tensor import is_fake

from nnunet_filternet.edge import native
from nnunet_filternet.edge.gate import EdgeGate
from nnunet_filternet.edge.kernels import GAUSSIAN_SIZE, gaussian_taps_values

#: The label dtypes the kernel reads as they are (its ``load_labels`` type codes); others are converted to float32.
LABEL_TYPES = {
    torch.float32: 0, torch.float64: 1, torch.int16: 2, torch.int32: 3, torch.int64: 4, torch.uint8: 5, torch.int8: 6,
}  # fmt: skip


def applies(gate, logits: torch.Tensor) -> bool:
    """Whether the fused kernel computes this edge loss from these logits (see the module docstring)."""
    spatial = logits.ndim - 2
    return (
        isinstance(gate, EdgeGate)
        and logits.device.type == "cpu"
        and logits.dtype == torch.float32
        and spatial in (2, 3)
        and logits.numel() > 0
        and not torch.compiler.is_compiling()
        and not is_fake(logits)
        and gate.axes == tuple(range(spatial - 2, spatial))
        and GAUSSIAN_SIZE == 5
        and _blocks_contiguous(logits)
        and native.library() is not None
    )


def _blocks_contiguous(tensor: torch.Tensor) -> bool:
    """Whether each [b, k] block of a B K *spatial tensor is contiguous (the strides of a C-order block)."""
    expected = 1
    for size, stride in zip(reversed(tensor.shape[2:]), reversed(tensor.stride()[2:]), strict=True):
        if size != 1 and stride != expected:
            return False
        expected *= size
    return True


def fused_edge_loss(
    gate, logits: torch.Tensor, target: torch.Tensor, classes: Sequence[int], weights: Sequence[float],
    constant_target: bool,
) -> torch.Tensor:  # fmt: skip
    """sum_c w_c mean |G * (rho(L * softmax(logits)_c) - E_c)|, differentiable in ``logits`` and the gate's sigma.

    Args:
        gate: the ``EdgeGate`` (its sigma and normalisation).
        logits: B K *spatial float32 (the network's output; each channel's block contiguous).
        target: label map B 1 *spatial (any dtype; read as ``labels.long()``, like ``EdgeGate.label_edges``).
        classes: the C used class indices (class n is channel n and label value n).
        weights: the C class weights w_c.
        constant_target: sigma's gradient through the prediction's side only (``EdgeLoss``).

    Returns:
        Scalar float32 tensor.
    """
    stored, sigma, dsigma_dstored = gate.stored_sigma()
    taps, derivative = gaussian_taps_values(sigma, gate.normalisation)
    if target.dtype not in LABEL_TYPES:
        target = target.to(torch.float32)
    return _FusedEdgeLoss.apply(
        logits, stored, target.contiguous(), tuple(classes), tuple(weights), taps,
        [d * dsigma_dstored for d in derivative] if stored.requires_grad else None, bool(constant_target),
    )  # fmt: skip


def _sizes(logits: torch.Tensor) -> tuple[int, int, int, int, int]:
    """B K Z Y X of a B K Y X or B K Z Y X tensor (Z = 1 for images)."""
    b, k, *spatial = logits.shape
    return (b, k, 1, *spatial) if len(spatial) == 2 else (b, k, *spatial)


def _check(status: int) -> None:
    if status != 0:
        raise MemoryError("edge gate: the fused CPU kernel could not allocate its slice buffers")


def _floats(values: Sequence[float]) -> ctypes.Array:
    return (ctypes.c_float * len(values))(*values)


def _doubles(values: Sequence[float]) -> ctypes.Array:
    return (ctypes.c_double * len(values))(*values)


class _FusedEdgeLoss(torch.autograd.Function):
    """Forward: the softmax, the per-class sums of |D| and, for a trained sigma, of sign(D) dD / dstored in one kernel
    call (keeping the softmax and one byte per class and voxel, the clamp mask and sign(D), in one buffer, when a
    gradient is wanted); backward: one more call from them, the stored sigma's gradient from the forward's sums.
    The small inputs (taps, classes, weights) travel as Python numbers and ctypes arrays, and the upstream gradient
    as a pointer: besides the kernel's, two tensor operations each way (docs/benchmarks.md: each costs some 50
    microseconds when the caches are cold, as after a network's forward)."""

    @staticmethod
    def forward(ctx, logits, stored, target, classes, weights, taps, derivative, constant_target):
        b, k, z, y, x = _sizes(logits)
        c, voxels = len(classes), b * z * y * x
        save = ctx.needs_input_grad[0] or ctx.needs_input_grad[1]
        wants_sigma = save and ctx.needs_input_grad[1] and derivative is not None
        kept = torch.empty((4 * k + c) * voxels if save else 0, dtype=torch.uint8)  # the softmax, then the state
        probs, state = (kept.data_ptr(), kept.data_ptr() + 4 * k * voxels) if save else (None, None)
        channels, abs_sums, sigma_sums = (ctypes.c_int * c)(*classes), (ctypes.c_double * c)(), (ctypes.c_double * c)()
        taps = _floats(taps)
        _check(
            native.library().filternet_edge_forward(
                logits.data_ptr(), logits.stride(0), logits.stride(1), target.data_ptr(), LABEL_TYPES[target.dtype],
                b, k, c, z, y, x, channels, taps, _floats(derivative) if wants_sigma else None,
                int(constant_target), int(save), probs, state, abs_sums, sigma_sums,
            )
        )  # fmt: skip
        ctx.save_for_backward(kept)
        ctx.kernel = (b, k, c, z, y, x, channels, taps, _doubles(weights), voxels)
        ctx.shape = logits.shape
        ctx.sigma_sum = sum(w * v for w, v in zip(weights, sigma_sums, strict=True)) if wants_sigma else None
        return torch.tensor(sum(w * v for w, v in zip(weights, abs_sums, strict=True)) / voxels, dtype=torch.float32)

    @staticmethod
    def backward(ctx, grad):
        b, k, c, z, y, x, channels, taps, weights, voxels = ctx.kernel
        (kept,) = ctx.saved_tensors
        grad = grad.to(torch.float32).contiguous()
        grad_logits = None
        if ctx.needs_input_grad[0]:
            grad_logits = torch.empty(ctx.shape, dtype=torch.float32)
            _check(
                native.library().filternet_edge_backward(
                    b, k, c, z, y, x, channels, taps, weights, voxels, grad.data_ptr(), kept.data_ptr(),
                    kept.data_ptr() + 4 * k * b * z * y * x, grad_logits.data_ptr(),
                )
            )  # fmt: skip
        grad_stored = None
        if ctx.needs_input_grad[1] and ctx.sigma_sum is not None:
            grad_stored = grad * (ctx.sigma_sum / voxels)
        return grad_logits, grad_stored, None, None, None, None, None, None
