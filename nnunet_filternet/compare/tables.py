"""The comparison as ``comparison.csv``, as a printed (Markdown) table, and as summary lines.

The summary counts the verdicts, names the subjects left out of each row, reports compartments that one
model missed where the other found them, says where the folds came from, and prints the variance components
a lab needs to plan a study (``python -m nnunet_filternet.statistics.power``).
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence

from nnunet_filternet.metrics.summary import MEAN_ROW
from nnunet_filternet.statistics.power import implied_split_sd
from nnunet_filternet.utils.tables import Table

from .comparison import BETTER, COLUMNS, METRICS, NO_DIFFERENCE, VERDICTS, WORSE, ComparisonRow


def comparison_csv_table(rows: Sequence[ComparisonRow], leading: dict[str, str] | None = None) -> Table:
    """:data:`COLUMNS` (preceded by the ``leading`` constant columns, e.g. the candidate's name) as a Table."""
    leading = leading or {}
    return Table([*leading, *COLUMNS], [[*leading.values(), *row.csv_cells()] for row in rows])


def write_comparison_csv(rows: Sequence[ComparisonRow], path: str | os.PathLike) -> None:
    """``comparison.csv``: one row per compartment and metric, columns :data:`COLUMNS` (atomic write)."""
    comparison_csv_table(rows).write_csv(path)


def _num(value: float, digits: int = 2) -> str:
    return "n/a" if math.isnan(value) else f"{value:.{digits}f}"


def _p(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value:.3g}"


def interval_label(alpha: float) -> str:
    """``"95% CI"`` for alpha 0.05."""
    return f"{100 * (1 - alpha):g}% CI"


def comparison_table(rows: Sequence[ComparisonRow], reference: str, candidate: str, alpha: float) -> Table:
    """The printed table: means, difference with its interval, p, p_holm, run SDs, detectable difference, verdict."""
    table = Table(
        [
            "compartment", "metric", "n (folds)", reference, candidate, f"difference ({interval_label(alpha)})", "p",
            "p_holm", "run SD (ref / cand)", "detectable", "verdict",
        ]
    )  # fmt: skip
    for r in rows:
        table.rows.append(
            [
                r.compartment, METRICS[r.metric].label, f"{r.n_subjects} ({r.n_folds})", _num(r.reference_mean),
                _num(r.candidate_mean), f"{_num(r.difference)} [{_num(r.ci_low)}, {_num(r.ci_high)}]", _p(r.p),
                _p(r.p_holm), f"{_num(r.run_sd_reference)} / {_num(r.run_sd_candidate)}",
                _num(r.detectable_difference), r.verdict,
            ]
        )  # fmt: skip
    return table


def _left_out(r: ComparisonRow, reference: str, candidate: str) -> str | None:
    parts = []
    if r.n_missed_reference or r.n_missed_candidate:
        parts.append(
            f"+inf (missed or hallucinated) in {r.n_missed_reference} subject(s) for {reference} and "
            f"{r.n_missed_candidate} for {candidate}"
        )
    if r.n_absent:
        parts.append(f"{r.n_absent} subject(s) with NaN (compartment absent)")
    if not parts:
        return None
    return f"{r.compartment} {r.metric}: left out: " + "; ".join(parts) + f"; {r.n_subjects} used."


def _shown(subjects: Sequence[str]) -> str:
    return ", ".join(subjects[:6]) + (f" and {len(subjects) - 6} more" if len(subjects) > 6 else "")


def missed_lines(rows: Sequence[ComparisonRow], reference: str, candidate: str) -> list[str]:
    """One line per model that missed (Dice 0 or a distance +inf) compartments the other model found."""
    lines = []
    for model, other, attribute in ((candidate, reference, "missed_only_candidate"),
                                    (reference, candidate, "missed_only_reference")):  # fmt: skip
        per_compartment: dict[str, set[str]] = {}
        for r in rows:
            if r.compartment != MEAN_ROW and getattr(r, attribute):
                per_compartment.setdefault(r.compartment, set()).update(getattr(r, attribute))
        if per_compartment:
            parts = [f"{c} in {len(s)} subject(s) ({_shown(sorted(s))})" for c, s in per_compartment.items()]
            lines.append(f"{model} missed compartments that {other} found: " + "; ".join(parts) + ".")
    return lines


def variance_lines(rows: Sequence[ComparisonRow], reference: str, candidate: str) -> list[str]:
    """Variance components of each metric's ``mean`` row, to plan a study with them (statistics.power)."""
    lines = []
    for r in rows:
        if r.compartment != MEAN_ROW or not r.tested:
            continue
        per_fold = r.n_subjects / r.n_folds
        split = implied_split_sd(
            r.fold_sd, r.subject_sd, per_fold, r.run_sd_reference, r.run_sd_candidate, r.n_repeats_reference,
            r.n_repeats_candidate,
        )  # fmt: skip
        unit = METRICS[r.metric].unit
        f, k_r, k_c = r.n_folds, r.n_repeats_reference, r.n_repeats_candidate
        line = (
            f"Variance components, mean {r.metric} ({unit}): run SD of a fold run {_num(r.run_sd_reference)} "
            f"({reference}, {f * (k_r - 1)} df) / {_num(r.run_sd_candidate)} ({candidate}, {f * (k_c - 1)} df); "
            f"subject SD within folds {_num(r.subject_sd)} ({r.n_subjects - f} df); SD of the fold means "
            f"{_num(r.fold_sd)} ({f - 1} df); split SD implied {_num(split)}; {per_fold:.3g} subjects per fold."
        )
        if not math.isnan(split):
            line += (
                f" Plan with: python -m nnunet_filternet.statistics.power --run-sd {_num(r.run_sd_reference)} "
                f"--run-sd-candidate {_num(r.run_sd_candidate)} --subject-sd {_num(r.subject_sd)} "
                f"--split-sd {_num(split)} --target D"
            )
        lines.append(line)
    return lines


def summary_lines(rows: Sequence[ComparisonRow], reference: str, candidate: str, alpha: float) -> list[str]:
    """Verdict counts, the fold unit, subjects left out per row, missed compartments, variance components."""
    shown = [v for v in VERDICTS if v in (BETTER, WORSE, NO_DIFFERENCE) or any(r.verdict == v for r in rows)]
    counts = ", ".join(f"{sum(r.verdict == v for r in rows)} {v}" for v in shown)
    lines = [f"{candidate} against {reference}: {counts} ({len(rows)} rows; alpha {alpha:g})."]
    if rows and rows[0].folds_given:
        lines.append(
            f"Unit of the test: the fold ({max(r.n_folds for r in rows)} folds; paired t over the fold means, "
            "F - 1 df; each subject's difference averaged over the repeats of each model)."
        )
    elif rows:
        lines.append(
            "No fold column: every subject is its own fold (the paired t over subjects), valid only if no two "
            "subjects were predicted by the same training run; filternet evaluate --splits splits_final.json "
            "writes the folds."
        )
    lines += [line for r in rows if (line := _left_out(r, reference, candidate))]
    lines += [
        f"{r.compartment} {r.metric}: {r.verdict} ({r.n_subjects} subject(s) with a finite value for both models, "
        "all in one fold)."
        for r in rows
        if r.n_subjects and not r.tested
    ]
    lines += missed_lines(rows, reference, candidate)
    lines += variance_lines(rows, reference, candidate)
    return lines
