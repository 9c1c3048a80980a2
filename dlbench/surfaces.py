"""Analytic loss surfaces: value and gradient vectorized over many points at once.

Layout is coordinates first: Z has shape (d, ...) so that Z[0], Z[1], ... are contiguous arrays over all
points (P starting points as Z of shape (d, P); a grid as (d, H, W)). ``value(Z)`` has shape Z.shape[1:];
``grad(Z, out=None)`` has Z's shape and dtype and writes into ``out`` when given (out must not alias Z).
float32 and float64 both work; constants are Python floats so float32 stays float32. The layout is what
makes many-start trajectories cheap: each kernel is a few whole-array ufunc passes (Adam on Rosenbrock,
1,000 starts: hundreds of times a Python loop over points; see benchmarks/bench_optim.py).
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np

from dlbench.errors import DlbenchError
from dlbench.registry import Registry


@dataclass(frozen=True, eq=False)
class Surface:
    name: str
    dim: int
    hyper: Mapping[str, float]
    description: str
    value: Callable  # value(Z) -> f, shape Z.shape[1:]
    grad: Callable  # grad(Z, out=None) -> same shape as Z
    minima: np.ndarray  # (m, d) known global minima; (0, d) when there is none
    min_value: float  # -inf when unbounded below
    start_low: np.ndarray  # (d,) sensible start box
    start_high: np.ndarray
    steep_axis: int  # coordinate of largest |curvature| at the first minimum (saddle: at the saddle point)


SURFACES: Registry[Callable[..., Surface]] = Registry("surface")


def get_surface(name: str, **hyper) -> Surface:
    """The registered surface `name` with hyperparameters bound; unknown hyperparameter -> DlbenchError."""
    factory = SURFACES[name]
    valid = list(inspect.signature(factory).parameters)
    unknown = [k for k in hyper if k not in valid]
    if unknown:
        raise DlbenchError(
            f"unknown hyperparameter {unknown[0]!r} for surface {name!r}; valid: {', '.join(valid) or 'none'}")
    return factory(**hyper)


# --------------------------------------------------------------------------- helpers


def _float(surface: str, key: str, value, low: float | None = None, strict: bool = False) -> float:
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise DlbenchError(f"{surface}: {key} must be a number, got {value!r}") from None
    if not math.isfinite(x) or (low is not None and (x <= low if strict else x < low)):
        bound = f"> {low:g}" if strict else f">= {low:g}"
        raise DlbenchError(f"{surface}: {key} must be finite and {bound}, got {value!r}")
    return x


def _int(surface: str, key: str, value, low: int) -> int:
    try:
        n = int(value)
    except (TypeError, ValueError):
        raise DlbenchError(f"{surface}: {key} must be an integer, got {value!r}") from None
    if n != value and not isinstance(value, str) or n < low:
        raise DlbenchError(f"{surface}: {key} must be an integer >= {low}, got {value!r}")
    return n


def _input(Z, d: int) -> np.ndarray:
    if Z.__class__ is not np.ndarray or Z.dtype.kind != "f":
        Z = np.asarray(Z)
        if Z.dtype.kind != "f":
            Z = Z.astype(np.float64)
    if not Z.shape or Z.shape[0] != d:
        raise DlbenchError(f"points must have shape ({d}, ...) (coordinates first), got {Z.shape}")
    return Z


def _vectorized(d: int, value: Callable, grad: Callable) -> tuple[Callable, Callable]:
    """Public value/grad from kernels that take a float array of shape (d, N, ...) and, for grad, an `out`."""

    def value_(Z):
        Z = _input(Z, d)
        return value(Z[:, None])[0] if Z.ndim == 1 else value(Z)

    def grad_(Z, out=None):
        Z = _input(Z, d)
        if Z.ndim == 1:  # one point: give the kernels a (d, 1) view
            res = grad(Z[:, None], np.empty((d, 1), Z.dtype) if out is None else out[:, None])
            return res[:, 0] if out is None else out
        return grad(Z, np.empty_like(Z) if out is None else out)

    value_.__doc__ = "value(Z) -> f of shape Z.shape[1:]; Z coordinates first, shape (d, ...)."
    grad_.__doc__ = "grad(Z, out=None) -> df/dZ, shape and dtype of Z; written into `out` when given."
    return value_, grad_


def _steep_axis(grad: Callable, point: np.ndarray) -> int:
    """argmax_i |d2f/dz_i^2| at `point`, by central differences of the analytic gradient."""
    d = point.size
    h = 1e-5 * (1.0 + np.abs(point))
    Zp = point[:, None] + np.diag(h)
    Zm = point[:, None] - np.diag(h)
    curv = (np.diag(grad(Zp)) - np.diag(grad(Zm))) / (2 * h)
    return int(np.argmax(np.abs(curv))) if d else 0


def _make(name, hyper, description, value, grad, minima, start_low, start_high, min_value=None,
          steep_at=None) -> Surface:
    d = len(start_low)
    value, grad = _vectorized(d, value, grad)
    minima = np.asarray(minima, dtype=np.float64).reshape(-1, d)
    if min_value is None:
        min_value = float(value(minima[0])) if len(minima) else -math.inf
    at = minima[0] if steep_at is None else np.asarray(steep_at, dtype=np.float64)
    return Surface(name, d, dict(hyper), description, value, grad, minima, float(min_value),
                   np.asarray(start_low, dtype=np.float64), np.asarray(start_high, dtype=np.float64),
                   _steep_axis(grad, at))


def _diagonal_quadratic(curvature: np.ndarray) -> tuple[Callable, Callable]:
    """f(z) = 1/2 sum_i c_i z_i^2 and its gradient c * z, for a fixed curvature vector c."""
    d = len(curvature)
    half = 0.5 * curvature

    def column(c, Z):
        return c.reshape((d,) + (1,) * (Z.ndim - 1)).astype(Z.dtype, copy=False)

    def value(Z):
        return np.sum(column(half, Z) * Z * Z, axis=0)

    def grad(Z, out):
        return np.multiply(Z, column(curvature, Z), out=out)

    return value, grad


# --------------------------------------------------------------------------- the notes' three


@SURFACES.register("saddle")
def saddle(dim=2) -> Surface:
    """f(z) = sum_i s_i z_i^2 with s_i = +1 for even i and -1 for odd i: x^2 - y^2 in two dimensions.

    A quadratic saddle of mixed curvature (Hessian eigenvalues +2 and -2 alternating), critical point at
    the origin, unbounded below, so `minima` is empty and min_value is -inf. The start box lies near the
    saddle's stable manifold: stable coordinates in [-1, 1], unstable ones within 1e-3 of 0, so descent
    first approaches the saddle and then has to escape it (Dauphin et al. 2014).
    """
    n = _int("saddle", "dim", dim, 2)
    signs = np.where(np.arange(n) % 2 == 0, 1.0, -1.0)
    value, grad = _diagonal_quadratic(2.0 * signs)
    far = np.where(signs > 0, 1.0, 1e-3)
    desc = ("x^2 - y^2 saddle" if n == 2 else f"{n}-d quadratic saddle, curvatures +2/-2 alternating") + \
        "; critical point at 0, unbounded below (Dauphin et al. 2014)"
    return _make("saddle", {"dim": n}, desc, value, grad, np.empty((0, n)), -far, far,
                 min_value=-math.inf, steep_at=np.zeros(n))


@SURFACES.register("cliff")
def cliff(height=25.0, sharpness=100.0, center=1.0) -> Surface:
    """A quadratic bowl cut by a steep logistic wall (a cliff), after Pascanu, Mikolov & Bengio (2013).

        f(x, y) = 1/2 ((x - center)^2 + y^2) + height * sigmoid(sharpness * x)

    The wall at x = 0 rises by `height` over a width ~ 4/sharpness; its largest slope is
    height * sharpness / 4 (625 by default, against bowl slopes of 1-4 in the start box). The bowl's
    centre lies behind the wall (x = center > 0), so descent from the start box x in [-3, -1], y in
    [-1, 1] runs downhill into the wall's foot, where the global minimum sits (found by bisection:
    (-0.0775, 0), value 0.591 by default). A step that lands on the face meets a gradient of up to 625 and
    is thrown back by up to lr * 625 (plain gradient descent at lr = 0.1 gets thrown ~60 units): the
    catapult that gradient clipping prevents. Behind the wall there is a local minimum on the plateau
    near (center, 0), of value ~ height.

    This is a 2-d caricature of their one-unit RNN loss, where x_T jumps between two attractors across a
    narrow band of (w, b) — a smoothed step in parameter space — rather than that surface itself.
    """
    h = _float("cliff", "height", height, 0.0, strict=True)
    k = _float("cliff", "sharpness", sharpness, 0.0, strict=True)
    c = _float("cliff", "center", center, 0.0)
    peak = 0.25 * h * k  # largest wall slope, at x = 0
    if peak <= c:
        raise DlbenchError("cliff: height * sharpness / 4 must exceed center so the wall stops the descent")
    half_k = 0.5 * k

    def value(Z):
        x, y = Z[0], Z[1]
        t = np.tanh(half_k * x)  # sigmoid(kx) = (1 + tanh(kx/2)) / 2, no overflow at any x
        t += 1.0
        t *= 0.5 * h
        u = x - c
        u *= u
        u += y * y
        u *= 0.5
        u += t
        return u

    def grad(Z, out):
        x, gx = Z[0], out[0]
        np.multiply(x, half_k, out=gx)
        np.tanh(gx, out=gx)
        np.multiply(gx, gx, out=gx)
        np.subtract(1.0, gx, out=gx)  # h k sigmoid' (kx) = (h k / 4) (1 - tanh^2(kx/2))
        gx *= peak
        gx += x
        gx -= c
        np.copyto(out[1], Z[1])
        return out

    def slope(x: float) -> float:
        return x - c + peak * (1.0 - math.tanh(half_k * x) ** 2)

    lo, hi = c - peak - 1.0, 0.0  # slope(lo) < 0 < slope(0); slope is increasing on x < 0
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if slope(mid) < 0:
            lo = mid
        else:
            hi = mid
    x_min = lo if abs(slope(lo)) <= abs(slope(hi)) else hi
    desc = (f"bowl 1/2((x-{c:g})^2+y^2) + {h:g}*sigmoid({k:g}x): a wall of slope up to {peak:g} at x=0 "
            "(after Pascanu, Mikolov & Bengio 2013)")
    return _make("cliff", {"height": h, "sharpness": k, "center": c}, desc, value, grad,
                 [[x_min, 0.0]], [-3.0, -1.0], [-1.0, 1.0])


@SURFACES.register("canyon")
def canyon(kappa=50.0, bend=0.0) -> Surface:
    """An elongated valley: f(x, y) = 1/2 (x^2 + kappa * (y - bend * sin x)^2), condition number kappa, steep axis y.

    bend = 0 (the default) is the quadratic 1/2 (x^2 + kappa y^2): gradient descent with its best constant step
    contracts the error by (kappa-1)/(kappa+1) per step; heavy-ball momentum with its best parameters by
    (sqrt(kappa)-1)/(sqrt(kappa)+1) (Polyak 1964). bend > 0 winds the floor along y = bend * sin x, so the steep
    direction turns along the floor and the two axes no longer decouple; across the floor (u = y - bend sin x) the
    curvature is kappa (1 + bend^2 cos^2 x) on the floor. Start box x in [-10, 10], y in [-1, 1]: far along the
    floor, up the walls. Minimum (0, 0), value 0.
    """
    kap = _float("canyon", "kappa", kappa, 1.0)
    c = _float("canyon", "bend", bend, 0.0)
    if c == 0.0:
        value, grad = _diagonal_quadratic(np.array([1.0, kap]))
        desc = f"valley 1/2(x^2 + {kap:g} y^2): condition number {kap:g}, steep axis y"
        return _make("canyon", {"kappa": kap}, desc, value, grad, [[0.0, 0.0]], [-10.0, -1.0], [10.0, 1.0])

    def value(Z):
        x, y = Z[0], Z[1]
        u = y - c * np.sin(x)
        return 0.5 * (x * x + kap * u * u)

    def grad(Z, out):
        # u = y - c sin x;  df/dy = kappa u;  df/dx = x - kappa u c cos x
        x, y = Z[0], Z[1]
        gx, gy = out[0], out[1]
        np.sin(x, out=gy)
        gy *= -c
        gy += y
        gy *= kap
        np.cos(x, out=gx)
        gx *= gy
        gx *= -c
        gx += x
        return out

    desc = f"winding valley 1/2(x^2 + {kap:g} (y - {c:g} sin x)^2): condition number {kap:g} across a floor that bends"
    return _make("canyon", {"kappa": kap, "bend": c}, desc, value, grad, [[0.0, 0.0]], [-10.0, -1.0], [10.0, 1.0],
                 min_value=0.0)


def across_floor(surface: Surface, Z: np.ndarray) -> np.ndarray:
    """The canyon's across-floor coordinate u = y - bend sin x (y itself on the straight canyon), Z (2, ...)."""
    c = float(surface.hyper.get("bend", 0.0))
    return Z[1] - c * np.sin(Z[0]) if c else Z[1]


