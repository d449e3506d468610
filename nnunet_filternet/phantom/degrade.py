"""Scans that fail the ways real scans fail: degradations applied to part of a cohort (``filternet phantom --degrade``).

Kinds (:data:`KINDS`), each with one drawn parameter (``strength``, its unit in :data:`UNITS`):

- ``bias``: a strong smooth gain ``exp(a x + b y)`` on top of the phantom's own field, x and y running from
  -1 to 1 across the field of view; ``strength`` = a (|a| 1.2-1.8: an 11- to 36-fold gain across the image),
  ``extra`` = b (-0.5 to 0.5).
- ``noise``: Rician noise of ``strength`` = sigma relative to fat (0.10-0.18; the phantom's own is 0.015-0.035).
- ``ghosting``: periodic motion along y (the phase-encoding axis) while k-space lines are acquired: each line
  is shifted by ``strength`` mm x sin(2 pi t / T) (t the line's index, T 4-12 lines), which repeats the legs
  as ghosts along y (``extra`` = T).
- ``fov_cut``: the field of view ends inside one leg (``side``): the outer ``strength`` share (0.2-0.4) of
  that leg's width is cut off, from image and labels alike.
- ``fat_suppression``: fat loses ``strength`` (0.6-0.8) of its signal, in fat tissue and in fatty muscle alike,
  so subcutaneous fat looks like muscle (contrast loss as with a partly fat-suppressed sequence).
- ``orientation``: the header's direction flips the antero-posterior (``strength`` 1) or the superior-inferior
  axis (``strength`` 2): the voxels are those of a clean scan, but they are read upside down.
- ``missing_leg``: one leg (``side``) is absent from the scan (air), and from its labels.

Which subjects are degraded: ``round(fraction * N)`` of them, chosen by a permutation seeded by the cohort seed;
the kinds are dealt in turn over the chosen subjects (in subject order), so each kind appears about equally
often. A subject's parameters come from its own stream ``SeedSequence(seed, spawn_key=(k, DEGRADE_STREAM))``, the
noise of its new acquisition from ``spawn_key=(k, DEGRADE_STREAM, 1)``.
Clean subjects are exactly those of the same cohort without ``--degrade``.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np

from nnunet_filternet.errors import FilterNetError
from nnunet_filternet.phantom.spec import SubjectSpec, subject_rng

KINDS: tuple[str, ...] = ("bias", "noise", "ghosting", "fov_cut", "fat_suppression", "orientation", "missing_leg")

#: What ``strength`` means, per kind.
UNITS: dict[str, str] = {
    "bias": "gain exponent a of exp(a x + b y)",
    "noise": "Rician sigma relative to fat",
    "ghosting": "motion amplitude in mm",
    "fov_cut": "share of the leg's width cut off",
    "fat_suppression": "share of the fat signal suppressed",
    "orientation": "1: antero-posterior flipped in the header, 2: superior-inferior flipped",
    "missing_leg": "none (1)",
}

#: Stream number under a subject's spawn key ``(k, stream)`` (0-2 are the parameters, rendering and noise).
DEGRADE_STREAM = 3

#: Spawn key of the cohort-level draw of which subjects are degraded.
_CHOICE_KEY = 1_000_003


@dataclass(frozen=True)
class Degradation:
    """How one scan is degraded.

    Attributes:
        kind: one of :data:`KINDS`.
        strength: the kind's parameter (unit: :data:`UNITS`).
        side: ``"L"`` / ``"R"`` for ``fov_cut`` and ``missing_leg``, else ``""``.
        extra: ``bias``: b of ``exp(a x + b y)``; ``ghosting``: the motion's period in k-space lines; else 0.
    """

    kind: str
    strength: float
    side: str = ""
    extra: float = 0.0

    def describe(self) -> str:
        """One phrase, e.g. ``fov_cut: 0.31 of the L leg's width cut off``."""
        s = self.strength
        text = {
            "bias": f"gain exp({s:.2f} x {self.extra:+.2f} y) on top of the field",
            "noise": f"Rician sigma {s:.3f} of fat",
            "ghosting": f"motion {s:.1f} mm along y, period {self.extra:g} lines",
            "fov_cut": f"{s:.2f} of the {self.side} leg's width outside the field of view",
            "fat_suppression": f"fat signal {s:.2f} suppressed",
            "orientation": "antero-posterior axis flipped in the header" if s == 1 else "superior-inferior flipped",
            "missing_leg": f"the {self.side} leg is missing",
        }[self.kind]
        return f"{self.kind}: {text}"


