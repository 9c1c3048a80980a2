"""Statistics against textbook values, and the verdict rule."""

import math

import numpy as np
import pytest

from dlbench.stats import (bootstrap_ci, bootstrap_ratio_ci, claim_from_interval, decide, exact_claim,
                           mann_whitney_u, t975, t_ci, two_sample_verdict, verdict)


def test_mann_whitney_exact_small_sample():
    # Two samples fully separated, n1 = n2 = 4: U = 0, two-sided p = 2 / C(8, 4) = 2/70.
    u, p = mann_whitney_u([1, 2, 3, 4], [5, 6, 7, 8])
    assert u == 0
    assert p == pytest.approx(2 / 70)


def test_mann_whitney_exact_matches_enumeration():
    import itertools

    x, y = [1.1, 3.4, 5.0], [2.2, 4.1, 6.3, 7.7]
    u, p = mann_whitney_u(x, y)
    both = x + y
    us = []
    for idx in itertools.combinations(range(7), 3):
        xs = [both[i] for i in idx]
        ys = [both[i] for i in range(7) if i not in idx]
        us.append(sum(a > b for a in xs for b in ys))
    us = np.array(us)
    lo = min(u, 12 - u)
    expected = min(1.0, 2 * np.mean(us <= lo))
    assert u == sum(a > b for a in x for b in y)
    assert p == pytest.approx(expected)


def test_mann_whitney_with_ties_is_exact_for_small_samples():
    import itertools

    # U for x counts x > y plus half the ties; p enumerates every split of the pooled values.
    x, y = [1, 2, 2, 3, 4], [2, 3, 3, 5, 6]
    u, p = mann_whitney_u(x, y)
    assert u == sum((a > b) + 0.5 * (a == b) for a in x for b in y)
    pooled = x + y
    far = 0
    splits = list(itertools.combinations(range(10), 5))
    for idx in splits:
        xs = [pooled[i] for i in idx]
        ys = [pooled[i] for i in range(10) if i not in idx]
        us = sum((a > b) + 0.5 * (a == b) for a in xs for b in ys)
        far += abs(us - 12.5) >= abs(u - 12.5) - 1e-9
    assert p == pytest.approx(far / len(splits))


def test_mann_whitney_large_samples_with_ties_use_the_normal_approximation():
    rng = np.random.default_rng(2)
    a, b = rng.integers(0, 5, 40), rng.integers(1, 6, 40)
    u, p = mann_whitney_u(a, b)
    assert u == sum((i > j) + 0.5 * (i == j) for i in a for j in b)
    assert 0 < p < 0.05


def test_mann_whitney_large_shift_is_significant_and_null_is_not():
    rng = np.random.default_rng(1)
    a = rng.normal(0, 1, 40)
    assert mann_whitney_u(a, a + 3)[1] < 1e-6
    assert mann_whitney_u(a, rng.normal(0, 1, 40))[1] > 0.01


def test_t_quantiles():
    assert t975(1) == pytest.approx(12.706)
    assert t975(10) == pytest.approx(2.228)
    assert t975(1000) == pytest.approx(1.962, abs=1e-3)
    lo, hi = t_ci([1.0, 2.0, 3.0])
    assert (lo + hi) / 2 == pytest.approx(2.0)
    assert hi - 2.0 == pytest.approx(4.303 * 1 / math.sqrt(3), rel=1e-3)


def test_bootstrap_is_seeded_and_covers_the_median():
    rng = np.random.default_rng(0)
    hits = 0
    for _ in range(200):
        x = rng.normal(0.0, 1.0, 30)
        lo, hi = bootstrap_ci(x, seed=1)
        hits += lo <= 0.0 <= hi
    assert 0.88 <= hits / 200 <= 0.99  # nominal 95 %
    x = rng.normal(size=20)
    assert bootstrap_ci(x, seed=3) == bootstrap_ci(x, seed=3)


