"""The norm experiment's parts for N1-N4 and N9, its checks, and the kernel timings.

Each claim is measured at every point of its nuisance grid, and its negative control through the same code on
the counterfactual that removes the claim's mechanism (see CLAIMS in the package). Nets that are compared share
their seeds, initial weights and batch order, so per-seed differences and ratios are paired.
"""

from __future__ import annotations

import functools
import math

import numpy as np
from threadpoolctl import threadpool_limits

from dlbench.experiments.base import RunContext, parse_numbers
from dlbench.experiments.norm import measure as m
from dlbench.experiments.norm.net import Net, NetSpec, Run, best_rate_decided, evaluate, fit
from dlbench.experiments.norm.whitening import zca_forward
from dlbench.stats import all_of, bootstrap_ratio_ci, finding, from_interval, log_ratio, power_law

BATCH = 32                     # the batch of every claim that does not vary it
HALF = math.log10(2)           # N1: 'holds still' = at least halves the shift
PROBES = 10                    # N1: checkpoints of the shift measurements per run
PROBE_SAMPLES = 256            # N1: test samples whose layer outputs the moment shift follows
NOISE = (0.5, 2.0)             # N1: noisy BN's (n_mu, n_sigma)
GRID_STEP = math.log10(3)      # N2: 3x, the step of a half-decade grid (3.16x) with its rounding
N2_SEEDS = 12                  # N2: the largest stable rate moves by grid steps from seed to seed; a dozen decide it
N3_SCALES = (0.1, 1.0, 10.0)
N3_LRS = (0.01, 0.03, 0.1)
SPREAD = 0.3                   # N3: decades
N4_DATA = {"n": 128, "noise": 0.15, "width": 64, "depth": 3, "batch": 16, "lr": 0.03, "steps": 600}
QUARTER = math.log10(4 / 3)    # N4: a quarter of the gap closed; within 4/3 of dropout's gap
N9_RATIO = 3.0                 # N9: 'far more' = at least 3x the time
N9_BATCH = 1024
N9_STEPS_GAIN = math.log10(1.25)
N9_DATA = {"dim": 8, "n": 1024, "target": 0.2, "steps": 300, "every": 3, "lrs": (0.1, 0.3, 1.0), "batch": 64,
           "eval_n": 512, "seeds": (6, 12)}   # seeds (--quick, default)
KERNEL_SHAPE = (256, 512)


def one_thread(fn):
    """Run a training part on one BLAS thread: its matrices are small, and a second thread only waits."""

    @functools.wraps(fn)
    def wrapped(opts, ctx, **kwargs):
        with threadpool_limits(limits=1):
            return fn(opts, ctx, **kwargs)

    return wrapped


def tiled(seeds, k: int) -> np.ndarray:
    """Replica seeds for k settings x S seeds, setting-major: replica j * S + s has seed s."""
    return np.tile(np.asarray(seeds), k)


def final_loss(run: Run, cap: float | None = None) -> np.ndarray:
    """Each replica's last evaluated training loss; a diverged replica's is `cap` when given."""
    loss = Run.last(run.train_loss)
    return loss if cap is None else np.where(run.diverged | ~np.isfinite(loss), cap, loss)


def hidden(depth: int, width: int) -> tuple[int, ...]:
    return (width,) * depth


# ----------------------------------------------------------------------------- N1

