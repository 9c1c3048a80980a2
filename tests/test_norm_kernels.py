"""Kernel numerics of dlbench.nn.norm: values, gradients, running statistics, invariances, replica axes."""

from __future__ import annotations

import numpy as np
import pytest

from dlbench.errors import DlbenchError, UnknownName
from dlbench.nn import norm as norm_module
from dlbench.nn.norm import NORMS, get_norm

# (name, hyper, F): every layout the kernels distinguish — per feature, channels with L > 1, groups.
CASES = [
    ("batch", {}, 6),
    ("batch", {"channels": 3}, 6),
    ("layer", {}, 6),
    ("instance", {"channels": 2}, 6),
    ("group", {"num_groups": 3}, 6),
    ("group", {"num_groups": 2, "channels": 4}, 8),
]
IDS = [f"{n}-{'-'.join(f'{k}{v}' for k, v in h.items()) or 'default'}" for n, h, _ in CASES]


def reference(name, x, weight, bias, eps=1e-5, channels=None, num_groups=None):
    """Direct formula (torch.nn docs): standardise over the statistics group, biased variance, affine."""
    n, f = x.shape[-2:]
    c = channels or f
    l = f // c
    lead = np.broadcast_shapes(x.shape[:-2], weight.shape[:-2])
    if name == "layer":
        mu = x.mean(axis=-1, keepdims=True)
        var = ((x - mu) ** 2).mean(axis=-1, keepdims=True)
        return (x - mu) / np.sqrt(var + eps) * weight + bias
    if name == "group":
        xg = x.reshape(x.shape[:-2] + (n, num_groups, -1))
        mu = xg.mean(axis=-1, keepdims=True)
        var = ((xg - mu) ** 2).mean(axis=-1, keepdims=True)
        xh = ((xg - mu) / np.sqrt(var + eps)).reshape(x.shape[:-2] + (n, c, l))
    else:
        xv = x.reshape(x.shape[:-2] + (n, c, l))
        axes = (-3, -1) if name == "batch" else (-1,)
        mu = xv.mean(axis=axes, keepdims=True)
        var = ((xv - mu) ** 2).mean(axis=axes, keepdims=True)
        xh = (xv - mu) / np.sqrt(var + eps)
    y = xh * weight[..., None] + bias[..., None]
    return y.reshape(lead + (n, f))


def random_params(norm, f, rng, prefix=(), dtype=np.float64):
    params, state = norm.init(f, prefix=prefix, dtype=dtype)
    for key in params:
        params[key][...] = rng.standard_normal(params[key].shape)
    return params, state


def loss_of(norm, params, state, g, train=True):
    """L(x, params) = sum(g * y), evaluated on copies so the state is not advanced."""

    def loss(x, **override):
        p = {**params, **override}
        st = {k: v.copy() for k, v in state.items()}
        return float(np.sum(norm.forward(x, p, st, train)[0] * g))

    return loss


# ---------------------------------------------------------------------------------------------- values

@pytest.mark.parametrize(("name", "hyper", "f"), CASES, ids=IDS)
def test_forward_matches_direct_formula(name, hyper, f):
    rng = np.random.default_rng(0)
    norm = get_norm(name, **hyper)
    x = rng.standard_normal((3, 37, f)) * 2.5 + 4.0
    params, state = random_params(norm, f, rng, prefix=(3,))
    y, _ = norm.forward(x, params, state)
    want = reference(name, x, params["weight"], params["bias"], channels=hyper.get("channels"),
                     num_groups=hyper.get("num_groups"))
    np.testing.assert_allclose(y, want, rtol=0, atol=1e-12)


def test_none_is_identity():
    norm = NORMS["none"]
    assert norm.init(5) == ({}, {})
    x = np.arange(6.0).reshape(2, 3)
    y, cache = norm.forward(x, {}, {})
    assert y is x
    dx, grads = norm.backward(x + 1, cache)
    np.testing.assert_array_equal(dx, x + 1)
    assert grads == {}


# ---------------------------------------------------------------------------------------------- gradients

@pytest.mark.parametrize(("name", "hyper", "f", "train"),
                         [case + (True,) for case in CASES] + [case + (False,) for case in CASES[:2]],
                         ids=[i + "-train" for i in IDS] + [i + "-eval" for i in IDS[:2]])
