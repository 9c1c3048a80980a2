"""The optimizers experiment: trajectory engine, measurements, analytic references, claims, CLI."""

import math

import numpy as np
import pytest
from typer.testing import CliRunner

from dlbench import cli
from dlbench.experiments.optimizers import trajectories as tj
from dlbench.experiments import optimizers as ox
from dlbench.nn.optim import OPTIMIZERS, get_optimizer
from dlbench.results import read_results
from dlbench.surfaces import get_surface

runner = CliRunner()


def invoke(*args):
    return runner.invoke(cli.app, list(args), env={"COLUMNS": "200", "NO_COLOR": "1"})


# --------------------------------------------------------------------------- engine


@pytest.mark.parametrize("name, hyper, clip", [
    ("sgd", {}, {}),
    ("momentum", {}, {"clip_norm": 0.5}),
    ("nesterov", {}, {"clip_value": 0.3}),
    ("adagrad", {}, {}),
    ("rmsprop", {"centered": True}, {}),
    ("adam", {}, {"clip_norm": 1.0}),
    ("adamw", {}, {}),
])
def test_engine_with_p_starts_equals_p_single_runs(name, hyper, clip):
    surf = get_surface("rosenbrock")
    Z = tj.sample_starts(surf, np.random.default_rng(1), 5)
    lrs = np.array([1e-3, 3e-3, 1e-2, 2e-3, 5e-4])[None, :]
    batch = tj.run_trajectories(surf, get_optimizer(name, lr=lrs, **hyper), Z, 40, keep_grads=True, **clip)
    for j in range(Z.shape[1]):
        one = tj.run_trajectories(surf, get_optimizer(name, lr=float(lrs[0, j]), **hyper), Z[:, j:j + 1], 40,
                                  keep_grads=True, **clip)
        np.testing.assert_allclose(batch.path[:, :, j], one.path[:, :, 0], rtol=1e-13, atol=1e-15)
        np.testing.assert_allclose(batch.loss[:, j], one.loss[:, 0], rtol=1e-13, atol=1e-15)
        np.testing.assert_allclose(batch.grads[:, :, j], one.grads[:, :, 0], rtol=1e-13, atol=1e-15)


def test_path_and_summary_modes_measure_the_same():
    surf = get_surface("canyon")
    Z = tj.sample_starts(surf, np.random.default_rng(2), 16)
    opt = lambda: get_optimizer("momentum", lr=0.03)  # noqa: E731
    with_path = tj.run_trajectories(surf, opt(), Z, 120, keep_path=True)
    in_loop = tj.run_trajectories(surf, opt(), Z, 120, keep_path=False)
    assert in_loop.path is None and with_path.path is not None
    np.testing.assert_allclose(with_path.loss, in_loop.loss, rtol=1e-12)
    np.testing.assert_allclose(with_path.step_norm, in_loop.step_norm, rtol=1e-12, atol=1e-300)
    a, b = tj.measure(with_path, 1e-3), tj.measure(in_loop, 1e-3)
    for f in ("final_loss", "steps_to_target", "largest_step", "oscillation", "path_ratio"):
        np.testing.assert_allclose(getattr(a, f), getattr(b, f), rtol=1e-12, equal_nan=True)


def test_noise_and_clipping_act_per_run():
    surf = get_surface("canyon")
    Z = np.array([[10.0, 10.0], [1.0, 1.0]])
    clipped = tj.run_trajectories(surf, get_optimizer("sgd", lr=0.1), Z, 1, clip_norm=np.sqrt(2.0))
    assert np.allclose(clipped.step_norm[0], 0.1 * np.sqrt(2.0), rtol=1e-5)
    noisy = tj.run_trajectories(surf, get_optimizer("sgd", lr=0.1), Z, 3, noise=1.0,
                                rng=np.random.default_rng(0))
    assert not np.allclose(noisy.path[:, :, 0], noisy.path[:, :, 1])  # same start, independent noise


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_every_optimizer_reaches_the_quadratic_minimum(name):
    surf = get_surface("quadratic", kappa=10, dim=4)
    rng = np.random.default_rng(3)
    tune, Z = tj.sample_starts(surf, rng, 6), tj.sample_starts(surf, rng, 6)
    search = tj.search_lr(surf, name, tune, [1e-3, 3e-3, 0.01, 0.03, 0.1, 0.3, 1.0], 400, 1e-8)
    traj = tj.run_trajectories(surf, get_optimizer(name, lr=search.best), Z, 400)
    assert np.abs(traj.end).max() < 1e-3, (name, search.best)
    assert np.all(traj.loss[-1] < 1e-6 * traj.loss[0])


