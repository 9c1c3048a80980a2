"""dlbench init: the per-layer profile, the symmetry, orthogonality and variance measurements, the claims
on the protocol (grid, control, checks), the CLI end to end."""

import math

import numpy as np
import pytest
from typer.testing import CliRunner

from dlbench import cli, stats
from dlbench.errors import DlbenchError, UnknownName
from dlbench.experiments import init as exp
from dlbench.experiments.init import claims, measure
from dlbench.nn.activations import get_activation
from dlbench.nn.init import get_initializer
from dlbench.results import read_results

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
    for max_bytes in (measure.MAX_CHUNK_BYTES, 1):       # one chain for all schemes, then one scheme per chain
        p = measure.std_profile([i for i, _ in inits], [np.random.default_rng(k) for _, k in inits], act,
                            widths=(width,) * (depth + 1), n_seeds=seeds, x=x, g_out=g_out, max_bytes=max_bytes)
        np.testing.assert_allclose(p.act, ref_act, rtol=1e-12)
        np.testing.assert_allclose(p.grad, ref_grad, rtol=1e-12)


def test_profile_follows_the_mean_field_factors_under_relu():
    act = get_activation("relu")
    depth, width = 12, 256
    schemes = [get_initializer("xavier_uniform"), get_initializer("kaiming_normal"), get_initializer("torch_default")]
    rng = np.random.default_rng(1)
    x, g = rng.standard_normal((128, width)), rng.standard_normal((128, width))
    p = measure.std_profile(schemes, [np.random.default_rng(i) for i in range(3)], act,
                            widths=(width,) * (depth + 1), n_seeds=3, x=x, g_out=g)
    var_factor = np.median(p.act_ratio ** (2 / (depth - 1)), axis=1)
    np.testing.assert_allclose(var_factor, [0.5, 1.0, 1 / 6], rtol=0.08)
    grad_factor = np.median(p.grad_ratio ** (2 / (depth - 1)), axis=1)
    np.testing.assert_allclose(grad_factor, [0.5, 1.0, 1 / 6], rtol=0.08)


def test_orthogonal_linear_net_keeps_the_std():
    # each row's norm is preserved exactly by Q; the std moves only by the change of the overall mean
    act = get_activation("identity")
    x = np.random.default_rng(2).standard_normal((32, 16))
    p = measure.std_profile([get_initializer("orthogonal")], [np.random.default_rng(0)], act, widths=(16,) * (6 + 1),
                        n_seeds=2, x=x, g_out=x)
    assert np.abs(p.act / x.std() - 1).max() < 0.05
    assert np.abs(p.grad / x.std() - 1).max() < 0.05
    assert np.abs(p.drift - 1).max() < 0.02


def test_profile_ratios_and_drift_from_known_curves():
    layers = np.arange(5)
    act = np.stack([2.0 ** layers, 0.5 ** layers])[:, None, :]       # grow x2, shrink x2 per layer
    grad = np.stack([np.ones(5), 0.9 ** (4 - layers)])[:, None, :]
    p = measure.Profile(act, grad)
    np.testing.assert_allclose(p.act_ratio[:, 0], [16, 1 / 16])
    np.testing.assert_allclose(p.grad_ratio[:, 0], [1, 0.9**4])
    np.testing.assert_allclose(p.drift[:, 0], [2, 2])
    zeros = measure.Profile(np.zeros((1, 1, 3)), np.zeros((1, 1, 3)))
    assert np.isnan(zeros.act_ratio).all() and np.isnan(zeros.drift).all()


