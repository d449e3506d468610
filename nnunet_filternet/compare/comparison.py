"""Two or more models, several training repeats each: one row and one verdict per compartment and metric.

Input: per repeat of each model, the per-subject rows of ``filternet evaluate`` (``subject, compartment``,
optionally ``fold``, and metric columns; a subject's row is already the mean of its legs). A subject's value
is the mean over repeats, with the rule the per-subject averaging uses: NaN (compartment absent from reference
and prediction) is left out, +inf (a missed or hallucinated compartment) is kept. Pairs where either model's
value is NaN or infinite are left out of the statistics and counted. Rows: the compartments present, then
``mean`` (per subject, the mean over compartments).

The unit of the test is the fold (the network that predicted the subject): the paired t over fold means of
:mod:`nnunet_filternet.statistics.folds`, Holm over every row of the run, and a verdict from ``p_holm < alpha``
and the sign. Without folds in the rows every subject is its own fold (the ordinary paired t over subjects).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np

from nnunet_filternet.errors import FilterNetError
from nnunet_filternet.labels import COMPARTMENTS
from nnunet_filternet.metrics.summary import FOLD, MEAN_ROW, fold_by_subject, metric_by_subject
from nnunet_filternet.statistics import ALPHA
from nnunet_filternet.statistics.folds import compare_over_folds, fold_codes, judge, subject_means
from nnunet_filternet.statistics.multiple import holm

#: Per-subject rows of one model: one sequence of rows (``subject``, ``compartment``, metrics) per repeat.
Repeats = Sequence[Sequence[dict]]

#: Columns of ``comparison.csv``, in order.
COLUMNS: tuple[str, ...] = (
    "compartment",
    "metric",
    "n_subjects",
    "n_folds",
    "n_repeats_reference",
    "n_repeats_candidate",
    "reference_mean",
    "candidate_mean",
    "difference",
    "ci_low",
    "ci_high",
    "p",
    "p_holm",
    "run_sd_reference",
    "run_sd_candidate",
    "detectable_difference",
    "verdict",
)

BETTER, WORSE, NO_DIFFERENCE = "better", "worse", "no difference detected"
#: Verdicts of rows without a test, saying why.
NO_PAIR, ONE_FOLD = "not tested: no usable pair", "not tested: one fold"
VERDICTS: tuple[str, ...] = (BETTER, WORSE, NO_DIFFERENCE, NO_PAIR, ONE_FOLD)


@dataclass(frozen=True)
class MetricSpec:
    """A metric column of ``filternet evaluate``: its display scale and unit, and which direction is better."""

    column: str
    scale: float
    unit: str
    higher_is_better: bool
    label: str

    def missed(self, value: float) -> bool:
        """A value that means the compartment was missed or hallucinated: Dice 0, a distance +inf."""
        return value == 0 if self.column == "dice" else math.isinf(value)


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

    Means, difference, interval, SDs and the detectable difference are in the metric's display unit (Dice in
    %, distances in mm); the difference is candidate - reference, the mean of its fold means. ``run_sd_*`` are
    NaN with a single repeat of that model. ``n_absent``: subjects left out because a value is NaN;
    ``n_missed_*``: subjects whose value is +inf for that model (left out too; a subject missed by both counts
    in both); ``missed_only_*``: subjects where only that model missed (Dice 0 or a distance +inf in a repeat)
    while the other did not. ``folds_given``: the rows had folds (else every subject was its own fold).
    """

    compartment: str
    metric: str
    n_subjects: int
    n_folds: int
    n_repeats_reference: int
    n_repeats_candidate: int
    reference_mean: float
    candidate_mean: float
    difference: float
    ci_low: float
    ci_high: float
    p: float
    p_holm: float
    run_sd_reference: float
    run_sd_candidate: float
    detectable_difference: float
    verdict: str
    n_absent: int = 0
    n_missed_reference: int = 0
    n_missed_candidate: int = 0
    missed_only_reference: tuple[str, ...] = ()
    missed_only_candidate: tuple[str, ...] = ()
    subject_sd: float = math.nan
    fold_sd: float = math.nan
    folds_given: bool = True

    @property
    def tested(self) -> bool:
        return self.n_folds >= 2

    def csv_cells(self) -> list:
        """Cells of :data:`COLUMNS`; a run SD is empty with a single repeat of its model."""
        cells = {c: getattr(self, c) for c in COLUMNS}
        for model in ("reference", "candidate"):
            if getattr(self, f"n_repeats_{model}") < 2:
                cells[f"run_sd_{model}"] = ""
        return list(cells.values())


def _compartments(models: Sequence[Repeats]) -> list[str]:
    present = {r["compartment"] for repeats in models for rows in repeats for r in rows}
    extra = sorted(present - set(COMPARTMENTS) - {MEAN_ROW})
    return [c for c in COMPARTMENTS if c in present] + extra + [MEAN_ROW]


def _subject_list(subjects) -> str:
    return ", ".join(sorted(subjects)) or "none"


