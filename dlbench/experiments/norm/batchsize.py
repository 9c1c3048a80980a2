"""The norm experiment's batch-size parts: N5 (small batches), N6 (statistics at test time), N7 (very large
batches). See CLAIMS in the package for what each measures, its control, grid and threshold."""

from __future__ import annotations

import math

import numpy as np

from dlbench.experiments.base import RunContext
from dlbench.experiments.norm import measure as m
from dlbench.experiments.norm.claims import BATCH, hidden, one_thread, tiled
from dlbench.experiments.norm.net import Net, NetSpec, best_rate_decided, evaluate, fit, loss_and_grads
from dlbench.stats import all_of, finding, log_ratio

N5_SEEDS = 24                  # seeds per (norm, batch, base lr): an upper bound near the margin is decided
N5_DEPTH = 3
N5_DATA = "xor"                # a task every norm fits within the epochs at batch 32: a drop is the batch's doing
DEGRADE = 0.05                 # N5: accuracy points, both ways
N6_MARGIN = 0.02               # N6: non-inferiority margin, accuracy
N6_BASE_LR = 0.1
N7 = {"ref": 32, "large": 1024, "control": (2, 8), "lrs": (0.01, 0.03, 0.1, 0.3, 1.0), "target": 0.2,
      "depth": 3, "max_epochs": 40, "max_steps": 3000, "eval_n": 512, "draws": 16}
N7_EPOCHS = math.log10(1.5)
N7_COSINE = 0.9


