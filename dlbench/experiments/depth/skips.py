"""D7 and D8: deep plain nets against residual nets, trained once and measured twice.

D7 (He, Zhang, Ren & Sun 2016, "Deep residual learning for image recognition"). Nets of depth D (D linear
layers: a stem, D - 2 pre-activation blocks h + W relu(norm(h)) + b, a head; dlbench.nn.residual) are trained on a random relu
teacher for a fixed number of steps, each at its own learning rate. Both nets carry the same layer norm in
every block; they differ only by the skip paths h_{j+1} = h_j + F_j(h_j). He et al.'s plain nets were batch
normalised too, so a plain net that fails is not one whose signal vanished: it is one that the optimizer cannot
drive. Per net, the effect is log10(training FVU at the deepest depth / at the reference depth) after the same
fixed number of steps (He et al. compare at a fixed budget too), the reference being the shallower depth with the
lowest median FVU on the tuning seeds (chosen on seeds the verdict does not use, so the choice cannot flatter
either net). The plain net must get worse by at least D7_WORSE; the residual net must not get worse, a
non-inferiority: the whole interval below +D7_SAME (He et al.'s deeper residual nets train to a lower error than
their shallower ones, so a deep residual net that does better is the claim, not against it). A net whose best lr
is an end of the lr grid is named in the evidence: there the grid, not the architecture, may be what limits it.

D8 (Veit, Wilber & Belongie 2016, "Residual networks behave like ensembles of relatively shallow networks").
The same trained nets (each at its best lr) lose k of their B blocks after training (forward(..., deleted=)):
a residual block keeps its skip, a plain block is cut out and its input feeds the next. The damage of a
deletion is the share of what training gained that it loses, d = (min(FVU_k, 1) - FVU_0) / (1 - FVU_0) on the
test set, along B paths that delete one more block at a time (path j starts with block j, then goes on in a
random order), averaged over the paths for the damage curve.
The FVU is capped at 1, the mean predictor's: a net worse than that has lost all it learned, and how far worse
(an output off by 10x or by 1000x) measures the scale of a broken net's outputs, not a share of a fit; the
uncapped median FVU with every block deleted is in the evidence. "A little" is d(1); "smoothly" is the largest
single-step jump of a net's damage curve (the mean over its paths, as Veit et al. average over random sets),
max_k (d(k) - d(k-1)) over the most lost max_k d(k): a net that collapses loses it all in one step (ratio 1), one
that degrades in small steps loses it in many. One path alone is not smooth (some blocks matter more than
others: a single path's largest jump is about half of all it loses); the average over which blocks go is what
Veit et al. read. Both nets must have learned (the premise).
"""

from __future__ import annotations

import math

import numpy as np

from dlbench.experiments.base import RunContext, parse_numbers
from dlbench.stats import all_of, finding

TUNING_SEEDS = 2            # seeds that choose each net's lr and D7's reference depth; the verdict uses the others
NETS = {True: 1, False: 3}  # nets per verdict seed (drawn for the base seed), trained at the tuned lr only; (quick,
                            # default): the quick depths stop at 16, where the plain net's part decides D7 alone
INPUTS = 8                  # the teacher's inputs
N_TRAIN, N_TEST = 1024, 512   # enough samples that a trained net's test FVU stays near its training FVU
NORM = "layer"              # the norm of both nets (no running statistics: training loss is the function trained)
WIDTH = 32                  # units of every hidden layer
BLOCK_LAYERS = 1            # dense layers per block: many blocks per depth, the most paths for D8 to cut
DEPTHS = (2, 4, 8, 16, 32)  # linear layers: stem + one per block + head
QUICK_DEPTHS = (2, 4, 16)
CONTROL_DEPTHS = (2, 4)     # D7's control: a range too shallow for depth to hurt
D7_WORSE = math.log10(1.5)  # "worse" (the plain net): a training FVU at least 1.5x the reference depth's
D7_SAME = math.log10(4 / 3)  # "not worse" (the residual net): at most a third above the reference depth's FVU
D7_LOWER = (3e-4, 1e-3)     # rates D7 adds below --lrs: with 3e-3 the smallest, the deep plain net's best was always it
D8_LITTLE = 0.5             # "a little": one deletion loses less than half of what training gained
D8_SMOOTH = 0.5             # "smoothly": no single further deletion loses more than half of the most ever lost
D8_LEARNED = 0.8            # premise, both nets: median intact test FVU at most this (a fifth of the variance learned)


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


