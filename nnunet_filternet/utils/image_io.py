"""Reading image files for every verb: complete, finite, or an :class:`InputError` naming the file.

SimpleITK reads a NIfTI file that is shorter than its header says (a ``.nii`` cut short, a ``.nii.gz`` whose
gzip stream ends early) without complaint and fills the missing voxels with zeros; it also turns NaN into 0
in NIfTI files. So before SimpleITK reads a file, :func:`check_complete` measures the voxel data that is
really there against what the header promises:

- NIfTI (``.nii``, ``.nii.gz``): the header (nibabel) gives the data offset, shape and type; a ``.nii.gz``
  is decompressed once, to its end (a truncated or corrupt gzip stream fails there), and float data are
  checked for NaN and infinity on the way. The voxel size (``pixdim``) of every spatial axis must be a
  positive finite number: ITK reads a 0 (or NaN) as 1 mm and a negative size as its absolute value, which
  would make every volume wrong without a word;
- MetaImage (``.mha``, ``.mhd`` + data file): the header's ``DimSize``, ``ElementType`` and channels against
  the bytes after the header (or, with ``CompressedData``, against the inflated zlib stream);
- NRRD: ITK's own reader already fails on short data, with a message saying how much it found.

Every reader error becomes one line: the file, what was expected, what was found. DICOM series are read in
:mod:`nnunet_filternet.dataset_conversion.readers`.
"""

from __future__ import annotations

import gzip
import math
import os
import zlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from nnunet_filternet.errors import InputError

#: File endings read as single-file images, longest first (so ``.nii.gz`` wins over ``.gz``).
IMAGE_EXTENSIONS: tuple[str, ...] = (".nii.gz", ".nii", ".nrrd", ".mha", ".mhd")

#: Bytes per voxel of MetaImage element types.
_MET_BYTES = {
    "MET_CHAR": 1, "MET_UCHAR": 1, "MET_SHORT": 2, "MET_USHORT": 2, "MET_INT": 4, "MET_UINT": 4, "MET_LONG": 4,
    "MET_ULONG": 4, "MET_LONG_LONG": 8, "MET_ULONG_LONG": 8, "MET_FLOAT": 4, "MET_DOUBLE": 8,
}  # fmt: skip

_CHUNK = 1 << 22


def image_extension(path: str | os.PathLike) -> str | None:
    """The supported image ending of ``path`` (``.nii.gz``, ``.nii``, ...), or None."""
    name = Path(path).name.lower()
    return next((ext for ext in IMAGE_EXTENSIONS if name.endswith(ext) and len(name) > len(ext)), None)


def read_image(path: str | os.PathLike, what: str = "image", pixel_type=None):
    """Read one image file with SimpleITK after :func:`check_complete`; float voxels must be finite.

    Args:
        path: the file (any format SimpleITK reads; the checks cover NIfTI and MetaImage, see module docs).
        what: what the file should be, for messages ("label map", "leg prediction", ...).
        pixel_type: optional SimpleITK pixel type to read as (e.g. ``sitk.sitkFloat32``).

    Returns:
        The ``SimpleITK.Image``: 3D, one value per voxel (every image of this project is).

    Raises:
        InputError: missing, truncated or corrupt file, a format SimpleITK cannot read, not 3D, more than one
            component per voxel, NaN or infinite voxels.
    """
    import SimpleITK as sitk

    path = Path(path)
    if not path.is_file():
        raise InputError(path, f"expected a {what} file, found {'a folder' if path.is_dir() else 'nothing'}")
    check_complete(path, what)
    try:
        image = sitk.ReadImage(str(path)) if pixel_type is None else sitk.ReadImage(str(path), pixel_type)
    except RuntimeError as e:
        raise InputError(path, f"the {what} file cannot be read ({reader_reason(e)})") from None
    if image.GetDimension() != 3:
        raise InputError(path, f"expected a 3D {what}, found {image.GetDimension()}D of size {image.GetSize()}")
    if image.GetNumberOfComponentsPerPixel() != 1:
        raise InputError(
            path, f"expected a single-channel {what}, found {image.GetNumberOfComponentsPerPixel()} components"
        )
    check_finite(image, path)
    return image


