"""Pure measurements behind `dlbench activations`: whole arrays in, numbers out, a Generator passed in.

- Properties of one activation (A2): nonlinearity, output and derivative ranges, monotonicity, the mean
  under N(0, 1) input beside its closed form.
- Activations the registry does not hold, built from its kernels: sigmoid - 1/2 (A3, A12), c * relu (A6),
  x^2 (A14); `net` puts any of them into a dlbench.nn.mlp.MLP.
- Gradient flow in a net: per-layer factors of the backpropagated gradient (A6, A7), each unit's gate
  (A8), units that block the gradient on every input (A13), one-signed updates (A3), gradient reversals
  (A4).
- Dead relu layers at init by Monte Carlo (A10) and the span of one hidden layer's units (A14).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from types import MappingProxyType

import numpy as np

from dlbench.nn.activations import (SELU_ALPHA, SELU_SCALE, Activation, get_activation, relu_backward,
                                    relu_forward, sigmoid_forward)
from dlbench.nn.mlp import MLP, MLPSpec

SATURATED = 0.01   # |f'| below this counts as saturated (A5)


# ----------------------------------------------------------------------------- one activation on probe inputs

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


def derivative(act: Activation, z: np.ndarray, theta: tuple = ()) -> np.ndarray:
    """df/dz elementwise (for maxout: the gradient each piece receives for g = 1)."""
    y = act.forward(z, *theta)
    return act.backward(z, y, np.ones_like(y), *theta)


def hyper_count(act: Activation) -> int:
    """Number of numeric hyperparameters a user must set (gelu's `approximate` is a variant, not a number)."""
    return sum(isinstance(v, (int, float)) and not isinstance(v, bool) for v in act.hyper.values())


def learned_count(act: Activation) -> int:
    return len(theta_for(act)) if act.init_params is not None else 0


def probe_grid() -> np.ndarray:
    """The 1-D probe: a fine grid on [-50, 50] plus log-spaced points out to |x| = 1e4."""
    tail = np.logspace(-8, 4, 241)
    return np.unique(np.concatenate([np.linspace(-50.0, 50.0, 100_001), tail, -tail, [0.0]]))


@dataclass(frozen=True)
class Properties:
    """What A2 measures of one activation (float64 inputs).

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

    @property
    def bounded(self) -> bool:
        return math.isfinite(self.out_low) and math.isfinite(self.out_high)


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
    theta = theta_for(act)
    with np.errstate(all="ignore"):
        y = act.forward(np.repeat(t[:, None], k, axis=1), *theta).reshape(-1)
        # off the diagonal for k > 1, so maxout's pieces are not tied
        X = t[:, None] + (rng.standard_normal((t.size, k)) if k > 1 else 0.0)
        d = derivative(act, X, theta).reshape(-1)
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


def is_bounded(act: Activation) -> bool:
    """A finite output range on the probe grid (the forward pass only: cheaper than every property)."""
    t = probe_grid()
    with np.errstate(all="ignore"):
        y = act.forward(np.repeat(t[:, None], act.pieces, axis=1), *theta_for(act)).reshape(-1)
    return math.isfinite(_extent(t, y, -1)) and math.isfinite(_extent(t, y, +1))


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


#: |E f| / RMS f under N(0, 1) input: at most ZERO_YES is zero-centred, at most ZERO_APPROX approximately.
ZERO_YES, ZERO_APPROX = 0.05, 0.25


def centring(means: np.ndarray, squares: np.ndarray) -> np.ndarray:
    """|E f| / RMS f per batch (0 for a function that is 0 everywhere)."""
    rms = np.sqrt(squares)
    with np.errstate(all="ignore"):
        return np.where(rms > 0, np.abs(means) / np.where(rms > 0, rms, 1.0), 0.0)


def zero_centred(ratio: float) -> str:
    """'yes' when |E f| <= 0.05 RMS f, 'approximately' when <= 0.25 RMS f, else 'no' (N(0, 1) input)."""
    return "yes" if ratio <= ZERO_YES else "approximately" if ratio <= ZERO_APPROX else "no"


# ----------------------------------------------------------------------------- activations built from the kernels

def centred_sigmoid() -> Activation:
    """y = sigmoid(x) - 1/2 = tanh(x/2)/2: sigmoid's derivative everywhere, outputs centred on 0.

    dx = g * (1/4 - y^2), since sigmoid' = s (1 - s) = (1/2 + y)(1/2 - y). LeCun, Bottou, Orr & Muller 1998.
    """
    def forward(x, out=None):
        out = sigmoid_forward(x, out=out)
        out -= 0.5
        return out

    def backward(x, y, g, out=None):
        out = np.multiply(y, y, out=out)
        np.subtract(0.25, out, out=out)
        out *= g
        return out

    return Activation("sigmoid-1/2", forward, backward, MappingProxyType({}))


def scaled_relu(c: float) -> Activation:
    """y = c * max(x, 0); dx = g * c [x > 0]: relu whose derivative on the active side is c (A6)."""
    c = float(c)

    def forward(x, out=None):
        out = relu_forward(x, out=out)
        out *= c
        return out

    def backward(x, y, g, out=None):
        out = relu_backward(x, y, g, out=out)
        out *= c
        return out

    return Activation(f"{c:g}*relu", forward, backward, MappingProxyType({}))


def square() -> Activation:
    """y = x^2, dx = 2 x g: a nonlinear polynomial (Leshno et al. 1993: not a universal activation)."""
    def forward(x, out=None):
        return np.multiply(x, x, out=out)

    def backward(x, y, g, out=None):
        out = np.multiply(x, g, out=out)
        out *= 2
        return out

    return Activation("square", forward, backward, MappingProxyType({}))


def activation(name: str) -> Activation:
    """A registry activation by name, or one built here: 'sigmoid-1/2', 'square', '<c>*relu'."""
    if name == "sigmoid-1/2":
        return centred_sigmoid()
    if name == "square":
        return square()
    if name.endswith("*relu"):
        return scaled_relu(float(name[:-5]))
    return get_activation(name)


def net(widths, acts, **spec) -> MLP:
    """An MLP of `widths` whose hidden layers use `acts` (one Activation, a name, or one per hidden layer).

    Activations outside the registry are put in place of an identity placeholder after construction; every
    such activation is elementwise without learnable parameters, so the net's parameters are the same.
    """
    widths = tuple(int(w) for w in widths)
    hidden = len(widths) - 2
    acts = list(acts) if isinstance(acts, (list, tuple)) else [acts] * hidden
    acts = [activation(a) if isinstance(a, str) else a for a in acts]
    registered = [a.name if _registered(a) else "identity" for a in acts]
    hypers = [dict(a.hyper) if _registered(a) else {} for a in acts]
    m = MLP(MLPSpec(widths, activation=tuple(registered), activation_hyper=tuple(hypers), **spec))
    m.activations = tuple(acts)
    m.layers = [layer._replace(act=acts[i]) if layer.act is not None else layer for i, layer in enumerate(m.layers)]
    return m


def _registered(act: Activation) -> bool:
    from dlbench.nn.activations import ACTIVATIONS

    return act.name in ACTIVATIONS


# ----------------------------------------------------------------------------- gradient flow at init (A5-A7)

def saturated_share(act: Activation, z: np.ndarray) -> np.ndarray:
    """Share of units with |f'(z)| < SATURATED, per leading index of z (..., N, W) -> (...)."""
    with np.errstate(all="ignore"):
        d = derivative(act, z)
    return (np.abs(d) < SATURATED).mean(axis=(-2, -1))


def backprop_profile(m: MLP, params: list, x: np.ndarray, g_out: np.ndarray) -> np.ndarray:
    """std over batch and units of dL/dz_l (the gradient reaching each hidden layer's pre-activation),
    per replica: (R, hidden layers), for L = sum(out * g_out)."""
    with np.errstate(all="ignore"):
        out, cache = m.forward(params, x)
        g = np.broadcast_to(np.asarray(g_out, dtype=out.dtype), out.shape)
        _, layer_grads = m.backward(params, cache, g, return_layer_grads=True)
    return np.stack([d.reshape(d.shape[0], -1).std(axis=1) for d in layer_grads.pre], axis=-1)


def layer_factor(profile: np.ndarray) -> np.ndarray:
    """Per-layer factor of the backpropagated gradient, (std first / std last)^(1/(L-1)): < 1 it vanishes
    towards the input, > 1 it explodes."""
    steps = profile.shape[-1] - 1
    with np.errstate(all="ignore"):
        return np.exp(np.log(profile[..., 0] / profile[..., -1]) / steps)


# ----------------------------------------------------------------------------- units that stop passing gradient

def gates(m: MLP, params: list, X: np.ndarray) -> np.ndarray:
    """Each hidden unit's gate: mean over the inputs X of |f'(z)|, the share of the gradient it passes back;
    (R, all hidden units) with the layers side by side."""
    with np.errstate(all="ignore"):
        _, cache = m.forward(params, X, train=False)
        out = []
        for k, (z, h) in enumerate(zip(cache.pre, cache.post)):
            theta = [params[i] for i in m.layers[k].theta]
            d = m.activations[k].backward(z, h, np.ones_like(h), *theta)
            out.append(np.abs(d).mean(axis=-2))
    return np.concatenate(out, axis=-1)


def died(gate0: np.ndarray, gate1: np.ndarray, fraction: float) -> np.ndarray:
    """Per replica: the share of units alive at init (gate0 > 0) whose gate fell below `fraction` of it."""
    alive = gate0 > 0
    with np.errstate(all="ignore"):
        return ((gate1 < fraction * gate0) & alive).sum(axis=-1) / alive.sum(axis=-1)


@dataclass
class DeadUnits:
    """Per replica, for units judged on a data set: `some` units off (input <= 0) for at least one input,
    `every` units off for all of them, and the largest full-batch update of an always-off unit relative to
    the RMS unit update of its layer (NaN where no unit is always off)."""

    some: np.ndarray
    every: np.ndarray
    blocked_update: np.ndarray

    @property
    def falsely_dead(self) -> np.ndarray:
        """Among units off for some input, the share that are on for another (falsely dead)."""
        with np.errstate(all="ignore"):
            return (self.some - self.every) / self.some


def dead_units(m: MLP, params: list, X: np.ndarray, y: np.ndarray, loss_fn) -> DeadUnits:
    """Which hidden units are off on some or every input of (X, y), and what update the always-off ones get."""
    with np.errstate(all="ignore"):
        _, grads, cache = m.value_and_grad(params, X, y, loss_fn, train=False)
    some, every, worst = 0, 0, np.full(params[0].shape[0], -np.inf)
    for k, z in enumerate(cache.pre):
        off = (z <= 0).mean(axis=-2)                         # (R, units): share of inputs where it is off
        layer = m.layers[k]
        update = np.sum(grads[layer.W].astype(np.float64) ** 2, axis=-2)
        if layer.b is not None:
            update += grads[layer.b][:, 0, :].astype(np.float64) ** 2
        update = np.sqrt(update)
        scale = np.sqrt(np.mean(update**2, axis=-1, keepdims=True))
        with np.errstate(all="ignore"):
            rel = np.where(off >= 1, update / scale, -np.inf)
        worst = np.maximum(worst, np.nan_to_num(rel, nan=np.inf, neginf=-np.inf).max(axis=-1))
        some = some + (off > 0).sum(axis=-1)
        every = every + (off >= 1).sum(axis=-1)
    worst = np.where(np.isneginf(worst), np.nan, worst)
    return DeadUnits(np.asarray(some, float), np.asarray(every, float), worst)


def batch_dead_gradient(m: MLP, cache, grads: list) -> tuple[float, int]:
    """For units whose output is 0 on the whole batch: the largest |gradient| of their incoming weights and
    bias (0 when dead units get no update), and how many such (replica, unit) pairs there were."""
    worst, count = 0.0, 0
    for k, h in enumerate(cache.post):
        dead = (h == 0).all(axis=-2)                         # (R, units)
        if not dead.any():
            continue
        layer = m.layers[k]
        gW = np.abs(grads[layer.W]).max(axis=-2)             # (R, units)
        if layer.b is not None:
            gW = np.maximum(gW, np.abs(grads[layer.b][:, 0, :]))
        worst = max(worst, float(gW[dead].max()))
        count += int(dead.sum())
    return worst, count


# ----------------------------------------------------------------------------- the signs of updates (A3)

def one_signed_share(dW: np.ndarray) -> np.ndarray:
    """Share of units (columns of dW (R, fan_in, fan_out)) whose incoming-weight update has a single sign."""
    one = ((dW >= 0).all(axis=-2) | (dW <= 0).all(axis=-2)) & (dW != 0).any(axis=-2)
    return one.mean(axis=-1)


def mixed_per_sample(h: np.ndarray, delta: np.ndarray) -> int:
    """Count of (replica, sample, unit) whose per-sample update h_n delta_n^T has both signs over its inputs.

    h (R, N, fan_in) the layer's input, delta (R, N, fan_out) dL/dz: update_ij = h_i delta_j, so with h >= 0
    every column has the sign of delta_j (the algebra behind A3)."""
    lo = np.minimum(h.min(axis=-1, keepdims=True) * delta, h.max(axis=-1, keepdims=True) * delta)
    hi = np.maximum(h.min(axis=-1, keepdims=True) * delta, h.max(axis=-1, keepdims=True) * delta)
    return int(((lo < 0) & (hi > 0)).sum())


# ----------------------------------------------------------------------------- gradient reversals (A4)

class ReversalCounter:
    """A train callback: per replica, the steps whose gradient points against the previous step's
    (cosine < 0) and the steps compared; a frozen (diverged) replica's zero gradient is not compared."""

    def __init__(self, replicas: int):
        self.prev: list | None = None
        self.reversed = np.zeros(replicas)
        self.compared = np.zeros(replicas)

    @staticmethod
    def _dot(a: list, b: list) -> np.ndarray:
        return sum(np.einsum("ij,ij->i", x.reshape(x.shape[0], -1), y.reshape(y.shape[0], -1), dtype=np.float64)
                   for x, y in zip(a, b))

    def __call__(self, info) -> None:
        g = info.grads
        if self.prev is not None:
            dot, n1, n2 = self._dot(g, self.prev), self._dot(g, g), self._dot(self.prev, self.prev)
            ok = (n1 > 0) & (n2 > 0) & np.isfinite(dot)
            self.reversed += ok & (dot < 0)
            self.compared += ok
            for p, a in zip(self.prev, g):
                np.copyto(p, a)
        else:
            self.prev = [a.copy() for a in g]

    @property
    def share(self) -> np.ndarray:
        with np.errstate(all="ignore"):
            return self.reversed / self.compared


# ----------------------------------------------------------------------------- A10: dead relu layers at init

def dead_layer_analytic(width, depth):
    """P(layer `depth` of a zero-bias relu net is all-zero for one input) = 1 - (1 - 2^-W)^L.

    Given a non-zero input h, each of the W units of the next layer is positive with probability 1/2
    independently (symmetric continuous weights, zero bias); a zero layer stays zero above it.
    """
    w = np.asarray(width, dtype=float)
    return -np.expm1(np.asarray(depth, dtype=float) * np.log1p(-np.exp2(-w)))


def dead_relu_monte_carlo(width: int, depth: int, nets: int, inputs: int, rng: np.random.Generator,
                          tied: bool = False) -> np.ndarray:
    """dead[l, r, i]: input i of random zero-bias relu net r gives an all-zero layer l+1 (and so every layer
    above it).

    `nets` nets of `depth` square hidden layers of `width` units at once (the net is an array axis), weights
    uniform on (-1/2, 1/2) (any symmetric continuous law gives the same signs), inputs x ~ N(0, I_width).
    tied: every unit of a layer has the same incoming weights up to a positive scale (the units are not
    independent: they are on or off together). Activations are rescaled by their largest unit after every
    layer (signs are scale-free) to stay in range.
    """
    h = rng.standard_normal((nets, inputs, width), dtype=np.float32)
    w = np.empty((nets, width, width), dtype=np.float32)
    col = np.empty((nets, width, 1), dtype=np.float32)
    z = np.empty_like(h)
    scale = np.empty((nets, inputs, 1), dtype=np.float32)
    dead = np.empty((depth, nets, inputs), dtype=bool)
    for l in range(depth):
        if tied:
            rng.random(dtype=np.float32, out=col)
            col -= 0.5
            np.multiply(col, rng.random((nets, 1, width), dtype=np.float32) + np.float32(0.5), out=w)
        else:
            rng.random(dtype=np.float32, out=w)
            w -= 0.5
        np.matmul(h, w, out=z)
        np.maximum(z, 0, out=h)
        np.max(h, axis=-1, keepdims=True, out=scale)
        np.equal(scale[..., 0], 0, out=dead[l])
        np.maximum(scale, np.float32(1e-30), out=scale)
        h /= scale
    return dead


@dataclass(frozen=True)
class WidthFit:
    """log P(M) fitted over the widths M: as p^M (log P = a + M log p) and as 1/M (log P = a - log M)."""

    p: float
    rms_power: float     # RMS residual of log P for p^M
    rms_inverse: float   # ... for 1/M
    points: int

    @property
    def better(self) -> str:
        if self.points < 3:
            return "neither (too few widths with dead layers)"
        return "p^M" if self.rms_power < self.rms_inverse else "1/M"


def fit_width_trend(widths, probs, counts, min_count: int = 5) -> WidthFit:
    """Fit P over widths where at least `min_count` dead layers were seen (so log P is measured)."""
    M = np.asarray(widths, dtype=float)
    P = np.asarray(probs, dtype=float)
    keep = np.asarray(counts) >= min_count
    M, logP = M[keep], np.log(P[keep])
    if M.size < 2:
        return WidthFit(math.nan, math.nan, math.nan, int(M.size))
    slope, icept = np.polyfit(M, logP, 1)
    rms_power = float(np.sqrt(np.mean((logP - (icept + slope * M)) ** 2)))
    a = float(np.mean(logP + np.log(M)))
    rms_inverse = float(np.sqrt(np.mean((logP - (a - np.log(M))) ** 2)))
    return WidthFit(float(np.exp(slope)), rms_power, rms_inverse, int(M.size))


# ----------------------------------------------------------------------------- A14: the span of one hidden layer

TARGETS = {"abs": np.abs, "sin3x": lambda x: np.sin(3 * x)}
DOMAIN = 2.0          # inputs on [-2, 2]
SLOPE_STD = 3.0       # hidden weights ~ N(0, 3^2): a unit turns over about a third of the domain
CENTRES = 2.5         # each unit's centre (where w (x - c) = 0) uniform on [-2.5, 2.5]
RIDGE = 1e-8          # per training point, on the output weights


def span_errors(act: Activation, target: str, widths, rng: np.random.Generator, n: int = 512,
                ridge: float = RIDGE) -> np.ndarray:
    """Relative test MSE (MSE / Var target) of the best fit by one hidden layer of `act` units with random
    weights and a least-squares output layer (with bias), at each width; the units of a narrower layer are
    the first units of the widest one, so the errors are nested.

    Units f(w (x - c)) with w ~ N(0, SLOPE_STD^2) and c ~ U(-CENTRES, CENTRES); x train and test ~ U(-2, 2),
    n of each. The output weights minimise |A v - y|^2 + ridge * n * |v|^2: a tiny ridge keeps two units
    that turn between the same two training points from fitting a spike there.
    """
    f = TARGETS[target]
    x_train = rng.uniform(-DOMAIN, DOMAIN, n)
    x_test = rng.uniform(-DOMAIN, DOMAIN, n)
    top = max(widths)
    w = rng.normal(0.0, SLOPE_STD, top)
    c = rng.uniform(-CENTRES, CENTRES, top)
    y_train, y_test = f(x_train), f(x_test)
    out = np.empty(len(widths))
    for i, width in enumerate(widths):
        def features(x):
            H = act.forward(w[:width] * (x[:, None] - c[:width]))
            return np.column_stack([np.ones(x.size), H])
        A = features(x_train)
        k = A.shape[1]
        coef, *_ = np.linalg.lstsq(np.vstack([A, math.sqrt(ridge * n) * np.eye(k)]),
                                   np.concatenate([y_train, np.zeros(k)]), rcond=None)
        err = features(x_test) @ coef - y_test
        out[i] = float(np.mean(err**2) / np.var(y_test))
    return out


# ----------------------------------------------------------------------------- A11: alpha against seed

def alpha_seed_ratio(table: np.ndarray, rng: np.random.Generator, n_boot: int = 2000) -> tuple[float, float, float]:
    """R = sqrt(mean over seeds of the variance over alphas) / sqrt(mean over alphas of the variance over
    seeds) of table (alphas, seeds), every alpha run from the same seeds; with a percentile bootstrap interval
    over seeds (columns resampled). Both variances are unbiased (ddof 1): like is compared with like."""
    T = np.asarray(table, dtype=float)
    T = T[:, np.isfinite(T).all(axis=0)]
    S = T.shape[1]
    if S < 3:
        return math.nan, math.nan, math.nan

    def ratio(t: np.ndarray) -> np.ndarray:   # t (..., alphas, seeds)
        over_alpha = t.var(axis=-2, ddof=1).mean(axis=-1)
        over_seed = t.var(axis=-1, ddof=1).mean(axis=-1)
        with np.errstate(all="ignore"):
            return np.sqrt(over_alpha / over_seed)

    r = float(ratio(T))
    boots = ratio(np.swapaxes(T[:, rng.integers(0, S, (n_boot, S))], 0, 1))
    lo, hi = np.nanpercentile(boots, [2.5, 97.5])
    return r, float(lo), float(hi)


# ----------------------------------------------------------------------------- A12: steps to a target

def steps_to(losses: np.ndarray, target: float, window: int) -> np.ndarray:
    """Per replica, the first step at which the mean of the last `window` minibatch losses is at most
    `target` (counted in updates), or -1 when it never is (losses (R, T); a NaN loss never counts)."""
    L = np.where(np.isfinite(losses), losses, np.inf)
    c = np.cumsum(np.concatenate([np.zeros((L.shape[0], 1)), L], axis=1), axis=1)
    with np.errstate(invalid="ignore"):
        ma = (c[:, window:] - c[:, :-window]) / window          # mean of losses t-window+1 .. t
    hit = ma <= target
    first = np.where(hit.any(axis=1), hit.argmax(axis=1) + window, -1)
    return first
