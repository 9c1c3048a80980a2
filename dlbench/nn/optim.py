"""Optimizers with torch.optim's names, defaults and update rules, as explicit-state init/step pairs.

An optimizer is ``Optimizer(name, hyper, init, step, words_per_param)``:

    state = opt.init(params)                 # params: list of float arrays
    state = opt.step(params, grads, state)   # params and the state's arrays are updated IN PLACE

``opt.bytes_per_param(np.float32)`` is what one step must move per parameter element (28 for Adam: read p,
g, m, v; write p, m, v), the figure a bandwidth fraction divides by.

The state is a NamedTuple (step count + lists of arrays named as torch's ``optimizer.state`` keys, plus a
``scratch`` list of work buffers whose contents mean nothing between steps), so a step allocates no
parameter-sized array. ``grads`` are never modified.

Every hyperparameter may be a scalar or an array broadcastable to each parameter: with params of shape
(d, P) holding P independent runs as columns, ``lr`` of shape (1, P) runs P learning rates in one step;
with replica-first MLP params, ``lr`` of shape (S, 1, 1) gives one per replica.

Diverging runs are not guarded: an overflow gives inf/nan (and NumPy's RuntimeWarning) as in torch;
callers that expect divergence wrap their loop in ``np.errstate``.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Sequence
from typing import NamedTuple

import numpy as np

from dlbench.errors import DlbenchError
from dlbench.nn.parallel import parts_for, run_parts, split
from dlbench.registry import Registry

Hyper = float | np.ndarray


class Optimizer(NamedTuple):
    """One optimizer with its hyperparameters bound.

    words_per_param: parameter-sized arrays one step reads plus writes, per element of a parameter: p and g
    read, p written, and each state array it keeps (momentum buffer, moments, ...) read and written, so
    3 + 2 * (state arrays). It is what a step must move at the least; `bytes_per_param` turns it into bytes.
    Every factory states it: the field has no default.
    """

    name: str
    hyper: dict
    init: Callable  # init(params) -> state
    step: Callable  # step(params, grads, state) -> state
    words_per_param: int

    def bytes_per_param(self, dtype=np.float32) -> int:
        """Bytes one step moves per parameter element of `dtype`: words_per_param * itemsize."""
        return self.words_per_param * np.dtype(dtype).itemsize


def _words(state_arrays: int) -> int:
    """words_per_param of a step keeping `state_arrays` parameter-sized arrays (see Optimizer)."""
    return 3 + 2 * state_arrays


class SGDState(NamedTuple):
    step: int
    momentum_buffer: list  # one per param; [] without momentum
    scratch: list  # one (1, *shape) work array per param


class AdagradState(NamedTuple):
    step: int
    sum: list  # running sum of squared gradients, starts at initial_accumulator_value
    scratch: list  # one (k, *shape) work array per param


class RMSpropState(NamedTuple):
    step: int
    square_avg: list
    momentum_buffer: list  # [] when momentum == 0
    grad_avg: list  # [] unless centered
    scratch: list


class AdamState(NamedTuple):
    step: int
    exp_avg: list  # m, first moment
    exp_avg_sq: list  # v, second moment
    max_exp_avg_sq: list  # running max of v; [] unless amsgrad
    scratch: list


OPTIMIZERS: Registry[Callable[..., Optimizer]] = Registry("optimizer")


# --------------------------------------------------------------------------- hyperparameters


def _hyper(opt: str, key: str, value, low: float | None = 0.0, below: float | None = None) -> Hyper:
    """A hyperparameter as a Python float (scalar) or float64 array; out of [low, below) -> DlbenchError."""
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise DlbenchError(f"{opt}: {key} must be a number or an array of numbers, got {value!r}") from None
    if not np.all(np.isfinite(arr)):
        raise DlbenchError(f"{opt}: {key} must be finite, got {value!r}")
    if low is not None and np.any(arr < low):
        raise DlbenchError(f"{opt}: {key} must be >= {low:g}, got {value!r}")
    if below is not None and np.any(arr >= below):
        raise DlbenchError(f"{opt}: {key} must be < {below:g}, got {value!r}")
    return float(arr) if arr.ndim == 0 else arr


def _betas(opt: str, betas) -> tuple[Hyper, Hyper]:
    try:
        b1, b2 = betas
    except (TypeError, ValueError):
        raise DlbenchError(f"{opt}: betas must be a pair (beta1, beta2), got {betas!r}") from None
    return _hyper(opt, "betas[0]", b1, 0.0, 1.0), _hyper(opt, "betas[1]", b2, 0.0, 1.0)


def _nonzero(h: Hyper) -> bool:
    return bool(np.any(h != 0))


def _cast(h: Hyper, dtype) -> Hyper:
    return h if h.__class__ is float else h.astype(dtype, copy=False)


def _for_dtype(consts: tuple, dtype, zero_d: bool = False) -> tuple:
    """Per-step constants as ufunc operands of a param's dtype: float32 params with float64 hyper arrays would
    run a slow mixed loop. With `zero_d`, scalars too become 0-d arrays: a ufunc call takes one in a third of
    the time a Python float costs (~0.3 against ~0.9 us), which pays when each is used once per block.
    Flags (bools) pass through."""
    if zero_d:
        return tuple(c if isinstance(c, bool) else np.asarray(c, dtype=dtype) for c in consts)
    if dtype == np.float64:
        return consts
    return tuple(c.astype(dtype, copy=False) if isinstance(c, np.ndarray) else c for c in consts)


def _sqrt(h: Hyper) -> Hyper:
    return math.sqrt(h) if h.__class__ is float else np.sqrt(h)


def _check_params(opt: str, params: Sequence[np.ndarray], hyper: dict) -> list[np.ndarray]:
    """Params must be float arrays and every array hyperparameter must broadcast TO each param's shape."""
    params = list(params)
    arrays = [(k, v) for k, v in _flat_hyper(hyper) if isinstance(v, np.ndarray)]
    for i, p in enumerate(params):
        if not isinstance(p, np.ndarray) or p.dtype.kind != "f":
            raise DlbenchError(f"{opt}: parameter {i} must be a float ndarray, got {type(p).__name__}")
        for key, h in arrays:
            try:
                ok = np.broadcast_shapes(h.shape, p.shape) == p.shape
            except ValueError:
                ok = False
            if not ok:
                raise DlbenchError(
                    f"{opt}: {key} of shape {h.shape} does not broadcast to parameter {i} of shape {p.shape}")
    return params


