"""Elman recurrent layer with torch.nn.RNN's semantics, backprop through time, variable lengths, per-step norms.

Layer l of num_layers maps its input sequence x_t (the net's input for l = 0, layer l-1's output otherwise) to

    h_t = f(x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh),    f = tanh or relu,    t = 0 .. T-1,

with torch.nn.RNN's parameter names and shapes per layer -- weight_ih_l{l} (H, F_l), weight_hh_l{l} (H, H),
bias_ih_l{l} (H,), bias_hh_l{l} (H,) -- its init (every one ~ U(-1/sqrt(H), 1/sqrt(H)), drawn in that order,
layer by layer), and h_0 = 0 unless given. Inputs are time-major (T, N, F) or, with batch_first, (N, T, F);
the outputs are h_1 .. h_T of the last layer in the same layout, and h_n = h_T of every layer.

Replicas. Every parameter carries a leading replica axis: weight_ih_l0 (S, H, F), bias_ih_l0 (S, H), ...
S replicas run in one pass: x (T, N, F) is shared by all of them, x (S, T, N, F) is one batch per replica;
outputs are (S, T, N, H), h_n (S, num_layers, N, H). Replica s is initialised from
np.random.default_rng(seeds[s]) as a single-replica layer with that seed would be. A scan of weights (a
different W_hh per replica) is therefore one forward and one backward.

Variable lengths. lengths (N,) -- or (S, N), one per replica's batch -- in 1 .. T give each sequence's valid
steps; step t of sequence n is padding when t >= lengths[n]. As torch's pack_padded_sequence gives: the output
is 0 at padded steps, the hidden state stays at h_{lengths[n]} (so h_n is each sequence's last valid state),
and neither the padded inputs nor the gradients at padded outputs change anything.

Backprop through time. The input terms x_t W_ih^T of all steps are one batched matrix product before the
loop, the weight gradients one product after it: dW_hh = sum_t da_t^T h_{t-1}, dW_ih = sum_t da_t^T x_t,
db = sum_t sum_n da_t. Only dL/dh_{t-1} = (dL/dh_t f'(a_t)) W_hh (+ the output's gradient) runs step by step,
in preallocated buffers. dL/dh_t grows or decays like the product of the Jacobians diag(f'(a_t)) W_hh: its
norm explodes when W_hh's spectral radius exceeds 1 (tanh: 1 / max|f'|) and vanishes below (Pascanu, Mikolov
& Bengio 2013, "On the difficulty of training recurrent neural networks", arXiv:1211.5063); clip with
dlbench.nn.optim.clip_grad_norm_ / clip_grad_value_ on the list backward returns.

Norms inside the cell (norm="layer" or "batch"). The bias moves behind the norm, so a norm carries gains only:

  layer  h_t = f(g * LN(x_t W_ih^T + h_{t-1} W_hh^T) + b_ih + b_hh),  LN(u) = (u - mean_H u) / sqrt(var_H u + eps)
         over the H units of each sample and step (Ba, Kiros & Hinton 2016, "Layer normalization",
         arXiv:1607.06450, section 3.1; their bias is b_ih + b_hh). Gain: norm_weight_l{l} (H,).
  batch  h_t = f(g_x * BN_t(x_t W_ih^T) + g_h * BN_t(h_{t-1} W_hh^T) + b_ih + b_hh),
         BN_t(v) = (v - mean_n v) / sqrt(var_n v + eps) per unit over the batch at step t, with separate
         statistics for each time step (Cooijmans, Ballas, Laurent, Gulcehre & Courville 2017, "Recurrent batch
         normalization", arXiv:1603.09025; their beta is b_ih + b_hh). Gains: norm_ih_weight_l{l},
         norm_hh_weight_l{l} (H,). With lengths, step t's statistics are over the sequences still running at t
         (padded steps are not data), so late steps are normalised by few samples. Running statistics, one per
         step as torch.nn.BatchNorm1d keeps them (momentum, unbiased variance; a step with fewer than two
         running sequences leaves them unchanged), live in the state from init_state and grow to the longest
         sequence seen; in eval mode a step beyond it uses the last step's statistics (as Cooijmans et al.).
         At t = 0 with h_0 = 0 the recurrent term is 0 for every sample and BN_0 of it is 0.

norm_hyper: eps (1e-5), momentum (0.1, batch only) and weight_init, the gains' initial value (1.0 as torch's
norms; Cooijmans et al. recommend 0.1 for tanh). Statistics are accumulated in the layer's dtype.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import NamedTuple

import numpy as np

from dlbench.errors import DlbenchError
from dlbench.nn.layers import dense_backward, dense_forward
from dlbench.nn.params import ParamTable

NONLINEARITIES = ("tanh", "relu")
NORM_DEFAULTS = MappingProxyType({
    "none": {},
    "layer": {"eps": 1e-5, "weight_init": 1.0},
    "batch": {"eps": 1e-5, "momentum": 0.1, "weight_init": 1.0},
})
HEADS = ("last", "all")


def _count(what: str, v, least: int = 1) -> int:
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < least:
        raise DlbenchError(f"{what} must be an integer >= {least}, got {v!r}")
    return int(v)


def _norm_hyper(norm: str, hyper: Mapping) -> dict:
    if norm not in NORM_DEFAULTS:
        raise DlbenchError(f"unknown recurrent norm {norm!r}; valid: {', '.join(NORM_DEFAULTS)}")
    defaults = NORM_DEFAULTS[norm]
    unknown = sorted(set(hyper) - set(defaults))
    if unknown:
        raise DlbenchError(f"recurrent {norm} norm has no hyperparameter {', '.join(unknown)}; "
                           f"valid: {', '.join(defaults) or 'none'}")
    h = {**defaults, **hyper}
    if "eps" in h and not (isinstance(h["eps"], (int, float)) and h["eps"] > 0):
        raise DlbenchError(f"recurrent {norm} norm: eps must be a positive number, got {h['eps']!r}")
    if "momentum" in h and not (isinstance(h["momentum"], (int, float)) and 0 <= h["momentum"] <= 1):
        raise DlbenchError(f"recurrent {norm} norm: momentum must be in [0, 1], got {h['momentum']!r}")
    return h


def sequence_mask(lengths: np.ndarray, T: int) -> np.ndarray:
    """Boolean (..., T, N): True where step t of sequence n is valid (t < lengths[..., n])."""
    lengths = np.asarray(lengths)
    return np.arange(T)[:, None] < lengths[..., None, :]


@dataclass(frozen=True)
class RNNSpec:
    """What a recurrent layer is: sizes, depth, nonlinearity ("tanh" or "relu"), biases, input layout, norm
    ("none", "layer" or "batch", see the module docstring) with its hyperparameters, dtype."""

    input_size: int
    hidden_size: int
    num_layers: int = 1
    nonlinearity: str = "tanh"
    bias: bool = True
    batch_first: bool = False
    norm: str = "none"
    norm_hyper: Mapping = field(default_factory=dict)
    dtype: type = np.float32


class _Steps(NamedTuple):
    """Lengths of one call: mask (S', T, N, 1) in the dtype, its negation, the per-step row of the mask
    (S', T, 1, N), the running sequences per step (S', T, 1, 1), the first step with padding (T: none), the
    mask spelt out over the H units (S', T, N, H), and for the step loops the mask and its negation time-major,
    (T, S', N, H): a step's slice is then one contiguous block (a where= or factor broadcast along the last
    axis, or a slice strided over the replicas, costs NumPy 3-5x)."""

    mask: np.ndarray | None
    padded: np.ndarray | None
    row: np.ndarray | None
    count: np.ndarray | float
    first_padded: int
    keep: np.ndarray | None = None
    keep_t: np.ndarray | None = None
    hold_t: np.ndarray | None = None


class _LayerCache(NamedTuple):
    """x2: the layer input as the input product sees it, (T N, F) shared or (S, T N, F); hs (S, T+1, N, H):
    h_0 .. h_T; out: the outputs (hs[:, 1:], zeroed at padded steps); z_hat / inv_std: layer norm's normalised
    pre-activation (S, T, N, H) and 1 / std (S, T, N, 1), or batch norm's normalised recurrent term and its
    (S, T, 1, H); x_hat / inv_std_x: batch norm's normalised input term and its 1 / std."""

    x2: np.ndarray
    hs: np.ndarray
    out: np.ndarray
    z_hat: np.ndarray | None = None
    inv_std: np.ndarray | None = None
    x_hat: np.ndarray | None = None
    inv_std_x: np.ndarray | None = None


class RNNCache(NamedTuple):
    """What forward keeps for backward: per layer a _LayerCache, the call's lengths, whether batch norm used
    batch statistics, (S, T, N), the output and h_n as returned."""

    layers: list
    steps: _Steps
    batch_stats: bool
    shape: tuple       # (S, T, N)
    output: np.ndarray
    h_n: np.ndarray


class RNN(ParamTable):
    """Forward and backward (through time) of the layer described by an RNNSpec, for any number of replicas."""

    def __init__(self, spec: RNNSpec):
        self.spec = spec
        self.input_size = _count("input_size", spec.input_size)
        self.hidden_size = H = _count("hidden_size", spec.hidden_size)
        self.num_layers = _count("num_layers", spec.num_layers)
        if spec.nonlinearity not in NONLINEARITIES:
            raise DlbenchError(f"unknown nonlinearity {spec.nonlinearity!r}; valid: {', '.join(NONLINEARITIES)}")
        self.nonlinearity = spec.nonlinearity
        self.norm = spec.norm
        self.norm_hyper = MappingProxyType(_norm_hyper(spec.norm, spec.norm_hyper))
        self.dtype = np.dtype(spec.dtype)
        self.batch_first = bool(spec.batch_first)
        self.param_names: list[str] = []
        self._shapes: list[tuple] = []
        self.layers: list[dict] = []     # per layer: parameter name (without _l{l}) -> index
        for l in range(self.num_layers):
            fan_in = self.input_size if l == 0 else H
            idx = {"weight_ih": self._add(f"weight_ih_l{l}", (H, fan_in)),
                   "weight_hh": self._add(f"weight_hh_l{l}", (H, H))}
            if spec.bias:
                idx["bias_ih"] = self._add(f"bias_ih_l{l}", (H,))
                idx["bias_hh"] = self._add(f"bias_hh_l{l}", (H,))
            if self.norm == "layer":
                idx["norm_weight"] = self._add(f"norm_weight_l{l}", (H,))
            elif self.norm == "batch":
                idx["norm_ih_weight"] = self._add(f"norm_ih_weight_l{l}", (H,))
                idx["norm_hh_weight"] = self._add(f"norm_hh_weight_l{l}", (H,))
            self.layers.append(idx)
        self._buffers: dict = {}

    def init(self, seeds: Sequence[int] | int) -> list[np.ndarray]:
        """Parameters for len(seeds) replicas, ordered as param_names, replica axis first.

        Replica s draws from np.random.default_rng(seeds[s]) weight_ih, weight_hh, bias_ih, bias_hh of each
        layer in turn, each ~ U(-1/sqrt(H), 1/sqrt(H)) (torch.nn.RNN.reset_parameters); norm gains are
        norm_hyper["weight_init"] and draw nothing.
        """
        seeds = [seeds] if np.isscalar(seeds) else list(seeds)
        params = [np.empty((len(seeds), *shape), dtype=self.dtype) for shape in self._shapes]
        for s, seed in enumerate(seeds):
            self.draw(np.random.default_rng(seed), params, s)
        return params

    def draw(self, rng: np.random.Generator, params: list[np.ndarray], s: int) -> None:
        """Replica s of params from rng, in init's order (the norm gains are set, not drawn)."""
        bound = 1.0 / np.sqrt(self.hidden_size)
        for idx in self.layers:
            for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                if name in idx:
                    params[idx[name]][s] = rng.uniform(-bound, bound, size=params[idx[name]].shape[1:])
            for name in ("norm_weight", "norm_ih_weight", "norm_hh_weight"):
                if name in idx:
                    params[idx[name]][s] = self.norm_hyper["weight_init"]

    def init_state(self, n_replicas: int) -> list[dict]:
        """Per layer, batch norm's running statistics per time step (empty dicts for the other norms):
        running_mean_ih, running_var_ih, running_mean_hh, running_var_hh of shape (S, steps seen, H), which
        grow to the longest sequence trained on (steps not yet seen start at mean 0, variance 1)."""
        if self.norm != "batch":
            return [{} for _ in self.layers]
        shape = (n_replicas, 0, self.hidden_size)
        return [{k: np.zeros(shape, dtype=self.dtype) for k in
                 ("running_mean_ih", "running_var_ih", "running_mean_hh", "running_var_hh")} for _ in self.layers]

    def _buffer(self, key, shape: tuple, reuse: bool, dtype=None) -> np.ndarray:
        dtype = self.dtype if dtype is None else dtype
        if not reuse:
            return np.empty(shape, dtype=dtype)
        buf = self._buffers.get(key)
        if buf is None or buf.shape != shape or buf.dtype != dtype:
            buf = self._buffers[key] = np.empty(shape, dtype=dtype)
        return buf

    # ---------------------------------------------------------------------------------------------- inputs

    def _time_major(self, x) -> np.ndarray:
        """x as a (T, N, F) or (S, T, N, F) view (batch_first swapped), checked."""
        x = np.asarray(x)
        if x.ndim not in (3, 4) or x.shape[-1] != self.input_size:
            layout = "(N, T, F) or (S, N, T, F)" if self.batch_first else "(T, N, F) or (S, T, N, F)"
            raise DlbenchError(f"recurrent input must be {layout} with F = {self.input_size}, got shape {x.shape}")
        return np.swapaxes(x, -3, -2) if self.batch_first else x

    def _input(self, X: np.ndarray, steps: _Steps, S: int, reuse: bool) -> np.ndarray:
        """X contiguous in the layer's dtype, its padded steps zero (whatever they held, even inf or nan); the
        replica axis added when per-replica lengths meet a shared X."""
        masked = steps.mask is not None
        shape = (S, *X.shape[-3:]) if masked and steps.mask.ndim == 4 else X.shape
        if not masked and X.dtype == self.dtype and X.flags.c_contiguous:
            return X
        buf = self._buffer(("x",), shape, reuse)
        np.copyto(buf, X)
        if masked:
            np.copyto(buf, 0, where=steps.padded)
        return buf

    def _steps(self, lengths, S: int, T: int, N: int, reuse: bool = False) -> _Steps:
        if lengths is None:
            return _Steps(None, None, None, float(N), T)
        lengths = np.asarray(lengths)
        if lengths.shape not in ((N,), (S, N)) or lengths.dtype.kind not in "iu":
            raise DlbenchError(f"lengths must be integers of shape ({N},) or ({S}, {N}), "
                               f"got {lengths.dtype} {lengths.shape}")
        if lengths.size and (lengths.min() < 1 or lengths.max() > T):
            raise DlbenchError(f"lengths must be in 1 .. {T} (the padded length), "
                               f"got {lengths.min()} .. {lengths.max()}")
        valid = sequence_mask(lengths, T)                               # (S', T, N)
        mask = valid[..., None].astype(self.dtype)
        row = valid[..., None, :].astype(self.dtype)                     # (S', T, 1, N)
        count = np.maximum(valid.sum(axis=-1), 1)[..., None, None].astype(self.dtype)
        H = self.hidden_size
        keep = self._buffer(("keep",), (*valid.shape, H), reuse)
        np.copyto(keep, mask)
        valid_t = np.moveaxis(valid, -2, 0)[..., None]                    # (T, S', N, 1)
        keep_t = self._buffer(("keep_t",), (*valid_t.shape[:-1], H), reuse)
        np.copyto(keep_t, valid_t)
        hold_t = self._buffer(("hold_t",), keep_t.shape, reuse, dtype=np.bool_)
        np.copyto(hold_t, ~valid_t)
        return _Steps(mask, ~valid[..., None], row, count, int(lengths.min()), keep, keep_t, hold_t)

    # ---------------------------------------------------------------------------------------------- forward

    def forward(self, params: list[np.ndarray], x, state: list[dict] | None = None, train: bool = True, *,
                lengths=None, h0=None, reuse: bool = False) -> tuple[np.ndarray, np.ndarray, RNNCache]:
        """(output, h_n, cache) for x (T, N, F) shared by the replicas or (S, T, N, F) (batch_first: N before T).

        output: the last layer's h_1 .. h_T, (S, T, N, H) (batch_first: (S, N, T, H)), 0 at padded steps;
        h_n (S, num_layers, N, H). h0: (num_layers, N, H) or (S, num_layers, N, H), zeros when None.
        train: batch norm uses the batch's per-step statistics and updates `state` in place; eval mode uses
        the running ones. reuse=True writes into buffers kept by this layer (the returned arrays and cache are
        overwritten by the next reuse=True call).
        """
        X = self._time_major(x)
        S, (T, N) = params[0].shape[0], X.shape[-3:-1]
        H = self.hidden_size
        steps = self._steps(lengths, S, T, N, reuse)
        X = self._input(X, steps, S, reuse)
        shared = X.ndim == 3
        if self.norm == "batch" and state is None:
            if not train:
                raise ValueError("forward in eval mode with batch norm needs the state from init_state")
            state = self.init_state(S)
        if h0 is not None:
            h0 = np.asarray(h0, dtype=self.dtype)
            if h0.shape not in ((self.num_layers, N, H), (S, self.num_layers, N, H)):
                raise DlbenchError(f"h0 must be ({self.num_layers}, {N}, {H}) or ({S}, {self.num_layers}, {N}, "
                                   f"{H}), got {h0.shape}")
        x2 = X.reshape(T * N, -1) if shared else X.reshape(S, T * N, -1)
        caches = []
        for l in range(self.num_layers):
            h0_l = None if h0 is None else h0[..., l, :, :]
            c = self._layer_forward(l, params, x2, S, T, N, h0_l, None if state is None else state[l], train,
                                    steps, reuse)
            caches.append(c)
            x2 = c.out.reshape(S, T * N, H)
        out = caches[-1].out
        h_n = self._buffer(("h_n",), (S, self.num_layers, N, H), reuse)
        for l, c in enumerate(caches):
            h_n[:, l] = c.hs[:, T]
        output = np.swapaxes(out, 1, 2) if self.batch_first else out
        return output, h_n, RNNCache(caches, steps, train, (S, T, N), output, h_n)

    def _layer_forward(self, l, params, x2, S, T, N, h0, state, train, steps: _Steps, reuse) -> _LayerCache:
        H = self.hidden_size
        idx = self.layers[l]
        W_ih, W_hh = params[idx["weight_ih"]], params[idx["weight_hh"]]
        bias = None
        if "bias_ih" in idx:
            bias = (params[idx["bias_ih"]] + params[idx["bias_hh"]])[:, None, :]       # (S, 1, H)
        # the input terms of every step in one batched product
        A = self._buffer((l, "A"), (S, T, N, H), reuse)
        np.matmul(x2, np.swapaxes(W_ih, -1, -2), out=A.reshape(S, T * N, H))
        hs = self._buffer((l, "hs"), (S, T + 1, N, H), reuse)
        if h0 is None:
            hs[:, 0] = 0
        else:
            hs[:, 0] = h0
        W_hh_t = np.swapaxes(W_hh, -1, -2)
        relu = self.nonlinearity == "relu"
        eps = self.norm_hyper.get("eps", 0.0)
        z_hat = inv_std = x_hat = inv_std_x = None
        if self.norm == "none":
            if bias is not None:
                A += bias[:, None]
        elif self.norm == "layer":
            gain = params[idx["norm_weight"]][:, None, :]
            z_hat = self._buffer((l, "z_hat"), (S, T, N, H), reuse)
            inv_std = self._buffer((l, "inv_std"), (S, T, N, 1), reuse)
            ones = np.ones(H, dtype=self.dtype)
        else:
            g_x, g_h = params[idx["norm_ih_weight"]][:, None, :], params[idx["norm_hh_weight"]][:, None, :]
            x_hat, inv_std_x = A, self._buffer((l, "inv_std_x"), (S, T, 1, H), reuse)
            if train:
                mean, var = _batch_moments(A, steps, self._buffer((l, "sq"), A.shape, reuse))
                _inv_std(var, eps, out=inv_std_x)
                means = self._buffer((l, "means"), (S, T, 1, H), reuse)
                variances = self._buffer((l, "vars"), (S, T, 1, H), reuse)
            else:
                mean, var = _running(state, "ih", T)
                _inv_std(var, eps, out=inv_std_x)
                np.subtract(A, mean, out=A)
                mean_hh, var_hh = _running(state, "hh", T)
            A *= inv_std_x                                               # A is now x_hat
            Z = self._buffer((l, "Z"), (S, T, N, H), reuse)
            np.multiply(A, g_x[:, None], out=Z)
            if bias is not None:
                Z += bias[:, None]
            z_hat = self._buffer((l, "z_hat"), (S, T, N, H), reuse)
            inv_std = self._buffer((l, "inv_std"), (S, T, 1, H), reuse)
            sq = self._buffer((l, "sq_t"), (S, N, H), reuse)
            ones_n = np.ones((1, N), dtype=self.dtype)
        # a step works in contiguous (S, N, H) scratch (a slice [:, t] strided over the replicas costs NumPy
        # 4-5x per operation) and writes each result the cache keeps once
        h_prev, h = self._buffer((l, "h_a"), (S, N, H), reuse), self._buffer((l, "h_b"), (S, N, H), reuse)
        np.copyto(h_prev, hs[:, 0])
        if self.norm != "none":
            work = self._buffer((l, "step"), (S, N, H), reuse)
        for t in range(T):
            if self.norm == "none":
                np.matmul(h_prev, W_hh_t, out=h)
                np.add(h, A[:, t], out=h)
            elif self.norm == "layer":
                u = work
                np.matmul(h_prev, W_hh_t, out=u)
                np.add(u, A[:, t], out=u)
                mu = np.matmul(u, ones)
                mu *= 1.0 / H
                np.subtract(u, mu[..., None], out=u)
                var = np.vecdot(u, u)
                var *= 1.0 / H
                isd = inv_std[:, t]
                _inv_std(var[..., None], eps, out=isd)
                np.multiply(u, isd, out=u)
                np.copyto(z_hat[:, t], u)
                np.multiply(u, gain, out=h)
                if bias is not None:
                    np.add(h, bias, out=h)
            else:
                r = work
                np.matmul(h_prev, W_hh_t, out=r)
                isd = inv_std[:, t]
                if train:
                    row = ones_n if steps.row is None else steps.row[..., t, :, :]
                    cnt = steps.count if steps.row is None else steps.count[..., t, :, :]
                    mu = np.matmul(row, r)
                    mu /= cnt
                    np.subtract(r, mu, out=r)
                    np.multiply(r, r, out=sq)
                    v = np.matmul(row, sq)
                    v /= cnt
                    means[:, t], variances[:, t] = mu, v
                    _inv_std(v, eps, out=isd)
                else:
                    np.subtract(r, mean_hh[:, t], out=r)
                    _inv_std(var_hh[:, t], eps, out=isd)
                np.multiply(r, isd, out=r)
                np.copyto(z_hat[:, t], r)
                np.multiply(r, g_h, out=h)
                np.add(h, Z[:, t], out=h)
            if relu:
                np.maximum(h, 0, out=h)
            else:
                np.tanh(h, out=h)
            if t >= steps.first_padded:  # finished sequences keep their state
                np.copyto(h, h_prev, where=steps.hold_t[t])
            np.copyto(hs[:, t + 1], h)
            h_prev, h = h, h_prev
        if self.norm == "batch" and train:
            _update_running(state, "ih", mean, var, steps, self.norm_hyper["momentum"], T, N)
            _update_running(state, "hh", means, variances, steps, self.norm_hyper["momentum"], T, N)
        out = hs[:, 1:]
        if steps.mask is not None:
            out = np.multiply(out, steps.keep, out=self._buffer((l, "out"), (S, T, N, H), reuse))
        return _LayerCache(x2, hs, out, z_hat, inv_std, x_hat, inv_std_x)

    # ---------------------------------------------------------------------------------------------- backward

    def backward(self, params: list[np.ndarray], cache: RNNCache, g_output=None, g_hn=None, *,
                 need_input_grads: bool = False, reuse: bool = False):
        """Gradients of the loss w.r.t. every parameter (same layout as params), by backprop through time.

        g_output = dL/doutput in the output's layout (None: 0); g_hn = dL/dh_n (S, num_layers, N, H) (None: 0).
        Gradients at padded steps' outputs are ignored (those outputs are constant 0). With
        need_input_grads=True returns (grads, dL/dx in x's layout with a replica axis, dL/dh0
        (S, num_layers, N, H)). reuse=True writes into buffers kept by this layer.
        """
        S, T, N = cache.shape
        H = self.hidden_size
        G = None
        if g_output is not None:
            G = np.asarray(g_output)
            if G.shape != cache.output.shape:
                raise ValueError(f"g_output must have the output's shape {cache.output.shape}, got {G.shape}")
            if self.batch_first:
                G = np.swapaxes(G, 1, 2)
        grads: list = [None] * len(params)
        dh0 = np.zeros((S, self.num_layers, N, H), dtype=self.dtype) if need_input_grads else None
        dx = None
        for l in range(self.num_layers - 1, -1, -1):
            need_dx = l > 0 or need_input_grads
            carry = None if g_hn is None else g_hn[:, l]
            dx, dh = self._layer_backward(l, params, cache, G, carry, grads, need_dx, reuse)
            if dh0 is not None:
                dh0[:, l] = dh
            if l > 0:
                G = dx.reshape(S, T, N, H)
        if not need_input_grads:
            return grads
        dx = dx.reshape(S, T, N, -1)
        return grads, (np.swapaxes(dx, 1, 2) if self.batch_first else dx), dh0

    def _layer_backward(self, l, params, cache: RNNCache, G, carry0, grads, need_dx, reuse):
        S, T, N = cache.shape
        H = self.hidden_size
        c: _LayerCache = cache.layers[l]
        steps = cache.steps
        idx = self.layers[l]
        W_ih, W_hh = params[idx["weight_ih"]], params[idx["weight_hh"]]
        hs = c.hs
        # f'(a_t) from h_t alone, 0 at padded steps
        D = self._buffer((l, "D"), (S, T, N, H), reuse)
        if self.nonlinearity == "relu":
            np.sign(hs[:, 1:], out=D)
        else:
            np.multiply(hs[:, 1:], hs[:, 1:], out=D)
            np.subtract(1, D, out=D)
        if steps.mask is not None:
            D *= steps.keep
        dA = self._buffer((l, "dA"), (S, T, N, H), reuse)
        carry = self._buffer((l, "carry"), (S, N, H), reuse)
        nxt = self._buffer((l, "next"), (S, N, H), reuse)
        if carry0 is None:
            carry[...] = 0
        else:
            carry[...] = carry0
        if self.norm == "none":
            dZ = dA
        else:
            dZ = self._buffer((l, "dZ"), (S, T, N, H), reuse)
            g_hat = self._buffer((l, "g_hat"), (S, N, H), reuse)
            if self.norm == "layer":
                gain = params[idx["norm_weight"]][:, None, :]
                ones = np.ones(H, dtype=self.dtype)
            else:
                gain = params[idx["norm_hh_weight"]][:, None, :]
                ones_n = np.ones((1, N), dtype=self.dtype)
        # as in forward: a step works in contiguous scratch and writes what the weight gradients need once
        ga = self._buffer((l, "ga"), (S, N, H), reuse)
        gz = ga if self.norm == "none" else self._buffer((l, "gz"), (S, N, H), reuse)
        for t in range(T - 1, -1, -1):
            if G is None:
                np.multiply(carry, D[:, t], out=ga)
            else:
                np.add(G[:, t], carry, out=ga)
                np.multiply(ga, D[:, t], out=ga)
            np.copyto(dA[:, t], ga)
            if self.norm == "layer":
                u, isd = c.z_hat[:, t], c.inv_std[:, t]
                np.multiply(ga, gain, out=g_hat)
                s1 = np.matmul(g_hat, ones)
                s1 *= 1.0 / H
                s2 = np.vecdot(g_hat, u)
                s2 *= 1.0 / H
                np.multiply(u, s2[..., None], out=gz)
                np.subtract(g_hat, gz, out=gz)
                np.subtract(gz, s1[..., None], out=gz)
                np.multiply(gz, isd, out=gz)
            elif self.norm == "batch":
                r, isd = c.z_hat[:, t], c.inv_std[:, t]
                np.multiply(ga, gain, out=g_hat)
                if cache.batch_stats:  # padded rows of g_hat are 0 already
                    cnt = steps.count if steps.row is None else steps.count[..., t, :, :]
                    s1 = np.matmul(ones_n, g_hat)
                    s1 /= cnt
                    np.multiply(g_hat, r, out=gz)
                    s2 = np.matmul(ones_n, gz)
                    s2 /= cnt
                    np.multiply(r, s2, out=gz)
                    np.subtract(g_hat, gz, out=gz)
                    np.subtract(gz, s1, out=gz)
                    np.multiply(gz, isd, out=gz)
                    if t >= steps.first_padded:
                        gz *= steps.keep_t[t]
                else:
                    np.multiply(g_hat, isd, out=gz)
            if self.norm != "none":
                np.copyto(dZ[:, t], gz)
            np.matmul(gz, W_hh, out=nxt)
            if t >= steps.first_padded:  # a finished sequence's state passed through this step unchanged
                np.copyto(nxt, carry, where=steps.hold_t[t])
            carry, nxt = nxt, carry
        dA2, dZ2 = dA.reshape(S, T * N, H), dZ.reshape(S, T * N, H)
        grads[idx["weight_hh"]] = np.matmul(np.swapaxes(dZ2, 1, 2), hs[:, :T].reshape(S, T * N, H),
                                            out=self._buffer((l, "dW_hh"), W_hh.shape, reuse))
        if "bias_ih" in idx:
            db = np.matmul(np.ones(T * N, dtype=self.dtype), dA2, out=self._buffer((l, "db_ih"), (S, H), reuse))
            grads[idx["bias_ih"]] = db
            db_hh = grads[idx["bias_hh"]] = self._buffer((l, "db_hh"), (S, H), reuse)
            np.copyto(db_hh, db)
        if self.norm == "none":
            dX2 = dA2
        elif self.norm == "layer":
            grads[idx["norm_weight"]] = np.einsum("snh,snh->sh", dA2, c.z_hat.reshape(S, T * N, H))
            dX2 = dZ2
        else:
            grads[idx["norm_hh_weight"]] = np.einsum("snh,snh->sh", dA2, c.z_hat.reshape(S, T * N, H))
            grads[idx["norm_ih_weight"]] = np.einsum("snh,snh->sh", dA2, c.x_hat.reshape(S, T * N, H))
            dP = self._buffer((l, "dP"), (S, T, N, H), reuse)
            np.multiply(dA, params[idx["norm_ih_weight"]][:, None, None, :], out=dP)
            if cache.batch_stats:
                ones_n = np.ones((1, N), dtype=self.dtype)
                s1 = np.matmul(ones_n, dP)
                s1 /= steps.count
                sq = self._buffer((l, "sq"), dP.shape, reuse)
                np.multiply(dP, c.x_hat, out=sq)
                s2 = np.matmul(ones_n, sq)
                s2 /= steps.count
                np.multiply(c.x_hat, s2, out=sq)
                np.subtract(dP, sq, out=dP)
                np.subtract(dP, s1, out=dP)
            dP *= c.inv_std_x
            if cache.batch_stats and steps.mask is not None:
                dP *= steps.keep
            dX2 = dP.reshape(S, T * N, H)
        grads[idx["weight_ih"]] = np.matmul(np.swapaxes(dX2, 1, 2), c.x2,
                                            out=self._buffer((l, "dW_ih"), W_ih.shape, reuse))
        dx = np.matmul(dX2, W_ih, out=self._buffer((l, "dx"), (S, T * N, W_ih.shape[-1]), reuse)) if need_dx else None
        return dx, carry


def _inv_std(var: np.ndarray, eps: float, out: np.ndarray) -> np.ndarray:
    """out = 1 / sqrt(var + eps)."""
    np.add(var, eps, out=out)
    np.sqrt(out, out=out)
    return np.divide(1, out, out=out)


def _batch_moments(A: np.ndarray, steps: _Steps, sq: np.ndarray):
    """Per-step batch mean and biased variance of A (S, T, N, H) over the running sequences, each (S, T, 1, H);
    A is centred in place (sq is scratch of A's shape)."""
    N = A.shape[-2]
    row = np.ones((1, N), dtype=A.dtype) if steps.row is None else steps.row
    mean = np.matmul(row, A)
    mean /= steps.count
    np.subtract(A, mean, out=A)
    np.multiply(A, A, out=sq)
    var = np.matmul(row, sq)
    var /= steps.count
    return mean, var


def _running(state: dict, term: str, T: int):
    """(mean, var) (S, T, 1, H) for steps 0 .. T-1 from the running statistics; a step beyond those seen
    uses the last one seen; none seen: mean 0, variance 1."""
    rm, rv = state[f"running_mean_{term}"], state[f"running_var_{term}"]
    seen = rm.shape[1]
    if seen == 0:
        shape = (rm.shape[0], T, 1, rm.shape[2])
        return np.zeros(shape, dtype=rm.dtype), np.ones(shape, dtype=rv.dtype)
    at = np.minimum(np.arange(T), seen - 1)
    return rm[:, at, None, :], rv[:, at, None, :]


def _update_running(state: dict, term: str, mean, var, steps: _Steps, momentum: float, T: int, N: int) -> None:
    """torch.nn.BatchNorm1d's update per step, in place: running <- (1 - m) running + m batch, with the unbiased
    variance var * n / (n - 1); steps with fewer than two running sequences are left alone."""
    rm_key, rv_key = f"running_mean_{term}", f"running_var_{term}"
    rm, rv = state[rm_key], state[rv_key]
    S, seen, H = rm.shape
    if seen < T:  # new steps start at mean 0, variance 1
        state[rm_key] = rm = np.concatenate([rm, np.zeros((S, T - seen, H), dtype=rm.dtype)], axis=1)
        state[rv_key] = rv = np.concatenate([rv, np.ones((S, T - seen, H), dtype=rv.dtype)], axis=1)
    n = np.full((1, T, 1), float(N)) if steps.row is None else steps.row.sum(axis=-1, dtype=np.float64)
    ok = n >= 2                                                          # (S', T, 1)
    unbiased = var[:, :, 0, :] * np.where(ok, n / np.maximum(n - 1, 1), 1.0).astype(var.dtype)
    new_mean = (1 - momentum) * rm[:, :T] + momentum * mean[:, :, 0, :]
    new_var = (1 - momentum) * rv[:, :T] + momentum * unbiased
    if ok.all():
        rm[:, :T], rv[:, :T] = new_mean, new_var
    else:
        rm[:, :T] = np.where(ok, new_mean, rm[:, :T])
        rv[:, :T] = np.where(ok, new_var, rv[:, :T])


# -------------------------------------------------------------------------------------------------- the model

@dataclass(frozen=True)
class RNNNetSpec:
    """A recurrent net for sequence data: an RNN over batch-first sequences (N, T, n_features) and a linear
    head (n_outputs) on each sequence's last valid step (head="last") or on every step (head="all").
    The other fields are RNNSpec's."""

    n_features: int
    hidden_size: int
    n_outputs: int
    num_layers: int = 1
    nonlinearity: str = "tanh"
    bias: bool = True
    norm: str = "none"
    norm_hyper: Mapping = field(default_factory=dict)
    head: str = "last"
    dtype: type = np.float32


class RNNNetCache(NamedTuple):
    rnn: RNNCache
    top: np.ndarray        # the head's input: (S, N, H) last states, or (S, T N, H) every step's output
    out: np.ndarray


class RNNNet:
    """An RNN (batch_first) and a linear head, with the MLP's interface, so dlbench.nn.train.train trains it on
    sequence data: forward(params, x (S, N, T, F) or (N, T, F), state, train, *, lengths=None, reuse=False).

    head="last": out (S, N, n_outputs) = h_n of the top layer (each sequence's last valid state) @ W + b.
    head="all": out (S, N, T, n_outputs), every step's output @ W + b, 0 at padded steps (the losses of
    dlbench.nn.losses average over axis -2, so a per-step loss is the caller's, masked with sequence_mask).
    Parameters: the RNN's (torch names), then head.W (S, H, n_outputs) and head.b (S, 1, n_outputs) drawn
    after them as torch.nn.Linear(H, n_outputs) (U(-1/sqrt(H), 1/sqrt(H))).
    """

    takes_sequences = True

    def __init__(self, spec: RNNNetSpec):
        if spec.head not in HEADS:
            raise DlbenchError(f"unknown head {spec.head!r}; valid: {', '.join(HEADS)}")
        self.spec = spec
        self.rnn = RNN(RNNSpec(spec.n_features, spec.hidden_size, spec.num_layers, spec.nonlinearity, spec.bias,
                               True, spec.norm, spec.norm_hyper, spec.dtype))
        self.n_outputs = _count("n_outputs", spec.n_outputs)
        self.dtype = self.rnn.dtype
        self.widths = (self.rnn.input_size, self.rnn.hidden_size, self.n_outputs)
        k = len(self.rnn.param_names)
        self.param_names = [*self.rnn.param_names, "head.W", "head.b"]
        self.head_W, self.head_b = k, k + 1
        self._buffers: dict = {}

    @property
    def n_params(self) -> int:
        return self.rnn.n_params + (self.rnn.hidden_size + 1) * self.n_outputs

    @property
    def param_shapes(self) -> list[tuple]:
        H, C = self.rnn.hidden_size, self.n_outputs
        return [*self.rnn.param_shapes, (H, C), (1, C)]

    def init(self, seeds: Sequence[int] | int) -> list[np.ndarray]:
        """The RNN's parameters, then the head's, each replica from np.random.default_rng(seeds[s])."""
        seeds = [seeds] if np.isscalar(seeds) else list(seeds)
        params = [np.empty((len(seeds), *shape), dtype=self.dtype) for shape in self.param_shapes]
        bound = 1.0 / np.sqrt(self.rnn.hidden_size)
        for s, seed in enumerate(seeds):
            rng = np.random.default_rng(seed)
            self.rnn.draw(rng, params, s)
            params[self.head_W][s] = rng.uniform(-bound, bound, size=params[self.head_W].shape[1:])
            params[self.head_b][s] = rng.uniform(-bound, bound, size=params[self.head_b].shape[1:])
        return params

    def init_state(self, n_replicas: int) -> list[dict]:
        return self.rnn.init_state(n_replicas)

    def _buffer(self, key, shape: tuple, reuse: bool) -> np.ndarray:
        if not reuse:
            return np.empty(shape, dtype=self.dtype)
        buf = self._buffers.get(key)
        if buf is None or buf.shape != shape:
            buf = self._buffers[key] = np.empty(shape, dtype=self.dtype)
        return buf

    def forward(self, params: list[np.ndarray], x, state: list[dict] | None = None, train: bool = True, *,
                lengths=None, reuse: bool = False) -> tuple[np.ndarray, RNNNetCache]:
        W, b = params[self.head_W], params[self.head_b]
        output, h_n, rc = self.rnn.forward(params[: self.head_W], x, state, train, lengths=lengths, reuse=reuse)
        S, T, N = rc.shape
        if self.spec.head == "last":
            top = h_n[:, -1]
            out = dense_forward(top, W, b, out=self._buffer("out", (S, N, self.n_outputs), reuse))
            return out, RNNNetCache(rc, top, out)
        top = rc.layers[-1].out.reshape(S, T * N, -1)                        # time-major, 0 at padded steps
        z = dense_forward(top, W, b, out=self._buffer("out", (S, T * N, self.n_outputs), reuse))
        if rc.steps.mask is not None:
            z.reshape(S, T, N, -1)[...] *= rc.steps.mask
        out = np.swapaxes(z.reshape(S, T, N, -1), 1, 2)
        return out, RNNNetCache(rc, top, out)

    def backward(self, params: list[np.ndarray], cache: RNNNetCache, g_out: np.ndarray, *, reuse: bool = False):
        """Gradients of the loss w.r.t. every parameter, given g_out = dL/dout."""
        W = params[self.head_W]
        rc = cache.rnn
        S, T, N = rc.shape
        if self.spec.head == "last":
            dtop, dW, db = dense_backward(cache.top, W, g_out)
            g_hn = np.zeros((S, self.rnn.num_layers, N, self.rnn.hidden_size), dtype=self.dtype)
            g_hn[:, -1] = dtop
            grads = self.rnn.backward(params[: self.head_W], rc, None, g_hn, reuse=reuse)
        else:
            g = np.swapaxes(np.asarray(g_out), 1, 2)                          # (S, T, N, C)
            if rc.steps.mask is not None:
                g = g * rc.steps.mask
            g = np.ascontiguousarray(g, dtype=self.dtype).reshape(S, T * N, -1)
            dtop, dW, db = dense_backward(cache.top, W, g)
            # the RNN's backward takes the output's gradient in its (batch-first) layout
            grads = self.rnn.backward(params[: self.head_W], rc, np.swapaxes(dtop.reshape(S, T, N, -1), 1, 2),
                                      None, reuse=reuse)
        return [*grads, dW, db]

    def value_and_grad(self, params, x, y, loss_fn, state=None, train: bool = True, *, lengths=None,
                       reuse: bool = False):
        """(loss per replica (S,), grads, cache) of loss_fn(forward(params, x), y)."""
        out, cache = self.forward(params, x, state, train, lengths=lengths, reuse=reuse)
        loss, g_out = loss_fn(out, y)
        return loss, self.backward(params, cache, g_out, reuse=reuse), cache

