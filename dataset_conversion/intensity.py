"""Robust intensity statistics of a scan: constant fills, the air level, outliers.

Every step of the conversion that looks at absolute intensities (the Otsu body mask that N4 is fitted in and
the z-score is taken in, the tissue mask that finds the legs) first measures the scan with these statistics,
never with its minimum and maximum, so that none of them depends on:

- an intensity offset (a scanner's rescale intercept, +300 or -500): the **air level** is the
  ``low_percentile`` (0.5 %) of the scan's voxels, fills excluded, and intensities are measured from it;
  percentiles move with an offset exactly;
- **constant fills**: padding bands of any value, a blanked (constant) background, a half of the field of view
  filled with one value. A fill is a region of equal voxels, connected to the border of the grid, of at
  least half the smallest face of the grid (:func:`constant_fills`). Real MR signal is never constant over
  such a region (it carries noise); fills are taken as air;
- **isolated outliers** (a spike voxel of 1e7, a few of them, positive or negative): the scale is the
  ``high_percentile`` (99.5 %) above the air level; voxels more than ``outlier_factor`` times that above the
  air level are outliers. Below the air level there is no signal (magnitude images), so lower voxels are air.

:func:`clean_intensities` applies this to an array: fills set to the air level, everything clipped to
[air level, outlier limit], measured from the air level (air ~ 0, tissue > 0). A scan that is constant
(after fills) has no statistics and is an error.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from nnunet_filternet.errors import FilterNetError


@dataclass(frozen=True)
class IntensitySettings:
    """Parameters of :func:`intensity_statistics`.

    Attributes:
        low_percentile: Percentile (0-100) of the non-fill voxels taken as the air level.
        high_percentile: Percentile of the non-fill voxels taken as the bright end of the tissue.
        outlier_factor: Voxels above ``air + outlier_factor * (high - air)`` are outliers (clipped to that limit).
        max_samples: The percentiles are taken on every k-th non-fill voxel, k chosen to keep at most this many.
    """

    low_percentile: float = 0.5
    high_percentile: float = 99.5
    outlier_factor: float = 2.0
    max_samples: int = 1_000_000


@dataclass(frozen=True)
class IntensityStatistics:
    """What :func:`intensity_statistics` measured on an array.

    Attributes:
        fills: Bool array like the input: voxels of constant fills.
        air: Air level (image units).
        high: Bright end of the tissue (image units), > ``air``.
        limit: Outlier limit (image units): ``air + outlier_factor * (high - air)``.
    """

    fills: np.ndarray
    air: float
    high: float
    limit: float

    def as_dict(self) -> dict:
        """JSON-ready summary (no arrays)."""
        return {
            "air_level": self.air,
            "bright_level": self.high,
            "outlier_limit": self.limit,
            "fill_voxels": int(self.fills.sum()),
        }


def fill_min_voxels(shape) -> int:
    """Smallest fill, in voxels: half the smallest face of a grid of ``shape`` (at least 2)."""
    n = [int(s) for s in shape]
    faces = [int(np.prod(n)) // s for s in n if s > 0]
    return max(2, min(faces) // 2)


def _in_runs(arr: np.ndarray) -> np.ndarray:
    """Voxels equal to both neighbours along some axis (outside the grid counts as equal), bool like ``arr``."""
    runs = np.zeros(arr.shape, bool)
    for axis in range(arr.ndim):
        if arr.shape[axis] < 2:
            continue
        ahead = [slice(None)] * arr.ndim
        behind = [slice(None)] * arr.ndim
        ahead[axis], behind[axis] = slice(1, None), slice(None, -1)
        same = arr[tuple(ahead)] == arr[tuple(behind)]  # same[i] = arr[i + 1] == arr[i]
        pad = np.ones_like(np.take(same, [0], axis=axis))
        runs |= np.concatenate([pad, same], axis=axis) & np.concatenate([same, pad], axis=axis)
    return runs


def _touches_border(labels: np.ndarray, along: int | None) -> np.ndarray:
    """Label numbers present on the faces of a labelled grid, but for the two faces across axis ``along``."""
    faces = [np.take(labels, [0, -1], axis=a).ravel() for a in range(labels.ndim) if a != along]
    return np.unique(np.concatenate(faces)) if faces else np.zeros(0, labels.dtype)


def constant_fills(arr: np.ndarray, along: int | None = None) -> np.ndarray:
    """Voxels of constant fills: regions of one value connected to the grid's border, at least :func:`fill_min_voxels`.

    Regions of equal voxels (6-connected) are labelled in one pass (SimpleITK's scalar connected components
    with a difference threshold of 0); those that touch the border and are large enough are fills. Noise makes
    equal neighbours rare in real signal, so tissue is never a fill. The pass is skipped when no value is held
    by many voxels that equal both their neighbours along an axis (a fill's inside, or a one-voxel band's
    length), as in every float scan without fills.

    Args:
        arr: Intensities, any index order, shape (n0, n1, n2).
        along: The axis along the legs (superior-inferior), whose two end faces are not border; None: every face.

    Returns:
        Bool array like ``arr``.
    """
    import SimpleITK as sitk

    arr = np.asarray(arr)
    min_voxels = fill_min_voxels(arr.shape)
    _, counts = np.unique(arr[_in_runs(arr)], return_counts=True)
    if not np.any(counts >= min_voxels // 2):
        return np.zeros(arr.shape, bool)
    image = sitk.GetImageFromArray(arr if arr.dtype != bool else arr.astype(np.uint8))
    labels = sitk.GetArrayFromImage(sitk.ScalarConnectedComponent(image, 0.0, False))
    sizes = np.bincount(labels.ravel())
    keep = np.zeros(sizes.size, bool)
    border = _touches_border(labels, along)
    keep[border] = sizes[border] >= min_voxels
    keep[0] = False
    return keep[labels]


def intensity_statistics(
    arr: np.ndarray, along: int | None = None, settings: IntensitySettings = IntensitySettings()
) -> IntensityStatistics:
    """Fills, air level, bright end and outlier limit of an array (module docstring).

    Args:
        arr: Intensities, any shape, finite.
        along: The index axis along the legs (see :func:`constant_fills`), or None.
        settings: See :class:`IntensitySettings`.

    Raises:
        FilterNetError: every voxel is a fill, or the non-fill voxels hold (nearly) one value.
    """
    arr = np.asarray(arr)
    fills = constant_fills(arr, along)
    values = arr[~fills]
    if values.size == 0:
        raise FilterNetError(f"the scan holds one constant value ({arr.flat[0]:g}) everywhere: no tissue to find")
    sample = values[:: max(1, values.size // settings.max_samples)]  # a regular subsample: the same for any offset
    air, high = (float(v) for v in np.percentile(sample, [settings.low_percentile, settings.high_percentile]))
    if not high > air:
        raise FilterNetError(
            f"the scan's intensities have no spread ({settings.low_percentile:g} and {settings.high_percentile:g} "
            f"percentiles both {air:g}, constant fills left out): no tissue to find"
        )
    return IntensityStatistics(fills, air, high, air + settings.outlier_factor * (high - air))


def clean_intensities(arr: np.ndarray, stats: IntensityStatistics) -> np.ndarray:
    """Intensities measured from the air level: fills at 0, clipped to [0, limit - air]. float32 like ``arr``.

    Args:
        arr: Intensities, any shape, finite.
        stats: Its :func:`intensity_statistics`.
    """
    out = np.clip(np.asarray(arr, np.float64), stats.air, stats.limit) - stats.air
    out[stats.fills] = 0.0
    return out.astype(np.float32)
