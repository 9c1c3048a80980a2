"""dlbench depth: the exact tent-map net, the breakpoint counter, linear collapse, budget widths, the CLI."""

import numpy as np
import pytest

from dlbench.experiments.depth.relu_exact import (
    breakpoints, collapse_linear, count_pieces, relu_forward, tent_net,
)


def _tent_reference(x, k):
    """t(x) = 1 - |2x - 1| applied k times, written out independently of dlbench.data."""
    for _ in range(k):
        x = 1.0 - np.abs(2.0 * x - 1.0)
    return x


def _stack(*nets):
    """Replicas of equal shapes stacked on the replica axis."""
    return [np.concatenate(ps, axis=0) for ps in zip(*nets)]


def _shallow(kinks, out_weights, signs=None, lo_bias=0.0):
    """One replica of sum_i a_i relu(s_i (x - c_i)): kinks at c_i."""
    c = np.asarray(kinks, float)
    s = np.ones_like(c) if signs is None else np.asarray(signs, float)
    W0 = s[None, :]
    b0 = (-s * c)[None, :]
    W1 = np.asarray(out_weights, float)[:, None]
    return [W0[None], b0[None], W1[None], np.full((1, 1, 1), lo_bias)]


# ----------------------------------------------------------------------------- the tent-map construction

@pytest.mark.parametrize("k", [1, 2, 3, 5, 8, 12])
def test_tent_net_has_2_to_the_k_pieces_and_zero_error(k):
    params = tent_net(k)
    assert [p.shape for p in params[:2]] == [(1, 1, 2), (1, 1, 2)]
    assert all(p.shape[-1] <= 2 for p in params)
    assert len(params) // 2 == k + 1                               # k hidden layers + the output layer
    assert sum(p.size for p in params) == 6 * k + 1
    # dyadic inputs: both sides are exact in float64
    x = (np.arange(2**(k + 3) + 1) / 2**(k + 3))[:, None]
    assert np.array_equal(relu_forward(params, x)[0], _tent_reference(x, k))
    # any inputs: error at the rounding level of slopes 2^k
    x = np.random.default_rng(k).uniform(0, 1, (4000, 1))
    assert np.abs(relu_forward(params, x)[0] - _tent_reference(x, k)).max() <= 2**k * 8 * np.finfo(float).eps
    assert count_pieces(params, 0.0, 1.0).tolist() == [2**k]
    np.testing.assert_array_equal(breakpoints(params, 0.0, 1.0)[0], np.arange(1, 2**k) / 2**k)


def test_tent_net_matches_data_tent_map():
    from dlbench.data import tent_map

    x = np.linspace(0, 1, 1001)[:, None]
    np.testing.assert_allclose(relu_forward(tent_net(6), x)[0], tent_map(x, 6), atol=1e-12)


# ----------------------------------------------------------------------------- the breakpoint counter

def test_counter_finds_each_kink_of_a_shallow_net():
    params = _shallow([0.1, 0.3, 0.7], [1.0, -2.0, 3.0], signs=[1, -1, 1])
    np.testing.assert_allclose(breakpoints(params, 0.0, 1.0)[0], [0.1, 0.3, 0.7], rtol=0, atol=1e-15)
    assert count_pieces(params, 0.0, 1.0).tolist() == [4]
    assert count_pieces(params, 0.2, 0.5).tolist() == [2]          # only 0.3 lies inside
    assert count_pieces(params, 0.75, 2.0).tolist() == [1]


def test_counter_ignores_kinks_that_cancel_or_fall_on_the_ends():
    cancel = _shallow([0.5, 0.5], [1.0, -1.0])                      # relu(x-.5) - relu(x-.5) = 0
    assert count_pieces(cancel, 0.0, 1.0).tolist() == [1]
    ends = _shallow([0.0, 1.0], [1.0, 1.0])
    assert count_pieces(ends, 0.0, 1.0).tolist() == [1]
    dead = _shallow([0.2, 0.4], [0.0, 0.0])                         # zero output weights: no kink shows
    assert count_pieces(dead, 0.0, 1.0).tolist() == [1]


