"""Intensity correction: robust clean-up, body mask (Otsu), N4 bias-field correction, z-score.

:func:`clean_scan` first measures the scan from its air level with fills (constant padding, a blanked
background) set to air and outliers (spike voxels) clipped (:mod:`~nnunet_filternet.dataset_conversion.intensity`); the
Otsu body mask (:func:`otsu_mask`) is taken on those robust statistics too, so neither N4 nor the z-score depends
on an intensity offset, a constant fill or a single extreme voxel.

N4 (Tustison et al. 2010) is the maintained successor of the N3 method the paper uses. It is fitted on
a copy shrunk in-plane only: slices are thick (7 mm against 0.7 mm pixels), so shrinking along the slice
axis would merge anatomy from different slices. The B-spline field is then rebuilt at full resolution
with ``GetLogBiasFieldAsImage`` on the full-resolution image, and the scan divided by it.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass

import numpy as np
import SimpleITK as sitk

from nnunet_filternet.dataset_conversion.intensity import IntensitySettings, clean_intensities, intensity_statistics
from nnunet_filternet.dataset_conversion.orientation import PatientAxes
from nnunet_filternet.errors import FilterNetError


@dataclass(frozen=True)
class N4Settings:
    """Parameters of :func:`n4_correct` (recorded in legs.json).

    Attributes:
        fit_spacing_mm: In-plane voxel size of the shrunk fitting grid, mm (shrink factor = this / spacing,
            rounded; in-plane axes are those thinner than twice the finest spacing).
        min_shrunk_size: Smallest number of voxels per shrunk axis (the factor is lowered for small scans).
        iterations: Maximum iterations per fitting level (one entry per level).
        convergence: Convergence threshold of each level.
        control_points: B-spline control points per axis at the first level (doubled per level).
        spline_order: B-spline order.
        fwhm: Full width at half maximum of the Gaussian bias model (log intensity).
        histogram_bins: Number of histogram bins for the sharpening.
        wiener_noise: Wiener filter noise for the deconvolution.
    """

    fit_spacing_mm: float = 4.0
    min_shrunk_size: int = 32
    iterations: tuple[int, ...] = (50, 50, 30)
    convergence: float = 1e-3
    control_points: int = 4
    spline_order: int = 3
    fwhm: float = 0.15
    histogram_bins: int = 200
    wiener_noise: float = 0.01

    def as_dict(self) -> dict:
        d = asdict(self)
        d["iterations"] = list(self.iterations)
        return d


def legs_axis(image: sitk.Image) -> int:
    """Index axis (x 0, y 1, z 2) closest to the patient's superior axis: the legs run along it."""
    return PatientAxes.from_direction(image.GetDirection()).axes[2]


def _zyx_axis(image: sitk.Image) -> int:
    """:func:`legs_axis` as an axis of SimpleITK's (z, y, x) arrays."""
    return 2 - legs_axis(image)


def clean_scan(image: sitk.Image, settings: IntensitySettings | None = None) -> tuple[sitk.Image, dict]:
    """The scan measured from its air level, fills at 0, outliers clipped (:func:`~.intensity.clean_intensities`).

    Args:
        image: The scan, any scalar pixel type and grid (3D).
        settings: Percentiles and outlier factor (default :class:`~.intensity.IntensitySettings`).

    Returns:
        ``(float32 image on the same grid, JSON-ready statistics)``.

    Raises:
        FilterNetError: a constant scan (no intensity spread outside fills).
    """
    arr = sitk.GetArrayFromImage(image).astype(np.float64)  # before float32: an offset of 1e8 keeps its detail
    stats = intensity_statistics(arr, _zyx_axis(image), settings or IntensitySettings())
    out = sitk.GetImageFromArray(clean_intensities(arr, stats))
    out.CopyInformation(image)
    return out, stats.as_dict()


def otsu_mask(image: sitk.Image, settings: IntensitySettings | None = None) -> sitk.Image:
    """Body (1) and background (0): above Otsu's threshold of the robust intensities. uint8, same grid as ``image``.

    The threshold is Otsu's on the histogram of the intensities clipped to [air level, bright end], fills
    counted as air (:mod:`~nnunet_filternet.dataset_conversion.intensity`); fills and outliers are never body. So an
    offset, a padded band or a spike voxel (which would stretch a min-max histogram until every other voxel falls
    into its first bin) leave the mask as it is.

    Args:
        image: Any scalar image (3D).
        settings: Percentiles and outlier factor (default :class:`~.intensity.IntensitySettings`).
    """
    arr = sitk.GetArrayFromImage(image).astype(np.float64)
    stats = intensity_statistics(arr, _zyx_axis(image), settings or IntensitySettings())
    values = np.where(stats.fills, stats.air, np.clip(arr, stats.air, stats.high))
    otsu = sitk.OtsuThresholdImageFilter()
    otsu.SetInsideValue(0)
    otsu.SetOutsideValue(1)
    otsu.Execute(sitk.GetImageFromArray(values.astype(np.float32)))
    body = (arr > otsu.GetThreshold()) & ~stats.fills & (arr <= stats.limit)
    mask = sitk.GetImageFromArray(body.astype(np.uint8))
    mask.CopyInformation(image)
    return mask


