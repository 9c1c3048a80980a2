"""dlbench depth: the exact relu constructions and error, the shallow bound, dead nets, the trainer's padding and
targets, probes, deleting blocks of plain and residual nets, the claims on the protocol (grid, control, checks),
the command end to end."""

import math

import numpy as np
import pytest
from typer.testing import CliRunner

from dlbench import cli
from dlbench.experiments import depth
from dlbench.experiments.depth import claims as dc
from dlbench.experiments.depth import measure as m
from dlbench.experiments.depth import skips
from dlbench.experiments.depth.relu_exact import (
    breakpoints, collapse_linear, count_pieces, dead_layer, relu_forward, shallow_tent_net, squared_error, tent_net,
)
from dlbench.results import read_results


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


def _random_net(rng, widths, replicas=3, bias=0.5):
    params = []
    for fi, fo in zip(widths[:-1], widths[1:]):
        params += [rng.standard_normal((replicas, fi, fo)), bias * rng.standard_normal((replicas, 1, fo))]
    return params


# ----------------------------------------------------------------------------- the tent-map constructions

@pytest.mark.parametrize("k", [1, 2, 3, 5, 8, 12])
def test_tent_net_has_2_to_the_k_pieces_and_zero_error(k):
    params = tent_net(k)
    assert [p.shape for p in params[:2]] == [(1, 1, 2), (1, 1, 2)]
    assert all(p.shape[-1] <= 2 for p in params)
    assert len(params) // 2 == k + 1                               # k hidden layers + the output layer
    assert sum(p.size for p in params) == 6 * k + 1
    x = (np.arange(2**(k + 3) + 1) / 2**(k + 3))[:, None]          # dyadic inputs: both sides exact in float64
    assert np.array_equal(relu_forward(params, x)[0], _tent_reference(x, k))
    x = np.random.default_rng(k).uniform(0, 1, (4000, 1))
    assert np.abs(relu_forward(params, x)[0] - _tent_reference(x, k)).max() <= 2**k * 8 * np.finfo(float).eps
    assert count_pieces(params, 0.0, 1.0).tolist() == [2**k]
    np.testing.assert_array_equal(breakpoints(params, 0.0, 1.0)[0], np.arange(1, 2**k) / 2**k)


@pytest.mark.parametrize("k", [1, 2, 4, 6])
def test_shallow_tent_net_fits_exactly_with_2_to_the_k_units(k):
    params = shallow_tent_net(k, 2**k + 5)                          # extra units stay zero
    x = (np.arange(2**(k + 3) + 1) / 2**(k + 3))[:, None]
    np.testing.assert_allclose(relu_forward(params, x)[0], _tent_reference(x, k), atol=1e-12)
    assert count_pieces(params, 0.0, 1.0).tolist() == [2**k]
    with pytest.raises(ValueError, match="needs"):
        shallow_tent_net(k, 2**k - 1)


@pytest.mark.parametrize("k", [1, 3, 5])
def test_standardised_constructions_have_zero_exact_error(k):
    assert m.sawtooth_fvu(m.standardised_tent_net(k), k)[0] < 1e-20
    assert m.sawtooth_fvu(m.standardised_shallow_net(k, 2**k), k)[0] < 1e-20


def test_tent_net_matches_data_tent_map():
    from dlbench.data import tent_map

    x = np.linspace(0, 1, 1001)[:, None]
    np.testing.assert_allclose(relu_forward(tent_net(6), x)[0], tent_map(x, 6), atol=1e-12)


@pytest.mark.parametrize("k", [1, 2, 3, 6, 9])
def test_the_tent_map_composed_k_times_has_2_to_the_k_minus_1_teeth(k):
    assert m.count_teeth(k) == 2 ** (k - 1)
    x = np.linspace(0, 1, 2**(k + 6) + 1)
    y = _tent_reference(x, k)
    assert int(np.sum((y[1:-1] > y[:-2]) & (y[1:-1] >= y[2:]))) == 2 ** (k - 1)    # independently, on a fine grid


# ----------------------------------------------------------------------------- the breakpoint counter

def test_counter_finds_each_kink_of_a_shallow_net():
    params = _shallow([0.1, 0.3, 0.7], [1.0, -2.0, 3.0], signs=[1, -1, 1])
    np.testing.assert_allclose(breakpoints(params, 0.0, 1.0)[0], [0.1, 0.3, 0.7], rtol=0, atol=1e-15)
    assert count_pieces(params, 0.0, 1.0).tolist() == [4]
    assert count_pieces(params, 0.2, 0.5).tolist() == [2]          # only 0.3 lies inside
    assert count_pieces(params, 0.75, 2.0).tolist() == [1]


def test_counter_ignores_kinks_that_cancel_or_fall_on_the_ends():
    assert count_pieces(_shallow([0.5, 0.5], [1.0, -1.0]), 0.0, 1.0).tolist() == [1]
    assert count_pieces(_shallow([0.0, 1.0], [1.0, 1.0]), 0.0, 1.0).tolist() == [1]
    assert count_pieces(_shallow([0.2, 0.4], [0.0, 0.0]), 0.0, 1.0).tolist() == [1]


