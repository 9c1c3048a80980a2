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
mu = rough + mean(c), var = mean(c^2) - mean(c)^2, exact in real arithmetic); each column sum is a BLAS
product 1 @ block over at most SUM_ROWS rows in the input dtype, the blocks' sums added in float64. Layer,
instance and group norm reduce along contiguous axes (BLAS, several accumulators) in the input dtype, and
take the mean of the centred values as a correction too. Batch and instance norm store the centred input
and fold weight * inv_std into per-channel constants (y = c * scale + shift; x_hat is never materialised);
layer and group norm, whose weight varies inside a statistics group, store x_hat. The parameters' gradients
are sums over the batch and over any replica axis along which the parameters are shared.

Speed. An array larger than 2 BLOCK_ELEMS elements is processed in blocks of rows, so that the several
passes over a block hit the cache rather than memory; each kernel's docstring counts its passes. Under
`dlbench.nn.parallel.kernel_threads(n)` the blocks are dealt to n threads and their partial sums added in
block order, so the thread count changes no bit. Per-feature constants are broadcast against rows widened
to ~WIDE_ELEMS elements (NumPy pays per broadcast row). ``out=`` and ``reuse=`` spare allocations. The
kernels run with NumPy's ufunc buffer at UFUNC_BUFSIZE elements, restored on return: a per-row constant
broadcast against rows shorter than the default 8192 is otherwise copied through the buffer (2-3x slower).

References: Ioffe & Szegedy 2015 (batch, arXiv:1502.03167); Ba, Kiros & Hinton 2016 (layer,
arXiv:1607.06450); Ulyanov, Vedaldi & Lempitsky 2016 (instance, arXiv:1607.08022); Wu & He 2018 (group,
arXiv:1803.08494).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

import numpy as np

from dlbench.errors import DlbenchError
from dlbench.nn.parallel import parts_for, run_parts, split
from dlbench.registry import Registry

#: Row blocks hold a multiple of this many rows.
BLOCK_ROWS = 32
#: Most rows in one float32 partial sum before the float64 accumulation of batch norm's reductions.
SUM_ROWS = 256
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
    inv_std: np.ndarray            # 1 / sqrt(var + eps), statistics shape: float64, layer norm's in x's dtype
    shift: np.ndarray | float      # mean(c) for folded layers, float64; 0 where c is exactly centred
    weight: np.ndarray             # weight in the affine view
    param_shape: tuple
    out_shape: tuple               # y's shape, (..., N, F)
    batch_stats: bool              # False when batch norm normalised with running statistics (eval)
    geometry: tuple                # (C, L) or (G, Cg, L) of the views


NORMS: Registry[Norm] = Registry("norm")


# ---------------------------------------------------------------------------------------------- reductions

@functools.lru_cache(maxsize=64)
def _fill(n: int, value: float, dtype: str) -> np.ndarray:
    a = np.full(n, value, dtype=dtype)
    a.flags.writeable = False
    return a


def _ones(n: int, dtype: str) -> np.ndarray:
    return _fill(n, 1.0, dtype)


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


def _col_partial(a: np.ndarray) -> np.ndarray:
    """Sum over the rows (axis -2) of a (..., R, K) block in its own dtype, by BLAS (1 @ a): shape (..., K).

    Batch norm's blocks hold at most SUM_ROWS rows, so a float32 partial sum adds at most that many terms
    before the float64 sum across blocks (`_add_partials`).
    """
    return np.matmul(_ones(a.shape[-2], a.dtype.str), a)


def _add_partials(parts, c_: int, l_: int) -> np.ndarray:
    """float64 sum, in block order, of per-block (..., F) partials; -> (..., 1, C, 1) summed over L too."""
    total = parts[0].astype(np.float64)
    for p in parts[1:]:
        total += p
    total = total.reshape(total.shape[:-1] + (c_, l_))
    return (total.sum(axis=-1) if l_ > 1 else total[..., 0])[..., None, :, None]


