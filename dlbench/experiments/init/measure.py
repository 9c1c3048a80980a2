"""Pure measurements of weight initialization: schemes, per-layer profiles at init, unit symmetry,
orthogonality, the variance of xavier_uniform, and the mean-field references they are held against.

The per-layer profile. A plain net of layers z_l = h_{l-1} W_l, h_l = f(z_l) (no bias), widths
(w_0, ..., w_L), h_0 = x ~ N(0, 1) of shape (64, w_0), is read out by L = sum(h_L * g) with g ~ N(0, 1).
For each layer it keeps std(h_l) over the batch and units (forward) and std(dL/dz_l) (backward: the
gradient that reaches layer l's pre-activations). Every scheme and seed is one replica of one batched
matmul chain, in float64 (N(0, 1) weights under relu pass float32's 3e38 within 30 layers at width 128).

Mean field (zero-mean iid weights, Gaussian pre-activations): Var z_{l+1} = fan_in E[w^2] E[f(z_l)^2] and
E[f(z)^2] = kappa Var z, kappa = 1/2 for relu, (1 + a^2)/2 for leaky relu, 1 for the identity; backward
Var dL/dz_l = fan_out E[w^2] kappa Var dL/dz_{l+1}. So a square net's std ratio is (W E[w^2] kappa)^((L-1)/2)
in both directions: He's E[w^2] = 2/fan_in keeps relu's forward signal, 2/fan_out its backward one,
and Glorot's 2/(fan_in + fan_out) is the compromise (Glorot & Bengio 2010; He et al. 2015).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from dlbench.errors import DlbenchError

PROFILE_BATCH = 64                  # samples pushed through the profile net
RANK_TOLERANCE = 1e-8               # numerical rank: singular values above this times the largest
MAX_CHUNK_BYTES = 128 * 2**20       # profile storage per batched chain
MAX_SCHEME_BYTES = 2 * 2**30        # one scheme's profile must fit in this
GOOD_SCHEME = {"tanh": "xavier_normal", "sigmoid": "xavier_normal", "identity": "xavier_normal",
               "sin": "xavier_normal", "selu": "lecun_normal"}   # every other activation: kaiming_normal


# ----------------------------------------------------------------------------- schemes

@dataclass(frozen=True)
class Scheme:
    """An initializer with bound hyperparameters and the label a user wrote for it (normal:std=0.01)."""

    label: str
    init: object          # dlbench.nn.init.Initializer


def parse_scheme(text: str) -> Scheme:
    """'normal:std=0.01' -> Scheme; name and hyperparameters are checked by the initializer registry."""
    from dlbench.nn.init import get_initializer

    name, *pairs = [t.strip() for t in str(text).strip().split(":")]
    hyper = {}
    for pair in pairs:
        key, eq, value = pair.partition("=")
        if not eq or not key.strip() or not value.strip():
            raise DlbenchError(f"--schemes: expected name:key=value, got {text!r}")
        hyper[key.strip()] = value.strip()
    init = get_initializer(name, **hyper)
    label = name + "".join(f":{k}={_fmt_value(init.hyper[k])}" for k in hyper)
    return Scheme(label, init)


def parse_schemes(text: str) -> list[Scheme]:
    items = [t for t in str(text).split(",") if t.strip()]
    if not items:
        raise DlbenchError("--schemes: expected at least one initializer")
    out: dict[str, Scheme] = {}
    for item in items:
        s = parse_scheme(item)
        out.setdefault(s.label, s)
    return list(out.values())


def _fmt_value(v) -> str:
    return f"{v:g}" if isinstance(v, float) else str(v)


def good_scheme(activation: str) -> str:
    """The scheme the literature recommends for an activation: Glorot for tanh-like, LeCun for selu, else He."""
    return GOOD_SCHEME.get(activation, "kaiming_normal")


def activation_gain(act) -> float:
    """torch's calculate_gain for the activation (prelu at its initial slope 0.25); 1 where torch has none."""
    from dlbench.nn.init import calculate_gain

    if act.name == "leaky_relu":
        return calculate_gain("leaky_relu", act.hyper["negative_slope"])
    if act.name == "prelu":
        return calculate_gain("leaky_relu", 0.25)
    name = {"identity": "linear"}.get(act.name, act.name)
    try:
        return calculate_gain(name)
    except DlbenchError:
        return 1.0