def shrink_factors(spacing, size, settings: N4Settings) -> list[int]:
    """Per-axis shrink factors: about ``fit_spacing_mm / spacing`` in-plane, 1 along thick axes.

    An axis is in-plane when its spacing is below twice the finest spacing (so an isotropic scan is shrunk
    along every axis and a 0.7 x 0.7 x 7 mm scan, to 4.2 mm, only along x and y). A factor is lowered
    until the shrunk axis keeps ``min_shrunk_size`` voxels.
    """
    finest = min(spacing)
    factors = []
    for s, n in zip(spacing, size):
        f = max(1, round(settings.fit_spacing_mm / s)) if s < 2 * finest else 1
        while f > 1 and n // f < settings.min_shrunk_size:
            f -= 1
        factors.append(f)
    return factors


def n4_correct(image: sitk.Image, mask: sitk.Image, settings: N4Settings) -> tuple[sitk.Image, dict, float]:
    """N4 bias-field correction of ``image`` (float32) inside ``mask``.

    Args:
        image: Scan, float32, any grid.
        mask: Where the field is fitted (uint8, 1 inside), same grid.
        settings: Fitting parameters.

    Returns:
        ``(corrected, info, seconds)``: ``image / exp(log_field)`` (float32, same grid), a JSON-ready
        record of the settings, shrink factors, iterations run and ``field_gain`` (the estimated field's
        99th / 1st percentile inside ``mask``: how strong the bias was), and the wall-clock seconds taken.
    """
    if not np.any(sitk.GetArrayViewFromImage(mask)):
        raise FilterNetError("N4: the Otsu body mask is empty (constant image?)")
    start = time.perf_counter()
    factors = shrink_factors(image.GetSpacing(), image.GetSize(), settings)
    small = sitk.Shrink(image, factors)
    small_mask = sitk.Shrink(mask, factors)
    n4 = sitk.N4BiasFieldCorrectionImageFilter()
    n4.SetMaximumNumberOfIterations(list(settings.iterations))
    n4.SetConvergenceThreshold(settings.convergence)
    n4.SetNumberOfControlPoints([settings.control_points] * 3)
    n4.SetSplineOrder(settings.spline_order)
    n4.SetBiasFieldFullWidthAtHalfMaximum(settings.fwhm)
    n4.SetNumberOfHistogramBins(settings.histogram_bins)
    n4.SetWienerFilterNoise(settings.wiener_noise)
    n4.Execute(small, small_mask)
    log_field = n4.GetLogBiasFieldAsImage(image)
    corrected = sitk.Cast(image / sitk.Exp(log_field), sitk.sitkFloat32)
    inside = sitk.GetArrayViewFromImage(log_field)[sitk.GetArrayViewFromImage(mask) > 0]
    low, high = np.percentile(inside, [1, 99])
    info = {
        "method": "SimpleITK N4BiasFieldCorrectionImageFilter",
        **settings.as_dict(),
        "shrink_factors": factors,
        "mask": "Otsu foreground (robust statistics) of the scan",
        "iterations_run": int(n4.GetElapsedIterations()),
        "field_gain": round(float(np.exp(high - low)), 4),
    }
    return corrected, info, time.perf_counter() - start


def zscore(image: sitk.Image, mask: sitk.Image) -> tuple[sitk.Image, dict]:
    """``(image - mean) / std`` with mean and std taken inside ``mask`` (the body), applied everywhere.

    Returns:
        ``(normalised float32 image, {"mean": ..., "std": ..., "mask": ...})``.
    """
    arr = sitk.GetArrayViewFromImage(image)
    inside = arr[sitk.GetArrayViewFromImage(mask) > 0].astype(np.float64)  # float32 squares under/overflow
    mean, std = float(inside.mean()), float(inside.std())
    if not std > 0:
        raise FilterNetError("z-score: intensities inside the body mask are constant")
    out = sitk.Cast((image - mean) / std, sitk.sitkFloat32)
    return out, {"mean": mean, "std": std, "mask": "Otsu foreground (robust statistics) of the bias-corrected scan"}
