"""A second implementation of dlbench's kernels: torch's, when torch imports (it is never a dependency).

A cost verdict measured on dlbench's own kernels is a fact about those kernels; measured on torch's too,
it is a fact about the operation when both agree. This module hands out both implementations of one
operation behind one interface, each a zero-argument callable over inputs the caller prepared, so that
`dlbench.timing.time_kernel` (or `time_interleaved`) times them exactly alike:

    >>> from dlbench import peer, timing
    >>> fns = {impl: peer.kernel("activation", "gelu", x, g, impl=impl) for impl in peer.IMPLS}  # doctest: +SKIP
    >>> with peer.threads(1):                                                                       # doctest: +SKIP
    ...     t = timing.time_kernel(fns["torch"])

Operations (``op``, ``name``, arrays, hyperparameters):

  activation  any ACTIVATIONS name; arrays (x, g) of the same shape, g = dL/dy; hyperparameters as
              `get_activation` takes them. One call = forward then backward, dx returned.
              dlbench: forward(x, out=y), backward(x, y, g, out=dx) into buffers made once.
              torch: torch.nn.functional's forward and aten's backward (what autograd runs), allocating
              their results as torch does.
  norm        batch, layer, instance or group; arrays (x, g) of shape (N, F); hyperparameters as
              `get_norm` takes them (eps, momentum, channels, num_groups). One call = forward in
              training mode (batch norm's running statistics updated) then backward (dx, dweight, dbias).
              dlbench: forward(out=y, reuse=previous cache), backward(out=dx).
              torch: aten.native_<kind>_norm and its backward (the kernels autograd calls, without the
              graph), weight 1 and bias 0 as the dlbench side.
  optimizer   any OPTIMIZERS name; arrays (params, grads), two lists of float arrays; hyperparameters as
              `get_optimizer` takes them (scalars). One call = one step, updating the params in place.
              torch: torch.optim's class with fused=True where torch has a fused CPU kernel, else
              foreach=True, on tensors sharing the params' memory.
  dense       any ACTIVATIONS name; arrays (h, W, g): h (N, D), W (D, k M) with k the activation's pieces,
              g (N, M) = dL/dy. One call = a dense layer's forward and backward: z = h W, y = f(z), then
              dz, dW = h^T dz and dh = dz W^T; dh returned.
              dlbench: matmul and the kernels into buffers made once. torch: torch.mm and the activation's
              forward and aten backward (as `activation`), allocating their results as torch does.
  init        any INITIALIZERS name; arrays (w,), whose shape (fan_in, fan_out) and dtype the weights take
              (w itself is not touched); hyperparameters as `get_initializer` takes them, plus `seed` (int)
              for the implementation's generator. One call = one freshly allocated, initialized matrix.
              dlbench: the initializer on a numpy Generator. torch: torch.nn.init.<name>_ on torch.empty
              of the transposed (fan_out, fan_in) shape, torch's layout, as nn.Linear allocates and fills it.
  normalize   batch, layer or zca; arrays (x,) of shape (N, F); forward only, in training mode (what a
              backward needs is kept), eps 1e-5. zca is ZCA whitening, y = (x - mu) Sigma^(-1/2) with the
              eigendecomposition in float64 (dlbench.experiments.norm.whitening).
              dlbench: the norm's forward(out=y, reuse=previous cache); zca_forward. torch: aten's
              native_batch_norm / native_layer_norm; ZCA written in torch as its user would (mean, matmul,
              torch.linalg.eigh in float64, matmul), allocating its results.

`kernel(..., impl="torch")` returns None when torch does not import or has no counterpart (array
hyperparameters have no torch form, an initializer torch lacks, and so on).

Claims whose verdict rests on wall time carry an `implementation` axis (`ImplementationAxis`): the catalogue
lists every implementation a claim can be timed on, a run the ones that import here (`implementations()`),
so the same claim is judged on dlbench's kernels alone without torch and on both with it.

Thread counts: dlbench's kernels follow `dlbench.nn.parallel.kernel_threads`, torch's follow `threads`
below; both default to what the caller has set.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from dlbench.errors import DlbenchError
from dlbench.protocol import Axis

#: The implementations `kernel` knows, dlbench's first.
IMPLS = ("dlbench", "torch")
#: The operations `kernel` knows.
OPS = ("activation", "norm", "optimizer", "dense", "init", "normalize")


@functools.cache
def _torch():
    try:
        import torch
    except ImportError:
        return None
    return torch


def available() -> bool:
    """True when torch imports."""
    return _torch() is not None


def version() -> str | None:
    """torch's version, or None without torch."""
    torch = _torch()
    return None if torch is None else str(torch.__version__)


