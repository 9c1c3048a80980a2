"""The cost claims on two implementations (A1, A2's cost cells, A9, I2, N9): their `implementation` axis holds
dlbench alone without torch and dlbench and torch with it; both are timed and recorded; a verdict that differs
between them is `conditional`, naming the implementation.

Timings on a shared machine are noisy, so these tests check structure: real runs check what is recorded,
timings drawn from a table (not the clock) check how the verdicts follow from them."""

import dataclasses
import math
import zlib

import numpy as np
import pytest

from dlbench import peer
from dlbench.experiments import activations as aexp
from dlbench.experiments import init as iexp
from dlbench.experiments import norm as nexp
from dlbench.experiments.activations import costs
from dlbench.experiments.base import RunContext
from dlbench.experiments.init import claims as iclaims
from dlbench.experiments.norm import claims as nclaims
from dlbench.protocol import Axis, judge
from dlbench.results import Recorder
from dlbench.timing import Timing

COST_CLAIMS = [(aexp, "A1"), (aexp, "A2"), (aexp, "A9"), (iexp, "I2"), (nexp, "N9")]
SMALL = aexp.Options(activations="relu,leaky_relu,tanh,elu,sigmoid,sin", sizes="65536,262144")


def _axis(module, cid):
    return next(a for a in module.CLAIMS[cid].grid if a.name == "implementation")


def _context(record_as: str, timings=None) -> RunContext:
    if timings:
        return TableTimes(seed=0, seeds=2, quick=True, record=Recorder(record_as), table=timings)
    return RunContext(seed=0, seeds=2, quick=True, record=Recorder(record_as))


@dataclasses.dataclass
class TableTimes(RunContext):
    """A RunContext whose timings come from `table(case) -> seconds per call`, not from the clock: sample j is
    that time times 1 + 1 % deterministic jitter. The calls are never made."""

    table: object = None

    def time_interleaved(self, metric, calls, *, items=None, bytes=None, section="timings"):
        out = []
        for case, _ in calls:
            jitter = np.random.default_rng(zlib.crc32(repr(sorted(case.items())).encode())).uniform(-0.01, 0.01, 7)
            t = Timing(self.table(case) * (1 + jitter), loops=1)
            self.record.timing(metric, t, case=case, section=section)
            out.append(t)
        return out


@pytest.fixture
def without_torch(monkeypatch):
    monkeypatch.setattr(peer, "available", lambda: False)


@pytest.fixture
def fake_torch(monkeypatch):
    """torch's axis value with dlbench's kernels standing in (their calls are never timed in these tests)."""
    kernel = peer.kernel
    monkeypatch.setattr(peer, "available", lambda: True)
    monkeypatch.setattr(peer, "kernel", lambda op, name, *arrays, impl="dlbench", **hyper:
                        kernel(op, name, *arrays, **hyper))
    monkeypatch.setitem(costs.KERNELS, "torch", costs.DlbenchKernels)


def _grid(ctx):
    return ctx.record.table(("grid",)).to_pandas()


# ----------------------------------------------------------------------------- the axis

@pytest.mark.parametrize("module, cid", COST_CLAIMS)
def test_every_cost_claim_has_the_implementation_axis_and_says_what_torch_adds(module, cid, monkeypatch):
    spec = module.CLAIMS[cid]
    axis = _axis(module, cid)
    assert spec.basis == "timing" and axis.values == ("dlbench", "torch")
    assert "torch" in spec.measures and "when torch imports" in spec.measures
    monkeypatch.setattr(peer, "available", lambda: False)
    assert {p["implementation"] for p in spec.points(quick=True)} == {"dlbench"}
    monkeypatch.setattr(peer, "available", lambda: True)
    assert {p["implementation"] for p in spec.points(quick=True)} == {"dlbench", "torch"}


def test_a2_judges_its_cost_cells_per_implementation_and_its_other_cells_once(monkeypatch):
    monkeypatch.setattr(peer, "available", lambda: True)
    points = aexp.CLAIMS["A2"].points()
    by = {}
    for p in points:
        by.setdefault(p["property"].startswith("cost"), set()).add(p["implementation"])
    assert by == {True: {"dlbench", "torch"}, False: {"dlbench"}}
    assert len(points) == len(aexp.TABLE) * (6 + 2 * 2)


# ----------------------------------------------------------------------------- without torch

