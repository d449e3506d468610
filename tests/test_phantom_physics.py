"""MR physics of the phantom (bias field, Rician noise, thick slices, scale), geometry and determinism."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from nnunet_filternet.errors import FilterNetError
from nnunet_filternet.phantom import cohort_specs, generate_subject
from nnunet_filternet.phantom.anatomy import AIR, FAT
from nnunet_filternet.phantom.physics import TISSUE_FAT_FRACTION

SHAPE, SPACING = (128, 128, 12), (2.8, 2.8, 7.0)


@pytest.fixture(scope="module")
def subject():
    return generate_subject(cohort_specs(4, 1, seed=1)[3], SHAPE, SPACING)


def test_arrays_and_geometry(subject):
    assert subject.image.shape == subject.label.shape == subject.bias.shape == (12, 128, 128)
    assert subject.image.dtype == np.float32 and subject.label.dtype == np.uint8
    assert subject.bias.dtype == np.float32 and subject.fat_fraction.dtype == np.float32
    assert set(np.unique(subject.label)) == {0, 1, 2, 3, 4, 5}
    assert 0 <= subject.fat_fraction.min() and subject.fat_fraction.max() <= 1
    images = subject.to_sitk()
    for img in images.values():
        assert img.GetSize() == SHAPE
        assert np.allclose(img.GetSpacing(), SPACING)
        assert np.allclose(img.GetDirection(), np.eye(3).ravel())
        # the image is centred on the origin
        centre = img.TransformContinuousIndexToPhysicalPoint([(n - 1) / 2 for n in SHAPE])
        assert np.allclose(centre, 0, atol=1e-6)


def test_bias_field_spans_at_least_25_percent_and_is_smooth(subject):
    bias, amplitude = subject.bias, subject.spec.bias_amplitude
    assert amplitude >= 0.25
    assert bias.max() == pytest.approx(1 + amplitude, abs=1e-4) and bias.min() == pytest.approx(1 - amplitude, abs=1e-4)
    for axis, spacing in ((2, SPACING[0]), (1, SPACING[1])):
        step = np.abs(np.diff(bias, axis=axis)).max()
        assert step / spacing < 0.005  # relative change per mm
    # it varies across the legs too, not only in the air
    legs = subject.tissue != AIR
    assert bias[legs].max() / bias[legs].min() > 1.1


def test_saved_bias_is_the_true_multiplicative_field(subject):
    """In fat (high SNR) the image is scale * bias * signal up to the noise."""
    fat = (subject.tissue == FAT) & (subject.signal > 0.9)
    ratio = subject.image[fat] / (subject.spec.intensity_scale * subject.bias[fat] * subject.signal[fat])
    assert np.median(ratio) == pytest.approx(1.0, abs=0.01)
    # without the field the same ratio follows the field
    plain = subject.image[fat] / (subject.spec.intensity_scale * subject.signal[fat])
    assert np.std(plain) > 1.5 * np.std(ratio)
    assert np.corrcoef(plain, subject.bias[fat])[0, 1] > 0.8


def test_noise_is_rician(subject):
    """Where there is no signal the magnitude of complex Gaussian noise is Rayleigh distributed."""
    air = subject.signal == 0
    values = subject.image[air] / subject.spec.intensity_scale
    sigma = subject.spec.noise_sigma
    assert values.min() >= 0  # a magnitude
    assert values.mean() == pytest.approx(sigma * np.sqrt(np.pi / 2), rel=0.03)
    assert values.mean() / values.std() == pytest.approx(np.sqrt(np.pi / 2) / np.sqrt(2 - np.pi / 2), rel=0.05)


def test_thick_slices_average_sub_slices():
    spec = cohort_specs(4, 1, seed=1)[3]
    thin = generate_subject(spec, SHAPE, SPACING, n_subslices=1)
    thick = generate_subject(spec, SHAPE, SPACING, n_subslices=5)
    # labels are the anatomy at the slice centre, the middle sub-slice
    assert np.array_equal(thin.label, thick.label)
    # one sub-slice: every voxel is one tissue (fat fraction only takes the tissue values)
    pure = np.array(sorted(set(TISSUE_FAT_FRACTION.values())), np.float32)
    assert np.isin(np.unique(thin.fat_fraction), pure).all()
    # five sub-slices: partial volume where boundaries move along the leg
    mixed = (thick.fat_fraction > 0.05) & (thick.fat_fraction < 0.85)
    assert mixed.sum() > 0.005 * (thick.label > 0).sum()
    assert not np.array_equal(thin.signal, thick.signal)
    with pytest.raises(FilterNetError, match="odd"):
        generate_subject(spec, SHAPE, SPACING, n_subslices=4)


def test_per_subject_intensity_scale(subject):
    doubled = generate_subject(dataclasses.replace(subject.spec, intensity_scale=2 * subject.spec.intensity_scale),
                               SHAPE, SPACING)  # fmt: skip
    assert np.allclose(doubled.image, 2 * subject.image, rtol=1e-5)
    scales = [s.intensity_scale for s in cohort_specs(40, 10, seed=0)]
    assert max(scales) > 3 * min(scales)


def test_deterministic(subject):
    again = generate_subject(subject.spec, SHAPE, SPACING)
    for key in ("image", "label", "bias", "fat_fraction"):
        assert np.array_equal(getattr(again, key), getattr(subject, key))
    other_seed = generate_subject(cohort_specs(4, 1, seed=2)[3], SHAPE, SPACING)
    assert not np.array_equal(other_seed.image, subject.image)


def test_subject_does_not_depend_on_cohort_size():
    big, small = cohort_specs(40, 10, seed=0), cohort_specs(5, 1, seed=0)
    assert cohort_specs(8, 2, seed=0) == big[:8]  # same healthy fraction: identical prefix, groups included
    for k in range(5):
        a, b = big[k], small[k]
        # groups follow the cohort's healthy fraction; everything else is the subject's own
        assert dataclasses.replace(a, group=b.group, severity=b.severity) == b
        if a.group == b.group:
            assert a == b
    assert np.array_equal(
        generate_subject(big[0], SHAPE, SPACING).image, generate_subject(small[0], SHAPE, SPACING).image
    )


@pytest.mark.parametrize("n", [1, 2, 5, 7, 40, 41])
def test_healthy_count_is_exact(n):
    for healthy in range(n + 1):
        assert sum(s.group == "healthy" for s in cohort_specs(n, healthy, seed=0)) == healthy


def test_any_resolution_same_anatomy():
    """Anatomy is in millimetres: the same subject at 1.4 mm and 2.8 mm has the same compartment volumes."""
    spec = cohort_specs(4, 1, seed=1)[0]
    coarse = generate_subject(spec, SHAPE, SPACING, n_subslices=1)
    fine = generate_subject(spec, (256, 256, 12), (1.4, 1.4, 7.0), n_subslices=1)
    for k in range(1, 6):
        v_coarse = (coarse.label == k).sum() * 2.8 * 2.8
        v_fine = (fine.label == k).sum() * 1.4 * 1.4
        assert v_coarse == pytest.approx(v_fine, rel=0.1)


def test_field_of_view_too_small_is_a_clear_error():
    spec = cohort_specs(1, 0, seed=0)[0]
    with pytest.raises(FilterNetError, match="field of view"):
        generate_subject(spec, (64, 64, 4), (1.0, 1.0, 7.0))
    with pytest.raises(FilterNetError, match="spacing"):
        generate_subject(spec, SHAPE, (0.0, 2.8, 7.0))
    with pytest.raises(FilterNetError, match="shape"):
        generate_subject(spec, (128, 0, 12), SPACING)


@pytest.mark.parametrize("shape, spacing", [((512, 512, 30), (0.7, 0.7, 7.0)), ((128, 128, 12), (2.8, 2.8, 7.0))])
def test_default_cohort_fits_common_fields_of_view(shape, spacing):
    from nnunet_filternet.phantom.layout import place_legs
    from nnunet_filternet.phantom.subject import make_grid

    grid = make_grid(shape, spacing)
    for spec in cohort_specs(40, 10, seed=0):
        right, left = place_legs(spec, grid)
        z = grid.axis(2)
        (rx0, rx1, ry0, ry1), (lx0, lx1, ly0, ly1) = right.extent(z), left.extent(z)
        half_x, half_y = grid.fov_mm[0] / 2, grid.fov_mm[1] / 2
        assert -half_x < rx0 < rx1 < 0 < lx0 < lx1 < half_x  # right leg in the low-x half, left in the high-x half
        assert lx0 - rx1 == pytest.approx(spec.gap_mm)
        assert -half_y < min(ry0, ly0) and max(ry1, ly1) < half_y