def test_lr_search_picks_the_lowest_median_final_loss_and_marks_divergence():
    surf = get_surface("canyon", kappa=50)
    Z = tj.sample_starts(surf, np.random.default_rng(4), 8)
    s = tj.search_lr(surf, "sgd", Z, [0.001, 0.01, 0.03, 0.1], 200, 1e-3)
    assert s.best == 0.03  # 2/(1+50) ~ 0.039 is GD's best constant step; 0.1 > 2/50 diverges
    assert s.diverged[-1] == 1.0 and s.median_final[-1] == np.inf
    assert np.argmin(s.median_final) == 2


# --------------------------------------------------------------------------- measurements


def _traj(steep_steps, loss=None):
    """A hand-made 1-d trajectory with the given steps along the steep (only) axis."""
    z = np.concatenate([[0.0], np.cumsum(steep_steps)])
    path = z[:, None, None]
    loss = np.asarray(loss if loss is not None else np.linspace(1, 0.1, z.size), float)[:, None]
    return tj.Trajectories(loss, path[:, 0, :], np.abs(np.diff(path, axis=0))[:, 0, :], path[0], path[-1], 1.0,
                           path)


def test_measure_oscillation_path_ratio_largest_step_and_target():
    m = tj.measure(_traj([1.0, -0.5, 0.25, -0.125]), 0.5)
    assert m.oscillation[0] == 1.0  # every consecutive pair flips sign
    assert m.path_ratio[0] == pytest.approx(1.875 / 0.625)
    assert m.largest_step[0] == 1.0
    assert m.steps_to_target[0] == 3  # loss linspace(1, 0.1, 5): 1, .775, .55, .325 -> step 3
    m = tj.measure(_traj([1.0, 1.0, 1.0]), 0.0)
    assert m.oscillation[0] == 0.0 and m.path_ratio[0] == 1.0
    assert not m.reached[0] and np.isnan(m.steps_to_target[0])


def test_divergence_is_detected_and_excluded():
    loss = [1.0, 0.5, 2e3, np.inf, np.nan]
    m = tj.measure(_traj([0.1, 0.1, 100.0, 1e9], loss), 0.6)
    assert m.diverged[0] and np.isnan(m.final_loss[0]) and np.isnan(m.path_ratio[0])
    assert m.largest_step[0] == pytest.approx(0.1)  # steps up to the divergence only
    assert m.steps_to_target[0] == 1
    assert tj.diverged_step(np.array([[1.0], [0.5], [0.4]]))[0] == -1


def test_contraction_rate_of_a_geometric_sequence():
    d = 0.9 ** np.arange(101)[:, None] * np.array([[1.0, 2.0]])
    np.testing.assert_allclose(tj.contraction_rate(d), 0.9)


# --------------------------------------------------------------------------- analytic references


def test_rates_at_the_optimal_parameters():
    mu, L = 1.0, 100.0
    lr, rate = tj.optimal_gd(mu, L)
    assert rate == pytest.approx(99 / 101) and tj.gd_rate(lr, [mu, L]) == pytest.approx(rate)
    lr, beta, rate = tj.optimal_heavy_ball(mu, L)
    assert rate == pytest.approx(9 / 11)
    assert tj.momentum_rate(lr, beta, [mu, 10.0, L]) == pytest.approx(rate, rel=1e-6)


def test_analytic_rates_are_nan_not_an_error_for_non_finite_inputs():
    with np.errstate(all="raise"):
        assert math.isnan(tj.gd_rate(1e308, [1.0, 1e8]))
        assert math.isnan(tj.momentum_rate(1e308, 0.9, [1.0, 1e8]))
        assert math.isnan(tj.momentum_rate(math.inf, 0.9, [1.0, 2.0], nesterov=True))
        assert math.isnan(tj.optimal_gd(0.0, 1.0)[1]) and math.isnan(tj.optimal_heavy_ball(1.0, math.inf)[2])