@one_thread
def claim_n1(opts, ctx: RunContext) -> None:
    """Distribution shift, gradient shift and noisy BN against the same net without BN; control: frozen BN."""
    from dlbench.experiments.norm import CLAIMS

    points = CLAIMS["N1"].points(ctx.quick)
    data = m.make_data(opts.data, ctx.seed, opts.train_size)
    X = data.X_test[:PROBE_SAMPLES]
    seeds = ctx.seed_list
    for depth in dict.fromkeys(p["depth"] for p in points):
        lrs = [p["lr"] for p in points if p["depth"] == depth]
        runs = {v: _shift_run(opts, ctx, data, X, depth, lrs, v) for v in ("none", "batch", "noisy", "frozen")}
        for k, lr in enumerate(lrs):
            point = {"depth": depth, "lr": lr}
            loss, moment, grad = ({v: r[i][k] for v, r in runs.items()} for i in range(3))
            for v in runs:
                case = {"depth": depth, "lr": lr, "net": v}
                ctx.record.metric("final_loss", loss[v], case=case, better="lower", seeds=seeds, section="n1.shift")
                ctx.record.metric("moment_shift", moment[v], case=case, better="none", seeds=seeds,
                                  section="n1.shift")
                ctx.record.metric("gradient_shift", grad[v], case=case, better="none", seeds=seeds,
                                  section="n1.shift")
            ctx.finding("N1", all_of(_shift_parts(moment, grad, "frozen", ctx.seed)), point=point, role="control")
            speedup = np.median(loss["none"]) / np.median(loss["batch"])
            if not speedup >= 2:
                ctx.not_run("N1", f"batch norm does not train faster here (median final loss no BN / BN "
                                  f"{speedup:.3g} < 2): nothing to explain", point=point)
                continue
            if not np.median(moment["noisy"]) >= np.median(moment["none"]):
                ctx.not_run("N1", f"the noise shifts the next layer's input less ({np.median(moment['noisy']):.3g}) "
                                  f"than the net without BN shifts it ({np.median(moment['none']):.3g})", point=point)
                continue
            slower = finding(log_ratio(loss["none"], loss["noisy"]), direction="less", seed=ctx.seed,
                             label="(c) log10 final loss no BN / noisy BN",
                             note=f"median final loss no BN {np.median(loss['none']):.3g}, BN "
                                  f"{np.median(loss['batch']):.3g}, noisy BN {np.median(loss['noisy']):.3g}; "
                                  f"noisy BN's input shift {np.median(moment['noisy']):.3g} against no BN's "
                                  f"{np.median(moment['none']):.3g}")
            ctx.finding("N1", all_of([*_shift_parts(moment, grad, "batch", ctx.seed), slower]), point=point)
    _check_noise_off(opts, ctx, data)


def _shift_parts(moment: dict, grad: dict, name: str, seed: int) -> list:
    label = "BN" if name == "batch" else "frozen BN"
    return [finding(log_ratio(moment["none"], moment[name]), threshold=HALF, seed=seed,
                    label=f"(a) log10 layer-input shift no BN / {label}",
                    note=f"median shift {np.median(moment['none']):.3g} against {np.median(moment[name]):.3g}"),
            finding(log_ratio(grad["none"], grad[name]), threshold=HALF, seed=seed,
                    label=f"(b) log10 gradient shift (ICS) no BN / {label}",
                    note=f"median ||G'-G||/||G|| {np.median(grad['none']):.3g} against {np.median(grad[name]):.3g}")]


