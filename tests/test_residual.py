"""Residual and plain nets: every gradient against finite differences, the plain net is the MLP, deleted blocks
are identities, replicas are separate nets, and the trainer trains them."""

import numpy as np
import pytest

from dlbench.data import make_dataset
from dlbench.errors import DlbenchError
from dlbench.nn.losses import mse, softmax_ce
from dlbench.nn.mlp import MLP, MLPSpec
from dlbench.nn.optim import get_optimizer
from dlbench.nn.residual import ResNet, ResNetSpec
from dlbench.nn.train import train
from tests.test_layers_losses import direction_check, numeric_grads

# (activation, norm, residual, block_layers, deleted): every kind of unit and path the net assembles
CASES = [
    ("relu", "none", True, 2, ()),
    ("tanh", "layer", True, 2, ()),
    ("prelu", "batch", True, 1, ()),
    ("tanh", "batch", False, 2, ()),
    ("gelu", "none", False, 3, ()),
    ("tanh", "layer", True, 2, (1,)),
    ("relu", "batch", False, 1, (0, 2)),
]


def _net(act, norm, residual, block_layers, n_blocks=3, **kw):
    return ResNet(ResNetSpec(3, 4, n_blocks, 2, block_layers=block_layers, residual=residual, activation=act,
                             norm=norm, dtype=np.float64, **kw))


@pytest.mark.parametrize("act,norm,residual,block_layers,deleted", CASES,
                         ids=[f"{a}-{n}-{'res' if r else 'plain'}-k{k}-del{''.join(map(str, d))}"
                              for a, n, r, k, d in CASES])
def test_backward_matches_finite_differences(act, norm, residual, block_layers, deleted):
    net = _net(act, norm, residual, block_layers)
    rng = np.random.default_rng(0)
    params = net.init([11, 12])
    for p in params:  # move prelu's slope and the norms' affine params off their init values
        p += 0.1 * rng.standard_normal(p.shape)
    state = net.init_state(2)
    x = rng.standard_normal((2, 5, 3))
    R = rng.standard_normal((2, 5, 2))

    def f():
        return float(np.sum(net.forward(params, x, state, deleted=deleted)[0] * R))

    out, cache = net.forward(params, x, state, deleted=deleted)
    grads = net.backward(params, cache, R)
    assert len(grads) == len(params)
    for name, got, want in zip(net.param_names, grads, numeric_grads(f, params)):
        assert got.shape == want.shape, name
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-8, err_msg=name)
    for j in deleted:
        assert all(not grads[i].any() for i in net.block_params(j))


def test_eval_mode_backward_matches_finite_differences():
    net = _net("tanh", "batch", True, 2)
    rng = np.random.default_rng(1)
    params, state = net.init([3]), net.init_state(1)
    net.forward(params, rng.standard_normal((8, 3)), state)      # running statistics away from (0, 1)
    x, R = rng.standard_normal((5, 3)), rng.standard_normal((1, 5, 2))
    f = lambda: float(np.sum(net.forward(params, x, state, train=False)[0] * R))  # noqa: E731
    grads = net.backward(params, net.forward(params, x, state, train=False)[1], R)
    for name, got, want in zip(net.param_names, grads, numeric_grads(f, params)):
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-8, err_msg=name)


@pytest.mark.parametrize("residual", [True, False])
def test_backward_random_direction_on_a_deep_net(residual):
    # smooth activations: a random direction over thousands of weights would cross some relu kink
    net = ResNet(ResNetSpec(20, 48, 8, 10, residual=residual, activation="gelu", norm="layer", dtype=np.float64))
    rng = np.random.default_rng(2)
    params = net.init([1, 2])
    x, y = rng.standard_normal((2, 40, 20)), rng.integers(0, 10, (2, 40))
    _, grads, _ = net.value_and_grad(params, x, y, softmax_ce)
    fd, an = direction_check(lambda: float(np.sum(net.value_and_grad(params, x, y, softmax_ce)[0])),
                             params, grads, rng, eps=1e-7)  # a deep plain net is curved: a small step
    assert fd == pytest.approx(an, rel=1e-6)


