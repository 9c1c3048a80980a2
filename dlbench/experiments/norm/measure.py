"""Pure measurements of the norm experiment: data, distribution and gradient shift (N1), stability (N2), the
spread over init scales and the scale identity (N3), accuracy with batch statistics (N6), gradient noise,
cosine and sharpness (N7), per-sample independence (N8), the nonlinear share of a unit's output (N10),
per-layer gradients (N12). Each takes arrays and nets and returns arrays; none records anything.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np

from dlbench.errors import DlbenchError
from dlbench.experiments.norm.net import Net, loss_and_grads

N_TEST = 512
#: One turn of the spirals (the registry's 1.5 turns needs far longer training than these claims allow).
DATA_HYPER = {"spirals": {"turns": 1.0}}


# ----------------------------------------------------------------------------- data

def classification_names() -> list[str]:
    from dlbench.data import CLASSIFICATION, DATASETS

    return [n for n, m in DATASETS.items() if m.task == CLASSIFICATION]


def check_data(name: str) -> None:
    from dlbench.data import FILE_SUFFIXES

    if name in classification_names():
        return
    if Path(name).suffix.lower() in FILE_SUFFIXES:
        if not Path(name).is_file():
            raise DlbenchError(f"--data {name}: no such file")
        return
    raise DlbenchError(f"--data {name!r}: neither a classification data set ({', '.join(classification_names())}) "
                       f"nor a {'/'.join(FILE_SUFFIXES)} file")


def make_data(name: str, seed: int, n_train: int, n_test: int = N_TEST, **hyper):
    """The data set drawn with `seed` (a file: its seeded split, the first n_train training rows); inputs
    standardised with the training set's mean and std."""
    from dlbench.data import CLASSIFICATION, load_dataset_file, make_dataset

    if name in classification_names():
        d = make_dataset(name, seed=seed, n_train=n_train, n_test=n_test, **{**DATA_HYPER.get(name, {}), **hyper})
    else:
        d = load_dataset_file(name, task=CLASSIFICATION, seed=seed)
        if len(d.X_train) < n_train:
            raise DlbenchError(f"--data {name}: {len(d.X_train)} training rows; this run needs {n_train} "
                               "(a bigger file, or a smaller --train-size)")
        d = dataclasses.replace(d, X_train=d.X_train[:n_train], y_train=d.y_train[:n_train])
    return standardise(d)


def standardise(d):
    m = d.X_train.mean(axis=0)
    s = d.X_train.std(axis=0)
    s = np.where(s > 0, s, 1).astype(np.float32)
    return dataclasses.replace(d, X_train=((d.X_train - m) / s).astype(np.float32),
                               X_test=((d.X_test - m) / s).astype(np.float32))


def correlated_data(rng: np.random.Generator, n_train: int, n_test: int, dim: int, condition: float,
                    white: bool, hidden: int = 16):
    """Two classes from a random relu teacher on white latent features z ~ N(0, I_dim); the net sees
    x = z A with A = Q diag(condition^(k / (dim - 1) / 2)) (k = 0 .. dim-1; Q a random rotation): the
    covariance of x has condition number `condition`. white=True: x = z (the control). Labels are
    the teacher's output above its median (balanced)."""
    from dlbench.data import Dataset

    n = n_train + n_test
    z = rng.standard_normal((n, dim))
    W1 = rng.standard_normal((dim, hidden)) / math.sqrt(dim)
    w2 = rng.standard_normal(hidden)
    score = np.maximum(z @ W1, 0) @ w2
    y = (score > np.median(score)).astype(np.int64)
    if white:
        x = z
    else:
        Q, _ = np.linalg.qr(rng.standard_normal((dim, dim)))
        x = z @ (Q * condition ** (np.arange(dim) / (dim - 1) / 2))
    x = x.astype(np.float32)
    return Dataset("correlated" if not white else "white", x[:n_train], y[:n_train], x[n_train:], y[n_train:],
                   "classification", 2)


# ----------------------------------------------------------------------------- N1: distribution and gradient shift

