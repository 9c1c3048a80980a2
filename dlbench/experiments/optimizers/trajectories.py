"""Optimizer trajectories on loss surfaces, many runs at once, and what to measure on them.

Layout is coordinates first: R independent runs are the columns of one (d, R) array, so P starting
points times L learning rates of one optimizer step together (lr is a (1, R) row). One update of all
runs is a handful of whole-array ufunc calls writing into preallocated buffers; there is no Python
loop over points. Runs are columns in the order lr-major: column l * P + p is start p at lr l.

The `mlp` surface (the loss of a small relu MLP on a synthetic task, its parameters flattened into a
column) lives here, beside the analytic surfaces of `dlbench.surfaces`: a point is one replica.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from dlbench.errors import DlbenchError
from dlbench.nn.optim import Optimizer, clip_grad_norm_, clip_grad_value_, get_optimizer
from dlbench.surfaces import SURFACES, Surface, get_surface

#: Above this many bytes the full path (T+1, d, R) is not kept; per-step quantities are tracked in the loop.
PATH_BUDGET = 64 * 2**20
#: A run diverged once its loss is NaN or exceeds loss_0 + DIVERGE_FACTOR * (|loss_0| + 1) (+inf included);
#: -inf is the limit of a surface unbounded below (an escape from the saddle), not a divergence.
DIVERGE_FACTOR = 1e3
#: The largest number of elements evaluated by one post-hoc `value` call over a stored path.
VALUE_CHUNK = 2**20


# --------------------------------------------------------------------------- surfaces, including mlp


@dataclass(frozen=True, eq=False)
class ModelSurface(Surface):
    """A surface whose points are the flattened parameters of a model (one replica per column).

    value_and_grad(Z, out) -> loss (R,) and writes dloss/dZ into out; init_points(seeds) -> (d, S) starts.
    """

    value_and_grad: Callable | None = None
    init_points: Callable | None = None
    net: object = None
    data: object = None
    loss_name: str = ""


MLP_DEFAULTS = {"widths": (2, 16, 16, 2), "activation": "relu", "data": "xor", "n_train": 64}


def surface_names() -> list[str]:
    """Every surface the optimizers experiment can run on: the registry's plus `mlp`."""
    return [*SURFACES, "mlp"]


def make_surface(name: str, **hyper) -> Surface:
    """The surface `name` ('mlp' or a dlbench.surfaces name) with its hyperparameters bound."""
    if name == "mlp":
        return mlp_surface(**hyper)
    if name not in SURFACES:
        from dlbench.errors import UnknownName

        raise UnknownName("surface", name, surface_names())
    return get_surface(name, **hyper)


