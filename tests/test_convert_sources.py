"""Units and tables from the right source (issue 22, class 4): NIfTI voxel sizes, DICOM slice gaps, subjects.csv.

Every verb reads images through one reader (:func:`nnunet_filternet.utils.image_io.read_image`, DICOM series
through :func:`nnunet_filternet.dataset_conversion.readers.read_dicom_series`) and subject tables through one reader
(:mod:`nnunet_filternet.utils.subjects_table`), so each refusal is checked where it is made and through the
verbs that rely on it.
"""

from __future__ import annotations

import math

import nibabel
import numpy as np
import pytest
import SimpleITK as sitk

from nnunet_filternet.dataset_conversion.convert import convert_training
from nnunet_filternet.dataset_conversion.readers import DICOM_GAP_TOLERANCE, read_scan
from nnunet_filternet.dataset_conversion.splits import read_groups
from nnunet_filternet.errors import FilterNetError, InputError
from nnunet_filternet.quantify.biomarkers import quantify_folder, read_subjects_csv
from nnunet_filternet.utils.image_io import read_image
from nnunet_filternet.utils.subjects_table import read_subjects_table
from tests.scan_fixtures import ScanSpec, draw, write_dicom_series, write_scans, write_subjects_csv

SMALL = ScanSpec(size=(48, 28, 5), spacing=(5.0, 5.0, 7.0))

# ---- NIfTI voxel size ---------------------------------------------------------------------------------------


def _nifti_with_pixdim(path, axis: int, value: float, data=None):
    """A NIfTI file (2 x 2 x 3 mm) whose stored pixdim along ``axis`` is ``value``; returns the path."""
    data = np.ones((6, 5, 4), np.float32) if data is None else data
    image = nibabel.Nifti1Image(data, np.diag([2.0, 2.0, 3.0, 1.0]))
    image.header["pixdim"][1 + axis] = value
    path.parent.mkdir(parents=True, exist_ok=True)
    nibabel.save(image, str(path))
    return path


@pytest.mark.parametrize("value", [0.0, -2.0, math.nan, math.inf])
@pytest.mark.parametrize("ext", [".nii.gz", ".nii"])
def test_a_nifti_voxel_size_that_is_not_positive_is_refused(tmp_path, value, ext):
    path = _nifti_with_pixdim(tmp_path / f"scan{ext}", 1, value)
    with pytest.raises(InputError, match=r"scan\.nii(\.gz)?: the NIfTI header gives voxel size \(pixdim\) 2 x \S+ x 3"):
        read_image(path)


def test_a_positive_voxel_size_is_read_as_stored(tmp_path):
    assert read_image(_nifti_with_pixdim(tmp_path / "ok.nii.gz", 1, 2.5)).GetSpacing() == (2.0, 2.5, 3.0)


def test_quantify_refuses_a_label_map_with_voxel_size_0(tmp_path):
    """Volumes would come out 2 x 2 x 3 / (2 x 1 x 3) = 2x too small with a 0 read as 1 mm."""
    labels = np.zeros((6, 5, 4), np.uint8)
    labels[1:5, 1:4, 1:3] = 3
    _nifti_with_pixdim(tmp_path / "labels" / "s1.nii.gz", 1, 0.0, labels)
    _nifti_with_pixdim(tmp_path / "images" / "s1.nii.gz", 1, 2.0, labels.astype(np.float32))
    with pytest.raises(FilterNetError, match=r"s1\.nii\.gz: the NIfTI header gives voxel size \(pixdim\) 2 x 0 x 3"):
        quantify_folder(tmp_path / "images", tmp_path / "labels", tmp_path / "b.csv", jobs=1)


# ---- DICOM slice gaps ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "offsets, message",
    [
        ([0, 7, 14, 21, 31], r"unequal slice gaps: expected slices every 7\.00 mm .*after slice 4 \(10\.00 mm\)"),
        ([0, 7, 14, 21, 28.2], r"unequal slice gaps: .*within 0\.07 mm.*after slice 4 \(7\.20 mm\)"),
        ([0, 10, 17, 24, 31], r"unequal slice gaps: .*after slice 1 \(10\.00 mm\)"),
        ([0, 7, 21, 28, 35], r"missing slices: expected slices every 7\.00 mm .*after slice 2 \(14\.00 mm\)"),
    ],
)
def test_dicom_series_with_unequal_slice_gaps_is_refused_naming_the_gaps(tmp_path, offsets, message):
    write_dicom_series(draw(SMALL).image, tmp_path / "sub", offsets_mm=offsets)
    with pytest.raises(InputError, match=r"sub: DICOM series has " + message + r".*\(series [\d.]+\)"):
        read_scan(tmp_path / "sub")


