"""The measured signals of one predicted scan: the scan's own quality, each leg's, each compartment's.

Inputs of a scan (as ``filternet predict`` leaves them): its ``legs.json`` records (which legs the conversion
found, their crop boxes, the estimated bias field's gain), the scan, its restored label map (same grid), its
leg predictions (leg space, :mod:`.measures`), the folds' agreement written while predicting
(:mod:`.predictor`), and the muscle and fat intensity modes of ``biomarkers.csv``.

Scan: ``snr`` (median intensity of the labelled muscle / the noise sigma of the air, sqrt(mean(air^2) / 2)
for Rayleigh-distributed air, the air being outside the legs' crop boxes; motion ghosts in the air lower it
too), ``bias_gain`` (N4's field, 99th / 1st percentile inside the body; recorded, not judged: docs/qc.md),
``slices`` (along the header's superior axis), ``slice_axis_ok`` (the thickest
voxel side runs superior-inferior, as in a calf scan; True for near-isotropic scans), ``legs_found``.
Leg: ``contrast`` ((fat mode - muscle mode) / fat mode), ``fov_slices`` (the share of the leg's labelled slices
whose labels touch the in-plane border of the image: a leg cut by the field of view), ``anatomy_ok`` (TA lies
in front of Sol and Gas; None when one of them is absent).
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from nnunet_filternet.qc.measures import LegMeasure, measure_leg

#: Air voxels needed for a noise estimate; fewer give an SNR of NaN.
MIN_AIR_VOXELS = 1000


@dataclass
class LegSignals:
    """One leg of a scan (module docstring); ``folds`` is the record of :mod:`.predictor` or None.

    ``contrast`` is None when no biomarker row was given (not judged), NaN when the biomarkers could not find
    the leg's muscle and fat intensities.
    """

    side: str
    side_from: str
    measure: LegMeasure
    contrast: float | None = None
    fov_slices: float = 0.0
    anatomy_ok: bool | None = None
    folds: dict | None = None


@dataclass
class ScanSignals:
    """One scan (module docstring) and its legs, right leg first."""

    subject: str
    snr: float
    bias_gain: float
    slices: int
    slice_axis_ok: bool
    legs: list[LegSignals] = field(default_factory=list)

    @property
    def legs_found(self) -> int:
        return len(self.legs)


def noise_snr(scan_zyx: np.ndarray, labels_zyx: np.ndarray, air_zyx: np.ndarray) -> float:
    """Median labelled intensity / noise sigma of the air (NaN: fewer than :data:`MIN_AIR_VOXELS` air voxels).

    Args:
        scan_zyx: the scan's magnitude intensities (z, y, x).
        labels_zyx: its label map on the same grid (the muscle whose signal is measured).
        air_zyx: bool, where the scan holds no body (:func:`air_mask`); labelled voxels are never counted.
    """
    scan = np.asarray(scan_zyx, dtype=np.float64)
    muscle = scan[labels_zyx > 0]
    air = scan[air_zyx & (labels_zyx == 0)]
    if muscle.size == 0 or air.size < MIN_AIR_VOXELS:
        return float("nan")
    sigma = math.sqrt(float(np.mean(air**2)) / 2.0)
    return float(np.median(muscle) / sigma) if sigma > 0 else float("inf")


def air_mask(shape_zyx, records) -> np.ndarray:
    """bool (z, y, x): outside every leg's crop box in-plane (the conversion's boxes hold each leg with a margin).

    The boxes come from the conversion's tissue mask, which does not depend on the noise level, so a noisy or
    ghosted scan keeps its air (and its ghosts count as noise there).
    """
    legs = np.zeros(shape_zyx, bool)
    for r in records:
        crop = list(reversed(r.crop_slices()))  # (z, y, x) order
        crop[2 - r.patient_axes[2]] = slice(None)  # every slice: the box in-plane
        legs[tuple(crop)] = True
    return ~legs


def border_slices(labels_zyx: np.ndarray, record) -> float:
    """Share of the record's leg's labelled slices whose labels touch the image's in-plane border.

    Args:
        labels_zyx: the restored label map on the scan's grid (z, y, x).
        record: the leg's ``legs.json`` record (crop box in source x, y, z order; ``patient_axes[2]`` the slice
            axis).
    """
    crop = tuple(reversed(record.crop_slices()))  # (z, y, x) order
    leg = labels_zyx[crop] > 0
    superior = 2 - record.patient_axes[2]  # zyx axis index of the superior axis
    size = record.geometry["size"]
    edge = np.zeros(leg.shape, bool)
    for a in range(3):  # source axis a = zyx axis 2 - a
        if a == record.patient_axes[2]:
            continue
        ax = 2 - a
        index = [slice(None)] * 3
        if record.crop_index[a] == 0:
            index[ax] = 0
            edge[tuple(index)] = True
        if record.crop_index[a] + record.crop_size[a] == size[a]:
            index[ax] = leg.shape[ax] - 1
            edge[tuple(index)] = True
    others = tuple(i for i in range(3) if i != superior)
    labelled = leg.any(axis=others)
    touching = (leg & edge).any(axis=others)
    return float(touching.sum() / labelled.sum()) if labelled.any() else 0.0


def anatomy_ok(measure: LegMeasure) -> bool | None:
    """Whether TA lies in front of (less posterior than) Sol and Gas; None when one of them is absent."""
    c = measure.compartments
    ta, behind = c["TA"].posterior_mm, [c["Sol"].posterior_mm, c["Gas"].posterior_mm]
    if not all(math.isfinite(v) for v in [ta, *behind]):
        return None
    return bool(ta < min(behind))


def read_modes(biomarkers_csv: str | Path | None) -> dict[tuple[str, str], tuple[float, float]]:
    """(subject, side) -> (muscle mode, fat mode) from a ``biomarkers.csv`` (empty when there is none)."""
    if biomarkers_csv is None or not Path(biomarkers_csv).is_file():
        return {}
    out = {}
    with open(biomarkers_csv, newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            try:
                out[(row["subject"], row["side"])] = (
                    float(row["muscle_mode"] or "nan"),
                    float(row["fat_mode"] or "nan"),
                )
            except (KeyError, ValueError):
                continue
    return out


def contrast(modes: tuple[float, float] | None) -> float | None:
    """(fat mode - muscle mode) / fat mode; None without modes, NaN when they are NaN or the fat mode not positive."""
    if modes is None:
        return None
    muscle, fat = modes
    return (fat - muscle) / fat if math.isfinite(muscle) and math.isfinite(fat) and fat > 0 else float("nan")


def scan_signals(
    subject: str,
    records: list,
    scan_path: Path,
    labels_path: Path,
    leg_predictions: Path,
    fold_folder: Path | None,
    modes: dict[tuple[str, str], tuple[float, float]],
) -> ScanSignals:
    """Measure one scan (module docstring).

    Args:
        subject: the scan's name.
        records: its ``legs.json`` records (one per leg found).
        scan_path: the scan (NIfTI); labels_path: its restored label map (same grid).
        leg_predictions: folder of the leg predictions ``<subject>_<side>.nii.gz``.
        fold_folder: folder of :mod:`.predictor`'s records, or None.
        modes: :func:`read_modes` of the biomarker table.
    """
    import SimpleITK as sitk

    from nnunet_filternet.qc.agreement import read_fold_signals
    from nnunet_filternet.qc.reference import read_leg
    from nnunet_filternet.utils.image_io import read_image

    scan_image = read_image(scan_path, "scan")
    scan = sitk.GetArrayFromImage(scan_image)
    labels = sitk.GetArrayFromImage(read_image(labels_path, "label map"))
    spacing_xyz = scan_image.GetSpacing()
    record = records[0]
    superior = record.patient_axes[2]
    anisotropic = max(spacing_xyz) > 1.5 * min(spacing_xyz)
    gains = [r.correction.get("n4", {}).get("field_gain", float("nan")) for r in records]
    signals = ScanSignals(
        subject=subject,
        snr=noise_snr(scan, labels, air_mask(scan.shape, records)),
        bias_gain=float(max(gains)),
        slices=int(scan_image.GetSize()[superior]),
        slice_axis_ok=bool(not anisotropic or spacing_xyz[superior] == max(spacing_xyz)),
    )
    for r in sorted(records, key=lambda r: r.side != "R"):
        measure = measure_leg(*read_leg(leg_predictions / f"{r.case}.nii.gz"))
        signals.legs.append(
            LegSignals(
                side=r.side,
                side_from=r.side_from,
                measure=measure,
                contrast=contrast(modes.get((subject, r.side))),
                fov_slices=border_slices(labels, r),
                anatomy_ok=anatomy_ok(measure),
                folds=read_fold_signals(fold_folder, r.case) if fold_folder is not None else None,
            )
        )
    return signals