def test_counter_follows_kinks_through_layers():
    # h = relu(x); z = relu(2h - 1/2): the first layer's kink at 0 is hidden (z = 0 there), z kinks at 1/4
    params = [np.array([[[1.0]]]), np.zeros((1, 1, 1)), np.array([[[2.0]]]), np.array([[[-0.5]]]),
              np.array([[[1.0]]]), np.zeros((1, 1, 1))]
    np.testing.assert_allclose(breakpoints(params, -1.0, 1.0)[0], [0.25])
    # |x| = relu(x) + relu(-x), then relu(|x| - 1/2): kinks at -1/2, 0, 1/2
    params = [np.array([[[1.0, -1.0]]]), np.zeros((1, 1, 2)), np.array([[[1.0], [1.0]]]),
              np.array([[[-0.5]]]), np.array([[[1.0]]]), np.zeros((1, 1, 1))]
    np.testing.assert_allclose(breakpoints(params, -1.0, 1.0)[0], [-0.5, 0.5])
    params[-2] = np.array([[[1.0]]])
    params[2] = np.array([[[1.0], [1.0]]])
    params[3] = np.array([[[0.0]]])                                 # relu(|x|) = |x|: one kink at 0
    np.testing.assert_allclose(breakpoints(params, -1.0, 1.0)[0], [0.0])


def test_counter_counts_each_replica_separately():
    a = _shallow([0.1, 0.3, 0.7], [1.0, -2.0, 3.0])
    b = _shallow([0.5, 0.5, 0.9], [1.0, -1.0, 2.0])                 # the 0.5 kinks cancel
    assert count_pieces(_stack(a, b), 0.0, 1.0).tolist() == [4, 2]


def test_counter_reads_a_many_input_net_along_a_segment():
    rng = np.random.default_rng(3)
    W0, b0 = rng.standard_normal((1, 3, 6)), rng.standard_normal((1, 1, 6))
    W1, b1 = rng.standard_normal((1, 6, 2)), rng.standard_normal((1, 1, 2))
    start, end = np.array([-1.0, 0.5, 2.0]), np.array([1.0, -1.0, 0.0])
    direction = end - start
    one_d = [direction[None, :] @ W0, start[None, :] @ W0 + b0, W1, b1]
    assert count_pieces([W0, b0, W1, b1], start=start, end=end).tolist() == count_pieces(one_d).tolist()


@pytest.mark.parametrize("widths", [(1, 8, 1), (1, 6, 6, 6, 1), (1, 4, 4, 4, 4, 4, 4, 2)])
def test_counter_is_exact_on_random_nets(widths):
    """Between consecutive breakpoints the net is affine; across each one its slope changes."""
    rng = np.random.default_rng(len(widths))
    params = []
    for fi, fo in zip(widths[:-1], widths[1:]):
        params += [rng.standard_normal((3, fi, fo)), 0.5 * rng.standard_normal((3, 1, fo))]
    lo, hi = -2.0, 2.0
    for s, bps in enumerate(breakpoints(params, lo, hi)):
        one = [p[s:s + 1] for p in params]
        edges = np.r_[lo, bps, hi]
        t = np.linspace(0.1, 0.9, 7)
        pts = edges[:-1, None] + t * np.diff(edges)[:, None]              # inside each piece
        f = relu_forward(one, pts.reshape(-1, 1))[0].reshape(*pts.shape, -1)
        slope = (f[:, -1] - f[:, 0]) / (pts[:, -1] - pts[:, 0])[:, None]
        line = f[:, :1] + slope[:, None] * (pts - pts[:, :1])[..., None]
        np.testing.assert_allclose(f, line, atol=1e-9 * (1 + np.abs(f).max()))
        assert (np.abs(np.diff(slope, axis=0)).max(axis=-1) > 1e-9 * np.abs(slope).max()).all()


