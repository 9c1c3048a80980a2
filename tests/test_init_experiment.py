"""dlbench init: the per-layer profile, the I1/I2/I4 measurements, claim assembly, the CLI end to end."""

import math
import re

import numpy as np
import pytest
from typer.testing import CliRunner

from dlbench import cli
from dlbench.errors import DlbenchError, UnknownName
from dlbench.experiments import init as exp
from dlbench.nn.activations import get_activation
from dlbench.nn.init import get_initializer
from dlbench.results import read_results
from dlbench.stats import Claim

runner = CliRunner()


def invoke(*args):
    return runner.invoke(cli.app, list(args), env={"COLUMNS": "200", "NO_COLOR": "1"})


# ----------------------------------------------------------------------------- the per-layer profile

def _reference_profile(inits, seeds, act, depth, width, x, g_out):
    """One replica at a time, written out plainly: weights drawn as std_profile draws them."""
    act_std = np.empty((len(inits), seeds, depth))
    grad_std = np.empty((len(inits), seeds, depth))
    for k, (init, key) in enumerate(inits):
        rng = np.random.default_rng(key)
        Ws = [init(rng, (seeds, width, width), np.float64) for _ in range(depth)]
        for s in range(seeds):
            h, zs = x, []
            for l in range(depth):
                z = h @ Ws[l][s]
                h = act.forward(z)
                zs.append(z)
                act_std[k, s, l] = h.std()
            g = g_out
            for l in reversed(range(depth)):
                dz = act.backward(zs[l], act.forward(zs[l]), g)
                grad_std[k, s, l] = dz.std()
                g = dz @ Ws[l][s].T
    return act_std, grad_std


@pytest.mark.parametrize("act_name", ["relu", "tanh"])
def test_profile_matches_a_plain_loop_and_chunking_changes_nothing(act_name):
    act = get_activation(act_name)
    inits = [(get_initializer("xavier_uniform"), 1), (get_initializer("normal", std=0.3), 2),
             (get_initializer("orthogonal"), 3)]
    depth, width, seeds = 5, 8, 2
    rng = np.random.default_rng(0)
    x, g_out = rng.standard_normal((16, width)), rng.standard_normal((16, width))
    ref_act, ref_grad = _reference_profile(inits, seeds, act, depth, width, x, g_out)
    for max_bytes in (exp.MAX_CHUNK_BYTES, 1):       # one chain for all schemes, then one scheme per chain
        p = exp.std_profile([i for i, _ in inits], [np.random.default_rng(k) for _, k in inits], act,
                            depth=depth, width=width, n_seeds=seeds, x=x, g_out=g_out, max_bytes=max_bytes)
        np.testing.assert_allclose(p.act, ref_act, rtol=1e-12)
        np.testing.assert_allclose(p.grad, ref_grad, rtol=1e-12)


def test_profile_follows_the_mean_field_factors_under_relu():
    act = get_activation("relu")
    depth, width = 12, 256
    schemes = [get_initializer("xavier_uniform"), get_initializer("kaiming_normal"), get_initializer("torch_default")]
    rng = np.random.default_rng(1)
    x, g = rng.standard_normal((128, width)), rng.standard_normal((128, width))
    p = exp.std_profile(schemes, [np.random.default_rng(i) for i in range(3)], act, depth=depth, width=width,
                        n_seeds=3, x=x, g_out=g)
    var_factor = np.median(p.act_ratio ** (2 / (depth - 1)), axis=1)
    np.testing.assert_allclose(var_factor, [0.5, 1.0, 1 / 6], rtol=0.08)
    grad_factor = np.median(p.grad_ratio ** (2 / (depth - 1)), axis=1)
    np.testing.assert_allclose(grad_factor, [0.5, 1.0, 1 / 6], rtol=0.08)


def test_orthogonal_linear_net_keeps_the_std():
    # each row's norm is preserved exactly by Q; the std moves only by the change of the overall mean
    act = get_activation("identity")
    x = np.random.default_rng(2).standard_normal((32, 16))
    p = exp.std_profile([get_initializer("orthogonal")], [np.random.default_rng(0)], act, depth=6, width=16,
                        n_seeds=2, x=x, g_out=x)
    assert np.abs(p.act / x.std() - 1).max() < 0.05
    assert np.abs(p.grad / x.std() - 1).max() < 0.05
    assert np.abs(p.drift - 1).max() < 0.02


