"""Truncated and damaged image files are bad input for every verb, never zero-filled voxels (issue 12, class 2).

SimpleITK reads a NIfTI file cut short without complaint and fills the missing voxels with zeros; GDCM leaves a
truncated DICOM slice out of its series. Each reader must say which file is short instead.
"""

from __future__ import annotations

import gzip
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from nnunet_filternet.dataset_conversion.readers import read_label, read_scan
from nnunet_filternet.dataset_conversion.records import load_records
from nnunet_filternet.dataset_conversion.restore import read_leg_prediction
from nnunet_filternet.errors import InputError
from nnunet_filternet.metrics.label_maps import read_label_map
from tests.conftest import run_cli
from tests.scan_fixtures import ScanSpec, draw, write_dicom_series, write_scans

SPEC = ScanSpec(size=(24, 16, 6), spacing=(10.0, 10.0, 8.0), half_distance_mm=55.0)

#: (extension, compressed): every single-file format the verbs read.
FORMATS = [(".nii.gz", True), (".nii", False), (".nrrd", False), (".nrrd", True), (".mha", False),
           (".mha", True), (".mhd", False)]  # fmt: skip
PIXELS = {"int16": sitk.sitkInt16, "float32": sitk.sitkFloat32, "uint8": sitk.sitkUInt8}


def truncate(path: Path, keep: float) -> Path:
    """Cut the file holding ``path``'s voxels (the .raw of an .mhd) to ``keep`` of its length."""
    data_file = path.with_suffix(".raw") if path.suffix == ".mhd" else path
    data = data_file.read_bytes()
    data_file.write_bytes(data[: int(len(data) * keep)])
    return path


def write(image: sitk.Image, path: Path, compressed: bool) -> Path:
    sitk.WriteImage(image, str(path), useCompression=compressed)
    return path


@pytest.fixture(scope="module")
def scan():
    return draw(SPEC)


@pytest.mark.parametrize("ext, compressed", FORMATS)
@pytest.mark.parametrize("pixel", list(PIXELS))
@pytest.mark.parametrize("keep", [0.5, 0.97])
def test_a_short_file_is_refused_naming_it(tmp_path, scan, ext, compressed, pixel, keep):
    image = sitk.Cast(scan.image, PIXELS[pixel])
    path = truncate(write(image, tmp_path / f"short{ext}", compressed), keep)
    with pytest.raises(InputError, match=rf"short{re.escape(ext)}: (truncated|the \w+ file cannot be read)"):
        read_scan(path)


@pytest.mark.parametrize("cut", [100, 348, 351])  # inside the header, at its end, before the voxel offset
def test_a_nifti_cut_in_its_header_is_refused(tmp_path, scan, cut):
    path = write(scan.image, tmp_path / "head.nii", False)
    path.write_bytes(path.read_bytes()[:cut])
    with pytest.raises(InputError, match=r"head\.nii: (truncated|the NIfTI scan file cannot be read)"):
        read_scan(path)


