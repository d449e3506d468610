"""``filternet convert``: a folder of two-leg scans -> an nnU-Net raw dataset (training) or leg images (inference).

Training mode writes ``$nnUNet_raw/DatasetNNN_NAME/`` (``imagesTr/<subject>_<L|R>_0000.nii.gz``,
``labelsTr/<subject>_<L|R>.nii.gz``, ``dataset.json``, ``legs.json``) and
``$nnUNet_preprocessed/DatasetNNN_NAME/splits_final.json``. Inference mode writes the leg images and
``legs.json`` into one folder, ready for ``nnUNetv2_predict``.

Every argument and table (folds, seed, jobs, ``subjects.csv``, dataset id and name, output folders) is checked
before any scan is converted. The output folder is built in a hidden sibling ``.<name>.partial`` (a hard-linked
copy of an earlier result, if any) and moved into place only when complete, after ``splits_final.json``: a
failed or interrupted run leaves the previous result (or nothing) where nnU-Net looks, and the next run resumes
in the work folder. Scans are converted in parallel (one process per scan, progress bar) by
:func:`~nnunet_filternet.dataset_conversion.scan_worker.convert_scan`, which skips scans an earlier run finished.
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from nnunet_filternet.dataset_conversion.records import LegRecord, save_records
from nnunet_filternet.dataset_conversion.scan_worker import LEDGER, ScanJob, convert_scan, remove_outputs
from nnunet_filternet.errors import FilterNetError, InputError

#: dataset.json key listing leg cases kept without any labelled compartment (``--allow-unlabelled-legs``).
UNLABELLED_KEY = "filternet_unlabelled_legs"


@dataclass
class ConversionResult:
    """Result of a conversion run.

    Attributes:
        folder: The dataset folder (training) or output folder (inference), holding legs.json.
        records: One per leg case written.
        failed: Input file -> reason, for scans that could not be converted (only with keep_going).
        skipped: Scans already converted by an earlier run (left as they were).
        notes: Things worth telling (e.g. scans with one leg, and which side it was taken for).
    """

    folder: Path
    records: list[LegRecord]
    failed: dict[str, str]
    skipped: int
    notes: list[str] = field(default_factory=list)


# ---- many scans ------------------------------------------------------------------------------------------


def _remove_stale_temporaries(folders: list[Path]) -> None:
    """Delete leg images left half-written by a killed run (``.<name>.<random>.tmp.nii.gz``) in our folders."""
    for folder in folders:
        if folder.is_dir():
            for f in folder.iterdir():
                if f.is_file() and f.name.startswith(".") and ".tmp." in f.name and f.name.endswith(".nii.gz"):
                    f.unlink()


def _prune(out_dir: Path, keep_subjects: set[str]) -> None:
    """Delete the outputs of scans converted earlier that are no longer part of the result."""
    for ledger in sorted((out_dir / LEDGER).glob("*.json")):
        if ledger.stem not in keep_subjects:
            remove_outputs(out_dir, ledger)


def _run_scans(
    scan_jobs: list[ScanJob], out_dir: Path, jobs: int | None, failed: dict[str, str], allow_empty: bool = False
) -> ConversionResult:
    """Convert the scans in parallel; collect records, failures and notes; write legs.json (``allow_empty``: also
    when no scan could be converted, listing none)."""
    import nnunet_filternet.dataset_conversion.legs_of_scan  # noqa: F401  (imported once here, inherited by forked workers)
    from nnunet_filternet.utils.parallel import parallel_map

    keep_going = all(j.keep_going for j in scan_jobs)
    _remove_stale_temporaries([out_dir / f for f in {j.image_folder for j in scan_jobs} | {"labelsTr"}])
    outcomes = parallel_map(convert_scan, scan_jobs, jobs=jobs, desc="convert", unit="scan") if scan_jobs else []
    failed = dict(failed)
    records, notes, skipped = [], [], 0
    for o in outcomes:
        if o.error is not None:
            failed[o.source] = o.error
            continue
        skipped += o.skipped
        for r in o.records:
            record = LegRecord.from_dict(r)
            records.append(record)
            if record.side_from != "two legs":
                notes.append(f"{o.subject}: one leg in the field of view, taken as {record.side} ({record.side_from})")
            if record.labelled is False:
                notes.append(f"{o.subject}: the {record.side} leg has no labelled compartment; kept as {record.case}")
    if failed and not keep_going:
        raise FilterNetError(failure_summary(failed))
    if not records and not allow_empty:
        raise FilterNetError("no scan could be converted:\n" + failure_summary(failed))
    _prune(out_dir, {r.subject for r in records})
    save_records(out_dir / "legs.json", records)
    return ConversionResult(out_dir, sorted(records, key=lambda r: r.case), failed, skipped, notes)


def failure_summary(failed: dict[str, str]) -> str:
    """One line per failed input: ``<reason>`` (each reason names its file)."""
    return "\n".join(f"  {reason}" for _, reason in sorted(failed.items()))


def _threads_per_job(jobs: int | None, n_scans: int) -> int:
    from nnunet_filternet.utils.parallel import default_jobs

    cores = default_jobs()
    workers = min(cores if jobs is None else jobs, max(1, n_scans))
    return max(1, cores // workers)


def _settings(allow_unlabelled_legs: bool = False):
    from nnunet_filternet.dataset_conversion.legs_of_scan import ConversionSettings

    return ConversionSettings(allow_unlabelled_legs=allow_unlabelled_legs)


def _find_scans(folder, what: str, notes: list[str]) -> dict[str, Path]:
    """Scans of ``folder``; sub-folders without a DICOM series are named in ``notes`` and skipped."""
    from nnunet_filternet.dataset_conversion.readers import scan_inputs

    found, skipped = scan_inputs(Path(folder).absolute())
    if skipped:
        names = ", ".join(p.name for p in skipped)
        notes.append(f"{folder}: skipped {len(skipped)} sub-folder(s) of the {what} without a DICOM series: {names}")
    return found


def _check_common(jobs: int | None, images_dir) -> None:
    from nnunet_filternet.utils.parallel import check_jobs

    check_jobs(jobs)
    if not Path(images_dir).is_dir():
        raise InputError(images_dir, "expected a folder of scans (.nii, .nii.gz, .nrrd, .mha, .mhd, DICOM folders)")


# ---- training mode ---------------------------------------------------------------------------------------


def dataset_folder_name(dataset_id: int, name: str) -> str:
    """nnU-Net's folder name ``DatasetNNN_NAME``.

    Raises:
        FilterNetError: id outside 1..999 or a name nnU-Net cannot use.
    """
    if isinstance(dataset_id, bool) or int(dataset_id) != dataset_id or not 1 <= int(dataset_id) <= 999:
        raise FilterNetError(f"--dataset-id {dataset_id}: expected an integer from 1 to 999")
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_\-]*", name):
        raise FilterNetError(f"--name {name!r}: expected letters, digits, '_' and '-' only")
    return f"Dataset{int(dataset_id):03d}_{name}"


def nnunet_folder(variable: str) -> Path:
    """The folder named by an nnU-Net environment variable (checked writable; created when written to)."""
    from nnunet_filternet.utils.atomic import check_writable

    value = os.environ.get(variable)
    if not value:
        raise FilterNetError(f"environment variable {variable} is not set (nnU-Net's folders; see its docs)")
    return check_writable(value, f"{variable} folder", folder=True)


def _check_id_and_name_free(folder: str) -> None:
    """Refuse an id used by another dataset name, or a name used under another id (nnU-Net's lookups)."""
    dataset_id, name = folder[len("Dataset") : len("Dataset000")], folder[len("Dataset000_") :]
    for variable in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results"):
        root = os.environ.get(variable)
        if not root or not Path(root).is_dir():
            continue
        for p in sorted(Path(root).glob("Dataset*_*")):
            if not p.is_dir() or p.name == folder or not re.fullmatch(r"Dataset\d{3}_.+", p.name):
                continue
            if p.name[len("Dataset") : len("Dataset000")] == dataset_id:
                raise FilterNetError(f"{root}: dataset id {dataset_id} is already used by {p.name}; choose another id")
            if p.name[len("Dataset000_") :] == name:
                raise FilterNetError(
                    f"{root}: dataset name {name!r} is already used by {p.name}; nnU-Net's lookup by name would be "
                    "ambiguous, choose another name"
                )


def find_subjects_csv(images_dir: Path, subjects_csv: str | os.PathLike | None) -> Path | None:
    """``--subjects-csv``, or ``subjects.csv`` next to the images folder (the phantom layout), or None."""
    if subjects_csv is not None:
        if not Path(subjects_csv).is_file():
            raise InputError(subjects_csv, "subjects CSV not found")
        return Path(subjects_csv)
    guess = Path(images_dir).resolve().parent / "subjects.csv"
    return guess if guess.is_file() else None


@dataclass
class TrainingPlan:
    """A training conversion checked before any work: what to convert, where, and how to split it."""

    folder: str
    raw: Path
    preprocessed: Path
    scan_jobs: list[ScanJob]
    failed: dict[str, str]
    notes: list[str]
    groups: dict[str, str] | None
    csv: Path | None


def plan_training(
    images_dir, labels_dir, dataset_id, name, folds, seed, jobs, keep_going, subjects_csv, allow_unlabelled_legs
) -> TrainingPlan:
    """Check every argument and table and pair scans with label maps, before anything is converted or written.

    Raises:
        FilterNetError: bad folds, seed, jobs, id or name, unwritable nnU-Net folders, a subjects.csv without
            every subject, unmatched scans or label maps (unless ``keep_going``), fewer subjects than folds.
    """
    from nnunet_filternet.dataset_conversion.splits import check_fold_arguments, read_groups
    from nnunet_filternet.utils.atomic import staging_path
    from nnunet_filternet.utils.output_guard import refuse_inputs_as_outputs

    _check_common(jobs, images_dir)
    check_fold_arguments(folds, seed)
    folder = dataset_folder_name(dataset_id, name)
    raw, preprocessed = nnunet_folder("nnUNet_raw"), nnunet_folder("nnUNet_preprocessed")
    _check_id_and_name_free(folder)
    refuse_inputs_as_outputs(
        {images_dir: "scans (--images)", labels_dir: "label maps (--labels)", subjects_csv: "--subjects-csv"},
        files=[preprocessed / folder / "splits_final.json"],
        folders=[preprocessed / folder],
        whole_folders=[raw / folder],
    )
    notes: list[str] = []
    images = _find_scans(images_dir, "images folder", notes)
    labels = _find_scans(labels_dir, "labels folder", notes)
    csv = find_subjects_csv(images_dir, subjects_csv)
    groups = read_groups(csv) if csv else None
    failed = {}
    for s, p in labels.items():
        if s not in images:
            failed[str(p)] = f"{p}: label map without a scan named {s!r} in {images_dir}"
    for s, p in images.items():
        if s not in labels:
            failed[str(p)] = f"{p}: no label map named {s}.* in {labels_dir}"
    if failed and not keep_going:
        raise FilterNetError(failure_summary(failed).strip())
    subjects = sorted(s for s in images if s in labels)
    if groups is not None:
        missing = [s for s in subjects if s not in groups]
        if missing:
            raise InputError(csv, f"expected a row for every subject to convert, missing {missing}")
    if len(subjects) < folds:
        raise FilterNetError(f"{len(subjects)} subject(s) with scan and label map cannot be split into {folds} folds")
    threads = _threads_per_job(jobs, len(subjects))
    settings = _settings(allow_unlabelled_legs)
    work = staging_path(raw / folder)
    scan_jobs = [
        ScanJob(s, images[s], labels[s], work, "imagesTr", "labelsTr", settings, threads, keep_going) for s in subjects
    ]
    return TrainingPlan(folder, raw, preprocessed, scan_jobs, failed, notes, groups, csv)


def training_conversion(
    images_dir,
    labels_dir,
    dataset_id: int,
    name: str,
    folds: int = 4,
    seed: int = 0,
    jobs: int | None = None,
    keep_going: bool = False,
    subjects_csv=None,
    allow_unlabelled_legs: bool = False,
) -> ConversionResult:
    """:func:`convert_training`, returning the full :class:`ConversionResult` (failures, notes)."""
    from nnunet_filternet.dataset_conversion.dataset_json import write_dataset_json
    from nnunet_filternet.dataset_conversion.splits import nnunet_splits, subject_folds
    from nnunet_filternet.dataset_conversion.unchanged import write_json_if_changed
    from nnunet_filternet.utils.atomic import publish_dir, staging_dir

    plan = plan_training(
        images_dir, labels_dir, dataset_id, name, folds, seed, jobs, keep_going, subjects_csv, allow_unlabelled_legs
    )
    final = plan.raw / plan.folder
    work = staging_dir(final)
    result = _run_scans(plan.scan_jobs, work, jobs, plan.failed)
    cases: dict[str, list[str]] = {}
    for r in result.records:
        cases.setdefault(r.subject, []).append(r.case)
    if len(cases) < folds:
        raise FilterNetError(
            f"only {len(cases)} subject(s) converted, fewer than {folds} folds; nothing was published "
            f"(work kept in {work}):\n" + failure_summary(result.failed)
        )
    subject_groups = None if plan.groups is None else {s: plan.groups[s] for s in cases}
    split = nnunet_splits(subject_folds(sorted(cases), subject_groups, folds, seed), cases)
    unlabelled = sorted(r.case for r in result.records if r.labelled is False)
    write_dataset_json(work, len(result.records), name, {UNLABELLED_KEY: unlabelled} if unlabelled else None)
    write_json_if_changed(plan.preprocessed / plan.folder / "splits_final.json", split)
    publish_dir(work, final)
    result.folder = final
    result.notes[:0] = plan.notes
    return result


def convert_training(
    images_dir,
    labels_dir,
    dataset_id: int,
    name: str,
    folds: int = 4,
    seed: int = 0,
    jobs: int | None = None,
    keep_going: bool = False,
    subjects_csv=None,
    allow_unlabelled_legs: bool = False,
) -> Path:
    """Scans + label maps -> ``$nnUNet_raw/DatasetNNN_NAME`` and its ``splits_final.json``.

    Args:
        images_dir: Folder of scans (NIfTI, NRRD, MHA/MHD files, DICOM series folders).
        labels_dir: Folder of label maps (0 background, 1 TA, 2 TP, 3 Sol, 4 Gas, 5 PL), matched by name.
        dataset_id: nnU-Net dataset id (1..999).
        name: Dataset name (the folder is ``DatasetNNN_NAME``).
        folds: Number of cross-validation folds (grouped by subject, stratified by group if known).
        seed: Seed of the folds (an integer >= 0).
        jobs: Worker processes (default: all cores).
        keep_going: Convert what can be converted when some scans are bad (failures are reported);
            otherwise the first bad scan stops the run with an error.
        subjects_csv: CSV with columns subject, group (healthy | DM1); default: ``subjects.csv`` next to
            ``images_dir``'s parent folder entry, if present.
        allow_unlabelled_legs: Keep legs without any labelled compartment as all-background cases (listed in
            dataset.json under :data:`UNLABELLED_KEY`); otherwise such a leg is an error naming scan and side.

    Returns:
        The dataset folder.
    """
    result = training_conversion(
        images_dir, labels_dir, dataset_id, name, folds, seed, jobs, keep_going, subjects_csv, allow_unlabelled_legs
    )
    return result.folder


# ---- inference mode --------------------------------------------------------------------------------------


def inference_conversion(
    images_dir,
    out_dir,
    jobs: int | None = None,
    keep_going: bool = False,
    allow_empty: bool = False,
    scans: dict[str, Path] | None = None,
) -> ConversionResult:
    """:func:`convert_inference`, returning the full :class:`ConversionResult` (``allow_empty`` with ``keep_going``:
    a run in which every scan failed is a result with no records, not an error; ``filternet predict``).

    ``scans`` (subject -> path, scans of ``images_dir`` as
    :func:`~nnunet_filternet.dataset_conversion.readers.find_scans` lists
    them): convert only these (``filternet predict`` converts a cohort chunk by chunk); the outputs of any other
    scan in ``out_dir`` are removed, as those of a scan that left the folder.
    """
    from nnunet_filternet.utils.atomic import check_writable, publish_dir, staging_dir
    from nnunet_filternet.utils.output_guard import refuse_inputs_as_outputs

    _check_common(jobs, images_dir)
    images_dir, out_dir = Path(images_dir), Path(out_dir)
    refuse_inputs_as_outputs({images_dir: "scans (--images)"}, whole_folders=[out_dir])
    check_writable(out_dir, "leg images folder", folder=True)
    notes: list[str] = []
    images = _find_scans(images_dir, "images folder", notes) if scans is None else dict(scans)
    work = staging_dir(out_dir)
    threads = _threads_per_job(jobs, len(images))
    settings = _settings()
    scan_jobs = [ScanJob(s, p, None, work, "", None, settings, threads, keep_going) for s, p in images.items()]
    result = _run_scans(scan_jobs, work, jobs, {}, allow_empty=allow_empty and keep_going)
    publish_dir(work, out_dir)
    result.folder = out_dir
    result.notes[:0] = notes
    return result


def convert_inference(images_dir, out_dir, jobs: int | None = None, keep_going: bool = False) -> Path:
    """Scans -> leg images ``<subject>_<L|R>_0000.nii.gz`` and ``legs.json`` in ``out_dir`` (for nnUNetv2_predict).

    Returns:
        ``out_dir``.
    """
    return inference_conversion(images_dir, out_dir, jobs, keep_going).folder


# ---- speed -----------------------------------------------------------------------------------------------


def time_conversion(image_path, settings=None) -> dict:
    """Time the conversion of one scan (read, N4, legs, write), single process, all cores for SimpleITK.

    Returns:
        ``{"seconds_total", "seconds_n4", "n4_share", "size", "spacing", "legs"}``; seconds are wall-clock.
    """
    from nnunet_filternet.dataset_conversion.legs_of_scan import ConversionSettings, legs_of_scan
    from nnunet_filternet.dataset_conversion.readers import read_scan
    from nnunet_filternet.utils.atomic import write_image

    start = time.perf_counter()
    image = read_scan(Path(image_path))
    result = legs_of_scan(image, None, settings or ConversionSettings())
    with tempfile.TemporaryDirectory() as tmp:
        for leg in result.legs:
            write_image(leg.image, Path(tmp) / f"{leg.side}_0000.nii.gz")
    total = time.perf_counter() - start
    return {
        "seconds_total": round(total, 3),
        "seconds_n4": result.seconds["n4"],
        "n4_share": round(result.seconds["n4"] / total, 3),
        "size": list(image.GetSize()),
        "spacing": list(image.GetSpacing()),
        "legs": [leg.side for leg in result.legs],
    }


def print_result(result: ConversionResult, what: str) -> None:
    """Summary lines on stdout, notes and failures on stderr."""
    converted = len({r.subject for r in result.records})
    print(
        f"{what}: {converted} scan(s) -> {len(result.records)} leg case(s) in {result.folder} "
        f"({result.skipped} already done)"
    )
    for note in result.notes:
        print(f"note: {note}", file=sys.stderr)
    if result.failed:
        print(f"{len(result.failed)} input(s) failed:\n{failure_summary(result.failed)}", file=sys.stderr)
