"""Sides from the geometry or the legs record, never from a name; Dixon fat and water never one image (issue 22,
class 4): ``filternet quantify`` and the quantify step of ``filternet predict``."""

from __future__ import annotations

import csv
import os

import numpy as np
import pytest
import SimpleITK as sitk

from nnunet_filternet.cli import main
from nnunet_filternet.errors import FilterNetError, InputError
from nnunet_filternet.quantify.biomarkers import quantify_folder
from tests.test_quantify import scan as two_leg_scan
from tests.test_quantify import write
from tests.test_quantify_sides import GAP_X, expected_voxels


def _voxels(csv_path) -> dict[tuple[str, str, str], int]:
    with open(csv_path, newline="", encoding="utf-8") as f:
        return {(r["subject"], r["side"], r["compartment"]): int(r["n_voxels"]) for r in csv.DictReader(f)}


@pytest.mark.parametrize("name", ["P07_L", "P07_R", "sub-3_L"])
def test_a_scan_named_like_a_leg_is_counted_on_both_sides(tmp_path, name):
    labels, image, _ = two_leg_scan()
    write(labels, tmp_path / "labels" / f"{name}.nii.gz")
    write(image, tmp_path / "images" / f"{name}_0000.nii.gz")
    got = _voxels(quantify_folder(tmp_path / "images", tmp_path / "labels", tmp_path / "b.csv", jobs=1))
    assert got == {(name, side, c): n for (side, c), n in expected_voxels(labels, GAP_X).items()}


def test_a_legs_record_of_another_image_does_not_side_a_scan(tmp_path):
    """legs.json beside the images lists ``P07_L`` (subject P07's left leg image), but the file ``P07_L`` here is a
    whole two-leg scan (another size): the record is not its, the geometry decides."""
    from tests.test_quantify import write_leg_records

    labels, image, _ = two_leg_scan()
    write(labels, tmp_path / "labels" / "P07_L.nii.gz")
    write(image, tmp_path / "images" / "P07_L_0000.nii.gz")
    write_leg_records(tmp_path / "images", "P07")
    got = _voxels(quantify_folder(tmp_path / "images", tmp_path / "labels", tmp_path / "b.csv", jobs=1))
    assert got == {("P07_L", side, c): n for (side, c), n in expected_voxels(labels, GAP_X).items()}