def test_backward_all_elements_vs_central_differences(name, hyper, f, train):
    rng = np.random.default_rng(1)
    norm = get_norm(name, **hyper)
    x = rng.standard_normal((5, f)) * 1.5 + 0.5
    params, state = random_params(norm, f, rng)
    if name == "batch":
        state["running_mean"][...] = rng.standard_normal(state["running_mean"].shape)
        state["running_var"][...] = rng.uniform(0.5, 2.0, state["running_var"].shape)
    g = rng.standard_normal((5, f))
    _, cache = norm.forward(x, params, {k: v.copy() for k, v in state.items()}, train)
    dx, grads = norm.backward(g, cache)
    loss = loss_of(norm, params, state, g, train)
    h = 1e-6
    for arr, analytic, key in [(x, dx, None), (params["weight"], grads["weight"], "weight"),
                               (params["bias"], grads["bias"], "bias")]:
        assert analytic.shape == arr.shape
        numeric = np.empty_like(arr)
        for i in np.ndindex(arr.shape):
            plus, minus = arr.copy(), arr.copy()
            plus[i] += h
            minus[i] -= h
            if key is None:
                numeric[i] = (loss(plus) - loss(minus)) / (2 * h)
            else:
                numeric[i] = (loss(x, **{key: plus}) - loss(x, **{key: minus})) / (2 * h)
        np.testing.assert_allclose(analytic, numeric, rtol=1e-6, atol=1e-7, err_msg=key or "x")


@pytest.mark.parametrize(("name", "hyper"), [
    ("batch", {}), ("batch", {"channels": 16}), ("layer", {}), ("instance", {"channels": 16}),
    ("group", {"num_groups": 8}), ("group", {"num_groups": 4, "channels": 32})])
def test_backward_random_direction_realistic_shape(name, hyper):
    rng = np.random.default_rng(2)
    width = 128
    norm = get_norm(name, **hyper)
    x = rng.standard_normal((64, width)) * 2.0 + 1.0
    params, state = random_params(norm, width, rng)
    g = rng.standard_normal((64, width))
    _, cache = norm.forward(x, params, {k: v.copy() for k, v in state.items()})
    dx, grads = norm.backward(g, cache)
    loss = loss_of(norm, params, state, g)
    h = 1e-5
    d = rng.standard_normal(x.shape)
    numeric = (loss(x + h * d) - loss(x - h * d)) / (2 * h)
    assert np.sum(dx * d) == pytest.approx(numeric, rel=1e-7, abs=1e-7)
    for key in ("weight", "bias"):
        d = rng.standard_normal(params[key].shape)
        numeric = (loss(x, **{key: params[key] + h * d}) - loss(x, **{key: params[key] - h * d})) / (2 * h)
        assert np.sum(grads[key] * d) == pytest.approx(numeric, rel=1e-7, abs=1e-7)


# ---------------------------------------------------------------------------------------------- batch norm

@pytest.mark.parametrize("momentum", [0.1, 0.3, None])
def test_running_statistics_follow_torch_recurrence(momentum):
    rng = np.random.default_rng(3)
    norm = get_norm("batch", momentum=momentum)
    params, state = norm.init(4, dtype=np.float64)
    rm, rv = np.zeros(4), np.ones(4)
    for k in range(1, 6):
        x = rng.standard_normal((7, 4)) * k + k
        norm.forward(x, params, state, train=True)
        factor = 1.0 / k if momentum is None else momentum
        rm = (1 - factor) * rm + factor * x.mean(axis=0)
        rv = (1 - factor) * rv + factor * x.var(axis=0, ddof=1)     # unbiased, as torch
        np.testing.assert_allclose(state["running_mean"][0], rm, rtol=1e-13)
        np.testing.assert_allclose(state["running_var"][0], rv, rtol=1e-13)
        assert int(state["num_batches_tracked"]) == k
    if momentum is None:                                            # cumulative average of the batch statistics
        assert state["running_mean"].shape == (1, 4)


