"""Geometry of one lower-leg cross-section, in millimetres, as a function of the position along the leg.

Frame ("leg frame", the same for both legs): origin at the leg's centre, ``u`` points to the patient's
lateral side and ``v`` to posterior, both in mm. Angles ``theta = atan2(v, u)``: 0 deg lateral,
+90 deg posterior, -90 deg anterior, +-180 deg medial. The subject layout (``layout.py``) maps the frame
onto the image: the left leg has lateral = +x, the right leg is mirrored (lateral = -x); posterior is +y.

Position along the leg: ``s`` in [-1, 1], -1 distal (towards the ankle), +1 proximal (towards the knee),
one unit = :data:`HALF_LENGTH_MM`. Outside [-1, 1] the profiles are held at their end values.

A cross-section (:class:`Section`) is rendered analytically on any grid of (u, v) points into a tissue
map and a compartment label map (:func:`render_section`): skin, subcutaneous fat, tibia and fibula
(cortex and marrow), and the five muscle compartments (labels of :mod:`nnunet_filternet.labels`):

- TA (anterior compartment): anterior of the interosseous membrane (line tibia-fibula), lateral of the
  tibia's anterior crest, in front of the anterior intermuscular septum;
- PL (lateral compartment): the wedge around the fibula between the anterior and posterior septa;
- TP (deep posterior): an ellipse behind the interosseous membrane, between tibia and fibula;
- Gas: a superficial posterior layer of angle-dependent thickness with a medial and a lateral head,
  separated by a cleft proximally, merging into one thin sheet distally;
- Sol: the rest of the posterior compartment, between TP and Gas.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np

from nnunet_filternet.labels import LABELS

#: Half the modelled calf length: s = +-1 lies this far (mm) from the calf's middle.
HALF_LENGTH_MM = 105.0

#: Tissue codes of the tissue map.
AIR, SKIN, FAT, CORTEX, MARROW, MUSCLE = range(6)
TISSUES: dict[str, int] = {"air": AIR, "skin": SKIN, "fat": FAT, "cortex": CORTEX, "marrow": MARROW, "muscle": MUSCLE}

_TA, _TP, _SOL, _GAS, _PL = (LABELS[k] for k in ("TA", "TP", "Sol", "Gas", "PL"))


@dataclass(frozen=True)
class LegAnatomy:
    """Subject-specific shape of one leg (drawn once per leg by ``spec.py``). Lengths in mm, angles in deg.

    Attributes:
        scale: overall size (1.0: a calf 108 mm wide at its bulk).
        fat_mm: subcutaneous fat thickness (reference value; thinner anteriorly, thicker posteriorly).
        fat_wobble, fat_wobble_deg: relative second-harmonic variation of the fat thickness and its direction.
        bulge: egg shape, relative extra radius posteriorly.
        ellipticity, ellipse_deg: second-harmonic flattening of the outline and its orientation.
        lobe3, lobe3_deg: third-harmonic irregularity of the outline.
        tibia_deg, fibula_deg: directions (leg frame) of the tibia and fibula from the leg's centre.
        pl_factor: thickness of the lateral compartment outside the fibula (1 = typical).
        tp_factor: size of the deep posterior compartment.
        gas_medial, gas_lateral: thickness of the two Gas heads (1 = typical).
        cleft_deg: angle of the cleft between the Gas heads (near the posterior midline, 90 deg).
    """

    scale: float = 1.0
    fat_mm: float = 8.0
    fat_wobble: float = 0.15
    fat_wobble_deg: float = 0.0
    bulge: float = 0.07
    ellipticity: float = 0.03
    ellipse_deg: float = 0.0
    lobe3: float = 0.01
    lobe3_deg: float = 0.0
    tibia_deg: float = -114.0
    fibula_deg: float = 8.0
    pl_factor: float = 1.0
    tp_factor: float = 1.0
    gas_medial: float = 1.0
    gas_lateral: float = 1.0
    cleft_deg: float = 88.0


@dataclass(frozen=True)
class Section:
    """One cross-section, ready to render: everything in mm (leg frame) and radians."""

    radius: float  # skin radius before the harmonics
    harmonics: tuple[float, float, float, float, float]  # bulge, cos2, sin2, cos3, sin3 coefficients
    skin_mm: float
    fat_mm: float
    fat_harmonic: tuple[float, float]  # cos 2theta, sin 2theta coefficients of the fat thickness
    tibia_dir: float  # rad, direction of the tibia from the leg centre (fat is thin there)
    cleft: float  # rad
    cleft_fat_mm: float  # extra fat filling the cleft between the Gas heads
    tibia: tuple[float, float, float, float]  # centre u, v, radius, cortex thickness
    fibula: tuple[float, float, float, float]
    gas_medial_mm: float
    gas_lateral_mm: float
    gas_merged_mm: float  # thickness of the single distal sheet (0 proximally)
    tp: tuple[float, float, float, float, float]  # centre u, v, semi-axes along / across the membrane, angle


def _smoothstep(x: float) -> float:
    x = min(max(x, 0.0), 1.0)
    return x * x * (3.0 - 2.0 * x)


def leg_bulk(s: float) -> float:
    """Relative skin radius along the leg: 1 at the calf's bulk (s = 0.5), about 0.71 at the ankle end."""
    s = min(max(s, -1.0), 1.0)
    return 0.70 + 0.30 * math.exp(-(((s - 0.5) / 0.85) ** 2))


