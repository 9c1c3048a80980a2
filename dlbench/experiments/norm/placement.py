"""The norm experiment's parts on where batch norm sits and what it does to the layers around it: N10 (gamma and
beta keep the nonlinearity), N11 (before or after the activation), N12 (vanishing and exploding gradients).
See CLAIMS in the package for what each measures, its control, grid and threshold."""

from __future__ import annotations

import math

import numpy as np

from dlbench.experiments.base import RunContext
from dlbench.experiments.norm import measure as m
from dlbench.experiments.norm.claims import BATCH, final_loss, hidden, one_thread, tiled
from dlbench.experiments.norm.net import Net, NetSpec, fit
from dlbench.stats import all_of, finding, log_ratio

N10_DEPTH = 3
N10_SHARE = 0.1                # decades
N10_ACC = 0.05
N10_SEEDS = 12                 # a tenth of a decade at lr 0.1 is decided with a dozen
N10_FLOOR = 1e-6               # a nonlinear share below this counts as this: the identity's is exactly 0
N11_LRS = (0.01, 0.03, 0.1)
N11_LOSS = 0.05                # decades
N11_SEEDS = 24                 # a difference of a tenth of a decade is decided with two dozen
N12_DEPTH = 32
N12_LR = 0.01                  # trained for half of --steps: a 32-layer batch-norm net is the costliest step
N12_PROBE = 128                # training samples of the gradient-norm batch
N12_DECADE = 1.0
YANG_RATE = math.sqrt(math.pi / (math.pi - 1))   # Yang et al. 2019: BN + relu gradient growth per layer at init


# ----------------------------------------------------------------------------- N10

@one_thread
def claim_n10(opts, ctx: RunContext) -> None:
    """BN then sigmoid with gamma and beta learned against held at (1, 0); control: the identity activation."""
    from dlbench.experiments.norm import CLAIMS

    points = CLAIMS["N10"].points(ctx.quick)
    lrs = [p["lr"] for p in points]
    data = m.make_data(opts.data, ctx.seed, opts.train_size)
    seeds = [ctx.seed + i for i in range(max(N10_SEEDS, ctx.seeds))]
    S, K = len(seeds), len(lrs)
    found = {}
    for act in ("sigmoid", "identity"):
        for affine in (True, False):
            net = Net(NetSpec((data.n_features, *hidden(N10_DEPTH, opts.width), data.n_outputs), activation=act,
                              norm="batch", affine=affine))
            params = net.init(tiled(seeds, K))
            run = fit(net, params, data, lr=np.repeat(lrs, S), batch=BATCH, steps=opts.steps, rng=ctx.rng("N10 order"))
            acc = run.test_acc[:, -1].reshape(K, S)
            share = m.nonlinear_share(net, run.params, run.state, data.X_test).reshape(K, S)
            found[act, affine] = (acc, share)
            for k, lr in enumerate(lrs):
                case = {"activation": act, "gamma_beta": "learned" if affine else "held", "lr": lr}
                ctx.record.metric("test_acc", acc[k], case=case, better="higher", seeds=seeds, section="n10.sigmoid")
                ctx.record.metric("nonlinear_share", share[k], case=case, better="none", seeds=seeds,
                                  section="n10.sigmoid")
    for k, point in enumerate(points):
        for role, act in (("claim", "sigmoid"), ("control", "identity")):
            (acc_l, share_l), (acc_h, share_h) = found[act, True], found[act, False]
            floored = np.maximum(share_l[k], N10_FLOOR), np.maximum(share_h[k], N10_FLOOR)
            parts = [finding(log_ratio(*floored), threshold=N10_SHARE, seed=ctx.seed,
                             label=f"(a) log10 nonlinear share of the {act} units' output, learned / held",
                             note=f"median share {np.median(share_l[k]):.3g} against {np.median(share_h[k]):.3g}"),
                     finding(acc_l[k] - acc_h[k], threshold=N10_ACC, seed=ctx.seed,
                             label="(b) test accuracy, learned - held",
                             note=f"median {np.median(acc_l[k]):.3g} against {np.median(acc_h[k]):.3g}")]
            ctx.finding("N10", all_of(parts), point=point, role=role)


# ----------------------------------------------------------------------------- N11

