"""compare's decisions pinned by value: the per-row rule at every threshold (ratio and difference, both
directions, the strict p-value and the n/a boundary), the words and regressions each category gives, the
confirmation across base/new pairings, how claims and checks change, and the option parsers.

Results are built in memory (no files): what is pinned is the decision, not the file format.
"""

import math
import warnings

import numpy as np
import pytest

from dlbench.compare import (CLAIM_COLUMNS, DEFAULT_ALPHA, DEFAULT_THRESHOLD, FAIL_ON, N_BOOT, Judgement,
                             changed_claims, changed_rows, compare, compare_files, judge, parse_fail_on,
                             parse_threshold, smallest_p, unconfirmed)
from dlbench.errors import DlbenchError
from dlbench.protocol import Judgement as Verdict
from dlbench.results import Recorder, make_results
from dlbench.stats import Finding, bootstrap_difference, bootstrap_ratio_ci, mann_whitney_u
from dlbench.timing import Timing

SIX = 6  # six values a side: the smallest count whose total separation reaches p < 0.01 (2/924)
BANDWIDTH = {"float32_cache": 120.0, "float32_dram": 45.0, "float64_cache": 60.0, "float64_dram": 20.0}


def const(value, n=SIX):
    return [float(value)] * n


# ----------------------------------------------------------------------------------------- smallest p

def test_smallest_p_is_two_over_the_number_of_splits():
    assert smallest_p(0, 5) == 1.0 and smallest_p(5, 0) == 1.0 and smallest_p(-1, 3) == 1.0
    assert smallest_p(1, 1) == 1.0                   # 2 / C(2, 1) = 1
    assert smallest_p(1, 2) == 2 / 3
    assert smallest_p(3, 3) == 0.1 and smallest_p(5, 5) == 2 / 252 and smallest_p(6, 6) == 2 / 924
    assert smallest_p(2, 7) == 2 / 36
    assert smallest_p(2, 1) == 2 / 3 and smallest_p(5, 1) == 2 / 6   # one value on the new side is enough


def test_defaults():
    assert (DEFAULT_THRESHOLD, DEFAULT_ALPHA, N_BOOT, FAIL_ON) == (0.10, 0.01, 2000, ("timing", "quality", "verdict"))


# ----------------------------------------------------------------------------------------- judge: ratio

@pytest.mark.parametrize("ratio, direction", [
    (1.1, 1),                          # the whole interval at 1 + threshold: larger
    (math.nextafter(1.1, 0.0), 0),     # a hair short
    (1.06, 0),                         # beyond half the threshold but not the threshold
    (2.0, 1),
    (1 / 1.1, -1),                     # at 1 / (1 + threshold): smaller (symmetric on a log scale)
    (math.nextafter(1 / 1.1, 1.0), 0),
    (0.95, 0), (0.91, 0),
    (0.5, -1),
])
def test_judge_ratio_thresholds_are_inclusive_and_log_symmetric(ratio, direction):
    # constant samples: the bootstrap interval is the point ratio itself, p = 2/924
    j = judge(const(1.0), const(ratio))
    assert j == Judgement("ratio", ratio, ratio, ratio, 2 / 924, 2 / 924, direction)


def test_judge_ratio_threshold_zero_takes_any_significant_change():
    assert judge(const(1.0), const(1.001), threshold=0).direction == 1
    assert judge(const(1.0), const(0.999), threshold=0).direction == -1
    assert judge(const(1.0), const(1.0), threshold=0).direction == 0


def test_judge_ratio_whole_interval_must_clear_the_threshold():
    base = [1.0, 1.0, 1.0, 1.0, 1.0, 1.0]
    new = [1.3, 1.3, 1.3, 1.05, 1.05, 1.05]        # median x1.175, but the interval reaches down to 1.05
    j = judge(base, new)
    assert (j.estimate, j.low, j.high, j.p) == (pytest.approx(1.175), 1.05, 1.3, 2 / 924)
    assert j.direction == 0
    assert judge(new, base).direction == 0


def test_judge_p_must_be_strictly_below_alpha():
    base = [1.0, 1.1, 1.2, 1.3, 1.4, 1.5, 1.6]
    new = [1.45, 1.7, 1.8, 1.9, 2.0, 2.1, 2.2]
    p = mann_whitney_u(base, new)[1]
    assert p == pytest.approx(0.002331, abs=1e-6)
    assert judge(base, new, threshold=0, alpha=p).direction == 0
    assert judge(base, new, threshold=0, alpha=math.nextafter(p, 1.0)).direction == 1
    assert judge(new, base, threshold=0, alpha=p).direction == 0
    assert judge(new, base, threshold=0, alpha=math.nextafter(p, 1.0)).direction == -1


def test_judge_numbers_are_the_bootstrap_and_mann_whitney_of_the_two_samples():
    rng = np.random.default_rng(3)
    base, new = rng.lognormal(0, 0.2, 9), rng.lognormal(0.4, 0.2, 8)
    j = judge(base, new)
    r, lo, hi = bootstrap_ratio_ci(base, new, n_boot=2000, seed=0)
    assert j == Judgement("ratio", r, lo, hi, mann_whitney_u(base, new)[1], smallest_p(9, 8), j.direction)
    r, lo, hi = bootstrap_ratio_ci(base, new, n_boot=2000, seed=4)
    assert (j.low, j.high) != (lo, hi) and judge(base, new, seed=4).low == lo
    d = judge(base - 1, new - 1)
    e, lo, hi = bootstrap_difference(new - 1, base - 1, n_boot=2000, seed=0)
    assert (d.effect, d.estimate, d.low, d.high) == ("difference", e, lo, hi)
    assert judge(base - 1, new - 1, seed=4).low == bootstrap_difference(new - 1, base - 1, seed=4)[1]


def test_judge_positive_samples_get_a_ratio_others_a_difference():
    assert judge(const(2.0), const(3.0)).effect == "ratio"
    assert judge(const(2.0), const(3.0)).estimate == 1.5
    for base, new in ((const(0.0), const(1.0)), (const(1.0), const(0.0)), (const(-2.0), const(-3.0)),
                      ([0.0] + const(1.0, 5), const(2.0))):
        j = judge(base, new)
        assert j.effect == "difference" and j.estimate == np.median(new) - np.median(base)


