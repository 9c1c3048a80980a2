"""Pure measurements of depth: sizing nets for a parameter budget, the sawtooth task with its exact error and
the shallow net's lower bound, training many nets at once with snapshots, least squares, linear probes and
the hierarchical parity target.

The sawtooth (Telgarsky 2016). t(x) = 1 - |2x - 1| on [0, 1]; t^k, the tent map composed k times, has 2^k
linear pieces (2^(k-1) teeth) with slopes +-2^k. Nets see the standardised input u = sqrt(12) (x - 1/2) and
fit the standardised target y = sqrt(12) (t^k(x) - 1/2); x ~ U(0, 1) makes t^k(x) ~ U(0, 1), so Var y = 1
exactly and a net's population error E_x (f(u) - y)^2 is its fraction of variance unexplained (FVU). It is
computed exactly (`relu_exact.squared_error`), not on a test sample.

A shallow lower bound. One hidden layer of w relu units on one input is piecewise linear with at most w + 1
pieces, so at most w breakpoints. A window on which f has no breakpoint costs at least the best line's error
there. Two families of disjoint windows give two bounds on the FVU of ANY function with w breakpoints:
- the 2^(k-1) teeth [2i, 2i + 2] / 2^k: the best line on a tooth is the constant 1/2, so each unbroken tooth
  costs 1/12 of its width: FVU >= 1 - w / 2^(k-1);
- the 2^k - 1 windows of half-width 2^-(k+1) around each kink: each costs (2^k)^2 a^3 / 6 with a = 2^-(k+1):
  FVU >= (2^k - w - 1) / 2^(k+2), positive until w = 2^k - 1, the width of an exact fit.
The bound is the larger of the two. The deep construction (`relu_exact.tent_net`) reaches zero with 6k + 1
parameters.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

SQRT12 = math.sqrt(12.0)
U_LO, U_HI = -SQRT12 / 2, SQRT12 / 2       # the standardised input's range, x = 0 .. 1
MAX_REDRAWS = 50                            # draws of a net born dead before giving up on its seed
LAYER_OVERHEAD = 7e-5     # seconds per linear layer per step: the kernel calls of forward, backward, update
ELEMENT_COST = 5e-9       # seconds per hidden activation element per step (forward, backward, relu)


# ----------------------------------------------------------------------------- sizing nets for a budget

def mlp_param_count(widths, d_in: int, d_out: int) -> int:
    """Weights and biases of a dense net d_in -> widths... -> d_out: sum over layers of (fan_in + 1) fan_out."""
    sizes = (d_in, *widths, d_out)
    return int(sum((a + 1) * b for a, b in zip(sizes[:-1], sizes[1:])))


def widths_for_budget(budget: int, depth: int, d_in: int, d_out: int) -> tuple[int, ...]:
    """Hidden widths of a depth-`depth` net whose parameter count is closest to `budget`.

    The first m layers have width w + 1 and the rest w (0 <= m < depth); the count grows with (w, m), so the
    search walks w upward from 1 and keeps the closest (ties: the smaller net).
    """
    best, best_gap = (1,) * depth, math.inf
    w = 1
    while True:
        for m in range(depth if depth > 1 else 1):
            widths = (w + 1,) * m + (w,) * (depth - m)
            gap = abs(mlp_param_count(widths, d_in, d_out) - budget)
            if gap < best_gap:
                best, best_gap = widths, gap
        if mlp_param_count((w,) * depth, d_in, d_out) > budget:
            return best
        w += 1


def pad_stack(nets: list[list[np.ndarray]]) -> list[np.ndarray]:
    """Nets of one depth (flat MLP parameter lists, replica axis first) zero-padded to common shapes, stacked.

    A padded unit has zero weights in and out and a zero bias: relu(0) = 0 and its gradients are zero, so it
    stays zero under any optimizer and the padded net computes exactly the small one.
    """
    out = []
    for arrays in zip(*nets):
        shape = tuple(max(a.shape[d] for a in arrays) for d in (1, 2))
        big = np.zeros((sum(a.shape[0] for a in arrays), *shape), dtype=arrays[0].dtype)
        start = 0
        for a in arrays:
            big[start:start + a.shape[0], :a.shape[1], :a.shape[2]] = a
            start += a.shape[0]
        out.append(big)
    return out


def group_width_sets(width_sets: list[tuple[int, ...]], replicas: int, batch: int) -> list[list[int]]:
    """Partition same-depth nets into padded groups that minimise the estimated time of one training step.

    A group costs LAYER_OVERHEAD per linear layer (one set of kernel calls) plus ELEMENT_COST per hidden
    activation element of its padded widths (measured on a 2-core box); nets sorted by size are split into
    contiguous groups by dynamic programming.
    """
    order = sorted(range(len(width_sets)), key=lambda i: (sum(width_sets[i]), width_sets[i]))
    depth = len(width_sets[0])

    def cost(idx):
        padded = [max(width_sets[i][l] for i in idx) for l in range(depth)]
        return (depth + 1) * LAYER_OVERHEAD + len(idx) * replicas * batch * sum(padded) * ELEMENT_COST

    best = [0.0] + [math.inf] * len(order)
    cut = [0] * (len(order) + 1)
    for j in range(1, len(order) + 1):
        for i in range(j):
            c = best[i] + cost(order[i:j])
            if c < best[j]:
                best[j], cut[j] = c, i
    groups, j = [], len(order)
    while j > 0:
        groups.append(order[cut[j]:j])
        j = cut[j]
    return groups[::-1]


# ----------------------------------------------------------------------------- the sawtooth

@dataclass(frozen=True)
class ArrayData:
    """A data set as the trainer takes it (dlbench.nn.train.Dataset): arrays, task and sizes."""

    name: str
    X_train: np.ndarray
    y_train: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    task: str = "regression"
    hyper: dict = field(default_factory=dict)

    @property
    def n_features(self) -> int:
        return int(self.X_train.shape[1])

    @property
    def n_outputs(self) -> int:
        return int(self.y_train.shape[1]) if self.task == "regression" else int(self.y_train.max()) + 1


def tent_map(x: np.ndarray, k: int) -> np.ndarray:
    """t^k(x) on [0, 1]: t(x) = 1 - |2x - 1| composed k times."""
    from dlbench.data import tent_map as tent

    return tent(np.asarray(x, dtype=np.float64), k)


def sawtooth_target(x: np.ndarray, k: int) -> np.ndarray:
    """The standardised sawtooth sqrt(12) (t^k(x) - 1/2): mean 0, variance 1 for x ~ U(0, 1)."""
    return SQRT12 * (tent_map(x, k) - 0.5)


def tent_kinks(k: int) -> np.ndarray:
    """The 2^k - 1 interior kinks j / 2^k of t^k."""
    return np.arange(1, 2**k) / 2**k


def sawtooth_fvu(params: list[np.ndarray], k: int) -> np.ndarray:
    """Exact population error of each replica of a 1-input relu net against the standardised sawtooth, (S,)."""
    from dlbench.experiments.depth.relu_exact import squared_error

    return squared_error(params, lambda x: sawtooth_target(x, k), tent_kinks(k), start=[U_LO], end=[U_HI])


def shallow_bound(width: int, k: int) -> float:
    """A lower bound on the FVU of any function with at most `width` breakpoints (one hidden relu layer of
    `width` units on one input) against t^k: max(1 - w / 2^(k-1), (2^k - w - 1) / 2^(k+2), 0)."""
    teeth = 1.0 - width / 2 ** (k - 1)
    kinks = (2**k - width - 1) / 2 ** (k + 2)
    return max(teeth, kinks, 0.0)


def width_lower_bound(k: int, error: float) -> int:
    """The fewest units whose `shallow_bound` is at most `error`: no narrower shallow net can reach it."""
    w = 0
    while shallow_bound(w, k) > error:
        w += 1
    return w


def count_teeth(k: int) -> int:
    """Local maxima of t^k on [0, 1], counted on the dyadic grid j / 2^(k+1) (exact there)."""
    x = np.arange(2 ** (k + 1) + 1) / 2 ** (k + 1)
    y = tent_map(x, k)
    inner = (y[1:-1] > y[:-2]) & (y[1:-1] > y[2:])
    return int(inner.sum() + (y[0] > y[1]) + (y[-1] > y[-2]))


def standardised_tent_net(k: int) -> list[np.ndarray]:
    """Telgarsky's width-2 depth-k net, in the standardised coordinates the trained nets use."""
    from dlbench.experiments.depth.relu_exact import tent_net

    p = tent_net(k)
    # x = u / sqrt(12) + 1/2 into the first layer; y = sqrt(12) (t - 1/2) out of the last
    W0, b0 = p[0] / SQRT12, p[1] + 0.5 * p[0]
    W_out, b_out = p[-2] * SQRT12, (p[-1] - 0.5) * SQRT12
    return [W0, b0, *p[2:-2], W_out, b_out]


