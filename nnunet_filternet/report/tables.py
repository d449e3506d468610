"""The report's tables as plain data, written as Markdown and CSV.

Table I: mean +- std over subjects per compartment and trainer, marked where the paired t over folds against
the reference trainer (``filternet compare``'s test, one repeat) gives p < 0.05. Table II: parameters, peak
memory, time per epoch. Table III: the paper's edge-gate variants (Laplacian only, fixed sigma, fixed sigma +
largest connected component, trainable sigma). Also: the effect of largest-connected-component post-processing
on every trainer, and the edge gate's learned sigma per fold.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from nnunet_filternet.compare.comparison import ComparisonRow, compare_models
from nnunet_filternet.labels import COMPARTMENTS
from nnunet_filternet.metrics.summary import MEAN_ROW, format_mean_std, mean_std, metric_by_subject
from nnunet_filternet.report.training import TrainingSummary
from nnunet_filternet.statistics import ALPHA
from nnunet_filternet.utils.tables import Table

#: (column of the per-subject CSV, scale, heading) of Table I and its continuation.
TABLE1_METRICS: tuple[tuple[str, float, str], ...] = (("dice", 100.0, "DSC (%)"), ("assd_mm", 1.0, "ASSD (mm)"))
TABLE1B_METRICS: tuple[tuple[str, float, str], ...] = (
    ("asd_pred_to_ref_mm", 1.0, "ASD pred→ref (mm)"),
    ("hd95_mm", 1.0, "HD95 (mm)"),
)
#: Marker of a significant difference from the reference trainer (paired t over folds, p < alpha).
T_MARK = "*"

#: trainer -> per-subject rows (``metrics/*_per_subject.csv``).
SubjectRows = Mapping[str, Sequence[dict]]


def _row_names(subject_rows: SubjectRows) -> list[str]:
    present = {r["compartment"] for rows in subject_rows.values() for r in rows}
    return [c for c in COMPARTMENTS if c in present] + [MEAN_ROW]


def _cell(values: Mapping[str, float], scale: float, test: ComparisonRow | None) -> str:
    mean, std, n = mean_std([v * scale for v in values.values()])
    text = format_mean_std(mean, std)
    n_inf = sum(math.isinf(v) for v in values.values())
    if n_inf:
        text += f" ({n_inf}/{len(values)} missed)"
    if test is not None and not math.isnan(test.p) and test.p < ALPHA:
        text += T_MARK
    return text


def _shared(rows: Sequence[dict], subjects: set[str]) -> list[dict]:
    return [r for r in rows if r["subject"] in subjects]


def paired_tests(
    subject_rows: SubjectRows, reference: str, metrics: Sequence[tuple[str, float, str]]
) -> dict[tuple[str, str, str], ComparisonRow]:
    """(trainer, compartment, column) -> ``filternet compare``'s row of that trainer against the reference.

    One repeat each, over the subjects both trainers predicted; the unit is the fold of the rows (every
    subject its own fold when they have none). Table I reads the unadjusted p, as the paper does.
    """
    columns = [column for column, _, _ in metrics]
    tests = {}
    ref_subjects = {r["subject"] for r in subject_rows[reference]}
    for trainer, rows in subject_rows.items():
        if trainer == reference:
            continue
        shared = ref_subjects & {r["subject"] for r in rows}
        if not shared:
            continue
        compared = compare_models([_shared(subject_rows[reference], shared)], {trainer: [_shared(rows, shared)]},
                                  columns)[trainer]  # fmt: skip
        tests.update({(trainer, row.compartment, row.metric): row for row in compared})
    return tests


def table_one(
    subject_rows: SubjectRows, reference: str, metrics: Sequence[tuple[str, float, str]] = TABLE1_METRICS
) -> tuple[Table, Table]:
    """Table I for display (wide, Markdown) and as numbers (long, CSV with means, stds and p values).

    Args:
        subject_rows: trainer -> per-subject rows (with ``fold``: the unit of the test); dict order is the
            column order.
        reference: the trainer every other one is tested against.
        metrics: (column, scale, heading) per metric block.
    """
    trainers = list(subject_rows)
    tests = paired_tests(subject_rows, reference, metrics)
    display = Table(["compartment"] + [f"{heading} {t}" for _, _, heading in metrics for t in trainers])
    numbers = Table(["metric", "compartment", "trainer", "mean", "std", "n", "fold_t_p", "n_pairs", "n_folds"])
    for name in _row_names(subject_rows):
        cells = [name]
        for column, scale, _ in metrics:
            for trainer in trainers:
                values = metric_by_subject(subject_rows[trainer], name, column)
                test = tests.get((trainer, name, column))
                cells.append(_cell(values, scale, test))
                mean, std, n = mean_std([v * scale for v in values.values()])
                p = (math.nan, 0, 0) if test is None else (test.p, test.n_subjects, test.n_folds)
                numbers.rows.append([column, name, trainer, mean, std, n, *p])
        display.rows.append(cells)
    unit = "fold" if all("fold" in r for rows in subject_rows.values() for r in rows) else "subject"
    display.notes.append(
        f"Mean ± std over subjects (each subject: mean of its legs). {T_MARK}: paired t against {reference} "
        f"p < {ALPHA:g} (unadjusted), over the {unit} means of the per-subject differences (the {unit} is the unit: "
        "subjects of one fold share a training run; docs/evaluation.md). "
        f"'{MEAN_ROW}': per-subject mean over compartments. 'k/n missed': subjects with a compartment missed "
        "or hallucinated (distance +inf, left out of the tests)."
    )
    return display, numbers


def p_value_table(numbers: Table, reference: str) -> Table:
    """The p values of Table I's numbers: one row per metric and compartment, one column per tested trainer."""
    tested = [t for t in dict.fromkeys(r[2] for r in numbers.rows) if t != reference]
    table = Table(["metric", "compartment"] + [f"{t}: paired t over folds p (subjects, folds)" for t in tested])
    keyed = {(r[0], r[1], r[2]): r for r in numbers.rows}
    for metric, compartment in dict.fromkeys((r[0], r[1]) for r in numbers.rows):
        cells = []
        for t in tested:
            p, n, folds = keyed[(metric, compartment, t)][6:9]
            cells.append(f"{_p(p)} ({n}, {folds})")
        table.rows.append([metric, compartment, *cells])
    return table


