"""What the quality check hands over: ``qc.csv``, a printed summary, and a figure per flagged scan.

``qc.csv``: one row per scan, side and compartment, columns :data:`COLUMNS` (``review`` yes/no and its
``reasons`` first, then the scores and every signal; :mod:`.rules` and :mod:`.signals` say what they are).
The figure ``<subject>_qc.png`` (beside the CSV) shows three axial slices of the scan with the predicted
compartments over it, the suspect compartment outlined in white and named in the title with the reasons.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np

from nnunet_filternet.qc.rules import SIDE_WORDS, ScanVerdict

COLUMNS: tuple[str, ...] = (
    "subject", "side", "compartment", "review", "reasons", "scan_score", "data_score", "score", "compartment_score",
    "segmentation_score",
    "voxels", "volume_ml", "area_cm2", "area_z", "share", "share_z", "lr_z", "components", "fragments",
    "fold_dice", "entropy", "contrast", "fov_slices", "anatomy_ok", "legs_found", "snr", "bias_gain", "slices",
    "slice_axis_ok",
)  # fmt: skip


def _cell(value):
    if isinstance(value, bool) or value is None:
        return "" if value is None else str(value).lower()
    if isinstance(value, float):
        return repr(round(value, 6))
    return value


def write_qc_csv(verdicts: list[ScanVerdict], out_csv: str | os.PathLike) -> Path:
    """Write ``qc.csv`` (atomically), scans in the given order."""
    from nnunet_filternet.utils.atomic import atomic_path

    out_csv = Path(out_csv)
    with atomic_path(out_csv) as tmp, open(tmp, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(COLUMNS)
        for verdict in verdicts:
            for row in verdict.rows:
                writer.writerow([_cell(row.get(c)) for c in COLUMNS])
    return out_csv


def summary(verdicts: list[ScanVerdict], most: int = 3) -> str:
    """``3 of 40 scans flagged for review:`` then one line per flagged scan, the likeliest failed segmentation first
    (``scan_score``, then ``data_score``), with its scores and top reasons."""
    flagged = sorted((v for v in verdicts if v.review), key=lambda v: (-v.score, -v.data_score))
    lines = [f"{len(flagged)} of {len(verdicts)} scans flagged for review" + (":" if flagged else "")]
    for v in flagged:
        more = f" (+{len(v.reasons) - most} more)" if len(v.reasons) > most else ""
        scores = f"score {v.score:.2f}, data {v.data_score:.1f}"
        lines.append(f"  {v.subject} ({scores}): {'; '.join(v.reasons[:most])}{more}")
    return "\n".join(lines)


def _patient_arrays(scan_path: Path, labels_path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Scan and label map as patient-aligned arrays (left, posterior, superior)."""
    import SimpleITK as sitk

    from nnunet_filternet.dataset_conversion.orientation import PatientAxes
    from nnunet_filternet.utils.image_io import read_image

    scan = read_image(scan_path, "scan")
    labels = read_image(labels_path, "label map")
    axes = PatientAxes.from_direction(scan.GetDirection())
    to_xyz = (2, 1, 0)
    return (
        axes.to_patient(sitk.GetArrayFromImage(scan).transpose(to_xyz)),
        axes.to_patient(sitk.GetArrayFromImage(labels).transpose(to_xyz)),
    )


def figure_slices(labels_lps: np.ndarray, value: int, n: int = 3) -> list[int]:
    """``n`` superior indices spread over the slices holding ``value`` (or any label, or the whole stack)."""
    for mask in (labels_lps == value, labels_lps > 0):
        held = np.flatnonzero(mask.any(axis=(0, 1)))
        if held.size:
            break
    else:
        held = np.arange(labels_lps.shape[2])
    picks = np.quantile(held, np.linspace(0.2, 0.8, n)) if held.size > 1 else held.repeat(n)
    return sorted({int(round(p)) for p in picks})


def side_columns(labels_lps: np.ndarray, side: str) -> np.ndarray:
    """bool (left-axis length,): the columns of ``side``'s leg, split at the widest unlabelled gap between the legs.

    Patient-aligned arrays run towards the patient's left along axis 0, so the right leg has the lower indices.
    Without a gap (one leg, or legs touching) the split is the middle of the labelled columns.
    """
    held = np.flatnonzero(labels_lps.any(axis=(1, 2)))
    columns = np.zeros(labels_lps.shape[0], bool)
    if held.size == 0:
        return ~columns
    gaps = np.diff(held)
    cut = held[np.argmax(gaps)] + 1 if gaps.size and gaps.max() > 1 else (held[0] + held[-1] + 1) // 2
    columns[cut:] = True
    return columns if side == "L" else ~columns


def write_figure(verdict: ScanVerdict, scan_path: Path, labels_path: Path, out_png: Path) -> Path:
    """Three axial slices with the predicted compartments, the suspect one outlined; title: scan, suspect, reasons."""
    import textwrap

    from matplotlib.colors import ListedColormap

    from nnunet_filternet.labels import COLOURS, COMPARTMENTS
    from nnunet_filternet.utils.figures import pyplot, save_png

    plt = pyplot()
    scan, labels = _patient_arrays(scan_path, labels_path)
    side, name = verdict.suspect or ("", "")
    value = COMPARTMENTS.index(name) + 1 if name else 0
    suspect = (labels == value) & side_columns(labels, side)[:, None, None] if value else np.zeros(labels.shape, bool)
    slices = figure_slices(np.where(suspect, value, labels), value)
    low, high = np.percentile(scan, [1, 99])
    colours = ListedColormap([(0, 0, 0, 0)] + [tuple(c / 255 for c in COLOURS[v]) + (0.45,) for v in range(1, 6)])
    fig, axes = plt.subplots(1, len(slices), figsize=(4.2 * len(slices), 5.2), squeeze=False)
    for ax, k in zip(axes[0], slices):
        ax.imshow(scan[:, :, k].T, cmap="gray", vmin=low, vmax=high, interpolation="nearest")
        ax.imshow(labels[:, :, k].T, cmap=colours, vmin=0, vmax=5, interpolation="nearest")
        if suspect[:, :, k].any():
            ax.contour(suspect[:, :, k].T.astype(float), levels=[0.5], colors="white", linewidths=1.2)
        ax.set_title(f"slice {k}", fontsize=9)
        ax.set_axis_off()
    named = f", suspect: {SIDE_WORDS.get(side, side)} {name} (outlined)" if name else ""
    fig.suptitle(
        f"{verdict.subject}: review (score {verdict.score:.2f}, data {verdict.data_score:.1f}){named}", fontsize=10
    )
    reasons = "\n".join(textwrap.shorten(r, 110) for r in verdict.reasons[:5])
    fig.text(0.02, 0.0, reasons + "\n(patient's right on the left, anterior up)", ha="left", va="top", fontsize=8)
    save_png(fig, out_png)
    plt.close(fig)
    return out_png