def mlp_surface(widths=MLP_DEFAULTS["widths"], activation=MLP_DEFAULTS["activation"], data=MLP_DEFAULTS["data"],
                n_train=MLP_DEFAULTS["n_train"], seed: int = 0) -> ModelSurface:
    """Full-batch training loss of a small MLP (default 2-16-16-2 relu, softmax cross-entropy on `xor`).

    A point z (d,) is one replica's parameters, flattened in the net's parameter order; Z (d, ...) holds
    many. The data set is drawn once with `seed`; starts come from the net's own (torch-default) init.
    """
    from dlbench.data import make_dataset
    from dlbench.nn.losses import get_loss
    from dlbench.nn.mlp import MLP, MLPSpec
    from dlbench.nn.train import default_loss

    ds = make_dataset(data, seed=seed, n_train=n_train, n_test=0)
    if ds.task == "classification":
        widths = (*tuple(widths)[:-1], ds.n_classes)
    widths = (ds.n_features, *tuple(widths)[1:])
    net = MLP(MLPSpec(widths=tuple(widths), activation=activation, dtype=np.float64))
    loss_name = default_loss(ds)
    loss_fn = get_loss(loss_name)
    X = np.ascontiguousarray(ds.X_train, dtype=np.float64)
    y = ds.y_train if ds.task == "classification" else ds.y_train.astype(np.float64)
    shapes = net.param_shapes
    sizes = [int(np.prod(s)) for s in shapes]
    offsets = np.concatenate([[0], np.cumsum(sizes)])
    d = int(offsets[-1])

    def unflatten(rows: np.ndarray) -> list[np.ndarray]:
        # rows (S, d): each parameter is a strided view (S, *shape) of its slice of columns
        S = rows.shape[0]
        return [rows[:, offsets[i]:offsets[i + 1]].reshape(S, *shapes[i]) for i in range(len(shapes))]

    def value_and_grad(Z, out=None, need_grad: bool = True):
        Z = np.asarray(Z, dtype=np.float64)
        if Z.shape[0] != d:
            raise DlbenchError(f"points must have shape ({d}, ...) (coordinates first), got {Z.shape}")
        flat = Z.reshape(d, -1)
        rows = np.ascontiguousarray(flat.T)
        params = unflatten(rows)
        with np.errstate(all="ignore"):
            outputs, cache = net.forward(params, X, train=True)
            loss, g_out = loss_fn(outputs, y)
            if not need_grad:
                return loss.reshape(Z.shape[1:])
            grads = net.backward(params, cache, g_out)
        if out is None:
            out = np.empty_like(Z)
        out_flat = out.reshape(d, -1)
        for i, g in enumerate(grads):
            out_flat[offsets[i]:offsets[i + 1]] = g.reshape(g.shape[0], -1).T
        return loss.reshape(Z.shape[1:]), out

    def value(Z):
        Z = np.asarray(Z)
        flat = Z.reshape(d, -1)
        chunk = 256  # replicas per forward pass: bounds the activations' memory
        parts = [value_and_grad(flat[:, i:i + chunk], need_grad=False) for i in range(0, flat.shape[1], chunk)]
        return np.concatenate(parts).reshape(Z.shape[1:])

    def grad(Z, out=None):
        return value_and_grad(Z, out)[1]

    def init_points(seeds: Sequence[int]) -> np.ndarray:
        params = net.init(list(seeds))
        S = len(seeds)
        return np.ascontiguousarray(np.concatenate([p.reshape(S, -1) for p in params], axis=1).T)

    z0 = init_points([seed])
    steep = _steepest_coordinate(grad, z0[:, 0])
    act = activation if isinstance(activation, str) else "/".join(activation)
    desc = (f"full-batch {loss_name} of a {'-'.join(map(str, widths))} {act} MLP on {data} "
            f"(n={n_train}); a point is one replica's {d} parameters")
    return ModelSurface("mlp", d, {"widths": tuple(widths), "activation": act, "data": data, "n_train": n_train},
                        desc, value, grad, np.empty((0, d)), 0.0, np.full(d, np.nan), np.full(d, np.nan), steep,
                        value_and_grad=value_and_grad, init_points=init_points, net=net, data=ds,
                        loss_name=loss_name)


def _steepest_coordinate(grad: Callable, z: np.ndarray, h: float = 1e-5) -> int:
    """argmax_i |d2f/dz_i^2| at z: all d central differences as 2d points in one vectorized call."""
    d = z.size
    E = np.eye(d) * h
    Z = np.concatenate([z[:, None] + E, z[:, None] - E], axis=1)
    G = grad(Z)
    curv = (np.diag(G[:, :d]) - np.diag(G[:, d:])) / (2 * h)
    return int(np.argmax(np.abs(curv)))


def sample_starts(surface: Surface, rng: np.random.Generator, n: int, dtype=np.float64) -> np.ndarray:
    """n starting points (d, n): uniform in the surface's start box, or a model's init for ModelSurface."""
    if isinstance(surface, ModelSurface):
        seeds = rng.integers(0, 2**31 - 1, n)
        return surface.init_points([int(s) for s in seeds]).astype(dtype, copy=False)
    low, high = surface.start_low, surface.start_high
    return np.ascontiguousarray(rng.uniform(low, high, size=(n, surface.dim)).T, dtype=dtype)


# --------------------------------------------------------------------------- the engine


