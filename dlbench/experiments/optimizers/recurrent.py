"""O10: the weight gradients of a small Elman RNN against sequence length, over a scan of its recurrent weight,
and training it on the adding problem with and without clipping.

Pascanu, Mikolov & Bengio 2013: dL/dW sums, over the steps, products of the Jacobians diag(f'(a_t)) W_hh; for
tanh they can grow only when W_hh's spectral radius exceeds 1, and where they grow the loss has cliffs that
throw gradient descent; clipping the gradient's norm keeps the step bounded. The numbers the claim's texts name
are the constants below.

The control is the same measurement at radius O10_CONTROL_RHO: every product of Jacobians shrinks there, so the
ladder could still read growth (a sum of more terms, a bias of the probe) but the mechanism is absent, and the
clipped and unclipped runs start from a net with no cliffs, so clipping, still active, has nothing to stop.
Clipping is scored without the divergence cap: by the fraction of runs a cliff throws (a spike of O10_THROWN
times the first loss, or a blow-up) and by the pairs whose clipped run ends lower; the premise (unclipped training
is thrown) is read off separate premise nets, never off the runs it then judges.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from dlbench.experiments.base import RunContext
from dlbench.experiments.optimizers import CLAIMS
from dlbench.experiments.optimizers import measure as ms
from dlbench.stats import all_of, finding, from_interval, newcombe_difference, wilson, with_note

#: Sequence lengths of the gradient ladder. The growth is read over its last doubling, T = 32 -> 64: 32 times the
#: least-squares slope of log10 |dL/dW| on T through the rungs from O10_FIT on (one rung alone is noisy).
O10_LADDER = (8, 16, 24, 32, 40, 48, 56, 64)
O10_FIT = 32
#: Spectral radii of W_hh scanned at every hidden size (rows); the grid's radii and O10_BELOW are among them.
O10_SCAN = (0.5, 0.9, 1.1, 1.5, 2.0, 3.0)
O10_BELOW = 0.9                      # the radius below 1 at which the gradient must not grow
O10_CONTROL_RHO = 0.5                # the control's radius: products of Jacobians shrink as 0.5^T, no cliffs
O10_GROWTH = math.log10(4.0)         # geometric: at least 4x over a doubling of T ...
O10_LINEAR = math.log10(2.0)         # ... where a sum of T bounded terms (rho <= 1) grows at most 2x
O10_NETS = 4                         # nets per seed on the ladder: one forward and backward for all of them
O10_RUNS = 2                         # of them, trained per seed with and without clipping
O10_SEQUENCES = 32                   # sequences the gradient is taken on
O10_TRAIN = {"n_train": 512, "n_test": 16, "length": 64, "batch": 32, "lr": 0.1, "clip": 1.0}
O10_STEPS = {False: 300, True: 150}
O10_DIVERGE = 1e3                    # the trainer's divergence factor: a blown-up run's spike and final loss
O10_THROWN = 10.0                    # a run is thrown by a cliff: a spike of 10x its first loss, or a blow-up
O10_PREMISE = 6                      # premise nets per point, trained unclipped only: at least half must be thrown
O10_SAVED = 0.5                      # clipping: the thrown fraction at least 0.5 lower (Newcombe interval)
O10_LOWER = 0.5                      # clipping: the clipped run ends lower in more than half the pairs (Wilson)


def _adding(ctx: RunContext, purpose: str, n: int, length: int, n_test: int = 0):
    """The adding problem with every sequence `length` steps long (so without lengths: nothing is padded)."""
    from dlbench.data import make_dataset

    seed = int(ctx.rng("O10", purpose).integers(2**31))
    data = make_dataset("adding", seed=seed, n_train=n, n_test=n_test, min_length=length, max_length=length)
    return dataclasses.replace(data, lengths_train=None, lengths_test=None)


def gradient_ladder(hidden: int, seeds, scan, X: np.ndarray, y: np.ndarray, lengths) -> np.ndarray:
    """Largest |dL/dW| (measure.largest_weight_gradient) for every radius of `scan`, seed and length: (R, S, T).
    Replica (r, s) is seed s's net with W_hh = scan[r] Q_s; length T takes the first T steps of X."""
    S, R = len(seeds), len(scan)
    net, params = ms.recurrent_net(hidden, np.tile(seeds, R), np.repeat(np.asarray(scan, dtype=float), S))
    out = [ms.largest_weight_gradient(net, params, X[:, :T], y) for T in lengths]
    return np.stack(out, axis=-1).reshape(R, S, len(lengths))