def _flat_hyper(hyper: dict):
    for k, v in hyper.items():
        if isinstance(v, tuple):
            yield from ((f"{k}[{j}]", x) for j, x in enumerate(v))
        else:
            yield k, v


def _scratch(params: list[np.ndarray], k: int) -> list[np.ndarray]:
    return [np.empty((k, *p.shape), dtype=p.dtype) for p in params]


#: Elements per block when a large update is run block by block. A block of Adam's six arrays (1.5 MB in
#: float32) overflows a 1 MiB private cache, but smaller blocks lose more to NumPy's per-call cost (~0.3 us
#: a ufunc call, a dozen calls a block) than they gain: 16k-element blocks measured 15-25 % slower.
BLOCK = 65536


def _run(kernel: Callable, arrays: Sequence, consts: tuple, scratch: Sequence[int]) -> None:
    """kernel(arrays, consts) on whole arrays, or over BLOCK-element pieces of their flat views.

    An update makes 10-14 passes over its arrays; once they outgrow the cache (>= 4 blocks) each pass
    would stream from memory, so same-shape C-contiguous arrays with scalar constants go block by block:
    each block's passes then run in cache and only its first read and last write reach memory (Adam over
    1e7 float32 parameters: half the time of whole-array passes). The arrays at positions `scratch` (work arrays) are replaced by block-sized ones, reused
    from block to block. Under `kernel_threads(n)` the blocks are dealt out in n contiguous runs; blocks are
    independent, so the result is the same for every n.
    """
    p = arrays[0]
    n = p.size
    if n < 4 * BLOCK or any(isinstance(c, np.ndarray) for c in consts) or not all(
            a.shape == p.shape and a.flags.c_contiguous for a in arrays):
        kernel(arrays, _for_dtype(consts, p.dtype))
        return
    consts = _for_dtype(consts, p.dtype, zero_d=True)
    flat = [a.reshape(-1) for a in arrays]

    def run(part: slice) -> None:
        work = {i: np.empty(BLOCK, dtype=arrays[i].dtype) for i in scratch}
        for i in range(part.start, part.stop, BLOCK):
            j = min(i + BLOCK, part.stop)
            kernel([work[k][: j - i] if k in work else f[i:j] for k, f in enumerate(flat)], consts)

    run_parts(run, split(n, parts_for(n), BLOCK))