def test_judge_drops_values_that_are_not_finite():
    base, new = const(1.0) + [math.nan, math.inf], const(2.0) + [-math.inf]
    assert judge(base, new) == judge(const(1.0), const(2.0))
    assert judge(base, new).min_p == 2 / 924
    # a -inf does not make the samples "not positive": it is dropped first
    assert judge(const(1.0) + [-math.inf], const(2.0)).effect == "ratio"


# ----------------------------------------------------------------------------------------- judge: difference

@pytest.mark.parametrize("new, direction", [
    (-9.0, 1),                                   # d = 1 = threshold x |median(base)| = 0.1 x 10
    (math.nextafter(-9.0, -10.0), 0),
    (-9.5, 0),                                   # half the threshold
    (-11.0, -1),
    (math.nextafter(-11.0, -10.0), 0),
    (-10.5, 0),
])
def test_judge_difference_threshold_is_relative_to_the_size_of_the_base(new, direction):
    j = judge(const(-10.0), const(new))
    assert (j.effect, j.direction) == ("difference", direction)
    assert j.estimate == j.low == j.high == new + 10.0


def test_judge_difference_needs_the_whole_interval_off_zero_even_at_threshold_zero():
    # three of nine new values tie the base: about one resample in seven has the base's median
    up = judge(const(-1.0), const(-1.0, 3) + const(5.0), threshold=0, alpha=0.05)
    assert (up.estimate, up.low, up.high) == (6.0, 0.0, 6.0) and up.p < 0.05 and up.direction == 0
    down = judge(const(-1.0), const(-1.0, 3) + const(-7.0), threshold=0, alpha=0.05)
    assert (down.estimate, down.low, down.high) == (-6.0, -6.0, 0.0) and down.p < 0.05 and down.direction == 0
    assert judge(const(0.0), const(0.5), threshold=0).direction == 1
    assert judge(const(0.0), const(-0.5), threshold=0).direction == -1


# ----------------------------------------------------------------------------------------- judge: n/a

def test_judge_difference_p_must_be_strictly_below_alpha():
    base = [-v for v in (1.0, 1.1, 1.2, 1.3, 1.4, 1.5, 1.6)]
    new = [-v for v in (1.45, 1.7, 1.8, 1.9, 2.0, 2.1, 2.2)]
    p = mann_whitney_u(base, new)[1]
    down = judge(base, new, threshold=0, alpha=p)
    assert (down.effect, down.direction, down.min_p) == ("difference", 0, smallest_p(7, 7))
    assert judge(base, new, threshold=0, alpha=math.nextafter(p, 1.0)).direction == -1
    assert judge(new, base, threshold=0, alpha=p).direction == 0
    assert judge(new, base, threshold=0, alpha=math.nextafter(p, 1.0)).direction == 1


def test_judge_missing_values_and_empty_sides_are_quiet():
    assert judge(const(1.0) + [None], const(2.0) + [None]) == judge(const(1.0), const(2.0))
    assert judge([-1.0] * 6 + [None], const(2.0)) == judge([-1.0] * 6, const(2.0))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for base, new in (([], const(1.0)), (const(1.0), []), (const(-1.0), [])):
            j = judge(base, new)
            assert math.isnan(j.estimate) and j.direction is None


def test_judge_too_few_values_is_not_testable_at_exactly_alpha():
    na = judge(const(1.0, 3), const(2.0, 3), alpha=0.1)           # smallest p 2/20 = 0.1, not below alpha
    assert na == Judgement("ratio", 2.0, na.low, na.high, na.p, 0.1, None)
    assert all(math.isnan(v) for v in (na.low, na.high, na.p))
    assert judge(const(1.0, 3), const(2.0, 3), alpha=math.nextafter(0.1, 1.0)).direction == 1
    r = judge(const(2.0, 3), const(3.0, 3))
    assert (r.effect, r.estimate, r.direction) == ("ratio", 1.5, None)
    d = judge(const(-1.0, 3), const(2.0, 3))
    assert (d.effect, d.estimate, d.direction) == ("difference", 3.0, None)
    for base, new in (([], const(1.0)), (const(1.0), []), ([math.nan], const(1.0))):
        e = judge(base, new)
        assert e.direction is None and math.isnan(e.estimate) and e.min_p == 1.0


# ----------------------------------------------------------------------------------------- parsers

@pytest.mark.parametrize("text, value", [
    ("10%", 0.1), (" 5% ", 0.05), ("0.1", 0.1), ("0", 0.0), ("0%", 0.0), ("0.99", 0.99), ("100%", 1.0),
    ("999%", 9.99), (0.25, 0.25),
])
def test_parse_threshold_accepts(text, value):
    assert parse_threshold(text) == pytest.approx(value)


@pytest.mark.parametrize("text, message", [
    ("x", "--threshold: expected a percentage like 10% or a fraction like 0.1, got 'x'"),
    ("%", "--threshold: expected a percentage like 10% or a fraction like 0.1, got '%'"),
    ("1", "--threshold 1: write a percentage with % (e.g. 1%) or a fraction below 1"),
    ("1.5", "--threshold 1.5: write a percentage with % (e.g. 1.5%) or a fraction below 1"),
    ("1000%", "--threshold 1000%: must be between 0% and 1000%"),
    ("-1%", "--threshold -1%: must be between 0% and 1000%"),
    ("-0.1", "--threshold -0.1: must be between 0% and 1000%"),
    ("nan%", "--threshold nan%: must be between 0% and 1000%"),
    ("inf%", "--threshold inf%: must be between 0% and 1000%"),
])
def test_parse_threshold_refuses_with_one_line(text, message):
    with pytest.raises(DlbenchError) as e:
        parse_threshold(text)
    assert str(e.value) == message


