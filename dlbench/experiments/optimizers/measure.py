"""Pure measurements of the optimizers experiment: no recording, no verdicts.

Landscapes (O0: the loss along a line and on a filter-normalised 2-D slice), critical points and their
Hessian index (O1), the random-Hessian Monte Carlo beside the notes' formula (O1's check), the first
step's per-coordinate spread (O5), Adam rebuilt from momentum and RMSProp (O7's check), the relu
net's rescaling and permutation symmetries (O8), and a recurrent net's weight gradients and loss spikes
(O10).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from dlbench.experiments.optimizers.trajectories import ModelSurface

# --------------------------------------------------------------------------- O0: line and slice


def line_losses(loss_of: Callable[[list], np.ndarray], start: list, end: list, alphas: np.ndarray,
                chunk: int = 64) -> np.ndarray:
    """f((1 - a) start + a end) for every a of `alphas` and every replica: (A, S).

    start/end: parameter lists with a leading replica axis S; loss_of(params) -> (S',) for a list with any
    number S' of replicas (evaluated `chunk` replicas at a time to bound the activations' memory).
    """
    A, S = len(alphas), start[0].shape[0]
    a = np.asarray(alphas, dtype=float)
    out = np.empty((A, S))
    step = max(1, chunk // S)
    for i in range(0, A, step):
        sl = a[i:i + step]
        params = []
        for p, q in zip(start, end):
            w = sl.reshape((-1,) + (1,) * p.ndim)
            params.append(((1 - w) * p[None] + w * q[None]).reshape(-1, *p.shape[1:]))
        out[i:i + sl.size] = loss_of(params).reshape(sl.size, S)
    return out


def bump(line: np.ndarray) -> np.ndarray:
    """Per replica, the largest rise of the loss along the line above its running minimum, over the total
    decrease f(start) - f(end): 0 for a monotone line (Goodfellow, Vinyals & Saxe 2015); line (A, S)."""
    with np.errstate(all="ignore"):
        rise = (line - np.minimum.accumulate(line, axis=0)).max(axis=0)
        return rise / (line[0] - line[-1])


def filter_normalised_direction(rng: np.random.Generator, params: list, is_weight: Sequence[bool]) -> list:
    """A random direction with each filter scaled to the norm of the same filter of `params` (Li et al. 2018).

    A filter is a unit's incoming weights (a column of a (S, fan_in, fan_out) weight); bias directions are
    zero, as in Li et al. Every replica gets its own direction."""
    out = []
    for p, w in zip(params, is_weight):
        if not w:
            out.append(np.zeros_like(p))
            continue
        r = rng.standard_normal(p.shape)
        norm_p = np.linalg.norm(p, axis=-2, keepdims=True)
        norm_r = np.linalg.norm(r, axis=-2, keepdims=True)
        out.append(r * norm_p / np.where(norm_r > 0, norm_r, 1.0))
    return out


def slice_losses(loss_of: Callable[[list], np.ndarray], centre: list, d1: list, d2: list, grid: np.ndarray,
                 chunk: int = 64) -> np.ndarray:
    """f(centre + a d1 + b d2) over the grid a, b in `grid` for every replica: (G, G, S)."""
    G, S = len(grid), centre[0].shape[0]
    A, B = np.meshgrid(grid, grid, indexing="ij")
    A, B = A.ravel(), B.ravel()
    out = np.empty((A.size, S))
    step = max(1, chunk // S)
    for i in range(0, A.size, step):
        a, b = A[i:i + step], B[i:i + step]
        params = []
        for c, u, v in zip(centre, d1, d2):
            shape = (-1,) + (1,) * c.ndim
            params.append((c[None] + a.reshape(shape) * u[None] + b.reshape(shape) * v[None]).reshape(-1, *c.shape[1:]))
        out[i:i + a.size] = loss_of(params).reshape(a.size, S)
    return out.reshape(G, G, S)


def local_minima(surface: np.ndarray) -> np.ndarray:
    """Per replica, the strict local minima of a (G, G, S) grid of losses among the interior points: points
    lower than all eight neighbours (1 for a single basin, many for a rough landscape)."""
    G = surface.shape[0]
    c = surface[1:-1, 1:-1]
    with np.errstate(invalid="ignore"):
        lower = np.ones(c.shape, dtype=bool)
        for di in (-1, 0, 1):
            for dj in (-1, 0, 1):
                if di or dj:
                    lower &= c < surface[1 + di:G - 1 + di, 1 + dj:G - 1 + dj]
    return lower.sum(axis=(0, 1))


# --------------------------------------------------------------------------- O1: critical points


@dataclass
class CriticalPoints:
    """Critical points found from S starts: loss (S,), gradient norm (S,), Hessian eigenvalues (S, d),
    index (S,) = fraction of eigenvalues below -tol * max|eigenvalue|, converged (S,) = |grad| < gtol."""

    loss: np.ndarray
    grad_norm: np.ndarray
    eigenvalues: np.ndarray
    index: np.ndarray
    converged: np.ndarray


def hessians(grad: Callable, Z: np.ndarray, h: float = 1e-5) -> np.ndarray:
    """Hessians (S, d, d) at the columns of Z (d, S) by central differences of the exact gradient, all
    2 d S gradients in one call, symmetrised: H e_i ~ (g(z + h e_i) - g(z - h e_i)) / 2h."""
    d, S = Z.shape
    E = np.eye(d) * h
    plus = (Z[:, :, None] + E[:, None, :]).reshape(d, -1)
    minus = (Z[:, :, None] - E[:, None, :]).reshape(d, -1)
    G = grad(np.concatenate([plus, minus], axis=1))
    H = ((G[:, :S * d] - G[:, S * d:]).reshape(d, S, d) / (2 * h)).transpose(1, 0, 2)
    return 0.5 * (H + H.transpose(0, 2, 1))


def find_critical_points(surface: ModelSurface, Z: np.ndarray, *, iters: int = 60, gtol: float = 1e-10,
                         eig_tol: float = 1e-6) -> CriticalPoints:
    """Drive ||grad L|| to zero from every column of Z (d, S) by damped Newton steps on the gradient
    (Levenberg-Marquardt on the residual g, whose Jacobian is the Hessian H):

        dz = -(H^2 + lam I)^-1 H g,   accepted when ||g|| falls (then lam / 4), else lam * 4,

    computed in H's eigenbasis. Newton's method is drawn to saddles as much as to minima, which is what
    makes it find them (Dauphin et al. 2014). Then each point's Hessian spectrum and index."""
    Z = np.array(Z, dtype=np.float64, copy=True)
    d, S = Z.shape
    grad = surface.grad
    lam = np.full(S, 1e-3)
    with np.errstate(all="ignore"):
        g = grad(Z)
        gn = np.linalg.norm(g, axis=0)
        for _ in range(iters):
            todo = np.flatnonzero(gn >= gtol)
            if todo.size == 0:
                break
            w, V = np.linalg.eigh(hessians(grad, Z[:, todo]))
            c = np.einsum("sdk,ds->sk", V, g[:, todo])
            step = np.einsum("sdk,sk->ds", V, -(w * c) / (w * w + lam[todo, None]))
            trial = Z[:, todo] + step
            g_new = grad(trial)
            gn_new = np.linalg.norm(g_new, axis=0)
            ok = gn_new < gn[todo]
            acc = todo[ok]
            Z[:, acc], g[:, acc], gn[acc] = trial[:, ok], g_new[:, ok], gn_new[ok]
            lam[todo] = np.clip(np.where(ok, lam[todo] / 4, lam[todo] * 4), 1e-16, 1e8)
        w = np.linalg.eigvalsh(hessians(grad, Z))
        loss = surface.value(Z)
    tol = eig_tol * np.abs(w).max(axis=1, keepdims=True)
    index = (w < -tol).sum(axis=1) / d
    return CriticalPoints(np.asarray(loss, dtype=float), gn, w, index, gn < gtol)