def scale_scheme(act, scale: float, width: int) -> Scheme:
    """N(0, (scale * gain / sqrt(width))^2): `scale` times the critical std of a square net of `width`."""
    from dlbench.nn.init import get_initializer

    std = scale * activation_gain(act) / math.sqrt(width)
    return Scheme(f"normal:std={std:.4g}", get_initializer("normal", std=std))


# ----------------------------------------------------------------------------- analytic references

def weight_second_moment(init, fan_in: int, fan_out: int) -> float | None:
    """E[w^2] of a zero-mean scheme from its formula; None for a scheme whose weights are not zero-mean iid."""
    from dlbench.nn.init import calculate_gain

    h, name = init.hyper, init.name
    if name == "normal":
        return h["std"] ** 2 if h["mean"] == 0 else None
    if name == "uniform":
        return h["b"] ** 2 / 3 if h["a"] == -h["b"] else None
    if name in ("xavier_uniform", "xavier_normal"):
        return h["gain"] ** 2 * 2.0 / (fan_in + fan_out)
    if name in ("kaiming_uniform", "kaiming_normal"):
        fan = fan_in if h["mode"] == "fan_in" else fan_out
        return calculate_gain(h["nonlinearity"], h["a"]) ** 2 / fan
    if name == "lecun_normal":
        return 1.0 / fan_in
    if name == "orthogonal":         # unit columns (or rows when fan_out > fan_in)
        return h["gain"] ** 2 / max(fan_in, fan_out)
    if name == "torch_default":
        return 1.0 / (3 * fan_in)
    return None


def relu_kappa(act) -> float | None:
    """E[f(z)^2] / Var z = E[f'(z)^2] for Gaussian z: relu 1/2, leaky relu (1 + a^2)/2, identity 1; else None."""
    if act.name == "relu":
        return 0.5
    if act.name == "leaky_relu":
        return (1 + act.hyper["negative_slope"] ** 2) / 2
    if act.name == "prelu":
        return (1 + 0.25**2) / 2
    if act.name == "identity":
        return 1.0
    return None


def analytic_ratio(init, act, width: int, depth: int) -> float | None:
    """Mean-field std ratio last/first layer of the square profile net: (W E[w^2] kappa)^((L - 1) / 2)."""
    m2, kappa = weight_second_moment(init, width, width), relu_kappa(act)
    if m2 is None or kappa is None:
        return None
    return float((width * m2 * kappa) ** ((depth - 1) / 2))


# ----------------------------------------------------------------------------- the per-layer profile

@dataclass
class Profile:
    """Per-layer std at init, (..., seeds, layers): act[..., l] = std(h_{l+1}), grad[..., l] = std(dL/dz_{l+1})."""

    act: np.ndarray
    grad: np.ndarray

    @property
    def act_ratio(self) -> np.ndarray:
        """std(h_L) / std(h_1)."""
        with np.errstate(all="ignore"):
            return self.act[..., -1] / self.act[..., 0]

    @property
    def grad_ratio(self) -> np.ndarray:
        """std(dL/dz_1) / std(dL/dz_L): what reaches the first layer over what left the last."""
        with np.errstate(all="ignore"):
            return self.grad[..., 0] / self.grad[..., -1]

    @property
    def drift(self) -> np.ndarray:
        """Worst per-layer change, exp(max(|ln rho_act|, |ln rho_grad|)) with rho = ratio^(1/(L-1)); 1 = none."""
        steps = self.act.shape[-1] - 1
        with np.errstate(all="ignore"):
            a = np.abs(np.log(self.act_ratio)) / steps
            g = np.abs(np.log(self.grad_ratio)) / steps
            return np.exp(np.maximum(a, g))

    def layer_drift(self, direction: str, period: int = 1) -> np.ndarray:
        """The per-layer std change in one direction, for nets whose widths repeat every `period` layers.

        Layer factors (forward std(h_{l+1}) / std(h_l), backward std(dL/dz_l) / std(dL/dz_{l+1})) are
        averaged in log space over the layers of each phase of the period; the result is
        exp(max over phases of |mean log factor|): 1 when every kind of layer keeps the signal.
        """
        std = self.act if direction == "forward" else self.grad
        with np.errstate(all="ignore"):
            logs = np.diff(np.log(std), axis=-1)
            if direction == "backward":
                logs = -logs
            worst = np.zeros(logs.shape[:-1])
            for phase in range(period):
                worst = np.maximum(worst, np.abs(logs[..., phase::period].mean(axis=-1)))
        return np.exp(worst)