def test_parse_fail_on():
    assert parse_fail_on(None) == FAIL_ON and parse_fail_on("all") == FAIL_ON and parse_fail_on(" all ") == FAIL_ON
    assert parse_fail_on("none") == () and parse_fail_on(" none ") == ()
    assert parse_fail_on("verdict, timing") == ("timing", "verdict")
    assert parse_fail_on("quality") == ("quality",)
    for text, message in (("", "--fail-on '': an empty category; say 'none' to only report"),
                          ("timing,,verdict", "--fail-on 'timing,,verdict': an empty category; say 'none' to only "
                                              "report"),
                          ("speed", "--fail-on: unknown category 'speed'; valid: timing, quality, verdict, all, none"),
                          ("none,timing", "--fail-on: unknown category 'none'; valid: timing, quality, verdict, all, "
                                          "none")):
        with pytest.raises(DlbenchError) as e:
            parse_fail_on(text)
        assert str(e.value) == message


# ----------------------------------------------------------------------------------------- whole comparisons

def run(*, timings=None, metrics=None, curves=None, claims=None, checks=None, grid=None, run_id=None,
        seeds=(0, 1, 2, 3, 4, 5), options=None, fingerprint=None, bandwidth=BANDWIDTH, experiment="demo"):
    """An in-memory run: timings {case n: samples}, metrics {(name, better): values}, curves [per seed],
    claims {id: (verdict, control, sensitivity, basis)}, checks {id: [errors]} (tolerance 1e-6)."""
    rec = Recorder(experiment)
    for n, samples in (timings or {}).items():
        rec.timing("relu", Timing(np.asarray(samples, float), loops=10, items=n, bytes=8.0 * n), case={"n": n})
    for (name, better), values in (metrics or {}).items():
        rec.metric(name, values, case={"opt": "adam"}, better=better, seeds=range(len(values)))
    for seed, (steps, values) in enumerate(curves or []):
        rec.curve("loss", values, case={"opt": "sgd"}, seed=seed, steps=steps)
    for cid, (verdict, control, sensitivity, basis) in (claims or {}).items():
        f = Finding(verdict, 1.0, 0.5, 1.5, 6, "bootstrap", f"{cid} {verdict}")
        rec.verdict(Verdict(cid, verdict, f, control, sensitivity, f.evidence), f"claim {cid}", basis=basis)
    for cid, errors in (checks or {}).items():
        for e in errors:
            rec.check(cid, e, 1e-6, what="max |diff|")
    for cid, verdict in (grid or {}).items():
        rec.finding(cid, Finding(verdict, 1.0, 0.5, 1.5, 6, "bootstrap", "e"), point={"lr": 0.1})
    meta = {"fingerprint": dict(fingerprint or {"cpu_model": "AMD EPYC 7B13", "threads": 2}),
            "bandwidth": dict(bandwidth or {}), "seeds": list(seeds), "options": options or {}}
    if run_id:
        meta["run_id"] = run_id
    return make_results([rec], meta)[1]


def row(c, metric="relu"):
    r = c.rows[c.rows["metric"] == metric]
    assert len(r) == 1
    return r.iloc[0]


def test_timing_rows_are_slower_or_faster_and_only_slower_regresses():
    c = compare(run(timings={100: const(1.0)}), run(timings={100: const(1.2)}))
    r = row(c)
    assert (r["category"], r["result"], r["regression"], r["effect"], r["estimate"]) == \
        ("timing", "slower", True, "ratio", pytest.approx(1.2))
    assert (r["n_base"], r["n_new"], r["base"], r["new"], r["unit"], r["better"], r["section"]) == \
        (6, 6, 1.0, 1.2, "s", "lower", "timings")
    assert (r["low"], r["high"], r["p"], r["min_p"]) == (pytest.approx(1.2), pytest.approx(1.2), 2 / 924, 2 / 924)
    assert (r["pairings"], r["change"], r["changed_in"]) == (1, "slower", 1)
    assert c.exit_status == 1
    c = compare(run(timings={100: const(1.2)}), run(timings={100: const(1.0)}))
    assert (row(c)["result"], row(c)["regression"], c.exit_status) == ("faster", False, 0)
    c = compare(run(timings={100: const(1.0)}), run(timings={100: const(1.2)}), fail_on=("quality", "verdict"))
    assert (row(c)["result"], row(c)["regression"], c.exit_status) == ("slower", False, 0)


@pytest.mark.parametrize("better, values, result, regression", [
    ("lower", 1.2, "worse", True), ("lower", 0.8, "improved", False),
    ("higher", 0.8, "worse", True), ("higher", 1.2, "improved", False),
    ("none", 1.2, "higher", False), ("none", 0.8, "lower", False),
])
def test_metric_words_follow_their_better_direction(better, values, result, regression):
    c = compare(run(metrics={("m", better): const(1.0)}), run(metrics={("m", better): const(values)}))
    r = row(c, "m")
    assert (r["result"], r["regression"], r["category"]) == \
        (result, regression, "info" if better == "none" else "quality")
    assert c.exit_status == int(regression)
    off = compare(run(metrics={("m", better): const(1.0)}), run(metrics={("m", better): const(values)}),
                  fail_on=("timing", "verdict"))
    assert not row(off, "m")["regression"] and off.exit_status == 0


def test_same_and_not_testable_never_regress():
    c = compare(run(timings={100: const(1.0)}, metrics={("m", "lower"): const(1.0, 3)}),
                run(timings={100: const(1.05)}, metrics={("m", "lower"): const(9.0, 3)}))
    assert (row(c)["result"], row(c, "m")["result"]) == ("same", "n/a")
    assert not c.rows["regression"].any() and c.exit_status == 0
    assert (row(c, "m")["change"], row(c, "m")["changed_in"]) == ("", 0)


def test_threshold_and_alpha_reach_the_rule():
    base, new = run(timings={100: const(1.0)}), run(timings={100: const(1.05)})
    assert row(compare(base, new))["result"] == "same"
    assert row(compare(base, new, threshold=0.05))["result"] == "slower"
    assert row(compare(base, new, threshold=0.05, alpha=2 / 924))["result"] == "n/a"
    c = compare(base, new, threshold=0.05)
    assert (c.threshold, c.alpha, c.normalize, c.fail_on) == (0.05, 0.01, False, FAIL_ON)