def test_counter_follows_kinks_through_layers():
    # h = relu(x); z = relu(2h - 1/2): the first layer's kink at 0 is hidden (z = 0 there), z kinks at 1/4
    params = [np.array([[[1.0]]]), np.zeros((1, 1, 1)), np.array([[[2.0]]]), np.array([[[-0.5]]]),
              np.array([[[1.0]]]), np.zeros((1, 1, 1))]
    np.testing.assert_allclose(breakpoints(params, -1.0, 1.0)[0], [0.25])
    # |x| = relu(x) + relu(-x), then relu(|x| - 1/2): kinks at -1/2, 1/2
    params = [np.array([[[1.0, -1.0]]]), np.zeros((1, 1, 2)), np.array([[[1.0], [1.0]]]),
              np.array([[[-0.5]]]), np.array([[[1.0]]]), np.zeros((1, 1, 1))]
    np.testing.assert_allclose(breakpoints(params, -1.0, 1.0)[0], [-0.5, 0.5])


def test_counter_counts_each_replica_separately():
    a = _shallow([0.1, 0.3, 0.7], [1.0, -2.0, 3.0])
    b = _shallow([0.5, 0.5, 0.9], [1.0, -1.0, 2.0])                 # the 0.5 kinks cancel
    assert count_pieces(_stack(a, b), 0.0, 1.0).tolist() == [4, 2]


def test_counter_reads_a_many_input_net_along_a_segment():
    rng = np.random.default_rng(3)
    W0, b0 = rng.standard_normal((1, 3, 6)), rng.standard_normal((1, 1, 6))
    W1, b1 = rng.standard_normal((1, 6, 2)), rng.standard_normal((1, 1, 2))
    start, end = np.array([-1.0, 0.5, 2.0]), np.array([1.0, -1.0, 0.0])
    one_d = [(end - start)[None, :] @ W0, start[None, :] @ W0 + b0, W1, b1]
    assert count_pieces([W0, b0, W1, b1], start=start, end=end).tolist() == count_pieces(one_d).tolist()


@pytest.mark.parametrize("widths", [(1, 8, 1), (1, 6, 6, 6, 1), (1, 4, 4, 4, 4, 4, 4, 2)])
def test_counter_is_exact_on_random_nets(widths):
    """Between consecutive breakpoints the net is affine; across each one its slope changes."""
    params = _random_net(np.random.default_rng(len(widths)), widths)
    lo, hi = -2.0, 2.0
    for s, bps in enumerate(breakpoints(params, lo, hi)):
        one = [p[s:s + 1] for p in params]
        edges = np.r_[lo, bps, hi]
        pts = edges[:-1, None] + np.linspace(0.1, 0.9, 7) * np.diff(edges)[:, None]
        f = relu_forward(one, pts.reshape(-1, 1))[0].reshape(*pts.shape, -1)
        slope = (f[:, -1] - f[:, 0]) / (pts[:, -1] - pts[:, 0])[:, None]
        line = f[:, :1] + slope[:, None] * (pts - pts[:, :1])[..., None]
        np.testing.assert_allclose(f, line, atol=1e-9 * (1 + np.abs(f).max()))
        assert (np.abs(np.diff(slope, axis=0)).max(axis=-1) > 1e-9 * np.abs(slope).max()).all()


# ----------------------------------------------------------------------------- exact error and dead nets

@pytest.mark.parametrize("widths", [(1, 7, 1), (1, 5, 5, 1), (1, 3, 3, 3, 3, 1)])
def test_squared_error_is_the_integral(widths):
    """The exact integral agrees with a fine midpoint rule (error O(h^2) at each kink)."""
    k = 3
    params = _random_net(np.random.default_rng(sum(widths)), widths, replicas=4)
    exact = squared_error(params, lambda x: _tent_reference(x, k), m.tent_kinks(k), start=[-1.5], end=[2.0], chunk=3)
    x = (np.arange(200_000) + 0.5) / 200_000
    f = relu_forward(params, (-1.5 + 3.5 * x)[:, None])[..., 0]
    numeric = ((f - _tent_reference(x, k)) ** 2).mean(axis=1)
    np.testing.assert_allclose(exact, numeric, rtol=1e-6)


def test_mean_predictor_has_fvu_one():
    zero = [np.zeros((2, 1, 3)), np.zeros((2, 1, 3)), np.zeros((2, 3, 1)), np.zeros((2, 1, 1))]
    np.testing.assert_allclose(m.sawtooth_fvu(zero, 4), 1.0, rtol=1e-12)


def test_dead_layer_finds_nets_that_are_constant_on_the_interval():
    # layer 1 units relu(x - 2) and relu(-x - 2) are zero on [-1, 1]: dead; relu(x) is alive
    dead = [np.array([[[1.0, -1.0]]]), np.array([[[-2.0, -2.0]]]), np.ones((1, 2, 1)), np.zeros((1, 1, 1))]
    alive = [np.array([[[1.0, -1.0]]]), np.array([[[0.0, -2.0]]]), np.ones((1, 2, 1)), np.zeros((1, 1, 1))]
    assert dead_layer(_stack(dead, alive), -1.0, 1.0).tolist() == [True, False]
    # a second layer that is zero on the whole interval although the first is alive
    deep = [np.array([[[1.0]]]), np.zeros((1, 1, 1)), np.array([[[-1.0]]]), np.array([[[-0.1]]]),
            np.ones((1, 1, 1)), np.zeros((1, 1, 1))]
    assert dead_layer(deep, -1.0, 1.0).tolist() == [True]
    assert count_pieces(deep, -1.0, 1.0).tolist() == [1]


