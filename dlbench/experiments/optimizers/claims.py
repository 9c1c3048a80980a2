"""The optimizers experiment's claim parts: each measures its claim on its own setting, at every point of
the claim's nuisance grid and on its control, and records findings; the runner judges them.

What each claim measures, its control, grid and threshold are in CLAIMS (the package); the numbers those
texts name are the constants below. Every random number comes from ctx.rng under a name of its own.
"""

from __future__ import annotations

import math
import warnings

import numpy as np

from dlbench.experiments.base import RunContext
from dlbench.experiments.optimizers import CLAIM_HOMES, CLAIMS, measured_claims
from dlbench.experiments.optimizers import measure as ms
from dlbench.experiments.optimizers.recurrent import claim_o10
from dlbench.experiments.optimizers.trajectories import (
    CURVE_POINTS, ModelSurface, Track, build_optimizer, loglog_fit, lr_row, make_surface, mlp_surface, optimal_gd,
    path_of, run_trajectories, sample_starts, search_lr,
)
from dlbench.surfaces import across_floor
from dlbench.stats import all_of, finding, from_interval, wilson

#: Starts of the claims on analytic surfaces (at least --seeds): more starts are nearly free there.
MIN_STARTS = 16
TWO = math.log10(2.0)

# O0
O0_DATA, O0_N, O0_STEPS, O0_LR, O0_BATCH = "spirals", 128, 600, 0.01, 64
O0_LINE, O0_GRID = 41, 17            # points on the line; G x G points on the slice, over [-1, 1]^2
O0_DEEP = "12x16"                    # the deep plain control net
#: Residual nets and their plain twins (the same nets without skips): (skips, blocks) of one-layer blocks of 16 units
#: with batch norm after a 16-unit stem. The deep pair has 12 hidden layers as the deep plain control; the shallow
#: pair (2 hidden layers) is the control of the comparison: no depth, no chaos for skips to prevent.
O0_RESIDUAL = {"residual 12x16 bn": (True, 11), "plain 12x16 bn": (False, 11), "residual 2x16 bn": (True, 1),
               "plain 2x16 bn": (False, 1)}
O0_TWIN = {"residual 12x16 bn": "plain 12x16 bn", "residual 2x16 bn": "plain 2x16 bn"}
O0_SHALLOW = {"residual 12x16 bn": "residual 2x16 bn"}
O0_PAIR_NETS = 2                     # nets per seed of each residual net and its twin (the same inits)
O0_SKIPS = 1.0                       # skips: at least one strict local minimum fewer than the twin's slice
O0_BUMP, O0_MINIMA = 0.1, 2.0        # a rise below 10 % of the decrease; fewer than two local minima
O0_RASTRIGIN_STEPS, O0_RASTRIGIN_LR = 300, 0.05
# O1
O1_TEACHER, O1_N, O1_STARTS, O1_ITERS = 3, 64, 32, 60
O1_TRAIN = (0, 10, 100, 1000)        # Adam steps before the Newton search: starts spread along training
O1_AT_MIN = 1e-3                     # a critical point within this loss of the lowest is at the minimum
O1_MC_SAMPLES, O1_MC_N = 4000, 100
# O2
O2_DIM, O2_NOISE, O2_ESCAPE, O2_FASTER = 10, 0.01, -1.0, math.log10(1.5)
# O3
O3_STEPS, O3_CLIP, O3_SPIKE, O3_GAP, O3_THROWN = 300, 1.0, 1.0, TWO, 10.0
O3_NO_CLIP = 1e300                   # "infinity": the clip functions take finite thresholds; none is reached
O3_STARTS = 64                       # a throw lands anywhere: the final gap varies a lot from start to start
# O4
O4_STEPS, O4_BETA, O4_STARTS, O4_TOL = 500, 0.9, 32, 1e-9
#: the claim's canyon winds along y = 0.05 sin x: enough to couple the axes, so that starts differ (on the straight
#: canyon travel / |y0| is one closed-form number for every start), little enough that the curvature across the
#: floor, kappa (1 + 0.05^2 cos^2 x), stays within 0.25 % of its largest value, where plain descent's best step
#: is set: a larger bend would make that step near-critical only where cos x = +-1
O4_BEND = 0.05
#: the lr is plain descent's analytic best constant step 2/(mu+L) (or half of it), the same for both: a searched
#: best lr sits on a plateau of final loss, so which lr won moved with the tuning starts; Polyak's heavy-ball
#: optimum is no fixed-beta alternative: its steep mode is a double root at -sqrt(beta), whose travel equals
#: plain descent's at 2/(mu+L) exactly, so the sign of the difference would be rounding
_O4_SCALE = {"best": 1.0, "best/2": 0.5}
# O5, O6
O5_KAPPA, O5_NOISE = 50.0, 3.0
#: steps by (--quick, task): the quadratic costs little, and its late-run comparison needs the long run
O5_STEPS = {False: {"noisy quadratic": 2000, "minibatch mlp": 1500},
            True: {"noisy quadratic": 2000, "minibatch mlp": 800}}
#: the minibatch task: a relu student on a relu teacher's outputs with label noise, so that minibatch
#: gradients keep a stationary scale once the student sits at the noise floor
O5_MLP = {"dim": 4, "teacher": 8, "label_noise": 0.3, "widths": (4, 16, 1), "n_train": 256, "batch": 16}
O7_MLP = {"widths": (2, 16, 16, 2), "data": "spirals", "n_train": 256, "batch": 16}
O5_GRID = {"noisy quadratic": (1e-3, 3e-3, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0),
           "minibatch mlp": (1e-3, 3e-3, 0.01, 0.03, 0.1, 0.3)}       # O6's lr search
#: the minibatch task's lr is a declared axis, one value per decade, every optimizer at the point's lr: how
#: much Adagrad's sum grows late depends on it (a large lr's first steps put a large share of the sum early),
#: and a searched "best" lr sits between two grid values whose final losses tie
O5_MLP_LRS = (0.01, 0.1, 1.0)
O5_TASKS = {"noisy quadratic": ("noisy quadratic", None),
            **{f"minibatch mlp, lr {lr:g}": ("minibatch mlp", lr) for lr in O5_MLP_LRS}}
O5_MLP_STARTS = 16                   # the mlp's slope varies from init to init: more inits than --seeds
O5_SLOPE, O6_SLOPE_GAP = 0.25, 0.25
O5_ADAGRAD_EPS, O5_TOL = 1e-10, 1e-9  # torch Adagrad's eps; the check's relative tolerance (float64 steps)
O5_STARTS = 64                       # the noisy quadratic's late drop is noisy: more starts than the others
O6_MEMORY = 100                      # the control's RMSProp remembers 100x the run: alpha = 1 - 1/(100 T)
O5_TUNE = {"noisy quadratic": 8, "minibatch mlp": 2}
# O7
O7_STEPS, O7_EARLY, O7_BETA1, O7_EPS = {False: 500, True: 300}, 10, 0.9, 1e-8
O7_INITS = 32                        # inits per setting: each is one more column of the same two engine calls
#: the premise: the uncorrected first step at least twice the corrected, (1-beta1)/sqrt(1-beta2) >= 2, i.e.
#: 1 - beta2 <= (1 - beta1)^2 / 4 (Kingma & Ba: the correction matters when 1 - beta2 << (1 - beta1)^2)
O7_PREMISE = 2.0
O7_CAP = 1e3                         # a run's peak loss over its initial loss is capped here (a blow-up)
O7_PEAK = TWO                        # the uncorrected peak at least 2x the corrected one
O7_REBUILD_STEPS, O7_TOL = 20, 1e-9
# O8
O8_TOL, O8_CONTROL = 1e-12, 1e-3
# O9
O9_DIM, O9_TEACHER, O9_N, O9_BATCH, O9_CONTROL_WIDTH = 4, 8, 256, 32, 2
O9_STEPS = {False: 2000, True: 1500}
O9_LRS = {False: (0.01, 0.03, 0.1, 0.3), True: (0.01, 0.03, 0.1)}
O9_TUNING, O9_GAP = 2, 0.01


def _points(cid: str, ctx: RunContext) -> list[dict]:
    return CLAIMS[cid].points(ctx.quick)


