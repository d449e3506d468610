"""``filternet report``: evaluate each trainer's cross-validation predictions and write the paper's tables and figures.

Output folder::

    report.md                         everything below, readable as text, with the figures linked
    table1.md / table1.csv            Table I (display / numbers with p values); table1b.*: directed ASD, HD95
    table2.csv, table3.csv, sigma.csv Tables II, III (the edge gates, when their trainers are reported) and the
                                      learned sigma per fold
    postprocessing.csv                DSC and ASSD of every trainer before / after largest-component post-processing
    fig5_metrics.png, fig4_examples.png
    metrics/<trainer>.csv             per case and compartment (``filternet evaluate`` columns), + _per_subject.csv
    metrics/<trainer>_largest_component.csv   the same after connected-component post-processing

Every metrics CSV carries the ``fold`` whose network predicted the case (from the results' ``fold_<k>``
folders): the unit of Table I's paired tests and of the comparison.

With several results roots (one per training repeat: the cross-validation trained again into another
``nnUNet_results``; a byte-identical copy of another repeat's predictions is refused), Tables I-III and the
figures come from the first root, and the report gains the comparison of every trainer against the reference
over all repeats (``filternet compare``'s statistics)::

    compare.csv, compare_<trainer>.png  one row per trainer, compartment and metric; one forest plot per trainer
    metrics/repeat_<k>/<trainer>.csv    per case and compartment, repeat k >= 2 (+ _per_subject.csv)

A rerun reuses the per-case metrics of cases whose files have not changed since.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from nnunet_filternet.compare.inputs import check_distinct_repeats, repeat_digest
from nnunet_filternet.errors import FilterNetError, InputError
from nnunet_filternet.metrics.evaluate import (
    SUBJECT_COLUMNS,
    evaluate_pairs,
    per_subject,
    per_subject_csv_path,
    with_fold,
    write_rows,
)
from nnunet_filternet.metrics.matching import CasePair, list_cases
from nnunet_filternet.metrics.summary import MEAN_ROW, metric_by_subject
from nnunet_filternet.report import tables
from nnunet_filternet.report.examples import choose_subjects, load_example
from nnunet_filternet.report.figures import plot_metric_bars, plot_overlays
from nnunet_filternet.report.results import (
    TrainerRun,
    dataset_name,
    default_gt_dir,
    default_images_dir,
    find_trainer_runs,
)
from nnunet_filternet.report.training import summarise_training
from nnunet_filternet.utils.atomic import write_text
from nnunet_filternet.utils.output_guard import refuse_inputs_as_outputs
from nnunet_filternet.utils.tables import Table

HEADLINE_FILE = "table1.md"
#: Table III's section when no trainer of the report trains one of its gates.
TABLE3_MISSING = (
    "No Table III trainer among --trainers: add nnUNetTrainerFilterNetLaplacian, nnUNetTrainerFilterNetFixedSigma "
    "and nnUNetTrainerFilterNet (or their Paper twins / budget variants) to fill it."
)


def _pairs(run: TrainerRun, gt_files: dict[str, Path], gt_dir: Path) -> list[CasePair]:
    predictions = run.predictions()
    no_gt = sorted(set(predictions) - set(gt_files))
    if no_gt:
        raise InputError(
            gt_dir, f"no ground truth for {len(no_gt)} case(s) predicted by {run.trainer}: {', '.join(no_gt)}"
        )
    return [CasePair(case, predictions[case], gt_files[case]) for case in sorted(predictions)]


def _folds(run: TrainerRun) -> dict[str, str]:
    """case -> the fold (as text) whose network predicted it."""
    return {case: str(fold) for case, fold in run.fold_of().items()}


def _evaluate(
    pairs: list[CasePair], folds: dict[str, str], csv_path: Path, jobs: int | None, postprocess=None
) -> list[dict]:
    """Per-subject rows (with their fold) of ``pairs``; writes ``csv_path`` (per case) and its per-subject CSV."""
    desc = f"evaluate {csv_path.stem}"
    rows = evaluate_pairs(pairs, jobs=jobs, postprocess=postprocess, cache_csv=csv_path, desc=desc, folds=folds)
    subject_rows = per_subject(rows)
    write_rows(subject_rows, per_subject_csv_path(csv_path), with_fold(SUBJECT_COLUMNS))
    return subject_rows


def _check_distinct_repeats(roots: list[Path], runs: list[dict[str, TrainerRun]]) -> None:
    """No repeat of a trainer may hold byte-identical predictions to another repeat's (a copy, not a training)."""
    for trainer in runs[0]:
        digests = [(root, repeat_digest(runs_k[trainer].predictions())) for root, runs_k in zip(roots, runs)]
        check_distinct_repeats(digests, what=f"{trainer} predictions")


