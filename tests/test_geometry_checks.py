"""Full geometry (size, spacing, origin, direction) is compared before any measurement (issue 12, class 3).

The same physical voxels stored with flipped or permuted axes are reordered exactly and give the same numbers;
a shift, another spacing or a rotation is refused naming the file. Checked through evaluate, quantify and the
label maps of convert.
"""

from __future__ import annotations

import csv

import numpy as np
import pytest
import SimpleITK as sitk

from nnunet_filternet.dataset_conversion.readers import read_label
from nnunet_filternet.errors import FilterNetError, InputError
from nnunet_filternet.metrics.evaluate import evaluate_folders, read_rows
from nnunet_filternet.quantify.biomarkers import quantify_folder
from tests.conftest import run_cli
from tests.scan_fixtures import ScanSpec, draw
from tests.test_evaluate import leg
from tests.test_quantify import scan as two_leg_scan

ORIGIN, SPACING = (12.5, -40.0, 7.0), (0.8, 0.9, 5.0)


def image_of(array_zyx: np.ndarray, spacing=SPACING, origin=ORIGIN) -> sitk.Image:
    image = sitk.GetImageFromArray(np.ascontiguousarray(array_zyx))
    image.SetSpacing(spacing)
    image.SetOrigin(origin)
    return image


def stored(image: sitk.Image, how: str) -> sitk.Image:
    """The same physical image stored another way (``how``): axis flips, a permutation, a shift, a rotation."""
    if how == "RAS":  # x and y flipped, geometry adjusted: same voxels in space
        return sitk.DICOMOrient(image, "LAS")
    if how == "flip-z":
        return sitk.Flip(image, [False, False, True])
    if how == "permuted":
        return sitk.PermuteAxes(image, [2, 0, 1])
    out = sitk.Image(image)
    if how == "shift-20mm":
        out.SetOrigin([o + d for o, d in zip(image.GetOrigin(), (20.0, 0.0, 0.0))])
    elif how == "shift-half-voxel":
        out.SetOrigin([o + d for o, d in zip(image.GetOrigin(), (0.0, 0.45, 0.0))])
    elif how == "rotated-10deg":
        t = np.deg2rad(10)
        out.SetDirection((np.cos(t), -np.sin(t), 0.0, np.sin(t), np.cos(t), 0.0, 0.0, 0.0, 1.0))
    elif how == "spacing":
        out.SetSpacing((0.8, 0.9, 6.0))
    return out


SAME = ["RAS", "flip-z", "permuted"]
DIFFERENT = ["shift-20mm", "shift-half-voxel", "rotated-10deg", "spacing"]


@pytest.fixture
def evaluation(tmp_path):
    """Reference and prediction of one case, stored plainly."""
    ref, pred = leg(1), leg(6, shift=2)
    for folder, array in (("ref", ref), ("pred", pred)):
        (tmp_path / folder).mkdir()
        sitk.WriteImage(image_of(array), str(tmp_path / folder / "s01_L.nii.gz"))
    evaluate_folders(tmp_path / "pred", tmp_path / "ref", tmp_path / "plain.csv", jobs=1)
    return tmp_path, pred, read_rows(tmp_path / "plain.csv")


@pytest.mark.parametrize("how", SAME)
def test_evaluate_reorders_a_prediction_stored_with_other_axes(evaluation, how):
    root, pred, plain = evaluation
    sitk.WriteImage(stored(image_of(pred), how), str(root / "pred" / "s01_L.nii.gz"))
    evaluate_folders(root / "pred", root / "ref", root / f"{how}.csv", jobs=1)
    assert read_rows(root / f"{how}.csv") == plain
    assert 0.5 < plain[0]["dice"] < 1.0