def implementations() -> tuple[str, ...]:
    """The implementations this process can time: dlbench's, and torch's when torch imports."""
    return IMPLS if available() else IMPLS[:1]


def label(impl: str) -> str:
    """'dlbench' or 'torch 2.13.0': an implementation as a finding's evidence names it."""
    return f"torch {version()}" if impl == "torch" else impl


@dataclass(frozen=True)
class ImplementationAxis(Axis):
    """A timing claim's `implementation` axis: `values` are the implementations it can be judged on (what the
    catalogue lists), its grid those of them that run here, ("dlbench",) without torch and ("dlbench",
    "torch") with it. A verdict that differs along it is a fact about an implementation, not the operation."""

    name: str = "implementation"
    values: tuple = IMPLS

    def grid(self, quick: bool = False) -> tuple:
        here = implementations()
        return tuple(v for v in super().grid(quick) if v in here)


@contextlib.contextmanager
def threads(n: int) -> Iterator[int]:
    """torch's intra-op thread count inside the block (restored on leaving); a no-op without torch."""
    torch = _torch()
    if torch is None:
        yield n
        return
    before = torch.get_num_threads()
    torch.set_num_threads(int(n))
    try:
        yield n
    finally:
        torch.set_num_threads(before)


def kernel(op: str, name: str, *arrays, impl: str = "dlbench", **hyper) -> Callable[[], object] | None:
    """A zero-argument callable running one `op` `name` on `arrays` in implementation `impl`, or None.

    See the module docstring for each operation's arrays and what one call does. Unknown operations,
    implementations and names raise DlbenchError; impl="torch" gives None when torch does not import or has
    no counterpart.
    """
    if op not in OPS:
        raise DlbenchError(f"unknown operation {op!r}; valid: {', '.join(OPS)}")
    if impl not in IMPLS:
        raise DlbenchError(f"unknown implementation {impl!r}; valid: {', '.join(IMPLS)}")
    builder = {"activation": (_dlbench_activation, _torch_activation),
               "norm": (_dlbench_norm, _torch_norm),
               "optimizer": (_dlbench_optimizer, _torch_optimizer),
               "dense": (_dlbench_dense, _torch_dense),
               "init": (_dlbench_init, _torch_init),
               "normalize": (_dlbench_normalize, _torch_normalize)}[op][IMPLS.index(impl)]
    if impl == "torch" and _torch() is None:
        return None
    return builder(name, *arrays, **hyper)


# ---------------------------------------------------------------------------------------------- activations


def _dlbench_activation(name: str, x: np.ndarray, g: np.ndarray, **hyper):
    from dlbench.nn.activations import get_activation

    act = get_activation(name, **hyper)
    theta = act.init_params((), x.shape[-1], x.dtype) if act.init_params else ()
    y = act.forward(x, *theta)
    if g.shape != y.shape:
        raise DlbenchError(f"activation {name}: g has shape {g.shape}, the output {y.shape}")
    dx = np.empty_like(x)

    def call():
        act.forward(x, *theta, out=y)
        return act.backward(x, y, g, *theta, out=dx)

    return call


def _torch_activation(name: str, x: np.ndarray, g: np.ndarray, **hyper):
    pair = torch_activation(name, **hyper)
    if pair is None:
        return None
    torch = _torch()
    xt, gt = torch.from_numpy(x), torch.from_numpy(g)
    both = pair[1]
    return lambda: both(xt, gt)