def reader_reason(error: Exception) -> str:
    """The informative line of an ITK reader exception (its last line, or NRRD's detail line)."""
    lines = [line.strip() for line in str(error).strip().splitlines() if line.strip()]
    if not lines:
        return "unknown reason"
    detail = [line for line in lines if "expected" in line or "got only" in line]
    return (detail or lines)[-1]


def check_finite(image, path: str | os.PathLike) -> None:
    """Raise if a floating-point ``image`` holds NaN or infinite voxels."""
    import SimpleITK as sitk

    arr = sitk.GetArrayViewFromImage(image)
    if np.issubdtype(arr.dtype, np.floating):
        bad = int(np.count_nonzero(~np.isfinite(arr)))
        if bad:
            raise InputError(path, f"expected finite intensities, found {bad} NaN or infinite voxels")


def check_complete(path: str | os.PathLike, what: str = "image") -> None:
    """Raise unless the file holds all the voxel data its header announces (NIfTI and MetaImage; see module docs)."""
    ext = image_extension(path)
    if ext in (".nii", ".nii.gz"):
        _check_nifti(Path(path), what)
    elif ext in (".mha", ".mhd"):
        _check_metaimage(Path(path), what)


# ---- NIfTI ----------------------------------------------------------------------------------------------


def _check_nifti(path: Path, what: str) -> None:
    """Header via nibabel; data length (and, for float data, finiteness) from one pass over the bytes."""
    import nibabel

    try:
        pixdim = _stored_pixdim(path)
        if all(math.isfinite(v) and v > 0 for v in pixdim):
            proxy = nibabel.load(str(path)).dataobj
            offset, dtype, shape = int(proxy.offset), np.dtype(proxy.dtype), tuple(proxy.shape)
    except Exception as e:  # nibabel raises many types for damaged headers  # noqa: BLE001
        if path.name.lower().endswith(".gz"):
            for _ in _nifti_bytes(path, what):  # a truncated stream says so
                pass
        raise InputError(path, f"the NIfTI {what} file cannot be read (header: {_short(e)})") from None
    if not all(math.isfinite(v) and v > 0 for v in pixdim):
        raise InputError(
            path,
            f"the NIfTI header gives voxel size (pixdim) {' x '.join(f'{v:g}' for v in pixdim)} mm: expected a "
            "positive size along every axis (ITK would read 0 or NaN as 1 mm, a negative size as its absolute value)",
        )
    expected = math.prod(shape) * dtype.itemsize
    floating = dtype.kind == "f"
    if not floating and not path.name.lower().endswith(".gz"):
        found = max(0, path.stat().st_size - offset)  # plain .nii: the file size says it all
        nan_count = 0
    else:
        found, nan_count = _scan_data(_nifti_bytes(path, what), offset, expected, dtype if floating else None)
    if found < expected:
        raise _truncated(path, what, expected, found, shape, dtype)
    if nan_count:
        raise InputError(path, f"expected finite intensities, found {nan_count} NaN or infinite voxels")


def _stored_pixdim(path: Path) -> list[float]:
    """Voxel sizes of the spatial axes as stored in a NIfTI-1 or -2 header (nibabel's loader would "fix" them)."""
    import nibabel

    with nibabel.openers.ImageOpener(str(path)) as f:
        first = f.read(4)
    sizes = {int.from_bytes(first, "little"), int.from_bytes(first, "big")}
    header_class = nibabel.Nifti2Header if 540 in sizes else nibabel.Nifti1Header
    with nibabel.openers.ImageOpener(str(path)) as f:
        header = header_class.from_fileobj(f, check=False)
    spatial = min(int(header["dim"][0]), 3)
    return [float(v) for v in header["pixdim"][1 : 1 + spatial]]


def _nifti_bytes(path: Path, what: str) -> Iterator[bytes]:
    """The file's (decompressed) bytes in chunks; a truncated or corrupt gzip stream is an InputError."""
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    try:
        with opener(path, "rb") as f:
            while chunk := f.read(_CHUNK):
                yield chunk
    except (EOFError, OSError, zlib.error) as e:
        raise InputError(path, f"truncated or corrupt {what} file: the gzip stream fails ({_short(e)})") from None


