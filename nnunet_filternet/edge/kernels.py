"""The edge gate's two kernels as the 1D taps ``filter.py`` applies along each filtered axis.

Both kernels of the paper are separable: the Laplacian kL (eq. 4) is the sum over the filtered axes of the
1D second difference :data:`SECOND_DIFFERENCE` (in 2D exactly ``[[0,-1,0],[-1,4,-1],[0,-1,0]]``; in 3D the
7-point stencil), and the Gaussian kG(sigma) (eq. 5-6) is the outer product of 1D Gaussians, so it is
applied as one 5-tap pass per axis (:func:`gaussian_taps`). These are the only definitions of the two
kernels; the tests build the dense kernels independently (numpy, scipy) as their oracle.

**How tau enters sigma's gradient** (:data:`GAUSSIAN_NORMALISATIONS`). The paper's kG = tau [a_ij] with
a_ij = exp(-r^2 / (2 sigma^2)) / (2 pi sigma^2) and "tau a constant adjusting factor under a given sigma"
making the kernel sum to 1 (eq. 5-6); its eq. (12) writes dkG/dsigma = [da_ij/dsigma]. Every reading below
gives the same forward kernel at sigma = 1; they differ in sigma's gradient (and ``unit_energy`` also in the
forward at sigma != 1). docs/training.md ("Sigma") derives and measures each:

- ``tau_constant`` (default, the paper's eq. 12 as written): tau is recomputed from sigma in the forward but
  held constant in the backward, and a_ij keeps eq. 6's factor 1 / (2 pi sigma^2) (per axis
  1 / (sqrt(2 pi) sigma), so a 3D kernel gets the 3D density's factor).
- ``tau_differentiated``: the exact gradient of the sum-1 kernel (tau differentiated too).
- ``tau_constant_unscaled``: tau held constant, a_ij without eq. 6's factor 1 / (2 pi sigma^2).
- ``unit_energy`` (scale-invariant option): the kernel normalised to a constant sum of squares instead of a
  constant sum, scaled so that it equals the sum-1 kernel at sigma = 1.
"""

from __future__ import annotations

import math

import torch

from nnunet_filternet.errors import FilterNetError

#: The 1D second difference: the Laplacian kL is its sum over the filtered axes (centre 2 per axis). Symmetric, so
#: with replicate borders L is its own adjoint (``filter.py`` relies on that for its backward).
SECOND_DIFFERENCE: tuple[float, ...] = (-1.0, 2.0, -1.0)

#: Side length of the Gaussian kernel (paper: 5x5, centre at index 3 of 1..5).
GAUSSIAN_SIZE = 5

#: The readings of eq. (5), (6) and (12) (module docstring); the first is the default.
GAUSSIAN_NORMALISATIONS: tuple[str, ...] = (
    "tau_constant",
    "tau_differentiated",
    "tau_constant_unscaled",
    "unit_energy",
)
DEFAULT_NORMALISATION = GAUSSIAN_NORMALISATIONS[0]

#: The Gaussian's width at which ``unit_energy`` equals the sum-1 kernel (the paper's initial sigma).
UNIT_ENERGY_REFERENCE_SIGMA = 1.0


def check_normalisation(normalisation: str) -> str:
    """Return ``normalisation`` if it is one of :data:`GAUSSIAN_NORMALISATIONS`, else raise FilterNetError."""
    if normalisation not in GAUSSIAN_NORMALISATIONS:
        raise FilterNetError(
            f"edge gate: expected a Gaussian normalisation in {GAUSSIAN_NORMALISATIONS}, found {normalisation!r}"
        )
    return normalisation


def _radii(sigma: torch.Tensor, size: int) -> torch.Tensor:
    if size < 1 or size % 2 == 0:
        raise FilterNetError(f"gaussian_taps: expected an odd positive size, found {size}")
    radius = size // 2
    return torch.arange(-radius, radius + 1, dtype=sigma.dtype, device=sigma.device)


