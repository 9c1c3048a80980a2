"""Initializers: moments and bounds against their formulas, gains, orthogonality, seeding, replicas, registry."""

import math

import numpy as np
import pytest

from dlbench.errors import DlbenchError, UnknownName
from dlbench.nn import init as I
from dlbench.nn.init import INITIALIZERS, calculate_gain, get_initializer

SHAPE = (400, 250)  # fan_in 400, fan_out 250: 100,000 draws
FAN_IN, FAN_OUT = SHAPE
N = FAN_IN * FAN_OUT


def _draw(name, seed=0, shape=SHAPE, dtype=np.float64, **hyper):
    return get_initializer(name, **hyper)(np.random.default_rng(seed), shape, dtype)


# (name, hyper, mean, variance, bound or None): the formula of each scheme
R = math.sqrt
MOMENTS = [
    ("normal", {}, 0.0, 1.0, None),
    ("normal", {"mean": 0.5, "std": 0.02}, 0.5, 0.02**2, None),
    ("uniform", {}, 0.5, 1 / 12, (0.0, 1.0)),
    ("uniform", {"a": -0.3, "b": 0.1}, -0.1, 0.4**2 / 12, (-0.3, 0.1)),
    ("xavier_uniform", {}, 0.0, 2 / (FAN_IN + FAN_OUT), R(6 / (FAN_IN + FAN_OUT))),
    ("xavier_uniform", {"gain": 5 / 3}, 0.0, (5 / 3) ** 2 * 2 / (FAN_IN + FAN_OUT), 5 / 3 * R(6 / (FAN_IN + FAN_OUT))),
    ("xavier_normal", {}, 0.0, 2 / (FAN_IN + FAN_OUT), None),
    ("kaiming_uniform", {}, 0.0, 2 / FAN_IN, R(3) * R(2) / R(FAN_IN)),
    ("kaiming_uniform", {"mode": "fan_out", "nonlinearity": "relu"}, 0.0, 2 / FAN_OUT, R(6 / FAN_OUT)),
    ("kaiming_uniform", {"a": 0.2}, 0.0, 2 / (1 + 0.04) / FAN_IN, R(3) * R(2 / 1.04) / R(FAN_IN)),
    ("kaiming_normal", {}, 0.0, 2 / FAN_IN, None),
    ("kaiming_normal", {"nonlinearity": "tanh", "mode": "fan_out"}, 0.0, (5 / 3) ** 2 / FAN_OUT, None),
    ("lecun_normal", {}, 0.0, 1 / FAN_IN, None),
    ("torch_default", {}, 0.0, 1 / (3 * FAN_IN), 1 / R(FAN_IN)),
    ("orthogonal", {}, 0.0, 1 / FAN_IN, None),  # FAN_OUT orthonormal columns of length FAN_IN
]


@pytest.mark.parametrize("name,hyper,mean,var,bound", MOMENTS, ids=[f"{m[0]}{m[1] or ''}" for m in MOMENTS])
def test_mean_and_variance_follow_the_formula(name, hyper, mean, var, bound):
    w = _draw(name, **hyper)
    assert w.shape == SHAPE
    se_mean = math.sqrt(var / N)
    # sample variance's SE: sqrt((mu4 - sigma^4) / N); mu4 = 3 sigma^4 (normal), 9/5 sigma^4 (uniform)
    kurt = 1.8 if bound is not None else 3.0
    se_var = var * math.sqrt((kurt - 1) / N)
    assert abs(w.mean() - mean) < 5 * se_mean
    assert abs(w.var() - var) < 5 * se_var
    if bound is not None:
        lo, hi = bound if isinstance(bound, tuple) else (-bound, bound)
        assert lo <= w.min() and w.max() < hi
        assert w.min() < lo + 1e-3 * (hi - lo) and w.max() > hi - 1e-3 * (hi - lo)  # the bound is reached


def test_zeros_and_constant():
    assert np.all(_draw("zeros") == 0)
    assert np.all(_draw("constant") == 0.1)
    w = _draw("constant", val=-2.5, dtype=np.float32)
    assert w.dtype == np.float32 and np.all(w == -2.5)
    rng = np.random.default_rng(0)
    state = rng.bit_generator.state
    INITIALIZERS["zeros"](rng, (3, 4))
    assert rng.bit_generator.state == state  # draws nothing