# ----------------------------------------------------------------------------- linear collapse

def test_identity_net_is_one_affine_map():
    rng = np.random.default_rng(0)
    widths = (3, 7, 5, 9, 2)
    params = []
    for fi, fo in zip(widths[:-1], widths[1:]):
        params += [rng.standard_normal((4, fi, fo)), rng.standard_normal((4, 1, fo))]
    x = rng.standard_normal((50, 3))
    h = x
    for W, b in zip(params[0::2], params[1::2]):
        h = h @ W + b
    W, b = collapse_linear(params)
    assert W.shape == (4, 3, 2) and b.shape == (4, 1, 2)
    np.testing.assert_allclose(x @ W + b, h, rtol=1e-12, atol=1e-12)


# ----------------------------------------------------------------------------- sizing and batching nets

from dlbench.experiments import depth  # noqa: E402

DIMS = {"sawtooth": (1, 1), "sine": (1, 1), "teacher": (8, 1), "spirals": (2, 2)}


@pytest.mark.parametrize("d_in, d_out", sorted(set(DIMS.values())))
def test_budget_widths_hit_their_budgets(d_in, d_out):
    from dlbench.nn.mlp import MLP, MLPSpec

    budgets = depth.parse_numbers(depth.Options().budgets)
    for n_layers in depth.parse_numbers(depth.Options().depths):
        for budget in budgets:
            widths = depth.widths_for_budget(budget, n_layers, d_in, d_out)
            assert len(widths) == n_layers and min(widths) >= 1
            count = depth.mlp_param_count(widths, d_in, d_out)
            assert count == MLP(MLPSpec((d_in, *widths, d_out))).n_params
            assert abs(count - budget) <= 0.05 * budget, (n_layers, budget, widths, count)


def test_budget_widths_are_the_closest_of_their_family():
    for budget in (50, 333, 1000, 4096):
        widths = depth.widths_for_budget(budget, 3, 1, 1)
        gap = abs(depth.mlp_param_count(widths, 1, 1) - budget)
        for w in range(1, 60):
            for m in range(3):
                other = (w + 1,) * m + (w,) * (3 - m)
                assert gap <= abs(depth.mlp_param_count(other, 1, 1) - budget)


def test_grouping_covers_every_net_once():
    sets = [depth.widths_for_budget(b, 2, 1, 1) for b in (64, 128, 256, 512, 1024, 4096)]
    groups = depth.group_width_sets(sets, replicas=5, batch=128)
    assert sorted(i for g in groups for i in g) == list(range(len(sets)))
    tiny = [(2,), (3,), (4,)]                           # call overhead dominates: one group
    assert depth.group_width_sets(tiny, 5, 128) == [[0, 1, 2]]


def test_zero_padded_nets_train_exactly_like_the_small_ones():
    """Padded units get zero gradients and stay zero; the real units follow the unpadded run."""
    from dlbench.data import make_dataset
    from dlbench.nn.mlp import MLP, MLPSpec

    data = depth.standardise(make_dataset("sawtooth", seed=0, k=2, n_train=64, n_test=32))[0]
    opts = depth.Options(steps=25, batch_size=16, lr=0.01)
    sets = [(3, 2), (6, 5)]
    grouped = depth.train_nets(sets, data, [0, 1], opts)
    assert grouped[0].model is grouped[1].model                     # trained as one padded group
    alone = [depth.train_nets([s], data, [0, 1], opts)[0] for s in sets]
    for g, a, widths in zip(grouped, alone, sets):
        sizes = (1, *widths, 1)
        for p, q, (fi, fo) in zip(g.params[0::2], a.params[0::2], zip(sizes[:-1], sizes[1:])):
            np.testing.assert_allclose(p[:, :fi, :fo], q[:, :fi, :fo], rtol=1e-4, atol=1e-6)
            assert not p[:, fi:, :].any() and not p[:, :, fo:].any()
        np.testing.assert_allclose(g.test_loss, a.test_loss, rtol=1e-4)
    sizes = (1, *sets[0], 1)
    unpadded = []
    for W, b, fi, fo in zip(grouped[0].params[0::2], grouped[0].params[1::2], sizes[:-1], sizes[1:]):
        unpadded += [W[:, :fi, :fo], b[:, :, :fo]]
    out_small, _ = MLP(MLPSpec(sizes)).forward(unpadded, data.X_test, train=False)
    out_padded, _ = grouped[0].model.forward(grouped[0].params, data.X_test, train=False)
    np.testing.assert_allclose(out_padded, out_small, rtol=1e-5, atol=1e-6)


