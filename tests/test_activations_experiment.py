"""`dlbench activations`: its measurements (A2 properties, closed-form means, A10's Monte Carlo), the notes'
table reading, and the command end to end (--quick writes a file that `show` renders; bad input is one line)."""

import math

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from dlbench import cli
from dlbench.experiments.activations import measure as am
from dlbench.experiments import activations as exp
from dlbench.nn.activations import ACTIVATIONS, get_activation
from dlbench.results import read_results

runner = CliRunner()


# ----------------------------------------------------------------------------- A10 Monte Carlo

def test_dead_layer_analytic_values():
    assert am.dead_layer_analytic(2, 1) == pytest.approx(0.25)
    assert am.dead_layer_analytic(1, 3) == pytest.approx(1 - 0.5**3)
    assert am.dead_layer_analytic(4, 10) == pytest.approx(1 - (15 / 16) ** 10)
    # rises with depth, falls with width
    assert am.dead_layer_analytic(8, 50) > am.dead_layer_analytic(8, 5) > am.dead_layer_analytic(16, 5)
    assert 0 < am.dead_layer_analytic(64, 50) < 1e-17


def test_monte_carlo_agrees_with_the_formula_on_a_small_grid():
    rng = np.random.default_rng(7)
    nets, inputs, depth = 1500, 8, 12
    for width in (1, 2, 3, 5):
        dead = am.dead_relu_monte_carlo(width, depth, nets, inputs, rng)
        assert dead.shape == (depth, nets, inputs)
        # a zero layer stays zero: "dead by layer l" never goes back
        assert not (dead[:-1] & ~dead[1:]).any()
        for L in range(1, depth + 1):
            p = dead[L - 1].mean()
            lo, hi = am.wilson_interval(p * nets, nets)
            assert lo <= am.dead_layer_analytic(width, L) <= hi, (width, L, p)


def test_wilson_interval_edges():
    assert am.wilson_interval(0, 100)[0] == 0.0
    assert am.wilson_interval(100, 100)[1] == 1.0
    lo, hi = am.wilson_interval(50, 100)
    assert lo < 0.5 < hi and hi - lo == pytest.approx(0.19, abs=0.01)


# ----------------------------------------------------------------------------- closed-form means

SQRT_2PI = math.sqrt(2 * math.pi)


@pytest.mark.parametrize("name, hyper, value", [
    ("relu", {}, 1 / SQRT_2PI),
    ("tanh", {}, 0.0),
    ("sigmoid", {}, 0.5),
    ("sin", {}, 0.0),
    ("identity", {}, 0.0),
    # elu: E[x; x>0] + alpha E[e^x - 1; x<0] = 1/sqrt(2 pi) + alpha (e^(1/2) Phi(-1) - 1/2)
    ("elu", {}, 0.3989422804014327 + (1.6487212707001282 * 0.15865525393145707 - 0.5)),
    ("elu", {"alpha": 2.0}, 0.3989422804014327 + 2 * (1.6487212707001282 * 0.15865525393145707 - 0.5)),
    ("leaky_relu", {"negative_slope": 0.2}, 0.8 / SQRT_2PI),
    ("prelu", {}, 0.75 / SQRT_2PI),
    ("selu", {}, 0.0),  # mean 0 at N(0, 1) input is SELU's design
    ("gelu", {}, 1 / (2 * math.sqrt(math.pi))),
    ("maxout", {}, 1 / math.sqrt(math.pi)),
])
def test_analytic_means(name, hyper, value):
    assert am.analytic_mean(get_activation(name, **hyper)) == pytest.approx(value, abs=1e-12)


def _gauss_mean(act) -> float:
    """E f(x), x ~ N(0, 1), by the trapezoid rule on [-12, 12] (k = 1 only)."""
    x = np.linspace(-12, 12, 400_001)
    f = act.forward(x[:, None], *am.theta_for(act)).ravel()
    w = np.exp(-x * x / 2) / SQRT_2PI
    return float(np.sum((f * w)[1:] + (f * w)[:-1]) / 2 * (x[1] - x[0]))


@pytest.mark.parametrize("name", [n for n, a in ACTIVATIONS.items() if a.name == n and a.pieces == 1])
def test_closed_forms_match_integration_of_the_kernels(name):
    act = ACTIVATIONS[name]
    closed = am.analytic_mean(act)
    if closed is None:
        assert name in ("silu", "softplus")
        return
    assert _gauss_mean(act) == pytest.approx(closed, abs=2e-6)