@pytest.mark.parametrize("how", DIFFERENT)
def test_evaluate_refuses_a_prediction_on_other_voxels(evaluation, how):
    root, pred, _ = evaluation
    sitk.WriteImage(stored(image_of(pred), how), str(root / "pred" / "s01_L.nii.gz"))
    with pytest.raises(FilterNetError, match=r"s01_L\.nii\.gz: prediction does not cover the same voxels"):
        evaluate_folders(root / "pred", root / "ref", root / f"{how}.csv", jobs=1)
    assert not (root / f"{how}.csv").exists()
    r = run_cli("evaluate", "--pred", root / "pred", "--labels", root / "ref", "--csv", root / "cli.csv")
    assert r.returncode == 2 and "s01_L.nii.gz" in r.stderr and "Traceback" not in r.stderr


def _quantify(root, labels_how: str, name: str) -> list[dict]:
    labels, image, _ = two_leg_scan()
    (root / "images").mkdir(exist_ok=True)
    sitk.WriteImage(image_of(image, (1.5, 1.5, 4.0)), str(root / "images" / "s01_0000.nii.gz"))
    folder = root / f"labels-{name}"
    folder.mkdir()
    sitk.WriteImage(stored(image_of(labels, (1.5, 1.5, 4.0)), labels_how), str(folder / "s01.nii.gz"))
    out = quantify_folder(root / "images", folder, root / f"{name}.csv", jobs=1)
    with open(out, newline="") as f:
        return list(csv.DictReader(f))


@pytest.mark.parametrize("how", SAME)
def test_quantify_reorders_labels_stored_with_other_axes(tmp_path, how):
    plain = _quantify(tmp_path, "none", "plain")
    assert {r["side"] for r in plain if float(r["n_voxels"]) > 0} == {"L", "R"}
    assert _quantify(tmp_path, how, how) == plain


@pytest.mark.parametrize("how", ["shift-20mm", "rotated-10deg"])
def test_quantify_refuses_labels_on_other_voxels(tmp_path, how):
    with pytest.raises(FilterNetError, match=r"s01_0000\.nii\.gz: image does not cover the same voxels as s01\.nii"):
        _quantify(tmp_path, how, how)
    assert not (tmp_path / f"{how}.csv").exists()


@pytest.mark.parametrize("how", SAME + DIFFERENT)
def test_convert_lays_labels_onto_their_scan_or_refuses_them(tmp_path, how):
    scan = draw(ScanSpec(size=(30, 20, 5), spacing=(8.0, 8.0, 8.0)))
    path = tmp_path / "lab.nii.gz"
    sitk.WriteImage(stored(scan.label, how), str(path))
    if how in SAME:
        got = read_label(path, scan.image, tmp_path / "img.nii.gz")
        np.testing.assert_array_equal(sitk.GetArrayFromImage(got), sitk.GetArrayFromImage(scan.label))
        assert got.GetDirection() == scan.image.GetDirection() and got.GetOrigin() == scan.image.GetOrigin()
    else:
        with pytest.raises(InputError, match=r"lab\.nii\.gz: label map does not cover the same voxels as img"):
            read_label(path, scan.image, tmp_path / "img.nii.gz")


@pytest.mark.parametrize(
    ("spacing", "origin", "expected"),
    [
        # 1e-5 mm more per voxel over 127 voxels: the centres drift 0.00127 mm apart, beyond the 0.001 mm tolerance
        ((3.00001, 3.0, 7.0), (0.0, 0.0, 0.0), "spacing (3.00001, 3, 7) mm against (3, 3, 7) mm: the voxel centres "
         "drift apart across the image (0.00127 mm at most, tolerance 0.001 mm)"),
        ((3.0, 3.0, 7.0), (0.0, 0.5, 0.0), "shifted by (0, 0.5, 0) mm (0.5 mm at most, tolerance 0.001 mm)"),
    ],
)  # fmt: skip
def test_a_grid_off_by_a_little_is_refused_saying_how(spacing, origin, expected):
    from nnunet_filternet.utils.geometry import Grid, check_same_voxels

    identity = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)
    reference = Grid((128, 64, 4), (3.0, 3.0, 7.0), (0.0, 0.0, 0.0), identity)
    with pytest.raises(InputError) as error:
        check_same_voxels(Grid((128, 64, 4), spacing, origin, identity), reference, "pred.nii.gz", "ref.nii.gz", "x")
    assert expected in str(error.value)
