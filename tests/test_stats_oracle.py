"""The claim maths against an independent reference: scipy.stats (a test dependency only; skipped without it).

Mann-Whitney exact and asymptotic p-values (mannwhitneyu), the exact p-value with ties (an exhaustive
permutation_test), Student's t quantile (t.ppf) and t interval, the percentile bootstrap (bootstrap with the
same generator draws the same resamples, so the intervals agree to rounding), and the Wilson interval
(binomtest(...).proportion_ci).
"""

import inspect
import itertools
import math

import numpy as np
import pytest

from dlbench.stats import (bootstrap_ci, bootstrap_difference, bootstrap_ratio_ci, loglog_slope, mann_whitney_u,
                           power_law, t975, t_ci, wilson)

st = pytest.importorskip("scipy.stats")


# ----------------------------------------------------------------------------------------- Student's t

@pytest.mark.parametrize("df", range(1, 31))
def test_t975_table_is_t_ppf_to_three_decimals(df):
    assert t975(df) == round(float(st.t.ppf(0.975, df)), 3)


@pytest.mark.parametrize("df", [31, 32, 40, 60, 100, 300, 1000, 10_000, 100_000])
def test_t975_expansion_beyond_the_table_errs_only_at_third_order(df):
    # two terms of the Cornish-Fisher expansion: the error is the third term, about 2.6 / df^3
    assert abs(t975(df) - st.t.ppf(0.975, df)) <= 3 / df**3 + 1e-14


@pytest.mark.parametrize("x", [[1.0, 2.0], [0.3, 1.2, 0.7, 2.2], list(np.linspace(-1, 3, 40) ** 2)])
def test_t_ci_is_scipy_t_interval(x):
    ref_lo, ref_hi = st.t.interval(0.95, len(x) - 1, loc=np.mean(x), scale=st.sem(x))
    lo, hi = t_ci(x)
    assert (lo + hi) / 2 == pytest.approx(np.mean(x), rel=1e-12)
    # the table holds the quantile to three decimals
    assert hi - lo == pytest.approx(ref_hi - ref_lo, rel=3e-4)


# ----------------------------------------------------------------------------------------- Mann-Whitney

def _scipy_p(x, y, method):
    return float(st.mannwhitneyu(x, y, alternative="two-sided", method=method, use_continuity=True).pvalue)


@pytest.mark.parametrize("n1, n2", [(1, 1), (1, 7), (2, 3), (3, 3), (4, 9), (6, 6), (8, 5), (12, 12),
                                    (3, 25), (25, 25)])
def test_mann_whitney_without_ties_up_to_25_is_scipy_exact(n1, n2):
    rng = np.random.default_rng(n1 * 100 + n2)
    for shift in (0.0, 0.7, 3.0):
        x, y = rng.normal(size=n1), rng.normal(size=n2) + shift
        u, p = mann_whitney_u(x, y)
        assert u == st.mannwhitneyu(x, y).statistic
        assert p == pytest.approx(_scipy_p(x, y, "exact"), rel=1e-12, abs=1e-300)


@pytest.mark.parametrize("n1, n2", [(26, 26), (25, 26), (26, 3), (40, 60)])
def test_mann_whitney_without_ties_beyond_25_is_scipy_asymptotic(n1, n2):
    rng = np.random.default_rng(n1 * 100 + n2)
    for shift in (0.0, 0.2, 0.7):
        x, y = rng.normal(size=n1), rng.normal(size=n2) + shift
        assert mann_whitney_u(x, y)[1] == pytest.approx(_scipy_p(x, y, "asymptotic"), rel=1e-12)


