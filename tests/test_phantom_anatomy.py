"""Phantom anatomy: compartments in anatomical position in both legs, tissue contrast, shape along the leg."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from scipy import ndimage

from nnunet_filternet.labels import LABELS
from nnunet_filternet.phantom import cohort_specs, generate_subject
from nnunet_filternet.phantom.anatomy import AIR, CORTEX, FAT, MARROW, MUSCLE, render_section, section
from nnunet_filternet.phantom.cohort import is_healthy

SHAPE, SPACING = (256, 256, 30), (1.4, 1.4, 7.0)
TA, TP, SOL, GAS, PL = (LABELS[k] for k in ("TA", "TP", "Sol", "Gas", "PL"))


@pytest.fixture(scope="module")
def healthy():
    spec = cohort_specs(8, 2, seed=0)[3]
    assert spec.group == "healthy"
    return generate_subject(spec, SHAPE, SPACING)


def _legs(volume: np.ndarray) -> dict[str, np.ndarray]:
    """Split a (z, y, x) volume into the right leg (low-x half) and the left leg (high-x half)."""
    half = volume.shape[2] // 2
    right, left = volume.copy(), volume.copy()
    right[..., half:] = 0
    left[..., :half] = 0
    return {"right": right, "left": left}


def _centroid(mask: np.ndarray) -> np.ndarray:
    """(x, y) centroid of a (z, y, x) or (y, x) mask, in voxels."""
    idx = np.nonzero(mask)
    return np.array([idx[-1].mean(), idx[-2].mean()])


def test_legs_lie_in_their_halves(healthy):
    half = SHAPE[0] // 2  # columns below half have x < 0 (patient's right)
    legs = healthy.tissue != AIR
    assert legs[..., :half].any() and legs[..., half:].any()
    for z in range(SHAPE[2]):
        parts, n = ndimage.label(legs[z])
        assert n == 2  # two legs, each in one piece
        for i in (1, 2):
            columns = np.nonzero((parts == i).any(axis=0))[0]
            assert columns.max() < half or columns.min() >= half  # no leg crosses the middle (x = 0)


@pytest.mark.parametrize("leg", ["right", "left"])
def test_compartments_in_anatomical_position(healthy, leg):
    label = _legs(healthy.label)[leg]
    lateral = 1.0 if leg == "left" else -1.0  # the left leg's lateral side is +x, the right leg's is -x
    c = {k: _centroid(label == k) for k in (TA, TP, SOL, GAS, PL)}
    x, y = 0, 1
    # y grows posteriorly: TA in front, then TP, then Sol, Gas most posterior
    assert c[TA][y] < c[TP][y] < c[SOL][y] < c[GAS][y]
    # PL lateral of TP and of TA
    assert lateral * (c[PL][x] - c[TP][x]) > 5
    assert lateral * (c[PL][x] - c[TA][x]) > 0
    # bones in the middle slice: tibia (largest) and fibula
    z = SHAPE[2] // 2
    bone = _legs(np.isin(healthy.tissue, (CORTEX, MARROW)).astype(np.uint8))[leg][z]
    parts, n = ndimage.label(bone)
    assert n == 2
    sizes = ndimage.sum(bone, parts, range(1, 3))
    tibia = _centroid(parts == 1 + int(np.argmax(sizes)))
    fibula = _centroid(parts == 1 + int(np.argmin(sizes)))
    assert lateral * (fibula[x] - tibia[x]) > 10  # fibula lateral
    ta = _centroid(label[z] == TA)
    tp = _centroid(label[z] == TP)
    assert lateral * (ta[x] - tibia[x]) > 0 and ta[y] < fibula[y]  # TA anterolateral to the tibia
    assert lateral * (tp[x] - tibia[x]) > 0 and lateral * (fibula[x] - tp[x]) > 0  # TP between the bones
    assert tp[y] > tibia[y]  # TP deep, behind the tibia
    pl = _centroid(label[z] == PL)
    assert np.hypot(*(pl - fibula)) < np.hypot(*(pl - tibia))  # PL by the fibula


def test_legs_are_mirror_images_in_layout(healthy):
    """Offsets from TP to PL point outwards in both legs: -x in the right leg, +x in the left."""
    legs = _legs(healthy.label)
    dx = {k: _centroid(v == PL)[0] - _centroid(v == TP)[0] for k, v in legs.items()}
    assert dx["right"] < 0 < dx["left"]


def test_tissue_contrast(healthy):
    image, tissue = healthy.image, healthy.tissue
    marrow, cortex = image[tissue == MARROW].mean(), image[tissue == CORTEX].mean()
    fat, muscle = image[tissue == FAT].mean(), image[tissue == MUSCLE].mean()
    assert marrow > 3 * cortex
    assert fat > 2 * muscle
    # the subcutaneous fat surrounds each leg's muscles: fat in (almost) every direction from their centre
    z = SHAPE[2] // 2
    for fat_mask, label in zip(_legs(tissue == FAT).values(), _legs(healthy.label).values()):
        cx, cy = _centroid(label[z] > 0)
        ys, xs = np.nonzero(fat_mask[z])
        sectors = np.unique(((np.arctan2(ys - cy, xs - cx) + np.pi) / (2 * np.pi) * 36).astype(int) % 36)
        assert len(sectors) >= 34


@pytest.mark.parametrize("leg", ["right", "left"])
def test_gastrocnemius_two_heads_proximally_one_thin_sheet_distally(healthy, leg):
    gas = _legs(healthy.label == GAS)[leg]
    lateral = 1.0 if leg == "left" else -1.0
    for z in (SHAPE[2] - 1, SHAPE[2] - 3):  # proximal slices: medial and lateral head
        parts, n = ndimage.label(gas[z])
        assert n == 2
        sizes = ndimage.sum(gas[z], parts, (1, 2))
        heads = [_centroid(parts == i) for i in (1, 2)]
        medial = int(np.argmin([lateral * h[0] for h in heads]))
        assert sizes[medial] > sizes[1 - medial]  # the medial head is the larger
    area = gas.sum(axis=(1, 2))
    assert area[-5:].mean() > 2.5 * area[:5].mean()  # bulky proximally, thin distally
    assert (area[:5] > 0).all()


def test_compartments_taper_distally(healthy):
    area = np.stack([(healthy.label == k).sum(axis=(1, 2)) for k in (TA, TP, SOL, GAS, PL)])
    total = area.sum(axis=0)
    assert total[-8:].mean() > 1.4 * total[:8].mean()


def test_fasciae_contrast_varies_and_vanishes(healthy):
    """Between compartments the noiseless signal dips at some boundary pixels and not at others."""
    signal, label = healthy.signal, healthy.label
    edge = np.zeros(label.shape, bool)
    for axis in (1, 2):
        a = np.swapaxes(label, 0, axis)
        diff = (a[1:] != a[:-1]) & (a[1:] > 0) & (a[:-1] > 0)
        e = np.swapaxes(edge, 0, axis)
        e[1:] |= diff
        e[:-1] |= diff
    pure = healthy.fat_fraction == 0
    interior = (label > 0) & ~ndimage.binary_dilation(edge, iterations=2) & pure & (healthy.tissue == MUSCLE)
    level = np.median(signal[interior])
    ratio = signal[edge & pure & (healthy.tissue == MUSCLE)] / level
    assert np.mean(ratio < 0.8) > 0.1  # visible fascia
    assert np.mean(np.abs(ratio - 1) < 0.06) > 0.1  # fascia that vanishes


def test_intramuscular_vessels_make_edges_inside_compartments(healthy):
    signal, label = healthy.signal, healthy.label
    level = np.median(signal[(healthy.tissue == MUSCLE) & (healthy.fat_fraction == 0)])
    for leg, lab in _legs(label).items():
        interior = np.zeros(lab.shape, bool)
        for k in (TA, TP, SOL, GAS, PL):
            interior |= ndimage.binary_erosion(lab == k, structure=np.ones((1, 5, 5)))
        deviation = np.abs(signal / level - 1)[interior]
        assert (deviation > 0.3).sum() > 30, leg
        dark, bright = signal[interior] < 0.6 * level, signal[interior] > 1.4 * level
        assert dark.any() and bright.any(), leg


def _balanced_accuracy_1d(values: np.ndarray, target: np.ndarray, seed: int = 0) -> float:
    """Best single-threshold classifier fitted on one half, balanced accuracy on the other half."""
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(values))
    train, test = order[: len(order) // 2], order[len(order) // 2 :]
    x, y = values[train], target[train]
    s = np.argsort(x)
    xs, ys = x[s], y[s]
    pos, neg = ys.sum(), (~ys).sum()
    below_pos, below_neg = np.cumsum(ys), np.cumsum(~ys)
    upper = 0.5 * ((pos - below_pos) / pos + below_neg / neg)  # positive if x > threshold
    lower = 0.5 * (below_pos / pos + (neg - below_neg) / neg)  # positive if x <= threshold
    i = int(np.argmax(np.maximum(upper, lower)))
    pred = values[test] > xs[i] if upper[i] >= lower[i] else values[test] <= xs[i]
    t = target[test]
    return 0.5 * (pred[t].mean() + (~pred[~t]).mean())


@pytest.mark.parametrize("pair", [(TA, TP), (SOL, GAS), (TA, PL)])
def test_healthy_compartments_share_one_intensity_distribution(healthy, pair):
    a, b = pair
    mask = (healthy.label == a) | (healthy.label == b)
    accuracy = _balanced_accuracy_1d(healthy.image[mask], healthy.label[mask] == a)
    assert accuracy < 0.6


def test_intensity_classifier_does_separate_infiltrated_compartments(healthy):
    """Control for the test above: the same classifier tells Gas from TP once DM1 infiltrates Gas."""
    sick = generate_subject(dataclasses.replace(healthy.spec, group="DM1", severity=0.6), (256, 256, 12), SPACING)
    mask = (sick.label == TP) | (sick.label == GAS)
    assert _balanced_accuracy_1d(sick.image[mask], sick.label[mask] == GAS) > 0.75


def test_subjects_vary():
    specs = cohort_specs(40, 10, seed=0)
    scale = np.array([s.left.scale for s in specs])
    fat = np.array([s.left.fat_mm for s in specs])
    rotation = np.array([s.left_pose.rotation_deg for s in specs])
    gap = np.array([s.gap_mm for s in specs])
    assert scale.std() > 0.04 and fat.max() > 2 * fat.min() and np.ptp(rotation) > 15
    asymmetry = np.array([abs(s.left.scale - s.right.scale) for s in specs])
    assert asymmetry.max() > 0.03
    assert gap.min() < 5 and gap.max() > 30
    assert 1 <= (gap < 5).sum() <= 10  # now and then, legs almost touch
    # cross-section area (mm^2) of each left leg at its bulk, from the analytic outline
    grid = np.linspace(-90, 90, 181, dtype=np.float32)
    v, u = np.meshgrid(grid, grid, indexing="ij")
    area = np.array([(render_section(section(s.left, 0.5), u, v)[0] != AIR).sum() for s in specs])
    assert area.std() / area.mean() > 0.08 and area.max() > 1.4 * area.min()
    assert sum(is_healthy(k, 40, 10) for k in range(40)) == 10


def _smallest_gap_mm(legs: np.ndarray) -> float:
    """Smallest distance along x between the right leg (low-x half) and the left leg, over all rows."""
    half = legs.shape[2] // 2
    x = np.arange(legs.shape[2])
    right_edge = np.where(legs[..., :half], x[:half], -1).max(axis=2)
    left_edge = np.where(legs[..., half:], x[half:], legs.shape[2]).min(axis=2)
    both = (right_edge >= 0) & (left_edge < legs.shape[2])
    return float(((left_edge - right_edge - 1)[both]).min() * SPACING[0])


def test_near_touching_subject_has_a_gap_of_a_few_mm():
    specs = cohort_specs(40, 10, seed=0)
    near = next(s for s in specs if s.gap_mm < 5)
    far = next(s for s in specs if s.gap_mm > 30)
    shape = (256, 256, 8)  # the gap is measured over whichever stack is rendered
    gap_near = _smallest_gap_mm(generate_subject(near, shape, SPACING, n_subslices=1).tissue != AIR)
    gap_far = _smallest_gap_mm(generate_subject(far, shape, SPACING, n_subslices=1).tissue != AIR)
    assert gap_near < 8 and abs(gap_near - near.gap_mm) < 3
    assert abs(gap_far - far.gap_mm) < 3
