"""The activations experiment's parts that need no training and no timing: the notes' table cell by cell
(A2's exact cells), nets at init (A5, A6, A7), dead relu layers (A10) and the span of one hidden layer (A14).

Each claim is measured at every point of its nuisance grid, and its negative control through the same code
on the counterfactual that removes the claim's mechanism (see CLAIMS in the package).
"""

from __future__ import annotations

import math

import numpy as np

from dlbench.experiments.activations import measure as m
from dlbench.experiments.activations import notes
from dlbench.experiments.base import RunContext
from dlbench.stats import (Finding, all_of, bootstrap_ci, decide, equivalence, finding, from_interval,
                           newcombe_difference, wilson)

PROBE_INPUTS = 256            # inputs of the first layer at init (A5)
DEEP_INPUTS = 64              # inputs of the deep nets at init (A5's growth, A6, A7)
BAND = 1.1                    # A6, A7: a per-layer gradient factor within 1.1 of 1 either way is "kept"
SATURATION_NULL = 0.1         # A5: at least a tenth more of the units saturated
GROWTH_DEPTH = 10             # A5: layers of the net whose output growth x1 -> x10 is recorded
SPAN_WIDTHS = (2, 4, 8, 16, 32, 64, 128)
SPAN_NULL = math.log10(0.01)  # A14: relative error below 1 % of the target's variance at the widest width
SPAN_FALL = 1.0               # A14: ... and at least 10x lower than at width 8
A10_INPUTS = 16               # inputs per simulated net
A10_BUDGET = 1 << 17          # nets * width^2 per width
A10_NETS = (500, 3000)        # min and max nets per width; --quick divides by 4
A10_WIDTHS = (2, 4, 8, 16, 32, 64)
A10_WIDTHS_QUICK = (2, 4, 8, 16)
A10_DEPTHS = (1, 2, 5, 10, 20, 50)


def exact_finding(agree: bool, evidence: str) -> Finding:
    """A finding from an exact comparison: 1 (agrees) or 0 (disagrees) against 1/2, without an interval."""
    x = 1.0 if agree else 0.0
    return Finding(decide(x, x, x, null=0.5, n=1, min_n=1), x, x, x, 1, "exact", evidence)


# ----------------------------------------------------------------------------- A2: the notes' table

def properties(opts, ctx: RunContext) -> None:
    """Every selected activation's measured properties, and A2's exact and zero-centred cells."""
    from dlbench.experiments.activations import CLAIMS, activation_names
    from dlbench.nn.activations import ACTIVATIONS

    names = activation_names(opts.activations)
    rng = ctx.rng("properties")
    measured = {}
    for name in names:
        act = ACTIVATIONS[name]
        p = m.measure_properties(act, rng)
        means, squares = m.output_moments(act, rng)
        ratios = m.centring(means, squares)
        analytic = m.analytic_mean(act)
        measured[name] = (act, p, means, squares, ratios, analytic)
        case = {"activation": name}
        rec, sec = ctx.record.metric, "a2.properties"
        rec("nonlinearity", p.nonlinearity, case=case, section=sec)
        rec("mean_f", float(means.mean()), case=case, section=sec)
        rec("analytic_mean", math.nan if analytic is None else (0.0 if abs(analytic) < 1e-12 else analytic),
            case=case, section=sec)
        rec("mean_over_rms", float(np.median(ratios)), case=case, section=sec)
        rec("monotonic", float(p.monotonic), case=case, unit="bool", section=sec)
        rec("bounded", float(p.bounded), case=case, unit="bool", section=sec)
        rec("out_min", p.out_low, case=case, section=sec)
        rec("out_max", p.out_high, case=case, section=sec)
        rec("d_min", p.d_low, case=case, section=sec)
        rec("d_max", p.d_high, case=case, section=sec)
        rec("hyperparameters", p.hyper, case=case, section=sec)
        rec("learned", p.learned, case=case, section=sec)
    for point in CLAIMS["A2"].points(ctx.quick):
        name, prop = point["activation"], point["property"]
        if prop.startswith("cost"):
            continue  # timed in costs.kernel_costs
        if name not in measured:
            ctx.not_run("A2", f"{name} is not in --activations", point=point)
            continue
        text = notes.cell(name, prop)
        read = notes.reading(prop, text)
        if read is None:
            why = "blank in the notes" if not text else f"the notes commit to nothing ({notes.gloss(text)!r})"
            ctx.not_run("A2", why, point=point)
            _record_cell(ctx, name, prop, text, "", math.nan)
            continue
        act, p, means, squares, ratios, analytic = measured[name]
        if prop == "zero_centred":
            f = _zero_centred_cell(text, means, squares, ratios, analytic, ctx.seed)
            got = m.zero_centred(float(np.median(ratios)))
        else:
            got = notes.measured_text(prop, p, act)
            ok = notes.agrees(read, p, act)
            f = exact_finding(ok, f"notes {text!r} ({notes.gloss(text)}), measured {got!r}")
        ctx.finding("A2", f, point=point)
        _record_cell(ctx, name, prop, text, got, 1.0 if f.verdict == "supported" else
                     0.0 if f.verdict == "refuted" else math.nan)