def test_profile_refuses_a_size_that_cannot_fit():
    with pytest.raises(DlbenchError, match="lower --width"):
        measure.std_profile([get_initializer("normal")], [np.random.default_rng(0)], get_activation("relu"),
                        widths=(4096,) * (30 + 1), n_seeds=5, x=np.zeros((128, 4096)), g_out=np.zeros((128, 4096)))


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
    got = measure.analytic_ratio(get_initializer(name, **hyper), get_activation(act), 64, 10)
    assert got == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("name, hyper, act", [
    ("xavier_uniform", {}, "tanh"), ("normal", {"mean": 0.1}, "relu"), ("uniform", {}, "relu"),
    ("constant", {}, "relu"), ("zeros", {}, "relu"),
])
def test_analytic_ratio_is_none_without_a_closed_form(name, hyper, act):
    assert measure.analytic_ratio(get_initializer(name, **hyper), get_activation(act), 64, 10) is None


# ----------------------------------------------------------------------------- I1, I2, I4 measurements

def test_unit_symmetry_identical_units_versus_random():
    col = np.array([0.3, -1.0, 2.0])
    same = np.repeat(np.tile(col[:, None], (1, 5))[None], 2, axis=0)     # (2, 3, 5): five identical units
    gap, rank = measure.unit_symmetry(same)
    assert gap.max() <= 1e-15 and rank.tolist() == [1, 1]
    W = np.random.default_rng(0).standard_normal((2, 6, 4))
    gap, rank = measure.unit_symmetry(W)
    assert (gap > 0.1).all() and rank.tolist() == [4, 4]
    W[:, :, 1] = 3 * W[:, :, 0]        # a scaled copy: cosine 1, rank drops by one
    gap, rank = measure.unit_symmetry(W[:, :, :2])
    assert gap.max() <= 1e-15 and rank.tolist() == [1, 1]


def test_unit_symmetry_joins_the_pieces_of_a_maxout_unit():
    a, b = np.array([1.0, 2.0]), np.array([-3.0, 0.5])
    W = np.stack([a, b, a, b, a, b], axis=1)[None]         # 3 maxout units of 2 pieces, columns interleaved
    gap, rank = measure.unit_symmetry(W, pieces=2)
    assert gap[0] <= 1e-15 and rank[0] == 1
    gap, rank = measure.unit_symmetry(W)                         # read as 6 plain units they differ
    assert gap[0] > 0.5 and rank[0] == 2


def test_gram_errors_on_orthonormal_and_wide_matrices():
    rng = np.random.default_rng(1)
    q = np.linalg.qr(rng.standard_normal((3, 10, 6)))[0]        # orthonormal columns
    unit_err, input_err, rank = measure.gram_errors(q)
    assert unit_err.max() < 1e-14 and (input_err > 0.5).all() and rank.tolist() == [6, 6, 6]
    wide = np.swapaxes(q, -1, -2)                                # 6 inputs, 10 units: at most 6 independent
    unit_err, input_err, rank = measure.gram_errors(wide)
    assert (unit_err > 0.5).all() and input_err.max() < 1e-14 and rank.tolist() == [6, 6, 6]


def test_xavier_variance_against_the_formula_and_its_sampling_sd():
    ratios, reach, pooled, sd = measure.xavier_variance(np.random.default_rng(3), [(64, 64), (128, 32)], 4)
    assert ratios.shape == (2, 4) and reach.shape == (2, 4)
    count = 4 * (64 * 64 + 128 * 32)
    assert sd == pytest.approx(math.sqrt(0.8 / count))
    assert abs(pooled - 1) < 4 * sd
    assert (reach <= 1).all() and (reach > 0.99).all()
    assert np.abs(ratios - 1).max() < 0.1


# ----------------------------------------------------------------------------- I1's twins and I4's drift

def test_symmetric_twins_keep_the_scale_and_differ_only_in_identity():
    from dlbench.nn.mlp import MLP, MLPSpec

    params = MLP(MLPSpec((2, 8, 8, 2), init="kaiming_normal", dtype=np.float64)).init([0, 1])
    constant, signs = measure.symmetric_twins(params)
    for p, c, s in zip(params[::2], constant[::2], signs[::2]):
        rms = np.sqrt((p**2).mean(axis=(1, 2)))
        np.testing.assert_allclose(c[:, 0, 0], rms)
        assert (c == c[:, :1, :1]).all()                          # every weight of a layer alike
        np.testing.assert_array_equal(np.abs(s), c)               # the same magnitudes ...
        np.testing.assert_array_equal(np.sign(s), np.where(p < 0, -1.0, 1.0))  # ... with the random signs
    assert all((b == 0).all() for b in constant[1::2] + signs[1::2])


