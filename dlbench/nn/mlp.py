"""A multilayer perceptron assembled from the kernels, with a leading replica axis on every parameter.

Layer l (l = 0 .. L-1) maps widths[l] -> widths[l+1]: z = h @ W + b, then for hidden layers a norm slot
a = norm(z) and the activation h' = act(a). The output layer is linear (raw outputs / logits). A maxout layer
with k pieces has a linear map of widths[l+1] * k outputs (and its norm sees those), reduced to widths[l+1].

S replicas (one per seed) live in one set of arrays: W (S, fan_in, fan_out), b (S, 1, fan_out), norm params
(S, 1, F), prelu's slope (S, 1, 1). Replica s is initialised from np.random.default_rng(seeds[s]) exactly as a
single-replica net with that seed would be, so S replicas are S independent runs computed in one pass.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np

from dlbench.errors import DlbenchError
from dlbench.nn.activations import Activation, get_activation
from dlbench.nn.dropout import check_p, dropout_backward, dropout_forward
from dlbench.nn.init import get_initializer
from dlbench.nn.layers import dense_backward, dense_forward
from dlbench.nn.norm import get_norm
from dlbench.nn.params import ParamTable

BIAS_INITS = ("torch_default", "zeros")


@dataclass(frozen=True)
class MLPSpec:
    """What a net is: sizes, per-hidden-layer activation, weight init, norm, bias, dtype.

    widths: (d_in, h_1, ..., h_{L-1}, d_out). activation: one name for every hidden layer or a tuple with one
    name per hidden layer; activation_hyper: one mapping for all, or a tuple of mappings per hidden layer.
    init / init_hyper: a dlbench.nn.init name for the weights (default: torch.nn.Linear's). bias_init:
    "torch_default" (uniform(-1/sqrt(fan_in), 1/sqrt(fan_in)), as torch.nn.Linear) or "zeros".
    norm / norm_hyper: a dlbench.nn.norm name, applied between each hidden linear map and its activation.
    dropout: the probability p of torch.nn.Dropout after each hidden activation (0: none).
    """

    widths: tuple[int, ...]
    activation: str | tuple[str, ...] = "relu"
    activation_hyper: Mapping | tuple[Mapping, ...] = field(default_factory=dict)
    init: str = "torch_default"
    init_hyper: Mapping = field(default_factory=dict)
    bias_init: str = "torch_default"
    norm: str = "none"
    norm_hyper: Mapping = field(default_factory=dict)
    bias: bool = True
    dtype: type = np.float32
    dropout: float = 0.0


class MLPCache(NamedTuple):
    """What forward keeps for backward; per hidden layer k (0-based) the lists hold:

    inputs[l]: the input of linear layer l (inputs[0] is x); linear[k]: z = h @ W + b before the norm;
    pre[k]: the activation's input (after the norm; the same array as linear[k] without a norm);
    post[k]: the activation's output; norm[k]: the norm's cache (None without a norm); out: the net's output;
    masks[k]: hidden layer k's scaled dropout mask (None without dropout or in eval; then inputs[k + 1] is
    post[k]).
    """

    inputs: list
    linear: list
    pre: list
    post: list
    norm: list
    out: np.ndarray
    masks: list | None = None


class LayerGrads(NamedTuple):
    """Gradients of the loss w.r.t. each hidden layer's activations: post[k] = dL/dpost[k], pre[k] = dL/dpre[k]."""

    post: list
    pre: list


class _Layer(NamedTuple):
    fan_in: int
    fan_out: int              # linear outputs: width * pieces for a maxout layer
    width: int                # layer output after the activation
    act: Activation | None    # None for the output layer
    W: int                    # index of W in the flat parameter list
    b: int | None
    norm: dict                # norm param name -> index
    theta: tuple              # indices of the activation's learnable params


def _per_layer(value, n: int, what: str) -> tuple:
    if isinstance(value, (str, Mapping)):
        return (value,) * n
    value = tuple(value)
    if len(value) != n:
        raise DlbenchError(f"{what} has {len(value)} entries but the net has {n} hidden layers")
    return value