def test_live_init_redraws_nets_born_dead_and_counts_them():
    from dlbench.nn.mlp import MLP, MLPSpec

    model = MLP(MLPSpec((1, 2, 2, 2, 2, 2, 2, 1), init="kaiming_normal"))
    seeds = list(range(40))
    first = dead_layer(model.init(seeds), m.U_LO, m.U_HI)
    assert first.any()                                              # width 2, depth 6: some are born dead
    params, redrawn = m.live_init(model, seeds, redraw=True)
    assert not dead_layer(params, m.U_LO, m.U_HI).any()
    assert (redrawn >= first).all() and (redrawn[~first] == 0).all()
    kept, counted = m.live_init(model, seeds, redraw=False)
    np.testing.assert_array_equal(counted, first)


# ----------------------------------------------------------------------------- the shallow lower bound

def _best_fit_with_knots(knots, k):
    """FVU of the least-squares continuous piecewise-linear fit with these knots (on a fine grid)."""
    x = (np.arange(2**(k + 9)) + 0.5) / 2**(k + 9)
    y = math.sqrt(12) * (_tent_reference(x, k) - 0.5)
    basis = np.column_stack([np.ones_like(x), x, *[np.maximum(x - c, 0) for c in knots]])
    coef, *_ = np.linalg.lstsq(basis, y, rcond=None)
    return float(np.mean((basis @ coef - y) ** 2))


@pytest.mark.parametrize("k", [2, 3, 4, 5])
def test_no_piecewise_linear_fit_beats_the_bound(k):
    rng = np.random.default_rng(k)
    kinks = m.tent_kinks(k)
    for w in range(0, 2**k):
        bound = m.shallow_bound(w, k)
        trials = [np.sort(rng.uniform(0, 1, w)) for _ in range(5)]
        trials.append(kinks[:w])                                    # knots on the target's own kinks
        trials.append(kinks[np.linspace(0, kinks.size - 1, w).astype(int)] if w else kinks[:0])
        best = min(_best_fit_with_knots(t, k) for t in trials)
        assert best >= bound - 1e-3, (k, w, best, bound)
    assert m.shallow_bound(2**k - 1, k) == 0.0 and m.shallow_bound(2**k - 2, k) > 0
    assert m.shallow_bound(0, k) == 1.0


def test_bound_values_and_the_width_they_imply():
    assert m.shallow_bound(13, 5) == pytest.approx(1 - 13 / 16)
    assert m.shallow_bound(21, 5) == pytest.approx((32 - 22) / 128)
    for k in (1, 3, 5):
        for eps in (0.01, 0.05, 0.2):
            w = m.width_lower_bound(k, eps)
            assert m.shallow_bound(w, k) <= eps and (w == 0 or m.shallow_bound(w - 1, k) > eps)


# ----------------------------------------------------------------------------- sizing and training nets

@pytest.mark.parametrize("d_in, d_out", [(1, 1), (8, 1), (32, 32)])
def test_budget_widths_hit_their_budgets(d_in, d_out):
    from dlbench.nn.mlp import MLP, MLPSpec

    for n_layers in (1, 2, 3, 5, 8):
        for budget in (64, 90, 256, 4096):
            widths = m.widths_for_budget(budget, n_layers, d_in, d_out)
            count = m.mlp_param_count(widths, d_in, d_out)
            assert count == MLP(MLPSpec((d_in, *widths, d_out))).n_params
            if budget >= 20 * (d_in + d_out):          # coarser budgets cannot be met by whole units
                assert abs(count - budget) <= 0.08 * budget, (n_layers, budget, widths, count)


def test_grouping_covers_every_net_once():
    sets = [m.widths_for_budget(b, 2, 1, 1) for b in (64, 128, 256, 512, 1024, 4096)]
    groups = m.group_width_sets(sets, replicas=5, batch=128)
    assert sorted(i for g in groups for i in g) == list(range(len(sets)))
    assert m.group_width_sets([(2,), (3,), (4,)], 5, 128) == [[0, 1, 2]]


def test_tent_loss_fits_each_replica_its_own_composition():
    from dlbench.nn.losses import mse

    ks = np.array([1, 1, 2, 3])
    x = np.random.default_rng(0).uniform(0, 1, (50, 1)).astype(np.float32)
    out = np.random.default_rng(1).standard_normal((4, 50, 1)).astype(np.float32)
    loss, grad = m.tent_loss(ks)(out, x)
    for r, k in enumerate(ks):
        want = ((_tent_reference(x.astype(np.float64), k) - 0.5) * np.sqrt(12)).astype(np.float32)
        ref_loss, ref_grad = mse(out[r:r + 1], want)
        np.testing.assert_allclose(loss[r], ref_loss[0], rtol=1e-5)
        np.testing.assert_allclose(grad[r], ref_grad[0], rtol=1e-5, atol=1e-7)


