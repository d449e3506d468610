"""Surface distances and Dice: hand-derived answers, empty-mask conventions, and medpy 0.5.2 as the oracle."""

from __future__ import annotations

import math

import numpy as np
import pytest
from medpy.metric import binary as medpy_binary
from scipy import ndimage as ndi

from nnunet_filternet.metrics.overlap import dice, volume_ml
from nnunet_filternet.metrics.surface import (
    asd_pred_to_ref,
    asd_ref_to_pred,
    assd,
    compartment_metrics,
    compute_surface_distances,
    hd95,
)


def _blob(rng: np.random.Generator, shape, sigma, level) -> np.ndarray:
    """Random smooth blob(s): Gaussian-smoothed noise above a level (touches the array border at times)."""
    return ndi.gaussian_filter(rng.standard_normal(shape), sigma) > level


def test_two_voxels_2mm_apart():
    pred = np.zeros((5, 5, 5), bool)
    ref = np.zeros((5, 5, 5), bool)
    pred[2, 2, 1] = True
    ref[2, 2, 3] = True
    sd = compute_surface_distances(pred, ref, spacing=(3.0, 2.0, 1.0))
    assert assd(sd) == pytest.approx(2.0)
    assert hd95(sd) == pytest.approx(2.0)
    assert dice(pred, ref) == 0.0


def test_anisotropic_slab_shift_along_z():
    """Two 1-voxel-thick slabs one slice apart: every surface voxel is exactly one slice (7 mm) away."""
    pred = np.zeros((4, 6, 6), bool)
    ref = np.zeros((4, 6, 6), bool)
    pred[1, 1:5, 1:5] = True
    ref[2, 1:5, 1:5] = True
    sd = compute_surface_distances(pred, ref, spacing=(7.0, 0.7, 0.7))
    assert sd.pred_to_ref_mm.shape == (16,)
    assert np.allclose(sd.pred_to_ref_mm, 7.0) and np.allclose(sd.ref_to_pred_mm, 7.0)
    assert assd(sd) == pytest.approx(7.0)


def test_assd_pools_distances_rather_than_averaging_directions():
    """A 3x3 square vs its centre voxel (2D, 1 mm): 8 surface voxels at 1 or sqrt(2) mm, 1 voxel at 0 mm.

    pred->ref (square surface to the centre): four at 1, four at sqrt 2; ref->pred: the centre is 1 mm from the
    square's surface. Pooled: (4 + 4 sqrt 2 + 1) / 9, which differs from the mean of the two directed means.
    """
    square = np.zeros((5, 5), bool)
    square[1:4, 1:4] = True
    centre = np.zeros((5, 5), bool)
    centre[2, 2] = True
    sd = compute_surface_distances(square, centre, spacing=(1.0, 1.0))
    assert asd_pred_to_ref(sd) == pytest.approx((4 + 4 * math.sqrt(2)) / 8)
    assert asd_ref_to_pred(sd) == pytest.approx(1.0)
    assert assd(sd) == pytest.approx((5 + 4 * math.sqrt(2)) / 9)
    assert dice(square, centre) == pytest.approx(2 * 1 / (9 + 1))


def test_both_empty_is_nan_one_empty_is_inf():
    empty = np.zeros((3, 4, 4), bool)
    full = empty.copy()
    full[1, 1:3, 1:3] = True
    sd_both = compute_surface_distances(empty, empty, (1, 1, 1))
    assert all(math.isnan(f(sd_both)) for f in (assd, hd95, asd_pred_to_ref, asd_ref_to_pred))
    assert math.isnan(dice(empty, empty))
    for pred, ref in ((empty, full), (full, empty)):
        sd = compute_surface_distances(pred, ref, (1, 1, 1))
        assert all(f(sd) == math.inf for f in (assd, hd95, asd_pred_to_ref, asd_ref_to_pred))
        assert dice(pred, ref) == 0.0


@pytest.mark.parametrize(
    "shape, spacing, seed",
    [
        ((12, 40, 36), (7.0, 0.7, 0.7), 0),
        ((20, 24, 30), (1.0, 2.5, 0.4), 1),
        ((9, 33, 33), (3.3, 1.0, 1.7), 2),
        ((50, 60), (0.9, 2.1), 3),
    ],
)
def test_matches_medpy_on_random_anisotropic_blobs(shape, spacing, seed):
    rng = np.random.default_rng(seed)
    pred = _blob(rng, shape, sigma=2.0, level=0.05)
    ref = _blob(rng, shape, sigma=2.0, level=0.05) | (pred & _blob(rng, shape, sigma=1.0, level=-0.2))
    assert pred.any() and ref.any() and not np.array_equal(pred, ref)
    sd = compute_surface_distances(pred, ref, spacing)
    assert assd(sd) == pytest.approx(medpy_binary.assd(pred, ref, voxelspacing=spacing), abs=1e-6)
    assert asd_pred_to_ref(sd) == pytest.approx(medpy_binary.asd(pred, ref, voxelspacing=spacing), abs=1e-6)
    assert asd_ref_to_pred(sd) == pytest.approx(medpy_binary.asd(ref, pred, voxelspacing=spacing), abs=1e-6)
    assert hd95(sd) == pytest.approx(medpy_binary.hd95(pred, ref, voxelspacing=spacing), abs=1e-6)
    assert dice(pred, ref) == pytest.approx(medpy_binary.dc(pred, ref), abs=1e-12)


