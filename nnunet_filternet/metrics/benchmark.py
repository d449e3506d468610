"""A synthetic full scan pair to time :func:`~nnunet_filternet.metrics.surface.compartment_metrics`.

``filternet bench`` (and docs/evaluation.md) call :func:`time_compartment_metrics`. The scan mimics the
paper's data: 512 x 512 x 30 voxels of 0.7 x 0.7 x 7 mm, two legs, five elliptic compartments per leg;
the prediction is the reference with every compartment shifted and resized a little.
"""

from __future__ import annotations

import time

import numpy as np

#: Compartment ellipses of a left leg, relative to the leg centre: (dy, dx, radius_y, radius_x) in voxels.
_LEG_LAYOUT: tuple[tuple[int, int, int, int], ...] = (
    (-55, 30, 22, 18),  # TA, anterior
    (-5, 5, 18, 16),  # TP, deep
    (35, 0, 22, 45),  # Sol, posterior
    (70, 0, 18, 55),  # Gas, most posterior
    (-20, 55, 25, 12),  # PL, lateral
)


def _ellipse_map(shape_yx: tuple[int, int], centres: list[tuple[int, int]], shift: int, grow: int) -> np.ndarray:
    yy, xx = np.mgrid[: shape_yx[0], : shape_yx[1]]
    out = np.zeros(shape_yx, np.uint8)
    for cy, cx in centres:
        side = 1 if cx < shape_yx[1] // 2 else -1  # mirror the layout for the other leg
        for label, (dy, dx, ry, rx) in enumerate(_LEG_LAYOUT, start=1):
            inside = ((yy - cy - dy - shift) / (ry + grow)) ** 2 + ((xx - cx - side * dx - shift) / (rx + grow)) ** 2
            out[(inside <= 1) & (out == 0)] = label
    return out


def synthetic_scan_pair(
    shape_zyx: tuple[int, int, int] = (30, 512, 512),
) -> tuple[np.ndarray, np.ndarray, tuple[float, float, float]]:
    """Reference and prediction label maps of a two-leg scan, and the spacing (z, y, x) in mm.

    Returns:
        (pred, ref, spacing_zyx): two (z, y, x) uint8 maps with labels 0-5 in both legs.
    """
    nz, ny, nx = shape_zyx
    centres = [(ny // 2, nx // 4 + 10), (ny // 2, 3 * nx // 4 - 10)]
    ref2d = _ellipse_map((ny, nx), centres, shift=0, grow=0)
    pred2d = _ellipse_map((ny, nx), centres, shift=2, grow=1)
    ref = np.repeat(ref2d[None], nz, axis=0)
    pred = np.repeat(pred2d[None], nz, axis=0)
    ref[[0, -1]] = 0  # the muscles end inside the field of view
    pred[:2] = 0
    return pred, ref, (7.0, 0.7, 0.7)


def time_compartment_metrics(repeats: int = 3, shape_zyx: tuple[int, int, int] = (30, 512, 512)) -> dict:
    """Seconds taken by one :func:`compartment_metrics` call on :func:`synthetic_scan_pair` (best of ``repeats``).

    Run it in a single process with one thread to measure "one core".
    """
    from nnunet_filternet.metrics.surface import compartment_metrics

    pred, ref, spacing = synthetic_scan_pair(shape_zyx)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        compartment_metrics(pred, ref, spacing)
        times.append(time.perf_counter() - start)
    return {"shape_zyx": list(shape_zyx), "seconds_best": min(times), "seconds_all": times}