def test_padded_training_equals_training_each_net_alone():
    """Nets trained in one padded group (different widths and targets) match each trained alone."""
    data = m.sawtooth_inputs(64, np.random.default_rng(0))
    nets = [((3, 2), 2), ((6, 5), 3)]
    kw = dict(lrs=[0.01, 0.03], seeds=[5, 6], checkpoints=(10, 25), batch_size=16)
    together = m.train_sawtooth(nets, data, **kw)
    for c, net in enumerate(nets):
        alone = m.train_sawtooth([net], data, **kw)
        np.testing.assert_allclose(together.errors[c], alone.errors[0], rtol=1e-4)
    assert together.errors.shape == (2, 2, 2, 2) and np.isfinite(together.errors).all()
    assert (together.errors[..., 1] < 2).all()


def test_two_phase_training_fills_the_chosen_lr_only():
    data = m.sawtooth_inputs(64, np.random.default_rng(1))
    r = m.train_sawtooth([((4,), 1)], data, [1e-3, 3e-2], seeds=[1, 2, 3, 4], checkpoints=(20,), tuning=2,
                         batch_size=16)
    assert np.isfinite(r.errors[0, :, :2]).all()                    # tuning seeds at every lr
    j = int(m.best_lr(r.errors[0, :, :, 0], 2))
    assert np.isfinite(r.errors[0, j, 2:]).all() and np.isnan(r.errors[0, 1 - j, 2:]).all()
    full = m.train_sawtooth([((4,), 1)], data, [1e-3, 3e-2], seeds=[1, 2, 3, 4], checkpoints=(20,), batch_size=16)
    np.testing.assert_allclose(r.errors[0, j], full.errors[0, j], rtol=1e-5)


# ----------------------------------------------------------------------------- least squares, probes, parity

def test_identity_net_is_one_affine_map():
    rng = np.random.default_rng(0)
    params = _random_net(rng, (3, 7, 5, 9, 2), replicas=4, bias=1.0)
    x = rng.standard_normal((50, 3))
    h = x
    for W, b in zip(params[0::2], params[1::2]):
        h = h @ W + b
    W, b = collapse_linear(params)
    assert W.shape == (4, 3, 2) and b.shape == (4, 1, 2)
    np.testing.assert_allclose(x @ W + b, h, rtol=1e-12, atol=1e-12)


def test_least_squares_error_is_the_noise_share():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((20000, 3))
    y = X @ np.array([[1.0], [2.0], [-1.0]]) + 0.5 + rng.standard_normal((20000, 1))
    data = m.ArrayData("lin", X[:10000], y[:10000], X[10000:], y[10000:])
    assert m.least_squares_error(data) == pytest.approx(1 / 7, rel=0.05)      # noise 1 of variance 1 + 6


def test_probe_accuracy_on_known_problems():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 2000, 2))
    sep = (x[..., 0] + 0.5 * x[..., 1] > 0).astype(int)
    acc = m.probe_accuracy(x[:, :1000], sep[0, :1000], x[:, 1000:], sep[0, 1000:])
    assert acc.shape == (2,) and acc[0] > 0.97 and abs(acc[1] - 0.5) < 0.1   # replica 1 sees other points
    xor = (x[0, :, 0] * x[0, :, 1] > 0).astype(int)
    # not linearly separable: a half-plane can only cut off a corner of one quadrant (at most ~2/3 right)
    assert m.probe_accuracy(x[0, :1000], xor[:1000], x[0, 1000:], xor[1000:]) < 0.7
    feats = np.column_stack([x[0], x[0, :, 0] * x[0, :, 1]])                 # the product makes XOR linear
    assert m.probe_accuracy(feats[:1000], xor[:1000], feats[1000:], xor[1000:]) > 0.97


def test_parity_of_parities_composes_two_xors():
    x, y, z = m.parity_of_parities(np.random.default_rng(0), 500, pairs=2)
    assert x.shape == (500, 4) and z.shape == (500, 2)
    np.testing.assert_array_equal(z[:, 0], np.sign(x[:, 0] * x[:, 1]))
    np.testing.assert_array_equal(y, (z[:, 0] * z[:, 1] > 0).astype(int))
    assert 0.4 < y.mean() < 0.6


# ----------------------------------------------------------------------------- plain and residual nets (D7, D8)

@pytest.mark.parametrize("depth_, blocks", [(2, 0), (4, 2), (16, 14), (32, 30)])
def test_depth_counts_linear_layers(depth_, blocks):
    assert skips.blocks_of(depth_) == blocks
    for residual in (False, True):
        model = skips.net(depth_, residual, 8)
        assert model.n_blocks == blocks and len(model.widths) - 1 == depth_
        assert model.residual is residual and model.has_norm


