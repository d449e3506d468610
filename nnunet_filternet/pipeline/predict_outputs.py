"""What ``filternet predict`` puts into ``--out``, and only that: label maps, ``biomarkers.csv``, ``qc.csv`` and
the figures of flagged scans (``<subject>_qc.png``), ``failed.csv``; and the record of every scan it finished.

Per scan, ``--out`` holds ``<subject>.nii.gz`` and, when flagged, ``<subject>_qc.png``; the scan's record
``.legs/done/<subject>.json`` says which files of ``--out`` are the scan's and, once the scan is finished, what
they were made from and the scan's rows of the cohort's tables::

    {"schema": ..., "subject": "sub-007", "files": ["sub-007.nii.gz"],
     "key": "<sha256 of the scan's content, the model's key, options, program>" | null (not finished),
     "outputs": {"sub-007.nii.gz": [size, sha256]}, "failed": null | [step, reason],
     "biomarkers": {"columns": [...], "rows": [[...], ...]} | null,
     "qc": {"columns": [...], "rows": [...], "score": 0.4, "data_score": 2.0, "reasons": [...]} | null,
     "notes": [...]}

Only the run that predicts a scan writes its record and files, so parts of a cohort (disjoint sets of scans)
run side by side into one ``--out`` without sharing a file. The cohort's tables (``biomarkers.csv`` with its
colour tables, ``qc.csv``, ``failed.csv``) are put together from the records by :meth:`OutputFolder.merge`
(one writer: the merge), scans in name order, and listed in ``.legs/published.json``.

The output folder may hold the user's own files. A run

- refuses, before any work, to write over a file of one of our names that predict did not write (listed in
  no record and not in ``published.json``; exit 2, naming it);
- lists a scan's files in its record before writing them, and removes its earlier files that it does not
  produce again (a scan that fails now keeps no earlier result); the merge removes the files and records of
  scans that left the images folder;
- writes ``failed.csv`` (columns ``scan, step, reason``; only the header when every scan went through).
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
from collections.abc import Collection, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from nnunet_filternet.errors import InputError

WORK = ".legs"
MANIFEST = "published.json"
#: folder in WORK of the scans' records
DONE = "done"
#: folder in WORK of the parts' work folders (``<K>-of-<N>``)
PARTS = "parts"
BIOMARKERS = "biomarkers.csv"
FAILED = "failed.csv"
QC_CSV = "qc.csv"
#: folder in a part's work folder of the folds' agreement per leg (:class:`nnunet_filternet.qc.predictor.
#: AgreementPredictor`)
QC_RECORDS = "qc"
FAILED_COLUMNS = ("scan", "step", "reason")
RECORD_SCHEMA = "filternet-predicted-scan/2"
#: how many names of scans without a finished prediction the merge keeps to tell
MISSING_SHOWN = 10


def scan_files(subject: str) -> list[str]:
    """Names (in ``--out``) of the files of one scan: its label map and the figure of a flagged scan."""
    return [f"{subject}.nii.gz", f"{subject}_qc.png"]


def cohort_files() -> list[str]:
    """Names (in ``--out``) of the cohort's files: the biomarker table (its sidecar, colour tables), qc, failed."""
    from nnunet_filternet.quantify.biomarkers import output_files

    return [p.name for p in output_files(Path(BIOMARKERS))] + [QC_CSV, FAILED]


def planned_files(subjects: Iterable[str]) -> list[str]:
    """Names (in ``--out``) of every file a run over ``subjects`` (and the merge) may write."""
    return [name for s in subjects for name in scan_files(s)] + cohort_files()


def subject_of(name: str) -> str | None:
    """The scan a file name of :func:`scan_files` belongs to (None for another name)."""
    for suffix in ("_qc.png", ".nii.gz"):
        if name.endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)]
    return None


def part_name(part_id: int, num_parts: int) -> str:
    """``<K>-of-<N>``: a part's work folder in ``.legs/parts``."""
    return f"{part_id}-of-{num_parts}"


@dataclass
class _Verdict:
    """What the summary of the quality check needs of one scan (:func:`nnunet_filternet.qc.report.summary`)."""

    subject: str
    score: float
    reasons: list[str]
    data_score: float = 0.0

    @property
    def review(self) -> bool:
        return bool(self.reasons)


_NOT_FLAGGED = _Verdict("", 0.0, [])


