"""N13 (batch norm does not suit recurrent nets; layer norm does) and its checks. See CLAIMS in the package for
what it measures, its control, grid and threshold.

An Elman tanh RNN (dlbench.nn.rnn, torch.nn.RNN's semantics) with batch norm per time step (Cooijmans et al.
2017) or layer norm inside the cell (Ba et al. 2016) reads sequences of the adding task (Hochreiter &
Schmidhuber 1997) and answers the sum of the two marked values from its last valid state. Sequences of varying
length are padded to the longest; step t's batch statistics are over the sequences still running at t. The
nets on sequences of varying length (one set per shortest length of the grid) and on the sequences of one fixed
length they share as control train as replicas of one array pass: replica r reads its own batches of its own
set, so seeds, learning rates and the sets are one replica axis. Each norm and set runs every learning rate on
tuning seeds first, scored on validation sequences drawn apart from the test set; the verdict seeds then train
at the rate whose tuning seeds ended lowest (their median), so the choice sees neither the verdict seeds nor
the test sequences.
"""

from __future__ import annotations

import functools
import math

import numpy as np
from threadpoolctl import threadpool_limits

from dlbench.data import make_dataset
from dlbench.experiments.base import RunContext
from dlbench.nn.losses import get_loss
from dlbench.nn.optim import get_optimizer
from dlbench.nn.rnn import RNNNet, RNNNetSpec, sequence_mask
from dlbench.stats import all_of, finding, log_ratio

LONGEST = 12                   # every sequence is padded to 12 steps; the fixed-length control has 12 each
BATCH = 16
TRAIN_SIZE = 2048
TEST_SIZE = 512
EVAL_CHUNK = 128               # test sequences per evaluation pass
LATE = 3                       # the last 3 steps: the evidence counts the sequences behind their statistics
N13_LOSS = 0.1                 # decades: a test loss 26 % higher
TUNING_SEEDS = 8               # per norm and set, at every learning rate (none when there is one rate)
# (quick, default): verdict seeds, Adam learning rates
N13_SIZE = {True: (16, (0.01,)), False: (48, (0.003, 0.01))}
LENGTH_SETS = ("varying", "fixed")
PART_SECONDS = {32: 70.0, 16: 45.0}  # a default-size part's CPU seconds per hidden size, on the project's machine


def adding_set(seed: int, shortest: int):
    """The adding task with lengths uniform in shortest .. LONGEST (every one LONGEST when shortest is)."""
    return make_dataset("adding", seed=seed, n_train=TRAIN_SIZE, n_test=TEST_SIZE, min_length=shortest,
                        max_length=LONGEST)


def adding_sets(seed: int, shortest: int) -> dict:
    """The adding task with lengths uniform in shortest .. LONGEST and with every length LONGEST, same seed."""
    return {name: adding_set(seed, shortest if name == "varying" else LONGEST) for name in LENGTH_SETS}


def running_per_step(lengths: np.ndarray, T: int) -> np.ndarray:
    """(..., T): how many sequences of each batch are still running at step t, i.e. feed step t's statistics."""
    return sequence_mask(lengths, T).sum(axis=-1)


def count_running(hist: np.ndarray, counts: np.ndarray) -> None:
    """Add one training step's running counts (R, T) to hist (R, T, batch + 1): hist[r, t, k] is how many of
    replica r's batches had k sequences running at step t. The whole run's counts, reduced as they stream."""
    R, T, K = hist.shape
    # one bin per (r, t), each hit once: a fancy-index increment counts it exactly, with no histogram-sized temporary
    hist.reshape(-1)[(np.arange(R * T).reshape(R, T) * K + counts).ravel()] += 1