def _log_ratio(a, b, floor: float = 1e-300) -> np.ndarray:
    """log10(a / b) per run, each side floored (a loss of exactly 0 is 1e-300, not -inf)."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    with np.errstate(all="ignore"):
        return np.log10(np.maximum(a, floor)) - np.log10(np.maximum(b, floor))


def _med(x) -> float:
    x = np.asarray(x, dtype=float)
    x = x[np.isfinite(x)]
    return float(np.median(x)) if x.size else math.nan


def not_run(opts, ctx: RunContext) -> None:
    """The claims this run does not measure, each with where it is measured."""
    measured = measured_claims(opts)
    for cid in CLAIMS:
        if cid not in measured:
            home = CLAIM_HOMES[cid]
            ctx.not_run(cid, f"measured on its own setting, not on --surface {opts.surface}: run --surface {home} "
                             f"or --all-claims")


# ----------------------------------------------------------------------------- O0


def _mlp_loss(net, X, y, loss_fn):
    def loss_of(params):
        with np.errstate(all="ignore"):
            out, _ = net.forward(params, X, train=True)
            return loss_fn(out, y)[0]
    return loss_of


def _train_net(label: str, seeds: list, data):
    """The net named `label` (He init, float64) trained with Adam, one replica per seed: (net, init params, trained
    params). "DxW" is a plain relu MLP of D hidden layers of W units; the names of O0_RESIDUAL are residual nets
    and their plain twins (dlbench.nn.residual: the same widths and init, with or without the skips)."""
    from dlbench.nn.mlp import MLP, MLPSpec
    from dlbench.nn.optim import get_optimizer
    from dlbench.nn.residual import ResNet, ResNetSpec
    from dlbench.nn.train import train

    if label in O0_RESIDUAL:
        skips, blocks = O0_RESIDUAL[label]
        net = ResNet(ResNetSpec(data.n_features, 16, blocks, data.n_outputs, block_layers=1, residual=skips,
                                norm="batch", init="kaiming_normal", dtype=np.float64))
    else:
        depth, width = (int(v) for v in label.split("x"))
        net = MLP(MLPSpec((data.n_features, *(width,) * depth, data.n_outputs), activation="relu",
                          init="kaiming_normal", dtype=np.float64))
    start = net.init(seeds)
    end = [p.copy() for p in start]
    train(net, data, seeds, optimizer=get_optimizer("adam", lr=O0_LR), epochs=10**6, batch_size=O0_BATCH,
          max_steps=O0_STEPS, params=end, eval_every=0)
    return net, start, end


def _landscape(loss_of, start: list, end: list, is_weight: list, rng: np.random.Generator) -> dict:
    """The line's bump and the slice's local minima per replica, and the losses at both ends."""
    line = ms.line_losses(loss_of, start, end, np.linspace(0.0, 1.0, O0_LINE))
    d1 = ms.filter_normalised_direction(rng, end, is_weight)
    d2 = ms.filter_normalised_direction(rng, end, is_weight)
    sl = ms.slice_losses(loss_of, end, d1, d2, np.linspace(-1.0, 1.0, O0_GRID))
    return {"bump": ms.bump(line), "minima": ms.local_minima(sl).astype(float), "start": line[0], "end": line[-1]}


def _o0_finding(r: dict, what: str, seed: int):
    return all_of([
        finding(r["bump"], direction="less", null=O0_BUMP, seed=seed,
                label=f"{what}: line init->trained, largest rise / decrease"),
        finding(r["minima"], direction="less", null=O0_MINIMA, seed=seed,
                label=f"{what}: strict local minima on the {O0_GRID}x{O0_GRID} filter-normalised slice"),
    ])


def _skips_finding(res: dict, twin: dict, what: str, twin_what: str, seed: int):
    """Li et al.'s comparison: the residual net's line is monotone, and its slice has fewer local minima than its
    plain twin's (per net: the same init, data and slice directions)."""
    return all_of([
        finding(res["bump"], direction="less", null=O0_BUMP, seed=seed,
                label=f"{what}: line init->trained, largest rise / decrease"),
        finding(twin["minima"] - res["minima"], threshold=O0_SKIPS, seed=seed,
                label=f"{twin_what} minus {what}: strict local minima on the {O0_GRID}x{O0_GRID} filter-normalised "
                      f"slice (paired: the same init and directions)"),
    ], note=f"median local minima {_med(res['minima']):g} with skips, {_med(twin['minima']):g} without")


#: Li et al.'s comparison is about skips keeping a chaotic slice from forming: it is judged only where the plain
#: twin's slice is chaotic, at least O0_CHAOTIC strict local minima in median (O0's own "not smooth"), read off
#: O0_PREMISE_NETS twins of their own (not the twins the comparison then scores: no selection on the outcome).
O0_CHAOTIC, O0_PREMISE_NETS = O0_MINIMA, 4


def _trained(r: dict) -> bool:
    return _med(r["end"]) < 0.5 * _med(r["start"])


def _premise_label(twin: str) -> str:
    return f"{twin} premise"


def claim_o0(opts, ctx: RunContext) -> None:
    """The line from init to solution and a filter-normalised slice; controls Rastrigin and a deep plain net, and
    at the residual net's point its plain twin and the same comparison at depth 2. A net with batch norm is
    evaluated with the statistics of the whole training set."""
    from threadpoolctl import threadpool_limits

    from dlbench.data import make_dataset
    from dlbench.nn.losses import get_loss
    from dlbench.stats import with_note

    data = make_dataset(O0_DATA, seed=ctx.seed, n_train=O0_N, n_test=16)
    X, y = np.ascontiguousarray(data.X_train, dtype=np.float64), data.y_train
    loss_fn = get_loss("softmax_ce")
    results, seeds_of = {}, {}
    labels = [p["net"] for p in _points("O0", ctx)]
    residual = [n for n in labels if n in O0_TWIN]
    pairs = residual + [O0_SHALLOW[n] for n in residual]
    # the residual pairs are noisier (a count of minima on each of two slices): O0_PAIR_NETS nets per seed
    pair_seeds = [int(v) for v in ctx.rng("O0", "residual pairs").integers(2**31, size=O0_PAIR_NETS * ctx.seeds)]
    nets = {n: ctx.seed_list for n in labels if n not in O0_TWIN}
    nets[O0_DEEP] = ctx.seed_list
    for n in pairs:
        nets[n] = nets[O0_TWIN[n]] = pair_seeds
    for n in residual:      # the premise's own twins, drawn apart from the pairs
        nets[_premise_label(O0_TWIN[n])] = [int(v) for v in ctx.rng("O0", "premise twins", n).integers(
            2**31, size=O0_PREMISE_NETS)]
    with threadpool_limits(limits=1, user_api="blas"):   # small matmuls: a second BLAS thread only spins
        for label, seeds in nets.items():
            net, start, end = _train_net(label.removesuffix(" premise"), seeds, data)
            weights = [n.endswith(".W") for n in net.param_names]
            # a residual net and its twin share their parameters' shapes, and so their slice directions
            key = next((r for r in pairs if label in (r, O0_TWIN[r])), label)
            results[label] = _landscape(_mlp_loss(net, X, y, loss_fn), start, end, weights, ctx.rng("O0 slice", key))
            seeds_of[label] = seeds
    # Rastrigin: a 2-d point is one replica's only "filter"
    surf = make_surface("rastrigin")
    Z0 = sample_starts(surf, ctx.rng("O0 rastrigin"), ctx.seeds)
    Z1 = run_trajectories(surf, build_optimizer("adam", O0_RASTRIGIN_LR), Z0, O0_RASTRIGIN_STEPS,
                          track=Track(shape=False, curve=0)).end
    results["rastrigin"] = _landscape(lambda ps: surf.value(ps[0].T), [Z0.T.copy()], [Z1.T.copy()], [True],
                                      ctx.rng("O0 slice", "rastrigin"))
    seeds_of["rastrigin"] = ctx.seed_list
    for label, r in results.items():
        case = {"net": label}
        for metric, key, better in (("line rise / decrease", "bump", "lower"), ("slice local minima", "minima",
                                                                                "lower"),
                                    ("loss at init", "start", "none"), ("loss trained", "end", "lower")):
            ctx.record.metric(metric, r[key], case=case, better=better, seeds=seeds_of[label], section="o0.landscape")
    controls = [("Rastrigin", _o0_finding(results["rastrigin"], "Rastrigin", ctx.seed)),
                (f"deep plain {O0_DEEP}", _o0_finding(results[O0_DEEP], f"deep plain relu {O0_DEEP}", ctx.seed))]
    for point in _points("O0", ctx):
        label = point["net"]
        r, twin = results[label], O0_TWIN.get(label)
        extra = []
        chaos = ""
        if twin is None:
            untrained = [] if _trained(r) else [label]
            f = _o0_finding(r, f"relu {label}", ctx.seed)
        else:
            shallow, premise = O0_SHALLOW[label], results[_premise_label(twin)]
            untrained = [n for n in (label, twin, _premise_label(twin)) if not _trained(results[n])]
            if not _med(premise["minima"]) >= O0_CHAOTIC:
                chaos = (f"the plain twin's slice is not chaotic (median {_med(premise['minima']):g} strict local "
                         f"minima on {len(premise['minima'])} premise twins' slices, fewer than {O0_CHAOTIC:g}): no "
                         f"chaos for skips to prevent")
            f = with_note(_skips_finding(r, results[twin], label, twin, ctx.seed),
                          f"premise: median {_med(premise['minima']):g} strict local minima on "
                          f"{len(premise['minima'])} premise twins' slices")
            extra = [(f"{twin} (no skips)", _o0_finding(results[twin], f"{twin}, the residual net without skips",
                                                        ctx.seed)),
                     (f"{shallow} against {O0_TWIN[shallow]}",
                      _skips_finding(results[shallow], results[O0_TWIN[shallow]], shallow, O0_TWIN[shallow],
                                     ctx.seed))]
        if untrained or chaos:
            ctx.not_run("O0", "; ".join([*(f"the {n} net did not train (median loss {_med(results[n]['start']):.3g} "
                                           f"-> {_med(results[n]['end']):.3g})" for n in untrained),
                                         *([chaos] if chaos else [])]), point=point)
        else:
            ctx.finding("O0", f, point=point)
        for what, c in controls + extra:
            ctx.finding("O0", c, point={**point, "counterfactual": what}, role="control")


