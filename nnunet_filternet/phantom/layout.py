"""Placing the two legs in the scanner's field of view (world coordinates in mm).

World frame: SimpleITK / LPS physical space with identity direction and the image centred on the
origin, so ``x`` grows towards the patient's left, ``y`` towards posterior and ``z`` towards superior
(proximal). The patient's right leg lies in the low-x half of the image, the left leg in the high-x half.
Each leg's own frame (``anatomy.py``: ``u`` lateral, ``v`` posterior) maps onto the world by a rotation
about the leg's axis, a mirror for the right leg (its lateral side is -x), and a translation that drifts
slowly along z (tilt).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np

from nnunet_filternet.errors import FilterNetError
from nnunet_filternet.phantom.anatomy import HALF_LENGTH_MM, LegAnatomy, _outline, section
from nnunet_filternet.phantom.spec import LegPose, SubjectSpec

#: Free space (mm) kept between the legs and the edges of the field of view.
MARGIN_MM = 4.0


@dataclass(frozen=True)
class Grid:
    """Voxel-centre coordinates (mm) of an image of ``shape`` (x, y, z) and ``spacing`` (x, y, z), centred on 0."""

    shape: tuple[int, int, int]
    spacing: tuple[float, float, float]

    def axis(self, i: int) -> np.ndarray:
        """Coordinates (mm) along axis ``i`` (0 x, 1 y, 2 z), float64."""
        n, d = self.shape[i], self.spacing[i]
        return (np.arange(n) - (n - 1) / 2.0) * d

    @property
    def origin(self) -> tuple[float, float, float]:
        """Physical position (mm) of voxel (0, 0, 0), for SimpleITK."""
        return tuple(float(-(n - 1) / 2.0 * d) for n, d in zip(self.shape, self.spacing))

    @property
    def fov_mm(self) -> tuple[float, float, float]:
        """Field of view (mm) per axis (x, y, z)."""
        return tuple(float(n * d) for n, d in zip(self.shape, self.spacing))


@dataclass(frozen=True)
class LegPlacement:
    """One leg in the world: centre at z = 0, drift per mm of z, rotation and mirror."""

    anatomy: LegAnatomy
    pose: LegPose
    mirror: float  # +1 left leg (lateral = +x), -1 right leg (lateral = -x)
    centre_x: float
    centre_y: float
    z_offset_mm: float

    def centre(self, z_mm: float) -> tuple[float, float]:
        """Leg centre (x, y) in mm at height ``z_mm``."""
        return self.centre_x + self.pose.tilt_x * z_mm, self.centre_y + self.pose.tilt_y * z_mm

    def s(self, z_mm: float) -> float:
        """Position along the leg (-1 distal .. +1 proximal) of world height ``z_mm``."""
        return (z_mm + self.z_offset_mm) / HALF_LENGTH_MM

    def to_leg(self, x, y, z_mm: float):
        """World (x, y) in mm at height ``z_mm`` -> leg frame (u lateral, v posterior)."""
        cx, cy = self.centre(z_mm)
        a = math.radians(self.pose.rotation_deg)
        ca, sa = math.cos(a), math.sin(a)
        du, dv = self.mirror * (x - cx), y - cy
        return ca * du + sa * dv, -sa * du + ca * dv

    def to_world(self, u, v, z_mm: float):
        """Leg frame (u, v) in mm -> world (x, y) at height ``z_mm``."""
        cx, cy = self.centre(z_mm)
        a = math.radians(self.pose.rotation_deg)
        ca, sa = math.cos(a), math.sin(a)
        return cx + self.mirror * (ca * u - sa * v), cy + (sa * u + ca * v)

    def extent(self, z_mm: np.ndarray) -> tuple[float, float, float, float]:
        """(x min, x max, y min, y max) in mm of the skin over the heights ``z_mm``."""
        angles = np.linspace(-math.pi, math.pi, 361)
        c, s = np.cos(angles), np.sin(angles)
        xs, ys = [], []
        bulk = np.clip(0.5 * HALF_LENGTH_MM - self.z_offset_mm, z_mm.min(), z_mm.max())  # widest height
        for z in np.unique(np.append(z_mm, bulk)):
            sec = section(self.anatomy, self.s(float(z)))
            r = _outline(sec.radius, sec.harmonics, c, s)
            x, y = self.to_world(r * c, r * s, float(z))
            xs.append((x.min(), x.max()))
            ys.append((y.min(), y.max()))
        xs, ys = np.array(xs), np.array(ys)
        return float(xs[:, 0].min()), float(xs[:, 1].max()), float(ys[:, 0].min()), float(ys[:, 1].max())


def place_legs(spec: SubjectSpec, grid: Grid) -> tuple[LegPlacement, LegPlacement]:
    """The subject's (right, left) legs placed in the field of view of ``grid``.

    The legs are moved apart along x until the smallest distance between their skins over the stack is
    ``spec.gap_mm``; the gap's centre is ``spec.gap_centre * gap_mm`` from the image's middle.

    Raises:
        FilterNetError: the legs do not fit into the field of view (shape x spacing) with a margin.
    """
    z = grid.axis(2)
    legs = []
    for anatomy, pose, mirror in ((spec.right, spec.right_pose, -1.0), (spec.left, spec.left_pose, 1.0)):
        legs.append(LegPlacement(anatomy, pose, mirror, 0.0, pose.y_mm, spec.z_offset_mm))
    right, left = legs
    rx = right.extent(z)
    lx = left.extent(z)
    middle = spec.gap_centre * spec.gap_mm
    right = dataclasses.replace(right, centre_x=middle - spec.gap_mm / 2 - rx[1])
    left = dataclasses.replace(left, centre_x=middle + spec.gap_mm / 2 - lx[0])
    x_low = middle - spec.gap_mm / 2 - (rx[1] - rx[0])
    x_high = middle + spec.gap_mm / 2 + (lx[1] - lx[0])
    half_x = max(abs(x_low), abs(x_high))
    y_low = min(rx[2], lx[2])
    y_high = max(rx[3], lx[3])
    half_y = max(abs(y_low), abs(y_high))
    fov = grid.fov_mm
    need = (2 * half_x + 2 * MARGIN_MM, 2 * half_y + 2 * MARGIN_MM)
    if need[0] > fov[0] or need[1] > fov[1]:
        raise FilterNetError(
            f"{spec.name}: the two legs need a field of view of at least {need[0]:.0f} x {need[1]:.0f} mm "
            f"(x, y), but shape x spacing gives {fov[0]:.0f} x {fov[1]:.0f} mm; "
            "use a larger --shape or --spacing"
        )
    return right, left
