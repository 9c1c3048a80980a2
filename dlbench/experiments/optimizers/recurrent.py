"""O10: the weight gradients of a small Elman RNN against sequence length, over a scan of its recurrent weight,
and training it on the adding problem with and without clipping.

Pascanu, Mikolov & Bengio 2013: dL/dW sums, over the steps, products of the Jacobians diag(f'(a_t)) W_hh; for
tanh they can grow only when W_hh's spectral radius exceeds 1, and where they grow the loss has cliffs that
throw gradient descent; clipping the gradient's norm keeps the step bounded. The numbers the claim's texts name
are the constants below.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from dlbench.experiments.base import RunContext
from dlbench.experiments.optimizers import CLAIMS
from dlbench.experiments.optimizers import measure as ms
from dlbench.stats import all_of, finding

#: Sequence lengths of the gradient ladder. The growth is read over its last doubling, T = 32 -> 64: 32 times the
#: least-squares slope of log10 |dL/dW| on T through the rungs from O10_FIT on (one rung alone is noisy).
O10_LADDER = (8, 16, 24, 32, 40, 48, 56, 64)
O10_FIT = 32
#: Spectral radii of W_hh scanned at every hidden size (rows); the grid's radii and O10_BELOW are among them.
O10_SCAN = (0.5, 0.9, 1.1, 1.5, 2.0, 3.0)
O10_BELOW = 0.9                      # the radius below 1 at which the gradient must not grow
O10_GROWTH = math.log10(4.0)         # geometric: at least 4x over a doubling of T ...
O10_LINEAR = math.log10(2.0)         # ... where a sum of T bounded terms (rho <= 1) grows at most 2x
O10_NETS = 4                         # nets per seed on the ladder: one forward and backward for all of them
O10_RUNS = 2                         # of them, trained per seed with and without clipping
O10_SEQUENCES = 32                   # sequences the gradient is taken on
O10_TRAIN = {"n_train": 512, "n_test": 16, "length": 64, "batch": 32, "lr": 0.1, "clip": 1.0}
O10_STEPS = {False: 300, True: 150}
O10_DIVERGE = 1e3                    # the trainer's divergence factor: a blown-up run's spike and final loss
O10_THROWN = 10.0                    # premise: unclipped training is thrown (a spike of 10x the first loss)
O10_SPIKE, O10_GAP = 1.0, math.log10(2.0)    # clipping: spikes a decade smaller, a final loss half as large


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
    slope of log10 G on the ladder's T from O10_FIT on. The slope is taken against the ladder's T whatever
    sequences G was measured on, so a ladder measured at T = 1 throughout (the control) has growth 0."""
    return O10_FIT * ms.log_growth_rate(G, ladder, start=O10_FIT)


def clipping_runs(hidden: int, rho: float, seeds, data, steps: int) -> dict:
    """SGD on `data` from W_hh = rho Q, each seed twice in one call: clipped at norm O10_TRAIN["clip"] and
    unclipped (the same init and minibatches). Per run: the largest loss spike over the first loss and the final
    training loss, a run that blew up counting as O10_DIVERGE times its first loss."""
    from dlbench.nn.optim import get_optimizer
    from dlbench.nn.train import train

    S = len(seeds)
    net, params = ms.recurrent_net(hidden, [*seeds, *seeds], [rho] * (2 * S))
    clip = np.array([O10_TRAIN["clip"]] * S + [np.inf] * S)
    hist = train(net, data, [*seeds, *seeds], optimizer=get_optimizer("sgd", lr=O10_TRAIN["lr"]), epochs=10**6,
                 batch_size=O10_TRAIN["batch"], max_steps=steps, params=params, clip_norm=clip, eval_every=0,
                 diverge_factor=O10_DIVERGE)
    spike = ms.loss_spike(hist.loss, O10_DIVERGE)
    first, last = hist.train_loss[:, 0], hist.train_loss[:, -1]
    blown = hist.diverged | ~np.isfinite(last) | (last > O10_DIVERGE * first)
    final = np.where(blown, O10_DIVERGE * first, last)
    return {"clipped": {"spike": spike[:S], "final": final[:S]},
            "none": {"spike": spike[S:], "final": final[S:], "blown": int(blown[S:].sum())}}


def _log_ratio(a, b) -> np.ndarray:
    with np.errstate(all="ignore"):
        return np.log10(np.maximum(a, 1e-300)) - np.log10(np.maximum(b, 1e-300))


