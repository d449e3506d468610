"""DM1 fatty infiltration: how much fat each compartment holds, and where (patchy).

Each compartment gets a target mean fat fraction ``m = peak * severity ** onset`` (table
:data:`VULNERABILITY`): Gas and Sol are affected first and most, the anterior, lateral and deep
compartments later and less. Inside a compartment the per-voxel fat fraction is
``f(x) = Phi(a * g(x) + b)`` with ``g`` a smooth standard-normal field (patches), ``a`` the patchiness
and ``b = Phi^-1(m) * sqrt(1 + a^2)``, which makes the expected value of ``f`` exactly ``m``; ``f`` grows
with ``m`` at every voxel, so the infiltration is monotone in severity. Healthy subjects have none.
"""

from __future__ import annotations

import numpy as np
from scipy.special import ndtr, ndtri

from nnunet_filternet.labels import LABELS

#: label -> (peak mean fat fraction at severity 1, onset exponent: larger = affected later).
VULNERABILITY: dict[int, tuple[float, float]] = {
    LABELS["Gas"]: (0.96, 0.8),
    LABELS["Sol"]: (0.92, 1.0),
    LABELS["TA"]: (0.60, 2.2),
    LABELS["PL"]: (0.55, 2.4),
    LABELS["TP"]: (0.45, 2.8),
}


def compartment_fat_fraction(severity: float) -> np.ndarray:
    """Target mean fat fraction of each label (index = label value; background 0).

    Args:
        severity: 0 (healthy) .. 1 (severe DM1).

    Returns:
        float64 array (6,).
    """
    out = np.zeros(max(LABELS.values()) + 1)
    if severity > 0:
        for label, (peak, onset) in VULNERABILITY.items():
            out[label] = peak * min(severity, 1.0) ** onset
    return out


def probit_offsets(mean_fat: np.ndarray, patchiness: float) -> np.ndarray:
    """Offsets ``b`` per label such that ``E[Phi(a g + b)] = mean_fat`` for ``g ~ N(0, 1)``.

    Labels without fat get a large negative offset (no infiltration at all).
    """
    m = np.clip(mean_fat, 1e-9, 1 - 1e-9)
    return np.where(mean_fat > 0, ndtri(m) * np.sqrt(1 + patchiness**2), -40.0)


def infiltration(patches: np.ndarray, offset: np.ndarray, patchiness: float) -> np.ndarray:
    """Per-voxel fat fraction in [0, 1] of muscle, ``Phi(a * patches + offset)`` (float32, shape of ``patches``)."""
    return ndtr(patchiness * patches + offset).astype(np.float32)
