"""The depth experiment's parts: each measures, records its rows, and records the findings of its claims.

Each claim is measured at every point of its nuisance grid, and its negative control through the same code
on the counterfactual that removes the claim's mechanism (see CLAIMS in the package). Nets trained for a
claim are each at their own learning rate, the one of --lrs with the lowest median error over separate
tuning seeds; the verdict uses the other seeds.
"""

from __future__ import annotations

import math

import numpy as np

from dlbench.experiments.base import RunContext, parse_numbers
from dlbench.experiments.depth import measure as m
from dlbench.stats import all_of, finding

TUNING_SEEDS = 2            # seeds that choose each net's lr; the verdict uses the others
N_TRAIN = 1024              # sawtooth training samples, x ~ U(0, 1)
DECADES = math.log10(2)     # a net "beats" another with at most half its error (0.3 decades)
MARGIN = math.log10(1.1)    # ... and is beaten only when its error is more than 10 % above the other's
ERROR_FLOOR = 1e-3          # FVU below this counts as a fit: log ratios of two fits are 0, not noise
EXACT_TOLERANCE = 1e-9      # the hand-built nets' exact population error (FVU, float64)
D2_WIDTHS = (1, 2, 4, 8, 16, 32, 64, 128)
D2_MAX_K = 3                # D2 sweeps k = 1 .. min(--k, 3): beyond, no width here trains to the error
D3_WIDTH_FACTOR = 8         # D3's "very wide" shallow net: 8 x 2^k units, 8x what an exact fit needs


def _lrs(opts) -> list[float]:
    return parse_numbers(opts.lrs, float, what="--lrs")


def _seeds(ctx: RunContext, purpose: str) -> list[int]:
    tuning = [int(s) for s in ctx.rng(purpose, "tuning seeds").integers(2**31, size=TUNING_SEEDS)]
    return [*tuning, *ctx.seed_list]


def _log_ratio(a, b) -> np.ndarray:
    """log10(a / b) with both clipped below at ERROR_FLOOR."""
    return np.log10(np.maximum(a, ERROR_FLOOR) / np.maximum(b, ERROR_FLOOR))


def _beats(effect: np.ndarray, *, seed: int, label: str, note: str = ""):
    """The finding that one net beats another, from per-seed log10(error other / error this): supported
    when the median is at least DECADES with the interval above -MARGIN, refuted when the interval lies
    below -MARGIN (this net's error confidently more than 10 % above the other's)."""
    return finding(effect, null=-MARGIN, threshold=DECADES + MARGIN, seed=seed, label=label, note=note)


def _fmt(v: float) -> str:
    return f"{v:.3g}"


# ----------------------------------------------------------------------------- exact constructions

def checks(opts, ctx: RunContext) -> None:
    """The exact constructions and counts the claims stand beside."""
    from dlbench.experiments.depth.relu_exact import count_pieces, relu_forward, tent_net

    k = opts.k
    section = "depth.construction"
    # Telgarsky's width-2 depth-k net on dyadic inputs, where both sides are exact in float64
    x = (np.arange(2 ** (k + 4) + 1) / 2 ** (k + 4))[:, None]
    deep = tent_net(k)
    err = float(np.abs(relu_forward(deep, x)[0] - m.tent_map(x, k)).max())
    n_params = sum(p[0].size for p in deep)
    pieces = int(count_pieces(deep, 0.0, 1.0)[0])
    fvu = float(m.sawtooth_fvu(m.standardised_tent_net(k), k)[0])
    ctx.check("D1.construction", max(err, fvu, abs(pieces - 2**k), abs(n_params - (6 * k + 1))), EXACT_TOLERANCE,
              claim="D1", n=x.shape[0],
              what=f"width-2 depth-{k} net vs t^{k}: max |error| {err:.1e}, exact FVU {fvu:.1e}, {pieces} pieces "
                   f"(2^k = {2**k}), {n_params} params (6k+1 = {6 * k + 1}); the largest of them")
    teeth = m.count_teeth(k)
    ctx.check("D1.teeth", abs(teeth - 2 ** (k - 1)), 0.0, claim="D1",
              what=f"t^{k} has {teeth} teeth (2^(k-1) = {2 ** (k - 1)}; the notes say 2^k = {2**k}): |teeth - 2^(k-1)|")
    case = {"k": k}
    ctx.record.metric("params", n_params, case={**case, "net": "deep construction"}, section=section)
    ctx.record.metric("pieces", pieces, case={**case, "net": "deep construction"}, section=section)
    ctx.record.metric("fvu", fvu, case={**case, "net": "deep construction"}, better="lower", section=section)
    ctx.record.metric("teeth", teeth, case=case, section=section)
    # the narrowest exact one-hidden-layer fit, and the bound that forbids two units fewer
    worst = 0.0
    for kk in range(1, max(k, D2_MAX_K) + 1):
        exact = float(m.sawtooth_fvu(m.standardised_shallow_net(kk, 2**kk), kk)[0])
        short = m.shallow_bound(2**kk - 2, kk)
        worst = max(worst, exact, 0.0 if short > 0 else 1.0)
        ctx.record.metric("fvu", exact, case={"k": kk, "net": f"shallow {2**kk} units"}, better="lower",
                          section=section)
        ctx.record.metric("shallow_bound", short, case={"k": kk, "net": f"shallow {2**kk - 2} units"},
                          section=section)
    ctx.check("D2.exact-width", worst, EXACT_TOLERANCE, claim="D2", n=max(k, D2_MAX_K),
              what="for k = 1..K, the exact FVU of one hidden layer of 2^k units fitting t^k, or 1 where the bound "
                   "for 2^k - 2 units is not positive: the largest")