@dataclass
class Trajectories:
    """R runs of T steps. loss[t] = f(z_t) for t = 0..T; step_norm[t] = |z_{t+1} - z_t|;
    steep[t] = z_t[steep_axis]; path (T+1, d, R) when it fits PATH_BUDGET, else None; grads (T, d, R)
    the gradients applied (after noise and clipping) when asked for; seconds: wall time of the loop."""

    loss: np.ndarray
    steep: np.ndarray
    step_norm: np.ndarray
    start: np.ndarray
    end: np.ndarray
    seconds: float
    path: np.ndarray | None = None
    grads: np.ndarray | None = None

    @property
    def steps(self) -> int:
        return self.step_norm.shape[0]

    @property
    def runs(self) -> int:
        return self.loss.shape[1]

    @property
    def point_steps_per_s(self) -> float:
        return self.runs * self.steps / self.seconds if self.seconds > 0 else math.nan

    def columns(self, sl: slice) -> "Trajectories":
        """The runs in columns `sl` (e.g. one learning rate's P starts)."""
        return Trajectories(self.loss[:, sl], self.steep[:, sl], self.step_norm[:, sl], self.start[:, sl],
                            self.end[:, sl], self.seconds,
                            None if self.path is None else self.path[:, :, sl],
                            None if self.grads is None else self.grads[:, :, sl])


def run_trajectories(
    surface: Surface,
    optimizer: Optimizer,
    Z0: np.ndarray,
    steps: int,
    *,
    noise: float = 0.0,
    rng: np.random.Generator | None = None,
    clip_norm: float | None = None,
    clip_value: float | None = None,
    keep_path: bool | None = None,
    keep_grads: bool = False,
) -> Trajectories:
    """Run `optimizer` for `steps` steps from every column of Z0 (d, R) on `surface`, all runs at once.

    Each step: g = grad f(z) (+ noise * N(0, 1) per coordinate: a stochastic gradient), clipped per run
    by norm (torch's clip_grad_norm_) and/or by value, then the optimizer's in-place update. Non-finite
    values are carried along silently; `diverged_step` finds them afterwards. keep_path None means:
    keep the path when it fits PATH_BUDGET.
    """
    if steps < 1:
        raise DlbenchError(f"steps must be positive, got {steps}")
    if noise and rng is None:
        raise ValueError("noise needs a numpy Generator")
    Z = np.array(Z0, dtype=Z0.dtype if Z0.dtype.kind == "f" else np.float64, order="C", copy=True)
    d, R = Z.shape
    dt = Z.dtype
    if keep_path is None:
        keep_path = (steps + 1) * Z.nbytes <= PATH_BUDGET
    G = np.empty_like(Z)
    N = np.empty_like(Z) if noise else None
    params, grads_list = [Z], [G]
    state = optimizer.init(params)
    kept_grads = np.empty((steps, d, R), dt) if keep_grads else None
    step_norm = np.empty((steps, R), dt)
    steep_axis = surface.steep_axis
    start = Z.copy()

    def perturb_and_clip(t: int) -> None:
        if noise:
            rng.standard_normal(dtype=dt, out=N)
            np.multiply(N, noise, out=N)
            np.add(G, N, out=G)
        if clip_norm is not None:
            clip_grad_norm_(grads_list, clip_norm, run_axes=(1,))
        if clip_value is not None:
            clip_grad_value_(grads_list, clip_value)
        if kept_grads is not None:
            np.copyto(kept_grads[t], G)

    grad = surface.grad
    step = optimizer.step
    post = bool(noise) or clip_norm is not None or clip_value is not None or keep_grads
    with np.errstate(all="ignore"):
        if keep_path:
            path = np.empty((steps + 1, d, R), dt)
            path[0] = Z
            t0 = time.perf_counter()
            for t in range(steps):
                grad(Z, out=G)
                if post:
                    perturb_and_clip(t)
                state = step(params, grads_list, state)
                np.copyto(path[t + 1], Z)
            seconds = time.perf_counter() - t0
            loss = path_values(surface, path)
            delta = np.diff(path, axis=0)
            np.sqrt(np.einsum("tdr,tdr->tr", delta, delta), out=step_norm)
            steep = np.ascontiguousarray(path[:, steep_axis, :])
        else:
            path = None
            loss = np.empty((steps + 1, R), dt)
            steep = np.empty((steps + 1, R), dt)
            steep[0] = Z[steep_axis]
            prev = np.empty_like(Z)
            value_and_grad = getattr(surface, "value_and_grad", None)
            t0 = time.perf_counter()
            for t in range(steps):
                if value_and_grad is not None:
                    loss[t] = value_and_grad(Z, out=G)[0]
                else:
                    loss[t] = surface.value(Z)
                    grad(Z, out=G)
                if post:
                    perturb_and_clip(t)
                np.copyto(prev, Z)
                state = step(params, grads_list, state)
                np.subtract(Z, prev, out=prev)
                np.sqrt(np.einsum("dr,dr->r", prev, prev), out=step_norm[t])
                steep[t + 1] = Z[steep_axis]
            seconds = time.perf_counter() - t0
            loss[steps] = surface.value(Z)
    return Trajectories(loss, steep, step_norm, start, Z, seconds, path, kept_grads)


