"""The edge gates of the paper's Table III and the choice of their axes from a configuration's spacing.

- :class:`EdgeGate`: F(x | sigma) = G(sigma) * rho(L * x) (eq. 2), sigma trainable (FilterNet) or fixed at
  its initial value (Table III's "F_LrhoG(sigma = 1)"), trained as log sigma (default) or as sigma itself
  (:data:`SIGMA_PARAMETRISATIONS`).
- :class:`LaplacianGate`: F_L(x) = L * x (Table III's "F_L": the Laplacian only, no rho, no Gaussian).

Both split the operator into ``edges`` (non-linear, per input) and ``smooth`` (linear), so that
``EdgeLoss`` can smooth the difference of two edge maps once: F(Y) - F(P) = smooth(edges(Y) - edges(P)).
``label_edges`` gives ``edges`` of a label map's one-hot channels; the ``EdgeGate`` reads them off the label
map without filtering (``targets.boundary_mask``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from nnunet_filternet.edge.filter import (
    equal_as_float,
    gaussian_filter,
    laplacian_filter,
    laplacian_rho,
    resolve_axes,
)
from nnunet_filternet.edge.kernels import DEFAULT_NORMALISATION, check_normalisation
from nnunet_filternet.edge.targets import boundary_mask
from nnunet_filternet.errors import FilterNetError

#: How a trained sigma is stored: ``log`` (the parameter ``log_sigma``, sigma = exp(log_sigma): positive, the
#: default) or ``direct`` (the parameter ``direct_sigma`` is sigma itself, so an optimizer's weight decay pulls
#: sigma towards 0, as a plain PyTorch parameter sigma would have been; docs/training.md, "Sigma").
SIGMA_PARAMETRISATIONS: tuple[str, ...] = ("log", "direct")

#: Floor of a ``direct`` sigma in the kernel (voxels): keeps the Gaussian defined if a step overshoots 0.
MIN_DIRECT_SIGMA = 0.05

#: nnU-Net's planner convolves an axis at the first stage when its spacing is below this multiple of the
#: finest spacing (``get_pool_and_conv_props``: ``current_spacing[d] / min(current_spacing) < 2``).
FIRST_STAGE_SPACING_RATIO = 2.0


def in_plane_axes_from_spacing(spacing: Sequence[float]) -> tuple[int, ...] | None:
    """Spatial axes the gate filters: those nnU-Net's planner gives a kernel of 3 at the first stage.

    nnU-Net plans the first stage's convolution kernel as 3 along an axis whose spacing is less than
    :data:`FIRST_STAGE_SPACING_RATIO` times the finest spacing and 1 along the others, so the gate acts on
    the same axes as the network's first convolutions: (7, 0.7, 0.7) mm and (7, 2.8, 2.8) mm -> (1, 2), in
    plane; (1.5, 1, 1) mm -> None (all axes, 3D kernels). 2D configurations return both axes.

    Args:
        spacing: voxel spacing in mm, in nnU-Net's axis order (e.g. (z, y, x)), 2 or 3 entries.

    Returns:
        Sorted 0-based spatial axes, e.g. ``(1, 2)``, or None for all three axes.

    Raises:
        FilterNetError: spacing of the wrong length, not positive, or only one fine axis (nnU-Net would
            convolve along one axis; the gate needs a plane).
    """
    spacing = [float(s) for s in spacing]
    if len(spacing) not in (2, 3) or not all(s > 0 for s in spacing):
        raise FilterNetError(f"in_plane_axes_from_spacing: expected 2 or 3 positive spacings (mm), found {spacing}")
    if len(spacing) == 2:
        return (0, 1)
    finest = min(spacing)
    fine = tuple(axis for axis, s in enumerate(spacing) if s / finest < FIRST_STAGE_SPACING_RATIO)
    if len(fine) == 3:
        return None
    if len(fine) != 2:
        raise FilterNetError(
            f"in_plane_axes_from_spacing: expected at most one thick-slice axis, found spacing {spacing} mm with "
            f"only axis {fine[0]} finer than {FIRST_STAGE_SPACING_RATIO:g} x {finest} mm; the gate needs a plane"
        )
    return fine


class EdgeGate(nn.Module):
    """F(x | sigma) = G(sigma) * rho(L * x) per channel, with a trainable (or fixed) Gaussian width sigma.

    sigma is parametrised as ``exp(log_sigma)``, so it stays positive and the gradient reaches it through
    the Gaussian kernel only (paper eq. 11-12). The state dict holds one entry, ``log_sigma``: a parameter
    when sigma is trained, a buffer when it is fixed (then the gate has no parameters). With
    ``parametrisation="direct"`` the one trained entry is ``direct_sigma``, sigma itself (used in the kernel
    as ``max(direct_sigma, MIN_DIRECT_SIGMA)``), so that weight decay acts on sigma.

    Args:
        n_spatial_dims: number of spatial axes of the data, 2 or 3.
        in_plane_axes: 0-based spatial axes filtered (two axes), or None for all axes (3D isotropic:
            7-point Laplacian and 5x5x5 Gaussian). See ``in_plane_axes_from_spacing``.
        sigma_init: initial sigma in voxels (paper: 1).
        train_sigma: False keeps sigma at ``sigma_init`` (Table III's fixed-sigma gate).
        normalisation: how tau enters kG and sigma's gradient (``kernels.GAUSSIAN_NORMALISATIONS``).
        parametrisation: ``log`` or ``direct`` (:data:`SIGMA_PARAMETRISATIONS`), for a trained sigma.
    """

    def __init__(
        self,
        n_spatial_dims: int,
        in_plane_axes: tuple[int, ...] | None,
        sigma_init: float = 1.0,
        train_sigma: bool = True,
        normalisation: str = DEFAULT_NORMALISATION,
        parametrisation: str = "log",
    ):
        super().__init__()
        if not sigma_init > 0:
            raise FilterNetError(f"EdgeGate: expected sigma_init > 0, found {sigma_init}")
        if parametrisation not in SIGMA_PARAMETRISATIONS:
            raise FilterNetError(
                f"EdgeGate: expected a sigma parametrisation in {SIGMA_PARAMETRISATIONS}, found {parametrisation!r}"
            )
        self.n_spatial_dims = n_spatial_dims
        self.axes = resolve_axes(n_spatial_dims, in_plane_axes)
        self.normalisation = check_normalisation(normalisation)
        if train_sigma and parametrisation == "direct":
            self.direct_sigma = nn.Parameter(torch.tensor(float(sigma_init), dtype=torch.float32))
            return
        log_sigma = torch.tensor(math.log(sigma_init), dtype=torch.float32)
        if train_sigma:
            self.log_sigma = nn.Parameter(log_sigma)
        else:
            self.register_buffer("log_sigma", log_sigma)

    @property
    def sigma(self) -> torch.Tensor:
        """Positive scalar tensor, the Gaussian standard deviation in voxels (carries gradients if trained)."""
        if "direct_sigma" in self._parameters:
            return self.direct_sigma.clamp_min(MIN_DIRECT_SIGMA)
        return self.log_sigma.exp()

    def stored_sigma(self) -> tuple[torch.Tensor, float, float]:
        """(the stored tensor, sigma, d sigma / d stored) as numbers, for code that differentiates by hand.

        ``log_sigma`` (parameter or buffer): sigma = exp(log_sigma), derivative sigma; ``direct_sigma``: sigma =
        max(direct_sigma, :data:`MIN_DIRECT_SIGMA`), derivative 1 at or above the floor and 0 below it (as
        ``clamp_min``'s gradient). One tensor read, no autograd node: the fused CPU edge loss (``fused_cpu.py``).
        """
        if "direct_sigma" in self._parameters:
            value = self.direct_sigma.item()
            return self.direct_sigma, max(value, MIN_DIRECT_SIGMA), float(value >= MIN_DIRECT_SIGMA)
        sigma = math.exp(self.log_sigma.item())
        return self.log_sigma, sigma, sigma

    def edges(self, x: torch.Tensor) -> torch.Tensor:
        """rho(L * x): the non-linear part, per channel (float32; float64 stays float64)."""
        return laplacian_rho(x, self.axes)

    def label_edges(self, labels: torch.Tensor, classes: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        """``edges`` of the one-hot maps of ``classes``, read off the label map without filtering (no gradient).

        rho(L * one_hot_c) is 1 exactly where a voxel of class c has a face neighbour of another class along
        the gate's axes (``targets.boundary_mask``), and 0 elsewhere: the same values as filtering, in a few
        passes over one channel instead of the Laplacian over every class.

        Args:
            labels: label map B 1 *spatial, values in 0..C-1 (any dtype: taken as ``labels.long()``).
            classes: LongTensor of the class indices wanted, one output channel each.
            dtype: float dtype of the result.

        Returns:
            Tensor B len(classes) *spatial of 0 and 1.
        """
        values = labels.long().to(dtype)  # small integers: exact in any float dtype; float compares are fast
        on_boundary = values.masked_fill_(boundary_mask(values, self.axes).logical_not_(), -1.0)
        shape = (labels.shape[0], classes.numel(), *labels.shape[2:])
        return equal_as_float(on_boundary, _channels(classes.to(dtype), labels.ndim), values.new_empty(shape))

    def smooth(self, x: torch.Tensor) -> torch.Tensor:
        """G(sigma) * x: the linear part, per channel."""
        return gaussian_filter(x, self.sigma, self.axes, self.normalisation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Filter every channel of ``x``.

        Args:
            x: tensor B C *spatial with ``n_spatial_dims`` spatial axes (any float dtype).

        Returns:
            Tensor of the same shape, float32 (float64 for float64 input), values >= 0 (<= 1 for the sum-1
            normalisations).
        """
        _check_shape(self, x)
        return self.smooth(self.edges(x))

    def extra_repr(self) -> str:
        trained = len(self._parameters) > 0
        direct = ", direct sigma" if "direct_sigma" in self._parameters else ""
        return (
            f"n_spatial_dims={self.n_spatial_dims}, axes={self.axes}, train_sigma={trained}, {self.normalisation}"
            f"{direct}"
        )


class LaplacianGate(nn.Module):
    """F_L(x) = L * x per channel: Table III's "Laplacian kernel only" gate (no rho, no Gaussian, no sigma).

    The paper names its operators by their parts: F_LoG = kG * kL * I (eq. 1), F_LrhoG = kG * rho(kL * I)
    (eq. 2); F_L is kL * I. It has no parameters and an empty state dict; ``sigma`` is None.

    Args:
        n_spatial_dims: number of spatial axes of the data, 2 or 3.
        in_plane_axes: 0-based spatial axes filtered (two axes), or None for all axes.
    """

    sigma = None

    def __init__(self, n_spatial_dims: int, in_plane_axes: tuple[int, ...] | None):
        super().__init__()
        self.n_spatial_dims = n_spatial_dims
        self.axes = resolve_axes(n_spatial_dims, in_plane_axes)

    def edges(self, x: torch.Tensor) -> torch.Tensor:
        """L * x, per channel (float32; float64 stays float64)."""
        return laplacian_filter(x, self.axes)

    def label_edges(self, labels: torch.Tensor, classes: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        """``edges`` of the one-hot maps of ``classes`` of the label map ``labels`` (B 1 *spatial; ``long()``)."""
        return self.edges((labels.long() == _channels(classes, labels.ndim)).to(dtype))

    def smooth(self, x: torch.Tensor) -> torch.Tensor:
        """The identity: this gate has no Gaussian."""
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """L * x for a tensor B C *spatial with ``n_spatial_dims`` spatial axes."""
        _check_shape(self, x)
        return self.edges(x)

    def extra_repr(self) -> str:
        return f"n_spatial_dims={self.n_spatial_dims}, axes={self.axes}"


def _channels(classes: torch.Tensor, ndim: int) -> torch.Tensor:
    """``classes`` (1D) as a 1 C 1 ... view that broadcasts against B 1 *spatial tensors of ``ndim`` axes."""
    return classes.view((1, -1) + (1,) * (ndim - 2))


def _check_shape(gate: nn.Module, x: torch.Tensor) -> None:
    if x.ndim != gate.n_spatial_dims + 2:
        raise FilterNetError(
            f"{type(gate).__name__}: expected a B C + {gate.n_spatial_dims} spatial axes tensor, "
            f"found shape {tuple(x.shape)}"
        )
