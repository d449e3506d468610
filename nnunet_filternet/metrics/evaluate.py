"""Folder-level evaluation: one CSV row per case and compartment, and a per-subject table.

The per-subject table averages each metric over a subject's cases (left and right leg, the paper's
convention; a restored full scan is its subject's only case). Averaging rule, consistent with the
empty-mask conventions of :mod:`.surface`: NaN values (compartment absent from both prediction and
reference in that case) are left out of the mean, +inf values (compartment missed or hallucinated) are
kept, so they make the subject's distance +inf; a subject whose cases are all NaN stays NaN. Volumes are
averaged the same way (ml per leg).

With the dataset's ``splits_final.json`` (``splits``), both tables gain a ``fold`` column after ``subject``: the
fold whose network predicted the case (:mod:`.folds`), which ``filternet compare`` uses as the unit of its
test. A subject's cases must share one fold.

A rerun reuses a case's rows from the existing output CSV only when the program version, the options and the
content of both of the case's files (path, size, SHA-256, taken before they are read) are what produced them, as
recorded in the CSV's sidecar (:mod:`nnunet_filternet.utils.cache`); ``fresh=True`` recomputes everything. A case
whose file changed during the run is not recorded (it is computed again next time).
"""

from __future__ import annotations

import csv
import functools
import math
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np

from nnunet_filternet.errors import FilterNetError
from nnunet_filternet.metrics.label_maps import on_reference_grid, read_label_map
from nnunet_filternet.metrics.matching import CasePair, match_cases, subject_of
from nnunet_filternet.metrics.summary import FOLD, fold_by_subject
from nnunet_filternet.metrics.surface import METRIC_COLUMNS, compartment_metrics
from nnunet_filternet.utils.atomic import atomic_path
from nnunet_filternet.utils.parallel import parallel_map

#: Columns of the per-case CSV.
CASE_COLUMNS: tuple[str, ...] = ("case", "subject", "compartment", *METRIC_COLUMNS)
#: Columns of the per-subject CSV.
SUBJECT_COLUMNS: tuple[str, ...] = ("subject", "compartment", "n_cases", *METRIC_COLUMNS)


def with_fold(columns: Sequence[str]) -> tuple[str, ...]:
    """``columns`` with ``fold`` after ``subject`` (the columns of a table whose cases have folds)."""
    columns = [c for c in columns if c != FOLD]
    at = columns.index("subject") + 1
    return (*columns[:at], FOLD, *columns[at:])


#: A label-map transform applied to predictions before evaluation, e.g. connected-component post-processing.
Postprocess = Callable[[np.ndarray], np.ndarray]


def evaluate_pair(pair: CasePair, postprocess: Postprocess | None = None) -> list[dict]:
    """Rows (one per compartment) of one case; reads and checks both files.

    The prediction is laid onto the reference's voxel grid first (same voxels stored with flipped or permuted
    axes are reordered; a shift, another spacing or a rotation is an error).

    Raises:
        InputError: unreadable or truncated files, labels outside 0-5, or grids that are not the same voxels.
    """
    pred, ref = read_label_map(pair.pred), read_label_map(pair.ref)
    pred_array = on_reference_grid(pred, ref)
    pred_array = pred_array if postprocess is None else postprocess(pred_array)
    rows = compartment_metrics(pred_array, ref.array, ref.spacing_zyx)
    return [{"case": pair.case, "subject": subject_of(pair.case), **row} for row in rows]


def _evaluate_or_error(pair: CasePair, postprocess: Postprocess | None) -> list[dict] | FilterNetError:
    try:
        return evaluate_pair(pair, postprocess)
    except FilterNetError as e:
        return e


def _parse_value(column: str, text: str):
    return text if column in ("case", "subject", "compartment", FOLD) else float(text)


def read_rows(csv_path: str | os.PathLike) -> list[dict]:
    """Rows of a CSV written by this module (numbers as floats, ``nan`` / ``inf`` included)."""
    with open(csv_path, newline="", encoding="utf-8") as f:
        return [{k: _parse_value(k, v) for k, v in row.items()} for row in csv.DictReader(f)]


