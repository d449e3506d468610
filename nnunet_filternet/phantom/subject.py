"""One synthetic subject: render both legs, add the bias field and Rician noise.

Array order is numpy's (z, y, x); spacing and shape are given as (x, y, z) like SimpleITK. Geometry:
LPS physical space, identity direction, image centred on the origin (see ``layout.py``): x index up =
patient's left (the right leg is in the low-x half), y index up = posterior, z index up = superior
(proximal, towards the knee). Slices are thick: each is the average of ``n_subslices`` thin sub-slices
(partial volume); its label is the label of the middle sub-slice, i.e. the anatomy at the slice centre.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from nnunet_filternet.errors import FilterNetError
from nnunet_filternet.labels import LABELS
from nnunet_filternet.phantom.anatomy import MUSCLE, render_section, section
from nnunet_filternet.phantom.fat import compartment_fat_fraction, infiltration, probit_offsets
from nnunet_filternet.phantom.fields import FieldBox, smooth_field
from nnunet_filternet.phantom.layout import Grid, LegPlacement, place_legs
from nnunet_filternet.phantom.physics import (
    FASCIA_SIGNAL,
    TISSUE_FAT_FRACTION,
    TISSUE_SIGNAL,
    bias_field,
    lookup,
    rician,
    subslice_offsets,
)
from nnunet_filternet.phantom.spec import NOISE_STREAM, RENDER_STREAM, SubjectSpec
from nnunet_filternet.phantom.vessels import draw_vessels, render_vessels

DEFAULT_SHAPE = (512, 512, 30)
DEFAULT_SPACING = (0.7, 0.7, 7.0)
DEFAULT_SUBSLICES = 5
#: Largest field of view (mm) along any axis: more than any MR scanner's; beyond it coordinates lose meaning.
MAX_FOV_MM = 1000.0

#: Relative standard deviation of the muscle texture, and of the texture of the other tissues.
MUSCLE_TEXTURE, TISSUE_TEXTURE = 0.05, 0.02


@dataclass
class PhantomSubject:
    """A rendered subject. Arrays are (z, y, x); ``spacing`` is (x, y, z) in mm.

    Attributes:
        image: float32 T1-weighted magnitude image in scanner units.
        label: uint8 compartments (0 background, 1 TA, 2 TP, 3 Sol, 4 Gas, 5 PL) at the slice centres.
        bias: float32 true multiplicative bias field (image ~ scale * bias * signal + noise).
        fat_fraction: float32 true fat fraction in [0, 1] of each voxel (sub-slice average).
        tissue: uint8 tissue codes (``anatomy.TISSUES``) at the slice centres.
        signal: float32 noise- and bias-free tissue signal (fat = 1), the sub-slice average.
        direction: the header's direction (row-major 3 x 3); identity unless a degradation changed it.
    """

    spec: SubjectSpec
    spacing: tuple[float, float, float]
    image: np.ndarray
    label: np.ndarray
    bias: np.ndarray
    fat_fraction: np.ndarray
    tissue: np.ndarray
    signal: np.ndarray
    direction: tuple[float, ...] = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def group(self) -> str:
        return self.spec.group

    @property
    def severity(self) -> float:
        return self.spec.severity

    @property
    def origin(self) -> tuple[float, float, float]:
        """Physical position (mm) of voxel (0, 0, 0)."""
        nz, ny, nx = self.image.shape
        return Grid((nx, ny, nz), self.spacing).origin

    def to_sitk(self) -> dict:
        """SimpleITK images ``{"image", "label", "bias", "fat_fraction"}`` with spacing, origin and direction."""
        import SimpleITK as sitk

        out = {}
        for key in ("image", "label", "bias", "fat_fraction"):
            img = sitk.GetImageFromArray(getattr(self, key))
            img.SetSpacing(tuple(float(s) for s in self.spacing))
            img.SetOrigin(self.origin)
            img.SetDirection(self.direction)
            out[key] = img
        return out


def make_grid(shape, spacing) -> Grid:
    """Validated :class:`Grid`: three sizes >= 2 (``filternet convert`` needs two voxels along every axis) and three
    positive, finite spacings. Raises FilterNetError otherwise."""
    shape, spacing = tuple(shape), tuple(spacing)
    if len(shape) != 3 or any(int(n) != n or n < 2 for n in shape):
        raise FilterNetError(f"shape must be three integers >= 2 (x, y, z), got {shape}")
    if len(spacing) != 3 or any(not (math.isfinite(d) and d > 0) for d in spacing):
        raise FilterNetError(f"spacing must be three positive, finite numbers in mm (x, y, z), got {spacing}")
    fov = [n * d for n, d in zip(shape, spacing)]
    if max(fov) > MAX_FOV_MM:
        axis = "xyz"[fov.index(max(fov))]
        raise FilterNetError(
            f"shape x spacing gives a field of view of {max(fov):.3g} mm along {axis}; a calf phantom needs at most "
            f"{MAX_FOV_MM:.0f} mm per axis (a scanner's field of view): use a smaller --spacing or --shape"
        )
    return Grid(tuple(int(n) for n in shape), tuple(float(d) for d in spacing))


def check_legs(spec: SubjectSpec, grid: Grid) -> None:
    """Refuse a grid on which the subject's legs cannot be drawn: both legs must fit the field of view, and
    every compartment of each leg must hold voxels in the stack's middle slice (so no label map is empty).

    Raises:
        FilterNetError: saying what is needed (a larger field of view, or a finer in-plane spacing).
    """
    z = float(grid.axis(2)[grid.shape[2] // 2])
    for leg, side in zip(place_legs(spec, grid), ("right", "left")):
        ys, xs = _leg_box(leg, grid)
        gy, gx = np.meshgrid(grid.axis(1)[ys], grid.axis(0)[xs], indexing="ij")
        u, v = leg.to_leg(gx, gy, z)
        _, label = render_section(section(leg.anatomy, leg.s(z)), u, v)
        missing = [name for name, value in LABELS.items() if value > 0 and not (label == value).any()]
        if missing:
            raise FilterNetError(
                f"{spec.name}: at an in-plane spacing of {grid.spacing[0]:g} x {grid.spacing[1]:g} mm the {side} "
                f"leg's {', '.join(missing)} get no voxel; the phantom needs every compartment resolved: use a finer "
                f"--spacing in x and y (the default is {DEFAULT_SPACING[0]} mm) with a --shape that keeps the field "
                "of view"
            )


def _leg_box(leg: LegPlacement, grid: Grid) -> tuple[slice, slice]:
    """Pixel ranges (y, x) that hold the leg over the whole stack, with 2 pixels to spare."""
    x0, x1, y0, y1 = leg.extent(grid.axis(2))
    xs, ys = grid.axis(0), grid.axis(1)
    ix = np.searchsorted(xs, [x0, x1])
    iy = np.searchsorted(ys, [y0, y1])
    return (
        slice(max(iy[0] - 2, 0), min(iy[1] + 2, len(ys))),
        slice(max(ix[0] - 2, 0), min(ix[1] + 2, len(xs))),
    )


def _fields(rng: np.random.Generator, leg: LegPlacement, grid: Grid, ys: slice, xs: slice):
    """The leg's random fields on its box: texture, fat patches, fascia visibility; each (nz, h, w)."""
    reach = 100.0 * leg.anatomy.scale
    box = FieldBox((-170.0, -reach, -reach), (170.0, reach, reach))
    z = grid.axis(2)
    y = grid.axis(1)[ys] - leg.centre_y
    x = grid.axis(0)[xs] - leg.centre_x
    texture = smooth_field(rng, box, (15.0, 1.0, 1.0), z, y, x)
    coarse, fine = smooth_field(rng, box, (30.0, 7.0, 7.0), z, y, x), smooth_field(rng, box, (12.0, 2.0, 2.0), z, y, x)
    patches = 0.8 * coarse + 0.6 * fine  # unit variance: 0.8^2 + 0.6^2 = 1
    fascia = np.clip(0.6 + 0.6 * smooth_field(rng, box, (40.0, 12.0, 12.0), z, y, x), 0, 1)
    return texture, patches, fascia


