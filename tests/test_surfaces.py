"""Surfaces: analytic gradients against finite differences, known minima, layout, the cliff and the canyon."""

import math

import numpy as np
import pytest

from dlbench.errors import DlbenchError, UnknownName
from dlbench.surfaces import SURFACES, Surface, get_surface

CASES = [(name, {}) for name in SURFACES] + [
    ("saddle", {"dim": 5}),
    ("quadratic", {"kappa": 30.0, "dim": 3}),
    ("rastrigin", {"dim": 3, "a": 5.0}),
    ("canyon", {"kappa": 200.0}),
    ("canyon", {"kappa": 100.0, "bend": 0.5}),
    ("cliff", {"height": 5.0, "sharpness": 20.0, "center": 0.5}),
    ("rosenbrock", {"a": -0.5, "b": 10.0}),
]
IDS = [name + "".join(f"-{k}={v}" for k, v in hyper.items()) for name, hyper in CASES]


def sample(s: Surface, rng, shape) -> np.ndarray:
    """Points of shape (d, *shape) in the start box widened to at least [-1, 1] per coordinate."""
    lo = np.minimum(s.start_low, -1.0).reshape((-1,) + (1,) * len(shape))
    hi = np.maximum(s.start_high, 1.0).reshape((-1,) + (1,) * len(shape))
    return rng.uniform(lo, hi, (s.dim, *shape))


def central_differences(s: Surface, Z: np.ndarray, h: float = 1e-6) -> np.ndarray:
    fd = np.empty_like(Z)
    for i in range(s.dim):
        e = np.zeros((s.dim,) + (1,) * (Z.ndim - 1))
        e[i] = h
        fd[i] = (s.value(Z + e) - s.value(Z - e)) / (2 * h)
    return fd


@pytest.mark.parametrize("name, hyper", CASES, ids=IDS)
def test_grad_matches_central_differences_everywhere(name, hyper):
    s = get_surface(name, **hyper)
    Z = sample(s, np.random.default_rng(0), (4, 3))
    g = s.grad(Z)
    fd = central_differences(s, Z)
    scale = 1.0 + np.abs(s.value(Z)).max()
    np.testing.assert_allclose(g, fd, rtol=1e-6, atol=1e-9 * scale)


@pytest.mark.parametrize("name, hyper", CASES, ids=IDS)
def test_grad_matches_a_random_direction_on_many_points(name, hyper):
    s = get_surface(name, **hyper)
    rng = np.random.default_rng(1)
    Z = sample(s, rng, (500,))
    v = rng.standard_normal(Z.shape)
    h = 1e-6
    fd = (s.value(Z + h * v) - s.value(Z - h * v)) / (2 * h)
    dd = np.sum(s.grad(Z) * v, axis=0)
    scale = 1.0 + np.abs(s.value(Z))
    np.testing.assert_array_less(np.abs(dd - fd), 1e-6 * np.abs(dd) + 1e-9 * scale)


@pytest.mark.parametrize("name, hyper", CASES, ids=IDS)
def test_layout_out_buffer_dtype_and_single_point(name, hyper):
    s = get_surface(name, **hyper)
    assert isinstance(s, Surface) and s.name == name
    assert s.minima.ndim == 2 and s.minima.shape[1] == s.dim
    assert s.start_low.shape == s.start_high.shape == (s.dim,) and np.all(s.start_low < s.start_high)
    assert 0 <= s.steep_axis < s.dim and s.description
    Z = sample(s, np.random.default_rng(2), (6, 2))
    assert s.value(Z).shape == (6, 2)
    g = s.grad(Z)
    out = np.full_like(Z, np.nan)
    assert s.grad(Z, out=out) is out
    np.testing.assert_array_equal(out, g)
    # coordinates first: one point at a time gives the same numbers
    np.testing.assert_allclose(s.grad(Z[:, 3, 1]), g[:, 3, 1], rtol=1e-14)
    np.testing.assert_allclose(s.value(Z[:, 3, 1]), s.value(Z)[3, 1], rtol=1e-14)
    out1 = np.empty(s.dim)
    assert s.grad(Z[:, 0, 0], out=out1) is out1
    # float32 in, float32 out, close to float64
    Z32 = Z.astype(np.float32)
    g32, f32 = s.grad(Z32), s.value(Z32)
    assert g32.dtype == np.float32 and f32.dtype == np.float32
    np.testing.assert_allclose(g32, s.grad(Z32.astype(np.float64)), rtol=2e-3, atol=2e-3 * (1 + np.abs(g).max()))