def standardised_shallow_net(k: int, width: int) -> list[np.ndarray]:
    """A hand-built one-hidden-layer net of `width` units equal to t^k, in the standardised coordinates."""
    from dlbench.experiments.depth.relu_exact import shallow_tent_net

    return shallow_tent_net(k, width, scale=1 / SQRT12, shift=0.5, out_scale=SQRT12, out_shift=-SQRT12 / 2)


# ----------------------------------------------------------------------------- training many nets at once

@dataclass
class Runs:
    """Nets trained on sawtooth targets: errors[c, j, s, t] of net c, learning rate j, seed s at checkpoint t.

    nets[c] = (hidden widths, k of its target t^k). redrawn[c, s]: how many inits of that net and seed were
    born dead (some hidden layer zero on the whole input interval) and drawn again. diverged[c, j, s]: the
    trainer stopped the run (non-finite or exploding loss); its error is that of the parameters it kept.
    Errors of (lr, seed) pairs that were not trained are NaN.
    """

    nets: list
    lrs: list
    seeds: np.ndarray
    checkpoints: tuple
    errors: np.ndarray
    redrawn: np.ndarray
    diverged: np.ndarray

    @property
    def width_sets(self) -> list:
        return [w for w, _ in self.nets]


def sawtooth_inputs(n_train: int, rng: np.random.Generator, n_test: int = 64) -> ArrayData:
    """x ~ U(0, 1) as the net's input u = sqrt(12) (x - 1/2) and as the raw target from which `tent_loss`
    computes each replica's t^k (float32); the test set is a small grid (the error that counts is the exact
    population error, `sawtooth_fvu`)."""
    x = rng.uniform(0.0, 1.0, (n_train, 1))
    xt = (np.arange(n_test)[:, None] + 0.5) / n_test
    return ArrayData("sawtooth", (SQRT12 * (x - 0.5)).astype(np.float32), x.astype(np.float32),
                     (SQRT12 * (xt - 0.5)).astype(np.float32), xt.astype(np.float32))


