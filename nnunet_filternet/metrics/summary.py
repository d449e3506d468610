"""A short Markdown summary of per-subject metrics: mean +- std over subjects per compartment."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from nnunet_filternet.labels import COMPARTMENTS


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
