"""D7 and D8: deep plain nets against residual nets, trained once and measured twice.

D7 (He, Zhang, Ren & Sun 2016, "Deep residual learning for image recognition"). Nets of depth D (D linear
layers: a stem, D - 2 pre-activation blocks h + W relu(norm(h)) + b, a head; dlbench.nn.residual) are trained on a random relu
teacher for a fixed number of steps, each at its own learning rate. Both nets carry the same layer norm in
every block; they differ only by the skip paths h_{j+1} = h_j + F_j(h_j). He et al.'s plain nets were batch
normalised too, so a plain net that fails is not one whose signal vanished: it is one that the optimizer cannot
drive. Per net, the effect is log10(training FVU at the deepest depth / at the reference depth), the reference
being the shallower depth with the lowest median FVU on the tuning seeds (chosen on seeds the verdict does not
use, so the choice cannot flatter either net).

D8 (Veit, Wilber & Belongie 2016, "Residual networks behave like ensembles of relatively shallow networks").
The same trained nets (each at its best lr) lose k of their B blocks after training (forward(..., deleted=)):
a residual block keeps its skip, a plain block is cut out and its input feeds the next. The damage of a
deletion is the share of what training gained that it loses, d = (min(FVU_k, 1) - FVU_0) / (1 - FVU_0) on the
test set (FVU 1 is the mean predictor; a net worse than that has lost everything), averaged over which
blocks go: every single block for k = 1, D8_SUBSETS random sets of k blocks beyond.
"""

from __future__ import annotations

import math
from itertools import combinations

import numpy as np

from dlbench.experiments.base import RunContext, parse_numbers
from dlbench.stats import all_of, finding

TUNING_SEEDS = 2            # seeds that choose each net's lr and D7's reference depth; the verdict uses the others
INPUTS = 8                  # the teacher's inputs
N_TRAIN, N_TEST = 1024, 512   # enough samples that a trained net's test FVU stays near its training FVU
NORM = "layer"              # the norm of both nets (no running statistics: training loss is the function trained)
WIDTH = 16                  # units of every hidden layer
BLOCK_LAYERS = 1            # dense layers per block: many blocks per depth, the most paths for D8 to cut
DEPTHS = (2, 4, 8, 16, 32)  # linear layers: stem + one per block + head
QUICK_DEPTHS = (2, 4, 16)
CONTROL_DEPTHS = (2, 4)     # D7's control: a range too shallow for depth to hurt
D7_WORSE = math.log10(1.5)  # "worse", for either net: a training FVU at least 1.5x the reference depth's
D8_SUBSETS = 8              # random sets of k deleted blocks per k (every single block for k = 1)
D8_LITTLE = 0.5             # "a little": one deletion loses less than half of what training gained
D8_GROWS = 0.1              # "smoothly": deleting half the blocks costs at least a tenth of the fit more than one
D8_LEARNED = 0.5            # premise: the intact net's test FVU at most this (it learned the teacher)


def blocks_of(depth: int) -> int:
    """Blocks in a net of `depth` linear layers (stem and head included)."""
    return (depth - 2) // BLOCK_LAYERS


def depths(quick: bool) -> tuple[int, ...]:
    return QUICK_DEPTHS if quick else DEPTHS


def net(depth: int, residual: bool, width: int = WIDTH):
    """The plain or residual net of `depth` linear layers and `width` units, layer norm in every block."""
    from dlbench.nn.residual import ResNet, ResNetSpec

    return ResNet(ResNetSpec(INPUTS, width, blocks_of(depth), 1, block_layers=BLOCK_LAYERS, residual=residual,
                             norm=NORM, init="kaiming_normal"))


def _lrs(opts) -> list[float]:
    return parse_numbers(opts.lrs, float, what="--lrs")


def _fmt(v: float) -> str:
    return f"{v:.3g}"


# ----------------------------------------------------------------------------- pure measurements