# --------------------------------------------------------------------------- SGD


def _sgd(name, lr, momentum, dampening, weight_decay, nesterov) -> Optimizer:
    lr = _hyper(name, "lr", lr)
    mu = _hyper(name, "momentum", momentum)
    damp = _hyper(name, "dampening", dampening, low=None)
    wd = _hyper(name, "weight_decay", weight_decay)
    nesterov = bool(nesterov)
    if nesterov and (np.any(mu <= 0) or _nonzero(damp)):
        raise DlbenchError(f"{name}: nesterov momentum requires momentum > 0 and dampening = 0")
    hyper = dict(lr=lr, momentum=mu, dampening=damp, weight_decay=wd, nesterov=nesterov)
    use_mom, use_wd = _nonzero(mu), _nonzero(wd)
    if isinstance(mu, np.ndarray) and use_mom:
        # torch applies no dampening where momentum is 0 (there the buffer is just the gradient)
        damp = np.where(mu == 0, 0.0, damp)
    keep = 1.0 - damp
    use_damp = _nonzero(damp)
    lr_mu = lr * mu

    def init(params):
        params = _check_params(name, params, hyper)
        bufs = [np.zeros_like(p) for p in params] if use_mom else []
        return SGDState(0, bufs, _scratch(params, 1))

    def kernel(A, C):
        p, g, s = A[0], A[1], A[2]
        c_lr, c_mu, c_keep, c_wd, c_lr_mu, first = C
        if use_wd:
            np.multiply(p, c_wd, s)
            np.add(s, g, out=s)
            g = s
        if use_mom:
            buf = A[3]
            if first:
                np.copyto(buf, g)
            else:
                np.multiply(buf, c_mu, out=buf)
                if use_damp:
                    np.multiply(g, c_keep, s)
                    np.add(buf, s, out=buf)
                else:
                    np.add(buf, g, out=buf)
            if nesterov:
                if g is s:  # p -= lr*g + lr*mu*buf, in two passes so one scratch suffices
                    np.multiply(s, c_lr, out=s)
                    np.subtract(p, s, out=p)
                    np.multiply(buf, c_lr_mu, s)
                else:
                    np.multiply(buf, c_mu, s)
                    np.add(s, g, out=s)
                    np.multiply(s, c_lr, out=s)
                np.subtract(p, s, out=p)
                return
            g = buf
        np.multiply(g, c_lr, s)
        np.subtract(p, s, out=p)

    def step(params, grads, state):
        t = state.step + 1
        bufs = state.momentum_buffer
        consts = (lr, mu, keep, wd, lr_mu)
        for i, p in enumerate(params):
            c = consts
            A = (p, grads[i], state.scratch[i][0], bufs[i]) if use_mom else (p, grads[i], state.scratch[i][0])
            _run(kernel, A, (*c, t == 1), (2,))
        return SGDState(t, bufs, state.scratch)

    return Optimizer(name, hyper, init, step, _words(int(use_mom)))


@OPTIMIZERS.register("sgd")
def sgd(lr=1e-3, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False) -> Optimizer:
    """Stochastic gradient descent with optional momentum (torch.optim.SGD).

        g <- g + weight_decay * p
        buf <- g                                   (step 1)
        buf <- momentum * buf + (1 - dampening) * g  (later steps)
        g <- g + momentum * buf   if nesterov  else  g <- buf
        p <- p - lr * g

    Nesterov as reformulated by Sutskever, Martens, Dahl & Hinton (2013); it needs momentum > 0 and
    dampening = 0. Without momentum no buffer is kept and p <- p - lr * g.

    Passes per block: 2 (lr * g, subtract); momentum adds 2 (3 with dampening), nesterov 2, weight decay 2.
    """
    return _sgd("sgd", lr, momentum, dampening, weight_decay, nesterov)


@OPTIMIZERS.register("momentum")
def momentum(lr=1e-3, momentum=0.9, dampening=0.0, weight_decay=0.0) -> Optimizer:
    """Heavy-ball momentum (Polyak 1964): `sgd` with momentum=0.9."""
    return _sgd("momentum", lr, momentum, dampening, weight_decay, False)


