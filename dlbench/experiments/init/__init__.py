"""Weight initialization: symmetry, variance through depth, Glorot's compromise, He's correction, orthogonal
init and its cost; claims I1-I5.

The per-layer profile. A plain net of `depth` square layers (width W, no bias) z_l = h_{l-1} W_l,
h_l = f(z_l), h_0 = x ~ N(0, 1) of shape (64, W), is read out by the loss L = sum(h_L * g) with g ~ N(0, 1).
For each layer the profile is std(h_l) over the batch and units (forward) and std(dL/dz_l) (backward,
the gradient that reaches layer l's pre-activations). The ratios are std(h_L) / std(h_1) and
std(dL/dz_1) / std(dL/dz_L), each in the direction its signal travels. Every scheme and seed of a run is
one replica of one batched matmul chain, in float64 (N(0, 1) weights under relu pass float32's 3e38
within 30 layers at width 128).

Per-layer drift: rho = ratio^(1 / (L - 1)) is the geometric-mean change per layer; a profile is "in the
band" when both its activation and gradient rho lie within a factor BAND = 1.1 of 1.

Analytic reference (mean field, zero-mean iid weights, Gaussian pre-activations): Var z_{l+1} =
fan_in E[w^2] E[f(z_l)^2], and E[f(z)^2] = kappa Var z with kappa = 1/2 for relu, (1 + a^2)/2 for leaky
relu, 1 for the identity; so both ratios are (W E[w^2] kappa)^((L - 1) / 2). Xavier under relu has
W E[w^2] = 1: the variance halves per layer, 2^-(L-1) over the net (Glorot & Bengio 2010; He et al. 2015).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from dlbench.errors import DlbenchError
from dlbench.experiments.base import RunContext, option, parse_numbers
from dlbench.stats import (
    Claim, bootstrap_ci, claim_from_interval, decide, exact_claim, not_measured, two_sample_verdict, verdict,
)

NAME = "init"
HELP = "Weight initialization: symmetry, per-layer variance through depth, Glorot, He, orthogonal (claims I1-I5)."
CLAIMS = {
    "I1": "identical weights leave neurons identical; random init breaks the symmetry",
    "I2": "orthogonal init gives orthonormal units where fan_out <= fan_in (not where fan_out > fan_in), "
          "and its generation time grows faster than uniform init's",
    "I3": "weights too small make activations and gradients vanish through depth, too large explode",
    "I4": "Var of xavier_uniform is 2/(fan_in+fan_out); with tanh Glorot keeps the per-layer std near 1 "
          "where naive inits drift; with relu He does, where Glorot halves the variance per layer",
    "I5": "good inits train deep nets that bad inits cannot",
}

DEFAULT_SCHEMES = ("normal:std=1,normal:std=0.01,xavier_uniform,xavier_normal,kaiming_uniform,kaiming_normal,"
                   "lecun_normal,orthogonal,torch_default")
QUICK_SCHEMES = "normal:std=1,normal:std=0.01,xavier_uniform,kaiming_normal,orthogonal"
PROFILE_BATCH = 64                  # samples pushed through the profile net
BAND = 1.1                          # per-layer std drift counted as "near 1"
HALVING_TOLERANCE = 0.1             # I4: relu + xavier Var factor per layer within 0.5 +- this (seeds spread +-0.05)
VARIANCE_TOLERANCE = 0.02           # I4: empirical Var(xavier_uniform) within 2 % of the formula
LIMIT_TOLERANCE = 1e-3              # I4: the largest |w| of xavier_uniform within 0.1 % of its limit
EXPONENT_THRESHOLD = 0.25           # I2: orthogonal's time exponent must exceed uniform's by this much
LOSS_RATIO_THRESHOLD = 0.5          # I5: a bad init's final loss at least 1.5x the good one's
SYMMETRY_TOLERANCE = 1e-9           # I1: 1 - cos between units of a constant-init net (float64 training)
RANK_TOLERANCE = 1e-8               # numerical rank: singular values above this times the largest
GRAM_TOLERANCE = 1e-10              # I2: max |W^T W - I| of float64 orthogonal weights
MAX_CHUNK_BYTES = 128 * 2**20       # profile storage per batched chain
MAX_SCHEME_BYTES = 2 * 2**30        # one scheme's profile must fit in this
I5_DATA = "spirals"
SYMMETRY_WIDTH = 16                 # I1's net: 2 hidden layers of this width
BAD_SCHEMES = ("normal:std=0.01", "normal:std=1")
I4_PROFILES = (("tanh", "xavier_uniform"), *(("tanh", b) for b in BAD_SCHEMES),
               ("relu", "xavier_uniform"), ("relu", "kaiming_normal"))
GOOD_SCHEME = {"tanh": "xavier_normal", "sigmoid": "xavier_normal", "identity": "xavier_normal",
               "sin": "xavier_normal", "selu": "lecun_normal"}   # every other activation: kaiming_normal


@dataclass
class Options:
    schemes: str = option(DEFAULT_SCHEMES, help="Initializers to compare, comma-separated; hyperparameters "
                          "after colons, e.g. normal:std=0.01 or uniform:a=-0.1:b=0.1.", metavar="LIST",
                          quick=QUICK_SCHEMES)
    activation: str = option("relu", help="Activation of the profile and training nets.",
                             choices=lambda: _activation_names())
    depth: int = option(30, help="Layers of the profile net.", min=2)
    width: int = option(128, help="Width of the profile net (and n of the I2 orthogonality check).", min=2,
                        quick=64)
    scales: str = option("0.5,0.8,1,1.25,2", help="I3: normal init std as multiples of gain/sqrt(width) "
                         "(gain: torch's calculate_gain for the activation, 1 where it has none).",
                         metavar="LIST")
    train_depth: int = option(20, help="I5: hidden layers of the trained net.", min=1, quick=12)
    train_width: int = option(32, help="I5: width of the trained net.", min=1, quick=24)
    steps: int = option(200, help="I1 and I5: training steps (the fixed budget).", min=1, quick=80)
    lr: float = option(5e-3, help="I1 and I5: learning rate (positive).")
    optimizer: str = option("adam", help="I1 and I5: optimizer.", choices=lambda: _optimizer_names())
    time_schemes: str = option("uniform,normal,orthogonal", help="Initializers whose generation time is "
                               "measured (uniform and orthogonal are always added for I2).", metavar="LIST")
    sizes: str = option("256,512,1024", help="n of the n x n matrices whose generation is timed.",
                        metavar="LIST")


SUITE_OPTIONS: dict = {}


def _activation_names() -> list[str]:
    from dlbench.nn.activations import ACTIVATIONS

    return list(ACTIVATIONS)


def _optimizer_names() -> list[str]:
    from dlbench.nn.optim import OPTIMIZERS

    return list(OPTIMIZERS)


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
    """Per-layer std at init, (schemes, seeds, layers): act[k, s, l] = std(h_{l+1}), grad = std(dL/dz_{l+1})."""

    act: np.ndarray
    grad: np.ndarray

    @property
    def act_ratio(self) -> np.ndarray:
        """std(h_L) / std(h_1), (schemes, seeds)."""
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


def profile_bytes(n_seeds: int, depth: int, width: int, pieces: int = 1, batch: int = PROFILE_BATCH) -> int:
    """Memory one scheme's chain keeps for its backward pass: every W_l and z_l, float64."""
    return n_seeds * depth * (width * width * pieces + batch * width * pieces) * 8


