"""The paired t over folds: by hand, on simulated studies (validity and power), and the design functions.

Every simulation is seeded and vectorised (thousands of studies in one call of the production functions).
Tolerances are three binomial standard errors of the simulated rate around the rate the theory gives, never
tuned to the outcome. The simulation model is :mod:`nnunet_filternet.statistics.simulation`'s.
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
from scipy import stats as sps

from nnunet_filternet.statistics import ALPHA
from nnunet_filternet.statistics.folds import (
    compare_over_folds,
    fold_means,
    fold_t,
    judge,
    run_sd,
    subject_sd,
)
from nnunet_filternet.statistics.multiple import holm
from nnunet_filternet.statistics.power import (
    designs,
    detectable_difference,
    fold_mean_sd,
    implied_split_sd,
    main,
    noncentrality,
    power_of_t,
)
from nnunet_filternet.statistics.simulation import Scenario, rejection_rate, simulate

DRAWS = 4000


def _upper(q: float, n: int) -> float:
    """Largest rate consistent with a true rate q over n draws (3 binomial standard errors above)."""
    return q + 3 * math.sqrt(q * (1 - q) / n)


# ---- by hand ------------------------------------------------------------------------------------------------


def test_fold_t_is_the_one_sample_t_of_the_fold_means():
    d = np.array([1.0, 3.0, 2.0, 6.0, -1.0, 4.0])  # subjects 0-5
    codes = np.array([0, 0, 1, 1, 2, 2])
    means = fold_means(d, codes)
    assert means == pytest.approx([2.0, 4.0, 1.5])
    t = fold_t(means, 0.95)
    oracle = sps.ttest_1samp(means, 0.0)
    low, high = oracle.confidence_interval(0.95)
    assert (t.mean, t.p, t.ci_low, t.ci_high, t.n_folds) == pytest.approx((2.5, oracle.pvalue, low, high, 3))
    # a fold without subjects drops out; NaN subjects are left out of their fold's mean
    d_missing = np.array([1.0, np.nan, 2.0, 6.0, np.nan, np.nan])
    assert fold_means(d_missing, codes) == pytest.approx([1.0, 4.0, np.nan], nan_ok=True)
    assert int(fold_t(fold_means(d_missing, codes)).n_folds) == 2
    # one fold: no test; every fold mean equal: a zero-width interval
    assert math.isnan(float(fold_t([2.0]).p))
    same = fold_t([2.0, 2.0, 2.0])
    assert (same.ci_low, same.ci_high, same.p) == (2.0, 2.0, 0.0)


def test_subject_means_rule_and_used_subjects():
    """A subject's value: mean over repeats, NaN left out, +inf kept; used only where both are finite."""
    ref = np.array([[80.0, 70.0, np.nan, 60.0], [90.0, np.inf, np.nan, np.nan]])  # (R = 2, n = 4)
    cand = np.array([[85.0, 75.0, 50.0, 66.0]])  # (R = 1, n = 4)
    st = compare_over_folds(ref, cand, np.array([0, 0, 1, 1]))
    # subject 0: 85 - 85; subject 1: ref +inf (left out); subject 2: ref NaN (left out); subject 3: 66 - 60
    assert int(st.n_subjects) == 2 and int(st.n_folds) == 2
    assert float(st.difference) == pytest.approx((0.0 + 6.0) / 2)
    assert float(st.reference_mean) == pytest.approx((85.0 + 60.0) / 2)


def test_run_sd_pools_within_folds_over_repeats():
    """F x (R - 1) degrees of freedom: a fold's persistent offset is not run noise."""
    values = np.array(  # (R = 3, n = 4), folds 0, 0, 1, 1
        [[10.0, 12.0, 50.0, 50.0], [14.0, 16.0, 52.0, 56.0], [12.0, 14.0, 60.0, 58.0]]
    )
    codes = np.array([0, 0, 1, 1])
    runs = np.array([[11.0, 50.0], [15.0, 54.0], [13.0, 59.0]])  # fold-run means
    ss = ((runs - runs.mean(axis=0)) ** 2).sum()
    assert float(run_sd(values, codes)) == pytest.approx(math.sqrt(ss / (2 * 2)))
    assert math.isnan(float(run_sd(values[:1], codes)))  # one repeat: no degrees of freedom
    d = np.array([1.0, 3.0, 10.0, 14.0])  # within folds: deviations -1, 1, -2, 2 on n - F = 2 df
    assert float(subject_sd(d, codes)) == pytest.approx(math.sqrt(10 / 2))