def check_degrade(fraction: float, kinds) -> tuple[str, ...]:
    """The kinds as a tuple, after checking ``fraction`` in [0, 1] and every kind known.

    Raises:
        FilterNetError: naming the bad value and what is accepted.
    """
    if not (isinstance(fraction, (int, float)) and math.isfinite(fraction) and 0 <= fraction <= 1):
        raise FilterNetError(f"--degrade {fraction}: expected a share of the subjects between 0 and 1")
    kinds = tuple(kinds)
    unknown = [k for k in kinds if k not in KINDS]
    if unknown or not kinds:
        raise FilterNetError(f"--degrade-kinds {list(kinds)}: expected some of {', '.join(KINDS)}")
    return kinds


def plan_degradations(specs: list[SubjectSpec], fraction: float, kinds=KINDS) -> dict[str, Degradation]:
    """subject name -> its :class:`Degradation`, for the ``round(fraction * N)`` subjects degraded (module docstring).

    Raises:
        FilterNetError: ``fraction`` outside [0, 1] or an unknown kind.
    """
    kinds = check_degrade(fraction, kinds)
    if not specs:
        return {}
    n = round(fraction * len(specs))
    seed = specs[0].seed
    order = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(_CHOICE_KEY,))).permutation(len(specs))
    chosen = sorted(int(i) for i in order[:n])
    return {specs[i].name: draw_degradation(specs[i], kinds[j % len(kinds)]) for j, i in enumerate(chosen)}


def draw_degradation(spec: SubjectSpec, kind: str) -> Degradation:
    """The parameters of ``kind`` for subject ``spec``, from its own stream (module docstring)."""
    rng = subject_rng(spec.seed, spec.index, DEGRADE_STREAM)
    side = str(rng.choice(["L", "R"]))
    draws = {
        "bias": Degradation(
            "bias", float(rng.choice([-1, 1]) * rng.uniform(1.2, 1.8)), extra=float(rng.uniform(-0.5, 0.5))
        ),
        "noise": Degradation("noise", float(rng.uniform(0.10, 0.18))),
        "ghosting": Degradation("ghosting", float(rng.uniform(4.0, 10.0)), extra=float(rng.integers(4, 13))),
        "fov_cut": Degradation("fov_cut", float(rng.uniform(0.2, 0.4)), side=side),
        "fat_suppression": Degradation("fat_suppression", float(rng.uniform(0.6, 0.8))),
        "orientation": Degradation("orientation", float(rng.integers(1, 3))),
        "missing_leg": Degradation("missing_leg", 1.0, side=side),
    }
    return draws[kind]


# ---- applying one ------------------------------------------------------------------------------------------


def _x_mm(subject) -> np.ndarray:
    """x coordinate (mm) of each column of the subject's grid, centred on 0 as the phantom's (nx,)."""
    nx = subject.image.shape[2]
    return (np.arange(nx) - (nx - 1) / 2.0) * subject.spacing[0]


def leg_columns(subject, side: str) -> np.ndarray:
    """bool (nx,): the columns on ``side``'s side of the plane between the legs (``x < plane`` for R)."""
    plane = subject.spec.gap_centre * subject.spec.gap_mm
    x = _x_mm(subject)
    return x > plane if side == "L" else x < plane


def acquire(signal: np.ndarray, field: np.ndarray, sigma: float, scale: float, rng, ghost=None) -> np.ndarray:
    """``scale * | ghost(field * signal) + sigma (n1 + i n2) |``: a magnitude image (float32, (z, y, x)).

    ``ghost`` is None or ``(amplitude_mm, period_lines, spacing_y_mm)``: periodic motion along y during the
    acquisition of the k-space lines (axis 1), applied as the phase ramp of the shift theorem.
    """
    clean = (field * signal).astype(np.complex64)
    if ghost is not None:
        amplitude, period, dy = ghost
        ny = signal.shape[1]
        k = np.fft.fft(clean, axis=1)
        shift = amplitude * np.sin(2 * np.pi * np.arange(ny) / period)  # mm, per line in acquisition order
        ky = np.fft.fftfreq(ny, d=dy)  # cycles per mm
        k *= np.exp(-2j * np.pi * ky * shift)[None, :, None].astype(np.complex64)
        clean = np.fft.ifft(k, axis=1).astype(np.complex64)
    real = rng.standard_normal(signal.shape, dtype=np.float32) * sigma + clean.real
    imag = rng.standard_normal(signal.shape, dtype=np.float32) * sigma + clean.imag
    return (np.hypot(real, imag) * scale).astype(np.float32)