def gas_profile(s: float) -> float:
    """Relative Gas thickness along the leg: 1 proximally (s >= 0.55), 0.12 at the distal end."""
    return 0.12 + 0.88 * _smoothstep((s + 0.9) / 1.45)


def head_separation(s: float) -> float:
    """How distinct the two Gas heads are: 1 proximally (s >= 0.3), 0 distally (s <= -0.3)."""
    return _smoothstep((s + 0.3) / 0.6)


def _outline(radius, harmonics, c, s):
    """Skin radius for directions with cosine ``c`` and sine ``s`` (arrays or floats)."""
    bulge, c2, s2, c3, s3 = harmonics
    cos2, sin2 = 2 * c * c - 1, 2 * s * c
    cos3, sin3 = (4 * c * c - 3) * c, (3 - 4 * s * s) * s
    return radius * (1 + bulge * s + c2 * cos2 + s2 * sin2 + c3 * cos3 + s3 * sin3)


def _fat(sec: Section, c, s):
    """Subcutaneous fat thickness (mm) in the direction of cosine ``c`` and sine ``s``.

    Thicker posteriorly, very thin over the tibia's subcutaneous face, with a subject-specific wobble.
    """
    near_tibia = np.clip(c * math.cos(sec.tibia_dir) + s * math.sin(sec.tibia_dir), 0, 1) ** 8
    a, b = sec.fat_harmonic
    wobble = 1 + a * (2 * c * c - 1) + b * (2 * s * c)
    return sec.fat_mm * (0.9 + 0.3 * s - 0.15 * c) * wobble * (1 - 0.75 * near_tibia)


def fascia_radius(sec: Section, theta: float) -> float:
    """Radius (mm) of the muscle boundary (deep fascia) in direction ``theta`` (rad), cleft ignored."""
    c, s = math.cos(theta), math.sin(theta)
    return _outline(sec.radius, sec.harmonics, c, s) - sec.skin_mm - float(_fat(sec, c, s))


def _tibia(base: Section, leg: LegAnatomy, s: float) -> tuple[float, float, float, float]:
    """Tibia (centre u, v, radius, cortex): its anteromedial face lies just under the subcutaneous fat."""
    bone = leg.scale**0.5
    radius = 11.5 * bone * (1 + 0.15 * max(s - 0.3, 0.0))  # wider towards the knee
    cortex = radius * (0.40 - 0.12 * max(s, 0.0))  # thick cortex mid-shaft
    direction = math.radians(leg.tibia_deg)
    distance = fascia_radius(base, direction) - 0.9 * radius
    return distance * math.cos(direction), distance * math.sin(direction), radius, cortex


def _fibula(base: Section, leg: LegAnatomy, s: float) -> tuple[float, float, float, float]:
    """Fibula (centre u, v, radius, cortex): under the lateral compartment, which thins towards the ankle."""
    bone = leg.scale**0.5
    radius = 6.5 * bone
    direction = math.radians(leg.fibula_deg)
    distance = fascia_radius(base, direction) - radius - leg.pl_factor * leg.scale * (6.0 + 4.0 * (s + 1))
    return distance * math.cos(direction), distance * math.sin(direction), radius, 2.4 * bone


