"""Per subject, side and compartment: volume (ml), normalised T1 signal and fat fraction, as CSV.

Inputs are matched by case name: images ``<case>.nii.gz`` or nnU-Net's ``<case>_0000.nii.gz``, label maps
``<case>.nii.gz`` (and optional Dixon fat / water images ``<case>[_0000].nii.gz``). Every file is read
complete (:func:`~nnunet_filternet.utils.image_io.read_image`) and laid onto its label map's voxel grid
(:mod:`~nnunet_filternet.utils.geometry`: the same voxels stored with flipped or permuted axes are reordered,
anything else is refused). Sides and subjects never come from file names (``P07_L`` may be a subject's
name): a case is a leg image of ``filternet convert`` when the ``legs.json`` beside the images (in the images
folder or its parent, as convert writes it) lists it with the label map's size; its side and subject are the
record's. Any other case is a scan, subject = case name: its legs are told apart by the leg localisation of
``filternet convert`` (:func:`~nnunet_filternet.dataset_conversion.legs.find_legs`), run on the label map's own
footprint (the
two labelled legs), or, when only one leg is labelled, on the image's tissue mask; the leg towards the
patient's left (+x in SimpleITK's LPS frame) is L, and a scan with one leg takes its side from the leg's
position in the field of view, with a note. Dixon fat and water must be two different images (not one folder
or file under two names, not two copies of one image). Tissue modes (muscle, fat) are estimated per subject
and side (:mod:`.fat_fraction`): per leg rather than per scan because a bias field differs most between the legs.

Columns: ``subject, side, compartment, n_voxels, volume_ml, mean_t1, mean_t1_normalised, fat_fraction_t1``,
``fat_fraction_dixon`` (with ``--fat/--water``), ``muscle_mode, fat_mode`` (the leg's T1 modes), ``note``
(why intensity biomarkers are empty: a leg whose labelled muscle shows no muscle / fat contrast, e.g. a poor
segmentation, keeps its volumes, gets NaN intensity biomarkers and a note, and a warning is printed), then
the columns of ``--subjects-csv``. An absent compartment has ``n_voxels`` 0 and NaN intensities.
A rerun reuses a subject's rows only when the program version, the columns and the content of every file of
the subject (path, size, SHA-256, taken before they are read; the ``legs.json`` its sides came from included)
are those recorded beside the CSV
(:mod:`nnunet_filternet.utils.cache`); ``fresh=True`` recomputes everything. A subject whose file changed
during the run is not recorded (it is computed again next time).
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nnunet_filternet.errors import FilterNetError, InputError
from nnunet_filternet.labels import COMPARTMENTS
from nnunet_filternet.metrics.label_maps import check_label_values
from nnunet_filternet.metrics.matching import list_cases
from nnunet_filternet.metrics.overlap import voxel_volume_ml
from nnunet_filternet.quantify.colour_table import write_colour_tables
from nnunet_filternet.quantify.fat_fraction import (
    TissueModes,
    dixon_fat_fraction,
    fat_reference_values,
    t1_fat_fraction,
    tissue_modes,
)
from nnunet_filternet.utils.atomic import atomic_path
from nnunet_filternet.utils.parallel import parallel_map

BASE_COLUMNS: tuple[str, ...] = (
    "subject", "side", "compartment", "n_voxels", "volume_ml", "mean_t1", "mean_t1_normalised", "fat_fraction_t1",
)  # fmt: skip
MODE_COLUMNS: tuple[str, ...] = ("muscle_mode", "fat_mode", "note")
DIXON_COLUMN = "fat_fraction_dixon"


@dataclass(frozen=True)
class CaseFiles:
    """The files of one case: image, label map, optional Dixon fat and water images, and where its side is from.

    Attributes:
        subject: The record's subject (a leg image of ``filternet convert``) or the case name (a scan).
        side: The record's side ("L" / "R") of a leg image, or None: a scan, sides found in its geometry.
        leg_size: The record's leg image size (x, y, z); the label map must have it, or the record is not its.
        records: The ``legs.json`` the side comes from (part of the case's identity for reuse), or None.
    """

    case: str
    image: Path
    labels: Path
    fat: Path | None = None
    water: Path | None = None
    subject: str = ""
    side: str | None = None
    leg_size: tuple[int, ...] | None = None
    records: Path | None = None

    def paths(self) -> list[Path]:
        return [p for p in (self.image, self.labels, self.fat, self.water, self.records) if p is not None]


@dataclass(frozen=True)
class _Volume:
    array: np.ndarray
    image: object  # SimpleITK image (geometry)
    spacing_zyx: tuple[float, ...]


def _read(path: Path, what: str) -> _Volume:
    import SimpleITK as sitk

    from nnunet_filternet.utils.image_io import read_image

    image = read_image(path, what)
    return _Volume(sitk.GetArrayFromImage(image), image, tuple(reversed(image.GetSpacing())))


def _on_labels_grid(path: Path, what: str, labels: _Volume, labels_path: Path) -> _Volume:
    """Read ``path`` and lay its voxels onto the label map's grid (exact reordering, or an InputError)."""
    from nnunet_filternet.utils.geometry import array_on_grid

    volume = _read(path, what)
    array = array_on_grid(volume.image, labels.image, path, labels_path, what)
    return _Volume(array, labels.image, labels.spacing_zyx)


def side_masks(
    labels: _Volume, image: _Volume | None = None, side: str | None = None, case: str = ""
) -> tuple[dict[str, np.ndarray | None], str]:
    """(side -> (z, y, x) mask of that side, or None for "the whole image" (leg images); a note or "").

    Args:
        labels: The case's label map.
        image: Its image on the label map's grid, or None.
        side: The side of a leg image from its ``legs.json`` record, or None: a scan, whose sides are found in
            its geometry (never in its name).
        case: The case name (for the note).

    Scans: the cut between the legs comes from the labels' own footprint when both legs are labelled, else
    from the image's tissue mask (module docstring), unless that split is doubtful
    (:func:`~nnunet_filternet.dataset_conversion.legs.doubtful_split`). A scan with one leg in the field of view takes
    its side
    from the leg's position relative to the image centre, as ``filternet convert`` does, and says so in the note.
    """
    from nnunet_filternet.dataset_conversion.legs import LegSettings, doubtful_split, find_legs, tissue_mask
    from nnunet_filternet.dataset_conversion.orientation import PatientAxes

    if side is not None:
        return {side: None}, ""
    grid = labels.image
    axes = PatientAxes.from_direction(grid.GetDirection())
    spacing = [grid.GetSpacing()[a] for a in axes.axes]
    labelled = axes.to_patient(labels.array.transpose(2, 1, 0) > 0)
    single = None
    if labelled.any():
        boxes = find_legs(labelled, spacing)
        if len(boxes) == 2:
            return _sides_from_cut(axes, labelled.shape, boxes[1].x_limits[0]), ""
        single = boxes[0]
    if image is not None:
        tissue = axes.to_patient(tissue_mask(image.array.transpose(2, 1, 0), grid.GetSpacing(), along=axes.axes[2]))
        boxes = find_legs(tissue, spacing)
        if doubtful_split(tissue, boxes, spacing, LegSettings()) is None:
            if len(boxes) == 2:
                return _sides_from_cut(axes, labelled.shape, boxes[1].x_limits[0]), ""
            single = single or boxes[0]
    if single is None:  # no labels and no usable image: nothing to count on either side
        return _sides_from_cut(axes, labelled.shape, labelled.shape[0] // 2), ""
    cut = 0 if single.side == "L" else labelled.shape[0]
    note = f"one leg in the field of view, taken as {single.side} from its position in the field of view (check)"
    if case[-2:] in ("_L", "_R"):
        note += f"; {case} has no legs.json record beside the images, so its name does not give its side"
    return _sides_from_cut(axes, labelled.shape, cut), note


def _sides_from_cut(axes, shape_lps, cut: int) -> dict[str, np.ndarray]:
    """L / R masks (z, y, x) of a source grid from a cut along the patient-aligned left-right axis."""
    left = np.zeros(shape_lps, bool)
    left[cut:] = True
    left_zyx = np.ascontiguousarray(axes.from_patient(left).transpose(2, 1, 0))
    return {"L": left_zyx, "R": ~left_zyx}


def _side_labels(labels: np.ndarray, side_mask: np.ndarray | None) -> np.ndarray:
    return labels if side_mask is None else np.where(side_mask, labels, 0)


def _estimate_modes(sides: dict[str, list]) -> tuple[dict[str, TissueModes | None], dict[str, str]]:
    """side -> tissue modes from that side's (muscle values, fat reference values) of all cases.

    A side without usable muscle / fat contrast (e.g. a poor segmentation) gets None and a note: its
    volumes are still valid, its intensity biomarkers are NaN.
    """
    modes, notes = {}, {}
    for side, parts in sides.items():
        try:
            modes[side] = tissue_modes(np.concatenate([m for m, _ in parts]), np.concatenate([f for _, f in parts]))
        except ValueError as e:
            modes[side] = None
            notes[side] = f"cannot estimate muscle and fat intensities (fat fraction and normalised T1 left empty): {e}"
    return modes, notes


def quantify_subject(subject: str, cases: list[CaseFiles]) -> list[dict]:
    """Rows of one subject (all its cases, sides and compartments).

    Raises:
        InputError: unreadable or mismatching files, labels outside 0-5, no muscle/fat contrast.
    """
    loaded = []
    sides: dict[str, list] = {}  # side -> [(muscle values, fat reference values)] of each case
    side_notes: dict[str, str] = {}
    for files in cases:
        labels = _read(files.labels, "label map")
        labels = _Volume(check_label_values(labels.array, files.labels), labels.image, labels.spacing_zyx)
        image = _on_labels_grid(files.image, "image", labels, files.labels)
        dixon = None
        if files.fat is not None:
            dixon = (
                _on_labels_grid(files.fat, "Dixon fat image", labels, files.labels),
                _on_labels_grid(files.water, "Dixon water image", labels, files.labels),
            )
            if np.array_equal(dixon[0].array, dixon[1].array):
                raise InputError(
                    files.water,
                    f"the Dixon water image holds the same voxels as the fat image {files.fat}: expected two "
                    "different images (the fat fraction would be 0.5 everywhere)",
                )
        masks, side_note = side_masks(labels, image, files.side, files.case)
        if side_note:
            side_notes.update(dict.fromkeys(masks, side_note))
        loaded.append((files, labels, image.array.astype(np.float64), dixon, masks))
        for side, side_mask in masks.items():
            side_labels = _side_labels(labels.array, side_mask)
            muscle = image.array[side_labels > 0].astype(np.float64)
            fat = fat_reference_values(image.array, side_labels, labels.spacing_zyx)
            sides.setdefault(side, []).append((muscle, fat))
    modes, notes = _estimate_modes(sides)
    notes = {s: "; ".join(n for n in (side_notes.get(s, ""), notes.get(s, "")) if n) for s in modes}
    rows = []
    for _files, labels, image, dixon, masks in loaded:
        voxel_ml = voxel_volume_ml(labels.spacing_zyx)
        for side, side_mask in masks.items():
            side_labels = _side_labels(labels.array, side_mask)
            m, nan = modes[side], float("nan")
            for value, name in enumerate(COMPARTMENTS, start=1):
                mask = side_labels == value
                n = int(mask.sum())
                mean = float(image[mask].mean()) if n else nan
                row = {
                    "subject": subject, "side": side, "compartment": name, "n_voxels": n, "volume_ml": n * voxel_ml,
                    "mean_t1": mean, "mean_t1_normalised": mean / m.muscle if n and m else nan,
                    "fat_fraction_t1": t1_fat_fraction(mean, m) if n and m else nan,
                    "muscle_mode": m.muscle if m else nan, "fat_mode": m.fat if m else nan,
                    "note": notes.get(side, ""),
                }  # fmt: skip
                if dixon is not None:
                    row[DIXON_COLUMN] = dixon_fat_fraction(dixon[0].array[mask], dixon[1].array[mask])
                rows.append(row)
    return sorted(rows, key=lambda r: (r["side"], COMPARTMENTS.index(r["compartment"])))


def _quantify_or_error(item: tuple[str, list[CaseFiles]]) -> list[dict] | FilterNetError:
    try:
        return quantify_subject(*item)
    except FilterNetError as e:
        return e


def _missing(label: str, names: list[str]) -> str:
    return f"{len(names)} {label}: {', '.join(names[:20])}" + (" ..." if len(names) > 20 else "")


def match_case_files(
    images_dir: os.PathLike,
    labels_dir: os.PathLike,
    fat_dir: os.PathLike | None,
    water_dir: os.PathLike | None,
    records: os.PathLike | None = None,
) -> dict[str, list[CaseFiles]]:
    """subject -> its cases' files. Every label map needs an image (and fat and water images), and vice versa.

    Args:
        images_dir, labels_dir, fat_dir, water_dir: The folders (Dixon ones optional, both or neither).
        records: ``legs.json`` of leg images (default: :func:`find_leg_records` beside the images).

    Raises:
        FilterNetError: listing the cases missing from each folder; ``--fat`` and ``--water`` naming one folder or
            one file; a subject with both a scan and leg images.
    """
    if (fat_dir is None) != (water_dir is None):
        raise FilterNetError("Dixon fat fraction needs both --fat and --water folders, got only one")
    if fat_dir is not None:
        _check_not_same(Path(fat_dir), Path(water_dir), "folder")
    labels, images = list_cases(labels_dir), list_cases(images_dir, images=True)
    if not labels:
        raise InputError(labels_dir, "expected label maps (<case>.nii.gz), found none")
    folders = {"images": (images_dir, images)}
    if fat_dir is not None:
        folders["fat"] = (fat_dir, list_cases(fat_dir, images=True))
        folders["water"] = (water_dir, list_cases(water_dir, images=True))
    problems = []
    for what, (folder, found) in folders.items():
        if sorted(set(labels) - set(found)):
            problems.append(_missing(f"label map(s) without {what} in {folder}", sorted(set(labels) - set(found))))
        if sorted(set(found) - set(labels)):
            problems.append(_missing(f"{what} without a label map in {labels_dir}", sorted(set(found) - set(labels))))
    if problems:
        raise FilterNetError("cases do not match; " + "; ".join(problems))
    records_path = Path(records) if records is not None else find_leg_records(images_dir)
    legs = _leg_records(records_path) if records_path is not None else {}
    subjects: dict[str, list[CaseFiles]] = {}
    for case in labels:
        dixon = (folders["fat"][1][case], folders["water"][1][case]) if fat_dir is not None else (None, None)
        if dixon[0] is not None:
            _check_not_same(dixon[0], dixon[1], "file")
        record = legs.get(case)
        if record is not None and sorted(record[2]) != sorted(_image_size(labels[case])):
            record = None  # a scan that happens to share a leg image's name
        subject, side, size = record if record is not None else (case, None, None)
        files = CaseFiles(case, images[case], labels[case], *dixon, subject, side, size, records_path if side else None)
        subjects.setdefault(subject, []).append(files)
    for subject, cases in subjects.items():
        if len(cases) > 1 and any(c.side is None for c in cases):
            names = ", ".join(c.case for c in cases)
            raise InputError(labels_dir, f"subject {subject} has both a full scan and leg cases ({names})")
    return subjects


def find_leg_records(images_dir: os.PathLike) -> Path | None:
    """The ``legs.json`` of ``filternet convert`` in the images folder (inference) or its parent (training), or None."""
    for folder in (Path(images_dir), Path(images_dir).parent):
        if (folder / "legs.json").is_file():
            return folder / "legs.json"
    return None


def _leg_records(path: Path) -> dict[str, tuple[str, str, tuple[int, ...]]]:
    """case -> (subject, side, leg image size (x, y, z)) of a ``legs.json`` (checked by its reader)."""
    from nnunet_filternet.dataset_conversion.records import load_records

    return {r.case: (r.subject, r.side, tuple(r.leg_size)) for r in load_records(path)}


def _image_size(path: Path) -> tuple[int, ...]:
    """Size (x, y, z) from an image file's header (nothing else is read; an unreadable file reports later)."""
    import SimpleITK as sitk

    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    try:
        reader.ReadImageInformation()
    except RuntimeError:
        return ()
    return tuple(reader.GetSize())


def _check_not_same(fat: Path, water: Path, what: str) -> None:
    """Refuse Dixon fat and water given as one folder or one file (they would give a fat fraction of 0.5)."""
    try:
        same = os.path.samefile(fat, water)
    except OSError:
        return  # a missing folder or file is reported where it is read
    if same:
        raise InputError(
            water,
            f"the Dixon water {what} is the fat {what} {fat} (the same {what} under two names): expected the water "
            "images in --water and the fat images in --fat",
        )


def read_subjects_csv(path: os.PathLike, subjects: list[str]) -> tuple[list[str], dict[str, dict]]:
    """(extra columns, subject -> their values) of a CSV with a ``subject`` column covering ``subjects``.

    Read by the one subjects-table reader of every verb (:mod:`nnunet_filternet.utils.subjects_table`), as
    ``filternet convert`` reads its ``subjects.csv``.

    Raises:
        InputError: no ``subject`` column, a subject listed twice, or subjects missing from the CSV (listed).
    """
    from nnunet_filternet.utils.subjects_table import read_subjects_table

    table = read_subjects_table(path)
    missing = sorted(set(subjects) - set(table.rows))
    if missing:
        raise InputError(path, "expected a row for every subject, missing " + _missing("subject(s)", missing))
    clash = sorted(set(table.columns) & set(BASE_COLUMNS + MODE_COLUMNS + (DIXON_COLUMN,)))
    if clash:
        raise InputError(path, f"columns {clash} clash with the biomarker columns; rename them")
    return table.columns, table.rows


def _options(columns: list[str]) -> dict:
    """What, besides the input files, decides a subject's rows (recorded in the cache sidecar)."""
    return {"rows": "filternet quantify", "columns": columns}


def _cached_rows(out_csv: Path, subjects: dict[str, list[CaseFiles]], columns: list[str], snaps: dict) -> dict:
    """Rows of ``out_csv`` for subjects whose content identity (``snaps``) and options are those recorded."""
    from nnunet_filternet.utils.cache import reusable_keys

    recorded = reusable_keys(out_csv, _options(columns))
    if not recorded:
        return {}
    try:
        with open(out_csv, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            if reader.fieldnames is None or not set(columns) <= set(reader.fieldnames):
                return {}
            old = list(reader)
    except (OSError, UnicodeDecodeError, csv.Error):
        return {}
    out = {}
    for subject in subjects:
        rows = [{c: r[c] for c in columns} for r in old if r["subject"] == subject]
        if rows and recorded.get(subject) == snaps[subject].key:
            out[subject] = rows
    return out


def output_files(out_csv: str | os.PathLike) -> list[Path]:
    """Every file :func:`quantify_folder` writes: the CSV, its cache sidecar and the colour tables beside it."""
    from nnunet_filternet.quantify.colour_table import ITKSNAP_FILE, SLICER_FILE
    from nnunet_filternet.utils.cache import sidecar_path

    out_csv = Path(out_csv)
    return [out_csv, sidecar_path(out_csv), out_csv.parent / SLICER_FILE, out_csv.parent / ITKSNAP_FILE]


def quantify_folder(
    images_dir: str | os.PathLike,
    labels_dir: str | os.PathLike,
    out_csv: str | os.PathLike,
    subjects_csv: str | os.PathLike | None = None,
    fat_dir: str | os.PathLike | None = None,
    water_dir: str | os.PathLike | None = None,
    jobs: int | None = None,
    fresh: bool = False,
    records: str | os.PathLike | None = None,
    failed: dict[str, str] | None = None,
) -> Path:
    """Write the biomarker CSV (and the Slicer / ITK-SNAP colour tables beside it).

    Args:
        images_dir: T1 images (``<case>.nii.gz`` or ``<case>_0000.nii.gz``).
        labels_dir: label maps (``<case>.nii.gz``), e.g. predictions restored to the scans.
        out_csv: output CSV (columns: module docstring).
        subjects_csv: optional CSV with a ``subject`` column; its other columns are appended to each row.
        fat_dir: Dixon fat images (with ``water_dir``) for ``fat_fraction_dixon``.
        water_dir: Dixon water images.
        jobs: worker processes (None: all cores).
        fresh: recompute every subject (otherwise unchanged subjects of the last run into ``out_csv`` are reused).
        records: ``legs.json`` giving the side and subject of leg images (default: the one in ``images_dir`` or
            its parent, if any); cases it does not list are scans, sided by their geometry.
        failed: if given, subjects that cannot be quantified are put here (subject -> reason) and left out of the
            CSV, instead of stopping the run (``filternet predict``: one bad scan does not stop the others).

    Returns:
        ``out_csv``.

    Raises:
        FilterNetError: unmatched cases, bad files or subjects (all listed), an output that cannot be written or
            is an input.
    """
    from nnunet_filternet.utils.atomic import check_writable
    from nnunet_filternet.utils.cache import record_inputs, report_reuse, snapshot, warn_changed
    from nnunet_filternet.utils.output_guard import refuse_inputs_as_outputs
    from nnunet_filternet.utils.parallel import check_jobs

    check_jobs(jobs)
    out_csv = check_writable(out_csv, "biomarker table")
    refuse_inputs_as_outputs(
        {images_dir: "images (--images)", labels_dir: "label maps (--labels)", fat_dir: "Dixon fat images (--fat)",
         water_dir: "Dixon water images (--water)", subjects_csv: "subjects table (--subjects-csv)"},
        files=output_files(out_csv),
    )  # fmt: skip
    subjects = match_case_files(images_dir, labels_dir, fat_dir, water_dir, records)
    extra_columns, extra = read_subjects_csv(subjects_csv, list(subjects)) if subjects_csv else ([], {})
    columns = list(BASE_COLUMNS) + ([DIXON_COLUMN] if fat_dir is not None else []) + list(MODE_COLUMNS)
    snaps = {s: snapshot(p for c in cases for p in c.paths()) for s, cases in subjects.items()}
    cached = {} if fresh else _cached_rows(out_csv, subjects, columns, snaps)
    todo = [(s, c) for s, c in subjects.items() if s not in cached]
    results = parallel_map(_quantify_or_error, todo, jobs, desc="quantify", unit="subject")
    errors = {s: str(r) for (s, _), r in zip(todo, results) if isinstance(r, FilterNetError)}
    if errors and failed is None:
        raise FilterNetError(f"{len(errors)} subject(s) could not be quantified: " + " | ".join(errors.values()))
    if failed is not None:
        failed.update(errors)
    computed = {s: rows for (s, _), rows in zip(todo, results) if s not in errors}
    noted = sorted(
        {f"{r['subject']} {r['side']}: {r['note']}" for rows in computed.values() for r in rows if r["note"]}
    )
    for line in sorted(noted):
        print(f"quantify: warning: {line}")
    with atomic_path(out_csv) as tmp, open(tmp, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(columns + extra_columns)
        for subject in (s for s in subjects if s not in errors):
            for row in cached.get(subject) or computed[subject]:
                values = [repr(v) if isinstance(v, float) else v for v in (row[c] for c in columns)]
                writer.writerow(values + [extra[subject][c] for c in extra_columns])
    for snap in snaps.values():
        warn_changed("quantify", "its subject", snap)
    keys = {s: snap.key for s, snap in snaps.items() if s not in errors and snap.holds()}
    record_inputs(out_csv, _options(columns), keys)
    write_colour_tables(out_csv.parent)
    report_reuse("quantify", out_csv, len(subjects) - len(todo), len(subjects), "subject")
    return out_csv
