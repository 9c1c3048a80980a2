"""Activation kernels: values against torch's documented formulas, gradients against finite differences,
stability at +-1e4, closed forms under N(0, 1), erf, out= buffers, chunking, the registry."""

import math

import numpy as np
import pytest

from dlbench.errors import DlbenchError, UnknownName
from dlbench.nn import activations as A
from dlbench.nn.activations import ACTIVATIONS, erf, get_activation
from tests.test_layers_losses import direction_check, numeric_grads

NAMES = ["identity", "relu", "leaky_relu", "prelu", "elu", "selu", "gelu", "silu", "swish", "softplus",
         "sigmoid", "tanh", "sin", "maxout"]

# (id, name, hyper, smooth): every entry plus the non-default branches of each kernel
CASES = [
    ("identity", "identity", {}, True),
    ("relu", "relu", {}, False),
    ("leaky_relu", "leaky_relu", {}, False),
    ("leaky_relu0.2", "leaky_relu", {"negative_slope": 0.2}, False),
    ("leaky_relu1.5", "leaky_relu", {"negative_slope": 1.5}, False),
    ("leaky_relu-0.5", "leaky_relu", {"negative_slope": -0.5}, False),
    ("prelu", "prelu", {}, False),
    ("elu", "elu", {}, False),
    ("elu0.5", "elu", {"alpha": 0.5}, False),
    ("elu2", "elu", {"alpha": 2.0}, False),
    ("selu", "selu", {}, False),
    ("gelu", "gelu", {}, True),
    ("gelu_tanh", "gelu", {"approximate": "tanh"}, True),
    ("silu", "silu", {}, True),
    ("softplus", "softplus", {}, True),
    ("softplus_b2_t5", "softplus", {"beta": 2.0, "threshold": 5.0}, True),
    ("sigmoid", "sigmoid", {}, True),
    ("tanh", "tanh", {}, True),
    ("sin", "sin", {}, True),
    ("maxout", "maxout", {}, False),
    ("maxout3", "maxout", {"pieces": 3}, False),
]
IDS = [c[0] for c in CASES]


def _act(name, hyper):
    return get_activation(name, **hyper)


def _theta(act, prefix=(), dtype=np.float64):
    return act.init_params(prefix, 4, dtype) if act.init_params else ()


def _inputs(act, rng, shape, smooth):
    """Test points: kinked activations keep |x| >= 0.1 and maxout's pieces 0.1 apart; smooth ones include 0."""
    x = rng.uniform(-4, 4, shape)
    if not smooth:
        x = np.sign(x) * (0.1 + np.abs(x))
    else:
        x.flat[:3] = (0.0, 1e-3, -1e-3)
    if act.name == "softplus":  # keep beta x off the threshold, where torch's definition jumps by exp(-20)
        t = act.hyper["threshold"] / act.hyper["beta"]
        x = np.where(np.abs(x - t) < 0.1, x + 0.3, x)
    if act.pieces > 1:  # distinct, well-separated values in every group
        x = np.sign(x) * (0.1 + rng.permutation(x.size).reshape(shape) * 0.11)
    return x


def _loss(act, x, theta, g):
    return float(np.sum(g * act.forward(x, *theta)))


# ---------------------------------------------------------------------------------------------------------
# Values against torch's documented formulas (scalar math, no torch)
# ---------------------------------------------------------------------------------------------------------

def _sig(v):
    return 1 / (1 + math.exp(-v)) if v >= 0 else math.exp(v) / (1 + math.exp(v))


K = math.sqrt(2 / math.pi)
LAM, ALP = 1.0507009873554804934193349852946, 1.6732632423543772848170429916717


def _gelu(v, approximate):
    if approximate == "none":
        return v * 0.5 * (1 + math.erf(v / math.sqrt(2)))
    return 0.5 * v * (1 + math.tanh(K * (v + 0.044715 * v**3)))