def _gain(shape_zyx, a: float, b: float) -> np.ndarray:
    """``exp(a x + b y)`` with x, y from -1 to 1 across the grid, (1, ny, nx) float32."""
    _, ny, nx = shape_zyx
    x = np.linspace(-1.0, 1.0, nx)[None, None, :]
    y = np.linspace(-1.0, 1.0, ny)[None, :, None]
    return np.exp(a * x + b * y).astype(np.float32)


def degrade(subject, degradation: Degradation):
    """A new :class:`~nnunet_filternet.phantom.subject.PhantomSubject`: ``subject`` degraded as ``degradation`` says.

    ``bias``, ``noise``, ``ghosting`` and ``fat_suppression`` acquire the image again from the subject's
    noise-free signal (:func:`acquire`) with the subject's scale, field and noise unless the kind changes them.
    ``fov_cut`` crops the clean image (and labels, fat fraction, field) to the smaller field of view,
    ``orientation`` keeps its voxels and changes the header, ``missing_leg`` acquires the leg's side again
    without the leg (air: noise only) and clears its labels. Random numbers come from the subject's
    degradation stream.
    """
    spec, d = subject.spec, degradation
    rng = np.random.default_rng(np.random.SeedSequence(spec.seed, spawn_key=(spec.index, DEGRADE_STREAM, 1)))
    signal, field, sigma, ghost = subject.signal, subject.bias, spec.noise_sigma, None
    arrays = {k: getattr(subject, k) for k in ("image", "label", "bias", "fat_fraction", "tissue")}
    if d.kind == "orientation":
        flipped = (1.0, -1.0, 1.0) if d.strength == 1 else (1.0, 1.0, -1.0)
        return dataclasses.replace(subject, direction=tuple(float(v) for v in np.diag(flipped).ravel()))
    if d.kind == "fov_cut":
        keep = _kept_columns(subject, d.side, d.strength)
        cropped = {k: np.ascontiguousarray(v[..., keep]) for k, v in {**arrays, "signal": signal}.items()}
        return dataclasses.replace(subject, **cropped)
    if d.kind == "missing_leg":
        gone = leg_columns(subject, d.side)[None, None, :]
        air = acquire(np.zeros_like(signal), field, sigma, spec.intensity_scale, rng)
        cleared = {k: np.where(gone, 0, arrays[k]).astype(arrays[k].dtype) for k in ("label", "fat_fraction", "tissue")}
        image = np.where(gone, air, subject.image).astype(np.float32)
        return dataclasses.replace(subject, image=image, signal=np.where(gone, 0, signal).astype(np.float32), **cleared)
    if d.kind == "bias":
        field = field * _gain(signal.shape, d.strength, d.extra)
    elif d.kind == "noise":
        sigma = d.strength
    elif d.kind == "ghosting":
        ghost = (d.strength, int(d.extra), subject.spacing[1])
    elif d.kind == "fat_suppression":
        signal = np.clip(signal - d.strength * subject.fat_fraction, 0, None).astype(np.float32)
    image = acquire(signal, field, sigma, spec.intensity_scale, rng, ghost)
    return dataclasses.replace(subject, image=image, signal=signal, bias=field)


def _kept_columns(subject, side: str, share: float) -> slice:
    """The columns left after cutting the outer ``share`` of ``side``'s leg width (from its tissue)."""
    on_side = leg_columns(subject, side) & (subject.tissue > 0).any(axis=(0, 1))
    cols = np.flatnonzero(on_side)
    if cols.size == 0:
        raise FilterNetError(f"{subject.name}: no {side} leg found to cut the field of view through")
    width = cols[-1] - cols[0] + 1
    cut = max(1, int(round(share * width)))
    return slice(cols[0] + cut, None) if side == "R" else slice(0, cols[-1] + 1 - cut)


def degradations_csv(specs: list[SubjectSpec], plan: dict[str, Degradation]) -> str:
    """``degradations.csv``: ``subject, degradation, strength, side, extra, description`` (``none`` when clean)."""
    import csv
    import io

    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["subject", "degradation", "strength", "side", "extra", "description"])
    for spec in specs:
        d = plan.get(spec.name)
        if d is None:
            writer.writerow([spec.name, "none", "", "", "", "clean"])
        else:
            writer.writerow([spec.name, d.kind, round(d.strength, 4), d.side, round(d.extra, 4), d.describe()])
    return buf.getvalue()