@OPTIMIZERS.register("nesterov")
def nesterov(lr=1e-3, momentum=0.9, weight_decay=0.0) -> Optimizer:
    """Nesterov momentum: `sgd` with momentum=0.9, nesterov=True (g <- g + momentum * buf)."""
    return _sgd("nesterov", lr, momentum, 0.0, weight_decay, True)


# --------------------------------------------------------------------------- Adagrad


@OPTIMIZERS.register("adagrad")
def adagrad(lr=1e-2, lr_decay=0.0, weight_decay=0.0, initial_accumulator_value=0.0, eps=1e-10) -> Optimizer:
    """Adagrad (Duchi, Hazan & Singer 2011; torch.optim.Adagrad), per coordinate:

        clr = lr / (1 + (t - 1) * lr_decay)
        g <- g + weight_decay * p
        sum <- sum + g^2                       (sum starts at initial_accumulator_value)
        p <- p - clr * g / (sqrt(sum) + eps)

    Under a constant gradient the step is clr / sqrt(t): the accumulated sum only grows, so steps shrink.
    Passes per block: 7 (g^2, sum +=, sqrt, + eps, divide, scale, subtract), two more with weight decay.
    """
    name = "adagrad"
    lr = _hyper(name, "lr", lr)
    lr_decay = _hyper(name, "lr_decay", lr_decay)
    wd = _hyper(name, "weight_decay", weight_decay)
    acc0 = _hyper(name, "initial_accumulator_value", initial_accumulator_value)
    eps = _hyper(name, "eps", eps)
    hyper = dict(lr=lr, lr_decay=lr_decay, weight_decay=wd, initial_accumulator_value=acc0, eps=eps)
    use_wd = _nonzero(wd)

    def init(params):
        params = _check_params(name, params, hyper)
        sums = [np.empty_like(p) for p in params]
        for s in sums:
            s[...] = acc0
        return AdagradState(0, sums, _scratch(params, 2 if use_wd else 1))

    def kernel(A, C):
        p, g, ssum, s = A[0], A[1], A[2], A[3]
        c_clr, c_wd, c_eps = C
        if use_wd:
            gw = A[4]
            np.multiply(p, c_wd, gw)
            np.add(gw, g, out=gw)
            g = gw
        np.multiply(g, g, s)
        np.add(ssum, s, out=ssum)
        np.sqrt(ssum, s)
        np.add(s, c_eps, out=s)
        np.divide(g, s, s)
        np.multiply(s, c_clr, out=s)
        np.subtract(p, s, out=p)

    def step(params, grads, state):
        t = state.step + 1
        consts = (lr / (1.0 + (t - 1) * lr_decay), wd, eps)
        for i, p in enumerate(params):
            sc = state.scratch[i]
            A = (p, grads[i], state.sum[i], sc[0], sc[1]) if use_wd else (p, grads[i], state.sum[i], sc[0])
            _run(kernel, A, consts, (3, 4) if use_wd else (3,))
        return AdagradState(t, state.sum, state.scratch)

    return Optimizer(name, hyper, init, step, _words(1))


# --------------------------------------------------------------------------- RMSprop