def _p(p: float) -> str:
    return "n/a" if math.isnan(p) else f"{p:.3g}"


def _or_na(value, fmt: str) -> str:
    return "n/a" if value is None else format(value, fmt)


def table_two(summaries: Sequence[TrainingSummary]) -> Table:
    """Table II: parameters (M), peak memory (MiB, what was measured) and time per epoch (s) per trainer."""
    table = Table(["trainer", "parameters", "peak memory (MiB)", "memory measured as", "epoch time (s)", "epochs"])
    for s in summaries:
        params = "n/a" if s.parameters is None else f"{s.parameters:,} ({s.parameters / 1e6:.2f} M)"
        if s.logged_parameters is not None and s.parameters is not None and s.logged_parameters != s.parameters:
            params += f" (log: {s.logged_parameters:,})"
        epoch = _or_na(s.epoch_time_mean_s, ".1f")
        if s.epoch_time_std_s is not None:
            epoch += f" ± {s.epoch_time_std_s:.1f}"
        memory = _or_na(s.peak_memory_mib, ".1f")
        table.rows.append([s.trainer, params, memory, s.memory_source or "n/a", epoch, len(s.epoch_times_s)])
    table.notes.append(
        "Parameters: floating tensors of the checkpoint's network_weights without BN running statistics "
        "(training-only edge gate not counted). Memory and epoch time: our trainers' and nnU-Net's log lines; "
        "memory is n/a for a trainer that does not log it: nnU-Net's own trainers (e.g. nnUNetTrainer) log none, "
        "their budget variants from this package (e.g. nnUNetTrainer_40epochs_40iters_4val, what filternet demo "
        "trains) and nnUNetTrainerUNet (the same network and recipe) log it like ours."
    )
    return table


#: Table III's rows in the paper's order: (row name, trainer class name, after largest-connected-component
#: post-processing). Trainer class names are resolved in :func:`table_three_rows`.
TABLE3_ROWS: tuple[tuple[str, str, bool], ...] = (
    ("F_L", "nnUNetTrainerFilterNetLaplacian", False),
    ("F_LρG(σ = 1)", "nnUNetTrainerFilterNetFixedSigma", False),
    ("F_LρG(σ = 1) & LLC", "nnUNetTrainerFilterNetFixedSigma", True),
    ("F_LρG(·|σ)", "nnUNetTrainerFilterNet", False),
)
#: (column of the per-subject CSV, heading) of Table III: the symmetric ASSD and the paper's directed one.
TABLE3_METRICS: tuple[tuple[str, str], ...] = (("assd_mm", "ASSD (mm)"), ("asd_pred_to_ref_mm", "ASD pred→ref (mm)"))