def _run_blocks(fn: Callable, blocks: list, size: int) -> list:
    """[fn(blk, work) for blk in blocks], in block order.

    Under `kernel_threads(n)` (and `size` elements of work) the blocks go out in n contiguous runs to the
    pool; `work` is a dict of scratch buffers private to the run (see `_work`). Blocks do not depend on one
    another and their results are combined in block order by the caller, so the thread count changes no bit.
    """
    runs = split(len(blocks), parts_for(size))

    def run(r: slice) -> list:
        work = {}
        return [fn(blocks[i], work) for i in range(r.start, r.stop)]

    return [res for chunk in run_parts(run, runs) for res in chunk]


def _work(work: dict, key: str, shape: tuple, dtype) -> np.ndarray:
    """A scratch array of `shape` from the run's `work` dict, grown as needed and reused block to block."""
    size = int(np.prod(shape))
    buf = work.get(key)
    if buf is None or buf.size < size or buf.dtype != dtype:
        buf = work[key] = np.empty(size, dtype=dtype)
    return buf[:size].reshape(shape)


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


def _blocks(n: int, row_elems: int, max_rows: int | None = None) -> list[slice]:
    """Row blocks of about BLOCK_ELEMS elements (and at most `max_rows` rows), so that the passes over one
    block stay in cache."""
    if n * row_elems <= 2 * BLOCK_ELEMS and (max_rows is None or n <= max_rows):
        return [slice(0, n)]
    rows = max(BLOCK_ROWS, BLOCK_ELEMS // row_elems // BLOCK_ROWS * BLOCK_ROWS)
    if max_rows is not None:
        rows = min(rows, max_rows)
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


@_small_buffers
def _forward_folded(kind, h, x, params, state, train=True, *, out=None, reuse=None):
    """batch / instance: y = c * scale + (bias - shift * scale), c = x - rough mean, scale = weight * inv_std.

    Batch norm in training sweeps the array twice, block by block: the statistics need the whole batch
    before any y. Sweep 1 per block: c = x - rough (stored for the backward), 1 @ c, c * c, 1 @ (c c):
    two writes and two BLAS reads, in cache. Sweep 2: y = c scale + shift, two passes. Fewer is not
    possible without dropping the shifted data (float32 precision under an offset) or the stored c (then
    the backward would recompute it). Instance norm's rows are independent: one sweep.
    """
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
    size = n * f * math.prod(lead)
    row_blocks = _blocks(n, f * math.prod(lead), SUM_ROWS if kind == "batch" else None)
    eps = h["eps"]
    batch_stats = kind == "instance" or train

    def affine(views):
        def apply(blk, work):
            (cb, yb), (sc, sh) = views(blk, c, yv)
            np.multiply(cb, sc, out=yb)
            np.add(yb, sh, out=yb)
        _run_blocks(apply, row_blocks, size)

    if not batch_stats:                                      # batch norm, eval: running statistics
        rm = state["running_mean"][..., None]
        c = _buffer(reuse, "data", np.broadcast_shapes(xv.shape, rm.shape), dt)
        shift = 0.0
        inv_std = 1.0 / np.sqrt(state["running_var"][..., None].astype(np.float64) + eps)
        views = _ChannelBlocks(l_, [rm.astype(dt)])

        def center(blk, work):
            (xb, cb), (rmd,) = views(blk, xv, c)
            np.subtract(xb, rmd, out=cb)

        _run_blocks(center, row_blocks, size)
        affine(_ChannelBlocks(l_, [(wv * inv_std).astype(dt), bv.astype(dt)]))
    elif kind == "batch":
        m = n * l_
        if m < 2:
            raise DlbenchError(f"batch norm in training needs more than 1 value per channel, got {m}")
        c = _buffer(reuse, "data", xv.shape, dt)
        first = xv[_rows(row_blocks[0], 2)]
        rough = _col_sum_fast(first) / dt.type(first.shape[-3] * l_)  # any shift near the mean will do
        views = _ChannelBlocks(l_, [rough])
        cf = c.reshape(c.shape[:-3] + (n, f))

        def stats(blk, work):
            (xb, cb), (r,) = views(blk, xv, c)
            np.subtract(xb, r, out=cb)
            block = cf[..., blk, :]
            sq = np.multiply(block, block, out=_work(work, "sq", block.shape, dt))
            return _col_partial(block), _col_partial(sq)

        parts = _run_blocks(stats, row_blocks, size)
        shift = _add_partials([p[0] for p in parts], c_, l_) / m
        var = np.maximum(_add_partials([p[1] for p in parts], c_, l_) / m - shift * shift, 0.0)
        inv_std = 1.0 / np.sqrt(var + eps)
        if train:
            _update_running(h, state, (rough.astype(np.float64) + shift)[..., 0], var[..., 0], m)
        scale = wv * inv_std
        affine(_ChannelBlocks(l_, [scale.astype(dt), (bv - shift * scale).astype(dt)]))
    else:                                                    # instance: rows are independent
        m = l_
        c = _buffer(reuse, "data", xv.shape, dt)
        shift = np.empty(xv.shape[:-1] + (1,))
        inv_std = np.empty_like(shift)

        def rows(blk, work):
            k = _rows(blk, 2)
            xb = xv[k]
            cb = np.subtract(xb, _row_sum(xb) / dt.type(m), out=c[k])
            sh = _row_sum(cb).astype(np.float64) / m
            var = np.maximum(_row_dot(cb, cb).astype(np.float64) / m - sh * sh, 0.0)
            isd = inv_std[k] = 1.0 / np.sqrt(var + eps)
            shift[k] = sh
            scale = wv * isd
            yb = np.multiply(cb, scale.astype(dt), out=yv[k])
            np.add(yb, (bv - sh * scale).astype(dt), out=yb)

        _run_blocks(rows, row_blocks, size)
    cache = NormCache(kind, c, inv_std, shift, wv, w.shape, y.shape, batch_stats, geometry)
    return y, cache


@_small_buffers
def _backward_folded(g, cache: NormCache, *, out=None):
    """dx = weight inv_std (g - mean_R g - x_hat mean_R(g x_hat)), x_hat = (c - shift) inv_std, not materialised.

    Batch norm: sweep 1 per block reads g and g * c (one write, in cache) by BLAS for the two column sums;
    sweep 2 writes dx = scale (g - a c - offset) in four passes (one product, two differences, one scale:
    the fewest with two-operand ufuncs). Instance norm: one sweep, rows independent.
    """
    c, inv_std, shift = cache.data, cache.inv_std, cache.shift
    dt = c.dtype
    n, f = cache.out_shape[-2:]
    c_, l_ = cache.geometry
    lead = cache.out_shape[:-2]
    gv = np.asarray(g).reshape(lead + (n, c_, l_))
    dx = _check_out(out, cache.out_shape, dt)
    dxv = dx.reshape(gv.shape)
    size = n * f * math.prod(lead)
    row_blocks = _blocks(n, f * math.prod(lead), SUM_ROWS if cache.kind == "batch" else None)
    wv = cache.weight

    def write_dx(views):
        def apply(blk, work):
            (gb, cb, db), consts = views(blk, gv, c, dxv)
            _dx_folded(gb, cb, db, *consts)
        _run_blocks(apply, row_blocks, size)

    if cache.kind == "batch":
        gf, cf = gv.reshape(lead + (n, f)), c.reshape(c.shape[:-3] + (n, f))

        def sums(blk, work):
            gb, cb = gf[..., blk, :], cf[..., blk, :]
            gc = np.multiply(gb, cb, out=_work(work, "gc", np.broadcast_shapes(gb.shape, cb.shape), dt))
            return _col_partial(gb), _col_partial(gc)

        parts = _run_blocks(sums, row_blocks, size)
        s1 = _add_partials([q[0] for q in parts], c_, l_)
        p = _add_partials([q[1] for q in parts], c_, l_)
        s2 = inv_std * (p - shift * s1)                          # sum_R g x_hat
        scale = wv * inv_std
        if cache.batch_stats:
            a = inv_std * s2 / (n * l_)
            write_dx(_ChannelBlocks(l_, [z.astype(dt) for z in (a, s1 / (n * l_) - shift * a, scale)]))
        else:
            views = _ChannelBlocks(l_, [scale.astype(dt)])

            def scaled(blk, work):
                (gb, db), (sc,) = views(blk, gv, dxv)
                np.multiply(gb, sc, out=db)

            _run_blocks(scaled, row_blocks, size)
    else:
        def rows(blk, work):
            k = _rows(blk, 2)
            gb, cb, isd, sh = gv[k], c[k], inv_std[k], shift[k]
            t1 = _row_sum(gb).astype(np.float64)
            t2 = isd * (_row_dot(gb, cb).astype(np.float64) - sh * t1)
            a = isd * t2 / l_
            _dx_folded(gb, cb, dxv[k], *(z.astype(dt) for z in (a, t1 / l_ - sh * a, wv * isd)))
            return t1.sum(axis=-3, keepdims=True), t2.sum(axis=-3, keepdims=True)

        parts = _run_blocks(rows, row_blocks, size)
        s1, s2 = parts[0]
        for t1, t2 in parts[1:]:
            s1, s2 = s1 + t1, s2 + t2
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

    def block(blk, work):
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

    _run_blocks(block, _blocks(n, f * math.prod(lead)), n * f * math.prod(lead))
    cache = NormCache(kind, xh, inv_std, 0.0, wv, w.shape, y.shape, True, geometry)
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
    per_feature = _per_feature(cache.kind, cache.geometry)
    if per_feature:
        g_hat = _ChannelBlocks(1, [cache.weight.reshape(cache.param_shape)[..., None].astype(dt)])
        g_f, dx_f = ga.reshape(lead + (n, f, 1)), dx.reshape(lead + (n, f, 1))

    def block(blk, work):
        ks, ka = _rows(blk, len(stats_tail) - 1), _rows(blk, len(affine_tail) - 1)
        gb, hb, ds = ga[ka], xh[ks], dxs[ks]
        if per_feature:
            (gw, dxw), (ww,) = g_hat(blk, g_f, dx_f)
            np.multiply(gw, ww, out=dxw)
        else:
            np.multiply(gb, cache.weight, out=dxa[ka])
        s1 = _row_sum(ds) / dt.type(k_)
        s2 = _row_dot(ds, hb) / dt.type(k_)
        tb = np.multiply(hb, s2, out=_work(work, "t", np.broadcast_shapes(hb.shape, s2.shape), dt))
        np.subtract(ds, tb, out=ds)
        np.subtract(ds, s1, out=ds)
        np.multiply(ds, inv_std[ks].astype(dt), out=ds)
        return (np.einsum(dw_sub, gb, xha[ka]),
                np.matmul(_ones(gb.shape[-2], dt.str), gb) if cache.kind == "layer" else gb.sum(axis=db_axes))

    parts = _run_blocks(block, _blocks(n, f * math.prod(lead)), n * f * math.prod(lead))
    dw, db = (parts[0][i].astype(np.float64) for i in (0, 1))
    for pw, pb in parts[1:]:
        dw += pw
        db += pb
    ps, pdt = cache.param_shape, cache.weight.dtype
    per_param = 1 if cache.kind == "layer" else 2                     # trailing axes (F,) or (G, Cg)
    dw, db = (z.reshape(z.shape[:z.ndim - per_param] + (1, ps[-1])) for z in (dw, db))
    return dx, {"weight": _reduce_to(dw, ps, pdt), "bias": _reduce_to(db, ps, pdt)}


@_small_buffers
def _forward_layer(h, x, params, state, train=True, *, out=None, reuse=None):
    """layer: per-row statistics by BLAS, x_hat stored, y = x_hat * weight + bias; one sweep of row blocks.

    Per block, in cache: mean = x @ (1/F) (BLAS read), x_hat = x - mean (write), sum x_hat^2 and the mean
    x_hat missed (two BLAS reads), x_hat *= inv_std (write), y = x_hat w + b (two writes): three reads and
    four writes, the least for a two-pass (centred, so float32-safe) variance, a stored x_hat and an
    affine map of two-operand ufuncs. The per-row arithmetic stays in the input dtype.
    """
    x = _as_input(x)
    n, f = x.shape[-2:]
    w, b = _params("layer", params, f)
    lead = _prefix(x, w.shape)
    dt = x.dtype
    xh = _buffer(reuse, "data", x.shape, dt)
    inv_std = np.empty(x.shape[:-1] + (1,), dtype=dt)
    y = _check_out(out, lead + (n, f), dt)
    mean_of = _fill(f, 1.0 / f, dt.str)
    affine = _ChannelBlocks(1, [w[..., None].astype(dt), b[..., None].astype(dt)])
    xh_f, y_f = xh.reshape(x.shape + (1,)), y.reshape(y.shape + (1,))
    eps, tiny = dt.type(h["eps"]), np.finfo(dt).eps

    def block(blk, work):
        k = (Ellipsis, blk, slice(None))
        xb = x[k]
        hb = np.subtract(xb, np.matmul(xb, mean_of)[..., None], out=xh[k])
        var = np.vecdot(hb, hb)
        var *= mean_of[0]
        resid = np.matmul(hb, mean_of)                               # what the first mean missed
        var -= resid * resid
        np.maximum(var, 0, out=var)
        var += eps
        isd = inv_std[k]
        np.sqrt(var[..., None], out=isd)
        np.divide(1, isd, out=isd)
        np.multiply(hb, isd, out=hb)
        resid *= isd[..., 0]
        resid[np.abs(resid) <= tiny] = 0                             # row by row, so samples stay independent
        if resid.any():
            np.subtract(hb, resid[..., None], out=hb)
        (hw, yb), (ww, bw) = affine(blk, xh_f, y_f)
        np.multiply(hw, ww, out=yb)
        np.add(yb, bw, out=yb)

    _run_blocks(block, _blocks(n, f * math.prod(lead)), n * f * math.prod(lead))
    cache = NormCache("layer", xh, inv_std, 0.0, w, w.shape, y.shape, True, (f, 1))
    return y, cache


@_small_buffers
def _backward_layer(g, cache: NormCache, *, out=None):
    """dx = inv_std (g w - (sum(g w) + x_hat sum(g w x_hat)) / F); dweight = sum_n g x_hat, dbias = sum_n g.

    Per block, in cache: P = g x_hat (write); four BLAS reads give sum_f g w = g @ w, sum_f g w x_hat =
    P @ w, and the block's parts of dweight = 1 @ P and dbias = 1 @ g; then dx in five writes (x_hat k,
    + c, g w, its inv_std scale, the difference). Each product the formula has is formed once.
    """
    xh, inv_std = cache.data, cache.inv_std
    dt = xh.dtype
    n, f = cache.out_shape[-2:]
    lead = cache.out_shape[:-2]
    ga = np.asarray(g).reshape(cache.out_shape)
    dx = _check_out(out, cache.out_shape, dt)
    weight = cache.weight.reshape(cache.param_shape).astype(dt, copy=False)
    w_col = np.swapaxes(weight, -1, -2)                              # prefix + (F, 1): g @ w per row
    g_hat = _ChannelBlocks(1, [weight[..., None]])
    g_f = ga.reshape(ga.shape + (1,))
    inv_f = dt.type(1.0 / f)

    def block(blk, work):
        k = (Ellipsis, blk, slice(None))
        gb, hb, db, isd = ga[k], xh[k], dx[k], inv_std[k]
        p = np.multiply(gb, hb, out=_work(work, "p", np.broadcast_shapes(gb.shape, hb.shape), dt))
        s1 = np.matmul(gb, w_col)                                    # sum_f g w, (..., B, 1)
        s2 = np.matmul(p, w_col)                                     # sum_f g w x_hat
        dw, dbias = _col_partial(p), _col_partial(gb)
        s1 *= inv_f
        s1 *= isd
        s2 *= inv_f
        s2 *= isd
        np.multiply(hb, s2, out=db)
        db += s1
        (gw,), (ww,) = g_hat(blk, g_f)
        np.multiply(gw, ww, out=p.reshape(gw.shape))                 # p = g w now (p has g's shape)
        p *= isd
        np.subtract(p, db, out=db)
        return dw, dbias

    parts = _run_blocks(block, _blocks(n, f * math.prod(lead)), n * f * math.prod(lead))
    dw = parts[0][0].astype(np.float64)
    db = parts[0][1].astype(np.float64)
    for pw, pb in parts[1:]:
        dw += pw
        db += pb
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
