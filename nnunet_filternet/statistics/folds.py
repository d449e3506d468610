"""The paired t over folds, and the variance components behind it, vectorised over leading axes.

Data of one row (a compartment and a metric): per model a value per training repeat r and subject s, arrays
of shape ``(..., R, n)``, and the fold of each subject (the fold whose network predicted it, the same for both
models and every repeat), as integer codes ``0 .. F - 1`` of shape ``(n,)``. Every function returns one value
per leading index, so a test can run thousands of simulated studies in one call; production code passes
one study (2-D arrays).

The rule (:func:`compare_over_folds`):

1. each model's value of a subject is its mean over the model's repeats, NaN left out and +inf kept;
2. a subject is used where both models' values are finite (NaN: compartment absent; +inf: missed);
3. d_s = candidate - reference per used subject, and its mean D_f per fold (folds without a used subject
   drop out, leaving F folds);
4. the mean of the F fold means, its Student t interval on F - 1 degrees of freedom and the two-sided p.

Each fold's network is trained once per repeat, so its training luck is shared by the fold's subjects and
the fold means, not the subjects, are the independent units. With one subject per fold this is the ordinary
paired t over subjects; without fold information (every subject its own fold) it is that test too, and then
valid only if no two subjects share a training run.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from scipy import stats

from nnunet_filternet.statistics import ALPHA, POWER
from nnunet_filternet.statistics.power import detectable_difference


def fold_codes(labels) -> tuple[np.ndarray, list]:
    """Fold labels of n subjects -> (codes (n,) in ``0 .. F - 1``, the F labels in sorted order)."""
    names = sorted(set(labels), key=lambda v: (str(type(v)), v))
    index = {name: k for k, name in enumerate(names)}
    return np.asarray([index[v] for v in labels], dtype=np.int64), names


def _one_hot(codes, n_folds: int | None = None) -> np.ndarray:
    codes = np.asarray(codes, dtype=np.int64)
    n_folds = int(codes.max()) + 1 if n_folds is None else n_folds
    return (codes[:, None] == np.arange(n_folds)).astype(np.float64)


def fold_means(values, codes, n_folds: int | None = None) -> np.ndarray:
    """Mean per fold of finite values; non-finite ones (NaN, inf) are left out.

    Args:
        values: (..., n) one value per subject.
        codes: (n,) fold of each subject, ``0 .. F - 1``.
        n_folds: F (default: the largest code + 1).

    Returns:
        (..., F) fold means, NaN for a fold without a finite value.
    """
    v = np.asarray(values, dtype=np.float64)
    one_hot = _one_hot(codes, n_folds)
    present = np.isfinite(v)
    counts = present.astype(np.float64) @ one_hot
    with np.errstate(invalid="ignore", divide="ignore"):
        return (np.where(present, v, 0.0) @ one_hot) / counts


@dataclass(frozen=True)
class FoldT:
    """The t over fold means (arrays of shape (...)).

    Attributes:
        mean: mean of the fold means.
        ci_low, ci_high: its Student t interval on F - 1 degrees of freedom (NaN with F < 2; the mean itself
            when every fold mean is the same).
        p: two-sided p that the mean is 0 (NaN with F < 2, or when every fold mean is exactly 0).
        n_folds: F, folds with a value.
        sd: SD (ddof 1) of the fold means (NaN with F < 2).
    """

    mean: np.ndarray
    ci_low: np.ndarray
    ci_high: np.ndarray
    p: np.ndarray
    n_folds: np.ndarray
    sd: np.ndarray


def fold_t(means, level: float = 1 - ALPHA) -> FoldT:
    """One-sample t of fold means against 0.

    Args:
        means: (..., F) fold means; NaN marks a fold without subjects (left out).
        level: confidence level of the interval.
    """
    m = np.asarray(means, dtype=np.float64)
    present = ~np.isnan(m)
    k = present.sum(axis=-1)
    with warnings.catch_warnings(), np.errstate(invalid="ignore", divide="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        mean = np.nanmean(m, axis=-1)
        sd = np.where(k >= 2, np.nanstd(m, axis=-1, ddof=1), np.nan)
        se = sd / np.sqrt(k)
        df = np.where(k >= 2, k - 1, np.nan)
        t = np.where(se > 0, mean / se, np.where(mean == 0, np.nan, np.sign(mean) * np.inf))
        p = 2 * stats.t.sf(np.abs(t), df)
        half = stats.t.ppf(0.5 + level / 2, df) * se
    low, high = np.where(se == 0, mean, mean - half), np.where(se == 0, mean, mean + half)
    return FoldT(mean=mean, ci_low=low, ci_high=high, p=p, n_folds=k, sd=sd)


def run_sd(values, codes, used=None, n_folds: int | None = None) -> np.ndarray:
    """SD of one fold run's mean across repeats, pooled within folds: F x (R - 1) degrees of freedom.

    A fold run is one fold of one repeat (one trained network); its mean is over the fold's used subjects.
    Deviations from the fold's mean over repeats are pooled over folds, so the split's own effect (which every
    repeat shares) is not counted.

    Args:
        values: (..., R, n) one model's values per repeat and subject.
        codes: (n,) fold of each subject.
        used: (..., n) subjects to count (default: all); the others, and non-finite values, are left out.
        n_folds: F (default: the largest code + 1).

    Returns:
        (...) the pooled SD in the values' unit; NaN with one repeat (no degrees of freedom).
    """
    v = np.asarray(values, dtype=np.float64)
    if used is not None:
        v = np.where(np.asarray(used)[..., None, :], v, np.nan)
    runs = fold_means(v, codes, n_folds)  # (..., R, F)
    with warnings.catch_warnings(), np.errstate(invalid="ignore", divide="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        centre = np.nanmean(runs, axis=-2, keepdims=True)
        ss = np.nansum((runs - centre) ** 2, axis=(-2, -1))
        counts = (~np.isnan(runs)).sum(axis=-2)
        df = np.clip(counts - 1, 0, None).sum(axis=-1)
        return np.where(df > 0, np.sqrt(ss / df), np.nan)


def subject_sd(differences, codes, n_folds: int | None = None) -> np.ndarray:
    """SD of the per-subject differences around their fold's mean, pooled over folds (n - F degrees of freedom).

    Args:
        differences: (..., n) per-subject differences; non-finite ones are left out.
        codes: (n,) fold of each subject.

    Returns:
        (...) the pooled within-fold SD; NaN without degrees of freedom (one subject per fold).
    """
    d = np.asarray(differences, dtype=np.float64)
    means = fold_means(d, codes, n_folds)
    present = np.isfinite(d)
    residual = np.where(present, d - np.take(means, np.asarray(codes), axis=-1), 0.0)
    df = present.sum(axis=-1) - (~np.isnan(means)).sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(df > 0, np.sqrt((residual**2).sum(axis=-1) / df), np.nan)


@dataclass(frozen=True)
class FoldComparison:
    """Everything but Holm's adjustment for one row (arrays of shape (...), in the values' unit).

    Attributes:
        reference_mean, candidate_mean: mean over folds of each model's fold means (over the used subjects;
            the mean over subjects when the folds hold equally many), so ``difference`` is their difference.
        difference, ci_low, ci_high, p, n_folds: :class:`FoldT` of the fold means of candidate - reference.
        n_subjects: subjects used (finite values for both models).
        fold_sd: SD of the fold means of the difference (F - 1 degrees of freedom).
        subject_sd: SD of the per-subject differences within folds (n - F degrees of freedom).
        run_sd_reference, run_sd_candidate: :func:`run_sd` of each model (NaN with one repeat).
        detectable_difference: the true difference this design detects with power :data:`POWER` at alpha
            (unadjusted), from ``fold_sd`` and F (:func:`~.power.detectable_difference`).
    """

    reference_mean: np.ndarray
    candidate_mean: np.ndarray
    difference: np.ndarray
    ci_low: np.ndarray
    ci_high: np.ndarray
    p: np.ndarray
    n_subjects: np.ndarray
    n_folds: np.ndarray
    fold_sd: np.ndarray
    subject_sd: np.ndarray
    run_sd_reference: np.ndarray
    run_sd_candidate: np.ndarray
    detectable_difference: np.ndarray


def subject_means(values) -> np.ndarray:
    """(..., R, n) -> (..., n): each subject's mean over repeats, NaN left out and +inf kept (all NaN: NaN)."""
    v = np.asarray(values, dtype=np.float64)
    present = ~np.isnan(v)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(present, v, 0.0).sum(axis=-2) / present.sum(axis=-2)