def saddle_fractions(rng: np.random.Generator, n_max: int, samples: int, p: float = 0.5) -> dict:
    """Monte Carlo of the notes' model of O1: each of n curvatures positive with probability p; the fraction
    of draws with curvatures of both signs, n = 1 .. n_max, beside 1 - p^n - (1 - p)^n. Dimensions share
    draws (the first n signs)."""
    pos = rng.random((samples, n_max)) < p
    mixed = ~(np.logical_and.accumulate(pos, axis=1) | np.logical_and.accumulate(~pos, axis=1))
    n = np.arange(1, n_max + 1)
    return {"n": n, "formula": 1 - p ** n - (1 - p) ** n, "fraction": mixed.mean(axis=0), "samples": samples}


# --------------------------------------------------------------------------- O4: the straight canyon's closed form


def canyon_travel(kappa: float, lr: float, beta: float, steps: int) -> float:
    """The steep axis's travel sum_t |y_{t+1} - y_t| over |y_0| on the canyon 1/2(x^2 + kappa y^2), for heavy-ball
    descent (torch's form: b_0 = g_0, b_t = beta b_{t-1} + g_t, y <- y - lr b_t; beta 0 is plain descent) over
    `steps` steps. y decouples from x and its recurrence is linear, so the ratio is the same for every start:
    plain descent's is |lr kappa| (1 - |r|^T) / (1 - |r|), r = 1 - lr kappa; momentum's is summed from the one-mode
    recurrence, a scalar loop independent of the engine."""
    if beta == 0.0:
        r = 1.0 - lr * kappa
        a = abs(r)
        return abs(lr * kappa) * (steps if a == 1.0 else (1.0 - a ** steps) / (1.0 - a))
    y, b, travel = 1.0, 0.0, 0.0
    for t in range(steps):
        g = kappa * y
        b = g if t == 0 else beta * b + g
        travel += abs(lr * b)
        y -= lr * b
    return travel


