"""Reading label maps with the checks every consumer needs: label values 0-5, and matching grids."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nnunet_filternet.errors import InputError
from nnunet_filternet.labels import LABELS

#: Largest valid label value (PL).
MAX_LABEL = max(LABELS.values())


@dataclass(frozen=True)
class LabelMap:
    """A label map as an array with its geometry.

    Attributes:
        path: the file it was read from.
        array: (z, y, x) uint8 labels 0-5.
        spacing_zyx: voxel size in mm per array axis.
        image: the SimpleITK image (for geometry: origin, direction, physical points).
    """

    path: Path
    array: np.ndarray
    spacing_zyx: tuple[float, ...]
    image: object


def check_label_values(array: np.ndarray, path: str | os.PathLike) -> np.ndarray:
    """Return ``array`` as uint8 after checking that it holds only the integers 0-5.

    Raises:
        InputError: non-integer values or values outside 0-5 (the offending values are listed).
    """
    if not np.issubdtype(array.dtype, np.integer):
        rounded = np.round(array)
        if not np.array_equal(rounded, array):
            raise InputError(path, f"expected integer labels 0-{MAX_LABEL}, found non-integer values ({array.dtype})")
        array = rounded
    lo, hi = array.min(), array.max()
    if lo < 0 or hi > MAX_LABEL:
        bad = np.unique(array[(array < 0) | (array > MAX_LABEL)])
        shown = ", ".join(str(v) for v in bad[:10].tolist()) + (" ..." if bad.size > 10 else "")
        raise InputError(path, f"expected labels 0-{MAX_LABEL} ({', '.join(LABELS)}), found value(s) {shown}")
    return array.astype(np.uint8, copy=False)


def read_label_map(path: str | os.PathLike) -> LabelMap:
    """Read a label map file (any SimpleITK format) and check its values.

    Raises:
        InputError: unreadable file, or values outside 0-5.
    """
    import SimpleITK as sitk

    path = Path(path)
    try:
        image = sitk.ReadImage(str(path))
    except RuntimeError as e:
        raise InputError(path, f"expected a readable label map image, SimpleITK failed: {str(e).strip()[:200]}") from e
    if image.GetNumberOfComponentsPerPixel() != 1:
        raise InputError(path, f"expected a scalar label map, found {image.GetNumberOfComponentsPerPixel()} components")
    array = check_label_values(sitk.GetArrayFromImage(image), path)
    return LabelMap(path, array, tuple(float(s) for s in reversed(image.GetSpacing())), image)


def check_same_grid(pred: LabelMap, ref: LabelMap, rtol: float = 1e-4) -> None:
    """Raise :class:`InputError` (naming both files) if the two maps differ in shape or voxel spacing."""
    if pred.array.shape != ref.array.shape:
        raise InputError(
            pred.path, f"shape (z, y, x) {pred.array.shape} differs from the reference {ref.path}: {ref.array.shape}"
        )
    if not np.allclose(pred.spacing_zyx, ref.spacing_zyx, rtol=rtol, atol=1e-6):
        raise InputError(
            pred.path,
            f"spacing (z, y, x) {pred.spacing_zyx} mm differs from the reference {ref.path}: {ref.spacing_zyx} mm",
        )