# ----------------------------------------------------------------------------- O1


def _o1_surface(width: int, ctx: RunContext) -> ModelSurface:
    from dlbench.data import make_dataset
    from dlbench.experiments.teacher import relu_teacher

    teacher_seed = int(ctx.rng("O1 teacher").integers(2**31))
    f = relu_teacher(2, 1, width=O1_TEACHER, depth=1, activation="tanh", seed=teacher_seed)
    ds = make_dataset("teacher", seed=ctx.seed, n_train=O1_N, n_test=1, dim=2, net=f)
    widths = (2, width, 1) if width else (2, 1)
    return mlp_surface(widths=widths, activation="tanh", dataset=ds)


def _critical_points(width: int, ctx: RunContext) -> ms.CriticalPoints:
    """Critical points from O1_STARTS starts spread along Adam training (0, 10, 100, 1000 steps)."""
    surf = _o1_surface(width, ctx)
    rng = ctx.rng("O1 starts", width)
    Z = sample_starts(surf, rng, O1_STARTS)
    group = np.arange(O1_STARTS) % len(O1_TRAIN)
    for j, k in enumerate(O1_TRAIN):
        cols = np.flatnonzero(group == j)
        if k and cols.size:
            Z[:, cols] = run_trajectories(surf, build_optimizer("adam", 0.01), Z[:, cols], k,
                                          track=Track(shape=False, curve=0)).end
    return ms.find_critical_points(surf, Z, iters=O1_ITERS)


def _o1_finding(cp: ms.CriticalPoints, what: str):
    conv = cp.converged
    if not conv.any():
        return from_interval(math.nan, math.nan, math.nan, n=0, method="Wilson", label=f"{what}: saddle fraction",
                             note="no start converged to a critical point")
    # the lowest loss of any end point, converged or not: near a minimum Newton converges slowly, and a
    # minimum that was reached but not polished is still the minimum the others lie above
    lowest = float(np.nanmin(cp.loss))
    above = conv & (cp.loss > lowest + O1_AT_MIN)
    k, n = int((cp.index[above] > 0).sum()), int(above.sum())
    p = wilson(k, n)
    mean_index = float(cp.index[above].mean()) if n else math.nan
    return from_interval(p.p, p.low, p.high, n=n, method="Wilson", null=0.5,
                         label=f"{what}: fraction of the critical points above the lowest loss that are saddles",
                         note=f"{int(conv.sum())} of {conv.size} starts converged; lowest loss {lowest:.3g}; mean "
                              f"index above it {mean_index:.3g}; saddles among all found "
                              f"{(cp.index[conv] > 0).mean():.2f}")


def claim_o1(opts, ctx: RunContext) -> None:
    """Critical points of a small tanh net's loss, their index against their loss; control: a linear model."""
    control = _critical_points(0, ctx)
    fc = _o1_finding(control, "linear model (convex)")
    for point in _points("O1", ctx):
        w = point["width"]
        cp = _critical_points(w, ctx)
        _record_critical(ctx, cp, w)
        ctx.finding("O1", _o1_finding(cp, f"2-{w}-1 tanh"), point=point)
        ctx.finding("O1", fc, point=point, role="control")
    _record_critical(ctx, control, 0)
    # the notes' formula, as a check beside the claim
    r = ms.saddle_fractions(ctx.rng("O1 Monte Carlo"), O1_MC_N, O1_MC_SAMPLES)
    for n in (1, 2, 3, 4, 5, 10, 20, 50, 100):
        case = {"n": n}
        ctx.record.metric("formula 1-P^n-(1-P)^n", r["formula"][n - 1], case=case, section="o1.monte_carlo")
        ctx.record.metric("Monte Carlo", r["fraction"][n - 1], case=case, section="o1.monte_carlo")
    sd = math.sqrt(0.25 / O1_MC_SAMPLES)
    ctx.check("O1.formula", float(np.abs(r["fraction"] - r["formula"]).max()), 5 * sd, claim="O1", n=O1_MC_N,
              what=f"max over n = 1..{O1_MC_N} of |Monte Carlo - formula| ({O1_MC_SAMPLES} draws)")


def _record_critical(ctx: RunContext, cp: ms.CriticalPoints, width: int) -> None:
    """Dauphin's figure as a table: the converged critical points grouped by loss (rounded to 3 figures)."""
    conv = np.flatnonzero(cp.converged)
    levels: dict = {}
    for j in conv:
        levels.setdefault(float(f"{cp.loss[j]:.3g}"), []).append(j)
    net = f"2-{width}-1 tanh" if width else "linear (control)"
    for level in sorted(levels):
        js = levels[level]
        case = {"net": net, "loss": level}
        ctx.record.metric("points", len(js), case=case, section="o1.critical_points")
        ctx.record.metric("index", cp.index[js], case=case, section="o1.critical_points")


# ----------------------------------------------------------------------------- O2


def _escape_steps(surf, Z, lr: float, steps: int, noise: float, rng) -> np.ndarray:
    tr = run_trajectories(surf, build_optimizer("sgd", lr), Z, steps, noise=noise, rng=rng,
                          track=Track(target=O2_ESCAPE, shape=False, curve=0))
    return np.where(np.isnan(tr.steps_to_target), steps + 1, tr.steps_to_target)  # censored at the horizon


