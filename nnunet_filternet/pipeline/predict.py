"""``filternet predict``: new scans -> label maps on those scans, with a trained model.

Steps: :func:`nnunet_filternet.dataset_conversion.convert.inference_conversion` (bias correction, legs, mirroring) ->
nnU-Net's ``nnUNetPredictor`` (an ensemble over the folds found) -> :func:`nnunet_filternet.dataset_conversion.restore.
restoration` -> :func:`nnunet_filternet.quantify.biomarkers.quantify_folder` -> :func:`nnunet_filternet.qc.
check.check_predictions` (``qc.csv``; nnU-Net's predictor is :class:`nnunet_filternet.qc.predictor.
AgreementPredictor`, which also records the folds' agreement per leg, kept and dropped with its prediction).

Work is kept in ``<out>/.legs`` so that a rerun continues, and reused only when keyed on all that produced it:
the conversion per scan on the scan's content (:mod:`nnunet_filternet.dataset_conversion.scan_worker`), each leg
prediction on the model and the leg image (:mod:`.leg_predictions`), each biomarker row on its files' content
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

    from nnunet_filternet.plans.presets import plans_problem

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

    from nnunet_filternet.dataset_conversion.readers import read_scan
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


#: scans carried through conversion -> nnU-Net -> restore -> biomarkers -> quality check at a time
CHUNK_SCANS = 16


def check_parts(num_parts: int, part_id: int) -> None:
    """Raise unless ``0 <= part_id < num_parts`` (nnU-Net counts parts from 0).

    Raises:
        FilterNetError: naming the option.
    """
    for name, value, low in (("--num-parts", num_parts, 1), ("--part-id", part_id, 0)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise FilterNetError(f"{name} {value!r}: expected an integer >= {low}")
    if part_id >= num_parts:
        raise FilterNetError(
            f"--part-id {part_id}: expected 0 to {num_parts - 1} for --num-parts {num_parts} (parts are counted "
            "from 0, as nnUNetv2_predict's -part_id)"
        )


def part_of(subjects, num_parts: int, part_id: int) -> list[str]:
    """The scans of part ``part_id`` of ``num_parts``: every ``num_parts``-th of the sorted names, from the
    ``part_id``-th (as ``nnUNetv2_predict -num_parts N -part_id K`` splits its cases). The parts of one cohort
    are disjoint and together hold every scan once."""
    check_parts(num_parts, part_id)
    return sorted(subjects)[part_id::num_parts]


@dataclass
class PredictResult:
    """What :func:`predict_scans` or :func:`merge_predictions` did.

    Attributes:
        out: the output folder.
        tally: the scans of the run (a part's, or the whole cohort's when merged): label maps, failures, flagged
            scans, scans without a finished prediction (:class:`~.predict_outputs.Tally`).
        part: (part id, number of parts).
        merged: the cohort's tables were written (a run of one part, or ``--merge``).
        skipped: scans finished by an earlier run and not predicted again.
        notes: things worth telling that belong to no scan (leg predictions reused, a quality check not made).
        reference_note: where the quality check's training statistics come from.
    """

    out: Path
    tally: object
    part: tuple[int, int] = (0, 1)
    merged: bool = True
    skipped: int = 0
    notes: list[str] = field(default_factory=list)
    reference_note: str = ""

    @property
    def failed(self) -> dict[str, tuple[str, str]]:
        return self.tally.failed

    def path(self, name: str) -> Path | None:
        """``out/name`` when the merge wrote it (``biomarkers.csv``, ``qc.csv``, ``failed.csv``), else None."""
        return self.out / name if self.merged and (self.out / name).is_file() else None


def _device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise FilterNetError("--device cuda: CUDA is not available on this machine; use --device cpu")
    return device


def resolve_model(results, trainer, plans, configuration, folds, checkpoint, disable_tta, devices: Sequence[str]):
    """The checked model (:func:`find_model_folder`, :func:`find_folds`, :func:`check_model`) and its keys on each
    of ``devices`` (the first is the run's), taken before nnU-Net reads its files.

    Returns:
        :class:`~.predict_chunks.Model`.
    """
    import hashlib
    import json

    from nnunet_filternet.pipeline import leg_predictions as lp
    from nnunet_filternet.pipeline.predict_chunks import Model
    from nnunet_filternet.pipeline.predict_outputs import RECORD_SCHEMA
    from nnunet_filternet.qc.reference import reference_for_model

    folder = find_model_folder(results, trainer, plans, configuration)
    use_folds = find_folds(folder, checkpoint, folds)
    check_model(folder, use_folds, checkpoint)
    key, snap = lp.model_key(folder, use_folds, checkpoint, devices[0], disable_tta)
    reference, note = reference_for_model(folder)
    run_keys = {}
    for device in devices:
        on_device = lp.model_key(folder, use_folds, checkpoint, device, disable_tta, snap)[0]
        parts = [on_device, reference, RECORD_SCHEMA]
        run_keys[device] = hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()
    return Model(folder, use_folds, checkpoint, disable_tta, devices[0], key, snap, run_keys, note)


def _check_output(images: Path, results: Path, out: Path, subjects: list[str], cohort: bool):
    """Refuse an --out that is or holds an input, or holds files with the names we write that we did not write
    (the files of ``subjects``, and the cohort's tables when ``cohort``).

    Returns:
        The :class:`~.predict_outputs.OutputFolder`.
    """
    from nnunet_filternet.pipeline.predict_outputs import WORK, OutputFolder, cohort_files, scan_files
    from nnunet_filternet.utils.atomic import check_writable
    from nnunet_filternet.utils.output_guard import refuse_inputs_as_outputs

    check_writable(out, "output folder", folder=True)
    names = [n for s in subjects for n in scan_files(s)] + (cohort_files() if cohort else [])
    refuse_inputs_as_outputs(
        {images: "scans (--images)", results: "trained model (--results)"},
        files=[out / n for n in names],
        folders=[out],
        whole_folders=[out / WORK],
    )
    folder = OutputFolder(out)
    folder.refuse_foreign(names)
    return folder


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
    num_parts: int = 1,
    part_id: int = 0,
    overwrite: bool = False,
    chunk_size: int = CHUNK_SCANS,
) -> PredictResult:
    """Segment the scans of part ``part_id`` of ``num_parts`` of ``images`` (all of them by default) into ``out``:
    ``out/<subject>.nii.gz`` (and ``<subject>_qc.png`` of flagged scans) and each scan's record; with one part
    also the cohort's ``biomarkers.csv``, ``qc.csv`` and ``failed.csv`` (:func:`merge_predictions` does it for
    several parts).

    Scans are carried through the steps ``chunk_size`` at a time (:mod:`.predict_chunks`); a scan finished by an
    earlier run from the same scan, model, options and program version is not predicted again unless
    ``overwrite``. Scans that fail (conversion, restore or biomarkers) are listed; the others go on.

    Raises:
        FilterNetError: bad arguments, model or output folder (nothing written), or the model changed meanwhile.
    """
    from nnunet_filternet.dataset_conversion.readers import find_scans
    from nnunet_filternet.pipeline import leg_predictions as lp
    from nnunet_filternet.pipeline.predict_chunks import PartRun
    from nnunet_filternet.pipeline.predict_outputs import PARTS, QC_RECORDS, WORK, part_name
    from nnunet_filternet.utils.parallel import check_jobs

    check_jobs(jobs)
    check_parts(num_parts, part_id)
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
        raise FilterNetError(f"--chunk-size {chunk_size!r}: expected a positive number of scans")
    model = resolve_model(results, trainer, plans, configuration, folds, checkpoint, disable_tta, [_device(device)])
    images, out = Path(images), Path(out)
    scans = find_scans(images)
    mine = part_of(scans, num_parts, part_id)
    folder = _check_output(images, Path(results), out, mine, cohort=num_parts == 1)
    work = out / WORK / PARTS / part_name(part_id, num_parts)
    if overwrite and work.exists():
        shutil.rmtree(work)
    predictor = lp.load_predictor(model.folder, model.folds, checkpoint, model.device, disable_tta, work / QC_RECORDS)
    of = f"part {part_id} of {num_parts}: {len(mine)} of {len(scans)}" if num_parts > 1 else f"{len(scans)}"
    print(f"predicting {of} scan(s) in {images} with {model.folder.name}, folds {model.folds}, on {model.device}, "
          f"{chunk_size} at a time: convert, nnU-Net, restore, biomarkers, quality check", flush=True)  # fmt: skip
    run = PartRun(images, scans, work, folder, model, predictor, jobs)
    tally = run.predict(mine, chunk_size, overwrite)
    shutil.rmtree(work, ignore_errors=True)  # every scan of the part is finished: its record holds what it made
    notes = list(run.notes)
    if run.reused_legs:
        notes.append(f"{run.reused_legs} of {run.legs} leg prediction(s) reused (same model and leg image)")
    if run.skipped:
        notes.append(f"{run.skipped} of {len(mine)} scan(s) finished by an earlier run, not predicted again")
    result = PredictResult(out, tally, (part_id, num_parts), False, run.skipped, notes, model.reference_note)
    if num_parts == 1:
        result.tally, result.merged = _merge(folder, scans, model), True
    return result


def merge_predictions(
    images: str | Path,
    out: str | Path,
    results: str | Path,
    trainer: str = "nnUNetTrainerFilterNet",
    plans: str | None = None,
    configuration: str = "3d_fullres",
    folds: Sequence[int] | None = None,
    checkpoint: str = "checkpoint_final.pth",
    disable_tta: bool = False,
) -> PredictResult:
    """The cohort's ``biomarkers.csv``, ``qc.csv`` and ``failed.csv`` in ``out`` from the scans finished by the parts
    (:func:`predict_scans` with the same images, model and options, on any device); scans not finished (yet) are
    counted and named in the result, not written.

    Raises:
        FilterNetError: bad arguments, model or output folder.
    """
    from nnunet_filternet.dataset_conversion.readers import find_scans

    model = resolve_model(results, trainer, plans, configuration, folds, checkpoint, disable_tta, ["cpu", "cuda"])
    images, out = Path(images), Path(out)
    scans = find_scans(images)
    folder = _check_output(images, Path(results), out, [], cohort=True)
    return PredictResult(out, _merge(folder, scans, model), reference_note=model.reference_note)


def _merge(folder, scans: dict[str, Path], model):
    """:meth:`~.predict_outputs.OutputFolder.merge` of every scan, each keyed as it is now, on each device."""
    from nnunet_filternet.pipeline.predict_chunks import record_key
    from nnunet_filternet.utils.cache import snapshot

    def keys():
        for subject, path in scans.items():
            try:
                snap = snapshot([path])
            except InputError as e:
                yield subject, set(), str(e)
                continue
            yield subject, {record_key(snap, run_key) for run_key in model.run_keys.values()}, None

    return folder.merge(keys())


def print_summary(result: PredictResult) -> None:
    """The run's summary: label maps, tables and the quality check on stdout; failed scans (by name), scans not
    finished and notes on stderr."""
    from nnunet_filternet.pipeline.predict_outputs import BIOMARKERS, FAILED, QC_CSV

    t = result.tally
    part_id, num_parts = result.part
    where = f"part {part_id} of {num_parts}: " if not result.merged else ""
    print(f"{where}label maps: {t.label_maps} of {t.scans} scan(s) in {result.out}", flush=True)
    if result.path(BIOMARKERS):
        print(f"biomarkers: {result.path(BIOMARKERS)}", flush=True)
    if t.checked:
        csv_note = f"{result.path(QC_CSV)} " if result.path(QC_CSV) else ""
        print(f"quality: {csv_note}({result.reference_note})\n{t.qc_summary()}", flush=True)
    for note in t.notes + result.notes:
        print(f"note: {note}", file=sys.stderr)
    if t.failed:
        listed = f" (listed in {result.out / FAILED})" if result.merged else ""
        print(f"{len(t.failed)} scan(s) failed{listed}:", file=sys.stderr)
        for scan, (step, reason) in sorted(t.failed.items()):
            print(f"  {scan}: {step}: {reason}", file=sys.stderr)
    if t.missing:
        names = ", ".join(t.missing_names) + (", ..." if t.missing > len(t.missing_names) else "")
        print(f"{t.missing} scan(s) without a finished prediction, not in the tables: {names}; run their parts "
              "(or predict without --num-parts), then merge again", file=sys.stderr)  # fmt: skip
    if not result.merged:
        print(f"part {part_id} of {num_parts} done; once every part is done, merge the tables: the same command with "
              "--merge instead of --num-parts/--part-id", flush=True)  # fmt: skip