def test_profile_ratios_and_drift_from_known_curves():
    layers = np.arange(5)
    act = np.stack([2.0 ** layers, 0.5 ** layers])[:, None, :]       # grow x2, shrink x2 per layer
    grad = np.stack([np.ones(5), 0.9 ** (4 - layers)])[:, None, :]
    p = exp.Profile(act, grad)
    np.testing.assert_allclose(p.act_ratio[:, 0], [16, 1 / 16])
    np.testing.assert_allclose(p.grad_ratio[:, 0], [1, 0.9**4])
    np.testing.assert_allclose(p.drift[:, 0], [2, 2])
    zeros = exp.Profile(np.zeros((1, 1, 3)), np.zeros((1, 1, 3)))
    assert np.isnan(zeros.act_ratio).all() and np.isnan(zeros.drift).all()


def test_profile_refuses_a_size_that_cannot_fit():
    with pytest.raises(DlbenchError, match="lower --width"):
        exp.std_profile([get_initializer("normal")], [np.random.default_rng(0)], get_activation("relu"),
                        depth=30, width=4096, n_seeds=5, x=np.zeros((128, 4096)), g_out=np.zeros((128, 4096)))


@pytest.mark.parametrize("name, hyper, act, expected", [
    ("xavier_uniform", {}, "relu", 2.0 ** (-(10 - 1) / 2)),
    ("xavier_normal", {}, "relu", 2.0 ** (-(10 - 1) / 2)),
    ("kaiming_normal", {}, "relu", 1.0),
    ("kaiming_uniform", {"a": 0.1, "nonlinearity": "leaky_relu"}, "leaky_relu",
     (2 / (1 + 0.01) * (1 + 0.01**2) / 2) ** 4.5),
    ("torch_default", {}, "relu", 6.0 ** -4.5),
    ("orthogonal", {"gain": 2.0}, "identity", 2.0**9),
    ("lecun_normal", {}, "identity", 1.0),
    ("normal", {"std": 0.1}, "relu", (64 * 0.01 / 2) ** 4.5),
    ("uniform", {"a": -0.3, "b": 0.3}, "relu", (64 * 0.09 / 3 / 2) ** 4.5),
])
def test_analytic_ratio(name, hyper, act, expected):
    got = exp.analytic_ratio(get_initializer(name, **hyper), get_activation(act), 64, 10)
    assert got == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("name, hyper, act", [
    ("xavier_uniform", {}, "tanh"), ("normal", {"mean": 0.1}, "relu"), ("uniform", {}, "relu"),
    ("constant", {}, "relu"), ("zeros", {}, "relu"),
])
def test_analytic_ratio_is_none_without_a_closed_form(name, hyper, act):
    assert exp.analytic_ratio(get_initializer(name, **hyper), get_activation(act), 64, 10) is None


# ----------------------------------------------------------------------------- I1, I2, I4 measurements

def test_unit_symmetry_identical_units_versus_random():
    col = np.array([0.3, -1.0, 2.0])
    same = np.repeat(np.tile(col[:, None], (1, 5))[None], 2, axis=0)     # (2, 3, 5): five identical units
    gap, rank = exp.unit_symmetry(same)
    assert gap.max() <= 1e-15 and rank.tolist() == [1, 1]
    W = np.random.default_rng(0).standard_normal((2, 6, 4))
    gap, rank = exp.unit_symmetry(W)
    assert (gap > 0.1).all() and rank.tolist() == [4, 4]
    W[:, :, 1] = 3 * W[:, :, 0]        # a scaled copy: cosine 1, rank drops by one
    gap, rank = exp.unit_symmetry(W[:, :, :2])
    assert gap.max() <= 1e-15 and rank.tolist() == [1, 1]


def test_unit_symmetry_joins_the_pieces_of_a_maxout_unit():
    a, b = np.array([1.0, 2.0]), np.array([-3.0, 0.5])
    W = np.stack([a, b, a, b, a, b], axis=1)[None]         # 3 maxout units of 2 pieces, columns interleaved
    gap, rank = exp.unit_symmetry(W, pieces=2)
    assert gap[0] <= 1e-15 and rank[0] == 1
    gap, rank = exp.unit_symmetry(W)                         # read as 6 plain units they differ
    assert gap[0] > 0.5 and rank[0] == 2