def claim_o2(opts, ctx: RunContext) -> None:
    """Escape times from near the saddle's stable manifold, exact against noisy gradients; control noise 0."""
    surf = make_surface("saddle", dim=O2_DIM)
    P = max(ctx.seeds, MIN_STARTS)
    base = sample_starts(surf, ctx.rng("O2 starts"), P)
    signs = np.where(ctx.rng("O2 signs").random(base[1::2].shape) < 0.5, -1.0, 1.0)
    for point in _points("O2", ctx):
        offset, lr = point["offset"], point["lr"]
        Z = base.copy()
        Z[1::2] = offset * signs  # unstable coordinates at +-offset: near, not on, the stable manifold
        steps = int(math.ceil(2 * math.log(2.0 / offset) / math.log(1.0 + 2.0 * lr)))
        exact = _escape_steps(surf, Z, lr, steps, 0.0, None)
        noisy = _escape_steps(surf, Z, lr, steps, O2_NOISE, ctx.rng("O2 noise", offset, lr))
        quiet = _escape_steps(surf, Z, lr, steps, 0.0, ctx.rng("O2 control", offset, lr))
        for grad_kind, v in (("exact", exact), ("noisy", noisy)):
            ctx.record.metric("steps to escape", v, case={**point, "gradient": grad_kind}, unit="steps",
                              better="lower", section="o2.escape")
        note = f"median steps to escape {_med(exact):.0f} exact, {_med(noisy):.0f} noisy (std {O2_NOISE:g}), " \
               f"horizon {steps}"
        ctx.finding("O2", finding(_log_ratio(exact, noisy), threshold=O2_FASTER, seed=ctx.seed,
                                  label="log10 steps to escape exact / noisy (paired starts)", note=note), point=point)
        ctx.finding("O2", finding(_log_ratio(exact, quiet), threshold=O2_FASTER, seed=ctx.seed,
                                  label="log10 steps to escape exact / exact (noise 0)"), point=point, role="control")


# ----------------------------------------------------------------------------- O3


def claim_o3(opts, ctx: RunContext) -> None:
    """Spikes and final loss on the cliff with clipping against without; control: clipping at infinity."""
    surf = make_surface("cliff")
    P = max(ctx.seeds, O3_STARTS)
    Z = sample_starts(surf, ctx.rng("O3 starts"), P)
    track = Track(target=surf.min_value + 1e-3, shape=False, rise=True, curve=0)
    for point in _points("O3", ctx):
        kind, lr = point["clip"], point["lr"]
        key = "clip_norm" if kind == "norm" else "clip_value"
        settings = (("none", {}), (f"{kind} {O3_CLIP:g}", {key: O3_CLIP}), (f"{kind} inf", {key: O3_NO_CLIP}))
        runs = {label: run_trajectories(surf, build_optimizer("sgd", lr), Z, O3_STEPS, track=track, **kw)
                for label, kw in settings}
        for label, tr in runs.items():
            case = {"lr": lr, "clip": label}
            ctx.record.metric("largest loss spike", tr.rise, case=case, better="lower", section="o3.cliff")
            ctx.record.metric("final gap to the minimum", tr.final - surf.min_value, case=case, better="lower",
                              section="o3.cliff")
        spike = {k: v.rise for k, v in runs.items()}
        gap = {k: np.maximum(v.final - surf.min_value, 1e-12) for k, v in runs.items()}
        none, clipped, unclipped = (label for label, _ in settings)

        def outcome(other: str, label: str):
            return all_of([
                finding(_log_ratio(spike[none], spike[other]), threshold=O3_SPIKE, seed=ctx.seed,
                        label=f"log10 largest loss spike unclipped / {label} (paired starts)"),
                finding(_log_ratio(gap[none], gap[other]), threshold=O3_GAP, seed=ctx.seed,
                        label=f"log10 final gap to the minimum unclipped / {label}"),
            ], note=f"median spike {_med(spike[none]):.3g} unclipped vs {_med(spike[other]):.3g}; median gap "
                    f"{_med(gap[none]):.3g} vs {_med(gap[other]):.3g}")

        if not _med(spike[none]) >= O3_THROWN:
            ctx.not_run("O3", f"at lr {lr:g} unclipped descent is not thrown by the wall (median spike "
                              f"{_med(spike[none]):.3g}, below {O3_THROWN:g}): nothing for clipping to stop",
                        point=point)
        else:
            ctx.finding("O3", outcome(clipped, f"clipped by {kind} {O3_CLIP:g}"), point=point)
        ctx.finding("O3", outcome(unclipped, f"clipped by {kind} at {O3_NO_CLIP:g}"), point=point, role="control")


# ----------------------------------------------------------------------------- O4


def _o4_lrs(surf) -> tuple[float, float, float]:
    """(mu, L, 2/(mu+L)) from the Hessian's eigenvalues at the canyon's minimum (the bend couples the axes)."""
    lam = np.linalg.eigvalsh(ms.hessians(surf.grad, surf.minima[0][:, None])[0])
    mu, L = float(lam[0]), float(lam[-1])
    return mu, L, optimal_gd(mu, L)[0]


def _o4_runs(kappa: float, ctx: RunContext, P: int, scales: list) -> dict:
    """Plain descent at lr = scale x 2/(mu+L) and heavy-ball momentum (beta 0.9) at lr (1 - beta), the same step
    along the floor, on the winding canyon of condition number kappa; the same starts for every kappa. Per run:
    the travel across the floor sum |du| over |u_0| (u = y - bend sin x) and the final loss."""
    surf = make_surface("canyon", kappa=kappa, bend=O4_BEND)
    Z = sample_starts(surf, ctx.rng("O4 starts"), P)
    _, _, best = _o4_lrs(surf)
    lrs = [best * s for s in scales]
    out = {}
    for label, factor, hyper in (("plain", 1.0, {}), ("momentum", 1.0 - O4_BETA, {"momentum": O4_BETA})):
        opt = build_optimizer("sgd", lr_row([lr * factor for lr in lrs], P), **hyper)
        path = path_of(surf, opt, np.tile(Z, (1, len(lrs))), O4_STEPS)
        u = across_floor(surf, path.transpose(1, 0, 2))
        with np.errstate(all="ignore"):
            travel = np.abs(np.diff(u, axis=0)).sum(axis=0) / np.abs(u[0])
            final = surf.value(path[-1])
        bad = ~np.isfinite(final) | (final > 1e3 * (surf.value(path[0]) + 1))
        travel, final = np.where(bad, np.nan, travel), np.where(bad, np.nan, final)
        for j, scale in enumerate(scales):
            sl = slice(j * P, (j + 1) * P)
            out[label, scale] = {"lr": lrs[j] * factor, "travel": travel[sl], "final": final[sl]}
    return out


def _o4_finding(runs: dict, scale: float, kappa: float, seed: int, previous: tuple | None = None):
    plain, mom = runs["plain", scale], runs["momentum", scale]
    parts = [
        finding(_log_ratio(plain["travel"], mom["travel"]), threshold=TWO, seed=seed,
                label=f"kappa {kappa:g}: log10 travel across the floor plain / momentum (paired starts)"),
        finding(_log_ratio(plain["final"], mom["final"]), seed=seed,
                label=f"kappa {kappa:g}: log10 final loss plain / momentum (the same step along the floor)"),
    ]
    if previous is not None:
        k_prev, prev = previous
        parts.append(finding(_log_ratio(plain["travel"], prev["plain", scale]["travel"]), threshold=TWO, seed=seed,
                             label=f"log10 plain travel at kappa {kappa:g} / at kappa {k_prev:g}"))
    note = (f"lr {plain['lr']:.3g} = {scale:g} x 2/(mu+L), momentum {O4_BETA:g} at lr {mom['lr']:.3g}; median travel "
            f"/ offset plain {_med(plain['travel']):.3g}, momentum {_med(mom['travel']):.3g}; median final loss "
            f"plain {_med(plain['final']):.3g}, momentum {_med(mom['final']):.3g}")
    return all_of(parts, note=note)


def claim_o4(opts, ctx: RunContext) -> None:
    """Travel across a winding canyon and progress along it, plain against momentum at the same step along the
    floor, over kappa and lr; control kappa = 1. The straight canyon's travel is a closed form: a check."""
    P = max(ctx.seeds, O4_STARTS)
    points = _points("O4", ctx)
    kappas = sorted({p["kappa"] for p in points})
    scales = sorted({_O4_SCALE[p["lr"]] for p in points}, reverse=True)
    runs = {k: _o4_runs(float(k), ctx, P, scales) for k in [1, *kappas]}
    for k, r in runs.items():
        for (label, scale), v in r.items():
            case = {"kappa": k, "optimizer": label, "lr": float(f"{v['lr']:.3g}")}
            ctx.record.metric("travel across / offset", v["travel"], case=case, better="lower", section="o4.canyon")
            ctx.record.metric("final loss", v["final"], case=case, better="lower", section="o4.canyon")
    order = [1, *kappas]
    for point in points:
        k, scale = point["kappa"], _O4_SCALE[point["lr"]]
        prev = order[order.index(k) - 1]
        ctx.finding("O4", _o4_finding(runs[k], scale, k, ctx.seed, (prev, runs[prev])), point=point)
        ctx.finding("O4", _o4_finding(runs[1], scale, 1, ctx.seed), point=point, role="control")
    check_o4_closed_form(ctx, [1, *kappas], scales)