@pytest.mark.parametrize("n1, n2, levels", [(12, 12, 30), (15, 15, 200), (40, 40, 5), (30, 9, 4)])
def test_mann_whitney_with_ties_beyond_exact_splits_is_scipy_asymptotic(n1, n2, levels):
    # ties: the normal approximation with tie correction and continuity correction
    rng = np.random.default_rng(levels)
    for shift in (0, 1, 3):
        x, y = rng.integers(0, levels, n1), rng.integers(0, levels, n2) + shift
        assert len(np.unique(np.r_[x, y])) < n1 + n2 and math.comb(n1 + n2, n1) > 20_000
        u, p = mann_whitney_u(x, y)
        assert u == st.mannwhitneyu(x, y).statistic
        assert p == pytest.approx(_scipy_p(x, y, "asymptotic"), rel=1e-12)


def test_mann_whitney_small_p_values_in_the_normal_tail():
    x = np.arange(40.0)
    for shift in (5.0, 12.0, 30.0):
        assert mann_whitney_u(x, x + shift)[1] == pytest.approx(_scipy_p(x, x + shift, "asymptotic"), rel=1e-10)


def _permutation_p(x, y):
    """P(|U - n1 n2 / 2| >= observed) over every split of the pooled values: scipy's exact permutation test."""
    centre = len(x) * len(y) / 2

    def stat(a, b, axis=-1):
        u = st.mannwhitneyu(a, b, axis=axis, method="asymptotic").statistic
        return np.abs(u - centre)

    res = st.permutation_test((x, y), stat, permutation_type="independent", alternative="greater",
                              n_resamples=np.inf, vectorized=True)
    return float(res.pvalue)


@pytest.mark.parametrize("x, y", [
    ([1, 2, 2, 3, 4], [2, 3, 3, 5, 6]),
    ([1, 1, 1], [1, 2, 2, 2]),
    ([0, 0, 1, 1, 2, 2], [1, 2, 2, 3, 3, 4]),
    ([5, 5, 5, 5, 6], [4, 5, 5]),
    ([1, 2], [2, 3, 4, 4, 4, 5, 6, 6]),
    ([3, 3, 3, 3, 3, 3], [3, 3, 3, 3, 3, 4]),
])
def test_mann_whitney_with_ties_is_scipy_exact_permutation_test(x, y):
    x, y = np.asarray(x, float), np.asarray(y, float)
    u, p = mann_whitney_u(x, y)
    assert u == st.mannwhitneyu(x, y).statistic
    assert p == pytest.approx(_permutation_p(x, y), rel=1e-12)


def test_mann_whitney_pair_ties_in_small_samples_are_still_ties():
    # one tied pair is enough for the exact permutation p-value (not the no-ties distribution)
    x, y = np.array([1.0, 2.0, 3.5, 6.0]), np.array([3.5, 4.0, 5.0, 7.0, 8.0])
    assert mann_whitney_u(x, y)[1] == pytest.approx(_permutation_p(x, y), rel=1e-12)
    assert mann_whitney_u(x, y)[1] != pytest.approx(_scipy_p(x, y, "exact"), rel=1e-6)


def test_mann_whitney_exhaustive_over_small_tied_samples():
    # every pair of samples of 2..3 values from {0, 1, 2}: the p-value is the permutation p-value
    for n1, n2 in ((2, 2), (2, 3), (3, 3)):
        for x in itertools.combinations_with_replacement(range(3), n1):
            for y in itertools.combinations_with_replacement(range(3), n2):
                x_, y_ = np.asarray(x, float), np.asarray(y, float)
                assert mann_whitney_u(x_, y_)[1] == pytest.approx(_permutation_p(x_, y_), rel=1e-12), (x, y)


# ----------------------------------------------------------------------------------------- bootstrap

def _generator(seed):
    g = np.random.default_rng(seed)
    return {"rng": g} if "rng" in inspect.signature(st.bootstrap).parameters else {"random_state": g}


def _scipy_percentile(data, statistic, *, seed=0, n_resamples=2000, level=0.95):
    res = st.bootstrap(data, statistic, n_resamples=n_resamples, method="percentile", vectorized=True, axis=-1,
                       confidence_level=level, **_generator(seed))
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