WITH_MINIMA = [(c, i) for c, i in zip(CASES, IDS) if c[0] != "saddle"]


@pytest.mark.parametrize("name, hyper", [c for c, _ in WITH_MINIMA], ids=[i for _, i in WITH_MINIMA])
def test_known_minima_have_zero_gradient_and_nothing_lower_nearby(name, hyper):
    s = get_surface(name, **hyper)
    assert len(s.minima) >= 1
    rng = np.random.default_rng(3)
    for m in s.minima:
        np.testing.assert_allclose(s.grad(m), 0.0, atol=1e-9)
        assert s.value(m) == pytest.approx(s.min_value, abs=1e-12)
        for radius in (1e-2, 1e-4):
            v = rng.standard_normal((s.dim, 200))
            v *= radius / np.linalg.norm(v, axis=0)
            assert np.all(s.value(m[:, None] + v) >= s.min_value - 1e-12)


def test_saddle_is_a_critical_point_with_both_curvature_signs():
    for dim in (2, 3, 6):
        s = get_surface("saddle", dim=dim)
        np.testing.assert_array_equal(s.grad(np.zeros(dim)), 0.0)
        assert s.minima.shape == (0, dim) and s.min_value == -math.inf
        curvature = s.grad(np.eye(dim))  # column j = grad at e_j = Hessian column j
        np.testing.assert_array_equal(np.diag(curvature), [2.0 if i % 2 == 0 else -2.0 for i in range(dim)])
        assert np.all(s.start_low < 0) and np.all(s.start_high > 0)
        assert np.all(s.start_high[1::2] <= 1e-3) and np.all(s.start_high[0::2] == 1.0)
    s = get_surface("saddle")
    x, y = np.array([[0.3, -1.0], [0.7, 2.0]])
    np.testing.assert_allclose(s.value(np.stack([x, y])), x * x - y * y, rtol=1e-15)


def test_quadratic_and_canyon_curvatures():
    s = get_surface("quadratic", kappa=1000.0, dim=4)
    lam = np.diag(s.grad(np.eye(4)))
    np.testing.assert_allclose(lam, [1.0, 10.0, 100.0, 1000.0], rtol=1e-12)
    assert s.steep_axis == 3
    c = get_surface("canyon", kappa=50.0)
    np.testing.assert_allclose(np.diag(c.grad(np.eye(2))), [1.0, 50.0])
    assert c.steep_axis == 1 and c.hyper == {"kappa": 50.0}
    assert get_surface("canyon").hyper["kappa"] == 50.0


def test_winding_canyon_has_curvature_kappa_across_its_floor():
    from dlbench.surfaces import across_floor

    c = get_surface("canyon", kappa=100.0, bend=0.3)
    x = np.linspace(-3.0, 3.0, 7)
    floor = np.stack([x, 0.3 * np.sin(x)])
    np.testing.assert_allclose(c.value(floor), 0.5 * x * x, rtol=1e-12)        # the floor y = bend sin x
    np.testing.assert_allclose(across_floor(c, floor), 0.0, atol=1e-15)
    h = 1e-4   # along y, off the floor: f rises as kappa/2 u^2
    np.testing.assert_allclose((c.value(floor + [[0], [h]]) - c.value(floor)) / (0.5 * h * h), 100.0, rtol=1e-6)
    assert c.steep_axis == 1 and c.hyper == {"kappa": 100.0, "bend": 0.3}
    np.testing.assert_array_equal(across_floor(get_surface("canyon"), floor), floor[1])   # straight: u is y