@OPTIMIZERS.register("rmsprop")
def rmsprop(lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0, centered=False) -> Optimizer:
    """RMSprop (Hinton, Coursera lecture 6e, 2012; centered form: Graves 2013; torch.optim.RMSprop):

        g <- g + weight_decay * p
        square_avg <- alpha * square_avg + (1 - alpha) * g^2
        centered:  grad_avg <- alpha * grad_avg + (1 - alpha) * g;  avg = sqrt(square_avg - grad_avg^2) + eps
        else:      avg = sqrt(square_avg) + eps
        momentum > 0:  buf <- momentum * buf + g / avg;  p <- p - lr * buf
        else:          p <- p - lr * g / avg

    The centered variance is clamped at 0 before the sqrt (rounding can make it -1e-17, where torch gives nan).
    Passes per block: 9 (square_avg in 4, then sqrt, + eps, divide, scale, subtract); momentum adds 2, centered 6.
    """
    name = "rmsprop"
    lr = _hyper(name, "lr", lr)
    alpha = _hyper(name, "alpha", alpha)
    eps = _hyper(name, "eps", eps)
    wd = _hyper(name, "weight_decay", weight_decay)
    mu = _hyper(name, "momentum", momentum)
    centered = bool(centered)
    hyper = dict(lr=lr, alpha=alpha, eps=eps, weight_decay=wd, momentum=mu, centered=centered)
    use_wd, use_mom = _nonzero(wd), _nonzero(mu)
    consts = (lr, alpha, 1.0 - alpha, eps, wd, mu)

    def init(params):
        params = _check_params(name, params, hyper)
        return RMSpropState(
            0,
            [np.zeros_like(p) for p in params],
            [np.zeros_like(p) for p in params] if use_mom else [],
            [np.zeros_like(p) for p in params] if centered else [],
            _scratch(params, 2 if use_wd else 1),
        )

    def kernel(A, C):
        # A = (p, g, square_avg, s, [gw], [momentum_buffer], [grad_avg])
        p, g, sq, s = A[0], A[1], A[2], A[3]
        c_lr, c_alpha, c_keep, c_eps, c_wd, c_mu = C
        k = 4
        if use_wd:
            gw = A[k]
            k += 1
            np.multiply(p, c_wd, gw)
            np.add(gw, g, out=gw)
            g = gw
        np.multiply(g, g, s)
        np.multiply(s, c_keep, out=s)
        np.multiply(sq, c_alpha, out=sq)
        np.add(sq, s, out=sq)
        if centered:
            ga = A[-1]
            np.subtract(g, ga, s)  # torch's lerp: ga + (1 - alpha) * (g - ga)
            np.multiply(s, c_keep, out=s)
            np.add(ga, s, out=ga)
            np.multiply(ga, ga, s)
            np.subtract(sq, s, s)
            np.maximum(s, 0.0, out=s)
            np.sqrt(s, s)
        else:
            np.sqrt(sq, s)
        np.add(s, c_eps, out=s)
        np.divide(g, s, s)
        if use_mom:
            buf = A[k]
            np.multiply(buf, c_mu, out=buf)
            np.add(buf, s, out=buf)
            np.multiply(buf, c_lr, s)
        else:
            np.multiply(s, c_lr, out=s)
        np.subtract(p, s, out=p)

    def step(params, grads, state):
        for i, p in enumerate(params):
            sc = state.scratch[i]
            A = [p, grads[i], state.square_avg[i], sc[0]]
            if use_wd:
                A.append(sc[1])
            if use_mom:
                A.append(state.momentum_buffer[i])
            if centered:
                A.append(state.grad_avg[i])
            _run(kernel, A, consts, (3, 4) if use_wd else (3,))
        return RMSpropState(state.step + 1, state.square_avg, state.momentum_buffer, state.grad_avg, state.scratch)

    return Optimizer(name, hyper, init, step, _words(1 + int(use_mom) + int(centered)))


# --------------------------------------------------------------------------- Adam / AdamW