def _scan_data(chunks: Iterator[bytes], offset: int, expected: int, float_dtype) -> tuple[int, int]:
    """(voxel data bytes after ``offset``, NaN/inf count among the first ``expected`` bytes if float)."""
    skipped, found, bad, rest = 0, 0, 0, b""
    for chunk in chunks:
        if skipped < offset:
            take = min(len(chunk), offset - skipped)
            skipped += take
            chunk = chunk[take:]
        found += len(chunk)
        if float_dtype is not None and chunk:
            data = rest + chunk[: max(0, expected - (found - len(chunk)))]
            usable = len(data) - len(data) % float_dtype.itemsize
            values = np.frombuffer(data[:usable], dtype=float_dtype)
            bad += int(np.count_nonzero(~np.isfinite(values)))
            rest = data[usable:]
    return found, bad


# ---- MetaImage ------------------------------------------------------------------------------------------


def _check_metaimage(path: Path, what: str) -> None:
    """Data bytes after a MetaImage header (``.mha``) or in its data file (``.mhd``) against DimSize x type."""
    header, data_offset = _metaimage_header(path, what)
    try:
        dims = [int(v) for v in header["DimSize"].split()]
        expected = math.prod(dims) * int(header.get("ElementNumberOfChannels", "1")) * _MET_BYTES[header["ElementType"]]
    except (KeyError, ValueError):
        return  # an unusual header: ITK's reader decides
    data_file = header.get("ElementDataFile", "")
    if data_file == "LOCAL":
        data_path = path
    elif data_file and " " not in data_file and "%" not in data_file and data_file != "LIST":
        data_path = path.parent / data_file
        data_offset = max(0, int(header.get("HeaderSize", "0") or 0))
        if not data_path.is_file():
            raise InputError(path, f"the {what}'s data file {data_file} is missing")
    else:
        return  # file lists and patterns: ITK's reader decides
    if header.get("CompressedData", "False").lower() == "true":
        found, complete = _inflated_size(data_path, data_offset)
        if not complete:
            raise InputError(
                path, f"truncated {what} file: its compressed voxel data end early ({found} of {expected} bytes)"
            )
    else:
        found = max(0, data_path.stat().st_size - data_offset)
    if found < expected:
        where = "" if data_path == path else f" in its data file {data_path.name}"
        raise _truncated(path, what, expected, found, tuple(dims), header["ElementType"], where)


def _metaimage_header(path: Path, what: str) -> tuple[dict[str, str], int]:
    """Header fields of a MetaImage file and the byte offset just after ``ElementDataFile = ...``."""
    header, offset = {}, 0
    try:
        with open(path, "rb") as f:
            for raw in f:
                offset += len(raw)
                key, _, value = raw.decode("latin-1").partition("=")
                header[key.strip()] = value.strip()
                if key.strip() == "ElementDataFile" or offset > 1 << 16:
                    break
    except OSError as e:
        raise InputError(path, f"the {what} file cannot be read ({e.strerror})") from None
    return header, offset


def _inflated_size(path: Path, offset: int) -> tuple[int, bool]:
    """(bytes inflated from the zlib stream at ``offset``, whether the stream reached its end)."""
    inflate = zlib.decompressobj()
    total = 0
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            while chunk := f.read(_CHUNK):
                total += len(inflate.decompress(chunk))
                if inflate.eof:
                    break
    except zlib.error:
        return total, False
    return total, inflate.eof


# ---- messages -------------------------------------------------------------------------------------------


def _truncated(path: Path, what: str, expected: int, found: int, shape, dtype, where: str = "") -> InputError:
    share = 100.0 * found / expected if expected else 0.0
    return InputError(
        path,
        f"truncated {what} file: the header announces {expected} bytes of voxel data ({' x '.join(map(str, shape))}"
        f" {dtype}), found {found}{where} ({share:.0f} %)",
    )


def _short(error: Exception) -> str:
    text = str(error).strip().splitlines()
    return (text[-1] if text else type(error).__name__)[:200]
