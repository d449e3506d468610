"""Per-subject parameters (:class:`SubjectSpec`), drawn from the subject's own random stream.

Everything about subject ``k`` of a cohort with seed ``seed`` is drawn from
``numpy.random.SeedSequence(seed, spawn_key=(k, 0))``, so it does not depend on the cohort's size. The
group and the DM1 severity are decided by the cohort (``cohort.py``) and passed in.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np

from nnunet_filternet.phantom.anatomy import LegAnatomy

HEALTHY, DM1 = "healthy", "DM1"

#: Stream numbers under a subject's spawn key ``(k, stream)``.
PARAMETER_STREAM, RENDER_STREAM, NOISE_STREAM = 0, 1, 2


@dataclass(frozen=True)
class LegPose:
    """Where one leg lies in the scanner. Millimetres and degrees.

    Attributes:
        rotation_deg: rotation about the leg's axis; positive turns its front outwards (external rotation).
        y_mm: antero-posterior offset of the leg's centre from the field of view's centre (+ posterior).
        tilt_x, tilt_y: drift of the leg's centre per mm along z (the leg is not parallel to the bore).
        dm1_factor: this leg's share of the disease (left-right asymmetry of the infiltration).
    """

    rotation_deg: float = 0.0
    y_mm: float = 0.0
    tilt_x: float = 0.0
    tilt_y: float = 0.0
    dm1_factor: float = 1.0


@dataclass(frozen=True)
class SubjectSpec:
    """Everything that defines one synthetic subject; rendering it is deterministic.

    Attributes:
        index, seed: the subject's number in its cohort and the cohort seed (the random streams).
        group: ``"healthy"`` or ``"DM1"``.
        severity: 0.0 for healthy subjects, in (0, 1] for DM1 (1 = near-complete replacement of Gas).
        right, left: shape of each leg (:class:`~nnunet_filternet.phantom.anatomy.LegAnatomy`).
        right_pose, left_pose: placement of each leg.
        gap_mm: smallest left-right distance between the two legs' skins over the stack.
        gap_centre: where the gap's centre lies, as a fraction of ``gap_mm`` from the image's middle (+ = +x).
        z_offset_mm: the calf position at the centre of the stack (+ = more proximal).
        muscle_signal: T1 signal of healthy muscle relative to fat (fat = 1).
        fascia_mm: thickness of the fasciae between compartments.
        patchiness: steepness of the DM1 infiltration pattern (larger = sharper fatty patches).
        intensity_scale: scanner units per unit signal (fat, before the bias field).
        noise_sigma: standard deviation of each of the two Gaussian noise channels, relative to fat.
        bias_amplitude: the bias field spans ``1 +- bias_amplitude`` over the field of view.
    """

    index: int
    seed: int
    group: str = HEALTHY
    severity: float = 0.0
    right: LegAnatomy = field(default_factory=LegAnatomy)
    left: LegAnatomy = field(default_factory=LegAnatomy)
    right_pose: LegPose = field(default_factory=LegPose)
    left_pose: LegPose = field(default_factory=LegPose)
    gap_mm: float = 30.0
    gap_centre: float = 0.0
    z_offset_mm: float = 0.0
    muscle_signal: float = 0.35
    fascia_mm: float = 0.9
    patchiness: float = 2.0
    intensity_scale: float = 1000.0
    noise_sigma: float = 0.025
    bias_amplitude: float = 0.3

    @property
    def name(self) -> str:
        """Subject name used for files: ``sub-000``, ``sub-001``, ..."""
        return f"sub-{self.index:03d}"

    def to_row(self) -> dict[str, object]:
        """One flat row for ``subjects.csv``: name, group, severity first, then every parameter."""
        row: dict[str, object] = {"subject": self.name, "group": self.group, "severity": round(self.severity, 4)}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name in ("group", "severity"):
                continue
            if dataclasses.is_dataclass(value):
                for g in dataclasses.fields(value):
                    row[f"{f.name}_{g.name}"] = _fmt(getattr(value, g.name))
            else:
                row[f.name] = _fmt(value)
        return row


def _fmt(value):
    return round(float(value), 4) if isinstance(value, float) else value


def _plain(obj):
    """The dataclass ``obj`` with numpy scalars turned into Python floats (clean repr, CSV and JSON)."""
    changes = {}
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if isinstance(value, np.floating):
            changes[f.name] = float(value)
        elif dataclasses.is_dataclass(value):
            changes[f.name] = _plain(value)
    return dataclasses.replace(obj, **changes)


def subject_rng(seed: int, index: int, stream: int) -> np.random.Generator:
    """The random generator of one subject's stream (0 parameters, 1 rendering, 2 noise)."""
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(index, stream)))