def o4_closed_form_error(surf, lr: float, beta: float, Z: np.ndarray, steps: int) -> tuple[float, float]:
    """(largest relative error, formula) of the engine's steep-axis travel / |y_0| against the one-mode recurrence
    (ms.canyon_travel) on a canyon: 0 up to rounding on the straight canyon, where y decouples, at every start."""
    kappa = float(surf.hyper["kappa"])
    opt = build_optimizer("sgd", lr, momentum=beta) if beta else build_optimizer("sgd", lr)
    tr = run_trajectories(surf, opt, Z, steps, track=Track(shape=True, travel=True, curve=0))
    want = ms.canyon_travel(kappa, lr, beta, steps)
    with np.errstate(all="ignore"):
        err = np.abs(tr.travel / np.abs(tr.steep0) / want - 1.0)
    return float(np.max(np.where(np.isfinite(err), err, np.inf))), want


def check_o4_closed_form(ctx: RunContext, kappas: list, scales: list) -> None:
    """On the straight canyon the steep axis decouples: travel / |y_0| is one number for every start."""
    worst, n = 0.0, 0
    for k in kappas:
        surf = make_surface("canyon", kappa=float(k))
        Z = sample_starts(surf, ctx.rng("O4 closed form"), MIN_STARTS)
        _, _, best = _o4_lrs(surf)
        for scale in scales:
            for beta, factor in ((0.0, 1.0), (O4_BETA, 1.0 - O4_BETA)):
                err, _ = o4_closed_form_error(surf, best * scale * factor, beta, Z, O4_STEPS)
                worst, n = max(worst, err), n + Z.shape[1]
    ctx.check("O4.closed-form", worst, O4_TOL, claim="O4", n=n,
              what=f"max relative error of the straight canyon's steep travel / |y0| against the one-mode "
                   f"recurrence, plain and momentum, kappa {', '.join(f'{k:g}' for k in kappas)}, {O4_STEPS} steps")


# ----------------------------------------------------------------------------- O5, O6


def _o5_setting(task: str, ctx: RunContext, noisy: bool, starts: int = 0):
    """The surface, its evaluation and tuning starts, the gradient noise and the steps of one task."""
    steps = O5_STEPS[ctx.quick][task]
    if task == "noisy quadratic":
        surf = make_surface("canyon", kappa=O5_KAPPA)
        P = max(ctx.seeds, O5_STARTS)
        Z = sample_starts(surf, ctx.rng("O5 starts", task), P)
        tune = sample_starts(surf, ctx.rng("O5 tune", task), O5_TUNE[task])
        return surf, Z, tune, (O5_NOISE if noisy else 0.0), steps
    from dlbench.data import make_dataset
    from dlbench.experiments.teacher import relu_teacher

    m = O5_MLP
    teacher = relu_teacher(m["dim"], 1, width=m["teacher"], depth=1, seed=int(ctx.rng("O5 teacher").integers(2**31)))
    data = make_dataset("teacher", seed=ctx.seed, n_train=m["n_train"], n_test=1, dim=m["dim"], net=teacher,
                        noise=m["label_noise"])
    surf = mlp_surface(widths=m["widths"], dataset=data, batch=m["batch"] if noisy else 0)
    extra = [int(s) for s in ctx.rng("O5 starts", task).integers(2**31, size=max(0, starts - ctx.seeds))]
    Z = surf.init_points(list(ctx.seed_list) + extra)
    tune = surf.init_points([int(s) for s in ctx.rng("O5 tune seeds").integers(2**31, size=O5_TUNE[task])])
    return surf, Z, tune, 0.0, steps


def _first_step(surf, opt, Z: np.ndarray, noise: float, rng) -> tuple[np.ndarray, np.ndarray]:
    """The gradient (with its noise or minibatch) and the update of one step from Z: (g, dz), both (d, R)."""
    Z = Z.copy()
    if isinstance(surf, ModelSurface):
        _, G = surf.value_and_grad(Z, rng=rng if surf.batch else None)
    else:
        G = surf.grad(Z)
        if noise:
            G = G + noise * rng.standard_normal(G.shape)
    before = Z.copy()
    opt.step([Z], [G], opt.init([Z]))
    return G, Z - before


def _late_drop(steps: np.ndarray, curve: np.ndarray, T: int) -> np.ndarray:
    """Decades of loss decrease late in the run: the mean loss over its second quarter over the mean over its
    last quarter (quarters, not single steps: a stochastic run's loss fluctuates from step to step); curve (C, R)
    at `steps` of a run of T steps."""
    mid = (steps >= 0.25 * T) & (steps <= 0.5 * T)
    end = steps >= 0.75 * T
    with np.errstate(all="ignore"):
        return np.log10(curve[mid].mean(axis=0) / curve[end].mean(axis=0))


def _o5_task_runs(task: str, ctx: RunContext, blocks: list) -> dict:
    """sgd, Adagrad and RMSProp on one task at every lr of `blocks` (None: each optimizer at its best lr, searched on
    tuning starts), and RMSProp with a memory longer than the run (its average no longer decays: Adagrad up to the
    lr scale) beside RMSProp; then the same without noise at the same lrs (the control). Every block of an optimizer
    is a set of columns of one engine call. Returns {block: (noisy, quiet)}, each {optimizer: per-run first-step
    equalisation, effective-lr slope, late drop, the curves}."""
    steps = O5_STEPS[ctx.quick][task]
    fixed = [b for b in blocks if b is not None]
    surf, Z, tune, noise, _ = _o5_setting(task, ctx, True, O5_MLP_STARTS if fixed else 0)
    quiet_surf = _o5_setting(task, ctx, False)[0] if isinstance(surf, ModelSurface) else surf
    # the best-lr block runs on the verdict seeds' starts (the first columns of Z), the declared lrs on all of them
    width = {b: (Z.shape[1] if b is not None else (ctx.seeds if isinstance(surf, ModelSurface) else Z.shape[1]))
             for b in blocks}
    target = surf.min_value + 1e-3 if not isinstance(surf, ModelSurface) else 0.0
    keep = 1.0 / (O6_MEMORY * steps)
    lr_of = {}
    for name in ("sgd", "adagrad", "rmsprop"):
        for b in blocks:
            lr_of[name, b] = b if b is not None else search_lr(
                surf, name, tune, O5_GRID[task], steps, target, noise=noise,
                rng=ctx.rng("O5 tune noise", task, name)).best
    out = {b: ({}, {}) for b in blocks}
    for k, (role, sf, sigma) in enumerate((("noisy", surf, noise), ("noise 0", quiet_surf, 0.0))):
        for name in ("sgd", "adagrad", "rmsprop"):
            # (label, block, lr, alpha) per block of columns
            cols = [(name, b, lr_of[name, b], None) for b in blocks]
            if name == "rmsprop" and role == "noisy":
                # alpha = 1 - eps: v_t ~ eps sum g^2, so lr sqrt(eps) makes it Adagrad at Adagrad's lr
                cols += [("rmsprop (no decay)", b, lr_of["adagrad", b] * math.sqrt(keep), 1.0 - keep) for b in blocks]
            Zc = np.concatenate([Z[:, :width[b]] for _, b, _, _ in cols], axis=1)
            lr = np.concatenate([np.full(width[b], v) for _, b, v, _ in cols])[None, :]
            hyper = {}
            if name == "rmsprop":
                hyper["alpha"] = np.concatenate([np.full(width[b], 0.99 if a is None else a)
                                                 for _, b, _, a in cols])[None, :]
            g, dz = _first_step(sf, build_optimizer(name, lr, **hyper), Zc, sigma,
                                ctx.rng("O5 first step", task, name, role))
            tr = run_trajectories(sf, build_optimizer(name, lr, **hyper), Zc, steps, noise=sigma,
                                  rng=ctx.rng("O5", task, name, role),
                                  track=Track(target=target, shape=False, curve=CURVE_POINTS, eff_axes="all"))
            eff = tr.eff[:, 0, :]
            at = 0
            for label, b, v, _ in cols:
                sl = slice(at, at + width[b])
                at += width[b]
                out[b][k][label] = {"lr": v, "equalised": ms.equalised_fraction(g[:, sl], dz[:, sl]),
                                    "first": (g[:, sl], dz[:, sl]),
                                    "slope": loglog_fit(tr.eff_steps, eff[:, sl], steps / 10),
                                    "drop": _late_drop(tr.curve_steps, tr.loss_curve[:, sl], steps),
                                    "eff": eff[:, sl], "eff_steps": tr.eff_steps, "final": tr.final[sl]}
    return out


