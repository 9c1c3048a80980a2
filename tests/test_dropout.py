"""Dropout: torch.nn.Dropout's semantics (inverted scaling, identity in eval), its backward against finite
differences, per-replica masks, and its place in the MLP and the trainer."""

import numpy as np
import pytest

from dlbench.data import make_dataset
from dlbench.errors import DlbenchError
from dlbench.nn.dropout import dropout_backward, dropout_forward, dropout_mask
from dlbench.nn.losses import softmax_ce
from dlbench.nn.mlp import MLP, MLPSpec
from dlbench.nn.train import train
from tests.test_layers_losses import direction_check, numeric_grads


@pytest.mark.parametrize("p", [0.1, 0.5, 0.8])
def test_mask_keeps_one_minus_p_and_scales_the_survivors(p):
    m = dropout_mask(np.random.default_rng(0), (200, 500), p)
    kept = m != 0
    assert set(np.unique(m)) == {0.0, np.float32(1 / (1 - p))}
    n = m.size
    assert abs(kept.mean() - (1 - p)) < 4 * np.sqrt(p * (1 - p) / n)   # binomial: 4 standard deviations
    assert abs(m.mean() - 1) < 4 * np.sqrt(p / (1 - p) / n)             # E m = 1: the expected output is x


def test_eval_and_p_zero_are_the_identity_and_p_one_drops_everything():
    x = np.random.default_rng(1).standard_normal((3, 4)).astype(np.float32)
    for kwargs in ({"p": 0.5, "train": False}, {"p": 0.0, "train": True}):
        y, mask = dropout_forward(x, rng=np.random.default_rng(0), **kwargs)
        assert y is x and mask is None
        assert dropout_backward(x, mask) is x
    y, mask = dropout_forward(x, 1.0, rng=np.random.default_rng(0))
    assert not y.any() and not mask.any()


def test_forward_and_backward_use_one_mask():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 6, 5))
    y, mask = dropout_forward(x, 0.3, rng=rng)
    np.testing.assert_array_equal(y, x * mask)
    g = rng.standard_normal(x.shape)
    np.testing.assert_array_equal(dropout_backward(g, mask), g * mask)
    # finite differences with the mask held (the mask is the random draw, not a function of x)
    R = rng.standard_normal(x.shape)
    f = lambda: float(np.sum(dropout_forward(x, 0.3, mask=mask)[0] * R))  # noqa: E731
    (num,) = numeric_grads(f, [x])
    np.testing.assert_allclose(dropout_backward(R, mask), num, rtol=1e-7, atol=1e-9)


def test_per_replica_generators_reproduce_single_replica_masks():
    seeds = [5, 9, 11]
    both = dropout_mask([np.random.default_rng(s) for s in seeds], (3, 4, 7), 0.4, np.float64)
    for i, s in enumerate(seeds):
        alone = dropout_mask(np.random.default_rng(s), (4, 7), 0.4, np.float64)
        np.testing.assert_array_equal(both[i], alone)
    with pytest.raises(DlbenchError, match="one per replica"):
        dropout_mask([np.random.default_rng(0)], (3, 4, 7), 0.4)


@pytest.mark.parametrize("p", [-0.1, 1.5, "x", None])
def test_bad_probability_is_one_error(p):
    with pytest.raises(DlbenchError, match="dropout probability"):
        dropout_mask(np.random.default_rng(0), (2, 2), p)


def test_training_without_a_generator_is_an_error():
    with pytest.raises(DlbenchError, match="needs a random generator"):
        dropout_forward(np.ones((2, 2)), 0.5)


def test_matches_torch_dropout_semantics():
    torch = pytest.importorskip("torch")
    x = torch.ones(400, 300, dtype=torch.float64)
    drop = torch.nn.Dropout(0.25)
    y = drop(x).numpy()
    ours = dropout_forward(x.numpy(), 0.25, rng=np.random.default_rng(0))[0]
    assert set(np.unique(y)) == set(np.unique(ours)) == {0.0, 1 / 0.75}
    assert abs((y == 0).mean() - (ours == 0).mean()) < 0.01
    drop.eval()
    np.testing.assert_array_equal(drop(x).numpy(), dropout_forward(x.numpy(), 0.25, train=False)[0])


# ----------------------------------------------------------------------------- in the MLP

def test_mlp_backward_with_dropout_matches_finite_differences():
    net = MLP(MLPSpec((3, 5, 5, 2), norm="batch", dropout=0.4, dtype=np.float64))
    rng = np.random.default_rng(3)
    params = net.init([1, 2])
    x, y = rng.standard_normal((2, 6, 3)), rng.integers(0, 2, 6)

    def f():   # the same masks on every call: each call draws from fresh copies of the same generators
        out, _ = net.forward(params, x, net.init_state(2), rng=[np.random.default_rng(s) for s in (7, 8)])
        return float(softmax_ce(out, y)[0].sum())

    out, cache = net.forward(params, x, net.init_state(2), rng=[np.random.default_rng(s) for s in (7, 8)])
    assert len(cache.masks) == 2 and all((m == 0).any() for m in cache.masks)
    np.testing.assert_array_equal(cache.inputs[1], cache.post[0] * cache.masks[0])
    grads = net.backward(params, cache, softmax_ce(out, y)[1])
    num = numeric_grads(f, params)
    for g, n in zip(grads, num):
        np.testing.assert_allclose(g, n, rtol=1e-5, atol=1e-7)
    fd, an = direction_check(f, params, grads, rng)
    assert fd == pytest.approx(an, rel=1e-6)


def test_mlp_dropout_is_the_identity_in_eval_and_needs_a_generator_in_training():
    net = MLP(MLPSpec((3, 5, 2), dropout=0.5))
    plain = MLP(MLPSpec((3, 5, 2)))
    params = net.init([0])
    x = np.random.default_rng(0).standard_normal((4, 3))
    np.testing.assert_array_equal(net.forward(params, x, train=False)[0], plain.forward(params, x, train=False)[0])
    assert net.forward(params, x, train=False)[1].masks is None
    with pytest.raises(DlbenchError, match="random generator"):
        net.forward(params, x)
    with pytest.raises(DlbenchError, match="dropout probability"):
        MLP(MLPSpec((3, 5, 2), dropout=2.0))


def test_trainer_replicas_with_dropout_reproduce_single_runs():
    data = make_dataset("spirals", seed=0, n_train=64, n_test=32)
    net = MLP(MLPSpec((2, 16, 16, 2), dropout=0.3))
    both = train(net, data, [3, 4], epochs=2, batch_size=16)
    alone = train(net, data, [4], epochs=2, batch_size=16)
    np.testing.assert_array_equal(both.loss[1], alone.loss[0])
    plain = train(MLP(MLPSpec((2, 16, 16, 2))), data, [4], epochs=2, batch_size=16)
    assert not np.array_equal(plain.loss[0][1:], alone.loss[0][1:])   # the masks change the run
