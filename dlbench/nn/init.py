"""Weight initializers and their registry, with torch.nn.init's names, hyperparameters, defaults and gains.

Layout: a dense weight W has shape (..., fan_in, fan_out) (y = x @ W), the transpose of torch's (out, in);
fan_in = shape[-2], fan_out = shape[-1], and any leading axes are independent replicas.

Random numbers: every scheme draws from the `numpy.random.Generator` passed in, in float64, then casts to
the requested dtype, so float32 weights are the float64 weights rounded and a seed gives the same weights
on every call. Draws fill the array in C order, so init(rng, (S, m, n)) equals S successive calls
init(rng, (m, n)) on the same generator, stacked (orthogonal included: one QR per replica matrix).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

import numpy as np

from dlbench.errors import DlbenchError, UnknownName
from dlbench.registry import Registry


@dataclass(frozen=True)
class Initializer:
    """One scheme with its hyperparameters bound: init(rng, shape, dtype=np.float32) -> array."""

    name: str
    fn: Callable  # fn(rng, shape, dtype=np.float32, **hyper) -> ndarray
    hyper: Mapping

    def __call__(self, rng: np.random.Generator, shape, dtype=np.float32) -> np.ndarray:
        return self.fn(rng, shape, dtype, **self.hyper)


# ---------------------------------------------------------------------------------------------------------
# Gains and fans
# ---------------------------------------------------------------------------------------------------------

_LINEAR_GAIN_1 = ("linear", "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d",
                  "conv_transpose3d", "sigmoid")
NONLINEARITIES = (*_LINEAR_GAIN_1, "tanh", "relu", "leaky_relu", "selu")


def calculate_gain(nonlinearity: str, param=None) -> float:
    """The recommended gain for a nonlinearity, exactly as torch.nn.init.calculate_gain.

    linear, conv*, sigmoid: 1; tanh: 5/3; relu: sqrt(2); leaky_relu: sqrt(2 / (1 + a^2)) with
    a = param (default 0.01); selu: 3/4 (Klambauer et al. 2017's advice of 1 in variance terms, as torch).
    """
    if nonlinearity in _LINEAR_GAIN_1:
        return 1.0
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        if param is None:
            slope = 0.01
        elif not isinstance(param, bool) and isinstance(param, (int, float)):
            slope = param
        else:
            raise DlbenchError(f"negative_slope {param!r} is not a valid number")
        return math.sqrt(2.0 / (1 + slope**2))
    if nonlinearity == "selu":
        return 3.0 / 4
    raise UnknownName("nonlinearity", str(nonlinearity), NONLINEARITIES)


def fans(shape) -> tuple[int, int]:
    """(fan_in, fan_out) = (shape[-2], shape[-1]) of a weight of shape (..., fan_in, fan_out)."""
    shape = tuple(shape)
    if len(shape) < 2:
        raise DlbenchError(f"fan_in and fan_out need a weight of at least 2 dimensions, got shape {shape}")
    return shape[-2], shape[-1]


def _dtype(dtype) -> np.dtype:
    dt = np.dtype(dtype)
    if dt.kind != "f":
        raise DlbenchError(f"initializers make floating-point weights, not {dt}")
    return dt


def _normal(rng, shape, dtype, mean, std):
    w = rng.standard_normal(tuple(shape))
    w *= std
    w += mean
    return w.astype(_dtype(dtype), copy=False)


def _uniform(rng, shape, dtype, low, high):
    return rng.uniform(low, high, size=tuple(shape)).astype(_dtype(dtype), copy=False)


# ---------------------------------------------------------------------------------------------------------
# Schemes
# ---------------------------------------------------------------------------------------------------------


def zeros(rng, shape, dtype=np.float32):
    """W = 0 (draws nothing): every unit of a layer identical, the symmetry that training cannot break."""
    return np.zeros(tuple(shape), dtype=_dtype(dtype))


def constant(rng, shape, dtype=np.float32, *, val=0.1):
    """W = val everywhere (torch.nn.init.constant_; val has no torch default, 0.1 here)."""
    return np.full(tuple(shape), val, dtype=_dtype(dtype))


def normal(rng, shape, dtype=np.float32, *, mean=0.0, std=1.0):
    """W ~ N(mean, std^2) (torch.nn.init.normal_)."""
    return _normal(rng, shape, dtype, mean, std)


def uniform(rng, shape, dtype=np.float32, *, a=0.0, b=1.0):
    """W ~ U[a, b) (torch.nn.init.uniform_)."""
    return _uniform(rng, shape, dtype, a, b)


def xavier_uniform(rng, shape, dtype=np.float32, *, gain=1.0):
    """W ~ U(-l, l), l = gain * sqrt(6 / (fan_in + fan_out)); Var W = gain^2 * 2 / (fan_in + fan_out).

    Glorot & Bengio 2010, "Understanding the difficulty of training deep feedforward neural networks".
    """
    fan_in, fan_out = fans(shape)
    limit = gain * math.sqrt(6.0 / (fan_in + fan_out))
    return _uniform(rng, shape, dtype, -limit, limit)


def xavier_normal(rng, shape, dtype=np.float32, *, gain=1.0):
    """W ~ N(0, std^2), std = gain * sqrt(2 / (fan_in + fan_out)) (Glorot & Bengio 2010)."""
    fan_in, fan_out = fans(shape)
    return _normal(rng, shape, dtype, 0.0, gain * math.sqrt(2.0 / (fan_in + fan_out)))


def _kaiming_std(shape, a, mode, nonlinearity) -> float:
    fan_in, fan_out = fans(shape)
    fan = {"fan_in": fan_in, "fan_out": fan_out}.get(mode)
    if fan is None:
        raise DlbenchError(f"mode must be 'fan_in' or 'fan_out', got {mode!r}")
    return calculate_gain(nonlinearity, a) / math.sqrt(fan)


def kaiming_uniform(rng, shape, dtype=np.float32, *, a=0.0, mode="fan_in", nonlinearity="leaky_relu"):
    """W ~ U(-l, l), l = sqrt(3) * gain / sqrt(fan), gain = calculate_gain(nonlinearity, a).

    He, Zhang, Ren & Sun 2015, "Delving deep into rectifiers". fan = fan_in (keeps the forward variance)
    or fan_out (the backward one); torch's defaults a=0, mode="fan_in", nonlinearity="leaky_relu" give
    gain sqrt(2).
    """
    limit = math.sqrt(3.0) * _kaiming_std(shape, a, mode, nonlinearity)
    return _uniform(rng, shape, dtype, -limit, limit)


def kaiming_normal(rng, shape, dtype=np.float32, *, a=0.0, mode="fan_in", nonlinearity="leaky_relu"):
    """W ~ N(0, std^2), std = gain / sqrt(fan) (He et al. 2015; torch.nn.init.kaiming_normal_)."""
    return _normal(rng, shape, dtype, 0.0, _kaiming_std(shape, a, mode, nonlinearity))


def lecun_normal(rng, shape, dtype=np.float32):
    """W ~ N(0, 1 / fan_in) (LeCun, Bottou, Orr & Muller 1998; the init SELU assumes, Klambauer et al. 2017).

    Not truncated (Keras' lecun_normal truncates at 2 std and rescales); = kaiming_normal(nonlinearity="linear").
    """
    fan_in, _ = fans(shape)
    return _normal(rng, shape, dtype, 0.0, 1.0 / math.sqrt(fan_in))


def orthonormalize(a: np.ndarray) -> np.ndarray:
    """The Haar-distributed orthogonal factor of Gaussian matrices a (..., m, n), batched over leading axes.

    m > n: Q of a = QR with each column multiplied by sign(R_jj), so W^T W = I (orthonormal columns).
    m <= n: the same on a^T, transposed back, so W W^T = I (orthonormal rows; both when square). The sign
    correction makes the factor unique and its distribution Haar (Mezzadri 2007, "How to generate random
    matrices from the classical compact groups"). Given the same Gaussian, this is exactly
    torch.nn.init.orthogonal_ on the torch-layout (out, in) matrix a^T, transposed.
    """
    a = np.asarray(a, dtype=np.float64)
    wide = a.shape[-2] <= a.shape[-1]
    if wide:
        a = np.swapaxes(a, -1, -2)
    q, r = np.linalg.qr(a)  # batched over leading axes, reduced: q (..., m, k), r (..., k, k)
    d = np.diagonal(r, axis1=-2, axis2=-1)
    q *= np.where(d < 0, -1.0, 1.0)[..., None, :]
    return np.swapaxes(q, -1, -2) if wide else q


def orthogonal(rng, shape, dtype=np.float32, *, gain=1.0):
    """W = gain * Q, Q Haar-orthogonal: orthonormal columns (W^T W = gain^2 I) when fan_out <= fan_in.

    Saxe, McClelland & Ganguli 2014, "Exact solutions to the nonlinear dynamics of learning in deep linear
    neural networks". In torch's (out, in) layout these are orthonormal rows (torch.nn.init.orthogonal_);
    when fan_out > fan_in the rows of W are orthonormal instead (W W^T = gain^2 I). QR is done in float64,
    one per replica matrix, in one batched call.
    """
    fans(shape)
    w = orthonormalize(rng.standard_normal(tuple(shape)))
    if gain != 1:
        w *= gain
    return w.astype(_dtype(dtype), copy=False)


def torch_default(rng, shape, dtype=np.float32):
    """torch.nn.Linear's weight init: kaiming_uniform(a=sqrt(5)), i.e. W ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in)).

    (gain sqrt(2 / (1 + 5)) = 1/sqrt(3), times sqrt(3) / sqrt(fan_in).) Its bias is U(-1/sqrt(fan_in),
    1/sqrt(fan_in)) too.
    """
    return kaiming_uniform(rng, shape, dtype, a=math.sqrt(5.0))


# ---------------------------------------------------------------------------------------------------------
# Registry
# ---------------------------------------------------------------------------------------------------------

INITIALIZERS: Registry[Initializer] = Registry("initializer")

#: Allowed values of the string hyperparameters.
_CHOICES = {"mode": ("fan_in", "fan_out"), "nonlinearity": NONLINEARITIES}


def _entry(name: str, fn: Callable, **defaults) -> Initializer:
    return INITIALIZERS.add(name, Initializer(name, fn, MappingProxyType(dict(defaults))))


_entry("zeros", zeros)
_entry("constant", constant, val=0.1)
_entry("normal", normal, mean=0.0, std=1.0)
_entry("uniform", uniform, a=0.0, b=1.0)
_entry("xavier_uniform", xavier_uniform, gain=1.0)
_entry("xavier_normal", xavier_normal, gain=1.0)
_entry("kaiming_uniform", kaiming_uniform, a=0.0, mode="fan_in", nonlinearity="leaky_relu")
_entry("kaiming_normal", kaiming_normal, a=0.0, mode="fan_in", nonlinearity="leaky_relu")
_entry("lecun_normal", lecun_normal)
_entry("orthogonal", orthogonal, gain=1.0)
_entry("torch_default", torch_default)


def _check(name: str, hyper: dict) -> dict:
    """Hyperparameters converted to their default's type and validated; DlbenchError on a bad one."""
    defaults = INITIALIZERS[name].hyper
    out = {}
    for key, value in hyper.items():
        if isinstance(defaults[key], str):
            if value not in _CHOICES[key]:
                choices = ", ".join(_CHOICES[key])
                raise DlbenchError(f"initializer {name}: {key} must be one of {choices}, got {value!r}")
            out[key] = value
            continue
        try:
            v = float(value)
        except (TypeError, ValueError):
            raise DlbenchError(f"initializer {name}: {key} must be a number, got {value!r}") from None
        if not math.isfinite(v):
            raise DlbenchError(f"initializer {name}: {key} must be finite, got {value!r}")
        out[key] = v
    if out.get("std", 0.0) < 0:
        raise DlbenchError(f"initializer {name}: std must be >= 0, got {out['std']}")
    if "a" in out and "b" in out and out["a"] > out["b"]:
        raise DlbenchError(f"initializer {name}: needs a <= b, got a={out['a']}, b={out['b']}")
    if out.get("nonlinearity") == "leaky_relu" or name.startswith("kaiming"):
        calculate_gain(out.get("nonlinearity", "leaky_relu"), out.get("a", 0.0))
    return out


def get_initializer(name: str, **hyper) -> Initializer:
    """The registry entry `name` with the given hyperparameters re-bound (the others keep torch's defaults).

    Raises UnknownName for a name not in INITIALIZERS and DlbenchError for an unknown or invalid
    hyperparameter.
    """
    entry = INITIALIZERS[name]
    if not hyper:
        return entry
    unknown = sorted(set(hyper) - set(entry.hyper))
    if unknown:
        valid = ", ".join(entry.hyper) or "none"
        raise DlbenchError(f"initializer {name} has no hyperparameter {unknown[0]!r}; valid: {valid}")
    merged = {**entry.hyper, **_check(name, {**entry.hyper, **hyper})}
    return Initializer(entry.name, entry.fn, MappingProxyType(merged))
