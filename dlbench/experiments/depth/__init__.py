"""Depth: what a deep relu net can represent that a shallow one cannot, whether training finds it, what depth
costs, what its layers compute, and what skip paths change; claims D1-D8.

What each claim measures, its negative control, its nuisance grid and its threshold are in CLAIMS below (and
in `dlbench claims --list`). The exact constructions are in `relu_exact`, the measurements in `measure`, the
parts that judge them in `claims`; plain against residual nets (D7, D8) in `skips`.
"""

from __future__ import annotations

from dataclasses import dataclass

from dlbench.experiments.base import Part, option, parse_numbers
from dlbench.protocol import Axis, CheckSpec, ClaimSpec

NAME = "depth"
HELP = "Deep versus shallow nets: the sawtooth's exact bounds, training at equal parameters, depth's cost, " \
       "linear probes per layer, plain against residual nets (claims D1-D8)."

RESNETS = ("plain and residual nets of width 32 (a stem, pre-activation blocks of one dense layer, F(h) = "
           "W relu(norm(h)) + b, a head; layer norm in both, so they differ only by the skip h + F(h); kaiming init; "
           "depth = linear layers)")
SAWTOOTH = ("Telgarsky's sawtooth t^k, the tent map t(x) = 1 - |2x - 1| composed k times on x ~ U(0, 1) (2^k "
            "linear pieces, 2^(k-1) teeth), standardised; error = the exact population FVU of the trained net")