def is_variant_of(trainer: str, base: str) -> bool:
    """True for ``base`` itself, its paper twin ``basePaper`` and their suffixed variants (``base_5epochs``, ...).

    ``nnUNetTrainerFilterNetLaplacian`` is not a variant of ``nnUNetTrainerFilterNet``: a variant adds only
    ``Paper`` and/or a suffix starting with ``_``.
    """
    for stem in (base, base + "Paper"):
        if trainer == stem or trainer.startswith(stem + "_"):
            return True
    return False


def table_three_rows(trainers: Sequence[str]) -> list[tuple[str, str, bool]]:
    """(row name, trainer, post-processed) for every trainer of ``trainers`` that is one of Table III's gates."""
    return [(name, t, llc) for name, base, llc in TABLE3_ROWS for t in trainers if is_variant_of(t, base)]


def table_three(before: SubjectRows, after: SubjectRows) -> Table | None:
    """Table III: mean ± std over subjects of ASSD per compartment for the paper's edge-gate variants.

    Rows in the paper's order (:data:`TABLE3_ROWS`), each for the trainers of the report that train that gate
    (nnU-Net recipe, paper protocol, budget variants); the "& LLC" row uses the fixed-sigma predictions after
    largest-connected-component post-processing. None when no trainer of the report is a Table III gate.

    Args:
        before: trainer -> per-subject rows of the predictions as they are.
        after: trainer -> per-subject rows after largest-connected-component post-processing.
    """
    rows = table_three_rows(list(before))
    if not rows:
        return None
    compartments = [c for c in _row_names(before) if c != MEAN_ROW]
    table = Table(["gate", "trainer", "metric", *compartments, MEAN_ROW])
    for column, heading in TABLE3_METRICS:
        for name, trainer, llc in rows:
            subject_rows = (after if llc else before)[trainer]
            cells = [_cell(metric_by_subject(subject_rows, c, column), 1.0, None) for c in [*compartments, MEAN_ROW]]
            table.rows.append([name, trainer, heading, *cells])
    table.notes.append(
        "Mean ± std over subjects. F_L: Laplacian-only gate (L * x); F_LρG(σ = 1): sigma fixed at 1; & LLC: the "
        "same predictions with nnU-Net's largest connected component kept per compartment label; F_LρG(·|σ): "
        "trainable sigma. ASSD is symmetric; the paper's ASSD is the directed ASD pred→ref."
    )
    return table


def postprocessing_table(before: SubjectRows, after: SubjectRows) -> Table:
    """DSC (%) and ASSD (mm) of every trainer before / after largest-connected-component post-processing."""
    table = Table(["trainer", "compartment", "DSC before", "DSC after", "ASSD before", "ASSD after"])
    for trainer in before:
        for name in _row_names({trainer: before[trainer]}):
            cells = [trainer, name]
            for column, scale in (("dice", 100.0), ("assd_mm", 1.0)):
                for rows in (before[trainer], after[trainer]):
                    mean, std, _ = mean_std([v * scale for v in metric_by_subject(rows, name, column).values()])
                    cells.append(format_mean_std(mean, std))
            table.rows.append(cells)
    table.notes.append(
        "Post-processing: nnU-Net's remove_all_but_largest_component_from_segmentation applied to every "
        "compartment label of every validation prediction (in memory; the results folder is not modified)."
    )
    return table


def sigma_table(summaries: Sequence[TrainingSummary]) -> Table | None:
    """Learned sigma (and final lambda) per fold of the edge-gate trainers; None if no trainer logged a gate."""
    gated = [s for s in summaries if s.sigma_per_fold]
    if not gated:
        return None
    folds = sorted({f for s in gated for f in s.sigma_per_fold})
    table = Table(["trainer"] + [f"fold {f}: sigma (lambda)" for f in folds])
    for s in gated:
        table.rows.append([s.trainer, *(_sigma_cell(s, f) for f in folds)])
    table.notes.append(
        "sigma at the end of training, read from each fold's checkpoint (the gate's state); lambda from the last "
        "'edge gate: lambda ... sigma ...' line of its training log. * : no checkpoint, sigma from that log line "
        "(3 decimals)."
    )
    return table


def _sigma_cell(summary: TrainingSummary, fold: int) -> str:
    """``1.00123 (0.001)``: sigma to 5 decimals and lambda; ``1.001* (...)`` when read from the log; ``n/a``."""
    if fold not in summary.sigma_per_fold:
        return "n/a"
    if fold in summary.sigma_logged_folds:
        return f"{summary.sigma_per_fold[fold]:.3f}* ({summary.lambda_per_fold[fold]:g})"
    return f"{summary.sigma_per_fold[fold]:.5f} ({summary.lambda_per_fold[fold]:g})"
