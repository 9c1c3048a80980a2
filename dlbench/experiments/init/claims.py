"""The init experiment's parts: each measures, records its rows, and records the findings of its claims.

Each claim is measured at every point of its nuisance grid, and its negative control through the same
code on the counterfactual that removes the claim's mechanism (see CLAIMS in the package).
"""

from __future__ import annotations

import math

import numpy as np

from dlbench.experiments.base import RunContext
from dlbench.experiments.init import measure as m
from dlbench.stats import all_of, bootstrap_ci, equivalence, finding, from_interval, power_law

BAND = 1.1                  # a per-layer std change within 10 % counts as "kept" (1.1^29 = 16x over 30 layers)
HALVING_TOLERANCE = 0.1     # I4: relu + Glorot's per-layer variance factor within 0.5 +- 0.1
VARIANCE_TOLERANCE = 0.02   # I4's check: empirical Var(xavier_uniform) within 2 % of the formula
LIMIT_TOLERANCE = 1e-3      # I4's check: the largest |w| of xavier_uniform within 0.1 % of its limit
FAN_SPAN, FAN_DEPTH = 8, 6  # I4: the non-square stack: 6 layers whose widths grow by sqrt(2) each, w to 8w
FAN_SEPARATION = math.sqrt(2) - 1  # I4: the modes' end-to-end gains differ by at least sqrt(2)x (He: 2.4x)
SYMMETRY_TOLERANCE = 1e-9   # I1's check: 1 - cos between the units of a constant-init net (float64)
GRAM_TOLERANCE = 1e-10      # I2's check: max |W^T W - I| of float64 orthogonal weights
EXPONENT_THRESHOLD = 0.25   # I2: orthogonal's time exponent must exceed uniform's by this much
DECADES = math.log10(2)     # I1, I5: a final loss at least 2x the other's counts as "trains worse"
TUNING_SEEDS = 2            # I5: seeds that choose each scheme's lr; the verdict uses the others
I1_DATA = I5_DATA = "spirals"
BATCH = 64


def geometric_widths(w: int, span: float, depth: int) -> tuple[int, ...]:
    """depth + 1 widths growing by a constant ratio span^(1/depth) per layer from w to span * w (rounded)."""
    return tuple(int(round(w * span ** (i / depth))) for i in range(depth + 1))


def _profile(ctx: RunContext, act, schemes: list, widths: tuple[int, ...], key: str) -> m.Profile:
    x = ctx.rng("profile input", widths[0]).standard_normal((m.PROFILE_BATCH, widths[0]))
    g = ctx.rng("profile readout", widths[-1]).standard_normal((m.PROFILE_BATCH, widths[-1]))
    rngs = [ctx.rng("profile weights", key, s.label, widths[0], widths[1]) for s in schemes]
    return m.std_profile([s.init for s in schemes], rngs, act, widths=widths, n_seeds=ctx.seeds, x=x, g_out=g)


# ----------------------------------------------------------------------------- the main profile

def record_profile(ctx: RunContext, p: m.Profile, case: dict, section: str, analytic: float | None) -> None:
    layers = np.arange(1, p.act.shape[-1] + 1)
    for i, seed in enumerate(ctx.seed_list):
        ctx.record.curve("act_std", p.act[i], case=case, seed=seed, steps=layers, better="none", section=section)
    for i, seed in enumerate(ctx.seed_list):
        ctx.record.curve("grad_std", p.grad[i], case=case, seed=seed, steps=layers, better="none", section=section)
    ctx.record.metric("act_ratio", p.act_ratio, case=case, seeds=ctx.seed_list, section=section)
    ctx.record.metric("grad_ratio", p.grad_ratio, case=case, seeds=ctx.seed_list, section=section)
    ctx.record.metric("analytic_ratio", math.nan if analytic is None else analytic, case=case, section=section)
    ctx.record.metric("drift_per_layer", p.drift, case=case, seeds=ctx.seed_list, better="lower", section=section)


