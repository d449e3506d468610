"""``filternet convert``: a folder of two-leg scans -> an nnU-Net raw dataset (training) or leg images (inference).

Training mode writes ``$nnUNet_raw/DatasetNNN_NAME/`` (``imagesTr/<subject>_<L|R>_0000.nii.gz``,
``labelsTr/<subject>_<L|R>.nii.gz``, ``dataset.json``, ``legs.json``) and
``$nnUNet_preprocessed/DatasetNNN_NAME/splits_final.json``. Inference mode writes the leg images and
``legs.json`` into one folder, ready for ``nnUNetv2_predict``.

Scans are converted in parallel (one process per scan, progress bar) by
:func:`~dataset_conversion.scan_worker.convert_scan`, which skips scans an earlier run finished, so an
interrupted run resumes and a repeated run changes nothing.
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from dataset_conversion.records import LegRecord, save_records
from dataset_conversion.scan_worker import LEDGER, ScanJob, convert_scan, remove_outputs
from nnunet_filternet.errors import FilterNetError, InputError


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
    notes: list[str]


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


def _run_scans(scan_jobs: list[ScanJob], out_dir: Path, jobs: int | None, failed: dict[str, str]) -> ConversionResult:
    """Convert the scans in parallel; collect records, failures and notes; write legs.json."""
    import dataset_conversion.legs_of_scan  # noqa: F401  (imported once here, inherited by forked workers)
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
            records.append(LegRecord(**r))
            if r["side_from"] != "two legs":
                notes.append(f"{o.subject}: one leg in the field of view, taken as {r['side']} ({r['side_from']})")
    if failed and not keep_going:
        raise FilterNetError(failure_summary(failed))
    if not records:
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
    workers = min(cores if jobs is None else max(1, jobs), max(1, n_scans))
    return max(1, cores // workers)


def _settings():
    from dataset_conversion.legs_of_scan import ConversionSettings

    return ConversionSettings()


# ---- training mode ---------------------------------------------------------------------------------------


def dataset_folder_name(dataset_id: int, name: str) -> str:
    """nnU-Net's folder name ``DatasetNNN_NAME``.

    Raises:
        FilterNetError: id outside 1..999 or a name nnU-Net cannot use.
    """
    if not 1 <= int(dataset_id) <= 999:
        raise FilterNetError(f"--dataset-id {dataset_id}: expected an integer from 1 to 999")
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_\-]*", name):
        raise FilterNetError(f"--name {name!r}: expected letters, digits, '_' and '-' only")
    return f"Dataset{int(dataset_id):03d}_{name}"


def nnunet_folder(variable: str) -> Path:
    """The folder named by an nnU-Net environment variable (created if missing)."""
    value = os.environ.get(variable)
    if not value:
        raise FilterNetError(f"environment variable {variable} is not set (nnU-Net's folders; see its docs)")
    Path(value).mkdir(parents=True, exist_ok=True)
    return Path(value)


def _check_id_free(raw: Path, folder: str) -> None:
    prefix = folder[: len("Dataset000_")]
    others = [p.name for p in raw.glob(prefix + "*") if p.is_dir() and p.name != folder]
    if others:
        raise FilterNetError(f"{raw}: dataset id {prefix[7:10]} is already used by {others[0]}; choose another id")


def find_subjects_csv(images_dir: Path, subjects_csv: str | os.PathLike | None) -> Path | None:
    """``--subjects-csv``, or ``subjects.csv`` next to the images folder (the phantom layout), or None."""
    if subjects_csv is not None:
        if not Path(subjects_csv).is_file():
            raise InputError(subjects_csv, "subjects CSV not found")
        return Path(subjects_csv)
    guess = Path(images_dir).resolve().parent / "subjects.csv"
    return guess if guess.is_file() else None


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
) -> ConversionResult:
    """:func:`convert_training`, returning the full :class:`ConversionResult` (failures, notes)."""
    from dataset_conversion.dataset_json import write_dataset_json
    from dataset_conversion.readers import find_scans
    from dataset_conversion.splits import nnunet_splits, read_groups, subject_folds
    from dataset_conversion.unchanged import write_json_if_changed

    folder = dataset_folder_name(dataset_id, name)
    raw, preprocessed = nnunet_folder("nnUNet_raw"), nnunet_folder("nnUNet_preprocessed")
    _check_id_free(raw, folder)
    images, labels = find_scans(Path(images_dir).absolute()), find_scans(Path(labels_dir).absolute())
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
    out = raw / folder
    threads = _threads_per_job(jobs, len(images))
    settings = _settings()
    scan_jobs = [
        ScanJob(s, p, labels[s], out, "imagesTr", "labelsTr", settings, threads, keep_going)
        for s, p in images.items()
        if s in labels
    ]
    result = _run_scans(scan_jobs, out, jobs, failed)
    write_dataset_json(out, len(result.records), name)
    cases: dict[str, list[str]] = {}
    for r in result.records:
        cases.setdefault(r.subject, []).append(r.case)
    subject_groups = None
    if groups is not None:
        subject_groups = {s: groups.get(s) for s in cases}
        missing = sorted(s for s, g in subject_groups.items() if g is None)
        if missing:
            raise InputError(csv, f"expected a row for every converted subject, missing {missing}")
    split = nnunet_splits(subject_folds(sorted(cases), subject_groups, folds, seed), cases)
    write_json_if_changed(preprocessed / folder / "splits_final.json", split)
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
) -> Path:
    """Scans + label maps -> ``$nnUNet_raw/DatasetNNN_NAME`` and its ``splits_final.json``.

    Args:
        images_dir: Folder of scans (NIfTI, NRRD, MHA/MHD files, DICOM series folders).
        labels_dir: Folder of label maps (0 background, 1 TA, 2 TP, 3 Sol, 4 Gas, 5 PL), matched by name.
        dataset_id: nnU-Net dataset id (1..999).
        name: Dataset name (the folder is ``DatasetNNN_NAME``).
        folds: Number of cross-validation folds (grouped by subject, stratified by group if known).
        seed: Seed of the folds.
        jobs: Worker processes (default: all cores).
        keep_going: Convert what can be converted when some scans are bad (failures are reported);
            otherwise the first bad scan stops the run with an error.
        subjects_csv: CSV with columns subject, group (healthy | DM1); default: ``subjects.csv`` next to
            ``images_dir``'s parent folder entry, if present.

    Returns:
        The dataset folder.
    """
    result = training_conversion(images_dir, labels_dir, dataset_id, name, folds, seed, jobs, keep_going, subjects_csv)
    return result.folder


# ---- inference mode --------------------------------------------------------------------------------------


def inference_conversion(images_dir, out_dir, jobs: int | None = None, keep_going: bool = False) -> ConversionResult:
    """:func:`convert_inference`, returning the full :class:`ConversionResult`."""
    from dataset_conversion.readers import find_scans

    images_dir, out_dir = Path(images_dir), Path(out_dir)
    if out_dir.resolve() == images_dir.resolve() or images_dir.resolve() in out_dir.resolve().parents:
        raise InputError(out_dir, f"the output folder must not be (inside) the images folder {images_dir}")
    images = find_scans(images_dir.absolute())
    out_dir.mkdir(parents=True, exist_ok=True)
    threads = _threads_per_job(jobs, len(images))
    settings = _settings()
    scan_jobs = [ScanJob(s, p, None, out_dir, "", None, settings, threads, keep_going) for s, p in images.items()]
    return _run_scans(scan_jobs, out_dir, jobs, {})


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
    from dataset_conversion.legs_of_scan import ConversionSettings, legs_of_scan
    from dataset_conversion.readers import read_scan
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