def subject_folds(tables: Sequence[tuple[str, Sequence[dict]]]) -> dict[str, str] | None:
    """subject -> fold over every table (a repeat of a model); None when no table has folds.

    Args:
        tables: (what to call the table in a message, e.g. its file, per-subject rows) per repeat and model.

    Raises:
        FilterNetError: a table without folds beside tables with folds, or a subject whose fold differs
            between tables (naming the subject, both folds and both tables).
    """
    per_table = []
    for label, rows in tables:
        try:
            per_table.append((label, fold_by_subject(rows)))
        except FilterNetError as e:
            raise FilterNetError(f"{label}: {e}") from None
    with_folds = [(label, folds) for label, folds in per_table if folds is not None]
    if not with_folds:
        return None
    without = [label for label, folds in per_table if folds is None]
    if without:
        raise FilterNetError(
            f"{without[0]}: expected a {FOLD} column, as in {with_folds[0][0]} (every metrics table with folds, or "
            "none: filternet evaluate --splits writes them)"
        )
    merged: dict[str, tuple[str, str]] = {}
    for label, folds in with_folds:
        for subject, fold in folds.items():
            first_fold, first_label = merged.setdefault(subject, (fold, label))
            if first_fold != fold:
                raise FilterNetError(
                    f"subject {subject} is in fold {first_fold} in {first_label} and in fold {fold} in {label}; "
                    "expected one fold per subject (the fold whose network predicted it) in every repeat of both models"
                )
    return {subject: fold for subject, (fold, _) in merged.items()}


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


def _missed_only(first: Mapping[str, list], second: Mapping[str, list], spec: MetricSpec) -> tuple[str, ...]:
    """Subjects that ``first`` missed in some repeat while ``second`` had a finite, non-missed value in each."""
    return tuple(
        s
        for s in first
        if any(spec.missed(v) for v in first[s]) and not any(spec.missed(v) or math.isnan(v) for v in second[s])
    )


def _tested_row(
    reference: Repeats, candidate: Repeats, folds: Mapping[str, str] | None, compartment: str, spec: MetricSpec,
    alpha: float,
) -> ComparisonRow:  # fmt: skip
    """The row of one compartment and metric, before Holm's adjustment and the verdict."""
    ref = _values_over_repeats(reference, compartment, spec, "reference")
    cand = _values_over_repeats(candidate, compartment, spec, "candidate")
    _check_pairs(ref, cand, compartment)
    subjects = sorted(ref)
    a, b = _by_repeat(ref, subjects, len(reference)), _by_repeat(cand, subjects, len(candidate))
    mean_a, mean_b = subject_means(a), subject_means(b)
    absent = np.isnan(mean_a) | np.isnan(mean_b)
    codes = fold_codes([folds[s] for s in subjects])[0] if folds is not None else np.arange(len(subjects))
    st = compare_over_folds(a, b, codes, alpha)
    return ComparisonRow(
        compartment=compartment,
        metric=spec.column,
        n_subjects=int(st.n_subjects),
        n_folds=int(st.n_folds),
        n_repeats_reference=len(reference),
        n_repeats_candidate=len(candidate),
        reference_mean=float(st.reference_mean),
        candidate_mean=float(st.candidate_mean),
        difference=float(st.difference),
        ci_low=float(st.ci_low),
        ci_high=float(st.ci_high),
        p=float(st.p),
        p_holm=math.nan,
        run_sd_reference=float(st.run_sd_reference),
        run_sd_candidate=float(st.run_sd_candidate),
        detectable_difference=float(st.detectable_difference),
        verdict="",
        n_absent=int(absent.sum()),
        n_missed_reference=int((np.isinf(mean_a) & ~absent).sum()),
        n_missed_candidate=int((np.isinf(mean_b) & ~absent).sum()),
        missed_only_reference=_missed_only(ref, cand, spec),
        missed_only_candidate=_missed_only(cand, ref, spec),
        subject_sd=float(st.subject_sd),
        fold_sd=float(st.fold_sd),
        folds_given=folds is not None,
    )


def verdict_of(row: ComparisonRow, alpha: float) -> str:
    """``better`` / ``worse`` (in the metric's direction) where ``p_holm < alpha``, else ``no difference detected``.

    Rows without a test say why: no subject with a finite value for both models (``not tested: no usable
    pair``, e.g. a candidate that missed the compartment in every subject), or used subjects in one fold only.
    """
    if row.n_subjects == 0:
        return NO_PAIR
    if row.n_folds < 2:
        return ONE_FOLD
    code = int(judge(row.p_holm, row.difference, alpha, METRICS[row.metric].higher_is_better))
    return {1: BETTER, -1: WORSE, 0: NO_DIFFERENCE}[code]


def _decide(rows: list[ComparisonRow], alpha: float) -> list[ComparisonRow]:
    """Holm over all ``rows`` (the whole run) and verdicts."""
    p_holm = holm([r.p for r in rows]) if rows else []
    out = []
    for row, ph in zip(rows, p_holm):
        row = replace(row, p_holm=float(ph))
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
        reference: per repeat, the reference model's per-subject rows (``subject, compartment``, optionally
            ``fold``, + metrics).
        candidates: name -> the candidate's per-subject rows per repeat; the same subjects as the reference.
        metrics: keys of :data:`METRICS`.
        alpha: level of the test, of the interval (1 - alpha) and of the detectable difference.

    Returns:
        name -> rows (compartments in label order, then ``mean``; per compartment the metrics in the order
        given). Holm's adjustment runs over the rows of all candidates together.

    Raises:
        FilterNetError: no repeats, an unknown metric, subjects that do not pair, or folds that differ.
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
    tables = [(f"repeat {k} of the reference", rows) for k, rows in enumerate(reference, start=1)]
    for name, candidate in candidates.items():
        tables += [(f"repeat {k} of {name}", rows) for k, rows in enumerate(candidate, start=1)]
    folds = subject_folds(tables)
    tested = {}
    for name, candidate in candidates.items():
        compartments = _compartments([reference, candidate])
        tested[name] = [
            _tested_row(reference, candidate, folds, c, METRICS[m], alpha) for c in compartments for m in metrics
        ]
    decided = iter(_decide([row for rows in tested.values() for row in rows], alpha))
    return {name: [next(decided) for _ in rows] for name, rows in tested.items()}
