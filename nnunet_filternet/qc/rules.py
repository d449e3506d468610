"""From signals to a review decision: each signal's severity, the reasons in words, one score per row and scan.

Every signal is turned into a **severity**: 1 at its review threshold (:class:`Thresholds`), larger the further
past it, so that signals of different units compare. A row (scan, side, compartment) is flagged for review
when any of its severities exceeds 1; its reasons are those signals, most severe first. Scores:

- ``compartment_score``: the largest severity of the compartment's own signals (size, share, left/right
  ratio, missing, fragments, the folds' agreement, uncertainty);
- ``segmentation_score``: the largest severity of the signals of the segmentation itself
  (:data:`SEGMENTATION_SIGNALS`: its share of the leg's muscle, fragments, the folds' agreement, uncertainty);
- ``score``: the largest severity of the row, its leg's and its scan's signals included;
- ``scan_score``: the mean ``segmentation_score`` over the scan's rows (both legs' compartments), which ranks
  scans from the most to the least likely failed segmentation: a failed segmentation leaves its marks on many
  compartments, a data problem (a leg cut by the field of view, a missing leg, low contrast) on its own signals;
- ``data_score``: the largest severity of the scan's and its legs' signals (contrast, field of view, anatomy,
  legs found, SNR, slices, slice axis): the data that need a look even when they were segmented well.

A scan is flagged for review when any row is (``review``); the two scan scores only order the flagged and the
unflagged scans. docs/qc.md says how the scan score was chosen and how well it ranks failed segmentations.

Severities (``z`` a deviation in training SDs, :mod:`.reference`):

| signal | severity | reason |
|---|---|---|
| area_cm2, share | abs(z) / 3 | ``left Gas area 3.4 SD below training`` |
| left/right ratio | abs(z) / 3 | ``Gas left/right 0.62 (3.9 SD from training)`` |
| missing compartment | 2 | ``left Gas missing`` |
| fragments | share outside the largest piece / 0.10 | ``left Gas in 3 pieces (14 % outside the largest)`` |
| fold_dice | (1 - Dice) / (1 - 0.85) | ``folds disagree on left Gas (Dice 0.61)`` |
| entropy | entropy / 0.30 | ``left Gas uncertain (entropy 0.41)`` |
| contrast | 0.30 / contrast (2 when not found) | ``left leg: muscle/fat contrast 0.12`` |
| fov_slices | 1 + share (when > 0) | ``left leg cut by the field of view (labels on the image edge in 80 % ...)`` |
| anatomy | 2 when TA lies behind Sol/Gas | ``left leg: TA behind Sol/Gas (orientation in the header?)`` |
| legs found | 1.5 when one | ``one leg found (taken as left from its position)`` |
| snr | 5 / SNR | ``SNR 3.1`` |
| slices | 1 + the share missing, when fewer than training's fewest | ``8 slices, fewer than any training scan (16)`` |
| slice axis | 2 when the thickest axis is not superior-inferior | ``slices not axial in the header`` |
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from nnunet_filternet.labels import COMPARTMENTS
from nnunet_filternet.qc.signals import LegSignals, ScanSignals

SIDE_WORDS = {"L": "left", "R": "right"}


@dataclass(frozen=True)
class Thresholds:
    """Where each signal reaches severity 1 (module docstring)."""

    z: float = 3.0
    fold_dice: float = 0.85
    entropy: float = 0.30
    fragments: float = 0.10
    contrast: float = 0.30
    snr: float = 5.0


@dataclass(frozen=True)
class Finding:
    """One signal past (or short of) its threshold: how severe, and the words for it."""

    severity: float
    reason: str
    #: the qc.csv column the finding comes from
    signal: str = ""


#: The compartment's signals that come from its segmentation itself (``segmentation_score``; module docstring).
SEGMENTATION_SIGNALS = frozenset({"share_z", "fragments", "fold_dice", "entropy"})


def _finite(*values) -> bool:
    return all(v is not None and math.isfinite(v) for v in values)


def _z(value: float, stats: dict | None) -> float:
    """(value - mean) / sd with the reference's statistics; NaN without them."""
    if not stats or not _finite(value, stats.get("mean"), stats.get("sd")) or not stats["sd"] > 0:
        return float("nan")
    return (value - stats["mean"]) / stats["sd"]


