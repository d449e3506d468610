"""The comparison's figure: per metric a panel, per compartment the difference, its interval and what is detectable."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence

import numpy as np

from nnunet_filternet.utils.figures import pyplot, save_png

from .comparison import METRICS, ComparisonRow
from .tables import interval_label

_COLOURS = {"better": "tab:green", "worse": "tab:red"}


def plot_comparison(
    rows: Sequence[ComparisonRow], out_png: str | os.PathLike, reference: str, candidate: str, alpha: float
) -> None:
    """Forest plot of candidate - reference: one panel per metric, one line per compartment.

    Marker: the mean of the fold means of the difference, coloured by verdict (green better, red worse, grey
    none); whiskers: its t interval over folds; shaded: +- the detectable difference around 0 (the true
    difference this design finds with 80 % power; a smaller one is likely to go unseen). Rows without a test
    are labelled with the reason.
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
                reason = "n/a" if r is None else r.verdict.removeprefix("not tested: ")
                ax.text(0, yi, reason, ha="center", va="center", fontsize=8, color="grey")
                continue
            if math.isfinite(r.detectable_difference) and r.detectable_difference > 0:
                d = r.detectable_difference
                ax.fill_betweenx([yi - 0.35, yi + 0.35], -d, d, color="0.88", lw=0)
            colour = _COLOURS.get(r.verdict, "0.4")
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
    unit = "folds" if rows[0].folds_given else "subjects (no folds given)"
    fig.suptitle(
        f"{candidate} − {reference} (repeats {k_cand} / {k_ref}): mean over {unit}, {interval_label(alpha)}; "
        "shaded: ± detectable difference (80 % power)",
        fontsize=10,
    )
    fig.tight_layout()
    save_png(fig, out_png)
    plt.close(fig)