def _leg(rng: np.random.Generator, base: dict[str, float]) -> LegAnatomy:
    """One leg: the subject's shape plus small left-right differences."""
    return LegAnatomy(
        scale=base["scale"] * (1 + rng.normal(0, 0.025)),
        fat_mm=base["fat_mm"] * (1 + rng.normal(0, 0.05)),
        fat_wobble=base["fat_wobble"],
        fat_wobble_deg=base["fat_wobble_deg"] + rng.normal(0, 8),
        bulge=base["bulge"] + rng.normal(0, 0.01),
        ellipticity=base["ellipticity"],
        ellipse_deg=base["ellipse_deg"] + rng.normal(0, 5),
        lobe3=base["lobe3"],
        lobe3_deg=base["lobe3_deg"] + rng.normal(0, 5),
        tibia_deg=base["tibia_deg"] + rng.normal(0, 1.5),
        fibula_deg=base["fibula_deg"] + rng.normal(0, 2),
        pl_factor=base["pl_factor"] * (1 + rng.normal(0, 0.04)),
        tp_factor=base["tp_factor"] * (1 + rng.normal(0, 0.03)),
        gas_medial=base["gas_medial"] * (1 + rng.normal(0, 0.05)),
        gas_lateral=base["gas_lateral"] * (1 + rng.normal(0, 0.05)),
        cleft_deg=base["cleft_deg"] + rng.normal(0, 1.5),
    )


def _pose(rng: np.random.Generator, rotation: float, y_mm: float) -> LegPose:
    return LegPose(
        rotation_deg=float(np.clip(rotation + rng.normal(0, 4), -20, 20)),
        y_mm=y_mm + rng.normal(0, 4),
        tilt_x=rng.normal(0, 0.025),
        tilt_y=rng.normal(0, 0.02),
        dm1_factor=rng.uniform(0.85, 1.15),
    )


def draw_subject(seed: int, index: int, group: str = HEALTHY, severity: float = 0.0) -> SubjectSpec:
    """Draw subject ``index``'s parameters from its own stream ``(seed, index, 0)``.

    Args:
        seed: cohort seed.
        index: subject number (0-based).
        group: ``"healthy"`` or ``"DM1"`` (decided by the cohort).
        severity: 0 for healthy subjects, in (0, 1] for DM1.

    Returns:
        the subject's :class:`SubjectSpec`. About 10% of subjects have legs almost touching (gap < 5 mm).
    """
    rng = subject_rng(seed, index, PARAMETER_STREAM)
    base = {
        "scale": float(np.clip(rng.normal(1.0, 0.07), 0.84, 1.14)),
        "fat_mm": float(np.clip(np.exp(rng.normal(np.log(7.0), 0.4)), 2.5, 18.0)),
        "fat_wobble": rng.uniform(0.0, 0.35),
        "fat_wobble_deg": rng.uniform(0, 180),
        "bulge": rng.uniform(0.03, 0.09),
        "ellipticity": rng.uniform(0.0, 0.08),
        "ellipse_deg": rng.uniform(-30, 30),
        "lobe3": rng.uniform(0.0, 0.03),
        "lobe3_deg": rng.uniform(0, 120),
        "tibia_deg": rng.normal(-114, 3),
        "fibula_deg": rng.normal(8, 4),
        "pl_factor": rng.uniform(0.85, 1.15),
        "tp_factor": rng.uniform(0.92, 1.08),
        "gas_medial": rng.uniform(0.85, 1.15),
        "gas_lateral": rng.uniform(0.8, 1.2),
        "cleft_deg": rng.normal(88, 2.5),
    }
    right, left = _leg(rng, base), _leg(rng, base)
    rotation, y_mm = rng.normal(0, 6), rng.normal(0, 8)
    right_pose, left_pose = _pose(rng, rotation, y_mm), _pose(rng, rotation, y_mm)
    touching = rng.uniform() < 0.1
    gap = rng.uniform(1.5, 5.0) if touching else rng.uniform(10.0, 45.0)
    spec = SubjectSpec(
        index=index,
        seed=seed,
        group=group,
        severity=float(severity) if group == DM1 else 0.0,
        right=right,
        left=left,
        right_pose=right_pose,
        left_pose=left_pose,
        gap_mm=float(gap),
        gap_centre=rng.uniform(-0.4, 0.4),
        z_offset_mm=rng.normal(0, 8),
        muscle_signal=rng.uniform(0.30, 0.40),
        fascia_mm=rng.uniform(0.8, 1.5),
        patchiness=rng.uniform(1.5, 3.0),
        intensity_scale=float(np.exp(rng.uniform(np.log(300.0), np.log(3000.0)))),
        noise_sigma=rng.uniform(0.015, 0.035),
        bias_amplitude=rng.uniform(0.25, 0.40),
    )
    return _plain(spec)