def _adam(name, lr, betas, eps, weight_decay, amsgrad, bias_correction, decoupled) -> Optimizer:
    lr = _hyper(name, "lr", lr)
    b1, b2 = _betas(name, betas)
    eps = _hyper(name, "eps", eps)
    wd = _hyper(name, "weight_decay", weight_decay)
    amsgrad, bias_correction = bool(amsgrad), bool(bias_correction)
    hyper = dict(lr=lr, betas=(b1, b2), eps=eps, weight_decay=wd, amsgrad=amsgrad)
    if not decoupled:
        hyper["bias_correction"] = bias_correction
    use_wd = _nonzero(wd)
    l2 = use_wd and not decoupled
    keep1, keep2 = 1.0 - b1, 1.0 - b2
    decay = 1.0 - lr * wd

    def init(params):
        params = _check_params(name, params, hyper)
        return AdamState(
            0,
            [np.zeros_like(p) for p in params],
            [np.zeros_like(p) for p in params],
            [np.zeros_like(p) for p in params] if amsgrad else [],
            _scratch(params, 2 if l2 else 1),
        )

    def kernel(A, C):
        # A = (p, g, m, v, s, [gw], [max_exp_avg_sq])
        p, g, m, v, s = A[0], A[1], A[2], A[3], A[4]
        c_keep1, c_keep2, c_b2, c_eps, c_coef, c_wd, c_decay = C
        if decoupled:
            if use_wd:
                np.multiply(p, c_decay, out=p)
        elif l2:
            gw = A[5]
            np.multiply(p, c_wd, gw)
            np.add(gw, g, out=gw)
            g = gw
        np.subtract(g, m, s)  # torch's lerp: m + (1 - beta1) * (g - m)
        np.multiply(s, c_keep1, out=s)
        np.add(m, s, out=m)
        np.multiply(g, g, s)
        np.multiply(s, c_keep2, out=s)
        np.multiply(v, c_b2, out=v)
        np.add(v, s, out=v)
        if amsgrad:
            vmax = A[-1]
            np.maximum(vmax, v, out=vmax)
            v = vmax
        np.sqrt(v, s)
        np.add(s, c_eps, out=s)
        np.divide(m, s, s)
        np.multiply(s, c_coef, out=s)
        np.subtract(p, s, out=p)

    def step(params, grads, state):
        t = state.step + 1
        if bias_correction:
            # lr/bc1 * m / (sqrt(v)/sqrt(bc2) + eps) == coef * m / (sqrt(v) + eps*sqrt(bc2)): one pass fewer
            bc2_sqrt = _sqrt(1.0 - b2**t)
            coef = lr / (1.0 - b1**t) * bc2_sqrt
            eps_t = eps * bc2_sqrt
        else:
            coef, eps_t = lr, eps
        consts = (keep1, keep2, b2, eps_t, coef, wd, decay)
        exp_avg, exp_avg_sq, scratch = state.exp_avg, state.exp_avg_sq, state.scratch
        for i, p in enumerate(params):
            sc = scratch[i]
            A = (p, grads[i], exp_avg[i], exp_avg_sq[i], sc[0])
            if l2:
                A += (sc[1],)
            if amsgrad:
                A += (state.max_exp_avg_sq[i],)
            _run(kernel, A, consts, (4, 5) if l2 else (4,))
        return AdamState(t, exp_avg, exp_avg_sq, state.max_exp_avg_sq, scratch)

    return Optimizer(name, hyper, init, step, _words(2 + int(amsgrad)))


@OPTIMIZERS.register("adam")
def adam(lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, amsgrad=False,
         bias_correction=True) -> Optimizer:
    """Adam (Kingma & Ba 2015; AMSGrad: Reddi, Kale & Kumar 2018; torch.optim.Adam):

        g <- g + weight_decay * p                       (L2 penalty, coupled)
        m <- beta1 * m + (1 - beta1) * g
        v <- beta2 * v + (1 - beta2) * g^2
        amsgrad: vmax <- max(vmax, v), used in place of v below
        bc1 = 1 - beta1^t,  bc2 = 1 - beta2^t           (bias_correction=False: bc1 = bc2 = 1)
        p <- p - (lr / bc1) * m / (sqrt(v) / sqrt(bc2) + eps)

    With bias correction the first step is lr * g / (|g| + eps) ~ lr * sign(g); without it (m and v left
    biased towards their zero start) it is lr * (1 - beta1) / sqrt(1 - beta2) * sign(g), ~3.16 lr by default.

    Passes per 64k-element block: 12. m takes 3 (torch's lerp: g - m, scale, add), v 4 (g^2, scale,
    v * beta2, add), the step 5 (sqrt, + eps, divide, scale, subtract): with two-operand ufuncs every
    product and sum of the update is its own pass, and the bias corrections are folded into two per-step
    scalars (coef and eps_t) instead of two more passes. Only the block's first reads of p, g, m, v and
    last writes of p, m, v reach memory: 28 bytes per float32 parameter (bytes_per_param).
    """
    return _adam("adam", lr, betas, eps, weight_decay, amsgrad, bias_correction, decoupled=False)


@OPTIMIZERS.register("adamw")
def adamw(lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2, amsgrad=False) -> Optimizer:
    """AdamW (Loshchilov & Hutter 2019; torch.optim.AdamW): decoupled weight decay, then Adam without L2:

        p <- p * (1 - lr * weight_decay)
        then the `adam` update with weight_decay = 0.
    """
    return _adam("adamw", lr, betas, eps, weight_decay, amsgrad, True, decoupled=True)


def get_optimizer(name: str, **hyper) -> Optimizer:
    """The registered optimizer `name` with hyperparameters bound (torch.optim names and defaults)."""
    factory = OPTIMIZERS[name]
    valid = list(inspect.signature(factory).parameters)
    unknown = [k for k in hyper if k not in valid]
    if unknown:
        raise DlbenchError(f"unknown hyperparameter {unknown[0]!r} for optimizer {name!r}; valid: {', '.join(valid)}")
    return factory(**hyper)


