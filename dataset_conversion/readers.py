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

#: File extensions read as single-file images (longest first, so ``.nii.gz`` wins over ``.gz``).
EXTENSIONS: tuple[str, ...] = (".nii.gz", ".nii", ".nrrd", ".mha", ".mhd")

#: Tolerances when comparing a label map's grid with its image's: mm for origin and spacing, unitless
#: for direction cosines.
GEOMETRY_TOLERANCE_MM = 1e-3
DIRECTION_TOLERANCE = 1e-4

#: A gap between neighbouring DICOM slices larger than this times the smallest gap means missing slices.
DICOM_GAP_FACTOR = 1.5


def subject_name(path: Path) -> str | None:
    """The subject name of a scan file or DICOM folder, or None if ``path`` is not a supported input."""
    if path.name.startswith("."):
        return None
    if path.is_dir():
        return path.name
    for ext in EXTENSIONS:
        if path.name.lower().endswith(ext):
            return path.name[: -len(ext)]
    return None


def find_scans(folder: Path) -> dict[str, Path]:
    """Scans in ``folder`` by subject name, sorted by name.

    Raises:
        InputError: ``folder`` is missing, holds no supported scan, or two files have the same subject name.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(folder, "expected a folder of scans (.nii, .nii.gz, .nrrd, .mha, .mhd, DICOM folders)")
    found: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        name = subject_name(path)
        if name is None:
            continue
        if name in found:
            raise InputError(path, f"two inputs for subject {name!r}: {found[name].name} and {path.name}")
        found[name] = path
    if not found:
        raise InputError(folder, "no scans found (expected .nii, .nii.gz, .nrrd, .mha, .mhd files or DICOM folders)")
    return dict(sorted(found.items()))


def read_scan(path: Path) -> sitk.Image:
    """Read a 3D scalar scan (file or DICOM series folder) and check that its intensities are finite.

    Raises:
        InputError: unreadable file, not 3D, not scalar, NaN or infinite intensities, or a DICOM series
            with missing slices.
    """
    path = Path(path)
    image = read_dicom_series(path) if path.is_dir() else _read_file(path)
    check_scalar_3d(image, path)
    check_finite(image, path)
    if path.name.lower().endswith((".nii", ".nii.gz")):
        check_nifti_finite(path)
    return image


def _read_file(path: Path) -> sitk.Image:
    try:
        return sitk.ReadImage(str(path))
    except RuntimeError as e:
        reason = str(e).strip().splitlines()[-1] if str(e).strip() else "unknown reason"
        raise InputError(path, f"cannot be read as an image ({reason})") from None


def read_dicom_series(folder: Path) -> sitk.Image:
    """Read the one DICOM series in ``folder``, slices sorted by position (GDCM), checking for gaps.

    Raises:
        InputError: no series, several series, or slices missing (a gap between neighbouring slice
            positions larger than :data:`DICOM_GAP_FACTOR` times the smallest gap).
    """
    series = sitk.ImageSeriesReader.GetGDCMSeriesIDs(str(folder))
    if not series:
        raise InputError(folder, "expected a DICOM series in this folder, found none")
    if len(series) > 1:
        raise InputError(folder, f"expected one DICOM series in this folder, found {len(series)}: {list(series)}")
    files = sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(folder), series[0])
    check_slice_gaps([_slice_position(f) for f in files], folder)
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(files)
    try:
        return reader.Execute()
    except RuntimeError as e:
        raise InputError(folder, f"DICOM series cannot be read ({str(e).strip().splitlines()[-1]})") from None


def _slice_position(file: str) -> np.ndarray:
    """ImagePositionPatient (0020|0032) of one DICOM file, mm."""
    reader = sitk.ImageFileReader()
    reader.SetFileName(file)
    reader.ReadImageInformation()
    if not reader.HasMetaDataKey("0020|0032"):
        raise InputError(file, "DICOM file without ImagePositionPatient (0020|0032)")
    return np.array([float(v) for v in reader.GetMetaData("0020|0032").split("\\")])


def check_slice_gaps(positions: list[np.ndarray], folder: Path) -> None:
    """Raise if the distances between consecutive slice positions (mm) show missing slices.

    Args:
        positions: Slice positions in the order GDCM sorted them, each (3,) in mm. Two coincident
            slices (gap 0) are an error too.
        folder: The series folder (for the message).
    """
    if len(positions) < 3:
        return
    gaps = np.linalg.norm(np.diff(np.asarray(positions), axis=0), axis=1)
    typical = float(gaps.min())
    if typical <= 1e-6:
        raise InputError(folder, f"DICOM series has two slices at one position (slice {int(gaps.argmin()) + 1})")
    bad = np.flatnonzero(gaps > DICOM_GAP_FACTOR * typical)
    if bad.size:
        where = ", ".join(f"after slice {i + 1} ({gaps[i]:.2f} mm)" for i in bad[:5])
        raise InputError(
            folder,
            f"DICOM series has missing slices: expected slices every {typical:.2f} mm, found gaps {where}",
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


def check_finite(image: sitk.Image, path: Path) -> None:
    """Raise if ``image`` holds NaN or infinite intensities."""
    arr = sitk.GetArrayViewFromImage(image)
    if np.issubdtype(arr.dtype, np.floating):
        bad = int(np.count_nonzero(~np.isfinite(arr)))
        if bad:
            raise InputError(path, f"expected finite intensities, found {bad} NaN or infinite voxels")


def check_nifti_finite(path: Path) -> None:
    """Raise if a float NIfTI file stores NaN or infinite values.

    ITK's NIfTI reader silently turns NaN into 0, so :func:`check_finite` cannot see them; the raw values
    are read with nibabel (an nnU-Net dependency), and only for floating-point files.
    """
    import nibabel

    nii = nibabel.load(str(path))
    if nii.header.get_data_dtype().kind != "f":
        return
    bad = int(np.count_nonzero(~np.isfinite(np.asanyarray(nii.dataobj))))
    if bad:
        raise InputError(path, f"expected finite intensities, found {bad} NaN or infinite voxels")


def read_label(path: Path, image: sitk.Image, image_path: Path) -> sitk.Image:
    """Read a label map, check it against its image, return it as uint8.

    Raises:
        InputError: unreadable, grid (size, spacing, origin, direction) differs from the image's,
            non-integer values, or values outside the labels 0..5.
    """
    path = Path(path)
    label = read_dicom_series(path) if path.is_dir() else _read_file(path)
    check_scalar_3d(label, path)
    check_same_grid(label, image, path, image_path)
    arr = sitk.GetArrayViewFromImage(label)
    if np.issubdtype(arr.dtype, np.floating) and not np.all(np.isfinite(arr) & (arr == np.round(arr))):
        raise InputError(path, "expected integer label values, found non-integer or NaN values")
    allowed = sorted(LABELS.values())
    values = np.unique(arr)
    outside = [v.item() for v in values if v not in allowed]
    if outside:
        raise InputError(path, f"expected label values {allowed} (0 background, 1 TA ... 5 PL), found {outside}")
    return sitk.Cast(label, sitk.sitkUInt8)


def check_same_grid(label: sitk.Image, image: sitk.Image, label_path: Path, image_path: Path) -> None:
    """Raise if two images do not share one voxel grid (size, spacing, origin, direction)."""
    checks = (
        ("size", label.GetSize(), image.GetSize(), 0),
        ("spacing", label.GetSpacing(), image.GetSpacing(), GEOMETRY_TOLERANCE_MM),
        ("origin", label.GetOrigin(), image.GetOrigin(), GEOMETRY_TOLERANCE_MM),
        ("direction", label.GetDirection(), image.GetDirection(), DIRECTION_TOLERANCE),
    )
    for what, found, expected, tol in checks:
        if not np.allclose(found, expected, rtol=0, atol=tol):
            raise InputError(
                label_path,
                f"label map {what} {_fmt(found)} differs from its image {Path(image_path).name} ({_fmt(expected)})",
            )


def _fmt(values) -> str:
    return "(" + ", ".join(f"{v:g}" for v in values) + ")"


def geometry_of(image: sitk.Image) -> dict:
    """The grid of ``image`` as JSON-ready lists (size, spacing mm, origin mm, direction row-major) + pixel type."""
    return {
        "size": list(image.GetSize()),
        "spacing": list(image.GetSpacing()),
        "origin": list(image.GetOrigin()),
        "direction": list(image.GetDirection()),
        "pixel_type": image.GetPixelIDTypeAsString(),
    }
