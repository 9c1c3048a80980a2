"""The nets the norm experiment trains, and their trainer: every variant its claims compare, on one code path.

A hidden layer is z = h W + b followed by the activation f and the normalization N, in either order:

    position "before" (Ioffe & Szegedy 2015):  h' = f(noise(N(z)))
    position "after"  (Mishkin et al. 2017):   h' = noise(N(f(z)))

then dropout (dlbench.nn.dropout) when spec.dropout > 0. The output layer is linear (logits); the loss is
softmax cross-entropy. N is a kernel of dlbench.nn.norm (none, batch, layer, group, instance) or ZCA
whitening of the layer's units over the batch (zca, experiments.norm.whitening; Huang et al. 2018), whose gamma
and beta are learned, or held at (1, 0) with `affine=False`. Batch norm takes its statistics in one of four
ways while training (`mode`):

    batch       the batch's own statistics, running statistics kept as torch.nn.BatchNorm1d (momentum 0.1,
                unbiased variance); evaluation uses the running statistics;
    noisy       as batch, then every normalized unit of every sample is scaled and shifted by noise drawn
                iid per sample from a distribution whose mean and spread change at every step (Santurkar et
                al. 2018's "noisy BatchNorm"): at step t, per unit j, mu_tj ~ U(-n_mu, n_mu) and
                sigma_tj ~ U(1, n_sigma); per sample i, a_ij <- a_ij (1 + (sigma_tj - 1) xi_ij)
                + mu_tj + (sigma_tj - 1) zeta_ij with xi, zeta ~ N(0, 1): the next layer's input
                distribution moves at every step, by far more than batch norm lets it;
    frozen      the statistics of the whole training set under the initial weights, held for the whole run
                (the initial scale is normalized, nothing is renormalized afterwards);
    population  the statistics of the whole training set under the current weights, recomputed every
                `refresh` steps of fit() and treated as constants in the backward pass (Luo et al. 2019's
                population normalization: batch norm without its batch noise).

An optional normalization of the input x ("batch" or "zca", experiments.norm.whitening) comes before the first
layer. Every array carries a leading replica axis S (seeds, learning rates, init scales as replicas); weights
and biases are initialised as dlbench.nn.mlp.MLP initialises them, replica s from default_rng(seeds[s]).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from dlbench.errors import DlbenchError
from dlbench.experiments.norm import whitening
from dlbench.nn.activations import get_activation
from dlbench.nn.dropout import check_p, dropout_backward, dropout_forward
from dlbench.nn.layers import dense_backward, dense_forward
from dlbench.nn.losses import softmax_ce
from dlbench.nn.norm import get_norm

NORMS = ("none", "batch", "layer", "group", "instance", "zca")
MODES = ("batch", "noisy", "frozen", "population")
INPUT_NORMS = ("none", "batch", "zca")
DIVERGE_FACTOR = 1e3     # a replica whose loss passes this times its first loss, or is not finite, is stopped


@dataclass(frozen=True)
class NetSpec:
    """What a net is. widths: (d_in, h_1, ..., h_L, d_out); channels/groups: the channel view of group and
    instance norm (see dlbench.nn.norm); noise: (n_mu, n_sigma) of the noisy mode."""

    widths: tuple[int, ...]
    activation: str = "relu"
    norm: str = "none"
    mode: str = "batch"
    position: str = "before"
    affine: bool = True
    dropout: float = 0.0
    input_norm: str = "none"
    input_affine: bool = True
    init: str = "torch_default"
    channels: int | None = None
    groups: int | None = None
    noise: tuple[float, float] = (0.5, 2.0)
    eps: float = 1e-5


@dataclass
class LayerCache:
    h: np.ndarray                 # the layer's input
    z: np.ndarray                 # h W + b
    act_in: np.ndarray | None     # the activation's input
    act_out: np.ndarray | None    # its output
    norm: object                  # the norm kernel's cache
    scale: np.ndarray | None      # the noise's scale (noisy mode)
    mask: np.ndarray | None       # dropout's scaled mask


@dataclass
class Cache:
    layers: list
    x_in: object = None           # the input norm's cache
    out: np.ndarray | None = None


class Net:
    """Forward and backward of a NetSpec for any number of replicas; params is a flat list of arrays."""

    def __init__(self, spec: NetSpec):
        if spec.norm not in NORMS or spec.mode not in MODES or spec.input_norm not in INPUT_NORMS:
            raise DlbenchError(f"unknown norm {spec.norm!r}, mode {spec.mode!r} or input norm {spec.input_norm!r}")
        if spec.position not in ("before", "after"):
            raise DlbenchError(f"position must be 'before' or 'after', got {spec.position!r}")
        self.spec = spec
        self.widths = tuple(int(w) for w in spec.widths)
        self.n_hidden = len(self.widths) - 2
        self.act = get_activation(spec.activation)
        self.dropout = check_p(spec.dropout)
        hyper: dict = {"eps": spec.eps}
        if spec.norm in ("group", "instance") and spec.channels:
            hyper["channels"] = spec.channels
        if spec.norm == "group":
            hyper["num_groups"] = spec.groups or 1
        self.norm = None if spec.norm == "zca" else get_norm(spec.norm, **(hyper if spec.norm != "none" else {}))
        self.has_norm = spec.norm != "none"
        self.is_batch = spec.norm == "batch"
        self.input_kernel = get_norm("batch", eps=spec.eps) if spec.input_norm == "batch" else None
        names: list[str] = []
        if spec.input_norm != "none":
            names += ["in.weight", "in.bias"]
        for l in range(len(self.widths) - 1):
            names += [f"{l}.W", f"{l}.b"]
            if l < self.n_hidden and self.has_norm:
                names += [f"{l}.weight", f"{l}.bias"]
        self.names = names
        self.index = {n: i for i, n in enumerate(names)}
        frozen = set()
        if not spec.affine:
            frozen |= {n for n in names if n.endswith((".weight", ".bias")) and not n.startswith("in.")}
        if not spec.input_affine or spec.input_norm == "none":
            frozen |= {"in.weight", "in.bias"}
        self.trainable = [i for i, n in enumerate(names) if n not in frozen]

    # ------------------------------------------------------------------------------------------ init

    def init(self, seeds: Sequence[int], dtype=np.float32) -> list[np.ndarray]:
        """Parameters of len(seeds) replicas: weights and biases exactly as dlbench.nn.mlp.MLP draws them
        (the same spec's init and torch's bias rule); norm weights 1, biases 0."""
        from dlbench.nn.mlp import MLP, MLPSpec

        seeds = [int(s) for s in seeds]
        S = len(seeds)
        mlp = MLP(MLPSpec(self.widths, activation="identity", init=self.spec.init, dtype=dtype))
        dense = mlp.init(seeds)
        params: list = [None] * len(self.names)
        for l in range(len(self.widths) - 1):
            params[self.index[f"{l}.W"]] = dense[2 * l]
            params[self.index[f"{l}.b"]] = dense[2 * l + 1]
            if l < self.n_hidden and self.has_norm:
                width = (self.widths[l + 1] if self.norm is None
                         else self.norm.init(self.widths[l + 1], prefix=(S,), dtype=dtype)[0]["weight"].shape[-1])
                params[self.index[f"{l}.weight"]] = np.ones((S, 1, width), dtype=dtype)
                params[self.index[f"{l}.bias"]] = np.zeros((S, 1, width), dtype=dtype)
        if self.spec.input_norm != "none":
            params[self.index["in.weight"]] = np.ones((S, 1, self.widths[0]), dtype=dtype)
            params[self.index["in.bias"]] = np.zeros((S, 1, self.widths[0]), dtype=dtype)
        return params

    def init_state(self, S: int, dtype=np.float32) -> list[dict]:
        """Batch norm's statistics per hidden layer (running, frozen or population); {} for other norms."""
        if not self.is_batch:
            return [{} for _ in range(self.n_hidden)]
        return [self.norm.init(self.widths[l + 1], prefix=(S,), dtype=dtype)[1] for l in range(self.n_hidden)]

    def hidden_params(self, l: int) -> list[int]:
        """Indices of hidden layer l's parameters (W, b and its norm's)."""
        return [self.index[n] for n in (f"{l}.W", f"{l}.b", f"{l}.weight", f"{l}.bias") if n in self.index]

    # ------------------------------------------------------------------------------------------ forward

    def _norm_forward(self, l: int, u: np.ndarray, params, state, train: bool):
        if not self.has_norm:
            return u, None
        p = {"weight": params[self.index[f"{l}.weight"]], "bias": params[self.index[f"{l}.bias"]]}
        if self.spec.norm == "zca":
            y, c = whitening.zca_forward(u, self.spec.eps)
            return y * p["weight"] + p["bias"], c
        if not self.is_batch:
            return self.norm.forward(u, p, {})
        if self.spec.mode in ("frozen", "population"):
            return fixed_norm_forward(u, p, state[l], self.spec.eps)
        return self.norm.forward(u, p, state[l], train=train)

    def forward(self, params: list, x: np.ndarray, state: list[dict], *, train: bool,
                noise: list | None = None, rng: np.random.Generator | None = None) -> tuple[np.ndarray, Cache]:
        """Logits (S, N, d_out) for x (N, d_in) or (S, N, d_in).

        train: as in a training step (batch norm's batch statistics in batch and noisy modes, updating the
        running statistics in `state` in place; dropout's masks from rng); else evaluation (running, frozen or
        population statistics; no dropout). noise: per hidden layer (scale, shift) of the noisy mode.
        """
        cache = Cache([])
        h = x
        if self.spec.input_norm != "none":
            h, cache.x_in = self._input_forward(params, h)
        for l in range(self.n_hidden):
            W, b = params[self.index[f"{l}.W"]], params[self.index[f"{l}.b"]]
            z = dense_forward(h, W, b)
            scale = None
            if self.spec.position == "before":
                a, nc = self._norm_forward(l, z, params, state, train)
                if noise is not None and noise[l] is not None:
                    scale, shift = noise[l]
                    a = a * scale + shift
                act_in, act_out = a, self.act.forward(a)
                y = act_out
            else:
                act_in, act_out = z, self.act.forward(z)
                a, nc = self._norm_forward(l, act_out, params, state, train)
                if noise is not None and noise[l] is not None:
                    scale, shift = noise[l]
                    a = a * scale + shift
                y = a
            mask = None
            if train and self.dropout > 0:
                y, mask = dropout_forward(y, self.dropout, rng=rng)
            cache.layers.append(LayerCache(h, z, act_in, act_out, nc, scale, mask))
            h = y
        L = self.n_hidden
        out = dense_forward(h, params[self.index[f"{L}.W"]], params[self.index[f"{L}.b"]])
        cache.layers.append(LayerCache(h, out, None, None, None, None, None))
        cache.out = out
        return out, cache

    def _input_forward(self, params, x):
        w, b = params[self.index["in.weight"]], params[self.index["in.bias"]]
        if self.spec.input_norm == "batch":
            S = w.shape[0]
            _, state = self.input_kernel.init(self.widths[0], prefix=(S,), dtype=w.dtype)
            return self.input_kernel.forward(np.broadcast_to(x, (S, *x.shape[-2:])), {"weight": w, "bias": b},
                                             state, train=True)
        y, c = whitening.zca_forward(np.broadcast_to(x, (w.shape[0], *x.shape[-2:])), self.spec.eps)
        return y * w + b, c

    # ------------------------------------------------------------------------------------------ backward

    def backward(self, params: list, cache: Cache, g_out: np.ndarray) -> list:
        """Gradients of the loss w.r.t. every parameter (params' layout), given g_out = dL/dlogits."""
        grads: list = [None] * len(params)
        g = g_out
        for l in range(self.n_hidden, -1, -1):
            c = cache.layers[l]
            W = params[self.index[f"{l}.W"]]
            if l < self.n_hidden:
                g = self._hidden_backward(l, c, g, grads, params)
            need_dx = l > 0 or self.spec.input_norm != "none"
            dx, dW, db = dense_backward(c.h, W, g, need_dx=need_dx)
            grads[self.index[f"{l}.W"]], grads[self.index[f"{l}.b"]] = dW, db
            g = dx
        if self.spec.input_norm != "none":
            self._input_backward(params, cache.x_in, g, grads)
        return grads

    def _hidden_backward(self, l: int, c: LayerCache, g: np.ndarray, grads: list, params: list) -> np.ndarray:
        """dL/dz of hidden layer l from g = dL/d(layer output)."""
        if c.mask is not None:
            g = dropout_backward(g, c.mask)
        if self.spec.position == "before":
            g = self.act.backward(c.act_in, c.act_out, g)
            if c.scale is not None:
                g = g * c.scale
            return self._norm_backward(l, c, g, grads, params)
        if c.scale is not None:
            g = g * c.scale
        g = self._norm_backward(l, c, g, grads, params)
        return self.act.backward(c.act_in, c.act_out, g)

    def _norm_backward(self, l: int, c: LayerCache, g: np.ndarray, grads: list, params: list) -> np.ndarray:
        if not self.has_norm:
            return g
        if isinstance(c.norm, FixedCache):
            dx, ng = fixed_norm_backward(g, c.norm)
        elif isinstance(c.norm, whitening.ZCACache):
            ng = {"weight": np.sum(g * c.norm.y, axis=-2, keepdims=True), "bias": np.sum(g, axis=-2, keepdims=True)}
            dx = whitening.zca_backward(g * params[self.index[f"{l}.weight"]], c.norm)
        else:
            dx, ng = self.norm.backward(g, c.norm)
        grads[self.index[f"{l}.weight"]], grads[self.index[f"{l}.bias"]] = ng["weight"], ng["bias"]
        return dx

    def _input_backward(self, params, c, g, grads) -> None:
        w = params[self.index["in.weight"]]
        if self.spec.input_norm == "batch":
            _, ng = self.input_kernel.backward(g, c)
            grads[self.index["in.weight"]], grads[self.index["in.bias"]] = ng["weight"], ng["bias"]
            return
        grads[self.index["in.weight"]] = np.sum(g * c.y, axis=-2, keepdims=True).astype(w.dtype)
        grads[self.index["in.bias"]] = np.sum(g, axis=-2, keepdims=True).astype(w.dtype)

    # ------------------------------------------------------------------------------------------ statistics

    def collect_stats(self, params: list, X: np.ndarray, state: list[dict]) -> None:
        """Set every batch norm's statistics in `state` to those of the whole set X (biased variance), layer by
        layer under the current weights, each layer normalized with its own before the next is measured."""
        if not self.is_batch:
            return
        h = X
        if self.spec.input_norm != "none":
            h, _ = self._input_forward(params, h)
        for l in range(self.n_hidden):
            z = dense_forward(h, params[self.index[f"{l}.W"]], params[self.index[f"{l}.b"]])
            u = z if self.spec.position == "before" else self.act.forward(z)
            mean = u.mean(axis=-2, keepdims=True, dtype=np.float64)
            c = u - mean.astype(u.dtype)
            state[l]["running_mean"][...] = mean
            state[l]["running_var"][...] = np.einsum("...nf,...nf->...f", c, c, dtype=np.float64)[..., None, :] / c.shape[-2]
            p = {"weight": params[self.index[f"{l}.weight"]], "bias": params[self.index[f"{l}.bias"]]}
            a, _ = fixed_norm_forward(u, p, state[l], self.spec.eps)
            h = self.act.forward(a) if self.spec.position == "before" else a

    def draw_noise(self, rng: np.random.Generator, S: int) -> list | None:
        """The noisy mode's distribution for one step: per hidden layer (mu, sigma - 1), (S, 1, F) each; None in
        the other modes."""
        if not (self.is_batch and self.spec.mode == "noisy"):
            return None
        n_mu, n_sigma = self.spec.noise
        return [(rng.uniform(-n_mu, n_mu, (S, 1, F)), rng.uniform(1.0, n_sigma, (S, 1, F)) - 1.0)
                for F in self.widths[1:-1]]

    @staticmethod
    def sample_noise(dist: list | None, n: int, rng: np.random.Generator, dtype=np.float32) -> list | None:
        """Per hidden layer (scale, shift) of n samples, (S, n, F) each, drawn iid from the step's distribution."""
        if dist is None:
            return None
        out = []
        for mu, spread in dist:
            S, _, F = mu.shape
            scale = 1.0 + spread * rng.standard_normal((S, n, F))
            shift = mu + spread * rng.standard_normal((S, n, F))
            out.append((scale.astype(dtype), shift.astype(dtype)))
        return out