def torch_activation(name: str, **hyper) -> tuple[Callable, Callable] | None:
    """torch's `forward(x) -> y` and `forward_backward(x, g) -> dx` of activation `name` on tensors, or None.

    forward is torch.nn.functional's (what a model calls); forward_backward runs it, then the aten backward
    autograd would run, each allocating its result. None without torch or a counterpart.
    """
    from dlbench.nn.activations import SELU_ALPHA, SELU_SCALE, get_activation

    torch = _torch()
    act = get_activation(name, **hyper)
    if torch is None:
        return None
    F, aten = torch.nn.functional, torch.ops.aten
    h = dict(act.hyper)
    name = act.name
    if name == "identity":
        return (lambda x: x.clone()), (lambda x, g: (x.clone(), g.clone())[1])
    if name == "relu":
        return F.relu, (lambda x, g: aten.threshold_backward(g, F.relu(x), 0))
    if name == "leaky_relu":
        a = h["negative_slope"]
        return (lambda x: F.leaky_relu(x, a)), (lambda x, g: (F.leaky_relu(x, a),
                                                              aten.leaky_relu_backward(g, x, a, False))[1])
    if name == "prelu":
        w = torch.full((1,), h["init"], dtype=torch.float32)

        def weight(x):   # one slope shared by every unit, in the input's dtype
            return w if w.dtype == x.dtype else w.to(x.dtype)

        return (lambda x: F.prelu(x, weight(x))), (lambda x, g: (F.prelu(x, weight(x)),
                                                                 aten._prelu_kernel_backward(g, x, weight(x))[0])[1])
    if name == "elu":
        a = h["alpha"]
        return (lambda x: F.elu(x, a)), (lambda x, g: (F.elu(x, a), aten.elu_backward(g, a, 1.0, 1.0, False, x))[1])
    if name == "selu":
        return F.selu, (lambda x, g: (F.selu(x), aten.elu_backward(g, SELU_ALPHA, SELU_SCALE, 1.0, False, x))[1])
    if name == "gelu":
        a = h["approximate"]
        return ((lambda x: F.gelu(x, approximate=a)),
                (lambda x, g: (F.gelu(x, approximate=a), aten.gelu_backward(g, x, approximate=a))[1]))
    if name == "silu":
        return F.silu, (lambda x, g: (F.silu(x), aten.silu_backward(g, x))[1])
    if name == "softplus":
        b, t = h["beta"], h["threshold"]
        return (lambda x: F.softplus(x, b, t)), (lambda x, g: (F.softplus(x, b, t),
                                                               aten.softplus_backward(g, x, b, t))[1])
    if name == "sigmoid":
        return torch.sigmoid, (lambda x, g: aten.sigmoid_backward(g, torch.sigmoid(x)))
    if name == "tanh":
        return torch.tanh, (lambda x, g: aten.tanh_backward(g, torch.tanh(x)))
    if name == "sin":
        return torch.sin, (lambda x, g: (torch.sin(x), g * torch.cos(x))[1])
    if name == "maxout":
        k = h["pieces"]

        def maxout(x):
            return x.unflatten(-1, (-1, k)).amax(-1)

        def maxout_both(x, g):   # max's indices route g to the winning piece, as autograd's max backward
            groups = x.unflatten(-1, (-1, k))
            _, idx = groups.max(-1)
            return torch.zeros_like(groups).scatter_(-1, idx.unsqueeze(-1), g.unsqueeze(-1)).flatten(-2)

        return maxout, maxout_both
    return None


# ---------------------------------------------------------------------------------------------- dense layers


