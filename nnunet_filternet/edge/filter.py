"""The functional L-rho-G operator of the edge gate: F(x | sigma) = G(sigma) * rho(L * x).

``L`` is the discrete Laplacian, ``rho`` clamps to [0, 1] and ``G`` the normalised 5-wide Gaussian (paper
eq. 2-6). Every channel is filtered on its own. The filtered axes are the in-plane ones (``axes``); the others
are left alone, so a volume is filtered slice by slice. Borders are padded by replication, so the image
border is not an edge.

Both kernels are applied as sums of shifted copies rather than as convolutions: the Laplacian is a
5- (7-) point stencil and the normalised Gaussian is separable (the outer product of normalised 1D
Gaussians), so G is two (three) 1D passes of 5 taps. These are a handful of element-wise ops with cheap
backward passes, where a depthwise convolution's weight gradient (needed for sigma) is costly; the result
is the same as the dense kernels of ``kernels.py`` (tested against scipy.ndimage).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from nnunet_filternet.edge.kernels import gaussian_kernel_1d
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


def _window(padded: torch.Tensor, shape: torch.Size, axes: Sequence[int], radius: int, axis: int, offset: int):
    """The block of ``padded`` with ``shape`` shifted by ``offset`` (in -radius..radius) along spatial ``axis``."""
    out = padded
    for a in axes:
        start = radius + (offset if a == axis else 0)
        out = out.narrow(a + 2, start, shape[a + 2])
    return out


def _gaussian_1d_pass(x: torch.Tensor, weights: torch.Tensor, axis: int) -> torch.Tensor:
    """Correlate each channel of ``x`` with the odd-length 1D ``weights`` along spatial ``axis`` (replicate)."""
    radius = weights.numel() // 2
    padded = _pad(x, (axis,), radius)
    out = weights[0] * padded.narrow(axis + 2, 0, x.shape[axis + 2])
    for k in range(1, weights.numel()):
        out = out + weights[k] * padded.narrow(axis + 2, k, x.shape[axis + 2])
    return out


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
        padded = _pad(x, axes, 1)
        out = (2 * len(axes)) * x
        for axis in axes:
            out = out - _window(padded, x.shape, axes, 1, axis, -1) - _window(padded, x.shape, axes, 1, axis, 1)
        return out


def gaussian_filter(x: torch.Tensor, sigma: torch.Tensor, axes: Sequence[int] | None = None) -> torch.Tensor:
    """G(sigma) * x per channel, on ``axes``, with the normalised 5-wide Gaussian; differentiable in ``sigma``.

    Args:
        x: tensor B C *spatial (2 or 3 spatial axes).
        sigma: scalar tensor, standard deviation in voxels (> 0).
        axes: filtered spatial axes (0-based), see ``resolve_axes``.

    Returns:
        Tensor of the same shape, float32 (float64 if ``x`` is float64).
    """
    axes = resolve_axes(x.ndim - 2, axes)
    with torch.autocast(device_type=x.device.type, enabled=False):
        x = _as_float(x)
        sigma = torch.as_tensor(sigma, device=x.device).to(x.dtype)
        weights = gaussian_kernel_1d(sigma)
        for axis in axes:
            x = _gaussian_1d_pass(x, weights, axis)
        return x


def lrhog_filter(x: torch.Tensor, sigma: torch.Tensor, axes: Sequence[int] | None = None) -> torch.Tensor:
    """F(x | sigma) = G(sigma) * rho(L * x), per channel, on ``axes``; differentiable in ``x`` and ``sigma``.

    Computed in float32 even under autocast (float64 input stays float64).

    Args:
        x: tensor B C *spatial, e.g. softmax probabilities or one-hot labels.
        sigma: scalar tensor, Gaussian standard deviation in voxels (> 0).
        axes: filtered spatial axes (0-based); None filters all spatial axes.

    Returns:
        Tensor of the same shape as ``x`` with values in [0, 1].
    """
    return gaussian_filter(laplacian_filter(x, axes).clamp(0.0, 1.0), sigma, axes)
