"""A panel like the paper's Fig. 1: a healthy and a DM1 cross-section, each beside its label overlay."""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nnunet_filternet.errors import InputError
from nnunet_filternet.labels import COLOURS, COMPARTMENTS

#: Which slice the panel shows, as a fraction of the stack from distal (0) to proximal (1).
SLICE_FRACTION = 0.7

#: Target severity of the DM1 example (clearly affected, not yet completely replaced).
DM1_EXAMPLE_SEVERITY = 0.7


@dataclass(frozen=True)
class PanelRow:
    """One row of the panel: a 2D slice (y, x) with its labels and in-plane spacing (x, y) in mm."""

    title: str
    image: np.ndarray
    label: np.ndarray
    spacing: tuple[float, float]


def _crop(row: PanelRow, margin_mm: float = 30.0) -> PanelRow:
    """Crop to the muscles (non-zero labels) plus a margin that holds the subcutaneous fat."""
    ys, xs = np.nonzero(row.label)
    if len(ys) == 0:
        return row
    my, mx = int(margin_mm / row.spacing[1]) + 1, int(margin_mm / row.spacing[0]) + 1
    y0, y1 = max(ys.min() - my, 0), min(ys.max() + my + 1, row.image.shape[0])
    x0, x1 = max(xs.min() - mx, 0), min(xs.max() + mx + 1, row.image.shape[1])
    return PanelRow(row.title, row.image[y0:y1, x0:x1], row.label[y0:y1, x0:x1], row.spacing)


def render_panel(rows: list[PanelRow], path: str | os.PathLike, dpi: int = 150) -> Path:
    """Draw the rows (image | image with coloured labels) and save a PNG atomically.

    Images are shown in radiological convention as stored (patient's right on the image's left),
    grey levels from 0 to the 99.5th percentile of the cropped slice.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import ListedColormap
    from matplotlib.patches import Patch

    from nnunet_filternet.utils.atomic import atomic_path

    rows = [_crop(r) for r in rows]
    colours = np.zeros((max(COLOURS) + 1, 4))
    for value, rgb in COLOURS.items():
        colours[value] = (*(c / 255 for c in rgb), 1.0)
    cmap = ListedColormap(colours)
    width = max(r.image.shape[1] * r.spacing[0] for r in rows)
    height = max(r.image.shape[0] * r.spacing[1] for r in rows)
    fig_w = 10.0
    fig, axes = plt.subplots(
        len(rows),
        2,
        figsize=(fig_w, len(rows) * (fig_w / 2 * height / width + 0.3) + 0.5),
        squeeze=False,
        facecolor="black",
        layout="constrained",
    )
    for ax_row, row in zip(axes, rows):
        hi = float(np.percentile(row.image, 99.5))
        extent = (0, row.image.shape[1] * row.spacing[0], row.image.shape[0] * row.spacing[1], 0)
        for ax in ax_row:
            ax.imshow(row.image, cmap="gray", vmin=0, vmax=hi, extent=extent, interpolation="bilinear")
            ax.set_axis_off()
        overlay = np.ma.masked_equal(row.label, 0)
        ax_row[1].imshow(overlay, cmap=cmap, vmin=0, vmax=len(colours) - 1, alpha=0.55, extent=extent,
                         interpolation="nearest")  # fmt: skip
        ax_row[0].set_title(row.title, color="white", fontsize=11, loc="left")
        for text, x in (("R", 0.02), ("L", 0.98)):
            ax_row[0].text(x, 0.04, text, transform=ax_row[0].transAxes, color="white", fontsize=10, ha="center")
    handles = [
        Patch(facecolor=tuple(c / 255 for c in COLOURS[i + 1]), label=name) for i, name in enumerate(COMPARTMENTS)
    ]
    fig.legend(handles=handles, loc="outside lower center", ncol=len(handles), frameon=False, labelcolor="white")
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=dpi, facecolor=fig.get_facecolor(), format="png")
    plt.close(fig)
    return path


def _read_rows(cohort: Path) -> list[dict[str, str]]:
    table = cohort / "subjects.csv"
    if not table.is_file():
        raise InputError(table, "expected the cohort's subjects.csv, found nothing")
    with table.open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def _example_subjects(rows: list[dict[str, str]]) -> list[dict[str, str]]:
    """The first healthy subject and the DM1 subject whose severity is closest to the target."""
    healthy = [r for r in rows if r["group"] == "healthy"]
    dm1 = [r for r in rows if r["group"] == "DM1"]
    out = healthy[:1]
    if dm1:
        out.append(min(dm1, key=lambda r: abs(float(r["severity"]) - DM1_EXAMPLE_SEVERITY)))
    return out


def write_preview(cohort_dir: str | os.PathLike, path: str | os.PathLike) -> Path:
    """Write the Fig. 1-like panel of a cohort folder written by :func:`~.cohort.make_cohort` to ``path``."""
    import SimpleITK as sitk

    cohort = Path(cohort_dir)
    panel = []
    for row in _example_subjects(_read_rows(cohort)):
        name = row["subject"]
        image = sitk.ReadImage(str(cohort / "images" / f"{name}.nii.gz"))
        label = sitk.GetArrayFromImage(sitk.ReadImage(str(cohort / "labels" / f"{name}.nii.gz")))
        z = int(round(SLICE_FRACTION * (label.shape[0] - 1)))
        title = (
            f"{name}: healthy" if row["group"] == "healthy" else f"{name}: DM1, severity {float(row['severity']):.2f}"
        )
        spacing = image.GetSpacing()
        panel.append(PanelRow(title, sitk.GetArrayFromImage(image)[z], label[z], (spacing[0], spacing[1])))
    return render_panel(panel, path)