def _boundaries(label: np.ndarray) -> np.ndarray:
    """Pixels (both sides) where two different compartments touch (4-neighbourhood), bool (H, W)."""
    out = np.zeros(label.shape, bool)
    for a, b in (
        ((slice(1, None), slice(None)), (slice(None, -1), slice(None))),
        ((slice(None), slice(1, None)), (slice(None), slice(None, -1))),
    ):
        edge = (label[a] != label[b]) & (label[a] > 0) & (label[b] > 0)
        out[a] |= edge
        out[b] |= edge
    return out


@dataclass
class _ThickSlice:
    """Averages over the sub-slices of one thick slice, on a leg's box (H, W).

    Attributes:
        signal, fat_fraction: mean signal and fat fraction of the tissues other than muscle.
        muscle: fraction of the voxel that is muscle.
        offset: mean probit fat offset of the muscle's compartments (``fat.py``), 0 where no muscle.
        label, tissue: label and tissue of the middle sub-slice (the slice centre).
    """

    signal: np.ndarray
    fat_fraction: np.ndarray
    muscle: np.ndarray
    offset: np.ndarray
    label: np.ndarray
    tissue: np.ndarray


def _thick_slice(leg: LegPlacement, gx, gy, z_centre: float, sub_offsets: np.ndarray, fat_offsets) -> _ThickSlice:
    """Render the sub-slices of the slice at ``z_centre`` (mm) on the grid ``gx, gy`` (mm) and average them."""
    signal_lut, ff_lut = lookup(TISSUE_SIGNAL), lookup(TISSUE_FAT_FRACTION)
    acc_signal = np.zeros(gx.shape, np.float32)
    acc_ff, acc_muscle, acc_offset = np.zeros_like(acc_signal), np.zeros_like(acc_signal), np.zeros_like(acc_signal)
    for j, dz in enumerate(sub_offsets):
        z = float(z_centre + dz)
        u, v = leg.to_leg(gx, gy, z)
        tissue, label = render_section(section(leg.anatomy, leg.s(z)), u, v)
        acc_signal += signal_lut[tissue]
        acc_ff += ff_lut[tissue]
        acc_muscle += tissue == MUSCLE
        if fat_offsets is not None:
            acc_offset += np.where(label > 0, fat_offsets[label], 0)
        if j == len(sub_offsets) // 2:
            centre_tissue, centre_label = tissue, label
    n = len(sub_offsets)
    offset = np.divide(acc_offset, acc_muscle, out=np.zeros_like(acc_offset), where=acc_muscle > 0)
    return _ThickSlice(acc_signal / n, acc_ff / n, acc_muscle / n, offset, centre_label, centre_tissue)


