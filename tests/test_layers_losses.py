"""Kernel numerics of the dense layer and the losses: values, and gradients against finite differences."""

import numpy as np
import pytest

from dlbench.errors import UnknownName
from dlbench.nn.layers import dense_backward, dense_forward
from dlbench.nn.losses import LOSSES, bce, get_loss, mse, softmax_ce


def numeric_grads(f, arrays, eps=1e-6):
    """Central differences of the scalar f() w.r.t. every element of every array (perturbed in place)."""
    out = []
    for a in arrays:
        g = np.zeros_like(a)
        for i in np.ndindex(a.shape):
            keep = a[i]
            a[i] = keep + eps
            up = f()
            a[i] = keep - eps
            down = f()
            a[i] = keep
            g[i] = (up - down) / (2 * eps)
        out.append(g)
    return out


def direction_check(f, arrays, grads, rng, eps=1e-5):
    """(finite difference of f along a random direction, the same from the analytic grads)."""
    dirs = [rng.standard_normal(a.shape) for a in arrays]
    keep = [a.copy() for a in arrays]
    for a, k, d in zip(arrays, keep, dirs):
        a[...] = k + eps * d
    up = f()
    for a, k, d in zip(arrays, keep, dirs):
        a[...] = k - eps * d
    down = f()
    for a, k in zip(arrays, keep):
        a[...] = k
    return (up - down) / (2 * eps), sum(float(np.sum(g * d)) for g, d in zip(grads, dirs))


DENSE_CASES = {
    "replica x": ((2, 3, 4), (2, 4, 5), (2, 1, 5)),
    "shared x": ((3, 4), (2, 4, 5), (2, 1, 5)),
    "no replica": ((3, 4), (4, 5), (5,)),
    "W shared by replica x": ((2, 3, 4), (4, 5), (5,)),
}


def test_dense_forward_is_x_at_W_plus_b_per_replica():
    rng = np.random.default_rng(0)
    x, W, b = rng.standard_normal((2, 3, 4)), rng.standard_normal((2, 4, 5)), rng.standard_normal((2, 1, 5))
    y = dense_forward(x, W, b)
    for s in range(2):
        np.testing.assert_allclose(y[s], x[s] @ W[s] + b[s], rtol=1e-12)
    np.testing.assert_allclose(dense_forward(x[0], W), np.stack([x[0] @ W[0], x[0] @ W[1]]), rtol=1e-12)
    buf = np.empty((2, 3, 5))
    assert dense_forward(x, W, b, out=buf) is buf


@pytest.mark.parametrize("case", DENSE_CASES)
def test_dense_backward_matches_finite_differences(case):
    xs, Ws, bs = DENSE_CASES[case]
    rng = np.random.default_rng(1)
    x, W, b = rng.standard_normal(xs), rng.standard_normal(Ws), rng.standard_normal(bs)
    R = rng.standard_normal(dense_forward(x, W, b).shape)
    f = lambda: float(np.sum(dense_forward(x, W, b) * R))  # noqa: E731
    dx, dW, db = dense_backward(x, W, R)
    assert dW.shape == W.shape and db.shape == b.shape
    nx, nW, nb = numeric_grads(f, [x, W, b])
    # a shared x gets one gradient per replica; the total is their sum
    dx_total = dx.sum(axis=0) if dx.ndim > x.ndim else dx
    for got, want in [(dx_total, nx), (dW, nW), (db, nb)]:
        np.testing.assert_allclose(got, want, rtol=1e-7, atol=1e-8)


def test_dense_backward_random_direction_and_buffers():
    rng = np.random.default_rng(2)
    x, W, b = rng.standard_normal((4, 64, 32)), rng.standard_normal((4, 32, 16)), rng.standard_normal((4, 1, 16))
    R = rng.standard_normal((4, 64, 16))
    bufs = dict(dx_out=np.empty_like(x), dW_out=np.empty_like(W), db_out=np.empty_like(b))
    dx, dW, db = dense_backward(x, W, R, **bufs)
    assert dx is bufs["dx_out"] and dW is bufs["dW_out"] and db is bufs["db_out"]
    fd, an = direction_check(lambda: float(np.sum(dense_forward(x, W, b) * R)), [x, W, b], [dx, dW, db], rng)
    assert fd == pytest.approx(an, rel=1e-7)
    assert dense_backward(x, W, R, need_dx=False)[0] is None