# ---------------------------------------------------------------------------------------------- fixed statistics

@dataclass
class FixedCache:
    x_hat: np.ndarray
    scale: np.ndarray      # weight / sqrt(var + eps), (S, 1, F)


def fixed_norm_forward(u: np.ndarray, params: dict, state: dict, eps: float) -> tuple[np.ndarray, FixedCache]:
    """Batch norm with given statistics (torch's eval mode): y = weight (u - mean) / sqrt(var + eps) + bias,
    mean and var from state's running_mean and running_var, held constant in the backward pass."""
    inv = (1.0 / np.sqrt(state["running_var"].astype(np.float64) + eps)).astype(u.dtype)
    x_hat = u - state["running_mean"]
    x_hat *= inv
    y = x_hat * params["weight"]
    y += params["bias"]
    return y, FixedCache(x_hat, params["weight"] * inv)


def fixed_norm_backward(g: np.ndarray, cache: FixedCache) -> tuple[np.ndarray, dict]:
    """dx = g weight / sqrt(var + eps); dweight = sum_n g x_hat, dbias = sum_n g."""
    return g * cache.scale, {"weight": np.sum(g * cache.x_hat, axis=-2, keepdims=True),
                             "bias": np.sum(g, axis=-2, keepdims=True)}


# ---------------------------------------------------------------------------------------------- training