def _gelu_grad(v, approximate):
    if approximate == "none":
        return 0.5 * (1 + math.erf(v / math.sqrt(2))) + v * math.exp(-v * v / 2) / math.sqrt(2 * math.pi)
    t = math.tanh(K * (v + 0.044715 * v**3))
    return 0.5 * (1 + t) + 0.5 * v * (1 - t**2) * K * (1 + 3 * 0.044715 * v * v)


# name -> (f(v, **hyper), f'(v, **hyper)) exactly as torch documents them (derivative at 0 as torch's backward)
REFERENCE = {
    "identity": (lambda v: v, lambda v: 1.0),
    "relu": (lambda v: max(v, 0.0), lambda v: float(v > 0)),
    "leaky_relu": (lambda v, negative_slope: v if v > 0 else negative_slope * v,
                   lambda v, negative_slope: 1.0 if v > 0 else negative_slope),
    "elu": (lambda v, alpha: v if v > 0 else alpha * math.expm1(v),
            lambda v, alpha: 1.0 if v > 0 else alpha * math.exp(v)),
    "selu": (lambda v: LAM * (v if v > 0 else ALP * math.expm1(v)),
             lambda v: LAM * (1.0 if v > 0 else ALP * math.exp(v))),
    "gelu": (_gelu, _gelu_grad),
    "silu": (lambda v: v * _sig(v), lambda v: _sig(v) * (1 + v * (1 - _sig(v)))),
    "softplus": (lambda v, beta, threshold: v if beta * v > threshold else math.log1p(math.exp(beta * v)) / beta,
                 lambda v, beta, threshold: 1.0 if beta * v > threshold else _sig(beta * v)),
    "sigmoid": (_sig, lambda v: _sig(v) * (1 - _sig(v))),
    "tanh": (math.tanh, lambda v: 1 - math.tanh(v) ** 2),
    "sin": (math.sin, math.cos),
}
REF_CASES = [c for c in CASES if c[1] in REFERENCE]


@pytest.mark.parametrize("case", REF_CASES, ids=[c[0] for c in REF_CASES])
def test_values_and_derivatives_match_torch_formulas(case):
    _, name, hyper, _ = case
    act = _act(name, hyper)
    f, df = REFERENCE[name]
    x = np.concatenate([np.linspace(-12, 12, 481), [0.0, -0.0, 1e-8, -1e-8, 2.5, 2.55, 19.9, 20.1, -40.0]])
    y = act.forward(x)
    dx = act.backward(x, y, np.ones_like(x))
    want_y = np.array([f(v, **act.hyper) for v in x])
    want_dx = np.array([df(v, **act.hyper) for v in x])
    np.testing.assert_allclose(y, want_y, rtol=1e-12, atol=1e-15)
    # tanh-gelu's 1 + tanh(u) cancels for x << 0 in either form: abs error ~ eps * |du/dx|
    np.testing.assert_allclose(dx, want_dx, rtol=1e-12, atol=1e-13)


def test_prelu_and_maxout_values():
    x = np.array([[-2.0, -0.5, 0.0, 0.5, 3.0, -1.0]])
    w = np.array([[[0.25]], [[1.5]], [[-0.3]]])  # (S, 1, 1): three replicas, three branches
    y = A.prelu_forward(x, w)
    assert y.shape == (3, 1, 6)
    np.testing.assert_array_equal(y, np.where(x > 0, x, w * x))
    dx = A.prelu_backward(x, y, np.ones_like(y), w)
    np.testing.assert_array_equal(dx, np.where(x > 0, 1.0, w * np.ones_like(x)))
    mx = get_activation("maxout", pieces=3)
    y = mx.forward(x)
    np.testing.assert_array_equal(y, [[-0.0, 3.0]])
    ties = np.array([[1.0, 1.0, 0.0, 2.0]])
    np.testing.assert_array_equal(A.maxout_backward(ties, A.maxout_forward(ties), np.array([[5.0, 7.0]])),
                                  [[5.0, 0.0, 0.0, 7.0]])  # first argmax wins a tie, as torch's max


