"""Surface distances between a predicted and a reference mask: one expensive pass, then cheap metrics.

The expensive pass (:func:`compute_surface_distances`) finds both surfaces and, for every surface voxel,
the Euclidean distance in mm to the nearest surface voxel of the other mask. The metrics
(:func:`assd`, :func:`asd_pred_to_ref`, :func:`asd_ref_to_pred`, :func:`hd95`) are pure functions of
its result, as in DeepMind's ``surface-distance``.

Definitions match ``medpy.metric.binary`` 0.5.2 exactly: the surface of a mask is the mask minus its
binary erosion by the connectivity-1 structuring element (voxels outside the array count as background,
so a mask touching the array border has its border voxels on the surface), and distances come from
:func:`scipy.ndimage.distance_transform_edt` of the other surface's complement with ``sampling=spacing``.

- ASSD (Heimann et al. 2009): all distances from both surfaces pooled, divided by the total number of
  surface voxels. The paper's "ASSD" is the directed automated-to-manual mean, :func:`asd_pred_to_ref`.
- HD95: 95th percentile (linear interpolation, :func:`numpy.percentile`) of the pooled distances.

Empty masks: both empty -> every distance metric is NaN (and Dice NaN: the compartment is absent, there
is nothing to measure); exactly one empty -> every distance metric is +inf (and Dice 0: a missed or
hallucinated compartment is infinitely far from the truth, and no average may hide it).

Speed: all work happens in the bounding box of ``pred | ref``, found for all labels at once with
:func:`scipy.ndimage.find_objects`. Cropping changes nothing: outside the box both masks are empty, which
is what the erosion's ``border_value=0`` assumes, and the distance transform on the crop is exact because
every surface voxel lies inside it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi

from nnunet_filternet.labels import COMPARTMENTS
from nnunet_filternet.metrics.overlap import dice_from_counts, voxel_volume_ml

#: Column order of the rows returned by :func:`compartment_metrics` (after ``compartment``).
METRIC_COLUMNS: tuple[str, ...] = (
    "dice",
    "assd_mm",
    "hd95_mm",
    "asd_pred_to_ref_mm",
    "asd_ref_to_pred_mm",
    "volume_ref_ml",
    "volume_pred_ml",
)


@dataclass(frozen=True)
class SurfaceDistances:
    """Result of the expensive pass.

    Attributes:
        pred_to_ref_mm: (n_pred_surface,) distance of each predicted surface voxel to the reference surface.
        ref_to_pred_mm: (n_ref_surface,) distance of each reference surface voxel to the predicted surface.
        pred_empty: the predicted mask has no voxel.
        ref_empty: the reference mask has no voxel.
    """

    pred_to_ref_mm: np.ndarray
    ref_to_pred_mm: np.ndarray
    pred_empty: bool
    ref_empty: bool

    def empty_value(self) -> float | None:
        """NaN when both masks are empty, +inf when exactly one is, None when both have voxels."""
        if self.pred_empty and self.ref_empty:
            return float("nan")
        if self.pred_empty or self.ref_empty:
            return float("inf")
        return None


def surface_voxels(mask: np.ndarray) -> np.ndarray:
    """Boolean surface of a boolean mask: the mask minus its connectivity-1 erosion (outside = background)."""
    structure = ndi.generate_binary_structure(mask.ndim, 1)
    return mask & ~ndi.binary_erosion(mask, structure=structure, border_value=0)


def _validated_spacing(spacing: Sequence[float], ndim: int) -> np.ndarray:
    spacing = np.asarray(spacing, dtype=np.float64).ravel()
    if spacing.size != ndim or not np.all(spacing > 0):
        raise ValueError(f"spacing must be {ndim} positive numbers (mm, array axis order), got {spacing.tolist()}")
    return spacing


def _surface_distances_in_crop(pred: np.ndarray, ref: np.ndarray, spacing: np.ndarray) -> SurfaceDistances:
    """The expensive pass on masks cropped to (at least) the bounding box of ``pred | ref``."""
    pred_empty, ref_empty = not pred.any(), not ref.any()
    if pred_empty or ref_empty:
        empty = np.zeros(0, dtype=np.float64)
        return SurfaceDistances(empty, empty, pred_empty, ref_empty)
    pred_surface = surface_voxels(pred)
    ref_surface = surface_voxels(ref)
    to_ref = ndi.distance_transform_edt(~ref_surface, sampling=spacing)[pred_surface]
    to_pred = ndi.distance_transform_edt(~pred_surface, sampling=spacing)[ref_surface]
    return SurfaceDistances(to_ref, to_pred, False, False)


def _union_box(shape: Sequence[int], boxes: Sequence[tuple[slice, ...] | None], margin: int = 0):
    """Smallest box holding all ``boxes`` (None = empty), grown by ``margin`` voxels and clipped to ``shape``."""
    boxes = [b for b in boxes if b is not None]
    if not boxes:
        return None
    return tuple(
        slice(max(0, min(b[d].start for b in boxes) - margin), min(n, max(b[d].stop for b in boxes) + margin))
        for d, n in enumerate(shape)
    )


def _mask_box(mask: np.ndarray) -> tuple[slice, ...] | None:
    boxes = ndi.find_objects(mask.astype(np.uint8), max_label=1)
    return boxes[0]


def compute_surface_distances(pred: np.ndarray, ref: np.ndarray, spacing: Sequence[float]) -> SurfaceDistances:
    """Surface-to-surface distances of two boolean masks.

    Args:
        pred: boolean (or 0/1) mask, any dimension, e.g. (z, y, x).
        ref: boolean mask of the same shape.
        spacing: voxel size in mm per array axis (z, y, x for SimpleITK arrays).

    Returns:
        :class:`SurfaceDistances`; feed it to :func:`assd`, :func:`hd95`, ...
    """
    pred = np.asarray(pred).astype(bool, copy=False)
    ref = np.asarray(ref).astype(bool, copy=False)
    if pred.shape != ref.shape:
        raise ValueError(f"masks differ in shape: prediction {pred.shape}, reference {ref.shape}")
    spacing = _validated_spacing(spacing, pred.ndim)
    box = _union_box(pred.shape, [_mask_box(pred), _mask_box(ref)])
    if box is None:
        empty = np.zeros(0, dtype=np.float64)
        return SurfaceDistances(empty, empty, True, True)
    return _surface_distances_in_crop(pred[box], ref[box], spacing)


def assd(sd: SurfaceDistances) -> float:
    """Average symmetric surface distance (mm): pooled mean of both directions' distances."""
    special = sd.empty_value()
    if special is not None:
        return special
    return float(np.concatenate([sd.pred_to_ref_mm, sd.ref_to_pred_mm]).mean())


