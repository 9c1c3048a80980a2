"""The MLP: layout and init per replica, forward composition, full backward against finite differences."""

import numpy as np
import pytest

from dlbench.errors import DlbenchError
from dlbench.nn.losses import softmax_ce
from dlbench.nn.mlp import MLP, MLPSpec
from tests.test_layers_losses import direction_check, numeric_grads

# (activation, activation_hyper, norm): every kind of hidden layer the MLP assembles
CASES = [
    ("relu", {}, "none"),
    ("tanh", {}, "layer"),
    ("prelu", {}, "batch"),
    ("maxout", {"pieces": 3}, "none"),
    ("maxout", {"pieces": 2}, "batch"),
    ("relu", {}, "group"),
]


def _net(act, hyper, norm, widths=(3, 4, 4, 2), **kw):
    norm_hyper = {"num_groups": 2} if norm == "group" else {}
    return MLP(MLPSpec(widths, activation=act, activation_hyper=hyper, norm=norm, norm_hyper=norm_hyper,
                       dtype=np.float64, **kw))


@pytest.mark.parametrize("act,hyper,norm", CASES, ids=[f"{a}{h.get('pieces', '')}-{n}" for a, h, n in CASES])
def test_backward_matches_finite_differences(act, hyper, norm):
    net = _net(act, hyper, norm)
    rng = np.random.default_rng(0)
    params = net.init([11, 12])
    for p in params:  # move prelu's slope and the norm's affine params off their init values
        p += 0.1 * rng.standard_normal(p.shape)
    state = net.init_state(2)
    x = rng.standard_normal((2, 5, 3))
    R = rng.standard_normal((2, 5, 2))
    f = lambda: float(np.sum(net.forward(params, x, state)[0] * R))  # noqa: E731
    out, cache = net.forward(params, x, state)
    grads = net.backward(params, cache, R)
    for name, got, want in zip(net.param_names, grads, numeric_grads(f, params)):
        assert got.shape == want.shape, name
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-8, err_msg=name)


def test_backward_random_direction_on_a_realistic_net():
    # smooth activations: a random direction of thousands of units would cross some relu kink
    net = MLP(MLPSpec((20, 64, 64, 10), activation=("gelu", "tanh"), norm="layer", dtype=np.float64))
    rng = np.random.default_rng(1)
    params = net.init([1, 2, 3])
    x, y = rng.standard_normal((3, 50, 20)), rng.integers(0, 10, (3, 50))
    loss, grads, _ = net.value_and_grad(params, x, y, softmax_ce)
    fd, an = direction_check(lambda: float(np.sum(net.value_and_grad(params, x, y, softmax_ce)[0])),
                             params, grads, rng)
    assert fd == pytest.approx(an, rel=1e-6)


def test_layer_grads_and_cache_are_the_chain_rule_pieces():
    net = _net("relu", {}, "none", widths=(3, 5, 4, 2))
    rng = np.random.default_rng(2)
    params = net.init([3, 4])
    x, R = rng.standard_normal((6, 3)), rng.standard_normal((2, 6, 2))
    out, cache = net.forward(params, x)
    grads, layer = net.backward(params, cache, R, return_layer_grads=True)
    split = net.split(params)
    np.testing.assert_allclose(layer.post[1], R @ np.swapaxes(split[2]["W"], 1, 2))
    for k in range(2):
        np.testing.assert_array_equal(cache.post[k], np.maximum(cache.pre[k], 0))
        np.testing.assert_allclose(layer.pre[k], layer.post[k] * (cache.pre[k] > 0))
        # dL/dW_k = input_k^T @ dL/dz_k, with dL/dz_k = dL/dpre_k when there is no norm
        np.testing.assert_allclose(grads[net.param_names.index(f"layer{k}.W")],
                                   np.swapaxes(cache.inputs[k], -1, -2) @ layer.pre[k], rtol=1e-12)
    np.testing.assert_array_equal(cache.out, out)


def test_replicas_are_initialised_and_run_as_separate_nets():
    net = MLP(MLPSpec((4, 8, 8, 3), activation="prelu", norm="batch"))
    many = net.init([5, 6, 7])
    one = net.init([6])
    for a, b in zip(many, one):
        np.testing.assert_array_equal(a[1], b[0])
    assert not np.array_equal(many[0][0], many[0][1])
    x = np.random.default_rng(3).standard_normal((3, 10, 4)).astype(np.float32)
    out_many, _ = net.forward(many, x, net.init_state(3))
    out_one, _ = net.forward(one, x[1], net.init_state(1))
    np.testing.assert_array_equal(out_many[1], out_one[0])
    # a shared (N, d) input is the same as giving every replica its own copy
    out_shared, _ = net.forward(many, x[0], net.init_state(3))
    out_tiled, _ = net.forward(many, np.broadcast_to(x[0], (3, 10, 4)).copy(), net.init_state(3))
    np.testing.assert_array_equal(out_shared, out_tiled)


