"""Reading label maps with the checks every consumer needs: complete files, label values 0-5, matching grids."""

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
    """Read a label map file (complete, any SimpleITK format; :func:`~nnunet_filternet.utils.image_io.read_image`)
    and check its values.

    Raises:
        InputError: unreadable or truncated file, not a 3D scalar image, or values outside 0-5.
    """
    import SimpleITK as sitk

    from nnunet_filternet.utils.image_io import read_image

    path = Path(path)
    image = read_image(path, "label map")
    array = check_label_values(sitk.GetArrayFromImage(image), path)
    return LabelMap(path, array, tuple(float(s) for s in reversed(image.GetSpacing())), image)


def on_reference_grid(moving: LabelMap, reference: LabelMap, what: str = "prediction") -> np.ndarray:
    """``moving``'s labels in ``reference``'s voxel order, (z, y, x) uint8.

    The full grids are compared (size, spacing, origin, direction; :mod:`nnunet_filternet.utils.geometry`): the
    same voxels stored with flipped or permuted axes are reordered exactly, anything else is refused.

    Raises:
        InputError: naming ``moving``'s file: the two maps do not cover the same voxels (what differs is said).
    """
    from nnunet_filternet.utils.geometry import Grid, check_same_voxels

    mapping = check_same_voxels(Grid.of(moving.image), Grid.of(reference.image), moving.path, reference.path, what)
    return mapping.apply_zyx(moving.array)