def deletion_sets(n_blocks: int, rng: np.random.Generator, subsets: int = D8_SUBSETS) -> dict[int, list[tuple]]:
    """The sets of blocks D8 deletes, per k = 0 .. n_blocks: every set when there are at most `subsets` of
    them (always every single block), otherwise `subsets` distinct random ones."""
    out: dict[int, list[tuple]] = {0: [()]}
    for k in range(1, n_blocks + 1):
        if math.comb(n_blocks, k) <= max(subsets, n_blocks) or k == 1:
            out[k] = list(combinations(range(n_blocks), k))
            continue
        seen: set = set()
        while len(seen) < subsets:
            seen.add(tuple(sorted(rng.choice(n_blocks, size=k, replace=False).tolist())))
        out[k] = sorted(seen)
    return out


def test_fvu(model, params, state, X, y, variance: float, deleted=()) -> np.ndarray:
    """Test MSE / Var(y) of every replica, eval mode, with the blocks in `deleted` made identities, (R,)."""
    from dlbench.nn.losses import mse

    out, _ = model.forward(params, X, state, train=False, deleted=deleted)
    loss, _ = mse(out, y)
    return loss / variance


def damage_curve(model, params, state, X, y, variance: float, sets: dict) -> tuple[np.ndarray, np.ndarray]:
    """(FVU_0 (R,), damage (K + 1, R)): per k, the mean over `sets[k]` of (min(FVU, 1) - FVU_0) / (1 - FVU_0);
    NaN for a replica that learned nothing (FVU_0 >= 1: no fit to lose)."""
    base = test_fvu(model, params, state, X, y, variance)
    gained = np.where(base < 1.0, 1.0 - base, np.nan)
    curve = np.stack([np.mean([(np.minimum(test_fvu(model, params, state, X, y, variance, s), 1.0) - base) / gained
                               for s in sets[k]], axis=0) for k in sorted(sets)])
    return base, curve