def write_rows(rows: Sequence[dict], csv_path: str | os.PathLike, columns: Sequence[str]) -> Path:
    """Write ``rows`` (only ``columns``, in that order) atomically; floats in full precision."""
    with atomic_path(csv_path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(columns)
        for row in rows:
            writer.writerow([repr(v) if isinstance(v, float) else v for v in (row[c] for c in columns)])
    return Path(csv_path)


def _options(postprocess: Postprocess | None) -> dict:
    """What, besides the input files, decides a case's rows (recorded in the cache sidecar)."""
    name = None if postprocess is None else f"{getattr(postprocess, '__module__', '')}.{_name(postprocess)}"
    return {"rows": "filternet evaluate", "columns": list(CASE_COLUMNS), "postprocess": name}


def _name(fn) -> str:
    return getattr(fn, "__qualname__", None) or repr(fn)


def _reusable_rows(cache_csv: Path | None, pairs: Sequence[CasePair], options: dict, snaps: dict) -> dict:
    """Rows of ``cache_csv`` for the cases whose content identity (``snaps``) and options are those recorded."""
    from nnunet_filternet.utils.cache import reusable_keys

    if cache_csv is None:
        return {}
    recorded = reusable_keys(cache_csv, options)
    if not recorded:
        return {}
    try:
        old = read_rows(cache_csv)
    except (OSError, ValueError, KeyError, csv.Error):
        return {}
    by_case: dict[str, list[dict]] = {}
    for row in old:
        by_case.setdefault(row.get("case"), []).append(row)
    fresh = {}
    for pair in pairs:
        rows = by_case.get(pair.case, [])
        if rows and all(set(CASE_COLUMNS) <= set(r) for r in rows):
            if recorded.get(pair.case) == snaps[pair.case].key:
                fresh[pair.case] = rows
    return fresh


def evaluate_pairs(
    pairs: Sequence[CasePair],
    jobs: int | None = None,
    postprocess: Postprocess | None = None,
    cache_csv: str | os.PathLike | None = None,
    desc: str = "evaluate",
    fresh: bool = False,
    folds: Mapping[str, str] | None = None,
) -> list[dict]:
    """Per-case rows of all ``pairs`` (in order), computed over ``jobs`` processes.

    Args:
        pairs: cases to evaluate.
        jobs: worker processes (None: all available cores).
        postprocess: a picklable transform of each prediction's label array before evaluation.
        cache_csv: the per-case CSV of this evaluation: rows of an earlier run are reused for cases whose inputs
            and options are unchanged (module docstring), and the CSV is written with the result, then its
            sidecar recording the inputs.
        desc: progress bar label.
        fresh: recompute every case, ignoring ``cache_csv``'s earlier rows.
        folds: case -> the fold that predicted it: every row gets a ``fold`` (and ``cache_csv`` the column).

    Raises:
        FilterNetError: listing every case that could not be evaluated and why.
    """
    from nnunet_filternet.utils.cache import record_inputs, report_reuse, snapshot, warn_changed

    options = _options(postprocess)
    cache = Path(cache_csv) if cache_csv else None
    snaps = {p.case: snapshot([p.pred, p.ref]) for p in pairs} if cache is not None else {}
    cached = {} if fresh else _reusable_rows(cache, pairs, options, snaps)
    todo = [p for p in pairs if p.case not in cached]
    results = parallel_map(functools.partial(_evaluate_or_error, postprocess=postprocess), todo, jobs, desc)
    errors = [str(r) for r in results if isinstance(r, FilterNetError)]
    if errors:
        raise FilterNetError(f"{len(errors)} case(s) could not be evaluated: " + " | ".join(errors))
    computed = {p.case: rows for p, rows in zip(todo, results)}
    rows = [row for p in pairs for row in (cached.get(p.case) or computed[p.case])]
    columns = CASE_COLUMNS
    if folds is not None:
        rows = [{**row, FOLD: folds[row["case"]]} for row in rows]
        columns = with_fold(CASE_COLUMNS)
    else:
        rows = [{k: v for k, v in row.items() if k != FOLD} for row in rows]
    if cache is not None:
        write_rows(rows, cache, columns)
        for snap in snaps.values():
            warn_changed(desc, "its case", snap)
        record_inputs(cache, options, {case: snap.key for case, snap in snaps.items() if snap.holds()})
        report_reuse(desc, cache, len(pairs) - len(todo), len(pairs), "case")
    return rows


def _mean_over_cases(values: list[float]) -> float:
    """Mean ignoring NaN (compartment absent in that case); +inf propagates; all NaN -> NaN."""
    kept = [v for v in values if not math.isnan(v)]
    return float(np.mean(kept)) if kept else float("nan")


def per_subject(rows: Sequence[dict], columns: Sequence[str] = METRIC_COLUMNS) -> list[dict]:
    """Average the ``columns`` of per-case rows over each subject's cases (module docstring: NaN / inf).

    Rows with a ``fold`` pass it on (one per subject).

    Raises:
        FilterNetError: a subject whose cases have different folds, or rows with and without a fold.
    """
    folds = fold_by_subject(rows)
    groups: dict[tuple[str, str], list[dict]] = {}
    for row in rows:
        groups.setdefault((row["subject"], row["compartment"]), []).append(row)
    out = []
    for (subject, compartment), group in groups.items():
        summary = {"subject": subject, "compartment": compartment, "n_cases": len(group)}
        if folds is not None:
            summary[FOLD] = folds[subject]
        for column in columns:
            summary[column] = _mean_over_cases([float(r[column]) for r in group])
        out.append(summary)
    return out


def per_subject_csv_path(out_csv: str | os.PathLike) -> Path:
    """``metrics.csv`` -> ``metrics_per_subject.csv`` beside it."""
    out_csv = Path(out_csv)
    stem = out_csv.name[: -len(".csv")] if out_csv.name.endswith(".csv") else out_csv.name
    return out_csv.with_name(f"{stem}_per_subject.csv")


def evaluate_folders(
    pred_dir: str | os.PathLike,
    ref_dir: str | os.PathLike,
    out_csv: str | os.PathLike,
    jobs: int | None = None,
    fresh: bool = False,
    splits: str | os.PathLike | None = None,
) -> tuple[Path, Path]:
    """Compare every label map of ``pred_dir`` with the same-named one of ``ref_dir``.

    Args:
        pred_dir: predicted label maps (leg cases or restored full scans).
        ref_dir: reference label maps with the same file names.
        out_csv: per-case CSV (:data:`CASE_COLUMNS`); the per-subject CSV (:data:`SUBJECT_COLUMNS`) is
            written beside it as ``<stem>_per_subject.csv``.
        jobs: worker processes (None: all available cores).
        fresh: recompute every case (otherwise unchanged cases of an earlier run of the same command are reused).
        splits: the dataset's ``splits_final.json``: both CSVs gain the ``fold`` that predicted each case.

    Returns:
        (per-case CSV, per-subject CSV).

    Raises:
        FilterNetError: missing cases on either side, an output that cannot be written or is an input, cases
            that cannot be evaluated (all listed), or a splits file without a single fold for every case.
    """
    from nnunet_filternet.utils.atomic import check_writable
    from nnunet_filternet.utils.cache import sidecar_path
    from nnunet_filternet.utils.output_guard import refuse_inputs_as_outputs
    from nnunet_filternet.utils.parallel import check_jobs

    check_jobs(jobs)
    for path in (out_csv, per_subject_csv_path(out_csv)):
        check_writable(path, "metrics table")
    refuse_inputs_as_outputs(
        {pred_dir: "predicted label maps (--pred)", ref_dir: "ground-truth label maps (--labels)"},
        files=[out_csv, per_subject_csv_path(out_csv), sidecar_path(out_csv)],
    )
    pairs = match_cases(pred_dir, ref_dir, require_all_refs=True)
    folds = None
    if splits is not None:
        from nnunet_filternet.metrics.folds import case_folds

        folds = case_folds(splits, [p.case for p in pairs])
    rows = evaluate_pairs(pairs, jobs=jobs, cache_csv=out_csv, fresh=fresh, folds=folds)
    case_csv = Path(out_csv)
    columns = SUBJECT_COLUMNS if folds is None else with_fold(SUBJECT_COLUMNS)
    subject_csv = write_rows(per_subject(rows), per_subject_csv_path(out_csv), columns)
    return case_csv, subject_csv
