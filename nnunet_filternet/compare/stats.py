"""The statistics of ``filternet compare``, vectorised over leading axes so that they can be simulated.

Every function takes paired per-subject values as arrays of shape ``(..., n_subjects)`` (or per-row
values of shape ``(..., n_rows)``) and returns one value per leading index, so a test can run thousands of
simulated cohorts in one call. Production code calls them with one cohort (1-D arrays).

- :func:`mean_difference_interval`: the mean paired difference and its t interval over subjects.
- :func:`signed_rank_p`: the two-sided Wilcoxon signed-rank p of the paired differences.
- :func:`holm`: Holm's step-down adjustment of a family of p values.
- :func:`run_to_run_margin`: the half-width of a Welch interval for the difference of two models'
  run-level cohort means, i.e. the smallest |difference| that repeats of the two trainings resolve.
- :func:`row_statistics`: all of the above but Holm for one compartment and metric, from values per repeat
  and subject; :func:`judge`: the verdict rule.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from scipy import stats

#: Differences are rounded to this many decimals (of the metric's unit: Dice percent points, mm) before the
#: signed-rank test, so that ties and zeros that floating-point round-off split apart are recognised.
ROUND_DECIMALS = 9


def mean_difference_interval(differences, level: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean of paired differences and its two-sided t interval (Student, n - 1 degrees of freedom).

    Args:
        differences: (..., n) candidate - reference per subject, all finite.
        level: confidence level, e.g. 0.95.

    Returns:
        (mean, low, high), each of shape (...); low and high are NaN where n < 2 (and equal to the mean where
        all differences are equal).
    """
    d = np.asarray(differences, dtype=np.float64)
    mean = d.mean(axis=-1) if d.shape[-1] else np.full(d.shape[:-1], np.nan)
    if d.shape[-1] < 2:
        nan = np.full(d.shape[:-1], np.nan)
        return mean, nan, nan.copy()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # zero variance: scipy warns and returns NaN bounds
        interval = stats.ttest_1samp(d, 0.0, axis=-1).confidence_interval(level)
    low, high = np.asarray(interval.low, dtype=np.float64), np.asarray(interval.high, dtype=np.float64)
    constant = np.all(d == d[..., :1], axis=-1)
    return mean, np.where(constant, mean, low), np.where(constant, mean, high)


#: scipy's ``method="auto"`` limits: the exact null distribution up to this many pairs (without ties or zeros)...
EXACT_MAX_N = 50
#: ... and, with ties or zeros, an exact permutation over all 2^n sign flips up to this many.
PERMUTATION_MAX_N = 13


def _signed_rank_sum(zero_method: str):
    """Vectorised Wilcoxon statistic (sum of the ranks of the positive differences) for permutation_test."""

    def statistic(d, axis=-1):
        d = np.moveaxis(d, axis, -1)
        if zero_method == "wilcox":  # zeros are dropped: the others are ranked among themselves
            ranks = np.nan_to_num(stats.rankdata(np.where(d == 0, np.nan, np.abs(d)), axis=-1, nan_policy="omit"))
        else:  # pratt: zeros are ranked with the others but count for neither sign
            ranks = stats.rankdata(np.abs(d), axis=-1)
        return np.sum(ranks * (d > 0), axis=-1)

    return statistic


def _has_ties_or_zeros(d: np.ndarray) -> np.ndarray:
    magnitudes = np.sort(np.abs(d), axis=-1)
    return np.any(d == 0, axis=-1) | np.any(np.diff(magnitudes, axis=-1) == 0, axis=-1)


