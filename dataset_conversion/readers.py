"""Find and read scans and label maps; reject bad ones with an :class:`InputError` naming the file.

Supported inputs: NIfTI (``.nii``, ``.nii.gz``), NRRD (``.nrrd``), MetaImage (``.mha``, ``.mhd``) and DICOM
series folders (a sub-folder of the images folder holding one series). The subject name is the file name
without its extension (the folder name for DICOM).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import SimpleITK as sitk

from nnunet_filternet.errors import InputError
from nnunet_filternet.labels import LABELS
from nnunet_filternet.utils.geometry import array_on_grid
from nnunet_filternet.utils.image_io import check_finite, image_extension, read_image

#: A gap between neighbouring DICOM slices larger than this times the most common gap means missing slices.
DICOM_GAP_FACTOR = 1.5

#: Every gap between neighbouring DICOM slices must lie within this share of the most common gap (or
#: :data:`DICOM_GAP_MIN_TOLERANCE_MM`, whichever is larger): the series is read on a regular grid, so unequal
#: gaps (7, 7, 7, 10 mm) would put slices where they were not acquired.
DICOM_GAP_TOLERANCE = 0.01
DICOM_GAP_MIN_TOLERANCE_MM = 0.01

#: Files a DICOM series folder may hold besides the series' slices.
DICOM_EXTRAS = ("DICOMDIR",)


#: nnU-Net's suffix of a first (here the only) channel: ``<subject>_0000.nii.gz`` (imagesTr, imagesTs) is ``<subject>``.
CHANNEL_SUFFIX = "_0000"


def subject_name(path: Path) -> str | None:
    """The subject name of a scan file or DICOM folder, or None if ``path`` is not a supported input.

    A file named as nnU-Net names its inputs, ``<subject>_0000.nii.gz``, is subject ``<subject>``: its label map and
    its prediction are ``<subject>.nii.gz`` (so ``<subject>.nii.gz`` and ``<subject>_0000.nii.gz`` side by side
    are two inputs for one subject).
    """
    if path.name.startswith("."):
        return None
    if path.is_dir():
        return path.name
    ext = image_extension(path)
    if not ext:
        return None
    stem = path.name[: -len(ext)]
    return stem[: -len(CHANNEL_SUFFIX)] if stem.endswith(CHANNEL_SUFFIX) and len(stem) > len(CHANNEL_SUFFIX) else stem


def is_dicom_series_folder(path: Path) -> bool:
    """True if ``path`` is a folder in which GDCM finds at least one DICOM series."""
    return path.is_dir() and bool(sitk.ImageSeriesReader.GetGDCMSeriesIDs(str(path)))


def scan_inputs(folder: Path) -> tuple[dict[str, Path], list[Path]]:
    """(scans by subject name, sub-folders that hold no DICOM series and were skipped).

    Only folders in which GDCM finds a DICOM series are scans; any other sub-folder (an ``nnUNet_raw``, a
    notes folder) is not a subject and is returned in the second list so the caller can name it.

    Raises:
        InputError: ``folder`` is missing, holds no supported scan, or two inputs have the same subject name.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(folder, "expected a folder of scans (.nii, .nii.gz, .nrrd, .mha, .mhd, DICOM folders)")
    found: dict[str, Path] = {}
    skipped: list[Path] = []
    for path in sorted(folder.iterdir()):
        name = subject_name(path)
        if name is None:
            continue
        if path.is_dir() and not is_dicom_series_folder(path):
            skipped.append(path)
            continue
        if name in found:
            raise InputError(path, f"two inputs for subject {name!r}: {found[name].name} and {path.name}")
        found[name] = path
    if not found:
        where = f" (sub-folders without a DICOM series: {', '.join(p.name for p in skipped)})" if skipped else ""
        raise InputError(
            folder, f"no scans found (expected .nii, .nii.gz, .nrrd, .mha, .mhd files or DICOM folders){where}"
        )
    return dict(sorted(found.items())), skipped


