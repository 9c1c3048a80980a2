"""Properties that must hold for any input: results round trip, the verdict rule, Mann-Whitney U."""

import math

import numpy as np
import pyarrow.parquet as pq
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dlbench.registry import Registry
from dlbench.results import Recorder, read_results, write_results
from dlbench.stats import decide, mann_whitney_u

finite = st.floats(-1e12, 1e12, allow_nan=False)
param = st.one_of(st.integers(-10**9, 10**9), finite, st.text(st.characters(codec="utf-8"), max_size=12),
                  st.booleans())


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(values=st.lists(finite, min_size=1, max_size=20), case=st.dictionaries(
    st.from_regex(r"[a-z]{1,8}", fullmatch=True), param, max_size=4), seed=st.integers(0, 2**31))
def test_results_round_trip_any_values_and_case(tmp_path_factory, values, case, seed):
    rec = Recorder("prop")
    rec.metric("m", values, case=case, seeds=[seed] * len(values))
    path = tmp_path_factory.mktemp("r") / "r.parquet"
    write_results([rec], {"note": "x"}, path)
    back = read_results(path).rows
    np.testing.assert_array_equal(back["value"].to_numpy(), np.asarray(values, dtype=float))
    assert (back["seed"] == seed).all()
    schema = pq.read_schema(path)
    for k, v in case.items():
        got = back[f"p_{k}"].iloc[0]
        if isinstance(v, bool):
            assert str(schema.field(f"p_{k}").type) == "bool" and bool(got) == v
        elif isinstance(v, (int, float)):
            assert float(got) == float(v)
        else:
            assert got == v


@given(effect=finite, half=st.floats(0, 1e6, allow_nan=False), null=finite, n=st.integers(0, 50))
def test_verdict_rule_is_antisymmetric_and_respects_the_null(effect, half, null, n):
    low, high = effect - half, effect + half
    up = decide(effect, low, high, direction="greater", null=null, n=n)
    down = decide(effect, low, high, direction="less", null=null, n=n)
    swap = {"supported": "refuted", "refuted": "supported", "inconclusive": "inconclusive"}
    assert down == swap[up]
    if low <= null <= high or n < 2:
        assert up == "inconclusive"


samples = st.lists(st.integers(0, 6).map(float), min_size=1, max_size=9)


@given(x=samples, y=samples)
def test_mann_whitney_is_symmetric_and_u_sums_to_n1_n2(x, y):
    u_xy, p_xy = mann_whitney_u(x, y)
    u_yx, p_yx = mann_whitney_u(y, x)
    assert math.isclose(u_xy + u_yx, len(x) * len(y))
    assert 0.0 <= p_xy <= 1.0
    assert math.isclose(p_xy, p_yx, rel_tol=1e-9, abs_tol=1e-12)


@given(st.lists(st.sampled_from(["sgd", "adam", "rmsprop", "adagrad"]), min_size=1, max_size=4, unique=True))
def test_registry_lists_round_trip(names):
    reg = Registry("optimizer")
    for n in ("sgd", "adam", "rmsprop", "adagrad"):
        reg.add(n, n)
    assert reg.parse_list(",".join(names)) == names
