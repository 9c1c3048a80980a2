"""Optimizer trajectories on loss surfaces, many runs at once, reduced as they stream.

Layout is coordinates first: R independent runs are the columns of one (d, R) array, so P starting
points times L learning rates of one optimizer step together (lr is a (1, R) row). One update of all
runs is a handful of whole-array ufunc calls writing into preallocated buffers; there is no Python
loop over points. Runs are columns in the order lr-major: column l * P + p is start p at lr l.

Memory does not grow with the number of steps. Every figure a claim or a table needs (final loss,
steps to a target, the divergence step, the largest step, the oscillation index and the steep axis's
travel, the largest rise of the loss, the per-coordinate effective step) is reduced as the run goes,
in state of size O(runs): positions are kept for a block of at most BLOCK_BYTES, reduced, and
reused. Curves are kept at a fixed resolution: the loss at every k-th step plus the last
(k = ceil(steps / curve points)), the effective step at log-spaced steps. Statistics that need a
history (a contraction rate) are fitted on those curves. The path is kept only when asked (for a
plot), decimated to the loss curve's steps.

The `mlp` surface (the loss of a small MLP on a synthetic task, its parameters flattened into a
column) lives here, beside the analytic surfaces of `dlbench.surfaces`: a point is one replica.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from dlbench.errors import DlbenchError
from dlbench.nn.optim import Optimizer, clip_grad_norm_, clip_grad_value_, get_optimizer
from dlbench.surfaces import SURFACES, Surface, get_surface

#: A run diverged once its loss is NaN or exceeds loss_0 + DIVERGE_FACTOR * (|loss_0| + 1) (+inf included);
#: -inf is the limit of a surface unbounded below (an escape from the saddle), not a divergence.
DIVERGE_FACTOR = 1e3
#: Bytes of positions kept per block (d x (K + 1) x R float64): small enough to stay in cache, and to keep
#: the surfaces' own temporaries of a block below the size at which malloc returns memory to the system.
BLOCK_BYTES = 2**18
#: Block length bounds (steps); a block is reduced in whole-array passes, so longer blocks amortise calls.
MIN_BLOCK, MAX_BLOCK = 8, 256
#: Points of the loss curve (every k-th step and the last) and of the effective-step curve (log-spaced).
CURVE_POINTS, EFF_POINTS = 200, 64


# --------------------------------------------------------------------------- surfaces, including mlp


@dataclass(frozen=True, eq=False)
class ModelSurface(Surface):
    """A surface whose points are the flattened parameters of a model (one replica per column).

    value_and_grad(Z, out=None, rng=None) -> loss (R,) and writes dloss/dZ into out (a minibatch of
    `batch` samples per replica drawn from `rng` when the surface is stochastic); init_points(seeds) ->
    (d, S) starts; unflatten(Z) -> the net's parameter list for the columns of Z.
    """

    value_and_grad: Callable | None = None
    init_points: Callable | None = None
    unflatten: Callable | None = None
    net: object = None
    data: object = None
    loss_name: str = ""
    batch: int = 0


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
                n_train=MLP_DEFAULTS["n_train"], seed: int = 0, batch: int = 0, dataset=None) -> ModelSurface:
    """Training loss of a small MLP (default 2-16-16-2 relu, softmax cross-entropy on `xor`).

    A point z (d,) is one replica's parameters, flattened in the net's parameter order; Z (d, ...) holds
    many. The data set is drawn once with `seed` (or given as `dataset`); starts come from the net's own
    (torch-default) init. batch = 0: the full-batch loss; batch = B: value_and_grad with an rng draws B
    samples per replica (with replacement), a stochastic gradient; `value` is always the full-batch loss.
    """
    from dlbench.data import make_dataset
    from dlbench.nn.losses import get_loss
    from dlbench.nn.mlp import MLP, MLPSpec
    from dlbench.nn.train import default_loss

    ds = dataset if dataset is not None else make_dataset(data, seed=seed, n_train=n_train, n_test=0)
    n_train = ds.X_train.shape[0]
    if ds.task == "classification":
        widths = (*tuple(widths)[:-1], ds.n_classes)
    else:
        widths = (*tuple(widths)[:-1], ds.n_outputs)
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

    def unflatten(Z: np.ndarray) -> list[np.ndarray]:
        # columns -> rows (S, d): each parameter is a strided view (S, *shape) of its slice of columns
        rows = np.ascontiguousarray(np.asarray(Z, dtype=np.float64).reshape(d, -1).T)
        S = rows.shape[0]
        return [rows[:, offsets[i]:offsets[i + 1]].reshape(S, *shapes[i]) for i in range(len(shapes))]

    def value_and_grad(Z, out=None, need_grad: bool = True, rng: np.random.Generator | None = None):
        Z = np.asarray(Z, dtype=np.float64)
        if Z.shape[0] != d:
            raise DlbenchError(f"points must have shape ({d}, ...) (coordinates first), got {Z.shape}")
        params = unflatten(Z)
        xb, yb = X, y
        if batch and rng is not None:
            idx = rng.integers(0, n_train, (params[0].shape[0], batch))
            xb, yb = X[idx], y[idx]
        with np.errstate(all="ignore"):
            outputs, cache = net.forward(params, xb, train=True)
            loss, g_out = loss_fn(outputs, yb)
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
    kind = f"minibatch ({batch})" if batch else "full-batch"
    desc = (f"{kind} {loss_name} of a {'-'.join(map(str, widths))} {act} MLP on {ds.name} "
            f"(n={n_train}); a point is one replica's {d} parameters")
    return ModelSurface("mlp", d, {"widths": tuple(widths), "activation": act, "data": ds.name, "n_train": n_train,
                                   "batch": batch},
                        desc, value, grad, np.empty((0, d)), 0.0, np.full(d, np.nan), np.full(d, np.nan), steep,
                        value_and_grad=value_and_grad, init_points=init_points, unflatten=unflatten, net=net,
                        data=ds, loss_name=loss_name, batch=int(batch))


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


# --------------------------------------------------------------------------- what a run keeps


@dataclass(frozen=True)
class Track:
    """What a run reduces as it goes, beyond final loss and divergence (each costs whole-array passes).

    target: the loss whose first crossing is `steps_to_target`. shape: the largest step and the
    oscillation index on the surface's steep axis. travel: the steep axis's total travel (O4's amplitude).
    rise: the largest rise of the loss above its running minimum (a spike). curve: points of the loss
    curve (every k-th step and the last; 0 = none). eff_axes: coordinates whose effective step |dz_i|/|g_i|
    is sampled at eff_points log-spaced steps ("all": the median over every coordinate). path_runs: the
    first n runs' positions kept at the loss curve's steps (for a plot; 0 = none).
    """

    target: float | None = None
    shape: bool = True
    travel: bool = False
    rise: bool = False
    curve: int = CURVE_POINTS
    eff_axes: tuple | str | None = None
    eff_points: int = EFF_POINTS
    path_runs: int = 0


#: The lr search needs only final loss, divergence and steps to target.
LEAN = Track(shape=False, curve=0)


@dataclass
class Trajectories:
    """R runs of T steps, reduced. Per run (R,): loss0 = f(z_0); final = f(z_T); diverged_step = first t
    whose loss is NaN or above the divergence threshold (-1: never); steps_to_target = first t before it
    with f(z_t) <= target (nan: never); largest_step = max |z_{t+1} - z_t| over steps before divergence;
    flips / pairs: consecutive steep-axis steps of opposite sign / pairs counted; travel = sum |dz_steep|;
    rise = max_t (f(z_t) - min_{s<=t} f(z_s)). Curves: loss (C, R) at curve_steps (the full-batch loss on a
    minibatch surface, whose per-step losses decide divergence and the target); eff (E, A, R) at
    eff_steps; path (C, d, n) when kept. end: z_T (d, R). seconds: wall time of the update loop."""

    steps: int
    runs: int
    seconds: float
    loss0: np.ndarray
    final: np.ndarray
    diverged_step: np.ndarray
    steps_to_target: np.ndarray
    largest_step: np.ndarray
    flips: np.ndarray
    pairs: np.ndarray
    travel: np.ndarray
    rise: np.ndarray
    steep0: np.ndarray
    end: np.ndarray
    curve_steps: np.ndarray
    loss_curve: np.ndarray
    eff_steps: np.ndarray
    eff: np.ndarray
    path: np.ndarray | None = None
    block: int = 0

    @property
    def point_steps_per_s(self) -> float:
        return self.runs * self.steps / self.seconds if self.seconds > 0 else math.nan


def curve_steps(steps: int, points: int) -> np.ndarray:
    """Every k-th step from 0 and the last, k = ceil(steps / points): at most points + 1 steps."""
    if points <= 0:
        return np.zeros(0, dtype=np.int64)
    k = max(1, -(-steps // points))
    return np.unique(np.r_[np.arange(0, steps + 1, k), steps]).astype(np.int64)


def log_steps(steps: int, points: int) -> np.ndarray:
    """About `points` log-spaced steps in 0 .. steps - 1 (unique integers, 0 first)."""
    if points <= 0 or steps < 1:
        return np.zeros(0, dtype=np.int64)
    grid = np.unique(np.round(np.geomspace(1, steps, points)).astype(np.int64) - 1)
    return grid[grid < steps]


def block_length(d: int, R: int) -> int:
    """Steps per block: positions (d, K + 1, R) float64 within BLOCK_BYTES, K in [MIN_BLOCK, MAX_BLOCK]."""
    k = BLOCK_BYTES // max(1, 8 * d * R) - 1
    return int(min(MAX_BLOCK, max(MIN_BLOCK, k)))


def engine_bytes(d: int, R: int, steps: int, track: Track, state_words: int = 4, model_bytes: int = 0) -> int:
    """Peak bytes of one run_trajectories call (d coordinates, R runs), from its arguments alone:
    positions, gradient, noise and optimizer state (d x R each), the block, the reductions, the curves."""
    K = block_length(d, R)
    block_mode = model_bytes == 0 and d * R * (K + 1) * 8 <= 4 * BLOCK_BYTES
    dr = 8 * d * R
    fixed = dr * (4 + state_words)
    blocks = dr * (K + 1) * 3 if block_mode else 8 * R * (K + 1) * 6 + dr * 2
    per_run = 8 * R * 24
    C = len(curve_steps(steps, track.curve)) if track.curve else 0
    E = min(track.eff_points, steps) if track.eff_axes is not None else 0
    axes = d if track.eff_axes == "all" else len(track.eff_axes or ())
    curves = 8 * R * (C + E * max(1, 1 if track.eff_axes == "all" else axes))
    eff_work = 8 * d * R * 3 if track.eff_axes == "all" else 0
    path = 8 * C * d * track.path_runs
    return fixed + blocks + per_run + curves + eff_work + path + model_bytes


# --------------------------------------------------------------------------- the engine


class _Reducer:
    """The streamed reductions of one engine call: losses, then the steps they bound, block by block.

    absorb_losses(t0, L) takes f(z_t) for t = t0 .. t0 + n - 1 (in order, every t once); absorb_steps(t0,
    sq, steep) takes |z_{t+1} - z_t|^2 for steps t0 .. t0 + m - 1 and the steep coordinate of z_t0 ..
    z_{t0+m}; a step t counts when z_{t+1} did not diverge, so its losses must be in first. Every
    reduction is a max, a min, a first index, an integer count or a sum taken one step after another,
    so the result does not depend on the block length: one block of the whole history gives the same
    numbers bit for bit (the reference the tests compare against).
    """

    def __init__(self, R: int, steps: int, track: Track, dtype):
        self.R, self.T, self.track = R, steps, track
        self.loss0 = np.full(R, np.nan)
        self.thr = np.full(R, np.inf)
        self.dstep = np.full(R, -1, dtype=np.int64)
        self.stt = np.full(R, np.nan)
        self.maxsq = np.full(R, -np.inf)
        self.flips = np.zeros(R, dtype=np.int64)
        self.pairs = np.zeros(R, dtype=np.int64)
        self.last_sign = np.zeros(R)       # sign of the previous steep step (0: none yet)
        self.last_valid = np.zeros(R, dtype=bool)
        self.travel = np.zeros(R)
        self.runmin = np.full(R, np.inf)
        self.rise = np.zeros(R)
        self.csteps = curve_steps(steps, track.curve) if track.curve else np.zeros(0, np.int64)
        self.curve = np.full((self.csteps.size, R), np.nan)
        self.k = max(1, -(-steps // track.curve)) if track.curve else 0
        self.seen = 0  # losses absorbed: f(z_0) .. f(z_{seen-1})
        self.final = np.full(R, np.nan)
        self._buf = None
        self._r1, self._r2 = np.empty(R), np.empty(R)

    # ---- losses
    def absorb_losses(self, t0: int, L: np.ndarray) -> None:
        n = L.shape[0]
        if t0 != self.seen:
            raise AssertionError("losses must arrive in order")
        if t0 == 0:
            l0 = L[0]
            self.loss0[:] = l0
            with np.errstate(all="ignore"):
                self.thr[:] = l0 + DIVERGE_FACTOR * (np.abs(l0) + 1.0)
            self.thr[np.isnan(l0)] = -np.inf  # a NaN start has diverged at t = 0
        alive = self.dstep < 0
        with np.errstate(all="ignore"):
            top = np.max(L, axis=0, out=self._r1)  # NaN propagates: one pass finds NaN and the threshold
            new = alive & ~(top <= self.thr)
        if new.any():
            cols = np.flatnonzero(new)
            sub = L[:, cols]
            with np.errstate(all="ignore"):
                bad = np.isnan(sub) | (sub > self.thr[cols])
            self.dstep[cols] = t0 + np.argmax(bad, axis=0)
        if self.track.target is not None:
            with np.errstate(all="ignore"):
                low = np.fmin.reduce(L, axis=0, out=self._r2)
                cand = np.isnan(self.stt) & (low <= self.track.target)
            if cand.any():
                cols = np.flatnonzero(cand)
                with np.errstate(all="ignore"):
                    hit = L[:, cols] <= self.track.target
                first = t0 + np.argmax(hit, axis=0)
                lim = self.dstep[cols]
                ok = (lim < 0) | (first < lim)
                self.stt[cols[ok]] = first[ok]
        if self.track.rise:
            self._rise(t0, L)
        if self.k:
            lo = -(-t0 // self.k) * self.k
            rows = np.arange(lo, t0 + n, self.k)
            if rows.size:
                at = np.searchsorted(self.csteps, rows)
                self.curve[at] = L[rows - t0]
            if t0 + n - 1 == self.T and self.csteps[-1] == self.T:
                self.curve[-1] = L[-1]
        if t0 + n - 1 == self.T:
            self.final = np.array(L[-1], dtype=float)
        self.seen = t0 + n

    def _rise(self, t0: int, L: np.ndarray) -> None:
        n = L.shape[0]
        stack = np.empty((n + 1, self.R))
        stack[0] = self.runmin
        stack[1:] = L
        with np.errstate(all="ignore"):
            np.fmin.accumulate(stack, axis=0, out=stack)
            up = L - stack[1:]
            valid = self._valid_losses(t0, n)
            if valid is not None:
                up = np.where(valid, up, -np.inf)
            self.rise = np.fmax(self.rise, np.max(up, axis=0))
        self.runmin = stack[-1].copy()

    def _valid_losses(self, t0: int, n: int) -> np.ndarray | None:
        """(n, R) mask of losses before each run's divergence step, or None when every run is alive."""
        if (self.dstep < 0).all():
            return None
        lim = np.where(self.dstep < 0, np.iinfo(np.int64).max, self.dstep)
        return (t0 + np.arange(n))[:, None] < lim[None, :]

    # ---- steps
    def absorb_steps(self, t0: int, sq: np.ndarray, steep: np.ndarray) -> None:
        m = sq.shape[0]
        if m == 0 or not (self.track.shape or self.track.travel):
            return
        if t0 + m >= self.seen:
            raise AssertionError("a step's end loss must be absorbed before the step")
        dead = self.dstep >= 0
        valid = None
        if dead.any():
            lim = np.where(dead, self.dstep, np.iinfo(np.int64).max)
            valid = (t0 + np.arange(m))[:, None] + 1 < lim[None, :]
        w = self._work(m)
        with np.errstate(all="ignore"):
            dz = np.subtract(steep[1:], steep[:-1], out=w["dz"])
            if self.track.shape:
                masked = sq if valid is None else np.where(valid, sq, -np.inf)
                np.fmax(self.maxsq, np.max(masked, axis=0, out=self._r1), out=self.maxsq)
                # signs, not products of steps: products of tiny steps would underflow to 0
                sg = np.sign(dz, out=w["sign"])
                first = (sg[0] * self.last_sign) < 0
                flip = np.less(np.multiply(sg[1:], sg[:-1], out=w["inner"]), 0, out=w["flip"])
                if valid is None:
                    self.flips += np.count_nonzero(flip, axis=0) + (first & self.last_valid)
                    self.pairs += (m - 1) + self.last_valid
                else:
                    pv = valid[1:] & valid[:-1]
                    v0 = valid[0] & self.last_valid
                    self.flips += np.count_nonzero(flip & pv, axis=0) + (first & v0)
                    self.pairs += np.count_nonzero(pv, axis=0) + v0
                self.last_sign[:] = sg[-1]
                self.last_valid[:] = True if valid is None else valid[-1]
            if self.track.travel:
                a = np.abs(dz, out=dz)
                if valid is not None:
                    a = np.where(valid, a, 0.0)
                for row in a:  # one step after another: a sum that does not depend on the block length
                    self.travel += row

    def _work(self, m: int) -> dict:
        """Work arrays for m steps, kept between blocks: a fresh large temporary per block would cost page
        faults that outweigh the arithmetic."""
        if self._buf is None or self._buf["dz"].shape[0] < m:
            self._buf = {"dz": np.empty((m, self.R)), "sign": np.empty((m, self.R)),
                         "inner": np.empty((max(m - 1, 0), self.R)), "flip": np.empty((max(m - 1, 0), self.R), bool)}
        return {k: v[:m] if k in ("dz", "sign") else v[:max(m - 1, 0)] for k, v in self._buf.items()}

    def largest(self) -> np.ndarray:
        with np.errstate(invalid="ignore"):
            out = np.sqrt(self.maxsq)
        out[~np.isfinite(self.maxsq)] = np.nan
        return out


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
    track: Track = Track(),
    block: int | None = None,
) -> Trajectories:
    """Run `optimizer` for `steps` steps from every column of Z0 (d, R) on `surface`, all runs at once,
    and reduce each run as it goes (see Track and Trajectories).

    Each step: g = grad f(z) (+ noise * N(0, 1) per coordinate: a stochastic gradient; a stochastic
    model surface draws a minibatch from `rng` instead), clipped per run by norm (torch's
    clip_grad_norm_) and/or by value, then the optimizer's in-place update. Non-finite values are carried
    along silently. On an analytic surface the positions of a block of `block` steps (default: as many
    as fit BLOCK_BYTES) are kept and reduced together; a model surface reports its loss with its
    gradient and is reduced the same way. The result does not depend on `block`.
    """
    if steps < 1:
        raise DlbenchError(f"steps must be positive, got {steps}")
    stochastic = isinstance(surface, ModelSurface) and surface.batch > 0
    if (noise or stochastic) and rng is None:
        raise ValueError("noise and minibatches need a numpy Generator")
    Z = np.array(Z0, dtype=Z0.dtype if Z0.dtype.kind == "f" else np.float64, order="C", copy=True)
    d, R = Z.shape
    dt = Z.dtype
    model = isinstance(surface, ModelSurface)
    K = int(block) if block else block_length(d, R)
    K = max(1, min(K, steps))
    G = np.empty_like(Z)
    N = np.empty_like(Z) if noise else None
    params, grads_list = [Z], [G]
    state = optimizer.init(params)
    red = _Reducer(R, steps, track, dt)
    steep_axis = surface.steep_axis
    steep0 = Z[steep_axis].astype(float)

    # effective step |dz_i| / |g_i| at log-spaced steps
    axes = track.eff_axes
    eff_at = log_steps(steps, track.eff_points) if axes is not None else np.zeros(0, np.int64)
    n_axes = 1 if axes == "all" else len(axes or ())
    eff = np.full((eff_at.size, n_axes, R), np.nan)
    idx = None if axes in (None, "all") else np.asarray(axes, dtype=np.intp)
    gsave = zsave = None
    # the decimated path, only when asked
    path_at = red.csteps if track.path_runs else np.zeros(0, np.int64)
    path = np.full((path_at.size, d, min(track.path_runs, R)), np.nan) if track.path_runs else None

    def perturb_and_clip() -> None:
        if noise:
            rng.standard_normal(dtype=dt, out=N)
            np.multiply(N, noise, out=N)
            np.add(G, N, out=G)
        if clip_norm is not None:
            clip_grad_norm_(grads_list, clip_norm, run_axes=(1,))
        if clip_value is not None:
            clip_grad_value_(grads_list, clip_value)

    post = bool(noise) or clip_norm is not None or clip_value is not None
    step = optimizer.step
    e_i, p_i = 0, 0
    e_next = int(eff_at[0]) if eff_at.size else -1
    p_next = int(path_at[0]) if path_at.size else -1
    with np.errstate(all="ignore"):
        if not model:
            grad, value = surface.grad, surface.value
            pos = np.empty((d, K + 1, R), dt)  # z_t0 .. z_t0+K of the current block
            dbuf, sqbuf = np.empty((d, K, R), dt), np.zeros((K, R), dt)
            pos[:, 0] = Z
            red.absorb_losses(0, value(pos[:, :1]))
            t0 = time.perf_counter()
            t = 0
            while t < steps:
                k_end = min(K, steps - t)
                for k in range(k_end):
                    tt = t + k
                    grad(Z, out=G)
                    if post:
                        perturb_and_clip()
                    if tt == e_next:
                        gsave, zsave = _eff_save(G, Z, idx)
                    if tt == p_next:
                        path[p_i] = Z[:, :path.shape[2]]
                        p_i += 1
                        p_next = int(path_at[p_i]) if p_i < path_at.size else -1
                    state = step(params, grads_list, state)
                    np.copyto(pos[:, k + 1], Z)
                    if tt == e_next:
                        eff[e_i] = _eff_ratio(Z, zsave, gsave, idx)
                        e_i += 1
                        e_next = int(eff_at[e_i]) if e_i < eff_at.size else -1
                # f(z_{t+1}) .. f(z_{t+k_end}), then the steps that end at them
                red.absorb_losses(t + 1, value(pos[:, 1:k_end + 1]))
                if track.shape or track.travel:
                    delta = np.subtract(pos[:, 1:k_end + 1], pos[:, :k_end], out=dbuf[:, :k_end])
                    sq = sqbuf[:k_end]
                    if track.shape:
                        np.multiply(delta, delta, out=delta)
                        np.sum(delta, axis=0, out=sq)
                    red.absorb_steps(t, sq, pos[steep_axis, :k_end + 1])
                pos[:, 0] = pos[:, k_end]
                t += k_end
            seconds = time.perf_counter() - t0
        else:
            vg = surface.value_and_grad
            kw = {"rng": rng} if stochastic else {}
            Lb = np.empty((K, R))
            sq_cur, sq_prev = np.empty((K, R)), np.empty((K, R))
            st_cur, st_prev = np.empty((K + 1, R)), np.empty((K + 1, R))
            prev = np.empty_like(Z)
            pending = None  # (t0, m) of the previous block's steps, waiting for their end losses
            full = np.full(red.curve.shape, np.nan) if stochastic else None
            c_i = 0
            c_next = int(red.csteps[0]) if stochastic and red.csteps.size else -1
            t0 = time.perf_counter()
            t = 0
            while t < steps:
                k_end = min(K, steps - t)
                st_cur[0] = Z[steep_axis]
                for k in range(k_end):
                    tt = t + k
                    if tt == c_next:  # a minibatch loss is noise: the curve takes the full-batch loss
                        full[c_i] = surface.value(Z)
                        c_i += 1
                        c_next = int(red.csteps[c_i]) if c_i < red.csteps.size else -1
                    Lb[k] = vg(Z, G, **kw)[0]
                    if post:
                        perturb_and_clip()
                    if tt == e_next:
                        gsave, zsave = _eff_save(G, Z, idx)
                    if tt == p_next:
                        path[p_i] = Z[:, :path.shape[2]]
                        p_i += 1
                        p_next = int(path_at[p_i]) if p_i < path_at.size else -1
                    np.copyto(prev, Z)
                    state = step(params, grads_list, state)
                    np.subtract(Z, prev, out=prev)
                    np.sum(prev * prev, axis=0, out=sq_cur[k])
                    st_cur[k + 1] = Z[steep_axis]
                    if tt == e_next:
                        eff[e_i] = _eff_ratio(Z, zsave, gsave, idx)
                        e_i += 1
                        e_next = int(eff_at[e_i]) if e_i < eff_at.size else -1
                red.absorb_losses(t, Lb[:k_end])
                if pending is not None:
                    red.absorb_steps(pending[0], sq_prev[:pending[1]], st_prev[:pending[1] + 1])
                sq_cur, sq_prev = sq_prev, sq_cur
                st_cur, st_prev = st_prev, st_cur
                pending = (t, k_end)
                t += k_end
            seconds = time.perf_counter() - t0
            # f(z_T): the full-batch loss, then the last block's steps
            red.absorb_losses(steps, np.asarray(surface.value(Z), dtype=float)[None, :])
            if pending is not None:
                red.absorb_steps(pending[0], sq_prev[:pending[1]], st_prev[:pending[1] + 1])
            if full is not None:
                if red.csteps.size and red.csteps[-1] == steps:
                    full[-1] = red.final
                red.curve = full
        if p_next == steps and path is not None:
            path[p_i] = Z[:, :path.shape[2]]
    return Trajectories(steps, R, seconds, red.loss0, red.final, red.dstep,
                        red.stt, red.largest(), red.flips, red.pairs, red.travel, red.rise, steep0, Z,
                        red.csteps, red.curve, eff_at, eff, path, K)