# ----------------------------------------------------------------------------- D1

def _d1_premise(budget: int, k: int) -> str:
    """Why D1 is not judged at `budget` (empty when it is): no shallow net of the budget can fit t^k exactly,
    while the deep construction (6k + 1 parameters) fits in it."""
    w = m.widths_for_budget(budget, 1, 1, 1)[0]
    if w >= 2**k - 1:
        return (f"at budget {budget} the shallow net has {w} units, enough for an exact fit of t^{k} "
                f"(2^k - 1 = {2**k - 1}): depth has nothing to beat")
    if budget < 6 * k + 1:
        return f"budget {budget} is below the deep construction's {6 * k + 1} parameters"
    return ""


def claim_d1(opts, ctx: RunContext) -> None:
    """Shallow against deep nets of equal budget on t^k, each at its own lr; control: identity activation."""
    from dlbench.experiments.depth import CLAIMS

    k, points = opts.k, CLAIMS["D1"].points(ctx.quick)
    budgets = sorted({p["budget"] for p in points if not _d1_premise(p["budget"], k)})
    depths = sorted({p["depth"] for p in points})
    checkpoints = sorted({p["steps"] for p in points})
    seeds, lrs = _seeds(ctx, "D1"), _lrs(opts)
    data = m.sawtooth_inputs(N_TRAIN, ctx.rng("D1 sawtooth"))
    runs: dict = {}
    if budgets:
        for act in ("relu", "identity"):
            for d in [1, *depths]:
                nets = [(m.widths_for_budget(b, d, 1, 1), k) for b in budgets]
                runs[act, d] = m.train_sawtooth(nets, data, lrs, seeds, checkpoints, activation=act,
                                                optimizer=opts.optimizer, batch_size=opts.batch_size)
    lowest = np.inf
    for act in ("relu", "identity"):
        for d in [1, *depths] if budgets else []:
            r = runs[act, d]
            for c, b in enumerate(budgets):
                for t, steps in enumerate(checkpoints):
                    j, err = m.at_best_lr(r.errors[c, :, :, t], TUNING_SEEDS)
                    case = {"activation": act, "depth": d, "budget": b, "steps": steps,
                            "params": m.mlp_param_count(r.width_sets[c], 1, 1)}
                    ctx.record.metric("fvu", err, case=case, better="lower", seeds=ctx.seed_list, section="d1.errors")
                    ctx.record.metric("lr", lrs[j], case=case, section="d1.errors")
                    ctx.record.metric("born_dead", r.redrawn[c, TUNING_SEEDS:].sum(), case=case, section="d1.errors")
                    if d == 1:
                        ctx.record.metric("shallow_bound", m.shallow_bound(r.width_sets[c][0], k), case=case,
                                          section="d1.errors")
                        if act == "relu":
                            bound = m.shallow_bound(r.width_sets[c][0], k)
                            lowest = min(lowest, float(np.nanmin(r.errors[c]) - bound))
    if budgets:
        n = int(np.isfinite(runs["relu", 1].errors).sum())
        ctx.check("D1.shallow-bound", max(0.0, -lowest), EXACT_TOLERANCE, claim="D1", n=n,
                  what="every trained shallow net's exact FVU is at least the analytic bound: the largest shortfall")
    for point in points:
        why = _d1_premise(point["budget"], k)
        if why:
            ctx.not_run("D1", why, point=point)
            continue
        c, t = budgets.index(point["budget"]), checkpoints.index(point["steps"])
        for act, role in (("relu", "claim"), ("identity", "control")):
            f = _d1_finding(runs[act, 1], runs[act, point["depth"]], c, t, k, lrs, ctx.seed, act)
            ctx.finding("D1", f, point=point, role=role)