X = np.random.default_rng(11).lognormal(0.0, 0.4, 13)
Y = np.random.default_rng(12).lognormal(0.3, 0.4, 9)


@pytest.mark.parametrize("level", [0.95, 0.5, 0.99])
@pytest.mark.parametrize("stat", [np.median, np.mean])
def test_bootstrap_ci_is_scipy_percentile_bootstrap(stat, level):
    assert bootstrap_ci(X, stat, level=level) == pytest.approx(_scipy_percentile((X,), stat, level=level),
                                                               rel=1e-12)
    assert bootstrap_ci(X, stat, seed=5, n_boot=777) == pytest.approx(
        _scipy_percentile((X,), stat, seed=5, n_resamples=777), rel=1e-12)


@pytest.mark.parametrize("level", [0.95, 0.5, 0.99])
def test_bootstrap_ratio_ci_is_scipy_percentile_bootstrap(level):
    def ratio(base, new, axis=-1):
        return np.median(new, axis=axis) / np.median(base, axis=axis)

    r, lo, hi = bootstrap_ratio_ci(X, Y, level=level)
    assert r == np.median(Y) / np.median(X)
    assert (lo, hi) == pytest.approx(_scipy_percentile((X, Y), ratio, level=level), rel=1e-12)
    _, lo, hi = bootstrap_ratio_ci(X, Y, seed=3, n_boot=500)
    assert (lo, hi) == pytest.approx(_scipy_percentile((X, Y), ratio, seed=3, n_resamples=500), rel=1e-12)


@pytest.mark.parametrize("level", [0.95, 0.5, 0.99])
def test_bootstrap_difference_is_scipy_percentile_bootstrap(level):
    def difference(a, b, axis=-1):
        return np.median(a, axis=axis) - np.median(b, axis=axis)

    d, lo, hi = bootstrap_difference(Y, X, level=level)
    assert d == np.median(Y) - np.median(X)
    assert (lo, hi) == pytest.approx(_scipy_percentile((Y, X), difference, level=level), rel=1e-12)
    _, lo, hi = bootstrap_difference(Y, X, seed=3, n_boot=500)
    assert (lo, hi) == pytest.approx(_scipy_percentile((Y, X), difference, seed=3, n_resamples=500), rel=1e-12)


def test_power_law_is_scipy_percentile_bootstrap_of_the_fitted_exponent():
    sizes = [64, 128, 256, 512]
    rng = np.random.default_rng(3)
    samples = [3e-9 * n**2 * rng.lognormal(0, 0.05, 9) for n in sizes]

    def slope(*s, axis=-1):
        return loglog_slope(sizes, np.stack([np.median(v, axis=axis) for v in s], axis=-1))

    for seed in (0, 4):
        k, lo, hi, boots = power_law(sizes, samples, seed=seed)
        assert k == pytest.approx(float(slope(*samples)), rel=1e-12)
        assert (lo, hi) == pytest.approx(_scipy_percentile(samples, slope, seed=seed), rel=1e-12)


def test_loglog_slope_is_scipy_linregress():
    sizes = [8, 16, 32, 64, 128]
    values = np.array([[1.0, 2.2, 3.9, 8.5, 15.0], [3.0, 2.0, 1.1, 0.6, 0.2]])
    for v, k in zip(values, loglog_slope(sizes, values)):
        assert k == pytest.approx(st.linregress(np.log(sizes), np.log(v)).slope, rel=1e-12)


# ----------------------------------------------------------------------------------------- Wilson

@pytest.mark.parametrize("n", [1, 2, 5, 17, 100])
def test_wilson_matches_scipy_at_every_k(n):
    for k in range(n + 1):
        ref = st.binomtest(k, n).proportion_ci(method="wilson")
        w = wilson(k, n)
        assert (w.low, w.high) == pytest.approx((ref.low, ref.high), abs=1e-12)
