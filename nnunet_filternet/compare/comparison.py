"""Two or more models, several training repeats each: one row and one verdict per compartment and metric.

Input: per repeat of each model, the per-subject rows of ``filternet evaluate`` (``subject, compartment``
and metric columns; a subject's row is already the mean of its legs). A subject's value is the mean over
repeats, with the rule the per-subject averaging uses: NaN (compartment absent from reference and
prediction) is left out, +inf (a missed or hallucinated compartment) is kept. Pairs where either model's
value is NaN or infinite are left out of the statistics and counted, as in ``filternet report``'s paired
tests. Rows: the compartments present, then ``mean`` (per subject, the mean over compartments).

Statistics per row (:mod:`.stats`): the mean paired difference candidate - reference with its t interval
at level 1 - alpha, the Wilcoxon signed-rank p, Holm's adjustment over every row of the run, and, with
at least two repeats of each model, the run-to-run margin (Welch) that |difference| must exceed.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np

from nnunet_filternet.errors import FilterNetError
from nnunet_filternet.labels import COMPARTMENTS
from nnunet_filternet.metrics.summary import mean_std
from nnunet_filternet.report.stats import ALPHA
from nnunet_filternet.report.tables import MEAN_ROW, metric_by_subject

from . import stats

#: Per-subject rows of one model: one sequence of rows (``subject``, ``compartment``, metrics) per repeat.
Repeats = Sequence[Sequence[dict]]

#: Columns of ``comparison.csv``, in order.
COLUMNS: tuple[str, ...] = (
    "compartment",
    "metric",
    "n_subjects",
    "n_repeats_reference",
    "n_repeats_candidate",
    "reference_mean",
    "candidate_mean",
    "difference",
    "ci_low",
    "ci_high",
    "p",
    "p_holm",
    "repeat_sd_reference",
    "repeat_sd_candidate",
    "verdict",
)

BETTER, WORSE, NO_DIFFERENCE = "better", "worse", "no difference detected"
#: Appended to every verdict when either model has a single repeat (nothing bounds run-to-run noise).
SINGLE_RUN = " (single run)"


@dataclass(frozen=True)
class MetricSpec:
    """A metric column of ``filternet evaluate``: its display scale and unit, and which direction is better."""

    column: str
    scale: float
    unit: str
    higher_is_better: bool
    label: str


#: Metrics ``filternet compare`` can judge (the evaluate columns with a direction; volumes have none).
METRICS: dict[str, MetricSpec] = {
    "dice": MetricSpec("dice", 100.0, "percent points", True, "DSC (%)"),
    "assd_mm": MetricSpec("assd_mm", 1.0, "mm", False, "ASSD (mm)"),
    "hd95_mm": MetricSpec("hd95_mm", 1.0, "mm", False, "HD95 (mm)"),
    "asd_pred_to_ref_mm": MetricSpec("asd_pred_to_ref_mm", 1.0, "mm", False, "ASD pred→ref (mm)"),
    "asd_ref_to_pred_mm": MetricSpec("asd_ref_to_pred_mm", 1.0, "mm", False, "ASD ref→pred (mm)"),
}
DEFAULT_METRICS: tuple[str, ...] = ("dice", "assd_mm", "hd95_mm")


@dataclass(frozen=True)
class ComparisonRow:
    """One compartment and metric. The first fields are :data:`COLUMNS`; the rest are printed, not written.

    Means, difference and interval are in the metric's display unit (Dice in %, distances in mm); the
    difference is candidate - reference. ``repeat_sd_*`` and ``run_margin`` are NaN with a single repeat.
    ``n_absent``: subjects left out because a value is NaN; ``n_missed_*``: subjects whose value is +inf
    for that model (left out too; a subject missed by both counts in both).
    """

    compartment: str
    metric: str
    n_subjects: int
    n_repeats_reference: int
    n_repeats_candidate: int
    reference_mean: float
    candidate_mean: float
    difference: float
    ci_low: float
    ci_high: float
    p: float
    p_holm: float
    repeat_sd_reference: float
    repeat_sd_candidate: float
    verdict: str
    run_margin: float = math.nan
    n_absent: int = 0
    n_missed_reference: int = 0
    n_missed_candidate: int = 0

    @property
    def single_run(self) -> bool:
        return min(self.n_repeats_reference, self.n_repeats_candidate) < 2

    def csv_cells(self) -> list:
        """Cells of :data:`COLUMNS`; repeat SDs empty with a single repeat."""
        cells = {c: getattr(self, c) for c in COLUMNS}
        for model in ("reference", "candidate"):
            if getattr(self, f"n_repeats_{model}") < 2:
                cells[f"repeat_sd_{model}"] = ""
        return list(cells.values())


def _compartments(models: Sequence[Repeats]) -> list[str]:
    present = {r["compartment"] for repeats in models for rows in repeats for r in rows}
    extra = sorted(present - set(COMPARTMENTS) - {MEAN_ROW})
    return [c for c in COMPARTMENTS if c in present] + extra + [MEAN_ROW]


def _subject_list(subjects) -> str:
    return ", ".join(sorted(subjects)) or "none"


def _values_over_repeats(repeats: Repeats, compartment: str, spec: MetricSpec, model: str) -> dict[str, list[float]]:
    """subject -> the subject's value (scaled) in each repeat; every repeat must hold the same subjects."""
    per_repeat = [metric_by_subject(rows, compartment, spec.column) for rows in repeats]
    subjects = set(per_repeat[0])
    for k, values in enumerate(per_repeat[1:], start=2):
        if set(values) != subjects:
            raise FilterNetError(
                f"subjects do not pair in {compartment}: repeat {k} of the {model} lacks "
                f"{_subject_list(subjects - set(values))} and adds {_subject_list(set(values) - subjects)} "
                "(compared with its repeat 1)"
            )
    return {s: [spec.scale * values[s] for values in per_repeat] for s in sorted(subjects)}