CLAIMS = {
    "D1": ClaimSpec(
        "D1", "deep beats shallow at equal parameters: a composition like the sawtooth needs exponentially many "
              "units in one hidden layer but only O(k) parameters in k layers",
        measures=f"{SAWTOOTH}, --k = 5. Per seed, log10(FVU of the one-hidden-layer net / FVU of the deep net "
                 "of the same parameter budget), each net at its own lr; beside it the exact lower bound on every "
                 "shallow net of the budget (no training) and the deep construction's 0 (checks)",
        control="the same nets, budgets, lr search and steps with the identity activation: every net is affine "
                "and depth can buy nothing",
        grid=(Axis("budget", (40, 64, 90), quick=(40, 90)), Axis("steps", (600, 2000), quick=(600,)),
              Axis("depth", (3, 5), quick=(5,))),
        threshold="supported: the deep net's error at most half the shallow's (0.3 decades), the interval above "
                  "-0.04; refuted: the interval below -0.04 (the deep error more than 10 % above the shallow's): "
                  "nets that learn nothing scatter by a few % around FVU 1, so smaller differences are not read",
        literature="Telgarsky 2015, 2016 (the sawtooth and the depth separation); Malach & Shalev-Shwartz 2019 "
                   "(functions that separate depths this way are hard for gradient descent); Lu et al. 2019 "
                   "(narrow deep relu nets are born dead)",
        premise="budgets where no shallow net can fit t^k exactly (fewer than 2^k - 1 units) and the deep "
                "construction (6k + 1 parameters) fits; a net born dead (a hidden layer zero on all of [0, 1]) is "
                "drawn again and counted"),
    "D2": ClaimSpec(
        "D2", "one wide layer can approximate anything, but the width it needs explodes with the target's "
              "compositional depth",
        measures="per seed, the slope of log2(smallest width of 1, 2, 4, ..., 128 whose trained one-hidden-layer "
                 "net reaches FVU --target-error on t^k) against k = 1..min(--k, 3), each width at its own lr; "
                 "a seed that reaches it at no width for some k is censored and has no slope",
        control="the same widths, lr search and steps on t^1 in every k slot: the target does not grow",
        grid=(Axis("steps", (1000, 2000), quick=(1000,)),),
        threshold="a slope of at least 0.5 (the width x1.4 per k; an exact fit needs 2^k - 1 units, slope 1); a "
                  "slope from fewer than 6 uncensored seeds is inconclusive",
        literature="Cybenko 1989, Hornik 1991 (universal approximation); Telgarsky 2016 (2^k pieces need 2^k - 1 "
                   "units)"),
    "D3": ClaimSpec(
        "D3", "a very wide shallow net has so many parameters that training may not find them",
        measures=f"{SAWTOOTH}. A one-hidden-layer net of 8 x 2^k units (a hand-built net of that width fits t^k "
                 "exactly: a check) against a depth-k net of half its parameters, each at its own lr. Both must "
                 "hold: the wide net's FVU above --target-error (training missed the exact fit it can express) and, "
                 "per seed, log10(FVU wide / FVU deep) at least 0.3 (fewer parameters, found better)",
        control="the same two nets, lr search and steps on t^1 (two pieces), where the wide net has little to find",
        grid=(Axis("k", (2, 3, 4), quick=(2, 4)), Axis("steps", (300, 1000, 2000), quick=(300, 600))),
        threshold="the wide net misses by more than --target-error (0.05 of the variance), and the deep net's error "
                  "is at most half the wide net's (refuted below -0.04 decades, as D1)",
        literature="Safran & Shamir 2018 (spurious local minima of two-layer relu nets on realisable targets, "
                   "fewer with over-parameterisation); Rahaman et al. 2019 (spectral bias: high frequencies are "
                   "learned last)"),
    "D4": ClaimSpec(
        "D4", "without a nonlinearity depth buys nothing: a deep linear net is one matrix, and trained it does no "
              "better than least squares",
        measures="per seed, (test error of a trained identity-activation net of width 16 - error of least "
                 "squares) / least squares, on a random relu teacher of 8 inputs, each net at its own lr; that "
                 "the net equals the product of its weights is a check",
        control="the relu net of the same shape, the same lr search and steps: it does better than least squares",
        grid=(Axis("depth", (2, 4, 8), quick=(2, 4)), Axis("steps", (300, 1000), quick=(300,))),
        threshold="no better than least squares: the interval above -0.01 (1 % of least squares' error)",
        literature="Baldi & Hornik 1989; Saxe, McClelland & Ganguli 2014 (deep linear nets)"),
    "D5": ClaimSpec(
        "D5", "depth costs time per parameter: more, smaller matmuls",
        measures="time of one training step (forward, backward, Adam update; batch 128, 32 inputs and outputs, "
                 "float32, one thread) per parameter, 8 hidden layers over 1 hidden layer of the same parameter "
                 "count, ratio of medians with a bootstrap interval",
        control="the one-hidden-layer net against a second copy of itself, timed the same way",
        grid=(Axis("params", (2**10, 2**14, 2**17, 2**20), quick=(2**10, 2**20)),),
        threshold="a ratio of at least 1.25: a quarter more time per parameter, above a busy machine's noise",
        literature="the notes; at small sizes a step is dispatch overhead (a fixed cost per layer), at large ones "
                   "the matmuls run at BLAS speed whatever their shape",
        basis="timing"),
    "D6": ClaimSpec(
        "D6", "each layer combines the features of the one below, so more layers combine more",
        measures="linear probes (ridge least squares on +-1 labels) on the input and on every hidden layer of a "
                 "relu net of width 32 trained on the parity of parities (y = XOR of two XORs of signs of 4 "
                 "Gaussian inputs), at its own lr; per seed, the probe's test accuracy on the last hidden layer "
                 "minus on the input, and the smallest layer-to-layer change; both must hold",
        control="the same nets with the identity activation: every layer is affine in the input, so no probe "
                "beats the one on the input",
        grid=(Axis("depth", (3, 5), quick=(3,)), Axis("steps", (600, 1500), quick=(600,))),
        threshold="a rise of at least 10 points of accuracy from the input to the last hidden layer, and no layer "
                  "more than 2 points below the layer beneath it (probes on 4096 test points)",
        literature="Alain & Bengio 2016 (linear classifier probes)",
        premise="where the relu net learns the task (median test accuracy at least 0.8)"),
    "D7": ClaimSpec(
        "D7", "depth is potential, not yet learning: deep plain nets are hard to train",
        measures=f"{RESNETS} are trained on a random relu teacher of 8 inputs and read after a fixed budget of N "
                 "steps (N the grid's steps; He et al. compare at a fixed budget too), depths 2, 4, 8, 16, 32 (--quick 2, 4, 16), each "
                 "net and depth at its own lr. Per net and seed, log10(training FVU at the deepest depth / at the "
                 "reference depth: the shallower one with the lowest median FVU on the tuning seeds; FVU capped at 1, "
                 "so a diverged net counts as having learned nothing). Three parts, all required: the plain net "
                 "gets worse, the residual net does not (a non-inferiority), and at the deepest depth the plain "
                 "net's FVU is above the residual net's (He et al.'s plain-34 against ResNet-34). The lrs are "
                 "--lrs and 3e-4 and 1e-3 below them. A reference depth that did not learn the teacher (median FVU "
                 "above 0.8) leaves the point not run. A net whose "
                 "best lr is an end of the lr grid is named in the evidence: there the grid, not the architecture, "
                 "may be what limits it",
        control="the same nets, lr search and steps over depths 2 and 4 only: too shallow for depth to be an "
                "obstacle, so the plain net must not get worse there",
        grid=(Axis("steps", (400, 600), quick=(400,)),),
        threshold="the plain net's whole interval at or beyond 1.5x the reference depth's FVU (0.18 decades); the "
                  "residual net's whole interval below 4/3x (+0.125 decades; refuted when it lies wholly above): "
                  "'not worse' must be tighter than the plain net's 'worse' (1.5x), so that one net cannot be both. "
                  "One-sided, as He et al.'s claim is: their deeper residual nets train to a lower error, so a deep "
                  "residual net that does better than the reference depth is the claim, not a departure from it; "
                  "at the deepest depth the plain net's whole interval at or beyond 1.5x the residual net's FVU. "
                  "The budgets were 200 and 400 steps until a run showed the 30-block residual net 1.3x above its "
                  "reference after 200 steps at base seed 1000 (interval 0.05 to 0.16 decades, undecided against "
                  "4/3x): moved to 400 and 600 after that run, and the design, frozen, then run on base seeds 3000, "
                  "4000 and 5000, which no earlier run had used, with 'supported at both budgets' predicted: so for "
                  "3000 and 4000; conditional for 5000, where after 400 steps the residual net was 0.09 decades "
                  "above its reference (interval up to 0.17): the 400-step point is near the bar",
        literature="He, Zhang, Ren & Sun 2016 (the degradation of deep plain nets, which are batch normalised "
                   "and so not starved of signal, at a fixed number of iterations; residual learning removes it); "
                   "Srivastava, Greff & Schmidhuber 2015 (highway networks)"),
    "D8": ClaimSpec(
        "D8", "a deep net acts like an ensemble of smaller ones",
        measures="D7's trained nets of depth 16 (14 blocks; each at its best lr) lose k = 0..B of their B blocks "
                 "after training (a residual block keeps its skip; a plain block is cut out, its input feeding the "
                 "next), one more at a time along 14 paths (path j starts with block j, then a random order). Per net, "
                 "the damage d(k) = (min(test FVU, 1) - intact FVU) / (1 - intact FVU), the share of the learned "
                 "fit lost, averaged over the paths (so over every single block for k = 1); "
                 "the FVU is capped at the mean predictor's 1 because a net worse than that has lost all it "
                 "learned, and how much worse measures a broken net's output scale, not a share of a fit (the "
                 "uncapped FVU with every block deleted is in the evidence). Both must hold: deleting one block "
                 "costs a little (d(1)), and the damage rises smoothly: the largest single-step jump max_k "
                 "(d(k) - d(k-1)) over the most ever lost max_k d(k) (1 for a collapse at one deletion, about 1/B "
                 "for an even rise). Veit et al. say this of residual nets (the claim) and not of plain ones (the "
                 "control): the evidence says which holds for which",
        control="the plain nets of the same shape, trained and cut the same way: without skip paths there is no "
                "ensemble of paths, and one deletion should collapse the net (a jump of about all of it)",
        grid=(Axis("depth", (16,)), Axis("steps", (400, 600), quick=(400,))),
        threshold="one deletion loses less than half of the learned fit (d(1) < 0.5), and no single further "
                  "deletion loses half or more of the most ever lost (jump ratio < 0.5: a collapse is one step of "
                  "about 1), each the whole interval over nets",
        literature="Veit, Wilber & Belongie 2016 (deleting a block of a residual net changes its error smoothly; "
                    "deleting a layer of VGG drops it to chance); Huang et al. 2016 (stochastic depth)",
        premise="where both nets learned the teacher (median intact test FVU at most 0.8: a fifth of the variance "
                "learned, far beyond the few % a net that learned nothing scatters by). A plain net that never "
                "learned would 'collapse' trivially, so the point is then not run"),
}