@pytest.mark.parametrize("norm", ["none", "batch", "layer"])
def test_plain_net_is_the_mlp_of_its_widths(norm):
    spec = dict(activation="prelu", norm=norm, dtype=np.float64)
    plain = ResNet(ResNetSpec(5, 6, 3, 3, block_layers=2, residual=False, **spec))
    mlp = MLP(MLPSpec(plain.widths, **spec))
    assert plain.widths == (5, 6, 6, 6, 6, 6, 6, 6, 3)
    assert plain.n_params == mlp.n_params
    p_res, p_mlp = plain.init([7, 8]), mlp.init([7, 8])
    by_name = dict(zip(plain.param_names, p_res))
    # unit k of the plain net is the norm/activation of MLP hidden layer k and the linear map of layer k + 1
    names = ["stem.W", "stem.b"] + [f"block{j}.layer{i}.{t}" for j in range(3) for i in range(2) for t in "Wb"]
    names += ["head.W", "head.b"]
    for l in range(len(mlp.layers)):
        for t in "Wb":
            np.testing.assert_array_equal(p_mlp[mlp.param_names.index(f"layer{l}.{t}")],
                                          by_name[names[2 * l + "Wb".index(t)]])
    rng = np.random.default_rng(3)
    for p in p_res:
        p += 0.1 * rng.standard_normal(p.shape)
    units = [f"block{j}.layer{i}." for j in range(3) for i in range(2)] + ["head."]

    def mlp_name(name):  # unit k: the norm/activation of MLP hidden layer k, the linear map of layer k + 1
        if name.startswith("stem."):
            return f"layer0.{name[5:]}"
        k = next(k for k, u in enumerate(units) if name.startswith(u))
        rest = name[len(units[k]):]
        return f"layer{k + 1}.{rest}" if rest in ("W", "b") else f"layer{k}.{rest}"

    for name, p in zip(plain.param_names, p_res):  # the same perturbed values into the MLP's layout
        p_mlp[mlp.param_names.index(mlp_name(name))][...] = p
    x = rng.standard_normal((7, 5))
    out_res, c_res = plain.forward(p_res, x)
    out_mlp, c_mlp = mlp.forward(p_mlp, x)
    np.testing.assert_allclose(out_res, out_mlp, rtol=1e-12, atol=1e-14)
    R = rng.standard_normal(out_res.shape)
    g_mlp = dict(zip(mlp.param_names, mlp.backward(p_mlp, c_mlp, R)))
    for name, g in zip(plain.param_names, plain.backward(p_res, c_res, R)):
        np.testing.assert_allclose(g, g_mlp[mlp_name(name)], rtol=1e-10, atol=1e-13, err_msg=name)


def test_residual_net_adds_the_identity_and_plain_does_not():
    res, plain = (_net("relu", "none", r, 2) for r in (True, False))
    params = res.init([0])
    x = np.random.default_rng(4).standard_normal((6, 3))
    _, c_res = res.forward(params, x)
    _, c_plain = plain.forward(params, x)
    h = c_res.stem
    for j in range(3):
        branch = c_res.hidden[j] - h
        z = c_res.blocks[j][-1]            # the branch's last unit: its output is F_j(h_j)
        np.testing.assert_allclose(branch, z.post @ params[res.units[2 * j + 1].W] + params[res.units[2 * j + 1].b],
                                   atol=1e-12)
        h = c_res.hidden[j]
    np.testing.assert_array_equal(c_plain.hidden[0], c_plain.blocks[0][-1].post @ params[plain.units[1].W]
                                  + params[plain.units[1].b])


@pytest.mark.parametrize("residual", [True, False])
def test_deleted_blocks_are_identities(residual):
    net = _net("tanh", "layer", residual, 2, n_blocks=4)
    short = _net("tanh", "layer", residual, 2, n_blocks=2)
    params = net.init([5])
    rng = np.random.default_rng(5)
    for p in params:
        p += 0.1 * rng.standard_normal(p.shape)
    # deleting blocks 1 and 2 of four leaves the net of blocks 0 and 3
    keep = [i for i, n in enumerate(net.param_names) if not n.startswith(("block1.", "block2."))]
    short_params = [params[i] for i in keep]
    assert [net.param_names[i].replace("block3", "block1") for i in keep] == short.param_names
    x = rng.standard_normal((6, 3))
    out, cache = net.forward(params, x, deleted=[2, 1])
    np.testing.assert_allclose(out, short.forward(short_params, x)[0], rtol=1e-12)
    assert cache.deleted == {1, 2} and cache.blocks[1] is None
    np.testing.assert_array_equal(cache.hidden[1], cache.hidden[0])
    full = net.forward(params, x)[0]
    assert not np.allclose(full, out)
    with pytest.raises(DlbenchError, match="cannot delete block 4: the net has blocks 0 .. 3"):
        net.forward(params, x, deleted=[4])