def _zero_centred_cell(text, means, squares, ratios, analytic, seed) -> Finding:
    """'近似' (approximately): |E f| / RMS f at most 0.25, over 16 batches of N(0, 1) draws."""
    mean, rms = float(means.mean()), float(np.sqrt(squares.mean()))
    closed = "none" if analytic is None else f"{analytic:.4g}"
    return finding(ratios, direction="less", null=m.ZERO_APPROX, seed=seed, label="|E f| / RMS f",
                   note=f"notes {text!r} ({notes.gloss(text)}); E f = {mean:.4g} (analytic {closed}), RMS "
                        f"{rms:.4g}; approximately zero-centred at most {m.ZERO_APPROX}, zero-centred at most "
                        f"{m.ZERO_YES}")


def _record_cell(ctx: RunContext, name: str, prop: str, text: str, got: str, agree: float) -> None:
    ctx.record.metric("agrees", agree, case={"activation": name, "property": prop, "notes": text,
                                             "notes_english": notes.gloss(text), "measured": got},
                      unit="bool", section="a2.cells")


# ----------------------------------------------------------------------------- A5-A7: nets at init

def at_init(opts, ctx: RunContext) -> None:
    """A5 (saturation at a large input scale), A6 (vanish and explode), A7 (relu keeps the gradient)."""
    _saturation(opts, ctx)
    deep: dict = {}
    _vanish_explode(opts, ctx, deep)
    _relu_paths(opts, ctx, deep)


def _saturation(opts, ctx: RunContext) -> None:
    from dlbench.experiments.activations import CLAIMS, activation_names
    from dlbench.nn.activations import ACTIVATIONS

    W, S = opts.width, ctx.seeds
    points = CLAIMS["A5"].points(ctx.quick)
    rng = ctx.rng("A5 first layer")
    x = rng.standard_normal((S, PROBE_INPUTS, W))
    W1 = rng.standard_normal((S, W, W)) / math.sqrt(W)     # LeCun normal
    z = x @ W1                                            # N(0, 1) pre-activations; scale s multiplies them
    scales = sorted({1, *(p["scale"] for p in points)})
    share = {}
    for name in dict.fromkeys([*(p["activation"] for p in points), "identity"]):
        act = ACTIVATIONS[name]
        for s in scales:
            share[name, s] = m.saturated_share(act, s * z)
            ctx.record.metric("saturated_share", share[name, s], case={"activation": name, "scale": s},
                              seeds=ctx.seed_list, section="a5.saturation")
    growth = _output_growth(ctx, activation_names(opts.activations), W)
    props = {n: m.measure_properties(ACTIVATIONS[n], ctx.rng("A5 properties", n)) for n in
             dict.fromkeys([*(p["activation"] for p in points), "identity"])}
    for point in points:
        name, s = point["activation"], point["scale"]
        p = props[name]
        bounded = f"bounded ({notes.fmt_bound(p.out_low)} ~ {notes.fmt_bound(p.out_high)})" if p.bounded \
            else "unbounded"
        note = f"{name} is {bounded}; at x1 {np.median(share[name, 1]):.3g} saturated"
        if growth:
            note += f"; output RMS x10/x1 after {GROWTH_DEPTH} layers: {growth}"
        ctx.finding("A5", finding(share[name, s] - share[name, 1], null=SATURATION_NULL, seed=ctx.seed,
                                  label=f"share saturated (|f'| < {m.SATURATED}) at x{s} - at x1", note=note),
                    point=point)
        ctx.finding("A5", finding(share["identity", s] - share["identity", 1], null=SATURATION_NULL,
                                  seed=ctx.seed, label=f"identity: share saturated at x{s} - at x1"),
                    point=point, role="control")