def test_layer_drift_averages_each_phase_of_a_periodic_net():
    # forward std doubles on even layers and halves on odd ones: no drift over the net, 2 per kind of layer
    act = np.cumprod([1.0, 2.0, 0.5, 2.0, 0.5, 2.0])[None, :]
    p = measure.Profile(act, act[:, ::-1].copy())
    assert p.layer_drift("forward", 1)[0] == pytest.approx(2 ** (1 / 5))
    assert p.layer_drift("forward", 2)[0] == pytest.approx(2.0)
    assert p.layer_drift("backward", 2)[0] == pytest.approx(2.0)
    flat = measure.Profile(np.ones((1, 6)), np.ones((1, 6)))
    assert flat.layer_drift("forward", 2)[0] == 1.0 and flat.drift[0] == 1.0


def _fan_profile(widths, seed=0):
    relu = get_activation("relu")
    schemes = [measure.parse_scheme(s) for s in ("kaiming_normal", "kaiming_normal:mode=fan_out")]
    rng = np.random.default_rng(seed)
    return measure.std_profile([s.init for s in schemes], [np.random.default_rng(seed + k) for k in (1, 2)], relu,
                               widths=widths, n_seeds=6, x=rng.standard_normal((64, widths[0])),
                               g_out=rng.standard_normal((64, widths[-1])))


def test_geometric_widths_grow_by_a_constant_ratio():
    assert claims.geometric_widths(64, 8, 6) == (64, 91, 128, 181, 256, 362, 512)
    w = np.array(claims.geometric_widths(128, 8, 6), dtype=float)
    np.testing.assert_allclose(w[1:] / w[:-1], math.sqrt(2), rtol=0.01)


def test_he_fan_modes_on_growing_widths_separate_as_he_predicts():
    # widths w -> 8w: fan_in's end-to-end gain over fan_out's is sqrt(w_L / w_1) forward and backward
    widths = claims.geometric_widths(64, claims.FAN_SPAN, claims.FAN_DEPTH)
    fwd, bwd = claims.fan_separation(_fan_profile(widths))
    predicted = math.sqrt(widths[-1] / widths[1])
    np.testing.assert_allclose(np.median(fwd), predicted, rtol=0.15)
    np.testing.assert_allclose(np.median(bwd), predicted, rtol=0.15)
    # shrinking widths reverse the sign: the measurement can come out the other way
    fwd_r, bwd_r = claims.fan_separation(_fan_profile(widths[::-1]))
    assert np.median(fwd_r) < 1 / math.sqrt(2) and np.median(bwd_r) < 1 / math.sqrt(2)


def test_he_fan_modes_on_alternating_widths_cancel_over_depth():
    # why the stack is geometric: with widths w, 2w, w, ... each mode's error on one layer is undone by the next
    fwd, bwd = claims.fan_separation(_fan_profile(tuple(64 if i % 2 == 0 else 128 for i in range(8))))
    assert 0.5 < np.median(fwd) < 2 ** 0.5 and 0.5 < np.median(bwd) < 2 ** 0.5


def test_fan_parts_are_supported_on_growing_widths_and_not_on_equal_ones():
    grow = stats.all_of(claims._fan_parts(_fan_profile(claims.geometric_widths(64, 8, 6)), "grow", 0))
    equal = stats.all_of(claims._fan_parts(_fan_profile((64,) * 7), "equal", 0))
    assert grow.verdict == "supported" and equal.verdict != "supported"


# ----------------------------------------------------------------------------- scheme parsing