def test_dicom_gaps_within_the_stated_tolerance_are_read(tmp_path):
    assert DICOM_GAP_TOLERANCE == 0.01  # 1 % of the smallest gap, as the docs say
    write_dicom_series(draw(SMALL).image, tmp_path / "sub", offsets_mm=[0, 7, 14.03, 21, 28.05])
    assert read_scan(tmp_path / "sub").GetSize() == SMALL.size


# ---- subjects.csv: one reader --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "rows, subject, lines",
    [
        (["a,healthy", "b,DM1", "a,DM1"], "a", (2, 4)),  # two groups
        (["a,healthy", "b,DM1", "b,DM1"], "b", (3, 4)),  # the same row twice
        (["a,healthy", "b,DM1", " a ,healthy"], "a", (2, 4)),  # the same name with spaces
    ],
)
def test_a_subject_listed_twice_is_refused_alike_by_convert_and_quantify(tmp_path, rows, subject, lines):
    table = tmp_path / "subjects.csv"
    table.write_text("subject,group\n" + "\n".join(rows) + "\n", encoding="utf-8")
    expected = f"subject {subject!r} is listed twice (lines {lines[0]} and {lines[1]})"
    messages = []
    for read in (read_groups, lambda path: read_subjects_csv(path, ["a", "b"]), read_subjects_table):
        with pytest.raises(InputError) as e:
            read(table)
        messages.append(str(e.value))
    assert len(set(messages)) == 1 and expected in messages[0], messages


def test_convert_refuses_a_duplicated_subject_before_any_work(tmp_path, nnunet_env):
    root = write_scans(tmp_path / "scans", {n: ScanSpec(size=(48, 28, 4), spacing=(5.0, 5.0, 8.0)) for n in "abc"})
    table = write_subjects_csv(tmp_path / "subjects.csv", {"a": "healthy", "b": "DM1", "c": "DM1"})
    table.write_text(table.read_text() + "a,DM1,0.5\n")
    with pytest.raises(InputError, match=r"subjects\.csv: subject 'a' is listed twice \(lines 2 and 5\)"):
        convert_training(root / "images", root / "labels", 30, "Twice", folds=2, jobs=1, subjects_csv=table)
    assert not list(nnunet_env["nnUNet_raw"].iterdir()) and not list(nnunet_env["nnUNet_preprocessed"].iterdir())


def test_the_subjects_table_reader_names_line_and_column_problems(tmp_path):
    table = tmp_path / "s.csv"
    for text, message in (
        ("subject,group\na,DM1,extra\n", r"line 2: expected 2 values \(subject, group\), found 3"),
        ("subject,group\n,DM1\n", "line 2: expected a subject name"),
        ("subject,group,group\na,DM1,DM1\n", r"expected every column once, found \['group'\]"),
        ("name,group\na,DM1\n", "expected a CSV with columns subject, group"),
    ):
        table.write_text(text, encoding="utf-8")
        with pytest.raises(InputError, match=message):
            read_subjects_table(table, required=("subject", "group"))
    table.write_bytes("\ufeffsubject,group\na ,DM1\n\nb,healthy\n".encode())  # BOM, spaces, a blank line
    assert read_groups(table) == {"a": "DM1", "b": "healthy"}


def test_sitk_reads_the_dicom_fixture_with_its_offsets(tmp_path):
    """The fixture writes the positions it is given (so the gap tests test the reader, not the fixture)."""
    files = write_dicom_series(draw(SMALL).image, tmp_path / "sub", offsets_mm=[0, 7, 14, 21, 31])
    reader = sitk.ImageFileReader()
    z = []
    for f in files:
        reader.SetFileName(str(f))
        reader.ReadImageInformation()
        z.append(float(reader.GetMetaData("0020|0032").split("\\")[2]))
    np.testing.assert_allclose(np.diff(z), [7, 7, 7, 10], atol=1e-4)