def asd_pred_to_ref(sd: SurfaceDistances) -> float:
    """Mean distance (mm) from the predicted surface to the reference surface (the paper's "ASSD")."""
    special = sd.empty_value()
    return special if special is not None else float(sd.pred_to_ref_mm.mean())


def asd_ref_to_pred(sd: SurfaceDistances) -> float:
    """Mean distance (mm) from the reference surface to the predicted surface."""
    special = sd.empty_value()
    return special if special is not None else float(sd.ref_to_pred_mm.mean())


def hd95(sd: SurfaceDistances) -> float:
    """95th percentile (mm) of the pooled surface distances of both directions."""
    special = sd.empty_value()
    if special is not None:
        return special
    return float(np.percentile(np.concatenate([sd.pred_to_ref_mm, sd.ref_to_pred_mm]), 95))


def compartment_metrics(
    pred: np.ndarray,
    ref: np.ndarray,
    spacing_zyx: Sequence[float],
    labels: Sequence[int] = (1, 2, 3, 4, 5),
) -> list[dict]:
    """Dice, surface distances and volumes of each label of two label maps.

    Args:
        pred: (z, y, x) integer label map (any dimension works), the prediction.
        ref: integer label map of the same shape, the reference (manual) segmentation.
        spacing_zyx: voxel size in mm per array axis (SimpleITK's ``GetSpacing()`` reversed).
        labels: positive label values to evaluate; values not listed are ignored.

    Returns:
        One dict per label, in order, with ``compartment`` (name from :data:`~nnunet_filternet.labels.COMPARTMENTS`
        or ``label_<v>``), ``label`` and the :data:`METRIC_COLUMNS` (Dice as a fraction, distances in mm,
        volumes in ml). Empty-mask conventions: see the module docstring.
    """
    pred = np.asarray(pred)
    ref = np.asarray(ref)
    if pred.shape != ref.shape:
        raise ValueError(f"label maps differ in shape: prediction {pred.shape}, reference {ref.shape}")
    for name, arr in (("prediction", pred), ("reference", ref)):
        if not np.issubdtype(arr.dtype, np.integer):
            raise ValueError(f"{name} label map must have an integer dtype, got {arr.dtype}")
    labels = [int(v) for v in labels]
    if any(v <= 0 for v in labels):
        raise ValueError(f"labels must be positive (0 is background), got {labels}")
    spacing = _validated_spacing(spacing_zyx, pred.ndim)
    voxel_ml = voxel_volume_ml(spacing)
    pred_boxes = ndi.find_objects(pred, max_label=max(labels))
    ref_boxes = ndi.find_objects(ref, max_label=max(labels))
    rows = []
    for label in labels:
        box = _union_box(pred.shape, [pred_boxes[label - 1], ref_boxes[label - 1]])
        p = pred[box] == label if box is not None else np.zeros((0,), bool)
        r = ref[box] == label if box is not None else np.zeros((0,), bool)
        n_pred, n_ref = int(p.sum()), int(r.sum())
        sd = _surface_distances_in_crop(p, r, spacing)
        name = COMPARTMENTS[label - 1] if label <= len(COMPARTMENTS) else f"label_{label}"
        rows.append(
            {
                "compartment": name,
                "label": label,
                "dice": dice_from_counts(n_pred, n_ref, int(np.count_nonzero(p & r))),
                "assd_mm": assd(sd),
                "hd95_mm": hd95(sd),
                "asd_pred_to_ref_mm": asd_pred_to_ref(sd),
                "asd_ref_to_pred_mm": asd_ref_to_pred(sd),
                "volume_ref_ml": n_ref * voxel_ml,
                "volume_pred_ml": n_pred * voxel_ml,
            }
        )
    return rows