def chain_bytes(n_seeds: int, widths: Sequence[int], pieces: int = 1, batch: int = PROFILE_BATCH) -> int:
    """Memory one scheme's chain keeps for its backward pass: every W_l and z_l, float64."""
    return n_seeds * sum(a * b * pieces + batch * b * pieces for a, b in zip(widths[:-1], widths[1:])) * 8


def check_chain_memory(n_seeds: int, widths: Sequence[int], pieces: int = 1) -> int:
    need = chain_bytes(n_seeds, widths, pieces)
    if need > MAX_SCHEME_BYTES:
        raise DlbenchError(f"a profile of {len(widths) - 1} layers up to width {max(widths)} and {n_seeds} seeds "
                           f"needs {need / 2**30:.1f} GiB per scheme (limit {MAX_SCHEME_BYTES / 2**30:.0f}); "
                           "lower --width, --depth or --seeds")
    return need


def std_profile(inits: Sequence, rngs: Sequence[np.random.Generator], act, *, widths: Sequence[int],
                n_seeds: int, x: np.ndarray, g_out: np.ndarray, max_bytes: int = MAX_CHUNK_BYTES) -> Profile:
    """Per-layer std of activations and back-propagated gradients at init, for every scheme and seed at once.

    inits[k] draws its weights from rngs[k], (n_seeds, w_{l-1}, w_l * pieces) per layer, first layer first.
    Schemes run as one replica axis of a batched matmul chain, split into chunks of whole schemes that
    keep at most `max_bytes` for the backward pass (chunking does not change any number). x (N, w_0) is
    the input and g_out (N, w_L) = dL/dh_L; both are shared by every replica.
    """
    K, depth = len(inits), len(widths) - 1
    per_scheme = check_chain_memory(n_seeds, widths, act.pieces)
    chunk = max(1, max_bytes // per_scheme)
    act_std = np.empty((K, n_seeds, depth))
    grad_std = np.empty((K, n_seeds, depth))
    for start in range(0, K, chunk):
        ks = slice(start, min(K, start + chunk))
        a, g = _chain(inits[ks], rngs[ks], act, widths, n_seeds, x, g_out)
        act_std[ks] = a.reshape(-1, n_seeds, depth)
        grad_std[ks] = g.reshape(-1, n_seeds, depth)
    return Profile(act_std, grad_std)


def _std(a: np.ndarray) -> np.ndarray:
    return a.reshape(a.shape[0], -1).std(axis=1)


def _chain(inits, rngs, act, widths, n_seeds, x, g_out) -> tuple[np.ndarray, np.ndarray]:
    R, depth = len(inits) * n_seeds, len(widths) - 1
    act_std, grad_std = np.empty((R, depth)), np.empty((R, depth))
    weights, pre = [], []
    h = np.asarray(x, dtype=np.float64)
    with np.errstate(all="ignore"):  # exploding and vanishing profiles are outcomes, not warnings
        for l in range(depth):
            fan_in, fan_out = widths[l], widths[l + 1] * act.pieces
            theta = act.init_params((R,), widths[l + 1], np.float64) if act.init_params else ()
            W = np.concatenate([init(rng, (n_seeds, fan_in, fan_out), np.float64) for init, rng in zip(inits, rngs)])
            z = np.matmul(h, W)
            h = act.forward(z, *theta)
            act_std[:, l] = _std(h)
            weights.append((W, theta))
            pre.append(z)
        g = np.broadcast_to(np.asarray(g_out, dtype=np.float64), (R, *g_out.shape))
        for l in range(depth - 1, -1, -1):
            z, (W, theta) = pre.pop(), weights.pop()
            dz = act.backward(z, act.forward(z, *theta), g, *theta)
            grad_std[:, l] = _std(dz)
            if l:
                g = np.matmul(dz, np.swapaxes(W, -1, -2))
    return act_std, grad_std


# ----------------------------------------------------------------------------- I1: symmetry

def unit_symmetry(W: np.ndarray, pieces: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """For W (S, fan_in, units * pieces): max over unit pairs of 1 - cos(w_i, w_j) and the rank, per replica.

    A unit's incoming weight vector is its column of W (a maxout unit's `pieces` consecutive columns, joined).
    Rank counts singular values above RANK_TOLERANCE times the largest.
    """
    W = np.asarray(W, dtype=np.float64)
    if pieces > 1:
        S, fan_in, cols = W.shape
        W = W.reshape(S, fan_in, cols // pieces, pieces).transpose(0, 1, 3, 2).reshape(S, fan_in * pieces, -1)
    with np.errstate(all="ignore"):
        U = W / np.linalg.norm(W, axis=-2, keepdims=True)
        cos = np.swapaxes(U, -1, -2) @ U
        # rounding can put a cosine a few ulps above 1
        gap = np.maximum(np.nan_to_num(1.0 - cos, nan=np.inf), 0.0).max(axis=(-2, -1))
    sv = np.linalg.svd(W, compute_uv=False)
    rank = (sv > RANK_TOLERANCE * sv[..., :1]).sum(axis=-1)
    return gap, rank


def symmetric_twins(params: list[np.ndarray]) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """From random MLP params (W, b per layer): the constant init and its sign-randomised control.

    constant: every weight of a layer equal to that layer's RMS weight (its scale kept, every unit alike);
    signs: the same magnitudes with the random init's signs (the scale kept, the units told apart).
    Biases start at zero in both. The two differ in one thing only: whether the units are identical.
    """
    constant, signs = [], []
    for i, p in enumerate(params):
        if i % 2:  # a bias
            constant.append(np.zeros_like(p))
            signs.append(np.zeros_like(p))
            continue
        rms = np.sqrt((p.astype(np.float64) ** 2).mean(axis=(-2, -1), keepdims=True)).astype(p.dtype)
        constant.append(np.broadcast_to(rms, p.shape).copy())
        signs.append(np.where(p < 0, -rms, rms).astype(p.dtype))
    return constant, signs


# ----------------------------------------------------------------------------- I2 and I4: weights themselves

def gram_errors(W: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For W (S, fan_in, fan_out): max |W^T W - I| (the units' Gram, torch's W W^T), max |W W^T - I|, rank(W^T W)."""
    W = np.asarray(W, dtype=np.float64)
    units = np.swapaxes(W, -1, -2) @ W
    inputs = W @ np.swapaxes(W, -1, -2)
    unit_err = np.abs(units - np.eye(W.shape[-1])).max(axis=(-2, -1))
    input_err = np.abs(inputs - np.eye(W.shape[-2])).max(axis=(-2, -1))
    ev = np.linalg.eigvalsh(units)
    rank = (ev > RANK_TOLERANCE * ev[..., -1:]).sum(axis=-1)
    return unit_err, input_err, rank


def xavier_variance(rng: np.random.Generator, shapes: Sequence[tuple[int, int]], n_seeds: int):
    """Empirical variance of xavier_uniform over the formula 2/(fan_in+fan_out), per shape and seed.

    Returns (ratios (shapes, seeds), max|w| / limit (shapes, seeds), pooled ratio over every draw, its
    sampling standard deviation sqrt(0.8 / M)). For M iid U(-a, a) draws normalised to variance 1 the
    sample variance has variance (E u^4 - 1) / M = (9/5 - 1) / M.
    """
    from dlbench.nn.init import get_initializer

    init = get_initializer("xavier_uniform")
    ratios, reach, pooled_sq, pooled_sum, count = [], [], 0.0, 0.0, 0
    for fan_in, fan_out in shapes:
        w = init(rng, (n_seeds, fan_in, fan_out), np.float64).reshape(n_seeds, -1)
        var = 2.0 / (fan_in + fan_out)
        ratios.append(w.var(axis=1) / var)
        reach.append(np.abs(w).max(axis=1) / math.sqrt(6.0 / (fan_in + fan_out)))
        u = w / math.sqrt(var)
        pooled_sq += float((u * u).sum())
        pooled_sum += float(u.sum())
        count += u.size
    pooled = pooled_sq / count - (pooled_sum / count) ** 2
    return np.array(ratios), np.array(reach), pooled, math.sqrt(0.8 / count)