def find_scans(folder: Path) -> dict[str, Path]:
    """Scans in ``folder`` by subject name, sorted by name (:func:`scan_inputs` without the skipped folders)."""
    return scan_inputs(folder)[0]


def read_scan(path: Path) -> sitk.Image:
    """Read a 3D scalar scan (file or DICOM series folder): complete, finite voxels.

    Raises:
        InputError: unreadable or truncated file, not 3D, not scalar, NaN or infinite intensities, or a DICOM
            series with missing, unreadable or truncated slices.
    """
    path = Path(path)
    image = read_dicom_series(path) if path.is_dir() else read_image(path, "scan")
    check_scalar_3d(image, path)
    return image


def read_dicom_series(folder: Path) -> sitk.Image:
    """Read the one DICOM series in ``folder``, slices sorted by position (GDCM), checking for gaps.

    Every file of the folder must be a slice of the series: GDCM leaves out a truncated or unreadable file
    without a word, which at either end of the stack would go unnoticed as a shorter scan.

    Raises:
        InputError: no series, several series, files that are not slices of the series, or unequal slice gaps
            (:func:`check_slice_gaps`: missing slices, or gaps that differ from the most common by more than
            :data:`DICOM_GAP_TOLERANCE`).
    """
    series = sitk.ImageSeriesReader.GetGDCMSeriesIDs(str(folder))
    if not series:
        raise InputError(folder, "expected a DICOM series in this folder, found none")
    if len(series) > 1:
        raise InputError(folder, f"expected one DICOM series in this folder, found {len(series)}: {list(series)}")
    files = sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(folder), series[0])
    check_series_files(folder, files)
    check_slice_gaps([_slice_position(f) for f in files], folder, series[0])
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(files)
    try:
        image = reader.Execute()
    except RuntimeError as e:
        raise InputError(folder, f"DICOM series cannot be read ({str(e).strip().splitlines()[-1]})") from None
    check_finite(image, folder)
    return image


def check_series_files(folder: Path, series_files) -> None:
    """Raise if ``folder`` holds files that are not in ``series_files`` (unreadable, truncated or foreign)."""
    in_series = {Path(f).name for f in series_files}
    others = sorted(
        p.name
        for p in Path(folder).iterdir()
        if p.is_file() and not p.name.startswith(".") and p.name not in in_series and p.name not in DICOM_EXTRAS
    )
    if others:
        shown = ", ".join(others[:5]) + (f", ... ({len(others)} in all)" if len(others) > 5 else "")
        raise InputError(
            folder,
            f"expected every file to be a slice of the DICOM series ({len(in_series)} slices), found {len(others)} "
            f"file(s) that are not (unreadable, truncated or from another series): {shown}",
        )


def _slice_position(file: str) -> np.ndarray:
    """ImagePositionPatient (0020|0032) of one DICOM file, mm."""
    reader = sitk.ImageFileReader()
    reader.SetFileName(file)
    reader.ReadImageInformation()
    if not reader.HasMetaDataKey("0020|0032"):
        raise InputError(file, "DICOM file without ImagePositionPatient (0020|0032)")
    return np.array([float(v) for v in reader.GetMetaData("0020|0032").split("\\")])