def tent_loss(ks: np.ndarray):
    """An mse loss whose target for replica r is the standardised sawtooth sqrt(12) (t^ks[r](x) - 1/2) of the
    raw input x the data set carries as its target; one training call fits several k side by side."""
    from dlbench.nn.losses import mse

    kk = np.asarray(ks)[:, None, None]
    top = int(kk.max())

    def loss_fn(out, x):
        t = np.array(np.broadcast_to(x, out.shape), dtype=out.dtype)
        new = np.empty_like(t)
        for i in range(top):
            np.multiply(t, 2, out=new)
            new -= 1
            np.abs(new, out=new)
            np.subtract(1, new, out=new)
            new -= t
            new *= i < kk          # replicas with k <= i keep their t
            t += new
        t -= 0.5
        t *= SQRT12
        return mse(out, t)

    return loss_fn


def live_init(model, seeds: Sequence[int], *, redraw: bool) -> tuple[list[np.ndarray], np.ndarray]:
    """model.init(seeds) with every replica born dead drawn again from (seed, attempt), up to MAX_REDRAWS times.

    Returns (params, how many draws of each seed were dead). Without `redraw` the first draw is kept.
    """
    from dlbench.experiments.depth.relu_exact import dead_layer

    params = model.init([int(s) for s in seeds])
    redrawn = np.zeros(len(seeds), dtype=np.int64)
    if model.n_hidden == 0 or model.widths[0] != 1:
        return params, redrawn
    dead = dead_layer(params, U_LO, U_HI)
    redrawn += dead
    attempt = 0
    while redraw and dead.any() and attempt < MAX_REDRAWS:
        attempt += 1
        idx = np.flatnonzero(dead)
        fresh = model.init([int(np.random.SeedSequence([int(seeds[i]), attempt]).generate_state(1)[0])
                            for i in idx])
        for p, f in zip(params, fresh):
            p[idx] = f
        still = dead_layer(fresh, U_LO, U_HI)
        dead[idx] = still
        redrawn[idx] += still
    return params, redrawn


