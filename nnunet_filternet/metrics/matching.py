"""Pairing prediction and reference label maps by case name, and subject names of cases.

Case names follow the conversion: leg cases ``<subject>_L`` / ``<subject>_R`` and restored full scans
``<subject>``. The case name is the file name without its image ending (``.nii.gz``, ``.nii``, ``.nrrd``,
``.mha``, ``.mhd``); nnU-Net's extra files in a prediction folder (``summary.json``, ``*.pkl``, ``*.npz``) are
not images and are ignored.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from nnunet_filternet.errors import FilterNetError, InputError
from nnunet_filternet.utils.image_io import IMAGE_EXTENSIONS, image_extension

#: Image file endings recognised as label maps, longest first (the one list every reader uses).
IMAGE_ENDINGS: tuple[str, ...] = IMAGE_EXTENSIONS

_SIDE_SUFFIX = re.compile(r"_([LR])$")
_CHANNEL_SUFFIX = re.compile(r"_\d{4}$")


@dataclass(frozen=True)
class CasePair:
    """One case to evaluate: its name and the two label map files."""

    case: str
    pred: Path
    ref: Path


def case_name(path: str | os.PathLike) -> str | None:
    """Case name of an image file (file name without its ending), or None if it is not an image file."""
    ending = image_extension(path)
    return Path(path).name[: -len(ending)] if ending else None


def subject_of(case: str) -> str:
    """Subject of a case: the case name without a trailing ``_L`` / ``_R`` (leg cases)."""
    return _SIDE_SUFFIX.sub("", case)


def side_of(case: str) -> str | None:
    """``"L"`` or ``"R"`` for leg cases, None for full scans (no suffix)."""
    m = _SIDE_SUFFIX.search(case)
    return m.group(1) if m else None


def list_cases(folder: str | os.PathLike, images: bool = False) -> dict[str, Path]:
    """Case name -> image file of a folder (not recursive), sorted by case name.

    Args:
        folder: a folder of label maps (or images).
        images: the folder holds images: a channel suffix ``_0000`` (nnU-Net's ``imagesTr``) is removed from
            the case name and files of other channels (``_0001``, ...) are left out.

    Raises:
        InputError: the folder does not exist, or two files give the same case name.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(folder, "expected a folder of images or label maps (.nii.gz), found no such folder")
    cases: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        name = case_name(path)
        if name is None or name.startswith(".") or not path.is_file():
            continue
        if images and _CHANNEL_SUFFIX.search(name):
            if not name.endswith("_0000"):
                continue
            name = name[: -len("_0000")]
        if name in cases:
            raise InputError(folder, f"two files for case {name!r}: {cases[name].name} and {path.name}")
        cases[name] = path
    return dict(sorted(cases.items()))


def _format_list(names: list[str], limit: int = 20) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f", ... ({len(names)} in all)" if len(names) > limit else "")


def match_cases(
    pred_dir: str | os.PathLike,
    ref_dir: str | os.PathLike,
    require_all_refs: bool = True,
) -> list[CasePair]:
    """Pair the label maps of two folders by case name.

    Args:
        pred_dir: folder of predictions.
        ref_dir: folder of reference label maps.
        require_all_refs: also fail when a reference has no prediction (``filternet evaluate``); the report
            sets it to False for cross-validation runs that did not predict every case, and lists those cases.

    Raises:
        FilterNetError: a folder holds no label maps, a prediction has no reference, or (with
            ``require_all_refs``) a reference has no prediction; the message lists the cases.
    """
    preds, refs = list_cases(pred_dir), list_cases(ref_dir)
    if not preds:
        raise InputError(pred_dir, f"expected predicted label maps ({', '.join(IMAGE_ENDINGS)}), found none")
    if not refs:
        raise InputError(ref_dir, f"expected reference label maps ({', '.join(IMAGE_ENDINGS)}), found none")
    problems = []
    no_ref = sorted(set(preds) - set(refs))
    if no_ref:
        problems.append(
            f"{len(no_ref)} prediction(s) in {pred_dir} without a reference in {ref_dir}: {_format_list(no_ref)}"
        )
    no_pred = sorted(set(refs) - set(preds))
    if no_pred and require_all_refs:
        problems.append(
            f"{len(no_pred)} reference(s) in {ref_dir} without a prediction in {pred_dir}: {_format_list(no_pred)}"
        )
    if problems:
        raise FilterNetError("cases do not match; " + "; ".join(problems))
    return [CasePair(case, preds[case], refs[case]) for case in sorted(preds)]