def test_param_layout_and_count():
    net = MLP(MLPSpec((2, 3, 1)))
    assert net.param_names == ["layer0.W", "layer0.b", "layer1.W", "layer1.b"]
    assert net.n_params == 2 * 3 + 3 + 3 * 1 + 1
    assert net.param_shapes == [(2, 3), (1, 3), (3, 1), (1, 1)]
    assert MLP(MLPSpec((2, 3, 1), bias=False)).n_params == 9
    maxout = MLP(MLPSpec((2, 3, 1), activation="maxout", activation_hyper={"pieces": 2}))
    assert maxout.param_shapes[0] == (2, 6) and maxout.n_params == 2 * 6 + 6 + 3 + 1
    assert MLP(MLPSpec((2, 3, 3, 1), activation="prelu")).n_params == 6 + 3 + 9 + 3 + 3 + 1 + 2
    bn = MLP(MLPSpec((2, 3, 1), norm="batch"))
    assert bn.param_names[2:4] == ["layer0.norm.weight", "layer0.norm.bias"] and bn.n_params == 13 + 6
    params = bn.init([0, 1])
    assert [p.shape for p in params] == [(2, *s) for s in bn.param_shapes]
    assert all(p.dtype == np.float32 for p in params)
    assert set(bn.split(params)[0]) == {"W", "b", "norm.weight", "norm.bias"}


def test_torch_default_init_bounds_and_zero_bias():
    net = MLP(MLPSpec((100, 50, 2)))
    W, b = net.init([0])[:2]
    assert np.abs(b).max() <= 1 / np.sqrt(100) and np.abs(b).max() > 0.05
    assert np.abs(W).max() <= 1 / np.sqrt(100)  # kaiming_uniform(a=sqrt(5)) bound = 1/sqrt(fan_in)
    assert not MLP(MLPSpec((100, 50, 2), bias_init="zeros")).init([0])[1].any()


def test_deep_linear_net_is_the_product_of_its_weights():
    net = MLP(MLPSpec((4, 6, 5, 3), activation="identity", bias=False, dtype=np.float64))
    W0, W1, W2 = net.init([9])
    x = np.random.default_rng(4).standard_normal((7, 4))
    np.testing.assert_allclose(net.forward([W0, W1, W2], x)[0][0], x @ (W0[0] @ W1[0] @ W2[0]), rtol=1e-12)


def test_reused_buffers_give_the_same_results():
    net = MLP(MLPSpec((4, 8, 2), activation="tanh"))
    params = net.init([0, 1])
    rng = np.random.default_rng(5)
    x, g = rng.standard_normal((2, 6, 4)).astype(np.float32), rng.standard_normal((2, 6, 2)).astype(np.float32)
    fresh_out, cache = net.forward(params, x)
    fresh = net.backward(params, cache, g)
    out1, cache = net.forward(params, x, reuse=True)
    grads1 = net.backward(params, cache, g, reuse=True)
    np.testing.assert_array_equal(out1, fresh_out)
    for a, b in zip(grads1, fresh):
        np.testing.assert_array_equal(a, b)
    out2, cache = net.forward(params, x, reuse=True)
    assert out2 is out1 and net.backward(params, cache, g, reuse=True)[0] is grads1[0]


def test_batch_norm_train_and_eval_modes():
    net = MLP(MLPSpec((3, 4, 2), norm="batch", dtype=np.float64))
    params, state = net.init([0]), net.init_state(1)
    x = np.random.default_rng(6).standard_normal((8, 3)) + 2.0
    with pytest.raises(ValueError, match="state"):
        net.forward(params, x, train=False)
    before = {k: v.copy() for k, v in state[0].items()}
    train_out, _ = net.forward(params, x, state, train=True)
    assert not np.array_equal(state[0]["running_mean"], before["running_mean"])
    eval_out, _ = net.forward(params, x, state, train=False)
    assert not np.allclose(train_out, eval_out)
    after = state[0]["running_mean"].copy()
    net.forward(params, x, state, train=False)
    np.testing.assert_array_equal(state[0]["running_mean"], after)


def test_per_layer_activations_and_spec_errors():
    net = MLP(MLPSpec((2, 4, 4, 1), activation=("relu", "leaky_relu"), activation_hyper=({}, {"negative_slope": 0.2})))
    assert [a.name for a in net.activations] == ["relu", "leaky_relu"]
    assert net.activations[1].hyper["negative_slope"] == 0.2
    with pytest.raises(DlbenchError, match="3 entries but the net has 2 hidden layers"):
        MLP(MLPSpec((2, 4, 4, 1), activation=("relu", "tanh", "relu")))
    with pytest.raises(DlbenchError, match="bias_init"):
        MLP(MLPSpec((2, 1), bias_init="ones"))
    with pytest.raises(DlbenchError, match="widths"):
        MLP(MLPSpec((2,)))
    with pytest.raises(DlbenchError):
        MLP(MLPSpec((2, 3, 1), activation="nope"))
