"""Residual networks of dense blocks y = x + F(x), and the plain network of the same shape, replica axis first.

The net, for an input x (N, d_in) and width w (He, Zhang, Ren & Sun 2016, "Identity mappings in deep residual
networks", arXiv:1603.05027: the full pre-activation block, here with dense layers):

    h_0     = x W_in + b_in                                   stem, d_in -> w
    F_j(h)  = L_{j,k-1}( s( n_{j,k-1}( ... L_{j,0}( s( n_{j,0}(h) ) ) ) ) )    k dense layers L(u) = u W + b,
                                                              each after a norm slot n and an activation s
    h_{j+1} = h_j + F_j(h_j)     (residual)      or   F_j(h_j)   (plain)           j = 0 .. n_blocks - 1
    out     = s( n_f(h_B) ) W_out + b_out                     head, w -> d_out (raw outputs / logits)

The plain net is exactly the MLP with widths (d_in, w, ..., w, d_out) -- 1 + n_blocks * k hidden layers, each
a linear map, its norm and its activation -- and ResNet.widths is that tuple: MLP(MLPSpec(widths, ...)) has the
same parameters, initialised identically from the same seeds, and computes the same function as the plain
ResNet. The residual net differs only by the identity paths, so plain and residual nets of one shape compare
architecture alone (He et al. 2016, "Deep residual learning", arXiv:1512.03385).

Deleting blocks (Veit, Wilber & Belongie 2016, "Residual networks behave like ensembles of relatively shallow
networks", arXiv:1605.06431): forward(..., deleted=(j, ...)) makes each listed block the identity,
h_{j+1} = h_j. For a residual block that drops its branch F_j (the paths through it vanish, the skip remains);
for a plain block, which has no skip, it is the only width-preserving removal -- the block's layers are cut
out and h_j feeds block j + 1 directly, as Veit et al. deleted layers of a VGG net. The deleted blocks'
parameters get zero gradients; norms keep the statistics they learnt with every block present.

S replicas (one per seed) live in one set of arrays, as in dlbench.nn.mlp: W (S, fan_in, fan_out),
b (S, 1, fan_out), norm params (S, 1, w), prelu's slope (S, 1, 1). Replica s is initialised from
np.random.default_rng(seeds[s]) exactly as a single-replica net with that seed would be.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np

from dlbench.errors import DlbenchError
from dlbench.nn.activations import get_activation
from dlbench.nn.init import get_initializer
from dlbench.nn.layers import dense_backward, dense_forward
from dlbench.nn.mlp import BIAS_INITS
from dlbench.nn.norm import get_norm
from dlbench.nn.params import ParamTable


@dataclass(frozen=True)
class ResNetSpec:
    """What a residual (or plain) net is: sizes, block depth, skip paths, activation, norm, init, dtype.

    n_inputs -> width (stem); n_blocks blocks of block_layers dense width -> width layers; width -> n_outputs
    (head). residual=False builds the plain net of the same shape. activation / activation_hyper: one
    elementwise dlbench.nn.activations name for every slot (maxout would change the width, so it is refused).
    norm / norm_hyper: a dlbench.nn.norm name for every norm slot. init / init_hyper / bias_init / bias: as
    MLPSpec (default torch.nn.Linear's init).
    """

    n_inputs: int
    width: int
    n_blocks: int
    n_outputs: int
    block_layers: int = 2
    residual: bool = True
    activation: str = "relu"
    activation_hyper: Mapping = field(default_factory=dict)
    norm: str = "none"
    norm_hyper: Mapping = field(default_factory=dict)
    init: str = "torch_default"
    init_hyper: Mapping = field(default_factory=dict)
    bias_init: str = "torch_default"
    bias: bool = True
    dtype: type = np.float32


class UnitCache(NamedTuple):
    """One norm -> activation -> linear unit: pre = the activation's input (after the norm), post = its output
    (the linear layer's input), norm = the norm's cache (None without a norm)."""

    pre: np.ndarray
    post: np.ndarray
    norm: object


class ResNetCache(NamedTuple):
    """What forward keeps for backward: x, per block the caches of its units (None for a deleted block), the
    block outputs h_1 .. h_B (hidden[j] = h_{j+1}, h_0 = stem), the head's unit, the deleted blocks, out."""

    x: np.ndarray
    stem: np.ndarray
    blocks: list
    hidden: list
    head: UnitCache
    deleted: frozenset
    out: np.ndarray


class _Unit(NamedTuple):
    act: object
    norm: dict          # norm param name -> index in the flat list
    theta: tuple        # indices of the activation's learnable params
    W: int
    b: int | None
    fan_in: int
    fan_out: int


class ResNet(ParamTable):
    """Forward and backward of the net described by a ResNetSpec, for any number of replicas.

    The interface is the MLP's (widths, dtype, param_names, n_params, init, init_state, forward, backward,
    value_and_grad), so dlbench.nn.train.train trains it as it trains an MLP.
    """

    def __init__(self, spec: ResNetSpec):
        for name, least in (("n_inputs", 1), ("width", 1), ("n_outputs", 1), ("block_layers", 1), ("n_blocks", 0)):
            v = getattr(spec, name)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < least:
                raise DlbenchError(f"a residual net's {name} must be an integer >= {least}, got {v!r}")
        self.spec = spec
        self.dtype = np.dtype(spec.dtype)
        self.n_blocks, self.block_layers, self.width = int(spec.n_blocks), int(spec.block_layers), int(spec.width)
        self.residual = bool(spec.residual)
        w = self.width
        self.widths = (int(spec.n_inputs),) + (w,) * (1 + self.n_blocks * self.block_layers) + (int(spec.n_outputs),)
        self.act = get_activation(spec.activation, **spec.activation_hyper)
        if self.act.pieces != 1:
            raise DlbenchError(f"a residual net needs an elementwise activation; {spec.activation} maps "
                               f"{self.act.pieces} inputs to one unit and would change the width")
        self.weight_init = get_initializer(spec.init, **spec.init_hyper)
        if spec.bias_init not in BIAS_INITS:
            raise DlbenchError(f"unknown bias_init {spec.bias_init!r}; valid: {', '.join(BIAS_INITS)}")
        self.norm = get_norm(spec.norm, **spec.norm_hyper)
        self.has_norm = spec.norm != "none"

        self.param_names: list[str] = []
        self._shapes: list[tuple] = []
        self.stem_W = self._add("stem.W", (self.widths[0], w))
        self.stem_b = self._add("stem.b", (1, w)) if spec.bias else None
        self.units: list[_Unit] = []     # block j's unit i at j * block_layers + i, then the head's
        for j in range(self.n_blocks):
            for i in range(self.block_layers):
                self.units.append(self._unit(f"block{j}.layer{i}.", w, w))
        self.units.append(self._unit("head.", w, self.widths[-1]))
        self._buffers: dict = {}
        self._norm_caches: dict = {}

    def _unit(self, prefix: str, fan_in: int, fan_out: int) -> _Unit:
        norm = {}
        if self.has_norm:
            params, _ = self.norm.init(fan_in, prefix=(), dtype=self.dtype)
            norm = {k: self._add(f"{prefix}norm.{k}", v.shape) for k, v in params.items()}
        theta = ()
        if self.act.init_params is not None:
            theta = tuple(self._add(f"{prefix}act.{i}", t.shape)
                          for i, t in enumerate(self.act.init_params((), fan_in, self.dtype)))
        W = self._add(f"{prefix}W", (fan_in, fan_out))
        b = self._add(f"{prefix}b", (1, fan_out)) if self.spec.bias else None
        return _Unit(self.act, norm, theta, W, b, fan_in, fan_out)

    def block_params(self, j: int) -> list[int]:
        """Indices (in the flat parameter list) of block j's parameters."""
        prefix = f"block{j}."
        return [i for i, n in enumerate(self.param_names) if n.startswith(prefix)]

    def init(self, seeds: Sequence[int] | int) -> list[np.ndarray]:
        """Parameters for len(seeds) replicas, a flat list ordered as param_names, replica axis first.

        Replica s draws from np.random.default_rng(seeds[s]): W then b per linear layer, stem to head -- the
        MLP's order, so the values equal those of MLP(MLPSpec(self.widths, ...)).init(seeds), layer by layer.
        """
        seeds = [seeds] if np.isscalar(seeds) else list(seeds)
        S = len(seeds)
        params = [np.empty((S, *shape), dtype=self.dtype) for shape in self._shapes]
        linears = [(self.stem_W, self.stem_b, self.widths[0], self.width)]
        linears += [(u.W, u.b, u.fan_in, u.fan_out) for u in self.units]
        for s, seed in enumerate(seeds):
            rng = np.random.default_rng(seed)
            for W, b, fan_in, fan_out in linears:
                params[W][s] = self.weight_init(rng, (fan_in, fan_out), self.dtype)
                if b is not None:
                    if self.spec.bias_init == "zeros":
                        params[b][s] = 0
                    else:
                        bound = 1.0 / np.sqrt(fan_in)
                        params[b][s] = rng.uniform(-bound, bound, size=(1, fan_out))
        for unit in self.units:
            if self.has_norm:
                norm_params, _ = self.norm.init(unit.fan_in, prefix=(S,), dtype=self.dtype)
                for k, i in unit.norm.items():
                    params[i][...] = norm_params[k]
            for i, t in zip(unit.theta, unit.act.init_params((S,), unit.fan_in, self.dtype) if unit.theta else ()):
                params[i][...] = t
        return params

    def init_state(self, n_replicas: int) -> list[dict]:
        """Norm state (batch norm's running statistics) per norm slot (block units in order, then the head's)."""
        return [self.norm.init(u.fan_in, prefix=(n_replicas,), dtype=self.dtype)[1] if self.has_norm else {}
                for u in self.units]

    def _buffer(self, key, shape: tuple) -> np.ndarray:
        buf = self._buffers.get(key)
        if buf is None or buf.shape != shape or buf.dtype != self.dtype:
            buf = self._buffers[key] = np.empty(shape, dtype=self.dtype)
        return buf

    def _deleted(self, deleted: Collection[int]) -> frozenset:
        out = frozenset(int(j) for j in deleted)
        bad = sorted(j for j in out if not 0 <= j < self.n_blocks)
        if bad:
            raise DlbenchError(f"cannot delete block {bad[0]}: the net has blocks 0 .. {self.n_blocks - 1}")
        return out

    def _unit_forward(self, k: int, unit: _Unit, params, u, state, train: bool, reuse: bool, S: int, N: int):
        """norm -> activation -> linear of unit k: (z, UnitCache)."""
        if self.has_norm:
            nparams = {name: params[i] for name, i in unit.norm.items()}
            out = self._buffer(("n", k), (S, N, unit.fan_in)) if reuse else None
            a, ncache = self.norm.forward(u, nparams, state[k], train=train, out=out,
                                          reuse=self._norm_caches.get(k) if reuse else None)
            if reuse:
                self._norm_caches[k] = ncache
        else:
            a, ncache = u, None
        out = self._buffer(("p", k), (S, N, unit.fan_in)) if reuse else None
        p = unit.act.forward(a, *(params[i] for i in unit.theta), out=out)
        out = self._buffer(("z", k), (S, N, unit.fan_out)) if reuse else None
        z = dense_forward(p, params[unit.W], None if unit.b is None else params[unit.b], out=out)
        return z, UnitCache(a, p, ncache)

    def _unit_backward(self, k: int, unit: _Unit, params, c: UnitCache, g, grads: list, reuse: bool,
                       need_dx: bool = True):
        """Gradients of unit k's parameters into grads; returns dL/du (the norm's input)."""
        W = params[unit.W]
        bufs = {}
        if reuse:
            bufs = dict(dW_out=self._buffer(("dW", k), W.shape),
                        db_out=None if unit.b is None else self._buffer(("db", k), params[unit.b].shape),
                        dx_out=self._buffer(("dp", k), c.post.shape))
        dp, grads[unit.W], db = dense_backward(c.post, W, g, **bufs)
        if unit.b is not None:
            grads[unit.b] = db
        theta = [params[i] for i in unit.theta]
        out = self._buffer(("da", k), c.pre.shape) if reuse else None
        da = unit.act.backward(c.pre, c.post, dp, *theta, out=out)
        for i, gt in zip(unit.theta, unit.act.param_grads(c.pre, c.post, dp, *theta) if unit.theta else ()):
            grads[i] = gt
        if not self.has_norm:
            return da
        out = self._buffer(("du", k), da.shape) if reuse else None
        du, ngrads = self.norm.backward(da, c.norm, out=out)
        for name, i in unit.norm.items():
            grads[i] = ngrads[name]
        return du

    def forward(self, params: list[np.ndarray], x: np.ndarray, state: list[dict] | None = None, train: bool = True,
                *, reuse: bool = False, deleted: Collection[int] = ()) -> tuple[np.ndarray, ResNetCache]:
        """Outputs (S, N, d_out) for x (N, d_in) shared by all replicas, or (S, N, d_in) one batch per replica.

        train selects batch statistics (updating `state` in place) or running statistics for a norm that has
        them. deleted: blocks made the identity (see the module docstring). reuse=True writes into buffers kept
        by this net: the returned arrays and cache are overwritten by the next reuse=True call.
        """
        x = np.asarray(x)
        if x.dtype != self.dtype:
            x = x.astype(self.dtype)
        S, N = params[0].shape[0], x.shape[-2]
        gone = self._deleted(deleted)
        if state is None and self.has_norm:
            if not train:
                raise ValueError("forward in eval mode with a norm needs the state from init_state")
            state = self.init_state(S)
        out = self._buffer(("stem",), (S, N, self.width)) if reuse else None
        h = stem = dense_forward(x, params[self.stem_W], None if self.stem_b is None else params[self.stem_b],
                                 out=out)
        blocks, hidden = [], []
        L = self.block_layers
        for j in range(self.n_blocks):
            if j in gone:
                blocks.append(None)
                hidden.append(h)
                continue
            u, caches = h, []
            for i in range(L):
                k = j * L + i
                u, c = self._unit_forward(k, self.units[k], params, u, state, train, reuse, S, N)
                caches.append(c)
            if self.residual:
                out = self._buffer(("h", j), u.shape) if reuse else None
                h = np.add(h, u, out=out)
            else:
                h = u
            blocks.append(caches)
            hidden.append(h)
        k = len(self.units) - 1
        out, head = self._unit_forward(k, self.units[k], params, h, state, train, reuse, S, N)
        return out, ResNetCache(x, stem, blocks, hidden, head, gone, out)

    def backward(self, params: list[np.ndarray], cache: ResNetCache, g_out: np.ndarray, *, reuse: bool = False):
        """Gradients of the loss w.r.t. every parameter (same layout as params), given g_out = dL/dout.

        Through a residual block dL/dh_j = dL/dh_{j+1} + (dF_j/dh_j)^T dL/dh_{j+1}; through a plain block only
        the second term; through a deleted block dL/dh_j = dL/dh_{j+1}, and its parameters' gradients are 0.
        reuse=True writes into buffers kept by this net (overwritten by the next reuse=True call).
        """
        grads: list = [None] * len(params)
        k = len(self.units) - 1
        g = self._unit_backward(k, self.units[k], params, cache.head, g_out, grads, reuse)
        L = self.block_layers
        for j in range(self.n_blocks - 1, -1, -1):
            caches = cache.blocks[j]
            if caches is None:
                for i in self.block_params(j):
                    grads[i] = np.zeros_like(params[i])
                continue
            gu = g
            for i in range(L - 1, -1, -1):
                k = j * L + i
                gu = self._unit_backward(k, self.units[k], params, caches[i], gu, grads, reuse)
            if self.residual:
                out = self._buffer(("gh", j), g.shape) if reuse else None
                g = np.add(g, gu, out=out)
            else:
                g = gu
        bufs = {}
        if reuse:
            bufs = dict(dW_out=self._buffer(("dW", "stem"), params[self.stem_W].shape),
                        db_out=None if self.stem_b is None else self._buffer(("db", "stem"),
                                                                             params[self.stem_b].shape))
        _, grads[self.stem_W], db = dense_backward(cache.x, params[self.stem_W], g, need_dx=False, **bufs)
        if self.stem_b is not None:
            grads[self.stem_b] = db
        return grads

    def value_and_grad(self, params: list[np.ndarray], x: np.ndarray, y: np.ndarray, loss_fn, state=None,
                       train: bool = True, *, reuse: bool = False, deleted: Collection[int] = ()):
        """(loss per replica (S,), grads, cache) of loss_fn(forward(params, x), y)."""
        out, cache = self.forward(params, x, state, train, reuse=reuse, deleted=deleted)
        loss, g_out = loss_fn(out, y)
        return loss, self.backward(params, cache, g_out, reuse=reuse), cache