# ---------------------------------------------------------------------------------------------------------
# Gradients against finite differences (float64)
# ---------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_backward_matches_finite_differences_on_every_element(case):
    _, name, hyper, smooth = case
    act = _act(name, hyper)
    rng = np.random.default_rng(0)
    x = _inputs(act, rng, (3, 12), smooth)
    theta = _theta(act)
    g = rng.standard_normal(act.forward(x, *theta).shape)
    y = act.forward(x, *theta)
    dx = act.backward(x, y, g, *theta)
    (want,) = numeric_grads(lambda: _loss(act, x, theta, g), [x])
    np.testing.assert_allclose(dx, want, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_backward_random_direction_on_a_realistic_shape(case):
    _, name, hyper, smooth = case
    act = _act(name, hyper)
    rng = np.random.default_rng(1)
    x = rng.standard_normal((64, 256 - 256 % act.pieces)) * 2
    if not smooth:
        x += 0.01 * np.sign(x)  # no element within the step of a kink
    theta = _theta(act)
    y = act.forward(x, *theta)
    g = rng.standard_normal(y.shape)
    dx = act.backward(x, y, g, *theta)
    fd, an = direction_check(lambda: _loss(act, x, theta, g), [x], [dx], rng, eps=1e-6)
    assert fd == pytest.approx(an, rel=1e-6)


@pytest.mark.parametrize("w0", [0.25, 1.5, -0.3])
def test_prelu_param_grads_match_finite_differences(w0):
    act = get_activation("prelu", init=w0)
    rng = np.random.default_rng(2)
    x = _inputs(act, rng, (5, 4), smooth=False)
    (w,) = act.init_params((3,), 4, np.float64)  # three replicas sharing x
    w += 0.1 * rng.standard_normal(w.shape)
    g = rng.standard_normal((3, 5, 4))
    y = act.forward(x, w)
    (dw,) = act.param_grads(x, y, g, w)
    dx = act.backward(x, y, g, w)
    assert dw.shape == w.shape == (3, 1, 1) and dx.shape == (3, 5, 4)
    want_dx, want_dw = numeric_grads(lambda: _loss(act, x, (w,), g), [x, w])
    np.testing.assert_allclose(dw, want_dw, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(dx.sum(axis=0), want_dx, rtol=1e-6, atol=1e-8)  # x is shared by the replicas


def test_chunked_path_gives_the_same_values_and_gradients(monkeypatch):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((6, 120)) * 3
    g = rng.standard_normal((6, 120))
    whole = {}
    for case in CASES:
        act = _act(case[1], case[2])
        y = act.forward(x, *_theta(act))
        whole[case[0]] = (y, act.backward(x, y, g[..., : y.shape[-1]], *_theta(act)))
    monkeypatch.setattr(A, "_CHUNK_BYTES", 8 * 64)  # 720 float64 elements -> 12 chunks, the last one partial
    for case in CASES:
        act = _act(case[1], case[2])
        y = act.forward(x, *_theta(act))
        dx = act.backward(x, y, g[..., : y.shape[-1]], *_theta(act))
        np.testing.assert_allclose(y, whole[case[0]][0], rtol=1e-14, atol=1e-300, err_msg=case[0])
        np.testing.assert_allclose(dx, whole[case[0]][1], rtol=1e-14, atol=1e-300, err_msg=case[0])


# ---------------------------------------------------------------------------------------------------------
# Stability, out= buffers, dtypes
# ---------------------------------------------------------------------------------------------------------

EXTREMES = np.tile([-1e4, -1e3, -100.0, -30.0, -1.0, -1e-3, 0.0, 1e-3, 1.0, 30.0, 100.0, 1e3, 1e4, -0.5], 3)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_stable_at_plus_minus_1e4(case, dtype):
    act = _act(case[1], case[2])
    x = EXTREMES.astype(dtype).reshape(1, -1)
    theta = _theta(act, dtype=dtype)
    with np.errstate(all="raise"):
        y = act.forward(x, *theta)
        dx = act.backward(x, y, np.ones_like(y), *theta)
    assert y.dtype == dtype and dx.dtype == dtype
    assert np.all(np.isfinite(y)) and np.all(np.isfinite(dx))


def test_saturating_limits_at_1e4():
    x = np.array([-1e4, 1e4])
    expect = {"relu": [0, 1e4], "sigmoid": [0, 1], "tanh": [-1, 1], "softplus": [0, 1e4], "elu": [-1, 1e4],
              "selu": [-LAM * ALP, LAM * 1e4], "gelu": [0, 1e4], "silu": [0, 1e4]}
    for name, want in expect.items():
        np.testing.assert_allclose(ACTIVATIONS[name].forward(x), want, atol=1e-30, err_msg=name)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_out_buffers_give_identical_values(case):
    act = _act(case[1], case[2])
    rng = np.random.default_rng(4)
    for dtype in (np.float32, np.float64):
        x = (rng.standard_normal((7, 12)) * 3).astype(dtype)
        theta = _theta(act, dtype=dtype)
        y = act.forward(x, *theta)
        g = rng.standard_normal(y.shape).astype(dtype)
        dx = act.backward(x, y, g, *theta)
        y_buf, dx_buf = np.full_like(y, np.nan), np.full_like(dx, np.nan)
        assert act.forward(x, *theta, out=y_buf) is y_buf
        assert act.backward(x, y, g, *theta, out=dx_buf) is dx_buf
        np.testing.assert_array_equal(y_buf, y)
        np.testing.assert_array_equal(dx_buf, dx)


def test_float32_agrees_with_float64():
    rng = np.random.default_rng(5)
    x = rng.standard_normal((16, 60)) * 3
    for case in CASES:
        act = _act(case[1], case[2])
        y64 = act.forward(x, *_theta(act))
        y32 = act.forward(x.astype(np.float32), *_theta(act, dtype=np.float32))
        np.testing.assert_allclose(y32, y64, rtol=2e-6, atol=2e-6, err_msg=case[0])


# ---------------------------------------------------------------------------------------------------------
# Closed forms under N(0, 1) and derivative bounds
# ---------------------------------------------------------------------------------------------------------

GRID = np.linspace(-14, 14, 280_001)
PDF = np.exp(-GRID**2 / 2) / math.sqrt(2 * math.pi)


def _mean(name, power=1):
    return np.trapezoid(ACTIVATIONS[name].forward(GRID) ** power * PDF, GRID)


def test_means_under_standard_normal_match_closed_forms():
    phi_m1 = 0.5 * (1 + math.erf(-1 / math.sqrt(2)))
    assert _mean("relu") == pytest.approx(1 / math.sqrt(2 * math.pi), abs=1e-9)
    assert _mean("tanh") == pytest.approx(0.0, abs=1e-12)
    assert _mean("sigmoid") == pytest.approx(0.5, abs=1e-12)
    assert _mean("gelu") == pytest.approx(1 / (2 * math.sqrt(math.pi)), abs=1e-9)  # E[X Phi(X)] = E[phi(X)]
    assert _mean("elu") == pytest.approx(1 / math.sqrt(2 * math.pi) + math.exp(0.5) * phi_m1 - 0.5, abs=1e-9)
    # SELU's constants make (mean 0, variance 1) a fixed point (Klambauer et al. 2017)
    assert _mean("selu") == pytest.approx(0.0, abs=1e-8)
    assert _mean("selu", 2) == pytest.approx(1.0, abs=1e-8)


def test_derivative_maxima():
    for name, top in (("sigmoid", 0.25), ("tanh", 1.0)):
        act = ACTIVATIONS[name]
        d = act.backward(GRID, act.forward(GRID), np.ones_like(GRID))
        assert d.max() == pytest.approx(top, rel=1e-12)
        assert abs(GRID[d.argmax()]) < 1e-3


# ---------------------------------------------------------------------------------------------------------
# erf
# ---------------------------------------------------------------------------------------------------------

def test_erf_float64_within_1e_12_of_math_erf():
    x = np.concatenate([np.linspace(-8, 8, 40_001), np.geomspace(1e-300, 8, 2_001), -np.geomspace(1e-300, 8, 2_001),
                        [0.46875, 4.0, 6.0, -0.46875, -4.0, -6.0]])
    want = np.array([math.erf(v) for v in x])
    err = np.abs(erf(x) - want)
    assert err.max() < 1e-15
    small = (np.abs(x) < 0.1) & (x != 0)
    assert np.max(err[small] / np.abs(want[small])) < 1e-15  # relative near 0 too


def test_erf_float32_and_special_values():
    x = np.linspace(-6, 6, 20_001).astype(np.float32)
    want = np.array([math.erf(v) for v in x.astype(np.float64)])
    got = erf(x)
    assert got.dtype == np.float32 and np.abs(got - want).max() < 6e-7
    for dtype in (np.float32, np.float64):
        special = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 1e4, -1e4], dtype=dtype)
        got = erf(special)
        assert np.isnan(got[0])
        np.testing.assert_array_equal(got[1:], [1, -1, 0, 0, 1, -1])
        assert np.signbit(got[4])
    x = np.linspace(-3, 3, 101)
    np.testing.assert_array_equal(erf(-x), -erf(x))
    y = x.copy()
    assert erf(y, out=y) is y  # in place
    np.testing.assert_array_equal(y, erf(x))