# --------------------------------------------------------------------------- test functions


@SURFACES.register("quadratic")
def quadratic(kappa=100.0, dim=10) -> Surface:
    """f(z) = 1/2 sum_i lambda_i z_i^2, lambda log-spaced from 1 to kappa (lambda_i = kappa^(i/(dim-1))).

    The Hessian's condition number is kappa; the last coordinate is the steepest. Start box [-1, 1]^dim.
    """
    kap = _float("quadratic", "kappa", kappa, 1.0)
    n = _int("quadratic", "dim", dim, 1)
    lam = np.logspace(0.0, math.log10(kap), n) if n > 1 else np.ones(1)
    value, grad = _diagonal_quadratic(lam)
    desc = f"{n}-d quadratic, curvatures log-spaced 1..{kap:g} (condition number {kap:g})"
    return _make("quadratic", {"kappa": kap, "dim": n}, desc, value, grad, np.zeros((1, n)),
                 -np.ones(n), np.ones(n))


@SURFACES.register("rosenbrock")
def rosenbrock(a=1.0, b=100.0) -> Surface:
    """Rosenbrock's banana valley (Rosenbrock 1960): f(x, y) = (a - x)^2 + b (y - x^2)^2.

    Minimum (a, a^2) with value 0 at the end of a flat, curved valley. Start box [-2, 2] x [-1, 3].
    """
    a = _float("rosenbrock", "a", a)
    b = _float("rosenbrock", "b", b, 0.0, strict=True)
    two_b = 2.0 * b

    def value(Z):
        x, y = Z[0], Z[1]
        r = x * x
        np.subtract(y, r, out=r)
        r *= r
        r *= b
        u = a - x
        u *= u
        r += u
        return r

    def grad(Z, out):
        # dy = 2b (y - x^2);  dx = -2 (a - x) - 4b x (y - x^2) = 2 (x - x*dy - a)
        x, y = Z[0], Z[1]
        gx, gy = out[0], out[1]
        np.multiply(x, x, out=gy)
        np.subtract(y, gy, out=gy)
        gy *= two_b
        np.multiply(x, gy, out=gx)
        np.subtract(x, gx, out=gx)
        gx -= a
        gx *= 2.0
        return out

    desc = f"Rosenbrock (a={a:g}, b={b:g}): curved flat valley, minimum ({a:g}, {a * a:g}) (Rosenbrock 1960)"
    return _make("rosenbrock", {"a": a, "b": b}, desc, value, grad, [[a, a * a]], [-2.0, -1.0], [2.0, 3.0],
                 min_value=0.0)


