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

`kernel(..., impl="torch")` returns None when torch does not import or has no counterpart (maxout's
backward is composed, array hyperparameters have no torch form, and so on). Thread counts: dlbench's kernels
follow `dlbench.nn.parallel.kernel_threads`, torch's follow `threads` below; both default to what the
caller has set.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
from collections.abc import Callable, Iterator, Sequence

import numpy as np

from dlbench.errors import DlbenchError

#: The implementations `kernel` knows, dlbench's first.
IMPLS = ("dlbench", "torch")
#: The operations `kernel` knows.
OPS = ("activation", "norm", "optimizer")


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
               "optimizer": (_dlbench_optimizer, _torch_optimizer)}[op][IMPLS.index(impl)]
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
    from dlbench.nn.activations import SELU_ALPHA, SELU_SCALE, get_activation

    torch = _torch()
    F, aten = torch.nn.functional, torch.ops.aten
    act = get_activation(name, **hyper)
    h = dict(act.hyper)
    xt, gt = torch.from_numpy(x), torch.from_numpy(g)
    name = act.name
    if name == "identity":
        return lambda: (xt.clone(), gt.clone())[1]
    if name == "relu":
        return lambda: aten.threshold_backward(gt, F.relu(xt), 0)
    if name == "leaky_relu":
        a = h["negative_slope"]
        return lambda: (F.leaky_relu(xt, a), aten.leaky_relu_backward(gt, xt, a, False))[1]
    if name == "prelu":
        w = torch.full((1,), h["init"], dtype=xt.dtype)
        return lambda: (F.prelu(xt, w), aten._prelu_kernel_backward(gt, xt, w)[0])[1]
    if name == "elu":
        a = h["alpha"]
        return lambda: (F.elu(xt, a), aten.elu_backward(gt, a, 1.0, 1.0, False, xt))[1]
    if name == "selu":
        return lambda: (F.selu(xt), aten.elu_backward(gt, SELU_ALPHA, SELU_SCALE, 1.0, False, xt))[1]
    if name == "gelu":
        a = h["approximate"]
        return lambda: (F.gelu(xt, approximate=a), aten.gelu_backward(gt, xt, approximate=a))[1]
    if name == "silu":
        return lambda: (F.silu(xt), aten.silu_backward(gt, xt))[1]
    if name == "softplus":
        b, t = h["beta"], h["threshold"]
        return lambda: (F.softplus(xt, b, t), aten.softplus_backward(gt, xt, b, t))[1]
    if name == "sigmoid":
        return lambda: aten.sigmoid_backward(gt, torch.sigmoid(xt))
    if name == "tanh":
        return lambda: aten.tanh_backward(gt, torch.tanh(xt))
    if name == "sin":
        return lambda: (torch.sin(xt), gt * torch.cos(xt))[1]
    if name == "maxout":
        k = h["pieces"]

        def maxout():
            groups = xt.unflatten(-1, (-1, k))
            _, idx = groups.max(-1)
            return torch.zeros_like(groups).scatter_(-1, idx.unsqueeze(-1), gt.unsqueeze(-1)).flatten(-2)

        return maxout
    return None


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
