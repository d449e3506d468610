"""Do two images cover the same voxels? Compare full grids (size, spacing, origin, direction), in millimetres.

Two files can hold the same physical voxels stored differently: axes flipped (RAS- against LPS-stored NIfTI)
or permuted (slices along x). :func:`array_on_grid` then reorders the voxel array by index, exactly (no
interpolation), so that element ``[k, j, i]`` is the voxel at the reference's index ``(i, j, k)``. Anything
else (a shift, another spacing, an oblique rotation of one of them) is refused with a message saying what
differs: a measurement on misaligned arrays is never made.

The test: after the index reordering, every voxel centre of one grid must lie within
:data:`GEOMETRY_TOLERANCE_MM` of the corresponding voxel centre of the other (the map is affine, so checking
the eight corner voxels suffices). This one number bounds origin, spacing and direction differences together,
over the whole field of view.
"""

from __future__ import annotations

import itertools
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nnunet_filternet.errors import InputError

#: Largest distance (mm) between corresponding voxel centres of two grids taken as the same voxels.
GEOMETRY_TOLERANCE_MM = 1e-3


@dataclass(frozen=True)
class Grid:
    """A voxel grid in SimpleITK's conventions (index order x, y, z; physical space LPS, mm).

    Attributes:
        size: voxels per index axis (x, y, z).
        spacing: voxel size per index axis, mm.
        origin: physical position of voxel (0, 0, 0), mm.
        direction: 3 x 3 row-major direction cosines (column j: physical direction of index axis j).
    """

    size: tuple[int, ...]
    spacing: tuple[float, ...]
    origin: tuple[float, ...]
    direction: tuple[float, ...]

    @classmethod
    def of(cls, image) -> Grid:
        """The grid of a SimpleITK image."""
        return cls(
            tuple(int(n) for n in image.GetSize()),
            tuple(float(s) for s in image.GetSpacing()),
            tuple(float(o) for o in image.GetOrigin()),
            tuple(float(d) for d in image.GetDirection()),
        )

    @property
    def ndim(self) -> int:
        return len(self.size)

    def matrix(self) -> np.ndarray:
        """Direction cosines times spacing, (ndim, ndim): column j is the physical step of index axis j, mm."""
        return np.asarray(self.direction, float).reshape(self.ndim, self.ndim) * np.asarray(self.spacing)

    def points(self, index: np.ndarray) -> np.ndarray:
        """Physical points (n, ndim) of voxel indices (n, ndim) in (x, y, z) order."""
        return np.asarray(self.origin) + np.asarray(index, float) @ self.matrix().T

    def describe(self) -> str:
        """``size (..), spacing (..) mm, origin (..) mm, direction (..)`` with plain numbers."""
        return (
            f"size {_fmt(self.size)}, spacing {_fmt(self.spacing)} mm, origin {_fmt(self.origin)} mm, "
            f"direction {_fmt(self.direction)}"
        )


@dataclass(frozen=True)
class IndexMap:
    """How a moving grid's index axes map onto a reference grid's: ``aligned = flip(transpose(moving, axes))``.

    Attributes:
        axes: ``axes[a]`` is the moving index axis (x=0, y=1, z=2) that runs along reference axis ``a``.
        flips: ``flips[a]`` is True when it runs the other way.
    """

    axes: tuple[int, ...]
    flips: tuple[bool, ...]

    @property
    def identity(self) -> bool:
        return self.axes == tuple(range(len(self.axes))) and not any(self.flips)

    def apply_zyx(self, moving_zyx: np.ndarray) -> np.ndarray:
        """A (z, y, x) array of the moving grid -> (z, y, x) array in the reference's voxel order."""
        if self.identity:
            return moving_zyx
        reverse = tuple(range(moving_zyx.ndim))[::-1]
        aligned = np.transpose(np.transpose(moving_zyx, reverse), self.axes)
        flipped = [a for a, f in enumerate(self.flips) if f]
        if flipped:
            aligned = np.flip(aligned, axis=flipped)
        return np.ascontiguousarray(np.transpose(aligned, reverse))