def test_known_values():
    pts = np.array([[0.0, 0.5, 1.0], [0.0, 0.5, 2.0]])
    np.testing.assert_allclose(get_surface("rosenbrock").value(pts), [1.0, 0.25 + 100 * 0.0625, 100.0])
    assert get_surface("beale").value(np.zeros(2)) == pytest.approx(1.5**2 + 2.25**2 + 2.625**2)
    assert get_surface("himmelblau").value(np.zeros(2)) == pytest.approx(170.0)
    assert get_surface("rastrigin").value(np.full(2, 0.5)) == pytest.approx(20.0 + 2 * (0.25 + 10.0))


def test_himmelblau_has_four_distinct_zero_minima():
    s = get_surface("himmelblau")
    assert s.minima.shape == (4, 2) and s.min_value == 0.0
    np.testing.assert_allclose(s.value(s.minima.T), 0.0, atol=1e-20)
    dist = np.linalg.norm(s.minima[:, None] - s.minima[None], axis=-1)
    assert np.all(dist + np.eye(4) * 10 > 1.0)
    np.testing.assert_allclose(s.minima[0], [3.0, 2.0])


def test_cliff_wall_is_steep_and_throws_unclipped_descent_far():
    s = get_surface("cliff")
    wall = np.linalg.norm(s.grad(np.array([[0.0], [0.0]])), axis=0)[0]
    assert wall == pytest.approx(25.0 * 100.0 / 4 - 1.0)
    rng = np.random.default_rng(4)
    Z0 = rng.uniform(s.start_low[:, None], s.start_high[:, None], (2, 200))
    assert np.linalg.norm(s.grad(Z0), axis=0).max() < wall / 100
    assert s.minima[0, 0] < 0 and s.steep_axis == 0

    def largest_step(clip: float | None, lr: float = 0.1, steps: int = 200):
        Z, g, big = Z0.copy(), np.empty_like(Z0), np.zeros(Z0.shape[1])
        for _ in range(steps):
            s.grad(Z, out=g)
            norm = np.linalg.norm(g, axis=0)
            if clip is not None:
                g *= np.minimum(1.0, clip / (norm + 1e-6))
                norm = np.linalg.norm(g, axis=0)
            big = np.maximum(big, lr * norm)
            Z -= lr * g
        return big, s.value(Z)

    big, loss = largest_step(None)
    big_clipped, loss_clipped = largest_step(1.0)
    assert np.median(big) > 10.0  # thrown tens of units by one step
    assert big_clipped.max() <= 0.1 + 1e-9
    assert np.median(loss_clipped) < np.median(loss)


def test_registry_and_errors():
    assert list(SURFACES) == ["saddle", "cliff", "canyon", "quadratic", "rosenbrock", "beale", "himmelblau",
                              "rastrigin"]
    with pytest.raises(UnknownName, match="valid: beale"):
        get_surface("mountain")
    with pytest.raises(DlbenchError, match="unknown hyperparameter 'kapa'"):
        get_surface("canyon", kapa=3)
    for name, bad in [("canyon", {"kappa": 0.5}), ("quadratic", {"dim": 0}), ("saddle", {"dim": 1}),
                      ("quadratic", {"dim": 2.5}), ("cliff", {"sharpness": -1.0}), ("rastrigin", {"a": "x"})]:
        with pytest.raises(DlbenchError):
            get_surface(name, **bad)
    assert get_surface("quadratic", dim="3", kappa="10").dim == 3
    with pytest.raises(DlbenchError, match=r"shape \(2, \.\.\.\)"):
        get_surface("rosenbrock").value(np.zeros((3, 4)))