def test_gain_table_as_torch():
    for name in ("linear", "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d", "conv_transpose3d",
                 "sigmoid"):
        assert calculate_gain(name) == 1
    assert calculate_gain("tanh") == 5 / 3
    assert calculate_gain("relu") == math.sqrt(2)
    assert calculate_gain("leaky_relu") == math.sqrt(2 / (1 + 0.01**2))
    assert calculate_gain("leaky_relu", 0.2) == math.sqrt(2 / 1.04)
    assert calculate_gain("leaky_relu", 0) == math.sqrt(2)
    assert calculate_gain("leaky_relu", math.sqrt(5)) == math.sqrt(1 / 3)
    assert calculate_gain("selu") == 3 / 4
    with pytest.raises(UnknownName, match="valid: .*tanh"):
        calculate_gain("gelu")
    with pytest.raises(DlbenchError):
        calculate_gain("leaky_relu", True)
    with pytest.raises(DlbenchError):
        calculate_gain("leaky_relu", "0.1")


@pytest.mark.parametrize("shape", [(64, 64), (100, 40), (40, 100), (5, 30, 20), (5, 20, 30)],
                         ids=["square", "tall", "wide", "replicas tall", "replicas wide"])
def test_orthogonal_is_orthonormal(shape):
    gain = 1.7
    w = _draw("orthogonal", shape=shape, gain=gain)
    m, n = shape[-2:]
    wt = np.swapaxes(w, -1, -2)
    gram = wt @ w if n <= m else w @ wt  # columns orthonormal when fan_out <= fan_in, else rows
    eye = np.broadcast_to(np.eye(min(m, n)), gram.shape)
    np.testing.assert_allclose(gram, gain**2 * eye, atol=1e-12)


def test_orthogonal_sign_correction_makes_r_diagonal_positive():
    rng = np.random.default_rng(1)
    a = rng.standard_normal((4, 30, 10))
    q = I.orthonormalize(a)
    r = np.swapaxes(q, -1, -2) @ a  # a = q r, so r = q^T a
    np.testing.assert_allclose(np.tril(r, -1)[:, :10], 0, atol=1e-12)  # upper triangular
    assert np.all(np.diagonal(r, axis1=-2, axis2=-1) > 0)
    # wide: the rows of W are the sign-corrected Q of a^T
    wide = rng.standard_normal((10, 30))
    w = I.orthonormalize(wide)
    r = w @ wide.T
    assert np.all(np.diag(r) > 0) and np.allclose(np.tril(r, -1), 0, atol=1e-12)


def test_orthogonal_is_haar_not_biased():
    # Haar-distributed: entries of an orthogonal n x n matrix have mean 0 and variance 1/n, and the
    # diagonal is not biased positive (a QR without the sign correction would give E[W_11] != 0 per LAPACK's sign)
    w = _draw("orthogonal", shape=(2000, 8, 8))
    assert abs(w.mean()) < 5 * math.sqrt(1 / 8 / w.size)
    diag = np.diagonal(w, axis1=-2, axis2=-1)
    assert abs(diag.mean()) < 5 * math.sqrt(1 / 8 / diag.size)


@pytest.mark.parametrize("name", list(INITIALIZERS))
def test_same_seed_same_weights_and_dtype(name):
    a = _draw(name, seed=3, shape=(20, 10), dtype=np.float32)
    b = _draw(name, seed=3, shape=(20, 10), dtype=np.float32)
    assert a.dtype == np.float32 and a.shape == (20, 10)
    np.testing.assert_array_equal(a, b)
    c = _draw(name, seed=3, shape=(20, 10), dtype=np.float64)
    assert c.dtype == np.float64
    np.testing.assert_array_equal(a, c.astype(np.float32))  # float32 weights are the float64 ones rounded
    if name not in ("zeros", "constant"):
        assert not np.array_equal(a, _draw(name, seed=4, shape=(20, 10), dtype=np.float32))


@pytest.mark.parametrize("name", list(INITIALIZERS))
def test_replica_axis_equals_successive_draws(name):
    rng = np.random.default_rng(5)
    many = INITIALIZERS[name](rng, (3, 12, 7), np.float64)
    rng = np.random.default_rng(5)
    one_by_one = np.stack([INITIALIZERS[name](rng, (12, 7), np.float64) for _ in range(3)])
    np.testing.assert_array_equal(many, one_by_one)