def profiles(opts, ctx: RunContext) -> None:
    """The requested schemes and the I3 scale sweep through opts.depth square layers of opts.width."""
    from dlbench.nn.activations import get_activation

    act = get_activation(opts.activation)
    widths = (opts.width,) * (opts.depth + 1)
    schemes = m.parse_schemes(opts.schemes)
    scales = [m.scale_scheme(act, c, opts.width) for c in _scales(opts)]
    prof = _profile(ctx, act, [*schemes, *scales], widths, "main")
    base = {"activation": opts.activation, "depth": opts.depth, "width": opts.width}
    for k, s in enumerate(schemes):
        record_profile(ctx, m.Profile(prof.act[k], prof.grad[k]), {**base, "scheme": s.label}, "init.profile",
                       m.analytic_ratio(s.init, act, opts.width, opts.depth))
    for j, (c, s) in enumerate(zip(_scales(opts), scales)):
        k = len(schemes) + j
        record_profile(ctx, m.Profile(prof.act[k], prof.grad[k]), {**base, "scale": c, "scheme": s.label},
                       "i3.scale_sweep", m.analytic_ratio(s.init, act, opts.width, opts.depth))


def _scales(opts) -> list[float]:
    from dlbench.experiments.base import parse_numbers

    return sorted(set(parse_numbers(opts.scales, float, what="--scales")))


# ----------------------------------------------------------------------------- I3

def claim_i3(opts, ctx: RunContext) -> None:
    """Per-layer drift of the weaker of (x small shrinking, x large growing), at every grid point; control x1."""
    from dlbench.experiments.init import CLAIMS
    from dlbench.nn.activations import get_activation

    scales = _scales(opts)
    lo, hi = scales[0], scales[-1]
    if not lo < 1 < hi:
        ctx.not_run("I3", f"needs a scale below 1 and one above 1, --scales gave {opts.scales}")
        return
    L = opts.depth - 1
    for point in CLAIMS["I3"].points(ctx.quick):
        act = get_activation(point["activation"])
        w = point["width"]
        widths = (w,) * (opts.depth + 1)
        schemes = [m.scale_scheme(act, c, w) for c in (lo, hi, 1.0)]
        p = _profile(ctx, act, schemes, widths, "I3")
        with np.errstate(all="ignore"):
            shrink = np.exp(-np.minimum(np.log(p.act_ratio), np.log(p.grad_ratio)) / L)    # (3, seeds)
            grow = np.exp(np.maximum(np.log(p.act_ratio), np.log(p.grad_ratio)) / L)
        note = (f"x{lo:g}: act ratio {np.median(p.act_ratio[0]):.2g}, grad ratio {np.median(p.grad_ratio[0]):.2g}; "
                f"x{hi:g}: act {np.median(p.act_ratio[1]):.2g}, grad {np.median(p.grad_ratio[1]):.2g} "
                f"over {opts.depth} {act.name} layers of width {w}")
        ctx.finding("I3", finding(np.minimum(shrink[0], grow[1]), null=BAND, seed=ctx.seed, note=note,
                                  label=f"per-layer drift, the weaker of x{lo:g} shrinking and x{hi:g} growing"),
                    point=point)
        ctx.finding("I3", finding(np.minimum(shrink[2], grow[2]), null=BAND, seed=ctx.seed,
                                  label="x1 (critical): the weaker of shrinking and growing"),
                    point=point, role="control")


# ----------------------------------------------------------------------------- I4