def _o5_finding(r: dict, seed: int, adaptive: str = "adagrad"):
    """O5 on the runs r, with `adaptive` in Adagrad's place (the control puts RMSProp there)."""
    ada = r[adaptive]
    return finding(ada["slope"], direction="less", threshold=O5_SLOPE, seed=seed,
                   label=f"{adaptive} effective-lr log-log slope over the last decade of steps",
                   note=f"lr {ada['lr']:.3g}; median slope of sgd {_med(r['sgd']['slope']):.3g}")


def adagrad_first_step_error(g: np.ndarray, dz: np.ndarray, lr: float, eps: float = O5_ADAGRAD_EPS) -> float:
    """Largest relative error of a first step dz against Adagrad's, -lr g / (|g| + eps) (from a zero sum: lr sign(g)
    up to eps), over the coordinates where g != 0."""
    want = -lr * g / (np.abs(g) + eps)
    ok = g != 0
    with np.errstate(all="ignore"):
        err = np.abs(dz[ok] / want[ok] - 1.0)
    return float(np.max(np.where(np.isfinite(err), err, np.inf))) if err.size else math.inf


def _o6_finding(r: dict, seed: int, decaying: str = "rmsprop"):
    """O6 on the runs r, with `decaying` in RMSProp's place (the control: RMSProp whose average does not decay)."""
    ada, rms = r["adagrad"], r[decaying]
    return all_of([
        finding(ada["slope"], direction="less", threshold=O5_SLOPE, seed=seed,
                label="Adagrad effective-lr log-log slope"),
        finding(rms["slope"] - ada["slope"], threshold=O6_SLOPE_GAP, seed=seed,
                label=f"effective-lr slope {decaying} - Adagrad (paired)"),
        finding(rms["drop"] - ada["drop"], seed=seed,
                label=f"late-run loss drop (decades from the second to the last quarter) {decaying} - Adagrad")],
        note=f"lrs adagrad {ada['lr']:.3g}, {decaying} {rms['lr']:.3g}; median final loss adagrad "
             f"{_med(ada['final']):.3g}, {decaying} {_med(rms['final']):.3g}")


def claims_o5_o6(opts, ctx: RunContext) -> None:
    """Adagrad's and RMSProp's effective learning rates under stochastic gradients. Controls: RMSProp in
    Adagrad's place (O5) and RMSProp whose average does not decay (O6); noise 0 on the quadratic."""
    measured = measured_claims(opts)
    # O5 on the mlp at each declared lr; O6 on the mlp with each optimizer at its best lr (RMSProp's step is
    # lr throughout, Adagrad's lr/sqrt(t): one lr for both compares two different step sizes)
    wanted = {"O5": [(p, O5_TASKS[p["task"]]) for p in _points("O5", ctx)],
              "O6": [(p, (p["task"], None)) for p in _points("O6", ctx)]}
    blocks: dict = {}   # task -> its lrs (None: each optimizer at its best), every lr of a task in one engine call
    for cid in ("O5", "O6"):
        if cid in measured:
            for _, (task, lr) in wanted[cid]:
                blocks.setdefault(task, []).append(lr)
    runs: dict = {}
    for task, lrs in blocks.items():
        for lr, (noisy, quiet) in _o5_task_runs(task, ctx, list(dict.fromkeys(lrs))).items():
            _o5_record(ctx, task, lr, noisy, quiet)
            runs[task, lr] = noisy, quiet
    worst, n_first = 0.0, 0
    for cid in ("O5", "O6"):
        if cid not in measured:
            continue
        for point, (task, lr) in wanted[cid]:
            noisy, quiet = runs[task, lr]
            if cid == "O5":
                g, dz = noisy["adagrad"]["first"]
                worst = max(worst, adagrad_first_step_error(g, dz, noisy["adagrad"]["lr"]))
                n_first += g.size
                ctx.finding("O5", _o5_finding(noisy, ctx.seed), point=point)
                ctx.finding("O5", _o5_finding(noisy, ctx.seed, adaptive="rmsprop"),
                            point={**point, "counterfactual": "rmsprop for adagrad"}, role="control")
                ctx.finding("O5", _o5_finding(quiet, ctx.seed), point={**point, "counterfactual": "noise 0"},
                            role="control")
            else:
                ctx.finding("O6", _o6_finding(noisy, ctx.seed), point=point)
                ctx.finding("O6", _o6_finding(noisy, ctx.seed, decaying="rmsprop (no decay)"),
                            point={**point, "counterfactual": "no decay"}, role="control")
                ctx.finding("O6", _o6_finding(quiet, ctx.seed), point={**point, "counterfactual": "noise 0"},
                            role="control")
    if n_first:
        ctx.check("O5.first-step", worst, O5_TOL, claim="O5", n=n_first,
                  what="max relative error of Adagrad's first step against lr g / (|g| + eps), every coordinate of "
                       "every start of every O5 task")


def _o5_record(ctx: RunContext, task: str, lr: float | None, noisy: dict, quiet: dict) -> None:
    """Record the noisy runs of one task (at `lr`, or each optimizer at its best lr) and the same without noise at
    the same lrs."""
    lr_case = {} if lr is None else {"lr axis": float(lr)}
    for role, r in (("noisy", noisy), ("noise 0", quiet)):
        for name, v in r.items():
            case = {"task": task, **lr_case, "gradient": role, "optimizer": name, "lr": float(f"{v['lr']:.3g}")}
            ctx.record.metric("first step: spread removed", v["equalised"], case=case, better="none",
                              section="o5.effective_lr")
            ctx.record.metric("effective-lr slope", v["slope"], case=case, better="none",
                              section="o5.effective_lr")
            ctx.record.metric("late drop (decades)", v["drop"], case=case, better="higher",
                              section="o5.effective_lr")
            ctx.record.curve("effective lr", _nanmedian_rows(v["eff"]), steps=v["eff_steps"], case=case,
                             better="none", section="o5.effective_lr")
    _analytic_curve(ctx, task, noisy["adagrad"], O5_STEPS[ctx.quick][task], lr_case)


def _analytic_curve(ctx: RunContext, task: str, ada: dict, steps: int, lr_case: dict) -> None:
    """Adagrad's median effective lr beside lr/sqrt(t + 1) scaled to meet it at a tenth of the run: the
    accumulator of a gradient of stationary second moment grows as t."""
    s, eff = ada["eff_steps"], _nanmedian_rows(ada["eff"])
    at = int(np.searchsorted(s, steps / 10))
    if at >= s.size or not np.isfinite(eff[at]):
        return
    analytic = eff[at] * np.sqrt((s[at] + 1.0) / (s + 1.0))
    case = {"task": task, **lr_case, "optimizer": "adagrad", "lr": float(f"{ada['lr']:.3g}")}
    ctx.record.curve("measured", eff, steps=s, case=case, better="none", section="o5.analytic")
    ctx.record.curve("lr/sqrt(t) (scaled)", analytic, steps=s, case=case, better="none", section="o5.analytic")


def _nanmedian_rows(x: np.ndarray) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmedian(x, axis=1)


# ----------------------------------------------------------------------------- O7


