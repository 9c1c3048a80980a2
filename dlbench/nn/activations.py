"""Activation functions: forward and backward kernels over whole arrays, and their registry.

Every kernel is elementwise except maxout (groups of `pieces` consecutive units along the last axis).
Definitions, hyperparameter names and defaults are those of torch.nn.functional. Conventions:

- forward(x, *theta, out=None) -> y and backward(x, y, g, *theta, out=None) -> dx = g * dy/dx, where y is
  forward(x) and g = dL/dy. Some backward kernels read y instead of x (said in their docstrings), so y must
  be the forward's output for that x.
- `out` is an optional preallocated result (no allocation then); it must not overlap the inputs.
- float32 and float64 stay in their dtype; other inputs are computed in float64.
- No overflow, invalid or underflow floating-point flags for inputs up to |x| = 1e4 with g = 1 (the
  exponentials' arguments are clamped where the result would not be a normal number).

Speed. A kernel is a short sequence of NumPy ufunc passes; each docstring counts them. Multi-pass kernels
work through contiguous arrays in chunks of `_CHUNK_BYTES`, so their intermediate passes stay in cache;
under `dlbench.nn.parallel.kernel_threads(n)` large arrays are cut into n parts run on a thread pool
(elementwise, so the result does not depend on n). Piecewise kernels write a 0/1 mask and multiply
instead of np.where (~50x slower); constants are 0-d arrays and ufuncs are called with out= (a third of
the per-call cost of a Python float operand); maximum and minimum take array operands (`_fill`), as
against a scalar they are not vectorized. float32 gelu uses a polynomial-in-tanh erf (see `erf`).
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


@dataclass(frozen=True)
class Activation:
    """One activation with its hyperparameters bound.

    forward(x, *theta, out=None) -> y; backward(x, y, g, *theta, out=None) -> dL/dx given g = dL/dy.
    pieces: inputs per output unit (maxout: last axis W*k -> W); 1 for elementwise activations.
    init_params(prefix_shape, width, dtype) -> tuple of learnable arrays (prelu only), each prefix + (1, 1).
    param_grads(x, y, g, *theta) -> tuple of dL/dtheta, each shaped like its theta.
    """

    name: str
    forward: Callable
    backward: Callable
    hyper: Mapping[str, float]
    pieces: int = 1
    init_params: Callable | None = None
    param_grads: Callable | None = None


#: Multi-pass kernels process arrays larger than this many bytes in contiguous chunks of this size
#: (64k float32 elements), so a chunk's passes stay in L2.
_CHUNK_BYTES = 1 << 18


def _as_float(a) -> np.ndarray:
    a = np.asarray(a)
    return a if a.dtype.kind == "f" else a.astype(np.float64)


def _result(out, shape, dtype) -> np.ndarray:
    if out is None:
        return np.empty(shape, dtype=dtype)
    if out.shape != tuple(shape):
        raise ValueError(f"out has shape {out.shape}, expected {tuple(shape)}")
    return out


@functools.lru_cache(maxsize=None)
def _k(value: float, dtype: str) -> np.ndarray:
    """`value` as a read-only 0-d array of `dtype`.

    A ufunc takes a 0-d array operand in ~0.3 us and a Python float in ~0.9 us (the conversion), and the
    kernels make a few dozen calls per chunk: constants are these, and ufuncs are called as functions with
    out=, not as in-place operators (another ~0.5 us each).
    """
    a = np.array(value, dtype=dtype)
    a.flags.writeable = False
    return a


@functools.lru_cache(maxsize=64)
def _fill(value: float, dtype: str, n: int) -> np.ndarray:
    """A read-only array of n copies of `value`: NumPy's maximum and minimum against an array run
    vectorized (~0.06 ns per float32 element in cache), against a scalar not (~0.3-0.5 ns)."""
    a = np.full(n, value, dtype=dtype)
    a.flags.writeable = False
    return a


def _chunked(core: Callable, arrays: tuple, out: np.ndarray, scratch: int = 0, masks: int = 0,
             fills: tuple = (), passes: int = 2) -> np.ndarray:
    """core(*arrays, out, *tmp) over aligned chunks of _CHUNK_BYTES.

    tmp are `scratch` work arrays of out's dtype, then `masks` boolean work arrays, all of the chunk's size,
    then each value of `fills` as a read-only array of out's dtype and the chunk's size. An array of one
    chunk or less runs as one call with masks None (the core compares straight into out: one call fewer).
    When the arrays are not C-contiguous alike, core runs once on them whole, fills as the values
    themselves. A single-pass core (`passes=1`) is not chunked, since nothing would stay in cache, but
    still split over the kernel threads.

    Under `kernel_threads(n)` a large array is cut into n contiguous parts, each with its own work arrays,
    run on the pool: the elements are independent, so the result does not depend on n.
    """
    n = out.size
    if not (out.flags.c_contiguous and all(a.shape == out.shape and a.flags.c_contiguous for a in arrays)):
        core(*arrays, out, *(np.empty_like(out) for _ in range(scratch)), *(None,) * masks, *fills)
        return out
    dt = out.dtype
    chunk = max(1, _CHUNK_BYTES // out.itemsize)
    parts = parts_for(n)
    if parts == 1 and (n <= chunk or (passes == 1 and not fills)):
        # one call on the whole arrays: what a small array costs is the calls, not the passes
        core(*arrays, out, *(np.empty_like(out) for _ in range(scratch)), *(None,) * masks,
             *(_fill(v, dt.str, n).reshape(out.shape) for v in fills))
        return out
    step = chunk if passes > 1 else max(1, -(-n // parts))
    flat = [a.reshape(-1) for a in arrays]
    flat_out = out.reshape(-1)

    def run(part: slice) -> None:
        size = min(step, part.stop - part.start)
        tmp = ([np.empty(size, dtype=dt) for _ in range(scratch)]
               + [np.empty(size, dtype=np.bool_) for _ in range(masks)]
               + [_fill(v, dt.str, size) for v in fills])
        if size == part.stop - part.start:
            core(*(a[part] for a in flat), flat_out[part], *tmp)
            return
        for start in range(part.start, part.stop, size):
            stop = min(start + size, part.stop)
            core(*(a[start:stop] for a in flat), flat_out[start:stop], *(t[: stop - start] for t in tmp))

    if parts == 1:
        run(slice(0, n))
    else:
        run_parts(run, split(n, parts, chunk))
    return out


def _one_pass(core: Callable, x: np.ndarray, out: np.ndarray, fills: tuple = ()) -> np.ndarray:
    """core(x, out, *fills) in one pass, split over the kernel threads when x is large."""
    if not fills and parts_for(out.size) == 1:
        core(x, out)
        return out
    return _chunked(core, (x,), out, fills=fills, passes=1 if not fills else 2)


def _copy_into(a, o) -> None:
    np.copyto(o, a)


def _tiny_exponent(dtype) -> float:
    """Most negative argument whose exp is still a normal number (clamping below it avoids underflow)."""
    return math.log(np.finfo(dtype).tiny) + 1.0


# ---------------------------------------------------------------------------------------------------------
# erf: W. J. Cody's rational Chebyshev approximations (Math. Comp. 23 (1969) 631-637; SPECFUN CALERF)
# ---------------------------------------------------------------------------------------------------------

_ERF_A = (3.16112374387056560e00, 1.13864154151050156e02, 3.77485237685302021e02,
          3.20937758913846947e03, 1.85777706184603153e-1)
_ERF_B = (2.36012909523441209e01, 2.44024637934444173e02, 1.28261652607737228e03,
          2.84423683343917062e03)
_ERF_C = (5.64188496988670089e-1, 8.88314979438837594e00, 6.61191906371416295e01,
          2.98635138197400131e02, 8.81952221241769090e02, 1.71204761263407058e03,
          2.05107837782607147e03, 1.23033935479799725e03, 2.15311535474403846e-8)
_ERF_D = (1.57449261107098347e01, 1.17693950891312499e02, 5.37181101862009858e02,
          1.62138957456669019e03, 3.29079923573345963e03, 4.36261909014324716e03,
          3.43936767414372164e03, 1.23033935480374942e03)
_ERF_P = (3.05326634961232344e-1, 3.60344899949804439e-1, 1.25781726111229246e-1,
          1.60837851487422766e-2, 6.58749161529837803e-4, 1.63153871373020978e-2)
_ERF_Q = (2.56852019228982242e00, 1.87295284992346725e00, 5.27905102951428412e-1,
          6.05183413124413191e-2, 2.33520497626869185e-3)
_INV_SQRT_PI = 0.56418958354775628695


def _erf_small(x):
    """erf(x) = x P(x^2) / Q(x^2) for |x| <= 0.46875."""
    s = x * x
    num, den = _ERF_A[4] * s, s.copy()
    for a, b in zip(_ERF_A[:3], _ERF_B[:3]):
        num += a
        num *= s
        den += b
        den *= s
    num += _ERF_A[3]
    den += _ERF_B[3]
    num *= x
    num /= den
    return num


def _erfc_mid(y):
    """erfc(y) = exp(-y^2) P(y) / Q(y) for 0.46875 < y <= 4."""
    num, den = _ERF_C[8] * y, y.copy()
    for c, d in zip(_ERF_C[:7], _ERF_D[:7]):
        num += c
        num *= y
        den += d
        den *= y
    num += _ERF_C[7]
    den += _ERF_D[7]
    num /= den
    num *= np.exp(-(y * y))
    return num


def _erfc_large(y):
    """erfc(y) = exp(-y^2) / y * (1/sqrt(pi) + R(1/y^2) / y^2) for y > 4."""
    s = 1.0 / (y * y)
    num, den = _ERF_P[5] * s, s.copy()
    for p, q in zip(_ERF_P[:4], _ERF_Q[:4]):
        num += p
        num *= s
        den += q
        den *= s
    num += _ERF_P[4]
    den += _ERF_Q[4]
    num /= den
    num *= s
    r = _INV_SQRT_PI - num
    r /= y
    r *= np.exp(-(y * y))
    return r


def _erf_core(x, out):
    # Gathers and scatters by index arrays run several times faster than boolean-mask indexing.
    # Every read of x happens before the first write to out, so out may be x.
    if not (out.flags.c_contiguous and x.shape == out.shape):
        res = np.empty(x.shape, dtype=out.dtype)
        _erf_core(x, res)
        np.copyto(out, res)
        return
    xf = x.reshape(-1)
    ax = np.abs(xf)
    small = np.flatnonzero(ax <= 0.46875)
    mid = np.flatnonzero((ax > 0.46875) & (ax <= 4.0))
    x_small, x_mid, y_mid = xf[small], xf[mid], ax[mid]
    # Past `top` erfc is below half an ulp of 1, so erf is +-1 to working precision.
    top = 4.0 if x.dtype == np.float32 else 6.0
    if top > 4.0:
        large = np.flatnonzero((ax > 4.0) & (ax < top))
        x_large, y_large = xf[large], ax[large]
    flat_out = out.reshape(-1)
    np.sign(xf, out=flat_out)  # +-1 beyond the regions below; NaN stays NaN
    flat_out[small] = _erf_small(x_small)
    r = 0.5 - _erfc_mid(y_mid)
    r += 0.5
    flat_out[mid] = np.copysign(r, x_mid, out=r)
    if top > 4.0:
        r = 0.5 - _erfc_large(y_large)
        r += 0.5
        flat_out[large] = np.copysign(r, x_large, out=r)


# float32: erf(z) = tanh(z q(z^2)), q a degree-6 polynomial. atanh(erf(z)) / z is smooth and bounded on
# [0, 4] (from 2/sqrt(pi) to ~2.3), so a short polynomial in z^2 fits it, and tanh carries the saturation
# that costs a plain polynomial or a rational form many more terms. The coefficients are a weighted least
# squares fit on [0, 16] in z^2 (Lawson's reweighting towards minimax) with weights that make the error
# uniform in ulps of erf. Past z^2 = 16 (erf(4) = 1 - 1.5e-8), q is held at q(16) and tanh(z q(16)) climbs
# to 1 with z, within an ulp of erf all the way.
#: q's coefficients, constant term first.
ERF32_COEFFS = (1.1283792634507928, 0.10276900773910826, -0.00019127300031394857, -0.0006204980902038005,
                8.79523687301627e-05, -5.72365402938455e-06, 1.4509666833273644e-07)
#: z^2 is clamped here: the polynomial must not overflow, and beyond it erf is within 1.5e-8 of +-1.
ERF32_CLAMP = 16.0
#: Largest error of the float32 erf over every float32 input, in units in the last place of the exact
#: erf (measured at 3.74 ulp with NumPy 2.4's float32 tanh; median 0.63 ulp); the tests check it.
ERF32_MAX_ULP = 4.0

_ERF32_Q = tuple(np.array(c, dtype=np.float32) for c in ERF32_COEFFS)
# gelu's Phi(x) = (1 + erf(x / sqrt 2)) / 2 with the argument folded in: erf(x / sqrt 2) = tanh(h r(x^2)),
# h = x / 2, r(s) = sqrt 2 q(s / 2), so gelu needs neither the x / sqrt 2 pass nor a separate 0.5 x.
_GELU32_R = tuple(np.array(math.sqrt(2.0) * c / 2.0**k, dtype=np.float32) for k, c in enumerate(ERF32_COEFFS))


def _horner(s, coeffs, out) -> None:
    """out = sum_k coeffs[k] s^k (out may not be s): two passes per degree."""
    np.multiply(s, coeffs[-1], out=out)
    for c in coeffs[-2:0:-1]:
        np.add(out, c, out=out)
        np.multiply(out, s, out=out)
    np.add(out, coeffs[0], out=out)


def _erf32_core(z, out, s, q, clamp):
    """out = erf(z) = tanh(z q(min(z^2, 16))) in 16 passes; out may be z."""
    np.multiply(z, z, out=s)
    np.minimum(s, clamp, out=s)
    _horner(s, _ERF32_Q, q)
    np.multiply(z, q, out=out)
    np.tanh(out, out=out)


def erf(x, out=None) -> np.ndarray:
    """The error function erf(x) = 2/sqrt(pi) * integral_0^x exp(-t^2) dt, vectorized without scipy.

    float64 (and other non-float32 inputs): W. J. Cody's rational Chebyshev approximations (Math. Comp. 23
    (1969) 631-637) in three ranges of |x|, absolute error below 1e-15. float32: tanh(x q(min(x^2, 16)))
    with a degree-6 polynomial q (ERF32_COEFFS), computed in float32 in cache-sized chunks, at most
    ERF32_MAX_ULP = 4 units in the last place from the exact erf over every float32 input; odd exactly.
    """
    x = _as_float(x)
    out = _result(out, x.shape, x.dtype)
    if x.dtype == np.float32:
        return _chunked(_erf32_core, (x,), out, scratch=2, fills=(ERF32_CLAMP,))
    return _chunked(_erf_core, (x,), out)


# ---------------------------------------------------------------------------------------------------------
# Kernels: forward beside backward
# ---------------------------------------------------------------------------------------------------------


def identity_forward(x, out=None):
    """y = x (the linear control): one copy."""
    x = _as_float(x)
    return _one_pass(_copy_into, x, _result(out, x.shape, x.dtype))


def identity_backward(x, y, g, out=None):
    """dx = g: one copy."""
    g = _as_float(g)
    return _one_pass(_copy_into, g, _result(out, g.shape, g.dtype))


def _relu_forward(x, out, zero):
    np.maximum(x, zero, out=out)


def relu_forward(x, out=None):
    """y = max(x, 0) in one pass. Nair & Hinton 2010, "Rectified linear units improve restricted Boltzmann machines"."""
    x = _as_float(x)
    return _one_pass(_relu_forward, x, _result(out, x.shape, x.dtype), fills=(0.0,))


def _mask_into(x, out, mask) -> None:
    """out = [x > 0] as 0/1 in out's dtype (a bool compare plus a bool -> float copy beats comparing
    straight into float, a buffered cast)."""
    if mask is None:
        np.greater(x, 0, out=out)
    else:
        np.greater(x, _k(0, out.dtype.str), out=mask)
        np.copyto(out, mask)


def _relu_backward(x, g, out, mask):
    _mask_into(x, out, mask)
    np.multiply(out, g, out=out)


def relu_backward(x, y, g, out=None):
    """dx = g * [x > 0] (0 at x = 0, as torch), in three passes over a cached chunk (compare, copy, product)."""
    x, g = _as_float(x), _as_float(g)
    return _chunked(_relu_backward, (x, g), _result(out, g.shape, g.dtype), masks=1)


def _leaky_relu_forward(x, out, *tmp, negative_slope):
    a, dt = negative_slope, out.dtype.str
    if 0 <= a <= 1:
        np.multiply(x, _k(a, dt), out=out)
        np.maximum(x, out, out=out)
    elif a > 1:
        np.multiply(x, _k(a, dt), out=out)
        np.minimum(x, out, out=out)
    else:  # a < 0: neither max nor min picks the branch; add the two exact pieces
        np.minimum(x, 0, out=out)
        np.multiply(out, _k(a, dt), out=out)
        np.maximum(x, 0, out=tmp[0])
        np.add(out, tmp[0], out=out)


def leaky_relu_forward(x, out=None, *, negative_slope=0.01):
    """y = x for x > 0, a*x otherwise, a = negative_slope (= max(x, a x) for 0 <= a <= 1: two passes).

    Maas, Hannun & Ng 2013, "Rectifier nonlinearities improve neural network acoustic models".
    """
    x = _as_float(x)
    core = functools.partial(_leaky_relu_forward, negative_slope=negative_slope)
    return _chunked(core, (x,), _result(out, x.shape, x.dtype), scratch=int(negative_slope < 0))


def _leaky_relu_backward(x, g, out, *tmp, negative_slope):
    a, dt = negative_slope, out.dtype.str
    if 0 <= a <= 1:
        mask, slope = tmp
        _mask_into(x, out, mask)
        # [x>0] in {0, 1} -> {a, 1}, exactly; an array operand, as maximum with a scalar is not vectorized
        np.maximum(out, slope, out=out)
    else:
        np.less_equal(x, 0, out=out)
        np.multiply(out, _k(a, dt), out=out)
        if a > 1:
            np.maximum(out, 1, out=out)
        else:
            np.greater(x, 0, out=tmp[0])
            np.add(out, tmp[0], out=out)
    np.multiply(out, g, out=out)


def leaky_relu_backward(x, y, g, out=None, *, negative_slope=0.01):
    """dx = g * (1 if x > 0 else a): four passes (compare, copy, max with a, product)."""
    x, g = _as_float(x), _as_float(g)
    core = functools.partial(_leaky_relu_backward, negative_slope=negative_slope)
    out = _result(out, g.shape, g.dtype)
    if 0 <= negative_slope <= 1:
        return _chunked(core, (x, g), out, masks=1, fills=(negative_slope,))
    return _chunked(core, (x, g), out, scratch=int(negative_slope < 0))


def _in_unit_interval(w) -> bool:
    return bool(np.all((w >= 0) & (w <= 1)))


def prelu_forward(x, weight, out=None):
    """y = x for x > 0, w*x otherwise, with a learned slope w (one per layer: shape prefix + (1, 1)).

    He, Zhang, Ren & Sun 2015, "Delving deep into rectifiers" (PReLU; torch.nn.PReLU, init 0.25).
    The result has the broadcast shape of x and w, e.g. (S, N, W) for x (N, W) and w (S, 1, 1).
    """
    x, w = _as_float(x), np.asarray(weight)
    shape = np.broadcast_shapes(x.shape, w.shape)
    if w.size == 1 and shape == x.shape and w.dtype == x.dtype:  # one slope: leaky relu's chunked kernel
        return leaky_relu_forward(x, out, negative_slope=float(w.reshape(())))
    out = _result(out, shape, np.result_type(x, w))
    if _in_unit_interval(w):
        np.multiply(x, w, out=out)
        np.maximum(out, x, out=out)
    else:
        np.minimum(x, 0, out=out)
        out *= w
        out += np.maximum(x, 0)
    return out


def prelu_backward(x, y, g, weight, out=None):
    """dx = g * (1 if x > 0 else w)."""
    x, g, w = _as_float(x), _as_float(g), np.asarray(weight)
    shape = np.broadcast_shapes(x.shape, g.shape, w.shape)
    if w.size == 1 and shape == x.shape == g.shape and w.dtype == g.dtype:
        return leaky_relu_backward(x, y, g, out, negative_slope=float(w.reshape(())))
    out = _result(out, shape, g.dtype)
    if _in_unit_interval(w):
        np.greater(x, 0, out=out)
        np.maximum(out, w, out=out)
    else:
        np.less_equal(x, 0, out=out)
        out *= w
        out += x > 0
    out *= g
    return out


def _sum_to_shape(a: np.ndarray, shape: tuple) -> np.ndarray:
    """Sum a broadcast result back to `shape` (the adjoint of broadcasting)."""
    lead = a.ndim - len(shape)
    axes = tuple(range(lead)) + tuple(lead + i for i, s in enumerate(shape) if s == 1 and a.shape[lead + i] != 1)
    return a.sum(axis=axes, keepdims=True).reshape(shape)


def prelu_param_grads(x, y, g, weight):
    """(dL/dw,) with dL/dw = sum of g * min(x, 0) over every element that w broadcasts to."""
    x, g, w = _as_float(x), _as_float(g), np.asarray(weight)
    t = np.minimum(x, 0) * g
    return (_sum_to_shape(t, w.shape).astype(w.dtype, copy=False),)


def prelu_init_params(prefix_shape, width, dtype=np.float32, *, init=0.25):
    """(w,) with w = init everywhere, shape prefix_shape + (1, 1): one slope per layer (num_parameters=1)."""
    return (np.full(tuple(prefix_shape) + (1, 1), init, dtype=dtype),)


def _elu_forward(x, out, *tmp, alpha):
    dt, zero = out.dtype.str, tmp[-1]
    np.minimum(x, zero, out=out)
    np.expm1(out, out=out)
    if 0 <= alpha <= 1:
        if alpha != 1:
            np.multiply(out, _k(alpha, dt), out=out)
        # alpha*expm1(x) >= x for x <= 0 when 0 <= alpha <= 1, and it is 0 for x > 0
        np.maximum(out, x, out=out)
    else:
        np.multiply(out, _k(alpha, dt), out=out)
        np.maximum(x, zero, out=tmp[0])
        np.add(out, tmp[0], out=out)


def elu_forward(x, out=None, *, alpha=1.0):
    """y = x for x > 0, alpha * (exp(x) - 1) otherwise; = max(x,0) + alpha*expm1(min(x,0)): three passes.

    Clevert, Unterthiner & Hochreiter 2015, "Fast and accurate deep network learning by exponential
    linear units (ELUs)".
    """
    x = _as_float(x)
    core = functools.partial(_elu_forward, alpha=alpha)
    return _chunked(core, (x,), _result(out, x.shape, x.dtype), scratch=int(not 0 <= alpha <= 1), fills=(0.0,))


def _elu_backward(x, y, g, out, *tmp, alpha):
    dt = out.dtype.str
    if alpha == 1:
        # 1 for x > 0 (y > 0), y + 1 = exp(x) for x <= 0: no exp, no underflow
        np.minimum(y, tmp[-1], out=out)
        np.add(out, _k(1, dt), out=out)
    else:
        np.add(y, _k(alpha, dt), out=out)  # alpha * exp(x) for x <= 0
        np.less_equal(x, 0, out=tmp[0])
        np.multiply(out, tmp[0], out=out)
        np.greater(x, 0, out=tmp[0])
        np.add(out, tmp[0], out=out)
    np.multiply(out, g, out=out)


def elu_backward(x, y, g, out=None, *, alpha=1.0):
    """dx = g * (1 if x > 0 else alpha*exp(x)), with alpha*exp(x) = y + alpha read from the forward's y
    (alpha = 1: g * (min(y, 0) + 1), three passes)."""
    x, y, g = _as_float(x), _as_float(y), _as_float(g)
    core = functools.partial(_elu_backward, alpha=alpha)
    return _chunked(core, (x, y, g), _result(out, g.shape, g.dtype), scratch=int(alpha != 1), fills=(0.0,))


#: SELU's constants (Klambauer et al. 2017; torch.nn.SELU): mean 0, variance 1 is a fixed point.
SELU_ALPHA = 1.6732632423543772848170429916717
SELU_SCALE = 1.0507009873554804934193349852946


def _selu_forward(x, out, tmp, zero):
    dt = out.dtype.str
    np.minimum(x, zero, out=tmp)
    np.expm1(tmp, out=tmp)
    np.multiply(tmp, _k(SELU_SCALE * SELU_ALPHA, dt), out=tmp)
    np.maximum(x, zero, out=out)
    np.multiply(out, _k(SELU_SCALE, dt), out=out)
    np.add(out, tmp, out=out)


def selu_forward(x, out=None):
    """y = scale * (max(x, 0) + alpha * expm1(min(x, 0))), alpha = 1.67326..., scale = 1.05070...: six passes.

    Klambauer, Unterthiner, Mayr & Hochreiter 2017, "Self-normalizing neural networks".
    """
    x = _as_float(x)
    return _chunked(_selu_forward, (x,), _result(out, x.shape, x.dtype), scratch=1, fills=(0.0,))


def _selu_backward(y, g, out, tmp, mask):
    dt = out.dtype.str
    zero = _k(0, dt)
    np.add(y, _k(SELU_SCALE * SELU_ALPHA, dt), out=out)  # scale*alpha*exp(x) for x <= 0
    if mask is None:
        np.less_equal(y, 0, out=tmp)  # y <= 0 exactly where x <= 0
        np.multiply(out, tmp, out=out)
        np.greater(y, 0, out=tmp)
    else:  # exact selects: products with 0/1
        np.less_equal(y, zero, out=mask)
        np.multiply(out, mask, out=out)
        np.greater(y, zero, out=mask)
        np.multiply(mask, _k(SELU_SCALE, dt), out=tmp)
        np.add(out, tmp, out=out)
        np.multiply(out, g, out=out)
        return
    np.multiply(tmp, _k(SELU_SCALE, dt), out=tmp)
    np.add(out, tmp, out=out)
    np.multiply(out, g, out=out)


def selu_backward(x, y, g, out=None):
    """dx = g * scale * (1 if x > 0 else alpha*exp(x)), using scale*alpha*exp(x) = y + scale*alpha (reads y).

    Seven passes: the two branches are exact products with 0/1 masks, added.
    """
    y, g = _as_float(y), _as_float(g)
    return _chunked(_selu_backward, (y, g), _result(out, g.shape, g.dtype), scratch=1, masks=1)


_SQRT1_2 = 0.70710678118654752440
_INV_SQRT_2PI = 0.39894228040143267794
_SQRT_2_OVER_PI = 0.79788456080286535588
_GELU_KAPPA = 0.044715


def _gelu_erf_forward(x, out, s, q, clamp):
    dt = out.dtype.str
    if dt == "<f4":
        np.multiply(x, x, out=s)
        np.minimum(s, clamp, out=s)
        _horner(s, _GELU32_R, q)
        np.multiply(x, _k(0.5, dt), out=out)  # h = x / 2
        np.multiply(q, out, out=q)
        np.tanh(q, out=q)  # erf(x / sqrt 2) = tanh(h r(x^2))
        np.add(q, _k(1, dt), out=q)
        np.multiply(out, q, out=out)
        return
    np.multiply(x, _SQRT1_2, out=out)
    _erf_core(out, out)
    out += 1
    out *= x
    out *= 0.5


def _gelu_tanh_forward(x, out, s):
    # 8 passes: y = h (1 + tanh(h (2c + 2c kappa x^2))), h = x / 2, c = sqrt(2/pi); no x**3, no pow
    dt = out.dtype.str
    np.multiply(x, x, out=s)
    np.multiply(s, _k(2 * _SQRT_2_OVER_PI * _GELU_KAPPA, dt), out=s)
    np.add(s, _k(2 * _SQRT_2_OVER_PI, dt), out=s)
    np.multiply(x, _k(0.5, dt), out=out)
    np.multiply(s, out, out=s)
    np.tanh(s, out=s)
    np.add(s, _k(1, dt), out=s)
    np.multiply(out, s, out=out)


def gelu_forward(x, out=None, *, approximate="none"):
    """y = x * Phi(x) = 0.5 x (1 + erf(x / sqrt 2)); approximate="tanh": 0.5 x (1 + tanh(sqrt(2/pi)(x + 0.044715 x^3))).

    Hendrycks & Gimpel 2016, "Gaussian error linear units (GELUs)". erf as in `erf`: Cody's in float64; in
    float32 tanh(h r(x^2)) with h = x/2 and r the float32 erf's polynomial rescaled, so y = h (1 + tanh(.))
    takes 19 passes over a cache-sized chunk (two per degree of r, five more for x^2, its clamp, h, tanh, y).
    The tanh form takes 8.
    """
    x = _as_float(x)
    out = _result(out, x.shape, x.dtype)
    if approximate == "tanh":
        return _chunked(_gelu_tanh_forward, (x,), out, scratch=1)
    return _chunked(_gelu_erf_forward, (x,), out, scratch=2, fills=(2 * ERF32_CLAMP,))


#: gelu's float32 backward reads Phi(x) = y / x as (|y| + d) / (|x| + 2 d), d = _PHI_NUDGE (y has x's sign):
#: exactly 1/2 at x = 0, and off by at most 0.8 d anywhere (|1 - 2 Phi(x)| <= 0.8 |x|).
_PHI_NUDGE = 2.0**-60


def _gelu_erf_backward32(x, y, g, out, t, floor):
    dt = out.dtype.str
    np.abs(y, out=out)
    np.add(out, _k(_PHI_NUDGE, dt), out=out)
    np.abs(x, out=t)
    np.add(t, _k(2 * _PHI_NUDGE, dt), out=t)
    np.divide(out, t, out=out)  # Phi(x)
    np.multiply(t, t, out=t)  # x^2 to within 4 d |x|
    np.multiply(t, _k(-0.5, dt), out=t)
    np.maximum(t, floor, out=t)
    np.exp(t, out=t)
    np.multiply(t, x, out=t)
    np.multiply(t, _k(_INV_SQRT_2PI, dt), out=t)  # x phi(x)
    np.add(out, t, out=out)
    np.multiply(out, g, out=out)


def _gelu_erf_backward(x, g, out, tmp):
    np.multiply(x, _SQRT1_2, out=tmp)
    _erf_core(tmp, tmp)
    tmp += 1
    tmp *= 0.5  # Phi(x)
    np.multiply(x, x, out=out)
    out *= -0.5
    np.maximum(out, _tiny_exponent(out.dtype), out=out)
    np.exp(out, out=out)
    out *= x
    out *= _INV_SQRT_2PI  # x * phi(x)
    out += tmp
    out *= g


def _gelu_tanh_backward(x, g, out, s, t):
    # 14 passes: T = tanh(u), u = x (c + c kappa x^2); k = 0.5 x du/dx = x (c/2 + 1.5 c kappa x^2)
    dt = out.dtype.str
    np.multiply(x, x, out=s)
    np.multiply(s, _k(_SQRT_2_OVER_PI * _GELU_KAPPA, dt), out=out)
    np.add(out, _k(_SQRT_2_OVER_PI, dt), out=out)
    np.multiply(out, x, out=out)
    np.tanh(out, out=out)
    np.multiply(s, _k(1.5 * _SQRT_2_OVER_PI * _GELU_KAPPA, dt), out=s)
    np.add(s, _k(0.5 * _SQRT_2_OVER_PI, dt), out=s)
    np.multiply(s, x, out=s)
    # dy/dx = 0.5 (1 + T) + k (1 - T^2) = (1 + T) (0.5 + k (1 - T))
    np.subtract(_k(1, dt), out, out=t)
    np.multiply(t, s, out=t)
    np.add(t, _k(0.5, dt), out=t)
    np.add(out, _k(1, dt), out=out)
    np.multiply(out, t, out=out)
    np.multiply(out, g, out=out)


def gelu_backward(x, y, g, out=None, *, approximate="none"):
    """dx = g * (Phi(x) + x phi(x)); tanh form: g * (0.5 (1 + T) + 0.5 x (1 - T^2) sqrt(2/pi) (1 + 3*0.044715 x^2)).

    float32 (erf form) reads y: Phi(x) = y / x, taken as (|y| + d) / (|x| + 2 d) with d = 2^-60 (1/2 at
    x = 0, within 1e-18 of y / x elsewhere), so the backward needs no erf: 13 passes, where recomputing
    Phi would take 19. float64 recomputes Phi with Cody's erf. The tanh form takes 14 passes.
    """
    x, g = _as_float(x), _as_float(g)
    out = _result(out, g.shape, g.dtype)
    if approximate == "tanh":
        return _chunked(_gelu_tanh_backward, (x, g), out, scratch=2)
    if out.dtype == np.float32 and x.dtype == np.float32:
        y = _as_float(y)
        return _chunked(_gelu_erf_backward32, (x, y, g), out, scratch=1, fills=(_tiny_exponent(np.float32),))
    return _chunked(_gelu_erf_backward, (x, g), out, scratch=1)


def _silu_forward(x, out, tmp):
    dt = out.dtype.str
    np.multiply(x, _k(0.5, dt), out=out)
    np.tanh(out, out=tmp)
    np.multiply(tmp, out, out=tmp)
    np.add(out, tmp, out=out)  # x/2 (1 + tanh(x/2)) = x sigmoid(x)


def silu_forward(x, out=None):
    """y = x * sigmoid(x), computed as (x/2)(1 + tanh(x/2)): four passes.

    Elfwing, Uchibe & Doya 2017 (SiLU); Ramachandran, Zoph & Le 2017 (Swish with beta = 1); Hendrycks &
    Gimpel 2016.
    """
    x = _as_float(x)
    return _chunked(_silu_forward, (x,), _result(out, x.shape, x.dtype), scratch=1)


def _sigmoid_into(x, out):
    dt = out.dtype.str
    np.multiply(x, _k(0.5, dt), out=out)
    np.tanh(out, out=out)
    np.multiply(out, _k(0.5, dt), out=out)
    np.add(out, _k(0.5, dt), out=out)


def _silu_backward(x, y, g, out, tmp):
    # 8 passes: dy/dx = s + y (1 - s), s = (1 + T) / 2, T = tanh(x / 2), as ((1 + T) + y (1 - T)) / 2
    dt = out.dtype.str
    np.multiply(x, _k(0.5, dt), out=out)
    np.tanh(out, out=out)
    np.subtract(_k(1, dt), out, out=tmp)
    np.multiply(tmp, y, out=tmp)
    np.add(out, _k(1, dt), out=out)
    np.add(out, tmp, out=out)
    np.multiply(out, g, out=out)
    np.multiply(out, _k(0.5, dt), out=out)


def silu_backward(x, y, g, out=None):
    """dx = g * (s + y (1 - s)), s = sigmoid(x) (reads y = x s: one tanh, no second product with x)."""
    x, y, g = _as_float(x), _as_float(y), _as_float(g)
    return _chunked(_silu_backward, (x, y, g), _result(out, g.shape, g.dtype), scratch=1)


def _softplus_stable(beta: float, threshold: float, dtype) -> bool:
    """True when max(x, 0) + log1p(exp(-|x|)) already rounds to x for every x > threshold (beta = 1), so
    the threshold needs no select: exp(-t) below half an ulp of t from t = 15 in float32, 37 in float64."""
    return beta == 1 and threshold >= (15.0 if np.dtype(dtype) == np.float32 else 37.0)


def _softplus_forward_stable(x, out, t, zero, floor):
    # 7 passes: y = max(x, 0) + log1p(exp(-|x|)), the exponent clamped where exp would underflow
    np.abs(x, out=t)
    np.negative(t, out=t)
    np.maximum(t, floor, out=t)
    np.exp(t, out=t)
    np.log1p(t, out=t)
    np.maximum(x, zero, out=out)
    np.add(out, t, out=out)


def _softplus_forward(x, out, m, mx, *, beta, threshold):
    dt = out.dtype.str
    np.multiply(x, _k(beta, dt), out=out)
    np.greater(out, threshold, out=m)
    # Below the floor exp(beta x) would underflow; above the threshold the log1p branch is not used.
    floor = _tiny_exponent(out.dtype) + max(0.0, math.log(beta))
    np.clip(out, min(floor, threshold), threshold, out=out)
    np.exp(out, out=out)
    np.log1p(out, out=out)
    if beta != 1:
        np.divide(out, _k(beta, dt), out=out)
    # exact select with the 0/1 mask m: y = log1p-branch * (1 - m) + x * m
    np.multiply(m, x, out=mx)
    np.subtract(_k(1, dt), m, out=m)
    np.multiply(out, m, out=out)
    np.add(out, mx, out=out)


def softplus_forward(x, out=None, *, beta=1.0, threshold=20.0):
    """y = log(1 + exp(beta x)) / beta, and y = x where beta x > threshold (exactly as torch).

    With beta = 1 and a threshold past which log1p(exp(-x)) is below half an ulp of x (15 in float32,
    37 in float64; torch's default is 20) as max(x, 0) + log1p(exp(-|x|)) in seven passes, which is x
    itself above the threshold; otherwise with the threshold's select (eleven passes).

    Dugas, Bengio, Belisle, Nadeau & Garcia 2001, "Incorporating second-order functional knowledge for
    better option pricing"; Glorot, Bordes & Bengio 2011, "Deep sparse rectifier neural networks".
    """
    x = _as_float(x)
    out = _result(out, x.shape, x.dtype)
    if _softplus_stable(beta, threshold, out.dtype):
        return _chunked(_softplus_forward_stable, (x,), out, scratch=1, fills=(0.0, _tiny_exponent(out.dtype)))
    core = functools.partial(_softplus_forward, beta=beta, threshold=threshold)
    return _chunked(core, (x,), out, scratch=2)


def _softplus_backward_stable(x, g, out):
    _sigmoid_into(x, out)  # exactly 1 past the threshold: tanh(x / 2) rounds to 1 from x = 18 (float32)
    np.multiply(out, g, out=out)


def _softplus_backward(x, y, g, out, m, *, beta, threshold):
    dt = out.dtype.str
    np.multiply(y, _k(-beta, dt), out=out)
    np.expm1(out, out=out)  # -sigmoid(beta x), since exp(-beta y) = 1 - sigmoid(beta x)
    np.negative(out, out=out)
    np.multiply(x, _k(beta, dt), out=m)
    np.greater(m, threshold, out=m)
    np.maximum(out, m, out=out)  # exactly 1 where beta x > threshold (sigmoid <= 1)
    np.multiply(out, g, out=out)


def softplus_backward(x, y, g, out=None, *, beta=1.0, threshold=20.0):
    """dx = g * sigmoid(beta x); g where beta x > threshold.

    In softplus_forward's stable case as g (0.5 tanh(x/2) + 0.5) (five passes); otherwise as
    g * (1 - exp(-beta y)) (reads y: no overflow) with the threshold's select.
    """
    x, y, g = _as_float(x), _as_float(y), _as_float(g)
    out = _result(out, g.shape, g.dtype)
    if _softplus_stable(beta, threshold, out.dtype):
        return _chunked(_softplus_backward_stable, (x, g), out)
    core = functools.partial(_softplus_backward, beta=beta, threshold=threshold)
    return _chunked(core, (x, y, g), out, scratch=1)


def sigmoid_forward(x, out=None):
    """y = 1 / (1 + exp(-x)), computed as 0.5 tanh(x/2) + 0.5 (no overflow, faster in float32): four passes.

    The logistic unit (e.g. Rumelhart, Hinton & Williams 1986). Absolute error ~1 ulp of 1: in the far
    negative tail (x < -17 in float32, -37 in float64) the result is 0 rather than a tiny positive number.
    """
    x = _as_float(x)
    return _chunked(_sigmoid_into, (x,), _result(out, x.shape, x.dtype))


def _sigmoid_backward(y, g, out):
    np.subtract(_k(1, out.dtype.str), y, out=out)
    np.multiply(out, y, out=out)
    np.multiply(out, g, out=out)


def sigmoid_backward(x, y, g, out=None):
    """dx = g * y (1 - y) (reads y): three passes."""
    y, g = _as_float(y), _as_float(g)
    return _chunked(_sigmoid_backward, (y, g), _result(out, g.shape, g.dtype))


def _tanh_forward(x, out):
    np.tanh(x, out=out)


def tanh_forward(x, out=None):
    """y = tanh(x) (LeCun, Bottou, Orr & Muller 1998, "Efficient BackProp", on centred activations): one pass."""
    x = _as_float(x)
    return _one_pass(_tanh_forward, x, _result(out, x.shape, x.dtype))


def _tanh_backward(y, g, out):
    np.multiply(y, y, out=out)
    np.subtract(_k(1, out.dtype.str), out, out=out)
    np.multiply(out, g, out=out)


def tanh_backward(x, y, g, out=None):
    """dx = g * (1 - y^2) (reads y): three passes."""
    y, g = _as_float(y), _as_float(g)
    return _chunked(_tanh_backward, (y, g), _result(out, g.shape, g.dtype))


def _sin_forward(x, out):
    np.sin(x, out=out)


def sin_forward(x, out=None):
    """y = sin(x): a periodic, non-monotonic activation (Sitzmann et al. 2020, SIREN; Parascandolo et al. 2016)."""
    x = _as_float(x)
    return _one_pass(_sin_forward, x, _result(out, x.shape, x.dtype))


def _sin_backward(x, g, out):
    np.cos(x, out=out)
    np.multiply(out, g, out=out)


def sin_backward(x, y, g, out=None):
    """dx = g * cos(x): two passes."""
    x, g = _as_float(x), _as_float(g)
    return _chunked(_sin_backward, (x, g), _result(out, g.shape, g.dtype))


def _maxout_groups(x, pieces: int) -> np.ndarray:
    if pieces < 1 or x.shape[-1] % pieces:
        raise DlbenchError(f"maxout with {pieces} pieces needs a last axis divisible by {pieces}, got {x.shape[-1]}")
    return x.reshape(*x.shape[:-1], x.shape[-1] // pieces, pieces)


def maxout_forward(x, out=None, *, pieces=2):
    """y_j = max(x_{jk}, ..., x_{jk+k-1}): the last axis W*k -> W, groups of k = pieces consecutive units.

    Goodfellow, Warde-Farley, Mirza, Courville & Bengio 2013, "Maxout networks".
    """
    x = _as_float(x)
    groups = _maxout_groups(x, pieces)
    out = _result(out, groups.shape[:-1], x.dtype)
    if pieces == 1:
        np.copyto(out, x)
        return out
    # strided maxima of the k pieces beat a reduction over a short last axis
    np.maximum(groups[..., 0], groups[..., 1], out=out)
    for j in range(2, pieces):
        np.maximum(out, groups[..., j], out=out)
    return out


def maxout_backward(x, y, g, out=None, *, pieces=2):
    """dx_{jk+i} = g_j where i is the first argmax within group j (as torch's max), 0 elsewhere (reads y)."""
    x, y, g = _as_float(x), _as_float(y), _as_float(g)
    groups = _maxout_groups(x, pieces)
    out = _result(out, x.shape, g.dtype)
    out_groups = out.reshape(groups.shape) if out.flags.c_contiguous else np.empty(groups.shape, g.dtype)
    # piece j wins where it equals the max and no earlier piece did; the last one wherever none did
    # (a short loop over the k pieces)
    hit = np.empty(y.shape, dtype=bool)
    free = np.ones(y.shape, dtype=bool)
    for j in range(pieces - 1):
        np.equal(groups[..., j], y, out=hit)
        hit &= free
        np.multiply(g, hit, out=out_groups[..., j])
        np.logical_not(hit, out=hit)
        free &= hit
    np.multiply(g, free, out=out_groups[..., pieces - 1])
    if not out.flags.c_contiguous:
        np.copyto(out, out_groups.reshape(x.shape))
    return out


# ---------------------------------------------------------------------------------------------------------
# Registry
# ---------------------------------------------------------------------------------------------------------

ACTIVATIONS: Registry[Activation] = Registry("activation")
_BUILDERS: dict[str, Callable[..., Activation]] = {}
_DEFAULTS: dict[str, dict] = {}


def _number(name: str, key: str, value, *, positive: bool = False) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise DlbenchError(f"activation {name}: {key} must be a number, got {value!r}") from None
    if not math.isfinite(v) or (positive and v <= 0):
        kind = "positive" if positive else "finite"
        raise DlbenchError(f"activation {name}: {key} must be a {kind} number, got {value!r}")
    return v


def _defines(name: str, **defaults):
    """Register the builder `fn(**hyper) -> Activation` under name, with its default entry."""

    def register(fn):
        _BUILDERS[name] = fn
        _DEFAULTS[name] = defaults
        ACTIVATIONS.add(name, fn(**defaults))
        return fn

    return register


def _plain(name, forward, backward):
    return Activation(name, forward, backward, MappingProxyType({}))


@_defines("identity")
def _identity():
    return _plain("identity", identity_forward, identity_backward)


@_defines("relu")
def _relu():
    return _plain("relu", relu_forward, relu_backward)


@_defines("leaky_relu", negative_slope=0.01)
def _leaky_relu(negative_slope):
    a = _number("leaky_relu", "negative_slope", negative_slope)
    return Activation("leaky_relu", functools.partial(leaky_relu_forward, negative_slope=a),
                      functools.partial(leaky_relu_backward, negative_slope=a),
                      MappingProxyType({"negative_slope": a}))


@_defines("prelu", init=0.25)
def _prelu(init):
    w0 = _number("prelu", "init", init)
    return Activation("prelu", prelu_forward, prelu_backward, MappingProxyType({"init": w0}),
                      init_params=functools.partial(prelu_init_params, init=w0), param_grads=prelu_param_grads)


@_defines("elu", alpha=1.0)
def _elu(alpha):
    a = _number("elu", "alpha", alpha)
    return Activation("elu", functools.partial(elu_forward, alpha=a), functools.partial(elu_backward, alpha=a),
                      MappingProxyType({"alpha": a}))


@_defines("selu")
def _selu():
    return _plain("selu", selu_forward, selu_backward)


@_defines("gelu", approximate="none")
def _gelu(approximate):
    if approximate not in ("none", "tanh"):
        raise DlbenchError(f"activation gelu: approximate must be 'none' or 'tanh', got {approximate!r}")
    return Activation("gelu", functools.partial(gelu_forward, approximate=approximate),
                      functools.partial(gelu_backward, approximate=approximate),
                      MappingProxyType({"approximate": approximate}))


@_defines("silu")
def _silu():
    return _plain("silu", silu_forward, silu_backward)


@_defines("softplus", beta=1.0, threshold=20.0)
def _softplus(beta, threshold):
    b = _number("softplus", "beta", beta, positive=True)
    t = _number("softplus", "threshold", threshold)
    return Activation("softplus", functools.partial(softplus_forward, beta=b, threshold=t),
                      functools.partial(softplus_backward, beta=b, threshold=t),
                      MappingProxyType({"beta": b, "threshold": t}))


@_defines("sigmoid")
def _sigmoid():
    return _plain("sigmoid", sigmoid_forward, sigmoid_backward)


@_defines("tanh")
def _tanh():
    return _plain("tanh", tanh_forward, tanh_backward)


@_defines("sin")
def _sin():
    return _plain("sin", sin_forward, sin_backward)


@_defines("maxout", pieces=2)
def _maxout(pieces):
    k = _number("maxout", "pieces", pieces)
    if k != int(k) or k < 1:
        raise DlbenchError(f"activation maxout: pieces must be a positive integer, got {pieces!r}")
    k = int(k)
    return Activation("maxout", functools.partial(maxout_forward, pieces=k),
                      functools.partial(maxout_backward, pieces=k), MappingProxyType({"pieces": k}), pieces=k)


#: Ramachandran et al.'s name for silu; the same entry (its .name is "silu").
ACTIVATIONS.add("swish", ACTIVATIONS["silu"])


def get_activation(name: str, **hyper) -> Activation:
    """The registry entry `name` with the given hyperparameters re-bound (the others keep torch's defaults).

    Raises UnknownName for a name not in ACTIVATIONS and DlbenchError for an unknown or invalid
    hyperparameter.
    """
    entry = ACTIVATIONS[name]
    if not hyper:
        return entry
    defaults = _DEFAULTS[entry.name]
    unknown = sorted(set(hyper) - set(defaults))
    if unknown:
        valid = ", ".join(defaults) or "none"
        raise DlbenchError(f"activation {name} has no hyperparameter {unknown[0]!r}; valid: {valid}")
    return _BUILDERS[entry.name](**{**entry.hyper, **hyper})