@pytest.mark.parametrize("threshold, alpha, message", [
    (0.1, 0.0, "--alpha 0.0: must be between 0 and 1"),
    (0.1, 1.0, "--alpha 1.0: must be between 0 and 1"),
    (10.0, 0.01, "--threshold 10.0: must be between 0 and 10 (0% to 1000%)"),
    (-0.01, 0.01, "--threshold -0.01: must be between 0 and 10 (0% to 1000%)"),
])
def test_settings_out_of_range_are_refused(threshold, alpha, message):
    with pytest.raises(DlbenchError) as e:
        compare(run(timings={100: const(1.0)}), run(timings={100: const(1.0)}), threshold=threshold, alpha=alpha)
    assert str(e.value) == message


def test_settings_at_the_edges_of_their_range_are_taken():
    a, b = run(timings={100: const(1.0)}), run(timings={100: const(1.0)})
    for threshold, alpha in ((0.0, 0.5), (9.99, 1e-9), (0.1, 0.999)):
        assert compare(a, b, threshold=threshold, alpha=alpha).threshold == threshold


def test_curves_are_judged_on_each_seeds_last_step():
    # steps out of order and of different lengths: the point at each seed's largest step counts
    base = [([0, 2, 1], [5.0, 1.0, 9.0])] * SIX
    new = [([3, 0, 1, 2], [2.0, 9.0, 9.0, 9.0])] * SIX
    r = row(compare(run(curves=base), run(curves=new)), "loss")
    assert (r["kind"], r["n_base"], r["base"], r["new"], r["result"]) == ("curve", SIX, 1.0, 2.0, "worse")


def test_a_curve_without_seeds_is_its_last_step():
    def one(values):
        rec = Recorder("demo")
        rec.curve("loss", values, case={}, steps=[0, 5, 3])
        return make_results([rec], {"seeds": [0]})[1]

    r = row(compare(one([4.0, 1.0, 7.0]), one([4.0, 3.0, 7.0])), "loss")
    assert (r["n_base"], r["base"], r["new"], r["result"]) == (1, 1.0, 3.0, "n/a")


def test_normalized_timings_are_bytes_copied_in_the_time_of_one_call():
    small = {100: const(1e-6)}                               # 800 bytes: cache bandwidth
    big = {10_000_000: const(1e-2)}                          # 80 MB: DRAM bandwidth
    fast = dict(BANDWIDTH, float32_cache=240.0, float32_dram=90.0)
    c = compare(run(timings={**small, **big}), run(timings={**small, **big}, bandwidth=fast), normalize=True)
    r = c.rows.set_index("case")
    assert r.loc["n=100", "unit"] == "B" and r.loc["n=100", "base"] == pytest.approx(1e-6 * 120e9)
    assert r.loc["n=100", "new"] == pytest.approx(1e-6 * 240e9) and r.loc["n=100", "result"] == "slower"
    assert r.loc["n=10000000", "base"] == pytest.approx(1e-2 * 45e9)
    plain = compare(run(timings=small), run(timings=small, bandwidth=fast))
    assert row(plain)["unit"] == "s" and row(plain)["result"] == "same"


def test_normalized_float64_timings_use_the_float64_bandwidth():
    def f64(bandwidth):
        rec = Recorder("demo")
        rec.timing("relu", Timing(np.asarray(const(1e-6)), loops=10, items=100, bytes=800.0),
                   case={"n": 100, "dtype": "float64"})
        rec.timing("relu", Timing(np.asarray(const(1e-6)), loops=10, items=100, bytes=800.0),
                   case={"n": 100, "dtype": "int8"})
        return make_results([rec], {"bandwidth": bandwidth, "seeds": [0]})[1]

    c = compare(f64(BANDWIDTH), f64(BANDWIDTH), normalize=True).rows.set_index("case")
    assert c.loc["n=100 dtype=float64", "base"] == pytest.approx(1e-6 * 60e9)
    assert c.loc["n=100 dtype=int8", "base"] == pytest.approx(1e-6 * 120e9)   # not a float: float32's


def test_normalize_needs_each_sides_bandwidth():
    with pytest.raises(DlbenchError) as e:
        compare(run(timings={100: const(1.0)}, run_id="r1"), run(timings={100: const(1.0)}, bandwidth={}),
                normalize=True)
    assert str(e.value).startswith("--normalize: run ") and str(e.value).endswith(" holds no copy-bandwidth probe")
    with pytest.raises(DlbenchError) as e:
        compare(run(timings={100: const(1.0)}, run_id="r1", bandwidth={"float64_cache": 1.0}),
                run(timings={100: const(1.0)}), normalize=True)
    assert str(e.value) == "--normalize: run r1 has no float32 copy bandwidth for demo relu"
    with pytest.raises(DlbenchError) as e:
        compare(run(timings={100: const(1.0)}),
                run(timings={100: const(1.0)}, run_id="r2", bandwidth={"float64_cache": 1.0}), normalize=True)
    assert str(e.value) == "--normalize: run r2 has no float32 copy bandwidth for demo relu"


def test_a_timing_without_bytes_is_normalized_by_the_cache_bandwidth():
    def nobytes(bandwidth):
        rec = Recorder("demo")
        rec.timing("relu", Timing(np.asarray(const(1e-6)), loops=10, items=100), case={"n": 100})
        return make_results([rec], {"bandwidth": bandwidth, "seeds": [0]})[1]

    for bandwidth in (BANDWIDTH, dict(BANDWIDTH, float32_llc=80.0)):     # with and without a last-level probe
        r = compare(nobytes(bandwidth), nobytes(bandwidth), normalize=True).rows.iloc[0]
        assert r["base"] == pytest.approx(1e-6 * 120e9) and r["new"] == pytest.approx(1e-6 * 120e9)


def test_a_timing_is_slower_when_it_takes_longer_whatever_its_better_column_says():
    a, b = run(timings={100: const(1.0)}), run(timings={100: const(1.5)})
    for res in (a, b):
        res.rows["better"] = "higher"
    r = row(compare(a, b))
    assert (r["category"], r["result"], r["regression"]) == ("timing", "slower", True)


