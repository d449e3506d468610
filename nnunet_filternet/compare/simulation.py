"""Simulations behind the choices documented in docs/evaluation.md ("Comparing two models").

- :func:`interval_coverage`: how often the t interval and a percentile bootstrap cover the true mean difference.
- :func:`margin_false_positive_rate`: how often run-to-run noise alone exceeds the Welch margin, and a plain
  ``sqrt(sd_r^2 + sd_c^2)`` for comparison.
"""

from __future__ import annotations

import numpy as np

from .stats import mean_difference_interval, run_to_run_margin


def interval_coverage(
    n_subjects: int, skewed: bool = False, n_cohorts: int = 2000, n_boot: int = 2000, seed: int = 2026
) -> tuple[float, float]:
    """Coverage of the 95% t interval and of the 95% percentile bootstrap (``n_boot`` resamples).

    Per-subject differences are 1 + N(0, 1), or 1 + (Exp(1) - 1) with ``skewed`` (skewness 2).

    Returns:
        (t coverage, bootstrap coverage) over ``n_cohorts`` simulated cohorts.
    """
    rng = np.random.default_rng(seed)
    noise = rng.exponential(1.0, (n_cohorts, n_subjects)) - 1 if skewed else rng.normal(0, 1, (n_cohorts, n_subjects))
    d = 1.0 + noise
    _, low, high = mean_difference_interval(d, 0.95)
    t_covered = (low <= 1.0) & (1.0 <= high)
    boot_covered = np.empty(n_cohorts, bool)
    for start in range(0, n_cohorts, 100):  # 100 cohorts at a time: (100, n_boot, n) resampled values
        chunk = d[start : start + 100]
        idx = rng.integers(0, n_subjects, (len(chunk), n_boot, n_subjects))
        means = np.take_along_axis(chunk[:, None, :], idx, axis=2).mean(axis=-1)
        low_b, high_b = np.percentile(means, [2.5, 97.5], axis=1)
        boot_covered[start : start + 100] = (low_b <= 1.0) & (1.0 <= high_b)
    return float(t_covered.mean()), float(boot_covered.mean())


def margin_false_positive_rate(
    k: int, sd_ratio: float = 1.0, n_draws: int = 200_000, alpha: float = 0.05, seed: int = 0
) -> tuple[float, float]:
    """P(|difference| > margin) when the two models differ only by run-to-run noise.

    Each of the k repeats of a model has a cohort mean ~ N(0, 1) (reference) or N(0, sd_ratio) (candidate).

    Returns:
        (rate with the Welch margin of :func:`.stats.run_to_run_margin`, rate with ``sqrt(sd_r^2 + sd_c^2)``).
    """
    rng = np.random.default_rng(seed)
    ref, cand = rng.normal(0, 1, (n_draws, k)), rng.normal(0, sd_ratio, (n_draws, k))
    difference = np.abs(cand.mean(axis=1) - ref.mean(axis=1))
    sd_r, sd_c = ref.std(axis=1, ddof=1), cand.std(axis=1, ddof=1)
    welch = run_to_run_margin(sd_r, k, sd_c, k, alpha)
    return float(np.mean(difference > welch)), float(np.mean(difference > np.sqrt(sd_r**2 + sd_c**2)))