def _check_pairs(reference: Mapping[str, list], candidate: Mapping[str, list], compartment: str) -> None:
    only_ref, only_cand = sorted(set(reference) - set(candidate)), sorted(set(candidate) - set(reference))
    if only_ref or only_cand:
        raise FilterNetError(
            f"subjects do not pair in {compartment}: only in the reference: {_subject_list(only_ref)}; "
            f"only in the candidate: {_subject_list(only_cand)}"
        )


def _by_repeat(values: Mapping[str, list[float]], subjects: list[str], k: int) -> np.ndarray:
    """(k, n) array: the values of the n ``subjects`` in each of the k repeats."""
    return np.asarray([values[s] for s in subjects], dtype=np.float64).reshape(len(subjects), k).T


def _tested_row(reference: Repeats, candidate: Repeats, compartment: str, spec: MetricSpec, level: float):
    """The row of one compartment and metric, before Holm's adjustment and the verdict."""
    ref = _values_over_repeats(reference, compartment, spec, "reference")
    cand = _values_over_repeats(candidate, compartment, spec, "candidate")
    _check_pairs(ref, cand, compartment)
    used, n_absent, missed_ref, missed_cand = [], 0, 0, 0
    for subject in ref:
        a, b = mean_std(ref[subject])[0], mean_std(cand[subject])[0]
        if math.isnan(a) or math.isnan(b):
            n_absent += 1
        elif math.isinf(a) or math.isinf(b):
            missed_ref, missed_cand = missed_ref + math.isinf(a), missed_cand + math.isinf(b)
        else:
            used.append(subject)
    st = stats.row_statistics(_by_repeat(ref, used, len(reference)), _by_repeat(cand, used, len(candidate)), level)
    return ComparisonRow(
        compartment=compartment,
        metric=spec.column,
        n_subjects=len(used),
        n_repeats_reference=len(reference),
        n_repeats_candidate=len(candidate),
        reference_mean=float(st.reference_mean),
        candidate_mean=float(st.candidate_mean),
        difference=float(st.difference),
        ci_low=float(st.ci_low),
        ci_high=float(st.ci_high),
        p=float(st.p),
        p_holm=math.nan,
        repeat_sd_reference=float(st.repeat_sd_reference),
        repeat_sd_candidate=float(st.repeat_sd_candidate),
        verdict="",
        n_absent=n_absent,
        n_missed_reference=missed_ref,
        n_missed_candidate=missed_cand,
    )


