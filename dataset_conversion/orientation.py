"""Patient axes of a voxel grid: which index axis runs to the patient's left, posterior and superior.

SimpleITK's physical space is LPS: +x is the patient's Left, +y Posterior, +z Superior. For each of these
physical axes we pick the index axis whose direction cosine is closest to it (largest absolute
component) and note whether the index runs the opposite way. Permuting and flipping the voxel array
accordingly gives a "patient-aligned" array whose index axes are (left, posterior, superior) up to any
oblique residual (< 45 degrees) of the acquisition; this is exact and lossless (no resampling), and the
same permutation and flips undo it. It is what DICOM calls the closest "LPS" orientation
(``sitk.DICOMOrient``), done on numpy arrays so that crop boxes map between the two index spaces.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from nnunet_filternet.errors import FilterNetError


@dataclass(frozen=True)
class PatientAxes:
    """How source index axes map onto patient-aligned (L, P, S) axes.

    Attributes:
        axes: ``axes[k]`` is the source index axis that becomes patient axis k (0 left, 1 posterior,
            2 superior).
        flips: ``flips[k]`` is True when that source axis runs towards right / anterior / inferior.
    """

    axes: tuple[int, int, int]
    flips: tuple[bool, bool, bool]

    @classmethod
    def from_direction(cls, direction) -> PatientAxes:
        """Closest patient axes of a direction matrix (9 values row-major, SimpleITK order).

        Raises:
            FilterNetError: the direction matrix is degenerate (two index axes along one patient axis).
        """
        d = np.asarray(direction, float).reshape(3, 3)  # column j: physical direction of index axis j
        axes = tuple(int(np.argmax(np.abs(d[k]))) for k in range(3))
        if len(set(axes)) != 3:
            cosines = ", ".join(f"{v:.4g}" for v in d.ravel().tolist())
            raise FilterNetError(
                f"direction cosines ({cosines}) do not define three patient axes: two index axes lie 45 degrees or "
                "closer to the same patient axis (an oblique acquisition); reorient the scan first"
            )
        flips = tuple(bool(d[k, axes[k]] < 0) for k in range(3))
        return cls(axes=axes, flips=flips)  # type: ignore[arg-type]

    def to_patient(self, arr_xyz: np.ndarray) -> np.ndarray:
        """Source array in index order (x, y, z) -> patient-aligned array (left, posterior, superior)."""
        out = np.transpose(arr_xyz, self.axes)
        return np.flip(out, axis=[k for k in range(3) if self.flips[k]]) if any(self.flips) else out

    def from_patient(self, arr_lps: np.ndarray) -> np.ndarray:
        """Inverse of :meth:`to_patient`."""
        out = np.flip(arr_lps, axis=[k for k in range(3) if self.flips[k]]) if any(self.flips) else arr_lps
        return np.transpose(out, np.argsort(self.axes))

    def box_to_source(self, start, stop, size_xyz) -> tuple[list[int], list[int]]:
        """A box [start, stop) in patient-aligned indices -> (index, size) in source index order (x, y, z)."""
        index, size = [0, 0, 0], [0, 0, 0]
        for k, a in enumerate(self.axes):
            lo, hi = int(start[k]), int(stop[k])
            if self.flips[k]:
                lo, hi = int(size_xyz[a]) - hi, int(size_xyz[a]) - lo
            index[a], size[a] = lo, hi - lo
        return index, size