def _o10_finding(g: np.ndarray, g_below: np.ndarray, runs: dict, lengths: tuple, what: str, rho: float, seed: int):
    """Geometric growth at rho over the ladder's last doubling, none at O10_BELOW, and clipping's effect."""
    c, u = runs["clipped"], runs["none"]
    span = f"T={O10_FIT} -> {2 * O10_FIT}"
    return all_of([
        finding(growth_per_doubling(g), threshold=O10_GROWTH, seed=seed,
                label=f"{what}, rho {rho:g}: log10 growth of the largest |dL/dW| over {span}"),
        finding(growth_per_doubling(g_below), direction="less", null=O10_LINEAR, seed=seed,
                label=f"{what}, rho {O10_BELOW:g}: the same"),
        finding(_log_ratio(u["spike"], c["spike"]), threshold=O10_SPIKE, seed=seed,
                label=f"{what}: log10 largest loss spike unclipped / clipped (paired)"),
        finding(_log_ratio(u["final"], c["final"]), threshold=O10_GAP, seed=seed,
                label=f"{what}: log10 final training loss unclipped / clipped"),
    ], note=f"median largest |dL/dW| at T = {', '.join(map(str, lengths))}: "
            f"{', '.join(f'{v:.3g}' for v in np.median(g, axis=0))} (rho {rho:g}), "
            f"{', '.join(f'{v:.3g}' for v in np.median(g_below, axis=0))} (rho {O10_BELOW:g}); median spike "
            f"{np.median(u['spike']):.3g} unclipped ({u['blown']} of {u['spike'].size} blew up), "
            f"{np.median(c['spike']):.3g} clipped")


def claim_o10(opts, ctx: RunContext) -> None:
    """Gradient growth against T over a scan of the recurrent weight, and clipping on the adding problem, at
    every point (rho, hidden); control: sequences of length 1 in every slot of the ladder and in training."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="blas"):   # a step's matmuls are small: a second thread only spins
        _claim_o10(ctx)


def _claim_o10(ctx: RunContext) -> None:
    points = CLAIMS["O10"].points(ctx.quick)
    lengths = O10_LADDER
    scan = sorted({*O10_SCAN, O10_BELOW, *(p["rho"] for p in points)})
    # O10_NETS nets per seed, drawn for this base seed: the ladder is one forward and backward for all of them;
    # the first O10_RUNS per seed are trained too
    nets = [int(v) for v in ctx.rng("O10", "nets").integers(2**31, size=O10_NETS * ctx.seeds)]
    seeds = nets[:O10_RUNS * ctx.seeds]
    probe = _adding(ctx, "gradient sequences", O10_SEQUENCES, lengths[-1])
    train_set = _adding(ctx, "training sequences", O10_TRAIN["n_train"], O10_TRAIN["length"], O10_TRAIN["n_test"])
    one_step = dataclasses.replace(train_set, X_train=train_set.X_train[:, :1], X_test=train_set.X_test[:, :1])
    steps = O10_STEPS[ctx.quick]
    for hidden in sorted({p["hidden"] for p in points}):
        G = gradient_ladder(hidden, nets, scan, probe.X_train, probe.y_train, lengths)
        G1 = np.repeat(gradient_ladder(hidden, nets, scan, probe.X_train, probe.y_train, (1,)), len(lengths), axis=-1)
        for r, rho in enumerate(scan):
            for t, T in enumerate(lengths):
                ctx.record.metric("largest |dL/dW|", G[r, :, t], case={"hidden": hidden, "rho": rho, "T": T},
                                  better="none", seeds=nets, section="o10.gradients")
            ctx.record.metric("largest |dL/dW|", G1[r, :, 0], case={"hidden": hidden, "rho": rho, "T": 1},
                              better="none", seeds=nets, section="o10.gradients")
            ctx.record.metric(f"log10 growth over T={O10_FIT} -> {2 * O10_FIT}", growth_per_doubling(G[r]),
                              case={"hidden": hidden, "rho": rho}, better="none", seeds=nets,
                              section="o10.gradients")
        below = scan.index(O10_BELOW)
        for point in (p for p in points if p["hidden"] == hidden):
            rho = point["rho"]
            runs = clipping_runs(hidden, rho, seeds, train_set, steps)
            ctrl = clipping_runs(hidden, rho, seeds, one_step, steps)
            for T, rr in ((O10_TRAIN["length"], runs), (1, ctrl)):
                for clip, v in (("norm 1", rr["clipped"]), ("none", rr["none"])):
                    case = {"hidden": hidden, "rho": rho, "T": T, "clip": clip}
                    ctx.record.metric("largest loss spike / first loss", v["spike"], case=case, better="lower",
                                      seeds=seeds, section="o10.clipping")
                    ctx.record.metric("final training loss", v["final"], case=case, better="lower", seeds=seeds,
                                      section="o10.clipping")
            thrown = float(np.median(runs["none"]["spike"]))
            if not thrown >= O10_THROWN:
                ctx.not_run("O10", f"at rho {rho:g}, hidden {hidden}, unclipped SGD at lr {O10_TRAIN['lr']:g} is not "
                                   f"thrown (median spike {thrown:.3g}x its first loss, below {O10_THROWN:g}): no "
                                   f"cliff for clipping to stop", point=point)
            else:
                ctx.finding("O10", _o10_finding(G[scan.index(rho)], G[below], runs, lengths, f"T={lengths[-1]}",
                                                rho, ctx.seed), point=point)
            ctx.finding("O10", _o10_finding(G1[scan.index(rho)], G1[below], ctrl, (1,) * len(lengths), "T=1",
                                            rho, ctx.seed), point={**point, "counterfactual": "T = 1"},
                        role="control")