def _unit_energy_scale(size: int) -> float:
    """sqrt(sum g^2) / sum g of the unnormalised 1D Gaussian g at the reference sigma (a Python number)."""
    g = [math.exp(-(r**2) / (2 * UNIT_ENERGY_REFERENCE_SIGMA**2)) for r in range(-(size // 2), size // 2 + 1)]
    return math.sqrt(sum(v * v for v in g)) / sum(g)


def gaussian_taps(
    sigma: torch.Tensor, normalisation: str = DEFAULT_NORMALISATION, size: int = GAUSSIAN_SIZE
) -> torch.Tensor:
    """The 1D taps of kG(sigma) along one axis; the n-D kernel is their outer power.

    Args:
        sigma: scalar tensor, standard deviation in voxels (> 0); differentiable.
        normalisation: one of :data:`GAUSSIAN_NORMALISATIONS` (module docstring).
        size: odd number of taps, r = -size//2 .. size//2.

    Returns:
        Tensor of shape ``(size,)`` with ``sigma``'s dtype and device; it sums to 1 except for ``unit_energy``
        (constant sum of squares, sum 1 at sigma = 1).
    """
    check_normalisation(normalisation)
    sigma = torch.as_tensor(sigma)
    r = _radii(sigma, size)
    g = torch.exp(-(r**2) / (2 * sigma**2))
    if normalisation == "tau_differentiated":
        return g / g.sum()
    if normalisation == "tau_constant":
        a = g / (math.sqrt(2 * math.pi) * sigma)  # eq. 6 per axis: the n-D factor is (2 pi sigma^2)^(-n/2)
        return a / a.sum().detach()
    if normalisation == "tau_constant_unscaled":
        return g / g.sum().detach()
    return g / g.square().sum().sqrt() * _unit_energy_scale(size)


def gaussian_taps_derivative(taps: torch.Tensor, sigma: torch.Tensor, normalisation: str = DEFAULT_NORMALISATION):
    """d taps / d sigma of :func:`gaussian_taps` under each reading, in closed form from the taps themselves.

    With g_r = exp(-r^2 / (2 sigma^2)), dg_r / dsigma = g_r r^2 / sigma^3, and each reading's taps w are g times
    a factor, so dw_r / dsigma = w_r (r^2 / sigma^3 - c) with c the derivative of the log of that factor:
    ``tau_differentiated`` c = sum_r w_r r^2 / sigma^3 (the sum-1 factor 1 / sum g, differentiated);
    ``tau_constant`` c = 1 / sigma (eq. 6's 1 / (sqrt(2 pi) sigma); tau held constant); ``tau_constant_unscaled``
    c = 0; ``unit_energy`` c = sum_r w_r^2 r^2 / (sum_r w_r^2 sigma^3). This is what autograd gives through
    :func:`gaussian_taps` (tests/test_edge_sigma.py checks both against the same closed forms); the gate's
    separable pass uses it to take sigma's gradient as one directional derivative per axis instead of one dot
    product per tap (``filter.py``).

    Args:
        taps: the values of ``gaussian_taps(sigma, normalisation)``, shape ``(size,)``.
        sigma: scalar tensor, the standard deviation in voxels they were made with (not differentiated here).
        normalisation: one of :data:`GAUSSIAN_NORMALISATIONS`.

    Returns:
        Tensor of the shape, dtype and device of ``taps`` (no autograd history).
    """
    check_normalisation(normalisation)
    with torch.no_grad():
        taps, sigma = taps.detach(), sigma.detach()
        r2 = _radii(sigma, taps.numel()).square()
        if normalisation == "tau_differentiated":
            shift = (taps * r2).sum() / sigma**3
        elif normalisation == "tau_constant":
            shift = 1.0 / sigma
        elif normalisation == "tau_constant_unscaled":
            shift = 0.0
        else:
            energy = taps.square()
            shift = (energy * r2).sum() / (energy.sum() * sigma**3)
        return taps * (r2 / sigma**3 - shift)


def gaussian_taps_values(
    sigma: float, normalisation: str = DEFAULT_NORMALISATION, size: int = GAUSSIAN_SIZE
) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """:func:`gaussian_taps` and :func:`gaussian_taps_derivative` at a plain number, in Python floats (float64).

    The same closed forms without tensor operations (a few microseconds instead of some ninety for the two as
    tensors): the fused CPU kernel's inputs, which need values, not autograd. tests/test_edge_sigma.py checks
    them against the tensor functions for every reading.

    Args:
        sigma: standard deviation in voxels (> 0).
        normalisation: one of :data:`GAUSSIAN_NORMALISATIONS`.
        size: odd number of taps.

    Returns:
        (taps, d taps / d sigma), each ``size`` floats.
    """
    check_normalisation(normalisation)
    if size < 1 or size % 2 == 0:
        raise FilterNetError(f"gaussian_taps_values: expected an odd positive size, found {size}")
    r2 = [float(r * r) for r in range(-(size // 2), size // 2 + 1)]
    g = [math.exp(-q / (2 * sigma * sigma)) for q in r2]
    if normalisation == "unit_energy":
        norm = math.sqrt(sum(v * v for v in g)) / _unit_energy_scale(size)
    else:  # the sum-1 kernel (eq. 6's factor, where it is there, cancels in the forward)
        norm = sum(g)
    taps = [v / norm for v in g]
    cube = sigma**3
    if normalisation == "tau_differentiated":
        shift = sum(w * q for w, q in zip(taps, r2, strict=True)) / cube
    elif normalisation == "tau_constant":
        shift = 1.0 / sigma
    elif normalisation == "tau_constant_unscaled":
        shift = 0.0
    else:
        energy = [w * w for w in taps]
        shift = sum(e * q for e, q in zip(energy, r2, strict=True)) / (sum(energy) * cube)
    return tuple(taps), tuple(w * (q / cube - shift) for w, q in zip(taps, r2, strict=True))