def test_gram_errors_on_orthonormal_and_wide_matrices():
    rng = np.random.default_rng(1)
    q = np.linalg.qr(rng.standard_normal((3, 10, 6)))[0]        # orthonormal columns
    unit_err, input_err, rank = exp.gram_errors(q)
    assert unit_err.max() < 1e-14 and (input_err > 0.5).all() and rank.tolist() == [6, 6, 6]
    wide = np.swapaxes(q, -1, -2)                                # 6 inputs, 10 units: at most 6 independent
    unit_err, input_err, rank = exp.gram_errors(wide)
    assert (unit_err > 0.5).all() and input_err.max() < 1e-14 and rank.tolist() == [6, 6, 6]


def test_xavier_variance_against_the_formula_and_its_sampling_sd():
    ratios, reach, pooled, sd = exp.xavier_variance(np.random.default_rng(3), [(64, 64), (128, 32)], 4)
    assert ratios.shape == (2, 4) and reach.shape == (2, 4)
    count = 4 * (64 * 64 + 128 * 32)
    assert sd == pytest.approx(math.sqrt(0.8 / count))
    assert abs(pooled - 1) < 4 * sd
    assert (reach <= 1).all() and (reach > 0.99).all()
    assert np.abs(ratios - 1).max() < 0.1


def test_loglog_slope_and_bootstrap_recover_a_power_law():
    sizes = [16, 32, 64, 128]
    times = 3e-6 * np.asarray(sizes, float) ** 2.5
    assert exp.loglog_slope(sizes, times) == pytest.approx(2.5)
    samples = [np.full(7, t) * np.linspace(1, 1.5, 7) for t in times]    # fastest sample = the power law
    k = exp.bootstrap_exponents(sizes, samples, np.random.default_rng(0), n_boot=200)
    assert k.shape == (200,) and np.median(k) == pytest.approx(2.5, abs=0.1)


# ----------------------------------------------------------------------------- claims from parts

@pytest.mark.parametrize("low, high, expected", [
    (0.99, 1.01, "supported"), (0.97, 1.01, "inconclusive"), (1.03, 1.05, "refuted"), (0.9, 0.95, "refuted"),
])
def test_within_claim_is_two_one_sided_verdicts(low, high, expected):
    c = exp.within_claim("X", "s", (low + high) / 2, low, high, target=1.0, tolerance=0.02, n=10,
                         method="t", label="ratio")
    assert c.verdict == expected
    assert "within 1 +- 0.02" in c.evidence


def test_combine_takes_the_weakest_verdict():
    def part(v, e):
        return Claim("p", "", v, e, e, e, 3, "exact", f"part {e}")

    sup, inc, ref = part("supported", 1), part("inconclusive", 2), part("refuted", 3)
    assert exp.combine("X", "s", [sup, sup]).verdict == "supported"
    assert exp.combine("X", "s", [sup, inc]).verdict == "inconclusive"
    c = exp.combine("X", "s", [sup, inc, ref], headline=1)
    assert c.verdict == "refuted" and c.effect == 2 and c.id == "X"
    assert c.evidence == "part 1 [supported]; part 2 [inconclusive]; part 3 [refuted]"


# ----------------------------------------------------------------------------- scheme parsing

def test_parse_schemes_labels_and_hyperparameters():
    schemes = exp.parse_schemes("normal:std=0.01, xavier_uniform,uniform:a=-0.1:b=0.1,normal:std=1e-2")
    assert [s.label for s in schemes] == ["normal:std=0.01", "xavier_uniform", "uniform:a=-0.1:b=0.1"]
    assert schemes[0].init.hyper["std"] == 0.01 and schemes[2].init.hyper["a"] == -0.1


@pytest.mark.parametrize("text, error, fragment", [
    ("nope", UnknownName, "unknown initializer 'nope'"),
    ("normal:std", DlbenchError, "expected name:key=value"),
    ("normal:foo=1", DlbenchError, "no hyperparameter 'foo'"),
    ("normal:std=abc", DlbenchError, "must be a number"),
    (" , ", DlbenchError, "at least one"),
])
def test_parse_schemes_rejects_bad_input(text, error, fragment):
    with pytest.raises(error, match=fragment):
        exp.parse_schemes(text)