def d7_lrs(opts) -> list[float]:
    """D7's rates: --lrs and D7_LOWER below them (the deep plain net's best rate was the smallest of --lrs)."""
    return sorted({*_lrs(opts), *D7_LOWER})


def _fmt(v: float) -> str:
    return f"{v:.3g}"


# ----------------------------------------------------------------------------- pure measurements

def deletion_paths(n_blocks: int, rng: np.random.Generator) -> list[tuple[int, ...]]:
    """The orders in which D8 deletes blocks, one more at a time: n_blocks paths, path j starting with block j
    (so k = 1 covers every single block once) and going on through the others in a random order."""
    paths = []
    for j in range(n_blocks):
        rest = [b for b in range(n_blocks) if b != j]
        paths.append((j, *(rest[i] for i in rng.permutation(len(rest)))))
    return paths


def path_sets(path: tuple[int, ...]) -> dict[int, list[tuple]]:
    """{k: [the first k blocks of `path`]} for k = 0 .. len(path): one deletion set per k, as damage_curve takes."""
    return {k: [tuple(sorted(path[:k]))] for k in range(len(path) + 1)}


def test_fvu(model, params, state, X, y, variance: float, deleted=()) -> np.ndarray:
    """Test MSE / Var(y) of every replica, eval mode, with the blocks in `deleted` made identities, (R,)."""
    from dlbench.nn.losses import mse

    out, _ = model.forward(params, X, state, train=False, deleted=deleted)
    loss, _ = mse(out, y)
    return loss / variance


def damage_curve(model, params, state, X, y, variance: float, sets: dict,
                 fvu_of=None) -> tuple[np.ndarray, np.ndarray]:
    """(FVU_0 (R,), damage (K + 1, R)): per k, the mean over `sets[k]` of (min(FVU, 1) - FVU_0) / (1 - FVU_0);
    NaN for a replica that learned nothing (FVU_0 >= 1: no fit to lose). fvu_of(deleted) gives a deletion set's
    test FVU (default: test_fvu of these params; pass one that remembers to share forwards between calls)."""
    if fvu_of is None:
        def fvu_of(deleted):
            return test_fvu(model, params, state, X, y, variance, deleted)
    base = fvu_of(())
    gained = np.where(base < 1.0, 1.0 - base, np.nan)
    curve = np.stack([np.mean([(np.minimum(fvu_of(s), 1.0) - base) / gained for s in sets[k]], axis=0)
                      for k in sorted(sets)])
    return base, curve


def largest_jump(curve: np.ndarray) -> np.ndarray:
    """max_k (d(k) - d(k-1)) / max_k d(k) per replica, curve (B + 1, R) with d(0) = 0: the share of the most the
    net ever loses that one further deletion loses at once. 1 for a collapse (all of it at one step), 1/B for an
    even rise over B steps; NaN where no deletion loses anything."""
    top = np.max(curve, axis=0)
    with np.errstate(all="ignore"):
        return np.where(top > 0, np.max(np.diff(curve, axis=0), axis=0) / top, np.nan)


# ----------------------------------------------------------------------------- the part