@pytest.mark.parametrize("name", ["adagrad", "adamw"])
def test_default_grid_brackets_the_best_lr_on_the_canyon(name):
    surf = get_surface("canyon")
    Z = tj.sample_starts(surf, np.random.default_rng(0), 8)
    grid = ox.configure(ox.Options(), False).grid
    assert grid[0] == 1e-4 and grid[-1] == 100
    for steps in (150, 500):
        best = tj.search_lr(surf, name, Z, grid, steps, surf.min_value + 1e-3).best
        assert grid[0] < best < grid[-1], (steps, best)


def test_out_of_range_values_are_refused_without_the_cli_too():
    for opts in (ox.Options(lr=1e308), ox.Options(lr_grid="1,1e4"), ox.Options(kappa=1e9)):
        with pytest.raises(ox.DlbenchError):
            ox.configure(opts, False)
    assert ox.configure(ox.Options(lr=1e3, kappa=1e8), False).lr == 1e3


def test_heavy_ball_rate_matches_a_run_on_the_canyon():
    surf = get_surface("canyon", kappa=20)
    Z = tj.sample_starts(surf, np.random.default_rng(5), 4)
    traj = tj.run_trajectories(surf, get_optimizer("momentum", lr=0.05), Z, 400)
    measured = tj.contraction_rate(np.sqrt(traj.loss))
    np.testing.assert_allclose(measured, tj.momentum_rate(0.05, 0.9, [1.0, 20.0]), rtol=2e-3)


def test_adam_first_step_with_and_without_bias_correction():
    surf = get_surface("canyon")
    Z = tj.sample_starts(surf, np.random.default_rng(6), 8)
    g = np.abs(surf.grad(Z))
    for correct, expect in ((True, g / (g + 1e-8)), (False, 0.1 * g / (math.sqrt(1e-3) * g + 1e-8))):
        traj = tj.run_trajectories(surf, get_optimizer("adam", lr=0.01, bias_correction=correct), Z, 1)
        np.testing.assert_allclose(np.abs(traj.path[1] - traj.path[0]) / 0.01, expect, rtol=1e-12)


def test_wilson_and_newcombe_intervals():
    ci = tj.wilson(0, 10)
    assert ci.low == 0 and ci.high == pytest.approx(0.2775, abs=1e-4)
    ci = tj.wilson(5, 10)
    assert (ci.low, ci.high) == pytest.approx((0.2366, 0.7634), abs=1e-4)
    d, lo, hi = tj.newcombe_difference(tj.wilson(10, 10), tj.wilson(0, 10))
    assert d == 1 and 0.6 < lo < 0.75 and hi == pytest.approx(1.0)


def test_saddle_fractions_follow_the_formula_and_goe():
    r = ox.saddle_fractions(np.random.default_rng(7), 12, 4000, 2000, goe_dims=(1, 2))
    frac = r["signs"] / r["samples"]
    assert np.all(np.abs(frac - r["formula"]) < 0.03)
    assert r["goe"][1] == 0  # a 1x1 Hessian is never a saddle
    assert r["goe"][2] / 2000 == pytest.approx(1 / math.sqrt(2), abs=0.04)  # P(2x2 GOE indefinite)


# --------------------------------------------------------------------------- mlp surface and O8


def test_mlp_surface_gradient_matches_finite_differences():
    surf = tj.mlp_surface(widths=(2, 5, 4, 2), n_train=16)
    Z = tj.sample_starts(surf, np.random.default_rng(8), 3)
    G = surf.grad(Z)
    rng = np.random.default_rng(9)
    for j in range(3):
        v = rng.standard_normal(surf.dim)
        h = 1e-6
        fd = (surf.value(Z[:, j] + h * v)[()] - surf.value(Z[:, j] - h * v)[()]) / (2 * h)
        assert fd == pytest.approx(G[:, j] @ v, rel=1e-6, abs=1e-9)
    small = tj.mlp_surface(widths=(2, 2, 2), n_train=8)
    z = tj.sample_starts(small, np.random.default_rng(10), 1)[:, 0]
    g = small.grad(z[:, None])[:, 0]
    E = np.eye(small.dim) * 1e-6
    fd = (small.value(z[:, None] + E) - small.value(z[:, None] - E)) / 2e-6
    np.testing.assert_allclose(g, fd, rtol=1e-5, atol=1e-9)


