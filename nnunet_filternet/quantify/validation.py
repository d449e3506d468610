"""Checking measured fat fractions against true fat fraction maps (the phantom's ``--save-fat-fraction``).

``filternet phantom --save-fat-fraction`` writes ``DIR/fatfraction/<subject>.nii.gz``; the true fat fraction
of a compartment (and side) is the mean of that map over the compartment's voxels.
"""

from __future__ import annotations

import csv
import math
import os
from pathlib import Path

import numpy as np

from nnunet_filternet.errors import InputError
from nnunet_filternet.labels import COMPARTMENTS
from nnunet_filternet.metrics.label_maps import check_label_values
from nnunet_filternet.metrics.matching import list_cases
from nnunet_filternet.quantify.biomarkers import _on_labels_grid, _read, side_masks


def true_fat_fractions(labels_dir: str | os.PathLike, fat_fraction_dir: str | os.PathLike) -> dict[tuple, float]:
    """(subject, side, compartment) -> mean true fat fraction, from label maps and true fat fraction maps.

    The label maps are full scans (a phantom cohort): the subject is the case name, sides come from the geometry
    (:func:`~nnunet_filternet.quantify.biomarkers.side_masks`), as in ``filternet quantify``.

    Raises:
        InputError: a label map without a fat fraction map.
    """
    labels, truth = list_cases(labels_dir), list_cases(fat_fraction_dir, images=True)
    missing = sorted(set(labels) - set(truth))
    if missing:
        raise InputError(fat_fraction_dir, f"expected a fat fraction map for every label map, missing: {missing}")
    out = {}
    for case, path in labels.items():
        label_volume = _read(path, "label map")
        label_array = check_label_values(label_volume.array, path)
        ff = _on_labels_grid(truth[case], "fat fraction map", label_volume, path).array
        for side, side_mask in side_masks(label_volume, case=case)[0].items():
            for value, name in enumerate(COMPARTMENTS, start=1):
                mask = label_array == value
                if side_mask is not None:
                    mask &= side_mask
                out[(case, side, name)] = float(ff[mask].mean()) if mask.any() else float("nan")
    return out


def fat_fraction_errors(
    biomarkers_csv: str | os.PathLike, labels_dir: str | os.PathLike, fat_fraction_dir: str | os.PathLike
) -> dict:
    """Errors (measured - true) of the CSV's fat fraction columns against the true maps.

    Returns:
        ``{column: {"n", "mean_error", "mean_abs_error", "max_abs_error"}}`` for ``fat_fraction_t1`` and, if
        present, ``fat_fraction_dixon``; plus ``"rows"``: the per-row values.
    """
    truth = true_fat_fractions(labels_dir, fat_fraction_dir)
    with open(biomarkers_csv, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    result: dict = {"rows": []}
    for column in ("fat_fraction_t1", "fat_fraction_dixon"):
        if not rows or column not in rows[0]:
            continue
        errors = []
        for row in rows:
            true = truth.get((row["subject"], row["side"], row["compartment"]), math.nan)
            measured = float(row[column])
            if not (math.isnan(true) or math.isnan(measured)):
                errors.append(measured - true)
                result["rows"].append({**row, "true_fat_fraction": true})
        e = np.asarray(errors)
        result[column] = {
            "n": int(e.size),
            "mean_error": float(e.mean()) if e.size else math.nan,
            "mean_abs_error": float(np.abs(e).mean()) if e.size else math.nan,
            "max_abs_error": float(np.abs(e).max()) if e.size else math.nan,
        }
    return result


def write_corrected_images(images_dir: Path, bias_dir: Path, out_dir: Path) -> None:
    """Divide each image by its true bias field (to separate bias-field error from the method's own)."""
    import SimpleITK as sitk

    from nnunet_filternet.utils.atomic import write_image
    from nnunet_filternet.utils.image_io import read_image

    bias = list_cases(bias_dir, images=True)
    for case, path in list_cases(images_dir, images=True).items():
        image = read_image(path, "image", sitk.sitkFloat32)
        field = read_image(bias[case], "bias field", sitk.sitkFloat32)
        write_image(sitk.Divide(image, field), out_dir / f"{case}.nii.gz")


def validate_on_phantom(cohort_dir: str | os.PathLike, out_dir: str | os.PathLike, jobs: int | None = None) -> dict:
    """Quantify a phantom cohort (with ``fatfraction/`` and ``bias/``) and measure the T1 fat fraction error.

    Runs :func:`~nnunet_filternet.quantify.biomarkers.quantify_folder` on the images as acquired and on copies
    divided by the true bias field, and compares both with the true maps.

    Returns:
        ``{"as_acquired": errors, "bias_removed": errors}``, each as :func:`fat_fraction_errors` without rows.
    """
    from nnunet_filternet.quantify.biomarkers import quantify_folder

    cohort, out = Path(cohort_dir), Path(out_dir)
    results = {}
    for name, images in (("as_acquired", cohort / "images"), ("bias_removed", out / "bias_removed")):
        if name == "bias_removed":
            write_corrected_images(cohort / "images", cohort / "bias", images)
        csv_path = quantify_folder(images, cohort / "labels", out / f"{name}.csv", jobs=jobs)
        errors = fat_fraction_errors(csv_path, cohort / "labels", cohort / "fatfraction")
        results[name] = errors["fat_fraction_t1"]
    return results
