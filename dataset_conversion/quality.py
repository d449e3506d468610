"""Measurements of the conversion on a phantom cohort: crop coverage, residual bias field, speed.

Run on a cohort written by ``filternet phantom --save-bias``::

    python -m nnunet_filternet.dataset_conversion.quality --cohort DIR [--timing K] [-j JOBS]

For every subject the scan is converted WITHOUT its labels (as in inference, so the crop boxes come from
the image alone), then:

- coverage: the share of each leg's labelled voxels inside that leg's crop, and the number of the
  other leg's labelled voxels inside it; and how far each scan is from the doubtful-split limits
  (:func:`split_margins`: the ratio of the two legs' footprint areas, the widest leg's width / depth).
  Which leg a voxel belongs to comes from the phantom's layout: its legs lie on either side of the plane
  x = gap_centre * gap_mm (subjects.csv).
- bias: coefficient of variation (std / mean) inside muscle (label > 0) of the scan before and after N4,
  of the true field, and of the ratio estimated / true field (0 = the field is recovered up to a
  constant factor).
- speed: :func:`nnunet_filternet.dataset_conversion.convert.time_conversion` on the first ``K`` scans.

``--gain A B`` multiplies every scan by ``exp(A x + B y)``, x and y running from -1 to 1 across the field of
view (index axes 0 and 1), before converting it: a strong smooth bias field (A = 1.5: a 20-fold gain along x).
The true field of the bias metrics is then the phantom's field times this gain.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from functools import partial
from pathlib import Path

import numpy as np


def gap_planes(cohort: Path) -> dict[str, float]:
    """subject -> x (mm) of the plane between its legs, from a phantom cohort's subjects.csv."""
    from nnunet_filternet.utils.subjects_table import read_subjects_table

    table = read_subjects_table(Path(cohort) / "subjects.csv", required=("subject", "gap_centre", "gap_mm"))
    return {s: float(r["gap_centre"]) * float(r["gap_mm"]) for s, r in table.rows.items()}


def physical_x(image) -> np.ndarray:
    """Patient left-right coordinate (mm, LPS x) of every voxel, indexed (x, y, z)."""
    size = image.GetSize()
    d = np.asarray(image.GetDirection()).reshape(3, 3)
    idx = np.meshgrid(*[np.arange(n) for n in size], indexing="ij")
    return image.GetOrigin()[0] + sum(d[0, j] * image.GetSpacing()[j] * idx[j] for j in range(3))


def cv(values: np.ndarray) -> float:
    """Coefficient of variation std / mean."""
    return float(values.std() / values.mean())


def gain_field(size, a: float, b: float) -> np.ndarray:
    """``exp(a x + b y)`` on a grid of ``size`` (x, y, z), x and y from -1 to 1 along index axes 0 and 1; (x, y, z)."""
    x = np.linspace(-1.0, 1.0, size[0])[:, None, None]
    y = np.linspace(-1.0, 1.0, size[1])[None, :, None]
    return np.broadcast_to(np.exp(a * x + b * y), tuple(size))


def with_gain(image, a: float, b: float):
    """``image`` (SimpleITK) times :func:`gain_field`, as float32 with the same grid."""
    import SimpleITK as sitk

    from nnunet_filternet.dataset_conversion.legs_of_scan import xyz_array

    arr = (xyz_array(image) * gain_field(image.GetSize(), a, b)).astype(np.float32)
    out = sitk.GetImageFromArray(np.ascontiguousarray(arr.transpose(2, 1, 0)))
    out.CopyInformation(image)
    return out


def split_margins(image) -> dict:
    """How far a scan is from the doubtful-split limits: footprint area ratio of its legs, widest leg's aspect.

    Computed as :func:`nnunet_filternet.dataset_conversion.legs_of_scan.legs_of_scan` does (tissue mask, patient axes,
    :func:`~nnunet_filternet.dataset_conversion.legs.find_legs`), on the scan as given.
    """
    from nnunet_filternet.dataset_conversion.legs import LegSettings, _extent, find_legs, footprint, tissue_mask
    from nnunet_filternet.dataset_conversion.legs_of_scan import xyz_array
    from nnunet_filternet.dataset_conversion.orientation import PatientAxes

    settings = LegSettings()
    axes = PatientAxes.from_direction(image.GetDirection())
    spacing = [image.GetSpacing()[a] for a in axes.axes]
    body = axes.to_patient(tissue_mask(xyz_array(image), image.GetSpacing(), settings, axes.axes[2]))
    boxes = find_legs(body, spacing, settings)
    flat = footprint(body, settings.min_component_fraction)
    areas, aspects = [], []
    for box in boxes:
        leg = flat[box.x_limits[0] : box.x_limits[1]]
        first, last = _extent(leg)
        areas.append(int(leg.sum()))
        aspects.append((last[0] - first[0] + 1) * spacing[0] / ((last[1] - first[1] + 1) * spacing[1]))
    return {"area_ratio": max(areas) / min(areas), "aspect": max(aspects)}