def _o7_surface(ctx: RunContext) -> ModelSurface:
    from dlbench.data import make_dataset

    data = make_dataset(O7_MLP["data"], seed=ctx.seed, n_train=O7_MLP["n_train"], n_test=0)
    return mlp_surface(widths=O7_MLP["widths"], dataset=data, batch=O7_MLP["batch"])


def _adam_grid(surf, Z, settings: list, steps: int, ctx: RunContext) -> dict:
    """Adam with and without bias correction at every setting (beta1, beta2, lr), all as columns of one engine call
    per correction: the same inits and the same minibatches for both. Per setting and correction, per init: the
    largest of the first O7_EARLY steps; the run's peak full-batch loss over its initial loss (a diverged run counts
    as O7_CAP); the final full-batch loss (a diverged run: inf)."""
    S = Z.shape[1]
    lr = np.repeat([x[2] for x in settings], S)[None, :]
    b1 = np.repeat([x[0] for x in settings], S)[None, :]
    b2 = np.repeat([x[1] for x in settings], S)[None, :]
    Zs = np.tile(Z, (1, len(settings)))
    out = {}
    for correct in (True, False):
        def adam():
            return build_optimizer("adam", lr, betas=(b1, b2), bias_correction=correct)

        early = run_trajectories(surf, adam(), Zs, O7_EARLY, rng=ctx.rng("O7 batches"),
                                 track=Track(shape=True, curve=0))
        full = run_trajectories(surf, adam(), Zs, steps, rng=ctx.rng("O7 batches"), track=Track(shape=False))
        diverged = full.diverged_step >= 0
        peak = ms.peak_loss(full.loss_curve, O7_CAP)
        peak[diverged] = O7_CAP
        final = np.where(diverged, np.inf, full.final)
        for j, key in enumerate(settings):
            sl = slice(j * S, (j + 1) * S)
            out[(key, correct)] = {"early": early.largest_step[sl], "peak": peak[sl], "final": final[sl],
                                   "diverged": diverged[sl]}
    return out


def _o7_finding(runs: dict, key: tuple, what: str, seed: int):
    c, u = runs[key, True], runs[key, False]
    return all_of([
        finding(_log_ratio(u["early"], c["early"]), threshold=TWO, seed=seed,
                label=f"{what}: log10 largest of the first {O7_EARLY} steps uncorrected / corrected (paired)"),
        finding(_log_ratio(u["peak"], c["peak"]), threshold=O7_PEAK, seed=seed,
                label=f"{what}: log10 peak loss / initial loss uncorrected / corrected (paired)"),
    ], note=f"median peak / initial loss corrected {_med(c['peak']):.3g}, uncorrected {_med(u['peak']):.3g}; "
            f"diverged {int(c['diverged'].sum())} and {int(u['diverged'].sum())} of {c['diverged'].size}; median "
            f"final loss corrected {_med(c['final']):.3g}, uncorrected {_med(u['final']):.3g}")


def o7_premise(beta2: float, beta1: float = O7_BETA1) -> float:
    """The uncorrected first step over the corrected one, (1 - beta1) / sqrt(1 - beta2): the zero start's bias."""
    return (1.0 - beta1) / math.sqrt(1.0 - beta2)


def claim_o7(opts, ctx: RunContext) -> None:
    """Bias correction over beta2 x lr on a minibatch MLP where the zero start biases the first steps (the premise);
    control beta1 = beta2 = 0; the rebuild is a check."""
    surf = _o7_surface(ctx)
    extra = [int(s) for s in ctx.rng("O7 inits").integers(2**31, size=max(0, O7_INITS - ctx.seeds))]
    inits = [*ctx.seed_list, *extra]
    Z = surf.init_points(inits)
    points = _points("O7", ctx)
    held = [p for p in points if o7_premise(float(p["beta2"])) >= O7_PREMISE]
    lrs = list(dict.fromkeys(p["lr"] for p in points))
    settings = [(O7_BETA1, float(p["beta2"]), p["lr"]) for p in held] + [(0.0, 0.0, lr) for lr in lrs]
    runs = _adam_grid(surf, Z, settings, O7_STEPS[ctx.quick], ctx) if settings else {}
    for p in held:
        b2, lr = float(p["beta2"]), p["lr"]
        for correct in (True, False):
            case = {"beta2": b2, "lr": lr, "bias_correction": "yes" if correct else "no"}
            r = runs[(O7_BETA1, b2, lr), correct]
            ctx.record.metric(f"largest of the first {O7_EARLY} steps", r["early"], case=case, better="none",
                              seeds=inits, section="o7.bias_correction")
            ctx.record.metric("peak loss / initial loss", r["peak"], case=case, better="lower", seeds=inits,
                              section="o7.bias_correction")
            ctx.record.metric("final loss", r["final"], case=case, better="lower", seeds=inits,
                              section="o7.bias_correction")
    for point in points:
        b2, lr = float(point["beta2"]), point["lr"]
        ratio = o7_premise(b2)
        if ratio < O7_PREMISE:
            ctx.not_run("O7", f"premise: at beta2 {b2:g} with beta1 {O7_BETA1:g} the uncorrected first step is "
                              f"(1-beta1)/sqrt(1-beta2) = {ratio:.3g} times the corrected one, below "
                              f"{O7_PREMISE:g}: no zero-start bias for the correction to fix", point=point)
        else:
            f = _o7_finding(runs, (O7_BETA1, b2, lr), f"beta2 {b2:g}, lr {lr:g}", ctx.seed)
            ctx.finding("O7", all_of([f], note=f"the uncorrected first step is (1-beta1)/sqrt(1-beta2) = {ratio:.3g} "
                                                f"times the corrected one"), point=point)
        ctx.finding("O7", _o7_finding(runs, (0.0, 0.0, lr), "beta1 = beta2 = 0", ctx.seed), point=point,
                    role="control")
    check_adam_rebuild(ctx)


def check_adam_rebuild(ctx: RunContext) -> None:
    """Adam's steps on the canyon rebuilt from momentum and RMSProp, and its first step's formulas."""
    surf = make_surface("canyon")
    Z = sample_starts(surf, ctx.rng("O7 rebuild"), MIN_STARTS)
    lr, b2 = 0.1, 0.999
    worst_rebuild = worst_first = 0.0
    n_rebuild = n_first = 0
    for correct in (True, False):
        path = path_of(surf, build_optimizer("adam", lr, bias_correction=correct), Z, O7_REBUILD_STEPS)
        grads = np.stack([surf.grad(p) for p in path[:-1]])
        actual = np.diff(path, axis=0)
        rebuilt = ms.adam_rebuilt(grads, lr, O7_BETA1, b2, O7_EPS, correct)
        scale = np.abs(path[:-1]) + np.abs(actual)
        with np.errstate(all="ignore"):
            err = np.abs(rebuilt - actual) / np.where(scale > 0, scale, 1.0)
        worst_rebuild = max(worst_rebuild, float(np.nanmax(err)))
        n_rebuild += err.size
        first = np.abs(actual[0])
        formula = ms.adam_first_step(grads[0], lr, O7_BETA1, b2, O7_EPS, correct)
        ok = formula > 0
        worst_first = max(worst_first, float(np.max(np.abs(first[ok] / formula[ok] - 1))))
        n_first += int(ok.sum())
    ctx.check("O7.rebuild", worst_rebuild, O7_TOL, claim="O7", n=n_rebuild,
              what=f"max relative error of Adam's first {O7_REBUILD_STEPS} steps against the rebuild")
    ctx.check("O7.first-step", worst_first, O7_TOL, claim="O7", n=n_first,
              what="max relative error of Adam's first step against its formula")


# ----------------------------------------------------------------------------- O8 (a check)