def histogram_median(h: np.ndarray) -> float:
    """np.median of the values 0, 1, ... counted h[0], h[1], ... times (each value h[k] times)."""
    n = int(h.sum())
    at = np.cumsum(h)
    lo, hi = np.searchsorted(at, [(n - 1) // 2, n // 2], side="right")
    return (lo + hi) / 2


def train_sequences(net: RNNNet, seeds, lrs, which, sets: list, *, steps: int, batch: int, rng,
                    scored_on: list | None = None):
    """Train replica r (seed seeds[r], Adam at lrs[r]) on the training set sets[which[r]] for `steps` minibatch
    steps (torch.optim.Adam's defaults but the learning rate; each replica draws its own batches, with
    replacement); return (params, state, mse per replica and test sequence of scored_on[which[r]] (default:
    sets) (R, n_test), and how many training batches had k sequences running at step t (R, T, batch + 1))."""
    R = len(seeds)
    params, state = net.init(list(seeds)), net.init_state(R)
    # one Adam per parameter, its lr broadcast over that parameter's replica axis
    opts = [get_optimizer("adam", lr=np.asarray(lrs, dtype=np.float64).reshape(R, *[1] * (p.ndim - 1)))
            for p in params]
    opt_states = [o.init([p]) for o, p in zip(opts, params)]
    X = np.stack([s.X_train for s in sets])
    y = np.stack([s.y_train for s in sets])
    L = np.stack([s.lengths_train for s in sets])
    which = np.asarray(which)[:, None]
    loss_fn = get_loss("mse")
    T = X.shape[2]
    hist = np.zeros((R, T, batch + 1), dtype=np.int64)
    for _ in range(steps):
        idx = rng.integers(0, X.shape[1], (R, batch))
        lengths = L[which, idx]
        count_running(hist, running_per_step(lengths, T))
        _, grads, _ = net.value_and_grad(params, X[which, idx], y[which, idx], loss_fn, state, lengths=lengths,
                                         reuse=True)
        for k, (o, p, g) in enumerate(zip(opts, params, grads)):
            opt_states[k] = o.step([p], [g], opt_states[k])
    w = which[:, 0]
    scored = sets if scored_on is None else scored_on
    Xt, yt = np.stack([s.X_test for s in scored])[w], np.stack([s.y_test for s in scored])[w]
    Lt = np.stack([s.lengths_test for s in scored])[w]
    err = np.empty(yt.shape[:2])
    for i in range(0, Xt.shape[1], EVAL_CHUNK):  # eval mode treats each sequence alone: chunks bound the memory
        part = slice(i, i + EVAL_CHUNK)
        out, _ = net.forward(params, Xt[:, part], state, train=False, lengths=Lt[:, part], reuse=True)
        err[:, part] = ((out - yt[:, part]) ** 2)[..., 0]
    return params, state, err, hist


def parts_n13() -> list[tuple[str, object, float]]:
    """(name, fn(opts, ctx), rough CPU seconds at the default size) per hidden size of N13's grid, so two
    workers share the grid; the first also runs the checks. A part whose hidden size the run's grid (--quick)
    leaves out measures nothing."""
    from dlbench.experiments.recurrent import CLAIMS

    sizes = next(a.values for a in CLAIMS["N13"].grid if a.name == "hidden")
    return [("recurrent.N13" if i == 0 else f"recurrent.N13.hidden{h}",
             functools.partial(claim_n13, hidden=h, checks=i == 0), PART_SECONDS.get(h, 0.0))
            for i, h in enumerate(sizes)]


def claim_n13(opts, ctx: RunContext, *, hidden: int | None = None, checks: bool = True) -> None:
    """Batch norm per time step against layer norm on sequences of varying length, each at its best lr; control:
    every sequence of one fixed length. hidden: only the grid points of that hidden size (None: all)."""
    from dlbench.experiments.recurrent import CLAIMS

    n_seeds, lrs = N13_SIZE[ctx.quick]
    seeds = [ctx.seed + i for i in range(max(n_seeds, ctx.seeds))]
    points = [p for p in CLAIMS["N13"].points(ctx.quick) if hidden is None or p["hidden"] == hidden]
    for H in sorted({p["hidden"] for p in points}, reverse=True):
        mine = [p for p in points if p["hidden"] == H]
        shortests = sorted({p["shortest"] for p in mine})
        # the training sets of one pass: varying lengths from each shortest, and the one fixed-length set they share
        sets = [adding_set(ctx.seed, s) for s in (*shortests, LONGEST)]
        with threadpool_limits(limits=1):  # small matrices: a second BLAS thread only waits
            _claim_n13_hidden(ctx, H, shortests, sets, seeds, lrs, opts.steps, mine)
    if checks:
        check_n13(ctx)


def _claim_n13_hidden(ctx: RunContext, H: int, shortests: list, sets: list, seeds: list, lrs, steps: int,
                      points: list) -> None:
    S, D = len(seeds), len(sets)
    tuning = [int(s) for s in ctx.rng("N13", "tuning seeds").integers(2**31, size=TUNING_SEEDS)] if len(lrs) > 1 \
        else []
    # the tuning nets' score: a draw of the same task apart from the test set (its test part: TEST_SIZE sequences)
    held = int(ctx.rng("N13", "validation").integers(2**31))
    validation = [adding_set(held, s) for s in (*shortests, LONGEST)] if tuning else []
    fixed = D - 1
    got, late = {}, {}
    for norm in ("batch", "layer"):
        net = RNNNet(RNNNetSpec(2, H, 1, norm=norm))
        best = [0] * D
        if tuning:
            # replica (d, k, t): training set d, learning rate k, tuning seed t, scored on validation sequences
            K, T = len(lrs), len(tuning)
            _, _, err_t, _ = train_sequences(net, np.tile(tuning, D * K), np.tile(np.repeat(lrs, T), D),
                                             np.repeat(np.arange(D), K * T), sets, steps=steps, batch=BATCH,
                                             rng=ctx.rng("N13 tuning order", H), scored_on=validation)
            loss_t = err_t.mean(axis=-1).reshape(D, K, T)
            best = [int(np.argmin(np.median(loss_t[d], axis=1))) for d in range(D)]
            for d in range(D):
                for shortest in _shortests_of(d, fixed, shortests):
                    for k, lr in enumerate(lrs):
                        ctx.record.metric("tuning_validation_mse", loss_t[d, k],
                                          case={**_case(H, shortest, d, fixed, norm), "lr": lr}, better="lower",
                                          seeds=tuning, section="n13.rnn")
        # replica (d, s): training set d at its chosen learning rate, verdict seed s
        _, _, err, hist = train_sequences(net, np.tile(seeds, D), np.repeat([lrs[b] for b in best], S),
                                          np.repeat(np.arange(D), S), sets, steps=steps, batch=BATCH,
                                          rng=ctx.rng("N13 order", H))
        err = err.reshape(D, S, -1)
        loss = err.mean(axis=-1)
        hist = hist.reshape(D, S, LONGEST, BATCH + 1)
        for d in range(D):
            got[norm, d] = (loss[d], err[d], lrs[best[d]])
            for shortest in _shortests_of(d, fixed, shortests):
                case = _case(H, shortest, d, fixed, norm)
                ctx.record.metric("test_mse", loss[d], case={**case, "lr": lrs[best[d]]}, better="lower",
                                  seeds=seeds, section="n13.rnn")
                if norm == "batch":
                    mean = (hist[d] * np.arange(BATCH + 1)).sum(axis=(0, 2)) / (steps * S)
                    ctx.record.curve("sequences_per_step", mean, case=case,
                                     steps=np.arange(1, LONGEST + 1), better="none", section="n13.statistics")
            if norm == "batch" and d != fixed:
                late[d] = hist[d, :, -LATE:].sum(axis=(0, 1))  # (BATCH + 1,): batches with k running
    ratio = {d: log_ratio(got["batch", d][0], got["layer", d][0]) for d in range(D)}
    for d, shortest in enumerate(shortests):
        point = next(p for p in points if p["shortest"] == shortest)
        test_len = sets[d].lengths_test
        for role, e in (("claim", d), ("control", fixed)):
            (lb, eb, rb), (ll, el, rl) = got["batch", e], got["layer", e]
            chosen = f"lr chosen on {len(tuning)} tuning seeds" if tuning else "one lr"
            note = (f"median test mse batch norm {np.median(lb):.3g} (lr {rb:g}), layer norm {np.median(ll):.3g} "
                    f"(lr {rl:g}; {chosen})")
            if role == "claim":
                long_, short = test_len > LONGEST - LATE, test_len < shortest + LATE
                edge_long = np.median(log_ratio(eb[:, long_].mean(-1), el[:, long_].mean(-1)))
                edge_short = np.median(log_ratio(eb[:, short].mean(-1), el[:, short].mean(-1)))
                note += (f"; steps {LONGEST - LATE + 1}-{LONGEST}: batch statistics over median "
                         f"{histogram_median(late[d]):.3g} of {BATCH} sequences (over one, which batch norm maps "
                         f"to 0, or none in {late[d][:2].sum() / late[d].sum():.0%} of them)")
                if not (long_ & short).any():  # lengths that reach the last steps apart from the shortest ones
                    note += (f"; log10 test mse batch / layer on the test sequences that reach those steps "
                             f"{edge_long:+.2f}, on those of {shortest}-{shortest + LATE - 1} steps {edge_short:+.2f}")
            else:
                note += f"; every step's batch statistics over all {BATCH} sequences"
            name = "varying" if role == "claim" else "fixed"
            gap = finding(ratio[e], threshold=N13_LOSS, seed=ctx.seed, unit="decades",
                          label=f"log10 test mse batch norm / layer norm, {name} lengths", note=note)
            if role == "claim":
                # the ragged batch must be what costs batch norm: its gap on varying lengths over the fixed one's,
                # per seed (the same seeds train on both sets)
                ragged = finding(ratio[d] - ratio[fixed], threshold=N13_LOSS, seed=ctx.seed,
                                 unit="decades", label="the gap on varying lengths over the gap on the fixed one")
                gap = all_of([gap, ragged])
            ctx.finding("N13", gap, point=point, role=role)


def _shortests_of(d: int, fixed: int, shortests: list) -> list:
    """The grid's shortest lengths a training set serves: its own, or every one for the shared fixed set."""
    return list(shortests) if d == fixed else [shortests[d]]


def _case(H: int, shortest: int, d: int, fixed: int, norm: str) -> dict:
    return {"hidden": H, "shortest": shortest, "lengths": "fixed" if d == fixed else "varying", "norm": norm}


def _batch_dependence(net: RNNNet, params, x, lengths, rng) -> float:
    """Max relative change of sequence 0's output (the head on its last valid state) when every other sequence
    of the batch, and its length, is replaced."""
    out, _ = net.forward(params, x, lengths=lengths)
    x2, l2 = x.copy(), lengths.copy()
    x2[1:] = rng.uniform(-3, 3, x2[1:].shape) * 10
    l2[1:] = rng.integers(1, x.shape[1] + 1, len(l2) - 1)
    out2, _ = net.forward(params, x2, lengths=l2)
    return float(np.max(np.abs(out2[:, 0] - out[:, 0])) / np.max(np.abs(out[:, 0])))


def _padding_change(net: RNNNet, params, x, y, lengths, rng, told=None) -> float:
    """Max relative change of the outputs and of every gradient when the steps beyond `lengths` hold noise; the
    net is told `told` (default: lengths) as the sequences' lengths."""
    loss_fn = get_loss("mse")
    told = lengths if told is None else told
    _, g1, c1 = net.value_and_grad(params, x, y, loss_fn, lengths=told)
    x2 = x.copy()
    pad = ~sequence_mask(lengths, x.shape[1]).T
    x2[pad] = rng.standard_normal((int(pad.sum()), x.shape[-1])) * 1e3
    _, g2, c2 = net.value_and_grad(params, x2, y, loss_fn, lengths=told)
    worst = float(np.max(np.abs(c2.out - c1.out)) / np.max(np.abs(c1.out)))
    for a, b in zip(g1, g2):
        worst = max(worst, float(np.max(np.abs(b - a)) / max(np.max(np.abs(a)), 1e-300)))
    return worst


def check_n13(ctx: RunContext) -> None:
    """Layer norm's output for a sequence ignores the rest of the batch (batch norm's does not: the check is not
    blind); padded steps change no output and no gradient, with either norm (float32 and float64)."""
    rng = ctx.rng("N13 checks")
    data = make_dataset("adding", seed=ctx.seed, n_train=16, n_test=0, min_length=2, max_length=LONGEST)
    worst_ln, least_bn, worst_pad = 0.0, math.inf, 0.0
    for dt in (np.float32, np.float64):
        x, y, lengths = data.X_train.astype(dt), data.y_train.astype(dt), data.lengths_train
        for norm in ("layer", "batch"):
            net = RNNNet(RNNNetSpec(2, 16, 2, norm=norm, dtype=dt))
            params = net.init(ctx.seed_list[:3])
            err = _batch_dependence(net, params, x, lengths, rng)
            ctx.record.metric("max_rel_change", err, case={"norm": norm, "dtype": np.dtype(dt).name,
                                                          "what": "rest of the batch replaced"},
                              section="n13.checks", better="none")
            if norm == "layer":
                worst_ln = max(worst_ln, err)
            else:
                least_bn = min(least_bn, err)
            pad = _padding_change(net, params, x, y, lengths, rng)
            ctx.record.metric("max_rel_change", pad, case={"norm": norm, "dtype": np.dtype(dt).name,
                                                          "what": "padded steps filled with noise"},
                              section="n13.checks", better="none")
            worst_pad = max(worst_pad, pad)
    ctx.check("N13.layer-independence", worst_ln, 0.0, claim="N13", n=2,
              what="max relative change of a sequence's output, rest of the batch replaced "
                   "(layer norm, 2 layers, float32 and float64)")
    ctx.check("N13.batch-control", max(0.0, 1e-3 - least_bn), 0.0, claim="N13", n=2,
              what=f"batch norm per time step changes it by {least_bn:.3g}; shortfall below 1e-3")
    ctx.check("N13.padding", worst_pad, 0.0, claim="N13", n=4,
              what="max relative change of every output and gradient when the padded steps hold noise (x1e3), "
                   "layer and batch norm, float32 and float64")
