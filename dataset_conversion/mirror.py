"""Source crop <-> leg image: patient alignment, then right legs mirrored to look like left legs.

A leg image's index axes are (left, posterior, superior). Mirroring a right leg across the sagittal
plane is a flip of the left-right axis; afterwards its lateral side is at high x, as in a left leg. Both
steps are flips and axis permutations of the voxel array: exact, lossless, undone by
:func:`from_leg`.
"""

from __future__ import annotations

import numpy as np

from nnunet_filternet.dataset_conversion.orientation import PatientAxes


def mirror_left_right(arr_lps: np.ndarray) -> np.ndarray:
    """Flip a patient-aligned array (left, posterior, superior) across the sagittal plane."""
    return arr_lps[::-1]


def to_leg(crop_xyz: np.ndarray, axes: PatientAxes, mirrored: bool) -> np.ndarray:
    """Source crop in source index order (x, y, z) -> leg array (left, posterior, superior)."""
    leg = axes.to_patient(crop_xyz)
    return mirror_left_right(leg) if mirrored else leg


def from_leg(leg_lps: np.ndarray, axes: PatientAxes, mirrored: bool) -> np.ndarray:
    """Leg array (left, posterior, superior) -> source crop in source index order (x, y, z)."""
    return axes.from_patient(mirror_left_right(leg_lps) if mirrored else leg_lps)