def train_sawtooth(nets: Sequence[tuple[tuple[int, ...], int]], data: ArrayData, lrs: Sequence[float], seeds,
                   checkpoints: Sequence[int], *, tuning: int = 0, activation: str = "relu",
                   optimizer: str = "adam", batch_size: int = 64) -> Runs:
    """Train nets[c] = (hidden widths, k), all of one depth, each on its t^k at every lr and seed; the exact
    population FVU at each checkpoint (update count).

    seeds: (S,) for every net or (C, S) one row per net. With `tuning` > 0 the first `tuning` seeds train at
    every lr; each net's best lr per checkpoint (lowest median FVU over them) is then trained on the other
    seeds, and errors at lrs not chosen stay NaN for those seeds. Without it every seed trains at every lr.
    A seed's init is the same at every lr; a relu net born dead is drawn again (live_init). Nets are
    zero-padded into groups (group_width_sets), one replica per (net, lr, seed), lr and target per replica.
    """
    from dlbench.nn.mlp import MLP, MLPSpec

    checkpoints = tuple(sorted(set(int(c) for c in checkpoints)))
    C, L = len(nets), len(lrs)
    seeds = np.broadcast_to(np.asarray(seeds, dtype=np.int64), (C, np.shape(seeds)[-1]))
    S = seeds.shape[1]
    errors = np.full((C, L, S, len(checkpoints)), np.nan)
    redrawn = np.zeros((C, S), dtype=np.int64)
    diverged = np.zeros((C, L, S), dtype=bool)
    inits = []
    for c, (widths, _) in enumerate(nets):
        model = MLP(MLPSpec((1, *widths, 1), activation=activation, init="kaiming_normal"))
        params, redrawn[c] = live_init(model, seeds[c], redraw=activation == "relu")
        inits.append(params)
    run = dict(nets=nets, inits=inits, seeds=seeds, lrs=lrs, data=data, checkpoints=checkpoints, errors=errors,
               diverged=diverged, activation=activation, optimizer=optimizer, batch_size=batch_size)
    if not tuning:
        _train_jobs([[*range(L)]] * C, list(range(S)), **run)
    else:
        _train_jobs([[*range(L)]] * C, list(range(tuning)), **run)
        chosen = best_lr(errors[:, :, :tuning, :].transpose(0, 3, 1, 2), tuning)       # (C, T)
        _train_jobs([sorted(set(int(j) for j in chosen[c])) for c in range(C)], list(range(tuning, S)), **run)
    return Runs(list(nets), list(lrs), seeds, checkpoints, errors, redrawn, diverged)