def _ulps_from_exact(x32):
    """|erf32(x) - erf(x)| in units in the last place of the exact value (float64 Cody as the reference)."""
    with np.errstate(all="ignore"):
        got = erf(x32).astype(np.float64)
    want = erf(x32.astype(np.float64))
    ulp = np.spacing(np.abs(want).astype(np.float32)).astype(np.float64)
    return np.abs(got - want) / ulp


def test_erf_float32_within_its_stated_ulps_over_the_whole_float32_range():
    # every 251st positive float32 (8.5 million, all exponents), then inputs where the kernel changes regime
    x = np.arange(0, 0x7F800000, 251, dtype=np.uint32).view(np.float32)
    f32 = np.float32
    edges = np.array([0.0, 1e-45, np.finfo(f32).smallest_normal, 1e-30, 1e-20, 1e-10, 1e-3, 0.5, 1.0, 2.0, 3.92,
                      np.nextafter(f32(4), f32(0)), 4.0, np.nextafter(f32(4), f32(5)), 4.5, 5.0, 1e4,
                      np.finfo(f32).max], dtype=f32)
    dense = np.linspace(0, 6, 600_001, dtype=f32)  # where erf is neither x 2/sqrt(pi) nor 1
    for sample in (x, edges, dense):
        err = _ulps_from_exact(sample)
        assert err.max() <= A.ERF32_MAX_ULP, f"{err.max():.2f} ulp at x = {sample[err.argmax()]!r}"
    with np.errstate(all="ignore"):
        np.testing.assert_array_equal(erf(-x), -erf(x))  # odd, bit for bit
        assert np.all(erf(x[x >= 5]) == 1)


