"""Deep versus shallow nets at equal parameter counts: claims D1-D5.

For each target (Telgarsky's sawtooth, a sine, a random teacher net, two spirals) relu nets of several depths
(hidden layers) are trained over a grid of parameter budgets; each net's widths are chosen so its parameter
count is within a few percent of the budget. All seeds of all budgets of one depth train at once: the nets
are zero-padded to common layer sizes and stacked on the replica axis. A unit whose incoming weights, bias
and outgoing weights are all zero gets zero gradients (activation(0) = 0), so it stays zero under any of the
optimizers and the padded net computes exactly the small one.

Error is the fraction of variance unexplained, test MSE / Var(y_test), for regression targets and the
misclassification rate for spirals. Telgarsky, "Benefits of depth in neural networks", COLT 2016, gives the
sawtooth: the tent map composed k times has 2^k linear pieces; a width-2 relu net of depth k computes it
exactly (6k + 1 parameters) while one hidden layer of w relu units has at most w + 1 pieces.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np

from dlbench.errors import DlbenchError, UnknownName
from dlbench.experiments.base import RunContext, option, parse_numbers
from dlbench.experiments.depth.relu_exact import collapse_linear, count_pieces, tent_net
from dlbench.stats import (Claim, bootstrap_ci, claim_from_interval, exact_claim, not_measured,
                           two_sample_verdict)

NAME = "depth"
HELP = "Deep versus shallow nets at equal parameter counts (claims D1-D5)."
CLAIMS = {
    "D1": "deep beats shallow at equal parameters",
    "D2": "one wide layer can approximate anything, but the width needed explodes",
    "D3": "a very wide shallow net has so many parameters that training may not find them",
    "D4": "without a nonlinearity, depth buys nothing",
    "D5": "depth costs time per parameter",
}
TARGETS = {
    "sawtooth": "the tent map composed k times on [0, 1] (2^k linear pieces)",
    "sine": "sin(2 pi x) on [-1, 1]",
    "teacher": "a random 2-hidden-layer relu teacher net of 8 inputs",
    "spirals": "two interleaved spirals (classification)",
}
MAX_K = 12
D2_MAX_K = 6             # the D2 sweep stops at k = 6 (shallow widths up to 2^9 = 512 units)
ERROR_FLOOR = 1e-6       # errors below this count as this in log ratios (a perfect fit gives 0)
D4_MARGIN = 0.01         # D4: a linear net "does better" than least squares only by more than 1 % of its error
D5_THRESHOLD = 0.1       # D5: deep must cost at least 10 % more time per parameter to count
FIT_POINTS = 256


@dataclass
class Options:
    target: str = option("sawtooth", help="Target(s), comma-separated: sawtooth, sine, teacher, spirals.",
                         metavar="NAMES")
    k: int = option(3, help="Sawtooth: tent map composed k times (2^k pieces); D2 sweeps k = 1..min(K, 6).",
                    min=1, max=MAX_K)
    depths: str = option("1,2,4,8", help="Hidden-layer counts to compare (comma-separated).", metavar="LIST",
                         quick="1,4")
    budgets: str = option("64,128,256,512", help="Parameter budgets (comma-separated).", metavar="LIST",
                          quick="64,256")
    steps: int = option(2000, help="Training steps of every net.", min=1, quick=300)
    batch_size: int = option(128, help="Minibatch size.", min=1)
    lr: float = option(0.01, help="Learning rate (positive).")
    optimizer: str = option("adam", help="Optimizer.", choices=lambda: _optimizer_names())
    target_error: float = option(0.05, help="Error to reach, in (0, 1) (fraction of variance unexplained; "
                                 "spirals: misclassification rate).")


def _optimizer_names() -> list[str]:
    from dlbench.nn.optim import OPTIMIZERS

    return list(OPTIMIZERS)


# ----------------------------------------------------------------------------- sizing nets for a budget

def mlp_param_count(widths, d_in: int, d_out: int) -> int:
    """Weights and biases of a dense net d_in -> widths... -> d_out: sum over layers of (fan_in + 1) fan_out."""
    sizes = (d_in, *widths, d_out)
    return int(sum((a + 1) * b for a, b in zip(sizes[:-1], sizes[1:])))


def widths_for_budget(budget: int, depth: int, d_in: int, d_out: int) -> tuple[int, ...]:
    """Hidden widths of a depth-`depth` net whose parameter count is closest to `budget`.

    The first m layers have width w + 1 and the rest w (0 <= m < depth); the count grows with (w, m), so the
    search walks w upward from 1 and keeps the closest (ties: the smaller net).
    """
    best, best_gap = (1,) * depth, math.inf
    w = 1
    while True:
        for m in range(depth if depth > 1 else 1):
            widths = (w + 1,) * m + (w,) * (depth - m)
            gap = abs(mlp_param_count(widths, d_in, d_out) - budget)
            if gap < best_gap:
                best, best_gap = widths, gap
        if mlp_param_count((w,) * depth, d_in, d_out) > budget:
            return best
        w += 1


def pad_stack(nets: list[list[np.ndarray]]) -> list[np.ndarray]:
    """Nets of one depth (flat MLP parameter lists, replica axis first) zero-padded to common shapes, stacked."""
    out = []
    for arrays in zip(*nets):
        shape = tuple(max(a.shape[d] for a in arrays) for d in (1, 2))
        big = np.zeros((sum(a.shape[0] for a in arrays), *shape), dtype=arrays[0].dtype)
        start = 0
        for a in arrays:
            big[start:start + a.shape[0], :a.shape[1], :a.shape[2]] = a
            start += a.shape[0]
        out.append(big)
    return out


# ----------------------------------------------------------------------------- targets

@dataclass
class Target:
    name: str
    data: object                 # dlbench.data.Dataset, inputs (and regression targets) standardised
    raw: object                  # the same data set as drawn
    classification: bool
    start: np.ndarray            # the segment (standardised inputs) along which pieces are counted, fits drawn
    end: np.ndarray
    variance: float              # Var(y_test) of the standardised targets; 1 for classification
    x_scale: tuple               # (mean, std) that standardised the inputs
    y_scale: tuple               # (mean, std) that standardised regression targets; (0, 1) for classification

    def errors(self, trained: Trained) -> np.ndarray:
        """Final test error per replica: MSE / Var(y_test), or the misclassification rate."""
        if self.classification:
            return 1.0 - trained.test_acc
        return trained.test_loss / self.variance


def standardise(data):
    """(data set, x (mean, std), y (mean, std)): inputs, and regression targets, shifted and scaled by the
    training set's mean and std per column."""
    from dlbench.data import Dataset

    def stats(train):
        m, s = train.mean(axis=0), train.std(axis=0)
        return m, np.where(s > 0, s, 1).astype(train.dtype)

    xm, xs = stats(data.X_train)
    ym, ys = (0.0, 1.0) if data.task == "classification" else stats(data.y_train)
    y_train, y_test = data.y_train, data.y_test
    if data.task != "classification":
        y_train, y_test = (y_train - ym) / ys, (y_test - ym) / ys
    out = Dataset(data.name, (data.X_train - xm) / xs, y_train, (data.X_test - xm) / xs, y_test, data.task,
                  data.n_classes, data.hyper)
    return out, (xm, xs), (ym, ys)


