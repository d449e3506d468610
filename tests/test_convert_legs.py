"""Leg localisation, patient alignment, mirroring and bias correction on small synthetic scans."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import SimpleITK as sitk

from nnunet_filternet.dataset_conversion.bias import N4Settings, n4_correct, otsu_mask, shrink_factors
from nnunet_filternet.dataset_conversion.legs import LegSettings, find_cut, find_legs
from nnunet_filternet.dataset_conversion.legs_of_scan import ConversionSettings, legs_of_scan, xyz_array
from nnunet_filternet.dataset_conversion.mirror import from_leg, to_leg
from nnunet_filternet.dataset_conversion.orientation import PatientAxes
from nnunet_filternet.errors import FilterNetError
from tests.scan_fixtures import ScanSpec, draw, rotation_z

# ---- patient axes ---------------------------------------------------------------------------------------


def _direction(perm, signs) -> np.ndarray:
    """Direction matrix whose index axis j points along physical axis perm[j] with sign signs[j]."""
    d = np.zeros((3, 3))
    for j, (p, s) in enumerate(zip(perm, signs)):
        d[p, j] = s
    return d


@pytest.mark.parametrize("perm", list(itertools.permutations(range(3))))
def test_patient_axes_invert_exactly_and_map_boxes(perm):
    rng = np.random.default_rng(0)
    signs = rng.choice([-1, 1], 3)
    axes = PatientAxes.from_direction(_direction(perm, signs).ravel())
    arr = rng.integers(0, 100, (4, 5, 6))
    lps = axes.to_patient(arr)
    np.testing.assert_array_equal(axes.from_patient(lps), arr)
    # The voxel at source index i sits where the physical axes say: patient axis k grows with d[k] . i.
    d = _direction(perm, signs)
    i = np.array([1, 3, 2])
    k_index = [(i[a] if not f else arr.shape[a] - 1 - i[a]) for a, f in zip(axes.axes, axes.flips)]
    assert lps[tuple(k_index)] == arr[tuple(i)]
    assert all(np.sign(d[k, a]) == (-1 if f else 1) for k, (a, f) in enumerate(zip(axes.axes, axes.flips)))
    # A box in patient indices maps to the same voxels in source indices.
    start, stop = (1, 0, 2), (3, 4, 5)
    index, size = axes.box_to_source(start, stop, arr.shape)
    src = arr[tuple(slice(a, a + n) for a, n in zip(index, size))]
    np.testing.assert_array_equal(axes.to_patient(src), lps[1:3, 0:4, 2:5])


def test_patient_axes_of_common_directions():
    assert PatientAxes.from_direction(np.eye(3).ravel()) == PatientAxes((0, 1, 2), (False, False, False))
    ras = PatientAxes.from_direction([-1, 0, 0, 0, -1, 0, 0, 0, 1])
    assert ras == PatientAxes((0, 1, 2), (True, True, False))
    oblique = PatientAxes.from_direction(rotation_z(30).ravel())
    assert oblique == PatientAxes((0, 1, 2), (False, False, False))
    with pytest.raises(FilterNetError, match="do not define three patient axes"):
        PatientAxes.from_direction([1, 1, 0, 0, 0, 0, 0, 0, 1])


def test_mirroring_a_right_leg_is_undone_exactly():
    rng = np.random.default_rng(1)
    crop = rng.integers(0, 6, (5, 4, 3))
    axes = PatientAxes((2, 0, 1), (True, False, True))
    for mirrored in (False, True):
        np.testing.assert_array_equal(from_leg(to_leg(crop, axes, mirrored), axes, mirrored), crop)
    np.testing.assert_array_equal(to_leg(crop, axes, True), to_leg(crop, axes, False)[::-1])


# ---- finding legs in masks -------------------------------------------------------------------------------


def _discs(shape, centres, radius) -> np.ndarray:
    """Bool mask (x, y, z) of vertical cylinders of ``radius`` voxels around (x, y) ``centres``."""
    x, y = np.meshgrid(np.arange(shape[0]), np.arange(shape[1]), indexing="ij")
    flat = np.zeros(shape[:2], bool)
    for cx, cy in centres:
        flat |= (x - cx) ** 2 + (y - cy) ** 2 <= radius**2
    return np.repeat(flat[:, :, None], shape[2], axis=2)


def test_two_separated_legs_get_disjoint_boxes_with_margin():
    mask = _discs((60, 30, 4), [(15, 15), (45, 15)], 8)
    right, left = find_legs(mask, (2.0, 2.0, 5.0), LegSettings(margin_mm=4.0))
    assert (right.side, left.side) == ("R", "L")
    assert right.side_from == left.side_from == "two legs"
    # disc x-extent 7..23 and 37..53; 2 voxels margin; the cut lies in the gap (24..36).
    assert (right.start[0], left.stop[0]) == (5, 56)
    assert right.stop[0] == 26 and left.start[0] == 35
    assert right.stop[0] <= left.start[0]
    assert right.start[1:] == (5, 0) and right.stop[1:] == (26, 4)


def test_touching_legs_are_cut_at_the_contact():
    mask = _discs((60, 30, 3), [(20, 15), (40, 15)], 10)  # the discs touch at x = 30
    assert mask[30, 15, 0]
    right, left = find_legs(mask, (1.0, 1.0, 5.0), LegSettings(margin_mm=3.0))
    assert right.stop[0] == left.start[0] in (30, 31)
    assert right.start[0] == 7 and left.stop[0] == 54  # discs span x 10..50, margin 3


def test_find_cut_needs_a_valley():
    hill = np.array([0, 2, 5, 8, 9, 9, 8, 5, 2, 0])  # one leg: KMeans still returns two centres
    assert find_cut(hill, 3, 6, 0.5) is None
    valley = np.array([0, 5, 8, 5, 1, 1, 5, 8, 5, 0])
    assert find_cut(valley, 2, 7, 0.5) == 5  # the middle of the narrowest run (4, 5)


@pytest.mark.parametrize("cx, side", [(45, "L"), (12, "R")])
def test_one_leg_side_is_its_position_relative_to_the_image_centre(cx, side):
    mask = _discs((60, 30, 3), [(cx, 15)], 9)
    (leg,) = find_legs(mask, (1.5, 1.5, 5.0))
    assert leg.side == side
    assert leg.side_from == "position vs image centre"


def test_empty_mask_is_an_error():
    with pytest.raises(FilterNetError, match="no legs found"):
        find_legs(np.zeros((10, 10, 2), bool), (1.0, 1.0, 1.0))


# ---- whole scans: every leg crop holds its own leg and none of the other ----------------------------------

VARIANTS = {
    "default": ScanSpec(),
    "nearly touching (2 mm gap)": ScanSpec(half_distance_mm=51.0),
    "left leg only": ScanSpec(legs=("L",)),
    "right leg only": ScanSpec(legs=("R",)),
    "patient rotated 20 deg": ScanSpec(rotation_deg=20.0, shift_mm=(6.0, -8.0, 0.0)),
    "RAS-stored (direction -1, -1, 1)": ScanSpec(direction=(-1, 0, 0, 0, -1, 0, 0, 0, 1)),
    "axes permuted and flipped": ScanSpec(size=(40, 72, 5), direction=(0, 1, 0, -1, 0, 0, 0, 0, -1)),
    "oblique 25 deg": ScanSpec(direction=tuple(rotation_z(25).ravel())),
    "384 x 384 x 24 at 0.9 x 0.9 x 6 mm": ScanSpec(size=(384, 384, 24), spacing=(0.9, 0.9, 6.0), noise=0.0),
}


#: Localisation does not depend on how long N4 iterates; a short fit keeps these tests quick.
QUICK = ConversionSettings(n4=N4Settings(iterations=(10,)))


@pytest.mark.parametrize("name", list(VARIANTS))
def test_leg_crops_hold_their_own_leg_and_nothing_of_the_other(name):
    spec = VARIANTS[name]
    scan = draw(spec)
    result = legs_of_scan(scan.image, None, QUICK)
    assert sorted(leg.side for leg in result.legs) == sorted(spec.legs)
    label, leg_of = xyz_array(scan.label), xyz_array(scan.leg)
    for leg in result.legs:
        inside = np.zeros(label.shape, bool)
        inside[tuple(slice(i, i + n) for i, n in zip(leg.crop_index, leg.crop_size))] = True
        own = leg_of == (1 if leg.side == "L" else 2)
        other = (leg_of > 0) & ~own
        assert np.all(inside[own & (label > 0)]), f"{leg.side} crop misses labelled voxels of its leg"
        assert not np.any(inside[other & (label > 0)]), f"{leg.side} crop holds labelled voxels of the other leg"
        assert leg.image.GetSize() == tuple(leg.crop_size[a] for a in result.axes.axes)


def test_right_leg_mirrored_looks_like_the_left_leg():
    # The fixture's right leg is the mirror image of its left leg, so after conversion they must coincide.
    scan = draw(ScanSpec(noise=0.0, bias=0.0))
    right, left = legs_of_scan(scan.image, scan.label).legs
    assert (right.side, right.mirrored, left.side, left.mirrored) == ("R", True, "L", False)
    np.testing.assert_array_equal(xyz_array(right.label), xyz_array(left.label))
    np.testing.assert_allclose(xyz_array(right.image), xyz_array(left.image), atol=1e-4)
    # lateral compartment PL (5) is at high x (away from the midline) in both, as in a left leg
    pl_x = np.argwhere(xyz_array(left.label) == 5)[:, 0].mean()
    ta_x = np.argwhere(xyz_array(left.label) == 1)[:, 0].mean()
    assert pl_x > ta_x


# ---- bias correction -------------------------------------------------------------------------------------


def test_shrink_factors_spare_the_thick_slice_axis():
    s = N4Settings(fit_spacing_mm=4.0, min_shrunk_size=32)
    assert shrink_factors((0.7, 0.7, 7.0), (512, 512, 30), s) == [6, 6, 1]
    assert shrink_factors((0.9, 0.9, 6.0), (384, 384, 24), s) == [4, 4, 1]
    assert shrink_factors((2.0, 2.0, 2.0), (128, 128, 128), s) == [2, 2, 2]
    assert shrink_factors((0.5, 0.5, 5.0), (64, 96, 20), s) == [2, 3, 1]  # keeps >= 32 voxels


def test_n4_flattens_a_known_bias_field():
    spec = ScanSpec(size=(96, 56, 6), spacing=(2.6, 2.6, 8.0), bias=0.5, noise=0.01)
    biased = sitk.Cast(draw(spec).image, sitk.sitkFloat32)
    unbiased = sitk.Cast(draw(spec.replace(bias=0.0)).image, sitk.sitkFloat32)
    muscle = sitk.GetArrayFromImage(draw(spec).label) == 3  # one compartment: uniform without bias

    def cv(img):
        values = sitk.GetArrayFromImage(img)[muscle]
        return values.std() / values.mean()

    corrected, info, _ = n4_correct(biased, otsu_mask(biased), N4Settings())
    assert cv(biased) > 3 * cv(unbiased)
    assert cv(corrected) < 0.5 * cv(biased)
    assert info["shrink_factors"][2] == 1 and info["iterations_run"] > 0
    _, flat_info, _ = n4_correct(unbiased, otsu_mask(unbiased), N4Settings())
    assert info["field_gain"] > 1.3 * flat_info["field_gain"] >= 1.0  # the estimated field's 99th / 1st percentile
