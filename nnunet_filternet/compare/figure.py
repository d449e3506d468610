"""The comparison's figure: per metric a panel, per compartment the difference with its interval and the band."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence

import numpy as np

from nnunet_filternet.report.figures import pyplot, save_png

from .comparison import METRICS, ComparisonRow
from .tables import interval_label

_COLOURS = {"better": "tab:green", "worse": "tab:red"}


def plot_comparison(
    rows: Sequence[ComparisonRow], out_png: str | os.PathLike, reference: str, candidate: str, alpha: float
) -> None:
    """Forest plot of candidate - reference: one panel per metric, one line per compartment.

    Marker: the mean difference, coloured by verdict (green better, red worse, grey none); whiskers: its
    interval over subjects; shaded: the run-to-run margin +-m around 0 (absent with a single run). Rows
    without a finite difference are labelled ``n/a``.
    """
    plt = pyplot()
    metrics = list(dict.fromkeys(r.metric for r in rows))
    compartments = list(dict.fromkeys(r.compartment for r in rows))
    by_key = {(r.compartment, r.metric): r for r in rows}
    fig, axes = plt.subplots(1, len(metrics), figsize=(4.2 * len(metrics), 0.45 * len(compartments) + 1.8))
    axes = np.atleast_1d(axes)
    y = np.arange(len(compartments))[::-1]
    for ax, metric in zip(axes, metrics):
        spec = METRICS[metric]
        for yi, compartment in zip(y, compartments):
            r = by_key.get((compartment, metric))
            if r is None or not math.isfinite(r.difference):
                ax.text(0, yi, "n/a", ha="center", va="center", fontsize=8, color="grey")
                continue
            if math.isfinite(r.run_margin) and r.run_margin > 0:
                ax.fill_betweenx([yi - 0.35, yi + 0.35], -r.run_margin, r.run_margin, color="0.85", lw=0)
            colour = _COLOURS.get(r.verdict.split(" (")[0], "0.4")
            low, high = r.ci_low, r.ci_high
            xerr = None if math.isnan(low) else [[r.difference - low], [high - r.difference]]
            ax.errorbar(r.difference, yi, xerr=xerr, fmt="o", color=colour, capsize=3, ms=5)
        ax.axvline(0, color="black", lw=0.8)
        ax.set_yticks(y, compartments)
        ax.set_ylim(-0.7, len(compartments) - 0.3)
        better = "> 0" if spec.higher_is_better else "< 0"
        ax.set_xlabel(f"{spec.label.split(' (')[0]} difference ({spec.unit}); {better}: {candidate} better")
        ax.grid(axis="x", alpha=0.3)
    k_ref, k_cand = rows[0].n_repeats_reference, rows[0].n_repeats_candidate
    band = "shaded: run-to-run margin" if not rows[0].single_run else "single run: no run-to-run band"
    fig.suptitle(
        f"{candidate} − {reference} (repeats {k_cand} / {k_ref}): mean over subjects, {interval_label(alpha)}; {band}",
        fontsize=10,
    )
    fig.tight_layout()
    save_png(fig, out_png)
    plt.close(fig)