def make_target(name: str, k: int, seed: int) -> Target:
    from dlbench.data import make_dataset

    from dlbench.experiments.teacher import relu_teacher

    hyper = {"k": k} if name == "sawtooth" else {"net": relu_teacher(8, seed=seed)} if name == "teacher" else {}
    raw = make_dataset(name, seed=seed, **hyper)
    data, x_scale, y_scale = standardise(raw)
    X = data.X_test.astype(np.float64)
    if X.shape[1] == 1:
        start, end = X.min(axis=0), X.max(axis=0)
    else:  # the two test points farthest apart along a fixed direction through the data
        u = np.random.default_rng([seed, 7]).standard_normal(X.shape[1])
        proj = X @ u
        start, end = X[proj.argmin()], X[proj.argmax()]
    classification = data.task == "classification"
    variance = 1.0 if classification else float(data.y_test.astype(np.float64).var())
    return Target(name, data, raw, classification, start, end, variance, x_scale, y_scale)


def parse_targets(text: str) -> list[str]:
    names = [t.strip() for t in str(text).split(",") if t.strip()]
    if not names:
        raise DlbenchError("--target: expected at least one of " + ", ".join(TARGETS))
    for n in names:
        if n not in TARGETS:
            raise UnknownName("target", n, TARGETS)
    return list(dict.fromkeys(names))


# ----------------------------------------------------------------------------- training

LAYER_OVERHEAD = 7e-5     # seconds per linear layer per step: the kernel calls of forward, backward, update
ELEMENT_COST = 5e-9       # seconds per hidden activation element per step (forward, backward, relu)