CHECKS = {
    "D1.construction": CheckSpec("D1.construction", "Telgarsky's width-2, depth-k relu net equals t^k exactly: "
                                 "6k + 1 parameters, 2^k pieces, FVU 0", "1e-9 (dyadic inputs are exact)", "D1"),
    "D1.teeth": CheckSpec("D1.teeth", "the tent map composed k times has 2^(k-1) teeth (the notes say 2^k)",
                          "exact", "D1"),
    "D1.shallow-bound": CheckSpec("D1.shallow-bound", "no trained one-hidden-layer net beats the analytic lower "
                                  "bound of its width (exact population error)", "1e-9", "D1"),
    "D2.exact-width": CheckSpec("D2.exact-width", "2^k units in one hidden layer fit t^k exactly, and 2^k - 2 "
                                "cannot (the bound is positive)", "1e-9", "D2"),
    "D3.hand-built": CheckSpec("D3.hand-built", "a hand-built one-hidden-layer net of D3's width fits t^k exactly",
                               "1e-9", "D3"),
    "D4.collapse": CheckSpec("D4.collapse", "a net with the identity activation equals x W_1 ... W_L plus its "
                             "folded biases", "1e-10 relative, float64", "D4"),
    "D7.depth-2": CheckSpec("D7.depth-2", "at depth 2 (no blocks) the plain and the residual net are one net: "
                            "identical training losses at every lr and seed", "exact", "D7"),
    "D8.no-deletion": CheckSpec("D8.no-deletion", "a trained net with no block deleted scores what the trainer "
                                "measured", "1e-6 relative (float32)", "D8"),
    "D8.zero-branch": CheckSpec("D8.zero-branch", "a residual block whose last layer is zero is the identity: the "
                                "net equals the net with that block deleted", "exact", "D8"),
}