def test_tent_loss_fits_each_replica_its_own_composition():
    from dlbench.data import tent_map
    from dlbench.nn.losses import mse

    ks = np.array([1, 1, 2, 3])
    x = np.random.default_rng(0).uniform(0, 1, (50, 1)).astype(np.float32)
    out = np.random.default_rng(1).standard_normal((4, 50, 1)).astype(np.float32)
    loss, grad = depth.tent_mse(ks)(out, x)
    for r, k in enumerate(ks):
        want = ((tent_map(x, k) - 0.5) * np.sqrt(12)).astype(np.float32)
        ref_loss, ref_grad = mse(out[r:r + 1], want)
        np.testing.assert_allclose(loss[r], ref_loss[0], rtol=1e-5)
        np.testing.assert_allclose(grad[r], ref_grad[0], rtol=1e-5, atol=1e-7)


# ----------------------------------------------------------------------------- through the CLI

from typer.testing import CliRunner  # noqa: E402

from dlbench import cli  # noqa: E402
from dlbench.results import read_results  # noqa: E402


def _invoke(*args):
    return CliRunner().invoke(cli.app, list(args), env={"COLUMNS": "200", "NO_COLOR": "1"})


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("depth") / "depth.parquet"
    r = _invoke("depth", "--quick", "--out", str(out), "-q")
    assert r.exit_code == 0, r.output
    return out


def test_quick_run_writes_every_claim_and_table(quick_run):
    res = read_results(quick_run)
    claims = res.claims.set_index("claim")
    assert set(claims.index) == set(depth.CLAIMS)
    assert set(claims["verdict"]) <= {"supported", "refuted", "inconclusive"}
    assert all(claims["evidence"].str.contains("n="))
    rows = res.rows
    collapse = rows[rows["metric"] == "collapse_rel_error"]["value"]
    assert len(collapse) == 1 and collapse.iloc[0] < 1e-10
    assert claims.loc["D4", "verdict"] != "refuted" and "tolerance 1e-10" in claims.loc["D4", "evidence"]
    sections = set(rows["section"])
    for s in ("test error", "linear pieces", "step time (D5)", "linear nets vs least squares (D4)",
              "Telgarsky construction (width 2, depth k)"):
        assert s in sections
    built = rows[rows["section"] == "Telgarsky construction (width 2, depth k)"].set_index("metric")["value"]
    k = res.meta["options"]["depth"]["k"]
    assert built["pieces"] == 2**k and built["params"] == 6 * k + 1 and built["max_abs_error"] < 1e-12
    err = rows[(rows["metric"] == "test_error") & (rows["section"] == "test error")]
    assert len(err) == 2 * 2 * len(res.meta["seeds"])                 # quick: 2 depths x 2 budgets x seeds
    assert err["value"].between(0, 2).all()
    timing = rows[rows["kind"] == "timing"]
    assert set(timing["p_depth"]) == {1, 4} and (timing["value"] > 0).all()


def test_only_d5_rests_on_timing_and_d2_marks_censored_cells(quick_run):
    res = read_results(quick_run)
    basis = res.claims.set_index("claim")["basis"]
    assert set(basis[basis == "timing"].index) == {"D5"}
    d2 = res.rows[res.rows["section"].str.contains("(D2", regex=False)]
    assert {"width_needed (>= if censored)", "censored"} <= set(d2["metric"])