def population_refresh(batch: int) -> int:
    """Population statistics are recomputed after every 32 training samples (every step from batch 32 up)."""
    return max(1, 32 // batch)


# ----------------------------------------------------------------------------- N5

@one_thread
def claim_n5(opts, ctx: RunContext) -> None:
    """Accuracy at a small batch against batch 32 for batch, group and layer norm; control: population BN."""
    from dlbench.experiments.norm import CLAIMS

    points = CLAIMS["N5"].points(ctx.quick)
    smalls = sorted({p["small_batch"] for p in points})
    base_lrs = sorted({p["base_lr"] for p in points})
    data = m.make_data(N5_DATA, ctx.seed, opts.train_size)
    seeds = [ctx.seed + i for i in range(max(N5_SEEDS, ctx.seeds))]
    S, L = len(seeds), len(base_lrs)
    widths = (data.n_features, *hidden(N5_DEPTH, opts.width), data.n_outputs)
    acc = {}
    for name, norm, mode in (("batch", "batch", "batch"), ("group", "group", "batch"), ("layer", "layer", "batch"),
                             ("population", "batch", "population")):
        net = Net(NetSpec(widths, norm=norm, mode=mode, channels=opts.channels, groups=opts.groups))
        for B in (*smalls, BATCH):
            params = net.init(tiled(seeds, L))
            run = fit(net, params, data, lr=np.repeat(base_lrs, S) * B / BATCH, batch=B,
                      steps=opts.epochs * (data.X_train.shape[0] // B), rng=ctx.rng("N5 order", B),
                      refresh=population_refresh(B))
            acc[name, B] = run.test_acc[:, -1].reshape(L, S)
            for j, lr in enumerate(base_lrs):
                ctx.record.metric("test_acc", acc[name, B][j], case={"norm": name, "batch": B, "base_lr": lr},
                                  better="higher", seeds=seeds, section="n5.accuracy")
    for point in points:
        B, j = point["small_batch"], base_lrs.index(point["base_lr"])
        drop = {name: acc[name, BATCH][j] - acc[name, B][j] for name in ("batch", "group", "layer", "population")}
        tag = f"acc(B={BATCH}) - acc(B={B})"
        others = [finding(drop[name], direction="less", null=DEGRADE, seed=ctx.seed, label=f"{name} norm: {tag}")
                  for name in ("group", "layer")]
        for role, name, label in (("claim", "batch", "batch norm"), ("control", "population", "population BN")):
            first = finding(drop[name], threshold=DEGRADE, seed=ctx.seed, label=f"{label}: {tag}")
            ctx.finding("N5", all_of([first, *others], note=f"{S} seeds, {opts.epochs} epochs, lr "
                                                             f"{point['base_lr']:g} B/32"), point=point, role=role)


# ----------------------------------------------------------------------------- N6

@one_thread
def claim_n6(opts, ctx: RunContext) -> None:
    """Running statistics against each test batch's own at every batch size; control: untracked statistics."""
    from dlbench.experiments.norm import CLAIMS

    data = m.make_data(opts.data, ctx.seed, opts.train_size)
    seeds = ctx.seed_list
    net = Net(NetSpec((data.n_features, *hidden(N5_DEPTH, opts.width), data.n_outputs), norm="batch"))
    for point in CLAIMS["N6"].points(ctx.quick):
        B = point["batch"]
        params = net.init(seeds)
        run = fit(net, params, data, lr=N6_BASE_LR * B / BATCH, batch=B, steps=opts.steps,
                  rng=ctx.rng("N6 order", B))
        running = run.test_acc[:, -1]
        own = m.batch_stats_accuracy(net, run.params, data.X_test, data.y_test, B)
        untracked = evaluate(net, run.params, net.init_state(len(seeds)), data.X_test, data.y_test)[1]
        for name, v in (("running", running), ("test batch", own), ("untracked", untracked)):
            ctx.record.metric("test_acc", v, case={"batch": B, "statistics": name}, better="higher", seeds=seeds,
                              section="n6.test_stats")
        note = (f"median accuracy running {np.median(running):.3g}, test batches of {B} {np.median(own):.3g}, "
                f"untracked {np.median(untracked):.3g}")
        ctx.finding("N6", finding(running - own, null=-N6_MARGIN, seed=ctx.seed, note=note,
                                  label="acc(running statistics) - acc(test batch statistics)"), point=point)
        ctx.finding("N6", finding(untracked - own, null=-N6_MARGIN, seed=ctx.seed,
                                  label="acc(untracked statistics) - acc(test batch statistics)"), point=point,
                    role="control")


# ----------------------------------------------------------------------------- N7

def claim_n7(opts, ctx: RunContext) -> None:
    """Epochs and seconds to the target, and the gradient's direction, at batch 512 against 32; control: 16
    against 4, below the critical batch size."""
    from dlbench.experiments.norm import CLAIMS

    c = N7
    data = m.make_data("spirals", ctx.seed, opts.large_size)
    n = data.X_train.shape[0]
    seeds, S = ctx.seed_list, ctx.seeds
    net = Net(NetSpec((data.n_features, *hidden(c["depth"], opts.width), data.n_outputs), init="kaiming_normal"))
    sizes = sorted({c["ref"], c["large"], *c["control"]})
    points = CLAIMS["N7"].points(ctx.quick)
    rules = [p["lr_rule"] for p in points]
    epochs: dict = {}
    solution: dict = {}
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1):
        for B in sizes:
            per_epoch = n // B
            steps = min(c["max_epochs"] * per_epoch, max(c["max_steps"], 2 * per_epoch))
            every = max(1, per_epoch // 16)
            for rule in rules:
                lrs = c["lrs"] if rule == "best" else (0.1 * B / 256,)
                K = len(lrs)
                params = net.init(tiled(seeds, K))
                run = fit(net, params, data, lr=np.repeat(lrs, S), batch=B, steps=steps, rng=ctx.rng("N7 order", B),
                          eval_at=range(every, steps + 1, every), eval_n=c["eval_n"], target_loss=c["target"],
                          eval_test=False, stop_when=best_rate_decided(K, S))
                # a replica that misses the target counts the whole budget: a lower bound on its epochs
                ep = np.where(run.reached_step >= 0, run.reached_step, steps).reshape(K, S) / per_epoch
                best = int(np.argmin(np.median(ep, axis=1)))
                epochs[rule, B] = ep[best]
                solution[rule, B] = [p.reshape(K, S, *p.shape[1:])[best] for p in run.params]
                ctx.record.metric("epochs_to_target", ep[best], case={"lr_rule": rule, "batch": B, "lr": lrs[best]},
                                  better="lower", seeds=seeds, section="n7.epochs")
                ctx.record.metric("steps_to_target", ep[best] * per_epoch, better="lower", seeds=seeds,
                                  case={"lr_rule": rule, "batch": B, "lr": lrs[best]}, section="n7.epochs")
    step_time = _time_steps(ctx, net, data, sizes)
    rng = ctx.rng("N7 noise")
    for point in points:
        rule = point["lr_rule"]
        at = solution[rule, c["ref"]]
        cos = {}
        for B in (c["large"], c["control"][1]):
            cos[B], noise = m.gradient_noise(net, at, data.X_train, data.y_train, B, c["draws"], rng)
            if B == c["control"][1]:
                b_noise = noise
        sharp = {B: m.sharpness(net, solution[rule, B], net.init_state(S), data.X_train[:1024],
                                data.y_train[:1024], rng) for B in (c["ref"], c["large"])}
        for name, v in (("cosine_large", cos[c["large"]]), ("cosine_control", cos[c["control"][1]]),
                        ("noise_scale", b_noise), ("sharpness_ref", sharp[c["ref"]]),
                        ("sharpness_large", sharp[c["large"]])):
            ctx.record.metric(name, v, case={"lr_rule": rule}, seeds=seeds, section="n7.noise")
        noise_scale = float(np.nanmedian(b_noise))
        note = (f"B_noise {noise_scale:.3g} (McCandlish et al., at the batch-{c['ref']} solution); sharpness "
                f"(top Hessian eigenvalue) batch {c['ref']} {np.median(sharp[c['ref']]):.3g}, batch {c['large']} "
                f"{np.median(sharp[c['large']]):.3g}")

        def parts(small: int, big: int, cosine: np.ndarray) -> list:
            # wall time to the target on this machine is shown beside the finding, never in its evidence:
            # a verdict's words are the same on every machine
            seconds = {B: epochs[rule, B] * (n // B) * step_time[B] for B in (small, big)}
            ctx.record.metric("seconds_to_target_ratio", seconds[big] / seconds[small], unit="x", better="none",
                              case={"lr_rule": rule, "batch": big, "against": small}, seeds=seeds,
                              section="n7.epochs")
            return [finding(log_ratio(epochs[rule, big], epochs[rule, small]), threshold=N7_EPOCHS, seed=ctx.seed,
                            label=f"(a) log10 epochs to target, batch {big} / {small}",
                            note=f"median epochs {np.median(epochs[rule, small]):.3g} against "
                                 f"{np.median(epochs[rule, big]):.3g}"),
                    finding(cosine, null=N7_COSINE, seed=ctx.seed,
                            label=f"(b) cosine of a batch-{big} gradient to the full gradient")]

        if not noise_scale < c["large"]:
            ctx.not_run("N7", f"batch {c['large']} is not above the noise scale B_noise {noise_scale:.3g}",
                        point=point)
        else:
            ctx.finding("N7", all_of(parts(c["ref"], c["large"], cos[c["large"]]), note=note), point=point)
        lo, hi = c["control"]
        premise = "" if noise_scale > hi else f"; B_noise {noise_scale:.3g} is not above batch {hi}"
        ctx.finding("N7", all_of(parts(lo, hi, cos[hi]), note=f"{note}{premise}"), point=point, role="control")


def _time_steps(ctx: RunContext, net: Net, data, sizes) -> dict:
    """Seconds of one SGD step (forward, backward, update) of one net at each batch size, on one thread."""
    from threadpoolctl import threadpool_limits

    from dlbench.nn.optim import get_optimizer

    out = {}
    params = net.init([ctx.seed])
    opt = get_optimizer("sgd", lr=1e-6, momentum=0.9)
    steps = {}
    with threadpool_limits(limits=1):
        for B in sizes:
            x, y = data.X_train[None, :B], data.y_train[None, :B]
            state = [opt.init([params[i] for i in net.trainable])]

            def step(x=x, y=y, state=state):
                _, grads, _ = loss_and_grads(net, params, x, y, net.init_state(1))
                state[0] = opt.step([params[i] for i in net.trainable], [grads[i] for i in net.trainable], state[0])

            steps[B] = step
        for _ in range(3):  # every size warm before any is timed: the first timed would pay for the others
            for step in steps.values():
                step()
        for B in sizes:
            t = ctx.time("train_step", steps[B], case={"batch": B}, items=B, section="n7.step_time")
            out[B] = float(np.median(t.samples))
    return out
