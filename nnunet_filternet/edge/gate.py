"""The trainable edge gate (``EdgeGate``) and the choice of its in-plane axes from the plans' spacing."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from nnunet_filternet.edge.filter import lrhog_filter, resolve_axes
from nnunet_filternet.errors import FilterNetError

#: nnU-Net's own threshold (``ANISO_THRESHOLD``): an axis is "thick" if its spacing is >= 3x the finest.
ANISOTROPY_THRESHOLD = 3.0


def in_plane_axes_from_spacing(
    spacing: Sequence[float], anisotropy_threshold: float = ANISOTROPY_THRESHOLD
) -> tuple[int, ...] | None:
    """Spatial axes on which the gate acts, from a configuration's voxel spacing.

    A 3D spacing is anisotropic when its largest entry is at least ``anisotropy_threshold`` times its
    smallest; the coarse (thick-slice) axis is then left alone and the other two are returned. Isotropic
    3D spacing returns None (full 3D kernels). 2D configurations return both axes.

    Args:
        spacing: voxel spacing in mm, in nnU-Net's axis order (e.g. (z, y, x)), 2 or 3 entries.
        anisotropy_threshold: ratio max/min spacing from which the data count as anisotropic.

    Returns:
        Sorted 0-based spatial axes, e.g. ``(1, 2)`` for (7, 0.7, 0.7) mm, or None for isotropic 3D.

    Raises:
        FilterNetError: spacing of the wrong length, not positive, or with two thick axes.
    """
    spacing = [float(s) for s in spacing]
    if len(spacing) not in (2, 3) or not all(s > 0 for s in spacing):
        raise FilterNetError(f"in_plane_axes_from_spacing: expected 2 or 3 positive spacings (mm), found {spacing}")
    if len(spacing) == 2:
        return (0, 1)
    finest = min(spacing)
    thick = [axis for axis, s in enumerate(spacing) if s >= anisotropy_threshold * finest]
    if not thick:
        return None
    if len(thick) > 1:
        raise FilterNetError(
            f"in_plane_axes_from_spacing: expected at most one thick-slice axis, found axes {thick} "
            f"of spacing {spacing} (>= {anisotropy_threshold} x {finest}); the gate needs one plane"
        )
    return tuple(axis for axis in range(3) if axis != thick[0])


class EdgeGate(nn.Module):
    """F(x | sigma) = G(sigma) * rho(L * x) per channel, with a trainable Gaussian width sigma.

    sigma is parametrised as ``exp(log_sigma)``, so it stays positive and the gradient reaches it through
    the Gaussian kernel only (paper eq. 11-12). The state dict holds one entry, ``log_sigma``.

    Args:
        n_spatial_dims: number of spatial axes of the data, 2 or 3.
        in_plane_axes: 0-based spatial axes filtered (two axes), or None for all axes (3D isotropic:
            7-point Laplacian and 5x5x5 Gaussian). See ``in_plane_axes_from_spacing``.
        sigma_init: initial sigma in voxels (paper: 1).
    """

    def __init__(self, n_spatial_dims: int, in_plane_axes: tuple[int, ...] | None, sigma_init: float = 1.0):
        super().__init__()
        if not sigma_init > 0:
            raise FilterNetError(f"EdgeGate: expected sigma_init > 0, found {sigma_init}")
        self.n_spatial_dims = n_spatial_dims
        self.axes = resolve_axes(n_spatial_dims, in_plane_axes)
        self.log_sigma = nn.Parameter(torch.tensor(math.log(sigma_init), dtype=torch.float32))

    @property
    def sigma(self) -> torch.Tensor:
        """Positive scalar tensor, the Gaussian standard deviation in voxels (carries gradients)."""
        return self.log_sigma.exp()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Filter every channel of ``x``.

        Args:
            x: tensor B C *spatial with ``n_spatial_dims`` spatial axes (any float dtype).

        Returns:
            Tensor of the same shape, float32 (float64 for float64 input), values in [0, 1].
        """
        if x.ndim != self.n_spatial_dims + 2:
            raise FilterNetError(
                f"EdgeGate: expected a B C + {self.n_spatial_dims} spatial axes tensor, found shape {tuple(x.shape)}"
            )
        return lrhog_filter(x, self.sigma, self.axes)

    def extra_repr(self) -> str:
        return f"n_spatial_dims={self.n_spatial_dims}, axes={self.axes}"