def test_running_statistics_per_channel_use_n_times_l_values():
    rng = np.random.default_rng(4)
    norm = get_norm("batch", channels=2)
    params, state = norm.init(6, dtype=np.float64)
    assert state["running_mean"].shape == (1, 2)
    x = rng.standard_normal((5, 6))
    norm.forward(x, params, state)
    per_channel = x.reshape(5, 2, 3).transpose(1, 0, 2).reshape(2, 15)
    np.testing.assert_allclose(state["running_mean"][0], 0.1 * per_channel.mean(axis=1), rtol=1e-13)
    np.testing.assert_allclose(state["running_var"][0], 0.9 + 0.1 * per_channel.var(axis=1, ddof=1), rtol=1e-13)


def test_eval_mode_uses_running_statistics_and_leaves_state_alone():
    rng = np.random.default_rng(5)
    norm = get_norm("batch")
    params, state = random_params(norm, 3, rng)
    for _ in range(4):
        norm.forward(rng.standard_normal((8, 3)) * 2 + 1, params, state, train=True)
    before = {k: v.copy() for k, v in state.items()}
    x = rng.standard_normal((6, 3))
    y, _ = norm.forward(x, params, state, train=False)
    want = (x - state["running_mean"]) / np.sqrt(state["running_var"] + 1e-5) * params["weight"] + params["bias"]
    np.testing.assert_allclose(y, want, rtol=0, atol=1e-12)
    for k in before:
        np.testing.assert_array_equal(state[k], before[k])
    # Each sample alone in eval mode: the same output row for row.
    for i in range(6):
        np.testing.assert_allclose(norm.forward(x[i:i + 1], params, state, train=False)[0][0], y[i], atol=1e-15)


def test_batch_of_two_normalises_to_plus_minus_one():
    # x_hat = +-d / sqrt(d^2 + eps), d = half the difference: |x_hat| >= 1 - eps / (2 d^2) = 1 - 2e-5 for d >= 0.5.
    rng = np.random.default_rng(6)
    x = rng.standard_normal((2, 50))
    x[1] = x[0] + rng.choice([-1.0, 1.0], 50) * rng.uniform(1.0, 3.0, 50)
    norm = get_norm("batch")
    params, state = norm.init(50, dtype=np.float64)
    y, _ = norm.forward(x, params, state)
    np.testing.assert_allclose(y[0], -y[1], rtol=0, atol=1e-15)
    np.testing.assert_array_equal(np.sign(y[0]), np.sign(x[0] - x[1]))
    np.testing.assert_allclose(np.abs(y), 1.0, atol=2e-5)


@pytest.mark.parametrize("a", [0.01, 0.5, 3.0, 1e3])
def test_batch_norm_is_invariant_to_positive_scale(a):
    rng = np.random.default_rng(7)
    x = rng.standard_normal((32, 10)) * rng.uniform(0.5, 2, 10) + rng.standard_normal(10)
    exact = get_norm("batch", eps=1e-300)       # eps -> 0: invariance to rounding
    params, state = random_params(exact, 10, rng)
    np.testing.assert_allclose(exact.forward(a * x, params, dict(state))[0],
                               exact.forward(x, params, dict(state))[0], rtol=0, atol=1e-12)
    # With torch's eps the error is bounded by |x_hat| eps / (2 sigma^2 min(a, 1)^2) (first order).
    norm = get_norm("batch")
    ya, yx = (norm.forward(z, params, norm.init(10, dtype=np.float64)[1])[0] for z in (a * x, x))
    sigma2 = x.var(axis=0).min()
    bound = 4.0 * np.abs(params["weight"]).max() * 1e-5 / (2 * sigma2 * min(a, 1.0) ** 2)
    assert np.abs(ya - yx).max() <= bound