SECTIONS = {
    "depth.construction": "exact constructions: Telgarsky's net, the narrowest exact shallow net, the bound",
    "d1.errors": "D1 · exact FVU per net, budget and steps, each at its best lr (shallow: its lower bound)",
    "d2.width": "D2 · width a shallow net needs, per k (NaN: censored)",
    "d3.errors": "D3 · very wide shallow net against a deep net of half its parameters",
    "d4.linear": "D4 · linear nets against least squares",
    "d5.step_time": "D5 · training-step time, deep-narrow against shallow-wide",
    "d6.probes": "D6 · linear-probe accuracy per layer",
    "d7.loss": "D7 · training FVU over depth, plain against residual, each at its best lr",
    "d8.deletion": "D8 · damage of deleting k blocks after training (share of the learned fit lost)",
}

MAX_K = 10


@dataclass
class Options:
    k: int = option(5, help="Sawtooth of D1: the tent map composed k times (2^k pieces, 2^(k-1) teeth); D2 sweeps "
                    "k = 1..min(k, 3).", min=2, max=MAX_K)
    lrs: str = option("3e-3,1e-2,3e-2", help="Learning rates each net's best is chosen from (on separate tuning "
                      "seeds).", metavar="LIST", quick="3e-3,3e-2")
    optimizer: str = option("adam", help="Optimizer of every trained net.", choices=lambda: _optimizer_names())
    batch_size: int = option(64, help="Minibatch size of every trained net.", min=1, max=4096)
    target_error: float = option(0.05, help="The FVU a net must reach: D2's width needed, D3's exact-fit miss.",
                                 min=1e-4, max=0.5)