def test_a_one_leg_scan_named_like_the_other_side_takes_its_side_from_its_position(tmp_path):
    labels, image, _ = two_leg_scan()
    labels[:, :, :GAP_X] = 0  # only the left leg (high x) in the field of view ...
    image[:, :, :GAP_X] = 10.0
    write(labels, tmp_path / "labels" / "P07_R.nii.gz")  # ... of a scan whose name ends in _R
    write(image, tmp_path / "images" / "P07_R.nii.gz")
    out = quantify_folder(tmp_path / "images", tmp_path / "labels", tmp_path / "b.csv", jobs=1)
    with open(out, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert sum(int(r["n_voxels"]) for r in rows if r["side"] == "L") == int((labels > 0).sum())
    assert sum(int(r["n_voxels"]) for r in rows if r["side"] == "R") == 0
    assert all("no legs.json record" in r["note"] for r in rows)


def test_predict_counts_both_legs_of_a_scan_named_like_a_leg(tmp_path):
    """``filternet predict``'s steps after nnU-Net (restore, then quantify on the restored scans), with the
    scan's own labels cropped into leg predictions as nnU-Net would write them."""
    from nnunet_filternet.dataset_conversion.convert import convert_inference
    from nnunet_filternet.dataset_conversion.legs_of_scan import legs_of_scan
    from nnunet_filternet.dataset_conversion.records import load_records
    from nnunet_filternet.dataset_conversion.restore import restore_predictions
    from nnunet_filternet.pipeline.predict import scans_as_nifti
    from nnunet_filternet.utils.atomic import write_image
    from tests.scan_fixtures import ScanSpec, draw

    scan = draw(ScanSpec(size=(48, 28, 4), spacing=(5.0, 5.0, 8.0)))
    images, out = tmp_path / "scans", tmp_path / "out"
    images.mkdir()
    sitk.WriteImage(scan.image, str(images / "P07_L.nii.gz"))
    legs_in, legs_pred = out / ".legs" / "images", out / ".legs" / "predictions"
    convert_inference(images, legs_in, jobs=1)
    by_side = {leg.side: leg for leg in legs_of_scan(scan.image, scan.label).legs}
    for record in load_records(legs_in / "legs.json"):
        write_image(by_side[record.side].label, legs_pred / f"{record.case}.nii.gz")
    restore_predictions(legs_pred, legs_in / "legs.json", out, jobs=1)
    nifti = scans_as_nifti({"P07_L": images / "P07_L.nii.gz"}, out / ".legs" / "scans")
    got = _voxels(quantify_folder(nifti, out, out / "b.csv", jobs=1))
    label, leg = sitk.GetArrayFromImage(scan.label), sitk.GetArrayFromImage(scan.leg)
    for (subject, side, compartment), n in got.items():
        value = ("TA", "TP", "Sol", "Gas", "PL").index(compartment) + 1
        assert subject == "P07_L"
        assert n == int(((label == value) & (leg == (1 if side == "L" else 2))).sum()), (side, compartment)
    assert {side for _, side, _ in got} == {"L", "R"}


# ---- Dixon fat and water ----------------------------------------------------------------------------------------


@pytest.fixture
def dixon(tmp_path):
    labels, image, ff = two_leg_scan()
    write(labels, tmp_path / "labels" / "s01.nii.gz")
    write(image, tmp_path / "images" / "s01.nii.gz")
    write((ff * 1000).astype(np.float32), tmp_path / "fat" / "s01.nii.gz")
    write(((1 - ff) * 1000).astype(np.float32), tmp_path / "water" / "s01.nii.gz")
    return tmp_path


def _quantify_dixon(root, fat, water):
    return quantify_folder(root / "images", root / "labels", root / "b.csv", fat_dir=fat, water_dir=water, jobs=1)


def test_fat_and_water_naming_one_folder_are_refused(dixon):
    (dixon / "fat_link").symlink_to(dixon / "fat")
    for water in (dixon / "fat", dixon / "fat" / ".." / "fat", dixon / "fat_link"):
        with pytest.raises(InputError, match=r"the Dixon water folder is the fat folder .*fat \(the same folder"):
            _quantify_dixon(dixon, dixon / "fat", water)
    assert not (dixon / "b.csv").exists()


@pytest.mark.parametrize("how", ["symlink", "hardlink"])
def test_fat_and_water_naming_one_file_are_refused(dixon, how):
    (dixon / "water" / "s01.nii.gz").unlink()
    link = os.symlink if how == "symlink" else os.link
    link(dixon / "fat" / "s01.nii.gz", dixon / "water" / "s01.nii.gz")
    with pytest.raises(InputError, match=r"water/s01\.nii\.gz: the Dixon water file is the fat file .*fat/s01\.nii"):
        _quantify_dixon(dixon, dixon / "fat", dixon / "water")


def test_fat_and_water_holding_the_same_voxels_are_refused(dixon, capsys):
    (dixon / "water" / "s01.nii.gz").write_bytes((dixon / "fat" / "s01.nii.gz").read_bytes())  # a copy
    with pytest.raises(FilterNetError, match=r"water/s01\.nii\.gz: the Dixon water image holds the same voxels"):
        _quantify_dixon(dixon, dixon / "fat", dixon / "water")
    args = ["quantify", "--images", dixon / "images", "--labels", dixon / "labels", "--csv", dixon / "c.csv"]
    assert main([str(a) for a in [*args, "--fat", dixon / "fat", "--water", dixon / "fat"]]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "the Dixon water folder is the fat folder" in err and "Traceback" not in err
    got = _voxels(_quantify_dixon(dixon, dixon / "fat", dixon / "images"))  # different images: accepted
    assert len(got) == 10
