"""``filternet predict``: new scans -> label maps on those scans, with a trained model.

Steps: :func:`dataset_conversion.convert.convert_inference` (bias correction, legs, mirroring) ->
nnU-Net's ``nnUNetPredictor`` (an ensemble over the folds found) -> :func:`dataset_conversion.restore.
restore_predictions` -> :func:`nnunet_filternet.quantify.biomarkers.quantify_folder` -> :func:`nnunet_filternet.qc.
check.check_predictions` (``qc.csv``; nnU-Net's predictor is :class:`nnunet_filternet.qc.predictor.AgreementPredictor`,
which also records the folds' agreement per leg).
"""

from __future__ import annotations

from collections.abc import Sequence
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

    nnU-Net's predictor reads ``plans.json`` and ``dataset.json`` of the model folder and looks up the trainer
    named in each fold's checkpoint (``trainer_name``) with its trainer search.

    Raises:
        InputError: a file is missing or unreadable, or nnU-Net cannot find the trainer (one line, naming it).
    """
    import os

    import torch

    from nnunet_filternet.nnunet_ext import find_trainer

    for name in ("plans.json", "dataset.json"):
        if not (model_folder / name).is_file():
            raise InputError(model_folder / name, "expected nnU-Net's copy of the model's " + name + ", not found")
    path = model_folder / f"fold_{folds[0]}" / checkpoint
    try:
        trainer_name = torch.load(path, map_location="cpu", weights_only=False, mmap=True)["trainer_name"]
    except Exception as e:  # torch raises many types for corrupt or foreign files
        raise InputError(path, f"expected an nnU-Net checkpoint with a trainer_name, could not read it ({e})") from None
    trainer = find_trainer(trainer_name)
    if trainer is None:
        raise InputError(
            path,
            f"trained by {trainer_name}, which nnU-Net cannot find (looked in nnunetv2 and in "
            f"nnUNet_extTrainer={os.environ.get('nnUNet_extTrainer', '')}); install or point nnUNet_extTrainer at "
            "the package that defines it",
        )
    return trainer


def scans_as_nifti(images: str | Path, folder: Path) -> Path:
    """``folder/<subject>.nii.gz`` for every scan of ``images``: links to NIfTI files, other formats converted.

    The biomarkers need each scan's intensities on the grid of its restored label map; DICOM series,
    NRRD and MHA scans are read once with the conversion's reader and written as NIfTI.
    """
    import SimpleITK as sitk

    from dataset_conversion.readers import find_scans, read_scan
    from nnunet_filternet.utils.atomic import write_image

    folder.mkdir(parents=True, exist_ok=True)
    for subject, path in find_scans(Path(images)).items():
        target = folder / f"{subject}.nii.gz"
        if target.exists() or target.is_symlink():
            continue
        if path.name.endswith(".nii.gz"):
            target.symlink_to(path.resolve())
        else:
            write_image(sitk.Cast(read_scan(path), sitk.sitkFloat32), target)
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
) -> Path:
    """Segment every scan in ``images``; write ``out/<subject>.nii.gz``, ``out/biomarkers.csv`` and ``out/qc.csv``.

    Intermediate leg images and leg predictions are kept in ``out/.legs`` so that a rerun continues.
    """
    import torch

    from dataset_conversion.convert import convert_inference
    from dataset_conversion.restore import restore_predictions
    from nnunet_filternet.qc.check import check_predictions
    from nnunet_filternet.qc.predictor import AgreementPredictor
    from nnunet_filternet.quantify.biomarkers import quantify_folder

    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise FilterNetError("--device cuda: CUDA is not available on this machine; use --device cpu")
    model = find_model_folder(results, trainer, plans, configuration)
    use_folds = find_folds(model, checkpoint, folds)
    check_model(model, use_folds, checkpoint)
    out = Path(out)
    legs_in, legs_pred = out / ".legs" / "images", out / ".legs" / "predictions"
    print(f"[1/4] converting scans in {images} (bias correction, legs, mirroring)", flush=True)
    convert_inference(images, legs_in, jobs=jobs)
    print(f"[2/4] nnU-Net prediction with {model.name}, folds {use_folds}, on {device}", flush=True)
    predictor = AgreementPredictor(
        out / ".legs" / "qc",
        tile_step_size=0.5, use_gaussian=True, use_mirroring=not disable_tta, device=torch.device(device),
        verbose=False, verbose_preprocessing=False, allow_tqdm=True,
    )  # fmt: skip
    predictor.initialize_from_trained_model_folder(str(model), use_folds=tuple(use_folds), checkpoint_name=checkpoint)
    n = 1 if device == "cpu" else 3
    predictor.predict_from_files(
        str(legs_in), str(legs_pred), save_probabilities=False, overwrite=False,
        num_processes_preprocessing=n, num_processes_segmentation_export=n,
    )  # fmt: skip
    print(f"[3/4] restoring label maps onto the scans in {out}", flush=True)
    restore_predictions(legs_pred, legs_in / "legs.json", out, jobs=jobs)
    print("[4/4] biomarkers and quality check", flush=True)
    csv = quantify_folder(scans_as_nifti(images, out / ".legs" / "scans"), out, out / "biomarkers.csv")
    qc = check_predictions(
        legs_in / "legs.json", legs_pred, out / ".legs" / "scans", out, out / "qc.csv", model, out / ".legs" / "qc",
        csv, jobs=jobs,
    )  # fmt: skip
    print(f"label maps: {out}/<subject>.nii.gz\nbiomarkers: {csv}\nquality: {qc.csv} ({qc.reference_note})", flush=True)
    print(qc.summary, flush=True)
    return out