def test_rows_missing_their_unit_better_or_section_read_as_plain_defaults():
    a, b = run(metrics={("m", "lower"): const(1.0)}), run(metrics={("m", "lower"): const(2.0)})
    for res in (a, b):
        res.rows["unit"] = None
        res.rows["section"] = None
    r = row(compare(a, b), "m")
    assert (r["unit"], r["section"], r["better"], r["result"]) == ("", "", "lower", "worse")
    for res in (a, b):
        res.rows["better"] = None
    r = row(compare(a, b), "m")
    assert (r["better"], r["category"], r["result"], r["regression"]) == ("none", "info", "higher", False)


def test_rows_in_one_side_only_and_nothing_in_common():
    a = run(timings={100: const(1.0), 200: const(1.0)}, metrics={("m", "lower"): const(1.0)})
    b = run(timings={100: const(1.0), 300: const(1.0)})
    c = compare(a, b)
    assert c.only_in_base.values.tolist() == [["demo", "timing", "n=200", "relu"], ["demo", "metric", "opt=adam", "m"]]
    assert c.only_in_new.values.tolist() == [["demo", "timing", "n=300", "relu"]]
    # a check has no case: it is listed with an empty one
    c = compare(run(timings={100: const(1.0)}, checks={"C1": [0.0]}), run(timings={100: const(1.0)}))
    assert c.only_in_base.values.tolist() == [["demo", "check", "", "C1"]]
    c = compare([run(timings={100: const(1.0)}, checks={"C1": [0.0]}), run(timings={100: const(1.0)})],
                [run(timings={100: const(1.0)}, checks={"C1": [0.0]})])
    assert c.warnings == ["1 row is missing from some of the runs and not compared (first: demo check C1)"]
    assert c.rows["case"].tolist() == ["n=100"]
    with pytest.raises(DlbenchError) as e:
        compare(run(timings={100: const(1.0)}, run_id="r1"), run(metrics={("m", "lower"): const(1.0)},
                                                                  run_id="r2", experiment="other"))
    assert str(e.value) == "run r1 (demo) and run r2 (other) have no rows in common: nothing to compare"
    with pytest.raises(DlbenchError, match="^compare needs at least one base and one new results file$"):
        compare([], [b])
    with pytest.raises(DlbenchError, match="^compare needs at least one base and one new results file$"):
        compare([a], [])


def test_runs_are_named_in_messages_by_path_or_run_id():
    a, b = run(timings={100: const(1.0)}, run_id="r1"), run(timings={100: const(1.0)}, run_id="r2")
    other = run(metrics={("m", "lower"): const(1.0)}, experiment="other")
    more = run(metrics={("m", "lower"): const(1.0)}, experiment="more")
    other.meta.pop("run_id")                     # a file without a run id (an older writer)
    more.meta["run_id"] = "r4"
    with pytest.raises(DlbenchError) as e:
        compare([a, b], [other, more])
    assert str(e.value) == ("run r1, run r2 (demo) and run ?, run r4 (other, more) have no rows in common: "
                            "nothing to compare")
    empty = make_results([Recorder("demo")], {"seeds": [0], "run_id": "r3"})[1]
    with pytest.raises(DlbenchError) as e:
        compare(empty, a)
    assert str(e.value) == "run r3 (empty) and run r1 (demo) have no rows in common: nothing to compare"


def test_grid_rows_are_not_compared_row_by_row():
    c = compare(run(grid={"X1": "supported"}, timings={100: const(1.0)}),
                run(grid={"X1": "refuted"}, timings={100: const(1.0)}))
    assert c.rows["kind"].tolist() == ["timing"] and c.claims.empty and c.exit_status == 0


# ----------------------------------------------------------------------------------------- claims and checks

CLAIM = ("supported", "refuted", "supported at all 3 grid points", "measured")


def claims_of(base, new, **kwargs):
    return compare(run(claims=base), run(claims=new), **kwargs).claims


def test_a_changed_verdict_control_or_sensitivity_is_a_verdict_change():
    same = claims_of({"D1": CLAIM}, {"D1": CLAIM})
    assert same[["changed", "regression", "improvement"]].values.tolist() == [[False, False, False]]
    for changed in (("refuted",) + CLAIM[1:], CLAIM[:1] + ("supported",) + CLAIM[2:],
                    CLAIM[:2] + ("conditional over lr",) + CLAIM[3:]):
        cl = claims_of({"D1": CLAIM}, {"D1": changed})
        assert cl[["changed", "regression", "improvement"]].values.tolist() == [[True, True, False]]
        assert claims_of({"D1": CLAIM}, {"D1": changed}, fail_on=("timing", "quality"))["regression"].tolist() == [False]


def test_claim_row_fields():
    cl = claims_of({"D1": CLAIM}, {"D1": ("refuted", "inconclusive", "refuted at all 3 grid points", "measured")})
    r = cl.iloc[0]
    assert (r["experiment"], r["kind"], r["claim"], r["statement"]) == ("demo", "claim", "D1", "claim D1")
    assert (r["base_verdict"], r["new_verdict"], r["base_control"], r["new_control"]) == \
        ("supported", "refuted", "refuted", "inconclusive")
    assert (r["base_sensitivity"], r["new_sensitivity"]) == ("supported at all 3 grid points",
                                                             "refuted at all 3 grid points")
    assert (r["base_evidence"], r["new_evidence"], r["pairings"], r["changed_in"]) == \
        ("D1 supported", "D1 refuted", 1, 1)


def test_a_control_or_sensitivity_one_side_lacks_is_not_compared():
    a, b = run(claims={"D1": CLAIM}), run(claims={"D1": CLAIM[:1] + ("supported", "another line", "measured")})
    for col in ("control", "sensitivity"):
        a.rows[col] = None
    assert not compare(a, b).claims["changed"].any()
    assert compare(a, run(claims={"D1": ("refuted",) + CLAIM[1:]})).claims["changed"].tolist() == [True]


def test_a_file_without_control_and_sensitivity_columns_compares_its_verdicts():
    a, b = run(claims={"D1": CLAIM}), run(claims={"D1": ("refuted",) + CLAIM[1:]})
    a.rows = a.rows.drop(columns=["control", "sensitivity"])
    r = compare(a, b).claims.iloc[0]
    assert (r["base_control"], r["base_sensitivity"], r["changed"]) == (None, None, True)
    assert not compare(a, run(claims={"D1": CLAIM})).claims["changed"].any()