def _output_growth(ctx: RunContext, names: list[str], W: int) -> str:
    """Median output RMS ratio (input x10 over x1) of a GROWTH_DEPTH-layer LeCun-normal net, per activation;
    recorded, and summarised as bounded against unbounded activations."""
    from dlbench.nn.activations import ACTIVATIONS

    x = ctx.rng("A5 growth input").standard_normal((DEEP_INPUTS, W))
    ratios = {}
    for name in names:
        act = ACTIVATIONS[name]
        net = m.net((W,) * (GROWTH_DEPTH + 1) + (W,), act, init="lecun_normal", bias_init="zeros")
        params = net.init(ctx.seed_list)
        with np.errstate(all="ignore"):
            rms = [np.sqrt((net.forward(params, s * x)[1].post[-1] ** 2).mean(axis=(1, 2))) for s in (1, 10)]
            r = rms[1] / rms[0]
        ratios[name] = float(np.median(r))
        ctx.record.metric("output_rms_x10_over_x1", r, case={"activation": name}, seeds=ctx.seed_list,
                          section="a5.saturation")
    if not ratios:
        return ""
    bounded = [n for n in ratios if m.is_bounded(ACTIVATIONS[n])]
    parts = []
    for label, group in (("bounded", bounded), ("unbounded", [n for n in ratios if n not in bounded])):
        if group:
            vals = [ratios[n] for n in group]
            parts.append(f"{label} {min(vals):.3g}..{max(vals):.3g}")
    return ", ".join(parts)


def _deep(ctx: RunContext, cache: dict, act: str, init: str, depth: int, width: int,
          gain: float = 1.0) -> np.ndarray:
    """log per-layer factor of dL/dz in a `depth`-layer net at init, per seed (replica); nets already built
    for another claim come from `cache`. float32 holds 0.25^30 and 2^30 with room to spare."""
    key = (act, init, depth, width, gain)
    if key in cache:
        return cache[key]
    net = m.net((width,) * (depth + 1) + (width,), act, init=init, bias_init="zeros")
    params = net.init(ctx.seed_list)
    if gain != 1.0:
        for layer in net.layers:
            params[layer.W] *= gain
    x = ctx.rng("deep input", width).standard_normal((DEEP_INPUTS, width))
    g = ctx.rng("deep readout", width).standard_normal((DEEP_INPUTS, width))
    profile = m.backprop_profile(net, params, x, g).astype(np.float64)
    factor = m.layer_factor(profile)
    ctx.record.metric("layer_factor", factor, case={"activation": act, "init": init if gain == 1 else
                      f"{gain:g} x {init}", "depth": depth, "width": width}, seeds=ctx.seed_list,
                      section="a6.gradients")
    with np.errstate(all="ignore"):
        cache[key] = np.log(factor)
    return cache[key]


def _vanish_explode(opts, ctx: RunContext, deep: dict) -> None:
    from dlbench.experiments.activations import CLAIMS

    band = math.log(BAND)
    for point in CLAIMS["A6"].points(ctx.quick):
        name, depth = point["activation"], point["depth"]
        init = "xavier_normal" if name == "sigmoid" else "kaiming_normal"
        logf = _deep(ctx, deep, name, init, depth, opts.width)
        sup = 0.25 if name == "sigmoid" else float(name.split("*")[0])
        explode = sup > 1
        label = f"{name} at {init}: log per-layer gradient factor"
        note = f"factor {math.exp(np.median(logf)):.3g} per layer; sup|f'|^(L-1) = {sup ** (depth - 1):.3g}"
        ctx.finding("A6", finding(logf, direction="greater" if explode else "less", null=band if explode else -band,
                                  seed=ctx.seed, label=label, note=note), point=point)
        control = _deep(ctx, deep, "relu", "kaiming_normal", depth, opts.width)
        ctx.finding("A6", finding(np.abs(control), null=band, seed=ctx.seed,
                                  label="relu (c = 1) at kaiming_normal: |log per-layer factor|",
                                  note=f"factor {math.exp(np.median(control)):.3g} per layer"),
                    point=point, role="control")


def _relu_paths(opts, ctx: RunContext, deep: dict) -> None:
    from dlbench.experiments.activations import CLAIMS

    for point in CLAIMS["A7"].points(ctx.quick):
        depth, width = point["depth"], point["width"]
        relu = _deep(ctx, deep, "relu", "kaiming_normal", depth, width)
        others = {n: _deep(ctx, deep, n, "xavier_normal", depth, width) for n in ("sigmoid", "tanh")}
        half = _deep(ctx, deep, "relu", "kaiming_normal", depth, width, gain=0.5)
        ctx.finding("A7", _a7_finding(relu, others, "relu at He's init", ctx.seed), point=point)
        ctx.finding("A7", _a7_finding(half, others, "relu at half He's std", ctx.seed,
                                      note="the same derivative: a shrinking gradient here comes from the init"),
                    point=point, role="control")
    _check_relu_derivative(opts, ctx)