@dataclass
class Tally:
    """Counts of the finished scans of a run or a merge; per scan only what is told (failures, flagged scans).

    Attributes:
        scans: scans counted; label_maps: of them, with a label map in ``--out``.
        failed: scan -> (step, reason). flagged: the quality check's flagged scans. checked: scans with qc rows.
        missing: how many scans have no finished prediction; missing_names: the first :data:`MISSING_SHOWN`.
        notes: the scans' notes (one-leg scans).
    """

    scans: int = 0
    label_maps: int = 0
    failed: dict[str, tuple[str, str]] = field(default_factory=dict)
    flagged: list[_Verdict] = field(default_factory=list)
    checked: int = 0
    missing: int = 0
    missing_names: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, subject: str, record: dict | None) -> None:
        """Count a scan's finished record (None: not finished)."""
        self.scans += 1
        if record is None:
            self.missing += 1
            if len(self.missing_names) < MISSING_SHOWN:
                self.missing_names.append(subject)
            return
        self.label_maps += f"{subject}.nii.gz" in record["outputs"]
        if record.get("failed"):
            self.failed[subject] = tuple(record["failed"])
        self.notes += record.get("notes") or []
        qc = record.get("qc")
        if qc:
            self.checked += 1
            if qc["reasons"]:
                self.flagged.append(_Verdict(subject, float(qc["score"]), list(qc["reasons"]), float(qc["data_score"])))

    def qc_summary(self) -> str:
        """The quality check's summary over the checked scans (``3 of 40 scans flagged for review: ...``)."""
        from nnunet_filternet.qc.report import summary

        return summary(self.flagged + [_NOT_FLAGGED] * (self.checked - len(self.flagged)))


class _Table:
    """A CSV of the cohort written row by row into a temporary file, moved into place when the merge ends."""

    def __init__(self, stack: contextlib.ExitStack, target: Path, lineterminator: str = "\r\n"):
        self.stack, self.target, self.lineterminator = stack, target, lineterminator
        self.columns: list[str] | None = None
        self.writer = None

    def fits(self, columns: list[str]) -> bool:
        return self.columns is None or self.columns == list(columns)

    def write(self, columns: list[str], rows: Iterable[list]) -> None:
        """Append rows (the header before the first); ``columns`` must :meth:`fit`."""
        from nnunet_filternet.utils.atomic import atomic_path

        if self.writer is None:
            tmp = self.stack.enter_context(atomic_path(self.target))
            f = self.stack.enter_context(open(tmp, "w", newline="", encoding="utf-8"))
            self.writer = csv.writer(f, lineterminator=self.lineterminator)
            self.writer.writerow(columns)
            self.columns = list(columns)
        self.writer.writerows(rows)