# --------------------------------------------------------------------------- O5: the first step's spread


def log_spread(x: np.ndarray) -> np.ndarray:
    """Per run (columns of x (d, R)), the std over coordinates of log10 |x_i|, over the coordinates where
    x_i != 0: how many decades the coordinates' sizes spread over."""
    with np.errstate(divide="ignore", invalid="ignore"):
        lx = np.log10(np.abs(x))
    lx[~np.isfinite(lx)] = np.nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanstd(lx, axis=0)


def equalised_fraction(g: np.ndarray, step: np.ndarray) -> np.ndarray:
    """Per run, the fraction of the gradient's spread of coordinate sizes (decades) that the step no longer
    has: 1 - spread(step) / spread(g). 0 for gradient descent (its step is lr g), 1 for a step whose
    coordinates all have one size (Adagrad's first step is lr sign(g))."""
    sg, ss = log_spread(g), log_spread(step)
    with np.errstate(all="ignore"):
        return np.where(sg > 0, 1.0 - ss / sg, np.nan)


# --------------------------------------------------------------------------- O7: Adam from its parts


def adam_rebuilt(grads: np.ndarray, lr: float, beta1: float, beta2: float, eps: float, correct: bool) -> np.ndarray:
    """Adam's updates rebuilt from its gradients (T, ...) as momentum (an EMA of g) over RMSProp (the root of
    an EMA of g^2), with or without Kingma & Ba's bias correction 1/(1 - beta^t)."""
    m = np.zeros_like(grads[0])
    v = np.zeros_like(grads[0])
    out = np.empty_like(grads)
    for t, g in enumerate(grads, start=1):  # a loop over steps, vectorized over runs and coordinates
        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g * g
        if correct:
            out[t - 1] = -lr / (1 - beta1 ** t) * m / (np.sqrt(v) / math.sqrt(1 - beta2 ** t) + eps)
        else:
            out[t - 1] = -lr * m / (np.sqrt(v) + eps)
    return out


def adam_first_step(g: np.ndarray, lr: float, beta1: float, beta2: float, eps: float, correct: bool) -> np.ndarray:
    """|first step| of Adam from zero m, v: lr |g| / (|g| + eps) corrected, lr (1 - beta1) |g| /
    (sqrt(1 - beta2) |g| + eps) uncorrected (the zero start shrinks m by 1 - beta1 and v by 1 - beta2)."""
    a = np.abs(g)
    if correct:
        return lr * a / (a + eps)
    return lr * (1 - beta1) * a / (math.sqrt(1 - beta2) * a + eps)


# --------------------------------------------------------------------------- O8: symmetries of a relu net


def relu_symmetry_errors(net, params: list, X: np.ndarray, y, loss_fn, rng: np.random.Generator) -> dict:
    """max |f(x; T theta) - f(x; theta)| / max |f| for rescalings and permutations T of the hidden units,
    and the largest change of the loss; f is the net's output on X for every replica."""
    out0, _ = net.forward(params, X, train=True)
    loss0, _ = loss_fn(out0, y)
    scale = float(np.max(np.abs(out0)))
    results = {}

    def transformed(kind: str):
        p = [a.copy() for a in params]
        layers = net.split(p)
        for l in range(net.n_hidden):
            W, b, W_next = layers[l]["W"], layers[l].get("b"), layers[l + 1]["W"]
            S, width = W.shape[0], W.shape[-1]
            if kind in ("rescale x10", "rescale per unit", "both"):
                c = np.full((S, 1, width), 10.0) if kind == "rescale x10" else \
                    np.exp(rng.uniform(np.log(0.1), np.log(10.0), (S, 1, width)))
                W *= c
                if b is not None:
                    b *= c
                W_next /= c.transpose(0, 2, 1)
            if kind in ("permute", "both"):
                perm = rng.permutation(width)
                W[...] = W[..., perm]
                if b is not None:
                    b[...] = b[..., perm]
                W_next[...] = W_next[:, perm, :]
        return p

    for kind in ("rescale x10", "rescale per unit", "permute", "both"):
        p = transformed(kind)
        out, _ = net.forward(p, X, train=True)
        loss, _ = loss_fn(out, y)
        results[kind] = (float(np.max(np.abs(out - out0))) / scale, float(np.max(np.abs(loss - loss0))))
    return results