def test_erf_float32_bound_is_not_loose():
    # the stated bound is what the approximation reaches, and the sampling sees an error just above it:
    # q without its last term misses the bound
    x = np.linspace(0, 4.5, 200_001, dtype=np.float32)
    assert 2.0 < _ulps_from_exact(x).max() <= A.ERF32_MAX_ULP
    s = np.minimum(x.astype(np.float64) ** 2, A.ERF32_CLAMP)
    y = np.tanh(x * np.polynomial.Polynomial(A.ERF32_COEFFS[:-1])(s)).astype(np.float32)
    want = erf(x.astype(np.float64))
    assert np.max(np.abs(y - want) / np.spacing(np.abs(want).astype(np.float32))) > A.ERF32_MAX_ULP


# ---------------------------------------------------------------------------------------------------------
# Registry
# ---------------------------------------------------------------------------------------------------------

def test_registry_names_defaults_and_alias():
    assert list(ACTIVATIONS) == ["identity", "relu", "leaky_relu", "prelu", "elu", "selu", "gelu", "silu",
                                 "softplus", "sigmoid", "tanh", "sin", "maxout", "swish"]
    assert set(NAMES) == set(ACTIVATIONS)
    assert ACTIVATIONS["swish"] is ACTIVATIONS["silu"]
    assert dict(ACTIVATIONS["leaky_relu"].hyper) == {"negative_slope": 0.01}
    assert dict(ACTIVATIONS["elu"].hyper) == {"alpha": 1.0}
    assert dict(ACTIVATIONS["gelu"].hyper) == {"approximate": "none"}
    assert dict(ACTIVATIONS["softplus"].hyper) == {"beta": 1.0, "threshold": 20.0}
    assert dict(ACTIVATIONS["prelu"].hyper) == {"init": 0.25}
    assert ACTIVATIONS["maxout"].pieces == 2 and ACTIVATIONS["relu"].pieces == 1
    for name, act in ACTIVATIONS.items():
        assert (act.init_params is None) == (act.param_grads is None) == (name != "prelu")
        assert getattr(act.forward, "func", act.forward).__doc__


