"""The activations experiment's parts that train nets: centred outputs (A3, A12), oscillation (A4), dying
units (A8, A13) and the burden of alpha (A11).

Every grid of learning rates and seeds rides the replica axis of one training call per net (per-replica
learning rates of shape (R, 1, 1)).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from dlbench.experiments.activations import measure as m
from dlbench.experiments.base import RunContext
from dlbench.stats import all_of, finding, from_interval

BATCH = 64
TUNING_SEEDS = 2              # A4, A12: seeds that choose each activation's best lr; the verdict uses the others
SIGNS_NULL = 0.25             # A3: a quarter of the units' updates one-signed (chance: 2^(1-W))
A12_LRS = (0.01, 0.03, 0.1, 0.3, 1.0)
A12_TARGET = 0.3              # A12: MSE on a standardised target: 70 % of the variance explained
A12_WINDOW = 20               # A12: minibatch losses averaged to decide when the target is reached
A12_NULL = math.log2(1.25)    # A12: at least 1.25x the steps
A12_TEACHER_DIM = 8
A4_SCALE, A4_CONTROL_SCALE = 8.0, 0.5
A4_NULL = 0.05                # A4: at least 1 step in 20 more reverses
A4_POINTS = 256
DIE_FRACTION = 0.05           # A8: a gate below 5 % of its initial value
DIED_NULL = 0.1               # A8: more than a tenth of the units
A8_CONTROL_LR = 0.001
FALSE_NULL = 0.5              # A13: most = more than half
BLOCKED_NULL = 1e-6           # A13: no update = below 1e-6 of the layer's RMS unit update
A13_CHECK_STEPS = 20          # A13's check: the first steps of the relu training
A11_GRIDS = {"leaky_relu": ("negative_slope", (0.01, 0.1, 0.3)), "elu": ("alpha", (0.3, 1.0, 3.0)),
             "prelu": ("init", (0.05, 0.25, 0.5))}
A11_THRESHOLD = 0.5           # A11: R at least 1.5 = 1 + 0.5 above the null of 1


def _replicate(params: list, k: int) -> list:
    return [np.concatenate([p] * k) for p in params]


def _lr_array(lrs, per_lr: int) -> np.ndarray:
    return np.repeat(np.asarray(lrs, np.float32), per_lr).reshape(-1, 1, 1)


def _epochs(data, steps: int, batch: int) -> int:
    per_epoch = max(1, data.X_train.shape[0] // min(batch, data.X_train.shape[0]))
    return -(-steps // per_epoch)


# ----------------------------------------------------------------------------- A3, A12: centred outputs

def centring(opts, ctx: RunContext, hidden_layers: int = 1) -> None:
    """Sigmoid hidden layers against sigmoid - 1/2, without and with batch norm, for nets of `hidden_layers`
    sigmoid layers (nothing when this run's grid has no such point): A3's one-signed updates during
    training, A12's steps to target at each one's best lr."""
    from dlbench.data import make_dataset
    from dlbench.experiments.activations import CLAIMS
    from dlbench.experiments.teacher import relu_teacher

    hidden = hidden_layers
    a3_points = [p for p in CLAIMS["A3"].points(ctx.quick) if p["hidden_layers"] == hidden]
    a12_points = [p for p in CLAIMS["A12"].points(ctx.quick) if p["hidden_layers"] == hidden]
    if not a3_points and not a12_points:
        return
    teacher_seed = int(ctx.rng("A12 teacher").integers(2**31))
    data = make_dataset("teacher", seed=ctx.seed, dim=A12_TEACHER_DIM,
                        net=relu_teacher(A12_TEACHER_DIM, activation="tanh", seed=teacher_seed))
    tuning = [int(s) for s in ctx.rng("A12 tuning seeds").integers(2**31, size=TUNING_SEEDS)]
    seeds = [*tuning, *ctx.seed_list]
    lrs = list(A12_LRS)
    steps = 2 * opts.steps
    runs = {(norm, arm): _train_centring(ctx, data, hidden, opts.width, arm, norm, seeds, lrs, steps)
            for norm in ("none", "batch") for arm in ("sigmoid", "sigmoid-1/2")}
    for point in a12_points:
        for norm, role in (("none", "claim"), ("batch", "control")):
            ctx.finding("A12", _a12_finding(runs[norm, "sigmoid"], runs[norm, "sigmoid-1/2"], lrs, steps,
                                            norm, ctx), point=point, role=role)
    j = _best(runs["none", "sigmoid"])
    for point in a3_points:
        for arm, role in (("sigmoid", "claim"), ("sigmoid-1/2", "control")):
            share = runs["none", arm]["one_signed"][j, TUNING_SEEDS:]
            ctx.finding("A3", finding(share[np.isfinite(share)], null=SIGNS_NULL, seed=ctx.seed,
                                      label=f"{arm}: share of steps x units with one-signed updates",
                                      note=f"during training at the sigmoid net's best lr {lrs[j]:g}"),
                        point=point, role=role)
    if hidden == 1:
        ctx.check("A3.per-sample-one-sign", float(runs["none", "sigmoid"]["mixed"]), 0.0, claim="A3",
                  n=runs["none", "sigmoid"]["columns"],
                  what="per-sample update columns with both signs, inputs sigmoid outputs")
        _check_same_derivative(ctx)


def _train_centring(ctx, data, hidden: int, width: int, arm: str, norm: str, seeds: list, lrs: list,
                    steps: int) -> dict:
    from dlbench.nn.losses import get_loss
    from dlbench.nn.optim import get_optimizer
    from dlbench.nn.train import train

    acts = [arm] * hidden + ["identity"]
    net = m.net((data.n_features,) + (width,) * (hidden + 1) + (data.n_outputs,), acts, norm=norm)
    L, S = len(lrs), len(seeds)
    params = _replicate(net.init(seeds), L)
    W1 = net.layers[1].W
    signs = {"sum": np.zeros(L * S), "steps": 0}

    def callback(info) -> None:
        signs["sum"] += m.one_signed_share(info.grads[W1])
        signs["steps"] += 1

    hist = train(net, data, np.tile(seeds, L), params=params, optimizer=get_optimizer("sgd", lr=_lr_array(lrs, S)),
                 epochs=_epochs(data, steps, BATCH), batch_size=BATCH, max_steps=steps, eval_every=0,
                 callback=callback if norm == "none" else None)
    reached = m.steps_to(hist.loss, A12_TARGET, A12_WINDOW).reshape(L, S)
    final = np.nanmean(hist.loss[:, -A12_WINDOW:], axis=1).reshape(L, S)
    one_signed = signs["sum"] / max(1, signs["steps"])
    one_signed[hist.diverged] = np.nan          # a frozen replica's zero updates have no sign
    out = {"reached": reached, "final": final, "diverged": hist.diverged.reshape(L, S),
           "one_signed": one_signed.reshape(L, S), "loss": hist.loss.reshape(L, S, -1)}
    case = {"arm": arm, "norm": norm, "hidden_layers": hidden, "width": width}
    for j, lr in enumerate(lrs):
        rc = {**case, "lr": lr}
        ctx.record.metric("steps_to_target", reached[j, TUNING_SEEDS:], case=rc, better="none",
                          seeds=ctx.seed_list, section="a12.convergence")
        ctx.record.metric("final_loss", final[j, TUNING_SEEDS:], case=rc, better="lower", seeds=ctx.seed_list,
                          section="a12.convergence")
        if norm == "none":
            ctx.record.metric("one_signed_share", out["one_signed"][j, TUNING_SEEDS:], case=rc,
                              seeds=ctx.seed_list, section="a3.signs")
    if norm == "none" and arm == "sigmoid":
        # the algebra behind A3 on every replica's trained net: one minibatch, per-sample updates of layer 1
        x = data.X_train[:BATCH].astype(net.dtype)
        with np.errstate(all="ignore"):
            loss_fn = get_loss("mse")
            out_, cache = net.forward(hist.params, x)
            _, g = loss_fn(out_, data.y_train[:BATCH].astype(net.dtype))
            _, lg = net.backward(hist.params, cache, g, return_layer_grads=True)
        out["mixed"] = m.mixed_per_sample(cache.post[0], lg.pre[1])
        out["columns"] = int(lg.pre[1].size)
    return out


def _best(run: dict) -> int:
    """Index of the lr with the fewest median steps to target on the tuning seeds (never reached = after the
    budget), ties broken by the lower final loss."""
    reached = run["reached"][:, :TUNING_SEEDS].astype(float)
    reached[reached < 0] = np.inf
    final = np.where(np.isfinite(run["final"][:, :TUNING_SEEDS]), run["final"][:, :TUNING_SEEDS], np.inf)
    keys = [(np.median(r), np.median(f)) for r, f in zip(reached, final)]
    return min(range(len(keys)), key=lambda i: keys[i])


def _a12_finding(sig: dict, cen: dict, lrs: list, steps: int, norm: str, ctx: RunContext):
    bs, bc = _best(sig), _best(cen)
    s = sig["reached"][bs, TUNING_SEEDS:].astype(float)
    c = cen["reached"][bc, TUNING_SEEDS:].astype(float)
    # a centred run that never got there leaves the ratio unknown; a sigmoid one that never did is a lower bound
    s = np.where(s < 0, steps, s)
    with np.errstate(all="ignore"):
        ratio = np.where(c > 0, np.log2(s / c), np.nan)
    censored = int((sig["reached"][bs, TUNING_SEEDS:] < 0).sum())
    what = "with batch norm: " if norm == "batch" else ""
    note = (f"best lr sigmoid {lrs[bs]:g}, sigmoid - 1/2 {lrs[bc]:g}; median steps {np.median(s):.0f} against "
            f"{np.median(np.where(c > 0, c, np.nan)):.0f}" if np.isfinite(c).any() and (c > 0).any() else
            f"best lr sigmoid {lrs[bs]:g}, sigmoid - 1/2 {lrs[bc]:g}; sigmoid - 1/2 never reached the target")
    if censored:
        note += f"; {censored} sigmoid run(s) never reached it (counted as {steps} steps)"
    if norm == "batch":
        trained = ~(sig["diverged"] | cen["diverged"])
        with np.errstate(all="ignore"):
            gap = np.nanmax(np.abs(sig["loss"][trained] - cen["loss"][trained]) / np.abs(sig["loss"][trained]))
        note += f"; wherever they train, the two nets' minibatch losses agree to {gap:.1g} (relative)"
    return finding(ratio, null=A12_NULL, seed=ctx.seed,
                   label=f"{what}log2 steps to loss {A12_TARGET} sigmoid / sigmoid - 1/2", note=note)


def _check_same_derivative(ctx: RunContext) -> None:
    from dlbench.nn.activations import ACTIVATIONS

    z = np.linspace(-20, 20, 40_001, dtype=np.float32)
    sig, cen = ACTIVATIONS["sigmoid"], m.centred_sigmoid()
    err = max(float(np.abs(m.derivative(cen, z) - m.derivative(sig, z)).max()),
              float(np.abs(cen.forward(z) - (sig.forward(z) - 0.5)).max()))
    ctx.check("A12.same-derivative", err, 1e-6, claim="A12", n=z.size,
              what="max |f' of sigmoid - 1/2 - sigmoid'| and |f - (sigmoid - 1/2)| on [-20, 20], float32")


# ----------------------------------------------------------------------------- A4: oscillation

def oscillation(opts, ctx: RunContext) -> None:
    """Gradient reversals under full-batch gradient descent, sin against tanh, with inputs that reach sin's
    turning points (x8) and inputs that stay inside its monotonic part (x0.5, the control)."""
    from dlbench.data import make_dataset
    from dlbench.experiments.activations import CLAIMS

    points = CLAIMS["A4"].points(ctx.quick)
    lrs = sorted({p["lr"] for p in points})
    base = make_dataset("xor", seed=ctx.seed, n_train=A4_POINTS, n_test=16)
    tuning = [int(s) for s in ctx.rng("A4 tuning seeds").integers(2**31, size=TUNING_SEEDS)]
    seeds = [*tuning, *ctx.seed_list]
    steps = max(20, opts.steps // 2)
    for scale, role in ((A4_SCALE, "claim"), (A4_CONTROL_SCALE, "control")):
        data = dataclasses.replace(base, X_train=base.X_train * scale, X_test=base.X_test * scale)
        rev, best = {}, {}
        for name in ("sin", "tanh"):
            rev[name], best[name] = _train_reversals(ctx, data, name, scale, opts.width, seeds, lrs, steps)
        note = (f"inputs x{scale:g}; at each one's best lr (sin {lrs[best['sin']]:g}, tanh "
                f"{lrs[best['tanh']]:g}): reversals {np.nanmedian(rev['sin'][best['sin']]):.3g} against "
                f"{np.nanmedian(rev['tanh'][best['tanh']]):.3g}")
        for point in points:
            j = lrs.index(point["lr"])
            ctx.finding("A4", finding(rev["sin"][j] - rev["tanh"][j], null=A4_NULL, seed=ctx.seed,
                                      label="share of steps with cos(g_t, g_t-1) < 0, sin - tanh",
                                      note=note), point=point, role=role)


def _train_reversals(ctx, data, name: str, scale: float, width: int, seeds: list, lrs: list, steps: int):
    from dlbench.nn.optim import get_optimizer
    from dlbench.nn.train import train

    net = m.net((data.n_features, width, width, data.n_outputs), name)
    L, S = len(lrs), len(seeds)
    params = _replicate(net.init(seeds), L)
    with np.errstate(all="ignore"):
        _, cache = net.forward(params, data.X_train)
    past0 = (np.abs(cache.pre[0]) > math.pi / 2).mean(axis=(1, 2)).reshape(L, S)
    counter = m.ReversalCounter(L * S)
    hist = train(net, data, np.tile(seeds, L), params=params, optimizer=get_optimizer("sgd", lr=_lr_array(lrs, S)),
                 epochs=steps, batch_size=data.X_train.shape[0], eval_every=0, shuffle=False, callback=counter)
    rev = counter.share.reshape(L, S)
    rev[hist.diverged.reshape(L, S)] = np.nan
    final = hist.train_loss[:, -1].reshape(L, S)
    with np.errstate(all="ignore"):
        _, cache = net.forward(hist.params, data.X_train)
    past1 = (np.abs(cache.pre[0]) > math.pi / 2).mean(axis=(1, 2)).reshape(L, S)
    for j, lr in enumerate(lrs):
        case = {"activation": name, "input_scale": scale, "lr": lr}
        rec = ctx.record.metric
        rec("reversal_share", rev[j, TUNING_SEEDS:], case=case, better="lower", seeds=ctx.seed_list,
            section="a4.reversals")
        rec("final_loss", final[j, TUNING_SEEDS:], case=case, better="lower", seeds=ctx.seed_list,
            section="a4.reversals")
        rec("past_half_pi_at_init", past0[j, TUNING_SEEDS:], case=case, seeds=ctx.seed_list, section="a4.reversals")
        rec("past_half_pi_after", past1[j, TUNING_SEEDS:], case=case, seeds=ctx.seed_list, section="a4.reversals")
    tuned = np.where(np.isfinite(final[:, :TUNING_SEEDS]), final[:, :TUNING_SEEDS], np.inf)
    best = int(np.argmin(np.median(tuned, axis=1)))
    return rev[:, TUNING_SEEDS:], best


# ----------------------------------------------------------------------------- A8, A13: dying units

def dying(opts, ctx: RunContext) -> None:
    """Relu and its variants trained with Adam over a grid of lrs: units whose gate fell below 5 % of its
    initial value (A8); truly and falsely dead units and the update of always-off units (A13)."""
    from dlbench.data import make_dataset
    from dlbench.experiments.activations import CLAIMS
    from dlbench.nn.losses import get_loss

    a8, a13 = CLAIMS["A8"].points(ctx.quick), CLAIMS["A13"].points(ctx.quick)
    lrs = sorted({A8_CONTROL_LR, *(p["lr"] for p in a8), *(p["lr"] for p in a13)})
    seeds = [ctx.seed + i for i in range(2 * ctx.seeds)]
    data = make_dataset("spirals", seed=ctx.seed)
    loss_fn = get_loss("softmax_ce")
    died, dead = {}, {}
    check = {"worst": 0.0, "units": 0}
    for name in dict.fromkeys(["relu", "leaky_relu", *(p["activation"] for p in a8)]):
        died[name], dead[name] = _train_dying(ctx, data, name, opts, seeds, lrs, loss_fn, check)
    ctx.check("A13.batch-dead-no-gradient", check["worst"], 0.0, claim="A13", n=check["units"],
              what=f"max |gradient| of relu units zero on a whole minibatch, first {A13_CHECK_STEPS} steps")
    for point in a8:
        name, lr = point["activation"], point["lr"]
        v = died[name][lrs.index(lr)]
        v = v[np.isfinite(v)]
        if v.size < len(seeds) // 2:
            ctx.not_run("A8", f"{name} diverged at lr {lr:g} in {len(seeds) - v.size} of {len(seeds)} runs",
                        point=point)
            continue
        relu = name == "relu"
        ctx.finding("A8", finding(v, direction="greater" if relu else "less", null=DIED_NULL, seed=ctx.seed,
                                  label=f"{name}: share of units whose gate fell below {DIE_FRACTION:g} of its "
                                        f"initial value", note=f"{len(seeds) - v.size} diverged run(s) left out"
                                  if v.size < len(seeds) else ""), point=point)
    control = died["relu"][lrs.index(A8_CONTROL_LR)]
    ctx.finding("A8", finding(control[np.isfinite(control)], null=DIED_NULL, seed=ctx.seed,
                              label=f"relu at lr {A8_CONTROL_LR:g}: share of units whose gate fell below "
                                    f"{DIE_FRACTION:g} of its initial value"),
                point={"activation": "relu", "lr": A8_CONTROL_LR}, role="control")
    for point in a13:
        j = lrs.index(point["lr"])
        for name, role in (("relu", "claim"), ("leaky_relu", "control")):
            ctx.finding("A13", _a13_finding(dead[name][j], name, ctx.seed), point=point, role=role)


def _train_dying(ctx, data, name: str, opts, seeds: list, lrs: list, loss_fn, check: dict):
    from dlbench.nn.optim import get_optimizer
    from dlbench.nn.train import train

    W = opts.width
    net = m.net((data.n_features, W, W, W, data.n_outputs), name)
    L, S = len(lrs), len(seeds)
    params = _replicate(net.init(seeds), L)
    gate0 = m.gates(net, params, data.X_train)

    def callback(info) -> None:
        if info.step < A13_CHECK_STEPS:
            worst, units = m.batch_dead_gradient(net, info.cache, info.grads)
            check["worst"] = max(check["worst"], worst)
            check["units"] += units

    hist = train(net, data, np.tile(seeds, L), params=params, optimizer=get_optimizer("adam", lr=_lr_array(lrs, S)),
                 epochs=_epochs(data, opts.steps, BATCH), batch_size=BATCH, max_steps=opts.steps, eval_every=0,
                 callback=callback if name == "relu" else None)
    gate1 = m.gates(net, hist.params, data.X_train)
    died = m.died(gate0, gate1, DIE_FRACTION)
    died[hist.diverged] = np.nan
    died = died.reshape(L, S)
    dead = None
    if name in ("relu", "leaky_relu"):
        units = m.dead_units(net, hist.params, data.X_train, data.y_train, loss_fn)
        dead = [m.DeadUnits(*(a.reshape(L, S)[j] for a in (units.some, units.every, units.blocked_update)))
                for j in range(L)]
    for j, lr in enumerate(lrs):
        case = {"activation": name, "lr": lr}
        rec = ctx.record.metric
        sl = slice(j * S, (j + 1) * S)
        rec("died_share", died[j], case=case, better="lower", seeds=seeds, section="a8.dying")
        rec("dead_at_init", (gate0[sl] == 0).mean(axis=-1), case=case, better="lower", seeds=seeds,
            section="a8.dying")
        rec("final_loss", hist.train_loss[sl, -1], case=case, better="lower", seeds=seeds, section="a8.dying")
        rec("diverged", hist.diverged[sl].astype(float), case=case, unit="bool", better="lower", seeds=seeds,
            section="a8.dying")
        if dead is not None:
            d = dead[j]
            rec("units_off_for_some_input", d.some, case=case, seeds=seeds, section="a13.dead_units")
            rec("units_off_for_every_input", d.every, case=case, seeds=seeds, section="a13.dead_units")
            rec("falsely_dead_share", d.falsely_dead, case=case, seeds=seeds, section="a13.dead_units")
            rec("update_of_always_off_units", d.blocked_update, case=case, seeds=seeds, section="a13.dead_units")
    return died, dead


def _a13_finding(d: m.DeadUnits, name: str, seed: int):
    share = d.falsely_dead
    blocked = d.blocked_update[np.isfinite(d.blocked_update)]
    return all_of([
        finding(share[np.isfinite(share)], null=FALSE_NULL, seed=seed,
                label=f"{name}: share of units off for some input that are on for another (falsely dead)",
                note=f"median {np.median(d.every):.0f} of {np.median(d.some):.0f} such units off for every input"),
        finding(blocked, direction="less", null=BLOCKED_NULL, seed=seed,
                label="largest update of an always-off unit / its layer's RMS unit update"),
    ])


# ----------------------------------------------------------------------------- A11: the burden of alpha

def alpha(opts, ctx: RunContext) -> None:
    """Final loss over an alpha grid and 12 seeds (the same seeds for every alpha) against the seeds' own
    spread; the control replaces the alpha grid by three independent seed blocks."""
    from dlbench.data import make_dataset
    from dlbench.experiments.activations import CLAIMS

    points = CLAIMS["A11"].points(ctx.quick)
    lrs = sorted({p["lr"] for p in points})
    seeds = [ctx.seed + i for i in range(2 * ctx.seeds)]
    data = make_dataset("spirals", seed=ctx.seed)
    tables = {}
    for name in dict.fromkeys(p["activation"] for p in points):
        key, values = A11_GRIDS[name]
        tables[name] = np.stack([_final_log_loss(ctx, data, name, {key: a}, opts, seeds, lrs) for a in values])
    # control: three seed blocks at leaky_relu's default slope, an 'alpha' that only reseeds
    blocks = [[s + 7919 * (b + 1) for s in seeds] for b in range(3)]
    control = np.stack([_final_log_loss(ctx, data, "leaky_relu", {}, opts, b, lrs, label=f"seed block {i}")
                        for i, b in enumerate(blocks)])
    rng = ctx.rng("A11 bootstrap")
    for point in points:
        name, j = point["activation"], lrs.index(point["lr"])
        key, values = A11_GRIDS[name]
        T = tables[name][:, j]
        r, lo, hi = m.alpha_seed_ratio(T, rng)
        means = ", ".join(f"{a:g}: {np.nanmedian(T[i]):.3g}" for i, a in enumerate(values))
        ctx.finding("A11", from_interval(r, lo, hi, n=T.shape[1], method="bootstrap", null=1.0,
                                         threshold=A11_THRESHOLD,
                                         label=f"{name}: R = spread over {key} / spread over seeds (log10 loss)",
                                         note=f"median log10 final loss by {key} {means}"), point=point)
        r, lo, hi = m.alpha_seed_ratio(control[:, j], rng)
        ctx.finding("A11", from_interval(r, lo, hi, n=T.shape[1], method="bootstrap", null=1.0,
                                         threshold=A11_THRESHOLD,
                                         label="leaky_relu, three seed blocks as 'alphas': R"),
                    point=point, role="control")


def _final_log_loss(ctx, data, name: str, hyper: dict, opts, seeds: list, lrs: list, label: str = "") -> np.ndarray:
    """log10 final training loss (lrs, seeds); NaN for a run that diverged."""
    from dlbench.nn.activations import get_activation
    from dlbench.nn.optim import get_optimizer
    from dlbench.nn.train import train

    W = opts.width
    net = m.net((data.n_features, W, W, data.n_outputs), get_activation(name, **hyper))
    L, S = len(lrs), len(seeds)
    hist = train(net, data, np.tile(seeds, L), params=_replicate(net.init(seeds), L),
                 optimizer=get_optimizer("adam", lr=_lr_array(lrs, S)), epochs=_epochs(data, opts.steps, BATCH),
                 batch_size=BATCH, max_steps=opts.steps, eval_every=0)
    with np.errstate(all="ignore"):
        out = np.log10(hist.train_loss[:, -1]).reshape(L, S)
    out[hist.diverged.reshape(L, S)] = np.nan
    for j, lr in enumerate(lrs):
        case = {"activation": name, "alpha": label or ",".join(f"{k}={v:g}" for k, v in hyper.items()), "lr": lr}
        ctx.record.metric("log10_final_loss", out[j], case=case, better="lower", seeds=seeds, section="a11.alpha")
    return out