_BEALE_C = (1.5, 2.25, 2.625)


@SURFACES.register("beale")
def beale() -> Surface:
    """Beale's function: f = (1.5 - x + xy)^2 + (2.25 - x + xy^2)^2 + (2.625 - x + xy^3)^2.

    Minimum (3, 0.5), value 0; flat plateaus and sharp ridges near the corners. Start box [-4.5, 4.5]^2.
    """

    def terms(x, y):
        y2 = y * y
        y3 = y2 * y  # never y**3 in a hot kernel
        return y2, y3, (_BEALE_C[0] - x + x * y, _BEALE_C[1] - x + x * y2, _BEALE_C[2] - x + x * y3)

    def value(Z):
        _, _, (t1, t2, t3) = terms(Z[0], Z[1])
        return t1 * t1 + t2 * t2 + t3 * t3

    def grad(Z, out):
        # df/dx = 2 sum t_i (y^i - 1);  df/dy = 2 x sum i t_i y^(i-1)
        x, y = Z[0], Z[1]
        y2, y3, (t1, t2, t3) = terms(x, y)
        gx = t1 * (y - 1.0) + t2 * (y2 - 1.0) + t3 * (y3 - 1.0)
        np.multiply(gx, 2.0, out=out[0])
        gy = t1 + 2.0 * t2 * y + 3.0 * t3 * y2
        gy *= x
        np.multiply(gy, 2.0, out=out[1])
        return out

    return _make("beale", {}, "Beale's function: plateaus and ridges, minimum (3, 0.5)", value, grad,
                 [[3.0, 0.5]], [-4.5, -4.5], [4.5, 4.5], min_value=0.0)