def _d1_finding(shallow: m.Runs, deep: m.Runs, c: int, t: int, k: int, lrs, seed: int, act: str):
    js, es = m.at_best_lr(shallow.errors[c, :, :, t], TUNING_SEEDS)
    jd, ed = m.at_best_lr(deep.errors[c, :, :, t], TUNING_SEEDS)
    ws, wd = shallow.width_sets[c], deep.width_sets[c]
    dead = int(deep.redrawn[c, TUNING_SEEDS:].sum())
    note = (f"{act}: shallow {ws[0]} units median FVU {_fmt(np.median(es))} (best {_fmt(es.min())}, lr {lrs[js]:g}; "
            f"no shallow net of the budget below {_fmt(m.shallow_bound(ws[0], k))}), depth {len(wd)} widths "
            f"{','.join(map(str, wd))} median {_fmt(np.median(ed))} (best {_fmt(ed.min())}, lr {lrs[jd]:g}); "
            f"deep construction 0 with {6 * k + 1} params")
    if dead:
        note += f"; {dead} of {ed.size} deep inits born dead and drawn again"
    return _beats(_log_ratio(es, ed), seed=seed, label="log10 FVU shallow/deep", note=note)


# ----------------------------------------------------------------------------- D2

def claim_d2(opts, ctx: RunContext) -> None:
    """Width a shallow net needs to reach --target-error on t^k, k = 1..K; control: t^1 in every slot."""
    from dlbench.experiments.depth import CLAIMS

    K = min(opts.k, D2_MAX_K)
    points = CLAIMS["D2"].points(ctx.quick)
    checkpoints = sorted({p["steps"] for p in points})
    slots = [(role, slot) for role in ("claim", "control") for slot in range(1, K + 1)]
    targets = {(role, slot): slot if role == "claim" else 1 for role, slot in slots}
    seeds = {key: _seeds(ctx, f"D2 {key[0]} k={key[1]}") for key in slots}
    data = m.sawtooth_inputs(N_TRAIN, ctx.rng("D2 sawtooth"))
    need = _climb(data, targets, seeds, checkpoints, _lrs(opts), opts, ctx.seeds)
    for point in points:
        t = checkpoints.index(point["steps"])
        for role in ("claim", "control"):
            per_k = np.stack([need[role, slot][t] for slot in range(1, K + 1)])
            for i in range(K):
                case = {"role": role, "k": targets[role, i + 1], "slot": i + 1, "steps": point["steps"]}
                ctx.record.metric("width_needed", per_k[i], case=case, better="lower", seeds=ctx.seed_list,
                                  section="d2.width")
                if role == "claim":
                    ctx.record.metric("width_bound", m.width_lower_bound(i + 1, opts.target_error), case=case,
                                      section="d2.width")
                    ctx.record.metric("deep_construction_params", 6 * (i + 1) + 1, case=case, section="d2.width")
            ctx.finding("D2", _d2_finding(per_k, ctx.seed, opts.target_error, role), point=point, role=role)


def d2_ladder(k: int) -> list[tuple[int, ...]]:
    """D2's widths for slot k in the rungs it climbs: 1, 2, 4, ... units up to 16 x 2^k (at most the last of
    D2_WIDTHS). The bottom is the same for every k, so an easy target cannot make a slope out of the ladder."""
    widths = [w for w in D2_WIDTHS if w <= 16 * 2**k]
    return [tuple(w for w in widths if w <= 8)] + [(w,) for w in widths if w > 8]


