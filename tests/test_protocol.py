"""The claim protocol: how a claim's findings over its grid, its control, its checks and its base seeds
become one verdict, and how the boundary of a conditional verdict is named."""

import math

import numpy as np
import pandas as pd
import pytest

from dlbench.protocol import Axis, ClaimSpec, combine_points, describe_sensitivity, judge
from dlbench.results import Recorder
from dlbench.stats import Finding

SPEC = ClaimSpec("X1", "the effect is positive", grid=(Axis("lr", (0.01, 0.1, 1.0)),))


def found(verdict: str, effect: float = 1.0) -> Finding:
    return Finding(verdict, effect, effect - 0.1, effect + 0.1, 6, "bootstrap", f"effect {effect:g}")


def grid_rows(claim=(), control=(), *, base_seed=0, checks=()) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Results rows as the runner judges them: claim findings at lr points, control findings, checks."""
    rec = Recorder("demo", base_seed=base_seed)
    for lr, v in claim:
        rec.finding("X1", found(v), point={"lr": lr})
    for point, v in control:
        rec.finding("X1", found(v, 0.0), point=point, role="control")
    for cid, err in checks:
        rec.check(cid, err, 1e-9, what="max |diff|", claim="X1")
    df = rec.table().to_pandas()
    return df[df["kind"] == "grid"], df[df["kind"] == "check"]


def frames(*parts):
    grids, checks = zip(*parts)
    return pd.concat(grids, ignore_index=True), pd.concat(checks, ignore_index=True)


ALL = [(0.01, "supported"), (0.1, "supported"), (1.0, "supported")]


def test_every_point_supported_and_control_not_gives_supported():
    j = judge(SPEC, *grid_rows(ALL, [({}, "inconclusive")]))
    assert (j.verdict, j.control, j.points) == ("supported", "inconclusive", 3)
    assert j.sensitivity == "supported at all 3 grid points"
    assert j.headline.effect == 1.0 and j.evidence == "effect 1"


@pytest.mark.parametrize("verdicts, expected", [
    (["refuted"] * 3, "refuted"),
    (["inconclusive"] * 3, "inconclusive"),
    (["supported", "supported", "inconclusive"], "conditional"),
    (["refuted", "supported", "supported"], "conditional"),
])
def test_points_that_agree_give_their_verdict_and_disagreement_is_conditional(verdicts, expected):
    rows = list(zip((0.01, 0.1, 1.0), verdicts))
    assert judge(SPEC, *grid_rows(rows, [({}, "refuted")])).verdict == expected


def test_a_supported_control_makes_the_claim_inconclusive_and_says_where():
    j = judge(SPEC, *grid_rows(ALL, [({"lr": 0.01}, "refuted"), ({"lr": 1.0}, "supported")]))
    assert j.verdict == "inconclusive" and j.control == "conditional"
    assert "its control came out supported at lr=1" in j.evidence and "(measured: supported)" in j.evidence


def test_a_control_that_is_only_inconclusive_or_refuted_leaves_the_verdict():
    for v in ("inconclusive", "refuted"):
        assert judge(SPEC, *grid_rows(ALL, [({}, v)])).verdict == "supported"


def test_without_a_control_the_control_is_not_run():
    assert judge(SPEC, *grid_rows(ALL)).control == "not run"


def test_a_failed_check_makes_the_claim_inconclusive_and_a_passing_one_does_not():
    passing = judge(SPEC, *grid_rows(ALL, [({}, "refuted")], checks=[("X1.identity", 0.0)]))
    assert passing.verdict == "supported"
    failing = judge(SPEC, *grid_rows(ALL, [({}, "refuted")], checks=[("X1.identity", 1.0)]))
    assert failing.verdict == "inconclusive" and "check X1.identity failed" in failing.evidence


def test_base_seeds_that_disagree_make_the_claim_inconclusive_naming_each():
    a = grid_rows(ALL, [({}, "refuted")], base_seed=0)
    b = grid_rows([(lr, "inconclusive") for lr, _ in ALL], [({}, "refuted")], base_seed=1000)
    c = grid_rows(ALL, [({}, "refuted")], base_seed=2000)
    j = judge(SPEC, *frames(a, b, c))
    assert j.verdict == "inconclusive"
    assert "changes with the base seed (supported for base seed 0, 2000; inconclusive for base seed 1000)" \
        in j.evidence
    assert j.per_seed == {0: "supported", 1000: "inconclusive", 2000: "supported"}
    agree = judge(SPEC, *frames(a, c))
    assert agree.verdict == "supported" and agree.per_seed == {0: "supported", 2000: "supported"}


def test_a_claim_without_findings_is_not_run_with_the_reason_given():
    grid, checks = grid_rows()
    assert judge(SPEC, grid, checks).verdict == "not run"
    rec = Recorder("demo")
    rec.not_run("X1", "needs --surface canyon")
    df = rec.table().to_pandas()
    j = judge(SPEC, df, df.iloc[0:0])
    assert (j.verdict, j.evidence) == ("not run", "needs --surface canyon")


def test_points_not_run_are_left_out_of_the_verdict():
    rec = Recorder("demo")
    rec.not_run("X1", "premise not met", point={"lr": 0.01})
    for lr in (0.1, 1.0):
        rec.finding("X1", found("supported"), point={"lr": lr})
    df = rec.table().to_pandas()
    j = judge(SPEC, df, df.iloc[0:0])
    assert j.verdict == "supported"
    assert j.sensitivity == "supported at all 2 grid points; not run at 1 of 3 grid points at lr=0.01"


def test_combine_points():
    assert combine_points([]) == "not run"
    assert combine_points(["not run", "supported"]) == "supported"
    assert combine_points(["refuted", "refuted"]) == "refuted"
    assert combine_points(["refuted", "inconclusive"]) == "conditional"


@pytest.mark.parametrize("points, text", [
    ([({"lr": 0.3}, "supported")], "supported at the one grid point"),
    ([({"lr": 0.01}, "inconclusive"), ({"lr": 0.1}, "inconclusive"), ({"lr": 0.3}, "supported"),
      ({"lr": 1.0}, "supported")], "supported at lr 0.3 and 1; inconclusive at lr 0.01 and 0.1"),
    ([({"lr": 1.0}, "refuted"), ({"lr": 0.01}, "supported")], "refuted at lr 1; supported at lr 0.01"),
    ([({"lr": v}, "supported" if v > 0.05 else "refuted") for v in (0.001, 0.01, 0.03, 0.1, 0.3, 1.0)],
     "supported at lr 0.1 to 1; refuted at lr 0.001 to 0.03"),
    ([({"act": "relu"}, "supported"), ({"act": "tanh"}, "conditional")],
     "supported at act relu; conditional at act tanh"),
    ([({"lr": 0.1}, "supported"), ({"lr": 1.0}, "inconclusive"), ({"lr": 10.0}, "supported")],
     "supported at lr 0.1, 10; inconclusive at lr 1"),
])
def test_sensitivity_names_the_boundary_on_one_axis(points, text):
    assert describe_sensitivity(points) == text


def test_sensitivity_lists_the_exceptions_when_no_single_axis_explains():
    points = [({"lr": a, "steps": s}, "supported" if (a, s) != (0.01, 300) else "inconclusive")
              for a in (0.01, 0.1) for s in (300, 2000)]
    assert describe_sensitivity(points) == ("supported at 3 of 4 grid points; inconclusive at lr=0.01 "
                                            "steps=300")


def test_grid_points_are_the_product_of_the_axes_with_a_quick_grid():
    spec = ClaimSpec("X2", "s", grid=(Axis("lr", (0.1, 1.0)), Axis("width", (8, 32), quick=(8,))))
    assert spec.points() == [{"lr": 0.1, "width": 8}, {"lr": 0.1, "width": 32}, {"lr": 1.0, "width": 8},
                             {"lr": 1.0, "width": 32}]
    assert spec.points(quick=True) == [{"lr": 0.1, "width": 8}, {"lr": 1.0, "width": 8}]
    assert ClaimSpec("X3", "s").points() == [{}]


def test_headline_keeps_the_finding_numbers():
    j = judge(SPEC, *grid_rows([(0.01, "supported")], [({}, "refuted")]))
    assert (j.headline.low, j.headline.high, j.headline.n) == (0.9, 1.1, 6)
    assert math.isnan(j.headline.threshold)
    assert np.isfinite(j.headline.effect)


QSPEC = ClaimSpec("X2", "every bounded activation saturates",
                  grid=(Axis("activation", ("sigmoid", "tanh", "sin"), quantifier=True), Axis("scale", (10, 100))))


def quantified(verdicts: dict) -> tuple[pd.DataFrame, pd.DataFrame]:
    rec = Recorder("demo")
    for (act, scale), v in verdicts.items():
        rec.finding("X2", found(v), point={"activation": act, "scale": scale})
    rec.finding("X2", found("refuted", 0.0), role="control")
    df = rec.table().to_pandas()
    return df[df["kind"] == "grid"], df[df["kind"] == "check"]


def test_a_quantifier_axis_is_refuted_by_one_counterexample():
    every = {(a, s): "supported" for a in ("sigmoid", "tanh", "sin") for s in (10, 100)}
    assert judge(QSPEC, *quantified(every)).verdict == "supported"
    one = {**every, ("sin", 10): "refuted", ("sin", 100): "refuted"}
    j = judge(QSPEC, *quantified(one))
    assert j.verdict == "refuted"
    assert j.sensitivity.startswith("refuted by the counterexample activation=sin;")
    undecided = {**every, ("sin", 10): "inconclusive", ("sin", 100): "inconclusive"}
    assert judge(QSPEC, *quantified(undecided)).verdict == "inconclusive"


def test_nuisance_axes_beside_a_quantifier_still_make_a_claim_conditional():
    mixed = {(a, s): "supported" for a in ("sigmoid", "tanh", "sin") for s in (10, 100)}
    mixed[("sin", 10)] = "refuted"          # refuted at scale 10 (sin is a counterexample there), holds at 100
    j = judge(QSPEC, *quantified(mixed))
    assert j.verdict == "conditional" and "counterexample activation=sin" in j.sensitivity
    # the same split on a nuisance axis alone is conditional, not refuted
    spec = ClaimSpec("X2", "s", grid=(Axis("activation", ("sigmoid", "tanh", "sin")), Axis("scale", (10, 100))))
    assert judge(spec, *quantified({**mixed, ("sin", 100): "refuted"})).verdict == "conditional"


def test_a_supported_part_of_a_control_is_named_but_the_control_fails_as_a_whole():
    from dlbench.stats import all_of

    rec = Recorder("demo")
    for lr in (0.01, 0.1):
        rec.finding("X1", all_of([found("supported"), found("supported")]), point={"lr": lr})
    rec.finding("X1", all_of([found("supported", 0.0), found("refuted", 0.0)]), role="control")
    df = rec.table().to_pandas()
    j = judge(SPEC, df, df.iloc[0:0])
    assert df.loc[df["role"] == "control", "parts"].tolist() == ["supported,refuted"]
    assert j.control == "refuted" and j.verdict == "supported"
    assert "a part of the claim also holds on its control" in j.evidence
    rec.finding("X1", all_of([found("supported", 0.0), found("supported", 0.0)]), role="control")
    df = rec.table().to_pandas()
    j = judge(SPEC, df, df.iloc[0:0])
    assert j.verdict == "inconclusive" and "its control came out supported" in j.evidence


def test_a_declared_control_that_was_not_measured_leaves_the_claim_inconclusive():
    spec = ClaimSpec("X1", "s", control="the counterfactual", grid=SPEC.grid)
    j = judge(spec, *grid_rows(ALL))
    assert j.verdict == "inconclusive" and "its control was not measured" in j.evidence
    assert judge(spec, *grid_rows(ALL, [({}, "refuted")])).verdict == "supported"


def test_a_conditional_verdict_whose_boundary_moves_with_the_base_seed_is_inconclusive():
    a = grid_rows([(0.01, "inconclusive"), (0.1, "supported"), (1.0, "supported")], [({}, "refuted")], base_seed=0)
    b = grid_rows([(0.01, "inconclusive"), (0.1, "inconclusive"), (1.0, "supported")], [({}, "refuted")],
                  base_seed=1000)
    j = judge(SPEC, *frames(a, b))
    assert j.verdict == "inconclusive" and "boundary changes with the base seed" in j.evidence
    assert judge(SPEC, *frames(a, a)).verdict == "conditional"


def test_the_headline_is_a_point_that_carries_the_verdict():
    j = judge(SPEC, *grid_rows([(0.01, "inconclusive"), (0.1, "supported")], [({}, "refuted")]))
    assert j.verdict == "conditional" and j.headline.verdict == "supported"


# ----------------------------------------------------------------------------- every field of a judgement pinned

from dlbench.protocol import Judgement  # noqa: E402
from dlbench.stats import from_interval  # noqa: E402

NOT_MEASURED = Judgement("X1", "not run", None, "not run", "", "this run did not measure it")


def test_a_claim_absent_from_the_grid_is_not_run_in_every_field():
    grid, checks = grid_rows()
    assert judge(SPEC, grid, checks) == NOT_MEASURED
    assert judge(SPEC, pd.DataFrame(), None) == NOT_MEASURED
    other = ClaimSpec("X2", "another claim")
    assert judge(other, *grid_rows(ALL, [({}, "supported")])) == Judgement(
        "X2", "not run", None, "not run", "", "this run did not measure it")


def test_a_failed_check_leaves_a_claim_not_run_as_not_run():
    grid, checks = grid_rows(checks=[("X1.identity", 1.0)])
    j = judge(SPEC, grid, checks)
    assert (j.verdict, j.evidence) == ("not run", "this run did not measure it")
    rec = Recorder("demo")
    rec.not_run("X1", "needs --surface canyon")
    rec.check("X1.identity", 1.0, 1e-9, what="max |diff|", claim="X1")
    df = rec.table().to_pandas()
    j = judge(SPEC, df[df["kind"] == "grid"], df[df["kind"] == "check"])
    assert (j.verdict, j.evidence) == ("not run", "needs --surface canyon")


def test_failed_checks_are_named_in_order_and_keep_the_measurement():
    grid, checks = grid_rows(ALL, [({}, "refuted")], checks=[("X1.a", 1.0), ("X1.b", 0.0), ("X1.c", 2.0)])
    j = judge(SPEC, grid, checks)
    assert j == Judgement("X1", "inconclusive", j.headline, "refuted", "supported at all 3 grid points",
                          "check X1.a, X1.c failed, so the measurement is in doubt (measured: supported); effect 1",
                          3, {0: "supported"})
    assert j.headline == found("supported")
    assert judge(SPEC, grid, None).verdict == "supported"


def test_a_supported_control_keeps_headline_sensitivity_and_points():
    grid, checks = grid_rows([(0.01, "supported"), (0.1, "inconclusive")], [({}, "supported")])
    j = judge(SPEC, grid, checks)
    assert j == Judgement("X1", "inconclusive", found("supported"), "supported",
                          "inconclusive at lr 0.1; supported at lr 0.01",
                          "its control came out supported: the measurement does not tell the claim from the "
                          "counterfactual (measured: conditional); effect 1", 2, {0: "inconclusive"})


def test_an_override_to_the_measured_verdict_does_not_repeat_it():
    grid, checks = grid_rows([(lr, "inconclusive") for lr, _ in ALL], [({"lr": 0.1}, "supported")])
    j = judge(SPEC, grid, checks)
    assert j.evidence == ("its control came out supported at lr=0.1: the measurement does not tell the claim from "
                          "the counterfactual; effect 1")


def test_control_points_are_named_with_every_setting():
    spec = ClaimSpec("X1", "s", grid=(Axis("lr", (0.1, 1.0)), Axis("width", (8, 32))))
    rec = Recorder("demo")
    rec.finding("X1", found("supported"), point={"lr": 0.1, "width": 8})
    rec.finding("X1", found("supported", 0.0), point={"lr": 1.0, "width": 8}, role="control")
    rec.finding("X1", found("refuted", 0.0), point={"lr": 0.1, "width": 8}, role="control")
    rec.finding("X1", found("supported", 0.0), point={"lr": 0.1, "width": 32}, role="control")
    df = rec.table().to_pandas()
    j = judge(spec, df[df["kind"] == "grid"], None)
    assert "its control came out supported at lr=1 width=8, lr=0.1 width=32: " in j.evidence
    assert j.control == "conditional"


def test_the_headline_is_the_recorded_finding_field_for_field():
    f = from_interval(0.3, 0.1, 0.5, n=7, method="t", null=0.05, threshold=0.2, label="gain", unit="dB")
    rec = Recorder("demo")
    rec.finding("X1", f, point={"lr": 0.1})
    df = rec.table().to_pandas()
    assert judge(SPEC, df, None).headline == f


def test_a_grid_without_the_newer_columns_still_gives_a_headline():
    # a version-1 file's rows lack threshold, unit, method and n
    rows = pd.DataFrame({"claim": ["X1"], "role": ["claim"], "verdict": ["supported"], "base_seed": [0],
                         "value": [0.3], "low": [0.1], "high": [0.5], "evidence": [None], "p_lr": [0.1]})
    h = judge(SPEC, rows, None).headline
    assert (h.verdict, h.effect, h.low, h.high, h.n, h.method, h.evidence, h.unit) == \
        ("supported", 0.3, 0.1, 0.5, 0, "", "", "")
    assert math.isnan(h.threshold)
    rows["n"] = [math.nan]
    rows["threshold"] = [None]
    h = judge(SPEC, rows, None).headline
    assert h.n == 0 and math.isnan(h.threshold)


def test_not_run_reasons_are_joined_once_each():
    rec = Recorder("demo")
    rec.not_run("X1", "needs --surface canyon", point={"lr": 0.1})
    rec.not_run("X1", "needs --surface canyon", point={"lr": 1.0})
    rec.not_run("X1", "no GPU", point={"lr": 3.0})
    rec.finding("X1", found("refuted", 0.0), point={}, role="control")
    df = rec.table().to_pandas()
    j = judge(SPEC, df, None)
    assert j == Judgement("X1", "not run", None, "refuted", "", "needs --surface canyon; no GPU", 0, {0: "not run"})


def test_not_run_without_a_reason_says_so():
    rec = Recorder("demo")
    rec.not_run("X1", "")
    df = rec.table().to_pandas()
    assert judge(SPEC, df, None).evidence == "this run did not measure it"
    df["evidence"] = [math.nan]
    assert judge(SPEC, df, None).evidence == "this run did not measure it"


def test_grid_settings_are_plain_values_in_the_sensitivity_line():
    spec = ClaimSpec("X1", "s", grid=(Axis("width", (8, 32)),))
    rec = Recorder("demo")
    rec.finding("X1", found("inconclusive"), point={"width": 8})
    rec.finding("X1", found("supported"), point={"width": 32})
    rec.finding("X2", found("supported"), point={"depth": 3})          # another claim's axis: NaN in X1's rows
    df = rec.table().to_pandas()
    assert judge(spec, df, None).sensitivity == "supported at width 32; inconclusive at width 8"


@pytest.mark.parametrize("value, text", [(1e15, "scale=1e+15"), (3.0, "scale=3"), (0.5, "scale=0.5"),
                                         (7, "scale=7"), ("relu", "scale=relu"), (True, "scale=True")])
def test_control_settings_are_written_as_given(value, text):
    rec = Recorder("demo")
    rec.finding("X1", found("supported"), point={"scale": value})
    rec.finding("X1", found("supported", 0.0), point={"scale": value}, role="control")
    df = rec.table().to_pandas()
    assert f"its control came out supported at {text}: " in judge(SPEC, df, None).evidence


def test_a_list_valued_setting_is_kept():
    rows = pd.DataFrame({"claim": ["X1", "X1"], "role": ["claim", "control"], "verdict": ["supported"] * 2,
                         "base_seed": [0, 0], "value": [1.0, 0.0], "low": [0.9, 0.0], "high": [1.1, 0.0],
                         "p_widths": [[8, 16], [8, 16]]})
    assert "supported at widths=[8, 16]: " in judge(SPEC, rows, None).evidence


def test_sensitivity_of_no_points_is_empty():
    assert describe_sensitivity([]) == ""


def test_sensitivity_names_the_most_common_verdict_not_the_last_alphabetically():
    points = [({"lr": a, "steps": s}, "supported" if (a, s) == (0.01, 300) else "inconclusive")
              for a in (0.01, 0.1) for s in (300, 2000)]
    assert describe_sensitivity(points) == "inconclusive at 3 of 4 grid points; supported at lr=0.01 steps=300"


def _diagonal(size: int, exceptions: int) -> list:
    """A size x size grid, `exceptions` points off the common verdict, no single axis explaining them."""
    odd = {(i, (i + 1) % size) for i in range(exceptions)}
    return [({"a": i, "b": j}, "refuted" if (i, j) in odd else "supported") for i in range(size) for j in range(size)]


@pytest.mark.parametrize("exceptions, tail", [(6, ""), (7, " and 1 more"), (8, " and 2 more")])
def test_sensitivity_lists_six_exceptions_and_counts_the_rest(exceptions, tail):
    text = describe_sensitivity(_diagonal(9, exceptions))
    listed = ", ".join(f"refuted at a={i} b={(i + 1) % 9}" for i in range(min(exceptions, 6)))
    assert text == f"supported at {81 - exceptions} of 81 grid points; {listed}{tail}"


def test_quick_grid_is_used_only_when_asked():
    axis = Axis("lr", (0.1, 1.0, 10.0), quick=(1.0,))
    assert axis.grid() == (0.1, 1.0, 10.0) and axis.grid(quick=True) == (1.0,)
    assert Axis("lr", (0.1, 1.0)).grid(quick=True) == (0.1, 1.0)


def test_numpy_settings_become_plain_python_values():
    from dlbench.protocol import _plain

    for value, plain in ((np.int64(8), 8), (np.float64(3.0), 3), (np.float32(0.5), 0.5), (np.bool_(True), True),
                         (2.0, 2), (1e15, 1e15), (0.1, 0.1), ("relu", "relu")):
        assert _plain(value) == plain and type(_plain(value)) is type(plain)


# ----------------------------------------------------------------------------------------- quantifier axes pinned

from dlbench.protocol import quantify  # noqa: E402

ACTS = ("sigmoid", "tanh", "sin")


def _q(verdicts):
    return [({"activation": a, "scale": s}, v) for (a, s), v in verdicts.items()]


def test_quantify_without_quantifier_axes_is_combine_points():
    pts = [({"lr": 0.1}, "supported"), ({"lr": 1.0}, "refuted")]
    assert quantify(pts, ()) == ("conditional", "")
    assert quantify([({"lr": 0.1}, "refuted")] * 2, ()) == ("refuted", "")
    assert quantify([], ("activation",)) == ("not run", "")


def test_quantify_groups_the_points_that_share_every_other_setting():
    every = {(a, s): "supported" for a in ACTS for s in (10, 100)}
    assert quantify(_q(every), ("activation",)) == ("supported", "")
    # a value short of support at one scale: that statement is inconclusive, the other holds
    one = {**every, ("tanh", 10): "inconclusive"}
    assert quantify(_q(one), ("activation",)) == ("conditional", "")
    both = {**one, ("tanh", 100): "inconclusive"}
    assert quantify(_q(both), ("activation",)) == ("inconclusive", "")
    # one refuted value refutes its statement, whatever the other values say
    ref = {**both, ("sin", 10): "refuted", ("sin", 100): "refuted"}
    assert quantify(_q(ref), ("activation",)) == ("refuted", "refuted by the counterexample activation=sin")


def test_quantify_names_each_counterexample_once_and_only_the_quantified_settings():
    every = {(a, s): "supported" for a in ACTS for s in (10, 100)}
    two = {**every, ("sin", 10): "refuted", ("sin", 100): "refuted", ("tanh", 100): "refuted"}
    assert quantify(_q(two), ("activation",)) == ("refuted",
                                                  "refuted by the counterexamples activation=sin, activation=tanh")
    # counterexamples in different statements (sin at scale 10, tanh at 100) are all named
    apart = {**every, ("sin", 10): "refuted", ("tanh", 100): "refuted"}
    assert quantify(_q(apart), ("activation",)) == ("refuted",
                                                    "refuted by the counterexamples activation=sin, activation=tanh")
    # over both axes every point is one value of the statement: one refuted point refutes the claim
    assert quantify(_q({**every, ("tanh", 100): "refuted"}), ("activation", "scale")) == \
        ("refuted", "refuted by the counterexample activation=tanh scale=100")
    assert quantify(_q({**every, ("tanh", 100): "inconclusive"}), ("activation", "scale")) == ("inconclusive", "")


def test_a_quantified_judgement_in_every_field():
    every = {(a, s): "supported" for a in ACTS for s in (10, 100)}
    grid, checks = quantified({**every, ("sin", 10): "refuted"})
    j = judge(QSPEC, grid, checks)
    assert j.verdict == "conditional" and j.control == "refuted" and j.points == 6
    assert j.sensitivity == ("refuted by the counterexample activation=sin; supported at 5 of 6 grid points; "
                             "refuted at activation=sin scale=10")
    # the headline is a point that carries the verdict: for conditional the first supported one
    assert j.headline.verdict == "supported"
    grid, checks = quantified({("sigmoid", 10): "supported", ("tanh", 10): "refuted", ("sin", 10): "supported"})
    j = judge(QSPEC, grid, checks)
    assert (j.verdict, j.headline.verdict, j.evidence) == ("refuted", "refuted", "effect 1")
    assert j.sensitivity == ("refuted by the counterexample activation=tanh; supported at activation sigmoid, sin; "
                             "refuted at activation tanh")


def test_a_headline_falls_back_to_the_first_point_when_none_carries_the_verdict():
    rec = Recorder("demo")
    rec.finding("X1", found("inconclusive", 2.0), point={"lr": 0.01})
    rec.finding("X1", found("refuted", 3.0), point={"lr": 0.1})
    df = rec.table().to_pandas()
    j = judge(SPEC, df, None)
    assert j.verdict == "conditional" and j.headline == found("inconclusive", 2.0)


# ----------------------------------------------------------------------------------------- points not run pinned

def test_points_not_run_are_counted_and_named_in_the_sensitivity():
    rec = Recorder("demo")
    rec.not_run("X1", "premise not met", point={"lr": 0.01})
    rec.not_run("X1", "premise not met", point={"lr": 0.1})
    rec.finding("X1", found("refuted"), point={"lr": 1.0})
    rec.finding("X1", found("refuted"), point={"lr": 3.0})
    df = rec.table().to_pandas()
    j = judge(SPEC, df, None)
    assert (j.verdict, j.points) == ("refuted", 2)
    assert j.sensitivity == "refuted at all 2 grid points; not run at 2 of 4 grid points at lr=0.01, lr=0.1"
    assert j.evidence == "effect 1"


def test_a_control_not_run_is_not_a_measured_control():
    spec = ClaimSpec("X1", "s", control="the counterfactual", grid=SPEC.grid)
    rec = Recorder("demo")
    for lr, _ in ALL:
        rec.finding("X1", found("supported"), point={"lr": lr})
    rec.finding("X1", Finding("not run", math.nan, math.nan, math.nan, 0, "not run", "needs --wide"), role="control")
    df = rec.table().to_pandas()
    j = judge(spec, df, None)
    assert (j.verdict, j.control) == ("inconclusive", "not run")


# ----------------------------------------------------------------------------------------- a declared control pinned

CSPEC = ClaimSpec("X1", "s", control="the counterfactual", grid=SPEC.grid)


@pytest.mark.parametrize("measured", ["supported", "refuted", "conditional"])
def test_a_declared_control_not_measured_overrides_every_decided_verdict(measured):
    rows = {"supported": ALL, "refuted": [(lr, "refuted") for lr, _ in ALL],
            "conditional": [(0.01, "inconclusive"), (0.1, "supported"), (1.0, "supported")]}[measured]
    j = judge(CSPEC, *grid_rows(rows))
    assert j == Judgement("X1", "inconclusive", found("supported" if measured == "conditional" else measured),
                          "not run", describe_sensitivity([({"lr": lr}, v) for lr, v in rows]),
                          f"its control was not measured, so nothing shows the measurement could have come out "
                          f"otherwise (measured: {measured}); effect 1", 3, {0: "inconclusive"})


def test_an_inconclusive_claim_without_its_control_is_left_as_measured():
    j = judge(CSPEC, *grid_rows([(lr, "inconclusive") for lr, _ in ALL]))
    assert (j.verdict, j.evidence) == ("inconclusive", "effect 1")


def test_a_claim_that_declares_no_control_needs_none():
    j = judge(SPEC, *grid_rows(ALL))
    assert (j.verdict, j.control, j.evidence) == ("supported", "not run", "effect 1")
    assert judge(SPEC, *grid_rows([(lr, "refuted") for lr, _ in ALL])).verdict == "refuted"


# ----------------------------------------------------------------------------------------- a boundary across base seeds

def test_a_moving_boundary_names_each_base_seeds_boundary():
    a = grid_rows([(0.01, "inconclusive"), (0.1, "supported"), (1.0, "supported")], [({}, "refuted")], base_seed=0)
    b = grid_rows([(0.01, "inconclusive"), (0.1, "inconclusive"), (1.0, "supported")], [({}, "refuted")],
                  base_seed=1000)
    j = judge(SPEC, *frames(a, b))
    assert j.verdict == "inconclusive" and j.per_seed == {0: "conditional", 1000: "conditional"}
    assert j.evidence == ("the verdict's boundary changes with the base seed (base seed 0: supported at lr 0.1 and 1; "
                          "inconclusive at lr 0.01; base seed 1000: supported at lr 1; inconclusive at lr 0.01 and "
                          "0.1) (measured: conditional); effect 1")
    assert j.sensitivity == "supported at lr 0.1 and 1; inconclusive at lr 0.01"


def test_an_agreeing_verdict_is_kept_when_only_its_sensitivity_differs():
    # a point not run at one base seed changes the sensitivity line, not the verdict
    a = grid_rows(ALL, [({}, "refuted")], base_seed=0)
    rec = Recorder("demo", base_seed=1000)
    rec.not_run("X1", "premise not met", point={"lr": 0.01})
    for lr in (0.1, 1.0):
        rec.finding("X1", found("supported"), point={"lr": lr})
    rec.finding("X1", found("refuted", 0.0), role="control")
    df = rec.table().to_pandas()
    j = judge(SPEC, *frames(a, (df[df["kind"] == "grid"], df[df["kind"] == "check"])))
    assert (j.verdict, j.evidence) == ("supported", "effect 1")


# ----------------------------------------------------------------------------------------- a control's parts

def _with_parts(verdict: str, parts: tuple, effect: float = 0.0) -> Finding:
    return Finding(verdict, effect, effect - 0.1, effect + 0.1, 6, "bootstrap", f"effect {effect:g}", parts=parts)


def _parts_rows(claim, control):
    rec = Recorder("demo")
    for lr, v in claim:
        rec.finding("X1", found(v), point={"lr": lr})
    for point, f in control:
        rec.finding("X1", f, point=point, role="control")
    df = rec.table().to_pandas()
    return df, None


@pytest.mark.parametrize("claim, noted", [
    (ALL, True),
    ([(0.01, "inconclusive"), (0.1, "supported"), (1.0, "supported")], True),      # conditional
    ([(lr, "refuted") for lr, _ in ALL], False),
    ([(lr, "inconclusive") for lr, _ in ALL], False),
])
def test_a_supported_part_of_a_control_is_named_where_the_claim_found_support(claim, noted):
    j = judge(SPEC, *_parts_rows(claim, [({"lr": 0.1}, _with_parts("refuted", ("supported", "refuted"))),
                                         ({"lr": 1.0}, _with_parts("refuted", ("refuted", "refuted")))]))
    assert j.control == "refuted" and j.verdict == combine_points([v for _, v in claim])
    note = ("effect 1; a part of the claim also holds on its control at lr=0.1, so the verdict rests on the parts "
            "that fail there")
    assert j.evidence == (note if noted else "effect 1")


def test_a_control_whose_parts_hold_nowhere_adds_nothing():
    for parts in (("refuted", "inconclusive"), (), ("not run", "refuted")):
        j = judge(SPEC, *_parts_rows(ALL, [({}, _with_parts("refuted", parts))]))
        assert (j.verdict, j.evidence) == ("supported", "effect 1")
    # a file without the parts column (schema 1) judges as before
    df, _ = _parts_rows(ALL, [({}, _with_parts("refuted", ("supported", "refuted")))])
    j = judge(SPEC, df.drop(columns="parts"), None)
    assert (j.verdict, j.evidence) == ("supported", "effect 1")
    j = judge(SPEC, *_parts_rows(ALL, [({}, _with_parts("refuted", ("supported", "refuted")))]))
    assert j.evidence == ("effect 1; a part of the claim also holds on its control, so the verdict rests on the "
                          "parts that fail there")