# --------------------------------------------------------------------------- O10: gradients through time


def recurrent_net(hidden: int, seeds: Sequence[int], rho: Sequence[float], dtype=np.float32):
    """An Elman RNN (tanh, torch's init) with a linear head on each sequence's last state, 2 inputs (the adding
    problem's) and one output, one replica per (seed, rho) pair: (net, params). Replica i takes seed seeds[i]'s
    parameters with its recurrent weight replaced by rho[i] Q_i, Q_i a Haar-orthogonal matrix drawn from that
    seed: every eigenvalue of W_hh then has modulus rho[i], so rho is its spectral radius exactly."""
    from dlbench.nn.init import orthogonal
    from dlbench.nn.rnn import RNNNet, RNNNetSpec

    net = RNNNet(RNNNetSpec(2, hidden, 1, dtype=dtype))
    params = net.init([int(s) for s in seeds])
    W = params[net.param_names.index("weight_hh_l0")]
    for i, (s, r) in enumerate(zip(seeds, rho)):
        q = orthogonal(np.random.default_rng(np.random.SeedSequence([int(s), 10])), (hidden, hidden), np.float64)
        W[i] = r * q
    return net, params


def largest_weight_gradient(net, params: list, X: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Per replica, the largest |dL/dW| over the recurrent net's two weight matrices (W_ih and W_hh), L the mse
    of its head on the sequences X (N, T, F) against y (N, 1), h_0 = 0. W_hh's gradient alone is exactly 0 at
    T = 1 (h_0 = 0 never meets W_hh), so W_ih stands beside it: at T = 1 the measure is |dL/dW_ih|."""
    from dlbench.nn.losses import mse

    with np.errstate(all="ignore"):
        _, grads, _ = net.value_and_grad(params, X, y, mse)
    names = ("weight_ih_l0", "weight_hh_l0")
    return np.max([np.abs(grads[net.param_names.index(n)]).max(axis=(1, 2)) for n in names], axis=0)


def peak_loss(curve: np.ndarray, cap: float) -> np.ndarray:
    """Per run (columns of a loss curve (C, R), its first row the initial loss), the largest loss over the initial
    one: 1 for a loss that never rises above where it started. A non-finite loss counts as `cap` (a run that blew
    up), and so does any larger peak."""
    curve = np.asarray(curve, dtype=float)
    with np.errstate(all="ignore"):
        rel = np.where(np.isfinite(curve), curve / np.abs(curve[:1]), np.inf)
    return np.minimum(np.nanmax(rel, axis=0), cap)


def loss_spike(losses: np.ndarray, cap: float) -> np.ndarray:
    """Per run (rows of losses (R, T)), the largest rise of the loss above its running minimum over the first
    loss: 0 for a loss that never rises. A non-finite loss counts as `cap` (a run that blew up), and so does any
    larger rise."""
    losses = np.asarray(losses, dtype=float)
    with np.errstate(all="ignore"):
        first = np.abs(losses[:, :1])
        rel = np.where(np.isfinite(losses), losses / first, np.inf)
        rise = rel - np.minimum.accumulate(rel, axis=1)
        rise = np.where(np.isfinite(rise), rise, np.inf)   # inf - inf after a blow-up is a blow-up too
    return np.minimum(np.nanmax(rise, axis=1), cap)


def log_growth_rate(G: np.ndarray, lengths: Sequence[float], start: float = 0.0) -> np.ndarray:
    """The least-squares slope of log10 G (..., len(lengths)) against the lengths from `start` on: decades per
    step, log10 rho for a quantity that grows as rho^T. A value that is 0 or not finite gives nan."""
    T = np.asarray(lengths, dtype=float)
    keep = T >= start
    T = T[keep] - T[keep].mean()
    with np.errstate(all="ignore"):
        L = np.log10(np.asarray(G, dtype=float)[..., keep])
    L = np.where(np.isfinite(L), L, np.nan)
    return (L - L.mean(axis=-1, keepdims=True)) @ T / (T @ T)