def claim_i4(opts, ctx: RunContext) -> None:
    """Glorot for tanh, He for relu, fan_in forward and fan_out backward, at every grid point; control:
    the fan_in/fan_out contrast on equal widths, where the two modes coincide."""
    from dlbench.experiments.init import CLAIMS
    from dlbench.nn.activations import get_activation

    tanh, relu = get_activation("tanh"), get_activation("relu")
    naive = [m.parse_scheme(s) for s in ("normal:std=1", "normal:std=0.01")]
    glorot, he_in, he_out = (m.parse_scheme(s) for s in ("xavier_normal", "kaiming_normal",
                                                         "kaiming_normal:mode=fan_out"))
    for point in CLAIMS["I4"].points(ctx.quick):
        w = point["width"]
        square = (w,) * (opts.depth + 1)
        growing = geometric_widths(w, FAN_SPAN, FAN_DEPTH)
        pt = _profile(ctx, tanh, [glorot, *naive], square, "I4 tanh")
        pr = _profile(ctx, relu, [he_in, glorot, he_out], square, "I4 relu")
        pg = _profile(ctx, relu, [he_in, he_out], growing, "I4 growing")
        worst_t = np.maximum(pt.layer_drift("forward"), pt.layer_drift("backward"))       # (3, seeds)
        worst_r = np.maximum(pr.layer_drift("forward"), pr.layer_drift("backward"))
        halving = pr.layer_drift("forward")[1] ** -2.0
        lo, hi = _bootstrap(halving, ctx.seed)
        parts = [
            finding(worst_t[0], direction="less", null=BAND, seed=ctx.seed, label="tanh Glorot drift/layer"),
            finding(np.minimum(worst_t[1], worst_t[2]), null=BAND, seed=ctx.seed,
                    label="tanh N(0,1), N(0,0.01): the smaller drift/layer"),
            finding(worst_r[0], direction="less", null=BAND, seed=ctx.seed, label="relu He drift/layer"),
            equivalence(float(np.median(halving)), lo, hi, target=0.5, tolerance=HALVING_TOLERANCE,
                        n=halving.size, method="bootstrap", label="relu Glorot Var factor/layer",
                        note="analytic 1/2"),
            *_fan_parts(pg, f"widths {growing[0]}->{growing[-1]} (He: {math.sqrt(growing[-1] / growing[1]):.2f}x)",
                       ctx.seed),
        ]
        ctx.finding("I4", all_of(parts), point=point)
        # the control: the same fan_in/fan_out contrast where fan_in = fan_out
        pe = _profile(ctx, relu, [he_in, he_out], (w,) * (FAN_DEPTH + 1), "I4 equal widths")
        ctx.finding("I4", all_of(_fan_parts(pe, f"equal widths {w}", ctx.seed)), point=point, role="control")


def fan_separation(p: m.Profile) -> tuple[np.ndarray, np.ndarray]:
    """Per seed, fan_in's end-to-end gain over fan_out's, forward and backward (profiles [fan_in, fan_out]).

    forward: r_fwd(fan_in) / r_fwd(fan_out), r_fwd = std(h_L) / std(h_1); backward: r_bwd(fan_in) /
    r_bwd(fan_out), r_bwd = std(dL/dz_1) / std(dL/dz_L). On widths growing from w_1 to w_L, He et al. 2015
    §2.2 predict both to be sqrt(w_L / w_1): fan_in keeps the forward signal (r_fwd = 1) while fan_out shrinks
    it by sqrt(w_1 / w_L); fan_out keeps the backward signal (r_bwd = 1) while under fan_in it grows by
    sqrt(w_L / w_1) on its way back. On equal widths the modes coincide and both are 1.
    """
    with np.errstate(all="ignore"):
        return p.act_ratio[0] / p.act_ratio[1], p.grad_ratio[0] / p.grad_ratio[1]


def _fan_parts(p: m.Profile, where: str, seed: int) -> list:
    """fan_in's end-to-end gain above fan_out's, forward and backward, by at least FAN_SEPARATION."""
    fwd, bwd = fan_separation(p)
    return [
        finding(fwd, null=1.0, threshold=FAN_SEPARATION, seed=seed, unit="x",
                label=f"{where}: forward gain fan_in/fan_out"),
        finding(bwd, null=1.0, threshold=FAN_SEPARATION, seed=seed, unit="x",
                label=f"{where}: backward gain fan_in/fan_out"),
    ]