def _deviation(z: float, t: Thresholds, what: str, signal: str) -> Finding | None:
    if not _finite(z):
        return None
    return Finding(abs(z) / t.z, f"{what} {abs(z):.1f} SD {'below' if z < 0 else 'above'} training", signal)


def log_lr(scan: ScanSignals, compartment: str) -> float:
    """log(area of the left leg / area of the right leg) of a compartment; NaN unless both legs have it."""
    legs = {leg.side: leg.measure.compartments[compartment] for leg in scan.legs}
    if "L" not in legs or "R" not in legs or not (legs["L"].voxels and legs["R"].voxels):
        return float("nan")
    return math.log(legs["L"].area_cm2 / legs["R"].area_cm2)


def compartment_findings(
    scan: ScanSignals, leg: LegSignals, name: str, reference: dict | None, t: Thresholds
) -> tuple[dict, list[Finding]]:
    """(the compartment's values, its findings) for one leg's compartment."""
    m = leg.measure.compartments[name]
    ref = (reference or {}).get("compartments", {}).get(name, {})
    where = f"{SIDE_WORDS[leg.side]} {name}"
    folds = ((leg.folds or {}).get("compartments") or {}).get(name, {})
    values = {
        "voxels": m.voxels, "volume_ml": m.volume_ml, "area_cm2": m.area_cm2, "share": m.share,
        "area_z": _z(m.area_cm2, ref.get("area_cm2")) if m.voxels else float("nan"),
        "share_z": _z(m.share, ref.get("share")) if m.voxels else float("nan"),
        "lr_z": _z(log_lr(scan, name), ref.get("log_lr")),
        "components": m.components, "fragments": m.fragments,
        "fold_dice": float(folds.get("fold_dice", float("nan"))), "entropy": float(folds.get("entropy", float("nan"))),
    }  # fmt: skip
    found = [
        _deviation(values["area_z"], t, f"{where} area", "area_z"),
        _deviation(values["share_z"], t, f"{where} share of the leg's muscle", "share_z"),
    ]
    if _finite(values["lr_z"]):
        ratio = math.exp(log_lr(scan, name))
        found.append(Finding(abs(values["lr_z"]) / t.z, f"{name} left/right {ratio:.2f} ({abs(values['lr_z']):.1f} SD "
                             "from training)", "lr_z"))  # fmt: skip
    if m.voxels == 0 and ref.get("missing", 0) == 0:
        found.append(Finding(2.0, f"{where} missing", "voxels"))
    if _finite(m.fragments) and m.fragments > 0:
        found.append(Finding(m.fragments / t.fragments, f"{where} in {m.components} pieces "
                             f"({100 * m.fragments:.0f} % outside the largest)", "fragments"))  # fmt: skip
    if _finite(values["fold_dice"]):
        d = values["fold_dice"]
        found.append(Finding((1 - d) / (1 - t.fold_dice), f"folds disagree on {where} (Dice {d:.2f})", "fold_dice"))
    if _finite(values["entropy"]):
        e = values["entropy"]
        found.append(Finding(e / t.entropy, f"{where} uncertain (entropy {e:.2f})", "entropy"))
    return values, [f for f in found if f is not None]


def leg_findings(leg: LegSignals, t: Thresholds) -> tuple[dict, list[Finding]]:
    """(the leg's values, its findings): contrast, field of view, anatomy."""
    side = SIDE_WORDS[leg.side]
    values = {"contrast": leg.contrast, "fov_slices": leg.fov_slices, "anatomy_ok": leg.anatomy_ok}
    found = []
    if leg.contrast is None:
        pass  # no biomarkers given: not judged
    elif _finite(leg.contrast) and leg.contrast > 0:
        found.append(Finding(t.contrast / leg.contrast, f"{side} leg: muscle/fat contrast {leg.contrast:.2f}"))
    else:
        found.append(Finding(2.0, f"{side} leg: no muscle/fat contrast found"))
    if leg.fov_slices > 0:
        found.append(Finding(1 + leg.fov_slices, f"{side} leg cut by the field of view (labels on the image edge in "
                             f"{100 * leg.fov_slices:.0f} % of its slices)"))  # fmt: skip
    if leg.anatomy_ok is False:
        found.append(Finding(2.0, f"{side} leg: TA behind Sol/Gas (orientation in the header?)"))
    return values, found