def test_without_torch_only_dlbench_is_timed_and_every_point_is_recorded(without_torch):
    ctx = _context("activations")
    costs.kernel_costs(SMALL, ctx, size="in_cache")
    timings = ctx.record.table(("timing",)).to_pandas()
    assert set(timings["p_implementation"]) == {"dlbench"}
    grid = _grid(ctx)
    assert set(grid["p_implementation"]) == {"dlbench"}
    a9 = grid[(grid["claim"] == "A9") & (grid["role"] == "claim")]
    assert len(a9) == len([p for p in aexp.CLAIMS["A9"].points(True) if p["size"] == "in_cache"]) == 5
    assert not any("torch" in e for e in grid["evidence"].dropna())


def _activation_costs(case) -> float:
    """Seconds per call: relu 1, leaky relu 1.1, the others 2.5 (costly), the relu layer 1, maxout's 3; torch's
    tanh as cheap as relu."""
    kernel = case["kernel"]
    if kernel.endswith(" layer"):
        return 3e-3 if kernel.startswith("maxout") else 1e-3
    if kernel.startswith("relu"):
        return 1e-3
    if kernel == "leaky_relu" or (kernel == "tanh" and case["implementation"] == "torch"):
        return 1.1e-3
    return 2.5e-3


def test_without_torch_the_verdicts_are_dlbenchs(without_torch):
    ctx = _context("activations", _activation_costs)
    for size in ("in_cache", "from_dram"):
        costs.kernel_costs(SMALL, ctx, size=size)
    j = judge(aexp.CLAIMS["A9"], _grid(ctx))
    assert j.verdict == "supported" and j.control == "refuted", j.evidence
    assert j.sensitivity == "supported at all 10 grid points"


# ----------------------------------------------------------------------------- two implementations

def test_implementations_that_agree_keep_the_verdict(fake_torch):
    ctx = _context("activations", lambda case: _activation_costs({**case, "implementation": "dlbench"}))
    for size in ("in_cache", "from_dram"):
        costs.kernel_costs(SMALL, ctx, size=size)
    grid = _grid(ctx)
    j = judge(aexp.CLAIMS["A9"], grid)
    assert j.verdict == "supported" and j.sensitivity == "supported at all 20 grid points"
    controls = grid[(grid["claim"] == "A9") & (grid["role"] == "control")]
    assert sorted(zip(controls["p_size"], controls["p_implementation"])) == \
        sorted((s, i) for s in ("in_cache", "from_dram") for i in ("dlbench", "torch"))


def test_a_verdict_that_differs_between_implementations_is_conditional_and_names_it(fake_torch):
    ctx = _context("activations", _activation_costs)
    for size in ("in_cache", "from_dram"):
        costs.kernel_costs(SMALL, ctx, size=size)
    grid = _grid(ctx)
    a9 = judge(aexp.CLAIMS["A9"], grid)
    assert a9.verdict == "conditional"
    assert a9.sensitivity.startswith("supported at 18 of 20 grid points; refuted at ")
    exceptions = a9.sensitivity.split("; ", 1)[1].split(", ")
    assert len(exceptions) == 2 and all("activation=tanh" in e and "implementation=torch" in e for e in exceptions)
    tanh = grid[(grid["claim"] == "A2") & (grid["p_activation"] == "tanh") & (grid["role"] == "claim")]
    assert dict(zip(tanh["p_implementation"], tanh["verdict"])) == {"dlbench": "supported", "torch": "refuted"}


def _generation_times(case) -> float:
    """Seconds to make an n x n matrix: n^2 for uniform and normal, n^3 for orthogonal -- except torch's."""
    n, scheme = case["n"], case["scheme"]
    cubic = scheme == "orthogonal" and case["implementation"] == "dlbench"
    return 1e-9 * n**3 if cubic else 1e-8 * n**2


def test_i2_differing_between_implementations_is_conditional_on_the_implementation(fake_torch):
    ctx = _context("init", _generation_times)
    iclaims.claim_i2(iexp.Options(), ctx)
    j = judge(iexp.CLAIMS["I2"], _grid(ctx))
    # torch's orthogonal grows as its uniform: no larger exponent, which I2's rule leaves inconclusive
    assert j.verdict == "conditional" and "supported" not in j.control
    assert j.sensitivity == "supported at implementation dlbench; inconclusive at implementation torch"