def growth_per_doubling(G: np.ndarray, ladder=O10_LADDER) -> np.ndarray:
    """log10 growth of G (..., len(ladder)) over the doubling O10_FIT -> 2 O10_FIT: O10_FIT times the least-squares
    slope of log10 G on the ladder's T from O10_FIT on."""
    return O10_FIT * ms.log_growth_rate(G, ladder, start=O10_FIT)


def clipping_runs(hidden: int, rho: float, seeds, data, steps: int, premise=()) -> dict:
    """SGD on `data` from W_hh = rho Q, each seed twice in one call: clipped at norm O10_TRAIN["clip"] and
    unclipped (the same init and minibatches); the `premise` nets beside them, unclipped only. Per run: the
    largest loss spike over the first loss (O10_DIVERGE for a blow-up), the final training loss (inf for a
    blow-up) and whether a cliff threw it (a spike of at least O10_THROWN, a blow-up included): no score
    depends on the cap."""
    from dlbench.nn.optim import get_optimizer
    from dlbench.nn.train import train

    S, P = len(seeds), len(premise)
    every = [*seeds, *seeds, *premise]
    net, params = ms.recurrent_net(hidden, every, [rho] * len(every))
    clip = np.array([O10_TRAIN["clip"]] * S + [np.inf] * (S + P))
    hist = train(net, data, every, optimizer=get_optimizer("sgd", lr=O10_TRAIN["lr"]), epochs=10**6,
                 batch_size=O10_TRAIN["batch"], max_steps=steps, params=params, clip_norm=clip, eval_every=0,
                 diverge_factor=O10_DIVERGE)
    spike = ms.loss_spike(hist.loss, O10_DIVERGE)
    first, last = hist.train_loss[:, 0], hist.train_loss[:, -1]
    blown = hist.diverged | ~np.isfinite(last) | (last > O10_DIVERGE * first)
    final = np.where(blown, np.inf, last)
    thrown = blown | (spike >= O10_THROWN)
    part = {"clipped": slice(0, S), "none": slice(S, 2 * S), "premise": slice(2 * S, 2 * S + P)}
    return {k: {"spike": spike[sl], "final": final[sl], "thrown": thrown[sl], "blown": int(blown[sl].sum())}
            for k, sl in part.items()}


def clipping_findings(runs: dict, what: str) -> list:
    """(c) the fraction of runs thrown, unclipped minus clipped (Newcombe's interval on two Wilson intervals),
    at least O10_SAVED; (d) the fraction of pairs whose clipped run ends with the lower training loss (a blow-up
    ends at inf; a tie is no win), its Wilson interval above O10_LOWER."""
    c, u = runs["clipped"], runs["none"]
    n = int(c["thrown"].size)
    pu, pc = wilson(int(u["thrown"].sum()), n), wilson(int(c["thrown"].sum()), n)
    d, lo, hi = newcombe_difference(pu, pc)
    wins = wilson(int((c["final"] < u["final"]).sum()), n)
    return [
        from_interval(d, lo, hi, n=n, method="newcombe", threshold=O10_SAVED,
                      label=f"{what}: fraction of runs thrown by a cliff, unclipped {int(pu.k)}/{n} minus clipped "
                            f"{int(pc.k)}/{n}"),
        from_interval(wins.p, wins.low, wins.high, n=n, method="wilson", null=O10_LOWER,
                      label=f"{what}: fraction of pairs (same init and batches) whose clipped run ends lower"),
    ]


def _o10_finding(g: np.ndarray, g_below: np.ndarray, runs: dict, lengths: tuple, what: str, rho: float, seed: int):
    """Geometric growth at rho over the ladder's last doubling, none at O10_BELOW, and clipping's effect."""
    c, u = runs["clipped"], runs["none"]
    span = f"T={O10_FIT} -> {2 * O10_FIT}"
    return all_of([
        finding(growth_per_doubling(g), threshold=O10_GROWTH, seed=seed,
                label=f"{what}, rho {rho:g}: log10 growth of the largest |dL/dW| over {span}"),
        finding(growth_per_doubling(g_below), direction="less", null=O10_LINEAR, seed=seed,
                label=f"{what}, rho {O10_BELOW:g}: the same"),
        *clipping_findings(runs, f"{what}, rho {rho:g}"),
    ], note=f"median largest |dL/dW| at T = {', '.join(map(str, lengths))}: "
            f"{', '.join(f'{v:.3g}' for v in np.median(g, axis=0))} (rho {rho:g}), "
            f"{', '.join(f'{v:.3g}' for v in np.median(g_below, axis=0))} (rho {O10_BELOW:g}); median spike "
            f"{np.median(u['spike']):.3g} unclipped ({u['blown']} of {u['spike'].size} blew up), "
            f"{np.median(c['spike']):.3g} clipped")


