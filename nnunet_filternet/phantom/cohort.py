"""A cohort of synthetic subjects: who is healthy, how severe each DM1 subject is, and writing it to disk.

Folder layout written by :func:`make_cohort`::

    DIR/images/sub-000.nii.gz        float32 T1-weighted image (both legs)
    DIR/labels/sub-000.nii.gz        uint8 labels 0 background, 1 TA, 2 TP, 3 Sol, 4 Gas, 5 PL
    DIR/bias/sub-000.nii.gz          float32 true bias field (only with save_bias)
    DIR/fatfraction/sub-000.nii.gz   float32 true fat fraction (only with save_fat_fraction)
    DIR/subjects.csv                 one row per subject: subject, group, severity, then all parameters
    DIR/degradations.csv             (only with degrade > 0) each subject's degradation or "none" (``degrade.py``)
    DIR/phantom.json                 the generation parameters and conventions, and the files written

``overwrite`` replaces an earlier cohort only when every file and folder in it is one that ``filternet phantom``
wrote (listed in its ``phantom.json``); anything a user added is named and the cohort is left as it was.

Groups: subject ``k`` of ``N`` is healthy iff ``floor((k+1) H / N) > floor(k H / N)`` (H healthy subjects,
spread evenly: with 10 of 40, sub-003, sub-007, ..., sub-039). Cohorts with the same healthy fraction
share their groups on their common prefix (4 with 1 healthy = the first 4 of 40 with 10). Everything else
about subject ``k`` (anatomy, pose, physics, the severity it has if DM1) comes from its own random
streams ``SeedSequence(seed, spawn_key=(k, ...))``, independent of the cohort's size.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import shutil
from functools import partial
from pathlib import Path

import numpy as np

from nnunet_filternet.errors import FilterNetError, InputError
from nnunet_filternet.phantom.degrade import KINDS, degradations_csv, plan_degradations
from nnunet_filternet.phantom.spec import DM1, HEALTHY, SubjectSpec, draw_subject
from nnunet_filternet.phantom.subject import DEFAULT_SHAPE, DEFAULT_SPACING, DEFAULT_SUBSLICES, make_grid

GOLDEN = (math.sqrt(5) - 1) / 2

#: Sub-folder of each written volume (key of :meth:`PhantomSubject.to_sitk`).
FOLDERS = {"image": "images", "label": "labels", "bias": "bias", "fat_fraction": "fatfraction"}

#: Marker file of a cohort folder (``--overwrite`` only replaces folders that hold it).
MARKER = "phantom.json"

#: Peak memory of rendering and writing one subject, bytes per voxel (measured: about 31 for rendering alone,
#: independent of the number of sub-slices; the rest is the images handed to SimpleITK for writing).
BYTES_PER_VOXEL = 48


def is_healthy(index: int, n_subjects: int, n_healthy: int) -> bool:
    """Even interleaving: subject ``index`` is healthy iff ``floor((k+1) H / N) > floor(k H / N)``."""
    return (index + 1) * n_healthy // n_subjects > index * n_healthy // n_subjects


def dm1_severity(seed: int, index: int) -> float:
    """Severity of subject ``index`` if it is DM1, in [0.05, 1.0].

    A golden-ratio sequence with a seed-dependent start: any run of consecutive subjects is spread evenly
    from mild to near-complete replacement, whatever the cohort's size.
    """
    start = np.random.default_rng(np.random.SeedSequence(seed)).uniform()
    return float(0.05 + 0.95 * ((start + index * GOLDEN) % 1.0))


def cohort_specs(n_subjects: int = 40, n_healthy: int = 10, seed: int = 0) -> list[SubjectSpec]:
    """Parameters of every subject of a cohort (cheap: nothing is rendered).

    Args:
        n_subjects: cohort size N >= 1 (the paper: 40).
        n_healthy: number of healthy subjects, 0 <= H <= N (the paper: 10); the others are DM1.
        seed: cohort seed.

    Returns:
        N :class:`SubjectSpec`, ``sub-000`` first.

    Raises:
        FilterNetError: N < 1 or H outside [0, N].
    """
    if int(n_subjects) != n_subjects or n_subjects < 1:
        raise FilterNetError(f"the number of subjects must be a positive integer, got {n_subjects}")
    if int(n_healthy) != n_healthy or not 0 <= n_healthy <= n_subjects:
        raise FilterNetError(f"the number of healthy subjects must be between 0 and {n_subjects}, got {n_healthy}")
    out = []
    for k in range(int(n_subjects)):
        if is_healthy(k, int(n_subjects), int(n_healthy)):
            out.append(draw_subject(seed, k, HEALTHY, 0.0))
        else:
            out.append(draw_subject(seed, k, DM1, dm1_severity(seed, k)))
    return out


def subjects_csv(specs: list[SubjectSpec]) -> str:
    """The text of ``subjects.csv``: header ``subject,group,severity,...`` and one row per subject."""
    rows = [spec.to_row() for spec in specs]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


def _outputs(folder: Path, name: str, save_bias: bool, save_fat_fraction: bool) -> dict[str, Path]:
    keys = ["image", "label"] + ["bias"] * save_bias + ["fat_fraction"] * save_fat_fraction
    return {k: folder / FOLDERS[k] / f"{name}.nii.gz" for k in keys}


def write_subject(
    spec: SubjectSpec,
    folder: Path,
    shape,
    spacing,
    n_subslices: int,
    save_bias: bool,
    save_fat_fraction: bool,
    degradations: dict | None = None,
) -> str:
    """Render one subject and write its volumes under ``folder`` (each file atomically). Returns its name.

    ``degradations``: subject name -> :class:`~nnunet_filternet.phantom.degrade.Degradation` applied before
    writing (subjects not in it are written clean).
    """
    from threadpoolctl import threadpool_limits

    from nnunet_filternet.phantom.subject import generate_subject
    from nnunet_filternet.utils.atomic import write_image

    with threadpool_limits(1):  # one process per core; no BLAS threads on top
        subject = generate_subject(spec, shape, spacing, n_subslices)
        if degradations and spec.name in degradations:
            from nnunet_filternet.phantom.degrade import degrade

            subject = degrade(subject, degradations[spec.name])
    images = subject.to_sitk()
    for key, path in _outputs(folder, spec.name, save_bias, save_fat_fraction).items():
        write_image(images[key], path)
    return spec.name


def _check_output(out: Path, overwrite: bool) -> None:
    """Refuse outputs that cannot be written or must not be replaced (a folder holding files we did not write)."""
    if out.exists():
        if not out.is_dir():
            raise InputError(out, "expected a folder for the cohort, found a file")
        if any(out.iterdir()):
            if not overwrite:
                raise InputError(out, "the output folder is not empty; pass --overwrite to replace it")
            if not (out / MARKER).is_file():
                raise InputError(
                    out, f"refusing to replace a folder that `filternet phantom` did not make (no {MARKER})"
                )
            _refuse_foreign_files(out)
    ancestor = out.parent
    while not ancestor.exists():
        ancestor = ancestor.parent
    if not ancestor.is_dir() or not os.access(ancestor, os.W_OK | os.X_OK):
        raise InputError(out, f"cannot create the output folder: {ancestor} is not a writable folder")


def written_files(marker: dict) -> set[str]:
    """Paths (relative, ``/``-separated) of the files an earlier cohort wrote, from its ``phantom.json``.

    Cohorts written before the list was kept: the files its parameters imply.
    """
    if isinstance(marker.get("files"), list):
        return {str(f) for f in marker["files"]}
    specs = cohort_specs(int(marker["n_subjects"]), int(marker["n_healthy"]), int(marker["seed"]))
    folders = (
        ["images", "labels"]
        + ["bias"] * bool(marker.get("save_bias"))
        + ["fatfraction"] * bool(marker.get("save_fat_fraction"))
    )
    return {f"{d}/{s.name}.nii.gz" for d in folders for s in specs} | {"subjects.csv", MARKER}


def _refuse_foreign_files(out: Path) -> None:
    """Raise unless every file and folder under ``out`` is one an earlier ``filternet phantom`` wrote there."""
    try:
        ours = written_files(json.loads((out / MARKER).read_text(encoding="utf-8")))
    except (OSError, ValueError, KeyError, TypeError, AttributeError, FilterNetError):
        raise InputError(out / MARKER, "cannot tell which files the earlier cohort wrote (unreadable); "
                         "refusing to replace the folder") from None  # fmt: skip
    folders = {str(Path(f).parent.as_posix()) for f in ours} | {"."}
    foreign = []
    for path in sorted(out.rglob("*")):
        rel = path.relative_to(out).as_posix()
        if path.is_symlink() or not (rel in folders if path.is_dir() else rel in ours):
            foreign.append(rel)
    if foreign:
        names = ", ".join(foreign[:10]) + (" ..." if len(foreign) > 10 else "")
        raise InputError(out, f"--overwrite would delete {len(foreign)} file(s) that `filternet phantom` did not "
                         f"write: {names}; move them out of the cohort folder or choose another --out")  # fmt: skip


def _check_preview(path: Path, out: Path) -> None:
    from nnunet_filternet.utils.atomic import check_writable

    if path.suffix.lower() != ".png":
        raise InputError(path, "expected a .png file name for the preview")
    if path.absolute() == out or out in path.absolute().parents:
        return  # written after the cohort folder is in place
    check_writable(path, "preview")


def _check_memory(n_voxels: int, workers: int) -> None:
    """Refuse a cohort whose rendering would not fit in the memory available now (before allocating any)."""
    from nnunet_filternet.utils.parallel import available_memory_bytes

    need = n_voxels * BYTES_PER_VOXEL * workers
    available = available_memory_bytes()
    if available is not None and need > available:
        raise FilterNetError(
            f"rendering {workers} subject(s) at once at {n_voxels} voxels each needs about {need / 2**30:.1f} GiB "
            f"({BYTES_PER_VOXEL} bytes per voxel), but {available / 2**30:.1f} GiB are available; use a smaller "
            "--shape or fewer -j"
        )


def _partial_folder(out: Path, params: dict) -> Path:
    """The work folder beside ``out`` (kept after an interruption); restarted if its parameters differ."""
    work = out.parent / f".{out.name}.partial"
    marker = work / MARKER
    if work.exists():
        if not marker.is_file() and any(work.iterdir()):
            raise InputError(work, f"expected the work folder of an interrupted `filternet phantom` (with {MARKER}), "
                             "found other files; move it away")  # fmt: skip
        try:
            same = json.loads(marker.read_text(encoding="utf-8")) == params
        except (OSError, ValueError):
            same = False
        if not same:
            shutil.rmtree(work)
    work.mkdir(parents=True, exist_ok=True)
    if not marker.exists():
        from nnunet_filternet.utils.atomic import write_json

        write_json(marker, params)
    return work


def make_cohort(
    out_dir: str | os.PathLike,
    n_subjects: int = 40,
    n_healthy: int = 10,
    seed: int = 0,
    shape: tuple[int, int, int] = DEFAULT_SHAPE,
    spacing: tuple[float, float, float] = DEFAULT_SPACING,
    save_bias: bool = False,
    save_fat_fraction: bool = False,
    preview: str | os.PathLike | None = None,
    overwrite: bool = False,
    jobs: int | None = None,
    n_subslices: int = DEFAULT_SUBSLICES,
    degrade: float = 0.0,
    degrade_kinds: tuple[str, ...] | None = None,
) -> Path:
    """Write a cohort to ``out_dir`` (layout in this module's docstring); return its path.

    The cohort is built in a sibling work folder ``.<name>.partial`` and moved into place when complete,
    so ``out_dir`` appears whole or not at all. After an interruption, the same call resumes: subjects
    already written to the work folder are kept (the work folder is restarted if any parameter differs).

    Args:
        out_dir: the cohort folder; must not exist, be empty, or (with ``overwrite``) be an earlier cohort.
        n_subjects, n_healthy, seed: see :func:`cohort_specs`.
        shape, spacing: image size (x, y, z) in voxels and voxel size (x, y, z) in mm.
        save_bias, save_fat_fraction: also write the true bias field / fat fraction.
        preview: PNG path for a Fig. 1-like panel (a healthy and a DM1 cross-section with labels), or None.
        overwrite: replace an existing cohort folder.
        jobs: worker processes (default: all cores available).
        n_subslices: odd number of sub-slices averaged per thick slice.
        degrade: share of the subjects degraded the ways scans fail (:mod:`.degrade`), recorded in
            ``degradations.csv``; 0 writes a clean cohort.
        degrade_kinds: the degradations dealt out (default: all of :data:`.degrade.KINDS`).

    Raises:
        FilterNetError: bad counts, shape, spacing or output folder, or legs that do not fit the field of view.
    """
    from nnunet_filternet.phantom.subject import check_legs
    from nnunet_filternet.utils.atomic import atomic_dir, write_json, write_text
    from nnunet_filternet.utils.parallel import check_jobs, default_jobs, parallel_map

    out = Path(out_dir).absolute()
    grid = make_grid(shape, spacing)
    if int(n_subslices) != n_subslices or n_subslices < 1 or n_subslices % 2 == 0:
        raise FilterNetError(f"the number of sub-slices must be an odd positive integer, got {n_subslices}")
    check_jobs(jobs)
    if isinstance(seed, bool) or int(seed) != seed or seed < 0:
        raise FilterNetError(f"the cohort seed must be an integer >= 0, got {seed}")
    specs = cohort_specs(n_subjects, n_healthy, seed)
    kinds = tuple(degrade_kinds) if degrade_kinds is not None else KINDS
    plan = plan_degradations(specs, degrade, kinds)
    _check_output(out, overwrite)
    if preview is not None:
        _check_preview(Path(preview), out)
    _check_memory(math.prod(grid.shape), min(jobs or default_jobs(), len(specs)))
    for spec in specs:  # fail early, before any rendering
        check_legs(spec, grid)

    from nnunet_filternet.utils.cache import program

    params = {
        "generator": "nnunet_filternet.phantom",
        "program": program(),  # an interrupted cohort is resumed only by the same version and code
        "seed": int(seed),
        "n_subjects": int(n_subjects),
        "n_healthy": int(n_healthy),
        "shape_xyz": list(grid.shape),
        "spacing_xyz_mm": list(grid.spacing),
        "n_subslices": int(n_subslices),
        "save_bias": bool(save_bias),
        "save_fat_fraction": bool(save_fat_fraction),
        "space": "LPS, identity direction, image centred on the origin",
        "axes": "x index up = patient's left (right leg in the low-x half), y up = posterior, z up = proximal",
        "label_of_slice": "anatomy at the slice centre (middle sub-slice)",
        "labels": {"0": "background", "1": "TA", "2": "TP", "3": "Sol", "4": "Gas", "5": "PL"},
    }
    if degrade > 0:
        params["degrade"] = {"fraction": float(degrade), "kinds": list(kinds), "subjects": sorted(plan)}
    work = _partial_folder(out, params)
    todo = [
        s for s in specs if not all(p.exists() for p in _outputs(work, s.name, save_bias, save_fat_fraction).values())
    ]
    if len(todo) < len(specs):
        print(f"resuming: {len(specs) - len(todo)} of {len(specs)} subjects already made in {work}")
    fn = partial(
        write_subject,
        folder=work,
        shape=grid.shape,
        spacing=grid.spacing,
        n_subslices=int(n_subslices),
        save_bias=save_bias,
        save_fat_fraction=save_fat_fraction,
        degradations=plan,
    )
    parallel_map(fn, todo, jobs=jobs, desc="phantom", unit="subject")
    write_text(work / "subjects.csv", subjects_csv(specs))
    if degrade > 0:
        write_text(work / "degradations.csv", degradations_csv(specs, plan))
    written = {p.relative_to(work).as_posix() for p in work.rglob("*") if p.is_file()} | {MARKER}
    if preview is not None and (out in Path(preview).absolute().parents):
        written.add(Path(preview).absolute().relative_to(out).as_posix())
    write_json(work / MARKER, {**params, "files": sorted(written)})
    with atomic_dir(out, overwrite=out.exists()) as tmp:
        tmp.rmdir()
        os.replace(work, tmp)
    if preview is not None:
        from nnunet_filternet.phantom.preview import write_preview

        write_preview(out, preview)
    return out