def test_deletion_paths_start_once_at_every_block_and_delete_one_more_each_step():
    paths = skips.deletion_paths(7, np.random.default_rng(0))
    assert [p[0] for p in paths] == list(range(7))
    assert all(sorted(p) == list(range(7)) for p in paths)
    assert len({p[1:] for p in paths}) > 1                             # the rest in random orders
    sets = skips.path_sets(paths[3])
    assert sorted(sets) == list(range(8)) and sets[0] == [()] and sets[1] == [(3,)]
    assert all(set(sets[k][0]) < set(sets[k + 1][0]) and len(sets[k + 1][0]) == k + 1 for k in range(7))
    assert skips.deletion_paths(0, np.random.default_rng(0)) == []


def test_largest_jump_of_an_even_rise_and_of_a_collapse():
    even = np.linspace(0, 1, 5)[:, None]                            # B = 4: four equal steps
    assert skips.largest_jump(even)[0] == pytest.approx(0.25)
    collapse = np.array([[0.0], [0.98], [1.0], [1.0], [1.0], [1.0]])
    assert skips.largest_jump(collapse)[0] == pytest.approx(0.98)
    # measured against the most ever lost, not the last value: a curve that falls back is no smoother
    back = np.array([[0.0], [0.2], [0.6], [0.4]])
    assert skips.largest_jump(back)[0] == pytest.approx(0.4 / 0.6)
    assert np.isnan(skips.largest_jump(np.zeros((4, 1))))[0]


def _teacher_data(n=256):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((n, skips.INPUTS)).astype(np.float32)
    y = np.tanh(X[:, :1] + X[:, 1:2] * X[:, 2:3]).astype(np.float32)
    return X, y, float(y.astype(np.float64).var())


def test_damage_is_zero_where_the_deleted_blocks_do_nothing():
    """Residual blocks whose last layer is zero add nothing: deleting any of them loses nothing; damage is
    measured against the intact net, and capped at all of the fit."""
    model = skips.net(5, True, 6)
    params = model.init([1])
    for j in range(model.n_blocks):
        last = model.units[j]
        params[last.W][...] = 0
        params[last.b][...] = 0
    X, _, _ = _teacher_data()
    state = model.init_state(1)
    out, _ = model.forward(params, X, state, train=False)
    y = out[0] + 0.5 * float(out.std()) * np.random.default_rng(1).standard_normal(out[0].shape).astype(np.float32)
    var = float(y.astype(np.float64).var())
    base, curve = skips.damage_curve(model, params, state, X, y, var,
                                     skips.path_sets((2, 0, 1)))
    assert curve.shape == (4, 1)
    np.testing.assert_array_equal(curve, 0.0)
    np.testing.assert_allclose(base, skips.test_fvu(model, params, state, X, y, var, deleted=(0, 1, 2)), rtol=0)
    assert (base < 1).all()


def test_a_net_that_learned_nothing_has_no_damage():
    model = skips.net(4, True, 6)
    params = model.init([1])
    X, y, var = _teacher_data()
    base, curve = skips.damage_curve(model, params, model.init_state(1), X, -100 * y, var,
                                     {0: [()], 1: [(0,)]})
    assert base[0] > 1 and np.isnan(curve).all()


def test_damage_of_a_plain_net_follows_its_fvu():
    """Targets the intact net nearly fits: the damage of a set is the mean over its members of the capped share
    of the fit lost."""
    model = skips.net(5, False, 6)
    params = model.init([3])
    X, _, _ = _teacher_data()
    state = model.init_state(1)
    out, _ = model.forward(params, X, state, train=False)
    y = out[0] + 0.3 * float(out.std()) * np.random.default_rng(1).standard_normal(out[0].shape).astype(np.float32)
    var = float(y.astype(np.float64).var())
    sets = {0: [()], 1: [(0,), (2,)]}
    base, curve = skips.damage_curve(model, params, state, X, y, var, sets)
    assert 0 < base[0] < 0.2
    f0, f2 = (skips.test_fvu(model, params, state, X, y, var, deleted=d) for d in ((0,), (2,)))
    want = np.mean([(np.minimum(f, 1) - base) / (1 - base) for f in (f0, f2)], axis=0)
    np.testing.assert_allclose(curve[1], want, rtol=1e-6)
    assert curve[0, 0] == 0 and 0 < curve[1, 0] <= 1


def test_a_zero_branch_is_the_identity_exactly():
    model = skips.net(5, True, 6)
    params = model.init([4, 5])
    X, _, _ = _teacher_data(64)
    gap, n = skips._zero_branch_gap(model, params, model.init_state(2), X)
    assert gap == 0.0 and n == 2                                   # n counts the nets checked
    # the same construction on a plain net is no identity: the check could fail
    plain = skips.net(5, False, 6)
    assert skips._zero_branch_gap(plain, params, plain.init_state(2), X)[0] > 0