def test_relu_rescaling_and_permutation_leave_outputs_unchanged():
    from dlbench.nn.losses import get_loss
    from dlbench.nn.mlp import MLP, MLPSpec

    surf = tj.mlp_surface(widths=(2, 6, 5, 2), n_train=32)
    X = surf.data.X_train.astype(np.float64)
    loss = get_loss(surf.loss_name)
    errors = ox.relu_symmetry_errors(surf.net, surf.net.init([0, 1, 2]), X, surf.data.y_train, loss,
                                     np.random.default_rng(11))
    assert max(max(e) for e in errors.values()) < 1e-12
    tanh = MLP(MLPSpec(widths=(2, 6, 5, 2), activation="tanh", dtype=np.float64))
    ctrl = ox.relu_symmetry_errors(tanh, tanh.init([0]), X, surf.data.y_train, loss, np.random.default_rng(12))
    assert ctrl["rescale x10"][0] > 1e-3 and ctrl["permute"][0] < 1e-12


# --------------------------------------------------------------------------- CLI


SMALL = ["--steps", "40", "--starts", "4", "--lr-grid", "0.003,0.03,0.3"]


@pytest.mark.parametrize("surface", ox.surface_names())
def test_cli_quick_on_every_surface_writes_a_file_that_show_renders(surface, tmp_path):
    out = tmp_path / f"{surface}.parquet"
    r = invoke("optimizers", "--quick", "--surface", surface, *SMALL, "--optimizers", "sgd,adam", "--out", str(out),
               "-q")
    assert r.exit_code == 0, r.output
    res = read_results(out)
    rows = res.rows
    main = rows[(rows["section"] == "trajectories") & (rows["p_surface"] == surface)]
    assert {"sgd", "adam"} <= set(main["p_optimizer"])  # claims on canyon/mlp add the optimizers they compare
    assert {"lr", "final loss", "steps to target", "reached", "diverged", "loss"} <= set(main["metric"])
    shape = rows[rows["section"] == "trajectory shape"]
    assert {"largest step", "oscillation", "path / chord", "point-steps/s", "update ns/param"} <= set(shape["metric"])
    assert {"update", "trajectory step"} <= set(rows[rows["kind"] == "timing"]["metric"])
    claims = res.claims.set_index("claim")
    assert list(claims.index) == list(ox.CLAIMS)
    assert claims.loc["O1", "verdict"] == "supported"
    for cid, homes in ox.CLAIM_SURFACES.items():
        if surface not in homes:
            assert claims.loc[cid, "method"] == "not run" and surface in claims.loc[cid, "evidence"]
    show = invoke("show", str(out))
    assert show.exit_code == 0 and "optimizers · trajectories" in show.output and "O1" in show.output


def test_cli_all_claims_quick_measures_every_claim(tmp_path):
    out = tmp_path / "all.parquet"
    r = invoke("optimizers", "--quick", "--all-claims", "--out", str(out), "-q")
    assert r.exit_code == 0, r.output
    res = read_results(out)
    claims = res.claims.set_index("claim")
    assert list(claims.index) == list(ox.CLAIMS)
    assert (claims["method"] != "not run").all() and (claims["n"] > 0).all()
    assert set(claims["verdict"]) <= {"supported", "refuted", "inconclusive"}
    assert claims.loc["O8", "verdict"] == "supported"
    assert claims.loc["O7", "verdict"] == "supported"  # exact: Adam's steps rebuilt from momentum and RMSProp
    assert (claims["basis"] != "timing").all()
    sections = set(res.rows["section"])
    assert {"O1 saddle fraction", "O2 saddle escape", "O3 cliff", "analytic references",
            "O5-O6 per-coordinate steps", "O8 equal-loss families", "O9 spread over seeds", "lr search"} <= sections
    assert set(res.rows[res.rows["section"] == "trajectories"]["p_surface"]) == {"canyon", "mlp"}


