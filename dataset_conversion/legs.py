"""Find the legs of a scan (tissue mask + KMeans, k = 2), the crop box of each, and whether the split is sound.

The tissue mask (:func:`tissue_mask`) does not depend on absolute intensity: a voxel is tissue where the
intensities around it vary little relative to their mean (local coefficient of variation below
``max_local_cv``). Air is magnitude noise, whose coefficient of variation is about 0.52 wherever it is, and a
smooth multiplicative bias field, however strong, leaves local ratios alone; a global threshold (Otsu) instead
loses the dark side of a scan whose gain varies 20-fold across the field of view.

Then, on the patient-aligned mask (index axes: left, posterior, superior; see
:mod:`~nnunet_filternet.dataset_conversion.orientation`):

1. Footprint: the mask projected along the superior axis (one axial silhouette for all slices), holes
   filled, specks smaller than ``min_component_fraction`` of the largest blob dropped.
2. KMeans (k = 2, scikit-learn, seeded) on the footprint's pixel positions in mm.
3. Two legs or one? Along the left-right axis, the footprint's width (pixels per column) between the two
   cluster centres must drop below ``valley_ratio`` times the smaller of the two legs' widest columns (a
   gap, or the narrow contact of touching legs). KMeans also cuts a single leg in two, but then the width
   between the centres stays near the leg's maximum.
4. Two legs: they are cut apart at the middle of the narrowest column run between the centres; the leg
   on the patient's left (+x in LPS) is "L". One leg: its side is its centre's position relative to the
   centre of the field of view (left half: "L").
5. Crop box: the leg's bounding box (all slices where it appears) plus ``margin_mm``, clipped to the image
   and to the leg's side of the cut, so two crops never overlap.
6. Doubtful splits (:func:`doubtful_split`) are reported, not written: two legs whose footprints differ in
   area by more than ``max_area_ratio``, a single leg more than ``max_aspect`` times wider (left-right) than
   deep (antero-posterior), i.e. two legs taken for one, a "leg" smaller than ``min_leg_area_mm2``, or legs
   covering more than ``max_field_fraction`` of the field of view (the background taken for tissue: two
   elliptic calves fill at most pi / 4 of any rectangle around them). A whole-field "leg" is never written.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage
from sklearn.cluster import KMeans
from threadpoolctl import threadpool_limits

from nnunet_filternet.dataset_conversion.intensity import IntensitySettings, clean_intensities, intensity_statistics
from nnunet_filternet.errors import FilterNetError


@dataclass(frozen=True)
class LegSettings:
    """Parameters of :func:`find_legs`.

    Attributes:
        margin_mm: Margin added around each leg's bounding box, mm (per axis, clipped at the image border
            and at the cut between the legs).
        min_component_fraction: Footprint blobs smaller than this fraction of the largest are ignored.
        valley_ratio: Two legs when the narrowest column between the cluster centres is below this
            fraction of the smaller leg's widest column.
        max_points: KMeans runs on at most this many footprint pixels (a seeded random subset).
        seed: Seed of the subset and of KMeans.
        max_local_cv: Tissue seeds where the local standard deviation is below this fraction of the local mean.
        window_mm: Side of the in-plane window of the local statistics, mm (at least 5 voxels).
        level_mm: Side of the in-plane window over which the seeds' mean intensity is taken, mm.
        mask_spacing_mm: Finer in-plane grids are sub-sampled to about this spacing for the tissue mask.
        level_fraction: Tissue where a voxel is brighter than this fraction of that mean (air is far darker).
        max_area_ratio: Two legs whose footprint areas differ by more than this factor are a doubtful split.
        min_leg_area_mm2: A leg whose footprint is smaller than this (mm^2) is doubtful (noise, not a calf).
        max_aspect: One leg wider (left-right) than this times its depth (antero-posterior) is a doubtful split.
        max_field_fraction: Legs whose footprint covers more than this fraction of the field of view (in-plane)
            are no legs: the background was taken for tissue.
        intensity: Robust intensity statistics of the tissue mask
            (:mod:`~nnunet_filternet.dataset_conversion.intensity`).
    """

    margin_mm: float = 10.0
    min_component_fraction: float = 0.1
    valley_ratio: float = 0.5
    max_points: int = 20000
    seed: int = 0
    max_local_cv: float = 0.25
    window_mm: float = 3.5
    level_mm: float = 20.0
    level_fraction: float = 0.2
    mask_spacing_mm: float = 1.4
    max_area_ratio: float = 2.0
    min_leg_area_mm2: float = 1500.0
    max_aspect: float = 1.6
    max_field_fraction: float = 0.9
    intensity: IntensitySettings = field(default_factory=IntensitySettings)


@dataclass(frozen=True)
class LegBox:
    """One leg's crop box in patient-aligned indices.

    Attributes:
        side: "L" (patient's left) or "R".
        start: First voxel (left, posterior, superior), inclusive.
        stop: End (exclusive).
        x_limits: The range [lo, hi) of left-right indices on this leg's side of the cut (the whole axis for a
            single leg); boxes never leave it.
        side_from: "two legs" (the leg further to the patient's left is L) or "position vs image centre"
            (a single leg).
    """

    side: str
    start: tuple[int, int, int]
    stop: tuple[int, int, int]
    x_limits: tuple[int, int]
    side_from: str

    def slices(self) -> tuple[slice, slice, slice]:
        """Numpy slices of the box in the patient-aligned array."""
        return tuple(slice(a, b) for a, b in zip(self.start, self.stop))  # type: ignore[return-value]


def tissue_mask(
    arr: np.ndarray, spacing_mm, settings: LegSettings = LegSettings(), along: int | None = None
) -> np.ndarray:
    """Voxels of tissue, whatever their brightness (module docstring), in two scale-free steps.

    1. Seeds: on intensities measured from the air level, constant fills (padding, a blanked background) set
       to air and outlier voxels clipped (:mod:`~nnunet_filternet.dataset_conversion.intensity`: an offset, a fill or a
       spike does not matter), the local coefficient of variation (in-plane window of about ``window_mm``, at least
       3 voxels) is below ``max_local_cv``; seed blobs smaller than ``min_component_fraction`` of the largest
       are dropped (noise).
    2. Rim: a window straddling the skin, or the narrow gap of touching legs, mixes tissue and air and is no
       seed; any voxel brighter than ``level_fraction`` times the mean of the seeds around it (window of
       ``level_mm``) is tissue too. Both steps compare intensities only with their neighbours, so a smooth
       multiplicative bias field, however strong, cancels out.

    Fine grids are first sub-sampled in-plane (every k-th voxel, which keeps the noise statistics) to about
    ``mask_spacing_mm``, and the mask is brought back by repetition (the crop margin absorbs the difference).

    Args:
        arr: Scan intensities, any index order, shape (n0, n1, n2).
        spacing_mm: Voxel size along those axes, mm (3,). Axes thicker than twice the finest are slice axes:
            the windows do not extend along them (anatomy changes between thick slices).
        settings: See :class:`LegSettings`.
        along: Index axis of ``arr`` along the legs (superior-inferior; its end faces are not border for the
            fills, :func:`~nnunet_filternet.dataset_conversion.intensity.constant_fills`); None: the thickest axis if
            thicker than twice the finest, else none.

    Returns:
        Bool array like ``arr``.

    Raises:
        FilterNetError: the scan is constant outside its fills.
    """
    finest = min(spacing_mm)
    in_plane = [s < 2 * finest for s in spacing_mm]
    step = [max(1, int(settings.mask_spacing_mm / s)) if p else 1 for s, p in zip(spacing_mm, in_plane)]
    values = np.asarray(arr[tuple(slice(None, None, k) for k in step)], dtype=np.float64)
    if along is None and not all(in_plane):
        along = int(np.argmax(spacing_mm))
    stats = intensity_statistics(values, along, settings.intensity)
    values = clean_intensities(values, stats) / np.float32(stats.high - stats.air)  # air 0, bright tissue ~1
    spacing = [s * k for s, k in zip(spacing_mm, step)]
    size = [2 * max(1, round(settings.window_mm / 2 / s)) + 1 if p else 1 for s, p in zip(spacing, in_plane)]
    mean = ndimage.uniform_filter(values, size)
    variance = ndimage.uniform_filter(values * values, size) - mean * mean
    seeds = (variance < (settings.max_local_cv * mean) ** 2) & (mean > 1e-6)
    labels, n = ndimage.label(seeds)
    if n:
        sizes = np.bincount(labels.ravel())
        sizes[0] = 0
        seeds = (sizes >= settings.min_component_fraction * sizes.max())[labels]
    level_size = [2 * round(settings.level_mm / 2 / s) + 1 if p else 1 for s, p in zip(spacing, in_plane)]
    weight = ndimage.uniform_filter(seeds.astype(np.float32), level_size)
    level = ndimage.uniform_filter(np.where(seeds, values, 0), level_size)
    tissue = seeds | ((weight > 0.01) & (values * weight > settings.level_fraction * level))
    for axis, k in enumerate(step):
        if k > 1:
            tissue = np.repeat(tissue, k, axis=axis)
    return tissue[tuple(slice(0, n) for n in arr.shape)]


def footprint(mask: np.ndarray, min_component_fraction: float) -> np.ndarray:
    """Axial silhouette of a patient-aligned mask (left, posterior, superior) -> (left, posterior) bool."""
    flat = ndimage.binary_fill_holes(mask.any(axis=2))
    labels, n = ndimage.label(flat)
    if n == 0:
        raise FilterNetError("no legs found: the tissue mask is empty (no voxel stands out from the air)")
    sizes = np.bincount(labels.ravel())[1:]
    keep = np.flatnonzero(sizes >= min_component_fraction * sizes.max()) + 1
    return np.isin(labels, keep)


def cluster_centres(flat: np.ndarray, spacing_mm, settings: LegSettings) -> np.ndarray:
    """KMeans (k = 2) centres of a footprint's pixels, in index units, sorted along left-right. Shape (2, 2)."""
    points = np.argwhere(flat).astype(float)
    if len(points) < 2:
        raise FilterNetError(f"the body footprint has {len(points)} pixel(s); cannot locate legs")
    if len(points) > settings.max_points:
        rng = np.random.default_rng(settings.seed)
        points = points[rng.choice(len(points), settings.max_points, replace=False)]
    scale = np.asarray(spacing_mm[:2], float)
    with threadpool_limits(1):  # a few thousand 2D points: threads cost more than they save
        km = KMeans(n_clusters=2, n_init=4, random_state=settings.seed).fit(points * scale)
    centres = km.cluster_centers_ / scale
    return centres[np.argsort(centres[:, 0])]


def find_cut(width: np.ndarray, lo: int, hi: int, valley_ratio: float) -> int | None:
    """Left-right index where two legs separate, or None if the footprint is one leg.

    Args:
        width: Footprint pixels per left-right column, shape (n,).
        lo, hi: Left-right indices of the two cluster centres (lo <= hi).
        valley_ratio: See :class:`LegSettings`.

    Returns:
        ``cut`` such that columns ``< cut`` hold the right leg and columns ``>= cut`` the left leg.
    """
    if hi - lo < 2:
        return None
    between = width[lo : hi + 1]
    valley = between.min()
    run = np.flatnonzero(between == valley) + lo
    cut = int(run[0] + run[-1] + 1) // 2
    peaks = min(width[:cut].max(initial=0), width[cut:].max(initial=0))
    return cut if valley < valley_ratio * peaks else None


def find_legs(mask: np.ndarray, spacing_mm, settings: LegSettings = LegSettings()) -> list[LegBox]:
    """Crop boxes of the legs in a patient-aligned body mask.

    Args:
        mask: Body mask, bool, shape (left, posterior, superior) (index axes along patient L, P, S).
        spacing_mm: Voxel size along those axes, mm (3,).
        settings: See :class:`LegSettings`.

    Returns:
        One or two :class:`LegBox` (right leg first).

    Raises:
        FilterNetError: no body in the mask.
    """
    flat = footprint(mask, settings.min_component_fraction)
    body = mask & flat[:, :, None]
    centres = cluster_centres(flat, spacing_mm, settings)
    width = flat.sum(axis=1)
    lo, hi = (int(round(c)) for c in centres[:, 0])
    cut = find_cut(width, lo, hi, settings.valley_ratio)
    n = mask.shape[0]
    margin = [math.ceil(settings.margin_mm / s) for s in spacing_mm]
    if cut is None:
        centre = np.argwhere(flat)[:, 0].mean()
        side = "L" if centre > (n - 1) / 2 else "R"
        return [_box(body, side, (0, n), margin, "position vs image centre")]
    return [_box(body, "R", (0, cut), margin, "two legs"), _box(body, "L", (cut, n), margin, "two legs")]


def doubtful_split(mask: np.ndarray, boxes: list[LegBox], spacing_mm, settings: LegSettings) -> str | None:
    """Why the legs found in ``mask`` are doubtful (see the module docstring, step 6), or None if they look sound.

    Args:
        mask: The patient-aligned body mask :func:`find_legs` was given (left, posterior, superior).
        boxes: What :func:`find_legs` returned for it.
        spacing_mm: Voxel size along those axes, mm (3,).
        settings: ``max_field_fraction``, ``min_leg_area_mm2``, ``max_area_ratio`` and ``max_aspect``.
    """
    flat = footprint(mask, settings.min_component_fraction)
    covered = float(flat.mean())
    if covered > settings.max_field_fraction:
        return (
            f"the tissue found covers {100 * covered:.0f} % of the field of view (more than "
            f"{100 * settings.max_field_fraction:g} %): the background could not be told apart from the legs"
        )
    areas = {b.side: int(flat[b.x_limits[0] : b.x_limits[1]].sum()) for b in boxes}
    pixel_mm2 = float(spacing_mm[0] * spacing_mm[1])
    small = {side: area * pixel_mm2 for side, area in areas.items() if area * pixel_mm2 < settings.min_leg_area_mm2}
    if small:
        side, area = next(iter(small.items()))
        return (
            f"the {side} leg found is only {area:.0f} mm^2 in cross-section (less than {settings.min_leg_area_mm2:g}"
            " mm^2): noise or a fragment, not a calf"
        )
    if len(boxes) == 2:
        small, large = sorted(areas.values())
        if large > settings.max_area_ratio * max(small, 1):
            return (
                f"the two legs found differ too much in size (footprints {areas['R']} and {areas['L']} pixels, "
                f"more than {settings.max_area_ratio:g} x); part of a leg may be missing (strong bias field?)"
            )
        return None
    first, last = _extent(flat)
    width, depth = ((b - a + 1) * s for a, b, s in zip(first[:2], last[:2], spacing_mm[:2]))
    if width > settings.max_aspect * depth:
        return (
            f"one leg was found, {width:.0f} mm wide and {depth:.0f} mm deep (more than {settings.max_aspect:g} x "
            "wider than deep): two legs taken for one?"
        )
    return None


def _box(body: np.ndarray, side: str, x_limits: tuple[int, int], margin, side_from: str) -> LegBox:
    lo, hi = x_limits
    first, last = _extent(body[lo:hi])
    first[0] += lo
    last[0] += lo
    limits_lo = (lo, 0, 0)
    limits_hi = (hi, body.shape[1], body.shape[2])
    start = tuple(max(int(f) - m, a) for f, m, a in zip(first, margin, limits_lo))
    stop = tuple(min(int(l) + 1 + m, b) for l, m, b in zip(last, margin, limits_hi))
    return LegBox(side, start, stop, x_limits, side_from)  # type: ignore[arg-type]


def _extent(mask: np.ndarray) -> tuple[list[int], list[int]]:
    """First and last True index along each axis of a non-empty mask."""
    first, last = [], []
    for axis in range(mask.ndim):
        other = tuple(a for a in range(mask.ndim) if a != axis)
        hits = np.flatnonzero(mask.any(axis=other))
        first.append(int(hits[0]))
        last.append(int(hits[-1]))
    return first, last