def growth(curve: np.ndarray) -> np.ndarray:
    """d(K) - d(1) with K = ceil(B / 2), per replica: what deleting half the blocks costs beyond deleting one. A
    smooth rise keeps growing; a collapse has lost everything at the first deletion. curve (B + 1, R)."""
    half = -(-(curve.shape[0] - 1) // 2)
    return curve[half] - curve[1]


# ----------------------------------------------------------------------------- the part

def claim_d7_d8(opts, ctx: RunContext) -> None:
    """Plain and residual nets of every depth trained on a relu teacher at every lr; D7 reads their training
    loss over depth, D8 deletes blocks of the trained nets. Checks: at depth 2 the two nets are one; a net
    with nothing deleted is the net the trainer evaluated; a residual block whose last layer is zero is the
    identity, exactly."""
    from dlbench.data import make_dataset
    from dlbench.experiments.depth import CLAIMS
    from dlbench.experiments.teacher import relu_teacher
    from dlbench.nn.optim import get_optimizer
    from dlbench.nn.train import train

    p7, p8 = CLAIMS["D7"].points(ctx.quick), CLAIMS["D8"].points(ctx.quick)
    budgets = sorted({p["steps"] for p in p7})
    d8_depths = sorted({p["depth"] for p in p8})
    teacher_seed = int(ctx.rng("D7 teacher").integers(2**31))
    data = make_dataset("teacher", seed=teacher_seed, n_train=N_TRAIN, n_test=N_TEST, dim=INPUTS,
                        net=relu_teacher(INPUTS, seed=teacher_seed))
    var_train = float(data.y_train.astype(np.float64).var())
    var_test = float(data.y_test.astype(np.float64).var())
    tuning = [int(s) for s in ctx.rng("D7", "tuning seeds").integers(2**31, size=TUNING_SEEDS)]
    seeds, lrs = [*tuning, *ctx.seed_list], _lrs(opts)
    L, S = len(lrs), len(seeds)
    batch = min(opts.batch_size, N_TRAIN)
    lr = np.repeat(np.asarray(lrs, dtype=np.float32), S).reshape(-1, 1, 1)
    fvu: dict = {}          # (depth, arch, steps) -> (L, S) training FVU
    trained: dict = {}      # (depth, arch, steps) -> (model, params, state, (L, S) test FVU)
    for depth in depths(ctx.quick):
        for arch in ("plain", "residual"):
            model = net(depth, arch == "residual")
            params = [np.concatenate([p] * L) for p in model.init(seeds)]
            snaps: dict = {}

            def snapshot(info, snaps=snaps, keep=depth in d8_depths):
                if keep and info.step + 1 in budgets:
                    snaps[info.step + 1] = [p.copy() for p in info.params]

            hist = train(model, data, np.tile(seeds, L), optimizer=get_optimizer(opts.optimizer, lr=lr),
                         epochs=-(-budgets[-1] // (N_TRAIN // batch)), batch_size=batch, max_steps=budgets[-1],
                         params=params, eval_every=0, eval_steps=budgets, callback=snapshot)
            for steps in budgets:
                at = int(np.searchsorted(hist.eval_step, steps, side="right")) - 1
                err = (hist.train_loss[:, at] / var_train).reshape(L, S)
                fvu[depth, arch, steps] = np.where(np.isfinite(err), err, np.inf)
                if depth in d8_depths:
                    trained[depth, arch, steps] = (model, snaps.get(steps, hist.params), hist.state,
                                                   (hist.test_loss[:, at] / var_test).reshape(L, S))
    same = max(float(np.max(np.abs(fvu[2, "plain", t] - fvu[2, "residual", t]))) for t in budgets)
    ctx.check("D7.depth-2", same, 0.0, claim="D7", n=len(budgets) * L * S,
              what="at depth 2 (no blocks) the plain and the residual net are one net: max |training FVU plain - "
                   "residual| over budgets, lrs and seeds")
    _d7(ctx, p7, fvu, lrs)
    _d8(ctx, p8, trained, fvu, lrs, data, var_test)


def _at_best(err: np.ndarray) -> tuple[int, np.ndarray, np.ndarray]:
    """(lr index with the lowest median over the tuning seeds, tuning seeds' errors at it, verdict seeds')."""
    from dlbench.experiments.depth.measure import best_lr

    j = int(best_lr(err, TUNING_SEEDS))
    return j, err[j, :TUNING_SEEDS], err[j, TUNING_SEEDS:]


def _degradation(fvu: dict, steps: int, arch: str, over: tuple[int, ...]) -> tuple[np.ndarray, str]:
    """Per verdict seed log10(FVU at the deepest of `over` / FVU at the reference depth), and what it compared.
    The reference is the shallower depth whose FVU at its best lr has the lowest median on the tuning seeds."""
    deepest = max(over)
    tune = {d: _at_best(fvu[d, arch, steps]) for d in over}
    ref = min((d for d in over if d < deepest), key=lambda d: np.median(tune[d][1]))
    with np.errstate(all="ignore"):
        effect = np.log10(tune[deepest][2] / tune[ref][2])
    note = f"{arch} depth {deepest} vs {ref}: median FVU {_fmt(np.median(tune[deepest][2]))} vs " \
           f"{_fmt(np.median(tune[ref][2]))}"
    return effect, note


def _d7(ctx: RunContext, points: list[dict], fvu: dict, lrs) -> None:
    for point in points:
        steps = point["steps"]
        for arch in ("plain", "residual"):
            for depth in depths(ctx.quick):
                j, _, err = _at_best(fvu[depth, arch, steps])
                case = {"net": arch, "depth": depth, "blocks": blocks_of(depth), "width": WIDTH, **point}
                ctx.record.metric("train_fvu", err, case=case, better="lower", seeds=ctx.seed_list,
                                  section="d7.loss")
                ctx.record.metric("lr", lrs[j], case=case, section="d7.loss")
        for role, over in (("claim", depths(ctx.quick)), ("control", CONTROL_DEPTHS)):
            plain, plain_note = _degradation(fvu, steps, "plain", over)
            res, res_note = _degradation(fvu, steps, "residual", over)
            f = all_of([finding(plain, threshold=D7_WORSE, seed=ctx.seed,
                                label="plain: log10 training FVU deepest/reference", note=plain_note),
                        finding(res, direction="less", null=D7_WORSE, seed=ctx.seed,
                                label="residual: log10 training FVU deepest/reference", note=res_note)],
                       note=f"depths {','.join(map(str, over))}, each net at its own lr, both with {NORM} norm")
            ctx.finding("D7", f, point=point, role=role)


def _d8(ctx: RunContext, points: list[dict], trained: dict, fvu: dict, lrs, data, var_test: float) -> None:
    X, y = data.X_test, data.y_test
    checked_zero = False
    none_gap = zero_gap = 0.0
    n_none = n_zero = 0
    for point in points:
        steps, depth = point["steps"], point["depth"]
        B = blocks_of(depth)
        sets = deletion_sets(B, ctx.rng("D8 deleted blocks", depth))
        curves, learned = {}, {}
        for arch in ("plain", "residual"):
            model, params, state, test = trained[depth, arch, steps]
            j, _, _ = _at_best(fvu[depth, arch, steps])
            S = test.shape[1]
            idx = np.arange(j * S + TUNING_SEEDS, (j + 1) * S)
            chosen = [p[idx] for p in params]
            st = [{k: v[idx] for k, v in s.items()} for s in state]
            base, curve = damage_curve(model, chosen, st, X, y, var_test, sets)
            curves[arch], learned[arch] = curve, base
            # the deletion code with nothing deleted is the trainer's own evaluation
            none_gap = max(none_gap, float(np.max(np.abs(base - test[j, TUNING_SEEDS:]) / test[j, TUNING_SEEDS:])))
            n_none += base.size
            if arch == "residual" and not checked_zero:
                zero_gap, n_zero = _zero_branch_gap(model, chosen, st, X)
                checked_zero = True
            case = {"net": arch, "width": WIDTH, **point}
            ks = np.array(sorted(sets))
            for i, seed in enumerate(ctx.seed_list):
                ctx.record.curve("damage", curve[:, i], case=case, seed=seed, steps=ks, section="d8.deletion")
            ctx.record.metric("test_fvu", base, case=case, better="lower", seeds=ctx.seed_list, section="d8.deletion")
            ctx.record.metric("lr", lrs[j], case=case, section="d8.deletion")
        for arch, role in (("residual", "claim"), ("plain", "control")):
            curve, base = curves[arch], learned[arch]
            if role == "claim" and not np.median(base) <= D8_LEARNED:
                ctx.not_run("D8", f"the residual net did not learn the teacher (median test FVU "
                                  f"{np.median(base):.2f} > {D8_LEARNED}): there is nothing for a deletion to lose",
                            point=point)
                continue
            ctx.finding("D8", _d8_finding(curve, base, ctx.seed, arch, B), point=point, role=role)
    ctx.check("D8.no-deletion", none_gap, 1e-6, claim="D8", n=n_none,
              what="test FVU of the trained nets with no block deleted against the trainer's own evaluation: "
                   "max relative difference (float32)")
    ctx.check("D8.zero-branch", zero_gap, 0.0, claim="D8", n=n_zero,
              what="trained residual nets: max |output with block j's last layer (W, b) set to 0 - output with "
                   "block j deleted| over every block j")


def _zero_branch_gap(model, params, state, X) -> tuple[float, int]:
    """max |net with block j's last linear layer zeroed - net with block j deleted| over blocks j (exact 0:
    the branch then adds h + 0 = h)."""
    gap, n = 0.0, 0
    for j in range(model.n_blocks):
        last = model.units[j * model.block_layers + model.block_layers - 1]
        zeroed = [p.copy() for p in params]
        zeroed[last.W][...] = 0
        if last.b is not None:
            zeroed[last.b][...] = 0
        a, _ = model.forward(zeroed, X, state, train=False)
        b, _ = model.forward(params, X, state, train=False, deleted=(j,))
        gap = max(gap, float(np.max(np.abs(a - b))))
        n += a.size
    return gap, n


def _d8_finding(curve: np.ndarray, base: np.ndarray, seed: int, arch: str, n_blocks: int):
    """One deletion costs a little (d(1) below D8_LITTLE) and the damage keeps rising with the number deleted
    (d(ceil(B / 2)) - d(1) at least D8_GROWS)."""
    shape = ", ".join(f"{v:.2f}" for v in np.median(curve, axis=1))
    note = (f"{arch} net of {n_blocks} blocks, median test FVU intact {_fmt(np.median(base))}; median damage "
            f"for k = 0..{n_blocks} deleted: {shape}")
    return all_of([finding(curve[1], direction="less", null=D8_LITTLE, seed=seed,
                           label="share of the learned fit lost deleting one block"),
                   finding(growth(curve), threshold=D8_GROWS, seed=seed,
                           label=f"further share lost deleting {-(-n_blocks // 2)} blocks instead of one")], note=note)
