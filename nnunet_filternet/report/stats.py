"""Paired tests of a trainer's per-subject metric against the reference trainer's.

Both tests pair subjects by name. Pairs where either value is not finite are left out and counted:
NaN means the compartment is absent from the subject's reference and prediction (nothing to compare),
+inf a missed compartment (a distance that no test can use). The report shows ``n`` for every test.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from scipy import stats

from nnunet_filternet.compare.stats import signed_rank_p

#: Significance level for marking table cells.
ALPHA = 0.05


@dataclass(frozen=True)
class PairedTest:
    """p values of the paired t-test and the Wilcoxon signed-rank test, with the pairs used.

    Attributes:
        n: number of subject pairs used.
        n_left_out: pairs left out because a value was NaN or infinite.
        t_p: two-sided p of :func:`scipy.stats.ttest_rel` (NaN if not computable, e.g. n < 2 or equal values).
        wilcoxon_p: two-sided p of :func:`scipy.stats.wilcoxon` with its defaults (zeros dropped, ``method="auto"``),
            computed by :func:`~nnunet_filternet.compare.stats.signed_rank_p` (NaN if all differences are 0).
    """

    n: int
    n_left_out: int
    t_p: float
    wilcoxon_p: float

    @property
    def t_significant(self) -> bool:
        return not math.isnan(self.t_p) and self.t_p < ALPHA

    @property
    def wilcoxon_significant(self) -> bool:
        return not math.isnan(self.wilcoxon_p) and self.wilcoxon_p < ALPHA


def paired_tests(values: Mapping[str, float], reference: Mapping[str, float]) -> PairedTest:
    """Test ``values`` against ``reference``, both subject -> metric, over the subjects they share."""
    subjects = sorted(set(values) & set(reference))
    pairs = [(values[s], reference[s]) for s in subjects]
    finite = np.asarray([p for p in pairs if math.isfinite(p[0]) and math.isfinite(p[1])], dtype=np.float64)
    n = len(finite)
    t_p = w_p = float("nan")
    if n >= 2:
        a, b = finite[:, 0], finite[:, 1]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            t_p = float(stats.ttest_rel(a, b).pvalue)
            if np.any(a != b):  # scipy.stats.wilcoxon(a, b)'s p, without its slow path for ties at small n
                w_p = float(signed_rank_p(a - b, zero_method="wilcox", decimals=None))
    return PairedTest(n=n, n_left_out=len(pairs) - n, t_p=t_p, wilcoxon_p=w_p)