def test_a_verdict_resting_on_wall_time_fails_under_timing():
    timed = CLAIM[:3] + ("timing",)
    flipped = ("refuted",) + CLAIM[1:3] + ("timing",)
    assert claims_of({"A9": timed}, {"A9": flipped})["regression"].tolist() == [True]
    assert claims_of({"A9": timed}, {"A9": flipped}, fail_on=("verdict",))["regression"].tolist() == [False]
    assert claims_of({"A9": timed}, {"A9": flipped}, fail_on=("timing",))["regression"].tolist() == [True]
    # wall time on either side is enough
    assert claims_of({"A9": CLAIM}, {"A9": flipped}, fail_on=("verdict",))["regression"].tolist() == [False]
    assert claims_of({"A9": timed}, {"A9": ("refuted",) + CLAIM[1:]},
                     fail_on=("verdict",))["regression"].tolist() == [False]


def test_checks_pass_to_fail_regresses_fail_to_pass_improves():
    def checks_of(base, new, **kwargs):
        return compare(run(checks=base), run(checks=new), **kwargs).claims.set_index("claim")

    cl = checks_of({"C1": [0.0], "C2": [1.0], "C3": [0.0]}, {"C1": [1.0], "C2": [0.0], "C3": [0.0]})
    assert cl[["changed", "regression", "improvement"]].values.tolist() == \
        [[True, True, False], [True, False, True], [False, False, False]]
    assert cl.loc["C1", "kind"] == "check"
    assert not checks_of({"C1": [0.0]}, {"C1": [1.0]}, fail_on=("timing",))["regression"].any()
    # one failing row among several makes the check fail, with that row's evidence
    cl = checks_of({"C1": [0.0, 0.0]}, {"C1": [0.0, 2.0, 0.0]})
    assert (cl.loc["C1", "new_verdict"], cl.loc["C1", "regression"]) == ("fail", True)
    assert cl.loc["C1", "new_evidence"] == "max |diff| 2.00e+00 (tolerance 1e-06), 1 check"


# ----------------------------------------------------------------------------------------- several runs a side

def test_a_change_is_confirmed_only_in_every_pairing():
    bases = [run(timings={100: const(1.0)}), run(timings={100: const(1.01)})]
    slow = [run(timings={100: const(1.5)}), run(timings={100: const(1.3)})]
    c = compare(bases, slow)
    r = row(c)
    assert (c.pairings, r["pairings"], r["result"], r["regression"], r["change"], r["changed_in"]) == \
        (4, 4, "slower", True, "slower", 4)
    # the effect shown is the pairing closest to no change: 1.3 / 1.01
    assert r["estimate"] == pytest.approx(1.3 / 1.01) and r["base"] == 1.01 and r["new"] == 1.3
    burst = [run(timings={100: const(1.5)}), run(timings={100: const(1.0)})]
    c = compare(bases, burst)
    r = row(c)
    assert (r["result"], r["regression"], r["change"], r["changed_in"], c.exit_status) == \
        ("same", False, "slower", 2, 0)
    assert unconfirmed(c)["metric"].tolist() == ["relu"] and changed_rows(c).empty


def test_the_closest_to_no_change_is_measured_on_a_log_scale_for_ratios():
    bases = [run(timings={100: const(1.0)})]
    news = [run(timings={100: const(1.5)}), run(timings={100: const(1.45)})]
    assert row(compare(bases, news))["estimate"] == pytest.approx(1.45)
    faster = [run(timings={100: const(0.5)}), run(timings={100: const(0.6)})]
    assert row(compare(bases, faster))["estimate"] == pytest.approx(0.6)
    # |log 0.55| > |log 1.7|: 1.7 is closer to no change than 0.55 on a log scale, not on a linear one
    mixed = compare([run(metrics={("m", "none"): const(1.0)})],
                    [run(metrics={("m", "none"): const(1.7)}), run(metrics={("m", "none"): const(0.55)})])
    assert row(mixed, "m")["estimate"] == pytest.approx(1.7) and row(mixed, "m")["result"] == "same"


def test_the_closest_to_no_change_for_differences_is_the_smallest_magnitude():
    bases = [run(metrics={("m", "lower"): const(-10.0)})]
    news = [run(metrics={("m", "lower"): const(-7.0)}), run(metrics={("m", "lower"): const(-8.0)})]
    r = row(compare(bases, news), "m")
    assert (r["result"], r["estimate"], r["effect"]) == ("worse", 2.0, "difference")


def test_the_closest_difference_is_the_smallest_magnitude_not_the_smallest_log():
    # differences 0.2 and 2, both a change at threshold 0: 0.2 is the closer to no change; on a log scale
    # 2 would be (|log 2| < |log 0.2|)
    bases = [run(metrics={("m", "lower"): const(-10.0)})]
    news = [run(metrics={("m", "lower"): const(-9.8)}), run(metrics={("m", "lower"): const(-8.0)})]
    r = row(compare(bases, news, threshold=0), "m")
    assert (r["effect"], r["estimate"], r["result"], r["changed_in"]) == \
        ("difference", pytest.approx(0.2), "worse", 2)
    down = [run(metrics={("m", "lower"): const(-10.2)}), run(metrics={("m", "lower"): const(-12.0)})]
    r = row(compare(bases, down, threshold=0), "m")
    assert (r["estimate"], r["result"]) == (pytest.approx(-0.2), "improved")


def test_empty_tables_keep_their_boolean_columns():
    c = compare(run(timings={100: const(1.0)}), run(timings={100: const(1.0)}))
    assert c.claims.empty and list(c.claims.columns) == CLAIM_COLUMNS
    assert [str(c.claims[k].dtype) for k in ("changed", "regression", "improvement")] == ["bool"] * 3
    assert str(c.rows["regression"].dtype) == "bool"