def test_measured_moments_bracket_the_closed_form():
    rng = np.random.default_rng(3)
    for name in ("relu", "elu", "maxout"):
        act = ACTIVATIONS[name]
        means, _ = am.output_moments(act, rng, n=1 << 16)
        se = means.std(ddof=1) / math.sqrt(means.size)
        assert abs(means.mean() - am.analytic_mean(act)) < 5 * se


# ----------------------------------------------------------------------------- A2 property measurements

@pytest.fixture(scope="module")
def props():
    rng = np.random.default_rng(0)
    return {n: am.measure_properties(ACTIVATIONS[n], rng) for n in ACTIVATIONS if ACTIVATIONS[n].name == n}


def test_derivative_ranges(props):
    assert props["sigmoid"].d_high == pytest.approx(0.25, abs=1e-9)
    assert props["tanh"].d_high == pytest.approx(1.0, abs=1e-9)
    assert props["relu"].d_values == (0.0, 1.0)
    assert props["leaky_relu"].d_values == (0.01, 1.0)
    assert props["maxout"].d_values == (0.0, 1.0)
    assert props["sin"].d_low == pytest.approx(-1, abs=1e-6) and props["sin"].d_high == pytest.approx(1, abs=1e-6)
    assert props["selu"].d_sup == pytest.approx(am.SELU_SCALE * am.SELU_ALPHA, rel=1e-6)


def test_output_ranges_and_monotonicity(props):
    inf = math.inf
    assert (props["relu"].out_low, props["relu"].out_high) == (0.0, inf)
    assert (props["leaky_relu"].out_low, props["leaky_relu"].out_high) == (-inf, inf)
    assert props["elu"].out_low == pytest.approx(-1.0) and props["elu"].out_high == inf
    assert (props["sigmoid"].out_low, props["sigmoid"].out_high) == (0.0, pytest.approx(1.0))
    assert (props["maxout"].out_low, props["maxout"].out_high) == (-inf, inf)
    assert props["softplus"].out_low == 0.0
    assert props["tanh"].monotonic and props["relu"].monotonic and props["maxout"].monotonic
    assert not props["sin"].monotonic and not props["gelu"].monotonic and not props["silu"].monotonic


def test_nonlinearity_and_counts(props):
    assert props["identity"].nonlinearity < 1e-9
    assert all(p.nonlinearity > 0.1 for n, p in props.items() if n != "identity")
    assert (props["elu"].hyper, props["prelu"].hyper, props["prelu"].learned, props["relu"].hyper) == (1, 1, 1, 0)
    assert props["gelu"].hyper == 0  # `approximate` picks a formula, it is not a number to tune


def test_zero_centred_categories():
    assert am.zero_centred(0.01, 1.0) == "yes"
    assert am.zero_centred(0.16, 0.8) == "approximately"
    assert am.zero_centred(0.4, 0.7) == "no"


# ----------------------------------------------------------------------------- the notes' table

def test_notes_table_is_the_notes_verbatim():
    assert set(am.NOTES_TABLE) == {"ReLU", "ELU", "LReLU PReLU", "maxout", "Sigmoid", "tanh", "sin/cos"}
    assert all(len(e["cells"]) == len(am.PROPERTIES) for e in am.NOTES_TABLE.values())
    assert am.NOTES_TABLE["Sigmoid"]["cells"][3:5] == ("0~1", "0~0.25")
    assert am.notes_row_for("prelu") == "LReLU PReLU" and am.notes_row_for("gelu") is None


def test_notes_cells_are_checked_against_the_measurement(props):
    def check(name, prop):
        row = am.NOTES_TABLE[am.notes_row_for(name)]
        text = row["cells"][am.PROPERTIES.index(prop)]
        return am.agrees(prop, am.notes_reading(prop, text), props[name], "no", None, ACTIVATIONS[name])

    assert check("sigmoid", "output range") and check("sigmoid", "derivative")
    assert check("tanh", "derivative") and check("relu", "derivative") and check("relu", "output range")
    assert check("leaky_relu", "derivative") and check("prelu", "derivative")  # {alpha, 1}
    assert check("elu", "hyperparameters") and check("maxout", "output range")
    assert check("elu", "output range") is False  # the notes say -inf; elu is bounded below by -alpha
    assert check("maxout", "derivative") is None  # "depends on w" commits to nothing
    assert check("relu", "zero-centred") is None  # blank in the notes
    assert check("relu", "cost") is None  # not timed


# ----------------------------------------------------------------------------- the command

@pytest.fixture(scope="module")
def app():
    a = typer.Typer(cls=cli.OneLineGroup)
    a.command("activations", help=exp.HELP)(cli._experiment_command(exp))
    a.command("show")(cli.show)
    return a


def invoke(app, *args):
    return runner.invoke(app, list(args), env={"COLUMNS": "200", "NO_COLOR": "1"})