def _a7_finding(relu: np.ndarray, others: dict, label: str, seed: int, note: str = "") -> Finding:
    band = math.log(BAND)
    lo, hi = bootstrap_ci(relu, seed=seed)
    kept = equivalence(float(np.median(relu)), lo, hi, target=0.0, tolerance=band, n=relu.size, method="bootstrap",
                       label=f"{label}: log per-layer gradient factor",
                       note=f"factor {math.exp(np.median(relu)):.3g}, kept within 1/{BAND}..{BAND}")
    larger = [finding(relu - v, seed=seed, label=f"log factor {label} - {n} at Glorot's",
                      note=f"{n} factor {math.exp(np.median(v)):.3g}") for n, v in others.items()]
    return all_of([kept, *larger], note=note)


def _check_relu_derivative(opts, ctx: RunContext) -> None:
    """relu' in {0, 1} on N(0, 1) draws, and dL/dz = [z > 0] dL/dh through a relu net at init."""
    from dlbench.nn.activations import ACTIVATIONS

    relu = ACTIVATIONS["relu"]
    z = ctx.rng("A7 check").standard_normal(1 << 16)
    d = m.derivative(relu, z)
    err = float(np.max(np.minimum(np.abs(d), np.abs(d - 1))))
    n = z.size
    W = opts.width
    net = m.net((W,) * 11 + (W,), "relu", init="kaiming_normal", bias_init="zeros", dtype=np.float64)
    params = net.init(ctx.seed_list)
    x = ctx.rng("A7 check input").standard_normal((PROBE_INPUTS, W))
    out, cache = net.forward(params, x)
    _, grads = net.backward(params, cache, np.ones_like(out) / out.shape[-2], return_layer_grads=True)
    for pre, dpost, dpre in zip(cache.pre, grads.post, grads.pre):
        if dpost is None:
            continue
        err = max(err, float(np.max(np.abs(dpre - dpost * (pre > 0)))))
        n += dpre.size
    ctx.check("A7.relu-derivative", err, 0.0, claim="A7", n=n,
              what="max |relu' - {0, 1}| and |dL/dz - [z > 0] dL/dh|")


# ----------------------------------------------------------------------------- A10: dead relu layers at init