def scan_findings(scan: ScanSignals, reference: dict | None, t: Thresholds) -> tuple[dict, list[Finding]]:
    """(the scan's values, its findings): legs found, SNR, slices, slice axis (``bias_gain`` is recorded only)."""
    values = {
        "legs_found": scan.legs_found, "snr": scan.snr, "bias_gain": scan.bias_gain, "slices": scan.slices,
        "slice_axis_ok": scan.slice_axis_ok,
    }  # fmt: skip
    found = []
    if scan.legs_found == 1:
        leg = scan.legs[0]
        found.append(Finding(1.5, f"one leg found (taken as {SIDE_WORDS[leg.side]}, {leg.side_from})"))
    if _finite(scan.snr) and scan.snr > 0:
        found.append(Finding(t.snr / scan.snr, f"SNR {scan.snr:.1f}"))
    fewest = ((reference or {}).get("slices") or {}).get("min")
    if fewest and scan.slices < fewest:
        severity = 1 + (fewest - scan.slices) / fewest
        found.append(Finding(severity, f"{scan.slices} slices, fewer than any training scan ({fewest})"))
    if not scan.slice_axis_ok:
        found.append(Finding(2.0, "slices not axial in the header (the thickest axis is not superior-inferior)"))
    return values, found


def _worst(findings: list[Finding]) -> float:
    return max((f.severity for f in findings), default=0.0)


@dataclass
class ScanVerdict:
    """A judged scan: its rows, its score, whether to review it and why (most severe first), the worst compartment.

    Attributes:
        subject: the scan.
        rows: one per leg and compartment (:func:`judge_scan`).
        score: ``scan_score``, the mean segmentation severity of the scan's rows (ranks failed segmentations).
        reasons: the distinct reasons past their threshold, most severe first.
        suspect: (side, compartment) with the largest compartment score, for the figure.
        data_score: the largest severity of the scan's and its legs' data signals.
    """

    subject: str
    rows: list[dict]
    score: float
    reasons: list[str]
    suspect: tuple[str, str] | None
    data_score: float = 0.0

    @property
    def review(self) -> bool:
        return bool(self.reasons)


def judge_scan(scan: ScanSignals, reference: dict | None, t: Thresholds = Thresholds()) -> ScanVerdict:
    """The scan's rows (one per leg and compartment: values, scores, ``review`` yes/no, ``reasons``) and verdict."""
    scan_values, scan_found = scan_findings(scan, reference, t)
    rows, severities, data = [], {}, _worst(scan_found)
    for leg in scan.legs:
        leg_values, leg_found = leg_findings(leg, t)
        data = max(data, _worst(leg_found))
        for name in COMPARTMENTS:
            values, found = compartment_findings(scan, leg, name, reference, t)
            everything = sorted(found + leg_found + scan_found, key=lambda f: -f.severity)
            flagged = [f for f in everything if f.severity > 1]
            for f in flagged:
                severities[f.reason] = max(f.severity, severities.get(f.reason, 0.0))
            rows.append({
                "subject": scan.subject, "side": leg.side, "compartment": name,
                "review": "yes" if flagged else "no", "reasons": "; ".join(f.reason for f in flagged),
                "compartment_score": _worst(found), "score": _worst(everything),
                "segmentation_score": _worst([f for f in found if f.signal in SEGMENTATION_SIGNALS]),
                **values, **leg_values, **scan_values,
            })  # fmt: skip
    score = float(np.mean([r["segmentation_score"] for r in rows])) if rows else 0.0
    for r in rows:
        r["scan_score"], r["data_score"] = score, data
    # ties (a left/right ratio counts on both legs) go to the compartment further from training's size
    suspect = max(rows, key=lambda r: (r["compartment_score"], abs(np.nan_to_num(r["area_z"]))), default=None)
    return ScanVerdict(
        subject=scan.subject,
        rows=rows,
        score=score,
        reasons=sorted(severities, key=lambda k: -severities[k]),
        suspect=None if suspect is None else (suspect["side"], suspect["compartment"]),
        data_score=data,
    )
