"""Intramuscular vessels and septa: small dark or bright dots and short lines inside compartments.

They are edges that are not compartment boundaries, which is what makes local edge cues unreliable.
Each structure is a line segment (length 0 = a round vessel) with a Gaussian cross-profile, placed in
the leg frame at a fraction of the muscle radius so that it follows the leg's taper along z.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from nnunet_filternet.phantom.anatomy import fascia_radius, section
from nnunet_filternet.phantom.layout import LegPlacement
from nnunet_filternet.phantom.physics import FASCIA_SIGNAL, VESSEL_BRIGHT, VESSEL_DARK


@dataclass(frozen=True)
class Vessels:
    """N structures of one leg, as parallel arrays of shape (N,).

    Attributes:
        rho: radial position as a fraction of the muscle radius in its direction.
        theta, drift: direction in the leg frame (rad) at the calf's middle and its change per unit of s.
        radius_mm: Gaussian cross-section sigma (mm).
        length_mm: segment length (mm), 0 for round vessels.
        angle: in-plane orientation of the segment (rad, leg frame).
        signal: T1 signal (relative to fat); strength: opacity in [0, 1].
    """

    rho: np.ndarray
    theta: np.ndarray
    drift: np.ndarray
    radius_mm: np.ndarray
    length_mm: np.ndarray
    angle: np.ndarray
    signal: np.ndarray
    strength: np.ndarray


def draw_vessels(rng: np.random.Generator, n_vessels: int = 24, n_septa: int = 3) -> Vessels:
    """Random vessels (round or short, dark or bright) and thin dark intramuscular septa (long lines)."""
    n = n_vessels + n_septa
    septum = np.arange(n) >= n_vessels
    bright = rng.uniform(size=n) < 0.35
    return Vessels(
        rho=np.sqrt(rng.uniform(0.03, 0.8, n)),  # uniform over the area
        theta=rng.uniform(-math.pi, math.pi, n),
        drift=rng.normal(0, 0.15, n),
        radius_mm=np.where(septum, rng.uniform(0.3, 0.45, n), rng.uniform(0.4, 0.9, n)),
        length_mm=np.where(septum, rng.uniform(8, 18, n), rng.uniform(0, 4, n) * (rng.uniform(size=n) < 0.5)),
        angle=rng.uniform(0, math.pi, n),
        signal=np.where(septum, FASCIA_SIGNAL, np.where(bright, VESSEL_BRIGHT, VESSEL_DARK)),
        strength=np.where(septum, rng.uniform(0.25, 0.5, n), rng.uniform(0.5, 1.0, n)),
    )


def render_vessels(
    vessels: Vessels, leg: LegPlacement, z_mm: float, x_mm: np.ndarray, y_mm: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Opacity and opacity-weighted signal of the structures on one slice.

    Args:
        vessels: the leg's structures.
        leg: the leg's placement.
        z_mm: height of the slice.
        x_mm, y_mm: 1D pixel-centre coordinates (mm) of the region, lengths (W,) and (H,).

    Returns:
        (weight, weighted_signal), float32 (H, W): sum of opacities and sum of opacity * signal.
    """
    weight = np.zeros((len(y_mm), len(x_mm)), np.float32)
    wsignal = np.zeros_like(weight)
    s = leg.s(z_mm)
    sec = section(leg.anatomy, s)
    pixel = 0.5 * (abs(x_mm[1] - x_mm[0]) + abs(y_mm[1] - y_mm[0])) if min(len(x_mm), len(y_mm)) > 1 else 1.0
    for i in range(len(vessels.rho)):
        theta = vessels.theta[i] + vessels.drift[i] * s
        r = vessels.rho[i] * fascia_radius(sec, theta)
        u, v = r * math.cos(theta), r * math.sin(theta)
        half = 0.5 * vessels.length_mm[i]
        eu, ev = math.cos(vessels.angle[i]), math.sin(vessels.angle[i])
        ends_u, ends_v = np.array([u - half * eu, u + half * eu]), np.array([v - half * ev, v + half * ev])
        (x0, x1), (y0, y1) = leg.to_world(ends_u, ends_v, z_mm)
        # partial volume: blur by the pixel (box ~ Gaussian of sigma pixel / sqrt(12)), keeping the opacity's integral
        sigma = math.hypot(vessels.radius_mm[i], pixel / math.sqrt(12))
        dims = 2 if vessels.length_mm[i] < pixel else 1
        strength = vessels.strength[i] * (vessels.radius_mm[i] / sigma) ** dims
        reach = 3 * sigma
        ix = slice(*np.searchsorted(x_mm, [min(x0, x1) - reach, max(x0, x1) + reach]))
        iy = slice(*np.searchsorted(y_mm, [min(y0, y1) - reach, max(y0, y1) + reach]))
        if ix.start >= ix.stop or iy.start >= iy.stop:
            continue
        px, py = x_mm[ix][None, :] - x0, y_mm[iy][:, None] - y0
        sx, sy = x1 - x0, y1 - y0
        t = np.clip((px * sx + py * sy) / max(sx * sx + sy * sy, 1e-12), 0, 1)
        d2 = (px - t * sx) ** 2 + (py - t * sy) ** 2
        w = strength * np.exp(-0.5 * d2 / sigma**2)
        weight[iy, ix] += w
        wsignal[iy, ix] += w * vessels.signal[i]
    return weight, wsignal