def a10_nets(width: int, quick: bool) -> int:
    lo, hi = A10_NETS
    n = int(np.clip(A10_BUDGET // (width * width), lo, hi))
    return max(100, n // 4) if quick else n


def dead_layers(opts, ctx: RunContext) -> None:
    """Monte Carlo over random zero-bias relu nets: P(layer L is all zero for an input), by width and depth,
    with independent units and with tied units (the control)."""
    from dlbench.experiments.activations import CLAIMS

    widths = A10_WIDTHS_QUICK if ctx.quick else A10_WIDTHS
    depths = sorted({*A10_DEPTHS, *(p["depth"] for p in CLAIMS["A10-width"].points(ctx.quick))})
    L = max(depths)
    runs = {}
    for tied in (False, True):
        rng = ctx.rng("A10", tied)
        for w in widths:
            R = a10_nets(w, ctx.quick)
            dead = m.dead_relu_monte_carlo(w, L, R, A10_INPUTS, rng, tied=tied)
            for depth in depths:
                p = float(dead[depth - 1].mean())
                runs[tied, w, depth] = wilson(p * R, R)
                case = {"units": "tied" if tied else "independent", "width": w, "depth": depth, "nets": R}
                rec = ctx.record.metric
                rec("p_dead", p, case=case, section="a10.dead_layers")
                rec("p_low", runs[tied, w, depth].low, case=case, section="a10.dead_layers")
                rec("p_high", runs[tied, w, depth].high, case=case, section="a10.dead_layers")
                analytic = m.dead_layer_analytic(w, depth) if not tied else -math.expm1(depth * math.log(0.5))
                rec("analytic", float(analytic), case=case, section="a10.dead_layers")
    fits = {}
    for depth in depths:
        fit = m.fit_width_trend(widths, [runs[False, w, depth].p for w in widths],
                                [runs[False, w, depth].p * A10_INPUTS * runs[False, w, depth].n for w in widths])
        fits[depth] = fit
        case = {"depth": depth}
        ctx.record.metric("p_per_unit", fit.p, case=case, section="a10.width_fit")
        ctx.record.metric("rms_log_residual_p_power_m", fit.rms_power, case=case, section="a10.width_fit")
        ctx.record.metric("rms_log_residual_inverse_m", fit.rms_inverse, case=case, section="a10.width_fit")
    w0, w1 = widths[0], widths[-1]
    for point in CLAIMS["A10-width"].points(ctx.quick):
        depth = point["depth"]
        fit = fits[depth]
        note = (f"analytic {m.dead_layer_analytic(w0, depth) - m.dead_layer_analytic(w1, depth):.3g}; over widths "
                f"with dead layers ({fit.points}): P ~ p^M with p = {fit.p:.3g} (RMS log residual "
                f"{fit.rms_power:.2g}) against P ~ 1/M (RMS {fit.rms_inverse:.2g}): {fit.better} fits, "
                f"the notes' 'inversely proportional' {'does not' if fit.better == 'p^M' else 'may'} hold")
        for tied, role in ((False, "claim"), (True, "control")):
            a, b = runs[tied, w0, depth], runs[tied, w1, depth]
            d, lo, hi = newcombe_difference(a, b)
            units = "tied units: " if tied else ""
            ctx.finding("A10-width", from_interval(d, lo, hi, n=int(a.n + b.n), method="Newcombe",
                                                   label=f"{units}P(layer {depth} dead) at width {w0} - at {w1}",
                                                   note="" if tied else note), point=point, role=role)
    top = max(depths)
    for point in CLAIMS["A10-depth"].points(ctx.quick):
        w = point["width"]
        for tied, role in ((False, "claim"), (True, "control")):
            a, b = runs[tied, w, top], runs[tied, w, 1]
            d, lo, hi = newcombe_difference(a, b)
            analytic = m.dead_layer_analytic(w, top) - m.dead_layer_analytic(w, 1) if not tied else 0.5 - 0.5**top
            units = "tied units: " if tied else ""
            ctx.finding("A10-depth", from_interval(
                d, lo, hi, n=int(a.n), method="Newcombe", direction="less",
                label=f"{units}P(layer {top} dead) - P(layer 1 dead) at width {w}",
                note=f"analytic {analytic:.3g}" + ("" if tied else "; Lu et al. 2019: born dead as the depth "
                                                                   "grows")), point=point, role=role)


# ----------------------------------------------------------------------------- A14: the span of one hidden layer

def span(opts, ctx: RunContext) -> None:
    """Relative error of one hidden layer's best fit against width, per activation and target."""
    from dlbench.experiments.activations import CLAIMS

    points = CLAIMS["A14"].points(ctx.quick)
    acts = list(dict.fromkeys([*(p["activation"] for p in points), "identity"]))
    targets = list(dict.fromkeys(p["target"] for p in points))
    errors = {}
    for name in acts:
        act = m.activation(name)
        for target in targets:
            e = np.stack([m.span_errors(act, target, SPAN_WIDTHS, ctx.rng("A14", target, seed))
                          for seed in ctx.seed_list])                    # (seeds, widths)
            errors[name, target] = e
            for j, w in enumerate(SPAN_WIDTHS):
                ctx.record.metric("relative_mse", e[:, j], case={"activation": name, "target": target, "width": w},
                                  better="lower", seeds=ctx.seed_list, section="a14.span")
    for point in points:
        name, target = point["activation"], point["target"]
        ctx.finding("A14", _span_finding(errors[name, target], name, target, ctx.seed), point=point)
        ctx.finding("A14", _span_finding(errors["identity", target], "identity", target, ctx.seed),
                    point=point, role="control")


def _span_finding(e: np.ndarray, name: str, target: str, seed: int) -> Finding:
    with np.errstate(divide="ignore"):
        log_e = np.log10(np.maximum(e, 1e-300))
    top, eight = -1, SPAN_WIDTHS.index(8)
    curve = ", ".join(f"{w}: {np.median(e[:, j]):.2g}" for j, w in enumerate(SPAN_WIDTHS))
    return all_of([
        finding(log_e[:, top], direction="less", null=SPAN_NULL, seed=seed,
                label=f"{name} on {target}: log10 relative MSE at width {SPAN_WIDTHS[top]}"),
        finding(log_e[:, eight] - log_e[:, top], null=SPAN_FALL, seed=seed,
                label=f"log10 fall from width 8 to {SPAN_WIDTHS[top]}"),
    ], note=f"median relative MSE by width {curve}")