def test_a_claim_row_takes_the_new_statement_and_falls_back_to_the_base():
    a, b = run(claims={"D1": CLAIM}), run(claims={"D1": CLAIM})
    b.rows.loc[b.rows["kind"] == "claim", "statement"] = "the statement as it reads now"
    assert compare(a, b).claims.iloc[0]["statement"] == "the statement as it reads now"
    b.rows.loc[b.rows["kind"] == "claim", "statement"] = None
    assert compare(a, b).claims.iloc[0]["statement"] == "claim D1"


def test_a_pairing_that_cannot_be_tested_is_never_the_one_shown():
    few = run(timings={100: const(1.0, 2)})
    news = [run(timings={100: const(1.5)}), run(timings={100: const(1.5, 2)})]
    r = row(compare([few, run(timings={100: const(1.0)})], news))
    assert (r["result"], r["change"], r["changed_in"]) == ("same", "slower", 1)
    c = compare([few], [run(timings={100: const(1.5, 2)}), run(timings={100: const(1.6, 2)})])
    assert (row(c)["result"], row(c)["change"]) == ("n/a", "")


def test_mixed_changes_report_the_most_common():
    bases = [run(timings={100: const(1.0)})]
    news = [run(timings={100: const(1.5)}), run(timings={100: const(0.5)}), run(timings={100: const(1.6)})]
    r = row(compare(bases, news))
    assert (r["result"], r["change"], r["changed_in"], r["pairings"]) == ("same", "slower", 2, 3)


def test_claims_over_pairings_change_only_when_every_pairing_changed():
    flipped = ("refuted",) + CLAIM[1:]
    c = compare([run(claims={"D1": CLAIM}), run(claims={"D1": flipped})], [run(claims={"D1": flipped})])
    r = c.claims.iloc[0]
    assert (r["base_verdict"], r["new_verdict"], r["changed"], r["regression"], r["pairings"], r["changed_in"]) == \
        ("supported / refuted", "refuted", False, False, 2, 1)
    c = compare([run(claims={"D1": CLAIM}), run(claims={"D1": CLAIM})], [run(claims={"D1": flipped})] * 2)
    r = c.claims.iloc[0]
    assert (r["base_verdict"], r["changed"], r["regression"], r["changed_in"]) == ("supported", True, True, 4)
    fixed = compare([run(checks={"C1": [1.0]}), run(checks={"C1": [0.0]})], [run(checks={"C1": [0.0]})]).claims
    assert (fixed.iloc[0]["base_verdict"], fixed.iloc[0]["improvement"], fixed.iloc[0]["changed"]) == \
        ("fail / pass", False, False)
    fixed = compare([run(checks={"C1": [1.0]})] * 2, [run(checks={"C1": [0.0]})]).claims
    assert (fixed.iloc[0]["improvement"], fixed.iloc[0]["changed"]) == (True, True)


def test_a_side_missing_a_verdict_shows_a_dash():
    a = run(claims={"D1": CLAIM})
    b = run(claims={"D1": CLAIM})
    b.rows["verdict"] = None
    r = compare([a, b], [a]).claims.iloc[0]
    assert r["base_verdict"] == "supported / —"


# ----------------------------------------------------------------------------------------- reading order

def test_changes_read_regressions_first_then_improvements_then_moves():
    base = run(timings={1: const(1.0), 2: const(1.0)},
               metrics={("loss", "lower"): const(1.0), ("acc", "higher"): const(1.0), ("size", "none"): const(1.0)})
    new = run(timings={1: const(0.5), 2: const(1.5)},
              metrics={("loss", "lower"): const(1.5), ("acc", "higher"): const(1.5), ("size", "none"): const(1.5)})
    c = compare(base, new)
    assert changed_rows(c)["result"].tolist() == ["slower", "worse", "faster", "improved", "higher"]
    # a word that does not fail (timing not in fail_on) reads after the ones that do
    c = compare(base, new, fail_on=("quality",))
    assert changed_rows(c)["result"].tolist() == ["worse", "slower", "faster", "improved", "higher"]


def test_changed_claims_read_regressions_then_fixes_then_the_rest():
    base = run(checks={"C1": [1.0], "C2": [0.0]}, claims={"D1": CLAIM, "D2": CLAIM})
    new = run(checks={"C1": [0.0], "C2": [1.0]}, claims={"D1": CLAIM, "D2": ("refuted",) + CLAIM[1:]})
    c = compare(base, new, fail_on=("timing",))
    assert changed_claims(c)["claim"].tolist() == ["C1", "D2", "C2"]
    c = compare(base, new)
    assert changed_claims(c)["claim"].tolist() == ["D2", "C2", "C1"]


def test_counts_without_claims_or_rows():
    c = compare(run(timings={100: const(1.0)}), run(timings={100: const(1.0)}))
    assert c.counts() == {"same": 1, "verdict changed": 0, "unconfirmed": 0, "only in base": 0, "only in new": 0}


def test_counts_and_regressions():
    base = run(timings={1: const(1.0), 2: const(1.0), 3: const(1.0, 2)}, claims={"D1": CLAIM})
    new = run(timings={1: const(1.5), 2: const(1.0), 3: const(1.0, 2)}, claims={"D1": ("refuted",) + CLAIM[1:]},
              metrics={("m", "lower"): const(1.0)})
    c = compare(base, new)
    assert c.counts() == {"slower": 1, "same": 1, "n/a": 1, "verdict changed": 1, "unconfirmed": 0,
                          "only in base": 0, "only in new": 1}
    assert c.regressions.values.tolist() == [["demo", "timing", "n=1", "relu", "slower"],
                                             ["demo", "claim", "", "D1", "supported -> refuted"]]
    assert c.exit_status == 1


# ----------------------------------------------------------------------------------------- warnings

