"""``filternet predict``: new scans -> label maps on those scans, with a trained model.

Steps: :func:`dataset_conversion.convert.inference_conversion` (bias correction, legs, mirroring) ->
nnU-Net's ``nnUNetPredictor`` (an ensemble over the folds found) -> :func:`dataset_conversion.restore.
restoration` -> :func:`nnunet_filternet.quantify.biomarkers.quantify_folder` -> :func:`nnunet_filternet.qc.
check.check_predictions` (``qc.csv``; nnU-Net's predictor is :class:`nnunet_filternet.qc.predictor.
AgreementPredictor`, which also records the folds' agreement per leg, kept and dropped with its prediction).

Work is kept in ``<out>/.legs`` so that a rerun continues, and reused only when keyed on all that produced it:
the conversion per scan on the scan's content (:mod:`dataset_conversion.scan_worker`), each leg prediction on
the model and the leg image (:mod:`.leg_predictions`), each biomarker row on its files' content
(:mod:`nnunet_filternet.utils.cache`). One scan that cannot be converted, restored or quantified does not stop
the others: it is named in the summary and in ``<out>/failed.csv`` (:mod:`.predict_outputs`).
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from nnunet_filternet.errors import FilterNetError, InputError


def find_model_folder(results: str | Path, trainer: str, plans: str | None, configuration: str) -> Path:
    """``<results>/<trainer>__<plans>__<configuration>``; with ``plans=None`` the only one present.

    Raises:
        InputError: no results folder, no such model folder (what the results folder holds is listed), or
            several with ``plans=None``.
    """
    from nnunet_filternet.report.results import results_found, trainer_folder_name

    results = Path(results)
    if not results.is_dir():
        raise InputError(results, "expected an nnU-Net results folder $nnUNet_results/DatasetNNN_NAME, not found")
    pattern = trainer_folder_name(trainer, "*" if plans is None else plans, configuration)
    found = sorted(p for p in results.glob(pattern) if p.is_dir())
    if not found:
        raise InputError(results, f"expected a trained model {pattern}, found none; present: {results_found(results)}")
    if len(found) > 1:
        names = ", ".join(p.name for p in found)
        raise InputError(results, f"expected one model folder {pattern}, found {len(found)} ({names}); pass --plans")
    return found[0]


def _checkpoints_found(model_folder: Path) -> str:
    """``fold_0 (checkpoint_best.pth, checkpoint_final.pth), fold_1 (none)`` for error messages."""
    from nnunet_filternet.report.results import fold_numbers

    entries = []
    for fold in fold_numbers(model_folder):
        names = sorted(p.name for p in (model_folder / f"fold_{fold}").glob("checkpoint_*.pth"))
        entries.append(f"fold_{fold} ({', '.join(names) or 'no checkpoint'})")
    return ", ".join(entries) or "no fold_<k> folders"


def find_folds(model_folder: Path, checkpoint: str, folds: Sequence[int] | None) -> list[int]:
    """The folds to ensemble: the given ones (each must have ``checkpoint``) or all that have it.

    Raises:
        InputError: a fold without ``checkpoint`` (or none with it); the folds and checkpoints present are listed.
    """
    have = sorted(int(p.parent.name.split("_")[1]) for p in model_folder.glob(f"fold_*/{checkpoint}"))
    wanted = have if folds is None else list(folds)
    missing = [f for f in wanted if f not in have]
    if missing or not wanted:
        where = f"folds {missing}" if missing else "any fold"
        raise InputError(
            model_folder, f"expected {checkpoint} in {where}, found none; present: {_checkpoints_found(model_folder)}"
        )
    return wanted


def check_model(model_folder: Path, folds: Sequence[int], checkpoint: str):
    """The trainer class nnU-Net will rebuild the network with, after checking what its predictor reads.

    nnU-Net's predictor reads ``plans.json`` and ``dataset.json`` of the model folder and, from each fold's
    checkpoint, ``network_weights``, and from the first one ``trainer_name`` (looked up with its trainer search)
    and ``init_args.configuration``. Every fold must have been trained by the same trainer.

    Raises:
        InputError: a file is missing or unreadable, a checkpoint lacks what nnU-Net reads or names another
            trainer than the first fold's, or nnU-Net cannot find the trainer (one line, naming the file).
    """
    import os

    from nnunet_filternet.nnunet_ext import find_trainer

    for name in ("plans.json", "dataset.json"):
        if not (model_folder / name).is_file():
            raise InputError(model_folder / name, "expected nnU-Net's copy of the model's " + name + ", not found")
    paths = [model_folder / f"fold_{fold}" / checkpoint for fold in folds]
    saved = [_load_checkpoint(path) for path in paths]
    trainer = find_trainer(saved[0]["trainer_name"])
    if trainer is None:
        raise InputError(
            paths[0],
            f"trained by {saved[0]['trainer_name']}, which nnU-Net cannot find (looked in nnunetv2 and in "
            f"nnUNet_extTrainer={os.environ.get('nnUNet_extTrainer', '')}); install or point nnUNet_extTrainer at "
            "the package that defines it",
        )
    for path, content in zip(paths, saved):
        init_args = content.get("init_args")
        if (
            not isinstance(content.get("network_weights"), dict)
            or not isinstance(init_args, dict)
            or ("configuration" not in init_args)
        ):
            raise InputError(path, "expected an nnU-Net checkpoint (trainer_name, init_args.configuration, "
                             "network_weights), found another file")  # fmt: skip
        if content["trainer_name"] != saved[0]["trainer_name"]:
            raise InputError(path, f"trained by {content['trainer_name']}, but fold {folds[0]} by "
                             f"{saved[0]['trainer_name']}; the folds of one model come from one trainer")  # fmt: skip
    _check_plans(model_folder / "plans.json", saved[0]["init_args"]["configuration"], paths[0])
    return trainer


def _check_plans(plans_file: Path, configuration: str, checkpoint: Path) -> None:
    """The model's plans have nnU-Net's structure and the configuration the checkpoint was trained with."""
    import json

    from plans.presets import plans_problem

    try:
        plans = json.loads(plans_file.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as e:
        raise InputError(plans_file, f"expected nnU-Net's plans (JSON), could not read them ({e})") from None
    problem = plans_problem(plans, configuration, keys=("spacing", "patch_size", "architecture"))
    if problem:
        raise InputError(plans_file, problem)
    if configuration not in plans["configurations"]:
        raise InputError(checkpoint, f"trained with configuration {configuration!r}, which {plans_file} does not "
                         f"have (it has {', '.join(plans['configurations'])})")  # fmt: skip


def _load_checkpoint(path: Path) -> dict:
    """An nnU-Net checkpoint (memory-mapped), which must at least name its trainer."""
    import torch

    try:
        saved = torch.load(path, map_location="cpu", weights_only=False, mmap=True)
        if not isinstance(saved["trainer_name"], str):
            raise TypeError(f"trainer_name {saved['trainer_name']!r} is not a name")
    except Exception as e:  # torch raises many types for corrupt or foreign files
        raise InputError(path, f"expected an nnU-Net checkpoint with a trainer_name, could not read it ({e})") from None
    return saved


def scans_as_nifti(scans: dict[str, Path], folder: Path) -> Path:
    """``folder`` holding exactly ``folder/<subject>.nii.gz`` for the given scans: links to NIfTI scans, other
    formats converted. Rebuilt every run (an earlier run's copy of a scan since replaced is never used).

    The biomarkers need each scan's intensities on the grid of its restored label map; DICOM series,
    NRRD and MHA scans are read once with the conversion's reader and written as NIfTI.
    """
    import SimpleITK as sitk

    from dataset_conversion.readers import read_scan
    from nnunet_filternet.utils.atomic import write_image

    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    for subject, path in scans.items():
        target = folder / f"{subject}.nii.gz"
        if path.name.endswith(".nii.gz") and path.is_file():
            target.symlink_to(path.resolve())
        else:
            write_image(sitk.Cast(read_scan(path), sitk.sitkFloat32), target)
    return folder


@dataclass
class PredictResult:
    """What :func:`predict_scans` did.

    Attributes:
        out: the output folder.
        label_maps: ``<out>/<subject>.nii.gz`` written, one per scan segmented.
        failed: scan -> (step, reason) for scans that could not be segmented or quantified.
        biomarkers: ``<out>/biomarkers.csv``, or None when no scan was segmented.
        failed_csv: ``<out>/failed.csv``.
        notes: things worth telling (one-leg scans, predictions reused).
        scans: every scan of the images folder.
        qc: the quality check (``<out>/qc.csv``, figures of flagged scans, summary), None when not made.
    """

    out: Path
    label_maps: list[Path]
    failed: dict[str, tuple[str, str]]
    biomarkers: Path | None
    failed_csv: Path
    notes: list[str] = field(default_factory=list)
    scans: list[str] = field(default_factory=list)
    qc: object | None = None


def _device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise FilterNetError("--device cuda: CUDA is not available on this machine; use --device cpu")
    return device


def _check_output(images: Path, results: Path, out: Path, scans: dict[str, Path]):
    """Refuse an --out that is or holds an input, or holds files with the names we write that we did not write.

    Returns:
        The :class:`~.predict_outputs.OutputFolder`.
    """
    from nnunet_filternet.pipeline.predict_outputs import WORK, OutputFolder, planned_files
    from nnunet_filternet.utils.atomic import check_writable
    from nnunet_filternet.utils.output_guard import refuse_inputs_as_outputs

    check_writable(out, "output folder", folder=True)
    names = planned_files(scans)
    refuse_inputs_as_outputs(
        {images: "scans (--images)", results: "trained model (--results)"},
        files=[out / n for n in names],
        folders=[out],
        whole_folders=[out / WORK],
    )
    folder = OutputFolder(out)
    folder.refuse_foreign(names)
    return folder


def _predict_legs(predictor, key: str, snap, device: str, work: Path, cases) -> list:
    """Leg predictions of ``cases`` in ``work/predictions``, reusing only those of the model ``key`` (whose files'
    snapshot is ``snap``) made from the same leg image."""
    from nnunet_filternet.pipeline import leg_predictions as lp
    from nnunet_filternet.pipeline.predict_outputs import QC_RECORDS

    ledger = work / "predictions.json"
    todo = lp.keep_reusable_predictions(work / "images", work / "predictions", ledger, key, cases)
    for case in todo:  # the folds' agreement of a leg is redone with its prediction (kept with a reused one)
        (work / QC_RECORDS / f"{case}.json").unlink(missing_ok=True)
    if todo:
        lp.run_nnunet(predictor, work / "images", work / "predictions", device)
    if not snap.holds():
        lp.forget_predictions(ledger)
        raise FilterNetError(
            f"{', '.join(snap.changed())}: the model changed while it was predicting; nothing was published, run "
            "again when training has finished"
        )
    reused = len(cases) - len(todo)
    return [f"{reused} of {len(cases)} leg prediction(s) reused (same model and leg image)"] if reused else []


def _restore(work: Path, subjects: list[str], failed: dict, jobs: int | None) -> dict[str, Path]:
    """Label maps of the scans whose legs were all predicted, staged in ``work/labels`` (subject -> file)."""
    from dataset_conversion.restore import restoration

    labels = work / "labels"
    if labels.exists():
        shutil.rmtree(labels)
    labels.mkdir(parents=True)
    if not subjects:
        return {}
    try:
        result = restoration(work / "predictions", work / "images" / "legs.json", labels, jobs, keep_going=True)
    except InputError as e:  # not one scan with all its legs predicted
        failed.update({s: ("restore", str(e)) for s in subjects})
        return {}
    for subject, problems in result.incomplete.items():
        failed[subject] = ("restore", "; ".join(problems))
    for subject in result.not_predicted:
        failed[subject] = ("predict", "no leg prediction was made")
    return {p.name[: -len(".nii.gz")]: p for p in result.written}


def predict_scans(
    images: str | Path,
    out: str | Path,
    results: str | Path,
    trainer: str = "nnUNetTrainerFilterNet",
    plans: str | None = None,
    configuration: str = "3d_fullres",
    folds: Sequence[int] | None = None,
    device: str = "auto",
    checkpoint: str = "checkpoint_final.pth",
    jobs: int | None = None,
    disable_tta: bool = False,
) -> PredictResult:
    """Segment every scan in ``images``; write ``out/<subject>.nii.gz``, ``out/biomarkers.csv``, ``out/failed.csv``.

    Scans that fail (conversion, restore or biomarkers) are listed in ``failed.csv`` and the result; the others
    go on. Intermediate leg images and predictions are kept in ``out/.legs`` so that a rerun continues.

    Raises:
        FilterNetError: bad arguments, model or output folder (nothing written), or the model changed meanwhile.
    """
    from dataset_conversion.convert import inference_conversion
    from dataset_conversion.readers import find_scans
    from nnunet_filternet.pipeline import leg_predictions as lp
    from nnunet_filternet.pipeline.predict_outputs import BIOMARKERS, FAILED, QC_CSV, QC_RECORDS, WORK, planned_files
    from nnunet_filternet.quantify.biomarkers import quantify_folder
    from nnunet_filternet.utils.parallel import check_jobs

    check_jobs(jobs)
    device = _device(device)
    model = find_model_folder(results, trainer, plans, configuration)
    use_folds = find_folds(model, checkpoint, folds)
    check_model(model, use_folds, checkpoint)
    images, out = Path(images), Path(out)
    scans = find_scans(images)
    folder = _check_output(images, Path(results), out, scans)
    key, snap = lp.model_key(model, use_folds, checkpoint, device, disable_tta)  # before nnU-Net reads the files
    work = out / WORK
    qc_records = work / QC_RECORDS  # the folds' agreement per leg, written by the predictor
    predictor = lp.load_predictor(model, use_folds, checkpoint, device, disable_tta, qc_records)  # another net: refused
    print(f"[1/4] converting scans in {images} (bias correction, legs, mirroring)", flush=True)
    conversion = inference_conversion(images, work / "images", jobs=jobs, keep_going=True, allow_empty=True)
    by_source = {str(p.absolute()): s for s, p in scans.items()}
    failed = {by_source.get(src, Path(src).name): ("convert", reason) for src, reason in conversion.failed.items()}
    converted = sorted({r.subject for r in conversion.records})
    print(f"[2/4] nnU-Net prediction with {model.name}, folds {use_folds}, on {device}", flush=True)
    notes = list(conversion.notes)
    if converted:
        notes += _predict_legs(predictor, key, snap, device, work, [r.case for r in conversion.records])
    print(f"[3/4] restoring label maps onto the scans in {out}", flush=True)
    staged = _restore(work, converted, failed, jobs)
    print("[4/4] biomarkers and quality check", flush=True)
    tables = set(planned_files([])) - {FAILED, QC_CSV}  # the biomarker table and its colour tables
    biomarkers, qc = None, None
    if staged:
        folder.claim(tables | {QC_CSV} | {f"{s}_qc.png" for s in staged})
        quantified: dict[str, str] = {}
        nifti = scans_as_nifti({s: scans[s] for s in staged}, work / "scans")
        biomarkers = quantify_folder(nifti, work / "labels", out / BIOMARKERS, jobs=jobs, failed=quantified)
        failed.update({s: ("quantify", reason) for s, reason in quantified.items()})
        qc = _quality_check(work, qc_records, nifti, model, biomarkers, out, jobs, notes)
    kept = (tables if biomarkers else set()) | {FAILED} | ({QC_CSV, *(p.name for p in qc.figures)} if qc else set())
    written = folder.publish(staged, keep=kept)
    failed_csv = folder.write_failed(failed)
    return PredictResult(out, written, failed, biomarkers, failed_csv, notes, sorted(scans), qc)


def _quality_check(work: Path, records: Path, scans: Path, model: Path, biomarkers: Path, out: Path, jobs, notes):
    """``out/qc.csv`` and the figures of flagged scans (:func:`nnunet_filternet.qc.check.check_predictions`);
    None, with a note, when the check cannot be made (the label maps and biomarkers stand)."""
    from nnunet_filternet.pipeline.predict_outputs import QC_CSV
    from nnunet_filternet.qc.check import check_predictions

    try:
        return check_predictions(
            work / "images" / "legs.json", work / "predictions", scans, work / "labels", out / QC_CSV, model,
            records, biomarkers, jobs=jobs,
        )  # fmt: skip
    except FilterNetError as e:
        notes.append(f"quality check not made: {e}")
        return None


def print_summary(result: PredictResult) -> None:
    """The run's summary: label maps, biomarkers and the quality check on stdout, each failed scan (by name) and
    notes on stderr."""
    print(f"label maps: {len(result.label_maps)} of {len(result.scans)} scan(s) in {result.out}", flush=True)
    if result.biomarkers is not None:
        print(f"biomarkers: {result.biomarkers}", flush=True)
    if result.qc is not None:
        print(f"quality: {result.qc.csv} ({result.qc.reference_note})\n{result.qc.summary}", flush=True)
    for note in result.notes:
        print(f"note: {note}", file=sys.stderr)
    if result.failed:
        print(f"{len(result.failed)} scan(s) failed (listed in {result.failed_csv}):", file=sys.stderr)
        for scan, (step, reason) in sorted(result.failed.items()):
            print(f"  {scan}: {step}: {reason}", file=sys.stderr)