def claim_d7_d8(opts, ctx: RunContext) -> None:
    """Plain and residual nets of every depth trained on a relu teacher at every lr; D7 reads their training
    loss over depth, D8 deletes blocks of the trained nets. Checks: at depth 2 the two nets are one; a net
    with nothing deleted is the net the trainer evaluated; a residual block whose last layer is zero is the
    identity, exactly."""
    from dlbench.data import make_dataset
    from dlbench.experiments.depth import CLAIMS
    from dlbench.experiments.depth.measure import best_lr
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
    verdict, lrs = verdict_nets(ctx), d7_lrs(opts)
    L, T, V = len(lrs), len(tuning), len(verdict)
    batch = min(opts.batch_size, N_TRAIN)
    fvu: dict = {}          # (depth, arch, steps) -> (L, T + V) training FVU; a verdict net runs at the best lr only
    trained: dict = {}      # (depth, arch, steps) -> (model, verdict params, state, (V,) test FVU)

    def run(model, seeds, lr, upto, snaps=None):
        """Train `seeds` at `lr` for the largest budget of `upto`, evaluated (and snapshot into `snaps`) at each."""
        def snapshot(info):
            if info.step + 1 in upto:
                snaps[info.step + 1] = [p.copy() for p in info.params]

        return train(model, data, seeds, optimizer=get_optimizer(opts.optimizer, lr=lr),
                     epochs=-(-max(upto) // (N_TRAIN // batch)), batch_size=batch, max_steps=max(upto),
                     eval_every=0, eval_steps=upto, callback=None if snaps is None else snapshot)

    def at(hist, steps):
        return int(np.searchsorted(hist.eval_step, steps, side="right")) - 1

    for depth in depths(ctx.quick):
        for arch in ("plain", "residual"):
            model = net(depth, arch == "residual")
            # the tuning nets at every lr (one call); then the verdict nets at each budget's best lr
            tune_lr = np.repeat(np.asarray(lrs, dtype=np.float32), T).reshape(-1, 1, 1)
            hist = run(model, np.tile(tuning, L), tune_lr, budgets)
            best = {}
            for steps in budgets:
                err = (hist.train_loss[:, at(hist, steps)] / var_train).reshape(L, T)
                fvu[depth, arch, steps] = np.full((L, T + V), np.nan)
                fvu[depth, arch, steps][:, :T] = np.where(np.isfinite(err), err, np.inf)
                best[steps] = int(best_lr(fvu[depth, arch, steps], T))
            for j in sorted(set(best.values())):
                upto = [t for t in budgets if best[t] == j]
                snaps: dict = {}
                h = run(model, verdict, np.float32(lrs[j]), upto, snaps if depth in d8_depths else None)
                for steps in upto:
                    e = h.train_loss[:, at(h, steps)] / var_train
                    fvu[depth, arch, steps][j, T:] = np.where(np.isfinite(e), e, np.inf)
                    if depth in d8_depths:
                        trained[depth, arch, steps] = (model, snaps.get(steps, h.params), h.state,
                                                       h.test_loss[:, at(h, steps)] / var_test)
    # the depth-2 nets (no blocks) of both kinds, tuning and verdict, at every lr they ran
    same = max(float(np.nanmax(np.abs(fvu[2, "plain", t] - fvu[2, "residual", t]))) for t in budgets)
    ctx.check("D7.depth-2", same, 0.0, claim="D7", n=L * T + V,
              what="at depth 2 (no blocks) the plain and the residual net are one net: max |training FVU plain - "
                   "residual| over budgets, lrs and seeds")
    _d7(ctx, p7, fvu, lrs)
    _d8(ctx, p8, trained, fvu, lrs, data, var_test)


def verdict_nets(ctx: RunContext) -> list[int]:
    """The seeds of the nets the verdicts use: the run's seeds, then NETS - 1 more per seed drawn for this base."""
    extra = ctx.rng("D7", "more nets").integers(2**31, size=(NETS[ctx.quick] - 1) * ctx.seeds)
    return [*ctx.seed_list, *(int(v) for v in extra)]


def _at_best(err: np.ndarray) -> tuple[int, np.ndarray, np.ndarray]:
    """(lr index with the lowest median over the tuning seeds, tuning seeds' errors at it, verdict seeds')."""
    from dlbench.experiments.depth.measure import best_lr

    j = int(best_lr(err, TUNING_SEEDS))
    return j, err[j, :TUNING_SEEDS], err[j, TUNING_SEEDS:]


def capped(fvu: np.ndarray) -> np.ndarray:
    """FVU capped at 1, the mean predictor's: a net at or beyond it, or one that diverged (inf), learned nothing.
    A diverged net so stays in the comparison (as FVU 1) instead of dropping out of it."""
    return np.where(fvu < 1.0, fvu, 1.0)  # NaN and inf compare False: 1


def _degradation(fvu: dict, steps: int, arch: str, over: tuple[int, ...], lrs):
    """Per verdict seed log10(FVU at the deepest of `over` / FVU at the reference depth) (FVUs capped at 1), what it
    compared, and the reference depth's verdict FVUs. The reference is the shallower depth whose FVU at its best lr
    has the lowest median on the tuning seeds. A best lr at an end of the grid is named: a smaller or larger one,
    untried, might have done better."""
    deepest = max(over)
    tune = {d: _at_best(fvu[d, arch, steps]) for d in over}
    ref = min((d for d in over if d < deepest), key=lambda d: np.median(tune[d][1]))
    effect = np.log10(capped(tune[deepest][2]) / capped(tune[ref][2]))
    note = f"{arch} depth {deepest} vs {ref}: median FVU {_fmt(np.median(tune[deepest][2]))} vs " \
           f"{_fmt(np.median(tune[ref][2]))}"
    edges = [f"depth {d} at lr {lrs[tune[d][0]]:g}" for d in (deepest, ref) if tune[d][0] in (0, len(lrs) - 1)]
    if edges:
        note += f" (best lr at an end of the grid {','.join(f'{v:g}' for v in lrs)}: {'; '.join(edges)}; the grid " \
                "may limit it)"
    return effect, note, tune[ref][2]


def _d7(ctx: RunContext, points: list[dict], fvu: dict, lrs) -> None:
    nets = verdict_nets(ctx)
    for point in points:
        steps = point["steps"]
        for arch in ("plain", "residual"):
            for depth in depths(ctx.quick):
                j, _, err = _at_best(fvu[depth, arch, steps])
                case = {"net": arch, "depth": depth, "blocks": blocks_of(depth), "width": WIDTH, **point}
                ctx.record.metric("train_fvu", err, case=case, better="lower", seeds=nets,
                                  section="d7.loss")
                ctx.record.metric("lr", lrs[j], case=case, section="d7.loss")
        roles = {role: {a: _degradation(fvu, steps, a, over, lrs) for a in ("plain", "residual")}
                 for role, over in (("claim", depths(ctx.quick)), ("control", CONTROL_DEPTHS))}
        unlearned = {a: d[2] for a, d in roles["claim"].items() if not np.median(d[2]) <= D8_LEARNED}
        if unlearned:
            # a reference that learned nothing makes "not worse" hold for any net: there is nothing to lose
            ctx.not_run("D7", "; ".join(f"the {a} net's reference depth did not learn the teacher (median training "
                                        f"FVU {np.median(r):.2f} > {D8_LEARNED})" for a, r in unlearned.items()),
                        point=point)
            continue
        for role, over in (("claim", depths(ctx.quick)), ("control", CONTROL_DEPTHS)):
            (plain, plain_note, _), (res, res_note, _) = roles[role]["plain"], roles[role]["residual"]
            deepest = max(over)
            gap = np.log10(capped(_at_best(fvu[deepest, "plain", steps])[2])
                           / capped(_at_best(fvu[deepest, "residual", steps])[2]))
            f = all_of([finding(plain, threshold=D7_WORSE, seed=ctx.seed,
                                label="plain: log10 training FVU deepest/reference", note=plain_note),
                        _not_worse(res, ctx.seed, res_note),
                        finding(gap, threshold=D7_WORSE, seed=ctx.seed,
                                label=f"log10 training FVU plain / residual at depth {deepest} (per seed)")],
                       note=f"depths {','.join(map(str, over))} after {steps} steps, each net at its own lr, both "
                            f"with {NORM} norm; FVU capped at 1 (a diverged net counts as having learned nothing)")
            ctx.finding("D7", f, point=point, role=role)


def _not_worse(effect: np.ndarray, seed: int, note: str):
    """The residual net does not get worse: the whole interval of log10(deepest / reference) below +D7_SAME
    (refuted when it lies wholly above: the deep residual net is worse by more than 4/3x)."""
    return finding(effect, direction="less", null=D7_SAME, seed=seed,
                   label="residual: log10 training FVU deepest/reference",
                   note=f"{note}; not worse: below +{D7_SAME:.3g} decades (4/3x)")


def _d8(ctx: RunContext, points: list[dict], trained: dict, fvu: dict, lrs, data, var_test: float) -> None:
    X, y = data.X_test, data.y_test
    nets = verdict_nets(ctx)
    checked_zero = False
    none_gap = zero_gap = 0.0
    n_none = n_zero = 0
    for point in points:
        steps, depth = point["steps"], point["depth"]
        B = blocks_of(depth)
        paths = deletion_paths(B, ctx.rng("D8 deleted blocks", depth))
        curves, learned, gone = {}, {}, {}
        for arch in ("plain", "residual"):
            model, chosen, st, test = trained[depth, arch, steps]
            j, _, _ = _at_best(fvu[depth, arch, steps])
            seen: dict = {}  # every path starts intact and ends with every block deleted: one forward per set

            def fvu_of(deleted, model=model, chosen=chosen, st=st, seen=seen):
                if deleted not in seen:
                    seen[deleted] = test_fvu(model, chosen, st, X, y, var_test, deleted)
                return seen[deleted]

            per_path = [damage_curve(model, chosen, st, X, y, var_test, path_sets(p), fvu_of) for p in paths]
            base, each = per_path[0][0], np.stack([c for _, c in per_path])         # (paths, B + 1, R)
            curve = each.mean(axis=0)
            curves[arch], learned[arch] = curve, base
            gone[arch] = fvu_of(tuple(range(B)))
            # the deletion code with nothing deleted is the trainer's own evaluation
            none_gap = max(none_gap, float(np.max(np.abs(base - test) / test)))
            n_none += base.size
            if arch == "residual" and not checked_zero:
                zero_gap, n_zero = _zero_branch_gap(model, chosen, st, X)
                checked_zero = True
            case = {"net": arch, "width": WIDTH, **point}
            ks = np.arange(B + 1)
            for i, seed in enumerate(nets):
                ctx.record.curve("damage", curve[:, i], case=case, seed=seed, steps=ks, section="d8.deletion")
            ctx.record.metric("test_fvu", base, case=case, better="lower", seeds=nets, section="d8.deletion")
            ctx.record.metric("lr", lrs[j], case=case, section="d8.deletion")
        untrained = [a for a in ("residual", "plain") if not np.median(learned[a]) <= D8_LEARNED]
        if untrained:
            # a net that never learned "collapses" trivially: there is nothing for a deletion to lose
            ctx.not_run("D8", "; ".join(f"the {a} net did not learn the teacher (median intact test FVU "
                                        f"{np.median(learned[a]):.2f} > {D8_LEARNED})" for a in untrained)
                        + ": a deletion has nothing to lose", point=point)
            continue
        for arch, role in (("residual", "claim"), ("plain", "control")):
            curve, base = curves[arch], learned[arch]
            ctx.finding("D8", _d8_finding(curve, base, ctx.seed, arch, B, gone[arch]), point=point, role=role)
    ctx.check("D8.no-deletion", none_gap, 1e-6, claim="D8", n=n_none,
              what="test FVU of the trained nets with no block deleted against the trainer's own evaluation: "
                   "max relative difference (float32)")
    ctx.check("D8.zero-branch", zero_gap, 0.0, claim="D8", n=n_zero,
              what="trained residual nets: max |output with block j's last layer (W, b) set to 0 - output with "
                   "block j deleted| over every block j")


def _zero_branch_gap(model, params, state, X) -> tuple[float, int]:
    """(max |net with block j's last linear layer zeroed - net with block j deleted| over blocks j, the number of
    nets checked). Exact 0: the branch then adds h + 0 = h."""
    gap = 0.0
    for j in range(model.n_blocks):
        last = model.units[j * model.block_layers + model.block_layers - 1]
        zeroed = [p.copy() for p in params]
        zeroed[last.W][...] = 0
        if last.b is not None:
            zeroed[last.b][...] = 0
        a, _ = model.forward(zeroed, X, state, train=False)
        b, _ = model.forward(params, X, state, train=False, deleted=(j,))
        gap = max(gap, float(np.max(np.abs(a - b))))
    return gap, int(params[0].shape[0])


def _d8_finding(curve: np.ndarray, base: np.ndarray, seed: int, arch: str, n_blocks: int, gone=None):
    """One deletion costs a little (d(1) below D8_LITTLE) and the damage rises in small steps (the largest
    single-step jump of the net's damage curve below D8_SMOOTH of the most it loses)."""
    shape = ", ".join(f"{v:.2f}" for v in np.median(curve, axis=1))
    note = (f"{arch} net of {n_blocks} blocks, median test FVU intact {_fmt(np.median(base))}"
            + (f", uncapped with every block deleted {_fmt(np.median(gone))}" if gone is not None else "")
            + f"; median damage for k = 0..{n_blocks} deleted: {shape}")
    return all_of([finding(curve[1], direction="less", null=D8_LITTLE, seed=seed,
                           label="share of the learned fit lost deleting one block"),
                   finding(largest_jump(curve), direction="less", null=D8_SMOOTH, seed=seed,
                           label="largest single-step jump in the share lost / the most lost")], note=note)