def _muscle_signal(spec: SubjectSpec, fat, texture, fascia, vessel_weight, vessel_signal):
    """Signal of a voxel's muscle part and the share of it that is muscle tissue (not fascia or vessel).

    Args:
        spec: the subject (muscle signal).
        fat: fat fraction of the muscle tissue (H, W).
        texture: standard-normal texture field (H, W).
        fascia: opacity of fasciae (H, W), 0 off the compartment boundaries.
        vessel_weight, vessel_signal: summed opacity of vessels and opacity-weighted signal (H, W).

    Returns:
        (signal, keep), float32 (H, W).
    """
    scale = np.where(vessel_weight > 1, 1 / np.maximum(vessel_weight, 1e-6), 1).astype(np.float32)
    vessel_weight, vessel_signal = vessel_weight * scale, vessel_signal * scale
    fascia = np.minimum(fascia, 1 - vessel_weight)
    keep = 1 - vessel_weight - fascia
    healthy = spec.muscle_signal * (1 + MUSCLE_TEXTURE * texture)
    return keep * ((1 - fat) * healthy + fat) + vessel_signal + fascia * FASCIA_SIGNAL, keep


def _render_leg(spec: SubjectSpec, leg: LegPlacement, leg_index: int, grid: Grid, n_subslices: int, out: dict):
    """Add one leg's signal, fat fraction, labels and tissues to the (z, y, x) arrays in ``out`` (in place)."""
    rng = np.random.default_rng(np.random.SeedSequence(spec.seed, spawn_key=(spec.index, RENDER_STREAM, leg_index)))
    ys, xs = _leg_box(leg, grid)
    texture, patches, fascia = _fields(rng, leg, grid, ys, xs)
    vessels = draw_vessels(rng)
    x_mm, y_mm = grid.axis(0)[xs], grid.axis(1)[ys]
    gy, gx = np.meshgrid(y_mm.astype(np.float32), x_mm.astype(np.float32), indexing="ij")
    severity = min(spec.severity * leg.pose.dm1_factor, 1.0)
    fat_offsets = None
    if severity > 0:
        fat_offsets = probit_offsets(compartment_fat_fraction(severity), spec.patchiness).astype(np.float32)
    subs = subslice_offsets(n_subslices, grid.spacing[2])
    fascia_opacity = min(1.0, spec.fascia_mm / (grid.spacing[0] + grid.spacing[1]))  # thin: partial volume
    for zi, zc in enumerate(grid.axis(2)):
        thick = _thick_slice(leg, gx, gy, float(zc), subs, fat_offsets)
        fat = np.zeros_like(thick.muscle)
        if fat_offsets is not None:
            fat = infiltration(patches[zi], thick.offset, spec.patchiness) * (thick.muscle > 0)
        boundary = _boundaries(thick.label) * (fascia_opacity * fascia[zi])
        vessel_weight, vessel_signal = render_vessels(vessels, leg, float(zc), x_mm, y_mm)
        muscle_signal, keep = _muscle_signal(spec, fat, texture[zi], boundary, vessel_weight, vessel_signal)
        static = thick.signal * (1 + TISSUE_TEXTURE * texture[zi])
        out["signal"][zi, ys, xs] += static + thick.muscle * muscle_signal
        out["fat_fraction"][zi, ys, xs] += thick.fat_fraction + thick.muscle * keep * fat
        np.maximum(out["label"][zi, ys, xs], thick.label, out=out["label"][zi, ys, xs])
        np.maximum(out["tissue"][zi, ys, xs], thick.tissue, out=out["tissue"][zi, ys, xs])