def _eff_save(G: np.ndarray, Z: np.ndarray, idx) -> tuple[np.ndarray, np.ndarray]:
    if idx is None:
        return G.copy(), Z.copy()
    return G[idx].copy(), Z[idx].copy()


def _eff_ratio(Z: np.ndarray, z_before: np.ndarray, g: np.ndarray, idx) -> np.ndarray:
    """|dz_i| / |g_i| per coordinate (A, R); with idx None, the median over coordinates with g != 0 (1, R)."""
    z_after = Z if idx is None else Z[idx]
    with np.errstate(all="ignore"):
        r = np.abs(z_after - z_before) / np.abs(g)
    if idx is not None:
        return r
    r[~np.isfinite(r)] = np.nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmedian(r, axis=0)[None, :]


# --------------------------------------------------------------------------- per-run measurements


def first_at_or_below(loss: np.ndarray, target: float) -> np.ndarray:
    """First t with loss[t] <= target per run, as float (nan: never); loss (T + 1, R)."""
    with np.errstate(invalid="ignore"):
        hit = loss <= target
    first = np.argmax(hit, axis=0).astype(float)
    first[~hit.any(axis=0)] = np.nan
    return first


@dataclass
class RunMetrics:
    """Per-run measurements (arrays of shape (R,)); nan where a run diverged or never got there.

    final_loss: f(z_T) (nan if diverged). steps_to_target: first t with f(z_t) <= target. largest_step:
    max_t |z_{t+1} - z_t| before divergence. oscillation: fraction of consecutive step pairs whose
    steep-axis components have opposite signs. amplitude: the steep axis's travel over its initial
    distance to the minimum, minus 1 (0 for a straight approach; nan where it was not tracked).
    """

    final_loss: np.ndarray
    steps_to_target: np.ndarray
    reached: np.ndarray
    diverged: np.ndarray
    largest_step: np.ndarray
    oscillation: np.ndarray
    amplitude: np.ndarray
    target: float