def test_warnings_name_what_differs_between_the_runs():
    t = {100: const(1.0)}
    assert compare(run(timings=t), run(timings=t)).warnings == []
    same = compare(run(timings=t, run_id="r1"), run(timings=t, run_id="r1")).warnings
    assert same == ["both files hold the same run (r1): nothing can have changed"]
    other = {"cpu_model": "Intel Xeon", "threads": 2}
    w = compare(run(timings=t), run(timings=t, fingerprint=other)).warnings
    assert len(w) == 1 and w[0].startswith("the runs come from different setups (") and \
        w[0].endswith("): timings compare the setups, not only the code; --normalize compares them as fractions "
                      "of each machine's copy bandwidth")
    w = compare(run(timings=t), run(timings=t, fingerprint=other), normalize=True).warnings
    assert w[0].endswith("): timings compare the setups, not only the code")
    w = compare(run(timings=t, options={"demo": {"lr": 0.1, "steps": 5}}),
                run(timings=t, options={"demo": {"lr": 0.2, "steps": 5, "width": 8}})).warnings
    assert w == ["demo ran with different options (lr: 0.1 vs 0.2; width: None vs 8)"]
    assert compare(run(timings=t, options={"other": {"lr": 1}}),
                   run(timings=t, options={"other": {"lr": 2}})).warnings == []
    assert compare(run(timings=t, seeds=range(6)), run(timings=t, seeds=range(10))).warnings == \
        ["the runs used different seeds (0..5 vs 0..9)"]
    assert compare(run(timings=t, seeds=[0, 1]), run(timings=t, seeds=[0, 2])).warnings == \
        ["the runs used different seeds (0,1 vs 0,2)"]
    assert compare(run(timings=t, seeds=[0, 1, 2]), run(timings=t, seeds=[0, 1])).warnings == \
        ["the runs used different seeds (0..2 vs 0,1)"]
    two = {"cpu_model": "Intel Xeon", "threads": 4}
    w = compare(run(timings=t), run(timings=t, fingerprint=two)).warnings
    assert w == ["the runs come from different setups (threads: 2 vs 4; cpu_model: 'AMD EPYC 7B13' vs 'Intel Xeon'): "
                 "timings compare the setups, not only the code; --normalize compares them as fractions of each "
                 "machine's copy bandwidth"]
    # a file without options (an older writer) is compared without an options warning
    bare = run(timings=t)
    bare.meta.pop("options")
    assert compare(bare, run(timings=t, options={"demo": {"lr": 0.1}})).warnings == []
    assert compare(run(timings=t, options={"demo": {"lr": 0.1}}), bare).warnings == []


def test_rows_missing_from_some_runs_are_counted_in_a_warning():
    full = run(timings={100: const(1.0), 200: const(1.0)})
    part = run(timings={100: const(1.0)})
    assert compare([full, part], [run(timings={100: const(1.0), 200: const(1.0)})]).warnings == \
        ["1 row is missing from some of the runs and not compared (first: demo timing n=200 relu)"]
    wider = run(timings={100: const(1.0), 200: const(1.0), 300: const(1.0)})
    assert compare([wider, part], [run(timings={100: const(1.0), 200: const(1.0), 300: const(1.0)})]).warnings == \
        ["2 rows are missing from some of the runs and not compared (first: demo timing n=200 relu)"]


# ----------------------------------------------------------------------------------------- order, settings, files

def test_rows_keep_the_files_order_and_equals_keep_it_when_sorted_for_reading():
    # 50 rows, slower and faster in turn: reading order puts the slower first, each kind in the file's order
    cases = [7, 3, 40, 1, 12] + list(range(100, 145))
    up = [1.5 if i % 2 == 0 else 0.5 for i in range(len(cases))]
    c = compare(run(timings={n: const(1.0) for n in cases}), run(timings={n: const(u) for n, u in zip(cases, up)}))
    assert c.rows["case"].tolist() == [f"n={n}" for n in cases]
    order = [n for n, u in zip(cases, up) if u > 1] + [n for n, u in zip(cases, up) if u < 1]
    assert changed_rows(c)["case"].tolist() == [f"n={n}" for n in order]
    # 50 changed claims in turn resting on measurement (a regression under --fail-on verdict) and on wall time
    ids = [f"D{i}" for i in (5, 2, 9)] + [f"E{i}" for i in range(47)]
    basis = {i: "timing" if k % 2 else "measured" for k, i in enumerate(ids)}
    base = run(claims={i: CLAIM[:3] + (basis[i],) for i in ids})
    new = run(claims={i: ("refuted",) + CLAIM[1:3] + (basis[i],) for i in ids})
    got = changed_claims(compare(base, new, fail_on=("verdict",)))["claim"].tolist()
    assert got == [i for i in ids if basis[i] == "measured"] + [i for i in ids if basis[i] == "timing"]


def test_the_comparison_keeps_its_settings():
    a = run(timings={100: const(1.0)})
    c = compare(a, run(timings={100: const(1.0)}), threshold=0.2, alpha=0.05, normalize=True, fail_on=("quality",))
    assert (c.threshold, c.alpha, c.normalize, c.fail_on) == (0.2, 0.05, True, ("quality",))


@pytest.mark.parametrize("kwargs, message", [
    ({"threshold": 10.0}, "--threshold 10.0: must be between 0 and 10 (0% to 1000%)"),
    ({"alpha": 0.0}, "--alpha 0.0: must be between 0 and 1"),
])
def test_compare_files_refuses_settings_before_reading_any_file(tmp_path, kwargs, message):
    with pytest.raises(DlbenchError) as e:
        compare_files(tmp_path / "missing.parquet", [tmp_path / "also-missing.parquet"], **kwargs)
    assert str(e.value) == message


def test_a_missing_control_written_as_nan_is_missing():
    a, b = run(claims={"D1": CLAIM}), run(claims={"D1": CLAIM[:1] + ("supported", "another line", "measured")})
    for col in ("control", "sensitivity"):
        a.rows[col] = math.nan
    r = compare(a, b).claims.iloc[0]
    assert (r["base_control"], r["base_sensitivity"], r["changed"]) == (None, None, False)


def test_a_side_without_finite_values_is_not_testable_and_quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        c = compare(run(metrics={("m", "lower"): [math.nan] * 6}), run(metrics={("m", "lower"): const(1.0)}))
    r = row(c, "m")
    assert r["result"] == "n/a" and math.isnan(r["base"]) and r["new"] == 1.0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        c = compare(run(metrics={("m", "lower"): const(1.0)}), run(metrics={("m", "lower"): [math.nan] * 6}))
    r = row(c, "m")
    assert r["result"] == "n/a" and r["base"] == 1.0 and math.isnan(r["new"])
