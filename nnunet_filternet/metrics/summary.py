"""Per-subject metrics reshaped and summarised: one metric per subject, mean +- std over subjects, a Markdown table.

Used by ``filternet evaluate`` (its printed summary), ``filternet compare`` and ``filternet report``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from nnunet_filternet.errors import FilterNetError
from nnunet_filternet.labels import COMPARTMENTS

#: Row name of the per-subject mean over the compartments.
MEAN_ROW = "mean"
#: Column of a metrics table naming the fold whose network predicted the case (optional).
FOLD = "fold"


def metric_by_subject(rows: Sequence[dict], compartment: str, column: str) -> dict[str, float]:
    """subject -> metric of one compartment; ``compartment == MEAN_ROW`` averages the compartments per subject.

    The mean over compartments leaves NaN (absent compartment) out and keeps +inf.
    """
    if compartment != MEAN_ROW:
        return {r["subject"]: float(r[column]) for r in rows if r["compartment"] == compartment}
    per_subject: dict[str, list[float]] = {}
    for r in rows:
        per_subject.setdefault(r["subject"], []).append(float(r[column]))
    out = {}
    for subject, values in per_subject.items():
        kept = [v for v in values if not math.isnan(v)]
        out[subject] = float(np.mean(kept)) if kept else float("nan")
    return out


def fold_by_subject(rows: Sequence[dict]) -> dict[str, str] | None:
    """subject -> its fold, from the ``fold`` of per-subject rows; None when the rows carry no fold.

    Raises:
        FilterNetError: a subject with rows in two folds, or rows with and without a fold.
    """
    if not any(FOLD in r for r in rows):
        return None
    lacking = sorted({r["subject"] for r in rows if FOLD not in r})
    if lacking:
        raise FilterNetError(f"rows of subject(s) {', '.join(lacking)} have no fold while others have one")
    folds: dict[str, str] = {}
    for r in rows:
        fold = folds.setdefault(r["subject"], r[FOLD])
        if fold != r[FOLD]:
            raise FilterNetError(
                f"subject {r['subject']} has rows in fold {fold} and in fold {r[FOLD]}; expected one fold per subject"
            )
    return folds


def mean_std(values: Sequence[float]) -> tuple[float, float, int]:
    """Mean, sample standard deviation (ddof 1; NaN for one value) and count, NaN values left out.

    +inf values are kept, so one missed compartment makes the mean +inf (and the std NaN).
    """
    kept = np.asarray([v for v in values if not math.isnan(v)], dtype=np.float64)
    if kept.size == 0:
        return float("nan"), float("nan"), 0
    std = float(np.std(kept, ddof=1)) if kept.size > 1 and np.all(np.isfinite(kept)) else float("nan")
    return float(np.mean(kept)), std, int(kept.size)


def format_mean_std(mean: float, std: float, digits: int = 2) -> str:
    """``"91.29 +- 10.11"``; ``"inf"`` / ``"n/a"`` for infinite / missing values."""
    if math.isnan(mean):
        return "n/a"
    if math.isinf(mean):
        return "inf"
    text = f"{mean:.{digits}f}"
    return text if math.isnan(std) else f"{text} ± {std:.{digits}f}"


def summary_markdown(subject_rows: Sequence[dict]) -> str:
    """Markdown table: one row per compartment, DSC (%) and ASSD / HD95 / directed ASD (mm) over subjects."""
    columns = [("dice", 100.0, "DSC (%)"), ("assd_mm", 1.0, "ASSD (mm)"), ("hd95_mm", 1.0, "HD95 (mm)")]
    columns.append(("asd_pred_to_ref_mm", 1.0, "ASD pred→ref (mm)"))
    lines = ["| compartment | n | " + " | ".join(c[2] for c in columns) + " |", "|---" * (len(columns) + 2) + "|"]
    present = [c for c in COMPARTMENTS if any(r["compartment"] == c for r in subject_rows)]
    extra = sorted({r["compartment"] for r in subject_rows} - set(COMPARTMENTS))
    for compartment in present + extra:
        rows = [r for r in subject_rows if r["compartment"] == compartment]
        cells = []
        for column, scale, _ in columns:
            mean, std, n = mean_std([float(r[column]) * scale for r in rows])
            cells.append(format_mean_std(mean, std))
        lines.append(f"| {compartment} | {len(rows)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