def _coverage_notes(runs: dict[str, TrainerRun], gt_files: dict[str, Path]) -> list[str]:
    notes = []
    for trainer, run in runs.items():
        missing = sorted(set(gt_files) - set(run.predictions()))
        folds = ", ".join(str(f.fold) for f in run.folds)
        line = f"- {trainer}: {len(run.predictions())} of {len(gt_files)} ground-truth cases predicted (folds {folds})"
        notes.append(line + (f"; not predicted: {', '.join(missing)}" if missing else ""))
    return notes


def _check_arguments(trainers: list[str], reference: str) -> None:
    if not trainers:
        raise FilterNetError("expected at least one trainer (--trainers), found none")
    duplicates = sorted({t for t in trainers if trainers.count(t) > 1})
    if duplicates:
        raise FilterNetError(f"trainers are listed twice: {', '.join(duplicates)}")
    if reference not in trainers:
        raise FilterNetError(f"the baseline trainer {reference!r} is not among --trainers ({', '.join(trainers)})")


def _results_roots(results_dir: str | os.PathLike | Sequence[str | os.PathLike]) -> list[Path]:
    """The results roots, one per training repeat: distinct folders of the same dataset."""
    roots = [Path(results_dir)] if isinstance(results_dir, (str, os.PathLike)) else [Path(r) for r in results_dir]
    if not roots:
        raise FilterNetError("expected at least one results folder (--results), found none")
    seen: dict[Path, Path] = {}
    for root in roots:
        if root.resolve() in seen:
            raise InputError(root, f"is given twice (also as {seen[root.resolve()]}); expected one folder per repeat")
        seen[root.resolve()] = root
        if dataset_name(root) != dataset_name(roots[0]):
            raise InputError(root, f"expected a results folder of {dataset_name(roots[0])} (as {roots[0]}), found "
                             f"{dataset_name(root)}")  # fmt: skip
    return roots


def write_report(
    results_dir: str | os.PathLike | Sequence[str | os.PathLike],
    trainers: list[str],
    reference: str,
    out_dir: str | os.PathLike,
    plans: str = "nnUNetPlans",
    configuration: str = "3d_fullres",
    gt_dir: str | os.PathLike | None = None,
    images_dir: str | os.PathLike | None = None,
    jobs: int | None = None,
) -> Path:
    """Evaluate the trainers' cross-validation predictions and write the report.

    Args:
        results_dir: ``$nnUNet_results/DatasetNNN_NAME``, or one such folder per training repeat (the same
            dataset trained again into another ``nnUNet_results``): Tables I-III and the figures come from the
            first, and the report adds the comparison of every trainer with the reference over all of them.
        trainers: trainer class names, in table column order.
        reference: the trainer the others are tested against (one of ``trainers``).
        out_dir: output folder (created).
        plans: plans identifier of the results folders.
        configuration: nnU-Net configuration.
        gt_dir: ground-truth label maps (default: the dataset's ``gt_segmentations`` or ``labelsTr``).
        images_dir: images for Fig. 4 (default: the dataset's ``imagesTr``; none found: labels only).
        jobs: worker processes for evaluation (None: all cores).

    Returns:
        Path of ``report.md``. :func:`headline_table` returns Table I as Markdown.

    Raises:
        FilterNetError: bad arguments, missing results or ground truth (everything concerned is listed).
    """
    trainers = list(trainers)
    _check_arguments(trainers, reference)
    roots = _results_roots(results_dir)
    results_dir = roots[0]
    runs = find_trainer_runs(results_dir, trainers, plans, configuration)
    repeat_runs = [find_trainer_runs(root, trainers, plans, configuration) for root in roots[1:]]
    _check_distinct_repeats(roots, [runs, *repeat_runs])
    gt_dir = Path(gt_dir) if gt_dir is not None else default_gt_dir(results_dir)
    gt_files = list_cases(gt_dir)
    if not gt_files:
        raise InputError(gt_dir, "expected ground-truth label maps (.nii.gz), found none")
    repeat_pairs = [{t: _pairs(run, gt_files, gt_dir) for t, run in runs_k.items()} for runs_k in repeat_runs]
    images_dir = Path(images_dir) if images_dir is not None else default_images_dir(results_dir)
    if images_dir is not None and not images_dir.is_dir():
        raise InputError(images_dir, "expected a folder of images for Fig. 4 (--images)")
    out_dir = Path(out_dir)
    refuse_inputs_as_outputs(  # the default folders too (labelsTr, gt_segmentations, imagesTr)
        {gt_dir: "ground-truth label maps", **({images_dir: "images for Fig. 4"} if images_dir else {})},
        whole_folders=[out_dir],
    )
    before, after = _evaluate_trainers(runs, gt_files, gt_dir, out_dir, jobs)
    sections = _write_tables(before, after, [summarise_training(runs[t]) for t in trainers], reference, out_dir)
    image_files = list_cases(images_dir, images=True) if images_dir is not None else None
    sections += _write_figures(before, runs, gt_files, image_files, reference, out_dir)
    coverage = _coverage_notes(runs, gt_files)
    if repeat_runs:
        repeats = [before] + [
            {
                t: _evaluate(p, _folds(runs_k[t]), out_dir / "metrics" / f"repeat_{k}" / f"{t}.csv", jobs)
                for t, p in pairs_k.items()
            }
            for k, (pairs_k, runs_k) in enumerate(zip(repeat_pairs, repeat_runs), start=2)
        ]
        sections += _write_comparison(repeats, reference, out_dir)
        coverage = [f"- repeat 1 (`{roots[0]}`):"] + coverage
        for k, (root, runs_k) in enumerate(zip(roots[1:], repeat_runs), start=2):
            coverage += [f"- repeat {k} (`{root}`):"] + _coverage_notes(runs_k, gt_files)
    header = [
        f"# Cross-validation report: {dataset_name(results_dir)}",
        f"Results: `{Path(results_dir)}` (plans `{plans}`, configuration `{configuration}`); ground truth: "
        f"`{gt_dir}`; images: `{images_dir if image_files is not None else 'not found'}`; reference trainer: "
        f"**{reference}**. DSC in %, distances in mm. ASSD is the symmetric mean over both surfaces (Heimann 2009); "
        "the paper's ASSD is the directed mean from the automated to the manual surface (ASD pred→ref, Table I-b).",
        "Coverage:\n" + "\n".join(coverage),
    ]
    if repeat_runs:
        header[1] += (
            f" Training repeats: {len(roots)} (coverage below); Tables I-III and Figs. 4-5 show repeat 1, the "
            "comparison at the end uses all of them."
        )
    report = out_dir / "report.md"
    write_text(report, "\n\n".join(header + sections) + "\n")
    return report


