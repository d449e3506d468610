"""``filternet restore``: leg predictions -> one label map per scan, on the scan's own voxel grid.

For each scan in ``legs.json``, every leg prediction ``<pred_dir>/<subject>_<L|R>.nii.gz`` (as written by
``nnUNetv2_predict`` or nnU-Net's cross-validation) is checked against its leg image's grid, un-mirrored, put
back in the source's index order and pasted into its crop box; the result is written as uint8 with the
source's size, spacing, origin and direction, copied from ``legs.json`` (so 3D Slicer and ITK-SNAP overlay it
on the scan).

All or nothing: every prediction is read and checked, and every label map is made in a hidden staging folder,
before any file appears in ``out_dir``. Scans with none of their legs predicted are skipped (a cross-validation
fold predicts only its own subjects). A scan with some but not all of its legs predicted, a prediction stored
under two file names (``.nii`` and ``.nii.gz``), or a ``legs.json`` that lists only one leg of a two-leg scan
is an error; with ``keep_going`` the other scans are still restored and the failed ones reported.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from nnunet_filternet.dataset_conversion.records import LegRecord, by_subject, load_records
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
    """What a restore run did.

    Attributes:
        written: Label maps written, one per scan.
        not_predicted: Scans skipped because none of their legs was predicted.
        incomplete: Scans not restored (keep_going only) -> the reasons (missing files, bad predictions).
        legs: Restored scan -> the sides restored (``["R", "L"]``, or one side for a one-leg scan).
        notes: Things worth telling (one-leg scans and how their side was decided).
    """

    written: list[Path]
    not_predicted: list[str]
    incomplete: dict[str, list[str]]
    legs: dict[str, list[str]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def expected_leg_grid(record: LegRecord):
    """The voxel grid of a record's leg image (and of its prediction): :class:`~nnunet_filternet.utils.geometry.Grid`.

    Leg images have identity direction, the source spacing in patient-axis order, and as origin the physical
    position of the source voxel that became their voxel (0, 0, 0)
    (:mod:`~nnunet_filternet.dataset_conversion.legs_of_scan`).
    """
    from nnunet_filternet.dataset_conversion.legs_of_scan import first_voxel
    from nnunet_filternet.utils.geometry import Grid

    geometry = record.geometry
    source = Grid(tuple(geometry["size"]), tuple(geometry["spacing"]), tuple(geometry["origin"]),
                  tuple(geometry["direction"]))  # fmt: skip
    first = first_voxel(record.crop_index, record.crop_size, record.axes, record.mirrored)
    origin = tuple(float(v) for v in source.points(np.array([first]))[0])
    spacing = tuple(float(geometry["spacing"][a]) for a in record.patient_axes)
    return Grid(tuple(record.leg_size), spacing, origin, (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0))


def read_leg_prediction(path: Path, record: LegRecord) -> np.ndarray:
    """A leg prediction as a uint8 array indexed (x, y, z), checked against its record.

    Raises:
        InputError: unreadable or truncated, a grid other than the leg image's (size, spacing, origin,
            direction; the same voxels stored with flipped or permuted axes are reordered), or values outside
            the labels.
    """
    from nnunet_filternet.utils.geometry import array_on_grid
    from nnunet_filternet.utils.image_io import read_image

    pred = read_image(path, "leg prediction")
    grid = expected_leg_grid(record)
    if sorted(pred.GetSize()) != sorted(grid.size):
        raise InputError(
            path, f"expected a leg of size {tuple(grid.size)} (case {record.case}), found {pred.GetSize()}"
        )
    arr = array_on_grid(pred, grid, path, record.leg_image, f"leg prediction of {record.case}").transpose(2, 1, 0)
    allowed = sorted(LABELS.values())
    bad = [v.item() for v in np.unique(arr) if v not in allowed]
    if bad:
        raise InputError(path, f"expected label values {allowed}, found {bad}")
    return arr.astype(np.uint8)


def check_same_source(records: tuple[LegRecord, ...], records_json: Path) -> dict:
    """The source geometry shared by all legs of one scan; every leg of a two-leg scan must be listed.

    Raises:
        InputError: the legs disagree about the source grid, a side is listed twice, or a scan whose records
            say it has two legs lists only one (a record removed from ``legs.json``).
    """
    geometry = records[0].geometry
    for r in records[1:]:
        if r.geometry != geometry or r.patient_axes != records[0].patient_axes:
            raise InputError(records_json, f"legs of {r.subject} disagree about the source grid")
    sides = [r.side for r in records]
    if len(set(sides)) != len(sides):
        raise InputError(records_json, f"{records[0].subject}: side {sides[0]} is listed twice")
    two_legs = any(r.side_from == "two legs" for r in records)
    if two_legs and sorted(sides) != ["L", "R"]:
        raise InputError(
            records_json,
            f"{records[0].subject}: the scan has two legs (side_from 'two legs') but only the {sides[0]} leg is "
            "listed; legs.json was edited or is incomplete",
        )
    return geometry


def restore_scan(job: RestoreJob) -> Path:
    """Paste the legs of one scan back into its grid and write ``job.out`` (uint8, source geometry)."""
    from nnunet_filternet.dataset_conversion.legs_of_scan import image_from_xyz
    from nnunet_filternet.dataset_conversion.mirror import from_leg
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


def _restore_or_error(job: RestoreJob) -> Path | FilterNetError:
    try:
        return restore_scan(job)
    except FilterNetError as e:
        return e


def restore_jobs(pred_dir: Path, records: list[LegRecord], out_dir: Path, records_json: Path, keep_going: bool):
    """Jobs for scans with all legs predicted; scans with none predicted; scans that cannot be restored -> why;
    predicted cases that ``legs.json`` does not know.

    Raises:
        InputError: a case predicted under two file names; without ``keep_going``, inconsistent records
            (:func:`check_same_source`).
    """
    from nnunet_filternet.metrics.matching import list_cases

    predictions = list_cases(pred_dir)  # refuses <case>.nii next to <case>.nii.gz
    jobs, not_predicted, incomplete = [], [], {}
    for subject, legs in by_subject(records).items():
        try:
            check_same_source(tuple(legs), records_json)
        except InputError as e:
            if not keep_going:
                raise
            incomplete[subject] = [str(e)]
            continue
        found = [predictions.get(r.case) for r in legs]
        if all(p is None for p in found):
            not_predicted.append(subject)
        elif any(p is None for p in found):
            incomplete[subject] = [f"missing {pred_dir / r.case}.nii.gz" for r, p in zip(legs, found) if p is None]
        else:
            jobs.append(RestoreJob(subject, tuple(legs), tuple(found), out_dir / f"{subject}.nii.gz"))
    unknown = sorted(set(predictions) - {r.case for r in records})
    return jobs, not_predicted, incomplete, unknown


def source_inputs(records) -> dict[str, str]:
    """The scans and label maps ``legs.json`` names (``source``, ``label_source``), as inputs no output may replace."""
    found: dict[str, str] = {}
    for r in records:
        found.setdefault(r.source, f"scan of {r.subject} named in legs.json")
        if r.label_source:
            found.setdefault(r.label_source, f"label map of {r.subject} named in legs.json")
    return found


def restoration(pred_dir, records_json, out_dir, jobs: int | None = None, keep_going: bool = False) -> RestoreResult:
    """:func:`restore_predictions`, returning the full :class:`RestoreResult`."""
    from nnunet_filternet.utils.atomic import check_writable
    from nnunet_filternet.utils.output_guard import refuse_inputs_as_outputs
    from nnunet_filternet.utils.parallel import check_jobs, parallel_map

    check_jobs(jobs)
    pred_dir, records_json, out_dir = Path(pred_dir), Path(records_json), Path(out_dir)
    if not pred_dir.is_dir():
        raise InputError(pred_dir, "expected a folder of leg predictions (<subject>_<L|R>.nii.gz)")
    check_writable(out_dir, "restored label maps folder", folder=True)
    records = load_records(records_json)
    refuse_inputs_as_outputs(
        {pred_dir: "leg predictions (--pred)", records_json: "legs.json (--records)", **source_inputs(records)},
        files=[out_dir / f"{subject}.nii.gz" for subject in by_subject(records)],
        folders=[out_dir],
    )
    work, not_predicted, incomplete, unknown = restore_jobs(pred_dir, records, out_dir, records_json, keep_going)
    if incomplete and not keep_going:
        missing = "\n".join(f"  {s}: {', '.join(m)}" for s, m in incomplete.items())
        raise FilterNetError(f"some scans have only part of their legs predicted in {pred_dir}:\n{missing}")
    if not work:
        raise InputError(pred_dir, f"no complete set of leg predictions for any scan in {records_json}")
    out_dir.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=".restore.", dir=out_dir))
    try:
        staged = [RestoreJob(j.subject, j.records, j.predictions, stage / j.out.name) for j in work]
        results = parallel_map(_restore_or_error, staged, jobs=jobs, desc="restore")
        failed = {j.subject: [str(r)] for j, r in zip(work, results) if isinstance(r, FilterNetError)}
        if failed and not keep_going:
            problems = "\n".join(f"  {m}" for messages in failed.values() for m in messages)
            raise FilterNetError(f"{len(failed)} scan(s) could not be restored, nothing was written:\n{problems}")
        written = []
        for job, result in zip(work, results):
            if not isinstance(result, FilterNetError):
                result.replace(job.out)
                written.append(job.out)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    restored = [j for j in work if j.subject not in failed]
    legs = {j.subject: [r.side for r in j.records] for j in restored}
    notes = [
        f"{j.subject}: one leg in the field of view, restored as {r.side} ({r.side_from})"
        for j in restored
        for r in j.records
        if r.side_from != "two legs"
    ]
    if unknown:
        notes.append(f"{len(unknown)} prediction(s) in {pred_dir} without a record in {records_json}, ignored: "
                     + ", ".join(unknown[:10]) + (" ..." if len(unknown) > 10 else ""))  # fmt: skip
    return RestoreResult(written, not_predicted, {**incomplete, **failed}, legs, notes)


def restore_predictions(pred_dir, records_json, out_dir, jobs: int | None = None, keep_going: bool = False):
    """Leg predictions -> ``out_dir/<subject>.nii.gz`` label maps on the source scans' grids.

    Args:
        pred_dir: Folder of leg predictions ``<subject>_<L|R>.nii.gz``.
        records_json: The ``legs.json`` written by ``filternet convert``.
        out_dir: Where the label maps go (created).
        jobs: Worker processes (default: all cores).
        keep_going: Restore the good scans even if other scans miss leg predictions or have bad ones.

    Returns:
        The written files, one per scan with all its legs predicted.
    """
    return restoration(pred_dir, records_json, out_dir, jobs, keep_going).written
