"""Fat fraction of muscle compartments from T1 intensities (two-tissue mixture) or from Dixon images.

T1 (no Dixon images): on T1-weighted MR, fat is bright and muscle (water) dark; a voxel partly replaced
by fat has an intensity between the two. Per subject and leg (:mod:`.biomarkers`: a bias field differs
most between the legs) we estimate the two pure-tissue intensities as modes (peaks of the intensity
density, a binned Gaussian kernel density estimate, :func:`density_peaks`):

- muscle (water) mode ``mu_w``: the lowest-intensity prominent peak of the leg's compartment voxels
  (all compartments). Fat only raises T1 signal, so healthy muscle is the darkest peak even
  when fatty compartments (patchy or diffuse infiltration) add peaks and mass at higher intensities.
- fat mode ``mu_f``: the highest peak of fat reference voxels: the shell within ``shell_mm`` (mm, 3D)
  around the compartments, outside them, brighter than the median compartment voxel (subcutaneous fat
  and marrow, present in healthy and dystrophic subjects alike).

A mixture's mean would be pulled towards the other tissue by partially infiltrated voxels; a peak is not.
A compartment's fat fraction is the linear two-tissue mixture model applied to its mean intensity,
``FF = clip((mean - mu_w) / (mu_f - mu_w), 0, 1)``: averaging before clipping keeps noise on pure
muscle from biasing FF upwards. The normalised T1 signal of a compartment is ``mean / mu_w`` (healthy
muscle ~ 1). Both are exact only on a bias-corrected image: a multiplicative bias field moves the local
tissue intensities away from the leg's modes (docs/evaluation.md gives the error measured on the phantom).

Dixon: ``FF = F / (F + W)`` per voxel (voxels with F + W <= 0 left out), averaged over the compartment.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi
from scipy.signal import find_peaks

#: Sample size used in Scott's rule for the density bandwidth (larger sets are not smoothed less).
MAX_SAMPLES = 20_000


@dataclass(frozen=True)
class TissueModes:
    """Pure-tissue T1 intensities of a subject's leg (image units)."""

    muscle: float
    fat: float


def fat_reference_values(
    image: np.ndarray, labels: np.ndarray, spacing_zyx: Sequence[float], shell_mm: float = 20.0
) -> np.ndarray:
    """Intensities of the bright voxels in a shell around the compartments (see the module docstring).

    Args:
        image: (z, y, x) intensities.
        labels: (z, y, x) compartment labels (0 = background).
        spacing_zyx: voxel size in mm.
        shell_mm: shell thickness in mm.

    Returns:
        (n,) intensities, possibly empty.
    """
    muscle = labels > 0
    if not muscle.any():
        return np.zeros(0, dtype=np.float64)
    grow = [int(np.ceil(shell_mm / s)) for s in spacing_zyx]
    box = ndi.find_objects(muscle.astype(np.uint8))[0]
    box = tuple(slice(max(0, b.start - g), min(n, b.stop + g)) for b, g, n in zip(box, grow, labels.shape))
    distance = ndi.distance_transform_edt(~muscle[box], sampling=spacing_zyx)
    shell = (distance > 0) & (distance <= shell_mm)
    values = image[box][shell].astype(np.float64)
    return values[values > np.median(image[muscle])]


def density_peaks(values: np.ndarray, prominence: float = 0.05, bins: int = 1024) -> tuple[np.ndarray, np.ndarray]:
    """Positions and heights of the prominent peaks of the intensity density, in increasing intensity.

    The density is a binned Gaussian kernel density estimate: a histogram of all values (between their
    0.5th and 99.5th percentiles, padded by three bandwidths) smoothed with a Gaussian of Scott's bandwidth
    ``std * min(n, 20000) ** (-1/5)``.

    Args:
        values: (n,) intensities, n >= 10.
        prominence: minimum peak prominence as a fraction of the highest density.
        bins: histogram bins.

    Returns:
        (positions, heights), each (n_peaks,).
    """
    values = np.asarray(values, dtype=np.float64).ravel()
    if values.size < 10 or np.ptp(values) == 0:
        raise ValueError(f"too few distinct voxels to find intensity modes ({values.size})")
    bandwidth = float(np.std(values)) * min(values.size, MAX_SAMPLES) ** (-0.2)
    lo, hi = np.percentile(values, [0.5, 99.5])
    lo, hi = lo - 3 * bandwidth, hi + 3 * bandwidth
    counts, edges = np.histogram(values, bins=bins, range=(lo, hi))
    density = ndi.gaussian_filter1d(counts.astype(np.float64), bandwidth / (edges[1] - edges[0]), mode="constant")
    peaks, _ = find_peaks(np.concatenate([[0.0], density, [0.0]]), prominence=prominence * density.max())
    peaks = peaks - 1
    return (edges[peaks] + edges[peaks + 1]) / 2, density[peaks]


def tissue_modes(muscle_values: np.ndarray, fat_values: np.ndarray) -> TissueModes:
    """Muscle mode (lowest peak of compartment intensities) and fat mode (highest peak of fat-reference ones).

    Raises:
        ValueError: too few voxels, or the fat mode is not above the muscle mode (no contrast).
    """
    muscle_peaks, _ = density_peaks(muscle_values)
    fat_peaks, fat_heights = density_peaks(fat_values)
    modes = TissueModes(muscle=float(muscle_peaks[0]), fat=float(fat_peaks[np.argmax(fat_heights)]))
    if not modes.fat > modes.muscle:
        raise ValueError(f"the fat mode ({modes.fat:g}) is not brighter than the muscle mode ({modes.muscle:g})")
    return modes


def t1_fat_fraction(mean_intensity: float, modes: TissueModes) -> float:
    """Fat fraction (0-1) of a compartment from its mean T1 intensity (linear two-tissue mixture, clipped)."""
    return float(np.clip((mean_intensity - modes.muscle) / (modes.fat - modes.muscle), 0.0, 1.0))


def dixon_fat_fraction(fat: np.ndarray, water: np.ndarray) -> float:
    """Mean of F / (F + W) over the given voxels (1D arrays of one compartment); NaN if no voxel has F + W > 0."""
    total = fat.astype(np.float64) + water.astype(np.float64)
    valid = total > 0
    return float(np.mean(fat[valid] / total[valid])) if valid.any() else float("nan")