def test_judge_and_holm():
    assert list(judge([0.01, 0.01, 0.2, np.nan], [2.0, -2.0, 5.0, 1.0], 0.05, True)) == [1, -1, 0, 0]
    assert list(judge([0.01], [2.0], 0.05, False)) == [-1]  # a distance that grew is worse
    p = [0.01, 0.04, 0.03, float("nan"), 0.005]
    assert holm(p) == pytest.approx([0.03, 0.06, 0.06, float("nan"), 0.02], nan_ok=True)


# ---- validity: no true difference --------------------------------------------------------------------------

NULL = {
    "fold-shared run noise": Scenario("run", subjects_per_fold=4),
    "one repeat": Scenario("one repeat", subjects_per_fold=4, repeats=1),
    "persistent split effect": Scenario("split", subjects_per_fold=4, split_sd=8.0, run_sd=4.0),
    "a run loses a compartment": Scenario("loss", subjects_per_fold=4, run_sd=3.0, loss_rate=0.1, loss=60.0),
}


@pytest.mark.parametrize("name", list(NULL))
def test_a_null_row_is_called_in_at_most_alpha_of_studies(name):
    """The fold rule keeps its level; the rule that ignores folds (subject-level paired t) does not.

    The second assertion is the mutant check: the same bound, applied to the subject-level test on the same
    studies, fails, so this test fails for a rule that ignores the folds.
    """
    scenario, bound = NULL[name], _upper(ALPHA, DRAWS)
    assert rejection_rate(scenario, DRAWS, seed=7) <= bound
    assert rejection_rate(scenario, DRAWS, seed=7, ignore_folds=True) > bound


def test_holm_keeps_the_family_wise_error_rate_over_18_null_rows():
    rng = np.random.default_rng(13)
    n_families, m = 1000, 18
    ref, cand, codes = simulate(Scenario("run", subjects_per_fold=4), n_families * m, rng)
    p = compare_over_folds(ref, cand, codes).p.reshape(n_families, m)
    assert np.mean(np.any(holm(p) < ALPHA, axis=-1)) <= _upper(ALPHA, n_families)
    assert np.mean(np.any(p < ALPHA, axis=-1)) > 0.3  # without Holm most families show one (the test can fail)


# ---- power: the detectable difference is found with 80 % power ---------------------------------------------


@pytest.mark.parametrize(
    "scenario",
    [
        Scenario("study", noise_sd=0.0),  # 4 folds x 2 subjects, 2 repeats, run SD 9, subject SD 9.5
        Scenario("8 folds, 1 repeat", folds=8, subjects_per_fold=3, repeats=1, run_sd=2.0, noise_sd=0.0),
        Scenario("split", folds=5, subjects_per_fold=4, repeats=3, run_sd=4.0, split_sd=3.0, noise_sd=0.0),
    ],
)
def test_the_detectable_difference_is_found_with_80_percent_power(scenario):
    """At effect = detectable_difference(fold_mean_sd(design)) the rule says `better` in 80 % of studies.

    The model's fold mean has exactly the SD of :func:`fold_mean_sd` (no per-run subject noise), so the
    rate must be 0.80 within Monte-Carlo error; a normal approximation of the power (2.8 SD / sqrt(F)) gives a
    much smaller difference and fails this test.
    """
    sd = fold_mean_sd(scenario.run_sd, scenario.subject_sd, scenario.split_sd, scenario.subjects_per_fold,
                      scenario.repeats)  # fmt: skip
    effect = float(detectable_difference(sd, scenario.folds))
    ref, cand, codes = simulate(replace(scenario, effect=effect), DRAWS, np.random.default_rng(21))
    st = compare_over_folds(ref, cand, codes)
    better = np.mean(judge(st.p, st.difference, ALPHA, True) == 1)
    assert abs(better - 0.8) <= 3 * math.sqrt(0.8 * 0.2 / DRAWS), better
    # the measured detectable difference (from each study's fold means) is the planned one on average
    assert np.median(st.detectable_difference) == pytest.approx(effect, rel=0.25)