@dataclass
class Trained:
    """One width set's replicas after training (one per seed), sliced out of its padded group."""

    widths: tuple
    model: object             # the padded MLP its group trained (forward works on `params`)
    params: list              # flat MLP parameter list, replica axis = seeds, padded with zero units
    loss: np.ndarray          # (S, T) minibatch loss per step
    test_loss: np.ndarray     # (S,)
    test_acc: np.ndarray      # (S,)
    diverged: np.ndarray      # (S,) bool


def group_width_sets(width_sets: list[tuple[int, ...]], replicas: int, batch: int) -> list[list[int]]:
    """Partition same-depth nets into padded groups that minimise the estimated time of one training step.

    A group costs LAYER_OVERHEAD per linear layer (one set of kernel calls) plus ELEMENT_COST per hidden
    activation element of its padded widths (measured on a 2-core box); nets sorted by size are split into
    contiguous groups by dynamic programming.
    """
    order = sorted(range(len(width_sets)), key=lambda i: (sum(width_sets[i]), width_sets[i]))
    depth = len(width_sets[0])

    def cost(idx):
        padded = [max(width_sets[i][l] for i in idx) for l in range(depth)]
        return (depth + 1) * LAYER_OVERHEAD + len(idx) * replicas * batch * sum(padded) * ELEMENT_COST

    best = [0.0] + [math.inf] * len(order)
    cut = [0] * (len(order) + 1)
    for j in range(1, len(order) + 1):
        for i in range(j):
            c = best[i] + cost(order[i:j])
            if c < best[j]:
                best[j], cut[j] = c, i
    groups, j = [], len(order)
    while j > 0:
        groups.append(order[cut[j]:j])
        j = cut[j]
    return groups[::-1]


