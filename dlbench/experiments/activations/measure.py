"""Measurements behind `dlbench activations`: the property table, the notes' table, dead relu layers, costs.

Pure functions over whole arrays (a Generator passed in); the experiment module records what they return.
The notes' activation table (seed-notes.md, section 2.2) is kept here verbatim with the reading of each cell
that the measured table is checked against.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from dlbench.nn.activations import SELU_ALPHA, SELU_SCALE, Activation

# ---------------------------------------------------------------------------------------------------------
# Evaluating one activation on probe inputs
# ---------------------------------------------------------------------------------------------------------


def theta_for(act: Activation, dtype=np.float64) -> tuple:
    """The learnable parameters at their initial values (prelu's slope), shaped (1, 1); () otherwise."""
    return tuple(act.init_params((), 1, dtype)) if act.init_params is not None else ()


def slope_alpha(act: Activation) -> float | None:
    """The negative-side slope of the leaky family: leaky_relu's negative_slope, prelu's initial weight."""
    if act.name == "leaky_relu":
        return float(act.hyper["negative_slope"])
    if act.name == "prelu":
        return float(theta_for(act)[0].ravel()[0])
    return None


def forward_backward(act: Activation, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(y, dy/dx) for inputs X (n, pieces) -> y (n, 1): one unit fed by its k pieces; g = 1."""
    theta = theta_for(act, X.dtype)
    y = act.forward(X, *theta)
    d = act.backward(X, y, np.ones_like(y), *theta)
    return y, d


def hyper_count(act: Activation) -> int:
    """Number of numeric hyperparameters a user must set (gelu's `approximate` is a variant, not a number)."""
    return sum(isinstance(v, (int, float)) and not isinstance(v, bool) for v in act.hyper.values())


def learned_count(act: Activation) -> int:
    return len(theta_for(act)) if act.init_params is not None else 0


# ---------------------------------------------------------------------------------------------------------
# A2: the measured properties
# ---------------------------------------------------------------------------------------------------------

#: The 1-D probe: a fine grid on [-50, 50] plus log-spaced points out to |x| = 1e4.
def probe_grid() -> np.ndarray:
    tail = np.logspace(-8, 4, 241)
    return np.unique(np.concatenate([np.linspace(-50.0, 50.0, 100_001), tail, -tail, [0.0]]))


@dataclass(frozen=True)
class Properties:
    """What A2 measures for one activation (float64 inputs).

    nonlinearity: RMS residual of the best affine fit on [-5, 5]^k over the RMS deviation of f (0 = linear).
    out_low/out_high: output range along the diagonal x_1 = .. = x_k = t, |t| <= 1e4 (+-inf when unbounded).
    d_low/d_high: range of df/dx_i; d_values: the distinct derivative values when there are at most 3.
    monotonic: df/dx_i >= 0 everywhere (or <= 0 everywhere) on the probe.
    """

    name: str
    nonlinearity: float
    out_low: float
    out_high: float
    d_low: float
    d_high: float
    d_values: tuple[float, ...] | None
    monotonic: bool
    hyper: int
    learned: int

    @property
    def d_sup(self) -> float:
        return max(abs(self.d_low), abs(self.d_high))


def nonlinearity(act: Activation, rng: np.random.Generator, n: int = 20_001) -> float:
    """sqrt(1 - R^2) of the least-squares affine fit of f on [-5, 5] (a grid; uniform points for k > 1)."""
    k = act.pieces
    X = np.linspace(-5.0, 5.0, n)[:, None] if k == 1 else rng.uniform(-5.0, 5.0, (n, k))
    y = act.forward(X, *theta_for(act)).reshape(-1)
    A = np.column_stack([np.ones(len(X)), X])
    coef, *_ = np.linalg.lstsq(A, y, rcond=None)
    resid = y - A @ coef
    spread = np.sqrt(np.mean((y - y.mean()) ** 2))
    return float(np.sqrt(np.mean(resid**2)) / spread) if spread > 0 else 0.0


def _extent(t: np.ndarray, y: np.ndarray, side: int) -> float:
    """sup (side=+1) or inf (side=-1) of y over |t| <= 1e4; +-inf when it keeps growing past |t| = 100."""
    inner = np.abs(t) <= 100
    e_all, e_in = (y.max(), y[inner].max()) if side > 0 else (y.min(), y[inner].min())
    if abs(e_all - e_in) > 10 * (1 + abs(e_in)):
        return side * math.inf
    return _snap(e_all)


def _snap(v: float) -> float:
    """Values within 1e-12 of 0 (a clamped exponential's tiny floor) are 0."""
    return 0.0 if abs(v) < 1e-12 else float(v)


def measure_properties(act: Activation, rng: np.random.Generator) -> Properties:
    """Range, derivative range, monotonicity and nonlinearity of `act`, measured in float64."""
    k = act.pieces
    t = probe_grid()
    with np.errstate(all="ignore"):
        y, _ = forward_backward(act, np.repeat(t[:, None], k, axis=1))
        y = y.reshape(-1)
        # Off the diagonal for k > 1, so maxout's pieces are not tied.
        X = t[:, None] + (rng.standard_normal((t.size, k)) if k > 1 else 0.0)
        _, d = forward_backward(act, X)
    d = d.reshape(-1)
    d = d[np.isfinite(d)]
    distinct = np.unique(np.round(d, 12))
    return Properties(
        name=act.name,
        nonlinearity=nonlinearity(act, rng),
        out_low=_extent(t, y, -1),
        out_high=_extent(t, y, +1),
        d_low=_snap(d.min()),
        d_high=_snap(d.max()),
        d_values=tuple(float(v) for v in distinct) if distinct.size <= 3 else None,
        monotonic=bool((d >= -1e-12).all() or (d <= 1e-12).all()),
        hyper=hyper_count(act),
        learned=learned_count(act),
    )


def output_moments(act: Activation, rng: np.random.Generator, n: int = 1 << 18, batches: int = 16,
                   dtype=np.float64) -> tuple[np.ndarray, np.ndarray]:
    """Batch means of f(x) and of f(x)^2 for x ~ N(0, I_k): two arrays of `batches` values each."""
    X = rng.standard_normal((n, act.pieces)).astype(dtype, copy=False)
    y = act.forward(X, *theta_for(act, dtype)).reshape(batches, -1).astype(np.float64)
    return y.mean(axis=1), (y * y).mean(axis=1)


_PHI_M1 = 0.5 * math.erfc(1 / math.sqrt(2))  # Phi(-1)
_RELU_MEAN = 1 / math.sqrt(2 * math.pi)


def analytic_mean(act: Activation) -> float | None:
    """E f(x) for x ~ N(0, 1) (k iid pieces for maxout) where a closed form exists, else None.

    relu 1/sqrt(2 pi); leaky family (1 - a)/sqrt(2 pi); elu(alpha) 1/sqrt(2 pi) + alpha (e^{1/2} Phi(-1) - 1/2);
    selu scale times elu(alpha_selu)'s; gelu (erf) E[x Phi(x)] = E[phi(x)] = 1/(2 sqrt pi) (Stein's lemma);
    sigmoid 1/2, tanh 0, sin 0, identity 0 (odd or point-symmetric); maxout of 2 pieces 1/sqrt(pi), of 3
    pieces 3/(2 sqrt pi). silu, softplus and gelu's tanh form have none.
    """
    name, h = act.name, act.hyper

    def elu_mean(alpha: float) -> float:
        return _RELU_MEAN + alpha * (math.exp(0.5) * _PHI_M1 - 0.5)

    if name in ("identity", "tanh", "sin"):
        return 0.0
    if name == "sigmoid":
        return 0.5
    if name == "relu":
        return _RELU_MEAN
    if name in ("leaky_relu", "prelu"):
        return (1 - slope_alpha(act)) * _RELU_MEAN
    if name == "elu":
        return elu_mean(float(h["alpha"]))
    if name == "selu":
        return SELU_SCALE * elu_mean(SELU_ALPHA)
    if name == "gelu" and h.get("approximate", "none") == "none":
        return 1 / (2 * math.sqrt(math.pi))
    if name == "maxout":
        return {1: 0.0, 2: 1 / math.sqrt(math.pi), 3: 1.5 / math.sqrt(math.pi)}.get(act.pieces)
    return None


def zero_centred(mean: float, rms: float) -> str:
    """'yes' when |E f| <= 0.05 RMS(f), 'approximately' when <= 0.25 RMS(f), else 'no' (N(0,1) input)."""
    r = abs(mean) / rms if rms > 0 else 0.0
    return "yes" if r <= 0.05 else "approximately" if r <= 0.25 else "no"


# ---------------------------------------------------------------------------------------------------------
# The notes' table, verbatim, and how each cell is read
# ---------------------------------------------------------------------------------------------------------

PROPERTIES = ("nonlinear", "zero-centred", "monotonic", "output range", "derivative", "hyperparameters", "cost")

#: seed-notes.md section 2.2, columns 非线性 0均值 单调性 输出范围 导数 参数 计算. Empty strings are cells the
#: notes leave blank (their marks did not survive); they are shown but not checked.
NOTES_TABLE: dict[str, dict] = {
    "ReLU": {"names": ("relu",), "cells": ("非线性", "", "", "0; 0~+∞", "0或1 (解决了梯度消失问题)", "", "简单")},
    "ELU": {"names": ("elu",),
            "cells": ("非线性", "近似", "", "-∞~0; 0~+∞ (解决神经元死亡问题)", "0~1", "超参", "复杂")},
    "LReLU PReLU": {"names": ("leaky_relu", "prelu"),
                    "cells": ("非线性", "近似", "", "-∞~0; 0~+∞ (解决神经元死亡问题)", "α相关", "超参", "简单")},
    "maxout": {"names": ("maxout",), "cells": ("非线性", "可能", "可能", "无上下限", "w相关", "", "复杂,量大")},
    "Sigmoid": {"names": ("sigmoid",), "cells": ("非线性", "", "", "0~1", "0~0.25", "", "复杂,耗时")},
    "tanh": {"names": ("tanh",), "cells": ("非线性", "", "", "-1~1", "0~1", "", "复杂,耗时")},
    "sin/cos": {"names": ("sin",), "cells": ("非线性", "", "", "-1~1", "-1~1", "", "复杂,耗时")},
}

INF = math.inf

#: What each non-blank cell states, as a checkable value; None for cells that commit to nothing
#: (可能 "maybe", w相关 "depends on w").
_READING = {
    "非线性": ("nonlinear", True),
    "近似": ("zero", "approximately"),
    "可能": None,
    "0; 0~+∞": ("range", (0.0, INF)),
    "-∞~0; 0~+∞ (解决神经元死亡问题)": ("range", (-INF, INF)),
    "无上下限": ("range", (-INF, INF)),
    "0~1": None,  # read per column below: output range (0, 1) or derivative (0, 1)
    "-1~1": None,
    "0或1 (解决了梯度消失问题)": ("set", (0.0, 1.0)),
    "α相关": ("alpha_set", None),
    "w相关": None,
    "0~0.25": ("interval", (0.0, 0.25)),
    "超参": ("hyper", True),
    "简单": ("cost", "cheap"),
    "复杂": ("cost", "costly"),
    "复杂,量大": ("cost", "costly"),
    "复杂,耗时": ("cost", "costly"),
}

#: English glosses of the notes' words, for the README and the evidence lines.
GLOSS = {"非线性": "nonlinear", "近似": "approximately", "可能": "maybe", "无上下限": "no bounds",
         "0或1": "0 or 1", "α相关": "depends on α", "w相关": "depends on w", "超参": "hyperparameter",
         "简单": "simple", "复杂": "complex", "量大": "large amount", "耗时": "time-consuming",
         "解决了梯度消失问题": "solves vanishing gradients", "解决神经元死亡问题": "solves dying neurons"}


def notes_reading(prop: str, text: str):
    """(kind, value) that a notes cell states for property `prop`; None when blank or non-committal."""
    if not text:
        return None
    if text in ("0~1", "-1~1"):
        lo = -1.0 if text.startswith("-") else 0.0
        return ("range", (lo, 1.0)) if prop == "output range" else ("interval", (lo, 1.0))
    return _READING[text]


def notes_row_for(name: str) -> str | None:
    for row, entry in NOTES_TABLE.items():
        if name in entry["names"]:
            return row
    return None


def _same(a: float, b: float, tol: float = 1e-3) -> bool:
    if math.isinf(a) or math.isinf(b):
        return a == b
    return abs(a - b) <= tol * max(1.0, abs(b))


def fmt_bound(v: float) -> str:
    return "+∞" if v == INF else "-∞" if v == -INF else f"{v:.4g}"


def measured_text(prop: str, p: Properties, zero: str, cost: str | None, act: Activation) -> str:
    """The measured value of one property, as a short stable string (no timing numbers)."""
    if prop == "nonlinear":
        return "yes" if p.nonlinearity > 1e-6 else "no"
    if prop == "zero-centred":
        return zero
    if prop == "monotonic":
        return "yes" if p.monotonic else "no"
    if prop == "output range":
        return f"{fmt_bound(p.out_low)} ~ {fmt_bound(p.out_high)}"
    if prop == "derivative":
        if p.d_values is not None:
            return " or ".join(f"{v:.4g}" for v in p.d_values)
        return f"{p.d_low:.4g} ~ {p.d_high:.4g}"
    if prop == "hyperparameters":
        return f"{p.hyper}" + (f" (+{p.learned} learned)" if p.learned else "")
    if prop == "cost":
        return cost or "not timed"
    raise ValueError(prop)


def agrees(prop: str, reading, p: Properties, zero: str, cost: str | None, act: Activation) -> bool | None:
    """Whether the measured property matches what the notes' cell states; None when it is not checkable."""
    if reading is None:
        return None
    kind, value = reading
    if kind == "nonlinear":
        return p.nonlinearity > 1e-6
    if kind == "zero":
        return zero in ("yes", "approximately")
    if kind == "range":
        return _same(p.out_low, value[0]) and _same(p.out_high, value[1])
    if kind == "interval":
        return _same(p.d_low, value[0]) and _same(p.d_high, value[1])
    if kind == "set":
        return p.d_values is not None and len(p.d_values) == len(value) and all(
            _same(a, b) for a, b in zip(p.d_values, value))
    if kind == "alpha_set":
        a = slope_alpha(act)
        want = tuple(sorted((a, 1.0))) if a is not None else None
        return want is not None and p.d_values is not None and len(p.d_values) == 2 and all(
            _same(x, w) for x, w in zip(p.d_values, want))
    if kind == "hyper":
        return p.hyper >= 1
    if kind == "cost":
        return None if cost is None else cost == value
    raise ValueError(kind)


# ---------------------------------------------------------------------------------------------------------
# A10: dead relu layers at init
# ---------------------------------------------------------------------------------------------------------


def dead_layer_analytic(width, depth):
    """P(some layer of a zero-bias relu net is all-zero for one input) = 1 - (1 - 2^-W)^L.

    Given a non-zero input h, each of the W units of the next layer is positive with probability 1/2
    independently (symmetric continuous weights, zero bias); a zero layer stays zero above it.
    """
    w = np.asarray(width, dtype=float)
    return -np.expm1(np.asarray(depth, dtype=float) * np.log1p(-np.exp2(-w)))


def dead_relu_monte_carlo(width: int, depth: int, nets: int, inputs: int, rng: np.random.Generator) -> np.ndarray:
    """dead[l, r, i]: input i of random zero-bias relu net r gives an all-zero layer among layers 1..l+1.

    `nets` nets of `depth` square hidden layers of `width` units at once (the net is an array axis), weights
    uniform on (-1/2, 1/2) (any symmetric continuous law gives the same signs), inputs x ~ N(0, I_width),
    `inputs` per net. With zero biases a zero layer stays zero, so dead[l] is also "layer l+1 is zero".
    Activations are rescaled by their largest unit after every layer (signs are scale-free) to stay in range.
    """
    h = rng.standard_normal((nets, inputs, width), dtype=np.float32)
    w = np.empty((nets, width, width), dtype=np.float32)
    z = np.empty_like(h)
    scale = np.empty((nets, inputs, 1), dtype=np.float32)
    dead = np.empty((depth, nets, inputs), dtype=bool)
    for l in range(depth):
        rng.random(dtype=np.float32, out=w)
        w -= 0.5
        np.matmul(h, w, out=z)
        np.maximum(z, 0, out=h)
        np.max(h, axis=-1, keepdims=True, out=scale)
        np.equal(scale[..., 0], 0, out=dead[l])
        np.maximum(scale, np.float32(1e-30), out=scale)
        h /= scale
    return dead


def wilson_interval(successes: float, n: float, z: float = 1.959963984540054) -> tuple[float, float]:
    """95 % Wilson score interval of a proportion (well behaved at 0 and 1 successes)."""
    if n <= 0:
        return math.nan, math.nan
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    lo = 0.0 if successes <= 0 else max(0.0, centre - half)
    hi = 1.0 if successes >= n else min(1.0, centre + half)
    return lo, hi


def agresti_caffo_variance(p: float, n: float) -> float:
    """Variance of a proportion for a difference interval, with Agresti & Caffo's one-success, one-failure add."""
    pt = (p * n + 1) / (n + 2)
    return pt * (1 - pt) / (n + 2)


# ---------------------------------------------------------------------------------------------------------
# A1: one activation per layer versus one per unit
# ---------------------------------------------------------------------------------------------------------


def mixed_units(acts: list[Activation], width: int, rng: np.random.Generator) -> list[np.ndarray]:
    """A random assignment of `width` units to the activations, balanced: the unit indices of each."""
    labels = rng.permutation(np.arange(width) % len(acts))
    return [np.flatnonzero(labels == i) for i in range(len(acts))]


def mixed_forward(z: np.ndarray, acts: list[Activation], thetas: list[tuple], units: list[np.ndarray],
                  out: np.ndarray) -> np.ndarray:
    """Each unit its own activation: gather the columns of each activation, apply it, scatter them back."""
    for act, theta, idx in zip(acts, thetas, units):
        out[:, idx] = act.forward(z[:, idx], *theta)
    return out


def sorted_forward(zt: np.ndarray, acts: list[Activation], thetas: list[tuple], bounds: list[tuple[int, int]],
                   out: np.ndarray) -> np.ndarray:
    """The same mixed layer with its units sorted by activation, unit-major (zt is (units, batch)): each
    activation works on one contiguous block of rows, no gathers."""
    for act, theta, (a, b) in zip(acts, thetas, bounds):
        act.forward(zt[a:b], *theta, out=out[a:b])
    return out
