"""Simulated studies behind the verdict rule's claims (tests/test_fold_rule.py, docs/evaluation.md).

Model of one row (e.g. a compartment's Dice in percent points) for subject s in fold f, model m, repeat r::

    value = mu_s + effect [m = candidate] + tau_{s,m} + split_{f,m} + run_{f,m,r} + eps_{s,m,r} - loss_{f,m,r}

- ``mu_s ~ N(80, 8)``: how hard the subject is, shared by both models (the pairing removes it);
- ``tau_{s,m}``: how each model fares on that subject, so that the per-subject difference has SD ``subject_sd``;
- ``split_{f,m}``: the split's own effect on each model, the same in every repeat, so that the difference of
  a fold has SD ``split_sd`` from it;
- ``run_{f,m,r} ~ N(0, run_sd)``: one training run's luck, shared by every subject of the fold;
- ``eps ~ N(0, noise_sd)``: what is left per subject and run;
- ``loss``: with probability ``loss_rate`` a training run loses the compartment: every subject of that fold
  run drops by ``loss`` points (a heavy-tailed failed run, as stock nnU-Net's fold 1 in docs/study.md).

Every term is drawn for both models alike, so the only true difference is ``effect``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from nnunet_filternet.statistics import ALPHA
from nnunet_filternet.statistics.folds import compare_over_folds


@dataclass(frozen=True)
class Scenario:
    """A simulated study design and its variance components (Dice points)."""

    name: str
    folds: int = 4
    subjects_per_fold: int = 2
    repeats: int = 2
    run_sd: float = 9.0
    subject_sd: float = 9.5
    split_sd: float = 0.0
    noise_sd: float = 1.0
    loss_rate: float = 0.0
    loss: float = 0.0
    effect: float = 0.0


def simulate(scenario: Scenario, draws: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``draws`` studies of the scenario.

    Returns:
        (reference (draws, R, n), candidate (draws, R, n), fold codes (n,)), n = folds x subjects_per_fold.
    """
    s = scenario
    n = s.folds * s.subjects_per_fold
    codes = np.repeat(np.arange(s.folds), s.subjects_per_fold)
    mu = rng.normal(80.0, 8.0, (draws, 1, n))

    def model(shift: float) -> np.ndarray:
        tau = rng.normal(0.0, s.subject_sd / np.sqrt(2), (draws, 1, n))
        split = rng.normal(0.0, s.split_sd / np.sqrt(2), (draws, 1, s.folds))[..., codes]
        run = rng.normal(0.0, s.run_sd, (draws, s.repeats, s.folds))
        run -= s.loss * (rng.random((draws, s.repeats, s.folds)) < s.loss_rate)
        eps = rng.normal(0.0, s.noise_sd, (draws, s.repeats, n))
        return mu + shift + tau + split + run[..., codes] + eps

    return model(0.0), model(s.effect), codes


def rejection_rate(
    scenario: Scenario, draws: int, seed: int, alpha: float = ALPHA, ignore_folds: bool = False
) -> float:
    """Share of simulated studies whose row has p < alpha (one row: Holm is the identity).

    ``ignore_folds`` tests every subject as its own fold (the subject-level paired t): the rule that ignores the
    shared training runs, for comparison.
    """
    reference, candidate, codes = simulate(scenario, draws, np.random.default_rng(seed))
    if ignore_folds:
        codes = np.arange(codes.size)
    return float(np.mean(compare_over_folds(reference, candidate, codes, alpha).p < alpha))


#: The null scenarios of docs/evaluation.md (the CPU study's variances: docs/study.md).
NULL_SCENARIOS: tuple[Scenario, ...] = (
    Scenario("fold-shared run noise (study: 4 folds x 2 subjects, 2 repeats)"),
    Scenario("the same, 4 subjects per fold", subjects_per_fold=4),
    Scenario("one repeat, 4 subjects per fold", subjects_per_fold=4, repeats=1),
    Scenario("persistent split effect (SD 8)", subjects_per_fold=4, split_sd=8.0),
    Scenario(
        "runs that lose a compartment (10 %, -60 points)", subjects_per_fold=4, run_sd=3.0, loss_rate=0.1, loss=60.0
    ),  # fmt: skip
    Scenario("8 folds x 2 subjects, run SD 2", folds=8, run_sd=2.0),
)


def false_positive_table(draws: int = 20_000, seed: int = 2026, alpha: float = ALPHA) -> str:
    """Markdown: the rate of p < alpha without a true difference, fold rule against the subject-level t."""
    lines = ["| scenario | paired t over folds | subject-level paired t |", "|---|---|---|"]
    for k, scenario in enumerate(NULL_SCENARIOS):
        fold = rejection_rate(scenario, draws, seed + k, alpha)
        subject = rejection_rate(scenario, draws, seed + k, alpha, ignore_folds=True)
        lines.append(f"| {scenario.name} | {fold:.3f} | {subject:.3f} |")
    return "\n".join(lines)
