"""dlbench.peer: one interface to dlbench's and torch's kernels for the same operation; torch is optional."""

import numpy as np
import pytest

from dlbench import peer
from dlbench.errors import DlbenchError
from dlbench.nn.activations import ACTIVATIONS
from dlbench.nn.optim import OPTIMIZERS

NORMS = [("batch", {}), ("layer", {}), ("group", {"num_groups": 4}), ("instance", {"channels": 4}),
         ("batch", {"channels": 4})]


def _inputs(rng, shape=(16, 24)):
    return rng.standard_normal(shape).astype(np.float32), rng.standard_normal(shape).astype(np.float32)


def test_unknown_operations_and_implementations_are_user_errors():
    x, g = _inputs(np.random.default_rng(0))
    with pytest.raises(DlbenchError, match="operation"):
        peer.kernel("conv", "relu", x, g)
    with pytest.raises(DlbenchError, match="implementation"):
        peer.kernel("activation", "relu", x, g, impl="jax")
    with pytest.raises(DlbenchError):
        peer.kernel("activation", "nope", x, g)


@pytest.mark.parametrize("name", sorted(set(a.name for a in ACTIVATIONS.values())))
def test_dlbench_activation_is_forward_then_backward(name):
    rng = np.random.default_rng(1)
    act = ACTIVATIONS[name]
    x = rng.standard_normal((8, 12)).astype(np.float32)
    g = rng.standard_normal((8, 12 // act.pieces)).astype(np.float32)
    theta = act.init_params((), 12, np.float32) if act.init_params else ()
    want = act.backward(x, act.forward(x, *theta), g, *theta)
    fn = peer.kernel("activation", name, x, g)
    np.testing.assert_array_equal(fn(), want)
    np.testing.assert_array_equal(fn(), want)  # the buffers are reused, the result the same


def test_torch_side_is_none_without_torch(monkeypatch):
    monkeypatch.setattr(peer, "_torch", lambda: None)
    x, g = _inputs(np.random.default_rng(2))
    assert not peer.available() and peer.version() is None
    assert peer.kernel("activation", "relu", x, g, impl="torch") is None
    assert peer.kernel("norm", "layer", x, g, impl="torch") is None
    with peer.threads(2) as n:
        assert n == 2
    assert peer.kernel("activation", "relu", x, g)() is not None  # dlbench's side needs no torch


@pytest.mark.parametrize("name", sorted(set(a.name for a in ACTIVATIONS.values())))
def test_torch_activation_matches_dlbench(name):
    pytest.importorskip("torch")
    rng = np.random.default_rng(3)
    act = ACTIVATIONS[name]
    x = (rng.standard_normal((16, 24)) * 3).astype(np.float32)
    g = rng.standard_normal((16, 24 // act.pieces)).astype(np.float32)
    ours = peer.kernel("activation", name, x, g)()
    theirs = peer.kernel("activation", name, x, g, impl="torch")()
    np.testing.assert_allclose(ours, np.asarray(theirs), rtol=2e-6, atol=1e-5)


@pytest.mark.parametrize(("name", "hyper"), NORMS, ids=[f"{n}{h}" for n, h in NORMS])
def test_norms_agree(name, hyper):
    pytest.importorskip("torch")
    rng = np.random.default_rng(4)
    x, g = _inputs(rng)
    x = 2 * x + 1
    ours = peer.kernel("norm", name, x, g, **hyper)()[0]
    theirs = peer.kernel("norm", name, x, g, impl="torch", **hyper)()
    np.testing.assert_allclose(ours, np.asarray(theirs).reshape(ours.shape), rtol=1e-4, atol=1e-5)


def test_norm_peer_needs_a_matrix():
    x = np.zeros((2, 3, 4), np.float32)
    with pytest.raises(DlbenchError, match=r"\(N, F\)"):
        peer.kernel("norm", "layer", x, x)


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_optimizer_steps_agree(name):
    pytest.importorskip("torch")
    rng = np.random.default_rng(5)
    p0, g = _inputs(rng)
    ours, theirs = p0.copy(), p0.copy()
    a = peer.kernel("optimizer", name, [ours], [g], lr=1e-2)
    b = peer.kernel("optimizer", name, [theirs], [g], impl="torch", lr=1e-2)
    for _ in range(3):
        a()
        b()
    assert not np.array_equal(ours, p0)
    np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-6)


def test_per_run_hyperparameters_have_no_torch_form():
    pytest.importorskip("torch")
    p, g = _inputs(np.random.default_rng(6))
    lr = np.full((1, p.shape[1]), 1e-2)
    assert peer.kernel("optimizer", "adam", [p], [g], lr=lr) is not None
    assert peer.kernel("optimizer", "adam", [p], [g], impl="torch", lr=lr) is None
    assert peer.kernel("optimizer", "adam", [p], [g], impl="torch", bias_correction=False) is None


def test_threads_sets_and_restores_torch():
    torch = pytest.importorskip("torch")
    before = torch.get_num_threads()
    with peer.threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
