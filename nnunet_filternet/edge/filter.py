"""The functional L-rho-G operator of the edge gate: F(x | sigma) = G(sigma) * rho(L * x).

``L`` is the discrete Laplacian, ``rho`` clamps to [0, 1] and ``G`` the normalised 5-wide Gaussian (paper
eq. 2-6). Every channel is filtered on its own by one depthwise (grouped) convolution per kernel. The
filtered axes are the in-plane ones (``axes``); the others get a kernel of size 1, so a volume is filtered
slice by slice. Borders are padded by replication, so the image border is not an edge.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from nnunet_filternet.edge.kernels import gaussian_kernel, laplacian_kernel
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


def _depthwise(x: torch.Tensor, kernel: torch.Tensor, axes: tuple[int, ...]) -> torch.Tensor:
    """Convolve each channel of ``x`` (B C *spatial) with ``kernel`` acting on ``axes``, replicate padding."""
    n_spatial = x.ndim - 2
    shape = [1] * n_spatial
    for axis, side in zip(axes, kernel.shape):
        shape[axis] = side
    weight = kernel.reshape(1, 1, *shape).expand(x.shape[1], 1, *shape)
    pad = []
    for side in reversed(shape):  # F.pad lists the last axis first
        pad += [side // 2, side // 2]
    padded = F.pad(x, pad, mode="replicate")
    conv = F.conv2d if n_spatial == 2 else F.conv3d
    return conv(padded, weight, groups=x.shape[1])


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
        return _depthwise(x, laplacian_kernel(len(axes), x.dtype, x.device), axes)


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
        return _depthwise(x, gaussian_kernel(sigma, len(axes)), axes)


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