def _targets(name, rng, shape):
    if name == "softmax_ce":
        return rng.integers(0, shape[-1], shape[:-1])
    if name == "bce":
        return rng.uniform(0, 1, shape)
    return rng.standard_normal(shape)


@pytest.mark.parametrize("name", list(LOSSES))
def test_loss_gradient_matches_finite_differences(name):
    rng = np.random.default_rng(3)
    out = 2 * rng.standard_normal((2, 3, 4))
    y = _targets(name, rng, out.shape)
    loss_fn = get_loss(name)
    loss, dout = loss_fn(out, y)
    assert loss.shape == (2,) and dout.shape == out.shape
    (num,) = numeric_grads(lambda: float(np.sum(loss_fn(out, y)[0])), [out])
    np.testing.assert_allclose(dout, num, rtol=1e-7, atol=1e-9)


@pytest.mark.parametrize("name", list(LOSSES))
def test_loss_gradient_random_direction(name):
    rng = np.random.default_rng(4)
    out = 3 * rng.standard_normal((3, 128, 10))
    y = _targets(name, rng, out.shape)
    loss_fn = get_loss(name)
    _, dout = loss_fn(out, y)
    fd, an = direction_check(lambda: float(np.sum(loss_fn(out, y)[0])), [out], [dout], rng)
    assert fd == pytest.approx(an, rel=1e-7)


def test_loss_values_match_torch_formulas():
    # hand-computed from torch's documented formulas (reduction="mean")
    loss, _ = mse(np.array([[1.0, 2.0], [3.0, 4.0]]), np.zeros((2, 2)))
    assert loss == pytest.approx(7.5)
    # bce_with_logits: log(2), log(1 + e^2), log(1 + e^3)
    loss, _ = bce(np.array([[0.0], [2.0], [-3.0]]), np.array([[1.0], [0.0], [1.0]]))
    assert loss == pytest.approx((np.log(2) + np.log1p(np.exp(2)) + np.log1p(np.exp(3))) / 3, rel=1e-12)
    assert loss == pytest.approx(1.956220848, rel=1e-9)
    # cross_entropy: -log softmax([1,2,3])[2] = 0.4076059644, -log(1/3)
    loss, dout = softmax_ce(np.array([[1.0, 2.0, 3.0], [1.0, 1.0, 1.0]]), np.array([2, 0]))
    assert loss == pytest.approx((0.4076059644443804 + np.log(3)) / 2, rel=1e-12)
    np.testing.assert_allclose(dout[1], np.array([1 / 3 - 1, 1 / 3, 1 / 3]) / 2)


def test_losses_are_finite_for_huge_logits():
    z = np.array([[[1e4, 0.0], [-1e4, 0.0]]], dtype=np.float32)
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        loss, dout = softmax_ce(z, np.array([1, 0]))
        assert loss[0] == pytest.approx(1e4) and np.isfinite(dout).all()
        loss, dout = bce(z[..., :1], np.array([[0.0], [1.0]], dtype=np.float32))
        assert loss[0] == pytest.approx(1e4) and np.isfinite(dout).all()
    assert loss.dtype == np.float32 and dout.dtype == np.float32


@pytest.mark.parametrize("name", list(LOSSES))
def test_shared_targets_equal_per_replica_targets(name):
    rng = np.random.default_rng(5)
    out = rng.standard_normal((3, 6, 4))
    y = _targets(name, rng, out.shape[1:])
    shared = get_loss(name)(out, y)
    tiled = get_loss(name)(out, np.broadcast_to(y, (3, *y.shape)).copy())
    for a, b in zip(shared, tiled):
        np.testing.assert_array_equal(a, b)
    for s in range(3):  # one replica's loss is that of its own outputs alone
        np.testing.assert_array_equal(get_loss(name)(out[s], y)[0], shared[0][s])


def test_unknown_loss_lists_the_valid_names():
    with pytest.raises(UnknownName, match="bce, mse, softmax_ce"):
        get_loss("hinge")