@pytest.fixture(scope="module")
def quick_run(app, tmp_path_factory):
    out = tmp_path_factory.mktemp("act") / "act.parquet"
    r = invoke(app, "activations", "--quick", "--out", str(out), "-q")
    assert r.exit_code == 0, r.output
    return out


def test_quick_run_records_every_claim(quick_run):
    res = read_results(quick_run)
    claims = res.claims.set_index("claim")
    assert set(claims.index) == set(exp.CLAIMS)
    assert set(claims["verdict"]) <= {"supported", "refuted", "inconclusive"}
    assert (claims["n"] > 0).all()
    assert claims.loc["A7", "verdict"] == "supported"
    assert claims.loc["A10-width", "verdict"] == "supported"
    assert claims.loc["A10-depth", "verdict"] == "refuted"
    assert "elu output range" in claims.loc["A2", "evidence"]
    rows = res.rows
    assert {"forward", "fwd+bwd"} <= set(rows.loc[rows["kind"] == "timing", "metric"])
    assert res.meta["options"]["activations"]["sizes"] == "8192,1500000"


def test_timing_claims_are_marked_timing(quick_run):
    basis = read_results(quick_run).claims.set_index("claim")["basis"]
    assert set(basis[basis == "timing"].index) == {"A1", "A2", "A9"}


def test_a8_counts_only_units_that_die_in_training(quick_run):
    res = read_results(quick_run)
    rows = res.rows[res.rows["section"].str.startswith("A8")]
    assert {"dead at init", "dead after", "died in training"} <= set(rows["metric"])
    a8 = res.claims.set_index("claim").loc["A8"]
    died = rows[(rows["metric"] == "died in training") & (rows["p_activation"] == "relu")]["value"]
    assert "dead at init" in a8["evidence"] and "after - at init" in a8["evidence"]
    if not (died > 0.01).any():
        assert a8["verdict"] != "supported"


def test_show_renders_the_quick_run(app, quick_run):
    for fmt in ("table", "markdown"):
        r = invoke(app, "show", str(quick_run), "--format", fmt)
        assert r.exit_code == 0, r.output
        assert "A10-depth" in r.output and "A2 the notes' table" in r.output


def test_a_subset_leaves_unmeasurable_claims_inconclusive(tmp_path):
    from dlbench.runner import run

    res = run("activations", quick=True, seeds=2, activations="relu,maxout", sizes="4096,2100000", depth=4)
    claims = res.claims.set_index("claim")
    assert set(claims.index) == set(exp.CLAIMS)
    for cid in ("A1", "A3", "A4", "A5", "A6", "A8", "A9", "A11"):
        assert claims.loc[cid, "verdict"] == "not run", cid
    assert "needs" in claims.loc["A3", "evidence"]


@pytest.mark.parametrize("args, fragment", [
    (["--activations", "relu,nope"], "unknown activation 'nope'"),
    (["--sizes", "abc"], "--sizes"),
    (["--sizes", "10"], "--sizes"),
    (["--width", "1"], "--width"),
    (["--depth", "0"], "--depth"),
])
def test_bad_input_is_one_line_and_exit_2(app, args, fragment):
    r = invoke(app, "activations", "--quick", "--no-save", "-q", *args)
    assert r.exit_code == 2, r.output
    lines = [line for line in r.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("dlbench: error:"), r.output
    assert fragment in lines[0]


def test_plot_draws_a10_and_a6(quick_run, tmp_path):
    pytest.importorskip("matplotlib")
    out = tmp_path / "act.png"
    exp.plot(read_results(quick_run), out)
    assert out.stat().st_size > 10_000


def _fake_timings(factor: float, sizes=(1024,)):
    from types import SimpleNamespace
    rng = np.random.default_rng(0)
    out = {}
    for name in ("relu", "leaky_relu", "tanh", "sigmoid"):
        scale = 1.0 if name in exp.CHEAP else factor
        for n in sizes:
            t = SimpleNamespace(samples=scale * n * (1.0 + 0.01 * rng.random(40)), items=n)
            out[(name, n)] = (t, t)
    return out


def test_a9_and_a2_share_one_definition_of_costly():
    assert exp.A9_THRESHOLD == exp.COST_FACTOR - 1.0
    names = ["relu", "leaky_relu", "tanh", "sigmoid"]
    slightly = exp.claim_a9(_fake_timings(1.19), names, [1024])
    assert slightly.low > 1.0 and slightly.verdict == "inconclusive"
    assert "below 2x, the 'costly' of A2" in slightly.evidence
    assert exp.claim_a9(_fake_timings(2.5), names, [1024]).verdict == "supported"
