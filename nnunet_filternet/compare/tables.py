"""The comparison as ``comparison.csv``, as a printed (Markdown) table, and as summary lines with its counts."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence

from nnunet_filternet.report.tables import Table

from .comparison import BETTER, COLUMNS, METRICS, NO_DIFFERENCE, WORSE, ComparisonRow


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
    """The printed table: means, difference with its interval, p, p_holm, repeat SDs, run margin, verdict."""
    table = Table(
        [
            "compartment", "metric", "n", reference, candidate, f"difference ({interval_label(alpha)})", "p",
            "p_holm", "repeat SD (ref / cand)", "run margin", "verdict",
        ]
    )  # fmt: skip
    for r in rows:
        sds = "n/a" if r.single_run else f"{_num(r.repeat_sd_reference)} / {_num(r.repeat_sd_candidate)}"
        table.rows.append(
            [
                r.compartment, METRICS[r.metric].label, r.n_subjects, _num(r.reference_mean), _num(r.candidate_mean),
                f"{_num(r.difference)} [{_num(r.ci_low)}, {_num(r.ci_high)}]", _p(r.p), _p(r.p_holm), sds,
                "n/a" if r.single_run else _num(r.run_margin), r.verdict,
            ]
        )  # fmt: skip
    return table


def summary_lines(rows: Sequence[ComparisonRow], reference: str, candidate: str, alpha: float) -> list[str]:
    """Verdict counts, subjects left out (NaN / +inf) per row, and what limits the verdicts."""
    verdicts = [r.verdict.split(" (")[0] for r in rows]
    counts = ", ".join(f"{verdicts.count(v)} {v}" for v in (BETTER, WORSE, NO_DIFFERENCE))
    lines = [f"{candidate} against {reference}: {counts} ({len(rows)} rows; alpha {alpha:g})."]
    for r in rows:
        parts = []
        if r.n_missed_reference or r.n_missed_candidate:
            parts.append(
                f"+inf (missed or hallucinated) in {r.n_missed_reference} subject(s) for {reference} and "
                f"{r.n_missed_candidate} for {candidate}"
            )
        if r.n_absent:
            parts.append(f"{r.n_absent} subject(s) with NaN (compartment absent)")
        if parts:
            lines.append(f"{r.compartment} {r.metric}: left out: " + "; ".join(parts) + f"; {r.n_subjects} used.")
    if rows and rows[0].single_run:
        k_ref, k_cand = rows[0].n_repeats_reference, rows[0].n_repeats_candidate
        lines.append(
            f"Repeats: {k_ref} of {reference}, {k_cand} of {candidate}; with a single run nothing bounds run-to-run "
            "noise, so verdicts are marked '(single run)'."
        )
    small = sorted({r.n_subjects for r in rows if 2 <= r.n_subjects and 2.0 ** (1 - r.n_subjects) >= alpha})
    if small:
        lines.append(
            f"With n = {', '.join(map(str, small))} subjects the signed-rank test cannot reach p < {alpha:g} "
            f"(its smallest two-sided p is 2/2^n), so no difference can be declared there."
        )
    return lines