def test_compartment_metrics_match_medpy_per_label():
    """Label maps with five labels, some touching the array border; cropping must not change anything."""
    rng = np.random.default_rng(7)
    shape, spacing = (10, 48, 44), (7.0, 0.7, 0.9)
    field = ndi.gaussian_filter(rng.standard_normal((6, *shape)), (0, 1.5, 3, 3))
    ref = np.argmax(field, axis=0).astype(np.uint8)
    noise = ndi.gaussian_filter(rng.standard_normal((6, *shape)), (0, 1, 2, 2))
    pred = np.argmax(field + 0.5 * noise, axis=0).astype(np.uint8)
    rows = compartment_metrics(pred, ref, spacing)
    assert [r["compartment"] for r in rows] == ["TA", "TP", "Sol", "Gas", "PL"]
    for row in rows:
        p, r = pred == row["label"], ref == row["label"]
        assert p.any() and r.any() and not np.array_equal(p, r)
        assert row["dice"] == pytest.approx(medpy_binary.dc(p, r), abs=1e-12)
        assert row["assd_mm"] == pytest.approx(medpy_binary.assd(p, r, voxelspacing=spacing), abs=1e-6)
        assert row["asd_pred_to_ref_mm"] == pytest.approx(medpy_binary.asd(p, r, voxelspacing=spacing), abs=1e-6)
        assert row["asd_ref_to_pred_mm"] == pytest.approx(medpy_binary.asd(r, p, voxelspacing=spacing), abs=1e-6)
        assert row["hd95_mm"] == pytest.approx(medpy_binary.hd95(p, r, voxelspacing=spacing), abs=1e-6)
        assert row["volume_ref_ml"] == pytest.approx(r.sum() * 7.0 * 0.7 * 0.9 / 1000)
        assert row["volume_pred_ml"] == pytest.approx(p.sum() * 7.0 * 0.7 * 0.9 / 1000)


def test_compartment_metrics_empty_labels():
    ref = np.zeros((4, 8, 8), np.uint8)
    pred = np.zeros_like(ref)
    ref[1:3, 2:5, 2:5] = 1  # TA only in the reference: missed
    pred[1:3, 2:4, 5:7] = 2  # TP only in the prediction: hallucinated
    pred[0, 0, 0] = 3  # Sol: a single predicted voxel, absent in the reference
    rows = {r["compartment"]: r for r in compartment_metrics(pred, ref, (2.0, 1.0, 1.0))}
    for name in ("TA", "TP", "Sol"):
        assert rows[name]["dice"] == 0.0
        assert rows[name]["assd_mm"] == math.inf and rows[name]["hd95_mm"] == math.inf
    for name in ("Gas", "PL"):
        assert math.isnan(rows[name]["dice"]) and math.isnan(rows[name]["assd_mm"])
        assert rows[name]["volume_ref_ml"] == 0.0 and rows[name]["volume_pred_ml"] == 0.0
    assert rows["TA"]["volume_ref_ml"] == pytest.approx(volume_ml(18, (2.0, 1.0, 1.0)))


def test_bad_arguments_raise():
    a = np.zeros((3, 4, 4), np.uint8)
    with pytest.raises(ValueError, match="shape"):
        compartment_metrics(a, np.zeros((3, 4, 5), np.uint8), (1, 1, 1))
    with pytest.raises(ValueError, match="integer dtype"):
        compartment_metrics(a.astype(float), a, (1, 1, 1))
    with pytest.raises(ValueError, match="spacing"):
        compartment_metrics(a, a, (1, 1))


def test_benchmark_scan_has_two_legs_of_five_compartments():
    from nnunet_filternet.metrics.benchmark import synthetic_scan_pair, time_compartment_metrics

    pred, ref, spacing = synthetic_scan_pair()
    assert pred.shape == ref.shape == (30, 512, 512) and spacing == (7.0, 0.7, 0.7)
    for labels in (pred, ref):
        for half in (labels[:, :, :256], labels[:, :, 256:]):
            assert set(np.unique(half)) == {0, 1, 2, 3, 4, 5}
    timing = time_compartment_metrics(repeats=1, shape_zyx=(6, 512, 512))
    assert timing["seconds_best"] > 0 and len(timing["seconds_all"]) == 1
