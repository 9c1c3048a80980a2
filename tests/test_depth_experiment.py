"""dlbench depth: the exact tent-map net, the breakpoint counter, linear collapse, budget widths, the CLI."""

import numpy as np
import pytest

from dlbench.experiments.relu_exact import (
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