def _climb(data, targets: dict, seeds: dict, checkpoints, lrs, opts, n_seeds: int) -> dict:
    """Per slot, the smallest width of its ladder whose net, at its best lr, reaches --target-error, per
    checkpoint and verdict seed (NaN: none did). Every slot still climbing trains its next rung in one call;
    a slot stops once every seed has reached the error at every checkpoint, so the answer is the one its
    whole ladder gives."""
    need = {key: np.full((len(checkpoints), n_seeds), np.nan) for key in targets}
    climbing = {key: d2_ladder(key[1]) for key in targets}
    rung = 0
    while any(rung < len(ladder) for ladder in climbing.values()):
        keys = [key for key, ladder in climbing.items() if rung < len(ladder)]
        nets = [((w,), targets[key]) for key in keys for w in climbing[key][rung]]
        owners = [key for key in keys for _ in climbing[key][rung]]
        r = m.train_sawtooth(nets, data, lrs, np.stack([seeds[key] for key in owners]), checkpoints,
                             tuning=TUNING_SEEDS, optimizer=opts.optimizer, batch_size=opts.batch_size)
        for t in range(len(checkpoints)):
            best = m.best_lr(r.errors[:, :, :, t], TUNING_SEEDS)
            for c, (key, ((w,), _)) in enumerate(zip(owners, nets)):
                reached = r.errors[c, best[c], TUNING_SEEDS:, t] <= opts.target_error
                need[key][t] = np.where(np.isnan(need[key][t]) & reached, w, need[key][t])
        for key in keys:
            if not np.isnan(need[key]).any():
                climbing[key] = []
        rung += 1
    return need


def _d2_finding(need: np.ndarray, seed: int, target: float, role: str):
    """Per seed, the slope of log2(width needed) against k; a seed censored at some k has no slope."""
    K = need.shape[0]
    kc = np.arange(1, K + 1) - (K + 1) / 2
    with np.errstate(invalid="ignore"):
        slopes = (kc @ np.log2(need)) / (kc @ kc)
    censored = [f"k={i + 1}: {int(np.isnan(need[i]).sum())}" for i in range(K) if np.isnan(need[i]).any()]
    med = [f"{np.nanmedian(need[i]):.0f}" if np.isfinite(need[i]).any() else "censored" for i in range(K)]
    what = "t^k" if role == "claim" else "t^1 in every slot"
    note = f"{what}: median width needed for FVU {target:g} at k=1..{K}: {', '.join(med)}"
    if censored:
        note += (f"; censored (no width of the ladder reached it, so that seed has no slope): "
                 f"{', '.join(censored)} seeds")
    return finding(slopes, threshold=0.5, seed=seed, label="slope of log2 width needed per k", note=note)


# ----------------------------------------------------------------------------- D3