def check_o8(opts, ctx: RunContext) -> None:
    """Rescaling and permutation symmetries of a relu net (exact), and the tanh net they do not hold for."""
    from dlbench.nn.losses import get_loss
    from dlbench.nn.mlp import MLP, MLPSpec

    surf = mlp_surface()
    X = np.ascontiguousarray(surf.data.X_train, dtype=np.float64)
    y = surf.data.y_train
    loss_fn = get_loss(surf.loss_name)
    errors = ms.relu_symmetry_errors(surf.net, surf.net.init(ctx.seed_list), X, y, loss_fn, ctx.rng("O8"))
    widths = "-".join(map(str, surf.net.widths))
    tanh = MLP(MLPSpec(widths=surf.net.widths, activation="tanh", dtype=np.float64))
    ctrl = ms.relu_symmetry_errors(tanh, tanh.init(ctx.seed_list), X, y, loss_fn, ctx.rng("O8", "tanh"))
    for net, res in ((f"{widths} relu", errors), (f"{widths} tanh (control)", ctrl)):
        for kind, (e_out, e_loss) in res.items():
            case = {"net": net, "transform": kind}
            ctx.record.metric("max |d output| / max |output|", e_out, case=case, better="none",
                              section="o8.symmetries")
            ctx.record.metric("max |d loss|", e_loss, case=case, better="none", section="o8.symmetries")
    worst = max(max(v) for v in errors.values())
    ctx.check("O8", worst, O8_TOL, claim="O9", n=len(errors) * ctx.seeds,
              what=f"relu {widths}, float64: max relative change of outputs and loss over layer x10 and next /10, "
                   f"per-unit scales in [0.1, 10], a permutation of the hidden units, both")
    change = ctrl["rescale x10"][0]
    ctx.check("O8.tanh-control", O8_CONTROL / change if change > 0 else math.inf, 1.0, claim="O9", n=ctx.seeds,
              what=f"tanh {widths} rescaled x10: 1e-3 / relative output change ({change:.2g})")


# ----------------------------------------------------------------------------- O9


O9_SEEDS = 48      # verdict seeds at least: the upper quartile's 95 % interval then ends near the 90th percentile
O9_QUANTILE = 0.75


def _o9_seeds(ctx: RunContext) -> list[int]:
    """The verdict seeds: the run's seeds, then seeds drawn from the base seed up to O9_SEEDS in all."""
    extra = max(0, O9_SEEDS - ctx.seeds)
    return [*ctx.seed_list, *(int(s) for s in ctx.rng("O9 extra seeds").integers(2**31, size=extra))]


def _o9_train(width: int, optimizer: str, ctx: RunContext, data) -> np.ndarray:
    """Final training loss (tuning seeds first, then the verdict seeds) at each lr: (L, seeds)."""
    from dlbench.nn.mlp import MLP, MLPSpec
    from dlbench.nn.optim import get_optimizer
    from dlbench.nn.train import train

    lrs = O9_LRS[ctx.quick]
    tuning = [int(s) for s in ctx.rng("O9 tuning seeds").integers(2**31, size=O9_TUNING)]
    seeds = [*tuning, *_o9_seeds(ctx)]
    net = MLP(MLPSpec((data.n_features, width, 1), activation="relu", init="kaiming_normal"))
    L, S = len(lrs), len(seeds)
    lr = np.repeat(np.asarray(lrs, np.float32), S).reshape(-1, 1, 1)
    steps = O9_STEPS[ctx.quick]
    hist = train(net, data, np.tile(seeds, L), optimizer=get_optimizer(optimizer, lr=lr), epochs=10**6,
                 batch_size=O9_BATCH, max_steps=steps, eval_every=0)
    loss = hist.train_loss[:, -1].reshape(L, S)
    return np.where(hist.diverged.reshape(L, S) | ~np.isfinite(loss), np.inf, loss)


def quantile_interval(values, q: float, level: float = 0.95) -> tuple[float, float, float]:
    """The q-quantile of `values` with its distribution-free (order-statistic) interval: (estimate, low, high).

    For n independent draws of a continuous variable, #{x_i < xi_q} ~ Binomial(n, q), so the k-th smallest
    value lies above the quantile xi_q with probability P(B <= k - 1) and the j-th below it with probability
    P(B >= j). high is the smallest order statistic whose coverage P(B <= k - 1) reaches 1 - (1 - level)/2,
    low the largest whose coverage P(B >= j) does: the interval holds xi_q with probability >= level whatever
    the distribution. A bound that no order statistic reaches is +inf (high) or -inf (low): at n = 6 no
    order statistic bounds the upper quartile from above at 97.5 % (the largest covers 1 - 0.75^6 = 82 %).
    The estimate is the inverted-CDF sample quantile. Infinite values (diverged runs) take their place in
    the order.
    """
    x = np.sort(np.asarray(values, dtype=float).ravel())
    x = x[~np.isnan(x)]
    n = x.size
    if n == 0:
        return math.nan, math.nan, math.nan
    tail = (1.0 - level) / 2
    pmf = [math.comb(n, i) * q**i * (1 - q) ** (n - i) for i in range(n + 1)]
    cdf = np.cumsum(pmf)                                  # cdf[i] = P(B <= i)
    ks = [k for k in range(1, n + 1) if cdf[k - 1] >= 1 - tail]
    js = [j for j in range(1, n + 1) if 1.0 - cdf[j - 1] >= 1 - tail]
    high = float(x[ks[0] - 1]) if ks else math.inf
    low = float(x[js[-1] - 1]) if js else -math.inf
    return float(np.quantile(x, q, method="inverted_cdf")), low, high


def _o9_finding(loss: np.ndarray, lrs: tuple, what: str) -> tuple:
    """Each optimizer at its best lr on the tuning seeds; the verdict seeds' upper quartile of final loss."""
    best = int(np.argmin(np.median(loss[:, :O9_TUNING], axis=1)))
    final = loss[best, O9_TUNING:]
    q, lo, hi = quantile_interval(final, O9_QUANTILE)
    diverged = int((~np.isfinite(final)).sum())
    note = f"lr {lrs[best]:g}" + (f"; {diverged} of {final.size} runs diverged (counted as worst)" if diverged else "")
    f = from_interval(q, lo, hi, n=final.size, method="order statistic", direction="less", null=O9_GAP,
                      label=f"{what}: upper quartile of final loss (gap to the optimum 0)", note=note)
    return f, final, lrs[best]


def claim_o9(opts, ctx: RunContext) -> None:
    """Each optimizer's final loss over seeds on a teacher-student task with a zero-loss optimum; control: a
    student too small to represent the teacher."""
    from dlbench.data import make_dataset
    from dlbench.experiments.teacher import relu_teacher

    lrs = O9_LRS[ctx.quick]
    seeds = _o9_seeds(ctx)
    teacher = relu_teacher(O9_DIM, 1, width=O9_TEACHER, depth=1, seed=int(ctx.rng("O9 teacher").integers(2**31)))
    data = make_dataset("teacher", seed=ctx.seed, n_train=O9_N, n_test=16, dim=O9_DIM, net=teacher)
    points = _points("O9", ctx)
    for optimizer in dict.fromkeys(p["optimizer"] for p in points):
        ctrl, final_c, lr_c = _o9_finding(_o9_train(O9_CONTROL_WIDTH, optimizer, ctx, data), lrs,
                                          f"{optimizer}, width {O9_CONTROL_WIDTH}")
        ctx.record.metric("final loss", final_c, case={"optimizer": optimizer, "width": O9_CONTROL_WIDTH, "lr": lr_c},
                          better="lower", seeds=seeds, section="o9.teacher")
        for point in (p for p in points if p["optimizer"] == optimizer):
            f, final, lr = _o9_finding(_o9_train(point["width"], optimizer, ctx, data), lrs,
                                       f"{optimizer}, width {point['width']}")
            ctx.record.metric("final loss", final, case={"optimizer": optimizer, "width": point["width"], "lr": lr},
                              better="lower", seeds=seeds, section="o9.teacher")
            ctx.finding("O9", f, point=point)
            ctx.finding("O9", ctrl, point=point, role="control")


#: Part name -> (function, the claims whose measurement needs it).
PARTS = {
    "O0": (claim_o0, ("O0",)),
    "O1": (claim_o1, ("O1",)),
    "O2": (claim_o2, ("O2",)),
    "O3": (claim_o3, ("O3",)),
    "O4": (claim_o4, ("O4",)),
    "O5+O6": (claims_o5_o6, ("O5", "O6")),
    "O7": (claim_o7, ("O7",)),
    "O8": (check_o8, ("O9",)),
    "O9": (claim_o9, ("O9",)),
    "O10": (claim_o10, ("O10",)),
}