def _check_dense(name: str, h: np.ndarray, W: np.ndarray, g: np.ndarray, pieces: int) -> None:
    ok = h.ndim == W.ndim == g.ndim == 2 and W.shape[0] == h.shape[1] and W.shape[1] % pieces == 0 \
        and g.shape == (h.shape[0], W.shape[1] // pieces)
    if not ok:
        raise DlbenchError(f"dense {name}: need h (N, D), W (D, k M), g (N, M) with k = {pieces}, got {h.shape}, "
                           f"{W.shape}, {g.shape}")


def _dlbench_dense(name: str, h: np.ndarray, W: np.ndarray, g: np.ndarray, **hyper):
    from dlbench.nn.activations import get_activation

    act = get_activation(name, **hyper)
    _check_dense(name, h, W, g, act.pieces)
    theta = act.init_params((), W.shape[1], h.dtype) if act.init_params else ()
    z, dz = np.empty((h.shape[0], W.shape[1]), h.dtype), np.empty((h.shape[0], W.shape[1]), h.dtype)
    y, dW, dh = np.empty_like(g), np.empty_like(W), np.empty_like(h)

    def call():
        np.matmul(h, W, out=z)
        act.forward(z, *theta, out=y)
        act.backward(z, y, g, *theta, out=dz)
        np.matmul(h.T, dz, out=dW)
        return np.matmul(dz, W.T, out=dh)

    return call


def _torch_dense(name: str, h: np.ndarray, W: np.ndarray, g: np.ndarray, **hyper):
    from dlbench.nn.activations import get_activation

    pair = torch_activation(name, **hyper)
    if pair is None:
        return None
    _check_dense(name, h, W, g, get_activation(name, **hyper).pieces)
    torch = _torch()
    both = pair[1]
    ht, Wt, gt = torch.from_numpy(h), torch.from_numpy(W), torch.from_numpy(g)

    def call():
        dz = both(torch.mm(ht, Wt), gt)
        torch.mm(ht.t(), dz)     # dW
        return torch.mm(dz, Wt.t())

    return call


# ---------------------------------------------------------------------------------------------- initializers

#: dlbench initializer -> (torch.nn.init function, fixed keyword arguments); torch_default is nn.Linear's.
_TORCH_INIT = {
    "zeros": ("zeros_", {}), "constant": ("constant_", {}), "normal": ("normal_", {}), "uniform": ("uniform_", {}),
    "xavier_uniform": ("xavier_uniform_", {}), "xavier_normal": ("xavier_normal_", {}),
    "kaiming_uniform": ("kaiming_uniform_", {}), "kaiming_normal": ("kaiming_normal_", {}),
    "lecun_normal": ("kaiming_normal_", {"nonlinearity": "linear"}), "orthogonal": ("orthogonal_", {}),
    "torch_default": ("kaiming_uniform_", {"a": math.sqrt(5.0)}),
}


def _dlbench_init(name: str, w: np.ndarray, *, seed: int = 0, **hyper):
    from dlbench.nn.init import get_initializer

    init = get_initializer(name, **hyper)
    rng = np.random.default_rng(seed)
    shape, dtype = w.shape, w.dtype
    return lambda: init(rng, shape, dtype)


def _torch_init(name: str, w: np.ndarray, *, seed: int = 0, **hyper):
    from dlbench.nn.init import get_initializer

    bound = dict(get_initializer(name, **hyper).hyper)   # validated, with dlbench's (torch's) defaults
    torch = _torch()
    spec = _TORCH_INIT.get(name)
    if spec is None or w.ndim != 2:
        return None
    fn = getattr(torch.nn.init, spec[0])
    kwargs = {**bound, **spec[1]}
    if "generator" in inspect.signature(fn).parameters:
        kwargs["generator"] = torch.Generator().manual_seed(int(seed))
    dtype = torch.from_numpy(np.zeros(0, w.dtype)).dtype
    shape = tuple(reversed(w.shape))   # torch's (fan_out, fan_in)
    return lambda: fn(torch.empty(shape, dtype=dtype), **kwargs)


# ---------------------------------------------------------------------------------------------- forward normalization

NORMALIZE_EPS = 1e-5


def _dlbench_normalize(name: str, x: np.ndarray):
    from dlbench.experiments.norm.whitening import zca_forward
    from dlbench.nn.norm import get_norm

    _check_2d(name, x, x)
    if name == "zca":
        return lambda: zca_forward(x, NORMALIZE_EPS)[0]
    if name not in ("batch", "layer"):
        raise DlbenchError(f"normalize: unknown {name!r}; valid: batch, layer, zca")
    norm = get_norm(name, eps=NORMALIZE_EPS)
    params, state = norm.init(x.shape[-1], dtype=x.dtype)
    y = np.empty_like(x)
    held = [norm.forward(x, params, state, True)[1]]

    def call():
        _, held[0] = norm.forward(x, params, state, True, out=y, reuse=held[0])
        return y

    return call


def _torch_normalize(name: str, x: np.ndarray):
    _check_2d(name, x, x)
    if name not in ("batch", "layer", "zca"):
        raise DlbenchError(f"normalize: unknown {name!r}; valid: batch, layer, zca")
    torch = _torch()
    aten = torch.ops.aten
    xt = torch.from_numpy(x)
    n, f = x.shape
    w, b = torch.ones(f, dtype=xt.dtype), torch.zeros(f, dtype=xt.dtype)
    if name == "batch":
        rm, rv = torch.zeros(f, dtype=xt.dtype), torch.ones(f, dtype=xt.dtype)
        return lambda: aten.native_batch_norm(xt, w, b, rm, rv, True, 0.1, NORMALIZE_EPS)[0]
    if name == "layer":
        return lambda: aten.native_layer_norm(xt, [f], w, b, NORMALIZE_EPS)[0]

    def zca():
        xc = xt - xt.mean(0, keepdim=True)
        cov = (xc.t() @ xc).double() / n + NORMALIZE_EPS * torch.eye(f, dtype=torch.float64)
        lam, U = torch.linalg.eigh(cov)
        s = lam.clamp_min(NORMALIZE_EPS).sqrt()
        return xc @ ((U / s) @ U.t()).to(xt.dtype)

    return zca


# ---------------------------------------------------------------------------------------------- norms


def _check_2d(kind: str, x: np.ndarray, g: np.ndarray) -> None:
    if x.ndim != 2 or g.shape != x.shape:
        raise DlbenchError(f"{kind} norm peer: x and g must be (N, F) of one shape, got {x.shape} and {g.shape}")


def _dlbench_norm(name: str, x: np.ndarray, g: np.ndarray, **hyper):
    from dlbench.nn.norm import get_norm

    _check_2d(name, x, g)
    norm = get_norm(name, **hyper)
    params, state = norm.init(x.shape[-1], dtype=x.dtype)
    y, dx = np.empty_like(x), np.empty_like(x)
    held = [None]

    def call():
        _, held[0] = norm.forward(x, params, state, True, out=y, reuse=held[0])
        return norm.backward(g, held[0], out=dx)

    return call


def _torch_norm(name: str, x: np.ndarray, g: np.ndarray, **hyper):
    from dlbench.nn.norm import get_norm

    torch = _torch()
    aten = torch.ops.aten
    _check_2d(name, x, g)
    h = dict(get_norm(name, **hyper).hyper)   # validated, with defaults
    n, f = x.shape
    c = h.get("channels") or f
    xt, gt = torch.from_numpy(x).reshape(n, c, f // c), torch.from_numpy(g).reshape(n, c, f // c)
    ones = lambda k: torch.ones(k, dtype=xt.dtype)  # noqa: E731
    zeros = lambda k: torch.zeros(k, dtype=xt.dtype)  # noqa: E731
    eps = h.get("eps", 1e-5)
    mask = [True, True, True]
    if name == "batch":
        w, b, rm, rv = ones(c), zeros(c), zeros(c), ones(c)
        momentum = h["momentum"] if h["momentum"] is not None else 0.1

        def batch():
            y, mean, invstd = aten.native_batch_norm(xt, w, b, rm, rv, True, momentum, eps)
            return aten.native_batch_norm_backward(gt, xt, w, rm, rv, mean, invstd, True, eps, mask)[0]

        return batch
    if name == "layer":
        x2, g2, w, b = xt.reshape(n, f), gt.reshape(n, f), ones(f), zeros(f)

        def layer():
            y, mean, rstd = aten.native_layer_norm(x2, [f], w, b, eps)
            return aten.native_layer_norm_backward(g2, x2, [f], mean, rstd, w, b, mask)[0]

        return layer
    if name == "group":
        groups, w, b, hw = h["num_groups"], ones(c), zeros(c), f // c

        def group():
            y, mean, rstd = aten.native_group_norm(xt, w, b, n, c, hw, groups, eps)
            return aten.native_group_norm_backward(gt, xt, mean, rstd, w, n, c, hw, groups, mask)[0]

        return group
    if name == "instance":   # torch runs instance norm as batch norm over the (1, N C, L) view
        xi, gi, w = xt.reshape(1, n * c, -1), gt.reshape(1, n * c, -1), ones(n * c)
        b = zeros(n * c)

        def instance():
            y, mean, invstd = aten.native_batch_norm(xi, w, b, None, None, True, 0.0, eps)
            return aten.native_batch_norm_backward(gi, xi, w, None, None, mean, invstd, True, eps, mask)[0]

        return instance
    return None


# ---------------------------------------------------------------------------------------------- optimizers


def _dlbench_optimizer(name: str, params: Sequence[np.ndarray], grads: Sequence[np.ndarray], **hyper):
    from dlbench.nn.optim import get_optimizer

    opt = get_optimizer(name, **hyper)
    params, grads = list(params), list(grads)
    held = [opt.init(params)]

    def call():
        held[0] = opt.step(params, grads, held[0])

    return call


#: dlbench optimizer name -> (torch.optim class name, fixed keyword arguments).
_TORCH_OPTIM = {
    "sgd": ("SGD", {}), "momentum": ("SGD", {"momentum": 0.9}), "nesterov": ("SGD", {"momentum": 0.9, "nesterov": True}),
    "adagrad": ("Adagrad", {}), "rmsprop": ("RMSprop", {}), "adam": ("Adam", {}), "adamw": ("AdamW", {}),
}


def _torch_optimizer(name: str, params: Sequence[np.ndarray], grads: Sequence[np.ndarray], **hyper):
    from dlbench.nn.optim import OPTIMIZERS, get_optimizer

    torch = _torch()
    spec = _TORCH_OPTIM.get(name)
    if spec is None:
        return None
    get_optimizer(name, **hyper)   # validates the hyperparameters as the dlbench side does
    defaults = {k: v.default for k, v in inspect.signature(OPTIMIZERS[name]).parameters.items()}
    kwargs = dict(spec[1])
    for key in defaults:
        value = hyper.get(key, defaults[key])
        if isinstance(value, np.ndarray) or (isinstance(value, tuple) and any(isinstance(v, np.ndarray) for v in value)):
            return None   # one hyperparameter per run has no torch form
        if key == "bias_correction":
            if not value:
                return None
            continue
        kwargs[key] = value
    kwargs = {k: v for k, v in kwargs.items() if k in _torch_signature(torch, spec[0])}
    cls = getattr(torch.optim, spec[0])
    flavour = _optim_flavour(torch, cls, params[0].dtype if params else np.float32, tuple(sorted(kwargs.items())))
    tensors = []
    for p, g in zip(params, grads):
        t = torch.from_numpy(p)
        t.grad = torch.from_numpy(g)
        tensors.append(t)
    return cls(tensors, **kwargs, **flavour).step


def _optim_flavour(torch, cls, dtype, kwargs: tuple) -> dict:
    """fused=True when this build runs it on CPU tensors, else foreach=True, else the plain loop."""
    for flavour in ({"fused": True}, {"foreach": True}, {}):
        t = torch.zeros(4, dtype=torch.from_numpy(np.zeros(1, dtype)).dtype)
        t.grad = torch.ones_like(t)
        try:
            cls([t], **dict(kwargs), **flavour).step()
        except (RuntimeError, TypeError, ValueError):
            continue
        return flavour
    return {}


@functools.cache
def _torch_signature(torch, cls_name: str) -> frozenset:
    return frozenset(inspect.signature(getattr(torch.optim, cls_name)).parameters)
