"""``filternet predict``: new scans -> label maps on those scans, with a trained model.

Steps: :func:`dataset_conversion.convert.convert_inference` (bias correction, legs, mirroring) ->
nnU-Net's ``nnUNetPredictor`` (an ensemble over the folds found) -> :func:`dataset_conversion.restore.
restore_predictions` -> :func:`nnunet_filternet.quantify.biomarkers.quantify_folder`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from nnunet_filternet.errors import FilterNetError, InputError


def find_model_folder(results: str | Path, trainer: str, plans: str | None, configuration: str) -> Path:
    """``<results>/<trainer>__<plans>__<configuration>``; with ``plans=None`` the only one present."""
    results = Path(results)
    if not results.is_dir():
        raise InputError(results, "expected an nnU-Net results folder $nnUNet_results/DatasetNNN_NAME")
    if plans is not None:
        folder = results / f"{trainer}__{plans}__{configuration}"
        if not folder.is_dir():
            raise InputError(folder, f"no trained model for trainer {trainer}, plans {plans}, {configuration}")
        return folder
    found = sorted(p for p in results.glob(f"{trainer}__*__{configuration}") if p.is_dir())
    if len(found) != 1:
        names = ", ".join(p.name for p in sorted(results.iterdir()) if p.is_dir()) or "none"
        raise InputError(
            results,
            f"expected exactly one model folder {trainer}__<plans>__{configuration}, found "
            f"{len(found)}; pass --plans (model folders here: {names})",
        )
    return found[0]


def find_folds(model_folder: Path, checkpoint: str, folds: Sequence[int] | None) -> list[int]:
    """The folds to ensemble: the given ones (each must have ``checkpoint``) or all that have it."""
    have = sorted(int(p.parent.name.split("_")[1]) for p in model_folder.glob(f"fold_*/{checkpoint}"))
    if folds is None:
        if not have:
            raise InputError(model_folder, f"no fold_*/{checkpoint} found: is the model trained?")
        return have
    missing = [f for f in folds if f not in have]
    if missing:
        raise InputError(model_folder, f"folds {missing} have no {checkpoint} (trained folds: {have or 'none'})")
    return list(folds)


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
    """Segment every scan in ``images``; write ``out/<subject>.nii.gz`` and ``out/biomarkers.csv``.

    Intermediate leg images and leg predictions are kept in ``out/.legs`` so that a rerun continues.
    """
    import torch
    from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor

    from dataset_conversion.convert import convert_inference
    from dataset_conversion.restore import restore_predictions
    from nnunet_filternet.quantify.biomarkers import quantify_folder

    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise FilterNetError("--device cuda: CUDA is not available on this machine; use --device cpu")
    model = find_model_folder(results, trainer, plans, configuration)
    use_folds = find_folds(model, checkpoint, folds)
    out = Path(out)
    legs_in, legs_pred = out / ".legs" / "images", out / ".legs" / "predictions"
    print(f"[1/4] converting scans in {images} (bias correction, legs, mirroring)", flush=True)
    convert_inference(images, legs_in, jobs=jobs)
    print(f"[2/4] nnU-Net prediction with {model.name}, folds {use_folds}, on {device}", flush=True)
    predictor = nnUNetPredictor(
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
    print("[4/4] biomarkers", flush=True)
    csv = quantify_folder(scans_as_nifti(images, out / ".legs" / "scans"), out, out / "biomarkers.csv")
    print(f"label maps: {out}/<subject>.nii.gz\nbiomarkers: {csv}", flush=True)
    return out