def _himmelblau_parts(x, y):
    a = x * x + y - 11.0
    b = x + y * y - 7.0
    return a, b


def _himmelblau_minima() -> np.ndarray:
    """The four zeros of Himmelblau's function, polished by Newton's method on the gradient."""
    P = np.array([[3.0, 2.0], [-2.805118, 3.131312], [-3.779310, -3.283186], [3.584428, -1.848126]]).T
    for _ in range(8):
        x, y = P
        a, b = _himmelblau_parts(x, y)
        gx, gy = 4 * x * a + 2 * b, 2 * a + 4 * y * b
        hxx, hyy, hxy = 4 * a + 8 * x * x + 2, 4 * b + 8 * y * y + 2, 4 * (x + y)
        det = hxx * hyy - hxy * hxy
        P = P - np.array([(hyy * gx - hxy * gy) / det, (hxx * gy - hxy * gx) / det])
    return P.T.copy()


@SURFACES.register("himmelblau")
def himmelblau() -> Surface:
    """Himmelblau's function (Himmelblau 1972): f = (x^2 + y - 11)^2 + (x + y^2 - 7)^2.

    Four global minima of value 0, at (3, 2), (-2.805, 3.131), (-3.779, -3.283), (3.584, -1.848): a
    family of equally good solutions. Start box [-5, 5]^2.
    """

    def value(Z):
        a, b = _himmelblau_parts(Z[0], Z[1])
        return a * a + b * b

    def grad(Z, out):
        # df/dx = 4 x a + 2 b;  df/dy = 2 a + 4 y b
        x, y = Z[0], Z[1]
        a, b = _himmelblau_parts(x, y)
        gx, gy = out[0], out[1]
        np.multiply(x, a, out=gx)
        gx *= 2.0
        gx += b
        gx *= 2.0
        np.multiply(y, b, out=gy)
        gy *= 2.0
        gy += a
        gy *= 2.0
        return out

    return _make("himmelblau", {}, "Himmelblau's function: four global minima of value 0 (Himmelblau 1972)",
                 value, grad, _himmelblau_minima(), [-5.0, -5.0], [5.0, 5.0], min_value=0.0)