def _throwaway(state: list[dict]) -> list[dict]:
    return [{k: v.copy() for k, v in s.items()} for s in state]


def layer_moments(net: Net, params: list, state: list[dict], X: np.ndarray, noise_dist=None,
                  rng: np.random.Generator | None = None) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per hidden layer, the per-unit mean and std (S, F) of its output (the next layer's input) over X, as in a
    training step: batch norm on X's own statistics (a throwaway state), the step's noise drawn for X."""
    noise = net.sample_noise(noise_dist, X.shape[0], rng) if noise_dist is not None else None
    with np.errstate(all="ignore"):
        _, cache = net.forward(params, X, _throwaway(state), train=True, noise=noise)
        return [(c.h.mean(axis=-2, dtype=np.float64), c.h.std(axis=-2, dtype=np.float64))
                for c in cache.layers[1:]]


def moment_shift(before: list, after: list) -> np.ndarray:
    """The change of a layer input's distribution between two checkpoints, per replica (S,), averaged over layers:

        mean_j (|mu_j' - mu_j| + |sigma_j' - sigma_j|) / sqrt(mean_j sigma_j^2)

    in units of the earlier spread (a unit's mean and std moving by one spread scores 1 or 2)."""
    out = []
    with np.errstate(all="ignore"):
        for (m0, s0), (m1, s1) in zip(before, after):
            spread = np.sqrt(np.mean(s0 * s0, axis=-1))
            out.append(np.mean(np.abs(m1 - m0) + np.abs(s1 - s0), axis=-1) / spread)
    return np.mean(out, axis=0)


def gradient_shift(net: Net, step, state: list[dict]) -> np.ndarray:
    """Internal covariate shift as Santurkar et al. 2018 (Def. 2.1) define it, per replica (S,):

        ||G'_i - G_i|| / ||G_i||,  G_i = dL/dW_i at the step's parameters, G'_i the same after the layers
        below i have taken the step's update (same batch, same noise),

    averaged over the layers i = 1 .. L that have layers below them (the output layer included)."""
    noise = step.noise
    _, G, _ = loss_and_grads(net, step.before, step.x, step.y, _throwaway(state), noise=noise)
    out = []
    with np.errstate(all="ignore"):
        for i in range(1, net.n_hidden + 1):
            mixed = list(step.before)
            for l in range(i):
                for k in net.hidden_params(l):
                    mixed[k] = step.after[k]
            _, G2, _ = loss_and_grads(net, mixed, step.x, step.y, _throwaway(state), noise=noise)
            w = net.index[f"{i}.W"]
            diff = np.sqrt(np.sum((G2[w] - G[w]).astype(np.float64) ** 2, axis=(-2, -1)))
            out.append(diff / np.sqrt(np.sum(G[w].astype(np.float64) ** 2, axis=(-2, -1))))
    return np.mean(out, axis=0)


class ShiftProbe:
    """A fit() probe: at each probed step, the moment shift of every hidden layer's output on X since the last
    probe, and the gradient shift of the step. Means over probes: .moment (S,), .gradient (S,)."""

    def __init__(self, net: Net, params: list, state: list[dict], X: np.ndarray, rng: np.random.Generator):
        self.net, self.X, self.rng = net, X, rng
        self.last = layer_moments(net, params, state, X)
        self.moments: list = []
        self.gradients: list = []

    def __call__(self, step) -> None:
        now = layer_moments(self.net, step.after, step.state, self.X, step.noise_dist, self.rng)
        self.moments.append(moment_shift(self.last, now))
        self.last = now
        self.gradients.append(gradient_shift(self.net, step, step.state))

    @property
    def moment(self) -> np.ndarray:
        return np.nanmean(self.moments, axis=0)

    @property
    def gradient(self) -> np.ndarray:
        return np.nanmean(self.gradients, axis=0)


# ----------------------------------------------------------------------------- N2, N3

def halved(first: np.ndarray, last: np.ndarray, diverged: np.ndarray) -> np.ndarray:
    """Stable, one definition: the run did not diverge and its final training loss is at most half its initial
    one (first, last: the whole training set's loss at init and at the end, per replica)."""
    with np.errstate(invalid="ignore"):
        return ~np.asarray(diverged, bool) & np.isfinite(last) & (last <= 0.5 * first)


def largest_stable(lrs, stable: np.ndarray) -> np.ndarray:
    """Per seed, log10 of the largest lr of the grid whose run was stable (stable (S, K)); half a decade below
    the grid where none was."""
    logs = np.log10(np.asarray(lrs, dtype=float))
    below = logs[0] - 0.5
    return np.where(stable.any(axis=-1), np.where(stable, logs, -np.inf).max(axis=-1), below)


LOSS_CAP = 1e3   # a non-finite or larger final loss counts as this in the spread (a diverged run)


def spread_decades(losses: np.ndarray) -> np.ndarray:
    """Per row, log10(max / min) of final losses over init scales; non-finite or huge losses count as LOSS_CAP."""
    v = np.nan_to_num(np.asarray(losses, dtype=float), nan=LOSS_CAP, posinf=LOSS_CAP)
    v = np.clip(v, 1e-12, LOSS_CAP)
    return np.log10(v.max(axis=-1) / v.min(axis=-1))


def scale_invariance_error(rng: np.random.Generator, scales=(1e-3, 0.1, 10.0, 1e3)) -> tuple[float, int]:
    """max |BN(a W x) - BN(W x)| / max |BN(W x)| over a > 0, float64, eps 1e-30 (the exact identity).

    Batch norm kernel on z = x W with a replica axis (3, 64, 24), and a whole batch-norm MLP whose hidden
    weights and biases are all multiplied by a. Returns (error, number of checks).
    """
    from dlbench.nn.mlp import MLP, MLPSpec
    from dlbench.nn.norm import get_norm

    bn = get_norm("batch", eps=1e-30)
    x = rng.standard_normal((3, 64, 16))
    W = rng.standard_normal((3, 16, 24))
    params = {"weight": rng.uniform(0.5, 2, (3, 1, 24)), "bias": rng.standard_normal((3, 1, 24))}
    fresh = lambda: bn.init(24, prefix=(3,), dtype=np.float64)[1]  # noqa: E731
    ref = bn.forward(x @ W, params, fresh())[0]
    err = 0.0
    for a in scales:
        y = bn.forward(x @ (a * W), params, fresh())[0]
        err = max(err, float(np.abs(y - ref).max() / np.abs(ref).max()))
    net = MLP(MLPSpec((16, 24, 24, 3), norm="batch", norm_hyper={"eps": 1e-30}, dtype=np.float64))
    p = net.init([1, 2, 3])
    ref = net.forward(p, x, None, train=True)[0]
    hidden = {i for layer in net.layers[:net.n_hidden] for i in (layer.W, layer.b) if i is not None}
    for a in scales:
        q = [pi * a if i in hidden else pi for i, pi in enumerate(p)]
        y = net.forward(q, x, None, train=True)[0]
        err = max(err, float(np.abs(y - ref).max() / np.abs(ref).max()))
    return err, 2 * len(scales)


def scale_hidden(net: Net, params: list, scale: np.ndarray) -> None:
    """Multiply every hidden layer's W and b by scale (R,), one factor per replica, in place."""
    for l in range(net.n_hidden):
        for name in (f"{l}.W", f"{l}.b"):
            p = params[net.index[name]]
            p *= scale.reshape((-1,) + (1,) * (p.ndim - 1)).astype(p.dtype)


# ----------------------------------------------------------------------------- N6: batch statistics at test time

def grouped(params: list) -> list:
    """Params with an extra axis after the replica axis, so x (S, M, B, d) runs M batches per replica."""
    return [p[:, None] for p in params]


def batch_stats_accuracy(net: Net, params: list, X: np.ndarray, y: np.ndarray, batch: int) -> np.ndarray:
    """Test accuracy (S,) with batch norm's statistics taken over test batches of `batch` (the n % batch rest
    left out): the M batches ride an extra axis, each normalised by its own statistics (a throwaway state)."""
    S = params[0].shape[0]
    M = X.shape[0] // batch
    xb = X[: M * batch].reshape(M, batch, -1)
    yb = y[: M * batch].reshape(M, batch)
    state = [net.norm.init(net.widths[l + 1], prefix=(S, M), dtype=params[0].dtype)[1] if net.is_batch else {}
             for l in range(net.n_hidden)]
    with np.errstate(all="ignore"):
        out, _ = net.forward(grouped(params), xb, state, train=True)
    return np.mean(out.argmax(axis=-1) == yb, axis=(-2, -1))


# ----------------------------------------------------------------------------- N7: gradient noise and sharpness

def flat_grads(grads: list, index: list[int]) -> np.ndarray:
    """The gradients of params `index` as one vector per replica (S, P), float64."""
    return np.concatenate([grads[i].reshape(grads[i].shape[0], -1).astype(np.float64) for i in index], axis=1)


def gradient_noise(net: Net, params: list, X: np.ndarray, y: np.ndarray, batch: int, draws: int,
                   rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(cosine, B_noise), per replica (S,): the median cosine between a minibatch gradient (batch samples drawn
    without replacement, training mode) and the full-set gradient G (the whole set as one batch), over `draws`
    minibatches; and McCandlish et al. 2018's simple noise scale B_noise = tr(Sigma) / |G|^2, from
    E|G_B|^2 = |G|^2 + tr(Sigma) / B between the minibatches and the whole set (their appendix A.1)."""
    S, n = params[0].shape[0], X.shape[0]
    index = net.trainable
    with np.errstate(all="ignore"):
        _, g_full, _ = loss_and_grads(net, params, X, y, net.init_state(S, params[0].dtype))
        G = flat_grads(g_full, index)
        cos, sq = [], []
        for _ in range(draws):
            idx = np.stack([rng.choice(n, batch, replace=False) for _ in range(S)])
            _, g, _ = loss_and_grads(net, params, X[idx], y[idx], net.init_state(S, params[0].dtype))
            v = flat_grads(g, index)
            cos.append(np.sum(v * G, axis=1) / (np.linalg.norm(v, axis=1) * np.linalg.norm(G, axis=1)))
            sq.append(np.sum(v * v, axis=1))
        full_sq = np.sum(G * G, axis=1)
        small_sq = np.mean(sq, axis=0)
        if batch >= n:
            return np.median(cos, axis=0), np.full(S, np.nan)
        trace = (small_sq - full_sq) / (1.0 / batch - 1.0 / n)
        true_sq = full_sq - trace / n
        return np.median(cos, axis=0), trace / true_sq


def sharpness(net: Net, params: list, state: list[dict], X: np.ndarray, y: np.ndarray, rng: np.random.Generator,
              iters: int = 20, eps: float = 1e-3) -> np.ndarray:
    """The largest Hessian eigenvalue of the training loss (eval mode) per replica (S,), by power iteration on
    finite-difference Hessian-vector products Hv ~ (g(w + e v) - g(w - e v)) / 2e (Keskar et al. 2017 measure
    sharpness near this eigenvalue). float64 copies of the params; e scaled to each replica's weight norm."""
    from dlbench.nn.losses import softmax_ce

    index = net.trainable
    p64 = [p.astype(np.float64) for p in params]
    st64 = [{k: (v.astype(np.float64) if v.dtype.kind == "f" else v) for k, v in s.items()} for s in state]
    S = p64[0].shape[0]

    def grad(ps):
        out, cache = net.forward(ps, X, st64, train=False)
        _, g = softmax_ce(out, y)
        return flat_grads(net.backward(ps, cache, g), index)

    def shifted(v, sign):
        ps = list(p64)
        off = 0
        for i in index:
            size = int(np.prod(p64[i].shape[1:]))
            ps[i] = p64[i] + sign * v[:, off:off + size].reshape(p64[i].shape)
            off += size
        return ps

    norm = np.linalg.norm(flat_grads(p64, index), axis=1, keepdims=True)
    v = rng.standard_normal((S, int(sum(np.prod(p64[i].shape[1:]) for i in index))))
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    lam = np.zeros(S)
    with np.errstate(all="ignore"):
        for _ in range(iters):
            e = eps * norm
            hv = (grad(shifted(e * v, 1)) - grad(shifted(e * v, -1))) / (2 * e)
            lam = np.sum(hv * v, axis=1)
            v = hv / np.linalg.norm(hv, axis=1, keepdims=True)
    return lam


# ----------------------------------------------------------------------------- N8: each sample alone

def batch_dependence(norm, params: dict, state: dict, rng: np.random.Generator, shape: tuple,
                     dtype=np.float32, rows=(0, 3)) -> tuple[float, int]:
    """max over `rows` i of |y_i(batch) - y_i(batch with every other sample replaced)| / max |y|.

    The replacements come from another distribution (x 100, shifted by 50): a per-sample norm gives exactly
    the same output for sample i; batch norm does not. Returns (relative change, number of checks).
    """
    x = rng.standard_normal(shape).astype(dtype)
    y = norm.forward(x, params, {k: v.copy() for k, v in state.items()}, train=True)[0].copy()
    worst = 0.0
    for i in rows:
        x2 = (100 * rng.standard_normal(shape) + 50).astype(dtype)
        x2[..., i, :] = x[..., i, :]
        y2 = norm.forward(x2, params, {k: v.copy() for k, v in state.items()}, train=True)[0]
        worst = max(worst, float(np.abs(y2[..., i, :] - y[..., i, :]).max() / max(np.abs(y).max(), 1e-30)))
    return worst, len(rows)


def net_batch_dependence(net: Net, params: list, rng: np.random.Generator, n: int = 32) -> float:
    """The same for a whole net: sample 0's logits when the rest of its batch is replaced."""
    d = net.widths[0]
    dt = params[0].dtype
    x = rng.standard_normal((n, d)).astype(dt)
    y = net.forward(params, x, net.init_state(params[0].shape[0], dt), train=True)[0]
    x2 = (100 * rng.standard_normal((n, d)) + 50).astype(dt)
    x2[0] = x[0]
    with np.errstate(all="ignore"):
        y2 = net.forward(params, x2, net.init_state(params[0].shape[0], dt), train=True)[0]
    return float(np.abs(y2[:, 0] - y[:, 0]).max() / max(np.abs(y[:, 0]).max(), 1e-30))


# ----------------------------------------------------------------------------- N10, N12

def layer_gradient_norms(net: Net, params: list, X: np.ndarray, y: np.ndarray) -> np.ndarray:
    """||dL/dW_l|| (S, L) of every hidden layer l (first first), one training-mode step on the batch (X, y)."""
    S = params[0].shape[0]
    with np.errstate(all="ignore"):
        _, g, _ = loss_and_grads(net, params, X, y, net.init_state(S, params[0].dtype))
        return np.stack([np.sqrt(np.sum(g[net.index[f"{l}.W"]].astype(np.float64) ** 2, axis=(-2, -1)))
                         for l in range(net.n_hidden)], axis=1)


def nonlinear_share(net: Net, params: list, state: list[dict], X: np.ndarray) -> np.ndarray:
    """The share of each hidden unit's output variance that a straight line in its input cannot explain,
    1 - corr(a, f(a))^2 over the samples of X (eval mode), averaged over units and layers, per replica (S,).

    0 for a unit working in a linear regime; sigmoid on standardised Gaussian input gives 0.016, and the share
    grows as the input's scale or offset moves it into the curved tails."""
    with np.errstate(all="ignore"):
        _, cache = net.forward(params, X, state, train=False)
        shares = []
        for c in cache.layers[:-1]:
            a = c.act_in.astype(np.float64)
            f = c.act_out.astype(np.float64)
            a = a - a.mean(axis=-2, keepdims=True)
            f = f - f.mean(axis=-2, keepdims=True)
            r2 = np.sum(a * f, axis=-2) ** 2 / (np.sum(a * a, axis=-2) * np.sum(f * f, axis=-2))
            shares.append(np.nanmean(1.0 - r2, axis=-1))
    return np.mean(shares, axis=0)