def _bootstrap(values: np.ndarray, seed: int) -> tuple[float, float]:
    v = np.asarray(values, dtype=float)
    return bootstrap_ci(v[np.isfinite(v)], seed=seed)


def check_xavier(opts, ctx: RunContext) -> None:
    """I4's checks: the variance and the limit of xavier_uniform on square and non-square layers."""
    n = opts.width
    shapes = [(n, n), (2 * n, n), (n, 2 * n)]
    ratios, reach, pooled, sd = m.xavier_variance(ctx.rng("xavier variance"), shapes, ctx.seeds)
    for (fi, fo), r, mx in zip(shapes, ratios, reach):
        case = {"fan_in": fi, "fan_out": fo}
        ctx.record.metric("var_over_formula", r, case=case, seeds=ctx.seed_list, section="i4.xavier_variance")
        ctx.record.metric("max_abs_over_limit", mx, case=case, seeds=ctx.seed_list, section="i4.xavier_variance")
    count = ctx.seeds * sum(a * b for a, b in shapes)
    # four sampling standard deviations or the 2 % tolerance, whichever is larger
    ctx.check("I4.xavier-variance", abs(pooled - 1.0), max(VARIANCE_TOLERANCE, 4 * sd), claim="I4", n=count,
              what="|Var(xavier_uniform) / (2/(fan_in+fan_out)) - 1| pooled over square and non-square layers")
    ctx.check("I4.xavier-limit", float(np.abs(reach - 1).max()), LIMIT_TOLERANCE, claim="I4", n=reach.size,
              what="max|w| / sqrt(6/(fan_in+fan_out)) - 1")


# ----------------------------------------------------------------------------- I1