def _evaluate_trainers(
    runs: dict[str, TrainerRun], gt_files: dict[str, Path], gt_dir: Path, out_dir: Path, jobs: int | None
) -> tuple[dict[str, list[dict]], dict[str, list[dict]]]:
    """Per-subject rows of every trainer, before and after largest-component post-processing."""
    pairs = {t: _pairs(run, gt_files, gt_dir) for t, run in runs.items()}
    # imports nnU-Net (torch): after the checks, so that bad input fails fast, and before the worker pools
    from nnunet_filternet.report.postprocessing import keep_largest_component_per_label

    metrics = out_dir / "metrics"
    before = {t: _evaluate(pairs[t], _folds(runs[t]), metrics / f"{t}.csv", jobs) for t in runs}
    pp = keep_largest_component_per_label
    after = {t: _evaluate(pairs[t], _folds(runs[t]), metrics / f"{t}_largest_component.csv", jobs, pp) for t in runs}
    return before, after


def _write_comparison(repeats: list[dict[str, list[dict]]], reference: str, out_dir: Path) -> list[str]:
    """``compare.csv`` and one forest plot per trainer against the reference over all repeats; report section.

    Only subjects predicted in every repeat of every trainer are compared (the others are named).
    """
    from nnunet_filternet.compare.comparison import COLUMNS, compare_models
    from nnunet_filternet.compare.figure import plot_comparison
    from nnunet_filternet.compare.tables import comparison_csv_table, comparison_table, summary_lines
    from nnunet_filternet.statistics import ALPHA

    candidates = [t for t in repeats[0] if t != reference]
    if not candidates:
        return []
    subject_sets = [{r["subject"] for r in rows} for repeat in repeats for rows in repeat.values()]
    common = set.intersection(*subject_sets)
    dropped = sorted(set.union(*subject_sets) - common)

    def kept(trainer: str) -> list[list[dict]]:
        return [[r for r in repeat[trainer] if r["subject"] in common] for repeat in repeats]

    compared = compare_models(kept(reference), {t: kept(t) for t in candidates}, alpha=ALPHA)  # one Holm family
    csv_rows = []
    lines = [
        f"## Comparison over {len(repeats)} training repeats (against {reference})",
        "Per compartment and metric: each subject's value is the mean of its legs and of a trainer's repeats; "
        f"the difference trainer - {reference} is averaged per fold (the network that predicted the subject), "
        f"and the fold means give the mean difference, its {100 * (1 - ALPHA):g}% t interval and p on F - 1 "
        f"degrees of freedom, Holm's p over all {sum(map(len, compared.values()))} rows below, each trainer's "
        "run SD (within folds, across repeats), the difference this design detects with 80 % power, and the "
        "verdict (docs/evaluation.md, 'Comparing two models').",
    ]
    if dropped:
        lines.append(f"Left out (not predicted in every repeat of every trainer): {', '.join(dropped)}.")
    for trainer, rows in compared.items():
        csv_rows += comparison_csv_table(rows, {"candidate": trainer}).rows
        plot_comparison(rows, out_dir / f"compare_{trainer}.png", reference, trainer, ALPHA)
        lines += [
            f"### {trainer}",
            comparison_table(rows, reference, trainer, ALPHA).to_markdown(),
            "\n".join(summary_lines(rows, reference, trainer, ALPHA)),
            f"![{trainer} against {reference}](compare_{trainer}.png)",
        ]
    Table(["candidate", *COLUMNS], csv_rows).write_csv(out_dir / "compare.csv")
    return ["\n\n".join(lines)]


