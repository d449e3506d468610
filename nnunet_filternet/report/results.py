"""Reading an nnU-Net results folder: trainers, folds, cross-validation predictions, ground truth, images.

Layout: ``$nnUNet_results/DatasetNNN_NAME/<trainer>__<plans>__<configuration>/fold_<k>/validation/``.
Ground truth: ``$nnUNet_preprocessed/DatasetNNN_NAME/gt_segmentations`` (written by nnU-Net's
preprocessing), else ``$nnUNet_raw/DatasetNNN_NAME/labelsTr``. Images: ``$nnUNet_raw/DatasetNNN_NAME/imagesTr``.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from nnunet_filternet.errors import FilterNetError, InputError
from nnunet_filternet.metrics.matching import list_cases

_FOLD = re.compile(r"fold_(\d+)$")


@dataclass(frozen=True)
class FoldRun:
    """One fold of one trainer: its folder and its validation predictions (case -> file)."""

    fold: int
    path: Path
    predictions: dict[str, Path]


@dataclass(frozen=True)
class TrainerRun:
    """A trainer's cross-validation: its ``<trainer>__<plans>__<configuration>`` folder and folds."""

    trainer: str
    path: Path
    folds: tuple[FoldRun, ...]

    def predictions(self) -> dict[str, Path]:
        """Case -> validation prediction over all folds (a case belongs to one fold)."""
        return {case: path for fold in self.folds for case, path in fold.predictions.items()}

    def fold_of(self) -> dict[str, int]:
        """Case -> the fold whose validation set holds it."""
        return {case: fold.fold for fold in self.folds for case in fold.predictions}


def trainer_folder_name(trainer: str, plans: str, configuration: str) -> str:
    """nnU-Net's output folder name of a trainer / plans / configuration."""
    return f"{trainer}__{plans}__{configuration}"


def fold_numbers(model_folder: str | os.PathLike) -> list[int]:
    """The k of every ``fold_<k>`` folder in a ``<trainer>__<plans>__<configuration>`` folder, sorted."""
    return sorted(int(m.group(1)) for p in Path(model_folder).iterdir() if p.is_dir() and (m := _FOLD.match(p.name)))


def results_found(results_dir: str | os.PathLike) -> str:
    """What a results folder holds, for error messages: its model folders with their folds, on one line.

    E.g. ``nnUNetTrainer__nnUNetPlans__3d_fullres (folds 0, 1), nnUNetTrainerFilterNet__nnUNetPlans__3d_fullres
    (no fold_<k> folders)``, or ``no <trainer>__<plans>__<configuration> folders``.
    """
    entries = []
    for folder in sorted(p for p in Path(results_dir).iterdir() if p.is_dir() and p.name.count("__") == 2):
        folds = fold_numbers(folder)
        entries.append(f"{folder.name} ({'folds ' + ', '.join(map(str, folds)) if folds else 'no fold_<k> folders'})")
    return ", ".join(entries) or "no <trainer>__<plans>__<configuration> folders"


def find_trainer_run(results_dir: str | os.PathLike, trainer: str, plans: str, configuration: str) -> TrainerRun:
    """Folds with validation predictions of one trainer.

    Raises:
        InputError: no such trainer folder (the ones present are listed), no ``fold_*`` folder, no
            fold with validation predictions (the folds examined are listed), or a case predicted by two folds.
    """
    results_dir = Path(results_dir)
    path = results_dir / trainer_folder_name(trainer, plans, configuration)
    if not path.is_dir():
        raise InputError(
            results_dir,
            f"expected results of trainer {trainer} (plans {plans}, configuration {configuration}) in "
            f"{path.name}, found none; present: {results_found(results_dir)}",
        )
    fold_dirs = [path / f"fold_{k}" for k in fold_numbers(path)]
    if not fold_dirs:
        raise InputError(path, "expected fold_<k> folders with cross-validation results, found none")
    folds = []
    for fold_dir in fold_dirs:
        validation = fold_dir / "validation"
        predictions = list_cases(validation) if validation.is_dir() else {}
        if predictions:
            folds.append(FoldRun(int(_FOLD.match(fold_dir.name).group(1)), fold_dir, predictions))
    if not folds:
        examined = ", ".join(f"{p.name}/validation" for p in fold_dirs)
        raise InputError(
            path,
            f"expected cross-validation predictions (*.nii.gz) in {examined}, found none (is training finished? "
            "nnU-Net writes them at its end, or with nnUNetv2_train --val)",
        )
    seen: dict[str, int] = {}
    for fold in folds:
        for case in fold.predictions:
            if case in seen:
                raise InputError(path, f"case {case!r} is predicted by both fold_{seen[case]} and fold_{fold.fold}")
            seen[case] = fold.fold
    return TrainerRun(trainer, path, tuple(folds))


def find_trainer_runs(
    results_dir: str | os.PathLike, trainers: list[str], plans: str, configuration: str
) -> dict[str, TrainerRun]:
    """:func:`find_trainer_run` for every trainer; one error lists every trainer that has a problem."""
    results_dir = Path(results_dir)
    if not results_dir.is_dir():
        raise InputError(results_dir, "expected an nnU-Net results folder $nnUNet_results/DatasetNNN_NAME, not found")
    runs, problems = {}, []
    for trainer in trainers:
        try:
            runs[trainer] = find_trainer_run(results_dir, trainer, plans, configuration)
        except InputError as e:
            problems.append(str(e))
    if problems:
        raise FilterNetError(f"{len(problems)} trainer(s) without usable results: " + " | ".join(problems))
    return runs


def dataset_name(results_dir: str | os.PathLike) -> str:
    """``DatasetNNN_NAME`` of a results folder (its folder name)."""
    return Path(results_dir).resolve().name


def _env_folder(variable: str, *parts: str) -> Path | None:
    root = os.environ.get(variable)
    return Path(root, *parts) if root else None


def default_gt_dir(results_dir: str | os.PathLike) -> Path:
    """Ground-truth folder of the results' dataset (preprocessed ``gt_segmentations``, else raw ``labelsTr``).

    Raises:
        InputError: neither exists (both candidates are named; pass ``--labels``).
    """
    name = dataset_name(results_dir)
    candidates = [
        _env_folder("nnUNet_preprocessed", name, "gt_segmentations"),
        _env_folder("nnUNet_raw", name, "labelsTr"),
    ]
    for folder in candidates:
        if folder is not None and folder.is_dir():
            return folder
    shown = ", ".join(str(c) for c in candidates if c is not None) or "nnUNet_preprocessed and nnUNet_raw are not set"
    raise InputError(results_dir, f"expected ground truth for {name} in {shown}; found none (pass --labels DIR)")


def default_images_dir(results_dir: str | os.PathLike) -> Path | None:
    """``$nnUNet_raw/DatasetNNN_NAME/imagesTr`` if it exists, else None."""
    folder = _env_folder("nnUNet_raw", dataset_name(results_dir), "imagesTr")
    return folder if folder is not None and folder.is_dir() else None
