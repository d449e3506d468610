"""The report's figures (matplotlib, Agg backend): Fig. 5 metric bars and Fig. 4 overlays."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence

import numpy as np

from nnunet_filternet.labels import COLOURS, COMPARTMENTS
from nnunet_filternet.metrics.summary import metric_by_subject
from nnunet_filternet.report.examples import Example
from nnunet_filternet.report.tables import SubjectRows
from nnunet_filternet.utils.figures import pyplot, save_png


def plot_metric_bars(subject_rows: SubjectRows, out_png: str | os.PathLike) -> None:
    """Fig. 5: DSC (%) and ASSD (mm) per compartment, one bar per trainer, error bars = std over subjects.

    Infinite ASSD (missed compartments) cannot be drawn: those subjects are left out of the bar and counted
    in the bar's label.
    """
    plt = pyplot()
    trainers = list(subject_rows)
    compartments = [
        c for c in COMPARTMENTS if any(r["compartment"] == c for rows in subject_rows.values() for r in rows)
    ]
    fig, axes = plt.subplots(1, 2, figsize=(max(8, 2.2 * len(compartments) + 2), 4.2))
    width = 0.8 / max(1, len(trainers))
    x = np.arange(len(compartments))
    cmap = plt.get_cmap("tab10")
    for ax, (column, scale, label) in zip(axes, (("dice", 100.0, "DSC (%)"), ("assd_mm", 1.0, "ASSD (mm)"))):
        for i, trainer in enumerate(trainers):
            means, stds, notes = [], [], []
            for c in compartments:
                values = [v * scale for v in metric_by_subject(subject_rows[trainer], c, column).values()]
                finite = [v for v in values if math.isfinite(v)]
                means.append(np.mean(finite) if finite else np.nan)
                stds.append(np.std(finite, ddof=1) if len(finite) > 1 else 0.0)
                notes.append(sum(math.isinf(v) for v in values))
            pos = x - 0.4 + width * (i + 0.5)
            ax.bar(pos, means, width, yerr=stds, capsize=2, label=trainer, color=cmap(i % 10))
            for p, m, k in zip(pos, means, notes):
                if k:
                    ax.text(p, 0 if np.isnan(m) else m, f"{k} inf", ha="center", va="bottom", fontsize=7, rotation=90)
        ax.set_xticks(x, compartments)
        ax.set_ylabel(label)
        ax.grid(axis="y", alpha=0.3)
        if column == "dice":
            finite_means = [p.get_height() for p in ax.patches if np.isfinite(p.get_height())]
            low = min(finite_means, default=0)
            ax.set_ylim(max(0, min(low - 10, 80)), 100)
    handles, names = axes[0].get_legend_handles_labels()
    fig.legend(handles, names, loc="lower center", ncol=min(len(trainers), 4), fontsize=8, frameon=False)
    fig.suptitle("Mean ± std over subjects (legs averaged per subject)")
    fig.tight_layout(rect=(0, 0.08 * ((len(trainers) + 3) // 4), 1, 1))
    save_png(fig, out_png)
    plt.close(fig)


def _label_rgba(labels: np.ndarray, alpha: float) -> np.ndarray:
    """(y, x) labels -> (y, x, 4) RGBA in [0, 1]; background transparent."""
    rgba = np.zeros((*labels.shape, 4))
    for value, rgb in COLOURS.items():
        rgba[labels == value] = (*(np.asarray(rgb) / 255.0), alpha)
    return rgba


def _panel(ax, background: np.ndarray | None, labels: np.ndarray, aspect: float, outline: np.ndarray | None):
    if background is not None:
        ax.imshow(background, cmap="gray", vmin=0, vmax=1, aspect=aspect, interpolation="nearest")
    else:
        ax.imshow(np.zeros(labels.shape), cmap="gray", vmin=0, vmax=1, aspect=aspect)
    ax.imshow(_label_rgba(labels, 0.45 if background is not None else 0.9), aspect=aspect, interpolation="nearest")
    if outline is not None:
        for value in COLOURS:
            if np.any(outline == value):
                ax.contour(outline == value, levels=[0.5], colors="white", linewidths=0.4)
    ax.set_xticks([])
    ax.set_yticks([])


def plot_overlays(examples: Sequence[Example], out_png: str | os.PathLike) -> None:
    """Fig. 4: rows = examples; columns = image, ground truth, each trainer (fill) with the ground truth outlined."""
    plt = pyplot()
    from matplotlib.patches import Patch

    trainers = list(examples[0].predictions) if examples else []
    n_cols = 2 + len(trainers)
    h, w = examples[0].reference.shape if examples else (1, 1)
    panel_w = 2.6
    panel_h = panel_w * h / w * (examples[0].aspect if examples else 1)
    fig, axes = plt.subplots(len(examples), n_cols, figsize=(panel_w * n_cols, (panel_h + 0.3) * len(examples) + 0.9))
    axes = np.atleast_2d(axes)
    for r, ex in enumerate(examples):
        axes[r, 0].imshow(
            ex.image if ex.image is not None else np.zeros(ex.reference.shape),
            cmap="gray", vmin=0, vmax=1, aspect=ex.aspect, interpolation="nearest",
        )  # fmt: skip
        axes[r, 0].set_xticks([])
        axes[r, 0].set_yticks([])
        axes[r, 0].set_ylabel(ex.title, fontsize=9)
        _panel(axes[r, 1], ex.image, ex.reference, ex.aspect, None)
        for c, trainer in enumerate(trainers, start=2):
            _panel(axes[r, c], ex.image, ex.predictions[trainer], ex.aspect, ex.reference)
            dsc = f"DSC {ex.dsc.get(trainer, float('nan')):.1f}%"
            axes[r, c].set_title(f"{trainer}\n{dsc}" if r == 0 else dsc, fontsize=8)
        if r == 0:
            axes[r, 0].set_title("image" if ex.image is not None else "image (not found)", fontsize=8)
            axes[r, 1].set_title("ground truth", fontsize=8)
    handles = [Patch(color=np.asarray(COLOURS[i + 1]) / 255.0, label=name) for i, name in enumerate(COMPARTMENTS)]
    handles.append(Patch(facecolor="none", edgecolor="black", label="white line: ground truth"))
    fig.legend(handles=handles, loc="lower center", ncol=len(handles), fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    save_png(fig, out_png)
    plt.close(fig)