def _deep_posterior(tibia, fibula, tp_factor: float) -> tuple[float, float, float, float, float]:
    """TP ellipse (centre u, v, semi-axis along the membrane, across it, angle) behind the membrane's middle."""
    du, dv = fibula[0] - tibia[0], fibula[1] - tibia[1]
    span = math.hypot(du, dv)
    nu, nv = -dv / span, du / span  # unit normal to the membrane, pointing posterior (+v)
    if nv < 0:
        nu, nv = -nu, -nv
    k = tp_factor * span
    mid_u, mid_v = tibia[0] + 0.45 * du, tibia[1] + 0.45 * dv
    return mid_u + 0.18 * k * nu, mid_v + 0.18 * k * nv, 0.44 * k, 0.26 * k, math.atan2(dv, du)


def section(leg: LegAnatomy, s: float) -> Section:
    """The cross-section of ``leg`` at position ``s`` along it (-1 distal, +1 proximal)."""
    s = min(max(s, -1.0), 1.0)
    e2, a2 = leg.ellipticity, math.radians(leg.ellipse_deg)
    e3, a3 = leg.lobe3, math.radians(leg.lobe3_deg)
    aw = math.radians(leg.fat_wobble_deg)
    harmonics = (leg.bulge, e2 * math.cos(2 * a2), e2 * math.sin(2 * a2), e3 * math.cos(3 * a3), e3 * math.sin(3 * a3))
    sep, gas = head_separation(s), gas_profile(s)
    base = Section(
        radius=54.0 * leg.scale * leg_bulk(s),
        harmonics=harmonics,
        skin_mm=1.4,
        fat_mm=leg.fat_mm * (0.85 + 0.15 * leg_bulk(s)),
        fat_harmonic=(leg.fat_wobble * math.cos(2 * aw), leg.fat_wobble * math.sin(2 * aw)),
        tibia_dir=math.radians(leg.tibia_deg),
        cleft=math.radians(leg.cleft_deg),
        cleft_fat_mm=5.0 * sep,
        tibia=(0.0, 0.0, 0.0, 0.0),
        fibula=(0.0, 0.0, 0.0, 0.0),
        gas_medial_mm=21.0 * leg.scale * leg.gas_medial * gas,
        gas_lateral_mm=15.0 * leg.scale * leg.gas_lateral * gas,
        gas_merged_mm=(1 - sep) * 8.0 * leg.scale * (leg.gas_medial + leg.gas_lateral) * gas,
        tp=(0.0, 0.0, 0.0, 0.0, 0.0),
    )
    tibia, fibula = _tibia(base, leg, s), _fibula(base, leg, s)
    return dataclasses.replace(base, tibia=tibia, fibula=fibula, tp=_deep_posterior(tibia, fibula, leg.tp_factor))


def _bone(u, v, centre_u, centre_v, radius, cortex, apex, lobes):
    """Masks (cortex-or-marrow, marrow) of a rounded-triangle bone; ``apex`` (rad) points one corner."""
    du, dv = u - centre_u, v - centre_v
    rho = np.hypot(du, dv)
    # cos(3 * (phi - apex)) from the rotated unit vector, without atan2
    ca, sa = math.cos(apex), math.sin(apex)
    c = (du * ca + dv * sa) / np.maximum(rho, 1e-6)
    cos3 = (4 * c * c - 3) * c
    outer = rho <= radius * (1 + lobes * cos3)
    marrow = rho <= (radius - cortex) * (1 + 0.4 * lobes * cos3)
    return outer, marrow


def _window(theta, centre, half_width):
    """Flat-topped window in angle: 1 near ``centre``, falling to 0 at ``half_width`` (rad)."""
    x = (theta - centre) / half_width
    x = x * x
    return np.clip(1 - x * x, 0, 1)


def _side(u, v, pu, pv, du, dv):
    """Cross product of direction (du, dv) with (u - pu, v - pv): > 0 on its counter-clockwise side."""
    return du * (v - pv) - dv * (u - pu)


