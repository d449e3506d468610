"""What a leg's label map says about itself: per compartment size, share, fragments and position.

A leg label map is one leg in the conversion's leg space (``filternet convert``): numpy axes (superior,
posterior, left), right legs mirrored to look like left ones, so that training labels (``labelsTr``) and leg
predictions are measured alike. Sizes are normalised by the leg's labelled length, so that a scan with fewer or
thicker slices than the training scans is compared fairly:

- ``area_cm2``: the compartment's volume (ml) / the length (cm) of the leg's labelled slices: its mean
  cross-sectional area over the leg.
- ``share``: its voxels / the leg's labelled voxels.
- ``fragments``: the share of its voxels outside its largest connected component (26-connectivity), and
  ``components`` the number of components.
- ``posterior_mm``: the mean posterior coordinate of its voxels (mm from the leg image's first row).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from nnunet_filternet.labels import COMPARTMENTS


@dataclass(frozen=True)
class CompartmentMeasure:
    """One compartment of one leg (module docstring). NaN where the compartment is absent."""

    voxels: int
    volume_ml: float
    area_cm2: float
    share: float
    components: int
    fragments: float
    posterior_mm: float

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class LegMeasure:
    """A leg: its image's slices, its labelled slices and their length, and each compartment's measure."""

    image_slices: int
    slices: int
    length_cm: float
    compartments: dict[str, CompartmentMeasure]


def _components(mask: np.ndarray) -> tuple[int, float]:
    """(number of 26-connected components, share of voxels outside the largest) of a non-empty mask."""
    from scipy import ndimage

    labelled, n = ndimage.label(mask, structure=np.ones((3, 3, 3), bool))
    if n <= 1:
        return n, 0.0
    sizes = np.bincount(labelled.ravel())[1:]
    return n, float(1.0 - sizes.max() / sizes.sum())


def measure_leg(labels: np.ndarray, spacing_zyx) -> LegMeasure:
    """Measure one leg label map.

    Args:
        labels: (superior, posterior, left) integer labels 0..5 of one leg in leg space.
        spacing_zyx: voxel size (mm) along those axes.

    Returns:
        the :class:`LegMeasure` (NaN sizes for absent compartments, NaN areas when nothing is labelled).
    """
    labels = np.asarray(labels)
    dz, dy, dx = (float(s) for s in spacing_zyx)
    labelled = labels > 0
    slices = int(labelled.any(axis=(1, 2)).sum())
    length_cm = slices * dz / 10.0
    total = int(labelled.sum())
    voxel_ml = dz * dy * dx / 1000.0
    rows = np.arange(labels.shape[1], dtype=np.float64) * dy
    out = {}
    nan = float("nan")
    for value, name in enumerate(COMPARTMENTS, start=1):
        mask = labels == value
        n = int(mask.sum())
        if n == 0:
            out[name] = CompartmentMeasure(0, 0.0, 0.0 if slices else nan, 0.0 if total else nan, 0, nan, nan)
            continue
        components, fragments = _components(mask)
        per_row = mask.sum(axis=(0, 2))
        out[name] = CompartmentMeasure(
            voxels=n,
            volume_ml=n * voxel_ml,
            area_cm2=n * voxel_ml / length_cm,
            share=n / total,
            components=components,
            fragments=fragments,
            posterior_mm=float((per_row * rows).sum() / n),
        )
    return LegMeasure(int(labels.shape[0]), slices, length_cm, out)