def claim_i1(opts, ctx: RunContext) -> None:
    """Constant init against random init of the same net; control: the constant's magnitudes with random signs."""
    from dlbench.data import make_dataset
    from dlbench.experiments.init import CLAIMS
    from dlbench.nn.mlp import MLP, MLPSpec
    from dlbench.nn.optim import get_optimizer
    from dlbench.nn.train import train

    data = make_dataset(I1_DATA, seed=ctx.seed)
    seeds = ctx.seed_list
    S = len(seeds)
    gaps, ranks, full = [], [], []
    for point in CLAIMS["I1"].points(ctx.quick):
        w, lr = point["width"], point["lr"]
        net = MLP(MLPSpec((data.n_features, w, w, data.n_outputs), activation=opts.activation,
                          init=m.good_scheme(opts.activation), bias_init="zeros", dtype=np.float64))
        random = net.init(seeds)
        constant, signs = m.symmetric_twins(random)
        params = [np.concatenate(ps) for ps in zip(constant, random, signs)]
        per_epoch = data.X_train.shape[0] // BATCH
        hist = train(net, data, np.tile(seeds, 3), optimizer=get_optimizer(opts.optimizer, lr=lr),
                     epochs=-(-opts.steps // per_epoch), batch_size=BATCH, max_steps=opts.steps, params=params,
                     eval_every=0)
        loss = hist.train_loss[:, -1].reshape(3, S)
        case = {"activation": opts.activation, "width": w, "lr": lr, "steps": opts.steps}
        for j, name in enumerate(("constant", "random", "random signs")):
            ctx.record.metric("final_loss", loss[j], case={**case, "init": name}, better="lower", seeds=seeds,
                              section="i1.symmetry")
        for layer in (0, 1):
            W = hist.params[2 * layer]
            gap, rank = m.unit_symmetry(W[:S])
            gaps.append(gap.max())
            ranks.append(int(rank.max()))
            full.append(int((m.unit_symmetry(W[S:2 * S])[1] < min(W.shape[-2:])).sum()))
            ctx.record.metric("max_1_minus_cos", gap, case={**case, "init": "constant", "layer": layer + 1},
                              seeds=seeds, section="i1.symmetry")
        with np.errstate(all="ignore"):
            worse = np.log10(loss[0] / loss[1])
            control = np.log10(loss[2] / loss[1])
        ctx.finding("I1", finding(worse, threshold=DECADES, seed=ctx.seed, label="log10 final loss constant/random",
                                  note=f"median loss constant {np.median(loss[0]):.3g}, random "
                                       f"{np.median(loss[1]):.3g}"), point=point)
        ctx.finding("I1", finding(control, threshold=DECADES, seed=ctx.seed,
                                  label="log10 final loss random-signs/random"), point=point, role="control")
    n = S * len(gaps)   # replicas x (layer, grid point)
    ctx.check("I1.units-identical", float(max(gaps)), SYMMETRY_TOLERANCE, claim="I1", n=n,
              what="constant init after training: max 1-cos between the units of a layer")
    ctx.check("I1.rank-one", float(max(abs(r - 1) for r in ranks)), 0.0, claim="I1", n=n,
              what="constant init after training: |rank of a hidden weight matrix - 1|")
    ctx.check("I1.random-full-rank", float(sum(full)), 0.0, claim="I1", n=n,
              what="random init after training: hidden weight matrices below full rank")


# ----------------------------------------------------------------------------- I2

def check_orthogonal(opts, ctx: RunContext) -> None:
    """Gram errors of float64 orthogonal weights: square, wide-to-narrow (fan_in > fan_out) and narrow-to-wide."""
    from dlbench.nn.init import get_initializer

    n = opts.width
    init = get_initializer("orthogonal")
    rng = ctx.rng("orthogonality")
    found = {}
    for shape, kind in (((n, n), "square"), ((2 * n, n), "wide to narrow"), ((n, 2 * n), "narrow to wide")):
        W = init(rng, (ctx.seeds, *shape), np.float64)
        unit_err, input_err, rank = m.gram_errors(W)
        found[kind] = (unit_err, input_err, rank)
        case = {"shape": kind, "fan_in": shape[0], "fan_out": shape[1]}
        for metric, v in (("units_gram_err", unit_err), ("inputs_gram_err", input_err), ("units_gram_rank", rank)):
            ctx.record.metric(metric, v, case=case, seeds=ctx.seed_list, section="i2.orthogonal")
    tall = max(float(found[k][0].max()) for k in ("square", "wide to narrow"))
    wide_err, wide_rows, wide_rank = found["narrow to wide"]
    checks = ctx.seeds * 2
    ctx.check("I2.orthonormal-units", tall, GRAM_TOLERANCE, claim="I2", n=checks,
              what="fan_out <= fan_in: max |W^T W - I|")
    ctx.check("I2.wide-rank", float(np.abs(wide_rank - n).max()), 0.0, claim="I2", n=ctx.seeds,
              what=f"fan_out > fan_in ({n}->{2 * n}): |rank W^T W - fan_in| (median max |W^T W - I| "
                   f"{np.median(wide_err):.2f}, max |W W^T - I| {wide_rows.max():.1e})")


def claim_i2(opts, ctx: RunContext) -> None:
    """Generation time of n x n float32 matrices over each size range of the grid, in each implementation of
    the run (dlbench's initializers; torch.nn.init's when torch imports), every scheme and implementation of
    one size timed interleaved: orthogonal's exponent against uniform's; control: normal's against uniform's
    (both draw n^2 numbers)."""
    from dlbench import peer
    from dlbench.experiments.base import parse_numbers
    from dlbench.experiments.init import CLAIMS
    from dlbench.nn.init import get_initializer
    from dlbench.nn.parallel import current_threads

    schemes = {name: get_initializer(name) for name in ("uniform", "normal", "orthogonal")}
    schemes.update({t.label: t.init for t in m.parse_schemes(opts.time_schemes)})
    points = CLAIMS["I2"].points(ctx.quick)
    impls = list(dict.fromkeys(p["implementation"] for p in points))
    sizes = sorted({n for p in points for n in parse_numbers(p["sizes"], int, what="sizes")})
    seed = int(ctx.rng("generation timing").integers(2**31))
    times: dict = {}
    for n in sizes:  # sizes outside, schemes and implementations inside: a slow spell hits them all alike
        shape = np.empty((n, n), np.float32)   # only its shape and dtype are read
        calls = [({"scheme": label, "n": n, "implementation": impl},
                  peer.kernel("init", init.name, shape, impl=impl, seed=seed, **dict(init.hyper)))
                 for impl in impls for label, init in schemes.items()]
        calls = [(case, fn) for case, fn in calls if fn is not None]
        with peer.threads(current_threads()):
            ts = ctx.time_interleaved("generate", calls, items=[n * n] * len(calls), bytes=[4 * n * n] * len(calls),
                                      section="i2.generation_time")
        times.update({(c["implementation"], c["scheme"], n): t.samples for (c, _), t in zip(calls, ts)})
    for impl, name in dict.fromkeys((i, s) for i, s, _ in times):
        k, lo, hi, _ = power_law(sizes, [times[impl, name, n] for n in sizes], seed=ctx.seed)
        ctx.record.metric("exponent", k, case={"scheme": name, "implementation": impl,
                                               "n": f"{sizes[0]}-{sizes[-1]}"}, section="i2.exponent")
    for point in points:
        ns, impl = parse_numbers(point["sizes"], int, what="sizes"), point["implementation"]

        def diff(a: str, b: str, label: str):
            ka, _, _, ba = power_law(ns, [times[impl, a, n] for n in ns], seed=ctx.seed)
            kb, _, _, bb = power_law(ns, [times[impl, b, n] for n in ns], seed=ctx.seed + 1)
            lo, hi = (float(v) for v in np.percentile(ba - bb, [2.5, 97.5]))
            return from_interval(ka - kb, lo, hi, n=min(len(times[impl, a, x]) for x in ns), method="bootstrap",
                                 threshold=EXPONENT_THRESHOLD, label=f"{label}, {peer.label(impl)}",
                                 note=f"time ~ n^{ka:.2f} vs n^{kb:.2f} over n = {ns[0]}..{ns[-1]}")

        ctx.finding("I2", diff("orthogonal", "uniform", "exponent orthogonal - uniform"), point=point, timing=True)
        ctx.finding("I2", diff("normal", "uniform", "exponent normal - uniform"), point=point, role="control",
                    timing=True)


# ----------------------------------------------------------------------------- I5

def claim_i5(opts, ctx: RunContext) -> None:
    """A deep relu net from He's init against x0.5 and x2 of it, each at its best lr; control: a 2-layer net."""
    from dlbench.experiments.init import CLAIMS

    points = CLAIMS["I5"].points(ctx.quick)
    budgets = sorted({p["steps"] for p in points})
    for optimizer in dict.fromkeys(p["optimizer"] for p in points):
        deep = _train_schemes(opts, ctx, opts.train_depth, optimizer, budgets)
        shallow = _train_schemes(opts, ctx, 2, optimizer, budgets)
        for point in (p for p in points if p["optimizer"] == optimizer):
            steps = point["steps"]
            claim, good_loss = _i5_finding(deep, steps, opts.train_depth, ctx.seed)
            chance = math.log(2)
            if not good_loss < chance / 2:
                ctx.not_run("I5", f"He's init did not train in {steps} steps with {optimizer} (median final loss "
                            f"{good_loss:.3g}, chance {chance:.3g}): nothing for a bad init to fall short of",
                            point=point)
            else:
                ctx.finding("I5", claim, point=point)
            ctx.finding("I5", _i5_finding(shallow, steps, 2, ctx.seed)[0], point=point, role="control")


def _train_schemes(opts, ctx: RunContext, depth: int, optimizer: str, budgets: list[int]) -> dict:
    """He's init and x0.5, x2 of it, every lr of the grid, tuning and verdict seeds: one training call."""
    from dlbench.data import make_dataset
    from dlbench.experiments.base import parse_numbers
    from dlbench.nn.mlp import MLP, MLPSpec
    from dlbench.nn.optim import get_optimizer
    from dlbench.nn.train import train

    data = make_dataset(I5_DATA, seed=ctx.seed)
    lrs = parse_numbers(opts.lrs, float, what="--lrs")
    w = opts.train_width
    scales = {"He": 1.0, "x0.5 He": 0.5, "x2 He": 2.0}   # every layer's He weights times this
    tuning = [int(s) for s in ctx.rng("I5 tuning seeds").integers(2**31, size=TUNING_SEEDS)]
    seeds = [*tuning, *ctx.seed_list]
    net = MLP(MLPSpec((data.n_features, *(w,) * depth, data.n_outputs), activation="relu", init="kaiming_normal",
                      bias_init="zeros"))
    he = net.init(seeds)
    params = [np.concatenate([p * (c if i % 2 == 0 else 1) for c in scales.values() for _ in lrs])
              for i, p in enumerate(he)]
    schemes = scales
    K, L, N = len(schemes), len(lrs), len(seeds)
    lr = np.tile(np.repeat(np.asarray(lrs, np.float32), N), K).reshape(-1, 1, 1)
    per_epoch = data.X_train.shape[0] // BATCH
    steps = max(budgets)
    hist = train(net, data, np.tile(seeds, K * L), optimizer=get_optimizer(optimizer, lr=lr),
                 epochs=-(-steps // per_epoch), batch_size=BATCH, max_steps=steps, params=params,
                 eval_every=0, eval_steps=budgets)
    chance = math.log(data.n_classes)
    loss = hist.train_loss.reshape(K, L, N, -1)
    failed = hist.diverged.reshape(K, L, N, 1) | ~np.isfinite(loss)
    # a run that diverged counts as the chance loss: no better than guessing
    loss = np.where(failed, chance, np.minimum(loss, chance))
    case = {"depth": depth, "width": w, "optimizer": optimizer}
    for k, label in enumerate(schemes):
        for j, rate in enumerate(lrs):
            ctx.record.metric("final_loss", loss[k, j, TUNING_SEEDS:, -1], better="lower", seeds=ctx.seed_list,
                              case={**case, "scheme": label, "lr": rate}, section="i5.training")
    return {"schemes": list(schemes), "lrs": lrs, "loss": loss, "eval_step": hist.eval_step}


def _i5_finding(run: dict, steps: int, depth: int, seed: int):
    """Each scheme at its best lr (lowest median loss over the tuning seeds at `steps`); per verdict seed the
    smaller of log10(loss x0.5 / loss He) and log10(loss x2 / loss He)."""
    at = int(np.searchsorted(run["eval_step"], steps, side="right")) - 1
    loss = run["loss"][..., at]                                # (schemes, lrs, seeds)
    best = np.argmin(np.median(loss[:, :, :TUNING_SEEDS], axis=2), axis=1)
    chosen = np.stack([loss[k, best[k], TUNING_SEEDS:] for k in range(loss.shape[0])])
    with np.errstate(all="ignore"):
        worse = np.minimum(np.log10(chosen[1] / chosen[0]), np.log10(chosen[2] / chosen[0]))
    lrs = ", ".join(f"{s} {run['lrs'][b]:g}" for s, b in zip(run["schemes"], best))
    note = (f"depth {depth}, {int(run['eval_step'][at])} steps; median final loss " +
            ", ".join(f"{s} {np.median(c):.3g}" for s, c in zip(run["schemes"], chosen)) + f"; best lr {lrs}")
    f = finding(worse, threshold=DECADES, seed=seed, label="log10 final loss bad/He, the smaller of x0.5 and x2",
                note=note)
    return f, float(np.median(chosen[0]))