def measure(traj: Trajectories, target: float, steep_min: float = 0.0) -> RunMetrics:
    """The per-run measurements of a streamed run (its reductions) against a target loss."""
    diverged = traj.diverged_step >= 0
    final = np.where(diverged, np.nan, traj.final)
    with np.errstate(all="ignore"):
        osc = np.where(traj.pairs > 0, traj.flips / np.maximum(traj.pairs, 1), np.nan)
        amp = traj.travel / np.abs(traj.steep0 - steep_min) - 1.0
    amp = np.where(diverged | ~np.isfinite(amp), np.nan, amp)
    stt = traj.steps_to_target.astype(float)
    return RunMetrics(final.astype(float), stt, ~np.isnan(stt), diverged, traj.largest_step.astype(float),
                      osc.astype(float), amp.astype(float), float(target))


def contraction_rate(dist: np.ndarray, steps: np.ndarray | None = None, start: int | None = None,
                     floor: float = 1e-150) -> np.ndarray:
    """Per-run contraction of a distance curve dist (C, R) per step, sampled at `steps` (default 0 .. C-1):
    exp of the least-squares slope of log(dist) against the step, from `start` (default the last step // 4)
    to the last point still above `floor` (so underflow does not bias it). The fit averages out the
    rotation of momentum's complex eigenvalues; nan with fewer than 3 points."""
    C, R = dist.shape
    t = (np.arange(C, dtype=float) if steps is None else np.asarray(steps, dtype=float))[:, None]
    t0 = t[-1, 0] // 4 if start is None else start
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