def _shift_run(opts, ctx: RunContext, data, X, depth: int, lrs: list, variant: str):
    """One net (none, batch, noisy or frozen BN) at every lr of the point's row: (final loss, moment shift,
    gradient shift), each (K, S)."""
    norm = "none" if variant == "none" else "batch"
    mode = {"noisy": "noisy", "frozen": "frozen"}.get(variant, "batch")
    net = Net(NetSpec((data.n_features, *hidden(depth, opts.width), data.n_outputs), norm=norm, mode=mode,
                      noise=NOISE))
    S, K = ctx.seeds, len(lrs)
    params = net.init(tiled(ctx.seed_list, K))
    state = net.init_state(S * K)
    if mode == "frozen":
        net.collect_stats(params, data.X_train, state)
    probe = m.ShiftProbe(net, params, state, X, ctx.rng("N1 probe noise", depth))
    every = max(1, opts.steps // PROBES)
    run = fit(net, params, data, lr=np.repeat(lrs, S), batch=BATCH, steps=opts.steps, state=state,
              rng=ctx.rng("N1 order", depth), probe=probe, probe_at=range(every - 1, opts.steps, every))
    return (final_loss(run, m.LOSS_CAP).reshape(K, S), probe.moment.reshape(K, S), probe.gradient.reshape(K, S))


def _check_noise_off(opts, ctx: RunContext, data) -> None:
    widths = (data.n_features, opts.width, opts.width, data.n_outputs)
    bn = Net(NetSpec(widths, norm="batch"))
    quiet = Net(NetSpec(widths, norm="batch", mode="noisy", noise=(0.0, 1.0)))
    params = bn.init(ctx.seed_list[:2])
    rng = ctx.rng("N1 noise off")
    dist = quiet.draw_noise(rng, 2)
    noise = quiet.sample_noise(dist, 64, rng)
    x = data.X_train[:64]
    a = bn.forward(params, x, bn.init_state(2), train=True)[0]
    b = quiet.forward(params, x, quiet.init_state(2), train=True, noise=noise)[0]
    ctx.check("N1.noise-off", float(np.abs(a - b).max()), 0.0, claim="N1", n=1,
              what="max |noisy BN(noise 0) - BN| on one batch")


# ----------------------------------------------------------------------------- N2

@one_thread
def claim_n2(opts, ctx: RunContext) -> None:
    """Largest stable lr of the grid with and without BN; control: frozen BN."""
    from dlbench.experiments.norm import CLAIMS

    lrs = sorted(parse_numbers(opts.lr_grid, float, what="--lr-grid"))
    data = m.make_data(opts.data, ctx.seed, opts.train_size)
    seeds = [ctx.seed + i for i in range(max(N2_SEEDS, ctx.seeds))]
    S, K = len(seeds), len(lrs)
    for point in CLAIMS["N2"].points(ctx.quick):
        depth = point["depth"]
        top = {}
        for variant in ("none", "batch", "frozen"):
            net = Net(NetSpec((data.n_features, *hidden(depth, opts.width), data.n_outputs),
                              norm="none" if variant == "none" else "batch",
                              mode="frozen" if variant == "frozen" else "batch"))
            params = net.init(np.repeat(seeds, K))
            run = fit(net, params, data, lr=np.tile(lrs, S), batch=BATCH, steps=opts.steps,
                      rng=ctx.rng("N2 order", depth))
            stable = m.halved(run.train_loss[:, 0], Run.last(run.train_loss), run.diverged).reshape(S, K)
            top[variant] = m.largest_stable(lrs, stable)
            for j, lr in enumerate(lrs):
                case = {"depth": depth, "net": variant, "lr": float(lr)}
                ctx.record.metric("stable", stable[:, j].astype(float), case=case, unit="bool", better="higher",
                                  seeds=seeds, section="n2.lr_grid")
                ctx.record.metric("final_loss", final_loss(run).reshape(S, K)[:, j], case=case, better="lower",
                                  seeds=seeds, section="n2.lr_grid")
            ctx.record.metric("log10_largest_stable_lr", top[variant], case={"depth": depth, "net": variant},
                              better="higher", seeds=seeds, section="n2.largest")
        at_top = [v for v in top if np.any(top[v] >= math.log10(lrs[-1]))]
        note = (f"largest stable lr (median) no BN {10 ** np.median(top['none']):.3g}, BN "
                f"{10 ** np.median(top['batch']):.3g}; stable: not diverged and the training loss at least halved "
                f"in {opts.steps} steps")
        if at_top:
            note += f"; {', '.join(at_top)} stable at the grid's top {lrs[-1]:g} (a lower bound)"
        ctx.finding("N2", finding(top["batch"] - top["none"], threshold=GRID_STEP, seed=ctx.seed,
                                  label="log10 largest stable lr, BN - no BN", unit="decades", note=note), point=point)
        ctx.finding("N2", finding(top["frozen"] - top["none"], threshold=GRID_STEP, seed=ctx.seed,
                                  label="log10 largest stable lr, frozen BN - no BN", unit="decades"),
                    point=point, role="control")


# ----------------------------------------------------------------------------- N3

@one_thread
def claim_n3(opts, ctx: RunContext) -> None:
    """Spread of the final loss over init scales without and with BN (eps 1e-5); control: frozen BN. The exact
    identity (eps 1e-30) is the check N3.scale-invariance."""
    from dlbench.experiments.norm import CLAIMS

    data = m.make_data(opts.data, ctx.seed, opts.train_size)
    seeds, S = ctx.seed_list, ctx.seeds
    K, A = len(N3_LRS), len(N3_SCALES)
    unit = N3_SCALES.index(1.0)
    for point in CLAIMS["N3"].points(ctx.quick):
        depth = point["depth"]
        spread, chosen = {}, {}
        for variant in ("none", "batch", "frozen"):
            net = Net(NetSpec((data.n_features, *hidden(depth, opts.width), data.n_outputs),
                              norm="none" if variant == "none" else "batch",
                              mode="frozen" if variant == "frozen" else "batch"))
            params = net.init(tiled(seeds, K * A))
            m.scale_hidden(net, params, np.tile(np.repeat(N3_SCALES, S), K))
            run = fit(net, params, data, lr=np.repeat(N3_LRS, A * S), batch=BATCH, steps=opts.steps,
                      rng=ctx.rng("N3 order", depth))
            loss = final_loss(run, m.LOSS_CAP).reshape(K, A, S)
            best = int(np.argmin(np.median(loss[:, unit], axis=1)))
            chosen[variant] = N3_LRS[best]
            spread[variant] = m.spread_decades(loss[best].T)
            for a, scale in enumerate(N3_SCALES):
                ctx.record.metric("final_loss", loss[best, a], better="lower", seeds=seeds, section="n3.init_scale",
                                  case={"depth": depth, "net": variant, "init_scale": scale, "lr": N3_LRS[best]})
        note = (f"median spread no BN {np.median(spread['none']):.3g}, BN {np.median(spread['batch']):.3g} decades "
                f"over init scales {', '.join(f'{a:g}' for a in N3_SCALES)}; lr no BN {chosen['none']:g}, BN "
                f"{chosen['batch']:g}")
        ctx.finding("N3", finding(spread["none"] - spread["batch"], threshold=SPREAD, seed=ctx.seed, unit="decades",
                                  label="spread of log10 final loss over init scales, no BN - BN", note=note),
                    point=point)
        ctx.finding("N3", finding(spread["none"] - spread["frozen"], threshold=SPREAD, seed=ctx.seed,
                                  unit="decades", label="spread, no BN - frozen BN"), point=point, role="control")
    err, n = m.scale_invariance_error(ctx.rng("N3 identity"))
    ctx.check("N3.scale-invariance", err, 1e-10, claim="N3", n=n,
              what="max |BN(aWx) - BN(Wx)| / max |BN(Wx)|, kernel and net, float64, eps 1e-30")


# ----------------------------------------------------------------------------- N4

@one_thread
def claim_n4(opts, ctx: RunContext) -> None:
    """Generalisation gap of none, dropout, BN, both; control: BN with population statistics (no batch noise)."""
    from dlbench.experiments.norm import CLAIMS

    c = N4_DATA
    data = m.make_data("spirals", ctx.seed, c["n"], noise=c["noise"])
    seeds = ctx.seed_list
    widths = (data.n_features, *hidden(c["depth"], c["width"]), data.n_outputs)

    def gap(name: str, norm: str, mode: str = "batch", p: float = 0.0) -> dict:
        net = Net(NetSpec(widths, norm=norm, mode=mode, dropout=p))
        params = net.init(seeds)
        run = fit(net, params, data, lr=c["lr"], batch=c["batch"], steps=c["steps"], rng=ctx.rng("N4 order"),
                  refresh=2)
        train_loss, train_acc = evaluate(net, run.params, run.state, data.X_train, data.y_train)
        out = {"train_loss": train_loss, "test_loss": run.test_loss[:, -1], "train_acc": train_acc,
               "test_acc": run.test_acc[:, -1]}
        out["loss_gap"] = out["test_loss"] - out["train_loss"]
        out["acc_gap"] = out["train_acc"] - out["test_acc"]
        for k, v in out.items():
            ctx.record.metric(k, v, case={"net": name, "p": p}, seeds=seeds, section="n4.gap",
                              better="lower" if "loss" in k or "gap" in k else "higher")
        return out

    fixed = {"none": gap("none", "none"), "batch": gap("batch norm", "batch"),
             "population": gap("population BN", "batch", "population")}
    for point in CLAIMS["N4"].points(ctx.quick):
        p = point["p"]
        drop = gap("dropout", "none", p=p)
        both = gap("batch norm + dropout", "batch", p=p)
        for role, name in (("claim", "batch"), ("control", "population")):
            g = fixed[name]
            label = "BN" if name == "batch" else "population BN"
            note = (f"loss gap no BN {np.median(fixed['none']['loss_gap']):.3g}, dropout {np.median(drop['loss_gap']):.3g}, "
                    f"{label} {np.median(g['loss_gap']):.3g}, BN + dropout {np.median(both['loss_gap']):.3g}; "
                    f"accuracy gap no BN {np.median(fixed['none']['acc_gap']):.3g}, dropout "
                    f"{np.median(drop['acc_gap']):.3g}, {label} {np.median(g['acc_gap']):.3g}")
            parts = [finding(log_ratio(_floor(fixed["none"]["loss_gap"]), _floor(g["loss_gap"])), threshold=QUARTER,
                             seed=ctx.seed, label=f"log10 loss gap no BN / {label}"),
                     finding(log_ratio(_floor(drop["loss_gap"]), _floor(g["loss_gap"])), null=-QUARTER,
                             seed=ctx.seed, label=f"log10 loss gap dropout / {label}")]
            ctx.finding("N4", all_of(parts, note=note), point=point, role=role)


def _floor(gap: np.ndarray) -> np.ndarray:
    """A gap of at least 1e-3 nats, so that a net that does not overfit has a finite ratio."""
    return np.maximum(gap, 1e-3)


# ----------------------------------------------------------------------------- N8

def check_n8(opts, ctx: RunContext) -> None:
    """Layer, instance and group norm (kernels in float32 and float64, and whole nets) leave a sample's output
    unchanged when the rest of its batch is replaced; batch norm is the control that must change it."""
    from dlbench.nn.norm import get_norm

    rng = ctx.rng("N8")
    F = opts.width
    hyper = {"layer": {}, "instance": {"channels": opts.channels}, "batch": {},
             "group": {"channels": opts.channels, "num_groups": opts.groups}}
    worst, checks, control = 0.0, 0, math.inf
    for name in ("layer", "instance", "group", "batch"):
        if name == "instance" and F // opts.channels < 2:
            continue
        norm = get_norm(name, **hyper[name])
        for dt in (np.float32, np.float64):
            params, state = norm.init(F, prefix=(3,), dtype=dt)
            params = {k: (v + rng.standard_normal(v.shape)).astype(dt) for k, v in params.items()}
            err, n = m.batch_dependence(norm, params, state, rng, (3, 16, F), dt)
            _record_n8(ctx, name, np.dtype(dt).name, err)
            if name == "batch":
                control = min(control, err)
            else:
                worst, checks = max(worst, err), checks + n
        net = Net(NetSpec((4, F, F, 3), norm=name, channels=opts.channels, groups=opts.groups))
        err = m.net_batch_dependence(net, net.init(ctx.seed_list[:3]), rng)
        _record_n8(ctx, name, "net", err)
        if name == "batch":
            control = min(control, err)
        else:
            worst, checks = max(worst, err), checks + 1
    ctx.check("N8", worst, 1e-6, claim="N5", n=checks,
              what="max relative change of a sample's output, rest of the batch replaced (layer, instance, group)")
    ctx.check("N8.batch-control", max(0.0, 1e-3 - control), 0.0, claim="N5", n=3,
              what=f"batch norm changes it by {control:.3g}; shortfall below 1e-3")


def _record_n8(ctx: RunContext, name: str, where: str, err: float) -> None:
    ctx.record.metric("max_rel_change", err, case={"norm": name, "where": where}, section="n8.independence",
                      better="none")


# ----------------------------------------------------------------------------- N9

def claim_n9(opts, ctx: RunContext) -> None:
    """ZCA whitening's cost against batch norm's over F (one thread) in each implementation of the run, and what
    it buys: steps to the target with the input normalized by BN, ZCA, ZCA + affine; control: input that is
    already white. The training half is measured once and joins each implementation's cost half."""
    from dlbench.experiments.norm import CLAIMS

    points = CLAIMS["N9"].points(ctx.quick)
    impls = list(dict.fromkeys(p["implementation"] for p in points))
    feats = sorted(parse_numbers(opts.features, int, what="--features"))
    times = _time_whitening(ctx, feats, impls)
    cost = {impl: _n9_cost(ctx, times, feats, impl) for impl in impls}
    mixed = m.correlated_data(ctx.rng("N9 white check"), N9_BATCH, 1, 16, 100.0, white=False).X_train
    y, _ = zca_forward(mixed.astype(np.float64))
    cov = (y.T @ y) / N9_BATCH
    ctx.check("N9.white", float(np.abs(cov - np.eye(16)).max()), 1e-3, claim="N9", n=1,
              what="max |cov(ZCA(x)) - I|, 1024 x 16 float64, covariance of condition number 100")
    with threadpool_limits(limits=1):
        for condition in dict.fromkeys(p["condition"] for p in points):
            for role, white in (("claim", False), ("control", True)):
                steps = _whitening_steps(ctx, condition, white)
                # null at the practical gain: supported above 1.25x, refuted when 1.25x is excluded
                gain = finding(log_ratio(steps["batch"], steps["zca + affine"]), null=N9_STEPS_GAIN,
                               seed=ctx.seed, label="(c) log10 steps to target, BN input / ZCA + affine input",
                               note=f"median steps BN {np.median(steps['batch']):.3g}, ZCA "
                                    f"{np.median(steps['zca']):.3g}, ZCA + affine "
                                    f"{np.median(steps['zca + affine']):.3g} ({'white' if white else 'correlated'} "
                                    f"input)")
                for point in (p for p in points if p["condition"] == condition):
                    ctx.finding("N9", all_of([*cost[point["implementation"]], gain], headline=0), point=point,
                                role=role, timing=True)


def _n9_cost(ctx: RunContext, times: dict, feats: list[int], impl: str) -> list:
    """N9's cost findings in one implementation: (a) ZCA / batch norm time at the largest F, (b) the exponent
    difference of time ~ F^k; the exponents recorded beside."""
    from dlbench import peer

    k_zca, lo_zca, hi_zca, b_zca = power_law(feats, [times[impl, "zca", f] for f in feats], seed=ctx.seed)
    k_bn, lo_bn, hi_bn, b_bn = power_law(feats, [times[impl, "batch", f] for f in feats], seed=ctx.seed + 1)
    for kernel, k, lo, hi in (("zca", k_zca, lo_zca, hi_zca), ("batch", k_bn, lo_bn, hi_bn)):
        for metric, v in (("exponent", k), ("exponent_low", lo), ("exponent_high", hi)):
            ctx.record.metric(metric, v, case={"kernel": kernel, "implementation": impl}, section="n9.exponent")
    big = feats[-1]
    r, rlo, rhi = bootstrap_ratio_ci(times[impl, "batch", big], times[impl, "zca", big], seed=ctx.seed)
    n_samples = min(times[impl, "batch", big].size, times[impl, "zca", big].size)
    cost = from_interval(r, rlo, rhi, n=n_samples, method="bootstrap", null=1.0, threshold=N9_RATIO - 1.0, unit="x",
                         label=f"(a) time ZCA / batch norm at F={big}, {peer.label(impl)}")
    elo, ehi = (float(v) for v in np.percentile(b_zca - b_bn, [2.5, 97.5]))
    growth = from_interval(k_zca - k_bn, elo, ehi, n=n_samples, method="bootstrap",
                           label=f"(b) exponent ZCA - batch norm, {peer.label(impl)}",
                           note=f"time ~ F^{k_zca:.2f} against F^{k_bn:.2f} over F = {feats[0]}..{big}")
    return [cost, growth]


def _time_whitening(ctx: RunContext, feats: list[int], impls: list[str]) -> dict:
    """ZCA whitening's and batch norm's forward on (1024, F) float32 in each implementation, all of one F
    interleaved, on one thread (torch on as many as dlbench's kernels); seconds per call by (impl, kernel, F)."""
    from dlbench import peer
    from dlbench.nn.parallel import current_threads

    rng = ctx.rng("N9 timing")
    out = {}
    with threadpool_limits(limits=1), peer.threads(current_threads()):
        for F in feats:
            x = rng.standard_normal((N9_BATCH, F), dtype=np.float32)
            calls = [({"f": F, "implementation": impl, "kernel": kernel},
                      peer.kernel("normalize", kernel, x, impl=impl)) for impl in impls for kernel in ("batch", "zca")]
            ts = ctx.time_interleaved("forward", calls, items=[x.size] * len(calls),
                                      bytes=[2 * x.nbytes] * len(calls), section="n9.timing")
            out.update({(c["implementation"], c["kernel"], F): t.samples for (c, _), t in zip(calls, ts)})
    return out


def _whitening_steps(ctx: RunContext, condition: float, white: bool) -> dict:
    """Steps to the target training loss (half the training set as one batch, its own statistics) per input
    normalization, each at its best lr (median over seeds); a run that misses it counts twice the budget."""
    c = N9_DATA
    rng = ctx.rng("N9 data", condition, white)
    data = m.correlated_data(rng, c["n"], 512, c["dim"], condition, white)
    seeds = [ctx.seed + i for i in range(max(c["seeds"][not ctx.quick], ctx.seeds))]
    S, K = len(seeds), len(c["lrs"])
    out = {}
    for name, kind, affine in (("batch", "batch", True), ("zca", "zca", False), ("zca + affine", "zca", True)):
        net = Net(NetSpec((c["dim"], 32, 32, 2), input_norm=kind, input_affine=affine))
        params = net.init(tiled(seeds, K))
        run = fit(net, params, data, lr=np.repeat(c["lrs"], S), batch=c["batch"], steps=c["steps"],
                  rng=ctx.rng("N9 order", condition, white), eval_at=range(c["every"], c["steps"] + 1, c["every"]),
                  eval_n=c["eval_n"], full_batch_eval=True, target_loss=c["target"], eval_test=False,
                  stop_when=best_rate_decided(K, S))
        steps = np.where(run.reached_step >= 0, run.reached_step, 2 * c["steps"]).reshape(K, S)
        best = int(np.argmin(np.median(steps, axis=1)))
        out[name] = steps[best]
        ctx.record.metric("steps_to_target", steps[best], better="lower", seeds=seeds, section="n9.steps",
                          case={"condition": condition, "input": "white" if white else "correlated", "norm": name,
                                "lr": c["lrs"][best]})
    return out


# ----------------------------------------------------------------------------- kernel timings

def time_kernels(opts, ctx: RunContext) -> None:
    """Forward (training mode) and backward of each norm kernel on (256, 512) float32, buffers reused.

    Bytes are the minimum traffic: forward reads x and writes y; backward reads g and the saved input and writes
    dx (the identity's backward only copies g)."""
    from dlbench.nn.norm import get_norm

    rng = ctx.rng("kernel timing")
    N, F = KERNEL_SHAPE
    x = rng.standard_normal((N, F), dtype=np.float32)
    g = rng.standard_normal((N, F), dtype=np.float32)
    per_channel = max(2, opts.width // opts.channels)
    hyper = {"none": {}, "batch": {}, "layer": {}, "instance": {"channels": F // per_channel},
             "group": {"channels": F // per_channel, "num_groups": opts.groups}}
    for name, h in hyper.items():
        if "num_groups" in h and h["channels"] % h["num_groups"]:
            h["num_groups"] = 1
        norm = get_norm(name, **h)
        params, state = norm.init(F)
        _, cache = norm.forward(x, params, state, train=True)
        case = {"norm": name, "n": N, "f": F}
        ctx.time("forward", norm.forward, x, params, state, True, out=np.empty_like(x), reuse=cache, case=case,
                 items=x.size, bytes=2 * x.nbytes, section="norm.kernels")
        moved = (2 if name == "none" else 3) * x.nbytes
        ctx.time("backward", norm.backward, g, cache, out=np.empty_like(x), case=case, items=x.size, bytes=moved,
                 section="norm.kernels")

