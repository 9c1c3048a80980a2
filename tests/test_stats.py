"""Statistics against textbook values, and the verdict rule."""

import math

import numpy as np
import pytest

from dlbench.stats import (agresti_caffo_difference, all_of, bootstrap_ci, bootstrap_difference, bootstrap_ratio_ci,
                           decide, equivalence, finding, from_interval, mann_whitney_u, newcombe_difference, power_law,
                           t975, t_ci, two_sample, wilson, with_note)


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
    c = finding([0.9, 1.1, 1.0, 1.2, 0.95, 1.05], label="gain", unit="dB")
    assert c.verdict == "supported"
    assert c.n == 6 and "n=6" in c.evidence and "bootstrap" in c.evidence and "gain" in c.evidence
    c = finding([0.9, 1.1, 1.0, 1.2, 0.95], direction="less", method="t")
    assert c.verdict == "refuted" and "t" == c.method


def test_a_bootstrap_verdict_needs_six_values():
    # The percentile interval of 5 values covers at most 1 - 2^-4 = 94 %: not a 95 % interval.
    c = finding([0.9, 1.1, 1.0, 1.2, 0.95])
    assert c.verdict == "inconclusive" and "needs 6 values" in c.evidence
    assert finding([0.9, 1.1, 1.0, 1.2, 0.95], method="t").verdict == "supported"


def test_two_sample_finding_ratio_and_difference():
    a = np.array([10.0, 10.5, 9.8, 10.2, 10.1, 9.9])
    b = np.array([5.0, 5.2, 4.9, 5.1, 5.05, 4.95])
    assert two_sample(a, b).verdict == "supported"
    assert two_sample(a, b, ratio=True).verdict == "supported"
    assert two_sample(a, b, direction="less").verdict == "refuted"


def test_finding_from_an_interval_computed_elsewhere():
    assert from_interval(0.2, 0.1, 0.3, n=100, method="wilson").verdict == "supported"
    assert from_interval(-0.2, -0.3, -0.1, n=100, method="wilson").verdict == "refuted"
    assert from_interval(0.2, -0.1, 0.3, n=100, method="wilson").verdict == "inconclusive"


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


# ----------------------------------------------------------------------------- the claim maths' one home

@pytest.mark.parametrize("k, n", [(0, 10), (3, 10), (10, 10), (57, 200), (1, 1)])
def test_wilson_matches_scipy(k, n):
    stats = pytest.importorskip("scipy.stats")
    ref = stats.binomtest(k, n).proportion_ci(method="wilson")
    w = wilson(k, n)
    assert (w.low, w.high) == pytest.approx((ref.low, ref.high), abs=1e-12)
    assert w.p == k / n


def test_wilson_of_nothing_is_nan():
    assert math.isnan(wilson(0, 0).p)


def test_newcombe_difference_against_newcombe_1998_table_ii():
    # Newcombe 1998, Table II, example (a): 56/70 - 48/80, method 10 gives [0.0524, 0.3339]
    d, lo, hi = newcombe_difference(wilson(56, 70), wilson(48, 80))
    assert d == pytest.approx(0.2)
    assert (lo, hi) == pytest.approx((0.0524, 0.3339), abs=1e-4)


def test_agresti_caffo_adds_one_success_and_one_failure_per_side():
    d, lo, hi = agresti_caffo_difference(0.5, 10, 0.5, 10)
    assert d == 0 and lo == pytest.approx(-hi)
    d, lo, hi = agresti_caffo_difference(1.0, 20, 0.0, 20)
    t = 21 / 22                                                  # (20 + 1) / (20 + 2), and 1 - t on the other side
    half = 1.959963984540054 * math.sqrt(2 * t * (1 - t) / 22)
    assert d == 1 and lo == pytest.approx(2 * t - 1 - half) and hi == 1.0


def test_bootstrap_difference_centre_and_sign():
    a, b = np.arange(10.0) + 5, np.arange(10.0)
    d, lo, hi = bootstrap_difference(a, b, seed=1)
    assert d == 5 and lo <= 5 <= hi and lo > 0
    assert bootstrap_difference([3.0], [1.0]) == (2.0, 2.0, 2.0)


def test_power_law_recovers_an_exponent_and_its_interval():
    rng = np.random.default_rng(0)
    sizes = [64, 128, 256, 512]
    samples = [3e-9 * n**2.5 * rng.lognormal(0, 0.02, 15) for n in sizes]
    k, lo, hi, boots = power_law(sizes, samples, seed=0)
    assert k == pytest.approx(2.5, abs=0.02) and lo < 2.5 < hi and boots.shape == (2000,)
    assert math.isnan(power_law([64], [samples[0]])[0])


@pytest.mark.parametrize("low, high, expected", [
    (0.99, 1.01, "supported"), (0.97, 1.01, "inconclusive"), (1.03, 1.05, "refuted"), (0.9, 0.95, "refuted"),
])
def test_equivalence_is_two_one_sided_verdicts(low, high, expected):
    f = equivalence((low + high) / 2, low, high, target=1.0, tolerance=0.02, n=10, method="t", label="ratio")
    assert f.verdict == expected and "within 1 +- 0.02" in f.evidence and f.threshold == 0.02


def test_all_of_takes_the_weakest_verdict_and_lists_every_part():
    def part(v, e):
        return from_interval(e, e - 1, e + 1, n=6, method="t", label=f"part {e}").__class__(
            v, e, e, e, 3, "exact", f"part {e}")

    sup, inc, ref = part("supported", 1), part("inconclusive", 2), part("refuted", 3)
    assert all_of([sup, sup]).verdict == "supported"
    assert all_of([sup, inc]).verdict == "inconclusive"
    f = all_of([sup, inc, ref], headline=1, note="three parts")
    assert f.verdict == "refuted" and f.effect == 2
    assert f.evidence == "part 1 [supported] | part 2 [inconclusive] | part 3 [refuted]; three parts"
    assert all_of([sup]).evidence == "part 1"


def test_finding_threshold_is_stated_in_effect_units():
    f = finding([2.0, 2.1, 1.9, 2.2, 2.05, 1.95], null=1.0, threshold=0.5)
    assert f.verdict == "supported" and f.threshold == 1.5
    g = finding([2.0, 2.1, 1.9, 2.2, 2.05, 1.95], direction="less", null=3.0, threshold=0.5)
    assert g.verdict == "supported" and g.threshold == 2.5


def test_two_sample_ratio_and_difference():
    a, b = np.full(6, 3.0) + np.arange(6) * 0.01, np.full(6, 1.0) + np.arange(6) * 0.01
    r = two_sample(a, b, ratio=True, threshold=1.0)
    assert r.verdict == "supported" and r.unit == "x" and r.effect == pytest.approx(np.median(a) / np.median(b))
    d = two_sample(b, a, direction="less")
    assert d.verdict == "supported" and d.effect == pytest.approx(-2.0)
    assert two_sample([], a).verdict == "inconclusive"


def test_with_note_labels_and_annotates():
    f = finding([1.0] * 6)
    assert with_note(f, "why", label="what").evidence == f"what: {f.evidence}; why"
