"""DM1 fatty infiltration: posterior compartments first and most, monotone in severity, none when healthy."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from nnunet_filternet.labels import LABELS
from nnunet_filternet.phantom import cohort_specs, generate_subject
from nnunet_filternet.phantom.fat import compartment_fat_fraction, infiltration, probit_offsets

SHAPE, SPACING = (128, 128, 12), (2.8, 2.8, 7.0)
COMPARTMENTS = {k: LABELS[k] for k in ("TA", "TP", "Sol", "Gas", "PL")}


@pytest.fixture(scope="module")
def base():
    return cohort_specs(4, 1, seed=3)[0]


def _mean_fat(subject) -> dict[str, float]:
    return {k: float(subject.fat_fraction[subject.label == v].mean()) for k, v in COMPARTMENTS.items()}


def _with(spec, severity: float):
    group = "DM1" if severity > 0 else "healthy"
    return generate_subject(dataclasses.replace(spec, group=group, severity=severity), SHAPE, SPACING)


def test_healthy_muscle_has_no_fat(base):
    """No infiltration at all; with thick slices only the partial volume of neighbouring fat remains."""
    for severity, expect_fat in ((0.0, False), (0.2, True)):
        spec = dataclasses.replace(base, group="DM1" if severity else "healthy", severity=severity)
        thin = generate_subject(spec, SHAPE, SPACING, n_subslices=1)  # no partial volume
        assert (thin.fat_fraction[thin.label > 0].max() > 0) == expect_fat
    fat = _mean_fat(_with(base, 0.0))
    assert max(fat.values()) < 0.03


@pytest.mark.parametrize("severity", [0.15, 0.5, 0.9])
def test_gas_and_sol_are_affected_most(base, severity):
    fat = _mean_fat(_with(base, severity))
    others = max(fat["TA"], fat["TP"], fat["PL"])
    assert min(fat["Gas"], fat["Sol"]) > others
    assert fat["Gas"] > 0.01


def test_infiltration_is_monotone_in_severity(base):
    severities = [0.1, 0.3, 0.6, 0.9]
    subjects = [_with(base, s) for s in severities]
    table = np.array([[f[k] for k in COMPARTMENTS] for f in map(_mean_fat, subjects)])  # (severity, compartment)
    assert (np.diff(table, axis=0) > 0).all()
    # per voxel too: the same patches, more fat
    ff = np.stack([s.fat_fraction for s in subjects])
    assert (np.diff(ff, axis=0) >= -1e-6).all()


def test_severe_subject_has_a_compartment_almost_replaced(base):
    fat = _mean_fat(_with(base, 1.0))
    assert max(fat.values()) > 0.8


def test_infiltration_is_patchy(base):
    subject = _with(base, 0.3)
    gas = subject.fat_fraction[subject.label == COMPARTMENTS["Gas"]]
    assert np.mean(gas < 0.1) > 0.2 and np.mean(gas > 0.5) > 0.1  # spared and replaced parts side by side


def test_infiltration_raises_t1_signal(base):
    healthy, sick = _with(base, 0.0), _with(base, 0.7)
    gas = healthy.label == COMPARTMENTS["Gas"]
    assert sick.image[gas].mean() > 1.5 * healthy.image[gas].mean()


def test_default_cohort_spreads_from_mild_to_severe():
    specs = cohort_specs(40, 10, seed=0)
    severity = np.array([s.severity for s in specs if s.group == "DM1"])
    assert len(severity) == 30 and (severity > 0).all() and (severity <= 1).all()
    assert severity.min() < 0.15 and severity.max() > 0.9
    assert all(s.severity == 0.0 for s in specs if s.group == "healthy")


def test_mean_of_infiltration_matches_the_target():
    """E[Phi(a g + b)] = m for g ~ N(0, 1): the model's compartment means are what the table says."""
    g = np.random.default_rng(0).standard_normal(200_000).astype(np.float32)
    target = compartment_fat_fraction(0.5)
    for label in COMPARTMENTS.values():
        offset = probit_offsets(target, 2.0)[label]
        assert abs(infiltration(g, offset, 2.0).mean() - target[label]) < 0.01
