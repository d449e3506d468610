"""Legs found whatever the background (issue 22, class 3): offsets, constant fills, padded bands, spike voxels.

Every variant is the fixture scan with its intensities changed in one hostile way; the legs found (crop boxes)
must be the clean scan's, and the normalised leg images equal to the clean scan's on every voxel the change
left alone. A scan whose legs cannot be found is refused naming the scan, never written as a whole-field leg.
"""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from nnunet_filternet.dataset_conversion.bias import N4Settings, otsu_mask
from nnunet_filternet.dataset_conversion.intensity import constant_fills, fill_min_voxels, intensity_statistics
from nnunet_filternet.dataset_conversion.legs_of_scan import ConversionSettings, legs_of_scan, xyz_array
from nnunet_filternet.dataset_conversion.mirror import to_leg
from nnunet_filternet.errors import FilterNetError, InputError
from tests.scan_fixtures import ScanSpec, draw

QUICK = ConversionSettings(n4=N4Settings(iterations=(10,)))


def _with(arr_zyx: np.ndarray, like: sitk.Image) -> sitk.Image:
    """A float64 scan (float32 for intensities it holds exactly) on ``like``'s grid."""
    exact = np.all(np.abs(arr_zyx) < 1e7)
    out = sitk.GetImageFromArray(np.ascontiguousarray(arr_zyx, dtype=np.float32 if exact else np.float64))
    out.CopyInformation(like)
    return out


def _spiked(a, points):
    out = a.copy()
    for (z, y, x), value in points:
        out[z, y, x] = value
    return out


def _set(a, where, value):
    out = a.copy()
    out[where] = value
    return out


def _none(a, b, leg):
    return np.zeros(a.shape, bool)  # an affine change: every voxel compared


def _diff(a, b, leg):
    return a != b  # the voxels changed are left out of the comparison


def _air(a, b, leg):
    return leg == 0  # the background replaced: the legs compared


#: name -> (change of the (z, y, x) intensities given the leg map, voxels not compared, tolerance on the
#: normalised leg images (standard deviations of the body))
VARIANTS = {
    "offset +300": (lambda a, leg: a + 300, _none, 1e-4),
    "offset +3000": (lambda a, leg: a + 3000, _none, 1e-4),
    "offset -500 (negative intensities)": (lambda a, leg: a - 500, _none, 1e-4),
    "scaled x1000, offset +1e5": (lambda a, leg: a * 1000 + 1e5, _none, 1e-4),
    "offset +1e8 (float64 scan)": (lambda a, leg: a + 1e8, _none, 1e-4),
    "band of 5000 along the top": (lambda a, leg: _set(a, np.s_[:, :4, :], 5000), _diff, 5e-3),
    "band of -2000 on the right": (lambda a, leg: _set(a, np.s_[:, :, -3:], -2000), _diff, 5e-3),
    "band of 600 (tissue-like) on the left": (lambda a, leg: _set(a, np.s_[:, :, :2], 600), _diff, 5e-3),
    "one-voxel row of 3000": (lambda a, leg: _set(a, np.s_[:, -1, :], 3000), _diff, 5e-3),
    "offset +300 and a band of 0": (
        lambda a, leg: _set(a + 300, np.s_[:, :, :3], 0),
        lambda a, b, leg: _set(np.zeros(a.shape, bool), np.s_[:, :, :3], True),
        5e-3,
    ),
    "spike +1e7 between the legs": (lambda a, leg: _spiked(a, [((2, 20, 36), 1e7)]), _diff, 5e-3),
    "spike -1e7": (lambda a, leg: _spiked(a, [((2, 20, 36), -1e7)]), _diff, 5e-3),
    "spike 65000 inside a leg": (lambda a, leg: _spiked(a, [((2, 20, 20), 65000)]), _diff, 5e-3),
    "three spikes +-1e9": (
        lambda a, leg: _spiked(a, [((2, 5, 5), 1e9), ((1, 30, 60), 1e9), ((0, 10, 10), -1e9)]),
        _diff,
        5e-3,
    ),
    # A blanked background holds no air signal: the air level is the darkest tissue's (documented), so the
    # normalised tissue moves by up to ~0.2 standard deviations; the legs found do not move.
    "constant background 300": (lambda a, leg: np.where(leg > 0, a, 300.0), _air, 0.25),
    "constant background 0, offset +500": (lambda a, leg: np.where(leg > 0, a + 500, 0.0), _air, 0.25),
}


@pytest.fixture(scope="module")
def clean():
    scan = draw(ScanSpec())
    return scan, legs_of_scan(scan.image, None, QUICK)


@pytest.mark.parametrize("name", list(VARIANTS))
def test_legs_and_normalised_images_do_not_depend_on_the_background(clean, name):
    scan, reference = clean
    change, not_compared, tolerance = VARIANTS[name]
    a, leg = sitk.GetArrayFromImage(scan.image).astype(np.float64), sitk.GetArrayFromImage(scan.leg)
    b = change(a, leg)
    result = legs_of_scan(_with(b, scan.image), None, QUICK)
    assert [(g.side, g.crop_index, g.crop_size) for g in result.legs] == [
        (g.side, g.crop_index, g.crop_size) for g in reference.legs
    ]
    changed = xyz_array(_with(not_compared(a, b, leg), scan.image)) > 0
    for got, want in zip(result.legs, reference.legs):
        crop = tuple(slice(i, i + n) for i, n in zip(want.crop_index, want.crop_size))
        kept = ~to_leg(changed[crop], reference.axes, want.side == "R")
        diff = np.abs(xyz_array(got.image) - xyz_array(want.image))[kept]
        assert diff.max() <= tolerance, f"{got.side}: normalised image differs by up to {diff.max():.3g}"