def signed_rank_p(differences, zero_method: str = "pratt", decimals: int | None = ROUND_DECIMALS) -> np.ndarray:
    """Two-sided p of the Wilcoxon signed-rank test that the differences are symmetric about 0.

    The test and its choice of null distribution are :func:`scipy.stats.wilcoxon`'s with ``method="auto"``:
    the exact distribution for n <= 50 without ties or zeros; with ties or zeros, an exact permutation over
    all 2^n sign flips for n <= 13 (run here through :func:`scipy.stats.permutation_test` with a vectorised
    statistic: scipy's own path evaluates the flips one at a time, seconds per test), otherwise the normal
    approximation with scipy's tie and zero corrections (no continuity correction); for n > 50 the normal
    approximation. Each cohort (leading index) gets its own choice.

    Args:
        differences: (..., n) candidate - reference per subject, all finite.
        zero_method: scipy's ``"pratt"`` (zero differences are ranked with the others but count for neither
            sign; ``filternet compare``) or ``"wilcox"`` (zeros are dropped; scipy's default).
        decimals: round the differences to this many decimals first, so that ties and zeros that
            floating-point round-off split apart are recognised (None: no rounding).

    Returns:
        (...) p values; NaN where n < 2 or every difference is 0 (nothing to test).
    """
    d = np.asarray(differences, dtype=np.float64)
    if decimals is not None:
        d = np.round(d, decimals)
    n = d.shape[-1]
    p = np.full(d.shape[:-1], np.nan)
    if n < 2:
        return p
    tied = _has_ties_or_zeros(d)
    groups = (
        (~tied, "exact" if n <= EXACT_MAX_N else "asymptotic"),
        (tied, "permutation" if n <= PERMUTATION_MAX_N else "asymptotic"),
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        warnings.simplefilter("ignore", UserWarning)
        for mask, method in groups:
            if not np.any(mask):
                continue
            if method == "permutation":
                result = stats.permutation_test(
                    (d[mask],), _signed_rank_sum(zero_method), permutation_type="samples", vectorized=True,
                    n_resamples=np.inf, alternative="two-sided", axis=-1,
                )  # fmt: skip
            else:
                result = stats.wilcoxon(d[mask], zero_method=zero_method, method=method, axis=-1)
            p[mask] = result.pvalue
    return np.where(np.all(d == 0, axis=-1), np.nan, p)


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


def run_to_run_margin(sd_reference, k_reference, sd_candidate, k_candidate, alpha: float) -> np.ndarray:
    """Half-width of the Welch (1 - alpha) interval for the difference of the two models' run-level means.

    Each training repeat r of a model gives one cohort mean; ``sd_*`` is their standard deviation over the
    ``k_*`` repeats (ddof 1). The difference of the models' means over repeats has run-to-run standard error
    ``se = sqrt(sd_r^2 / k_r + sd_c^2 / k_c)``, and the margin is ``t_{1 - alpha/2, nu} * se`` with the
    Welch-Satterthwaite degrees of freedom
    ``nu = se^4 / ((sd_r^2 / k_r)^2 / (k_r - 1) + (sd_c^2 / k_c)^2 / (k_c - 1))``. A difference larger than
    the margin is one that the repeats' own scatter would produce with probability below alpha (Welch's
    two-sample t-test on the run-level means).

    Args:
        sd_reference, sd_candidate: (...) standard deviations over repeats of the cohort mean.
        k_reference, k_candidate: numbers of repeats (each >= 2).
        alpha: two-sided level.

    Returns:
        (...) margins in the metric's unit; 0 where both standard deviations are 0 (identical repeats).
    """
    var_r = np.asarray(sd_reference, dtype=np.float64) ** 2 / k_reference
    var_c = np.asarray(sd_candidate, dtype=np.float64) ** 2 / k_candidate
    se2 = var_r + var_c
    with np.errstate(divide="ignore", invalid="ignore"):
        nu = se2**2 / (var_r**2 / (k_reference - 1) + var_c**2 / (k_candidate - 1))
        margin = stats.t.ppf(1 - alpha / 2, nu) * np.sqrt(se2)
    return np.where(se2 == 0, 0.0, margin)


@dataclass(frozen=True)
class RowStatistics:
    """Statistics of one compartment and metric (arrays of shape (...), in the metric's unit).

    Attributes:
        reference_mean, candidate_mean: mean over subjects of the subjects' means over repeats.
        difference, ci_low, ci_high: mean of candidate - reference over subjects, and its t interval.
        p: Wilcoxon signed-rank p of the per-subject differences.
        repeat_sd_reference, repeat_sd_candidate: SD (ddof 1) over repeats of the cohort mean; NaN with one repeat.
    """

    reference_mean: np.ndarray
    candidate_mean: np.ndarray
    difference: np.ndarray
    ci_low: np.ndarray
    ci_high: np.ndarray
    p: np.ndarray
    repeat_sd_reference: np.ndarray
    repeat_sd_candidate: np.ndarray


def _repeat_sd(values: np.ndarray) -> np.ndarray:
    """(..., k, n) -> (...): SD over the k repeats of the mean over the n subjects (NaN left out)."""
    if values.shape[-2] < 2:
        return np.full(values.shape[:-2], np.nan)
    return np.nanmean(values, axis=-1).std(axis=-1, ddof=1)


def row_statistics(reference, candidate, level: float) -> RowStatistics:
    """Everything but Holm's adjustment for one compartment and metric.

    Args:
        reference: (..., k_reference, n) values per repeat and subject, finite or NaN (a repeat without a value
            for that subject); the same n subjects, in the same order, as ``candidate``.
        candidate: (..., k_candidate, n).
        level: confidence level of the interval.

    A subject's value is its mean over repeats (NaN left out); every subject must have one.
    """
    ref, cand = np.asarray(reference, dtype=np.float64), np.asarray(candidate, dtype=np.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # empty cohorts: NaN results
        a, b = np.nanmean(ref, axis=-2), np.nanmean(cand, axis=-2)  # (..., n)
        difference, low, high = mean_difference_interval(b - a, level)
        return RowStatistics(
            reference_mean=a.mean(axis=-1),
            candidate_mean=b.mean(axis=-1),
            difference=difference,
            ci_low=low,
            ci_high=high,
            p=signed_rank_p(b - a),
            repeat_sd_reference=_repeat_sd(ref),
            repeat_sd_candidate=_repeat_sd(cand),
        )


def judge(difference, ci_low, ci_high, p_holm, margin, alpha: float, higher_is_better: bool) -> np.ndarray:
    """The verdict rule: +1 where the candidate is better, -1 where it is worse, 0 where no difference is detected.

    A difference is declared where ``p_holm < alpha``, the interval excludes 0 and ``|difference| > margin``;
    ``margin`` NaN means a single run (nothing bounds run-to-run noise; the condition is not applied). Its
    direction is the sign of the difference, reversed for metrics where lower is better (distances).
    """
    difference, margin = np.asarray(difference, dtype=np.float64), np.asarray(margin, dtype=np.float64)
    decided = (np.asarray(p_holm) < alpha) & ((np.asarray(ci_low) > 0) | (np.asarray(ci_high) < 0))
    decided &= np.isnan(margin) | (np.abs(difference) > margin)
    sign = np.sign(difference) * (1 if higher_is_better else -1)
    return np.where(decided, sign, 0).astype(int)