# --------------------------------------------------------------------------- gradient clipping


def _run_layout(g: np.ndarray, run_axes) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(reduced axes, run axes) of `g`, run axes normalised to non-negative and kept in the given order."""
    if run_axes is None:
        return tuple(range(g.ndim)), ()
    runs = tuple(int(a) % g.ndim for a in run_axes) if g.ndim else ()
    if len(set(runs)) != len(runs) or len(runs) != len(tuple(run_axes)):
        raise DlbenchError(f"run_axes {tuple(run_axes)} are not distinct axes of a gradient of shape {g.shape}")
    return tuple(a for a in range(g.ndim) if a not in runs), runs


def _partial_norm(g: np.ndarray, reduce: tuple[int, ...], runs: tuple[int, ...], p: float) -> np.ndarray:
    """sum |g|^p over `reduce` (max |g| for p = inf), as float64 with the run axes in `runs` order."""
    if p == 2.0:
        idx = list(range(g.ndim))
        # einsum reduces without a g*g temporary; float64 accumulation keeps float32 norms accurate
        return np.einsum(g, idx, g, idx, list(runs), dtype=np.float64, casting="safe")
    a = np.abs(g)
    if p == math.inf:
        r = np.max(a, axis=reduce, initial=0.0).astype(np.float64)
    elif p == 1.0:
        r = np.sum(a, axis=reduce, dtype=np.float64)
    else:
        r = np.sum(a.astype(np.float64) ** p, axis=reduce)
    # the remaining axes are in increasing order; put them in `runs` order
    order = np.argsort(np.argsort(runs)) if runs else ()
    return np.transpose(r, order) if runs else r


def clip_grad_norm_(grads: Sequence[np.ndarray], max_norm, norm_type: float = 2.0, run_axes=None):
    """Scale gradients in place so their joint p-norm is at most max_norm (torch.nn.utils.clip_grad_norm_).

        total = (sum over all grads of sum |g|^p)^(1/p)      (max |g| for norm_type = inf)
        g <- g * min(1, max_norm / (total + 1e-6))

    Returns total (the norm before clipping): a float, or with `run_axes` a float64 array over the run axes.
    `run_axes` names the axes that index independent runs, e.g. (1,) for (d, P) params or (0,) for
    replica-first MLP params; the norm and the clip are then per run. Clipping by norm keeps the
    gradient's direction (Pascanu, Mikolov & Bengio 2013). A nan/inf norm propagates into the gradients
    as in torch (error_if_nonfinite=False).
    """
    p = float(norm_type)
    if not p > 0:
        raise DlbenchError(f"norm_type must be > 0 or inf, got {norm_type!r}")
    grads = list(grads)
    if not grads:
        return 0.0 if run_axes is None else np.zeros(0)
    layouts = [_run_layout(g, run_axes) for g in grads]
    parts = [_partial_norm(g, red, runs, p) for g, (red, runs) in zip(grads, layouts)]
    if p == math.inf:
        total = parts[0]
        for r in parts[1:]:
            total = np.maximum(total, r)
    else:
        total = parts[0]
        for r in parts[1:]:
            total = total + r
        total = total ** (1.0 / p)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        coef = np.minimum(max_norm / (total + 1e-6), 1.0)
        if run_axes is None:
            total, coef = float(total), float(coef)
            if coef != 1.0:  # x * 1.0 == x: skip the pass
                for g in grads:
                    g *= coef
            return total
        for g, (_, runs) in zip(grads, layouts):
            shape = [1] * g.ndim
            for a in runs:
                shape[a] = g.shape[a]
            c = np.transpose(coef, np.argsort(runs)).reshape(shape) if runs else coef
            g *= c.astype(g.dtype, copy=False)
    return total


def clip_grad_value_(grads: Sequence[np.ndarray], clip_value) -> None:
    """Clamp every gradient element to [-clip_value, clip_value] in place (torch.nn.utils.clip_grad_value_).

    Unlike clipping by norm this changes the gradient's direction. `clip_value` may be an array
    broadcastable to each gradient (one threshold per run).
    """
    c = _hyper("clip_grad_value_", "clip_value", clip_value)
    for g in grads:
        cc = _cast(c, g.dtype)
        np.clip(g, -cc, cc, out=g)
