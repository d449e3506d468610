"""Holm's step-down adjustment of a family of p values (every row of one comparison run)."""

from __future__ import annotations

import numpy as np


def holm(p_values) -> np.ndarray:
    """Holm's step-down adjusted p values along the last axis; NaN entries are left out of the family.

    With the m non-NaN p values sorted, p_(1) <= ... <= p_(m), the adjusted value of p_(i) is
    ``min(1, max_{j <= i} (m - j + 1) p_(j))``. Rejecting where the adjusted p < alpha controls the
    family-wise error rate at alpha under any dependence between the tests.

    Args:
        p_values: (..., m) p values (NaN: not tested).

    Returns:
        (..., m) adjusted p values, NaN where the input is NaN.
    """
    p = np.asarray(p_values, dtype=np.float64)
    tested = ~np.isnan(p)
    m = tested.sum(axis=-1, keepdims=True)
    order = np.argsort(np.where(tested, p, np.inf), axis=-1, kind="stable")
    ranked = np.take_along_axis(p, order, axis=-1)
    factors = m - np.arange(p.shape[-1])  # m, m - 1, ..., for the sorted tested values (NaN ones sort last)
    adjusted = np.minimum(1.0, np.maximum.accumulate(np.where(factors > 0, factors * ranked, np.nan), axis=-1))
    out = np.empty_like(p)
    np.put_along_axis(out, order, adjusted, axis=-1)
    return np.where(tested, out, np.nan)