class OutputFolder:
    """``--out`` of ``filternet predict``: the scans' records and the list of the cohort files (module docstring)."""

    def __init__(self, out: str | os.PathLike):
        self.out = Path(out)
        self.manifest = self.out / WORK / MANIFEST
        self.done = self.out / WORK / DONE
        self.ours = self._read()

    # ---- the cohort's files ----

    def _read(self) -> set[str]:
        try:
            files = json.loads(self.manifest.read_text(encoding="utf-8"))["files"]
        except (OSError, ValueError, KeyError, TypeError):
            return set()
        return {str(f) for f in files} if isinstance(files, list) else set()

    def _write(self, names: set[str]) -> None:
        from nnunet_filternet.utils.atomic import write_json

        write_json(self.manifest, {"files": sorted(names)})
        self.ours = set(names)

    def is_ours(self, name: str) -> bool:
        """Whether predict wrote (or listed before writing) the file ``name`` of ``--out``."""
        subject = subject_of(name)
        return name in self.ours or (subject is not None and name in self.files_of(subject))

    def refuse_foreign(self, names: Iterable[str]) -> None:
        """Raise if a file we would write exists and was not written by predict.

        Raises:
            InputError: naming the file.
        """
        for name in names:
            path = self.out / name
            if os.path.lexists(path) and not self.is_ours(name):
                raise InputError(
                    path, f"exists and was not written by `filternet predict` (listed in no record of {self.done} "
                    f"nor in {self.manifest}); move it or choose another --out"
                )  # fmt: skip

    def claim(self, names: Iterable[str]) -> None:
        """List ``names`` as ours before they are written."""
        self._write(self.ours | set(names))

    # ---- one scan ----

    def record_path(self, subject: str) -> Path:
        return self.done / f"{subject}.json"

    def record(self, subject: str) -> dict | None:
        """The scan's record as written (None when there is none or it cannot be read)."""
        try:
            data = json.loads(self.record_path(subject).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        ok = isinstance(data, dict) and data.get("schema") == RECORD_SCHEMA and isinstance(data.get("files"), list)
        return data if ok else None

    def files_of(self, subject: str) -> set[str]:
        """The files of ``--out`` that are the scan's: listed in its record, or by an earlier run in the list."""
        record = self.record(subject)
        listed = {str(f) for f in record["files"]} if record else set()
        return listed | (self.ours & set(scan_files(subject)))

    def finished(self, subject: str, keys: Collection[str]) -> dict | None:
        """The scan's record if it was finished from what one of ``keys`` identifies and its files are as written."""
        from nnunet_filternet.utils.cache import sha256_of

        record = self.record(subject)
        if record is None or record.get("key") not in keys or not isinstance(record.get("outputs"), dict):
            return None
        for name, identity in record["outputs"].items():
            path = self.out / name
            try:
                if not path.is_file() or [path.stat().st_size, sha256_of(path)] != identity:
                    return None
            except OSError:
                return None
        return record

    def publish_scan(self, subject: str, staged: dict[str, Path], finished: dict) -> dict:
        """Put the scan's staged files (name in ``--out`` -> file) into ``--out``, remove its earlier files that
        are not among them, and write its record (``finished``: key, failed, biomarkers, qc, notes).

        The files are listed in the record before they are written; the record gets the key last.

        Returns:
            The record written.
        """
        from nnunet_filternet.utils.atomic import atomic_path, write_json
        from nnunet_filternet.utils.cache import sha256_of

        earlier = self.files_of(subject)
        write_json(self.record_path(subject), self._record(subject, earlier | set(staged)))
        outputs = {}
        for name, src in sorted(staged.items()):
            target = self.out / name
            with atomic_path(target) as tmp:
                tmp.unlink()
                _link_or_copy(src, tmp)
            outputs[name] = [target.stat().st_size, sha256_of(target)]
        for name in sorted(earlier - set(staged)):
            (self.out / name).unlink(missing_ok=True)
        record = {**self._record(subject, set(staged)), **finished, "outputs": outputs}
        write_json(self.record_path(subject), record, indent=None)
        return record

    @staticmethod
    def _record(subject: str, files: set[str]) -> dict:
        return {"schema": RECORD_SCHEMA, "subject": subject, "files": sorted(files), "key": None}

    def drop_scan(self, subject: str) -> None:
        """Remove the scan's files from ``--out`` and its record (a scan that left the images folder)."""
        for name in sorted(self.files_of(subject)):
            (self.out / name).unlink(missing_ok=True)
        self.record_path(subject).unlink(missing_ok=True)

    # ---- the cohort ----

    def merge(self, keys: Iterable[tuple[str, Collection[str], str | None]]) -> Tally:
        """Write the cohort's tables from the finished records of the scans ``keys`` yields, in that order.

        Args:
            keys: (subject, the keys a record of the scan as it is now may have, None or the reason the scan
                cannot be read) per scan of the images folder, in name order. A scan whose record was finished
                from another key, or whose files changed since, is counted missing (its part has to run again).

        Returns:
            The tally of the scans. ``biomarkers.csv`` and ``qc.csv`` are written when any scan has rows (and
            removed otherwise), ``failed.csv`` always; records and files of scans not in ``keys`` are removed.
        """
        from nnunet_filternet.quantify.colour_table import write_colour_tables

        tables = [p for p in cohort_files() if p not in (QC_CSV, FAILED)]  # the biomarker table and its files
        self.claim(cohort_files())
        tally, seen = Tally(), set()
        with contextlib.ExitStack() as stack:
            biomarkers, qc = _Table(stack, self.out / BIOMARKERS), _Table(stack, self.out / QC_CSV)
            failed = _Table(stack, self.out / FAILED, "\n")
            failed.write(list(FAILED_COLUMNS), [])
            for subject, accepted, unreadable in keys:
                seen.add(subject)
                if unreadable is not None:
                    tally.add(subject, {"outputs": {}, "failed": ["convert", unreadable]})
                    failed.write(list(FAILED_COLUMNS), [[subject, "convert", unreadable]])
                    continue
                record = self.finished(subject, accepted)
                parts = [(t, (record or {}).get(n)) for t, n in ((biomarkers, "biomarkers"), (qc, "qc"))]
                if record is None or not all(p is None or t.fits(p["columns"]) for t, p in parts):
                    tally.add(subject, None)
                    continue
                tally.add(subject, record)
                for table, part in parts:
                    if part is not None:
                        table.write(part["columns"], part["rows"])
                if record.get("failed"):
                    failed.write(list(FAILED_COLUMNS), [[subject, *record["failed"]]])
            kept = {FAILED} | (set(tables) if biomarkers.writer else set()) | ({QC_CSV} if qc.writer else set())
        if biomarkers.writer:
            write_colour_tables(self.out)
        self._forget_others(seen, kept)
        return tally

    def _forget_others(self, subjects: set[str], kept: set[str]) -> None:
        """Remove our cohort files not ``kept``, the files and records of scans not in ``subjects``, and any file
        an earlier version listed in ``published.json`` that no record claims."""
        for name in sorted(set(cohort_files()) - kept):
            if name in self.ours:
                (self.out / name).unlink(missing_ok=True)
        if self.done.is_dir():
            for path in sorted(self.done.glob("*.json")):
                if path.stem not in subjects:
                    self.drop_scan(path.stem)
        for name in sorted(self.ours - set(cohort_files())):
            subject = subject_of(name)
            record = self.record(subject) if subject in subjects else None
            if record is None or name not in record["files"]:
                (self.out / name).unlink(missing_ok=True)
        self._write(self.ours & kept)


def rows_by_subject(table: Path | None) -> dict[str, dict]:
    """A CSV whose first column is the subject -> ``{subject: {"columns": header, "rows": [row, ...]}}``."""
    if table is None or not table.is_file():
        return {}
    with open(table, newline="", encoding="utf-8") as f:
        reader = csv.reader(f)
        columns = next(reader, None)
        out: dict[str, dict] = {}
        for row in reader:
            out.setdefault(row[0], {"columns": columns, "rows": []})["rows"].append(row)
    return out


def chunks(items: list, size: int) -> Iterator[list]:
    """``items`` in consecutive slices of ``size`` (the last one shorter)."""
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _link_or_copy(src: Path, dst: Path) -> None:
    import shutil

    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)
