"""Check every prediction of a ``filternet predict`` run: ``qc.csv``, figures of the flagged scans, a summary.

One call after the biomarkers are written (:func:`check_predictions`); what is measured is in :mod:`.signals`,
how it is judged in :mod:`.rules`, what is written in :mod:`.report`, where the training statistics come from
in :mod:`.reference`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from nnunet_filternet.errors import FilterNetError
from nnunet_filternet.qc.rules import ScanVerdict, Thresholds, judge_scan


@dataclass
class QCResult:
    """What :func:`check_predictions` wrote: the CSV, the figures, the verdicts, the summary and a note."""

    csv: Path
    figures: list[Path]
    verdicts: list[ScanVerdict]
    summary: str
    reference_note: str


@dataclass(frozen=True)
class _Inputs:
    scans: Path
    labels: Path
    leg_predictions: Path
    fold_folder: Path | None
    modes: dict
    reference: dict | None
    thresholds: Thresholds


def _judge(item: tuple[str, list], inputs: _Inputs) -> ScanVerdict | FilterNetError:
    from nnunet_filternet.qc.signals import scan_signals

    subject, records = item
    try:
        signals = scan_signals(
            subject, records, inputs.scans / f"{subject}.nii.gz", inputs.labels / f"{subject}.nii.gz",
            inputs.leg_predictions, inputs.fold_folder, inputs.modes,
        )  # fmt: skip
    except FilterNetError as e:
        return e
    return judge_scan(signals, inputs.reference, inputs.thresholds)


def check_predictions(
    legs_json: str | os.PathLike,
    leg_predictions: str | os.PathLike,
    scans: str | os.PathLike,
    labels: str | os.PathLike,
    out_csv: str | os.PathLike,
    model_folder: str | os.PathLike | None = None,
    fold_folder: str | os.PathLike | None = None,
    biomarkers_csv: str | os.PathLike | None = None,
    thresholds: Thresholds | None = None,
    jobs: int | None = None,
    figures: bool = True,
) -> QCResult:
    """Judge every restored scan of ``legs.json``; write ``out_csv`` and ``<subject>_qc.png`` of the flagged ones.

    Args:
        legs_json: the conversion's records (which legs of which scans were found).
        leg_predictions: folder of leg predictions ``<subject>_<side>.nii.gz``.
        scans: folder of the scans as ``<subject>.nii.gz``; labels: their restored label maps (same names).
        out_csv: ``qc.csv`` to write (figures go beside it).
        model_folder: the model's folder (training statistics, :func:`.reference.reference_for_model`).
        fold_folder: the records of :class:`~.predictor.AgreementPredictor`, or None.
        biomarkers_csv: ``biomarkers.csv`` of the same scans (muscle and fat modes), or None.
        thresholds: review thresholds (default: :class:`~.rules.Thresholds`'s).
        jobs: worker processes (None: all cores).
        figures: write the figures of flagged scans.

    Raises:
        FilterNetError: files that cannot be read (all scans named), no scan restored.
    """
    from nnunet_filternet.dataset_conversion.records import by_subject, load_records
    from nnunet_filternet.qc.reference import reference_for_model
    from nnunet_filternet.qc.report import summary, write_figure, write_qc_csv
    from nnunet_filternet.qc.signals import read_modes
    from nnunet_filternet.utils.atomic import check_writable
    from nnunet_filternet.utils.parallel import parallel_map

    out_csv = check_writable(out_csv, "quality table")
    labels = Path(labels)
    subjects = {s: r for s, r in by_subject(load_records(Path(legs_json))).items() if (labels / f"{s}.nii.gz").exists()}
    if not subjects:
        raise FilterNetError(f"quality check: no restored label map in {labels} for the scans of {legs_json}")
    if model_folder is None:
        reference, note = None, "no model folder given: compartment sizes and asymmetry not judged"
    else:
        reference, note = reference_for_model(model_folder)
    inputs = _Inputs(
        Path(scans), labels, Path(leg_predictions), None if fold_folder is None else Path(fold_folder),
        read_modes(biomarkers_csv), reference, thresholds or Thresholds(),
    )  # fmt: skip
    results = parallel_map(partial(_judge, inputs=inputs), list(subjects.items()), jobs, desc="qc", unit="scan")
    errors = [str(r) for r in results if isinstance(r, FilterNetError)]
    if errors:
        raise FilterNetError(f"quality check: {len(errors)} scan(s) could not be read: " + " | ".join(errors))
    write_qc_csv(results, out_csv)
    pngs = []
    if figures:
        for v in results:
            if v.review:
                png = out_csv.parent / f"{v.subject}_qc.png"
                pngs.append(write_figure(v, inputs.scans / f"{v.subject}.nii.gz", labels / f"{v.subject}.nii.gz", png))
    return QCResult(out_csv, pngs, results, summary(results), note)