def check_slice_gaps(positions: list[np.ndarray], folder: Path, series: str = "") -> None:
    """Raise unless consecutive slice positions (mm) are equally spaced: no missing slices, no unequal gaps.

    Every gap must lie within :data:`DICOM_GAP_TOLERANCE` (1 %) of the most common gap (the gap that most
    gaps agree with to that tolerance; ties: the smallest, so a series missing slices is measured by its
    regular gap), or :data:`DICOM_GAP_MIN_TOLERANCE_MM` if that is larger; two coincident slices (gap 0) are an
    error too.

    Args:
        positions: Slice positions in the order GDCM sorted them, each (3,) in mm.
        folder: The series folder (for the message).
        series: The series instance UID (for the message).
    """
    if len(positions) < 3:
        return
    gaps = np.linalg.norm(np.diff(np.asarray(positions), axis=0), axis=1)
    uid = f" (series {series})" if series else ""
    if float(gaps.min()) <= 1e-6:
        raise InputError(folder, f"DICOM series has two slices at one position (slice {int(gaps.argmin()) + 1}){uid}")
    tolerances = np.maximum(DICOM_GAP_TOLERANCE * gaps, DICOM_GAP_MIN_TOLERANCE_MM)
    agreeing = (np.abs(gaps[None, :] - gaps[:, None]) <= tolerances[:, None]).sum(axis=1)
    typical = float(gaps[np.flatnonzero(agreeing == agreeing.max())].min())  # the most common gap
    tolerance = max(DICOM_GAP_TOLERANCE * typical, DICOM_GAP_MIN_TOLERANCE_MM)
    bad = np.flatnonzero(np.abs(gaps - typical) > tolerance)
    if bad.size:
        what = "missing slices" if gaps[bad].max() > DICOM_GAP_FACTOR * typical else "unequal slice gaps"
        where = ", ".join(f"after slice {i + 1} ({gaps[i]:.2f} mm)" for i in bad[:5])
        more = f" and {bad.size - 5} more" if bad.size > 5 else ""
        raise InputError(
            folder,
            f"DICOM series has {what}: expected slices every {typical:.2f} mm (the most common gap; each gap within "
            f"{tolerance:.2f} mm of it), found gaps {where}{more}{uid}",
        )


def check_scalar_3d(image: sitk.Image, path: Path) -> None:
    """Raise unless ``image`` is a 3D single-channel image."""
    if image.GetDimension() != 3:
        raise InputError(path, f"expected a 3D image, found {image.GetDimension()}D of size {image.GetSize()}")
    if image.GetNumberOfComponentsPerPixel() != 1:
        raise InputError(
            path, f"expected a single-channel image, found {image.GetNumberOfComponentsPerPixel()} components"
        )
    if min(image.GetSize()) < 2:
        raise InputError(path, f"expected at least 2 voxels along each axis, found size {image.GetSize()}")


def read_label(path: Path, image: sitk.Image, image_path: Path) -> sitk.Image:
    """Read a label map, lay it onto its image's voxel grid, return it as uint8 with the image's geometry.

    A label map stored with other axis flips or order than its image (RAS- against LPS-stored) is reordered by
    index, exactly; any other difference of grid (size, spacing, origin, direction) is an error
    (:mod:`nnunet_filternet.utils.geometry`).

    Raises:
        InputError: unreadable or truncated, another grid, non-integer values, or values outside the labels 0..5.
    """
    path = Path(path)
    label = read_dicom_series(path) if path.is_dir() else read_image(path, "label map")
    check_scalar_3d(label, path)
    arr = array_on_grid(label, image, path, image_path, "label map")
    if np.issubdtype(arr.dtype, np.floating) and not np.all(arr == np.round(arr)):
        raise InputError(path, "expected integer label values, found non-integer values")
    allowed = sorted(LABELS.values())
    values = np.unique(arr)
    outside = [v.item() for v in values if v not in allowed]
    if outside:
        raise InputError(path, f"expected label values {allowed} (0 background, 1 TA ... 5 PL), found {outside}")
    out = sitk.GetImageFromArray(arr.astype(np.uint8))
    out.CopyInformation(image)
    return out


def geometry_of(image: sitk.Image) -> dict:
    """The grid of ``image`` as JSON-ready lists (size, spacing mm, origin mm, direction row-major) + pixel type."""
    return {
        "size": list(image.GetSize()),
        "spacing": list(image.GetSpacing()),
        "origin": list(image.GetOrigin()),
        "direction": list(image.GetDirection()),
        "pixel_type": image.GetPixelIDTypeAsString(),
    }