def _check_profile_memory(n_seeds: int, depth: int, width: int, pieces: int, batch: int = PROFILE_BATCH) -> int:
    need = profile_bytes(n_seeds, depth, width, pieces, batch)
    if need > MAX_SCHEME_BYTES:
        raise DlbenchError(f"the profile of width {width}, depth {depth} and {n_seeds} seeds needs "
                           f"{need / 2**30:.1f} GiB per scheme (limit {MAX_SCHEME_BYTES / 2**30:.0f}); "
                           "lower --width, --depth or --seeds")
    return need


def std_profile(inits: Sequence, rngs: Sequence[np.random.Generator], act, *, depth: int, width: int,
                n_seeds: int, x: np.ndarray, g_out: np.ndarray, max_bytes: int = MAX_CHUNK_BYTES) -> Profile:
    """Per-layer std of activations and back-propagated gradients at init, for every scheme and seed at once.

    inits[k] draws its weights from rngs[k], (n_seeds, W, W * pieces) per layer, first layer first. Schemes
    run as one replica axis of a batched matmul chain, split into chunks of whole schemes that keep at most
    `max_bytes` for the backward pass (chunking does not change any number). x (N, W) is the input and
    g_out (N, W) = dL/dh_L; both are shared by every replica.
    """
    K = len(inits)
    per_scheme = _check_profile_memory(n_seeds, depth, width, act.pieces, x.shape[0])
    chunk = max(1, max_bytes // per_scheme)
    act_std = np.empty((K, n_seeds, depth))
    grad_std = np.empty((K, n_seeds, depth))
    for start in range(0, K, chunk):
        ks = slice(start, min(K, start + chunk))
        a, g = _chain(inits[ks], rngs[ks], act, depth, width, n_seeds, x, g_out)
        act_std[ks] = a.reshape(-1, n_seeds, depth)
        grad_std[ks] = g.reshape(-1, n_seeds, depth)
    return Profile(act_std, grad_std)


def _std(a: np.ndarray) -> np.ndarray:
    return a.reshape(a.shape[0], -1).std(axis=1)


def _chain(inits, rngs, act, depth, width, n_seeds, x, g_out) -> tuple[np.ndarray, np.ndarray]:
    R = len(inits) * n_seeds
    fan_out = width * act.pieces
    theta = act.init_params((R,), width, np.float64) if act.init_params else ()
    act_std, grad_std = np.empty((R, depth)), np.empty((R, depth))
    weights, pre = [], []
    h = np.asarray(x, dtype=np.float64)
    with np.errstate(all="ignore"):  # exploding and vanishing profiles are outcomes, not warnings
        for l in range(depth):
            W = np.concatenate([init(rng, (n_seeds, width, fan_out), np.float64) for init, rng in zip(inits, rngs)])
            z = np.matmul(h, W)
            h = act.forward(z, *theta)
            act_std[:, l] = _std(h)
            weights.append(W)
            pre.append(z)
        g = np.broadcast_to(np.asarray(g_out, dtype=np.float64), (R, *g_out.shape))
        for l in range(depth - 1, -1, -1):
            z, W = pre.pop(), weights.pop()
            dz = act.backward(z, act.forward(z, *theta), g, *theta)
            grad_std[:, l] = _std(dz)
            if l:
                g = np.matmul(dz, np.swapaxes(W, -1, -2))
    return act_std, grad_std


# ----------------------------------------------------------------------------- I1, I2, I4 measurements

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


def loglog_slope(sizes: Sequence[int], times: np.ndarray) -> np.ndarray:
    """Least-squares slope k of log t = k log n + c; times (..., len(sizes)), one fit per leading index."""
    x = np.log(np.asarray(sizes, dtype=float))
    xc = x - x.mean()
    y = np.log(np.asarray(times, dtype=float))
    return (y - y.mean(axis=-1, keepdims=True)) @ xc / (xc @ xc)


def bootstrap_exponents(sizes: Sequence[int], samples: Sequence[np.ndarray], rng: np.random.Generator,
                        n_boot: int = 2000) -> np.ndarray:
    """Exponents fitted to the fastest time per size, each size's samples resampled: (n_boot,) slopes."""
    out = np.empty((n_boot, len(samples)))
    for i, s in enumerate(samples):
        s = np.asarray(s, dtype=float)
        out[:, i] = s[rng.integers(0, s.size, (n_boot, s.size))].min(axis=1)
    return loglog_slope(sizes, out)


# ----------------------------------------------------------------------------- claims from parts

def within_claim(claim_id: str, statement: str, effect: float, low: float, high: float, *, target: float,
                 tolerance: float, n: int, method: str, label: str, note: str = "") -> Claim:
    """Equivalence: supported when the interval lies inside target +- tolerance (two one-sided verdicts)."""
    above = decide(effect, low, high, direction="greater", null=target - tolerance, n=n)
    below = decide(effect, low, high, direction="less", null=target + tolerance, n=n)
    v = ("supported" if above == below == "supported"
         else "refuted" if "refuted" in (above, below) else "inconclusive")
    c = claim_from_interval(claim_id, statement, effect, low, high, n=n, method=method, label=label,
                            note=note or f"within {target:g} +- {tolerance:g}")
    return dataclasses.replace(c, verdict=v)


def combine(claim_id: str, statement: str, parts: Sequence[Claim], headline: int = 0) -> Claim:
    """One verdict from several checks: refuted if any is refuted, supported if all are, else inconclusive.

    The figure and interval are those of parts[headline]; the evidence lists every part.
    """
    verdicts = [p.verdict for p in parts]
    v = "refuted" if "refuted" in verdicts else "supported" if all(x == "supported" for x in verdicts) \
        else "inconclusive"
    h = parts[headline]
    evidence = "; ".join(f"{p.evidence} [{p.verdict}]" for p in parts)
    return Claim(claim_id, statement, v, h.effect, h.low, h.high, h.n, h.method, evidence, h.unit)


def _interval(values, *, label: str, direction: str, null: float, threshold: float = 0.0) -> Claim:
    return verdict("part", "", values, direction=direction, null=null, threshold=threshold, label=label)


# ----------------------------------------------------------------------------- the run

@dataclass
class _Plan:
    schemes: list[Scheme]
    act: object
    scales: list[float]
    time_schemes: list[Scheme]
    sizes: list[int]


def _validate(opts: Options) -> _Plan:
    from dlbench.nn.activations import get_activation

    if opts.depth < 2:
        raise DlbenchError(f"--depth must be at least 2, got {opts.depth}")
    if opts.width < 2:
        raise DlbenchError(f"--width must be at least 2, got {opts.width}")
    if opts.train_depth < 1 or opts.train_width < 1 or opts.steps < 1:
        raise DlbenchError("--train-depth, --train-width and --steps must be at least 1")
    if not (opts.lr > 0 and math.isfinite(opts.lr)):
        raise DlbenchError(f"--lr must be a positive number, got {opts.lr}")
    from dlbench.nn.optim import OPTIMIZERS

    OPTIMIZERS[opts.optimizer]  # an unknown name raises UnknownName listing the valid ones
    schemes = parse_schemes(opts.schemes)
    act = get_activation(opts.activation)
    scales = sorted(set(parse_numbers(opts.scales, float, what="--scales")))
    time_schemes = parse_schemes(opts.time_schemes)
    for must in ("uniform", "orthogonal"):
        if must not in {s.label for s in time_schemes}:
            time_schemes.append(parse_scheme(must))
    sizes = sorted(set(parse_numbers(opts.sizes, int, what="--sizes")))
    if len(sizes) < 2 or sizes[0] < 2:
        raise DlbenchError(f"--sizes: need at least two sizes of 2 or more to fit an exponent, got {opts.sizes!r}")
    if sizes[-1] > 8192:
        raise DlbenchError(f"--sizes: {sizes[-1]} x {sizes[-1]} matrices are too large to time here (max 8192)")
    return _Plan(schemes, act, scales, time_schemes, sizes)


def run(opts: Options, ctx: RunContext) -> None:
    from dlbench.nn.activations import get_activation

    plan = _validate(opts)
    for act_name in (opts.activation, "tanh", "relu"):   # fail before any work if a profile cannot fit
        _check_profile_memory(ctx.seeds, opts.depth, opts.width, get_activation(act_name).pieces)
    with ctx.progress.task("init: profiles, training, timing", total=6) as advance:
        profiles = _profiles(opts, plan, ctx)
        advance()
        i1 = _symmetry(opts, plan, ctx)
        advance()
        i2 = _orthogonality(opts, ctx)
        advance()
        i4_var = _xavier_variance(opts, ctx)
        advance()
        i5 = _training(opts, plan, ctx)
        advance()
        times = _generation_time(plan, ctx)
        advance()
    ctx.claim(i1)
    ctx.claim(_claim_i2(i2, times, plan.sizes, ctx.seed), timing=True)  # its time-exponent part
    ctx.claim(_claim_i3(opts, plan, profiles))
    ctx.claim(_claim_i4(opts, profiles, i4_var))
    ctx.claim(i5)


# ----------------------------------------------------------------------------- profiles (main, I3, I4)

def _scale_scheme(act, scale: float, width: int) -> Scheme:
    from dlbench.nn.init import get_initializer

    std = scale * activation_gain(act) / math.sqrt(width)
    return Scheme(f"normal:std={std:.4g}", get_initializer("normal", std=std))


def _profiles(opts: Options, plan: _Plan, ctx: RunContext) -> dict:
    """Every profile the run needs, one batched chain per activation; returns {(activation, label): Profile}."""
    from dlbench.nn.activations import get_activation

    scale_schemes = [_scale_scheme(plan.act, c, opts.width) for c in plan.scales]
    wanted: dict[str, dict[str, Scheme]] = {opts.activation: {}}
    for s in [*plan.schemes, *scale_schemes]:
        wanted[opts.activation].setdefault(s.label, s)
    for act_name, label in I4_PROFILES:
        s = parse_scheme(label)
        wanted.setdefault(act_name, {}).setdefault(s.label, s)
    x = ctx.rng("profile input").standard_normal((PROFILE_BATCH, opts.width))
    g_out = ctx.rng("profile readout").standard_normal((PROFILE_BATCH, opts.width))
    out = {}
    for act_name, schemes in wanted.items():
        act = plan.act if act_name == opts.activation else get_activation(act_name)
        items = list(schemes.values())
        prof = std_profile([s.init for s in items], [ctx.rng("profile weights", s.label) for s in items], act,
                           depth=opts.depth, width=opts.width, n_seeds=ctx.seeds, x=x, g_out=g_out)
        for k, s in enumerate(items):
            out[(act_name, s.label)] = Profile(prof.act[k], prof.grad[k])

    base = {"activation": opts.activation, "depth": opts.depth, "width": opts.width}
    for s in plan.schemes:
        _record_profile(ctx, out[(opts.activation, s.label)], {**base, "scheme": s.label}, "std profile at init",
                        analytic_ratio(s.init, plan.act, opts.width, opts.depth))
    for c, s in zip(plan.scales, scale_schemes):
        _record_profile(ctx, out[(opts.activation, s.label)], {**base, "scale": c, "scheme": s.label},
                        "I3 · normal init scale sweep", analytic_ratio(s.init, plan.act, opts.width, opts.depth))
    for act_name, label in I4_PROFILES:
        s = parse_scheme(label)
        act = get_activation(act_name)
        _record_profile(ctx, out[(act_name, s.label)],
                        {"activation": act_name, "depth": opts.depth, "width": opts.width, "scheme": s.label},
                        "I4 · Glorot and He through depth", analytic_ratio(s.init, act, opts.width, opts.depth))
    return out


def _record_profile(ctx: RunContext, p: Profile, case: dict, section: str, analytic: float | None) -> None:
    layers = np.arange(1, p.act.shape[-1] + 1)
    for i, seed in enumerate(ctx.seed_list):
        ctx.record.curve("act_std", p.act[i], case=case, seed=seed, steps=layers, better="none", section=section)
    for i, seed in enumerate(ctx.seed_list):
        ctx.record.curve("grad_std", p.grad[i], case=case, seed=seed, steps=layers, better="none", section=section)
    ctx.record.metric("act_ratio", p.act_ratio, case=case, seeds=ctx.seed_list, section=section)
    ctx.record.metric("grad_ratio", p.grad_ratio, case=case, seeds=ctx.seed_list, section=section)
    ctx.record.metric("analytic_ratio", math.nan if analytic is None else analytic, case=case, section=section)
    ctx.record.metric("drift_per_layer", p.drift, case=case, seeds=ctx.seed_list, better="lower", section=section)


# ----------------------------------------------------------------------------- I1

def _symmetry(opts: Options, plan: _Plan, ctx: RunContext) -> Claim:
    """Train a constant-init net and a random-init net (2 hidden layers) side by side; compare their units."""
    from dlbench.data import make_dataset
    from dlbench.nn.mlp import MLP, MLPSpec
    from dlbench.nn.optim import get_optimizer
    from dlbench.nn.train import train

    data = make_dataset(I5_DATA, seed=ctx.seed)
    widths = (data.n_features, SYMMETRY_WIDTH, SYMMETRY_WIDTH, data.n_outputs)
    random_init = good_scheme(opts.activation)
    models = [MLP(MLPSpec(widths, activation=opts.activation, init=name, bias_init="zeros", dtype=np.float64))
              for name in ("constant", random_init)]
    seeds = ctx.seed_list
    params = [np.concatenate(ps) for ps in zip(*(m.init(seeds) for m in models))]
    per_epoch = data.X_train.shape[0] // 64
    hist = train(models[0], data, np.tile(seeds, 2), optimizer=get_optimizer(opts.optimizer, lr=opts.lr),
                 epochs=-(-opts.steps // per_epoch), batch_size=64, max_steps=opts.steps, params=params,
                 eval_every=0)
    S = len(seeds)
    section = "I1 · units after training"
    found = {}
    for j, name in enumerate(("constant", random_init)):
        r = slice(j * S, (j + 1) * S)
        for layer in range(2):
            W = hist.params[models[0].layers[layer].W][r]
            pieces = plan.act.pieces
            gap, rank = unit_symmetry(W, pieces)
            found[(name, layer)] = (gap, rank, min(W.shape[-2] * pieces, W.shape[-1] // pieces))
            case = {"activation": opts.activation, "steps": opts.steps, "init": name, "layer": layer + 1}
            ctx.record.metric("max_1_minus_cos", gap, case=case, seeds=seeds, section=section)
            ctx.record.metric("rank", rank, case=case, seeds=seeds, section=section)
        ctx.record.metric("final_loss", hist.train_loss[r, -1], case={"activation": opts.activation,
                          "steps": opts.steps, "init": name, "layer": "all"}, better="lower", seeds=seeds,
                          section=section)
    const_gap = max(float(found[("constant", l)][0].max()) for l in range(2))
    const_rank = max(int(found[("constant", l)][1].max()) for l in range(2))
    rand_short = max(int(found[(random_init, l)][2] - found[(random_init, l)][1].min()) for l in range(2))
    rand_alike = sum(int((found[(random_init, l)][0] <= SYMMETRY_TOLERANCE).sum()) for l in range(2))
    n = 2 * S
    parts = [
        exact_claim("I1", "", const_gap, SYMMETRY_TOLERANCE, n=n, what="constant init: max 1-cos between units"),
        exact_claim("I1", "", abs(const_rank - 1), 0, n=n, what="constant init: |rank - 1|"),
        exact_claim("I1", "", rand_short, 0, n=n, what=f"{random_init}: full rank - rank"),
        exact_claim("I1", "", rand_alike, 0, n=n, what=f"{random_init}: layers whose units stayed alike"),
    ]
    return combine("I1", CLAIMS["I1"], parts)


# ----------------------------------------------------------------------------- I2

def _orthogonality(opts: Options, ctx: RunContext) -> dict:
    """Gram errors of float64 orthogonal weights: square, wide-to-narrow (fan_in > fan_out) and narrow-to-wide."""
    from dlbench.nn.init import get_initializer

    n = opts.width
    init = get_initializer("orthogonal")
    rng = ctx.rng("orthogonality")
    out = {}
    for shape, kind in (((n, n), "square"), ((2 * n, n), "wide to narrow"), ((n, 2 * n), "narrow to wide")):
        W = init(rng, (ctx.seeds, *shape), np.float64)
        unit_err, input_err, rank = gram_errors(W)
        out[kind] = (shape, unit_err, input_err, rank)
        case = {"shape": kind, "fan_in": shape[0], "fan_out": shape[1]}
        ctx.record.metric("units_gram_err", unit_err, case=case, seeds=ctx.seed_list, section="I2 · orthogonal init")
        ctx.record.metric("inputs_gram_err", input_err, case=case, seeds=ctx.seed_list, section="I2 · orthogonal init")
        ctx.record.metric("units_gram_rank", rank, case=case, seeds=ctx.seed_list, section="I2 · orthogonal init")
    return out


def _generation_time(plan: _Plan, ctx: RunContext) -> dict[str, list[np.ndarray]]:
    """Time each scheme drawing an n x n float32 matrix over the sizes; the exponent of the fastest times.

    The fastest of a size's samples is the one least disturbed by other load on the machine (as timeit
    advises); medians drift with the load between sizes and bend the fitted slope.
    """
    rng = ctx.rng("generation timing")
    found = {}
    for s in plan.time_schemes:
        found[s.label] = [ctx.time("generate", s.init, rng, (n, n), case={"scheme": s.label, "n": n},
                                   items=n * n, bytes=4 * n * n, section="generation time").samples
                          for n in plan.sizes]
        fastest = [t.min() for t in found[s.label]]
        ctx.record.metric("exponent", loglog_slope(plan.sizes, fastest),
                          case={"scheme": s.label, "n": f"{plan.sizes[0]}-{plan.sizes[-1]}"},
                          section="generation time exponent (fastest time ~ n^k)")
    return found


def _claim_i2(ortho: dict, times: dict, sizes: list[int], seed: int) -> Claim:
    tall = max(float(ortho[k][1].max()) for k in ("square", "wide to narrow"))
    (fan_in, fan_out), wide_err, wide_rows, wide_rank = ortho["narrow to wide"]
    n = sum(v[1].size for v in ortho.values())
    k_orth, k_unif = (float(loglog_slope(sizes, [t.min() for t in times[name]]))
                      for name in ("orthogonal", "uniform"))
    rng = np.random.default_rng(seed)
    diff = bootstrap_exponents(sizes, times["orthogonal"], rng) - bootstrap_exponents(sizes, times["uniform"], rng)
    lo, hi = (float(v) for v in np.percentile(diff, [2.5, 97.5]))
    timing = claim_from_interval("I2", "", k_orth - k_unif, lo, hi, n=min(t.size for t in times["orthogonal"]),
                                 method="bootstrap", threshold=EXPONENT_THRESHOLD,
                                 label="exponent orthogonal - uniform",
                                 note=f"time ~ n^{k_orth:.2f} vs n^{k_unif:.2f} over n = {sizes[0]}..{sizes[-1]}")
    parts = [
        timing,
        exact_claim("I2", "", tall, GRAM_TOLERANCE, n=n, what="fan_out <= fan_in: max |W^T W - I|"),
        exact_claim("I2", "", float(np.abs(wide_rank - fan_in).max()), 0, n=n,
                    what=f"fan_out > fan_in ({fan_in}->{fan_out}): W^T W has rank fan_in, not I "
                         f"(median max |W^T W - I| {np.median(wide_err):.2f}, max |W W^T - I| {wide_rows.max():.1e}): "
                         "|rank - fan_in|"),
    ]
    return combine("I2", CLAIMS["I2"], parts)


# ----------------------------------------------------------------------------- I3

def _claim_i3(opts: Options, plan: _Plan, profiles: dict) -> Claim:
    lo, hi = plan.scales[0], plan.scales[-1]
    if not lo < 1 < hi:
        return not_measured("I3", CLAIMS["I3"],
                            note=f"needs a scale below 1 and one above 1, --scales gave {opts.scales}")
    small = profiles[(opts.activation, _scale_scheme(plan.act, lo, opts.width).label)]
    large = profiles[(opts.activation, _scale_scheme(plan.act, hi, opts.width).label)]
    L = opts.depth - 1
    with np.errstate(all="ignore"):
        vanish = np.exp(-np.minimum(np.log(small.act_ratio), np.log(small.grad_ratio)) / L)
        explode = np.exp(np.maximum(np.log(large.act_ratio), np.log(large.grad_ratio)) / L)
    effect = np.minimum(vanish, explode)
    c = verdict("I3", CLAIMS["I3"], effect, direction="greater", null=BAND,
                label=f"per-layer drift, the weaker of x{lo:g} shrinking and x{hi:g} growing")
    note = (f"x{lo:g}: act ratio {np.median(small.act_ratio):.2g}, grad ratio {np.median(small.grad_ratio):.2g}; "
            f"x{hi:g}: act {np.median(large.act_ratio):.2g}, grad {np.median(large.grad_ratio):.2g} "
            f"over {opts.depth} {opts.activation} layers; band {BAND:g}")
    return dataclasses.replace(c, evidence=f"{c.evidence}; {note}")


# ----------------------------------------------------------------------------- I4

def _xavier_variance(opts: Options, ctx: RunContext):
    n = opts.width
    shapes = [(n, n), (2 * n, n), (n, 2 * n)]
    ratios, reach, pooled, sd = xavier_variance(ctx.rng("xavier variance"), shapes, ctx.seeds)
    section = "I4 · xavier_uniform variance"
    for (fi, fo), r, m in zip(shapes, ratios, reach):
        case = {"fan_in": fi, "fan_out": fo}
        ctx.record.metric("var_over_formula", r, case=case, seeds=ctx.seed_list, section=section)
        ctx.record.metric("max_abs_over_limit", m, case=case, seeds=ctx.seed_list, section=section)
    count = ctx.seeds * sum(a * b for a, b in shapes)
    return pooled, sd, count, reach


def _claim_i4(opts: Options, profiles: dict, var) -> Claim:
    pooled, sd, count, reach = var
    parts = [
        within_claim("I4", "", pooled, pooled - 1.96 * sd, pooled + 1.96 * sd, target=1.0,
                     tolerance=VARIANCE_TOLERANCE, n=count, method="sampling",
                     label="Var(xavier_uniform) / (2/(fan_in+fan_out))"),
        exact_claim("I4", "", float(np.abs(reach - 1).max()), LIMIT_TOLERANCE, n=reach.size,
                    what="max|w| / sqrt(6/(fan_in+fan_out)) - 1"),
    ]
    tanh = {s: profiles[("tanh", s)] for s in ("xavier_uniform", *BAD_SCHEMES)}
    parts.append(_interval(tanh["xavier_uniform"].drift, label="tanh xavier drift/layer", direction="less",
                           null=BAND))
    naive = np.minimum(*(tanh[s].drift for s in BAD_SCHEMES))
    parts.append(_interval(naive, label="tanh N(0,1), N(0,0.01) smaller drift/layer", direction="greater",
                           null=BAND))
    kaiming, xavier = profiles[("relu", "kaiming_normal")], profiles[("relu", "xavier_uniform")]
    parts.append(_interval(kaiming.drift, label="relu kaiming drift/layer", direction="less", null=BAND))
    with np.errstate(all="ignore"):
        halving = xavier.act_ratio ** (2.0 / (opts.depth - 1))
    finite = halving[np.isfinite(halving)]
    lo, hi = bootstrap_ci(finite)
    parts.append(within_claim("I4", "", float(np.median(finite)) if finite.size else math.nan, lo, hi,
                              target=0.5, tolerance=HALVING_TOLERANCE, n=finite.size, method="bootstrap",
                              label="relu xavier Var factor/layer",
                              note=f"analytic 1/2, 2^-{opts.depth - 1} = {2.0 ** -(opts.depth - 1):.2g} over the "
                                   f"net vs {np.median(xavier.act_ratio) ** 2:.2g} measured"))
    return combine("I4", CLAIMS["I4"], parts)


# ----------------------------------------------------------------------------- I5

def _training(opts: Options, plan: _Plan, ctx: RunContext) -> Claim:
    """Train every scheme's deep net on spirals for the same budget, all schemes and seeds in one call."""
    from dlbench.data import make_dataset
    from dlbench.nn.mlp import MLP, MLPSpec
    from dlbench.nn.optim import get_optimizer
    from dlbench.nn.train import train

    good = parse_scheme(good_scheme(opts.activation))
    bad = [parse_scheme(b) for b in BAD_SCHEMES]
    schemes = {s.label: s for s in [*plan.schemes, good, *bad]}
    data = make_dataset(I5_DATA, seed=ctx.seed)
    widths = (data.n_features, *(opts.train_width,) * opts.train_depth, data.n_outputs)
    seeds = ctx.seed_list
    models = [MLP(MLPSpec(widths, activation=opts.activation, init=s.init.name, init_hyper=dict(s.init.hyper),
                          bias_init="zeros")) for s in schemes.values()]
    params = [np.concatenate(ps) for ps in zip(*(m.init(seeds) for m in models))]
    batch = 64
    per_epoch = data.X_train.shape[0] // batch
    hist = train(models[0], data, np.tile(seeds, len(models)), optimizer=get_optimizer(opts.optimizer, lr=opts.lr),
                 epochs=-(-opts.steps // per_epoch), batch_size=batch, max_steps=opts.steps, params=params,
                 eval_every=0)
    S = len(seeds)
    chance = math.log(data.n_classes)
    section = f"I5 · {I5_DATA} after {opts.steps} steps"
    final = {}
    for j, label in enumerate(schemes):
        r = slice(j * S, (j + 1) * S)
        case = {"activation": opts.activation, "depth": opts.train_depth, "width": opts.train_width,
                "optimizer": opts.optimizer, "scheme": label}
        loss = hist.train_loss[r, -1]
        for i, seed in enumerate(seeds):
            ctx.record.curve("loss", hist.loss[r][i], case=case, seed=seed, section=section)
        ctx.record.metric("initial_loss", hist.train_loss[r, 0], case=case, better="lower", seeds=seeds,
                          section=section)
        ctx.record.metric("final_loss", loss, case=case, better="lower", seeds=seeds, section=section)
        ctx.record.metric("test_acc", hist.test_acc[r, -1], case=case, better="higher", seeds=seeds, section=section)
        ctx.record.metric("diverged", hist.diverged[r], case=case, unit="bool", better="lower", seeds=seeds,
                          section=section)
        # a run that diverged or went non-finite counts as the chance loss, which favours the bad scheme
        failed = hist.diverged[r] | ~np.isfinite(loss)
        final[label] = np.where(failed, np.minimum(np.nan_to_num(loss, nan=chance), chance), loss)
    parts = [two_sample_verdict("I5", "", final[b.label], final[good.label], direction="greater", ratio=True,
                                threshold=LOSS_RATIO_THRESHOLD, label=f"final loss {b.label} / {good.label}")
             for b in bad]
    return combine("I5", CLAIMS["I5"], parts)


def plot(results, path) -> None:
    """Per-layer std of activations and gradients (median over seeds), one line per scheme, for the main
    profile, the I3 scale sweep and the I4 references; the mean-field prediction dashed where it exists."""
    from dlbench.experiments.init.figure import draw

    draw(results, path)