def test_get_activation_rebinds_and_validates():
    act = get_activation("leaky_relu", negative_slope=0.2)
    assert act.hyper["negative_slope"] == 0.2
    np.testing.assert_allclose(act.forward(np.array([-1.0, 2.0])), [-0.2, 2.0])
    assert get_activation("relu") is ACTIVATIONS["relu"]
    assert get_activation("maxout", pieces=3).pieces == 3
    (w,) = get_activation("prelu", init=0.1).init_params((2,), 8, np.float32)
    assert w.shape == (2, 1, 1) and w.dtype == np.float32 and np.all(w == np.float32(0.1))
    with pytest.raises(UnknownName, match="valid: .*relu"):
        get_activation("rellu")
    for name, hyper in [("relu", {"alpha": 1}), ("leaky_relu", {"negative_slope": "steep"}),
                        ("gelu", {"approximate": "sigmoid"}), ("maxout", {"pieces": 0}), ("maxout", {"pieces": 2.5}),
                        ("softplus", {"beta": 0}), ("elu", {"alpha": float("nan")}), ("swish", {"beta": 2})]:
        with pytest.raises(DlbenchError):
            get_activation(name, **hyper)
    with pytest.raises(DlbenchError, match="divisible"):
        ACTIVATIONS["maxout"].forward(np.zeros((2, 5)))


# ---------------------------------------------------------------------------------------------------------
# torch, when it is installed (CI has no torch; the tests above carry the same checks)
# ---------------------------------------------------------------------------------------------------------

def _torch_fn(torch, name, hyper):
    F = torch.nn.functional
    return {
        "identity": lambda t: t * 1, "relu": F.relu, "leaky_relu": lambda t: F.leaky_relu(t, **hyper),
        "elu": lambda t: F.elu(t, **hyper), "selu": F.selu, "gelu": lambda t: F.gelu(t, **hyper), "silu": F.silu,
        "softplus": lambda t: F.softplus(t, **hyper), "sigmoid": torch.sigmoid, "tanh": torch.tanh, "sin": torch.sin,
        "maxout": lambda t: t.unflatten(-1, (-1, hyper["pieces"])).max(-1).values,
    }.get(name)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_matches_torch_functional(dtype):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(6)
    x = (rng.standard_normal((32, 60)) * 4).astype(dtype)
    # float32: 1 ulp of tanh(u) near -1 times tanh-gelu's |du/dx| ~ 20 at x ~ -5 gives ~2e-6
    tol = dict(rtol=1e-12, atol=1e-14) if dtype == np.float64 else dict(rtol=2e-6, atol=1e-5)
    for case in CASES:
        act = _act(case[1], case[2])
        fn = _torch_fn(torch, act.name, dict(act.hyper))
        if act.name == "prelu":
            w = torch.tensor([0.25], dtype=torch.float64 if dtype == np.float64 else torch.float32)
            fn = lambda t, w=w: torch.nn.functional.prelu(t, w)  # noqa: E731
        y = act.forward(x, *_theta(act, dtype=dtype))
        g = rng.standard_normal(y.shape).astype(dtype)
        dx = act.backward(x, y, g, *_theta(act, dtype=dtype))
        t = torch.tensor(x, requires_grad=True)
        ty = fn(t)
        ty.backward(torch.tensor(g))
        np.testing.assert_allclose(y, ty.detach().numpy(), **tol, err_msg=case[0])
        np.testing.assert_allclose(dx, t.grad.numpy(), **tol, err_msg=case[0])


