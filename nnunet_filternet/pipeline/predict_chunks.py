"""The scans of one ``filternet predict`` run (a part of a cohort), a chunk at a time, each scan finished for good.

A chunk of scans goes through conversion (:func:`nnunet_filternet.dataset_conversion.convert.inference_conversion`) ->
nnU-Net (:mod:`.leg_predictions`) -> restore -> biomarkers -> quality check inside the part's work folder
``<out>/.legs/parts/<K>-of-<N>``; then each scan's files are put into ``--out`` and its record written
(:meth:`~.predict_outputs.OutputFolder.publish_scan`), and nothing of the scan is kept in memory. The next
chunk replaces the work of the last one (the conversion and nnU-Net drop the cases of other scans), so memory
and the work folder grow with the chunk, not with the cohort.

A scan is skipped when its record was finished from the same key (:func:`scan_key`: the scan's content taken
when read, the model's key with the device and options, the quality check's training statistics, the record's
schema; the program version is in the model's key) and its files in ``--out`` are as written. The chunks are
fixed slices of the part's scans, so a run killed inside a chunk meets the same chunk again and nnU-Net's
finished leg predictions of it are reused (:func:`.leg_predictions.keep_reusable_predictions`).
"""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from nnunet_filternet.errors import FilterNetError, InputError
from nnunet_filternet.pipeline.predict_outputs import (
    BIOMARKERS,
    QC_CSV,
    QC_RECORDS,
    OutputFolder,
    Tally,
    chunks,
    rows_by_subject,
)


@dataclass(frozen=True)
class Model:
    """A checked model and the keys its predictions are recorded under.

    Attributes:
        folder, folds, checkpoint, disable_tta: what nnU-Net loads.
        device: where this run predicts ("" for a merge, which predicts nothing).
        key: :func:`.leg_predictions.model_key` on ``device`` (the leg predictions' ledger).
        snap: snapshot of the model's files, taken before nnU-Net reads them.
        run_keys: device -> the key of a scan record: the model's key on that device, the quality check's
            training statistics and the record schema.
        reference_note: where the quality check's training statistics come from.
    """

    folder: Path
    folds: list[int]
    checkpoint: str
    disable_tta: bool
    device: str
    key: str
    snap: object
    run_keys: dict[str, str]
    reference_note: str


def scan_key(scan: Path, run_key: str):
    """(key of the scan's record, snapshot of the scan): :func:`record_key` of the scan's content now.

    Raises:
        InputError: the scan cannot be read, or changes while it is read.
    """
    from nnunet_filternet.utils.cache import snapshot

    snap = snapshot([scan])
    return record_key(snap, run_key), snap


def record_key(snap, run_key: str) -> str:
    """The key of a scan's record: sha256 of the scan's content identity (``snap.key``) and ``run_key``."""
    return hashlib.sha256(json.dumps([snap.key, run_key]).encode()).hexdigest()