def render_signal(spec: SubjectSpec, grid: Grid, n_subslices: int = DEFAULT_SUBSLICES) -> dict[str, np.ndarray]:
    """Noise- and bias-free rendering: ``{"signal", "fat_fraction", "label", "tissue"}``, arrays (z, y, x)."""
    nx, ny, nz = grid.shape
    out = {
        "signal": np.zeros((nz, ny, nx), np.float32),
        "fat_fraction": np.zeros((nz, ny, nx), np.float32),
        "label": np.zeros((nz, ny, nx), np.uint8),
        "tissue": np.zeros((nz, ny, nx), np.uint8),
    }
    for i, leg in enumerate(place_legs(spec, grid)):
        _render_leg(spec, leg, i, grid, n_subslices, out)
    np.clip(out["fat_fraction"], 0, 1, out=out["fat_fraction"])
    return out


def generate_subject(
    spec: SubjectSpec,
    shape: tuple[int, int, int] = DEFAULT_SHAPE,
    spacing: tuple[float, float, float] = DEFAULT_SPACING,
    n_subslices: int = DEFAULT_SUBSLICES,
) -> PhantomSubject:
    """Render one subject: both legs, bias field, Rician noise, scanner scale.

    Args:
        spec: the subject's parameters (:func:`~nnunet_filternet.phantom.cohort.cohort_specs`).
        shape: image size (x, y, z) in voxels.
        spacing: voxel size (x, y, z) in mm. The field of view ``shape * spacing`` must hold both legs.
        n_subslices: odd number of thin sub-slices averaged into each thick slice.

    Returns:
        the :class:`PhantomSubject`.

    Raises:
        FilterNetError: invalid shape or spacing, or the legs do not fit into the field of view.

    The same subject renders to the same bytes whatever the caller's BLAS thread count: the smooth fields' matrix
    products run on one BLAS thread (with two, OpenBLAS sums in another order: up to 2e-4 apart at scale 1000).
    """
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1, user_api="blas"):
        return _generate_subject(spec, shape, spacing, n_subslices)


def _generate_subject(spec: SubjectSpec, shape, spacing, n_subslices: int) -> PhantomSubject:
    """:func:`generate_subject` on the caller's thread settings."""
    grid = make_grid(shape, spacing)
    if int(n_subslices) != n_subslices or n_subslices < 1 or n_subslices % 2 == 0:
        raise FilterNetError(f"the number of sub-slices must be an odd positive integer, got {n_subslices}")
    rendered = render_signal(spec, grid, int(n_subslices))
    rng = np.random.default_rng(np.random.SeedSequence(spec.seed, spawn_key=(spec.index, NOISE_STREAM)))
    bias = bias_field(rng, grid.axis(0), grid.axis(1), grid.axis(2), spec.bias_amplitude)
    image = rician(bias * rendered["signal"], spec.noise_sigma, rng)
    image *= spec.intensity_scale
    return PhantomSubject(
        spec=spec,
        spacing=grid.spacing,
        image=image,
        label=rendered["label"],
        bias=bias,
        fat_fraction=rendered["fat_fraction"],
        tissue=rendered["tissue"],
        signal=rendered["signal"],
    )