def path_values(surface: Surface, path: np.ndarray) -> np.ndarray:
    """f at every point of a path (T+1, d, R) -> (T+1, R), in chunks of at most VALUE_CHUNK elements."""
    T1, d, R = path.shape
    out = np.empty((T1, R), path.dtype)
    rows = max(1, VALUE_CHUNK // max(1, d * R))
    with np.errstate(all="ignore"):
        for i in range(0, T1, rows):
            # coordinates first: (d, rows, R) as a strided view, no copy
            out[i:i + rows] = surface.value(path[i:i + rows].transpose(1, 0, 2))
    return out


# --------------------------------------------------------------------------- per-run measurements


def diverged_step(loss: np.ndarray, factor: float = DIVERGE_FACTOR) -> np.ndarray:
    """First t whose loss is NaN or above loss_0 + factor * (|loss_0| + 1), per run; -1 if none."""
    l0 = loss[0]
    with np.errstate(all="ignore"):
        bad = np.isnan(loss) | (loss > l0 + factor * (np.abs(l0) + 1.0))
    first = np.argmax(bad, axis=0)
    return np.where(bad.any(axis=0), first, -1)


def first_at_or_below(loss: np.ndarray, target: float) -> np.ndarray:
    """First t with loss[t] <= target per run, as float (nan: never)."""
    with np.errstate(invalid="ignore"):
        hit = loss <= target
    first = np.argmax(hit, axis=0).astype(float)
    first[~hit.any(axis=0)] = np.nan
    return first


@dataclass
class RunMetrics:
    """Per-run measurements (arrays of shape (R,)); nan where a run diverged or never got there.

    final_loss: f(z_T) (nan if diverged). steps_to_target: first t with f(z_t) <= target.
    largest_step: max_t |z_{t+1} - z_t| before divergence. oscillation: fraction of consecutive step pairs
    whose steep-axis components have opposite signs. path_ratio: path length / |z_T - z_0|.
    """

    final_loss: np.ndarray
    steps_to_target: np.ndarray
    reached: np.ndarray
    diverged: np.ndarray
    largest_step: np.ndarray
    oscillation: np.ndarray
    path_ratio: np.ndarray
    target: float


def measure(traj: Trajectories, target: float) -> RunMetrics:
    """The per-run measurements of `traj` against a target loss."""
    T = traj.steps
    dstep = diverged_step(traj.loss)
    diverged = dstep >= 0
    # steps at index >= the divergence step do not count; a run that never diverged keeps all T
    valid_steps = np.where(diverged, np.maximum(dstep - 1, 0), T)
    t_idx = np.arange(T)[:, None]
    valid = t_idx < valid_steps
    with np.errstate(all="ignore"):
        norms = np.where(valid, traj.step_norm, 0.0)
        largest = norms.max(axis=0)
        length = norms.sum(axis=0)
        chord = np.sqrt(np.sum((traj.end - traj.start) ** 2, axis=0))
        ratio = length / chord
        s = np.sign(np.diff(traj.steep, axis=0))  # signs: products of tiny steps would underflow
        flips = (s[1:] * s[:-1]) < 0
        pairs_valid = valid[1:] & valid[:-1]
        n_pairs = pairs_valid.sum(axis=0)
        osc = (flips & pairs_valid).sum(axis=0) / np.maximum(n_pairs, 1)
    osc = np.where(n_pairs > 0, osc, np.nan)
    final = np.where(diverged, np.nan, traj.loss[-1])
    alive = np.arange(T + 1)[:, None] < np.where(diverged, dstep, T + 1)
    stt = first_at_or_below(np.where(alive, traj.loss, np.inf), target)
    ratio = np.where(diverged | (chord == 0), np.nan, ratio)
    largest = np.where(diverged & (valid_steps == 0), np.nan, largest)
    return RunMetrics(final.astype(float), stt, ~np.isnan(stt), diverged, largest.astype(float),
                      osc.astype(float), ratio.astype(float), float(target))


def contraction_rate(dist: np.ndarray, start: int | None = None, floor: float = 1e-150) -> np.ndarray:
    """Per-run contraction of a distance curve dist (T+1, R) per step: exp of the least-squares slope of
    log(dist) from `start` (default T//4) to the last step still above `floor` (so underflow does not bias
    it). The fit averages out the rotation of momentum's complex eigenvalues; nan with fewer than 3 points."""
    T1, R = dist.shape
    t0 = (T1 - 1) // 4 if start is None else start
    t = np.arange(T1, dtype=float)[:, None]
    with np.errstate(all="ignore"):
        logd = np.log(dist)
        ok = (dist > floor) & np.isfinite(logd) & (t >= t0)
        # only the leading stretch of usable points: stop at the first drop below the floor
        ok &= np.cumsum(~ok & (t >= t0), axis=0) == 0
        n = ok.sum(axis=0)
        w = ok.astype(float)
        tm = (w * t).sum(axis=0) / n
        lm = np.where(ok, logd, 0.0).sum(axis=0) / n
        dt = np.where(ok, t - tm, 0.0)
        slope = (dt * np.where(ok, logd - lm, 0.0)).sum(axis=0) / (dt * dt).sum(axis=0)
        rate = np.exp(slope)
    return np.where(n >= 3, rate, np.nan)


# --------------------------------------------------------------------------- learning-rate search


@dataclass
class LrSearch:
    """The grid search of one optimizer: per lr the median final loss (diverged runs count as +inf),
    the fraction diverged and the median steps to target over the tuning starts; the chosen lr."""

    lrs: np.ndarray
    median_final: np.ndarray
    diverged: np.ndarray
    median_steps: np.ndarray
    best: float
    seconds: float
    point_steps: int = 0


def build_optimizer(name: str, lr, **hyper) -> Optimizer:
    """A registry optimizer with lr (scalar or (1, R) row) and any other hyperparameters bound."""
    return get_optimizer(name, lr=lr, **hyper)


def lr_row(lrs: Sequence[float], P: int, dtype=np.float64) -> np.ndarray:
    """(1, L * P): lr l repeated for its P columns (lr-major column order)."""
    return np.repeat(np.asarray(lrs, dtype=dtype), P)[None, :]


#: Largest fraction of diverged tuning runs for which a learning rate can still be chosen.
MAX_DIVERGED = 0.1


def search_lr(surface: Surface, name: str, Z: np.ndarray, lrs: Sequence[float], steps: int, target: float, *,
              hyper: dict | None = None, **engine) -> LrSearch:
    """Run every lr of the grid from every start in Z (d, P) in one engine call; pick the best lr.

    Only lrs whose runs diverge at most MAX_DIVERGED of the time are eligible (all are, if none is): a
    "best" lr that throws away a third of its runs is not one a user would pick. Among them, best =
    lowest median final loss over the starts (a diverged run counts as +inf); ties go to the lower
    median steps to target, then to the smaller lr. On a surface unbounded below (min_value -inf, the
    saddle) the final loss only says how far a run fled, so the median steps to target decides first.
    """
    lrs = np.asarray(sorted(lrs), dtype=float)
    P = Z.shape[1]
    L = len(lrs)
    opt = build_optimizer(name, lr_row(lrs, P, Z.dtype), **(hyper or {}))
    traj = run_trajectories(surface, opt, np.tile(Z, (1, L)), steps, keep_path=False
                            if (steps + 1) * Z.nbytes * L > PATH_BUDGET else None, **engine)
    m = measure(traj, target)
    final = np.where(m.diverged, np.inf, m.final_loss).reshape(L, P)
    med_final = np.median(final, axis=1)
    stt = np.where(np.isnan(m.steps_to_target), np.inf, m.steps_to_target).reshape(L, P)
    med_steps = np.median(stt, axis=1)
    div = m.diverged.reshape(L, P).mean(axis=1)
    med_final_key = np.nan_to_num(med_final, nan=np.inf)
    unstable = div > MAX_DIVERGED
    if unstable.all():
        unstable[:] = False
    if math.isinf(surface.min_value) and surface.min_value < 0:
        order = np.lexsort((lrs, med_final_key, med_steps, unstable))
    else:
        order = np.lexsort((lrs, med_steps, med_final_key, unstable))
    best = float(lrs[order[0]])
    return LrSearch(lrs, med_final, div, med_steps, best, traj.seconds, traj.runs * traj.steps)


# --------------------------------------------------------------------------- analytic references


def gd_rate(lr: float, curvatures: np.ndarray) -> float:
    """Gradient descent's contraction per step on a quadratic: max_i |1 - lr * lambda_i|; NaN when an input
    or the result is not finite."""
    lam = np.asarray(curvatures, dtype=float)
    with np.errstate(all="ignore"):
        rate = float(np.max(np.abs(1.0 - lr * lam)))
    return rate if math.isfinite(rate) and math.isfinite(lr) else math.nan


def momentum_rate(lr: float, beta: float, curvatures: np.ndarray, nesterov: bool = False) -> float:
    """Spectral radius of torch's heavy-ball (or Nesterov) iteration on a quadratic, max over curvatures.

    Heavy ball: buf <- beta buf + lam z;  z <- z - lr buf      -> [[1 - lr lam, -lr beta], [lam, beta]]
    Nesterov:   z <- z - lr (lam z + beta buf_new)              -> [[1 - lr lam (1 + beta), -lr beta^2], [lam, beta]]
    acting on (z_t, buf_{t-1}). NaN when an input or an entry of the iteration matrix is not finite.
    """
    lam = np.asarray(curvatures, dtype=float)
    with np.errstate(all="ignore"):
        if nesterov:
            a, b = 1.0 - lr * lam * (1.0 + beta), np.full_like(lam, -lr * beta * beta)
        else:
            a, b = 1.0 - lr * lam, np.full_like(lam, -lr * beta)
        M = np.stack([np.stack([a, b], -1), np.stack([lam, np.full_like(lam, beta)], -1)], -2)
    if not np.isfinite(M).all():
        return math.nan
    return float(np.max(np.abs(np.linalg.eigvals(M))))


def optimal_gd(mu: float, L: float) -> tuple[float, float]:
    """(lr, rate) of gradient descent's best constant step on a quadratic: 2/(mu+L), (kappa-1)/(kappa+1)."""
    if not (math.isfinite(mu) and math.isfinite(L) and 0 < mu <= L):
        return math.nan, math.nan
    kappa = L / mu
    return 2.0 / (mu + L), (kappa - 1.0) / (kappa + 1.0)


def optimal_heavy_ball(mu: float, L: float) -> tuple[float, float, float]:
    """(lr, beta, rate) of Polyak's heavy ball at its best: 4/(sqrt L + sqrt mu)^2,
    ((sqrt kappa - 1)/(sqrt kappa + 1))^2, (sqrt kappa - 1)/(sqrt kappa + 1)  (Polyak 1964)."""
    if not (math.isfinite(mu) and math.isfinite(L) and 0 < mu <= L):
        return math.nan, math.nan, math.nan
    sk = math.sqrt(L / mu)
    rate = (sk - 1.0) / (sk + 1.0)
    return 4.0 / (math.sqrt(L) + math.sqrt(mu)) ** 2, rate * rate, rate


@dataclass
class ProportionCI:
    k: int
    n: int
    p: float
    low: float
    high: float


def wilson(k, n, z: float = 1.959963984540054) -> ProportionCI:
    """Wilson score interval of a binomial proportion k/n (Wilson 1927)."""
    if n == 0:
        return ProportionCI(0, 0, math.nan, math.nan, math.nan)
    p = k / n
    den = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / den
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    return ProportionCI(int(k), int(n), p, max(0.0, centre - half), min(1.0, centre + half))


def newcombe_difference(a: ProportionCI, b: ProportionCI) -> tuple[float, float, float]:
    """p_a - p_b with Newcombe's hybrid score interval (method 10, Newcombe 1998) from two Wilson intervals."""
    d = a.p - b.p
    lo = d - math.sqrt((a.p - a.low) ** 2 + (b.high - b.p) ** 2)
    hi = d + math.sqrt((a.high - a.p) ** 2 + (b.p - b.low) ** 2)
    return d, lo, hi