class MLP(ParamTable):
    """Forward and backward of the net described by an MLPSpec, for any number of replicas."""

    def __init__(self, spec: MLPSpec):
        widths = tuple(int(w) for w in spec.widths)
        if len(widths) < 2 or min(widths) < 1:
            raise DlbenchError(f"widths must be at least (d_in, d_out) of positive sizes, got {spec.widths}")
        self.spec = spec
        self.widths = widths
        self.dtype = np.dtype(spec.dtype)
        self.n_hidden = len(widths) - 2
        names = _per_layer(spec.activation, self.n_hidden, "activation")
        hypers = _per_layer(spec.activation_hyper, self.n_hidden, "activation_hyper")
        self.activations = tuple(get_activation(n, **h) for n, h in zip(names, hypers))
        self.weight_init = get_initializer(spec.init, **spec.init_hyper)
        if spec.bias_init not in BIAS_INITS:
            raise DlbenchError(f"unknown bias_init {spec.bias_init!r}; valid: {', '.join(BIAS_INITS)}")
        self.norm = get_norm(spec.norm, **spec.norm_hyper)
        self.has_norm = spec.norm != "none"
        self.dropout = check_p(spec.dropout)

        self.param_names: list[str] = []
        self._shapes: list[tuple] = []
        self.layers: list[_Layer] = []
        for l in range(len(widths) - 1):
            act = self.activations[l] if l < self.n_hidden else None
            fan_out = widths[l + 1] * (act.pieces if act else 1)
            W = self._add(f"layer{l}.W", (widths[l], fan_out))
            b = self._add(f"layer{l}.b", (1, fan_out)) if spec.bias else None
            norm, theta = {}, ()
            if act is not None and self.has_norm:
                params, _ = self.norm.init(fan_out, prefix=(), dtype=self.dtype)
                norm = {k: self._add(f"layer{l}.norm.{k}", v.shape) for k, v in params.items()}
            if act is not None and act.init_params is not None:
                theta = tuple(self._add(f"layer{l}.act.{i}", t.shape)
                              for i, t in enumerate(act.init_params((), widths[l + 1], self.dtype)))
            self.layers.append(_Layer(widths[l], fan_out, widths[l + 1], act, W, b, norm, theta))
        self._buffers: dict = {}

    def init(self, seeds: Sequence[int] | int) -> list[np.ndarray]:
        """Parameters for len(seeds) replicas, a flat list ordered as param_names, replica axis first.

        Replica s draws from np.random.default_rng(seeds[s]): W then b per layer, input to output (torch's order).
        """
        seeds = [seeds] if np.isscalar(seeds) else list(seeds)
        S = len(seeds)
        params = [np.empty((S, *shape), dtype=self.dtype) for shape in self._shapes]
        for s, seed in enumerate(seeds):
            rng = np.random.default_rng(seed)
            for layer in self.layers:
                params[layer.W][s] = self.weight_init(rng, (layer.fan_in, layer.fan_out), self.dtype)
                if layer.b is not None:
                    if self.spec.bias_init == "zeros":
                        params[layer.b][s] = 0
                    else:
                        bound = 1.0 / np.sqrt(layer.fan_in)
                        params[layer.b][s] = rng.uniform(-bound, bound, size=(1, layer.fan_out))
        for layer in self.layers[: self.n_hidden]:
            if self.has_norm:
                norm_params, _ = self.norm.init(layer.fan_out, prefix=(S,), dtype=self.dtype)
                for k, i in layer.norm.items():
                    params[i][...] = norm_params[k]
            if layer.theta:
                for i, t in zip(layer.theta, layer.act.init_params((S,), layer.width, self.dtype)):
                    params[i][...] = t
        return params

    def init_state(self, n_replicas: int) -> list[dict]:
        """Norm state (batch norm's running statistics) per hidden layer, for n_replicas replicas."""
        return [self.norm.init(layer.fan_out, prefix=(n_replicas,), dtype=self.dtype)[1] if self.has_norm else {}
                for layer in self.layers[: self.n_hidden]]

    def split(self, params: list[np.ndarray]) -> list[dict[str, np.ndarray]]:
        """Per-layer views of a flat parameter list: [{"W": .., "b": .., "norm.weight": .., "act.0": ..}, ...]."""
        out = []
        for l, layer in enumerate(self.layers):
            prefix = f"layer{l}."
            out.append({n[len(prefix):]: params[i] for i, n in enumerate(self.param_names) if n.startswith(prefix)})
        return out

    def _buffer(self, key, shape: tuple) -> np.ndarray:
        buf = self._buffers.get(key)
        if buf is None or buf.shape != shape or buf.dtype != self.dtype:
            buf = self._buffers[key] = np.empty(shape, dtype=self.dtype)
        return buf

    def forward(self, params: list[np.ndarray], x: np.ndarray, state: list[dict] | None = None, train: bool = True,
                *, reuse: bool = False, rng=None) -> tuple[np.ndarray, MLPCache]:
        """Outputs (S, N, d_out) for x (N, d_in) shared by all replicas, or (S, N, d_in) one batch per replica.

        train selects batch statistics (updating `state` in place) or running statistics for a norm that has
        them, and dropout's random masks (drawn from rng: a Generator, or one per replica) or the identity.
        reuse=True writes into buffers kept by this MLP: the returned arrays and cache are then
        overwritten by the next reuse=True call (the trainer's hot loop); the default returns fresh arrays.
        """
        x = np.asarray(x)
        if x.dtype != self.dtype:
            x = x.astype(self.dtype)
        S, N = params[0].shape[0], x.shape[-2]
        if state is None and self.has_norm:
            if not train:
                raise ValueError("forward in eval mode with a norm needs the state from init_state")
            state = self.init_state(S)
        drop = self.dropout > 0 and train
        cache = MLPCache([], [], [], [], [], None, [] if drop else None)
        h = x
        for l, layer in enumerate(self.layers):
            cache.inputs.append(h)
            out = self._buffer(("z", l), (S, N, layer.fan_out)) if reuse else None
            z = dense_forward(h, params[layer.W], None if layer.b is None else params[layer.b], out=out)
            if layer.act is None:
                return z, cache._replace(out=z)
            if self.has_norm:
                nparams = {k: params[i] for k, i in layer.norm.items()}
                a, ncache = self.norm.forward(z, nparams, state[l], train=train)
            else:
                a, ncache = z, None
            out = self._buffer(("h", l), (S, N, layer.width)) if reuse else None
            h = layer.act.forward(a, *(params[i] for i in layer.theta), out=out)
            cache.linear.append(z)
            cache.norm.append(ncache)
            cache.pre.append(a)
            cache.post.append(h)
            if drop:
                h, mask = dropout_forward(h, self.dropout, rng=rng)
                cache.masks.append(mask)
        raise AssertionError("unreachable: the last layer returns")

    def backward(self, params: list[np.ndarray], cache: MLPCache, g_out: np.ndarray, *,
                 return_layer_grads: bool = False, reuse: bool = False):
        """Gradients of the loss w.r.t. every parameter (same layout as params), given g_out = dL/dout.

        With return_layer_grads=True returns (grads, LayerGrads) holding dL/dpost and dL/dpre per hidden layer.
        reuse=True writes into buffers kept by this MLP (overwritten by the next reuse=True call).
        """
        grads: list = [None] * len(params)
        post_grads: list = [None] * self.n_hidden
        pre_grads: list = [None] * self.n_hidden
        g = g_out
        for l in range(len(self.layers) - 1, -1, -1):
            layer = self.layers[l]
            x = cache.inputs[l]
            W = params[layer.W]
            bufs = {}
            if reuse:
                bufs = dict(dW_out=self._buffer(("dW", l), W.shape),
                            db_out=None if layer.b is None else self._buffer(("db", l), params[layer.b].shape))
                if l > 0:
                    bufs["dx_out"] = self._buffer(("dx", l), (*g.shape[:-1], layer.fan_in))
            dx, dW, db = dense_backward(x, W, g, need_dx=l > 0, **bufs)
            grads[layer.W] = dW
            if layer.b is not None:
                grads[layer.b] = db
            if l == 0:
                break
            k = l - 1
            below = self.layers[k]
            if cache.masks is not None:
                dx = dropout_backward(dx, cache.masks[k], out=dx)
            theta = [params[i] for i in below.theta]
            out = self._buffer(("da", k), cache.pre[k].shape) if reuse else None
            da = below.act.backward(cache.pre[k], cache.post[k], dx, *theta, out=out)
            if below.theta:
                for i, gt in zip(below.theta, below.act.param_grads(cache.pre[k], cache.post[k], dx, *theta)):
                    grads[i] = gt
            post_grads[k], pre_grads[k] = dx, da
            if self.has_norm:
                g, ngrads = self.norm.backward(da, cache.norm[k])
                for name, i in below.norm.items():
                    grads[i] = ngrads[name]
            else:
                g = da
        if return_layer_grads:
            return grads, LayerGrads(post_grads, pre_grads)
        return grads

    def value_and_grad(self, params: list[np.ndarray], x: np.ndarray, y: np.ndarray, loss_fn, state=None,
                       train: bool = True, *, reuse: bool = False, rng=None):
        """(loss per replica (S,), grads, cache) of loss_fn(forward(params, x), y)."""
        out, cache = self.forward(params, x, state, train, reuse=reuse, rng=rng)
        loss, g_out = loss_fn(out, y)
        return loss, self.backward(params, cache, g_out, reuse=reuse), cache
