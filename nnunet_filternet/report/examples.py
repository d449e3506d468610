"""Fig. 4's examples: the worst, median and best subject of the reference trainer, one axial slice each.

A subject's legs are shown side by side (cases in name order, ``_L`` then ``_R``; right legs are mirrored by
the conversion). The slice of each leg is the one with the most ground-truth foreground.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nnunet_filternet.errors import FilterNetError
from nnunet_filternet.metrics.matching import subject_of
from nnunet_filternet.report.tables import MEAN_ROW, metric_by_subject

_GAP = 4  # background columns between two legs


@dataclass
class Example:
    """One row of Fig. 4: (y, x) slices of the image, ground truth and each trainer's prediction.

    Attributes:
        title: e.g. "worst: s03".
        image: (y, x) float slice, or None without images.
        reference: (y, x) ground-truth labels.
        predictions: trainer -> (y, x) labels.
        dsc: trainer -> the subject's mean DSC (%) over compartments.
        aspect: pixel height / width (spacing_y / spacing_x) for display.
    """

    title: str
    image: np.ndarray | None
    reference: np.ndarray
    predictions: dict[str, np.ndarray]
    dsc: dict[str, float]
    aspect: float


def choose_subjects(reference_rows: Sequence[dict]) -> list[tuple[str, str]]:
    """[(tag, subject)] for the worst, median and best subject by mean DSC (duplicates dropped)."""
    dsc = {s: v for s, v in metric_by_subject(reference_rows, MEAN_ROW, "dice").items() if not math.isnan(v)}
    ranked = sorted(dsc, key=lambda s: (dsc[s], s))
    if not ranked:
        return []
    picks = [("worst", ranked[0]), ("median", ranked[(len(ranked) - 1) // 2]), ("best", ranked[-1])]
    seen, out = set(), []
    for tag, subject in picks:
        if subject not in seen:
            seen.add(subject)
            out.append((tag, subject))
    return out


def _read(path: os.PathLike) -> tuple[np.ndarray, tuple[float, ...]]:
    import SimpleITK as sitk

    image = sitk.ReadImage(str(path))
    return sitk.GetArrayFromImage(image), tuple(reversed(image.GetSpacing()))


def _side_by_side(slices: Sequence[np.ndarray], fill: float = 0) -> np.ndarray:
    height = max(s.shape[0] for s in slices)
    padded = []
    for i, s in enumerate(slices):
        block = np.full((height, s.shape[1] + (_GAP if i else 0)), fill, dtype=np.float64)
        block[: s.shape[0], (_GAP if i else 0) :] = s
        padded.append(block)
    return np.concatenate(padded, axis=1)


def load_example(
    tag: str,
    subject: str,
    gt_files: Mapping[str, Path],
    predictions: Mapping[str, Mapping[str, Path]],
    image_files: Mapping[str, Path] | None,
    dsc: Mapping[str, float],
) -> Example:
    """Read the slices of one subject for Fig. 4.

    Args:
        tag: "worst", "median" or "best".
        subject: subject name.
        gt_files: case -> ground-truth file (all cases; the subject's are picked by name).
        predictions: trainer -> case -> prediction file.
        image_files: case -> image file (``imagesTr``), or None.
        dsc: trainer -> the subject's mean DSC (%).
    """
    cases = [c for c in sorted(gt_files) if subject_of(c) == subject and all(c in p for p in predictions.values())]
    if not cases:
        raise FilterNetError(f"no case of subject {subject} is predicted by every trainer; cannot draw it")
    refs, images, preds = [], [], {t: [] for t in predictions}
    aspect = 1.0
    for case in cases:
        gt, spacing = _read(gt_files[case])
        z = int(np.argmax((gt > 0).reshape(gt.shape[0], -1).sum(axis=1)))
        aspect = spacing[1] / spacing[2]
        refs.append(gt[z])
        for trainer, files in predictions.items():
            preds[trainer].append(_read(files[case])[0][z])
        if image_files is not None and case in image_files:
            img = _read(image_files[case])[0][z].astype(np.float64)
            lo, hi = np.percentile(img, [1, 99])
            images.append(np.clip((img - lo) / (hi - lo if hi > lo else 1.0), 0, 1))
    image = _side_by_side(images) if image_files is not None and len(images) == len(cases) else None
    return Example(
        title=f"{tag}: {subject}",
        image=image,
        reference=_side_by_side(refs).astype(np.uint8),
        predictions={t: _side_by_side(p).astype(np.uint8) for t, p in preds.items()},
        dsc=dict(dsc),
        aspect=aspect,
    )
