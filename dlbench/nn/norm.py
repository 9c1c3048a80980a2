"""Normalization layers: none, batch, layer, instance, group — each forward beside its closed-form backward.

Every layer standardises x over a set R of M elements (its statistics group), then applies a learnable
affine map, with the semantics of torch.nn with ``affine=True`` (weight = gamma, init 1; bias = beta, init 0):

    mu = mean_R(x),  var = mean_R((x - mu)^2)   (biased),   x_hat = (x - mu) / sqrt(var + eps)
    y  = weight * x_hat + bias

Backward, with g = dL/dy and g_hat = weight * g (no per-sample Jacobians):

    dx      = 1/M / sqrt(var + eps) * (M g_hat - sum_R g_hat - x_hat * sum_R(g_hat x_hat))
    dweight = sum(g x_hat),   dbias = sum(g)      over every axis the parameter is shared along.

Input is always (..., N, F): optional leading replica axes, batch N, features F. The hyperparameter
``channels=C`` views F as (C, L = F // C), like the (N, C, L) tensor of torch's BatchNorm1d, InstanceNorm1d
and GroupNorm (feature f = c * L + l):

  none      y is x itself (no copy), dx is g; no parameters, no state.
  batch     per channel c, over (n, l): M = N L. weight, bias, running statistics: prefix + (1, C).
            channels=None: C = F, L = 1 — per feature over the batch (BatchNorm1d on (N, F)).
  layer     per sample n, over all F features: M = F. weight, bias: prefix + (1, F), elementwise
            (LayerNorm(F), or LayerNorm((C, L)): the same thing, so channels changes nothing).
  instance  per (n, c), over l: M = L. weight, bias: prefix + (1, C). Needs channels with L = F // C > 1:
            on plain (N, F) features each group would hold one element and x_hat would be identically 0
            (torch raises "Expected more than 1 spatial element"), so channels=None (or L = 1) is an error.
  group     per (n, group of C / G consecutive channels), over (c, l): M = (C / G) L, G = num_groups
            (default 32, Wu & He's choice; it must divide C).
            weight, bias: prefix + (1, C), per channel (GroupNorm(G, C)). channels=None: C = F, L = 1 —
            the F features split into G groups of F / G.

Batch norm's running statistics (torch.nn.BatchNorm1d, track_running_stats=True): with ``train=True`` the
batch statistics normalise and, in place,

    running_mean <- (1 - m) running_mean + m mu
    running_var  <- (1 - m) running_var  + m var * M / (M - 1)     (the UNBIASED batch variance)
    num_batches_tracked += 1,   m = momentum, or 1 / num_batches_tracked when momentum is None
                                (a cumulative average);

with ``train=False`` x_hat = (x - running_mean) / sqrt(running_var + eps) and the state is left alone.
Layer, instance and group norm have no state and treat train and eval alike (torch's InstanceNorm
default, track_running_stats=False).

Numerics. Batch norm reduces over the batch axis, where NumPy and BLAS add naively; for float32 that loses
~sqrt(N) eps |mu| / sigma. Its statistics therefore use shifted data (c = x - rough mean, then
mu = rough + mean(c), var = mean(c^2) - mean(c)^2, exact in real arithmetic), with the sums of squares and
the backward's sums accumulated in float64 over blocks of BLOCK_ROWS rows. Layer, instance and group norm
reduce along contiguous axes (BLAS, several accumulators) in the input dtype, and take the mean of the
centred values as a correction too. Batch and instance norm store the centred input and fold
weight * inv_std into per-channel constants (y = c * scale + shift; x_hat is never materialised); layer and
group norm, whose weight varies inside a statistics group, store x_hat. The parameters' gradients are sums
over the batch and over any replica axis along which the parameters are shared.

Speed. An array larger than 2 BLOCK_ELEMS elements is processed in blocks of rows, so that the several
passes over a block hit the cache rather than memory. Per-feature constants are broadcast against rows
widened to ~WIDE_ELEMS elements (NumPy pays per broadcast row). ``out=`` and ``reuse=`` spare allocations.
Layer and group norm run with NumPy's ufunc buffer at UFUNC_BUFSIZE elements, restored on return: a per-row
constant broadcast against rows shorter than the default 8192 is otherwise copied through the buffer (2-3x slower).

References: Ioffe & Szegedy 2015 (batch, arXiv:1502.03167); Ba, Kiros & Hinton 2016 (layer,
arXiv:1607.06450); Ulyanov, Vedaldi & Lempitsky 2016 (instance, arXiv:1607.08022); Wu & He 2018 (group,
arXiv:1803.08494).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

import numpy as np

from dlbench.errors import DlbenchError
from dlbench.registry import Registry

#: Rows per float32 partial sum before the float64 accumulation of batch norm's reductions.
BLOCK_ROWS = 32
#: Elements per row block of the passes over arrays larger than twice this (the block stays in cache).
BLOCK_ELEMS = 2**17
#: Target row length of the widened views that per-channel constants are broadcast against.
WIDE_ELEMS = 2**14
#: NumPy's ufunc buffer size (elements) inside the kernels; see _small_buffers.
UFUNC_BUFSIZE = 16


@dataclass(frozen=True)
class Norm:
    """A normalization layer: ``init``, ``forward`` and ``backward`` bound to the hyperparameters ``hyper``.

    init(num_features, prefix=(), dtype=np.float32) -> (params, state)
    forward(x, params, state, train=True, *, out=None, reuse=None) -> (y, cache)
        ``out``: a buffer for y (y's shape and x's dtype). ``reuse``: the cache of an earlier call whose
        backward has run; its buffers are overwritten instead of allocated.
    backward(g, cache, *, out=None) -> (dx, grads)   grads has the keys of params, each shaped like its param.
    """

    name: str
    init: Callable
    forward: Callable
    backward: Callable
    hyper: Mapping


@dataclass(eq=False)
class NormCache:
    """What backward needs from forward (arrays in the layer's internal views).

    folded (batch, instance): ``data`` is the centred input c = x - rough mean and x_hat = (c - shift) * inv_std;
    otherwise (layer, group) ``data`` is x_hat itself.
    """

    kind: str
    data: np.ndarray
    inv_std: np.ndarray            # 1 / sqrt(var + eps), statistics shape, float64
    shift: np.ndarray | float      # mean(c) for folded layers, float64; 0 where c is exactly centred
    weight: np.ndarray             # weight in the affine view
    param_shape: tuple
    out_shape: tuple               # y's shape, (..., N, F)
    batch_stats: bool              # False when batch norm normalised with running statistics (eval)
    geometry: tuple                # (C, L) or (G, Cg, L) of the views
    scratch: np.ndarray | None = None


NORMS: Registry[Norm] = Registry("norm")


# ---------------------------------------------------------------------------------------------- reductions

@functools.lru_cache(maxsize=64)
def _ones(n: int, dtype: str) -> np.ndarray:
    a = np.ones(n, dtype=dtype)
    a.flags.writeable = False
    return a


def _row_sum(a: np.ndarray) -> np.ndarray:
    """Sum over the last axis, keepdims: one BLAS matrix-vector product when a is contiguous."""
    k = a.shape[-1]
    if not a.flags.c_contiguous:
        return a.sum(axis=-1, keepdims=True)
    return (a.reshape(-1, k) @ _ones(k, a.dtype.str)).reshape(a.shape[:-1] + (1,))


def _row_dot(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """sum over the last axis of a * b, keepdims, without a temporary."""
    return np.einsum("...k,...k->...", a, b)[..., None]


def _col_sum_fast(a: np.ndarray) -> np.ndarray:
    """Sum over (n, l) of a (..., N, C, L) array in its own dtype, keepdims (..., 1, C, 1)."""
    if a.shape[-1] == 1:
        s = np.matmul(_ones(a.shape[-3], a.dtype.str), a[..., 0])
        return s[..., None, :, None]
    return a.sum(axis=(-3, -1), keepdims=True)


def _col_sum64(a: np.ndarray, b: np.ndarray | None = None) -> np.ndarray:
    """sum over (n, l) of a (or of a * b) for (..., N, C, L) arrays, float64, keepdims (..., 1, C, 1).

    Partial sums over BLOCK_ROWS rows in the input dtype, then float64 across blocks: the error of a
    naive float32 sum over N grows like sqrt(N) eps, of this one like sqrt(BLOCK_ROWS) eps.
    """
    n = a.shape[-3]
    k = n // BLOCK_ROWS
    head = k * BLOCK_ROWS
    total = 0.0
    if k:
        blocked = [z[..., :head, :, :] for z in (a, b) if z is not None]
        blocked = [z.reshape(z.shape[:-3] + (k, BLOCK_ROWS) + z.shape[-2:]) for z in blocked]
        total = _partial_sums(*blocked).sum(axis=-2, dtype=np.float64)
    if head < n:
        total = total + _partial_sums(*[z[..., head:, :, :] for z in (a, b) if z is not None]).astype(np.float64)
    return total[..., None, :, None]


def _partial_sums(a: np.ndarray, b: np.ndarray | None = None) -> np.ndarray:
    """sum over axes -3 and -1 of a (..., R, C, L) array, or of a * b without a temporary."""
    if b is not None:
        return np.einsum("...rcl,...rcl->...c", a, b)
    if a.shape[-1] == 1:
        return np.matmul(_ones(a.shape[-3], a.dtype.str), a[..., 0])
    return a.sum(axis=(-3, -1))


def _reduce_to(a: np.ndarray, shape: tuple, dtype) -> np.ndarray:
    """Sum a over the leading axes and size-1 axes of ``shape`` it was broadcast along; cast to dtype."""
    if a.shape == shape:
        return a.astype(dtype, copy=False)
    extra = a.ndim - len(shape)
    if extra > 0:
        a = a.sum(axis=tuple(range(extra)))
    axes = tuple(i for i, (sa, s) in enumerate(zip(a.shape, shape[len(shape) - a.ndim:])) if s == 1 and sa != 1)
    if axes:
        a = a.sum(axis=axes, keepdims=True)
    return np.ascontiguousarray(np.broadcast_to(a, shape), dtype=dtype)


# ---------------------------------------------------------------------------------------------- helpers

def _small_buffers(fn: Callable) -> Callable:
    """Run fn with a small ufunc buffer: with the default 8192, a per-row constant broadcast against rows
    shorter than that makes NumPy copy through its buffers, 2-3x slower than the unbuffered loop."""

    @functools.wraps(fn)
    def wrapped(*args, **kwargs):
        with np.errstate():
            np.setbufsize(UFUNC_BUFSIZE)
            return fn(*args, **kwargs)

    return wrapped


def _buffer(reuse: NormCache | None, attr: str, shape: tuple, dtype) -> np.ndarray:
    old = getattr(reuse, attr, None) if reuse is not None else None
    if old is not None and old.shape == shape and old.dtype == dtype:
        return old
    return np.empty(shape, dtype=dtype)


def _check_out(out: np.ndarray | None, shape: tuple, dtype) -> np.ndarray:
    if out is None:
        return np.empty(shape, dtype=dtype)
    if out.shape != shape or out.dtype != dtype or not out.flags.c_contiguous:
        raise ValueError(f"out must be a C-contiguous {np.dtype(dtype)} array of shape {shape}")
    return out


def _as_input(x) -> np.ndarray:
    x = np.asarray(x)
    if x.dtype.kind != "f":
        x = x.astype(np.float64)
    if x.ndim < 2:
        raise DlbenchError(f"norm input must be (..., N, F), got shape {x.shape}")
    return x


def _channels(h: Mapping, f: int, name: str) -> tuple[int, int]:
    """(C, L) of F features under the channels hyperparameter."""
    c = h.get("channels")
    if c is None:
        return f, 1
    if f % c:
        raise DlbenchError(f"{name} norm: channels={c} does not divide the {f} features")
    return c, f // c


def _geometry(kind: str, h: Mapping, f: int) -> tuple:
    c, l = _channels(h, f, kind)
    if kind == "instance" and l == 1:
        raise DlbenchError(
            "instance norm needs channels=C with F // C > 1 (one element per instance would normalise to 0)")
    if kind == "group":
        g = h["num_groups"]
        if c % g:
            raise DlbenchError(f"group norm: num_groups={g} does not divide the {c} channels")
        return g, c // g, l
    return c, l


def _param_width(kind: str, geometry: tuple) -> int:
    if kind == "layer":
        return int(np.prod(geometry))
    if kind == "group":
        return geometry[0] * geometry[1]
    return geometry[0]


def _prefix(x: np.ndarray, pshape: tuple) -> tuple:
    """Leading (replica) axes of y: x's and the parameters', broadcast."""
    lead, plead = x.shape[:-2], pshape[:-2]
    return lead if lead == plead else np.broadcast_shapes(lead, plead)


def _params(kind: str, params: Mapping, width: int):
    try:
        w, b = params["weight"], params["bias"]
    except KeyError as e:
        raise DlbenchError(f"{kind} norm: params need 'weight' and 'bias', missing {e}") from None
    if w.shape[-1] != width or b.shape != w.shape:
        raise DlbenchError(f"{kind} norm: weight/bias of shape {w.shape}/{b.shape} do not fit {width} features")
    return w, b


# ---------------------------------------------------------------------------------------------- init

def _init(kind: str, h: Mapping, num_features: int, prefix=(), dtype=np.float32):
    """params {"weight": ones, "bias": zeros} of shape prefix + (1, width); batch norm's state."""
    prefix = tuple(prefix)
    if kind == "none":
        return {}, {}
    width = _param_width(kind, _geometry(kind, h, num_features))
    shape = prefix + (1, width)
    params = {"weight": np.ones(shape, dtype=dtype), "bias": np.zeros(shape, dtype=dtype)}
    state = {}
    if kind == "batch":
        state = {"running_mean": np.zeros(shape, dtype=dtype), "running_var": np.ones(shape, dtype=dtype),
                 "num_batches_tracked": np.zeros(prefix, dtype=np.int64)}
    return params, state


# ---------------------------------------------------------------------------------------------- forward

def _forward_none(x, params, state, train=True, *, out=None, reuse=None):
    """y = x (the same array unless ``out`` is given)."""
    x = _as_input(x)
    if out is not None:
        np.copyto(_check_out(out, x.shape, x.dtype), x)
        return out, None
    return x, None


def _backward_none(g, cache, *, out=None):
    """dx = g."""
    if out is not None:
        np.copyto(out, g)
        return out, {}
    return g, {}


def _fits(shape: tuple, target: tuple) -> bool:
    """True when an array of ``shape`` broadcasts into ``target`` unchanged."""
    try:
        return np.broadcast_shapes(target, shape) == target
    except ValueError:
        return False


def _update_running(h: Mapping, state: Mapping, mean: np.ndarray, var: np.ndarray, m: int) -> None:
    """torch.nn.BatchNorm1d's update, in place; mean, var (biased) per channel, float64."""
    rm, rv, nbt = state["running_mean"], state["running_var"], state["num_batches_tracked"]
    if mean.shape != rm.shape and not _fits(mean.shape, rm.shape):
        raise DlbenchError(f"batch norm: statistics of shape {mean.shape} do not fit running_mean {rm.shape}")
    nbt += 1
    momentum = h["momentum"]
    f = 1.0 / nbt.astype(np.float64)[..., None, None] if momentum is None else momentum
    rm[...] = (1.0 - f) * rm + f * mean
    rv[...] = (1.0 - f) * rv + f * (var * (m / (m - 1)))


def _blocks(n: int, row_elems: int) -> list[slice]:
    """Row blocks of about BLOCK_ELEMS elements, so that the passes over one block stay in cache."""
    if n * row_elems <= 2 * BLOCK_ELEMS:
        return [slice(0, n)]
    rows = max(BLOCK_ROWS, BLOCK_ELEMS // row_elems // BLOCK_ROWS * BLOCK_ROWS)
    return [slice(i, min(i + rows, n)) for i in range(0, n, rows)]


class _ChannelBlocks:
    """Views of (..., N, C, L) arrays on a row block, with per-channel constants broadcast against them.

    With L = 1 each block (rows, C) is viewed as (rows / t, t C) and the constants tiled t times: NumPy
    pays ~0.1 us per broadcast row, so wide rows run broadcasting ufuncs up to 2x faster.
    """

    def __init__(self, l_: int, consts):
        self.l_ = l_
        self.consts = consts
        self.tiled = {}

    def __call__(self, blk: slice, *arrays):
        if self.l_ > 1:
            k = _rows(blk, 2)
            return [a[k] for a in arrays], self.consts
        rows, width = blk.stop - blk.start, arrays[0].shape[-2]
        t = 1
        while rows % (2 * t) == 0 and 2 * t * width <= WIDE_ELEMS and rows * width >= WIDE_ELEMS:
            t *= 2
        if t not in self.tiled:
            self.tiled[t] = [c[..., 0] if t == 1 else _repeat_row(c[..., 0], t) for c in self.consts]
        views = [a[..., blk, :, 0] for a in arrays]
        return [v.reshape(v.shape[:-2] + (rows // t, t * width)) for v in views], self.tiled[t]


def _repeat_row(c: np.ndarray, t: int) -> np.ndarray:
    """(..., 1, C) -> (..., 1, t C): c repeated t times along the last axis (np.tile, without its overhead)."""
    out = np.empty(c.shape[:-1] + (t, c.shape[-1]), dtype=c.dtype)
    out[...] = c[..., None, :]
    return out.reshape(c.shape[:-1] + (t * c.shape[-1],))


def _rows(blk: slice, trailing: int) -> tuple:
    """Index of the row block ``blk`` on an axis followed by ``trailing`` axes."""
    return (Ellipsis, blk) + (slice(None),) * trailing


def _forward_folded(kind, h, x, params, state, train=True, *, out=None, reuse=None):
    """batch / instance: y = c * scale + (bias - shift * scale), c = x - rough mean, scale = weight * inv_std."""
    x = _as_input(x)
    n, f = x.shape[-2:]
    c_, l_ = geometry = _geometry(kind, h, f)
    w, b = _params(kind, params, c_)
    lead = _prefix(x, w.shape)
    dt = x.dtype
    xv = x.reshape(x.shape[:-2] + (n, c_, l_))
    wv, bv = w[..., None], b[..., None]                      # prefix + (1, C, 1)
    y = _check_out(out, lead + (n, f), dt)
    yv = y.reshape(lead + (n, c_, l_))
    row_blocks = _blocks(n, f * int(np.prod(lead)))
    blocks = [_rows(blk, 2) for blk in row_blocks]
    eps = h["eps"]
    batch_stats = kind == "instance" or train
    if not batch_stats:                                      # batch norm, eval: running statistics
        rm = state["running_mean"][..., None]
        c = _buffer(reuse, "data", np.broadcast_shapes(xv.shape, rm.shape), dt)
        shift = 0.0
        inv_std = 1.0 / np.sqrt(state["running_var"][..., None].astype(np.float64) + eps)
        views = _ChannelBlocks(l_, [rm.astype(dt), (wv * inv_std).astype(dt), bv.astype(dt)])
        for blk in row_blocks:
            (xb, cb, yb), (rmd, sc, sh) = views(blk, xv, c, yv)
            np.subtract(xb, rmd, out=cb)
            np.multiply(cb, sc, out=yb)
            np.add(yb, sh, out=yb)
    elif kind == "batch":
        m = n * l_
        if m < 2:
            raise DlbenchError(f"batch norm in training needs more than 1 value per channel, got {m}")
        c = _buffer(reuse, "data", xv.shape, dt)
        first = xv[blocks[0]]
        rough = _col_sum_fast(first) / dt.type(first.shape[-3] * l_)  # any shift near the mean will do
        views = _ChannelBlocks(l_, [rough])
        s1 = s2 = 0.0
        for blk, k in zip(row_blocks, blocks):
            (xb, cb), (r,) = views(blk, xv, c)
            np.subtract(xb, r, out=cb)
            s1 = s1 + _col_sum_fast(c[k]).astype(np.float64)
            s2 = s2 + _col_sum64(c[k], c[k])
        shift = s1 / m
        var = np.maximum(s2 / m - shift * shift, 0.0)
        inv_std = 1.0 / np.sqrt(var + eps)
        if train:
            _update_running(h, state, (rough.astype(np.float64) + shift)[..., 0], var[..., 0], m)
        scale = wv * inv_std
        views = _ChannelBlocks(l_, [scale.astype(dt), (bv - shift * scale).astype(dt)])
        for blk in row_blocks:
            (cb, yb), (sc, sh) = views(blk, c, yv)
            np.multiply(cb, sc, out=yb)
            np.add(yb, sh, out=yb)
    else:                                                    # instance: rows are independent
        m = l_
        c = _buffer(reuse, "data", xv.shape, dt)
        shift = np.empty(xv.shape[:-1] + (1,))
        inv_std = np.empty_like(shift)
        for k in blocks:
            xb = xv[k]
            cb = np.subtract(xb, _row_sum(xb) / dt.type(m), out=c[k])
            sh = _row_sum(cb).astype(np.float64) / m
            var = np.maximum(_row_dot(cb, cb).astype(np.float64) / m - sh * sh, 0.0)
            isd = inv_std[k] = 1.0 / np.sqrt(var + eps)
            shift[k] = sh
            scale = wv * isd
            yb = np.multiply(cb, scale.astype(dt), out=yv[k])
            np.add(yb, (bv - sh * scale).astype(dt), out=yb)
    cache = NormCache(kind, c, inv_std, shift, wv, w.shape, y.shape, batch_stats, geometry,
                      scratch=getattr(reuse, "scratch", None))
    return y, cache


def _backward_folded(g, cache: NormCache, *, out=None):
    """dx = weight inv_std (g - mean_R g - x_hat mean_R(g x_hat)), x_hat = (c - shift) inv_std, not materialised."""
    c, inv_std, shift = cache.data, cache.inv_std, cache.shift
    dt = c.dtype
    n = cache.out_shape[-2]
    c_, l_ = cache.geometry
    lead = cache.out_shape[:-2]
    gv = np.asarray(g).reshape(lead + (n, c_, l_))
    dx = _check_out(out, cache.out_shape, dt)
    dxv = dx.reshape(gv.shape)
    row_blocks = _blocks(n, cache.out_shape[-1] * int(np.prod(lead)))
    blocks = [_rows(blk, 2) for blk in row_blocks]
    wv = cache.weight
    if cache.kind == "batch":
        s1 = p = 0.0
        for k in blocks:
            s1 = s1 + _col_sum64(gv[k])
            p = p + _col_sum64(gv[k], c[k])
        s2 = inv_std * (p - shift * s1)                          # sum_R g x_hat
        scale = wv * inv_std
        if cache.batch_stats:
            a = inv_std * s2 / (n * l_)
            views = _ChannelBlocks(l_, [z.astype(dt) for z in (a, s1 / (n * l_) - shift * a, scale)])
            for blk in row_blocks:
                (gb, cb, db), consts = views(blk, gv, c, dxv)
                _dx_folded(gb, cb, db, *consts)
        else:
            views = _ChannelBlocks(l_, [scale.astype(dt)])
            for blk in row_blocks:
                (gb, db), (sc,) = views(blk, gv, dxv)
                np.multiply(gb, sc, out=db)
    else:
        s1 = s2 = 0.0
        for k in blocks:
            gb, cb, isd, sh = gv[k], c[k], inv_std[k], shift[k]
            t1 = _row_sum(gb).astype(np.float64)
            t2 = isd * (_row_dot(gb, cb).astype(np.float64) - sh * t1)
            a = isd * t2 / l_
            _dx_folded(gb, cb, dxv[k], *(z.astype(dt) for z in (a, t1 / l_ - sh * a, wv * isd)))
            s1 = s1 + t1.sum(axis=-3, keepdims=True)
            s2 = s2 + t2.sum(axis=-3, keepdims=True)
    pdt = wv.dtype
    grads = {"weight": _reduce_to(s2[..., 0], cache.param_shape, pdt),
             "bias": _reduce_to(s1[..., 0], cache.param_shape, pdt)}
    return dx, grads


def _dx_folded(g, c, dx, a, offset, scale) -> None:
    """dx = scale * (g - offset - a * c), in four passes and no temporary (constants in dx's dtype)."""
    np.multiply(c, a, out=dx)
    np.subtract(g, dx, out=dx)
    np.subtract(dx, offset, out=dx)
    np.multiply(dx, scale, out=dx)


def _views(kind: str, geometry: tuple, n: int, f: int) -> tuple[tuple, tuple]:
    """(statistics view, affine view) tails of a (..., N, F) array for layer and group norm."""
    if kind == "layer":
        return (n, f), (n, f)
    g_, cg, l_ = geometry
    return (n, g_, cg * l_), (n, g_, cg, l_)


def _per_feature(kind: str, geometry: tuple) -> bool:
    """True when the weight varies along F only (layer norm, group norm with L = 1): widened broadcasts."""
    return kind == "layer" or geometry[-1] == 1


@_small_buffers
def _forward_unfolded(kind, h, x, params, state, train=True, *, out=None, reuse=None):
    """layer / group: x_hat stored, y = x_hat * weight + bias (weight varies inside a statistics group)."""
    x = _as_input(x)
    n, f = x.shape[-2:]
    geometry = _geometry(kind, h, f)
    w, b = _params(kind, params, _param_width(kind, geometry))
    lead = _prefix(x, w.shape)
    dt = x.dtype
    stats_tail, affine_tail = _views(kind, geometry, n, f)
    wv = w if kind == "layer" else w.reshape(w.shape[:-1] + affine_tail[1:-1] + (1,))
    bv = b.reshape(wv.shape)
    xs = x.reshape(x.shape[:-2] + stats_tail)
    k_ = stats_tail[-1]
    xh = _buffer(reuse, "data", xs.shape, dt)
    inv_std = np.empty(xs.shape[:-1] + (1,))
    y = _check_out(out, lead + (n, f), dt)
    yv = y.reshape(lead + affine_tail)
    per_feature = _per_feature(kind, geometry)
    if per_feature:
        affine = _ChannelBlocks(1, [w[..., None].astype(dt), b[..., None].astype(dt)])
        xh_f, y_f = xh.reshape(x.shape[:-2] + (n, f, 1)), y.reshape(lead + (n, f, 1))
    tiny = np.finfo(dt).eps
    for blk in _blocks(n, f * int(np.prod(lead))):
        ks, ka = _rows(blk, len(stats_tail) - 1), _rows(blk, len(affine_tail) - 1)
        xb = xs[ks]
        hb = np.subtract(xb, _row_sum(xb) / dt.type(k_), out=xh[ks])
        sq = _row_dot(hb, hb).astype(np.float64) / k_
        resid = _row_sum(hb).astype(np.float64) / k_             # what the first mean missed
        isd = inv_std[ks] = 1.0 / np.sqrt(np.maximum(sq - resid * resid, 0.0) + h["eps"])
        np.multiply(hb, isd.astype(dt), out=hb)
        fix = resid * isd
        fix[np.abs(fix) <= tiny] = 0.0                               # row by row, so samples stay independent
        if fix.any():
            np.subtract(hb, fix.astype(dt), out=hb)
        if per_feature:
            (hw, yb), (ww, bw) = affine(blk, xh_f, y_f)
            np.multiply(hw, ww, out=yb)
            np.add(yb, bw, out=yb)
        else:
            yb = np.multiply(hb.reshape(hb.shape[:hb.ndim - len(stats_tail) + 1] + affine_tail[1:]), wv, out=yv[ka])
            np.add(yb, bv, out=yb)
    cache = NormCache(kind, xh, inv_std, 0.0, wv, w.shape, y.shape, True, geometry,
                      scratch=getattr(reuse, "scratch", None))
    return y, cache


@_small_buffers
def _backward_unfolded(g, cache: NormCache, *, out=None):
    """dx = inv_std (g_hat - mean_R g_hat - x_hat mean_R(g_hat x_hat)), g_hat = weight * g."""
    xh, inv_std = cache.data, cache.inv_std
    dt = xh.dtype
    n, f = cache.out_shape[-2:]
    lead = cache.out_shape[:-2]
    stats_tail, affine_tail = _views(cache.kind, cache.geometry, n, f)
    k_ = stats_tail[-1]
    if cache.kind == "layer":
        dw_sub, db_axes = "...nf,...nf->...f", (-2,)
    else:
        dw_sub, db_axes = "...ngcl,...ngcl->...gc", (-4, -1)
    ga = np.asarray(g).reshape(lead + affine_tail)
    xha = xh.reshape(xh.shape[:-len(stats_tail)] + affine_tail)
    dx = _check_out(out, cache.out_shape, dt)
    dxa, dxs = dx.reshape(ga.shape), dx.reshape(lead + stats_tail)
    blocks = _blocks(n, f * int(np.prod(lead)))
    rows = blocks[0].stop - blocks[0].start
    tmp = cache.scratch
    want = lead + (rows,) + stats_tail[1:]
    if tmp is None or tmp.shape != want or tmp.dtype != dt:
        tmp = cache.scratch = np.empty(want, dtype=dt)
    per_feature = _per_feature(cache.kind, cache.geometry)
    if per_feature:
        g_hat = _ChannelBlocks(1, [cache.weight.reshape(cache.param_shape)[..., None].astype(dt)])
        g_f, dx_f = ga.reshape(lead + (n, f, 1)), dx.reshape(lead + (n, f, 1))
    dw = db = 0.0
    for blk in blocks:
        ks, ka = _rows(blk, len(stats_tail) - 1), _rows(blk, len(affine_tail) - 1)
        gb, hb, ds = ga[ka], xh[ks], dxs[ks]
        if per_feature:
            (gw, dxw), (ww,) = g_hat(blk, g_f, dx_f)
            np.multiply(gw, ww, out=dxw)
        else:
            np.multiply(gb, cache.weight, out=dxa[ka])
        s1 = _row_sum(ds) / dt.type(k_)
        s2 = _row_dot(ds, hb) / dt.type(k_)
        tb = tmp[_rows(slice(0, blk.stop - blk.start), len(stats_tail) - 1)]
        np.multiply(hb, s2, out=tb)
        np.subtract(ds, tb, out=ds)
        np.subtract(ds, s1, out=ds)
        np.multiply(ds, inv_std[ks].astype(dt), out=ds)
        dw = dw + np.einsum(dw_sub, gb, xha[ka]).astype(np.float64)
        db = db + (np.matmul(_ones(gb.shape[-2], dt.str), gb) if cache.kind == "layer"
                   else gb.sum(axis=db_axes)).astype(np.float64)
    ps, pdt = cache.param_shape, cache.weight.dtype
    per_param = 1 if cache.kind == "layer" else 2                     # trailing axes (F,) or (G, Cg)
    dw, db = (z.reshape(z.shape[:z.ndim - per_param] + (1, ps[-1])) for z in (dw, db))
    return dx, {"weight": _reduce_to(dw, ps, pdt), "bias": _reduce_to(db, ps, pdt)}


@_small_buffers
def _forward_layer(h, x, params, state, train=True, *, out=None, reuse=None):
    """layer: per-row statistics by BLAS (x @ 1, then the centred rows' dot products), x_hat stored."""
    x = _as_input(x)
    n, f = x.shape[-2:]
    w, b = _params("layer", params, f)
    lead = _prefix(x, w.shape)
    dt = x.dtype
    xh = _buffer(reuse, "data", x.shape, dt)
    inv_std = np.empty(x.shape[:-1] + (1,))
    y = _check_out(out, lead + (n, f), dt)
    ones = _ones(f, dt.str)
    affine = _ChannelBlocks(1, [w[..., None].astype(dt), b[..., None].astype(dt)])
    xh_f, y_f = xh.reshape(x.shape + (1,)), y.reshape(y.shape + (1,))
    tiny = np.finfo(dt).eps
    for blk in _blocks(n, f * int(np.prod(lead))):
        k = (Ellipsis, blk, slice(None))
        hb = np.subtract(x[k], (np.matmul(x[k], ones) / dt.type(f))[..., None], out=xh[k])
        sq = np.vecdot(hb, hb).astype(np.float64) / f
        resid = np.matmul(hb, ones).astype(np.float64) / f          # what the first mean missed
        isd = 1.0 / np.sqrt(np.maximum(sq - resid * resid, 0.0) + h["eps"])
        inv_std[k] = isd[..., None]
        np.multiply(hb, isd.astype(dt)[..., None], out=hb)
        fix = resid * isd
        fix[np.abs(fix) <= tiny] = 0.0                               # row by row, so samples stay independent
        if fix.any():
            np.subtract(hb, fix.astype(dt)[..., None], out=hb)
        (hw, yb), (ww, bw) = affine(blk, xh_f, y_f)
        np.multiply(hw, ww, out=yb)
        np.add(yb, bw, out=yb)
    cache = NormCache("layer", xh, inv_std, 0.0, w, w.shape, y.shape, True, (f, 1),
                      scratch=getattr(reuse, "scratch", None))
    return y, cache


@_small_buffers
def _backward_layer(g, cache: NormCache, *, out=None):
    """dx = inv_std (g_hat - mean g_hat - x_hat mean(g_hat x_hat)): g_hat = g * weight on widened rows, row sums by
    BLAS; dweight = sum_n g x_hat (einsum), dbias = 1 @ g."""
    xh, inv_std = cache.data, cache.inv_std
    dt = xh.dtype
    n, f = cache.out_shape[-2:]
    lead = cache.out_shape[:-2]
    ga = np.asarray(g).reshape(cache.out_shape)
    dx = _check_out(out, cache.out_shape, dt)
    blocks = _blocks(n, f * int(np.prod(lead)))
    want = lead + (blocks[0].stop - blocks[0].start, f)
    tmp = cache.scratch
    if tmp is None or tmp.shape != want or tmp.dtype != dt:
        tmp = cache.scratch = np.empty(want, dtype=dt)
    ones, inv_f = _ones(f, dt.str), dt.type(1.0 / f)
    g_hat = _ChannelBlocks(1, [cache.weight[..., None].astype(dt)])
    g_f, dx_f = ga.reshape(ga.shape + (1,)), dx.reshape(dx.shape + (1,))
    dw = db = 0.0
    for blk in blocks:
        k = (Ellipsis, blk, slice(None))
        gb, hb, ds = ga[k], xh[k], dx[k]
        (gw, dxw), (ww,) = g_hat(blk, g_f, dx_f)
        np.multiply(gw, ww, out=dxw)
        s1 = (np.matmul(ds, ones) * inv_f)[..., None]
        s2 = (np.vecdot(ds, hb) * inv_f)[..., None]
        tb = np.multiply(hb, s2, out=tmp[..., :blk.stop - blk.start, :])
        np.subtract(ds, tb, out=ds)
        np.subtract(ds, s1, out=ds)
        np.multiply(ds, inv_std[k].astype(dt), out=ds)
        dw = dw + np.einsum("...nf,...nf->...f", gb, hb).astype(np.float64)
        db = db + np.matmul(_ones(gb.shape[-2], dt.str), gb).astype(np.float64)
    ps, pdt = cache.param_shape, cache.weight.dtype
    dw, db = (z[..., None, :] for z in (dw, db))
    return dx, {"weight": _reduce_to(dw, ps, pdt), "bias": _reduce_to(db, ps, pdt)}


# ---------------------------------------------------------------------------------------------- registry

_DEFAULTS = {
    "none": {},
    "batch": {"eps": 1e-5, "momentum": 0.1, "channels": None},
    "layer": {"eps": 1e-5, "channels": None},
    "instance": {"eps": 1e-5, "channels": None},
    "group": {"eps": 1e-5, "num_groups": 32, "channels": None},
}


def _validate(name: str, h: dict) -> dict:
    if "eps" in h and not (isinstance(h["eps"], (int, float)) and h["eps"] > 0):
        raise DlbenchError(f"{name} norm: eps must be a positive number, got {h['eps']!r}")
    if "momentum" in h and h["momentum"] is not None and not 0.0 <= h["momentum"] <= 1.0:
        raise DlbenchError(f"{name} norm: momentum must be in [0, 1] or None, got {h['momentum']!r}")
    for key in ("channels", "num_groups"):
        v = h.get(key)
        if v is not None and (isinstance(v, bool) or int(v) != v or v < 1):
            raise DlbenchError(f"{name} norm: {key} must be a positive integer, got {v!r}")
        if v is not None:
            h[key] = int(v)
    if name == "group" and h["num_groups"] is None:
        raise DlbenchError("group norm: num_groups must be a positive integer")
    return h


def _make(name: str, hyper: Mapping) -> Norm:
    h = MappingProxyType(_validate(name, dict(hyper)))
    if name == "none":
        fwd, bwd = _forward_none, _backward_none
    elif name in ("batch", "instance"):
        fwd, bwd = functools.partial(_forward_folded, name, h), _backward_folded
    elif name == "layer":
        fwd, bwd = functools.partial(_forward_layer, h), _backward_layer
    else:
        fwd, bwd = functools.partial(_forward_unfolded, name, h), _backward_unfolded
    return Norm(name, functools.partial(_init, name, h), fwd, bwd, h)


for _name, _hyper in _DEFAULTS.items():
    NORMS.add(_name, _make(_name, _hyper))


def get_norm(name: str, **hyper) -> Norm:
    """The registry entry ``name`` with hyperparameters re-bound; unknown names raise DlbenchError."""
    base = NORMS[name]
    unknown = sorted(set(hyper) - set(base.hyper))
    if unknown:
        valid = ", ".join(base.hyper) or "none"
        raise DlbenchError(f"{name} norm has no hyperparameter {', '.join(unknown)}; valid: {valid}")
    return _make(name, {**base.hyper, **hyper})