def test_d8_finding_says_which_net_holds_it():
    smooth = np.array([np.zeros(6), np.full(6, 0.2), np.full(6, 0.45), np.full(6, 0.7), np.ones(6)])
    smooth[1:] += np.linspace(-0.02, 0.02, 6)
    f = skips._d8_finding(smooth, np.full(6, 0.1), 0, "residual", 4, np.full(6, 3.0))
    assert f.verdict == "supported" and "residual net of 4 blocks" in f.evidence
    assert "uncapped with every block deleted 3" in f.evidence
    collapse = np.array([np.zeros(6), np.full(6, 0.97), np.ones(6), np.ones(6), np.ones(6)])
    collapse[1] += np.linspace(-0.02, 0.02, 6)
    c = skips._d8_finding(collapse, np.full(6, 0.3), 0, "plain", 4)
    assert c.verdict == "refuted" and c.parts == ("refuted", "refuted")
    # a little at the first deletion but one big step later: not smooth
    late = np.array([np.zeros(6), np.full(6, 0.1), np.full(6, 0.15), np.full(6, 0.95), np.ones(6)])
    late[1:] += np.linspace(-0.02, 0.02, 6)
    assert skips._d8_finding(late, np.full(6, 0.1), 0, "residual", 4).parts == ("supported", "refuted")


def test_d7_residual_part_is_a_non_inferiority():
    ramp = np.linspace(-0.03, 0.03, 6)
    assert skips._not_worse(ramp, 0, "x").verdict == "supported"
    # clearly better with depth is what He et al. report for residual nets: supported, not a departure
    assert skips._not_worse(ramp - 0.3, 0, "x").verdict == "supported"
    # clearly worse with depth (by more than 4/3x): refuted
    assert skips._not_worse(ramp + 0.3, 0, "x").verdict == "refuted"
    # an interval that reaches past the margin is not "not worse", whatever its centre
    assert skips._not_worse(np.array([-0.1, 0.0, 0.05, 0.1, 0.15, 0.2]), 0, "x").verdict == "inconclusive"
    # the margin is 4/3x: a whole interval just under it passes, just over it does not
    assert skips._not_worse(np.log10(1.3) + ramp / 10, 0, "x").verdict == "supported"
    assert skips._not_worse(np.log10(1.37) + ramp / 10, 0, "x").verdict == "refuted"


def test_d7_caps_fvu_at_one_so_a_diverged_net_stays_in_the_comparison():
    np.testing.assert_array_equal(skips.capped(np.array([0.1, 1.0, 3.0, np.inf, np.nan])), [0.1, 1, 1, 1, 1])
    # a deep residual net that diverged counts as 1 against its reference: worse, not absent
    fvu = {(d, "residual", 400): np.array([[0.05, 0.05, 0.05, 0.05, 0.05]]) for d in (2, 4)}
    fvu[16, "residual", 400] = np.array([[0.05, 0.05, np.inf, np.inf, np.inf]])
    effect, _, ref = skips._degradation(fvu, 400, "residual", (2, 4, 16), [0.01])
    assert np.isfinite(effect).all() and effect.min() > 1.0 and np.median(ref) == 0.05


def _d7_rows(fvu_of):
    from dlbench.experiments.base import RunContext
    from dlbench.results import Recorder

    rec = Recorder("depth")
    ctx = RunContext(seed=0, seeds=6, quick=True, record=rec)
    fvu = {(d, a, 400): np.array([[fvu_of(d, a)] * 2 + [fvu_of(d, a) * f for f in np.linspace(0.9, 1.1, 6)]])
           for d in (2, 4, 16) for a in ("plain", "residual")}
    skips._d7(ctx, [{"steps": 400}], fvu, [0.01])
    rows = rec.table().to_pandas()
    return rows[(rows["kind"] == "grid") & (rows["claim"] == "D7")].set_index("role")


def test_d7_is_not_run_where_a_reference_depth_did_not_learn():
    # both nets near the mean predictor at every depth: "not worse" would hold for nothing learned
    grid = _d7_rows(lambda d, a: 0.95)
    assert (grid["verdict"] == "not run").all()
    assert "did not learn the teacher" in grid.loc["claim", "evidence"]


def test_d7_needs_the_plain_net_above_the_residual_one_at_the_deepest_depth():
    # the plain net degrades with depth and the residual one does not: all three parts hold
    grid = _d7_rows(lambda d, a: 0.05 if a == "residual" or d < 16 else 0.5)
    assert grid.loc["claim", "verdict"] == "supported"
    assert grid.loc["claim", "parts"] == "supported,supported,supported"
    assert "plain / residual at depth 16" in grid.loc["claim", "evidence"]
    # at the control's deepest depth (4) the two nets are alike: the contrast does not hold there
    assert grid.loc["control", "parts"].split(",")[2] != "supported"


def test_d8_point_is_not_run_where_the_plain_net_never_learned(monkeypatch):
    from dlbench.experiments.base import RunContext
    from dlbench.results import Recorder
    from dlbench.runner import make_options

    monkeypatch.setattr(skips, "D8_LEARNED", 1e-6)          # no net reaches it: "did not learn"
    monkeypatch.setattr(skips, "DEPTHS", (2, 4, 16))
    monkeypatch.setattr(skips, "N_TRAIN", 128)
    rec = Recorder("depth")
    skips.claim_d7_d8(make_options(depth, quick=True), RunContext(seed=0, seeds=2, quick=True, record=rec))
    g = rec.table().to_pandas()
    d8 = g[(g["kind"] == "grid") & (g["claim"] == "D8")]
    assert list(d8["verdict"]) == ["not run"]
    assert "the plain net did not learn" in d8["evidence"].iloc[0] and "nothing to lose" in d8["evidence"].iloc[0]