def test_float32_batch_norm_keeps_precision_under_a_large_offset():
    rng = np.random.default_rng(8)
    x64 = 100.0 + rng.standard_normal((4096, 64))
    x = x64.astype(np.float32)
    g = rng.standard_normal(x.shape).astype(np.float32)
    norm = get_norm("batch")
    params, state = norm.init(64, dtype=np.float32)
    y, cache = norm.forward(x, params, state)
    dx, grads = norm.backward(g, cache)
    p64, s64 = norm.init(64, dtype=np.float64)
    y64, c64 = norm.forward(x.astype(np.float64), p64, s64)
    dx64, grads64 = norm.backward(g.astype(np.float64), c64)
    # Inputs near 100 carry ulp(100) / 2 = 3.8e-6 of rounding; a naive float32 mean over 4096 rows adds ~1e-4.
    assert np.abs(y - y64).max() < 2e-5
    assert np.abs(dx - dx64).max() < 2e-5 * np.abs(dx64).max()
    np.testing.assert_allclose(grads["weight"], grads64["weight"], rtol=0, atol=1e-3)
    np.testing.assert_allclose(state["running_mean"], s64["running_mean"], rtol=1e-6)
    np.testing.assert_allclose(state["running_var"], s64["running_var"], rtol=1e-5)


def test_batch_norm_output_depends_on_the_rest_of_the_batch():
    rng = np.random.default_rng(9)
    norm = get_norm("batch")
    params, state = random_params(norm, 4, rng)
    x = rng.standard_normal((6, 4))
    x2 = x.copy()
    x2[1:] += 1.0
    assert not np.allclose(norm.forward(x, params, dict(state))[0][0], norm.forward(x2, params, dict(state))[0][0])


# ---------------------------------------------------------------------------------------------- per-sample norms

@pytest.mark.parametrize(("name", "hyper"), [("layer", {}), ("instance", {"channels": 4}), ("group", {"num_groups": 4}),
                                             ("group", {"num_groups": 2, "channels": 4})])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sample_output_does_not_depend_on_the_rest_of_the_batch(name, hyper, dtype):
    rng = np.random.default_rng(10)
    norm = get_norm(name, **hyper)
    params, state = random_params(norm, 16, rng, dtype=dtype)
    x = rng.standard_normal((9, 16)).astype(dtype)
    g = rng.standard_normal((9, 16)).astype(dtype)
    y, cache = norm.forward(x, params, state)
    dx = norm.backward(g, cache)[0]
    x2, g2 = x.copy(), g.copy()
    x2[np.arange(9) != 4] = rng.standard_normal((8, 16)) * 50 + 7
    g2[np.arange(9) != 4] = rng.standard_normal((8, 16))
    y2, cache2 = norm.forward(x2, params, state)
    dx2 = norm.backward(g2, cache2)[0]
    np.testing.assert_array_equal(y2[4], y[4])
    np.testing.assert_array_equal(dx2[4], dx[4])


def test_instance_norm_on_plain_features_is_an_error():
    with pytest.raises(DlbenchError, match="channels"):
        NORMS["instance"].init(8)
    with pytest.raises(DlbenchError, match="channels"):
        get_norm("instance", channels=8).forward(np.ones((2, 8)), {"weight": np.ones((1, 8)),
                                                                   "bias": np.zeros((1, 8))}, {})


# ---------------------------------------------------------------------------------------------- replica axes

@pytest.mark.parametrize(("name", "hyper", "f"), CASES, ids=IDS)
def test_replica_axis_equals_separate_calls(name, hyper, f):
    rng = np.random.default_rng(11)
    norm = get_norm(name, **hyper)
    s = 3
    params, state = random_params(norm, f, rng, prefix=(s,))
    x = rng.standard_normal((s, 10, f)) + 1.0
    g = rng.standard_normal((s, 10, f))
    y, cache = norm.forward(x, params, state)
    dx, grads = norm.backward(g, cache)
    for r in range(s):
        p1, _ = norm.init(f, dtype=np.float64)
        for key in p1:
            p1[key][...] = params[key][r]
        _, st1 = norm.init(f, dtype=np.float64)
        y1, c1 = norm.forward(x[r], p1, st1)
        dx1, g1 = norm.backward(g[r], c1)
        np.testing.assert_allclose(y[r], y1, rtol=0, atol=1e-13)
        np.testing.assert_allclose(dx[r], dx1, rtol=0, atol=1e-13)
        for key in g1:
            np.testing.assert_allclose(grads[key][r], g1[key], rtol=0, atol=1e-12)
        for key in st1:
            np.testing.assert_allclose(state[key][r], st1[key], rtol=0, atol=1e-14)


