"""The parts of the edge gate's operator F(x | sigma) = G(sigma) * rho(L * x), as functions.

``L`` is the discrete Laplacian, ``rho`` clamps to [0, 1] and ``G`` the normalised 5-wide Gaussian (paper
eq. 2-6); their taps come from ``kernels.py``. :class:`~nnunet_filternet.edge.gate.EdgeGate` composes them
(``edges`` = rho(L * x), ``smooth`` = G(sigma) * x), and so does the edge loss, which smooths a difference of
two edge maps once. Every channel is filtered on its own. The filtered axes are the
in-plane ones (``axes``); the others are left alone, so a volume is filtered slice by slice. Borders are padded
by replication, so the image border is not an edge.

Both kernels are applied as sums of shifted copies rather than as convolutions: the Laplacian is a
5- (7-) point stencil and the normalised Gaussian is separable (the outer product of normalised 1D
Gaussians), so G is two (three) 1D passes of 5 taps; the Laplacian is one 3-tap pass per axis. Each pass
is one autograd function with its own backward (``_ShiftedSum``), where a depthwise convolution's weight
gradient (needed for sigma) is costly and autograd through narrowed views fills and copies a padded buffer
per tap. The result is the same as the dense kernels (tested against scipy.ndimage).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from nnunet_filternet.edge.kernels import DEFAULT_NORMALISATION, SECOND_DIFFERENCE, gaussian_taps
from nnunet_filternet.errors import FilterNetError


def resolve_axes(n_spatial_dims: int, axes: Sequence[int] | None) -> tuple[int, ...]:
    """Validate the filtered spatial axes; ``None`` means all spatial axes.

    Args:
        n_spatial_dims: number of spatial axes of the data, 2 or 3.
        axes: 0-based spatial axes to filter (two distinct axes), or None for all.

    Returns:
        The sorted tuple of filtered axes.
    """
    if n_spatial_dims not in (2, 3):
        raise FilterNetError(f"edge filter: expected 2 or 3 spatial axes, found {n_spatial_dims}")
    if axes is None:
        return tuple(range(n_spatial_dims))
    axes = tuple(sorted(int(a) for a in axes))
    if axes == tuple(range(n_spatial_dims)):  # all axes, as resolved earlier from None
        return axes
    if len(axes) != 2 or len(set(axes)) != 2 or not all(0 <= a < n_spatial_dims for a in axes):
        raise FilterNetError(
            f"edge filter: expected two distinct in-plane axes in 0..{n_spatial_dims - 1} (or None), found {axes}"
        )
    return axes


def _pad(x: torch.Tensor, axes: Sequence[int], radius: int) -> torch.Tensor:
    """Replicate-pad the spatial ``axes`` of ``x`` (B C *spatial) by ``radius`` on both sides."""
    pad = []
    for axis in reversed(range(x.ndim - 2)):  # F.pad lists the last axis first
        pad += [radius, radius] if axis in axes else [0, 0]
    return F.pad(x, pad, mode="replicate")


def _add_scaled(out: torch.Tensor, source: torch.Tensor, weight: torch.Tensor | float) -> None:
    """out += weight * source, in place; ``weight`` a 0-d tensor (on out's device) or a Python number."""
    if isinstance(weight, torch.Tensor):
        out.addcmul_(source, weight)
    else:
        out.add_(source, alpha=weight)


class _ShiftedSum(torch.autograd.Function):
    """y = sum_k w[k] * x shifted by k - r along one spatial axis (replicate borders), with a hand-written backward.

    Forward is the correlation of ``x`` with the 2r+1 taps ``w`` after replicate padding by r. Backward is its
    adjoint: the same taps scattered into a zero buffer of the padded size, whose r border entries on each side
    are added back onto the first / last voxel (the adjoint of replicate padding); the gradient of w[k] is the
    dot product of the incoming gradient with the k-th shifted window. Autograd through the same sum of
    narrowed views allocates, fills and copies a padded-size buffer per tap and per gradient; this does the
    work once (measured in docs/benchmarks.md, target 2).

    ``weights`` is a 1D tensor (trainable taps: the Gaussian's, from sigma) or a tuple of Python numbers
    (constant taps: the Laplacian's, which then never become a tensor, so nothing is copied to a GPU per step).
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, weights: torch.Tensor | tuple[float, ...], axis: int) -> torch.Tensor:
        n_taps = len(weights)
        dim, length, radius = axis + 2, x.shape[axis + 2], n_taps // 2
        padded = _pad(x, (axis,), radius)
        out = padded.narrow(dim, 0, length) * weights[0]
        for k in range(1, n_taps):
            _add_scaled(out, padded.narrow(dim, k, length), weights[k])
        if isinstance(weights, torch.Tensor):
            ctx.save_for_backward(padded if weights.requires_grad else None, weights)
            ctx.constant_taps = None
        else:
            ctx.constant_taps = tuple(float(w) for w in weights)
        ctx.axis = axis
        return out

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        if ctx.constant_taps is None:
            padded, weights = ctx.saved_tensors
        else:
            padded, weights = None, ctx.constant_taps
        n_taps = len(weights)
        dim, length, radius = ctx.axis + 2, grad.shape[ctx.axis + 2], n_taps // 2
        grad_x = grad_weights = None
        if ctx.needs_input_grad[0]:
            shape = list(grad.shape)
            shape[dim] += 2 * radius
            grad_padded = grad.new_zeros(shape)
            for k in range(n_taps):
                _add_scaled(grad_padded.narrow(dim, k, length), grad, weights[k])
            grad_x = grad_padded.narrow(dim, radius, length)
            if radius:
                grad_x.narrow(dim, 0, 1).add_(grad_padded.narrow(dim, 0, radius).sum(dim, keepdim=True))
                tail = grad_padded.narrow(dim, length + radius, radius).sum(dim, keepdim=True)
                grad_x.narrow(dim, length - 1, 1).add_(tail)
        if ctx.needs_input_grad[1]:
            grad_weights = torch.stack([torch.mul(grad, padded.narrow(dim, k, length)).sum() for k in range(n_taps)])
        return grad_x, grad_weights, None


def _shifted_sum(x: torch.Tensor, weights: torch.Tensor | tuple[float, ...], axis: int) -> torch.Tensor:
    """Correlate each channel of ``x`` (B C *spatial) with the odd-length 1D ``weights`` along spatial ``axis``.

    Borders are replicated. ``weights``: a 1D tensor (same dtype and device as ``x``; differentiable) or a tuple
    of numbers (constant). Differentiable in ``x``.
    """
    return _ShiftedSum.apply(x, weights, axis)


def _as_float(x: torch.Tensor) -> torch.Tensor:
    """float64 stays float64 (gradcheck); everything else is computed in float32."""
    return x if x.dtype == torch.float64 else x.float()


def laplacian_filter(x: torch.Tensor, axes: Sequence[int] | None = None) -> torch.Tensor:
    """L * x per channel, on ``axes`` (None: all spatial axes, 3D 7-point stencil for volumes).

    Args:
        x: tensor B C *spatial (2 or 3 spatial axes).
        axes: filtered spatial axes (0-based), see ``resolve_axes``.

    Returns:
        Tensor of the same shape, float32 (float64 if ``x`` is float64).
    """
    axes = resolve_axes(x.ndim - 2, axes)
    with torch.autocast(device_type=x.device.type, enabled=False):
        x = _as_float(x)
        out = _shifted_sum(x, SECOND_DIFFERENCE, axes[0])
        for axis in axes[1:]:
            out = out + _shifted_sum(x, SECOND_DIFFERENCE, axis)
        return out


def gaussian_filter(
    x: torch.Tensor,
    sigma: torch.Tensor,
    axes: Sequence[int] | None = None,
    normalisation: str = DEFAULT_NORMALISATION,
) -> torch.Tensor:
    """G(sigma) * x per channel, on ``axes``, with the 5-wide Gaussian; differentiable in ``sigma``.

    Args:
        x: tensor B C *spatial (2 or 3 spatial axes).
        sigma: scalar tensor, standard deviation in voxels (> 0).
        axes: filtered spatial axes (0-based), see ``resolve_axes``.
        normalisation: how tau enters the kernel and sigma's gradient (``kernels.GAUSSIAN_NORMALISATIONS``).

    Returns:
        Tensor of the same shape, float32 (float64 if ``x`` is float64).
    """
    axes = resolve_axes(x.ndim - 2, axes)
    with torch.autocast(device_type=x.device.type, enabled=False):
        x = _as_float(x)
        sigma = torch.as_tensor(sigma, device=x.device).to(x.dtype)
        weights = gaussian_taps(sigma, normalisation)
        for axis in axes:
            x = _shifted_sum(x, weights, axis)
        return x


def rho(x: torch.Tensor) -> torch.Tensor:
    """The paper's rho (eq. 3): x clamped to [0, 1] (a hard tanh shifted to [0, 1])."""
    return x.clamp(0.0, 1.0)