@SURFACES.register("rastrigin")
def rastrigin(dim=2, a=10.0) -> Surface:
    """Rastrigin's function: f(z) = a*dim + sum_i (z_i^2 - a cos(2 pi z_i)).

    A bowl covered in a lattice of local minima (near every integer point); global minimum 0 at the
    origin. Gradient 2 z_i + 2 pi a sin(2 pi z_i). Start box [-5.12, 5.12]^dim.
    """
    n = _int("rastrigin", "dim", dim, 1)
    amp = _float("rastrigin", "a", a, 0.0)
    two_pi = 2.0 * math.pi
    amp_two_pi = amp * two_pi

    def value(Z):
        c = np.cos(two_pi * Z)
        c *= -amp
        c += Z * Z
        return amp * n + np.sum(c, axis=0)

    def grad(Z, out):
        np.multiply(Z, two_pi, out=out)
        np.sin(out, out=out)
        out *= amp_two_pi
        out += Z
        out += Z
        return out

    desc = f"{n}-d Rastrigin (a={amp:g}): a lattice of local minima on a bowl, global minimum 0 at 0"
    return _make("rastrigin", {"dim": n, "a": amp}, desc, value, grad, np.zeros((1, n)),
                 np.full(n, -5.12), np.full(n, 5.12), min_value=0.0)
