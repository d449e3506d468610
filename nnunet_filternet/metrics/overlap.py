"""Overlap and volume measures of binary masks.

Convention for empty masks (shared with :mod:`.surface`): both masks empty -> Dice is NaN (nothing to
measure, the compartment is absent); exactly one empty -> Dice 0.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def dice_from_counts(n_pred: int, n_ref: int, n_both: int) -> float:
    """Dice similarity coefficient 2|P & R| / (|P| + |R|) from voxel counts; NaN when both are empty."""
    if n_pred + n_ref == 0:
        return float("nan")
    return 2.0 * n_both / (n_pred + n_ref)


def dice(pred: np.ndarray, ref: np.ndarray) -> float:
    """Dice of two boolean masks of equal shape (any dimension); NaN when both are empty."""
    pred = np.asarray(pred, dtype=bool)
    ref = np.asarray(ref, dtype=bool)
    if pred.shape != ref.shape:
        raise ValueError(f"masks differ in shape: prediction {pred.shape}, reference {ref.shape}")
    return dice_from_counts(int(pred.sum()), int(ref.sum()), int(np.logical_and(pred, ref).sum()))


def voxel_volume_ml(spacing: Sequence[float]) -> float:
    """Volume of one voxel in millilitres, spacing in mm (1 ml = 1000 mm^3)."""
    return float(np.prod(np.asarray(spacing, dtype=np.float64))) / 1000.0


def volume_ml(n_voxels: int, spacing: Sequence[float]) -> float:
    """Volume in millilitres of ``n_voxels`` voxels of the given spacing (mm)."""
    return n_voxels * voxel_volume_ml(spacing)