def compare_over_folds(reference, candidate, codes, alpha: float = ALPHA, power: float = POWER) -> FoldComparison:
    """The paired t over folds of one row (module docstring), with its diagnostics.

    Args:
        reference: (..., R_ref, n) the reference model's values per repeat and subject (NaN: no value).
        candidate: (..., R_cand, n) the candidate's, the same subjects in the same order.
        codes: (n,) fold of each subject, ``0 .. F - 1``.
        alpha: level of the interval (1 - alpha) and of the detectable difference.
        power: power of the detectable difference.
    """
    codes = np.asarray(codes, dtype=np.int64)
    n_folds = int(codes.max()) + 1 if codes.size else 0
    ref, cand = np.asarray(reference, dtype=np.float64), np.asarray(candidate, dtype=np.float64)
    a, b = subject_means(ref), subject_means(cand)
    used = np.isfinite(a) & np.isfinite(b)
    with np.errstate(invalid="ignore"):  # inf - inf where both models missed: left out anyway
        d = np.where(used, b - a, np.nan)
    if n_folds == 0:
        nan = np.full(d.shape[:-1], np.nan)
        zero = np.zeros(d.shape[:-1], dtype=np.int64)
        return FoldComparison(nan, nan, nan, nan, nan, nan, zero, zero, nan, nan, nan, nan, nan)
    test = fold_t(fold_means(d, codes, n_folds), 1 - alpha)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        ref_mean = np.nanmean(fold_means(np.where(used, a, np.nan), codes, n_folds), axis=-1)
        cand_mean = np.nanmean(fold_means(np.where(used, b, np.nan), codes, n_folds), axis=-1)
    return FoldComparison(
        reference_mean=ref_mean,
        candidate_mean=cand_mean,
        difference=test.mean,
        ci_low=test.ci_low,
        ci_high=test.ci_high,
        p=test.p,
        n_subjects=used.sum(axis=-1),
        n_folds=test.n_folds,
        fold_sd=test.sd,
        subject_sd=subject_sd(d, codes, n_folds),
        run_sd_reference=run_sd(ref, codes, used, n_folds),
        run_sd_candidate=run_sd(cand, codes, used, n_folds),
        detectable_difference=detectable_difference(test.sd, test.n_folds, alpha, power),
    )


def judge(p_holm, difference, alpha: float, higher_is_better: bool) -> np.ndarray:
    """+1 where the candidate is better, -1 where it is worse, 0 where no difference is detected.

    A difference is declared where ``p_holm < alpha`` (then the unadjusted t interval excludes 0 too); its
    direction is the sign of the difference, reversed for metrics where lower is better (distances).
    """
    decided = np.asarray(p_holm, dtype=np.float64) < alpha
    sign = np.sign(np.asarray(difference, dtype=np.float64)) * (1 if higher_is_better else -1)
    return np.where(decided, sign, 0).astype(int)
