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