def _gas_thickness(sec: Section, theta: np.ndarray) -> np.ndarray:
    """Depth (mm) below the deep fascia down to which Gas reaches, per direction ``theta`` (rad).

    Two heads either side of the cleft (medial: larger, towards +-180 deg; lateral: towards 0 deg) and,
    distally, one merged sheet.
    """
    medial, lateral = math.radians(40.0), math.radians(26.0)  # half-widths of the heads
    gap = math.radians(4.0)  # half-width of the cleft between them
    thick = np.maximum(
        sec.gas_medial_mm * _window(theta, sec.cleft + gap + medial, medial),
        sec.gas_lateral_mm * _window(theta, sec.cleft - gap - lateral, lateral),
    )
    if sec.gas_merged_mm > 0:
        merged = sec.gas_merged_mm * _window(theta, sec.cleft + math.radians(10.0), math.radians(72.0))
        thick = np.maximum(thick, merged)
    return thick


def _septa(sec: Section, u: np.ndarray, v: np.ndarray) -> dict[str, np.ndarray]:
    """Half-planes and shapes that divide the muscle: boolean masks of the shape of ``u``.

    ``anterior``: in front of the interosseous membrane (line tibia -> fibula); ``lateral_of_crest``:
    lateral of the line going anteriorly from the tibia; ``pl``: the wedge at the fibula between the anterior
    (-78 deg) and posterior (+55 deg) intermuscular septa; ``tp``: the deep posterior ellipse.
    """
    tu, tv = sec.tibia[:2]
    fu, fv = sec.fibula[:2]
    crest, a_sep, p_sep = math.radians(-80.0), math.radians(-78.0), math.radians(55.0)
    pu, pv, pa, pb, angle = sec.tp
    cu, cv = math.cos(angle), math.sin(angle)
    eu, ev = u - pu, v - pv
    return {
        "anterior": _side(u, v, tu, tv, fu - tu, fv - tv) < 0,  # the clockwise (-v) side
        "lateral_of_crest": _side(u, v, tu, tv, math.cos(crest), math.sin(crest)) > 0,
        "pl": (_side(u, v, fu, fv, math.cos(a_sep), math.sin(a_sep)) > 0)
        & (_side(u, v, fu, fv, math.cos(p_sep), math.sin(p_sep)) < 0),
        "tp": ((eu * cu + ev * cv) / pa) ** 2 + ((-eu * cv + ev * cu) / pb) ** 2 <= 1,
    }


def render_section(sec: Section, u: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Tissue and compartment label of each point.

    Args:
        sec: the cross-section.
        u, v: leg-frame coordinates (mm) of the points, any equal shapes (e.g. (H, W)).

    Returns:
        (tissue, label), uint8 arrays of the shape of ``u``: tissue codes of :data:`TISSUES`, labels
        0 (not muscle), 1 TA, 2 TP, 3 Sol, 4 Gas, 5 PL.
    """
    r = np.hypot(u, v)
    inv = 1.0 / np.maximum(r, 1e-6)
    c, s = u * inv, v * inv
    theta = np.arctan2(v, u)
    r_skin = _outline(sec.radius, sec.harmonics, c, s)
    cleft = _window(theta, sec.cleft, math.radians(7.0)) * sec.cleft_fat_mm
    r_fascia = r_skin - sec.skin_mm - _fat(sec, c, s) - cleft
    tib, tib_marrow = _bone(u, v, *sec.tibia, apex=math.radians(-95.0), lobes=0.13)
    fib, fib_marrow = _bone(u, v, *sec.fibula, apex=0.0, lobes=0.08)
    bone = tib | fib
    septa = _septa(sec, u, v)
    # anteromedially, between the tibial crest and the membrane, the tibia lies under the fat: no muscle
    muscle = (r <= r_fascia) & ~bone & (~septa["anterior"] | septa["lateral_of_crest"])

    label = np.zeros(u.shape, np.uint8)
    label[muscle] = _SOL
    label[muscle & ((r_fascia - r) < _gas_thickness(sec, theta))] = _GAS
    label[muscle & septa["tp"]] = _TP
    label[muscle & septa["anterior"]] = _TA
    label[muscle & septa["pl"]] = _PL
    tissue = np.zeros(u.shape, np.uint8)
    tissue[r <= r_skin] = SKIN
    tissue[r <= r_skin - sec.skin_mm] = FAT
    tissue[muscle] = MUSCLE
    tissue[bone] = CORTEX
    tissue[(tib & tib_marrow) | (fib & fib_marrow)] = MARROW
    return tissue, label
