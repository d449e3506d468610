"""``filternet restore``: leg predictions -> one label map per scan, on the scan's own voxel grid.

For each scan in ``legs.json``, every leg prediction ``<pred_dir>/<subject>_<L|R>.nii.gz`` (as written by
``nnUNetv2_predict`` or nnU-Net's cross-validation) is un-mirrored, put back in the source's index order
and pasted into its crop box; the result is written as uint8 with the source's size, spacing, origin and
direction, copied from ``legs.json`` (so 3D Slicer and ITK-SNAP overlay it on the scan).

Scans with none of their legs predicted are skipped (a cross-validation fold predicts only its own
subjects). A scan with some but not all of its legs predicted is an error listing the missing files;
with ``keep_going`` the complete scans are still restored and the incomplete ones reported.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dataset_conversion.readers import EXTENSIONS
from dataset_conversion.records import LegRecord, by_subject, load_records
from nnunet_filternet.errors import FilterNetError, InputError
from nnunet_filternet.labels import LABELS


@dataclass(frozen=True)
class RestoreJob:
    """One scan to restore: its records, the matching prediction files and the output file."""

    subject: str
    records: tuple[LegRecord, ...]
    predictions: tuple[Path, ...]
    out: Path


@dataclass
class RestoreResult:
    """Written label maps, scans skipped (no leg predicted) and scans missing some legs (keep_going only)."""

    written: list[Path]
    not_predicted: list[str]
    incomplete: dict[str, list[str]]


def find_prediction(pred_dir: Path, case: str) -> Path | None:
    """``pred_dir/<case>.<ext>`` for a supported extension, or None."""
    for ext in EXTENSIONS:
        path = pred_dir / f"{case}{ext}"
        if path.is_file():
            return path
    return None


def read_leg_prediction(path: Path, record: LegRecord) -> np.ndarray:
    """A leg prediction as a uint8 array indexed (x, y, z), checked against its record.

    Raises:
        InputError: unreadable, size other than the leg image's, or values outside the labels.
    """
    import SimpleITK as sitk

    from dataset_conversion.legs_of_scan import xyz_array

    try:
        pred = sitk.ReadImage(str(path))
    except RuntimeError:
        raise InputError(path, "cannot be read as an image") from None
    if list(pred.GetSize()) != list(record.leg_size):
        raise InputError(
            path, f"expected a leg of size {tuple(record.leg_size)} (case {record.case}), found {pred.GetSize()}"
        )
    arr = xyz_array(pred)
    allowed = sorted(LABELS.values())
    bad = [v.item() for v in np.unique(arr) if v not in allowed]
    if bad:
        raise InputError(path, f"expected label values {allowed}, found {bad}")
    return arr.astype(np.uint8)


def check_same_source(records: tuple[LegRecord, ...], records_json: Path) -> dict:
    """The source geometry shared by all legs of one scan."""
    geometry = records[0].geometry
    for r in records[1:]:
        if r.geometry["size"] != geometry["size"] or r.patient_axes != records[0].patient_axes:
            raise InputError(records_json, f"legs of {r.subject} disagree about the source grid")
    return geometry


def restore_scan(job: RestoreJob) -> Path:
    """Paste the legs of one scan back into its grid and write ``job.out`` (uint8, source geometry)."""
    from dataset_conversion.legs_of_scan import image_from_xyz
    from dataset_conversion.mirror import from_leg
    from nnunet_filternet.utils.atomic import write_image

    geometry = job.records[0].geometry
    out = np.zeros(geometry["size"], np.uint8)
    for record, path in zip(job.records, job.predictions):
        try:
            leg = read_leg_prediction(path, record)
        except InputError as e:  # re-raised as the plain class, which crosses process boundaries
            raise FilterNetError(str(e)) from None
        crop = from_leg(leg, record.axes, record.mirrored)
        region = out[record.crop_slices()]
        region[crop > 0] = crop[crop > 0]
    image = image_from_xyz(out, geometry["spacing"], geometry["origin"], geometry["direction"])
    write_image(image, job.out)
    return job.out


def restore_jobs(pred_dir: Path, records: list[LegRecord], out_dir: Path, records_json: Path):
    """Jobs for scans with all legs predicted; lists of scans with none and with some legs predicted."""
    jobs, not_predicted, incomplete = [], [], {}
    for subject, legs in by_subject(records).items():
        check_same_source(tuple(legs), records_json)
        found = [find_prediction(pred_dir, r.case) for r in legs]
        if all(p is None for p in found):
            not_predicted.append(subject)
        elif any(p is None for p in found):
            incomplete[subject] = [f"{pred_dir / r.case}.nii.gz" for r, p in zip(legs, found) if p is None]
        else:
            jobs.append(RestoreJob(subject, tuple(legs), tuple(found), out_dir / f"{subject}.nii.gz"))
    return jobs, not_predicted, incomplete


def restoration(pred_dir, records_json, out_dir, jobs: int | None = None, keep_going: bool = False) -> RestoreResult:
    """:func:`restore_predictions`, returning the full :class:`RestoreResult`."""
    from nnunet_filternet.utils.parallel import parallel_map

    pred_dir, records_json, out_dir = Path(pred_dir), Path(records_json), Path(out_dir)
    if not pred_dir.is_dir():
        raise InputError(pred_dir, "expected a folder of leg predictions (<subject>_<L|R>.nii.gz)")
    records = load_records(records_json)
    work, not_predicted, incomplete = restore_jobs(pred_dir, records, out_dir, records_json)
    if incomplete and not keep_going:
        missing = "\n".join(f"  {s}: missing {', '.join(m)}" for s, m in incomplete.items())
        raise FilterNetError(f"some scans have only part of their legs predicted in {pred_dir}:\n{missing}")
    if not work:
        raise InputError(pred_dir, f"no complete set of leg predictions for any scan in {records_json}")
    written = parallel_map(restore_scan, work, jobs=jobs, desc="restore")
    return RestoreResult(written, not_predicted, incomplete)


def restore_predictions(pred_dir, records_json, out_dir, jobs: int | None = None, keep_going: bool = False):
    """Leg predictions -> ``out_dir/<subject>.nii.gz`` label maps on the source scans' grids.

    Args:
        pred_dir: Folder of leg predictions ``<subject>_<L|R>.nii.gz``.
        records_json: The ``legs.json`` written by ``filternet convert``.
        out_dir: Where the label maps go (created).
        jobs: Worker processes (default: all cores).
        keep_going: Restore complete scans even if other scans miss some leg predictions.

    Returns:
        The written files, one per scan with all its legs predicted.
    """
    return restoration(pred_dir, records_json, out_dir, jobs, keep_going).written