SUITE_OPTIONS: dict = {}


def _optimizer_names() -> list[str]:
    from dlbench.nn.optim import OPTIMIZERS

    return list(OPTIMIZERS)


def validate(opts: Options) -> None:
    """Everything a run needs, checked before any work: one line for the first problem."""
    from dlbench.errors import DlbenchError

    lrs = parse_numbers(opts.lrs, float, what="--lrs")
    if max(lrs) > 10:
        raise DlbenchError(f"--lrs {opts.lrs}: learning rates above 10 only diverge")


def memory(opts: Options, seeds: int) -> int:
    """Bytes the run needs at its peak, from the options alone: per seed, the widest training group's replicas
    (activations and their gradients, float32, about eight buffers a unit), D6's probe features of every
    layer (float64, train and test); D7's deepest net evaluated on its training set; once, D5's largest net
    (weights, gradients, Adam's two moments, activations) three times over and the exact-error refinement of one
    chunk of replicas."""
    from dlbench.experiments.depth import claims as c
    from dlbench.experiments.depth import skips
    from dlbench.experiments.depth.relu_exact import REFINEMENT_ELEMENTS

    validate(opts)
    lrs = len(parse_numbers(opts.lrs, float, what="--lrs"))
    per_seed = c.D2_WIDTHS[-1] * 4 * lrs * min(opts.batch_size, c.D6_TRAIN) * 8 * 4
    per_seed += (c.D6_TRAIN + c.D6_TEST) * (c.D6_WIDTH + 1) * (max(CLAIMS["D6"].grid[0].values) + 1) * 8
    # D7-D8: the trainer's eval-mode forward over the whole training set keeps every unit's arrays (about
    # five of replicas x samples x width float32 per unit) of the deepest, widest net; the replicas of one
    # call are the tuning nets at every lr, or the verdict nets (NETS per seed) at one
    units = max(skips.DEPTHS) - 1
    replicas = max(skips.NETS[False] * seeds, lrs * skips.TUNING_SEEDS)
    d7 = replicas * skips.N_TRAIN * skips.WIDTH * 4 * 5 * units
    largest = max(CLAIMS["D5"].grid[0].values)
    once = 3 * (largest * 4 * 6 + c.D5_BATCH * (largest // (2 * c.D5_DIM)) * 4 * 6) + REFINEMENT_ELEMENTS * 8 * 8
    return int((seeds + c.TUNING_SEEDS) * per_seed + d7 + once)


def parts(opts: Options) -> list[Part]:
    """The independent units of the run; D5's timing runs alone, after the others."""
    from dlbench.experiments.depth import claims, skips

    validate(opts)
    return [
        Part("depth.checks", claims.checks),
        Part("depth.D1", claims.claim_d1),
        Part("depth.D2", claims.claim_d2),
        Part("depth.D3", claims.claim_d3),
        Part("depth.D4", claims.claim_d4),
        Part("depth.D6", claims.claim_d6),
        Part("depth.D7-D8", skips.claim_d7_d8, heavy=105),
        Part("depth.D5", claims.claim_d5, timing=True),
    ]


def plot(results, path) -> None:
    """D1's errors per budget and depth beside the shallow bound, D2's width needed per k, D6's probe accuracy
    per layer, D5's time per parameter over the size grid, D7's training FVU over depth (plain against
    residual), D8's damage over the number of blocks deleted."""
    from dlbench.experiments.depth.figure import draw

    draw(results, path)
