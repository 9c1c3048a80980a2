"""The decision rules of the claim maths pinned by value at their boundaries.

Just inside and just outside every threshold, ties with the bound, the smallest n each rule accepts, both
directions, ratio and difference effects, and every number a finding stores. A change to a rule that
changes what a user is told fails one of these tests (tests/mutation/run.py checks that it does).
"""

import math
import warnings

import numpy as np
import pytest

from dlbench import stats
from dlbench.stats import (MIN_BOOTSTRAP_N, Finding, Proportion, agresti_caffo_difference, all_of,
                           bootstrap_ci, bootstrap_difference, bootstrap_ratio_ci, decide, equivalence,
                           finding, fmt_number, from_interval, iqr, loglog_slope, mann_whitney_u,
                           median, power_law, t975, t_ci, two_sample, wilson, with_note)



def quietly(fn, *args, **kwargs):
    """Call fn with every warning an error: an edge case must be computed, not warned about."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return fn(*args, **kwargs)


# ----------------------------------------------------------------------------------------- decide

@pytest.mark.parametrize("direction, effect, low, high, expected", [
    # greater: the whole interval above the null supports, the whole interval below refutes
    ("greater", 0.3, 0.1, 0.5, "supported"),
    ("greater", -0.3, -0.5, -0.1, "refuted"),
    ("greater", 0.2, -0.1, 0.5, "inconclusive"),
    ("greater", 0.3, 0.0, 0.5, "inconclusive"),     # low on the null: not strictly above
    ("greater", -0.3, -0.5, 0.0, "inconclusive"),   # high on the null: not strictly below
    ("greater", 0.3, 0.5, 0.1, "supported"),        # bounds given high first: same interval
    # less: mirrored
    ("less", -0.3, -0.5, -0.1, "supported"),
    ("less", 0.3, 0.1, 0.5, "refuted"),
    ("less", -0.3, -0.5, 0.0, "inconclusive"),
    ("less", 0.3, 0.0, 0.5, "inconclusive"),
    ("less", -0.3, -0.1, -0.5, "supported"),
])
def test_decide_interval_side_of_the_null_strictly(direction, effect, low, high, expected):
    assert decide(effect, low, high, direction=direction, n=2) == expected


@pytest.mark.parametrize("direction, null, near, expected", [
    ("greater", 1.0, 1.5, "supported"),            # the interval's near bound exactly threshold beyond the null
    ("greater", 1.0, math.nextafter(1.5, 0.0), "inconclusive"),   # a hair short of it
    ("greater", 1.0, 1.3, "inconclusive"),         # 0.3 short of 0.5 (twice 0.3 would pass)
    ("greater", 1.0, 1.01, "inconclusive"),        # a real effect that may be smaller than practical
    ("less", 1.0, 0.5, "supported"),
    ("less", 1.0, math.nextafter(0.5, 1.0), "inconclusive"),
    ("less", 1.0, 0.7, "inconclusive"),
    ("less", 1.0, 0.99, "inconclusive"),
])
def test_decide_practical_threshold_needs_the_whole_interval_beyond_it(direction, null, near, expected):
    # the effect itself lies far beyond the threshold: only the interval's near bound decides
    side = 1 if direction == "greater" else -1
    far, effect = null + side * 0.9, null + side * 0.8
    assert decide(effect, near, far, direction=direction, null=null, threshold=0.5, n=6) == expected
    assert decide(effect, far, near, direction=direction, null=null, threshold=0.5, n=6) == expected


def test_decide_threshold_zero_still_needs_the_interval_strictly_off_the_null():
    assert decide(0.3, 0.0, 0.5, threshold=0.0, n=6) == "inconclusive"
    assert decide(0.3, 5e-324, 0.5, threshold=0.0, n=6) == "supported"
    assert decide(-0.3, -0.5, 0.0, direction="less", threshold=0.0, n=6) == "inconclusive"
    assert decide(-0.3, -0.5, -5e-324, direction="less", threshold=0.0, n=6) == "supported"
    # the effect is not what is held to the threshold: a point effect beyond it with a near bound short of it
    assert decide(10.0, 0.2, 20.0, threshold=0.5, n=6) == "inconclusive"


def test_decide_threshold_never_turns_a_refutation_into_inconclusive():
    assert decide(-0.3, -0.5, -0.1, threshold=10.0, n=6) == "refuted"
    assert decide(0.3, 0.1, 0.5, direction="less", threshold=10.0, n=6) == "refuted"


@pytest.mark.parametrize("null, low, high, expected", [
    (2.0, 2.1, 2.5, "supported"), (2.0, 1.5, 1.9, "refuted"), (2.0, 1.9, 2.5, "inconclusive"),
    (-1.0, -0.9, 0.5, "supported"), (-1.0, -1.5, -1.1, "refuted"),
])
def test_decide_against_a_nonzero_null(null, low, high, expected):
    assert decide((low + high) / 2, low, high, null=null, n=6) == expected
    swap = {"supported": "refuted", "refuted": "supported", "inconclusive": "inconclusive"}
    assert decide((low + high) / 2, low, high, direction="less", null=null, n=6) == swap[expected]


def test_decide_smallest_n_is_min_n():
    assert decide(0.3, 0.1, 0.5, n=2) == "supported"          # default min_n = 2
    assert decide(0.3, 0.1, 0.5, n=1) == "inconclusive"
    assert decide(-0.3, -0.5, -0.1, n=1) == "inconclusive"    # too few to refute as well
    assert decide(0.3, 0.1, 0.5, n=3, min_n=3) == "supported"
    assert decide(0.3, 0.1, 0.5, n=2, min_n=3) == "inconclusive"
    # without a count the verdict is never supported, whatever min_n
    assert decide(0.3, 0.1, 0.5, min_n=1) == "inconclusive"
    assert decide(0.3, 0.1, 0.5, min_n=0) == "supported"


def test_decide_a_bootstrap_interval_needs_six_values_and_other_intervals_do_not():
    assert MIN_BOOTSTRAP_N == 6
    assert decide(0.3, 0.1, 0.5, n=6, method="bootstrap") == "supported"
    assert decide(0.3, 0.1, 0.5, n=5, method="bootstrap") == "inconclusive"
    assert decide(-0.3, -0.5, -0.1, n=5, method="bootstrap") == "inconclusive"
    for method in ("t", "Wilson", "exact", ""):
        assert decide(0.3, 0.1, 0.5, n=5, method=method) == "supported"
        assert decide(0.3, 0.1, 0.5, n=2, method=method) == "supported"


@pytest.mark.parametrize("effect, low, high", [
    (math.nan, 0.1, 0.5), (0.3, math.nan, 0.5), (0.3, 0.1, math.nan),
    (math.inf, 0.1, math.inf), (0.3, 0.1, math.inf), (-math.inf, -math.inf, -0.1),
])
def test_decide_any_non_finite_number_is_inconclusive(effect, low, high):
    assert decide(effect, low, high, n=100) == "inconclusive"
    assert decide(effect, low, high, direction="less", n=100) == "inconclusive"


# ----------------------------------------------------------------------------------------- from_interval

def test_from_interval_keeps_every_number_of_the_interval():
    f = from_interval(0.4, 0.3, 0.5, n=7, method="t", null=0.05, threshold=0.2, label="gain", unit="dB")
    assert f == Finding("supported", 0.4, 0.3, 0.5, 7, "t", "gain 0.4 dB [95% t 0.3, 0.5], n=7", "dB", 0.25)
    short = from_interval(0.3, 0.1, 0.5, n=7, method="t", null=0.05, threshold=0.2)
    assert (short.verdict, short.threshold) == ("inconclusive", 0.25)    # the low bound 0.1 is short of 0.25
    g = from_interval(0.3, 0.1, 0.5, n=7, method="t", direction="less", null=1.0, threshold=0.2)
    assert g == Finding("supported", 0.3, 0.1, 0.5, 7, "t", "effect 0.3 [95% t 0.1, 0.5], n=7", "", 0.8)
    assert all(type(v) is float for v in (f.effect, f.low, f.high, f.threshold)) and type(f.n) is int


def test_from_interval_evidence_by_unit():
    assert from_interval(1.5, 1.2, 1.8, n=6, method="t", unit="x", label="ratio").evidence == \
        "ratio 1.5x [95% t 1.2, 1.8], n=6"
    assert from_interval(1.5, 1.2, 1.8, n=6, method="t", unit="ms", label="time").evidence == \
        "time 1.5 ms [95% t 1.2, 1.8], n=6"
    assert from_interval(1.5, 1.2, 1.8, n=6, method="t").evidence == "effect 1.5 [95% t 1.2, 1.8], n=6"
    assert from_interval(math.nan, math.nan, math.inf, n=6, method="t").evidence == \
        "effect nan [95% t nan, nan], n=6"


def test_from_interval_applies_its_threshold_and_min_n():
    assert from_interval(0.3, 0.1, 0.5, n=6, method="t", threshold=0.1).verdict == "supported"
    assert from_interval(0.3, 0.1, 0.5, n=6, method="t", threshold=math.nextafter(0.1, 1.0)).verdict == "inconclusive"
    assert from_interval(0.3, 0.1, 0.5, n=6, method="t", threshold=0.3).verdict == "inconclusive"
    assert from_interval(0.3, 0.1, 0.5, n=2, method="t").verdict == "supported"
    f = from_interval(0.3, 0.1, 0.5, n=2, method="t", min_n=3)
    assert f.verdict == "inconclusive" and f.evidence == "effect 0.3 [95% t 0.1, 0.5], n=2 (fewer than 3: too few)"


def test_from_interval_says_why_too_few_values_at_exactly_the_boundary():
    assert from_interval(0.3, 0.1, 0.5, n=1, method="t").evidence == \
        "effect 0.3 [95% t 0.1, 0.5], n=1 (fewer than 2: too few)"
    assert from_interval(0.3, 0.1, 0.5, n=2, method="t").evidence == "effect 0.3 [95% t 0.1, 0.5], n=2"
    five = from_interval(0.3, 0.1, 0.5, n=5, method="bootstrap")
    assert five.verdict == "inconclusive"
    assert five.evidence == ("effect 0.3 [95% bootstrap 0.1, 0.5], n=5 "
                             "(a 95% bootstrap interval needs 6 values: too few)")
    six = from_interval(0.3, 0.1, 0.5, n=6, method="bootstrap")
    assert (six.verdict, six.evidence) == ("supported", "effect 0.3 [95% bootstrap 0.1, 0.5], n=6")
    # the six-value rule is the bootstrap's alone ('and', not 'or')
    assert from_interval(0.3, 0.1, 0.5, n=3, method="t").evidence == "effect 0.3 [95% t 0.1, 0.5], n=3"


def test_from_interval_note_follows_the_evidence():
    assert from_interval(0.3, 0.1, 0.5, n=1, method="t", note="why").evidence == \
        "effect 0.3 [95% t 0.1, 0.5], n=1 (fewer than 2: too few); why"
    assert from_interval(0.3, 0.1, 0.5, n=5, method="bootstrap", note="why").evidence.endswith("too few); why")


# ----------------------------------------------------------------------------------------- finding

X24 = np.array([1.0006, 1.1611, 0.8719, 0.6406, 0.7967, 0.6091, 1.0305, 1.9544, 0.7818, 0.7333, 1.2775, 1.1954,
                1.0541, 0.628, 0.9855, 1.4157, 0.5106, 0.7955, 0.3865, 0.5248, 0.3982, 0.8891, 0.5306, 1.1453])
Y24 = np.array([0.5122, 0.6261, 0.6184, 1.0245, 0.3843, 1.1113, 0.7568, 1.9094, 1.9708, 2.4501, 1.7927, 1.1894,
                1.8774, 2.5928, 0.8809, 1.6573, 1.1956, 2.5093, 0.8038, 1.0505, 1.464, 1.3897, 0.5381, 1.4624])


SIX = [2.0, 2.1, 1.9, 2.2, 2.05, 1.95]
SKEWED = [1.0, 1.1, 1.2, 1.3, 1.4, 9.0]     # mean 2.5, median 1.25


def test_finding_t_judges_the_mean_and_bootstrap_the_median():
    t = finding(SKEWED, method="t")
    lo, hi = t_ci(SKEWED)
    assert (t.effect, t.low, t.high, t.method) == (pytest.approx(2.5), lo, hi, "t")
    b = finding(SKEWED)
    lo, hi = bootstrap_ci(SKEWED, seed=0)
    assert (b.effect, b.low, b.high, b.method) == (1.25, lo, hi, "bootstrap")


def test_finding_defaults_threshold_zero_seed_zero_label_effect():
    v = [0.52, 0.61, 0.43, 0.57, 0.44, 0.49, 0.66, 0.38]
    f = finding(v)
    assert f.verdict == "supported" and f.threshold == 0.0
    assert f.evidence == f"effect 0.505 [95% bootstrap {fmt_number(f.low)}, {fmt_number(f.high)}], n=8"
    assert f.unit == ""
    assert (f.low, f.high) == bootstrap_ci(v, seed=0) != bootstrap_ci(v, seed=1)
    s = finding(v, seed=1)
    assert (s.low, s.high) == bootstrap_ci(v, seed=1)
    for x in (X24, Y24, X24 * Y24):  # several samples: an unseeded bootstrap cannot match them all by chance
        assert (finding(x).low, finding(x).high) == bootstrap_ci(x, seed=0)


def test_finding_passes_every_setting_to_the_rule():
    f = finding([2.0, 2.2], method="t", label="gain", unit="dB", note="paired")
    assert f.evidence == f"gain 2.1 dB [95% t {fmt_number(f.low)}, {fmt_number(f.high)}], n=2; paired"
    assert f.unit == "dB" and f.n == 2
    assert finding([2.0, 2.2, 2.1], method="t", min_n=3).verdict == "supported"
    assert finding([2.0, 2.2], method="t", min_n=3).verdict == "inconclusive"
    assert finding(SIX, threshold=2.5).verdict == "inconclusive"
    assert finding(SIX, direction="less", null=3.0).verdict == "supported"


def test_finding_drops_missing_values_and_counts_the_rest():
    f = finding([2.0, None, 2.1, math.nan, 1.9, 2.2, math.inf, 2.05, 1.95])
    g = finding(SIX)
    assert (f.n, f.effect, f.low, f.high, f.verdict) == (6, g.effect, g.low, g.high, "supported")


def test_finding_says_how_many_values_it_left_out():
    f = finding([2.0, None, 2.1, math.nan, 1.9, 2.2, math.inf, 2.05, 1.95])
    assert f.evidence == (f"effect {fmt_number(f.effect)} [95% bootstrap {fmt_number(f.low)}, {fmt_number(f.high)}], "
                          "n=6; 3 of 9 values not finite, left out")
    g = finding(SIX + [-math.inf], note="paired", method="t")
    assert g.evidence.endswith("], n=6; 1 of 7 values not finite, left out; paired")
    assert finding(SIX, note="paired").evidence.endswith("], n=6; paired")
    assert finding(SIX).evidence.endswith("], n=6")


def test_finding_of_nothing_is_inconclusive_and_quiet():
    for method in ("bootstrap", "t"):
        f = quietly(finding, [math.nan], method=method)
        assert f.verdict == "inconclusive" and f.n == 0 and math.isnan(f.effect)


# ----------------------------------------------------------------------------------------- two_sample

A6 = np.array([10.0, 10.5, 9.8, 10.2, 10.1, 9.9])
B6 = np.array([5.0, 5.2, 4.9, 5.1, 5.05, 4.95])


def test_two_sample_difference_against_zero_with_default_threshold_zero():
    a, b = B6 + 0.5, B6          # a - b = 0.5 > 0 but below 1
    d = two_sample(a, b)
    assert d.verdict == "supported" and d.effect == pytest.approx(0.5) and d.threshold == 0.0
    eff, lo, hi = bootstrap_difference(a, b, seed=0)
    assert (d.effect, d.low, d.high, d.n, d.method) == (eff, lo, hi, 6, "bootstrap")
    assert d.evidence == f"difference a - b 0.5 [95% bootstrap {fmt_number(lo)}, {fmt_number(hi)}], n=6"
    assert two_sample(b, a).verdict == "refuted"
    assert two_sample(b, a, direction="less").verdict == "supported"


def test_two_sample_ratio_against_one():
    r = two_sample(B6, A6, ratio=True)            # a/b about 0.5: below 1 although above 0
    assert r.verdict == "refuted" and r.effect == pytest.approx(np.median(B6) / np.median(A6))
    eff, lo, hi = bootstrap_ratio_ci(A6, B6, seed=0)
    assert (r.effect, r.low, r.high, r.n, r.unit, r.threshold) == (eff, lo, hi, 6, "x", 1.0)
    assert r.evidence == f"ratio a/b {fmt_number(eff)}x [95% bootstrap {fmt_number(lo)}, {fmt_number(hi)}], n=6"
    assert two_sample(B6, A6, ratio=True, direction="less").verdict == "supported"
    assert two_sample(A6, B6, ratio=True).verdict == "supported"


def test_two_sample_ratio_threshold_is_beyond_one():
    a = B6 * 1.3
    _, low, high = bootstrap_ratio_ci(B6, a, seed=0)                   # about [1.26, 1.34] around 1.3
    assert two_sample(a, B6, ratio=True, threshold=low - 1.0).verdict == "supported"
    r = two_sample(a, B6, ratio=True, threshold=math.nextafter(low - 1.0, 1.0))
    assert r.verdict == "inconclusive" and r.threshold == pytest.approx(low)
    # the median ratio 1.3 is beyond 1 + 0.3 - 1e-9, but the interval's low bound is not
    assert two_sample(a, B6, ratio=True, threshold=0.3 - 1e-9).verdict == "inconclusive"
    _, low, high = bootstrap_ratio_ci(a, B6, seed=0)                   # about [0.747, 0.793] around 1/1.3
    s = two_sample(B6, a, ratio=True, direction="less", threshold=0.2)
    assert s.verdict == "supported" and s.threshold == pytest.approx(0.8)
    assert two_sample(B6, a, ratio=True, direction="less", threshold=1.0 - high).verdict == "supported"
    assert two_sample(B6, a, ratio=True, direction="less",
                      threshold=math.nextafter(1.0 - high, 1.0)).verdict == "inconclusive"


def test_two_sample_difference_threshold():
    a = B6 + 0.5
    _, low, _ = bootstrap_difference(a, B6, seed=0)                   # about 0.35: the median gap is 0.5
    assert two_sample(a, B6, threshold=low).verdict == "supported"
    assert two_sample(a, B6, threshold=math.nextafter(low, 1.0)).verdict == "inconclusive"
    assert two_sample(a, B6, threshold=0.5 - 1e-9).verdict == "inconclusive"
    assert two_sample(B6, a, direction="less", threshold=low).verdict == "supported"
    assert two_sample(B6, a, direction="less", threshold=math.nextafter(low, 1.0)).verdict == "inconclusive"


def test_two_sample_n_is_the_smaller_group_and_six_are_needed():
    assert two_sample(A6, B6[:5]).n == 5 and two_sample(A6, B6[:5]).verdict == "inconclusive"
    assert two_sample(A6[:5], B6, ratio=True).verdict == "inconclusive"
    assert two_sample(list(A6) + [math.nan, None], B6).n == 6
    assert two_sample(A6, list(B6) + [None, math.inf], ratio=True).n == 6


def test_two_sample_labels_units_and_notes():
    d = two_sample(A6, B6, label="gap", unit="dB", note="unpaired")
    assert d.evidence == (f"gap {fmt_number(d.effect)} dB [95% bootstrap {fmt_number(d.low)}, "
                          f"{fmt_number(d.high)}], n=6; unpaired")
    assert d.unit == "dB"
    r = two_sample(A6, B6, ratio=True, label="speed-up", unit="dB", note="n.b.")
    assert r.evidence == (f"speed-up {fmt_number(r.effect)}x [95% bootstrap {fmt_number(r.low)}, "
                          f"{fmt_number(r.high)}], n=6; n.b.")
    assert r.unit == "x"


def test_two_sample_seed_reaches_the_bootstrap():
    assert two_sample(A6, B6, seed=3).low == bootstrap_difference(A6, B6, seed=3)[1]
    assert two_sample(A6, B6, ratio=True, seed=3).low == bootstrap_ratio_ci(B6, A6, seed=3)[1]
    assert two_sample(A6, B6).low != two_sample(A6, B6, seed=3).low
    assert two_sample(A6, B6, ratio=True).low != two_sample(A6, B6, ratio=True, seed=3).low


def test_two_sample_with_one_value_a_side_and_with_none():
    one = two_sample([3.0], [1.0], ratio=True)
    assert one == Finding("inconclusive", 3.0, 3.0, 3.0, 1, "bootstrap",
                          "ratio a/b 3x [95% bootstrap 3, 3], n=1 (fewer than 2: too few)", "x", 1.0)
    one_d = two_sample([3.0], [1.0])
    assert one_d.evidence == "difference a - b 2 [95% bootstrap 2, 2], n=1 (fewer than 2: too few)"
    none = two_sample([], [1.0, 2.0], label="gap", unit="dB", note="why")
    assert (none.verdict, none.n, none.method, none.unit) == ("inconclusive", 0, "bootstrap", "dB")
    assert none.evidence == "gap nan dB [95% bootstrap nan, nan], n=0 (fewer than 2: too few); why"
    assert two_sample([math.nan], [1.0]).evidence.startswith("effect nan [95% bootstrap nan, nan], n=0")


# ----------------------------------------------------------------------------------------- equivalence

@pytest.mark.parametrize("low, high, expected", [
    (0.99, 1.01, "supported"),
    (0.98, 1.01, "inconclusive"),      # touches the band's lower edge: not strictly inside
    (0.99, 1.02, "inconclusive"),      # touches the upper edge
    (0.9, 0.985, "inconclusive"),      # straddles the lower edge
    (1.03, 1.05, "refuted"), (0.9, 0.97, "refuted"),
    (0.97, 1.03, "inconclusive"),      # wider than the band
])
def test_equivalence_band_edges(low, high, expected):
    f = equivalence((low + high) / 2, low, high, target=1.0, tolerance=0.02, n=10, method="t", label="ratio")
    assert f.verdict == expected


def test_equivalence_keeps_the_interval_and_its_method():
    f = equivalence(1.0, 0.99, 1.01, target=1.0, tolerance=0.02, n=6, method="bootstrap", label="ratio",
                    unit="x")
    assert f == Finding("supported", 1.0, 0.99, 1.01, 6, "bootstrap",
                        "ratio 1x [95% bootstrap 0.99, 1.01], n=6; within 1 +- 0.02", "x", 0.02)
    assert equivalence(1.0, 0.99, 1.01, target=1.0, tolerance=0.02, n=5, method="bootstrap",
                       label="ratio").verdict == "inconclusive"
    assert equivalence(1.0, 0.99, 1.01, target=1.0, tolerance=0.02, n=5, method="t",
                       label="ratio").verdict == "supported"
    # both one-sided verdicts hold a bootstrap interval to six values: too few cannot refute either
    for low, high in ((1.03, 1.07), (0.93, 0.97)):
        assert equivalence((low + high) / 2, low, high, target=1.0, tolerance=0.02, n=5, method="bootstrap",
                           label="ratio").verdict == "inconclusive"
        assert equivalence((low + high) / 2, low, high, target=1.0, tolerance=0.02, n=6, method="bootstrap",
                           label="ratio").verdict == "refuted"
    assert equivalence(1.0, 0.99, 1.01, target=1.0, tolerance=0.02, n=6, method="t", label="r",
                       note="close").evidence == "r 1 [95% t 0.99, 1.01], n=6; close"
    assert equivalence(1.0, 0.99, 1.01, target=1.0, tolerance=0.02, n=6, method="t", label="r").unit == ""


# ----------------------------------------------------------------------------------------- all_of

def _part(verdict, effect, n=6):
    return Finding(verdict, effect, effect - 1, effect + 1, n, f"m{effect:g}", f"part {effect:g}", f"u{effect:g}",
                   effect / 10)


def test_all_of_headline_numbers_and_smallest_n():
    parts = [_part("supported", 1, n=9), _part("supported", 2, n=7), _part("supported", 3, n=8)]
    f = all_of(parts, headline=1)
    assert f == Finding("supported", 2, 1, 3, 7, "m2", "part 1 [supported] | part 2 [supported] | part 3 [supported]",
                        "u2", 0.2, ("supported", "supported", "supported"))
    mixed = all_of([_part("supported", 1), _part("refuted", 2), _part("inconclusive", 3)])
    assert mixed.parts == ("supported", "refuted", "inconclusive")
    assert all_of(parts[:1]).parts == ()                # one part: nothing to name
    assert all_of(parts[:2]).evidence == "part 1 [supported] | part 2 [supported]"
    assert all_of(parts[:1]).evidence == "part 1"


def test_all_of_any_refuted_part_refutes_and_any_other_part_leaves_it_inconclusive():
    sup, inc, ref = _part("supported", 1), _part("inconclusive", 2), _part("refuted", 3)
    assert all_of([ref, sup]).verdict == "refuted"
    assert all_of([inc, ref]).verdict == "refuted"
    assert all_of([sup, inc]).verdict == "inconclusive"
    assert all_of([sup, _part("not run", 4)]).verdict == "inconclusive"


# ----------------------------------------------------------------------------------------- exact checks

def test_exact_check_tolerance_is_inclusive_and_not_ten_times_wider():
    from dlbench.results import Recorder

    rec = Recorder("demo")
    assert rec.check("X.a", 1e-6, 1e-6, what="max |diff|") is True
    assert rec.check("X.b", math.nextafter(1e-6, 1.0), 1e-6, what="max |diff|") is False
    assert rec.check("X.c", 5e-6, 1e-6, what="max |diff|") is False
    assert rec.check("X.d", math.nan, 1e-6, what="max |diff|") is False
    assert rec.check("X.g", math.inf, 1e-6, what="max |diff|") is False
    assert rec.check("X.e", 0.0, 0.0, what="cells disagreeing") is True
    assert rec.check("X.f", 1.0, 0.0, what="cells disagreeing") is False
    df = rec.table().to_pandas()
    assert list(df["verdict"]) == ["pass", "fail", "fail", "fail", "fail", "pass", "fail"]
    assert list(df["threshold"]) == [1e-6] * 5 + [0.0, 0.0]


# ----------------------------------------------------------------------------------------- intervals: edges

def test_bootstrap_intervals_with_two_values_span_them():
    assert bootstrap_ci([1.0, 3.0]) == (1.0, 3.0)
    assert bootstrap_ratio_ci([1.0, 3.0], [2.0, 2.0]) == (1.0, pytest.approx(2 / 3), 2.0)
    assert bootstrap_ratio_ci([2.0, 2.0], [1.0, 3.0]) == (1.0, 0.5, 1.5)
    assert bootstrap_difference([1.0, 3.0], [2.0, 2.0]) == (0.0, -1.0, 1.0)
    assert bootstrap_difference([2.0, 2.0], [1.0, 3.0]) == (0.0, -1.0, 1.0)


def test_bootstrap_intervals_with_one_value_on_a_side_are_points():
    assert bootstrap_ci([2.0]) == (2.0, 2.0)
    assert bootstrap_ci([2.0], stat=np.mean) == (2.0, 2.0)
    assert bootstrap_ratio_ci([2.0], [1.0, 3.0, 5.0, 9.0]) == (2.0, 2.0, 2.0)
    assert bootstrap_ratio_ci([1.0, 3.0, 5.0, 9.0], [4.0]) == (1.0, 1.0, 1.0)
    assert bootstrap_difference([2.0], [1.0, 3.0, 5.0, 9.0]) == (-2.0, -2.0, -2.0)
    assert bootstrap_difference([1.0, 3.0, 5.0, 9.0], [4.0]) == (0.0, 0.0, 0.0)


def test_intervals_of_nothing_are_nan_and_quiet():
    for lo, hi in (quietly(bootstrap_ci, []), quietly(t_ci, [])):
        assert math.isnan(lo) and math.isnan(hi)


def test_bootstrap_defaults_are_seed_zero_and_2000_resamples():
    x, y = X24, Y24
    assert bootstrap_ci(x, stat=np.mean) == bootstrap_ci(x, stat=np.mean, seed=0, n_boot=2000)
    assert bootstrap_ci(x, stat=np.mean) != bootstrap_ci(x, stat=np.mean, seed=1)
    assert bootstrap_ci(x, stat=np.mean) != bootstrap_ci(x, stat=np.mean, n_boot=2001)
    assert bootstrap_ci(x) == bootstrap_ci(x, seed=0) != bootstrap_ci(x, seed=1)
    assert bootstrap_ratio_ci(x, y) == bootstrap_ratio_ci(x, y, seed=0, n_boot=2000) != bootstrap_ratio_ci(x, y, seed=1)
    assert bootstrap_ratio_ci(x, y) != bootstrap_ratio_ci(x, y, n_boot=2001)
    assert bootstrap_difference(x, y) == bootstrap_difference(x, y, seed=0, n_boot=2000) \
        != bootstrap_difference(x, y, seed=1)
    assert bootstrap_difference(x, y) != bootstrap_difference(x, y, n_boot=2001)
    sizes, samples = [8, 16, 32], [x, x * 3.9, x * 16.5]
    k, lo, hi, boots = power_law(sizes, samples)
    assert (k, lo, hi) == power_law(sizes, samples, seed=0, n_boot=2000)[:3] != power_law(sizes, samples, seed=1)[:3]
    assert boots.shape == (2000,)


def test_bootstrap_ratio_with_zero_medians_is_quiet_and_ignores_zero_over_zero():
    base, new = [0.0, 0.0, 0.0, 1.0, 2.0, 3.0], [0.0, 0.0, 0.0, 2.0, 4.0, 6.0]
    r, lo, hi = quietly(bootstrap_ratio_ci, base, new)
    assert (r, lo) == (2.0, 0.0)


def test_t_ci_small_samples():
    assert t_ci([2.0]) == (2.0, 2.0)
    lo, hi = t_ci([1.0, 3.0])                     # mean 2, sd sqrt 2, n 2: half = t975(1) * 1
    assert (lo, hi) == (pytest.approx(2 - 12.706), pytest.approx(2 + 12.706))
    lo, hi = t_ci([1.0, 2.0, 3.0])
    assert (lo, hi) == (pytest.approx(2 - 4.303 / math.sqrt(3)), pytest.approx(2 + 4.303 / math.sqrt(3)))


def test_t975_table_edges_and_expansion():
    assert t975(0) == math.inf and t975(-3) == math.inf
    assert t975(29) == 2.045 and t975(30) == 2.042
    z = 1.959963984540054
    assert t975(31) == pytest.approx(z + (z**3 + z) / 124 + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * 31**2), rel=1e-15)
    assert z < t975(10**6) < t975(1000) < t975(31) < t975(30)


# ----------------------------------------------------------------------------------------- proportions: edges

def test_wilson_of_no_trials_is_nan():
    w = wilson(0, 0)
    assert (w.k, w.n) == (0, 0) and all(math.isnan(v) for v in (w.p, w.low, w.high))
    assert math.isnan(wilson(3, -1).p)


@pytest.mark.parametrize("n", [3, 6, 7, 12, 25])
def test_wilson_bounds_are_exactly_0_and_1_at_none_and_all(n):
    assert wilson(0, n).low == 0.0 and wilson(0, n).p == 0.0
    assert wilson(n, n).high == 1.0 and wilson(n, n).p == 1.0


def test_wilson_keeps_k_and_n():
    assert wilson(3, 10) == Proportion(3, 10, 0.3, wilson(3, 10).low, wilson(3, 10).high)
    assert 0 < wilson(3, 10).low < 0.3 < wilson(3, 10).high < 1


def test_agresti_caffo_interval_is_clipped_at_minus_one_and_one():
    d, lo, hi = agresti_caffo_difference(0.0, 20, 1.0, 20)
    assert (d, lo) == (-1.0, -1.0) and hi > -1.0
    d, lo, hi = agresti_caffo_difference(1.0, 20, 0.0, 20)
    assert (d, hi) == (1.0, 1.0) and lo < 1.0


# ----------------------------------------------------------------------------------------- Mann-Whitney: edges

def test_mann_whitney_needs_a_value_on_each_side():
    for x, y in (([], [1.0]), ([1.0], []), ([], [])):
        with pytest.raises(ValueError, match="^both samples need at least one value$"):
            mann_whitney_u(x, y)


def test_mann_whitney_exact_p_is_at_most_one_at_the_centre():
    # U = n1 n2 / 2 exactly: twice P(U <= 2) is 4/3, and a p-value is at most 1
    assert mann_whitney_u([1.0, 4.0], [2.0, 3.0]) == (2.0, 1.0)


def test_mann_whitney_of_all_equal_values_is_p_one():
    assert mann_whitney_u([1.0] * 30, [1.0] * 30) == (450.0, 1.0)   # normal approximation, zero variance
    assert mann_whitney_u([1.0] * 3, [1.0] * 3) == (4.5, 1.0)       # exact with ties


def test_mann_whitney_exact_with_ties_up_to_exactly_exact_splits(monkeypatch):
    x, y = [1.0, 2.0, 2.0], [3.0, 4.0, 5.0]          # C(6, 3) = 20 splits; U = 0, p = 2/20 exactly
    monkeypatch.setattr(stats, "EXACT_SPLITS", 20)
    assert mann_whitney_u(x, y) == (0.0, 0.1)
    monkeypatch.setattr(stats, "EXACT_SPLITS", 19)  # one split fewer allowed: the normal approximation
    u, p = mann_whitney_u(x, y)
    assert u == 0.0 and p == pytest.approx(0.0765, abs=1e-4) and p != 0.1


# ----------------------------------------------------------------------------------------- small helpers

def test_fmt_number():
    assert [fmt_number(v) for v in (None, math.nan, math.inf, -math.inf)] == ["nan"] * 4
    assert [fmt_number(v) for v in (0.0, 1234.5, 0.000123456, -2.5)] == ["0", "1.23e+03", "0.000123", "-2.5"]


def test_with_note_defaults_leave_the_evidence_alone():
    f = finding(SIX)
    assert with_note(f) == f
    assert with_note(f, label="L").evidence == f"L: {f.evidence}"
    assert with_note(f, "n").evidence == f"{f.evidence}; n"


def test_iqr_and_median():
    assert iqr([1.0, 2.0, 3.0, 4.0, 5.0]) == (2.0, 4.0)
    assert iqr(np.arange(101.0)) == (25.0, 75.0)
    assert median([3, 1, 2, 10]) == 2.5 and type(median([3, 1])) is float


@pytest.mark.parametrize("fn", [
    lambda v, w: median(v), lambda v, w: iqr(v), lambda v, w: bootstrap_ci(v), lambda v, w: t_ci(v),
    lambda v, w: bootstrap_ratio_ci(v, w), lambda v, w: bootstrap_ratio_ci(w, v),
    lambda v, w: bootstrap_difference(v, w), lambda v, w: bootstrap_difference(w, v),
    lambda v, w: loglog_slope([8, 16, 32, 64, 128, 256, 512, 1024], v), lambda v, w: loglog_slope(v, w),
    lambda v, w: power_law([8, 16], [v, w])[:3],
    lambda v, w: finding(v), lambda v, w: finding(v, method="t"), lambda v, w: two_sample(v, w),
    lambda v, w: two_sample(w, v), lambda v, w: two_sample(v, w, ratio=True), lambda v, w: two_sample(w, v, ratio=True),
], ids=["median", "iqr", "bootstrap_ci", "t_ci", "ratio_base", "ratio_new", "difference_a", "difference_b",
        "slope_values", "slope_sizes", "power_law", "finding", "finding_t", "two_sample_a", "two_sample_b",
        "ratio_a", "ratio_b"])
def test_float32_input_is_computed_in_float64(fn):
    # dlbench's arrays are float32 by default: a statistic of them must not round in float32
    v32 = np.array([0.1, 0.7, 0.3, 1.9, 1.3, 0.6, 1.1, 0.9], dtype=np.float32)
    w32 = np.array([2.3, 0.9, 3.1, 1.7, 2.9, 0.4, 2.2, 1.6], dtype=np.float32)
    got, want = fn(v32, w32), fn(v32.astype(np.float64), w32.astype(np.float64))
    if isinstance(got, Finding):
        assert got == want
    else:
        assert np.array_equal(np.asarray(got, dtype=float), np.asarray(want, dtype=float))


def test_power_law_needs_two_sizes():
    k, lo, hi, boots = power_law([64], [[1.0, 2.0]], n_boot=5)
    assert math.isnan(k) and math.isnan(lo) and math.isnan(hi)
    assert boots.dtype == float and boots.shape == (5,) and np.isnan(boots).all()
    k, lo, hi, _ = power_law([8, 16], [[1.0, 1.0], [4.0, 4.0]])
    assert (k, lo, hi) == (pytest.approx(2.0), pytest.approx(2.0), pytest.approx(2.0))