def test_fans_use_the_last_two_axes():
    # the leading axis is replicas, not a receptive field: the bound depends on (fan_in, fan_out) only
    w = _draw("xavier_uniform", shape=(50, 30, 20))
    assert np.abs(w).max() <= math.sqrt(6 / 50)
    assert I.fans((7, 30, 20)) == (30, 20)
    for name in ("xavier_uniform", "xavier_normal", "kaiming_uniform", "kaiming_normal", "lecun_normal",
                 "orthogonal", "torch_default"):
        with pytest.raises(DlbenchError, match="2 dimensions"):
            _draw(name, shape=(10,))
    assert _draw("normal", shape=(10,)).shape == (10,)


def test_registry_and_get_initializer():
    assert list(INITIALIZERS) == ["zeros", "constant", "normal", "uniform", "xavier_uniform", "xavier_normal",
                                  "kaiming_uniform", "kaiming_normal", "lecun_normal", "orthogonal", "torch_default"]
    assert dict(INITIALIZERS["kaiming_uniform"].hyper) == {"a": 0.0, "mode": "fan_in", "nonlinearity": "leaky_relu"}
    assert dict(INITIALIZERS["normal"].hyper) == {"mean": 0.0, "std": 1.0}
    assert dict(INITIALIZERS["uniform"].hyper) == {"a": 0.0, "b": 1.0}
    init = get_initializer("kaiming_normal", nonlinearity="relu", a=1)
    assert init.hyper == {"a": 1.0, "mode": "fan_in", "nonlinearity": "relu"} and init.name == "kaiming_normal"
    assert get_initializer("orthogonal") is INITIALIZERS["orthogonal"]
    with pytest.raises(UnknownName, match="valid: .*orthogonal"):
        get_initializer("he")
    for name, hyper in [("normal", {"sd": 1}), ("normal", {"std": -1}), ("normal", {"std": "wide"}),
                        ("uniform", {"a": 1, "b": 0}), ("kaiming_uniform", {"mode": "fan_avg"}),
                        ("kaiming_uniform", {"nonlinearity": "gelu"}), ("lecun_normal", {"gain": 2}),
                        ("xavier_normal", {"gain": float("inf")})]:
        with pytest.raises(DlbenchError):
            get_initializer(name, **hyper)
    with pytest.raises(DlbenchError):
        INITIALIZERS["normal"](np.random.default_rng(0), (3, 3), np.int32)


def test_torch_default_is_kaiming_uniform_sqrt5():
    a = _draw("torch_default", seed=8)
    b = _draw("kaiming_uniform", seed=8, a=math.sqrt(5))
    np.testing.assert_array_equal(a, b)


# ---------------------------------------------------------------------------------------------------------
# torch, when it is installed (CI has no torch; the tests above carry the same checks)
# ---------------------------------------------------------------------------------------------------------

def test_gains_and_orthogonal_match_torch():
    torch = pytest.importorskip("torch")
    for name in I.NONLINEARITIES:
        assert calculate_gain(name) == pytest.approx(torch.nn.init.calculate_gain(name), rel=1e-15)
    for slope in (0, 0.2, math.sqrt(5)):
        assert calculate_gain("leaky_relu", slope) == pytest.approx(torch.nn.init.calculate_gain("leaky_relu", slope))
    for out_f, in_f in ((20, 50), (50, 20), (30, 30)):
        # torch draws its (out, in) Gaussian and orthogonalises; ours, given that Gaussian transposed, agrees
        torch.manual_seed(0)
        t = torch.empty(out_f, in_f, dtype=torch.float64)
        torch.nn.init.orthogonal_(t)
        torch.manual_seed(0)
        gauss = torch.empty(out_f, in_f, dtype=torch.float64).normal_(0, 1).numpy()
        np.testing.assert_allclose(I.orthonormalize(gauss.T), t.numpy().T, atol=1e-12)


def test_bounds_match_torch():
    torch = pytest.importorskip("torch")
    for name, fn, hyper in [("xavier_uniform", torch.nn.init.xavier_uniform_, {}),
                            ("kaiming_uniform", torch.nn.init.kaiming_uniform_, {"a": 0.3, "mode": "fan_out"}),
                            ("torch_default", torch.nn.init.kaiming_uniform_, {"a": math.sqrt(5)})]:
        t = torch.empty(FAN_OUT, FAN_IN, dtype=torch.float64)  # torch layout (out, in)
        fn(t, **hyper)
        ours = _draw(name, **({} if name == "torch_default" else hyper))
        assert np.abs(ours).max() == pytest.approx(t.abs().max().item(), rel=1e-3)
        assert ours.var() == pytest.approx(t.var().item(), rel=0.03)