def _train_jobs(lr_sets, rows, *, nets, inits, seeds, lrs, data, checkpoints, errors, diverged, activation,
                optimizer, batch_size) -> None:
    """Train net c at each lr of lr_sets[c] for the seeds at `rows`; fill errors[c, j, rows, :] in place."""
    from dlbench.nn.mlp import MLP, MLPSpec
    from dlbench.nn.optim import get_optimizer
    from dlbench.nn.train import train

    steps = checkpoints[-1]
    n = data.X_train.shape[0]
    batch = min(batch_size, n)
    epochs = -(-steps // max(1, n // batch))
    R = len(rows)
    active = [c for c in range(len(nets)) if lr_sets[c]]
    per_net = max(len(lr_sets[c]) for c in active) * R
    for part in group_width_sets([nets[c][0] for c in active], per_net, batch):
        group = [active[i] for i in part]
        jobs = [(c, j) for c in group for j in lr_sets[c]]
        params = pad_stack([[p[rows] for p in inits[c]] for c, _ in jobs])
        padded = tuple(max(nets[c][0][l] for c in group) for l in range(len(nets[group[0]][0])))
        model = MLP(MLPSpec((1, *padded, 1), activation=activation))
        lr = np.repeat(np.asarray([lrs[j] for _, j in jobs], dtype=np.float32), R).reshape(-1, 1, 1)
        ks = np.repeat([nets[c][1] for c, _ in jobs], R)
        snaps: dict = {}

        def snapshot(info, snaps=snaps):
            if info.step + 1 in checkpoints:
                snaps[info.step + 1] = [p.copy() for p in info.params]

        hist = train(model, data, np.concatenate([seeds[c][rows] for c, _ in jobs]),
                     optimizer=get_optimizer(optimizer, lr=lr), loss=tent_loss(ks), epochs=epochs, batch_size=batch,
                     max_steps=steps, params=params, eval_every=0, callback=snapshot)
        for t, step in enumerate(checkpoints):
            p = snaps.get(step, hist.params)    # a run that stopped early keeps its last parameters
            for i, (c, j) in enumerate(jobs):
                errors[c, j, rows, t] = sawtooth_fvu([q[i * R:(i + 1) * R] for q in p], nets[c][1])
        for i, (c, j) in enumerate(jobs):
            diverged[c, j, rows] = hist.diverged[i * R:(i + 1) * R]


def best_lr(errors: np.ndarray, tuning: int) -> np.ndarray:
    """Index of the lr with the lowest median error over the first `tuning` seeds; errors (..., lrs, seeds).
    A run that diverged to a non-finite error counts as the worst."""
    tune = np.where(np.isfinite(errors[..., :tuning]), errors[..., :tuning], np.inf)
    return np.argmin(np.median(tune, axis=-1), axis=-1)


def at_best_lr(errors: np.ndarray, tuning: int) -> tuple[np.ndarray, np.ndarray]:
    """(chosen lr index, errors of the other seeds at it) for errors (lrs, seeds)."""
    j = int(best_lr(errors, tuning))
    return j, errors[j, tuning:]


# ----------------------------------------------------------------------------- D4: least squares

def least_squares_error(data) -> float:
    """Test MSE / Var(y_test) of the affine least-squares fit on the training set (float64)."""
    X = np.c_[data.X_train.astype(np.float64), np.ones(len(data.X_train))]
    coef, *_ = np.linalg.lstsq(X, data.y_train.astype(np.float64), rcond=None)
    Xt = np.c_[data.X_test.astype(np.float64), np.ones(len(data.X_test))]
    yt = data.y_test.astype(np.float64)
    return float(np.mean((Xt @ coef - yt) ** 2) / yt.var())


# ----------------------------------------------------------------------------- D6: parity of parities, probes

def parity_of_parities(rng: np.random.Generator, n: int, pairs: int = 2) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """x ~ N(0, I) of 2 * pairs inputs; level 1: z_i = sign(x_{2i} x_{2i+1}), the XOR of two signs; level 2:
    y = prod_i z_i, the XOR of the XORs. Returns (x float32 (n, 2 pairs), label y > 0 int64 (n,), z (n, pairs))."""
    x = rng.standard_normal((n, 2 * pairs))
    z = np.sign(x[:, 0::2] * x[:, 1::2])
    y = np.prod(z, axis=1)
    return x.astype(np.float32), (y > 0).astype(np.int64), z


def probe_accuracy(h_train: np.ndarray, labels_train: np.ndarray, h_test: np.ndarray, labels_test: np.ndarray,
                   ridge: float = 1e-3) -> np.ndarray:
    """Accuracy of a linear probe on each replica's features: ridge least squares on +-1 labels, with a bias.

    h_*: (..., N, F) features (a leading replica axis or none); labels (N,) in {0, 1} or (..., N). The probe
    w minimises |[h, 1] w - t|^2 + ridge N |w|^2 with t = 2 label - 1 (closed form, float64); it predicts
    label 1 where [h, 1] w > 0. Returns the test accuracy, shape (...,).
    """
    def design(h):
        h = np.asarray(h, dtype=np.float64)
        return np.concatenate([h, np.ones((*h.shape[:-1], 1))], axis=-1)

    A, At = design(h_train), design(h_test)
    t = 2.0 * np.asarray(labels_train, dtype=np.float64) - 1.0
    t = np.broadcast_to(t, A.shape[:-1])[..., None]
    AT = np.ascontiguousarray(np.swapaxes(A, -1, -2))   # a strided operand sends matmul off BLAS
    gram = AT @ A + ridge * A.shape[-2] * np.eye(A.shape[-1])
    w = np.linalg.solve(gram, AT @ t)
    pred = (At @ w)[..., 0] > 0
    return np.mean(pred == (np.asarray(labels_test) > 0), axis=-1)