def test_a_large_effect_is_found_in_its_direction():
    scenario = Scenario("large", folds=8, subjects_per_fold=2, run_sd=2.0, effect=12.0)
    ref, cand, codes = simulate(scenario, DRAWS, np.random.default_rng(5))
    st = compare_over_folds(ref, cand, codes)
    assert np.mean(judge(st.p, st.difference, ALPHA, True) == 1) > 0.95
    st = compare_over_folds(cand, ref, codes)  # the other way round: worse
    assert np.mean(judge(st.p, st.difference, ALPHA, True) == -1) > 0.95


# ---- the design functions -----------------------------------------------------------------------------------


def test_noncentrality_gives_the_power_and_beats_the_normal_approximation():
    for df in (1, 3, 7, 30):
        nc = noncentrality(df)
        assert float(power_of_t(nc, df)) == pytest.approx(0.8, abs=1e-8)
        assert nc > sps.norm.ppf(0.975) + sps.norm.ppf(0.8)  # the t needs more than the normal's 2.80
    assert noncentrality(1000) == pytest.approx(sps.norm.ppf(0.975) + sps.norm.ppf(0.8), abs=0.01)
    assert math.isnan(float(detectable_difference(3.0, 1)))
    assert detectable_difference([2.0, 2.0], [4, 9]) == pytest.approx(
        [noncentrality(3) * 2.0 / 2.0, noncentrality(8) * 2.0 / 3.0]
    )


def test_fold_mean_sd_and_the_study_design():
    # the CPU study: 8 subjects in 4 folds, 2 repeats, run SD 9 per model, subject SD 9.5, no split effect
    sd = float(fold_mean_sd(9.0, 9.5, 0.0, 2, 2))
    assert sd == pytest.approx(math.sqrt(9.5**2 / 2 + (81 + 81) / 2))
    assert float(fold_mean_sd(9.0, 9.5, 2.0, 2, 2, run_sd_candidate=5.0)) == pytest.approx(
        math.sqrt(4 + 9.5**2 / 2 + (81 + 25) / 2)
    )
    assert implied_split_sd(sd, 9.5, 2, 9.0, 9.0, 2, 2) == pytest.approx(0.0, abs=1e-6)
    assert implied_split_sd(math.sqrt(sd**2 + 9), 9.5, 2, 9.0, 9.0, 2, 2) == pytest.approx(3.0)
    assert math.isnan(implied_split_sd(sd, 9.5, 2, math.nan, 9.0, 1, 2))
    grid = designs(9.0, 9.5, subjects=(8,), folds=(4, 8), repeats=(2,))
    assert [(d.subjects, d.folds, d.repeats) for d in grid] == [(8, 4, 2), (8, 8, 2)]
    assert grid[0].detectable == pytest.approx(noncentrality(3) * sd / 2)


def test_power_cli_prints_the_table_and_the_sentence(capsys):
    assert main(["--run-sd", "1.5", "--subject-sd", "3", "--subjects", "16", "40", "--folds", "4", "8",
                 "--repeats", "1", "2", "--target", "3"]) == 0  # fmt: skip
    out = capsys.readouterr().out
    assert "| 40 | 8 | 1 | 8 |" in out
    assert "To resolve 3 points you need 40 subjects in 8 folds and 1 repeat(s) of each model" in out
    with pytest.raises(SystemExit) as e:
        main(["--run-sd", "-1", "--subject-sd", "3"])
    assert e.value.code == 2
