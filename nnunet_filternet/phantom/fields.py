"""Smooth random fields defined in millimetres, so a subject looks the same at any resolution.

A field is a sum of Gaussian bumps (width ``corr_mm`` per axis) centred on a fixed lattice in
millimetres with standard-normal weights. The kernel is separable, so evaluating it on a grid is three
small matrix products (fast, no ``ndimage.zoom`` of large arrays). Because the lattice and the draws
depend only on the box in millimetres, never on the voxel grid, the same random numbers give the same
field whatever the image shape or spacing.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class FieldBox:
    """The axis-aligned box (mm) on which a field is defined, per axis ``(z, y, x)`` as (low, high).

    Coordinates outside the box are clamped to it, so the field is constant beyond its edges.
    """

    low: tuple[float, float, float]
    high: tuple[float, float, float]


def _axis_weights(coords: np.ndarray, low: float, high: float, corr: float) -> tuple[np.ndarray, int]:
    """Gaussian interpolation weights from lattice nodes to ``coords`` along one axis.

    Returns:
        (M, K): M of shape (len(coords), K), rows scaled so that the field has unit variance at every
        coordinate; K lattice nodes spaced ``corr`` apart covering the box plus two widths each side.
    """
    nodes = np.arange(low - 2 * corr, high + 2 * corr + corr, corr)
    x = np.clip(np.asarray(coords, dtype=np.float64), low, high)
    m = np.exp(-0.5 * ((x[:, None] - nodes[None, :]) / corr) ** 2)
    m /= np.sqrt((m**2).sum(axis=1, keepdims=True))
    return m.astype(np.float32), len(nodes)


def smooth_field(
    rng: np.random.Generator,
    box: FieldBox,
    corr_mm: tuple[float, float, float],
    z_mm: np.ndarray,
    y_mm: np.ndarray,
    x_mm: np.ndarray,
) -> np.ndarray:
    """A standard-normal random field (mean 0, variance 1 at every point) sampled on a grid.

    Args:
        rng: random generator; exactly one array of lattice weights is drawn from it, whose size
            depends only on ``box`` and ``corr_mm``.
        box: the box in mm on which the field lives.
        corr_mm: correlation length (Gaussian kernel sigma) in mm per axis (z, y, x).
        z_mm, y_mm, x_mm: 1D grid coordinates in mm, lengths (nz,), (ny,), (nx,).

    Returns:
        float32 array (nz, ny, nx).
    """
    mz, kz = _axis_weights(z_mm, box.low[0], box.high[0], corr_mm[0])
    my, ky = _axis_weights(y_mm, box.low[1], box.high[1], corr_mm[1])
    mx, kx = _axis_weights(x_mm, box.low[2], box.high[2], corr_mm[2])
    weights = rng.standard_normal((kz, ky, kx), dtype=np.float32)
    out = np.tensordot(mz, weights, axes=(1, 0))  # (nz, ky, kx)
    out = np.matmul(out, mx.T)  # (nz, ky, nx)
    out = np.matmul(my[None], out)  # (nz, ny, nx)
    return np.ascontiguousarray(out, dtype=np.float32)