def claim_o10(opts, ctx: RunContext) -> None:
    """Gradient growth against T over a scan of the recurrent weight, and clipping on the adding problem, at
    every point (rho, hidden); control: the same at radius O10_CONTROL_RHO, where nothing explodes."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="blas"):   # a step's matmuls are small: a second thread only spins
        _claim_o10(ctx)


def _claim_o10(ctx: RunContext) -> None:
    points = CLAIMS["O10"].points(ctx.quick)
    lengths = O10_LADDER
    scan = sorted({*O10_SCAN, O10_BELOW, O10_CONTROL_RHO, *(p["rho"] for p in points)})
    # O10_NETS nets per seed, drawn for this base seed: the ladder is one forward and backward for all of them;
    # the first O10_RUNS per seed are trained too; the premise nets are drawn apart and only trained
    nets = [int(v) for v in ctx.rng("O10", "nets").integers(2**31, size=O10_NETS * ctx.seeds)]
    seeds = nets[:O10_RUNS * ctx.seeds]
    premise = [int(v) for v in ctx.rng("O10", "premise nets").integers(2**31, size=O10_PREMISE)]
    probe = _adding(ctx, "gradient sequences", O10_SEQUENCES, lengths[-1])
    train_set = _adding(ctx, "training sequences", O10_TRAIN["n_train"], O10_TRAIN["length"], O10_TRAIN["n_test"])
    steps = O10_STEPS[ctx.quick]
    for hidden in sorted({p["hidden"] for p in points}):
        G = gradient_ladder(hidden, nets, scan, probe.X_train, probe.y_train, lengths)
        for r, rho in enumerate(scan):
            for t, T in enumerate(lengths):
                ctx.record.metric("largest |dL/dW|", G[r, :, t], case={"hidden": hidden, "rho": rho, "T": T},
                                  better="none", seeds=nets, section="o10.gradients")
            ctx.record.metric(f"log10 growth over T={O10_FIT} -> {2 * O10_FIT}", growth_per_doubling(G[r]),
                              case={"hidden": hidden, "rho": rho}, better="none", seeds=nets,
                              section="o10.gradients")
        below = scan.index(O10_BELOW)
        ctrl = clipping_runs(hidden, O10_CONTROL_RHO, seeds, train_set, steps)
        for point in (p for p in points if p["hidden"] == hidden):
            rho = point["rho"]
            runs = clipping_runs(hidden, rho, seeds, train_set, steps, premise)
            for r_, rr in ((rho, runs), (O10_CONTROL_RHO, ctrl)):
                for clip, v in (("norm 1", rr["clipped"]), ("none", rr["none"])):
                    case = {"hidden": hidden, "rho": r_, "clip": clip}
                    ctx.record.metric("largest loss spike / first loss", v["spike"], case=case, better="lower",
                                      seeds=seeds, section="o10.clipping")
                    ctx.record.metric("final training loss", v["final"], case=case, better="lower", seeds=seeds,
                                      section="o10.clipping")
                    ctx.record.metric("thrown by a cliff", v["thrown"].astype(float), case=case, better="lower",
                                      seeds=seeds, section="o10.clipping")
            thrown = runs["premise"]["thrown"]
            if not thrown.mean() >= 0.5:
                ctx.not_run("O10", f"at rho {rho:g}, hidden {hidden}, unclipped SGD at lr {O10_TRAIN['lr']:g} threw "
                                   f"{int(thrown.sum())} of {thrown.size} premise nets (a spike of {O10_THROWN:g}x "
                                   f"the first loss or a blow-up), fewer than half: no cliff for clipping to stop",
                            point=point)
                continue
            note = f"premise: {int(thrown.sum())} of {thrown.size} separate unclipped nets thrown"
            ctx.finding("O10", with_note(_o10_finding(G[scan.index(rho)], G[below], runs, lengths,
                                                      f"T={lengths[-1]}", rho, ctx.seed), note), point=point)
            ctx.finding("O10", _o10_finding(G[scan.index(O10_CONTROL_RHO)], G[below], ctrl, lengths,
                                            f"T={lengths[-1]}", O10_CONTROL_RHO, ctx.seed),
                        point={**point, "counterfactual": f"rho {O10_CONTROL_RHO:g}"}, role="control")
