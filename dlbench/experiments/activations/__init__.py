"""The activation zoo: the property table beside the notes' table, claims A1-A11, kernel timings.

Three parts. (1) The property table (A2): each activation measured in float64 (nonlinearity, mean output
under N(0, 1) input beside its closed form, monotonicity, output range, derivative range, hyperparameters,
cost) next to the notes' table (seed-notes.md, section 2.2, verbatim), with every cell that disagrees listed.
(2) Claims A1-A11, each with a verdict from this run's numbers. (3) Kernel timings: forward and
forward+backward at an in-cache and a DRAM-sized float32 array, with ns/element, items/s, GB/s and the
fraction of the copy bandwidth.

Nets: dlbench.nn.mlp with seeds as the replica axis. A10 simulates many random zero-bias relu nets at once
(the net is an array axis) and prints 1 - (1 - 2^-W)^L beside the Monte Carlo estimate; Lu, Shin, Su &
Karniadakis 2019, "Dying ReLU and initialization: theory and numerical examples", show that for a fixed
width a deep relu net is born dead with probability tending to 1 as the depth grows.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from dataclasses import dataclass

import numpy as np

from dlbench import timing
from dlbench.data import make_dataset
from dlbench.errors import DlbenchError
from dlbench.experiments.activations import measure as am
from dlbench.experiments.base import RunContext, option, parse_numbers
from dlbench.nn.activations import ACTIVATIONS, Activation
from dlbench.nn.layers import dense_forward
from dlbench.nn.mlp import MLP, MLPSpec
from dlbench.nn.optim import get_optimizer
from dlbench.nn.train import StepInfo, train
from dlbench.stats import (Claim, bootstrap_ratio_ci, claim_from_interval, exact_claim, not_measured,
                           two_sample_verdict, verdict)

NAME = "activations"
HELP = "The activation zoo: property table beside the notes', claims A1-A11, kernel timings."
CLAIMS = {
    "A1": "one activation per layer is cheaper than one per neuron",
    "A2": "the notes' property table matches the measured properties",
    "A3": "non-zero-centred outputs bind the signs of a neuron's weight updates",
    "A4": "a non-monotonic activation makes the descent oscillate",
    "A5": "bounded activations saturate (unbounded ones grow with their input)",
    "A6": "small derivatives make gradients vanish with depth",
    "A7": "relu's derivative is 0 or 1, so active paths do not shrink the gradient",
    "A8": "relu units die; leaky relu, prelu and elu do not",
    "A9": "relu and leaky relu are cheap; elu, sigmoid, tanh and sin are costly",
    "A10-width": "the chance that a whole relu layer is dead falls as the width grows",
    "A10-depth": "the chance that a whole relu layer is dead falls as the depth grows",
    "A11": "hyperparameters are a burden: alpha moves the result more than the seed does",
}

#: A10's grid: widths and the depths shown (the simulation runs every depth up to the largest).
A10_WIDTHS = (2, 4, 8, 16, 32, 64)
A10_WIDTHS_QUICK = (2, 4, 8, 16)
A10_DEPTHS = (1, 2, 5, 10, 20, 50)
TIMING_CLAIMS = {"A1", "A2", "A9"}   # verdicts that rest on wall-time measurements (A2: its cost cells)
A10_INPUTS = 16              # inputs per simulated net ("output constant" means dead for all of them)
A10_BUDGET = 1 << 17         # nets * width^2 per width (fewer nets where death is astronomically rare)
A10_NETS = (500, 3000)       # min and max nets per width; quick divides by 4

CHEAP, COSTLY = ("relu", "leaky_relu"), ("elu", "sigmoid", "tanh", "sin")
LEAKY_FAMILY = ("leaky_relu", "prelu", "elu")
COST_FACTOR = 2.0            # "costly": forward+backward at least this many times the cheap group's, in cache
SATURATED = 0.01             # |f'| below this counts as saturated (A5)
A1_BATCH = 512
A1_THRESHOLD = 0.05          # A1: at least 5 % slower to count
A9_THRESHOLD = COST_FACTOR - 1.0  # A9: the same "costly" as A2's, as a ratio's distance above 1
A6_THRESHOLD = 1.0           # A6: at least a 10x shrink (log10 units)
A11_GRIDS = {"leaky_relu": ("negative_slope", (0.01, 0.1, 0.3)), "elu": ("alpha", (0.3, 1.0, 3.0))}
MAX_SIZE = 1 << 25


@dataclass
class Options:
    activations: str | None = option("all", help="Activations to measure, or all.",
                                     choices=lambda: list(ACTIVATIONS), metavar="NAMES")
    depth: int = option(20, help="Hidden layers of the deep net at init (A5-A7).", min=1, max=500)
    width: int = option(64, help="Hidden width of every net, and of A1's layer.", min=2, max=1024, quick=32)
    sizes: str = option("65536,4194304", help="Kernel timing array sizes in elements (in-cache, DRAM-sized).",
                        metavar="LIST", quick="8192,1500000")


SUITE_OPTIONS: dict = {}


# ----------------------------------------------------------------------------- options

def _activation_names(text: str | None) -> list[str]:
    """Names from the comma list ('all': every registered activation, aliases such as swish left out)."""
    if not text or text.strip() == "all":
        return [n for n, a in ACTIVATIONS.items() if a.name == n]
    names = ACTIVATIONS.parse_list(text)
    return list(dict.fromkeys(names))


def _sizes(text: str) -> list[int]:
    sizes = parse_numbers(text, int, what="--sizes")
    bad = [s for s in sizes if not 256 <= s <= MAX_SIZE]
    if bad:
        raise DlbenchError(f"--sizes: every size must be between 256 and {MAX_SIZE} elements, got {bad[0]}")
    return sorted(set(sizes))


# ----------------------------------------------------------------------------- timing

def _time(ctx: RunContext, metric: str, fn, *args, case: dict, items, bytes, section: str, **kwargs) -> timing.Timing:
    """ctx.time with fewer, shorter samples (dozens of kernels must fit the run's budget); raw samples kept."""
    cfg = ctx.timing_config
    samples = min(cfg["samples"], 5 if (bytes or 0) > timing.CACHE_BYTES else 9)
    cfg = {"min_time": min(cfg["min_time"], 0.005), "samples": samples, "warmup": cfg["warmup"]}
    t = timing.time_kernel(fn, *args, items=items, bytes=bytes, **cfg, **kwargs)
    ctx.record.timing(metric, t, case=case, section=section)
    return t


def _kernel_arrays(act: Activation, n: int, rng: np.random.Generator):
    """x (rows, 128 k) float32 with about n elements, y, g, dx buffers, theta."""
    k = act.pieces
    cols = 128 * k
    rows = max(1, n // cols)
    x = rng.standard_normal((rows, cols), dtype=np.float32)
    theta = am.theta_for(act, np.float32)
    y = act.forward(x, *theta)
    g = rng.standard_normal(y.shape, dtype=np.float32)
    return x, y, g, np.empty_like(x), theta


def time_kernels(ctx: RunContext, names: list[str], sizes: list[int]) -> dict:
    """Forward and forward+backward timings per (activation, size): {(name, n): (fwd Timing, both Timing)}."""
    rng = ctx.rng("kernel inputs")
    out = {}
    for name in names:
        act = ACTIVATIONS[name]
        for n in sizes:
            x, y, g, dx, theta = _kernel_arrays(act, n, rng)

            def both(x=x, y=y, g=g, dx=dx, theta=theta, act=act):
                act.forward(x, *theta, out=y)
                act.backward(x, y, g, *theta, out=dx)

            case = {"activation": name, "n": int(x.size)}
            fwd_bytes = x.nbytes + y.nbytes
            tf = _time(ctx, "forward", act.forward, x, *theta, out=y, case=case, items=x.size,
                       bytes=fwd_bytes, section="kernel timings")
            tb = _time(ctx, "fwd+bwd", both, case=case, items=x.size,
                       bytes=fwd_bytes + x.nbytes + g.nbytes + dx.nbytes, section="kernel timings")
            out[(name, n)] = (tf, tb)
    return out


def record_costs(ctx: RunContext, timings: dict, names: list[str], sizes: list[int]) -> dict[str, float]:
    """The A9 table (ns per element) and each activation's in-cache forward+backward cost relative to the
    cheap group's (geometric mean over relu and leaky relu, as in A9; ratio of the fastest samples)."""
    relu = {n: timings[("relu", n)][1] for n in sizes}
    cheap = [a for a in CHEAP if a in names] or ["relu"]
    ref = math.exp(np.mean([math.log(timings[(a, sizes[0])][1].samples.min() / timings[(a, sizes[0])][1].items)
                            for a in cheap]))
    ratios = {}
    for name in names:
        for n in sizes:
            tf, tb = timings[(name, n)]
            case = {"activation": name, "n": int(tf.items)}
            ctx.record.metric("forward", tf.samples / tf.items * 1e9, case=case, unit="ns/elem", better="none",
                              section="A9 cost per element (float32)")
            ctx.record.metric("fwd+bwd", tb.samples / tb.items * 1e9, case=case, unit="ns/elem", better="none",
                              section="A9 cost per element (float32)")
            per_elem_relu = relu[n].median / relu[n].items
            ctx.record.metric("fwd+bwd / relu", tb.samples / tb.items / per_elem_relu, case=case, unit="x",
                              better="none", section="A9 cost per element (float32)")
        # the fastest samples: the category should not flip with the machine's load
        tb = timings[(name, sizes[0])][1]
        ratios[name] = (tb.samples.min() / tb.items) / ref
    return ratios


def _group_samples(timings: dict, names: list[str], n: int) -> np.ndarray:
    """Per-sample geometric mean of forward+backward ns/element over a group of activations."""
    logs = [np.log(timings[(a, n)][1].samples / timings[(a, n)][1].items * 1e9) for a in names]
    k = min(len(v) for v in logs)
    return np.exp(np.mean([v[:k] for v in logs], axis=0))


def claim_a9(timings: dict, names: list[str], sizes: list[int]) -> Claim:
    cheap = [a for a in CHEAP if a in names]
    costly = [a for a in COSTLY if a in names]
    if not cheap or not costly:
        return not_measured("A9", CLAIMS["A9"],
                            note="needs one of relu, leaky_relu and one of elu, sigmoid, tanh, sin")
    n0 = sizes[0]
    c = two_sample_verdict("A9", CLAIMS["A9"], _group_samples(timings, costly, n0), _group_samples(timings, cheap, n0),
                           ratio=True, threshold=A9_THRESHOLD, label=f"costly/cheap fwd+bwd time at n={n0}")
    notes = []
    for n in sizes[1:]:
        r, lo, hi = bootstrap_ratio_ci(_group_samples(timings, cheap, n), _group_samples(timings, costly, n))
        notes.append(f"at n={n}: {r:.3g}x [{lo:.3g}, {hi:.3g}]")
    groups = f"costly = geometric mean of {', '.join(costly)}; cheap = of {', '.join(cheap)}"
    rule = f"'costly' = at least {COST_FACTOR:g}x the cheap group's time, as in A2"
    if c.verdict == "inconclusive" and c.low > 1.0 and c.effect < COST_FACTOR:
        rule = (f"slower than the cheap group but below {COST_FACTOR:g}x, the 'costly' of A2, so not shown "
                f"costly")
    return dataclasses.replace(c, evidence=f"{c.evidence}; {'; '.join(notes + [groups, rule])}")


# ----------------------------------------------------------------------------- A2: the property table

def property_table(ctx: RunContext, names: list[str], cost_ratio: dict[str, float]) -> tuple[Claim, dict]:
    """Measure every activation's properties, record them beside the notes' table; the A2 claim."""
    rng = ctx.rng("properties")
    section = "A2 properties (measured; out min/max — means unbounded)"
    measured = {}
    for name in names:
        act = ACTIVATIONS[name]
        p = am.measure_properties(act, rng)
        means, squares = am.output_moments(act, rng)
        mean, rms = float(means.mean()), float(np.sqrt(squares.mean()))
        ratio = cost_ratio.get(name)
        cost = None if ratio is None else ("cheap" if ratio < COST_FACTOR else "costly")
        measured[name] = (act, p, am.zero_centred(mean, rms), cost)
        case = {"activation": name}
        analytic = am.analytic_mean(act)
        rec = ctx.record.metric
        rec("nonlinearity", p.nonlinearity, case=case, section=section)
        rec("mean f(x), x~N(0,1)", means, case=case, section=section)
        rec("analytic mean", math.nan if analytic is None else (0.0 if abs(analytic) < 1e-12 else analytic),
            case=case, section=section)
        rec("monotonic", float(p.monotonic), case=case, unit="bool", section=section)
        rec("out min", p.out_low, case=case, section=section)
        rec("out max", p.out_high, case=case, section=section)
        rec("f' min", p.d_low, case=case, section=section)
        rec("f' max", p.d_high, case=case, section=section)
        rec("hyperparameters", p.hyper, case=case, section=section)
        rec("learned", p.learned, case=case, section=section)
        rec("cost vs relu", math.nan if ratio is None else ratio, case=case, unit="x", better="none",
            section=section)

    disagreements, checked = [], 0
    for row, entry in am.NOTES_TABLE.items():
        in_run = [n for n in entry["names"] if n in measured]
        row_checked = row_flagged = 0
        for prop, text in zip(am.PROPERTIES, entry["cells"]):
            reading = am.notes_reading(prop, text)
            for name in in_run:
                act, p, zero, cost = measured[name]
                ok = am.agrees(prop, reading, p, zero, cost, act)
                if ok is None:
                    continue
                row_checked += 1
                if not ok:
                    row_flagged += 1
                    disagreements.append((name, prop, text, am.measured_text(prop, p, zero, cost, act)))
        checked += row_checked
        case = {"notes row": row, **dict(zip(am.PROPERTIES, entry["cells"]))}
        ctx.record.metric("cells checked", row_checked if in_run else math.nan, case=case,
                          section="A2 the notes' table (seed-notes.md 2.2, verbatim)")
        ctx.record.metric("cells disagreeing", row_flagged if in_run else math.nan, case=case, better="lower",
                          section="A2 the notes' table (seed-notes.md 2.2, verbatim)")
    for name, prop, text, got in disagreements:
        ctx.record.metric("agrees", 0.0, case={"activation": name, "property": prop, "notes": text, "measured": got},
                          unit="bool", section="A2 cells where the notes disagree with the measurement")
    c = exact_claim("A2", CLAIMS["A2"], float(len(disagreements)), 0.0, n=checked, what="cells disagreeing")
    listed = "; ".join(f"{n} {p}: notes {t.split(' (')[0]!r}, measured {g!r}" for n, p, t, g in disagreements)
    ev = (f"{len(disagreements)} of {checked} checkable cells disagree" + (f": {listed}" if listed else "")
          if checked else "no activation of the notes' table in this run")
    if not checked:
        return not_measured("A2", CLAIMS["A2"],
                            note=ev), measured
    return dataclasses.replace(c, evidence=ev), measured


# ----------------------------------------------------------------------------- A1: per layer versus per unit

def _layer_one(x, W, b, z, out, act, theta):
    dense_forward(x, W, b, out=z)
    act.forward(z, *theta, out=out)


def _layer_mixed(x, W, b, z, out, acts, thetas, units):
    dense_forward(x, W, b, out=z)
    am.mixed_forward(z, acts, thetas, units, out)


def _layer_sorted(xt, Wt, bt, zt, out, acts, thetas, bounds):
    np.matmul(Wt, xt, out=zt)  # unit-major: z^T = W^T x^T
    zt += bt
    am.sorted_forward(zt, acts, thetas, bounds, out)


def claim_a1(ctx: RunContext, names: list[str], width: int) -> Claim:
    """Forward time of a dense layer with one activation versus each unit its own (float32)."""
    acts = [ACTIVATIONS[n] for n in names if ACTIVATIONS[n].pieces == 1]
    if len(acts) < 2:
        return not_measured("A1", CLAIMS["A1"],
                            note="needs at least two elementwise activations in --activations")
    rng = ctx.rng("A1 layer")
    x = rng.standard_normal((A1_BATCH, width), dtype=np.float32)
    W = (rng.standard_normal((width, width)) / math.sqrt(width)).astype(np.float32)
    b = np.zeros(width, np.float32)
    z, out = np.empty((A1_BATCH, width), np.float32), np.empty((A1_BATCH, width), np.float32)
    thetas = [am.theta_for(a, np.float32) for a in acts]
    section = f"A1 dense layer forward (batch {A1_BATCH}, width {width}, float32)"
    items, nbytes = A1_BATCH * width, x.nbytes + W.nbytes + 2 * z.nbytes
    per_layer = [_time(ctx, "forward", _layer_one, x, W, b, z, out, a, th, case={"layer": f"all units {a.name}"},
                       items=items, bytes=nbytes, section=section).samples for a, th in zip(acts, thetas)]
    units = am.mixed_units(acts, width, rng)
    mixed = _time(ctx, "forward", _layer_mixed, x, W, b, z, out, acts, thetas, units,
                  case={"layer": f"mixed: each unit one of {len(acts)}"}, items=items, bytes=nbytes,
                  section=section).samples
    edges = np.cumsum([0] + [len(u) for u in units])
    bounds = list(zip(edges[:-1], edges[1:]))
    xt, Wt, bt = np.ascontiguousarray(x.T), np.ascontiguousarray(W.T), b[:, None].copy()
    zt, outt = np.empty((width, A1_BATCH), np.float32), np.empty((width, A1_BATCH), np.float32)
    grouped = _time(ctx, "forward", _layer_sorted, xt, Wt, bt, zt, outt, acts, thetas, bounds,
                    case={"layer": "mixed, units sorted by activation (unit-major)"}, items=items, bytes=nbytes,
                    section=section).samples
    k = min(len(s) for s in per_layer)
    baseline = np.mean([s[:k] for s in per_layer], axis=0)  # the average one-activation layer
    r, lo, hi = bootstrap_ratio_ci(baseline, mixed)
    r2, lo2, hi2 = bootstrap_ratio_ci(baseline, grouped)
    return claim_from_interval(
        "A1", CLAIMS["A1"], r, lo, hi, n=min(k, len(mixed)), method="bootstrap", null=1.0,
        threshold=A1_THRESHOLD, label="mixed / one-per-layer forward time", unit="x",
        note=f"baseline = mean over the {len(acts)} one-activation layers; units sorted by activation (unit-major) "
             f"{r2:.3g}x [{lo2:.3g}, {hi2:.3g}]; batch {A1_BATCH}, width {width}")


# ----------------------------------------------------------------------------- A5-A7: a deep net at init

def deep_net_at_init(name: str, width: int, depth: int, seeds: list[int], x: np.ndarray,
                     backward: bool = True) -> dict:
    """One pass through `depth` hidden layers (lecun_normal weights, zero biases, float64), seeds as replicas.

    Returns per replica: grad_ratio = ||dL/dW_1|| / ||dL/dW_L|| (first over last hidden layer; g_out = 1/N;
    with backward), saturated = fraction of first-layer units with |f'| < SATURATED, out_rms = RMS of the
    last hidden layer.
    """
    m = MLP(MLPSpec((width,) * (depth + 1) + (1,), activation=name, init="lecun_normal", bias_init="zeros",
                    dtype=np.float64))
    params = m.init(seeds)
    ratio, layer_grads = None, None
    with np.errstate(all="ignore"):
        out, cache = m.forward(params, x)
        if backward:
            grads, layer_grads = m.backward(params, cache, np.full(out.shape, 1.0 / out.shape[-2]),
                                            return_layer_grads=True)
            first, last = grads[m.layers[0].W], grads[m.layers[depth - 1].W]
            ratio = np.sqrt((first**2).sum(axis=(1, 2))) / np.sqrt((last**2).sum(axis=(1, 2)))
        act = m.activations[0]
        if act.pieces == 1:
            theta = [params[i] for i in m.layers[0].theta]
            d = act.backward(cache.pre[0], cache.post[0], np.ones_like(cache.post[0]), *theta)
            saturated = (np.abs(d) < SATURATED).mean(axis=(1, 2))
        else:  # a maxout piece that loses has derivative 0 without being saturated
            saturated = np.full(len(seeds), math.nan)
        out_rms = np.sqrt((cache.post[-1] ** 2).mean(axis=(1, 2)))
    return {"grad_ratio": ratio, "saturated": saturated, "out_rms": out_rms, "model": m, "params": params,
            "cache": cache, "layer_grads": layer_grads}


def deep_net_claims(ctx: RunContext, names: list[str], measured: dict, width: int, depth: int) -> list[Claim]:
    rng = ctx.rng("deep net inputs")
    x = rng.standard_normal((128, width))
    section = f"A5-A6 deep net at init (depth {depth}, width {width}, lecun_normal, zero bias)"
    runs = {}
    for name in names:
        r1 = deep_net_at_init(name, width, depth, ctx.seed_list, x)
        r10 = deep_net_at_init(name, width, depth, ctx.seed_list, 10 * x, backward=False)
        runs[name] = (r1, r10)
        case = {"activation": name}
        p = measured[name][1]
        ctx.record.metric("grad ratio first/last", r1["grad_ratio"], case=case, unit="x", seeds=ctx.seed_list,
                          section=section)
        ctx.record.metric(f"sup|f'|^{depth - 1}", p.d_sup ** (depth - 1), case=case, unit="x", section=section)
        ctx.record.metric("saturated, input x1", r1["saturated"], case=case, seeds=ctx.seed_list, section=section)
        ctx.record.metric("saturated, input x10", r10["saturated"], case=case, seeds=ctx.seed_list, section=section)
        ctx.record.metric("last-layer RMS, x1", r1["out_rms"], case=case, seeds=ctx.seed_list, section=section)
        ctx.record.metric("last-layer RMS, x10", r10["out_rms"], case=case, seeds=ctx.seed_list, section=section)
    return [claim_a5(runs, measured), claim_a6(runs, measured, depth), claim_a7(ctx, width, depth, x)]


def claim_a5(runs: dict, measured: dict) -> Claim:
    bounded = [n for n in runs if math.isfinite(measured[n][1].out_low) and math.isfinite(measured[n][1].out_high)
               and measured[n][0].pieces == 1]
    unbounded = [n for n in runs if n not in bounded and measured[n][0].pieces == 1]
    if not bounded:
        return not_measured("A5", CLAIMS["A5"],
                            note="no bounded activation (sigmoid, tanh, sin) in --activations")
    big = np.concatenate([runs[n][1]["saturated"] for n in bounded])
    small = np.concatenate([runs[n][0]["saturated"] for n in bounded])
    c = two_sample_verdict("A5", CLAIMS["A5"], big, small, threshold=0.05,
                           label=f"saturated first-layer units at input x10 - x1 ({', '.join(bounded)})")

    def growth(group):
        return np.median(np.concatenate([runs[n][1]["out_rms"] / runs[n][0]["out_rms"] for n in group]))

    note = f"last-layer RMS x10/x1: bounded {growth(bounded):.3g}"
    if unbounded:
        note += f", unbounded ({', '.join(unbounded)}) {growth(unbounded):.3g}"
    return dataclasses.replace(c, evidence=f"{c.evidence}; {note}")


def claim_a6(runs: dict, measured: dict, depth: int) -> Claim:
    sup = {n: measured[n][1].d_sup for n in runs}
    small = min(sup, key=sup.get)
    if sup[small] >= 1 or depth < 2:
        why = "no activation with sup|f'| < 1 in --activations" if depth >= 2 else "needs --depth of at least 2"
        return not_measured("A6", CLAIMS["A6"],
                            note=why)
    logs = np.log10(runs[small][0]["grad_ratio"])
    c = verdict("A6", CLAIMS["A6"], logs, direction="less", threshold=A6_THRESHOLD,
                label=f"log10 grad-norm ratio first/last layer, {small} (sup|f'| {sup[small]:.3g})")
    medians = {n: float(np.median(r[0]["grad_ratio"])) for n, r in runs.items()}
    top = max(medians, key=medians.get)
    note = (f"bound sup|f'|^{depth - 1} = {sup[small] ** (depth - 1):.3g}; largest ratio: {top} "
            f"{medians[top]:.3g} (sup|f'| {sup[top]:.3g})")
    return dataclasses.replace(c, evidence=f"{c.evidence}; {note}")


def claim_a7(ctx: RunContext, width: int, depth: int, x: np.ndarray) -> Claim:
    """Exact: relu' is 0 or 1, and through a relu net dL/dpre = dL/dpost on active units, 0 elsewhere."""
    relu = ACTIVATIONS["relu"]
    z = ctx.rng("A7").standard_normal(1 << 16)
    d = relu.backward(z, relu.forward(z), np.ones_like(z))
    err = float(np.max(np.minimum(np.abs(d), np.abs(d - 1))))
    n = z.size
    r = deep_net_at_init("relu", width, depth, ctx.seed_list, x)
    for pre, dpost, dpre in zip(r["cache"].pre, r["layer_grads"].post, r["layer_grads"].pre):
        if dpost is None:
            continue
        err = max(err, float(np.max(np.abs(dpre - dpost * (pre > 0)))))
        n += dpre.size
    return exact_claim("A7", CLAIMS["A7"], err, 0.0, n=n, what="max |relu' - {0,1}|, |dL/dpre - [pre>0] dL/dpost|")


# ----------------------------------------------------------------------------- training: A3, A4, A8, A11

def _net(name: str, d_in: int, width: int, hidden: int, d_out: int, hyper: dict | None = None) -> MLP:
    return MLP(MLPSpec((d_in,) + (width,) * hidden + (d_out,), activation=name, activation_hyper=hyper or {}))


def _per_replica_dot(xs: list[np.ndarray], ys: list[np.ndarray]) -> np.ndarray:
    """sum over parameters of <x, y>, one value per replica (axis 0)."""
    return sum((a * b).sum(axis=tuple(range(1, a.ndim)), dtype=np.float64) for a, b in zip(xs, ys))


def _cosine_tracker(S: int):
    """A train callback counting steps whose gradient points against the previous step's (cosine < 0)."""
    state = {"prev": None, "reversed": np.zeros(S), "steps": 0}

    def callback(info: StepInfo) -> None:
        g = info.grads
        if state["prev"] is not None:
            prev = state["prev"]
            dot, n1, n2 = _per_replica_dot(g, prev), _per_replica_dot(g, g), _per_replica_dot(prev, prev)
            with np.errstate(all="ignore"):
                state["reversed"] += dot / np.sqrt(n1 * n2) < 0
            state["steps"] += 1
            for p, a in zip(state["prev"], g):
                np.copyto(p, a)
        else:
            state["prev"] = [a.copy() for a in g]

    return state, callback


def claim_a3(ctx: RunContext, names: list[str], width: int, epochs: int) -> Claim:
    """Same-sign weight updates into the second hidden layer, and training loss, sigmoid versus tanh."""
    if "sigmoid" not in names or "tanh" not in names:
        return not_measured("A3", CLAIMS["A3"],
                            note="needs sigmoid and tanh in --activations")
    data = make_dataset("xor", seed=ctx.seed)
    lr = 0.5
    section = f"A3 sign-bound updates (xor, sgd lr {lr}, 2 hidden layers of {width})"
    results = {}
    for name in [n for n in ("sigmoid", "tanh", "relu") if n in names]:
        m = _net(name, data.n_features, width, 2, data.n_outputs)
        sums = {"batch": 0.0, "sample": 0.0, "steps": 0}

        def callback(info: StepInfo, m=m, sums=sums) -> None:
            g = info.grads[m.layers[1].W]  # (S, fan_in, fan_out): column j feeds unit j of layer 2
            one_sign = ((g >= 0).all(axis=1) | (g <= 0).all(axis=1)) & (g != 0).any(axis=1)
            sums["batch"] += one_sign.mean(axis=-1)
            h = info.cache.post[0]
            sums["sample"] += ((h >= 0).all(axis=-1) | (h <= 0).all(axis=-1)).mean(axis=-1)
            sums["steps"] += 1

        hist = train(m, data, ctx.seed_list, optimizer=get_optimizer("sgd", lr=lr), epochs=epochs,
                     batch_size=64, eval_every=0, callback=callback)
        case = {"activation": name}
        batch = sums["batch"] / max(1, sums["steps"])
        results[name] = (batch, hist.train_loss[:, -1])
        ctx.record.metric("one-sign updates (minibatch)", batch, case=case, seeds=ctx.seed_list, section=section)
        ctx.record.metric("one-sign updates (per sample)", sums["sample"] / max(1, sums["steps"]), case=case,
                          seeds=ctx.seed_list, section=section)
        ctx.record.metric("final train loss", hist.train_loss[:, -1], case=case, better="lower",
                          seeds=ctx.seed_list, section=section)
        for s, seed in enumerate(ctx.seed_list):
            ctx.record.curve("train loss", hist.loss[s], case=case, seed=seed, section=section)
    c = two_sample_verdict("A3", CLAIMS["A3"], results["sigmoid"][0], results["tanh"][0], threshold=0.1,
                           label="fraction of layer-2 units whose incoming-weight gradients share one sign, "
                                 "sigmoid - tanh")
    r, lo, hi = bootstrap_ratio_ci(results["tanh"][1], results["sigmoid"][1])
    return dataclasses.replace(c, evidence=f"{c.evidence}; final train loss sigmoid/tanh {r:.3g}x [{lo:.3g}, {hi:.3g}]")


def claim_a4(ctx: RunContext, names: list[str], width: int, steps: int) -> Claim:
    """Gradient reversals under full-batch gradient descent, sin versus tanh."""
    if "sin" not in names or "tanh" not in names:
        return not_measured("A4", CLAIMS["A4"],
                            note="needs sin and tanh in --activations")
    base = make_dataset("xor", seed=ctx.seed, n_train=500, n_test=100)
    # inputs x3: a sizeable share of sin's first-layer inputs lie past pi/2, where it is not monotonic
    data = dataclasses.replace(base, X_train=base.X_train * 3, X_test=base.X_test * 3)
    lr = 0.5
    section = f"A4 oscillation (xor inputs x3, full-batch gradient descent lr {lr}, {steps} steps)"
    rev = {}
    for name in ("sin", "tanh"):
        m = _net(name, data.n_features, width, 2, data.n_outputs)
        params = m.init(ctx.seed_list)
        _, cache = m.forward(params, data.X_train)
        past = (np.abs(cache.pre[0]) > math.pi / 2).mean(axis=(1, 2))
        state, callback = _cosine_tracker(len(ctx.seed_list))
        hist = train(m, data, ctx.seed_list, params=params, optimizer=get_optimizer("sgd", lr=lr), epochs=steps,
                     batch_size=data.X_train.shape[0], eval_every=0, shuffle=False, callback=callback)
        rev[name] = state["reversed"] / max(1, state["steps"])
        with np.errstate(all="ignore"):
            rises = (np.diff(hist.loss, axis=1) > 0).mean(axis=1)
        case = {"activation": name}
        ctx.record.metric("gradient reversals", rev[name], case=case, better="lower", seeds=ctx.seed_list,
                          section=section)
        ctx.record.metric("loss rises", rises, case=case, better="lower", seeds=ctx.seed_list, section=section)
        ctx.record.metric("final train loss", hist.train_loss[:, -1], case=case, better="lower",
                          seeds=ctx.seed_list, section=section)
        ctx.record.metric("|z|>pi/2 at init, layer 1", past, case=case, seeds=ctx.seed_list, section=section)
    return two_sample_verdict("A4", CLAIMS["A4"], rev["sin"], rev["tanh"], threshold=0.05,
                              label="fraction of steps with cos(g_t, g_t-1) < 0, sin - tanh")


def _dead_fractions(m: MLP, params: list, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per replica: share of hidden units whose output is 0, and whose input is <= 0, for every x in X."""
    with np.errstate(all="ignore"):
        _, cache = m.forward(params, X, train=False)
    dead = np.concatenate([(h == 0).all(axis=1) for h in cache.post], axis=-1).mean(axis=-1)
    negative = np.concatenate([(z <= 0).all(axis=1) for z in cache.pre], axis=-1).mean(axis=-1)
    return dead, negative


def claim_a8(ctx: RunContext, names: list[str], width: int, epochs: int) -> Claim:
    """Units that die in training with a large learning rate: the per-seed change of the dead-unit fraction
    (after training - at init), relu versus leaky_relu, prelu, elu; units born dead do not count."""
    family = [n for n in LEAKY_FAMILY if n in names]
    if "relu" not in names or not family:
        return not_measured("A8", CLAIMS["A8"],
                            note="needs relu and one of leaky_relu, prelu, elu in --activations")
    data = make_dataset("spirals", seed=ctx.seed)
    lr = 1.0
    section = f"A8 dead units (spirals, sgd lr {lr}, 3 hidden layers of {width})"
    died, init, after, negative_after = {}, {}, {}, {}
    for name in ["relu", *family]:
        m = _net(name, data.n_features, width, 3, data.n_outputs)
        params = m.init(ctx.seed_list)
        dead0, _ = _dead_fractions(m, params, data.X_train)
        hist = train(m, data, ctx.seed_list, params=params, optimizer=get_optimizer("sgd", lr=lr), epochs=epochs,
                     batch_size=64, eval_every=0)
        dead1, neg1 = _dead_fractions(m, hist.params, data.X_train)
        dead1[hist.diverged], neg1[hist.diverged] = math.nan, math.nan
        init[name], after[name], negative_after[name] = dead0, dead1, neg1
        died[name] = dead1 - dead0
        case = {"activation": name}
        ctx.record.metric("dead at init", dead0, case=case, better="lower", seeds=ctx.seed_list, section=section)
        ctx.record.metric("dead after", dead1, case=case, better="lower", seeds=ctx.seed_list, section=section)
        ctx.record.metric("died in training", died[name], case=case, better="lower", seeds=ctx.seed_list,
                          section=section)
        ctx.record.metric("input <= 0 for all x, after", neg1, case=case, seeds=ctx.seed_list, section=section)
        ctx.record.metric("diverged", hist.diverged.astype(float), case=case, unit="bool", better="lower",
                          seeds=ctx.seed_list, section=section)
    fam = np.concatenate([died[n] for n in family])
    c = two_sample_verdict("A8", CLAIMS["A8"], died["relu"], fam, threshold=0.01,
                           label=f"dead fraction after - at init, relu - ({', '.join(family)})")
    neg = np.concatenate([negative_after[n] for n in family])
    neg = neg[np.isfinite(neg)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # every relu run diverged: no median after training
        relu_after = np.nanmedian(after["relu"])
    note = f"relu dead at init {np.median(init['relu']):.3g} (not counted), after training {relu_after:.3g}; "
    note += (f"leaky-family units with input <= 0 for every x: {np.median(neg):.3g} (they still get gradient)"
             if neg.size else "every leaky-family run diverged")
    return dataclasses.replace(c, evidence=f"{c.evidence}; {note}")


def claim_a11(ctx: RunContext, names: list[str], width: int, epochs: int) -> Claim:
    """Final loss over a grid of alpha (leaky_relu, elu) against relu's seed-to-seed spread."""
    grids = {n: g for n, g in A11_GRIDS.items() if n in names}
    if "relu" not in names or not grids:
        return not_measured("A11", CLAIMS["A11"],
                            note="needs relu and leaky_relu or elu in --activations")
    data = make_dataset("xor", seed=ctx.seed)
    lr = 0.3
    section = f"A11 final train loss over alpha (xor, sgd lr {lr}, 2 hidden layers of {width})"

    def final_loss(name: str, hyper: dict) -> np.ndarray:
        m = _net(name, data.n_features, width, 2, data.n_outputs, hyper)
        hist = train(m, data, ctx.seed_list, optimizer=get_optimizer("sgd", lr=lr), epochs=epochs, batch_size=64,
                     eval_every=0)
        loss = hist.train_loss[:, -1].astype(float)
        loss[hist.diverged] = math.nan
        return loss

    relu = final_loss("relu", {})
    ctx.record.metric("final train loss", relu, case={"activation": "relu", "alpha": "-"}, better="lower",
                      seeds=ctx.seed_list, section=section)
    spreads = []
    for name, (key, values) in grids.items():
        losses = np.stack([final_loss(name, {key: a}) for a in values])  # (alphas, seeds)
        for a, loss in zip(values, losses):
            ctx.record.metric("final train loss", loss, case={"activation": name, "alpha": str(a)}, better="lower",
                              seeds=ctx.seed_list, section=section)
        with np.errstate(all="ignore"):
            spreads.append(np.nanmax(losses, axis=0) / np.nanmin(losses, axis=0))
    noise = np.maximum(relu, np.roll(relu, 1)) / np.minimum(relu, np.roll(relu, 1))
    return two_sample_verdict("A11", CLAIMS["A11"], np.concatenate(spreads), noise,
                              label="worst/best-alpha loss ratio per seed - relu's seed-pair loss ratio")


# ----------------------------------------------------------------------------- A10: dead relu layers

def a10_nets(width: int, quick: bool) -> int:
    lo, hi = A10_NETS
    n = int(np.clip(A10_BUDGET // (width * width), lo, hi))
    return max(100, n // 4) if quick else n


def claim_a10(ctx: RunContext) -> list[Claim]:
    """Monte Carlo over random zero-bias relu nets: P(some layer is all-zero for an input), by width and depth."""
    widths = A10_WIDTHS_QUICK if ctx.quick else A10_WIDTHS
    depths = A10_DEPTHS
    rng = ctx.rng("A10")
    section = f"A10 dead relu layers at init (zero bias, {A10_INPUTS} inputs per net)"
    p, const, nets = {}, {}, {}
    for w in widths:
        R = nets[w] = a10_nets(w, ctx.quick)
        dead = am.dead_relu_monte_carlo(w, max(depths), R, A10_INPUTS, rng)
        for L in depths:
            p[w, L] = float(dead[L - 1].mean())
            const[w, L] = float(dead[L - 1].all(axis=-1).mean())
            lo, hi = am.wilson_interval(p[w, L] * R, R)
            case = {"width": w, "nets": R, "depth": L}
            rec = ctx.record.metric
            rec("P(layer dead)", p[w, L], case=case, section=section)
            rec("95% low", lo, case=case, section=section)
            rec("95% high", hi, case=case, section=section)
            rec("analytic 1-(1-2^-W)^L", float(am.dead_layer_analytic(w, L)), case=case, section=section)
            rec("P(output constant)", const[w, L], case=case, section=section)
    z = 1.959963984540054
    w0, w1, l0, l1 = widths[0], widths[-1], depths[0], depths[-1]
    # width half: P(narrowest) - P(widest) averaged over depths (sd: the mean of the per-depth sds, conservative)
    diffs = [p[w0, L] - p[w1, L] for L in depths]
    sds = [math.sqrt(am.agresti_caffo_variance(p[w0, L], nets[w0]) + am.agresti_caffo_variance(p[w1, L], nets[w1]))
           for L in depths]
    eff, sd = float(np.mean(diffs)), float(np.mean(sds))
    analytic = float(np.mean([am.dead_layer_analytic(w0, L) - am.dead_layer_analytic(w1, L) for L in depths]))
    width_claim = claim_from_interval(
        "A10-width", CLAIMS["A10-width"], eff, eff - z * sd, eff + z * sd, n=nets[w0] + nets[w1],
        method="normal, Agresti-Caffo", label=f"P(layer dead) at W={w0} - at W={w1}, mean over L in {list(depths)}",
        note=f"analytic {analytic:.3g}")
    # depth half: per width, the share of (net, input) pairs that die between layer l0 and l1 (widths independent)
    q = {w: p[w, l1] - p[w, l0] for w in widths}
    eff = float(np.mean(list(q.values())))
    sd = math.sqrt(sum(am.agresti_caffo_variance(q[w], nets[w]) for w in widths)) / len(widths)
    analytic = float(np.mean([am.dead_layer_analytic(w, l1) - am.dead_layer_analytic(w, l0) for w in widths]))
    depth_claim = claim_from_interval(
        "A10-depth", CLAIMS["A10-depth"], eff, eff - z * sd, eff + z * sd, n=sum(nets.values()),
        direction="less", method="normal, Agresti-Caffo",
        label=f"P(layer dead) at L={l1} - at L={l0}, mean over W in {list(widths)}",
        note=f"analytic {analytic:.3g}; P(output constant) at W={w0}: {const[w0, l0]:.3g} at L={l0}, "
             f"{const[w0, l1]:.3g} at L={l1} (Lu et al. 2019: born dead as L grows)")
    return [width_claim, depth_claim]


# ----------------------------------------------------------------------------- run

def run(opts: Options, ctx: RunContext) -> None:
    from threadpoolctl import threadpool_limits

    names = _activation_names(opts.activations)
    sizes = _sizes(opts.sizes)
    width, depth = int(opts.width), int(opts.depth)
    if width < 2 or depth < 1:
        raise DlbenchError("--width must be at least 2 and --depth at least 1")
    epochs = 8 if ctx.quick else 20
    # relu is the reference of the cost column and of A9, so it is always timed
    timed = names if "relu" in names else ["relu", *names]
    claims: list[Claim] = []
    # the nets here are small: one BLAS thread avoids threads spinning against each other
    with threadpool_limits(limits=1, user_api="blas"), ctx.progress.task("activations", total=9) as advance:
        timings = time_kernels(ctx, timed, sizes)
        cost_ratio = record_costs(ctx, timings, timed, sizes)
        advance()
        a2, measured = property_table(ctx, names, cost_ratio)
        advance()
        claims.append(claim_a1(ctx, names, width))
        advance()
        claims += deep_net_claims(ctx, names, measured, width, depth)
        advance()
        claims.append(claim_a3(ctx, names, width, epochs))
        advance()
        claims.append(claim_a4(ctx, names, width, 60 if ctx.quick else 150))
        advance()
        claims.append(claim_a8(ctx, names, width, epochs))
        advance()
        claims.append(claim_a11(ctx, names, width, epochs))
        advance()
        claims += claim_a10(ctx)
        claims.append(claim_a9(timings, timed, sizes))
        claims.append(a2)
        advance()
    order = list(CLAIMS)
    for c in sorted(claims, key=lambda c: order.index(c.id)):
        ctx.claim(c, timing=c.id in TIMING_CLAIMS)


def plot(results, path) -> None:
    """A10: P(some layer dead) against depth per width, Monte Carlo points over the analytic curves; A6:
    gradient-norm ratio first/last layer per activation (log scale)."""
    from dlbench.experiments.activations.figure import draw

    draw(results, path)