def test_a_gzip_stream_of_a_short_nifti_and_a_corrupt_one_are_refused(tmp_path, scan):
    whole = write(scan.image, tmp_path / "whole.nii", False).read_bytes()
    # a complete gzip stream of a .nii that was already short: the stream is fine, the voxels are not all there
    (tmp_path / "short.nii.gz").write_bytes(gzip.compress(whole[: len(whole) - 100]))
    with pytest.raises(InputError, match=r"short\.nii\.gz: truncated scan file: the header announces"):
        read_scan(tmp_path / "short.nii.gz")
    packed = bytearray(gzip.compress(whole))
    packed[len(packed) // 2] ^= 0xFF  # one flipped byte: the CRC or the deflate stream fails
    (tmp_path / "flip.nii.gz").write_bytes(bytes(packed))
    with pytest.raises(InputError, match=r"flip\.nii\.gz: truncated or corrupt scan file"):
        read_scan(tmp_path / "flip.nii.gz")


def test_complete_files_read_to_the_same_voxels(tmp_path, scan):
    image = sitk.Cast(scan.image, sitk.sitkFloat32)
    for ext, compressed in FORMATS:
        path = write(image, tmp_path / f"ok{int(compressed)}{ext}", compressed)
        np.testing.assert_array_equal(sitk.GetArrayFromImage(read_scan(path)), sitk.GetArrayFromImage(image))


@pytest.mark.parametrize("which", [0, 2, -1])  # first, middle and last slice: GDCM silently leaves each one out
def test_a_truncated_dicom_slice_is_refused(tmp_path, scan, which):
    files = write_dicom_series(scan.image, tmp_path / "sub")
    truncate(files[which], 0.6)
    with pytest.raises(InputError, match=rf"sub: expected every file to be a slice .*{files[which].name}"):
        read_scan(tmp_path / "sub")


def test_every_verb_refuses_a_truncated_label_map(tmp_path, scan):
    """convert (labels), evaluate, restore and quantify read label maps through the same checks."""
    for keep in (0.3, 0.9):
        label = truncate(write(scan.label, tmp_path / "lab.nii.gz", True), keep)
        with pytest.raises(InputError, match=r"lab\.nii\.gz: truncated"):
            read_label(label, scan.image, tmp_path / "img.nii.gz")
        with pytest.raises(InputError, match=r"lab\.nii\.gz: truncated"):
            read_label_map(label)


def test_cli_convert_keep_going_skips_a_truncated_float_scan(tmp_path):
    spec = ScanSpec(size=(48, 28, 4), spacing=(5.0, 5.0, 8.0))
    root = write_scans(tmp_path / "scans", {"good": spec, "cut": spec.replace(seed=1)}, pixel=sitk.sitkFloat32)
    truncate(root / "images" / "cut.nii.gz", 0.5)
    out = tmp_path / "legs"
    r = run_cli("convert", "--images", root / "images", "--out", out, "--keep-going", "-j", "1")
    assert r.returncode == 1, r.stderr
    assert "Traceback" not in r.stderr
    assert re.search(r"cut\.nii\.gz: truncated or corrupt scan file", r.stderr), r.stderr
    assert [rec.case for rec in load_records(out / "legs.json")] == ["good_L", "good_R"]


def test_restore_and_evaluate_and_quantify_refuse_truncated_files(tmp_path, nnunet_env):
    """The same file kinds through the other verbs' CLIs: exit 2 naming the file, nothing written."""
    spec = ScanSpec(size=(48, 28, 4), spacing=(5.0, 5.0, 8.0))
    root = write_scans(tmp_path / "scans", {"a": spec}, pixel=sitk.sitkFloat32)
    r = run_cli("convert", "--images", root / "images", "--out", tmp_path / "legs", "-j", "1")
    assert r.returncode == 0, r.stderr
    pred = tmp_path / "pred"
    pred.mkdir()
    for rec in load_records(tmp_path / "legs" / "legs.json"):
        leg = sitk.ReadImage(str(tmp_path / "legs" / rec.leg_image))
        write(sitk.Cast(leg > 1.0, sitk.sitkUInt8), pred / f"{rec.case}.nii", False)
    truncate(pred / "a_L.nii", 0.7)
    records = load_records(tmp_path / "legs" / "legs.json")
    with pytest.raises(InputError, match=r"a_L\.nii: truncated leg prediction file"):
        read_leg_prediction(pred / "a_L.nii", next(r for r in records if r.case == "a_L"))
    r = run_cli("restore", "--pred", pred, "--records", tmp_path / "legs" / "legs.json", "--out", tmp_path / "maps")
    assert r.returncode == 2 and "a_L.nii: truncated" in r.stderr and "Traceback" not in r.stderr
    assert not list((tmp_path / "maps").glob("*.nii.gz")) if (tmp_path / "maps").exists() else True

    ref = tmp_path / "ref"
    ref.mkdir()
    shutil.copy(root / "labels" / "a.nii.gz", ref / "a.nii.gz")
    cut = tmp_path / "cutpred"
    cut.mkdir()
    truncate(write(draw(spec).label, cut / "a.nii.gz", True), 0.6)
    r = run_cli("evaluate", "--pred", cut, "--labels", ref, "--csv", tmp_path / "m.csv")
    assert r.returncode == 2 and "a.nii.gz: truncated" in r.stderr and not (tmp_path / "m.csv").exists()
    r = run_cli("quantify", "--images", root / "images", "--labels", cut, "--csv", tmp_path / "b.csv")
    assert r.returncode == 2 and "a.nii.gz: truncated" in r.stderr and not (tmp_path / "b.csv").exists()
    assert "Traceback" not in r.stderr