@one_thread
def claim_n11(opts, ctx: RunContext) -> None:
    """BN before against after relu, each at its best lr; control: the identity activation."""
    from dlbench.experiments.norm import CLAIMS

    data = m.make_data(opts.data, ctx.seed, opts.train_size)
    seeds = [ctx.seed + i for i in range(max(N11_SEEDS, ctx.seeds))]
    S, K = len(seeds), len(N11_LRS)
    for point in CLAIMS["N11"].points(ctx.quick):
        depth = point["depth"]
        for role, act in (("claim", "relu"), ("control", "identity")):
            got = {}
            for position in ("before", "after"):
                net = Net(NetSpec((data.n_features, *hidden(depth, opts.width), data.n_outputs), activation=act,
                                  norm="batch", position=position))
                params = net.init(tiled(seeds, K))
                run = fit(net, params, data, lr=np.repeat(N11_LRS, S), batch=BATCH, steps=opts.steps,
                          rng=ctx.rng("N11 order", depth))
                loss = final_loss(run, m.LOSS_CAP).reshape(K, S)
                acc = run.test_acc[:, -1].reshape(K, S)
                best = int(np.argmin(np.median(loss, axis=1)))
                got[position] = (loss[best], acc[best], N11_LRS[best])
                case = {"depth": depth, "activation": act, "position": position, "lr": N11_LRS[best]}
                ctx.record.metric("final_loss", loss[best], case=case, better="lower", seeds=seeds,
                                  section="n11.placement")
                ctx.record.metric("test_acc", acc[best], case=case, better="higher", seeds=seeds,
                                  section="n11.placement")
            (lb, ab, rb), (la, aa, ra) = got["before"], got["after"]
            note = (f"median final loss before {np.median(lb):.3g} (lr {rb:g}), after {np.median(la):.3g} (lr {ra:g}); "
                    f"test accuracy before {np.median(ab):.3g}, after {np.median(aa):.3g}")
            ctx.finding("N11", finding(log_ratio(la, lb), threshold=N11_LOSS, seed=ctx.seed, note=note,
                                       label=f"log10 final loss, BN after {act} / before"), point=point, role=role)


# ----------------------------------------------------------------------------- N12

@one_thread
def claim_n12(opts, ctx: RunContext) -> None:
    """Gradient growth or decay through a 32-layer plain net without and with BN, at init and trained; control:
    a 2-layer net."""
    from dlbench.experiments.norm import CLAIMS

    points = CLAIMS["N12"].points(ctx.quick)
    data = m.make_data(opts.data, ctx.seed, opts.train_size)
    xb, yb = data.X_train[:N12_PROBE], data.y_train[:N12_PROBE]
    seeds = ctx.seed_list
    for init in dict.fromkeys(p["init"] for p in points):
        whens = [p["when"] for p in points if p["init"] == init]
        ratio: dict = {}
        for depth in (N12_DEPTH, 2):
            for norm in ("none", "batch"):
                net = Net(NetSpec((data.n_features, *hidden(depth, opts.width), data.n_outputs), norm=norm,
                                  init=init))
                params = net.init(seeds)
                norms = {"init": m.layer_gradient_norms(net, params, xb, yb)}
                if "trained" in whens:
                    run = fit(net, params, data, lr=N12_LR, batch=BATCH, steps=max(1, opts.steps // 2),
                              rng=ctx.rng("N12 order", init, depth))
                    norms["trained"] = m.layer_gradient_norms(net, run.params, xb, yb)
                for when, g in norms.items():
                    ratio[depth, norm, when] = log_ratio(g[:, 0], g[:, -1])
                    if depth == N12_DEPTH:
                        ctx.record.curve("grad_norm", np.median(g, axis=0), case={"init": init, "when": when,
                                         "net": norm}, steps=np.arange(1, depth + 1), better="none",
                                         section="n12.gradients")
                    ctx.record.metric("log10_first_over_last", ratio[depth, norm, when], seeds=seeds, better="none",
                                      case={"init": init, "when": when, "net": norm, "depth": depth},
                                      section="n12.gradients")
        for point in (p for p in points if p["init"] == init):
            when = point["when"]
            for role, depth in (("claim", N12_DEPTH), ("control", 2)):
                none, bn = ratio[depth, "none", when], ratio[depth, "batch", when]
                rate = 10 ** (np.median(bn) / (depth - 1)) if depth > 1 else math.nan
                note = (f"median log10 ||dL/dW_1|| / ||dL/dW_{depth}|| no BN {np.median(none):.3g}, BN "
                        f"{np.median(bn):.3g} (BN: x{rate:.3g} per layer; Yang et al.'s prediction at init "
                        f"x{YANG_RATE:.3g})")
                ctx.finding("N12", finding(np.abs(none) - np.abs(bn), threshold=N12_DECADE, seed=ctx.seed,
                                           unit="decades", note=note,
                                           label=f"|log10 gradient ratio first/last layer|, no BN - BN, depth {depth}"),
                            point=point, role=role)