def verdict_of(row: ComparisonRow, alpha: float) -> str:
    """``better`` / ``worse`` (in the metric's direction) or ``no difference detected``, + ``(single run)``.

    The rule is :func:`.stats.judge`: ``p_holm < alpha``, the interval excludes 0 and, with >= 2 repeats of
    each model, ``|difference| > run_margin``.
    """
    spec = METRICS[row.metric]
    margin = math.nan if row.single_run else row.run_margin
    code = int(stats.judge(row.difference, row.ci_low, row.ci_high, row.p_holm, margin, alpha, spec.higher_is_better))
    verdict = {1: BETTER, -1: WORSE, 0: NO_DIFFERENCE}[code]
    return verdict + (SINGLE_RUN if row.single_run else "")


def _decide(rows: list[ComparisonRow], alpha: float) -> list[ComparisonRow]:
    """Holm over all ``rows`` (the whole run), run-to-run margins and verdicts."""
    p_holm = stats.holm([r.p for r in rows]) if rows else []
    out = []
    for row, ph in zip(rows, p_holm):
        margin = math.nan
        if not row.single_run:
            margin = float(
                stats.run_to_run_margin(
                    row.repeat_sd_reference, row.n_repeats_reference, row.repeat_sd_candidate,
                    row.n_repeats_candidate, alpha,
                )
            )  # fmt: skip
        row = replace(row, p_holm=float(ph), run_margin=margin)
        out.append(replace(row, verdict=verdict_of(row, alpha)))
    return out


def compare_models(
    reference: Repeats,
    candidates: Mapping[str, Repeats],
    metrics: Sequence[str] = DEFAULT_METRICS,
    alpha: float = ALPHA,
) -> dict[str, list[ComparisonRow]]:
    """Compare every candidate model with the reference, per compartment and metric.

    Args:
        reference: per repeat, the reference model's per-subject rows (``subject, compartment`` + metrics).
        candidates: name -> the candidate's per-subject rows per repeat; the same subjects as the reference.
        metrics: keys of :data:`METRICS`.
        alpha: level of the test, the interval (1 - alpha) and the run-to-run margin.

    Returns:
        name -> rows (compartments in label order, then ``mean``; per compartment the metrics in the order
        given). Holm's adjustment runs over the rows of all candidates together.

    Raises:
        FilterNetError: no repeats, an unknown metric, or subjects that do not pair.
    """
    if not 0 < alpha < 1:
        raise FilterNetError(f"expected alpha between 0 and 1, found {alpha}")
    unknown = [m for m in metrics if m not in METRICS]
    if unknown:
        raise FilterNetError(f"unknown metric(s) {', '.join(unknown)}; expected some of {', '.join(METRICS)}")
    if len(set(metrics)) != len(metrics):
        raise FilterNetError(f"expected each metric once, found {' '.join(metrics)}")
    if not reference or not all(candidates.values()):
        raise FilterNetError("expected at least one repeat of every model, found a model without any")
    tested = {}
    for name, candidate in candidates.items():
        compartments = _compartments([reference, candidate])
        tested[name] = [
            _tested_row(reference, candidate, c, METRICS[m], 1 - alpha) for c in compartments for m in metrics
        ]
    decided = iter(_decide([row for rows in tested.values() for row in rows], alpha))
    return {name: [next(decided) for _ in rows] for name, rows in tested.items()}