# ----------------------------------------------------------------------------- claim helpers

def test_beats_reads_the_practical_band():
    up = dc._beats(np.full(6, 0.5) + np.linspace(-0.01, 0.01, 6), seed=0, label="x")
    assert up.verdict == "supported"
    small = dc._beats(np.full(6, 0.05) + np.linspace(-0.01, 0.01, 6), seed=0, label="x")
    assert small.verdict == "inconclusive"
    slightly_worse = dc._beats(np.full(6, -0.02) + np.linspace(-0.005, 0.005, 6), seed=0, label="x")
    assert slightly_worse.verdict == "inconclusive"                  # within the 10 % band
    worse = dc._beats(np.full(6, -0.2) + np.linspace(-0.01, 0.01, 6), seed=0, label="x")
    assert worse.verdict == "refuted"


def test_d2_slope_and_censoring():
    need = np.array([[2.0] * 6, [4.0] * 6, [8.0] * 6])
    f = dc._d2_finding(need, 0, 0.05, "claim")
    assert f.effect == pytest.approx(1.0) and f.verdict == "supported"
    need[2, 0] = np.nan                                             # one seed censored at k = 3: no slope
    f = dc._d2_finding(need, 0, 0.05, "claim")
    assert f.n == 5 and f.verdict == "inconclusive" and "censored" in f.evidence
    flat = dc._d2_finding(np.full((3, 6), 4.0), 0, 0.05, "control")
    assert flat.effect == 0 and flat.verdict != "supported"


def test_d2_ladder_starts_at_one_unit_for_every_k():
    for k in (1, 2, 3):
        widths = [w for rung in dc.d2_ladder(k) for w in rung]
        assert widths[0] == 1 and widths == sorted(widths) and widths[-1] == min(16 * 2**k, dc.D2_WIDTHS[-1])


def test_d3_and_d5_nets():
    for k in (2, 3, 4):
        wide, deep = dc.d3_nets(k)
        assert wide == (dc.D3_WIDTH_FACTOR * 2**k,) and len(deep) == k
        assert m.mlp_param_count(deep, 1, 1) <= 0.55 * m.mlp_param_count(wide, 1, 1)
    for p in (2**10, 2**20):
        nets = dc.d5_nets(p)
        for widths in nets.values():
            assert abs(m.mlp_param_count(widths, dc.D5_DIM, dc.D5_DIM) - p) <= 0.05 * p
        assert len(nets["shallow"]) == 1 and len(nets["deep"]) == dc.D5_DEEP


def test_d1_premise_names_budgets_where_the_shallow_net_can_fit():
    assert dc._d1_premise(40, 5) == "" and dc._d1_premise(90, 5) == ""
    assert "enough for an exact fit" in dc._d1_premise(256, 5)
    assert "below the deep construction" in dc._d1_premise(20, 5)
    assert "enough for an exact fit" in dc._d1_premise(64, 3)


def test_catalogue_is_complete():
    for cid, spec in depth.CLAIMS.items():
        assert spec.id == cid and spec.measures and spec.control and spec.grid and spec.threshold and spec.literature
    assert set(depth.CHECKS) == {"D1.construction", "D1.teeth", "D1.shallow-bound", "D2.exact-width",
                                 "D3.hand-built", "D4.collapse", "D7.depth-2", "D8.no-deletion", "D8.zero-branch"}
    assert {c.claim for c in depth.CHECKS.values()} <= set(depth.CLAIMS)


def test_memory_estimate_grows_with_seeds():
    opts = depth.Options()
    assert 0 < depth.memory(opts, 6) < 2**30                       # the default run fits a small machine
    assert depth.memory(opts, 6) < depth.memory(opts, 60) < 2**33


# ----------------------------------------------------------------------------- through the command line

def _invoke(*args):
    return CliRunner().invoke(cli.app, list(args), env={"COLUMNS": "200", "NO_COLOR": "1"})


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    pytest.importorskip("matplotlib")
    d = tmp_path_factory.mktemp("depth")
    out, png = d / "depth.parquet", d / "depth.png"
    r = _invoke("depth", "--quick", "--out", str(out), "--plot", str(png), "-q")
    assert r.exit_code == 0, r.output
    return out, png


def test_quick_run_records_every_grid_point_control_and_check(quick_run):
    res = read_results(quick_run[0])
    rows = res.rows
    grid = rows[rows["kind"] == "grid"]
    for cid, spec in depth.CLAIMS.items():
        mine = grid[grid["claim"] == cid]
        assert len(mine[mine["role"] == "claim"]) == len(spec.points(quick=True)), cid
        control = mine[mine["role"] == "control"]
        assert len(control) and (control["verdict"] != "supported").all(), cid
    checks = rows[rows["kind"] == "check"].set_index("metric")
    assert set(checks.index) == set(depth.CHECKS) and (checks["verdict"] == "pass").all()
    assert set(depth.SECTIONS) <= set(rows["section"])


