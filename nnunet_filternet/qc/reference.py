"""The training set's distribution of compartment sizes, stored beside the model: ``qc_reference.json``.

Made from the training labels' leg cases (nnU-Net's ``labelsTr/<subject>_<L|R>.nii.gz``, measured as
:mod:`.measures` does), so that prediction needs no training data once it is written::

    {"schema": "filternet-qc-reference/1", "labels": "<folder>", "inputs": [[path, size, mtime, ctime, inode], ...],
     "legs": 16, "subjects": 8, "slices": {"min": 16, "max": 16},
     "compartments": {"TA": {"area_cm2": {"mean": 4.1, "sd": 0.4}, "share": {...}, "log_lr": {...},
                             "fragments_max": 0.0, "missing": 0}, ...}}

``log_lr`` is log(area of the left leg / area of the right leg) over subjects with both legs. Each SD is at least
:data:`MIN_RELATIVE_SD` of the mean (``share``, ``area_cm2``) or :data:`MIN_LOG_SD` (``log_lr``), so that a small
training set of near-identical legs does not make every new leg an outlier.

:func:`reference_for_model` finds it: ``<model folder>/qc_reference.json`` is used as it is when the training
labels are not at hand; where they are (``$nnUNet_raw/<dataset>/labelsTr``, or the ``nnUNet_raw`` folder beside
the results folder, as the demo lays them out) it is used only when it was made from exactly those files, else
it is made again and written beside the model.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np

from nnunet_filternet.labels import COMPARTMENTS
from nnunet_filternet.qc.measures import LegMeasure, measure_leg

SCHEMA = "filternet-qc-reference/1"
FILE_NAME = "qc_reference.json"
MIN_RELATIVE_SD = 0.05
MIN_LOG_SD = 0.05


def _stats(values: list[float], relative_floor: float | None = None, floor: float = 0.0) -> dict:
    """``{"mean", "sd", "n"}`` of the finite values (sd with ddof 1, floored); NaN when there are none."""
    v = np.asarray([x for x in values if math.isfinite(x)], dtype=np.float64)
    if v.size == 0:
        return {"mean": float("nan"), "sd": float("nan"), "n": 0}
    mean = float(v.mean())
    sd = float(v.std(ddof=1)) if v.size > 1 else 0.0
    low = max(floor, abs(mean) * relative_floor if relative_floor is not None else 0.0)
    return {"mean": mean, "sd": max(sd, low), "n": int(v.size)}


def read_leg(path: Path) -> tuple[np.ndarray, tuple[float, float, float]]:
    """(labels (z, y, x), spacing (z, y, x) in mm) of a leg label map."""
    import SimpleITK as sitk

    from nnunet_filternet.utils.image_io import read_image

    image = read_image(path, "leg label map")
    return sitk.GetArrayFromImage(image), tuple(reversed(image.GetSpacing()))


def summarise_legs(legs: dict[str, LegMeasure]) -> dict:
    """The reference's statistics (module docstring) from case -> :class:`LegMeasure` (``<subject>_<L|R>``)."""
    from nnunet_filternet.metrics.matching import side_of, subject_of

    by_subject: dict[str, dict[str, LegMeasure]] = {}
    for case, leg in legs.items():
        by_subject.setdefault(subject_of(case), {})[side_of(case) or "?"] = leg
    out = {}
    for name in COMPARTMENTS:
        present = [leg.compartments[name] for leg in legs.values() if leg.compartments[name].voxels]
        ratios = [
            math.log(s["L"].compartments[name].area_cm2 / s["R"].compartments[name].area_cm2)
            for s in by_subject.values()
            if "L" in s and "R" in s and s["L"].compartments[name].voxels and s["R"].compartments[name].voxels
        ]
        out[name] = {
            "area_cm2": _stats([c.area_cm2 for c in present], MIN_RELATIVE_SD),
            "share": _stats([c.share for c in present], MIN_RELATIVE_SD),
            "log_lr": _stats(ratios, floor=MIN_LOG_SD),
            "fragments_max": float(max((c.fragments for c in present), default=0.0)),
            "missing": len(legs) - len(present),
        }
    slices = [leg.image_slices for leg in legs.values()]
    return {
        "legs": len(legs),
        "subjects": len(by_subject),
        "slices": {"min": min(slices, default=0), "max": max(slices, default=0)},
        "compartments": out,
    }


def leg_label_files(folder: str | os.PathLike) -> list[Path]:
    """The leg label maps ``<subject>_<L|R>.nii.gz`` of a folder, sorted."""
    return sorted(Path(folder).glob("*_[LR].nii.gz"))


def build_reference(labels_folder: str | os.PathLike) -> dict:
    """The reference of a folder of training leg label maps (``<subject>_<L|R>.nii.gz``).

    Raises:
        InputError: no leg label maps in the folder.
    """
    from nnunet_filternet.errors import InputError
    from nnunet_filternet.utils.cache import snapshot

    files = leg_label_files(labels_folder)
    if not files:
        raise InputError(labels_folder, "expected training leg label maps <subject>_<L|R>.nii.gz, found none")
    identity = snapshot(files).key  # content identity taken before the files are read
    legs = {p.name[: -len(".nii.gz")]: measure_leg(*read_leg(p)) for p in files}
    return {
        "schema": SCHEMA,
        "labels": str(Path(labels_folder).absolute()),
        "inputs": identity,
        **summarise_legs(legs),
    }


def training_labels(model_folder: Path) -> Path | None:
    """Where the model's training labels are, if at hand: ``$nnUNet_raw/<dataset>/labelsTr`` or beside the results."""
    dataset = model_folder.parent.name
    candidates = []
    if os.environ.get("nnUNet_raw"):
        candidates.append(Path(os.environ["nnUNet_raw"]) / dataset / "labelsTr")
    candidates.append(model_folder.parent.parent.parent / "nnUNet_raw" / dataset / "labelsTr")
    return next((c for c in candidates if c.is_dir() and leg_label_files(c)), None)


def _read(path: Path) -> dict | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and data.get("schema") == SCHEMA else None


def reference_for_model(model_folder: str | os.PathLike) -> tuple[dict | None, str]:
    """(the model's reference or None, a note saying where it came from or why there is none).

    Writes ``<model folder>/qc_reference.json`` when it is made (a read-only model folder keeps it in memory).
    """
    from nnunet_filternet.utils.atomic import write_json
    from nnunet_filternet.utils.cache import snapshot

    model_folder = Path(model_folder)
    stored_path = model_folder / FILE_NAME
    stored = _read(stored_path)
    labels = training_labels(model_folder)
    if labels is None:
        if stored is None:
            return None, (
                f"no training statistics ({stored_path} is missing and the training labels are not at hand): "
                "compartment sizes and asymmetry not judged"
            )
        return stored, f"training statistics from {stored_path}"
    files = leg_label_files(labels)
    if stored is not None and stored.get("inputs") == json.loads(json.dumps(snapshot(files).key)):
        return stored, f"training statistics from {stored_path}"
    reference = build_reference(labels)
    try:
        write_json(stored_path, reference)
        where = f"written to {stored_path}"
    except OSError as e:
        where = f"kept in memory ({stored_path} cannot be written: {e.strerror})"
    return reference, f"training statistics of {reference['legs']} legs in {labels}, {where}"