def measure_subject(subject: str, cohort: Path, plane_x: float, gain: tuple[float, float] | None = None) -> dict:
    """Coverage of both legs' crops and bias metrics of one phantom subject (see the module docstring).

    A scan whose legs cannot be found (a doubtful split) gets coverage 0 and its reason in ``error``.
    """
    import SimpleITK as sitk

    from nnunet_filternet.dataset_conversion.legs_of_scan import legs_of_scan, xyz_array
    from nnunet_filternet.errors import FilterNetError

    image = sitk.ReadImage(str(cohort / "images" / f"{subject}.nii.gz"))
    if gain is not None:
        image = with_gain(image, *gain)
    label = xyz_array(sitk.ReadImage(str(cohort / "labels" / f"{subject}.nii.gz")))
    try:
        result = legs_of_scan(image, None)
    except FilterNetError as e:
        zero = {f"{side}_{k}": 0 for side in "RL" for k in ("coverage", "other_voxels")}
        return {"subject": subject, **zero, "error": str(e)}
    x = physical_x(image)
    row: dict = {"subject": subject, **split_margins(image)}
    for side in ("R", "L"):
        leg = next((g for g in result.legs if g.side == side), None)
        own = (label > 0) & ((x > plane_x) if side == "L" else (x < plane_x))
        other = (label > 0) & ~own
        inside = np.zeros(label.shape, bool)
        if leg is not None:
            inside[tuple(slice(i, i + n) for i, n in zip(leg.crop_index, leg.crop_size))] = True
        row[f"{side}_coverage"] = float(inside[own].mean())
        row[f"{side}_other_voxels"] = int(inside[other].sum())
    muscle = label > 0
    scan, corrected = xyz_array(image).astype(np.float64), xyz_array(result.corrected).astype(np.float64)
    bias_file = cohort / "bias" / f"{subject}.nii.gz"
    row["cv_before"], row["cv_after"] = cv(scan[muscle]), cv(corrected[muscle])
    if bias_file.is_file():
        true = xyz_array(sitk.ReadImage(str(bias_file))).astype(np.float64)
        if gain is not None:
            true = true * gain_field(image.GetSize(), *gain)
        row["cv_true_field"] = cv(true[muscle])
        air = result.correction["intensities"]["air_level"]  # N4 corrected the scan measured from its air level
        row["cv_estimated_over_true"] = cv(((scan - air) / corrected / true)[muscle])
    row["seconds"] = result.seconds["total"]
    row["seconds_n4"] = result.seconds["n4"]
    return row


def measure_cohort(
    cohort: Path, jobs: int | None = None, subjects: list[str] | None = None, gain: tuple[float, float] | None = None
) -> list[dict]:
    """:func:`measure_subject` for every (or the given) subject of a phantom cohort, in parallel."""
    from nnunet_filternet.utils.parallel import parallel_map

    planes = gap_planes(cohort)
    names = subjects or sorted(planes)
    fn = partial(_measure_one, cohort=Path(cohort), planes=planes, gain=gain)
    rows = parallel_map(fn, names, jobs=jobs, desc="measure")
    groups = _groups(cohort)
    for r in rows:
        r["group"] = groups.get(r["subject"], "")
    return rows


def _measure_one(subject: str, cohort: Path, planes: dict[str, float], gain=None) -> dict:
    return measure_subject(subject, cohort, planes[subject], gain)


def _groups(cohort: Path) -> dict[str, str]:
    from nnunet_filternet.utils.subjects_table import read_subjects_table

    table = read_subjects_table(Path(cohort) / "subjects.csv", required=("subject", "group"))
    return {s: r["group"] for s, r in table.rows.items()}


def summarise(rows: list[dict]) -> dict:
    """Cohort summary: worst coverage, largest intrusion, mean bias metrics by group."""
    out: dict = {
        "subjects": len(rows),
        "min_own_coverage": min(min(r["R_coverage"], r["L_coverage"]) for r in rows),
        "max_other_leg_voxels": max(max(r["R_other_voxels"], r["L_other_voxels"]) for r in rows),
    }
    out["failed"] = {r["subject"]: r["error"] for r in rows if "error" in r}
    measured = [r for r in rows if "error" not in r]
    if measured:
        out["max_area_ratio"] = round(max(r["area_ratio"] for r in measured), 3)
        out["max_aspect"] = round(max(r["aspect"] for r in measured), 3)
    keys = ["cv_before", "cv_after", "cv_true_field", "cv_estimated_over_true"]
    for group in sorted({r["group"] for r in rows}):
        sel = [r for r in rows if r["group"] == group and "error" not in r]
        out[group] = {k: round(float(np.mean([r[k] for r in sel])), 4) for k in keys if sel and k in sel[0]}
        out[group]["n"] = len(sel)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m nnunet_filternet.dataset_conversion.quality", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--cohort", required=True, type=Path, help="phantom cohort folder (with --save-bias)")
    parser.add_argument("--timing", type=int, default=3, help="time the conversion of the first K scans (3)")
    parser.add_argument("-j", "--jobs", type=int, default=None, help="worker processes for the measurements")
    parser.add_argument("--csv", type=Path, help="also write the per-subject rows to this CSV")
    parser.add_argument(
        "--gain", type=float, nargs=2, metavar=("A", "B"), help="multiply each scan by exp(A x + B y) first"
    )
    args = parser.parse_args(argv)

    from nnunet_filternet.dataset_conversion.convert import time_conversion

    rows = measure_cohort(args.cohort, args.jobs, gain=tuple(args.gain) if args.gain else None)
    if args.csv:
        with args.csv.open("w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fieldnames=list(dict.fromkeys(k for r in rows for k in r)))
            writer.writeheader()
            writer.writerows(rows)
    summary = summarise(rows)
    images = sorted((args.cohort / "images").glob("*.nii.gz"))[: args.timing]
    summary["timing"] = [time_conversion(p) for p in images]
    json.dump(summary, sys.stdout, indent=2)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
