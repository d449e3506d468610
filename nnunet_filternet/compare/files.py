"""``filternet compare`` from files: metric CSVs per repeat in, ``comparison.csv`` and its figure out."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from nnunet_filternet.errors import FilterNetError
from nnunet_filternet.statistics import ALPHA

from .comparison import DEFAULT_METRICS, ComparisonRow, compare_models, subject_folds
from .figure import plot_comparison
from .inputs import check_distinct_files, check_pairing, read_metric_table
from .tables import comparison_table, summary_lines, write_comparison_csv


@dataclass(frozen=True)
class ComparisonFiles:
    """What :func:`compare_files` wrote and printed."""

    rows: list[ComparisonRow]
    csv: Path
    figure: Path
    table_markdown: str
    summary: list[str]


def figure_path(out_csv: str | os.PathLike) -> Path:
    """``comparison.csv`` -> ``comparison.png`` beside it."""
    return Path(out_csv).with_suffix(".png")


def compare_files(
    reference: Sequence[str | os.PathLike],
    candidate: Sequence[str | os.PathLike],
    out_csv: str | os.PathLike,
    names: tuple[str, str] = ("baseline", "candidate"),
    metrics: Sequence[str] = DEFAULT_METRICS,
    alpha: float = ALPHA,
) -> ComparisonFiles:
    """Compare a candidate model's metric CSVs (one per repeat) with the reference's; write CSV and figure.

    Args:
        reference, candidate: ``filternet evaluate`` CSVs, one per training repeat of each model; with a ``fold``
            column (``filternet evaluate --splits``) in every file, or in none (then every subject is its own fold).
        out_csv: ``comparison.csv`` to write; the figure goes beside it (``.png``).
        names: display names of the reference and the candidate.
        metrics: metric columns to compare (keys of :data:`~.comparison.METRICS`).
        alpha: level of the tests, of the interval (1 - alpha) and of the detectable difference.

    Raises:
        FilterNetError: bad input, with the file named (a missing or malformed CSV, a metric not in a file,
            subjects that do not pair, one file given twice, a subject whose fold differs between files).
    """
    if not reference or not candidate:
        raise FilterNetError("expected at least one metrics CSV for --baseline and for --candidate")
    if names[0] == names[1]:
        raise FilterNetError(f"expected two different --names, found {names[0]!r} twice")
    if Path(out_csv).is_dir():
        raise FilterNetError(f"{out_csv}: expected a CSV file name for --csv, found a folder")
    if figure_path(out_csv) == Path(out_csv):
        raise FilterNetError(f"{out_csv}: expected a CSV file name for --csv, not a .png: the figure is written beside "
                             "the CSV with the suffix .png and would replace it")  # fmt: skip
    paths = [Path(p) for p in (*reference, *candidate)]
    check_distinct_files(paths)
    tables = [(p, read_metric_table(p, metrics)) for p in paths]
    check_pairing(tables)
    subject_folds([(str(p), rows) for p, rows in tables])
    ref_tables = [rows for _, rows in tables[: len(reference)]]
    cand_tables = [rows for _, rows in tables[len(reference) :]]
    rows = compare_models(ref_tables, {names[1]: cand_tables}, metrics, alpha)[names[1]]
    write_comparison_csv(rows, out_csv)
    png = figure_path(out_csv)
    plot_comparison(rows, png, names[0], names[1], alpha)
    table = comparison_table(rows, names[0], names[1], alpha).to_markdown()
    return ComparisonFiles(rows, Path(out_csv), png, table, summary_lines(rows, names[0], names[1], alpha))
