"""O9's distribution-free interval on a quantile, against SciPy's binomial law, and its finding."""

import math

import numpy as np
import pytest

from dlbench.experiments.base import RunContext
from dlbench.experiments.optimizers import claims as oc

st = pytest.importorskip("scipy.stats")


@pytest.mark.parametrize("q", [0.25, 0.5, 0.75, 0.9])
@pytest.mark.parametrize("n", [1, 2, 6, 13, 24, 48, 100])
def test_order_statistic_bounds_are_the_tightest_with_their_coverage(n, q):
    x = np.arange(1.0, n + 1)  # the k-th smallest value is k
    _, low, high = oc.quantile_interval(x, q)
    if math.isinf(high):  # not even the largest reaches 97.5 %
        assert st.binom.cdf(n - 1, n, q) < 0.975
    else:
        k = int(high)
        assert st.binom.cdf(k - 1, n, q) >= 0.975 > (st.binom.cdf(k - 2, n, q) if k > 1 else 0.0)
    if math.isinf(low):
        assert st.binom.sf(0, n, q) < 0.975
    else:
        j = int(low)
        assert st.binom.sf(j - 1, n, q) >= 0.975 > st.binom.sf(j, n, q)


def test_upper_quartile_at_six_seeds_has_no_upper_bound_and_at_48_the_43rd():
    assert oc.quantile_interval(np.arange(6.0), 0.75)[2] == math.inf      # the largest covers 1 - 0.75^6 = 82 %
    est, low, high = oc.quantile_interval(np.arange(1.0, 49), 0.75)
    assert (est, low, high) == (36.0, 30.0, 43.0)


def test_interval_covers_the_quantile_at_least_95_percent_of_the_time():
    rng = np.random.default_rng(0)
    truth = -math.log(0.25)  # the upper quartile of Exp(1)
    draws = rng.exponential(size=(4000, 48))
    hits = 0
    for d in draws:
        _, low, high = oc.quantile_interval(d, 0.75)
        hits += low <= truth <= high
    assert hits / len(draws) >= 0.94  # exact coverage >= 95 %; 4000 draws: sd 0.35 %


def test_diverged_runs_count_as_the_worst():
    est, low, high = oc.quantile_interval(np.r_[np.arange(1.0, 43), [np.inf] * 6], 0.75)
    assert high == math.inf and est == 36.0


def _loss(final: np.ndarray) -> np.ndarray:
    # one lr; the tuning seeds first
    return np.concatenate([np.zeros(oc.O9_TUNING), final])[None, :]


def test_o9_finding_supported_below_the_gap_refuted_above_inconclusive_at_six_seeds():
    rng = np.random.default_rng(1)
    good = rng.uniform(0, 0.005, oc.O9_SEEDS)
    bad = rng.uniform(0.05, 0.2, oc.O9_SEEDS)
    assert oc._o9_finding(_loss(good), (0.1,), "good")[0].verdict == "supported"
    assert oc._o9_finding(_loss(bad), (0.1,), "bad")[0].verdict == "refuted"
    assert oc._o9_finding(_loss(good[:6]), (0.1,), "six")[0].verdict == "inconclusive"
    # a quarter of the runs far from the optimum is not "equally good", whatever the median says
    mixed = np.r_[good[:30], bad[:18]]
    assert oc._o9_finding(_loss(mixed), (0.1,), "mixed")[0].verdict != "supported"


def test_o9_verdict_seeds_extend_the_runs_seeds_from_the_base_seed():
    ctx = RunContext(seed=1000, seeds=5, quick=True)
    seeds = oc._o9_seeds(ctx)
    assert len(seeds) == oc.O9_SEEDS and seeds[:5] == ctx.seed_list
    assert oc._o9_seeds(RunContext(seed=1000, seeds=5, quick=True)) == seeds
    assert oc._o9_seeds(RunContext(seed=2000, seeds=5, quick=True))[5:] != seeds[5:]
    assert len(oc._o9_seeds(RunContext(seed=0, seeds=60, quick=True))) == 60
