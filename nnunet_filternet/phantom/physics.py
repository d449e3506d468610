"""MR physics of the phantom: T1 signal per tissue, thick slices, bias field, Rician noise, scanner scale.

The acquired image is ``scale * | bias * signal + sigma * (n1 + i n2) |`` with ``n1, n2`` independent
standard normals (magnitude of complex Gaussian noise = Rician), ``bias`` a smooth multiplicative field
and ``signal`` the tissue signal averaged over several thin sub-slices of each thick slice (partial volume).
"""

from __future__ import annotations

import numpy as np
from numpy.polynomial import legendre

from nnunet_filternet.phantom.anatomy import AIR, CORTEX, FAT, MARROW, MUSCLE, SKIN

#: T1-weighted signal of each tissue relative to fat (muscle's comes from the subject's ``muscle_signal``).
TISSUE_SIGNAL: dict[int, float] = {AIR: 0.0, SKIN: 0.45, FAT: 1.0, CORTEX: 0.03, MARROW: 0.9, MUSCLE: 0.0}

#: True fat fraction of each tissue (muscle's comes from the infiltration model).
TISSUE_FAT_FRACTION: dict[int, float] = {AIR: 0.0, SKIN: 0.0, FAT: 1.0, CORTEX: 0.0, MARROW: 0.9, MUSCLE: 0.0}

#: Signal of the fasciae (collagen) and of intramuscular vessels (dark flow voids, bright inflow).
FASCIA_SIGNAL = 0.08
VESSEL_DARK, VESSEL_BRIGHT = 0.06, 0.75


def lookup(table: dict[int, float]) -> np.ndarray:
    """A dict tissue -> value as a float32 lookup array indexed by tissue code."""
    out = np.zeros(max(table) + 1, np.float32)
    for k, v in table.items():
        out[k] = v
    return out


def subslice_offsets(n: int, thickness_mm: float) -> np.ndarray:
    """Centres (mm, relative to the slice centre) of ``n`` equal sub-slices filling one thick slice.

    ``n`` must be odd so that the middle sub-slice lies exactly at the slice centre (it gives the label).
    """
    if n < 1 or n % 2 == 0:
        raise ValueError(f"the number of sub-slices must be odd and positive, got {n}")
    return ((np.arange(n) + 0.5) / n - 0.5) * thickness_mm


def _legendre_basis(coords: np.ndarray, degree: int) -> np.ndarray:
    """Legendre polynomials 0..degree of the coordinates scaled to [-1, 1]: array (len(coords), degree + 1)."""
    t = coords / max(np.abs(coords).max(), 1e-9) if len(coords) > 1 else np.zeros(1)
    return np.stack([legendre.legval(t, np.eye(degree + 1)[i]) for i in range(degree + 1)], axis=1)


def bias_field(
    rng: np.random.Generator, x_mm: np.ndarray, y_mm: np.ndarray, z_mm: np.ndarray, amplitude: float
) -> np.ndarray:
    """Smooth multiplicative bias field spanning exactly ``[1 - amplitude, 1 + amplitude]`` on the grid.

    A random Legendre polynomial (degree 3 in x and y, 2 in z) of the normalised coordinates, scaled so
    that its minimum and maximum over the field of view map to ``1 -+ amplitude``.

    Args:
        rng: random generator (draws 4 * 4 * 3 coefficients).
        x_mm, y_mm, z_mm: grid coordinates (mm), lengths nx, ny, nz.
        amplitude: half the relative range, e.g. 0.3 for +-30 %.

    Returns:
        float32 array (nz, ny, nx).
    """
    # higher orders get smaller coefficients: mostly gentle gradients
    coef = rng.normal(size=(3, 4, 4)) / (1 + np.add.outer(np.add.outer(np.arange(3), np.arange(4)), np.arange(4)))
    bz, by, bx = _legendre_basis(z_mm, 2), _legendre_basis(y_mm, 3), _legendre_basis(x_mm, 3)
    field = np.einsum("zk,yj,xi,kji->zyx", bz, by, bx, coef, optimize=True)
    low, high = field.min(), field.max()
    field = (field - low) / max(high - low, 1e-12) * 2 - 1
    return (1 + amplitude * field).astype(np.float32)


def rician(signal: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """Magnitude of ``signal`` plus complex Gaussian noise of standard deviation ``sigma`` per channel (float32)."""
    real = rng.standard_normal(signal.shape, dtype=np.float32)
    real *= sigma
    real += signal
    imag = rng.standard_normal(signal.shape, dtype=np.float32)
    imag *= sigma
    return np.hypot(real, imag)
