"""What ``filternet predict`` puts into ``--out``, and only that: label maps, ``biomarkers.csv``, ``qc.csv`` and
the figures of flagged scans (``<subject>_qc.png``), ``failed.csv``.

The output folder may hold the user's own files. Every file predict writes at the top of ``--out`` is listed
in ``.legs/published.json``; a run

- refuses, before any work, to write over a file of that name that predict did not write (exit 2, naming it);
- removes the label maps (and the biomarker table) it wrote in an earlier run that this run does not
  produce again: a scan that left the images folder, or failed this time, keeps no earlier result;
- writes ``failed.csv`` (columns ``scan, step, reason``; only the header when every scan went through).

The list is extended before a file is written and trimmed after, so an interrupted run never leaves a file of
ours that the next run would take for the user's.
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Iterable
from pathlib import Path

from nnunet_filternet.errors import InputError

WORK = ".legs"
MANIFEST = "published.json"
BIOMARKERS = "biomarkers.csv"
FAILED = "failed.csv"
QC_CSV = "qc.csv"
#: folder in WORK of the folds' agreement per leg (:class:`nnunet_filternet.qc.predictor.AgreementPredictor`)
QC_RECORDS = "qc"
FAILED_COLUMNS = ("scan", "step", "reason")


def planned_files(subjects: Iterable[str]) -> list[str]:
    """Names (in ``--out``) of every file a run over ``subjects`` may write."""
    from nnunet_filternet.quantify.biomarkers import output_files

    tables = [p.name for p in output_files(Path(BIOMARKERS))]
    return [f"{s}.nii.gz" for s in subjects] + [f"{s}_qc.png" for s in subjects] + tables + [QC_CSV, FAILED]


class OutputFolder:
    """``--out`` of ``filternet predict`` with the list of the files predict wrote there (module docstring)."""

    def __init__(self, out: str | os.PathLike):
        self.out = Path(out)
        self.manifest = self.out / WORK / MANIFEST
        self.ours = self._read()

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

    def refuse_foreign(self, names: Iterable[str]) -> None:
        """Raise if a file we would write exists and was not written by predict.

        Raises:
            InputError: naming the file.
        """
        for name in names:
            path = self.out / name
            if os.path.lexists(path) and name not in self.ours:
                raise InputError(
                    path, f"exists and was not written by `filternet predict` (not listed in {self.manifest}); "
                    "move it or choose another --out"
                )  # fmt: skip

    def claim(self, names: Iterable[str]) -> None:
        """List ``names`` as ours before they are written."""
        self._write(self.ours | set(names))

    def publish(self, label_maps: dict[str, Path], keep: set[str]) -> list[Path]:
        """Put the staged label maps (subject -> file) into ``--out``; remove our earlier files not in ``keep``.

        Returns:
            The label maps now in ``--out``.
        """
        from nnunet_filternet.utils.atomic import atomic_path

        names = {f"{s}.nii.gz" for s in label_maps}
        self.claim(names)
        written = []
        for subject, staged in sorted(label_maps.items()):
            target = self.out / f"{subject}.nii.gz"
            with atomic_path(target) as tmp:
                tmp.unlink()
                _link_or_copy(staged, tmp)
            written.append(target)
        for name in sorted(self.ours - names - keep):
            (self.out / name).unlink(missing_ok=True)
        self._write((self.ours & (names | keep)) | names)
        return written

    def write_failed(self, failed: dict[str, tuple[str, str]]) -> Path:
        """``failed.csv``: one row per scan that failed (scan -> (step, reason)); only the header if none."""
        from nnunet_filternet.utils.atomic import write_text

        self.claim([FAILED])
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(FAILED_COLUMNS)
        for scan, (step, reason) in sorted(failed.items()):
            writer.writerow([scan, step, reason])
        write_text(self.out / FAILED, buffer.getvalue())
        return self.out / FAILED


def _link_or_copy(src: Path, dst: Path) -> None:
    import shutil

    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)
