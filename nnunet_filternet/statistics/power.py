"""Power of the paired t over folds: what a design (subjects, folds, repeats) can resolve.

Variance model of one fold's mean difference D_f (candidate - reference, in the metric's unit; every
component is independent and normal):

- ``split_sd``: the split's own effect on the difference, shared by every repeat of that fold (a split that
  favours one model whatever the seed);
- ``subject_sd``: the per-subject difference around its fold's mean, averaged over the fold's
  ``subjects_per_fold`` subjects;
- ``run_sd`` (per model): the SD of one fold run's mean across repeats, i.e. the training luck of one
  network; each model's ``repeats`` of a fold are averaged.

``Var(D_f) = split_sd^2 + subject_sd^2 / subjects_per_fold + (run_sd_ref^2 + run_sd_cand^2) / repeats``
(:func:`fold_mean_sd`). The test is a one-sample t on the F fold means, so the difference detected with
power 1 - beta at two-sided level alpha is ``delta = lambda * fold_mean_sd / sqrt(F)``, where the
noncentrality ``lambda`` solves ``P(|T'| > t_{1 - alpha/2, F - 1}) = 1 - beta`` for T' noncentral t on
F - 1 degrees of freedom (:func:`detectable_difference`; :func:`scipy.stats.nct`, no normal approximation).

``filternet compare`` prints these components from a pilot's repeats (run SD per model, subject SD, SD of
the fold means, and the split SD they imply); this module turns them into a design::

    python -m nnunet_filternet.statistics.power --run-sd 9 --subject-sd 9.5 --subjects 8 16 40 \\
        --folds 4 8 --repeats 1 2 3 --target 3

The subject term does not shrink with repeats here (its part that is training noise is counted in the run SD
too), so the predictions err on the safe side when a pilot's components are plugged in.
"""

from __future__ import annotations

import argparse
import functools
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import optimize, stats

from nnunet_filternet.statistics import ALPHA, POWER


def fold_mean_sd(
    run_sd: float,
    subject_sd: float,
    split_sd: float = 0.0,
    subjects_per_fold: float = 1.0,
    repeats: int = 1,
    run_sd_candidate: float | None = None,
):
    """SD of one fold's mean difference for a design (module docstring).

    Args:
        run_sd: SD of a fold run's mean across repeats (training luck of one network), the reference's, and
            the candidate's too unless ``run_sd_candidate`` is given.
        subject_sd: SD of a per-subject difference around its fold's mean.
        split_sd: SD of the split's own effect on a fold's difference (persistent across repeats).
        subjects_per_fold: subjects per fold (total subjects / folds).
        repeats: repeats of each model (the whole cross-validation trained again).
        run_sd_candidate: the candidate's run SD (default: ``run_sd``).

    Returns:
        The SD in the components' unit (arrays broadcast).
    """
    cand = run_sd if run_sd_candidate is None else run_sd_candidate
    ref, cand, subject, split = (np.asarray(x, dtype=np.float64) for x in (run_sd, cand, subject_sd, split_sd))
    per_fold, repeats = np.asarray(subjects_per_fold, dtype=np.float64), np.asarray(repeats, dtype=np.float64)
    return np.sqrt(split**2 + subject**2 / per_fold + (ref**2 + cand**2) / repeats)


def implied_split_sd(
    fold_sd: float,
    subject_sd: float,
    subjects_per_fold: float,
    run_sd_reference: float,
    run_sd_candidate: float,
    repeats_reference: int,
    repeats_candidate: int,
) -> float:
    """The split SD that a study's measured components imply: the part of the fold means' variance left over.

    ``split^2 = fold_sd^2 - subject_sd^2 / subjects_per_fold - run_ref^2 / R_ref - run_cand^2 / R_cand``, clipped
    at 0 (each term is an estimate; with few folds the difference is rough). NaN where a term is NaN (a run SD
    with one repeat: run and split noise are then not separated).
    """
    rest = (
        fold_sd**2
        - subject_sd**2 / subjects_per_fold
        - run_sd_reference**2 / repeats_reference
        - run_sd_candidate**2 / repeats_candidate
    )
    return math.nan if math.isnan(rest) else math.sqrt(max(rest, 0.0))


def power_of_t(noncentrality, df, alpha: float = ALPHA):
    """Power of the two-sided one-sample t at level alpha, on ``df`` degrees of freedom, for a noncentrality."""
    critical = stats.t.ppf(1 - alpha / 2, df)
    # P(T'(nc) < -c) = P(T'(-nc) > c): scipy's nct.cdf far in the lower tail can return NaN, its sf does not
    return stats.nct.sf(critical, df, noncentrality) + stats.nct.sf(critical, df, -np.asarray(noncentrality))


@functools.lru_cache(maxsize=1024)
def noncentrality(df: int, alpha: float = ALPHA, power: float = POWER) -> float:
    """The noncentrality lambda at which the two-sided t on ``df`` degrees of freedom has the given power."""
    if df < 1:
        return math.nan
    high = 8.0
    while power_of_t(high, df, alpha) < power:  # 1 degree of freedom needs about 17 at 80 %
        high *= 2
    return float(optimize.brentq(lambda nc: power_of_t(nc, df, alpha) - power, 0.0, high, xtol=1e-10))


