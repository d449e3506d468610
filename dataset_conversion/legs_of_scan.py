"""One scan (and its label map) -> its leg images, in memory.

Steps: robust clean-up (intensities measured from the air level, constant fills set to air, outlier voxels clipped:
:mod:`~nnunet_filternet.dataset_conversion.intensity`) -> N4 bias correction (fitted in the Otsu body mask of the
cleaned scan) -> z-score (mean and std inside the Otsu body mask of the corrected scan, applied to the whole scan)
-> tissue mask (local coefficient of variation, independent of brightness) in patient alignment -> leg boxes
(KMeans, :mod:`~nnunet_filternet.dataset_conversion.legs`), doubtful splits refused -> crop, align and mirror each
leg (:mod:`~nnunet_filternet.dataset_conversion.mirror`). The crop boxes come from the image alone; in training mode
every labelled voxel must fall inside them, and each leg must hold a labelled compartment.

Leg images keep the source spacing (permuted to the leg axes). They are written with identity direction
and, as origin, the physical position of the source voxel that became their first voxel. That geometry
is only for viewing: :mod:`~nnunet_filternet.dataset_conversion.restore` inverts the conversion from ``legs.json``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import SimpleITK as sitk

from nnunet_filternet.dataset_conversion.bias import N4Settings, clean_scan, n4_correct, otsu_mask, zscore
from nnunet_filternet.dataset_conversion.legs import LegBox, LegSettings, doubtful_split, find_legs, tissue_mask
from nnunet_filternet.dataset_conversion.mirror import to_leg
from nnunet_filternet.dataset_conversion.orientation import PatientAxes
from nnunet_filternet.errors import FilterNetError


class LabelMapError(FilterNetError):
    """The label map does not fit the legs found in the image (the caller names the label file)."""


@dataclass(frozen=True)
class ConversionSettings:
    """All parameters of the conversion of one scan.

    Attributes:
        n4: Bias correction.
        legs: Leg localisation.
        allow_unlabelled_legs: Training mode: keep a leg without any labelled compartment as an all-background
            case (otherwise it is an error naming the scan and side).
    """

    n4: N4Settings = field(default_factory=N4Settings)
    legs: LegSettings = field(default_factory=LegSettings)
    allow_unlabelled_legs: bool = False


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

    @property
    def labelled(self) -> bool | None:
        """Whether the leg label map holds a compartment (None without labels)."""
        return None if self.label is None else bool(np.any(sitk.GetArrayViewFromImage(self.label)))


@dataclass
class ScanLegs:
    """Result of :func:`legs_of_scan`.

    Attributes:
        legs: The legs, right leg first.
        axes: How the scan's index axes map to the patient's.
        correction: Robust intensity statistics, N4 and z-score parameters (JSON-ready, for legs.json).
        seconds: Wall-clock seconds of N4 and of the whole conversion.
        corrected: The cleaned, bias-corrected scan before z-scoring (float32, source grid; air ~ 0).
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
        label: Its label map (uint8, same grid) or None. The crop boxes come from the image alone; every
            labelled voxel must lie inside them.
        settings: Conversion parameters.

    Returns:
        A :class:`ScanLegs`, right leg first.

    Raises:
        FilterNetError: no body, or a doubtful split of the legs
        (:func:`~nnunet_filternet.dataset_conversion.legs.doubtful_split`).
        LabelMapError: labelled voxels outside the legs, an empty label map, or (unless
            ``settings.allow_unlabelled_legs``) a leg without any labelled compartment.
    """
    start = time.perf_counter()
    axes = PatientAxes.from_direction(image.GetDirection())
    robust = settings.legs.intensity
    scan, intensity_info = clean_scan(image, robust)
    corrected, n4_info, n4_seconds = n4_correct(scan, otsu_mask(scan, robust), settings.n4)
    normalised, z_info = zscore(corrected, otsu_mask(corrected, robust))
    spacing = [image.GetSpacing()[a] for a in axes.axes]
    body = axes.to_patient(tissue_mask(xyz_array(corrected), image.GetSpacing(), settings.legs, axes.axes[2]))
    boxes = find_legs(body, spacing, settings.legs)
    doubt = doubtful_split(body, boxes, spacing, settings.legs)
    if doubt is not None:
        raise FilterNetError(f"doubtful leg split, nothing written: {doubt}")
    source_label = None if label is None else xyz_array(label)
    if source_label is not None:
        check_labels_in_legs(axes.to_patient(source_label > 0), boxes, axes, settings.allow_unlabelled_legs)
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
    correction = {"intensities": intensity_info, "n4": n4_info, "zscore": z_info}
    return ScanLegs(legs, axes, correction, seconds, corrected)


def check_labels_in_legs(labelled: np.ndarray, boxes: list[LegBox], axes: PatientAxes, allow_unlabelled: bool) -> None:
    """Raise :class:`LabelMapError` unless every labelled voxel lies in a leg's crop box and each leg is labelled.

    Args:
        labelled: Patient-aligned bool mask of labelled voxels (left, posterior, superior).
        boxes: The legs' crop boxes (patient-aligned).
        axes: The scan's patient axes (to give a source index in the message).
        allow_unlabelled: A leg without labels is kept (an all-background case) instead of being an error.
    """
    if not labelled.any():
        raise LabelMapError("the label map is empty: no compartment is labelled (expected labels 1..5 on the legs)")
    inside = np.zeros(labelled.shape, bool)
    for box in boxes:
        inside[box.slices()] = True
    stray = labelled & ~inside
    if stray.any():
        where = tuple(int(v) for v in np.argwhere(stray)[0])
        source = [0, 0, 0]
        for k, a in enumerate(axes.axes):
            source[a] = labelled.shape[k] - 1 - where[k] if axes.flips[k] else where[k]
        raise LabelMapError(
            f"{int(stray.sum())} labelled voxel(s) lie outside the legs found in the image (more than the crop "
            f"margin away from the body), e.g. at voxel index {tuple(source)}; expected labels on the legs only"
        )
    empty = [b.side for b in boxes if not labelled[b.slices()].any()]
    if empty and not allow_unlabelled:
        other = [b.side for b in boxes if b.side not in empty]
        raise LabelMapError(
            f"the {' and '.join(empty)} leg has no labelled compartment (labels only on the {other[0]} leg); label "
            "every leg in the field of view, or pass --allow-unlabelled-legs to keep it as an all-background case"
        )


def first_voxel(index, size, axes: PatientAxes, mirrored: bool) -> tuple[int, int, int]:
    """Source index (x, y, z) of the voxel that becomes the leg image's voxel (0, 0, 0)."""
    out = [0, 0, 0]
    for k, a in enumerate(axes.axes):
        reverse = axes.flips[k] != (mirrored and k == 0)
        out[a] = int(index[a] + (size[a] - 1 if reverse else 0))
    return tuple(out)  # type: ignore[return-value]