def test_good_scheme_and_gain_per_activation():
    assert exp.good_scheme("relu") == "kaiming_normal" and exp.good_scheme("tanh") == "xavier_normal"
    assert exp.good_scheme("selu") == "lecun_normal"
    assert exp.activation_gain(get_activation("relu")) == pytest.approx(math.sqrt(2))
    assert exp.activation_gain(get_activation("tanh")) == pytest.approx(5 / 3)
    assert exp.activation_gain(get_activation("leaky_relu", negative_slope=0.2)) == pytest.approx(
        math.sqrt(2 / 1.04))
    assert exp.activation_gain(get_activation("gelu")) == 1.0


# ----------------------------------------------------------------------------- the command

@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    pytest.importorskip("matplotlib")
    d = tmp_path_factory.mktemp("init")
    out, png = d / "init.parquet", d / "profiles.png"
    r = invoke("init", "--quick", "--out", str(out), "--plot", str(png), "-q")
    assert r.exit_code == 0, r.output
    return out, png


def test_quick_run_records_every_table_and_claim(quick_run):
    out, _ = quick_run
    res = read_results(out)
    rows = res.rows
    assert res.meta["options"]["init"]["width"] == 64
    sections = set(rows["section"])
    assert {"std profile at init", "I3 · normal init scale sweep", "I4 · Glorot and He through depth",
            "I1 · units after training", "I2 · orthogonal init", "I4 · xavier_uniform variance",
            "generation time", "claims"} <= sections
    profile = rows[(rows["section"] == "std profile at init") & (rows["kind"] == "curve")]
    assert set(profile["p_scheme"]) == set(exp.QUICK_SCHEMES.split(","))
    assert profile.groupby(["p_scheme", "metric", "seed"]).size().eq(30).all()     # 30 layers per curve
    ratio = rows[(rows["metric"] == "act_ratio") & (rows["p_scheme"] == "normal:std=0.01")
                 & (rows["section"] == "std profile at init")]["value"]
    assert (ratio < 1e-20).all()
    timing = rows[rows["kind"] == "timing"]
    assert {"uniform", "orthogonal"} <= set(timing["p_scheme"])
    claims = res.claims.set_index("claim")
    assert list(claims.index) == ["I1", "I2", "I3", "I4", "I5"]
    for cid in ("I1", "I3", "I4", "I5"):
        assert claims.loc[cid, "verdict"] == "supported", claims.loc[cid, "evidence"]
    # I2's orthonormality checks are exact; its timing part depends on the machine's load
    evidence = claims.loc["I2", "evidence"]
    assert re.search(r"fan_out <= fan_in: max \|W\^T W - I\| \S+ \(tolerance 1e-10\), \d+ checks \[supported\]",
                     evidence), evidence
    assert re.search(r"\|rank - fan_in\| 0\.00e\+00 \(tolerance 0e\+00\), \d+ checks \[supported\]", evidence)
    assert evidence.startswith("exponent orthogonal - uniform")


def test_only_i2_rests_on_timing(quick_run):
    out, _ = quick_run
    basis = read_results(out).claims.set_index("claim")["basis"]
    assert set(basis[basis == "timing"].index) == {"I2"}


def test_show_renders_the_quick_run(quick_run):
    out, _ = quick_run
    for fmt in ("table", "markdown", "json", "csv"):
        r = invoke("show", str(out), "--format", fmt)
        assert r.exit_code == 0, r.output
        assert "I4" in r.output and "xavier_uniform" in r.output


def test_plot_is_a_png(quick_run):
    _, png = quick_run
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("args, fragment", [
    (["--schemes", "nope"], "unknown initializer 'nope'"),
    (["--schemes", "normal:std"], "expected name:key=value"),
    (["--schemes", "normal:foo=1"], "no hyperparameter 'foo'"),
    (["--scales", "0,1"], "--scales"),
    (["--sizes", "64"], "at least two sizes"),
    (["--depth", "1"], "--depth"),
    (["--activation", "nope"], "'nope' is not one of"),
    (["--time-schemes", "nope"], "unknown initializer 'nope'"),
    (["--width", "8192", "--depth", "30"], "lower --width"),
    (["--lr", "0"], "--lr must be a positive number"),
])
def test_bad_input_is_one_line_and_exit_2(args, fragment, tmp_path):
    r = invoke("init", "--quick", "--out", str(tmp_path / "x.parquet"), *args)
    assert r.exit_code == 2, r.output
    lines = [line for line in r.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("dlbench: error:"), r.output
    assert fragment in lines[0]
    assert not (tmp_path / "x.parquet").exists()