def test_d2_evidence_names_censored_cells_as_lower_bounds():
    windows = {1: [1, 2, 4, 8, 16], 2: [1, 2, 4, 8, 16, 32], 3: [2, 4, 8, 16, 32, 64]}
    needed = np.array([[2, 2], [4, 4], [128, 16]], dtype=float)
    reached = np.array([[True, True], [True, True], [False, True]])
    note = depth._d2_note(needed, reached, windows, 3)
    assert "k=3: 1/2 seeds >= 128" in note and "conservative" in note
    assert "none censored" in depth._d2_note(needed, np.ones_like(reached), windows, 3)
    low = depth._d2_note(needed[::-1], reached[::-1], windows, 3)
    assert "can raise the slope" in low


def test_show_renders_the_quick_run(quick_run):
    for fmt in ("table", "markdown"):
        r = _invoke("show", str(quick_run), "--format", fmt)
        assert r.exit_code == 0, r.output
        assert "D3" in r.output and "linear pieces" in r.output


def test_plot_is_written(tmp_path):
    pytest.importorskip("matplotlib")
    png = tmp_path / "depth.png"
    r = _invoke("depth", "--quick", "--steps", "20", "--target", "sawtooth,spirals", "--no-save", "-q",
                "--plot", str(png))
    assert r.exit_code == 0, r.output
    assert png.stat().st_size > 10_000


@pytest.mark.parametrize("args, fragment", [
    (["--target", "cosine"], "unknown target 'cosine'"),
    (["--depths", "0,2"], "--depths"),
    (["--budgets", "1o0"], "--budgets"),
    (["--budgets", "10", "--depths", "1,8"], "below the smallest"),
    (["--k", "0"], "--k"),
    (["--optimizer", "lbfgs"], "lbfgs"),
    (["--target-error", "0"], "--target-error"),
    (["--target-error", "1"], "--target-error"),
    (["--lr", "0"], "--lr must be positive"),
])
def test_bad_options_are_one_line_errors(args, fragment):
    r = _invoke("depth", "--quick", "--no-save", *args)
    assert r.exit_code == 2, r.output
    lines = [line for line in r.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("dlbench: error:"), r.output
    assert fragment in lines[0]


def test_d3_compares_the_widest_shallow_net_with_the_best_smaller_deep_net():
    from types import SimpleNamespace

    rng = np.random.default_rng(0)
    depths, budgets = [1, 3, 6], [100, 1000, 10000]
    params = {(d, b): b - d for d in depths for b in budgets}
    params[3, 10000] = 20000          # over the shallow net's count: not a candidate however good
    level = {(1, 10000): 0.1, (3, 100): 0.5, (3, 1000): 0.02, (6, 100): 0.3, (6, 1000): 0.04, (3, 10000): 1e-4,
             (6, 10000): 0.01}
    errors = {k: level.get(k, 1.0) * (1 + 0.01 * rng.random(6)) for k in params}
    errors[6, 10000] = np.full(6, np.nan)  # diverged
    f = {"target": SimpleNamespace(name="sine"), "errors": errors, "params": params}
    c = depth._claim_d3(f, depths, budgets, SimpleNamespace(seed=0))
    assert "depth 3, budget 1000, 997 params" in c.evidence
    assert "best of 4 deeper nets with fewer params" in c.evidence
    assert c.verdict == "supported" and c.effect > 0
    params = {k: (10 ** 6 if k[0] > 1 else v) for k, v in params.items()}
    f = {"target": SimpleNamespace(name="sine"), "errors": errors, "params": params}
    c = depth._claim_d3(f, depths, budgets, SimpleNamespace(seed=0))
    assert c.verdict == "not run" and "no deeper net with fewer than 9999 params" in c.evidence