def index_map(moving: Grid, reference: Grid) -> IndexMap | None:
    """The index reordering that lays ``moving``'s voxels onto ``reference``'s, or None if there is none.

    None when the grids are not the same voxels up to axis flips and permutations (see the module docstring).
    """
    n = reference.ndim
    if moving.ndim != n:
        return None
    try:
        m = np.linalg.solve(moving.matrix(), reference.matrix())  # column a: reference axis a in moving indices
    except np.linalg.LinAlgError:
        return None
    axes = tuple(int(np.argmax(np.abs(m[:, a]))) for a in range(n))
    if sorted(axes) != list(range(n)):
        return None
    flips = tuple(bool(m[axes[a], a] < 0) for a in range(n))
    if any(moving.size[axes[a]] != reference.size[a] for a in range(n)):
        return None
    mapping = IndexMap(axes, flips)  # type: ignore[arg-type]
    return mapping if corner_distance_mm(moving, reference, mapping) <= GEOMETRY_TOLERANCE_MM else None


def corner_distance_mm(moving: Grid, reference: Grid, mapping: IndexMap) -> float:
    """Largest distance (mm) between the reference's corner voxels and the moving voxels mapped onto them."""
    corners = np.array(list(itertools.product(*[(0, n - 1) for n in reference.size])), float)
    moving_index = np.zeros_like(corners)
    for a in range(reference.ndim):
        b = mapping.axes[a]
        moving_index[:, b] = (reference.size[a] - 1 - corners[:, a]) if mapping.flips[a] else corners[:, a]
    return float(np.linalg.norm(reference.points(corners) - moving.points(moving_index), axis=1).max())


def check_same_voxels(
    moving: Grid, reference: Grid, path: str | os.PathLike, reference_path: str | os.PathLike, what: str
) -> IndexMap:
    """:func:`index_map`, or an :class:`InputError` naming ``path`` and saying how the grids differ."""
    mapping = index_map(moving, reference)
    if mapping is not None:
        return mapping
    raise InputError(
        path,
        f"{what} does not cover the same voxels as {Path(reference_path).name}: {_difference(moving, reference)}; "
        f"expected {reference.describe()}, found {moving.describe()}",
    )


def array_on_grid(image, reference, path: str | os.PathLike, reference_path: str | os.PathLike, what: str):
    """The (z, y, x) voxel array of SimpleITK ``image`` in the voxel order of ``reference`` (an image or a Grid).

    Raises:
        InputError: the two grids are not the same voxels (module docstring); the message names ``path``.
    """
    import SimpleITK as sitk

    reference_grid = reference if isinstance(reference, Grid) else Grid.of(reference)
    mapping = check_same_voxels(Grid.of(image), reference_grid, path, reference_path, what)
    return mapping.apply_zyx(sitk.GetArrayFromImage(image))


def _difference(moving: Grid, reference: Grid) -> str:
    """The most telling difference between two grids, in words."""
    same_axes = IndexMap(tuple(range(reference.ndim)), (False,) * reference.ndim)
    if moving.ndim != reference.ndim:
        return f"{moving.ndim}D against {reference.ndim}D"
    if moving.size != reference.size and sorted(moving.size) != sorted(reference.size):
        return f"size {_fmt(moving.size)} against {_fmt(reference.size)}"
    if not np.allclose(sorted(moving.spacing), sorted(reference.spacing), rtol=0, atol=GEOMETRY_TOLERANCE_MM):
        return f"spacing {_fmt(moving.spacing)} mm against {_fmt(reference.spacing)} mm"
    if np.allclose(moving.direction, reference.direction, rtol=0, atol=1e-6) and moving.size == reference.size:
        drift = (
            f"{corner_distance_mm(moving, reference, same_axes):.3g} mm at most, tolerance {GEOMETRY_TOLERANCE_MM:g} mm"
        )
        if not np.allclose(moving.spacing, reference.spacing, rtol=0, atol=1e-9):  # a small spacing error adds up
            return (
                f"spacing {_fmt(moving.spacing)} mm against {_fmt(reference.spacing)} mm: the voxel centres drift "
                f"apart across the image ({drift})"
            )
        shift = np.asarray(moving.origin) - np.asarray(reference.origin)
        return f"shifted by {_fmt(shift)} mm ({drift})"
    return "the axes differ by more than a flip or a permutation (a rotation, or a shift after reordering)"


def _fmt(values) -> str:
    return "(" + ", ".join(f"{float(v):.6g}" for v in values) + ")"