def test_fixed_lr_skips_the_search_and_divergence_is_a_row(tmp_path):
    out = tmp_path / "div.parquet"
    r = invoke("optimizers", "--quick", "--optimizers", "sgd", "--lr", "10", "--steps", "30", "--out", str(out), "-q")
    assert r.exit_code == 0, r.output
    rows = read_results(out).rows
    assert "lr search" not in set(rows["section"])
    div = rows[(rows["metric"] == "diverged") & (rows["section"] == "trajectories") & (rows["p_optimizer"] == "sgd")]
    div = div["value"]
    assert div.all()
    show = invoke("show", str(out))
    assert show.exit_code == 0 and "Traceback" not in show.output


def test_plot_writes_trajectories_over_contours_and_loss_curves(tmp_path):
    pytest.importorskip("matplotlib")
    png = tmp_path / "rosenbrock.png"
    r = invoke("optimizers", "--quick", "--surface", "rosenbrock", *SMALL, "--optimizers", "sgd,adam", "--no-save",
               "-q", "--plot", str(png))
    assert r.exit_code == 0, r.output
    assert png.stat().st_size > 1000
    from dlbench.runner import run

    res = run("optimizers", quick=True, surface="quadratic", steps=20, starts=2, optimizers="sgd", lr=0.01)
    svg = tmp_path / "quadratic.svg"
    ox.plot(res, svg)  # 10-d: median loss curves instead of paths
    assert svg.read_text().startswith("<?xml")


@pytest.mark.parametrize("args, fragment", [
    (["--surface", "moon"], "'moon' is not one of 'saddle', 'cliff', 'canyon'"),
    (["--optimizers", "sgd,lion"], "unknown optimizer 'lion'; valid: adagrad, adam"),
    (["--lr", "0"], "--lr must be a positive number"),
    (["--lr", "-0.1"], "--lr must be a positive number"),
    (["--steps", "0"], "--steps"),
    (["--starts", "0"], "--starts"),
    (["--lr-grid", "0.1,abc"], "--lr-grid"),
    (["--lr-grid", "0.1,-1"], "--lr-grid"),
    (["--clip-norm", "0"], "--clip-norm must be a positive number"),
    (["--noise", "-1"], "--noise"),
    (["--surface", "rosenbrock", "--kappa", "10"], "--kappa applies to canyon and quadratic"),
    (["--kappa", "0.5"], "--kappa"),
    (["--kappa", "1e9"], "--kappa"),
    (["--lr", "1e308"], "--lr"),
    (["--lr-grid", "0.1,1e308"], "--lr-grid: every value must be in (0, 1000]"),
])
def test_bad_input_is_one_line_and_exit_2(args, fragment):
    r = invoke("optimizers", "--quick", "--no-save", *args)
    assert r.exit_code == 2, r.output
    lines = [line for line in r.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("dlbench: error:"), r.output
    assert fragment in lines[0]


def _slows(verdict):
    return ox.Claim("O5", ox.CLAIMS["O5"], verdict, -1.0, -1.2, -0.8, 6, "bootstrap", "slows down: ...")


def test_o6_needs_adagrad_to_slow_down_in_the_same_run():
    rms = np.array([0.0, 0.01, -0.01, 0.02, 0.0, 0.01])
    ada = rms - 1.0
    fast, slow = np.full(6, 3.0), np.full(6, 1.0)
    ok = ox.o6_verdict(rms, ada, fast, slow, _slows("supported"))
    assert ok.verdict == "supported"
    assert "decades of decrease of f-f* over the second half" in ok.evidence
    for v in ("inconclusive", "refuted"):
        c = ox.o6_verdict(rms, ada, slow, fast, _slows(v))
        assert c.verdict == "inconclusive"
        assert f"slowdown is not established in this run (O5 'slows down' {v})" in c.evidence
        assert "adagrad's late progress beats rmsprop's" in c.evidence
    assert ox.o6_verdict(ada, rms, fast, slow, _slows("supported")).verdict == "refuted"


def test_o4_evidence_names_each_optimizers_lr():
    def run(name, lr, searched):
        return ox.OptimizerRun(name, lr, {}, object() if searched else None, None, None)
    note = ox.lr_note([run("sgd", 0.1, True), run("momentum", 0.03, True), run("nesterov", 0.01, True)])
    assert note == "each at its own best grid lr: sgd 0.1, momentum 0.03, nesterov 0.01"
    assert ox.lr_note([run("sgd", 0.1, False), run("momentum", 0.1, False)]).startswith("lr fixed by --lr")