def test_prelu_param_grads_match_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(7)
    x, g = rng.standard_normal((10, 6)), rng.standard_normal((10, 6))
    w = np.array([[0.3]])
    tx, tw = torch.tensor(x, requires_grad=True), torch.tensor([0.3], dtype=torch.float64, requires_grad=True)
    torch.nn.functional.prelu(tx, tw).backward(torch.tensor(g))
    y = A.prelu_forward(x, w)
    np.testing.assert_allclose(A.prelu_param_grads(x, y, g, w)[0].ravel(), tw.grad.numpy(), rtol=1e-12)
    np.testing.assert_allclose(A.prelu_backward(x, y, g, w), tx.grad.numpy(), rtol=1e-12)


@pytest.mark.parametrize("chunk_bytes", [None, 8 * 64])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_relu_and_leaky_relu_backward_are_bit_identical_to_g_times_slope(dtype, chunk_bytes, monkeypatch):
    if chunk_bytes is not None:
        monkeypatch.setattr(A, "_CHUNK_BYTES", chunk_bytes)
    rng = np.random.default_rng(8)
    x = rng.standard_normal((9, 130)).astype(dtype)
    g = rng.standard_normal(x.shape).astype(dtype)
    x.flat[:6] = (0.0, -0.0, np.nan, np.inf, -np.inf, 1e-45)
    g.flat[:12] = (-1.0, -2.0, -3.0, 4.0, -5.0, 6.0, np.inf, -np.inf, np.nan, -0.0, 0.0, -7.0)
    x.flat[6:12] = -1.0  # the non-finite and signed-zero gradients on the slope side
    bits = lambda a: a.view(np.uint32 if a.dtype == np.float32 else np.uint64)  # noqa: E731
    with np.errstate(invalid="ignore"):
        want = g * (x > 0).astype(dtype)
        np.testing.assert_array_equal(bits(A.relu_backward(x, None, g)), bits(want))
        for a in (0.01, 0.0, 0.2, 1.0):  # the max-of-mask branch; NaN x takes slope a there
            want = g * np.where(x > 0, dtype(1), dtype(a))
            got = A.leaky_relu_backward(x, None, g, negative_slope=a)
            np.testing.assert_array_equal(bits(got), bits(want), err_msg=str(a))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_kernel_threads_give_the_same_bits(dtype, monkeypatch):
    from dlbench.nn import parallel

    monkeypatch.setattr(A, "_CHUNK_BYTES", 8 * 64)                   # 64 or 128 elements per chunk
    monkeypatch.setattr(parallel, "MIN_PARALLEL_ELEMS", 256)
    rng = np.random.default_rng(9)
    x = (rng.standard_normal((30, 120)) * 3).astype(dtype)
    g = rng.standard_normal(x.shape).astype(dtype)
    for case in CASES:
        act = _act(case[1], case[2])
        theta = _theta(act, dtype=dtype)
        gy = g[..., : x.shape[-1] // act.pieces]
        y1 = act.forward(x, *theta)
        dx1 = act.backward(x, y1, gy, *theta)
        with parallel.kernel_threads(3):
            y3 = act.forward(x, *theta)
            dx3 = act.backward(x, y3, gy, *theta)
        np.testing.assert_array_equal(y3, y1, err_msg=case[0])
        np.testing.assert_array_equal(dx3, dx1, err_msg=case[0])