def train_nets(width_sets: list[tuple[int, ...]], data, seeds: list[int], opts: Options, *,
               activation: str = "relu", loss_factory=None) -> list[Trained]:
    """Train len(seeds) replicas of every width set; returns one Trained per width set, in order.

    Width sets are batched into zero-padded groups (group_width_sets); within a group, replica c * S + s is
    width set c with seed s. Every net trains the same steps with the same optimizer settings. The loss is
    the data set's default, or loss_factory(group) for a group (the indices of its width sets, in replica
    order), for losses that differ per replica.
    """
    from dlbench.nn.mlp import MLP, MLPSpec
    from dlbench.nn.optim import get_optimizer
    from dlbench.nn.train import train

    d_in, d_out = data.n_features, data.n_outputs
    n_train = data.X_train.shape[0]
    batch = min(opts.batch_size, n_train)
    epochs = -(-opts.steps // max(1, n_train // batch))
    S = len(seeds)
    out: list = [None] * len(width_sets)
    for group in group_width_sets(width_sets, S, batch):
        sets = [width_sets[i] for i in group]
        nets = [MLP(MLPSpec((d_in, *w, d_out), activation=activation)).init(seeds) for w in sets]
        padded = tuple(max(w[l] for w in sets) for l in range(len(sets[0])))
        model = MLP(MLPSpec((d_in, *padded, d_out), activation=activation))
        group_loss = None if loss_factory is None else loss_factory(group)
        hist = train(model, data, np.tile(np.asarray(seeds), len(sets)),
                     optimizer=get_optimizer(opts.optimizer, lr=opts.lr), loss=group_loss, epochs=epochs,
                     batch_size=batch, max_steps=opts.steps, params=pad_stack(nets), eval_every=0)
        for c, i in enumerate(group):
            r = slice(c * S, (c + 1) * S)
            out[i] = Trained(width_sets[i], model, [p[r] for p in hist.params], hist.loss[r],
                             hist.test_loss[r, -1], hist.test_acc[r, -1], hist.diverged[r])
    return out


def tent_mse(ks: np.ndarray):
    """An mse loss whose target for replica r is the tent map composed ks[r] times of the raw input x.

    The target is standardised with its exact moments, t^k(x) ~ U(0, 1) for x ~ U(0, 1): (t - 1/2) sqrt(12).
    The data set carries the raw x as its target, so one training call fits t^1 .. t^K side by side.
    """
    from dlbench.nn.losses import mse

    kk = np.asarray(ks)[:, None, None]
    top = int(kk.max())

    def loss_fn(out, x):
        t = np.array(np.broadcast_to(x, out.shape), dtype=out.dtype)
        new = np.empty_like(t)
        for i in range(top):
            np.multiply(t, 2, out=new)
            new -= 1
            np.abs(new, out=new)
            np.subtract(1, new, out=new)
            new -= t
            new *= i < kk          # replicas with k <= i keep their t
            t += new
        t -= 0.5
        t *= math.sqrt(12.0)
        return mse(out, t)

    return loss_fn


def _downsample(curve: np.ndarray, points: int = 64) -> tuple[np.ndarray, np.ndarray]:
    steps = np.unique(np.linspace(0, curve.size - 1, min(points, curve.size)).round().astype(int))
    return steps, curve[steps]


# ----------------------------------------------------------------------------- the run

def run(opts: Options, ctx: RunContext) -> None:
    targets = parse_targets(opts.target)
    depths = sorted(set(parse_numbers(opts.depths, int, what="--depths")))
    budgets = sorted(set(parse_numbers(opts.budgets, int, what="--budgets")))
    if not 1 <= opts.k <= MAX_K:
        raise DlbenchError(f"--k must be between 1 and {MAX_K}, got {opts.k}")
    if opts.steps < 1 or opts.batch_size < 1:
        raise DlbenchError("--steps and --batch-size must be at least 1")
    if not opts.lr > 0:
        raise DlbenchError(f"--lr must be positive, got {opts.lr}")
    if not 0 < opts.target_error < 1:
        raise DlbenchError(f"--target-error must be between 0 and 1, got {opts.target_error}")
    _optimizer_check(opts.optimizer)
    made = {name: make_target(name, opts.k, ctx.seed) for name in targets}
    for name, target in made.items():
        for depth in depths:
            smallest = mlp_param_count((1,) * depth, target.data.n_features, target.data.n_outputs)
            if budgets[0] < smallest:
                raise DlbenchError(f"--budgets: {budgets[0]} is below the smallest {depth}-layer net on "
                                   f"{name} ({smallest} parameters)")

    seeds = ctx.seed_list
    found = {}
    with ctx.progress.task("depth: training", total=len(targets) * len(depths) + 1) as advance:
        for name in targets:
            found[name] = _grid(made[name], depths, budgets, opts, ctx, advance)
        d2 = _width_sweep(opts, ctx, seeds)
        advance()
    d4 = _linear_collapse(targets, found, depths, budgets, opts, ctx)
    d5 = _step_times(found[targets[0]]["target"], depths, budgets, opts, ctx)

    ctx.claim(_claim_d1(found, depths))
    ctx.claim(d2)
    ctx.claim(_claim_d3(found[targets[0]], depths, budgets, ctx))
    ctx.claim(d4)
    ctx.claim(d5, timing=True)


def _optimizer_check(name: str) -> None:
    from dlbench.nn.optim import OPTIMIZERS

    OPTIMIZERS[name]


def _grid(target: Target, depths, budgets, opts: Options, ctx: RunContext, advance) -> dict:
    """Train every (depth, budget) net on one target; record errors, pieces, curves, fits."""
    name, data, seeds = target.name, target.data, ctx.seed_list
    d_in, d_out = data.n_features, data.n_outputs
    n_seeds = len(seeds)
    errors, params_of = {}, {}
    fit_x = np.linspace(0.0, 1.0, FIT_POINTS)
    line = target.start[None, :] + fit_x[:, None] * (target.end - target.start)[None, :]
    if name == "sawtooth":
        _record_construction(target, opts.k, ctx)
    for depth in depths:
        width_sets = [widths_for_budget(b, depth, d_in, d_out) for b in budgets]
        trained = train_nets(width_sets, data, seeds, opts)
        for budget, widths, tr in zip(budgets, width_sets, trained):
            case = {"target": name, "depth": depth, "budget": budget}
            n_params = mlp_param_count(widths, d_in, d_out)
            err = target.errors(tr)
            errors[depth, budget], params_of[depth, budget] = err, n_params
            finite = np.all([np.isfinite(p).all(axis=(1, 2)) for p in tr.params], axis=0)
            with np.errstate(all="ignore"):  # a diverged net's pieces are not counted
                pieces = np.where(finite, count_pieces(tr.params, 0.0, 1.0, start=target.start, end=target.end),
                                  np.nan)
            ctx.record.metric("params", n_params, case=case, section="test error")
            ctx.record.metric("width", widths[0], case=case, section="test error")
            ctx.record.metric("test_error", err, case=case, better="lower", seeds=seeds, section="test error")
            ctx.record.metric("diverged", tr.diverged, case=case, unit="bool", better="lower", seeds=seeds,
                              section="test error")
            with warnings.catch_warnings(), np.errstate(all="ignore"):
                warnings.simplefilter("ignore", RuntimeWarning)  # steps where every seed diverged are NaN
                steps, curve = _downsample(np.nanmedian(tr.loss, axis=0))
            ctx.record.curve("train_loss", curve, case=case, steps=steps, section="test error")
            ctx.record.metric("pieces", pieces, case=case, better="none", seeds=seeds, section="linear pieces")
        if d_in == 1 and not target.classification:
            # the fitted function of the median-error seed at the largest budget, along the target's segment
            tr = trained[-1]
            s = int(np.argsort(target.errors(tr))[n_seeds // 2])
            with np.errstate(all="ignore"):
                out, _ = tr.model.forward([p[s:s + 1] for p in tr.params], line.astype(tr.model.dtype),
                                          train=False)
            ctx.record.curve("fit", out[0, :, 0], case={"target": name, "depth": depth, "budget": budgets[-1]},
                             better="none", section="fitted functions")
        advance()
    if d_in == 1 and not target.classification:
        x_raw = line[:, 0] * target.x_scale[1][0] + target.x_scale[0][0]
        truth = (_truth(target, x_raw, opts.k) - target.y_scale[0][0]) / target.y_scale[1][0]
        case = {"target": name}
        ctx.record.curve("target", truth, case=case, better="none", section="target functions")
        ctx.record.metric("x_start", x_raw[0], case=case, section="target functions")
        ctx.record.metric("x_end", x_raw[-1], case=case, section="target functions")
    for depth in depths:
        med = np.array([np.median(errors[depth, b]) for b in budgets])
        ok = [params_of[depth, b] for b, m in zip(budgets, med) if m <= opts.target_error]
        case = {"target": name, "depth": depth}
        ctx.record.metric("min_params", ok[0] if ok else math.nan, case=case, better="lower",
                          section=f"smallest net reaching error {opts.target_error:g}")
        ctx.record.metric("best_error", np.fmin.reduce(med), case=case, better="lower",
                          section=f"smallest net reaching error {opts.target_error:g}")
    return {"target": target, "errors": errors, "params": params_of}


def _truth(target: Target, x: np.ndarray, k: int) -> np.ndarray:
    """The noise-free target function of a 1-D data set at raw inputs x."""
    from dlbench.data import tent_map

    if target.name == "sawtooth":
        return tent_map(x, k)
    return np.sin(2 * np.pi * target.raw.hyper.get("freq", 1.0) * x)


def _record_construction(target: Target, k: int, ctx: RunContext) -> None:
    """Telgarsky's width-2 depth-k net, evaluated by the MLP in float64: its error and its pieces."""
    from dlbench.data import tent_map
    from dlbench.nn.mlp import MLP, MLPSpec

    params = tent_net(k)
    model = MLP(MLPSpec((1, *(2,) * k, 1), activation="relu", dtype=np.float64))
    X = target.raw.X_test.astype(np.float64)
    out, _ = model.forward(params, X, train=False)
    err = np.abs(out[0] - tent_map(X, k))
    case = {"target": "sawtooth", "k": k}
    section = "Telgarsky construction (width 2, depth k)"
    ctx.record.metric("params", model.n_params, case=case, section=section)
    ctx.record.metric("test_error", float(np.mean(err**2) / target.raw.y_test.astype(np.float64).var()),
                      case=case, better="lower", section=section)
    ctx.record.metric("max_abs_error", float(err.max()), case=case, better="lower", section=section)
    ctx.record.metric("pieces", int(count_pieces(params, 0.0, 1.0)[0]), case=case, section=section)
    ctx.record.metric("pieces_target", 2**k, case=case, section=section)
    ctx.record.metric("shallow_units_lower_bound", 2**k - 1, case=case, section=section)


# ----------------------------------------------------------------------------- D2: width needed as k grows

def _width_sweep(opts: Options, ctx: RunContext, seeds: list[int]) -> Claim:
    """Train one-hidden-layer nets of widths 2^(k-2) .. 2^(k+3) on t^k for k = 1..min(K, 6); the width needed.

    Per seed and k, the width needed is the smallest width whose net reaches the target error; when none
    does it is censored: at least twice the widest tried, and that lower bound is what the slope uses. The narrowest width tried gives at most 2^(k-2) + 1 of the
    2^k pieces, too few to reach any sensible error. The claim's effect is the slope of log2(width needed)
    against k per seed: 1 is the doubling of pieces, 0 no growth.
    """
    from dlbench.data import Dataset, make_dataset, tent_map

    K = min(opts.k, D2_MAX_K)
    base = make_dataset("sawtooth", seed=ctx.seed, k=1)
    scaled, _, _ = standardise(base)
    carrier = Dataset("sawtooth-x", scaled.X_train, base.X_train.copy(), scaled.X_test, base.X_test.copy(),
                      "regression")
    n_seeds = len(seeds)
    X = base.X_test.astype(np.float64)
    windows = {k: [2**j for j in range(max(0, k - 2), k + 4)] for k in range(1, K + 1)}
    configs = [(k, w) for k in windows for w in windows[k]]
    ks = np.array([k for k, _ in configs])
    trained = train_nets([(w,) for _, w in configs], carrier, seeds, opts,
                         loss_factory=lambda group: tent_mse(np.repeat(ks[group], n_seeds)))
    needed = np.empty((K, n_seeds))
    reached_any = np.empty((K, n_seeds), dtype=bool)
    for k in range(1, K + 1):
        var = tent_map(X, k).var() * 12.0
        err = np.stack([tr.test_loss / var for (kk, _), tr in zip(configs, trained) if kk == k])  # (widths, S)
        reached = err <= opts.target_error
        reached_any[k - 1] = reached.any(axis=0)
        widths = np.asarray(windows[k])
        needed[k - 1] = np.where(reached_any[k - 1], widths[np.argmax(reached, axis=0)], 2 * widths[-1])
    section = (f"shallow width needed for error {opts.target_error:g} on the sawtooth (D2; censored: no width "
               f"tried reached it, the value is a lower bound)")
    for k in range(1, K + 1):
        case = {"k": k}
        ctx.record.metric("width_needed (>= if censored)", needed[k - 1], case=case, better="lower", seeds=seeds,
                          section=section)
        ctx.record.metric("censored", ~reached_any[k - 1], case=case, unit="bool", seeds=seeds, section=section)
        ctx.record.metric("params_needed (>= if censored)", 3 * needed[k - 1] + 1, case=case, better="lower",
                          seeds=seeds, section=section)
        ctx.record.metric("widest_tried", windows[k][-1], case=case, section=section)
        ctx.record.metric("exact_fit_units_lower_bound", 2**k - 1, case=case, section=section)
        ctx.record.metric("deep_construction_params", 6 * k + 1, case=case, section=section)
    note = _d2_note(needed, reached_any, windows, K)
    if K < 2:
        return not_measured("D2", CLAIMS["D2"],
                            label="log2 width needed per k", note="needs --k >= 2 to see growth; " + note)
    kc = np.arange(1, K + 1) - (K + 1) / 2
    slopes = (kc @ np.log2(needed)) / (kc @ kc)                                   # per seed
    lo, hi = bootstrap_ci(slopes, seed=ctx.seed)
    return claim_from_interval("D2", CLAIMS["D2"], float(np.median(slopes)), lo, hi, n=len(seeds),
                               method="bootstrap", direction="greater", threshold=0.5,
                               label="slope of log2(width needed) per k", note=note)


def _d2_note(needed: np.ndarray, reached_any: np.ndarray, windows: dict, K: int) -> str:
    """D2's evidence: which (k, seed) cells are censored lower bounds, and what that does to the slope."""
    cens = ~reached_any                                     # (K, S)
    shallow = f"{np.median(3 * needed[-1] + 1):.0f}" if reached_any[-1].all() else \
        f">= {np.median(3 * needed[-1] + 1):.0f} (censored)"
    tail = (f"exact fit needs >= 2^k-1 units (slope 1); deep construction 6k+1 params, at k={K}: {6 * K + 1} "
            f"vs shallow median {shallow}")
    if not cens.any():
        return "every k reached the target error within the widths tried (none censored); " + tail
    parts = [f"k={k}: {int(cens[k - 1].sum())}/{cens.shape[1]} seeds >= {2 * windows[k][-1]}"
             for k in range(1, K + 1) if cens[k - 1].any()]
    low_k = [k for k in range(1, K + 1) if cens[k - 1].any() and k < (K + 1) / 2]
    effect = (f"a bound at k={low_k} below the middle of 1..{K} can raise the slope" if low_k else
              "the true widths are larger, so the slope is a lower bound (conservative for 'width grows')")
    return (f"censored (no width tried reached the error; the slope uses the lower bound twice the widest tried): "
            f"{', '.join(parts)}; {effect}; {tail}")


# ----------------------------------------------------------------------------- D1, D3

def _log_ratio(a, b):
    return np.log10(np.maximum(a, ERROR_FLOOR) / np.maximum(b, ERROR_FLOOR))


def _claim_d1(found: dict, depths) -> Claim:
    if len(depths) < 2:
        return not_measured("D1", CLAIMS["D1"],
                            note="needs at least two --depths")
    shallow, deep = depths[0], depths[-1]
    values, notes = [], []
    for name, f in found.items():
        budgets = sorted({b for _, b in f["errors"]})
        per = np.array([_log_ratio(f["errors"][shallow, b], f["errors"][deep, b]) for b in budgets])
        values.append(per.ravel())
        wins = int((np.median(per, axis=1) > 0).sum())
        notes.append(f"{name}: deeper lower at {wins}/{len(budgets)} budgets")
    v = np.concatenate(values)
    v = v[np.isfinite(v)]                      # a diverged net has no error to compare
    lo, hi = bootstrap_ci(v)
    return claim_from_interval("D1", CLAIMS["D1"], float(np.median(v)), lo, hi, n=v.size, method="bootstrap",
                               direction="greater", label=f"log10(error depth {shallow} / depth {deep})",
                               note="; ".join(notes) + " (n = budgets x seeds)")


def _claim_d3(f: dict, depths, budgets, ctx: RunContext) -> Claim:
    """The widest shallow net's best-of-seeds error against the best deep net (any depth above the
    shallowest) with fewer parameters than it."""
    name = f["target"].name
    if len(depths) < 2 or len(budgets) < 2:
        return not_measured("D3", CLAIMS["D3"],
                            note="needs at least two --depths and two --budgets")
    shallow = depths[0]
    a = f["errors"][shallow, budgets[-1]]
    pa = f["params"][shallow, budgets[-1]]
    a = a[np.isfinite(a)]
    smaller = [(d, bud) for d in depths[1:] for bud in budgets if (d, bud) in f["errors"]
               and f["params"][d, bud] < pa and np.isfinite(f["errors"][d, bud]).any()]
    if a.size == 0 or not smaller:
        what = "every run of the widest shallow net diverged" if a.size == 0 else \
            f"no deeper net with fewer than {pa} params trained without diverging"
        return not_measured("D3", CLAIMS["D3"],
                            note=what)
    deep, budget = min(smaller, key=lambda key: np.nanmin(f["errors"][key]))
    b = f["errors"][deep, budget]
    b = b[np.isfinite(b)]
    rng = np.random.default_rng([ctx.seed, 3])
    boot = _log_ratio(a[rng.integers(0, a.size, (2000, a.size))].min(axis=1),
                      b[rng.integers(0, b.size, (2000, b.size))].min(axis=1))
    lo, hi = (float(q) for q in np.percentile(boot, [2.5, 97.5]))
    pb = f["params"][deep, budget]
    return claim_from_interval(
        "D3", CLAIMS["D3"], float(_log_ratio(a.min(), b.min())), lo, hi, n=min(a.size, b.size),
        method="bootstrap", direction="greater",
        label="log10(best-of-seeds error, widest shallow / best smaller deep)",
        note=f"{name}: widest shallow net (depth {shallow}, budget {budgets[-1]}, {pa} params) best {a.min():.3g} "
             f"vs the best of {len(smaller)} deeper nets with fewer params: depth {deep}, budget {budget}, {pb} "
             f"params, best {b.min():.3g}; equal steps")


# ----------------------------------------------------------------------------- D4: linear collapse

def _linear_collapse(targets, found, depths, budgets, opts: Options, ctx: RunContext) -> Claim:
    """Identity-activation nets: forward == one affine map (exact), and no better than least squares."""
    from dlbench.nn.mlp import MLP, MLPSpec

    regression = [t for t in targets if not found[t]["target"].classification]
    name = regression[0] if regression else "sawtooth"
    target = found[name]["target"] if regression else make_target("sawtooth", opts.k, ctx.seed)
    data, seeds = target.data, ctx.seed_list
    depth, budget = depths[-1], budgets[len(budgets) // 2]
    widths = widths_for_budget(budget, depth, data.n_features, data.n_outputs)
    (trained,) = train_nets([widths], data, seeds, opts, activation="identity")
    err = target.errors(trained)

    X = data.X_train.astype(np.float64)
    design = np.c_[X, np.ones(len(X))]
    coef, *_ = np.linalg.lstsq(design, data.y_train.astype(np.float64), rcond=None)
    Xt = data.X_test.astype(np.float64)
    ls = np.c_[Xt, np.ones(len(Xt))] @ coef
    ls_err = float(np.mean((ls - data.y_test) ** 2)) / target.variance

    params64 = [p.astype(np.float64) for p in trained.params]
    model64 = MLP(MLPSpec((data.n_features, *widths, data.n_outputs), activation="identity", dtype=np.float64))
    out, _ = model64.forward(params64, Xt, train=False)
    W, b = collapse_linear(params64)
    gap = float(np.abs(out - (Xt @ W + b)).max() / max(np.abs(out).max(), 1e-300))

    case = {"target": name, "depth": depth, "budget": budget}
    section = "linear nets vs least squares (D4)"
    ctx.record.metric("test_error_identity_net", err, case=case, better="lower", seeds=seeds, section=section)
    ctx.record.metric("test_error_least_squares", ls_err, case=case, better="lower", section=section)
    relu = found.get(name, {}).get("errors", {}).get((depth, budget))
    if relu is not None:
        ctx.record.metric("test_error_relu_net", relu, case=case, better="lower", seeds=seeds, section=section)
    ctx.record.metric("collapse_rel_error", gap, case=case, better="lower", section=section)

    exact = exact_claim("D4", CLAIMS["D4"], gap, 1e-10, n=len(seeds) * len(Xt),
                        what="max |net - product of weights| / max |net|")
    excess = (err - ls_err) / ls_err
    excess = excess[np.isfinite(excess)]
    lo, hi = bootstrap_ci(excess, seed=ctx.seed)
    trained = claim_from_interval("D4", CLAIMS["D4"], float(np.median(excess)) if excess.size else math.nan,
                                  lo, hi, n=excess.size,
                                  method="bootstrap", direction="greater", null=-D4_MARGIN,
                                  label=f"{name}: (linear depth-{depth} net error - least squares) / least squares")
    verdicts = {exact.verdict, trained.verdict}
    verdict = ("refuted" if "refuted" in verdicts else "supported" if verdicts == {"supported"} else "inconclusive")
    relu_note = f"; relu net of the same shape {np.median(relu):.3g}" if relu is not None else ""
    evidence = (f"{exact.evidence}; {trained.evidence} (null -{D4_MARGIN:g}: better than least squares by at "
                f"most 1 %); least squares {ls_err:.3g}{relu_note}")
    return Claim("D4", CLAIMS["D4"], verdict, trained.effect, trained.low, trained.high, trained.n,
                 "exact+bootstrap", evidence)


# ----------------------------------------------------------------------------- D5: step time per parameter

def _step_times(target: Target, depths, budgets, opts: Options, ctx: RunContext) -> Claim:
    """Time one training step (forward, backward, optimizer update) of each depth at the largest budget."""
    from dlbench.nn.losses import mse, softmax_ce
    from dlbench.nn.mlp import MLP, MLPSpec
    from dlbench.nn.optim import get_optimizer

    data = target.data
    B = min(opts.batch_size, data.X_train.shape[0])
    x = np.ascontiguousarray(data.X_train[:B], dtype=np.float32)
    y = data.y_train[:B]
    loss = softmax_ce if target.classification else mse
    budget = budgets[-1]
    per_param = {}
    for depth in depths:
        widths = widths_for_budget(budget, depth, data.n_features, data.n_outputs)
        model = MLP(MLPSpec((data.n_features, *widths, data.n_outputs)))
        params = model.init([ctx.seed])
        opt = get_optimizer(opts.optimizer, lr=opts.lr)
        state = [opt.init(params)]

        def step(model=model, params=params, opt=opt, state=state):
            _, grads, _ = model.value_and_grad(params, x, y, loss, reuse=True)
            state[0] = opt.step(params, grads, state[0])

        case = {"target": target.name, "depth": depth, "budget": budget, "params": model.n_params}
        with np.errstate(all="ignore"):  # a learning rate that diverges still gives a step to time
            t = ctx.time("train_step", step, case=case, items=model.n_params, section="step time (D5)")
        per_param[depth] = t.samples / model.n_params
    if len(depths) < 2:
        return not_measured("D5", CLAIMS["D5"],
                            note="needs at least two --depths")
    shallow, deep = depths[0], depths[-1]
    return two_sample_verdict("D5", CLAIMS["D5"], per_param[deep], per_param[shallow], ratio=True,
                              direction="greater", threshold=D5_THRESHOLD,
                              label=f"time per parameter, depth {deep} / depth {shallow} at {budget} params",
                              seed=ctx.seed)


def plot(results, path) -> None:
    """Test error against parameters per depth (one panel per target); fitted functions against the target."""
    from dlbench.experiments.depth.figure import draw

    draw(results, path)
