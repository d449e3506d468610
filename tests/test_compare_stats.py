"""The statistics of ``filternet compare`` on simulated cohorts with a known effect.

Every simulation is seeded and vectorised (thousands of cohorts in one call of the production functions
:func:`row_statistics`, :func:`holm`, :func:`run_to_run_margin` and :func:`judge`). Tolerances are three
binomial standard errors of the simulated rate, ``3 sqrt(q (1 - q) / N)`` around the rate q the theory
gives, never tuned to the outcome.

Simulation model (one metric, e.g. Dice in percent points): subject s, model m, training repeat r,
``value = mu_s + effect [m = candidate] + tau_{s,m} + run_{m,r} + noise_{s,m,r}`` with normal terms.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps

from nnunet_filternet.compare.stats import (
    holm,
    judge,
    mean_difference_interval,
    row_statistics,
    run_to_run_margin,
    signed_rank_p,
)

ALPHA = 0.05


def _upper(q: float, n: int) -> float:
    """Largest rate consistent with a true rate q over n draws (3 binomial standard errors above)."""
    return q + 3 * math.sqrt(q * (1 - q) / n)


def simulate(rng, shape, n_subjects, k, effect=0.0, sd_subject_model=2.0, sd_run=0.0, sd_noise=1.0):
    """Values (..., k, n) of the reference and the candidate for cohorts of the given leading shape."""
    mu = rng.normal(80.0, 8.0, (*shape, 1, n_subjects))  # shared by both models: the pairing removes it

    def model(shift):
        tau = rng.normal(0.0, sd_subject_model, (*shape, 1, n_subjects))
        run = rng.normal(0.0, sd_run, (*shape, k, 1))
        return mu + shift + tau + run + rng.normal(0.0, sd_noise, (*shape, k, n_subjects))

    return model(0.0), model(effect)


def decisions(reference, candidate, higher_is_better=True, single_run=False):
    """The verdict codes of the production rule on simulated rows (..., m, k, n); Holm over the m rows."""
    st = row_statistics(reference, candidate, 1 - ALPHA)
    k_r, k_c = reference.shape[-2], candidate.shape[-2]
    margin = np.full(st.difference.shape, np.nan)
    if not single_run:
        margin = run_to_run_margin(st.repeat_sd_reference, k_r, st.repeat_sd_candidate, k_c, ALPHA)
    p_holm = holm(st.p)
    return judge(st.difference, st.ci_low, st.ci_high, p_holm, margin, ALPHA, higher_is_better)


def test_signed_rank_test_keeps_its_level_under_no_effect():
    rng = np.random.default_rng(11)
    n_cohorts = 4000
    for differences in (rng.normal(0, 3, (n_cohorts, 12)), rng.standard_t(3, (n_cohorts, 12))):
        rate = np.mean(signed_rank_p(differences) < ALPHA)
        assert rate <= _upper(ALPHA, n_cohorts), rate


def test_signed_rank_p_is_scipys_wilcoxon():
    """scipy.stats.wilcoxon (method "auto") is the oracle, with ties and zeros (its slow permutation: n <= 9)."""
    rng = np.random.default_rng(10)
    for n in (*range(2, 10), 14, 16, 30, 60):
        for d in (rng.integers(-3, 4, n).astype(float), rng.normal(size=n)):
            for zero_method in ("pratt", "wilcox"):
                if np.count_nonzero(d) == 0:
                    continue
                expected = sps.wilcoxon(d, zero_method=zero_method, method="auto").pvalue
                assert signed_rank_p(d, zero_method=zero_method) == pytest.approx(expected, rel=1e-12), (d, zero_method)
    # filternet compare's zeros are Pratt's (ranked, counted for neither sign), not scipy's default (dropped)
    with_zeros = np.array([0.0, 0.0, 1.0, 2.0, 3.0, 4.0, 5.0, -2.5, -0.5])
    assert signed_rank_p(with_zeros) == pytest.approx(sps.wilcoxon(with_zeros, zero_method="pratt").pvalue)
    assert signed_rank_p(with_zeros) != pytest.approx(sps.wilcoxon(with_zeros).pvalue)
    # the exact test: 6 positive differences without ties give p = 2 / 2^6
    assert signed_rank_p(np.arange(1.0, 7.0)) == pytest.approx(2 / 64)
    # round-off does not break ties: these differences are equal in exact arithmetic
    tied = np.array([0.1 + 0.2, 0.3, -0.3, 0.5, 0.7, 0.9])
    assert signed_rank_p(tied) == pytest.approx(sps.wilcoxon(np.round(tied, 9), zero_method="pratt").pvalue)
    assert signed_rank_p(tied) != pytest.approx(sps.wilcoxon(tied, zero_method="pratt").pvalue)
    assert math.isnan(signed_rank_p(np.zeros(5))) and math.isnan(signed_rank_p(np.ones(1)))


def test_interval_is_the_student_t_interval_and_covers_at_its_level():
    d = np.array([1.0, 3.0, 2.0, 6.0, -1.0])
    mean, low, high = mean_difference_interval(d, 0.95)
    half = sps.t.ppf(0.975, 4) * np.std(d, ddof=1) / math.sqrt(5)
    assert (mean, low, high) == pytest.approx((2.2, 2.2 - half, 2.2 + half))
    rng = np.random.default_rng(12)
    n_cohorts, true_difference = 4000, 1.5
    for n in (6, 15):
        _, low, high = mean_difference_interval(rng.normal(true_difference, 4.0, (n_cohorts, n)), 0.95)
        coverage = np.mean((low <= true_difference) & (true_difference <= high))
        assert abs(coverage - 0.95) <= 3 * math.sqrt(0.95 * 0.05 / n_cohorts), (n, coverage)


def test_holm_by_hand():
    p = [0.01, 0.04, 0.03, float("nan"), 0.005]
    # m = 4 tested: sorted 0.005, 0.01, 0.03, 0.04 -> 4x, 3x, 2x, 1x -> 0.02, 0.03, 0.06, 0.04 -> running max
    assert holm(p) == pytest.approx([0.03, 0.06, 0.06, float("nan"), 0.02], nan_ok=True)
    assert holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])
    assert holm(np.array([[0.01, 0.02], [0.04, 0.001]])) == pytest.approx(np.array([[0.02, 0.02], [0.04, 0.002]]))


def test_no_effect_no_run_noise_keeps_the_family_wise_error_rate():
    """18 rows (6 compartments x 3 metrics), all without effect: Holm keeps P(any verdict) <= alpha."""
    rng = np.random.default_rng(13)
    n_families, m = 2000, 18
    ref, cand = simulate(rng, (n_families, m), n_subjects=12, k=2)
    codes = decisions(ref, cand)
    family_error = np.mean(np.any(codes != 0, axis=-1))
    assert family_error <= _upper(ALPHA, n_families), family_error
    # without Holm the same data declare a difference in most families (so the assertion above can fail)
    st = row_statistics(ref, cand, 1 - ALPHA)
    assert np.mean(np.any(st.p < ALPHA, axis=-1)) > 0.3


def test_run_to_run_noise_alone_is_not_a_difference():
    """Each training run shifts every subject alike: the subject-level test sees it, the run margin stops it."""
    rng = np.random.default_rng(14)
    n_rows = 4000
    for k in (2, 3):
        ref, cand = simulate(rng, (n_rows, 1), n_subjects=20, k=k, sd_subject_model=0.5, sd_run=2.0, sd_noise=0.5)
        rate = np.mean(decisions(ref, cand) != 0)
        assert rate <= _upper(ALPHA, n_rows), (k, rate)
        # the same rows judged as single runs (no margin) are "different" most of the time
        assert np.mean(decisions(ref, cand, single_run=True) != 0) > 0.5


def test_welch_margin_by_hand():
    # sd 1 and 2 over 3 repeats each: se^2 = 1/3 + 4/3, nu = se^4 / ((1/3)^2/2 + (4/3)^2/2)
    se2 = 5 / 3
    nu = se2**2 / ((1 / 3) ** 2 / 2 + (4 / 3) ** 2 / 2)
    assert run_to_run_margin(1.0, 3, 2.0, 3, 0.05) == pytest.approx(sps.t.ppf(0.975, nu) * math.sqrt(se2))
    assert run_to_run_margin(0.0, 2, 0.0, 2, 0.05) == 0.0


def test_a_clear_effect_is_found_in_its_direction():
    """Effect 10 points against a subject-level SD of the differences of ~2.9 (n = 12, 3 repeats each).

    Lower bound on the power of one row, from the rule's three conditions (union bound): the exact signed-rank
    test rejects at alpha / m (hence after Holm) whenever all 12 differences are positive (p = 2 / 2^12);
    the t interval excludes 0 unless a noncentral t falls below its quantile; |difference| > margin unless the
    difference falls below half the effect or the margin exceeds it (margin <= t_{0.975, 2} x the run-level
    standard error: sd_r^2 + sd_c^2 is sigma^2 / (k - 1) times a chi-square with 2 (k - 1) degrees of freedom).
    """
    rng = np.random.default_rng(15)
    n_families, m, n, k, effect = 60, 18, 12, 3, 10.0
    sd_d = math.sqrt(2 * 2.0**2 + 2 * 1.0**2 / k)  # subject x model (2) and noise (1, averaged over k repeats)
    sd_cohort2 = 1.0**2 / n  # variance of one repeat's cohort mean (no run shift)
    miss = (
        n * sps.norm.cdf(-effect / sd_d)
        + sps.nct.cdf(sps.t.ppf(1 - ALPHA / 2, n - 1), n - 1, effect / (sd_d / math.sqrt(n)))
        + sps.norm.cdf(-effect / 2 / (sd_d / math.sqrt(n)))
        + sps.chi2.sf((effect / 2 / sps.t.ppf(1 - ALPHA / 2, k - 1)) ** 2 * k * (k - 1) / sd_cohort2, 2 * (k - 1))
    )
    power, n_rows = 1 - miss, n_families * m
    lowest = power - 3 * math.sqrt(power * (1 - power) / n_rows)
    ref, cand = simulate(rng, (n_families, m), n_subjects=n, k=k, effect=effect)
    assert np.mean(decisions(ref, cand) == 1) >= lowest  # higher is better: candidate better
    assert np.mean(decisions(ref, cand, higher_is_better=False) == -1) >= lowest  # a distance: worse
    assert np.mean(decisions(cand, ref) == -1) >= lowest
    assert np.mean(decisions(ref, cand, single_run=True) == 1) >= lowest


def test_documented_simulations_run():
    """docs/evaluation.md's tables come from these functions (small runs here; the docs give the full commands)."""
    from nnunet_filternet.compare.simulation import interval_coverage, margin_false_positive_rate

    t_cov, boot_cov = interval_coverage(8, n_cohorts=400, n_boot=400)
    assert abs(t_cov - 0.95) <= 3 * math.sqrt(0.95 * 0.05 / 400)
    documented = 0.882  # bootstrap, 8 subjects, normal differences, 2,000 cohorts: both rates have binomial error
    assert abs(boot_cov - documented) <= 3 * math.sqrt(documented * (1 - documented) * (1 / 400 + 1 / 2000))
    welch, plain = margin_false_positive_rate(2, n_draws=20_000)
    assert welch <= _upper(ALPHA, 20_000) and plain > 0.2