def test_shared_input_broadcasts_to_every_replica():
    rng = np.random.default_rng(12)
    norm = get_norm("batch")
    params, state = random_params(norm, 5, rng, prefix=(2,))
    x = rng.standard_normal((8, 5))
    y, cache = norm.forward(x, params, state)
    assert y.shape == (2, 8, 5)
    dx, grads = norm.backward(np.ones((2, 8, 5)), cache)
    assert dx.shape == (2, 8, 5) and grads["weight"].shape == (2, 1, 5)
    np.testing.assert_allclose(state["running_mean"][0], state["running_mean"][1])


# ---------------------------------------------------------------------------------------------- blocking, buffers

@pytest.mark.parametrize(("name", "hyper", "f"), CASES, ids=IDS)
@pytest.mark.parametrize("train", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("layout", ["blocks", "wide", "both"])
def test_row_blocks_and_widened_rows_match_the_plain_passes(monkeypatch, name, hyper, f, train, layout):
    rng = np.random.default_rng(13)
    norm = get_norm(name, **hyper)
    params, state = random_params(norm, f, rng, prefix=(2,))
    x = rng.standard_normal((2, 204, f)) + 3.0                      # 204 rows: 6 blocks of 32 and a tail of 12
    g = rng.standard_normal((2, 204, f))
    state2 = {k: v.copy() for k, v in state.items()}
    monkeypatch.setattr(norm_module, "WIDE_ELEMS", 10**9)           # rows never widened
    y, cache = norm.forward(x, params, state, train)
    dx, grads = norm.backward(g, cache)
    monkeypatch.setattr(norm_module, "WIDE_ELEMS", 64 if layout != "blocks" else 10**9)
    if layout != "wide":
        monkeypatch.setattr(norm_module, "BLOCK_ELEMS", 2 * f * 10)  # blocks of 32 rows
    yb, cb = norm.forward(x, params, state2, train)
    dxb, gb = norm.backward(g, cb)
    np.testing.assert_allclose(yb, y, rtol=0, atol=1e-12)
    np.testing.assert_allclose(dxb, dx, rtol=0, atol=1e-12)
    for key in grads:
        np.testing.assert_allclose(gb[key], grads[key], rtol=1e-12, atol=1e-12)
    for key in state:
        np.testing.assert_allclose(state2[key], state[key], rtol=1e-14)


def test_out_buffers_and_reused_cache_give_the_same_results():
    rng = np.random.default_rng(14)
    for name, hyper, f in CASES:
        norm = get_norm(name, **hyper)
        params, state = random_params(norm, f, rng, dtype=np.float32)
        x = rng.standard_normal((12, f)).astype(np.float32)
        g = rng.standard_normal((12, f)).astype(np.float32)
        y, cache = norm.forward(x, params, {k: v.copy() for k, v in state.items()})
        dx, grads = norm.backward(g, cache)
        y_buf, dx_buf = np.empty_like(y), np.empty_like(dx)
        old = norm.forward(x * 3, params, {k: v.copy() for k, v in state.items()})[1]
        norm.backward(g, old)
        y2, c2 = norm.forward(x, params, {k: v.copy() for k, v in state.items()}, out=y_buf, reuse=old)
        dx2, grads2 = norm.backward(g, c2, out=dx_buf)
        assert y2 is y_buf and dx2 is dx_buf and c2.data is old.data
        np.testing.assert_array_equal(y2, y)
        np.testing.assert_array_equal(dx2, dx)
        for key in grads:
            np.testing.assert_array_equal(grads2[key], grads[key])


# ---------------------------------------------------------------------------------------------- registry contract

def test_registry_entries_and_defaults():
    assert list(NORMS) == ["none", "batch", "layer", "instance", "group"]
    assert NORMS["batch"].hyper == {"eps": 1e-5, "momentum": 0.1, "channels": None}
    assert NORMS["layer"].hyper["eps"] == 1e-5
    with pytest.raises(UnknownName, match="valid: batch, group, instance, layer, none"):
        NORMS["weight"]
    with pytest.raises(DlbenchError, match="no hyperparameter momentum"):
        get_norm("layer", momentum=0.2)
    assert get_norm("batch", momentum=None).hyper["momentum"] is None


@pytest.mark.parametrize(("name", "hyper", "f"), CASES, ids=IDS)
def test_init_shapes_dtypes_and_torch_defaults(name, hyper, f):
    norm = get_norm(name, **hyper)
    params, state = norm.init(f, prefix=(4,), dtype=np.float32)
    width = f if name == "layer" else hyper.get("channels", f)
    assert params["weight"].shape == params["bias"].shape == (4, 1, width)
    assert params["weight"].dtype == np.float32
    assert np.all(params["weight"] == 1) and np.all(params["bias"] == 0)
    if name == "batch":
        assert state["running_mean"].shape == state["running_var"].shape == (4, 1, width)
        assert np.all(state["running_mean"] == 0) and np.all(state["running_var"] == 1)
        assert state["num_batches_tracked"].shape == (4,) and state["num_batches_tracked"].dtype == np.int64
    else:
        assert state == {}


@pytest.mark.parametrize(("name", "hyper", "f", "match"), [
    ("batch", {"channels": 4}, 6, "does not divide"),
    ("group", {"num_groups": 4}, 6, "does not divide"),
    ("group", {}, 16, "num_groups=32"),
    ("batch", {"eps": 0}, 4, "eps"),
    ("batch", {"momentum": 1.5}, 4, "momentum"),
    ("group", {"num_groups": 0}, 4, "positive integer"),
])
def test_user_errors_are_one_line(name, hyper, f, match):
    with pytest.raises(DlbenchError, match=match):
        get_norm(name, **hyper).init(f)


def test_replica_axes_the_state_lacks_are_an_error():
    norm = get_norm("batch")
    params, state = norm.init(4)
    with pytest.raises(DlbenchError, match="do not fit running_mean"):
        norm.forward(np.ones((3, 5, 4), np.float32), params, state)


def test_batch_norm_training_needs_two_values_per_channel():
    norm = get_norm("batch")
    params, state = norm.init(3)
    with pytest.raises(DlbenchError, match="more than 1 value"):
        norm.forward(np.ones((1, 3), np.float32), params, state)
    norm.forward(np.ones((1, 3), np.float32), params, state, train=False)   # eval is fine


# ---------------------------------------------------------------------------------------------- torch (optional)

def _torch_module(torch, name, hyper, f):
    c = hyper.get("channels") or f
    if name == "batch":
        return torch.nn.BatchNorm1d(c, momentum=hyper.get("momentum", 0.1), dtype=torch.float64)
    if name == "layer":
        return torch.nn.LayerNorm(f, dtype=torch.float64)
    if name == "instance":
        return torch.nn.InstanceNorm1d(c, affine=True, dtype=torch.float64)
    return torch.nn.GroupNorm(hyper["num_groups"], c, dtype=torch.float64)


@pytest.mark.parametrize(("name", "hyper", "f"), CASES + [("batch", {"momentum": None}, 6)],
                         ids=IDS + ["batch-cumulative"])
def test_matches_torch(name, hyper, f):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(15)
    norm = get_norm(name, **hyper)
    params, state = random_params(norm, f, rng)
    module = _torch_module(torch, name, hyper, f)
    with torch.no_grad():
        module.weight.copy_(torch.from_numpy(params["weight"].reshape(module.weight.shape)))
        module.bias.copy_(torch.from_numpy(params["bias"].reshape(module.bias.shape)))
    c = hyper.get("channels") or f
    as_torch = (lambda t: t) if name == "layer" or c == f else (lambda t: t.reshape(t.shape[0], c, f // c))
    for _ in range(3):
        x = rng.standard_normal((9, f)) * 2 + 1
        g = rng.standard_normal((9, f))
        xt = torch.tensor(x, requires_grad=True)
        yt = module(as_torch(xt)).reshape(9, f)
        yt.backward(torch.from_numpy(g))
        y, cache = norm.forward(x, params, state)
        dx, grads = norm.backward(g, cache)
        np.testing.assert_allclose(y, yt.detach().numpy(), atol=1e-12)
        np.testing.assert_allclose(dx, xt.grad.numpy(), atol=1e-12)
        np.testing.assert_allclose(grads["weight"].ravel(), module.weight.grad.numpy().ravel(), atol=1e-12)
        np.testing.assert_allclose(grads["bias"].ravel(), module.bias.grad.numpy().ravel(), atol=1e-12)
        module.zero_grad()
    if name == "batch":
        np.testing.assert_allclose(state["running_mean"].ravel(), module.running_mean.numpy(), atol=1e-14)
        np.testing.assert_allclose(state["running_var"].ravel(), module.running_var.numpy(), atol=1e-14)
        assert int(state["num_batches_tracked"]) == int(module.num_batches_tracked)
        module.eval()
        x = rng.standard_normal((4, f))
        want = module(as_torch(torch.from_numpy(x))).reshape(4, f).detach().numpy()
        np.testing.assert_allclose(norm.forward(x, params, state, train=False)[0], want, atol=1e-12)


# ---------------------------------------------------------------------------------------------- layer norm fast path

def test_layer_norm_float32_at_a_large_offset_matches_float64():
    rng = np.random.default_rng(16)
    x = (100.0 + rng.standard_normal((64, 4096))).astype(np.float32)
    g = rng.standard_normal(x.shape).astype(np.float32)
    norm = get_norm("layer")
    params, state = random_params(norm, 4096, rng, dtype=np.float32)
    y, cache = norm.forward(x, params, state)
    dx, grads = norm.backward(g, cache)
    p64 = {k: v.astype(np.float64) for k, v in params.items()}
    y64, c64 = norm.forward(x.astype(np.float64), p64, {})
    dx64, grads64 = norm.backward(g.astype(np.float64), c64)
    # Inputs near 100 carry ulp(100) / 2 = 3.8e-6 of rounding, i.e. ~4e-6 in x_hat at unit spread.
    assert np.abs(y - y64).max() < 2e-5 * np.abs(params["weight"]).max()
    assert np.abs(dx - dx64).max() < 2e-5 * np.abs(dx64).max()
    for key in grads:
        np.testing.assert_allclose(grads[key], grads64[key], rtol=0, atol=1e-4)


@pytest.mark.parametrize(("name", "hyper", "f"), CASES, ids=IDS)
def test_kernels_leave_numpy_ufunc_settings_alone(name, hyper, f):
    rng = np.random.default_rng(17)
    norm = get_norm(name, **hyper)
    params, state = random_params(norm, f, rng, dtype=np.float32)
    before = np.getbufsize(), np.geterr()
    _, cache = norm.forward(rng.standard_normal((8, f)).astype(np.float32), params, state)
    norm.backward(np.ones((8, f), np.float32), cache)
    assert (np.getbufsize(), np.geterr()) == before


# ---------------------------------------------------------------------------------------------- kernel threads

@pytest.mark.parametrize("train", [True, False])
@pytest.mark.parametrize(("name", "hyper", "f"), CASES, ids=IDS)
def test_kernel_threads_give_the_same_bits(monkeypatch, name, hyper, f, train):
    from dlbench.nn import parallel

    monkeypatch.setattr(norm_module, "BLOCK_ELEMS", 32 * f)          # blocks of 32 rows: 7 of them, ragged
    monkeypatch.setattr(parallel, "MIN_PARALLEL_ELEMS", 64)
    rng = np.random.default_rng(18)
    norm = get_norm(name, **hyper)
    x = (3.0 + rng.standard_normal((2, 200, f))).astype(np.float32)
    g = rng.standard_normal(x.shape).astype(np.float32)
    params, state = random_params(norm, f, rng, prefix=(2,), dtype=np.float32)

    def run():
        st = {k: v.copy() for k, v in state.items()}
        y, cache = norm.forward(x, params, st, train)
        dx, grads = norm.backward(g, cache)
        return y, dx, grads, st

    one = run()
    with parallel.kernel_threads(3):
        three = run()
    for a, b in zip(one[:2], three[:2]):
        np.testing.assert_array_equal(a, b)
    for key in one[2]:
        np.testing.assert_array_equal(one[2][key], three[2][key])
    for key in one[3]:
        np.testing.assert_array_equal(one[3][key], three[3][key])