# ----------------------------------------------------------------------------- with torch

@pytest.fixture
def torch():
    torch = pytest.importorskip("torch")
    assert peer.available()
    return torch


def _recorded_on_both(ctx, claim: str, torch) -> None:
    timings = ctx.record.table(("timing",)).to_pandas()
    assert set(timings["p_implementation"]) == {"dlbench", "torch"}
    grid = _grid(ctx)
    mine = grid[(grid["claim"] == claim) & (grid["verdict"] != "not run")]
    for role in ("claim", "control"):
        assert set(mine[mine["role"] == role]["p_implementation"]) == {"dlbench", "torch"}, (claim, role)
    at_torch = mine[mine["p_implementation"] == "torch"]["evidence"]
    assert at_torch.str.contains(f"torch {torch.__version__}", regex=False).all(), claim
    assert not mine[mine["p_implementation"] == "dlbench"]["evidence"].str.contains("torch").any(), claim


def test_with_torch_a2_and_a9_are_timed_on_both(torch):
    ctx = _context("activations")
    costs.kernel_costs(SMALL, ctx, size="in_cache")
    _recorded_on_both(ctx, "A9", torch)
    _recorded_on_both(ctx, "A2", torch)
    timings = ctx.record.table(("timing",)).to_pandas()
    kernels = timings.groupby("p_implementation")["p_kernel"].apply(set)
    assert kernels["dlbench"] == kernels["torch"]   # the same operations on both sides
    assert set(timings["p_n"]) == {65536}
    grid = _grid(ctx)
    a9 = grid[(grid["claim"] == "A9") & (grid["role"] == "claim")]
    assert len(a9) == len([p for p in aexp.CLAIMS["A9"].points(True) if p["size"] == "in_cache"]) == 10


def test_with_torch_a1_is_timed_on_both(torch, monkeypatch):
    spec = aexp.CLAIMS["A1"]
    monkeypatch.setitem(aexp.CLAIMS, "A1", dataclasses.replace(spec, grid=(
        Axis("width", (32,)), Axis("mix", ("relu,tanh",)), aexp.IMPLEMENTATION)))
    ctx = _context("activations")
    costs.layer_costs(SMALL, ctx)
    _recorded_on_both(ctx, "A1", torch)


def test_with_torch_i2_is_timed_on_both(torch, monkeypatch):
    monkeypatch.setitem(iexp.CLAIMS, "I2", dataclasses.replace(iexp.CLAIMS["I2"], grid=(
        Axis("sizes", ("16,32,64",)), _axis(iexp, "I2"))))
    ctx = _context("init")
    iclaims.claim_i2(iexp.Options(), ctx)
    _recorded_on_both(ctx, "I2", torch)
    exponents = ctx.record.table(("metric",)).to_pandas()
    assert set(exponents["p_implementation"]) == {"dlbench", "torch"}


def test_with_torch_n9_times_both_and_joins_one_training_measurement(torch, monkeypatch):
    trained = []

    def steps(ctx, condition, white):   # the training half, measured once per condition and input
        trained.append((condition, white))
        return {"batch": np.full(6, 50.0), "zca": np.full(6, 45.0), "zca + affine": np.full(6, 48.0)}

    monkeypatch.setattr(nclaims, "_whitening_steps", steps)
    ctx = _context("norm")
    nclaims.claim_n9(dataclasses.replace(nexp.Options(), features="8,16"), ctx)
    _recorded_on_both(ctx, "N9", torch)
    assert sorted(trained) == [(300, False), (300, True)]
    grid = _grid(ctx)
    claim = grid[(grid["claim"] == "N9") & (grid["role"] == "claim")]
    # one training measurement, two cost measurements: the (c) part of the evidence is the same text
    assert claim["evidence"].str.split("|").str[-1].nunique() == 1
    assert math.isfinite(claim["value"].iloc[0])


def test_i2_times_schemes_with_hyperparameters_under_their_label(without_torch):
    ctx = _context("init", _generation_times)
    iclaims.claim_i2(iexp.Options(time_schemes="normal:std=0.01,xavier_uniform"), ctx)
    timings = ctx.record.table(("timing",)).to_pandas()
    assert {"normal:std=0.01", "xavier_uniform", "uniform", "normal", "orthogonal"} == set(timings["p_scheme"])
