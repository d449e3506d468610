"""One scan -> its leg files and a ledger entry (runs in a worker process); skipped when already done.

Each finished scan leaves a ledger file ``.filternet/scans/<subject>.json`` beside ``legs.json``: its
records and a stamp (hash of the input files' content identity, taken before they are read
(:func:`nnunet_filternet.utils.cache.snapshot`: path, size, SHA-256), of the settings and of the program
version). A scan whose ledger stamp matches and whose outputs exist is not converted again; the outputs of an
outdated conversion are removed first. Every file is written atomically, the ledger last, and only when the
inputs are still the files that were hashed (a scan replaced during the run is converted again next time).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from nnunet_filternet.dataset_conversion.records import SCHEMA, LegRecord
from nnunet_filternet.errors import FilterNetError, InputError

if TYPE_CHECKING:
    from nnunet_filternet.dataset_conversion.legs_of_scan import ConversionSettings

LEDGER = Path(".filternet") / "scans"


@dataclass(frozen=True)
class ScanJob:
    """Everything one worker needs to convert one scan.

    Attributes:
        subject: Scan name; case ids are ``<subject>_<L|R>``.
        image, label: Input scan and label map (None in inference mode), absolute paths.
        out_dir: Folder of legs.json (dataset folder or inference output).
        image_folder, label_folder: Sub-folders of ``out_dir`` for leg images / labels ("" = ``out_dir``).
        settings: Conversion parameters.
        threads: SimpleITK threads for this worker.
        keep_going: Report bad input in the outcome instead of raising.
    """

    subject: str
    image: Path
    label: Path | None
    out_dir: Path
    image_folder: str
    label_folder: str | None
    settings: ConversionSettings
    threads: int
    keep_going: bool

    def image_name(self, case: str) -> str:
        return str(Path(self.image_folder) / f"{case}_0000.nii.gz")

    def label_name(self, case: str) -> str:
        return str(Path(self.label_folder or "") / f"{case}.nii.gz")


@dataclass
class ScanOutcome:
    """What a worker reports: the scan's records, or the reason it failed."""

    subject: str
    source: str
    records: list[dict] = field(default_factory=list)
    error: str | None = None
    skipped: bool = False


def input_stamp(job: ScanJob):
    """(stamp, snapshot): hash of the inputs' content identity, the settings, the schema and the program version.

    The snapshot is taken before the scan is read; :meth:`~nnunet_filternet.utils.cache.Snapshot.holds` says
    afterwards whether the files are still those.
    """
    from nnunet_filternet.utils.cache import program, snapshot

    snap = snapshot(p for p in (job.image, job.label) if p is not None)
    parts = [snap.key, repr(job.settings), SCHEMA, program()]
    return hashlib.sha256(json.dumps(parts, default=str).encode()).hexdigest(), snap


def _finished(job: ScanJob, stamp: str) -> list[dict] | None:
    """The scan's records if an earlier run converted it with the same inputs and settings."""
    ledger = job.out_dir / LEDGER / f"{job.subject}.json"
    try:
        data = json.loads(ledger.read_text(encoding="utf-8"))
    except (OSError, ValueError):  # missing, not UTF-8 or not JSON: convert again
        return None
    if not isinstance(data, dict) or data.get("stamp") != stamp or not isinstance(data.get("records"), list):
        return None
    outputs = [r["leg_image"] for r in data["records"]] + [r["leg_label"] for r in data["records"] if r["leg_label"]]
    if not all((job.out_dir / o).is_file() for o in outputs):
        return None
    return data["records"]


def convert_scan(job: ScanJob) -> ScanOutcome:
    """Convert one scan, write its leg images (and labels) and its ledger; skip it if already done.

    Bad input gives an outcome with ``error`` set (or raises the :class:`InputError` naming the scan or label map
    unless ``job.keep_going``: legs that cannot be found, a constant scan, labels outside the legs, unreadable
    files), never a half-written case: every file is written atomically and the ledger last.
    """
    import SimpleITK as sitk

    from nnunet_filternet.dataset_conversion.legs_of_scan import legs_of_scan
    from nnunet_filternet.dataset_conversion.readers import geometry_of, read_label, read_scan
    from nnunet_filternet.utils.atomic import write_image, write_json

    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(job.threads)
    try:
        stamp, snap = input_stamp(job)
    except InputError as e:
        if not job.keep_going:
            raise
        return ScanOutcome(job.subject, str(job.image), error=str(e))
    done = _finished(job, stamp)
    if done is not None:
        return ScanOutcome(job.subject, str(job.image), records=done, skipped=True)
    remove_outputs(job.out_dir, job.out_dir / LEDGER / f"{job.subject}.json")  # an earlier, outdated conversion
    try:
        image = read_scan(job.image)
        label = read_label(job.label, image, job.image) if job.label is not None else None
        result = legs_of_scan(image, label, job.settings)
    except (FilterNetError, RuntimeError) as e:
        error = scan_error(job, e)
        if not job.keep_going:
            raise error from None
        return ScanOutcome(job.subject, str(job.image), error=str(error))
    records = []
    for leg in result.legs:
        case = f"{job.subject}_{leg.side}"
        write_image(leg.image, job.out_dir / job.image_name(case))
        if leg.label is not None:
            write_image(leg.label, job.out_dir / job.label_name(case))
        record = LegRecord(
            case=case,
            subject=job.subject,
            side=leg.side,
            side_from=leg.box.side_from,
            source=str(job.image),
            label_source=None if job.label is None else str(job.label),
            leg_image=job.image_name(case),
            leg_label=None if leg.label is None else job.label_name(case),
            crop_index=leg.crop_index,
            crop_size=leg.crop_size,
            patient_axes=list(result.axes.axes),
            axis_flips=list(result.axes.flips),
            mirrored=leg.mirrored,
            leg_size=list(leg.image.GetSize()),
            geometry=geometry_of(image),
            correction=result.correction,
            labelled=leg.labelled,
        )
        records.append(record.as_dict())
    if snap.holds():  # otherwise no ledger: the scan changed while it was converted, so convert it again next time
        write_json(job.out_dir / LEDGER / f"{job.subject}.json", {"stamp": stamp, "records": records})
    return ScanOutcome(job.subject, str(job.image), records=records)


def scan_error(job: ScanJob, error: Exception) -> InputError:
    """The :class:`InputError` naming the input a failed conversion is about: the label map for labels that do
    not fit the legs, else the scan (its legs not found, a constant scan, a reader's complaint)."""
    from nnunet_filternet.dataset_conversion.legs_of_scan import LabelMapError

    if isinstance(error, InputError):
        return error
    if isinstance(error, LabelMapError):
        return InputError(job.label, f"{error} (scan {job.image.name})")
    return InputError(job.image, str(error).strip().splitlines()[-1])


def remove_outputs(out_dir: Path, ledger: Path) -> None:
    """Delete the files an earlier conversion listed in ``ledger``, and the ledger (our outputs only)."""
    if not ledger.is_file():
        return
    try:
        records = json.loads(ledger.read_text(encoding="utf-8"))["records"]
    except (OSError, ValueError, KeyError, TypeError):
        records = []
    for r in records if isinstance(records, list) else []:
        if not isinstance(r, dict):
            continue
        for rel in (r.get("leg_image"), r.get("leg_label")):
            target = (out_dir / rel).resolve() if isinstance(rel, str) and rel else None
            if target is not None and out_dir.resolve() in target.parents and target.is_file():
                target.unlink()  # only files inside our output folder, whatever a ledger says
    ledger.unlink()