def test_quick_verdicts_are_those_the_science_gives(quick_run):
    claims = read_results(quick_run[0]).claims.set_index("claim")
    assert list(claims.index) == list(depth.CLAIMS)
    # trained at the budgets where depth wins on paper, neither net learns the sawtooth
    assert claims.loc["D1", "verdict"] == "inconclusive", claims.loc["D1", "evidence"]
    assert claims.loc["D2", "verdict"] == "supported", claims.loc["D2", "evidence"]
    # the wide net finds its fit on t^2, and at t^4 nothing does better
    assert claims.loc["D3", "verdict"] == "conditional", claims.loc["D3", "evidence"]
    assert "refuted at k 2" in claims.loc["D3", "sensitivity"]
    assert claims.loc["D4", "verdict"] == "supported", claims.loc["D4", "evidence"]
    assert claims.loc["D6", "verdict"] == "supported", claims.loc["D6", "evidence"]
    # after 400 steps the residual net at depth 16 is not worse than at depth 4, but the plain net of 16 is
    # only 1.25-1.4x worse, short of 1.5x: the quick run's depths cannot resolve D7 (the default size's 32 do)
    assert claims.loc["D7", "verdict"] == "inconclusive", claims.loc["D7", "evidence"]
    assert "residual: log10 training FVU" in claims.loc["D7", "evidence"]
    # deleting a block costs the residual net a part of its fit, in small steps, and the plain net all of it
    # at once
    assert claims.loc["D8", "verdict"] == "supported", claims.loc["D8", "evidence"]
    assert claims.loc["D8", "control"] == "refuted" and "residual net" in claims.loc["D8", "evidence"]
    assert claims.loc["D5", "basis"] == "timing"
    assert set(claims["basis"][claims["basis"] == "timing"].index) == {"D5"}


def test_quick_run_rows(quick_run):
    res = read_results(quick_run[0])
    rows = res.rows
    d1 = rows[(rows["section"] == "d1.errors") & (rows["metric"] == "fvu")]
    assert set(d1["p_depth"]) == {1, 5} and np.isfinite(d1["value"]).all()
    relu = d1[d1["p_activation"] == "relu"]["value"]
    assert relu.between(0.5, 1.5).all()            # around the mean predictor's 1: the nets learn next to nothing
    bound = rows[rows["metric"] == "shallow_bound"]
    assert (bound["value"] > 0).all()
    probes = rows[(rows["section"] == "d6.probes") & (rows["kind"] == "curve")]
    assert set(probes["p_target"]) == {"y", "z1"} and probes["value"].between(0, 1).all()
    timing = rows[rows["kind"] == "timing"]
    assert set(timing["p_net"]) == {"shallow", "deep", "shallow copy"} and (timing["value"] > 0).all()


def test_quick_run_d7_d8_rows(quick_run):
    rows = read_results(quick_run[0]).rows
    d7 = rows[(rows["section"] == "d7.loss") & (rows["metric"] == "train_fvu")]
    assert set(d7["p_net"]) == {"plain", "residual"} and set(d7["p_depth"]) == set(skips.QUICK_DEPTHS)
    assert np.isfinite(d7["value"]).all() and (d7["value"] > 0).all()
    damage = rows[(rows["section"] == "d8.deletion") & (rows["metric"] == "damage")]
    assert set(damage["sample"]) == set(range(skips.blocks_of(16) + 1))
    assert (damage[damage["sample"] == 0]["value"] == 0).all() and (damage["value"] <= 1).all()
    plain = damage[(damage["p_net"] == "plain") & (damage["sample"] == 1)]["value"]
    residual = damage[(damage["p_net"] == "residual") & (damage["sample"] == 1)]["value"]
    assert plain.median() > residual.median()


def test_show_renders_the_quick_run(quick_run):
    for fmt in ("table", "markdown"):
        r = _invoke("show", str(quick_run[0]), "--format", fmt)
        assert r.exit_code == 0, r.output
        assert "D3" in r.output and "D6" in r.output


def test_plot_is_a_png(quick_run):
    assert quick_run[1].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("args, fragment", [
    (["--k", "1"], "--k"),
    (["--k", "11"], "--k"),
    (["--lrs", "0,1"], "--lrs"),
    (["--lrs", "0.1,50"], "above 10"),
    (["--lrs", "fast"], "--lrs"),
    (["--optimizer", "lbfgs"], "lbfgs"),
    (["--target-error", "0"], "--target-error"),
    (["--target-error", "1"], "--target-error"),
    (["--batch-size", "0"], "--batch-size"),
    (["--batch-size", "99999999999999999999"], "--batch-size"),
    (["--seeds", "100000000"], "GiB"),
])
def test_bad_options_are_one_line_errors(args, fragment, tmp_path):
    r = _invoke("depth", "--quick", "--out", str(tmp_path / "x.parquet"), *args)
    assert r.exit_code == 2, r.output
    lines = [line for line in r.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("dlbench: error:"), r.output
    assert fragment in lines[0]
    assert not (tmp_path / "x.parquet").exists()


def test_the_library_refuses_what_the_command_line_refuses():
    from dlbench.errors import DlbenchError
    from dlbench.runner import run

    with pytest.raises(DlbenchError, match="--k 1: must be at least 2"):
        run("depth", quick=True, k=1)

