"""Reading scans in every supported format, and clear errors for bad inputs
(nnunet_filternet.dataset_conversion.readers)."""

from __future__ import annotations

import re

import numpy as np
import pytest
import SimpleITK as sitk

from nnunet_filternet.dataset_conversion.readers import find_scans, read_label, read_scan
from nnunet_filternet.errors import InputError
from tests.scan_fixtures import ScanSpec, draw, write_dicom_series

SPEC = ScanSpec(size=(24, 16, 5), spacing=(10.0, 10.0, 8.0), half_distance_mm=55.0)


@pytest.fixture(scope="module")
def scan():
    return draw(SPEC)


def test_every_format_reads_to_the_same_voxels_and_grid(tmp_path, scan):
    image = sitk.Cast(scan.image, sitk.sitkInt16)
    for name, ext in (("a", ".nii.gz"), ("b", ".nii"), ("c", ".nrrd"), ("d", ".mha"), ("e", ".mhd")):
        sitk.WriteImage(image, str(tmp_path / f"{name}{ext}"))
    write_dicom_series(image, tmp_path / "f")
    (tmp_path / "notes.txt").write_text("not a scan")
    found = find_scans(tmp_path)
    assert list(found) == ["a", "b", "c", "d", "e", "f"]  # .raw of the .mhd and notes.txt are not scans
    expected = sitk.GetArrayFromImage(image)
    for name, path in found.items():
        got = read_scan(path)
        np.testing.assert_array_equal(sitk.GetArrayFromImage(got), expected, err_msg=name)
        np.testing.assert_allclose(got.GetSpacing(), image.GetSpacing(), atol=1e-4, err_msg=name)
        np.testing.assert_allclose(got.GetOrigin(), image.GetOrigin(), atol=1e-4, err_msg=name)
        np.testing.assert_allclose(got.GetDirection(), image.GetDirection(), atol=1e-5, err_msg=name)


def test_dicom_series_with_a_missing_slice_is_rejected(tmp_path, scan):
    files = write_dicom_series(scan.image, tmp_path / "sub")
    assert read_scan(tmp_path / "sub").GetSize() == SPEC.size
    files[2].unlink()
    with pytest.raises(InputError, match=r"sub: DICOM series has missing slices.*every 8\.00 mm.*16\.00 mm"):
        read_scan(tmp_path / "sub")


@pytest.mark.parametrize("ext", [".nii.gz", ".nrrd"])  # ITK reads NIfTI NaN as 0: checked with nibabel
def test_nan_intensities_are_rejected(tmp_path, scan, ext):
    arr = sitk.GetArrayFromImage(scan.image)
    arr[1, 2, 3] = np.nan
    arr[2, 2, 3] = np.inf
    bad = sitk.GetImageFromArray(arr)
    bad.CopyInformation(scan.image)
    sitk.WriteImage(bad, str(tmp_path / f"nan{ext}"))
    with pytest.raises(InputError, match=rf"nan{re.escape(ext)}: expected finite intensities, found 2 NaN"):
        read_scan(tmp_path / f"nan{ext}")


def test_label_map_on_another_grid_is_rejected(tmp_path, scan):
    shifted = sitk.Image(scan.label)
    shifted.SetOrigin([o + 2.0 for o in scan.label.GetOrigin()])
    sitk.WriteImage(shifted, str(tmp_path / "lab.nii.gz"))
    with pytest.raises(InputError, match=r"lab\.nii\.gz: label map does not cover the same voxels as img.*: shifted"):
        read_label(tmp_path / "lab.nii.gz", scan.image, tmp_path / "img.nii.gz")
    sitk.WriteImage(scan.label[:, :, :4], str(tmp_path / "short.nii.gz"))
    with pytest.raises(InputError, match=r"short\.nii\.gz: label map does not .*size \(24, 16, 4\) against"):
        read_label(tmp_path / "short.nii.gz", scan.image, tmp_path / "img.nii.gz")


def test_label_values_outside_0_to_5_are_rejected(tmp_path, scan):
    arr = sitk.GetArrayFromImage(scan.label)
    arr[0, 0, :2] = (7, 9)
    bad = sitk.GetImageFromArray(arr)
    bad.CopyInformation(scan.label)
    sitk.WriteImage(bad, str(tmp_path / "lab.nii.gz"))
    with pytest.raises(InputError, match=r"lab\.nii\.gz: expected label values \[0, 1, 2, 3, 4, 5\].*found \[7, 9\]"):
        read_label(tmp_path / "lab.nii.gz", scan.image, tmp_path / "img.nii.gz")
    good = read_label(_write(scan.label, tmp_path / "ok.nrrd"), scan.image, tmp_path / "img.nii.gz")
    assert good.GetPixelID() == sitk.sitkUInt8


def test_two_files_for_one_subject_and_empty_folders_are_rejected(tmp_path, scan):
    with pytest.raises(InputError, match="expected a folder of scans"):
        find_scans(tmp_path / "missing")
    with pytest.raises(InputError, match="no scans found"):
        find_scans(tmp_path)
    _write(scan.image, tmp_path / "s1.nii.gz")
    _write(scan.image, tmp_path / "s1.nrrd")
    with pytest.raises(InputError, match=r"two inputs for subject 's1'"):
        find_scans(tmp_path)


def test_a_scan_named_as_nnunet_names_its_inputs_is_its_subject(tmp_path, scan):
    """``<subject>_0000.nii.gz`` (nnU-Net's imagesTr / imagesTs) is subject ``<subject>``; beside ``<subject>.nii.gz``
    it is a second input for that subject. Only the whole suffix counts."""
    for name in ("s1_0000.nii.gz", "s2_0001.nii.gz", "_0000.nii.gz", "s3.nii.gz"):
        _write(scan.image, tmp_path / name)
    assert list(find_scans(tmp_path)) == ["_0000", "s1", "s2_0001", "s3"]
    _write(scan.image, tmp_path / "s3_0000.nrrd")
    with pytest.raises(InputError, match=r"two inputs for subject 's3': s3.nii.gz and s3_0000.nrrd"):
        find_scans(tmp_path)


def test_unreadable_and_2d_files_are_rejected(tmp_path, scan):
    (tmp_path / "junk.nii.gz").write_bytes(b"not an image")
    with pytest.raises(InputError, match=r"junk\.nii\.gz: truncated or corrupt scan file: the gzip stream fails"):
        read_scan(tmp_path / "junk.nii.gz")
    with pytest.raises(InputError, match=r"flat\.nii\.gz: expected a 3D scan, found 2D"):
        read_scan(_write(scan.image[:, :, 0], tmp_path / "flat.nii.gz"))


def _write(image, path):
    sitk.WriteImage(image, str(path))
    return path