def test_one_leg_with_a_constant_fill_half_converts_as_without_it():
    """The scan of one leg whose other half is a constant fill (any value): the leg and its labels as without it."""
    scan = draw(ScanSpec(legs=("L",)))
    reference = legs_of_scan(scan.image, scan.label, QUICK)
    a = sitk.GetArrayFromImage(scan.image).astype(np.float64)
    for fill in (0.0, 10.0, 300.0, 1000.0, -1000.0):
        result = legs_of_scan(_with(_set(a, np.s_[:, :, :36], fill), scan.image), scan.label, QUICK)
        (got,), (want,) = result.legs, reference.legs
        assert (got.side, got.crop_index, got.crop_size) == (want.side, want.crop_index, want.crop_size), fill
        np.testing.assert_array_equal(xyz_array(got.label), xyz_array(want.label))


def test_a_spike_does_not_shrink_the_body_mask(clean):
    scan, _ = clean
    a = sitk.GetArrayFromImage(scan.image).astype(np.float64)
    want = sitk.GetArrayFromImage(otsu_mask(scan.image))
    for spike in (1e7, -1e7):
        got = sitk.GetArrayFromImage(otsu_mask(_with(_spiked(a, [((2, 20, 36), spike)]), scan.image)))
        assert np.count_nonzero(got != want) <= 1 and got.sum() > 0.2 * got.size


# ---- constant fills ---------------------------------------------------------------------------------------


def test_constant_fills_are_large_border_regions_of_one_value():
    rng = np.random.default_rng(0)
    noise = rng.normal(100, 10, (5, 40, 60))
    assert not constant_fills(noise).any()
    integers = np.round(noise)  # integer intensities: equal neighbours happen, but no large regions
    assert not constant_fills(integers).any()
    band = _set(noise, np.s_[:, 0, :], 7.0)  # one voxel wide, along a whole edge
    np.testing.assert_array_equal(constant_fills(band), band == 7.0)
    inner = _set(noise, np.s_[1:4, 10:30, 20:40], 7.0)  # constant but not at the border: tissue-like
    assert not constant_fills(inner).any()
    small = _set(noise, np.s_[:2, 0, :3], 7.0)  # at the border but smaller than half the smallest face
    assert 6 < fill_min_voxels(small.shape) and not constant_fills(small).any()
    through = _set(noise, np.s_[:, 10:30, 20:40], 7.0)  # a constant region reaching only the end slices ...
    assert constant_fills(through, along=None).any()  # ... is a fill when every face is border,
    assert not constant_fills(through, along=0).any()  # not when axis 0 runs along the legs


def test_robust_statistics_move_with_an_offset_and_ignore_spikes():
    rng = np.random.default_rng(1)
    a = np.abs(rng.normal(0, 20, (5, 40, 60)))
    a[:, 10:30, 10:50] += 800
    ref = intensity_statistics(a)
    spiked = _spiked(a + 300, [((0, 0, 0), 1e9), ((1, 1, 1), -1e9)])
    got = intensity_statistics(spiked)
    assert got.air == pytest.approx(ref.air + 300, abs=1.0) and got.high == pytest.approx(ref.high + 300, abs=1.0)
    big = np.abs(rng.normal(0, 20, (10, 400, 300)))  # over a million voxels: percentiles of a regular subsample
    big[:, 100:300, 50:250] += 800
    ref, got = intensity_statistics(big), intensity_statistics(_spiked(big - 500, [((0, 0, 0), 1e9)]))
    assert got.air == pytest.approx(ref.air - 500, abs=1e-3) and got.high == pytest.approx(ref.high - 500, abs=1e-3)
    assert ref.high == pytest.approx(np.percentile(big, 99.5), rel=1e-3)
    with pytest.raises(FilterNetError, match="one constant value"):
        intensity_statistics(np.full((4, 5, 6), 3.0))


# ---- legs that cannot be found ------------------------------------------------------------------------------


def test_a_whole_field_leg_is_refused_naming_the_scan(tmp_path, monkeypatch):
    """A square field of view (a whole-field "leg" is no wider than deep): the background taken for tissue."""
    import nnunet_filternet.dataset_conversion.legs_of_scan as module
    from nnunet_filternet.dataset_conversion.scan_worker import ScanJob, convert_scan

    monkeypatch.setattr(module, "tissue_mask", lambda arr, *args, **kwargs: np.ones(arr.shape, bool))
    spec = ScanSpec(size=(48, 48, 4), spacing=(5.0, 5.0, 8.0))
    with pytest.raises(FilterNetError, match=r"covers 100 % of the field of view"):
        legs_of_scan(draw(spec).image, None, QUICK)
    path = tmp_path / "square.nii.gz"
    sitk.WriteImage(draw(spec).image, str(path))
    job = ScanJob("square", path, None, tmp_path / "out", "", None, QUICK, 1, keep_going=False)
    with pytest.raises(InputError, match=r"square\.nii\.gz: doubtful leg split, nothing written: the tissue found"):
        convert_scan(job)
    assert not list((tmp_path / "out").glob("*.nii.gz"))
