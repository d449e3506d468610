"""Statistics of model comparisons, below ``compare/`` and ``report/``: the paired t over folds, Holm, power.

The unit of training noise is a training run (one fold of one repeat): every subject of a fold is predicted
by the same network, so its training luck moves them together. The verdict rule therefore averages each
model's repeats per subject, takes the per-subject difference, averages it per fold and tests the fold means
with a t on F - 1 degrees of freedom (docs/evaluation.md, "The verdict rule").

- :mod:`.folds`: fold means, the paired t over folds, the run SD within folds, the within-fold subject SD
  (vectorised over leading axes, so that thousands of simulated studies run in one call).
- :mod:`.multiple`: Holm's step-down adjustment.
- :mod:`.power`: the SD of a fold-mean difference for a design (:func:`fold_mean_sd`) and the difference it
  detects with 80 % power (:func:`detectable_difference`); ``python -m nnunet_filternet.statistics.power``.
- :mod:`.simulation`: simulated studies with fold-shared training noise, persistent split effects and lost
  compartments, for the tests and the tables of docs/evaluation.md.
"""

from __future__ import annotations

#: Significance level of every test, interval (1 - alpha) and detectable difference, unless a verb is told otherwise.
ALPHA = 0.05
#: Power at which :func:`~.power.detectable_difference` states the difference a design detects.
POWER = 0.8

from nnunet_filternet.statistics.power import detectable_difference, fold_mean_sd  # noqa: E402

__all__ = ["ALPHA", "POWER", "detectable_difference", "fold_mean_sd"]