def loglog_fit(steps: np.ndarray, values: np.ndarray, start: float) -> np.ndarray:
    """Per run, the least-squares slope of log10 values against log10 (step + 1) over steps >= start;
    values (E, R); nan where fewer than 3 finite positive points."""
    x = np.log10(np.asarray(steps, dtype=float) + 1.0)[:, None]
    with np.errstate(all="ignore"):
        y = np.log10(values)
        ok = np.isfinite(y) & (np.asarray(steps)[:, None] >= start)
        n = ok.sum(axis=0)
        xm = np.where(ok, x, 0.0).sum(axis=0) / n
        ym = np.where(ok, y, 0.0).sum(axis=0) / n
        dx = np.where(ok, x - xm, 0.0)
        slope = (dx * np.where(ok, y - ym, 0.0)).sum(axis=0) / (dx * dx).sum(axis=0)
    return np.where(n >= 3, slope, np.nan)


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
    traj = run_trajectories(surface, opt, np.tile(Z, (1, L)), steps, track=Track(target=target, shape=False, curve=0),
                            **engine)
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


def curvatures(surface: Surface) -> np.ndarray:
    """Hessian diagonal at the first minimum by central differences (exact for the diagonal quadratics)."""
    z = surface.minima[0]
    d = z.size
    h = 1e-3
    E = np.eye(d) * h
    G = surface.grad(np.concatenate([z[:, None] + E, z[:, None] - E], axis=1))
    return (np.diag(G[:, :d]) - np.diag(G[:, d:])) / (2 * h)


# --------------------------------------------------------------------------- a full-history reference


def full_history(surface: Surface, optimizer: Optimizer, Z0: np.ndarray, steps: int, **kwargs) -> Trajectories:
    """The same run with the whole history as one block: what the streamed reductions must equal exactly."""
    return run_trajectories(surface, optimizer, Z0, steps, block=steps, **kwargs)


def path_of(surface: Surface, optimizer: Optimizer, Z0: np.ndarray, steps: int, **kwargs) -> np.ndarray:
    """Every position z_0 .. z_T (T + 1, d, R) of a short run: for tests and the exact checks that need it."""
    Z = np.array(Z0, dtype=np.float64, order="C", copy=True)
    out = np.empty((steps + 1, *Z.shape))
    out[0] = Z
    G = np.empty_like(Z)
    noise, rng = kwargs.get("noise", 0.0), kwargs.get("rng")
    state = optimizer.init([Z])
    with np.errstate(all="ignore"):
        for t in range(steps):
            surface.grad(Z, out=G)
            if noise:
                G += noise * rng.standard_normal(Z.shape)
            state = optimizer.step([Z], [G], state)
            out[t + 1] = Z
    return out