def test_parse_schemes_labels_and_hyperparameters():
    schemes = measure.parse_schemes("normal:std=0.01, xavier_uniform,uniform:a=-0.1:b=0.1,normal:std=1e-2")
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
        measure.parse_schemes(text)


def test_good_scheme_and_gain_per_activation():
    assert measure.good_scheme("relu") == "kaiming_normal" and measure.good_scheme("tanh") == "xavier_normal"
    assert measure.good_scheme("selu") == "lecun_normal"
    assert measure.activation_gain(get_activation("relu")) == pytest.approx(math.sqrt(2))
    assert measure.activation_gain(get_activation("tanh")) == pytest.approx(5 / 3)
    assert measure.activation_gain(get_activation("leaky_relu", negative_slope=0.2)) == pytest.approx(
        math.sqrt(2 / 1.04))
    assert measure.activation_gain(get_activation("gelu")) == 1.0


# ----------------------------------------------------------------------------- the command

@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    pytest.importorskip("matplotlib")
    d = tmp_path_factory.mktemp("init")
    out, png = d / "init.parquet", d / "profiles.png"
    r = invoke("init", "--quick", "--out", str(out), "--plot", str(png), "-q")
    assert r.exit_code == 0, r.output
    return out, png


def test_quick_run_records_tables_checks_grids_and_claims(quick_run):
    out, _ = quick_run
    res = read_results(out)
    rows = res.rows
    assert res.meta["options"]["init"]["width"] == 64
    assert set(exp.SECTIONS) <= set(rows["section"])
    profile = rows[(rows["section"] == "init.profile") & (rows["kind"] == "curve")]
    assert set(profile["p_scheme"]) == set(exp.QUICK_SCHEMES.split(","))
    assert profile.groupby(["p_scheme", "metric", "seed"]).size().eq(30).all()     # 30 layers per curve
    ratio = rows[(rows["metric"] == "act_ratio") & (rows["p_scheme"] == "normal:std=0.01")
                 & (rows["section"] == "init.profile")]["value"]
    assert (ratio < 1e-20).all()
    checks = rows[rows["kind"] == "check"].set_index("metric")
    assert set(checks.index) == set(exp.CHECKS) and (checks["verdict"] == "pass").all()
    claims = res.claims.set_index("claim")
    assert list(claims.index) == ["I1", "I2", "I3", "I4", "I5"]
    for cid in ("I1", "I3", "I4", "I5"):
        assert claims.loc[cid, "verdict"] == "supported", claims.loc[cid, "evidence"]
    grid = rows[rows["kind"] == "grid"]
    for cid, spec in exp.CLAIMS.items():                  # every point of every grid, and a control
        mine = grid[grid["claim"] == cid]
        assert len(mine[mine["role"] == "claim"]) == len(spec.points(quick=True)), cid
        assert (mine["role"] == "control").any(), cid


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
    (["--lrs", "0,1"], "--lrs"),
    (["--lrs", "0.1,50"], "above 10"),
    (["--depth", "1"], "--depth"),
    (["--activation", "nope"], "'nope' is not one of"),
    (["--time-schemes", "nope"], "unknown initializer 'nope'"),
    (["--width", "4096", "--depth", "200"], "GiB"),
])
def test_bad_input_is_one_line_and_exit_2(args, fragment, tmp_path):
    r = invoke("init", "--quick", "--out", str(tmp_path / "x.parquet"), *args)
    assert r.exit_code == 2, r.output
    lines = [line for line in r.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("dlbench: error:"), r.output
    assert fragment in lines[0]
    assert not (tmp_path / "x.parquet").exists()


def test_the_library_refuses_what_the_command_line_refuses():
    from dlbench.runner import run

    with pytest.raises(DlbenchError, match="--depth 1: must be at least 3"):
        run("init", quick=True, depth=1)
    with pytest.raises(UnknownName, match="unknown activation 'nope'"):
        run("init", quick=True, activation="nope")
