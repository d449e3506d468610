"""The folds' agreement and the ensemble's uncertainty of one predicted case (numpy only).

:class:`~.predictor.AgreementPredictor` computes them (:func:`fold_signals`) while nnU-Net predicts and writes
``<qc_folder>/<case>.json``:

    {"case": "sub-000_L", "folds": 2, "compartments": {"TA": {"fold_dice": 0.93, "entropy": 0.08,
     "voxels": 812}, ...}}

``fold_dice``: the mean over folds of each fold's Dice with the ensemble for that compartment (NaN with one
fold, 1.0 where neither has it); ``entropy``: the mean entropy of the ensemble's class probabilities
(softmax of the averaged logits, normalised by log(classes) to [0, 1]) over the voxels the ensemble gives
the compartment (NaN where it gives none). Both are measured on nnU-Net's preprocessed grid, before resampling
to the leg image (a statistic over voxels, not a label map, so the grid does not matter).
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np

from nnunet_filternet.labels import COMPARTMENTS


def fold_signals(fold_labels: list[np.ndarray], logits: np.ndarray) -> dict[str, dict[str, float]]:
    """Per compartment: the folds' mean Dice with the ensemble, the ensemble's mean normalised entropy, its voxels.

    Args:
        fold_labels: one label map per fold, each (spatial...) int, values 0..len(COMPARTMENTS).
        logits: the ensemble's averaged logits (classes, spatial...), float; the ensemble's labels are its argmax.

    Returns:
        compartment -> ``{"fold_dice", "entropy", "voxels"}`` (module docstring).
    """
    logits = np.asarray(logits, dtype=np.float32)
    ensemble = logits.argmax(0)
    shifted = logits - logits.max(0, keepdims=True)
    p = np.exp(shifted)
    p /= p.sum(0, keepdims=True)
    entropy = -(p * np.log(np.clip(p, 1e-12, None))).sum(0) / math.log(logits.shape[0])
    out = {}
    for value, name in enumerate(COMPARTMENTS, start=1):
        mask = ensemble == value
        n = int(mask.sum())
        dices = [_dice(f == value, mask) for f in fold_labels] if len(fold_labels) > 1 else []
        out[name] = {
            "fold_dice": float(np.mean(dices)) if dices else float("nan"),
            "entropy": float(entropy[mask].mean()) if n else float("nan"),
            "voxels": n,
        }
    return out


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    total = int(a.sum()) + int(b.sum())
    return 1.0 if total == 0 else 2.0 * int((a & b).sum()) / total


def read_fold_signals(qc_folder: str | os.PathLike, case: str) -> dict | None:
    """The record :class:`~.predictor.AgreementPredictor` wrote for ``case``, or None (not predicted by it)."""
    path = Path(qc_folder) / f"{case}.json"
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