def test_replicas_are_initialised_and_run_as_separate_nets():
    net = ResNet(ResNetSpec(4, 8, 3, 3, activation="prelu", norm="batch"))
    many, one = net.init([5, 6, 7]), net.init([6])
    for a, b in zip(many, one):
        np.testing.assert_array_equal(a[1], b[0])
    x = np.random.default_rng(6).standard_normal((3, 10, 4)).astype(np.float32)
    st_many, st_one = net.init_state(3), net.init_state(1)
    out_many, c_many = net.forward(many, x, st_many)
    out_one, c_one = net.forward(one, x[1:2], st_one)
    np.testing.assert_allclose(out_many[1], out_one[0], rtol=1e-6, atol=1e-7)
    R = np.random.default_rng(7).standard_normal(out_many.shape).astype(np.float32)
    for g3, g1 in zip(net.backward(many, c_many, R), net.backward(one, c_one, R[1:2])):
        np.testing.assert_allclose(g3[1], g1[0], rtol=1e-4, atol=1e-6)
    for a, b in zip(st_many, st_one):
        np.testing.assert_allclose(a["running_mean"][1], b["running_mean"][0], rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("norm", ["none", "batch", "layer"])
def test_reuse_gives_the_fresh_results(norm):
    net = ResNet(ResNetSpec(4, 8, 3, 2, norm=norm, activation="prelu"))
    params = net.init([0, 1])
    rng = np.random.default_rng(8)
    for _ in range(2):  # the second round runs on recycled buffers and norm caches
        x = rng.standard_normal((2, 6, 4)).astype(np.float32)
        y = rng.integers(0, 2, (2, 6))
        l1, g1, _ = net.value_and_grad(params, x, y, softmax_ce, state=net.init_state(2))
        l2, g2, _ = net.value_and_grad(params, x, y, softmax_ce, state=net.init_state(2), reuse=True)
        np.testing.assert_array_equal(l1, l2)
        for a, b in zip(g1, g2):
            np.testing.assert_array_equal(a, b)


def test_zero_blocks_is_stem_then_head():
    net = ResNet(ResNetSpec(3, 5, 0, 2, activation="tanh"))
    params = net.init([1])
    x = np.random.default_rng(9).standard_normal((4, 3)).astype(np.float32)
    h = np.tanh(x @ params[0][0] + params[1][0])
    np.testing.assert_allclose(net.forward(params, x)[0][0], h @ params[2][0] + params[3][0], rtol=1e-6)
    assert net.widths == (3, 5, 2)


def test_bad_specs_are_one_line_errors():
    with pytest.raises(DlbenchError, match="width must be an integer >= 1"):
        ResNet(ResNetSpec(3, 0, 2, 2))
    with pytest.raises(DlbenchError, match="n_blocks must be an integer >= 0"):
        ResNet(ResNetSpec(3, 4, -1, 2))
    with pytest.raises(DlbenchError, match="elementwise activation"):
        ResNet(ResNetSpec(3, 4, 2, 2, activation="maxout"))


def test_the_trainer_trains_a_residual_net():
    data = make_dataset("spirals", seed=0, n_train=128, n_test=64)
    net = ResNet(ResNetSpec(2, 16, 4, 2, norm="layer"))
    hist = train(net, data, [0, 1], optimizer=get_optimizer("adam", lr=1e-2), epochs=15, batch_size=32)
    assert hist.train_loss.shape == (2, 16)
    assert (hist.train_loss[:, -1] < 0.7 * hist.train_loss[:, 0]).all()
    alone = train(net, data, [1], optimizer=get_optimizer("adam", lr=1e-2), epochs=15, batch_size=32)
    np.testing.assert_array_equal(hist.loss[1], alone.loss[0])


def test_deleting_a_block_of_a_trained_net_changes_its_loss():
    data = make_dataset("sine", seed=0, n_train=128, n_test=64)
    for residual in (True, False):
        net = ResNet(ResNetSpec(1, 16, 3, 1, residual=residual, activation="tanh"))
        hist = train(net, data, [0], optimizer="adam", epochs=5, batch_size=32)
        full, _ = mse(net.forward(hist.params, data.X_test)[0], data.y_test)
        cut, _ = mse(net.forward(hist.params, data.X_test, deleted=[1])[0], data.y_test)
        assert np.isfinite(cut).all() and cut[0] != full[0]
