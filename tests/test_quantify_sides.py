"""``filternet quantify`` tells the legs of a full scan apart where they are, not at the image centre (issue 12,
class 6), and refuses an output it cannot write (class 8)."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from nnunet_filternet.quantify.biomarkers import quantify_folder
from tests.conftest import run_cli
from tests.test_quantify import SPACING_XYZ, write
from tests.test_quantify import scan as two_leg_scan

#: In the two-leg scan of test_quantify, the right leg lies at x < 36 and the left leg at x >= 36 (72 columns).
GAP_X = 36


def shifted(array: np.ndarray, columns: int, fill) -> np.ndarray:
    """``array`` (z, y, x) moved by ``columns`` along x (the patient off-centre), the free columns filled."""
    out = np.full_like(array, fill)
    if columns >= 0:
        out[:, :, columns:] = array[:, :, : array.shape[2] - columns]
    else:
        out[:, :, :columns] = array[:, :, -columns:]
    return out


def expected_voxels(labels: np.ndarray, gap_x: int) -> dict[tuple[str, str], int]:
    out = {}
    for value, name in enumerate(("TA", "TP", "Sol", "Gas", "PL"), start=1):
        out[("R", name)] = int((labels[:, :, :gap_x] == value).sum())
        out[("L", name)] = int((labels[:, :, gap_x:] == value).sum())
    return out


def quantified(root, labels: np.ndarray, image: np.ndarray, name: str) -> dict[tuple[str, str], int]:
    write(image, root / name / "images" / "s01_0000.nii.gz")
    write(labels, root / name / "labels" / "s01.nii.gz")
    out = quantify_folder(root / name / "images", root / name / "labels", root / name / "b.csv", jobs=1)
    with open(out, newline="") as f:
        return {(r["side"], r["compartment"]): int(r["n_voxels"]) for r in csv.DictReader(f)}


@pytest.mark.parametrize("columns", [14, -14, 6])  # 21 mm and 9 mm off-centre
def test_an_off_centre_patient_keeps_each_compartment_on_its_side(tmp_path, columns):
    labels, image, _ = two_leg_scan()
    labels, image = shifted(labels, columns, 0), shifted(image, columns, 10.0)
    got = quantified(tmp_path, labels, image, "shifted")
    assert got == expected_voxels(labels, GAP_X + columns)


def test_a_cropped_field_of_view_keeps_each_compartment_on_its_side(tmp_path):
    labels, image, _ = two_leg_scan()
    keep = slice(0, 60)  # the field of view ends closer to the left leg: its centre is at x = 30, not 36
    got = quantified(tmp_path, labels[:, :, keep].copy(), image[:, :, keep].copy(), "cropped")
    assert got == expected_voxels(labels[:, :, keep], GAP_X)


def test_one_labelled_leg_takes_its_side_from_the_legs_in_the_image(tmp_path):
    labels, image, _ = two_leg_scan()
    labels[:, :, GAP_X:] = 0  # only the right leg labelled ...
    pad = 40  # ... and 40 columns of air on the patient's right: the right leg now lies past the image centre
    labels = np.concatenate([np.zeros_like(labels[:, :, :pad]), labels], axis=2)
    image = np.concatenate([np.full_like(image[:, :, :pad], 10.0), image], axis=2)
    got = quantified(tmp_path, labels, image, "one")
    assert got == expected_voxels(labels, GAP_X + pad)
    assert sum(v for (side, _), v in got.items() if side == "R") > 0


def test_an_unwritable_output_is_refused_before_any_work(tmp_path):
    labels, image, _ = two_leg_scan()
    write(image, tmp_path / "images" / "s01_0000.nii.gz")
    write(labels, tmp_path / "labels" / "s01.nii.gz")
    blocker = tmp_path / "a_file"
    blocker.write_text("in the way")
    for verb, args in (
        ("quantify", ["--images", tmp_path / "images", "--labels", tmp_path / "labels"]),
        ("evaluate", ["--pred", tmp_path / "labels", "--labels", tmp_path / "labels"]),
    ):
        r = run_cli(verb, *args, "--csv", blocker / "out.csv")
        assert r.returncode == 2 and "a_file is a file, not a folder" in r.stderr and "Traceback" not in r.stderr
    assert blocker.read_text() == "in the way"
    assert SPACING_XYZ[0] == 1.5  # the columns above are 1.5 mm: 14 columns = 21 mm


@pytest.mark.parametrize(
    "name, change",
    [
        ("offset +3000", lambda image: image + 3000),
        ("negative spike", lambda image: _at(image, (1, 20, 36), -1e7)),
        ("band of 5000", lambda image: _at(image, np.s_[:, :3, :], 5000.0)),
        ("constant background 400", lambda image: np.where(image > 200, image, 400.0)),
    ],
)
def test_one_labelled_leg_is_sided_by_the_image_whatever_its_background(tmp_path, name, change):
    """The image's tissue mask finds both legs (issue 22, class 3) and so places the one labelled leg."""
    labels, image, _ = two_leg_scan()
    labels[:, :, GAP_X:] = 0  # only the right leg labelled ...
    pad = 40  # ... and 40 columns of constant padding on the patient's right: the right leg lies past the centre
    labels = np.concatenate([np.zeros_like(labels[:, :, :pad]), labels], axis=2)
    image = np.concatenate([np.full_like(image[:, :, :pad], 10.0), image], axis=2)
    image = change(image).astype(np.float32)
    got = quantified(tmp_path, labels, image, "hostile")
    assert got == expected_voxels(labels, GAP_X + pad), name


def _at(array: np.ndarray, where, value) -> np.ndarray:
    out = array.copy()
    out[where] = value
    return out