def _write_tables(before, after, summaries, reference: str, out_dir: Path) -> list[str]:
    """Write Tables I-III (Markdown + CSV); return their report sections."""
    table1, table1_numbers = tables.table_one(before, reference)
    table1b, table1b_numbers = tables.table_one(before, reference, tables.TABLE1B_METRICS)
    table2, sigma = tables.table_two(summaries), tables.sigma_table(summaries)
    table3, postprocessing = tables.table_three(before, after), tables.postprocessing_table(before, after)
    write_text(out_dir / HEADLINE_FILE, table1.to_markdown() + "\n")
    write_text(out_dir / "table1b.md", table1b.to_markdown() + "\n")
    csvs = {"table1": table1_numbers, "table1b": table1b_numbers, "table2": table2, "table3": table3, "sigma": sigma}
    csvs["postprocessing"] = postprocessing
    for name, table in csvs.items():
        if table is not None:
            table.write_csv(out_dir / f"{name}.csv")
    sections = [
        "## Table I: DSC and ASSD per compartment\n\n" + table1.to_markdown(),
        "## Table I-b: directed ASD (the paper's ASSD) and HD95\n\n" + table1b.to_markdown(),
        "## Paired tests against the reference\n\n" + tables.p_value_table(table1_numbers, reference).to_markdown(),
        "## Table II: model size, memory and speed\n\n" + table2.to_markdown(),
        "## Table III: edge gates\n\n" + (table3.to_markdown() if table3 is not None else TABLE3_MISSING),
        "## Largest-connected-component post-processing\n\n" + postprocessing.to_markdown(),
    ]
    if sigma is not None:
        sections.append("## Learned sigma of the edge gate per fold\n\n" + sigma.to_markdown())
    return sections


def _write_figures(before, runs, gt_files, image_files, reference: str, out_dir: Path) -> list[str]:
    """Draw Fig. 5 (bars) and Fig. 4 (worst / median / best overlays); return their report sections."""
    plot_metric_bars(before, out_dir / "fig5_metrics.png")
    sections = ["## Fig. 5: DSC and ASSD per compartment\n\n![Fig. 5](fig5_metrics.png)"]
    predictions = {t: run.predictions() for t, run in runs.items()}
    examples = []
    common = set.intersection(*({r["subject"] for r in rows} for rows in before.values()))  # every trainer has them
    for tag, subject in choose_subjects([r for r in before[reference] if r["subject"] in common]):
        dsc = {t: 100 * metric_by_subject(rows, MEAN_ROW, "dice")[subject] for t, rows in before.items()}
        examples.append(load_example(tag, subject, gt_files, predictions, image_files, dsc))
    if examples:
        plot_overlays(examples, out_dir / "fig4_examples.png")
        sections.append(
            f"## Fig. 4: examples ({', '.join(e.title for e in examples)}; by mean DSC of {reference})\n\n"
            "Fill: labels; white lines: ground-truth outlines. Axial slice with the most ground truth per leg.\n\n"
            "![Fig. 4](fig4_examples.png)"
        )
    return sections


def headline_table(out_dir: str | os.PathLike) -> str:
    """Table I (Markdown) of a report written by :func:`write_report` into ``out_dir``."""
    path = Path(out_dir) / HEADLINE_FILE
    if not path.is_file():
        raise InputError(path, "expected Table I of a report written by filternet report, found none")
    return path.read_text(encoding="utf-8").rstrip("\n")