def d3_nets(k: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """D3's very wide shallow net (D3_WIDTH_FACTOR x 2^k units) and the depth-k net of about half its parameters."""
    wide = (D3_WIDTH_FACTOR * 2**k,)
    deep = m.widths_for_budget(m.mlp_param_count(wide, 1, 1) // 2, k, 1, 1)
    return wide, deep


def claim_d3(opts, ctx: RunContext) -> None:
    """The very wide shallow net against its hand-built twin and against a deep net of half its parameters;
    control: the same nets on t^1."""
    from dlbench.experiments.depth import CLAIMS

    points = CLAIMS["D3"].points(ctx.quick)
    checkpoints = sorted({p["steps"] for p in points})
    lrs = _lrs(opts)
    data = m.sawtooth_inputs(N_TRAIN, ctx.rng("D3 sawtooth"))
    ks = sorted({p["k"] for p in points})
    roles = {"claim": None, "control": 1}
    seeds = {(role, k): _seeds(ctx, f"D3 {role} k={k}") for role in roles for k in ks}
    keys = list(seeds)

    def target(key):
        return key[1] if key[0] == "claim" else 1

    # the wide nets' cost is their activations: the tuning seeds choose each net's lr before the others train
    wide = m.train_sawtooth([(d3_nets(k)[0], target((role, k))) for role, k in keys], data, lrs,
                            np.stack([seeds[key] for key in keys]), checkpoints, tuning=TUNING_SEEDS,
                            optimizer=opts.optimizer, batch_size=opts.batch_size)
    deep = {}
    for k in ks:
        mine = [key for key in keys if key[1] == k]
        deep[k] = m.train_sawtooth([(d3_nets(k)[1], target(key)) for key in mine], data, lrs,
                                   np.stack([seeds[key] for key in mine]), checkpoints, optimizer=opts.optimizer,
                                   batch_size=opts.batch_size)
    worst = max(float(m.sawtooth_fvu(m.standardised_shallow_net(k, d3_nets(k)[0][0]), k)[0]) for k in ks)
    ctx.check("D3.hand-built", worst, EXACT_TOLERANCE, claim="D3",
              what="a one-hidden-layer net of D3's width built by hand fits t^k exactly: its exact FVU")
    for point in points:
        k, t = point["k"], checkpoints.index(point["steps"])
        wide_w, deep_w = d3_nets(k)
        for role in roles:
            key = (role, k)
            jw, ew = m.at_best_lr(wide.errors[keys.index(key), :, :, t], TUNING_SEEDS)
            jd, ed = m.at_best_lr(deep[k].errors[[x for x in keys if x[1] == k].index(key), :, :, t], TUNING_SEEDS)
            for net, widths, err, j in (("wide shallow", wide_w, ew, jw), ("deep", deep_w, ed, jd)):
                case = {"role": role, "k": k, "target_k": target(key), "steps": point["steps"], "net": net,
                        "params": m.mlp_param_count(widths, 1, 1)}
                ctx.record.metric("fvu", err, case=case, better="lower", seeds=ctx.seed_list, section="d3.errors")
                ctx.record.metric("lr", lrs[j], case=case, section="d3.errors")
            gap = finding(ew, null=opts.target_error, seed=ctx.seed, label=f"wide net's FVU on t^{target(key)}",
                          note=f"{wide_w[0]} units, lr {lrs[jw]:g}; a hand-built net of that width: 0")
            note = (f"depth {len(deep_w)} widths {','.join(map(str, deep_w))} ({m.mlp_param_count(deep_w, 1, 1)} vs "
                    f"{m.mlp_param_count(wide_w, 1, 1)} params, lr {lrs[jd]:g}) median FVU {_fmt(np.median(ed))}, "
                    f"wide {_fmt(np.median(ew))}")
            better = _beats(_log_ratio(ew, ed), seed=ctx.seed, label="log10 FVU wide/deep", note=note)
            ctx.finding("D3", all_of([gap, better]), point=point, role=role)


# ----------------------------------------------------------------------------- D4

D4_WIDTH = 16               # hidden width of D4's nets
D4_MARGIN = 0.01            # D4: "better than least squares" only by more than 1 % of its error
D4_INPUTS = 8               # the teacher's inputs


def claim_d4(opts, ctx: RunContext) -> None:
    """Deep linear nets trained on a relu teacher against least squares; control: relu nets of the same shape.
    The collapse of a linear net into one matrix is a check."""
    from dlbench.data import make_dataset
    from dlbench.experiments.depth import CLAIMS
    from dlbench.experiments.depth.relu_exact import collapse_linear
    from dlbench.experiments.teacher import relu_teacher
    from dlbench.nn.mlp import MLP, MLPSpec
    from dlbench.nn.optim import get_optimizer
    from dlbench.nn.train import train

    points = CLAIMS["D4"].points(ctx.quick)
    budgets = sorted({p["steps"] for p in points})
    teacher_seed = int(ctx.rng("D4 teacher").integers(2**31))
    data = make_dataset("teacher", seed=teacher_seed, dim=D4_INPUTS, net=relu_teacher(D4_INPUTS, seed=teacher_seed))
    ls = m.least_squares_error(data)
    seeds, lrs = _seeds(ctx, "D4"), _lrs(opts)
    L, S = len(lrs), len(seeds)
    variance = float(data.y_test.astype(np.float64).var())
    n_train = data.X_train.shape[0]
    batch = min(opts.batch_size, n_train)
    gap, checked = 0.0, 0
    errors: dict = {}
    for depth in sorted({p["depth"] for p in points}):
        for act in ("identity", "relu"):
            model = MLP(MLPSpec((D4_INPUTS, *(D4_WIDTH,) * depth, 1), activation=act, init="kaiming_normal"))
            params = [np.concatenate([p] * L) for p in model.init(seeds)]
            lr = np.repeat(np.asarray(lrs, dtype=np.float32), S).reshape(-1, 1, 1)
            hist = train(model, data, np.tile(seeds, L), optimizer=get_optimizer(opts.optimizer, lr=lr),
                         epochs=-(-budgets[-1] // (n_train // batch)), batch_size=batch, max_steps=budgets[-1],
                         params=params, eval_every=0, eval_steps=budgets)
            for steps in budgets:
                at = int(np.searchsorted(hist.eval_step, steps, side="right")) - 1
                err = (hist.test_loss[:, at] / variance).reshape(L, S)
                err = np.where(np.isfinite(err), err, np.inf)     # a diverged run is as bad as can be
                errors[depth, act, steps] = m.at_best_lr(err, TUNING_SEEDS) + (err,)
            if act == "identity":
                p64 = [p.astype(np.float64) for p in hist.params]
                net64 = MLP(MLPSpec(model.widths, activation="identity", dtype=np.float64))
                Xt = data.X_test.astype(np.float64)
                out, _ = net64.forward(p64, Xt, train=False)
                W, b = collapse_linear(p64)
                scale = max(float(np.abs(out).max()), 1e-300)
                gap = max(gap, float(np.abs(out - (Xt @ W + b)).max()) / scale)
                checked += out.shape[0] * out.shape[1]
    ctx.check("D4.collapse", gap, 1e-10, claim="D4", n=checked,
              what="trained identity nets: max |net(x) - x W_1...W_L - folded biases| / max |net(x)|, float64")
    for point in points:
        for act, role in (("identity", "claim"), ("relu", "control")):
            j, err, _ = errors[point["depth"], act, point["steps"]]
            case = {"activation": act, **point}
            ctx.record.metric("error", err, case=case, better="lower", seeds=ctx.seed_list, section="d4.linear")
            ctx.record.metric("least_squares_error", ls, case=case, better="lower", section="d4.linear")
            ctx.record.metric("lr", lrs[j], case=case, section="d4.linear")
            excess = (err - ls) / ls
            f = finding(excess, null=-D4_MARGIN, seed=ctx.seed,
                        label=f"{act} depth-{point['depth']} net: (error - least squares) / least squares",
                        note=f"least squares {_fmt(ls)}, net median {_fmt(np.median(err))} (lr {lrs[j]:g})")
            ctx.finding("D4", f, point=point, role=role)


# ----------------------------------------------------------------------------- D5

D5_DIM = 32                 # inputs and outputs of D5's nets
D5_BATCH = 128
D5_DEEP = 8                 # hidden layers of the deep-narrow net
D5_THRESHOLD = 0.25         # deep costs at least 25 % more per parameter to count
D5_ROUNDS = 3               # interleaved timing rounds of each net


def d5_nets(params: int) -> dict:
    """The shallow-wide and deep-narrow nets of about `params` parameters (32 inputs and outputs)."""
    return {name: m.widths_for_budget(params, depth, D5_DIM, D5_DIM) for name, depth in
            (("shallow", 1), ("deep", D5_DEEP))}


def claim_d5(opts, ctx: RunContext) -> None:
    """Time of one training step per parameter, deep-narrow over shallow-wide, over the size grid; control:
    the shallow net against a second copy of itself timed the same way."""
    from dlbench.experiments.depth import CLAIMS
    from dlbench.stats import two_sample

    rng = ctx.rng("D5 batch")
    x = rng.standard_normal((D5_BATCH, D5_DIM)).astype(np.float32)
    y = rng.standard_normal((D5_BATCH, D5_DIM)).astype(np.float32)
    for point in CLAIMS["D5"].points(ctx.quick):
        nets = d5_nets(point["params"])
        steps = {name: _d5_step(nets[name.split()[0]], x, y, opts, ctx) for name in ("shallow", "deep", "shallow copy")}
        samples: dict = {name: [] for name in steps}
        for r in range(D5_ROUNDS):        # rounds interleave the nets: a slow spell of the machine hits all three
            for name, (step, n_params, widths) in steps.items():
                case = {"net": name, "params": point["params"], "depth": len(widths), "width": widths[0],
                        "batch": D5_BATCH, "round": r}
                t = ctx.time("train_step", step, case=case, items=n_params, section="d5.step_time")
                samples[name].append(t.samples / n_params)
        per_param = {name: np.concatenate(v) for name, v in samples.items()}
        depth_note = (f"shallow {nets['shallow'][0]} units, deep {D5_DEEP} x {nets['deep'][-1]}-{nets['deep'][0]}; "
                      f"batch {D5_BATCH}, one thread, {D5_ROUNDS} interleaved rounds")
        ctx.finding("D5", two_sample(per_param["deep"], per_param["shallow"], ratio=True, threshold=D5_THRESHOLD,
                                     seed=ctx.seed, label="time per parameter deep/shallow", note=depth_note),
                    point=point, timing=True)
        ctx.finding("D5", two_sample(per_param["shallow copy"], per_param["shallow"], ratio=True,
                                     threshold=D5_THRESHOLD, seed=ctx.seed, label="time per parameter shallow/shallow"),
                    point=point, role="control", timing=True)


def _d5_step(widths, x, y, opts, ctx: RunContext):
    """(one training step of a fresh net of these hidden widths, its parameter count, its widths)."""
    from dlbench.nn.losses import mse
    from dlbench.nn.mlp import MLP, MLPSpec
    from dlbench.nn.optim import get_optimizer

    model = MLP(MLPSpec((D5_DIM, *widths, D5_DIM)))
    params = model.init([ctx.seed])
    opt = get_optimizer(opts.optimizer, lr=1e-3)
    state = [opt.init(params)]

    def step():
        _, grads, _ = model.value_and_grad(params, x, y, mse, reuse=True)
        state[0] = opt.step(params, grads, state[0])

    return step, model.n_params, widths


# ----------------------------------------------------------------------------- D6

D6_PAIRS = 2                # parity of parities over 2 pairs: 4 inputs, two levels of XOR
D6_WIDTH = 32
D6_TRAIN = D6_TEST = 2048
D6_RISE = 0.1               # the probe on the last hidden layer beats the one on the input by 10 points
D6_DROP = 0.02              # ... and no layer's probe loses more than 2 points against the layer below
D6_LEARNED = 0.8            # premise: the trained net classifies at least 80 % of the test set right


def claim_d6(opts, ctx: RunContext) -> None:
    """Linear probes on every layer of relu nets trained on the parity of parities; control: identity nets."""
    from dlbench.experiments.depth import CLAIMS
    from dlbench.nn.mlp import MLP, MLPSpec
    from dlbench.nn.optim import get_optimizer
    from dlbench.nn.train import train

    points = CLAIMS["D6"].points(ctx.quick)
    rng = ctx.rng("D6 parity")
    X, y, z = m.parity_of_parities(rng, D6_TRAIN, D6_PAIRS)
    Xt, yt, zt = m.parity_of_parities(rng, D6_TEST, D6_PAIRS)
    data = m.ArrayData("parity of parities", X, y, Xt, yt, task="classification")
    seeds, lrs = _seeds(ctx, "D6"), _lrs(opts)
    L, S = len(lrs), len(seeds)
    budgets = sorted({p["steps"] for p in points})
    for depth in sorted({p["depth"] for p in points}):
        for act, role in (("relu", "claim"), ("identity", "control")):
            model = MLP(MLPSpec((2 * D6_PAIRS, *(D6_WIDTH,) * depth, 2), activation=act, init="kaiming_normal"))
            init = model.init(seeds)
            at_init = _probes(model, init, data, y, yt, z, zt)
            params = [np.concatenate([p] * L) for p in init]
            lr = np.repeat(np.asarray(lrs, dtype=np.float32), S).reshape(-1, 1, 1)
            snaps: dict = {}

            def snapshot(info, snaps=snaps):
                if info.step + 1 in budgets:
                    snaps[info.step + 1] = [p.copy() for p in info.params]

            hist = train(model, data, np.tile(seeds, L), optimizer=get_optimizer(opts.optimizer, lr=lr),
                         epochs=-(-budgets[-1] // (D6_TRAIN // min(opts.batch_size, D6_TRAIN))),
                         batch_size=opts.batch_size, max_steps=budgets[-1], params=params, eval_every=0,
                         eval_steps=budgets, callback=snapshot)
            for point in (p for p in points if p["depth"] == depth):
                steps = point["steps"]
                at = int(np.searchsorted(hist.eval_step, steps, side="right")) - 1
                acc = hist.test_acc[:, at].reshape(L, S)
                j = int(np.argmax(np.median(acc[:, :TUNING_SEEDS], axis=1)))
                chosen = [p[j * S:(j + 1) * S] for p in snaps.get(steps, hist.params)]
                probes, level1 = _probes(model, chosen, data, y, yt, z, zt)
                net_acc = acc[j, TUNING_SEEDS:]
                probes, level1 = probes[TUNING_SEEDS:], level1[TUNING_SEEDS:]
                case = {"activation": act, **point}
                layers = np.arange(depth + 1)
                for i, seed in enumerate(ctx.seed_list):
                    ctx.record.curve("probe_accuracy", probes[i], case={**case, "target": "y"}, seed=seed,
                                     steps=layers, better="higher", section="d6.probes")
                    ctx.record.curve("probe_accuracy", level1[i], case={**case, "target": "z1"}, seed=seed,
                                     steps=layers, better="higher", section="d6.probes")
                    ctx.record.curve("probe_accuracy_at_init", at_init[0][TUNING_SEEDS + i], case={**case, "target": "y"},
                                     seed=seed, steps=layers, better="none", section="d6.probes")
                ctx.record.metric("net_accuracy", net_acc, case=case, better="higher", seeds=ctx.seed_list,
                                  section="d6.probes")
                ctx.record.metric("lr", lrs[j], case=case, section="d6.probes")
                f = _d6_finding(probes, level1, at_init[0][TUNING_SEEDS:], net_acc, ctx.seed, act, lrs[j])
                if role == "claim" and not np.median(net_acc) >= D6_LEARNED:
                    ctx.not_run("D6", f"the relu net did not learn the parity of parities in {steps} steps (median "
                                f"test accuracy {np.median(net_acc):.2f} < {D6_LEARNED}): there is no hierarchy "
                                f"for the probes to find", point=point)
                else:
                    ctx.finding("D6", f, point=point, role=role)


def _probes(model, params, data, y, yt, z, zt) -> tuple[np.ndarray, np.ndarray]:
    """Probe accuracy per replica and layer (input = layer 0) for the label y and the first level-1 XOR z_1."""
    _, cache = model.forward(params, data.X_train, train=False)
    _, cache_t = model.forward(params, data.X_test, train=False)
    R = params[0].shape[0]
    feats = [(np.broadcast_to(data.X_train, (R, *data.X_train.shape)),
              np.broadcast_to(data.X_test, (R, *data.X_test.shape)))]
    feats += list(zip(cache.post, cache_t.post))
    acc = np.stack([m.probe_accuracy(h, y, ht, yt) for h, ht in feats], axis=-1)
    lvl = np.stack([m.probe_accuracy(h, z[:, 0] > 0, ht, zt[:, 0] > 0) for h, ht in feats], axis=-1)
    return acc, lvl


def _d6_finding(probes: np.ndarray, level1: np.ndarray, at_init: np.ndarray, net_acc: np.ndarray, seed: int,
                act: str, lr: float):
    """The rise of the label's probe from the input to the last hidden layer, and its smallest step."""
    rise = probes[:, -1] - probes[:, 0]
    step = np.diff(probes, axis=1).min(axis=1)
    per_layer = ", ".join(f"{v:.2f}" for v in np.median(probes, axis=0))
    note = (f"{act}: probe accuracy of y by layer (input first) {per_layer}; of the level-1 XOR z1 "
            f"{', '.join(f'{v:.2f}' for v in np.median(level1, axis=0))}; at init "
            f"{', '.join(f'{v:.2f}' for v in np.median(at_init, axis=0))}; net accuracy {np.median(net_acc):.2f} "
            f"(lr {lr:g})")
    return all_of([finding(rise, threshold=D6_RISE, seed=seed, label="probe accuracy last hidden - input"),
                   finding(step, null=-D6_DROP, seed=seed, label="smallest layer-to-layer change")], note=note)
