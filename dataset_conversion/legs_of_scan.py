"""One scan (and its label map) -> its leg images, in memory.

Steps: N4 bias correction (fitted in the Otsu body mask of the scan) -> z-score (mean and std inside the
Otsu body mask of the corrected scan, applied to the whole scan) -> patient alignment of that mask ->
leg boxes (Otsu + KMeans, :mod:`~dataset_conversion.legs`) -> crop, align and mirror each leg
(:mod:`~dataset_conversion.mirror`).

Leg images keep the source spacing (permuted to the leg axes). They are written with identity direction
and, as origin, the physical position of the source voxel that became their first voxel. That geometry
is only for viewing: :mod:`~dataset_conversion.restore` inverts the conversion from ``legs.json``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import SimpleITK as sitk

from dataset_conversion.bias import N4Settings, n4_correct, otsu_mask, zscore
from dataset_conversion.legs import LegBox, LegSettings, find_legs
from dataset_conversion.mirror import to_leg
from dataset_conversion.orientation import PatientAxes


@dataclass(frozen=True)
class ConversionSettings:
    """All parameters of the conversion of one scan."""

    n4: N4Settings = field(default_factory=N4Settings)
    legs: LegSettings = field(default_factory=LegSettings)


@dataclass
class Leg:
    """One converted leg.

    Attributes:
        box: The crop box in patient-aligned indices (side, extent).
        crop_index: First voxel of the crop in the source index order (x, y, z).
        crop_size: Crop size in voxels (x, y, z).
        image: Leg image (float32, z-scored), axes (left, posterior, superior).
        label: Leg label map (uint8) or None.
    """

    box: LegBox
    crop_index: list[int]
    crop_size: list[int]
    image: sitk.Image
    label: sitk.Image | None

    @property
    def side(self) -> str:
        return self.box.side

    @property
    def mirrored(self) -> bool:
        return self.box.side == "R"


@dataclass
class ScanLegs:
    """Result of :func:`legs_of_scan`.

    Attributes:
        legs: The legs, right leg first.
        axes: How the scan's index axes map to the patient's.
        correction: N4 and z-score parameters (JSON-ready, for legs.json).
        seconds: Wall-clock seconds of N4 and of the whole conversion.
        corrected: The bias-corrected scan before z-scoring (float32, source grid).
    """

    legs: list[Leg]
    axes: PatientAxes
    correction: dict
    seconds: dict
    corrected: sitk.Image


def xyz_array(image: sitk.Image) -> np.ndarray:
    """Voxel array of ``image`` indexed (x, y, z) (a transposed view of SimpleITK's (z, y, x))."""
    return sitk.GetArrayFromImage(image).transpose(2, 1, 0)


def image_from_xyz(arr: np.ndarray, spacing, origin, direction=(1, 0, 0, 0, 1, 0, 0, 0, 1)) -> sitk.Image:
    """SimpleITK image from an array indexed (x, y, z) and a grid."""
    img = sitk.GetImageFromArray(np.ascontiguousarray(arr.transpose(2, 1, 0)))
    img.SetSpacing([float(s) for s in spacing])
    img.SetOrigin([float(o) for o in origin])
    img.SetDirection([float(d) for d in direction])
    return img


def legs_of_scan(image: sitk.Image, label: sitk.Image | None = None, settings=ConversionSettings()) -> ScanLegs:
    """Convert one scan into its leg images (and leg label maps).

    Args:
        image: The scan, any pixel type and grid (3D, finite).
        label: Its label map (uint8, same grid) or None. In training mode the crop boxes are grown so that
            they hold every labelled voxel on their side of the cut between the legs.
        settings: Conversion parameters.

    Returns:
        A :class:`ScanLegs`, right leg first.
    """
    start = time.perf_counter()
    scan = sitk.Cast(image, sitk.sitkFloat32)
    corrected, n4_info, n4_seconds = n4_correct(scan, otsu_mask(scan), settings.n4)
    body = otsu_mask(corrected)
    normalised, z_info = zscore(corrected, body)
    axes = PatientAxes.from_direction(image.GetDirection())
    spacing = [image.GetSpacing()[a] for a in axes.axes]
    boxes = find_legs(axes.to_patient(xyz_array(body) > 0), spacing, settings.legs)
    source_label = None if label is None else xyz_array(label)
    if source_label is not None:
        labelled = axes.to_patient(source_label > 0)
        boxes = [b.covering(labelled) for b in boxes]
    source = xyz_array(normalised)
    legs = []
    for box in boxes:
        index, size = axes.box_to_source(box.start, box.stop, image.GetSize())
        crop = tuple(slice(i, i + n) for i, n in zip(index, size))
        origin = image.TransformIndexToPhysicalPoint(first_voxel(index, size, axes, box.side == "R"))
        leg_image = image_from_xyz(to_leg(source[crop], axes, box.side == "R"), spacing, origin)
        leg_label = None
        if source_label is not None:
            leg_label = image_from_xyz(to_leg(source_label[crop], axes, box.side == "R"), spacing, origin)
        legs.append(Leg(box, index, size, leg_image, leg_label))
    seconds = {"n4": round(n4_seconds, 3), "total": round(time.perf_counter() - start, 3)}
    return ScanLegs(legs, axes, {"n4": n4_info, "zscore": z_info}, seconds, corrected)


def first_voxel(index, size, axes: PatientAxes, mirrored: bool) -> tuple[int, int, int]:
    """Source index (x, y, z) of the voxel that becomes the leg image's voxel (0, 0, 0)."""
    out = [0, 0, 0]
    for k, a in enumerate(axes.axes):
        reverse = axes.flips[k] != (mirrored and k == 0)
        out[a] = int(index[a] + (size[a] - 1 if reverse else 0))
    return tuple(out)  # type: ignore[return-value]