def loss_and_grads(net: Net, params: list, x, y, state, *, noise=None, rng=None) -> tuple[np.ndarray, list, Cache]:
    """(loss per replica (S,), grads, cache) of one training-mode step on the batch (x, y)."""
    out, cache = net.forward(params, x, state, train=True, noise=noise, rng=rng)
    loss, g = softmax_ce(out, y)
    return loss, net.backward(params, cache, g), cache


def evaluate(net: Net, params: list, state, X, y, *, full_batch: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """(loss (S,), accuracy (S,)) on the whole set: eval mode, or with full_batch the whole set as one batch
    (its own statistics: the population of that set), with a throwaway state."""
    with np.errstate(all="ignore"):
        if full_batch:
            out, _ = net.forward(params, X, net.init_state(params[0].shape[0], params[0].dtype), train=True)
        else:
            out, _ = net.forward(params, X, state, train=False)
        loss, _ = softmax_ce(out, y)
        return loss, np.mean(out.argmax(axis=-1) == y, axis=-1)


@dataclass
class Run:
    """A training run of S replicas. loss (S, T): each step's batch loss (NaN once a replica has stopped);
    eval_step (E,); train_loss, test_loss, test_acc (S, E) at each evaluation (NaN for replicas that had
    stopped); diverged (S,) and diverged_step (-1: never); reached_step (S,): the first evaluated step whose
    training loss was at or below the target (-1: never or no target); the trained params and state."""

    loss: np.ndarray
    eval_step: np.ndarray
    train_loss: np.ndarray
    test_loss: np.ndarray
    test_acc: np.ndarray
    diverged: np.ndarray
    diverged_step: np.ndarray
    reached_step: np.ndarray
    params: list
    state: list

    @staticmethod
    def last(a: np.ndarray) -> np.ndarray:
        """Per row, the last finite value (NaN where there is none)."""
        ok = np.isfinite(a)
        i = a.shape[1] - 1 - np.argmax(ok[:, ::-1], axis=1)
        return np.where(ok.any(axis=1), a[np.arange(a.shape[0]), i], np.nan)


@dataclass
class Step:
    """What a probe sees at a step: the batch, the noise, the params before and after the update, the grads."""

    t: int
    x: np.ndarray
    y: np.ndarray
    noise: list | None
    noise_dist: list | None
    before: list
    after: list
    grads: list
    state: list


def best_rate_decided(K: int, S: int) -> Callable[[np.ndarray, int], bool]:
    """fit's stop_when for a learning-rate grid of K rates x S seeds (rate-major replicas) judged by its median
    steps to the target: stop once the rate of the lowest median r has every seed at the target and t >= 2 r.

    Exact for that judgement: a rate still short of its median has one at least (1 + t + 1) / 2 > r (half of
    its middle pair is beyond t), and a rate whose median is known keeps it, so the best rate and every one of
    its seeds' steps are what the whole run would give; only the losing rates' unfinished seeds stop short (a
    caller that records them counts them as missing, which only raises their medians)."""

    def stop(reached: np.ndarray, t: int) -> bool:
        rows = reached.reshape(K, S)
        medians = [np.median(np.where(row >= 0, row, np.inf)) for row in rows]
        best = int(np.argmin(medians))
        return bool(np.isfinite(medians[best]) and t >= 2 * medians[best] and (rows[best] >= 0).all())

    return stop


def fit(net: Net, params: list, data, *, lr, batch: int, steps: int, rng: np.random.Generator,
        momentum: float = 0.9, state: list | None = None, eval_at: Sequence[int] = (), eval_n: int | None = None,
        full_batch_eval: bool = False, probe: Callable[[Step], None] | None = None, probe_at: Sequence[int] = (),
        target_loss: float | None = None, refresh: int = 1, eval_test: bool = True,
        stop_when: Callable[[np.ndarray, int], bool] | None = None) -> Run:
    """Train the replicas in `params` (updated in place) with SGD + momentum (torch.optim.SGD) for `steps`.

    lr: a scalar or one per replica. Every replica draws its own order of the training set each epoch,
    batches of `batch` (the rest of an epoch is dropped). rng is spawned into the stream of the order and the
    stream of the noise and dropout masks, so nets that differ only in noise or dropout see the same batches.

    Evaluation (eval mode; full_batch_eval: the whole set as one batch) of the training loss (on its first
    eval_n samples when given) and the test set's loss and accuracy at step 0, at each step of eval_at and at
    the end. A replica stops when its batch loss is not finite or above DIVERGE_FACTOR x its first (diverged),
    or when its training loss at an evaluation is at or below target_loss (reached); stopped replicas leave
    the arrays the step computes on, and the run ends when none is left. probe(Step) runs after the update of
    each step in probe_at (a probed run keeps every replica in its arrays: stopped ones get zero updates).
    refresh: population mode recomputes the statistics every `refresh` steps. eval_test=False skips the test
    set (its columns stay NaN). stop_when(reached_step, t), asked after each evaluation, ends the run early.
    """
    from dlbench.nn.optim import SGDState, get_optimizer

    S = params[0].shape[0]
    X, yv = data.X_train, data.y_train
    Xe, ye = (X, yv) if eval_n is None else (X[:eval_n], yv[:eval_n])
    n = X.shape[0]
    B = min(batch, n)
    per_epoch = n // B
    if state is None:
        state = net.init_state(S, params[0].dtype)
    mode = net.spec.mode if net.is_batch else "batch"
    if mode in ("frozen", "population"):
        net.collect_stats(params, X, state)
    lr_all = np.broadcast_to(np.asarray(lr, dtype=np.float64).ravel(), (S,)).copy() if np.ndim(lr) else \
        np.full(S, float(lr))
    compact = probe is None
    live = np.arange(S)
    work, wstate = params, state

    def make_opt(keep=None, old=None):
        tw = [work[i] for i in net.trainable]
        o = get_optimizer("sgd", lr=lr_all[live].reshape(-1, 1, 1), momentum=momentum)
        st = o.init(tw)
        if old is not None:
            st = SGDState(old.step, [b[keep] for b in old.momentum_buffer], st.scratch)
        return o, st, tw

    opt, opt_state, trainable = make_opt()
    losses = np.full((S, steps), np.nan)
    stopped = np.zeros(S, dtype=bool)
    diverged = np.zeros(S, dtype=bool)
    diverged_step = np.full(S, -1, dtype=np.int64)
    reached_step = np.full(S, -1, dtype=np.int64)
    first = np.full(S, np.nan)
    evals: list = []
    eval_set = set(int(t) for t in eval_at if 0 < t <= steps)
    probe_set = set(int(t) for t in probe_at)

    def record(t):
        if mode == "population":
            net.collect_stats(work, X, wstate)
        cols = [np.full(S, np.nan) for _ in range(3)]
        tr = evaluate(net, work, wstate, Xe, ye, full_batch=full_batch_eval)
        cols[0][live] = tr[0]
        if eval_test:
            te = evaluate(net, work, wstate, data.X_test, data.y_test, full_batch=full_batch_eval)
            cols[1][live], cols[2][live] = te
        evals.append((t, *cols))
        return cols[0]

    def shrink(stop: np.ndarray):
        """Stop the replicas of `stop` (S,): write every live array back, keep the others."""
        nonlocal live, work, wstate, opt, opt_state, trainable
        stopped[stop] = True
        if not compact:
            return
        keep = ~stopped[live]
        for p, w in zip(params, work):
            if w is not p:
                p[live] = w
        for s_full, s_work in zip(state, wstate):
            for k, v in s_work.items():
                if v is not s_full[k]:
                    s_full[k][live] = v
        live = live[keep]
        work = [p[live] for p in params]
        wstate = [{k: v[live] for k, v in s.items()} for s in state]
        opt, opt_state, trainable = make_opt(keep, opt_state)

    order_rng, aux_rng = rng.spawn(2)
    record(0)
    order = None
    t = 0
    with np.errstate(all="ignore"):
        while t < steps and live.size:
            j = t % per_epoch
            if j == 0:
                order = order_rng.random((S, n)).argsort(axis=1)
            idx = order[live, j * B:(j + 1) * B]
            xb, yb = X[idx], yv[idx]
            if mode == "population" and t > 0 and t % refresh == 0:
                net.collect_stats(work, X, wstate)
            dist = net.draw_noise(aux_rng, live.size)
            noise = net.sample_noise(dist, B, aux_rng, params[0].dtype)
            loss, grads, _ = loss_and_grads(net, work, xb, yb, wstate, noise=noise, rng=aux_rng)
            losses[live, t] = loss
            if t == 0:
                first[live] = loss
            bad = ~np.isfinite(loss) | (loss > DIVERGE_FACTOR * first[live])
            bad &= ~stopped[live]
            if bad.any():
                diverged[live[bad]] = True
                diverged_step[live[bad]] = t
                mask = np.zeros(S, bool)
                mask[live[bad]] = True
                if compact:
                    keep = ~bad
                    grads = [g[keep] for g in grads]
                    shrink(mask)
                else:
                    stopped[mask] = True
            if not compact and stopped.any():
                for g in grads:
                    g[stopped] = 0
                for b in opt_state.momentum_buffer:
                    b[stopped] = 0
            if not live.size:
                break
            before = [p.copy() for p in work] if probe is not None and t in probe_set else None
            opt_state = opt.step(trainable, [grads[i] for i in net.trainable], opt_state)
            t += 1
            if before is not None:
                probe(Step(t - 1, xb, yb, noise, dist, before, work, grads, wstate))
            if t in eval_set or t == steps:
                tl = record(t)
                if target_loss is not None:
                    hit = np.zeros(S, bool)
                    hit[live] = (tl[live] <= target_loss) & ~stopped[live]
                    if hit.any():
                        reached_step[hit] = t
                        shrink(hit)
                if stop_when is not None and stop_when(reached_step, t):
                    break
    if evals[-1][0] != t:
        record(t)
    for p, w in zip(params, work):
        if w is not p:
            p[live] = w
    for s_full, s_work in zip(state, wstate):
        for k, v in s_work.items():
            if v is not s_full[k]:
                s_full[k][live] = v
    cols = list(zip(*evals))
    return Run(losses[:, :t], np.array(cols[0]), np.stack(cols[1], 1), np.stack(cols[2], 1), np.stack(cols[3], 1),
               diverged, diverged_step, reached_step, params, state)