def test_bootstrap_ratio_of_medians():
    base = np.full(10, 2.0) + np.linspace(-0.01, 0.01, 10)
    r, lo, hi = bootstrap_ratio_ci(base, base * 1.5)
    assert r == pytest.approx(1.5)
    assert lo <= 1.5 <= hi


@pytest.mark.parametrize("low, high, direction, expected", [
    (0.1, 0.5, "greater", "supported"),
    (-0.5, -0.1, "greater", "refuted"),
    (-0.1, 0.5, "greater", "inconclusive"),
    (-0.5, -0.1, "less", "supported"),
    (0.1, 0.5, "less", "refuted"),
])
def test_verdict_rule(low, high, direction, expected):
    assert decide((low + high) / 2, low, high, direction=direction, n=5) == expected


def test_verdict_needs_seeds_and_a_practical_effect():
    assert decide(0.3, 0.1, 0.5, n=1) == "inconclusive"
    assert decide(0.3, 0.1, 0.5, n=5, threshold=1.0) == "inconclusive"


def test_verdict_from_samples_carries_its_evidence():
    c = verdict("X1", "effect is positive", [0.9, 1.1, 1.0, 1.2, 0.95, 1.05], label="gain", unit="dB")
    assert c.verdict == "supported"
    assert c.n == 6 and "n=6" in c.evidence and "bootstrap" in c.evidence and "gain" in c.evidence
    c = verdict("X1", "effect is positive", [0.9, 1.1, 1.0, 1.2, 0.95], direction="less", method="t")
    assert c.verdict == "refuted" and "t" == c.method


def test_a_bootstrap_verdict_needs_six_values():
    # The percentile interval of 5 values covers at most 1 - 2^-4 = 94 %: not a 95 % interval.
    c = verdict("X1", "effect is positive", [0.9, 1.1, 1.0, 1.2, 0.95])
    assert c.verdict == "inconclusive" and "needs 6 values" in c.evidence
    assert verdict("X1", "positive", [0.9, 1.1, 1.0, 1.2, 0.95], method="t").verdict == "supported"


def test_two_sample_verdict_ratio_and_difference():
    a = np.array([10.0, 10.5, 9.8, 10.2, 10.1, 9.9])
    b = np.array([5.0, 5.2, 4.9, 5.1, 5.05, 4.95])
    assert two_sample_verdict("X", "a > b", a, b).verdict == "supported"
    assert two_sample_verdict("X", "a > b", a, b, ratio=True).verdict == "supported"
    assert two_sample_verdict("X", "a < b", a, b, direction="less").verdict == "refuted"


def test_claim_from_interval_and_exact_claim():
    assert claim_from_interval("X", "s", 0.2, 0.1, 0.3, n=100, method="wilson").verdict == "supported"
    assert exact_claim("X", "s", 1e-9, 1e-6).verdict == "supported"
    assert exact_claim("X", "s", 1e-3, 1e-6).verdict == "refuted"
    assert exact_claim("X", "s", float("nan"), 1e-6).verdict == "refuted"


def test_lists_reject_empty_items_duplicates_and_unknown_names():
    from dlbench.errors import DlbenchError, UnknownName
    from dlbench.experiments.base import parse_numbers
    from dlbench.registry import Registry

    reg = Registry("optimizer")
    for name in ("sgd", "adam"):
        reg.add(name, name)
    assert reg.parse_list("") == ["sgd", "adam"] and reg.parse_list("adam") == ["adam"]
    for bad, exc in (("sgd,,adam", DlbenchError), ("sgd,sgd", DlbenchError), ("nope", UnknownName)):
        with pytest.raises(exc):
            reg.parse_list(bad)
    assert parse_numbers("1,2,4") == [1, 2, 4]
    for bad in ("1,,2", "1,1", "x", "0", "-3", ""):
        with pytest.raises(DlbenchError):
            parse_numbers(bad)
    with pytest.raises(DlbenchError, match="finite"):
        parse_numbers("1,inf", float)