def detectable_difference(fold_sd, folds, alpha: float = ALPHA, power: float = POWER):
    """The true difference that the paired t over ``folds`` fold means detects with ``power`` at ``alpha``.

    Args:
        fold_sd: SD of one fold's mean difference (measured: the SD of a study's fold means; planned:
            :func:`fold_mean_sd`).
        folds: F, the number of fold means (>= 2).
        alpha: two-sided level of the test (unadjusted: Holm over m rows needs more).
        power: the probability of p < alpha at that difference.

    Returns:
        ``lambda(F - 1) * fold_sd / sqrt(F)`` in the unit of ``fold_sd`` (arrays broadcast); NaN with F < 2.
    """
    sd, f = np.broadcast_arrays(np.asarray(fold_sd, dtype=np.float64), np.asarray(folds))
    out = np.full(sd.shape, np.nan)
    for k in np.unique(f[np.isfinite(f)]) if f.size else []:
        if k >= 2:
            mask = f == k
            out[mask] = noncentrality(int(k) - 1, alpha, power) * sd[mask] / math.sqrt(k)
    return out if out.ndim else float(out)


@dataclass(frozen=True)
class Design:
    """One design and what it resolves: ``subjects`` split into ``folds``, each model trained ``repeats`` times."""

    subjects: int
    folds: int
    repeats: int
    fold_sd: float
    detectable: float

    @property
    def trainings(self) -> int:
        """Trainings per model: folds x repeats."""
        return self.folds * self.repeats


def designs(
    run_sd: float,
    subject_sd: float,
    split_sd: float = 0.0,
    subjects: Sequence[int] = (8, 16, 40),
    folds: Sequence[int] = (4, 8),
    repeats: Sequence[int] = (1, 2, 3),
    run_sd_candidate: float | None = None,
    alpha: float = ALPHA,
    power: float = POWER,
) -> list[Design]:
    """Every design of the grid with at least one subject per fold, and the difference it detects."""
    out = []
    for n in subjects:
        for f in folds:
            if not 2 <= f <= n:
                continue
            for r in repeats:
                sd = float(fold_mean_sd(run_sd, subject_sd, split_sd, n / f, r, run_sd_candidate))
                out.append(Design(n, f, r, sd, float(detectable_difference(sd, f, alpha, power))))
    return out


def cheapest(designs_: Sequence[Design], target: float) -> Design | None:
    """The design of fewest trainings (then fewest subjects) that detects ``target``; None if none does."""
    found = [d for d in designs_ if d.detectable <= target]
    return min(found, key=lambda d: (d.trainings, d.subjects, d.repeats)) if found else None


def design_markdown(designs_: Sequence[Design], target: float | None = None, power: float = POWER) -> str:
    """The designs as a Markdown table, and (with a target) the sentence a lab needs."""
    lines = [
        f"| subjects | folds | repeats | trainings per model | SD of a fold mean | detectable ({power:.0%} power) |",
        "|---|---|---|---|---|---|",
    ]
    for d in designs_:
        lines.append(
            f"| {d.subjects} | {d.folds} | {d.repeats} | {d.trainings} | {d.fold_sd:.2f} | {d.detectable:.2f} |"
        )
    if target is not None:
        best = cheapest(designs_, target)
        if best is None:
            lines.append(f"\nNo design of this grid resolves {target:g} points; the smallest is "
                         f"{min(d.detectable for d in designs_):.2f}.")  # fmt: skip
        else:
            lines.append(
                f"\nTo resolve {target:g} points you need {best.subjects} subjects in {best.folds} folds and "
                f"{best.repeats} repeat(s) of each model ({best.trainings} trainings per model)."
            )
    return "\n".join(lines)


def _non_negative(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text!r}") from None
    if not (math.isfinite(value) and value >= 0):
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text!r}")
    return value


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m nnunet_filternet.statistics.power``: a design table from variance components."""
    parser = argparse.ArgumentParser(
        prog="python -m nnunet_filternet.statistics.power",
        description="Detectable difference of the paired t over folds for designs (subjects, folds, repeats), from "
        "the variance components filternet compare prints for a pilot.",
    )
    parser.add_argument("--run-sd", type=_non_negative, required=True, help="run SD of a fold run (the reference's)")
    parser.add_argument("--run-sd-candidate", type=_non_negative, default=None, help="the candidate's (default: same)")
    parser.add_argument("--subject-sd", type=_non_negative, required=True, help="within-fold SD of subject differences")
    parser.add_argument("--split-sd", type=_non_negative, default=0.0, help="split effect SD (default: 0)")
    parser.add_argument("--subjects", type=_count, nargs="+", default=[8, 16, 40])
    parser.add_argument("--folds", type=_count, nargs="+", default=[4, 8])
    parser.add_argument("--repeats", type=_count, nargs="+", default=[1, 2, 3])
    parser.add_argument("--target", type=_non_negative, default=None, help="difference to resolve (the sentence)")
    parser.add_argument("--alpha", type=float, default=ALPHA)
    args = parser.parse_args(argv)
    if not 0 < args.alpha < 1:
        parser.error(f"--alpha: expected a number between 0 and 1, got {args.alpha}")
    grid = designs(
        args.run_sd, args.subject_sd, args.split_sd, args.subjects, args.folds, args.repeats, args.run_sd_candidate,
        args.alpha,
    )  # fmt: skip
    if not grid:
        parser.error("no design: expected at least 2 folds and at least as many subjects as folds")
    print(design_markdown(grid, args.target))
    return 0


if __name__ == "__main__":
    sys.exit(main())