@dataclass
class PartRun:
    """One run over some scans of ``images`` (module docstring); :meth:`predict` does it.

    Attributes:
        images: the images folder; scans: subject -> scan of every scan in it.
        work: the part's work folder; folder: ``--out``.
        model, predictor: the model and nnU-Net's predictor of it.
        jobs: worker processes for conversion, restore, biomarkers and the quality check.
        here: the work folder of the chunk being predicted, ``work/chunk-<index>`` (removed once its scans are
            published; a killed run's is found again by the same chunk of the next run).
        skipped: scans finished by an earlier run; legs, reused_legs: leg cases predicted and reused.
        notes: things worth telling that belong to no scan.
    """

    images: Path
    scans: dict[str, Path]
    work: Path
    folder: OutputFolder
    model: Model
    predictor: object
    jobs: int | None
    here: Path | None = None
    skipped: int = 0
    legs: int = 0
    reused_legs: int = 0
    notes: list[str] = field(default_factory=list)

    def predict(self, subjects: list[str], chunk_size: int, overwrite: bool = False) -> Tally:
        """Finish every scan of ``subjects`` (in chunks of ``chunk_size``); a scan finished earlier from the same key
        is skipped unless ``overwrite``. Returns the tally of ``subjects``."""
        from tqdm import tqdm

        tally = Tally()
        with tqdm(total=len(subjects), desc="predict", unit="scan", dynamic_ncols=True) as bar:
            for index, chunk in enumerate(chunks(subjects, chunk_size)):
                todo = []
                for subject in chunk:
                    record, key, snap = self._earlier(subject, overwrite)
                    if record is not None:
                        tally.add(subject, record)
                        bar.update(1)
                    else:
                        todo.append((subject, key, snap))
                if not todo:
                    continue
                self.here = self.work / f"chunk-{index:05d}"
                if hasattr(self.predictor, "qc_folder"):  # the folds' agreement of the chunk's legs
                    self.predictor.qc_folder = self.here / QC_RECORDS
                for subject, record in self._chunk(todo):
                    tally.add(subject, record)
                    bar.update(1)
                shutil.rmtree(self.here)  # its scans' records hold what it made
        return tally

    def _earlier(self, subject: str, overwrite: bool):
        """(the scan's record, or None with its key and snapshot to finish it now)."""
        try:
            key, snap = scan_key(self.scans[subject], self.model.run_keys[self.model.device])
        except InputError as e:  # unreadable: it fails, and keeps no earlier result
            return self.folder.publish_scan(subject, {}, {"failed": ["convert", str(e)]}), None, None
        record = None if overwrite else self.folder.finished(subject, {key})
        self.skipped += record is not None
        return record, key, snap

    def _chunk(self, todo: list) -> list[tuple[str, dict]]:
        """Convert, predict, restore, quantify and check the scans of ``todo`` ((subject, key, snapshot)); publish
        each and return (subject, record)."""
        from nnunet_filternet.dataset_conversion.convert import inference_conversion

        paths = {s: self.scans[s].absolute() for s, _, _ in todo}
        conversion = inference_conversion(
            self.images, self.here / "images", jobs=self.jobs, keep_going=True, allow_empty=True, scans=paths
        )
        by_source = {str(p): s for s, p in paths.items()}
        failed = {by_source.get(src, Path(src).name): ("convert", why) for src, why in conversion.failed.items()}
        converted = sorted({r.subject for r in conversion.records})
        if converted:
            self._predict_legs([r.case for r in conversion.records])
        staged = self._restore(converted, failed)
        tables = self.here / "tables"
        if tables.exists():
            shutil.rmtree(tables)
        tables.mkdir(parents=True)
        biomarkers, qc = None, None
        if staged:
            from nnunet_filternet.pipeline.predict import scans_as_nifti
            from nnunet_filternet.quantify.biomarkers import quantify_folder

            quantified: dict[str, str] = {}
            nifti = scans_as_nifti({s: self.scans[s] for s in staged}, self.here / "scans")
            labels = self.here / "labels"
            biomarkers = quantify_folder(nifti, labels, tables / BIOMARKERS, jobs=self.jobs, failed=quantified)
            failed.update({s: ("quantify", self._user_paths(why, s)) for s, why in quantified.items()})
            qc = self._quality_check(nifti, biomarkers, tables / QC_CSV)
        done = _Chunk(staged, failed, rows_by_subject(biomarkers), rows_by_subject(qc.csv if qc else None))
        if qc is not None:
            done.verdicts = {v.subject: v for v in qc.verdicts}
            done.figures = {p.name: p for p in qc.figures}
        subjects = [s for s, _, _ in todo]
        for note in conversion.notes:
            scan = next((s for s in subjects if note.startswith(f"{s}: ")), None)
            if scan is None:
                self.notes.append(note)
            else:
                done.notes.setdefault(scan, []).append(note)
        return [(s, self._publish(s, key, snap, done)) for s, key, snap in todo]

    def _publish(self, subject: str, key: str, snap, done: _Chunk) -> dict:
        """Put one scan's files into ``--out`` and write its record (with the key only when the scan is still the
        file that was hashed)."""
        from nnunet_filternet.utils.cache import warn_changed

        files = {f"{subject}.nii.gz": done.staged[subject]} if subject in done.staged else {}
        verdict = done.verdicts.get(subject)
        checked = None
        if verdict is not None:
            figure = f"{subject}_qc.png"
            if verdict.review and figure in done.figures:
                files[figure] = done.figures[figure]
            checked = {
                **done.qc[subject],
                "score": float(verdict.score),
                "data_score": float(verdict.data_score),
                "reasons": list(verdict.reasons),
            }
        holds = snap.holds()
        if not holds:
            warn_changed("predict", "its prediction", snap)
        finished = {
            "key": key if holds else None,
            "device": self.model.device,
            "failed": list(done.failed[subject]) if subject in done.failed else None,
            "biomarkers": done.biomarkers.get(subject),
            "qc": checked,
            "notes": done.notes.get(subject, []),
        }
        return self.folder.publish_scan(subject, files, finished)

    def _user_paths(self, reason: str, subject: str) -> str:
        """A reason naming the work folder's copy of the scan or label map named with the user's file instead."""
        pairs = [
            (self.here / "labels" / f"{subject}.nii.gz", self.folder.out / f"{subject}.nii.gz"),
            (self.here / "scans" / f"{subject}.nii.gz", self.scans[subject]),
        ]
        for work, user in pairs:
            for form in (work.absolute(), work):
                reason = reason.replace(str(form), str(user))
        return reason

    def _predict_legs(self, cases: list[str]) -> None:
        """Leg predictions of ``cases`` in ``work/predictions``, reusing only those of this model made from the same
        leg image (and the folds' agreement records with them).

        Raises:
            FilterNetError: the model's files changed while nnU-Net predicted (the ledger is dropped).
        """
        from nnunet_filternet.pipeline import leg_predictions as lp

        work, ledger = self.here, self.here / "predictions.json"
        todo = lp.keep_reusable_predictions(work / "images", work / "predictions", ledger, self.model.key, cases)
        for case in todo:  # the folds' agreement of a leg is redone with its prediction (kept with a reused one)
            (work / QC_RECORDS / f"{case}.json").unlink(missing_ok=True)
        if todo:
            lp.run_nnunet(self.predictor, work / "images", work / "predictions", self.model.device)
        if not self.model.snap.holds():
            lp.forget_predictions(ledger)
            raise FilterNetError(
                f"{', '.join(self.model.snap.changed())}: the model changed while it was predicting; nothing more "
                "was published, run again when training has finished"
            )
        self.legs += len(cases)
        self.reused_legs += len(cases) - len(todo)

    def _restore(self, subjects: list[str], failed: dict) -> dict[str, Path]:
        """Label maps of the scans whose legs were all predicted, staged in ``work/labels`` (subject -> file)."""
        from nnunet_filternet.dataset_conversion.restore import restoration

        labels = self.here / "labels"
        if labels.exists():
            shutil.rmtree(labels)
        labels.mkdir(parents=True)
        if not subjects:
            return {}
        records = self.here / "images" / "legs.json"
        try:
            result = restoration(self.here / "predictions", records, labels, self.jobs, keep_going=True)
        except InputError as e:  # not one scan with all its legs predicted
            failed.update({s: ("restore", str(e)) for s in subjects})
            return {}
        for subject, problems in result.incomplete.items():
            failed[subject] = ("restore", "; ".join(problems))
        for subject in result.not_predicted:
            failed[subject] = ("predict", "no leg prediction was made")
        return {p.name[: -len(".nii.gz")]: p for p in result.written}

    def _quality_check(self, scans: Path, biomarkers: Path, out_csv: Path):
        """``qc.csv`` of the chunk and the figures of its flagged scans (:func:`nnunet_filternet.qc.check.
        check_predictions`); None, with a note, when the check cannot be made (the label maps and biomarkers
        stand)."""
        from nnunet_filternet.qc.check import check_predictions

        work = self.here
        try:
            return check_predictions(
                work / "images" / "legs.json", work / "predictions", scans, work / "labels", out_csv,
                self.model.folder, work / QC_RECORDS, biomarkers, jobs=self.jobs,
            )  # fmt: skip
        except FilterNetError as e:
            self.notes.append(f"quality check not made: {e}")
            return None


@dataclass
class _Chunk:
    """What a chunk made, per scan: staged label maps, failures (step, reason), rows of the chunk's biomarker
    and quality tables (:func:`~.predict_outputs.rows_by_subject`), verdicts, figures (by name), notes."""

    staged: dict[str, Path]
    failed: dict[str, tuple[str, str]]
    biomarkers: dict[str, dict]
    qc: dict[str, dict]
    verdicts: dict = field(default_factory=dict)
    figures: dict[str, Path] = field(default_factory=dict)
    notes: dict[str, list[str]] = field(default_factory=dict)
