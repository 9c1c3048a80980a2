"""`dlbench optimizers`: optimizers on saddles, cliffs, canyons, small nets and a recurrent net; claims O0-O7, O9,
O10.

The run on --surface: each optimizer from many starts at every learning rate of a grid in one vectorized
engine call (`trajectories`); the lr with the lowest median final loss on tuning starts is then run from
fresh evaluation starts, shared by every optimizer, and measured as it streams (final loss, steps to a
target, divergence, largest step, oscillation on the steepest axis), in memory that does not grow with
--steps. Each claim is measured on its own setting (`claims`), at every point of its nuisance grid and on
its control; a claim whose setting is not this run's surface is not run unless --all-claims. Exact
identities (O8, Adam rebuilt from its parts, the notes' saddle formula) are checks.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from dlbench.errors import DlbenchError
from dlbench.experiments.base import Part, option, parse_numbers
from dlbench.experiments.optimizers.trajectories import surface_names
from dlbench.protocol import Axis, CheckSpec, ClaimSpec

NAME = "optimizers"
HELP = "Optimizers on saddles, cliffs, canyons, small nets and a recurrent net: best-lr trajectories, claims " \
       "O0-O7, O9, O10."

LIT_DAUPHIN = "Dauphin et al. 2014 (saddle points, Fig. 1: index against loss)"
LIT_PASCANU = "Pascanu, Mikolov & Bengio 2013 (cliffs, gradient clipping)"
LIT_KINGMA = "Kingma & Ba 2015 (Adam, §6.4 and Fig. 4: bias correction)"

CLAIMS = {
    "O0": ClaimSpec(
        "O0", "the landscape is complex but smooth overall",
        measures="relu nets trained on two spirals (Adam): per seed, (a) the loss along the straight line from its "
                 "init to its trained parameters, as the largest rise above the running minimum over the total "
                 "decrease (0 = monotone), and (b) the strict local minima on a filter-normalised 2-D slice around "
                 "the trained parameters (1 = one basin); both must hold. On the 2x16 MLP, (b) is the count itself. "
                 "On a deep residual net (12 hidden layers of 16, 11 one-layer blocks with batch norm) it is Li et "
                 "al.'s comparison: the count on its plain twin's slice (the same widths, batch norm, init, training "
                 "and slice directions, the skips removed) minus the count on its own, two nets per seed",
        control="the same line and slice on the Rastrigin surface (a lattice of local minima) and on a deep plain "
                "relu net without skip connections (12x16), whose slices Li et al. found chaotic; at the residual "
                "net also its plain twin alone, and the comparison at depth 2 (one block), where a plain net has no "
                "chaos for skips to prevent",
        grid=(Axis("net", ("2x16", "residual 12x16 bn"), quick=("2x16",)),),
        threshold="a rise below 10 % of the decrease (Goodfellow et al. saw none; 10 % allows the minibatch noise "
                  "of the end point); at most one local minimum on the slice (Li et al.'s convex-looking slices have "
                  "one, their chaotic ones many), or, for the residual net, at least one fewer than its twin's",
        premise="nets that train (the end loss below half the start loss), the residual net's twin too; for the "
                "residual net, a chaotic plain twin (Li et al.'s finding, which skips are said to prevent): at least "
                "2 strict local minima in median on the slices of 4 twins of its own, drawn apart from the pairs "
                "compared (a smooth twin leaves nothing for skips to smooth, and the point is not run)",
        literature="Goodfellow, Vinyals & Saxe 2015 (the line); Li et al. 2018 (filter-normalised slices; skip "
                   "connections keep deep nets' slices from turning chaotic, Fig. 5)"),
    "O1": ClaimSpec(
        "O1", "in high dimension almost every critical point is a saddle",
        measures="critical points of a 2-w-1 tanh MLP's training loss (mse on a tanh teacher), found from many "
                 "starts along training by damped Newton steps on the gradient until |grad| < 1e-10; each point's "
                 "Hessian spectrum (central differences of the exact gradient) and index (fraction of negative "
                 "eigenvalues); the fraction of the critical points above the lowest loss found that are saddles",
        control="a linear model (no hidden layer): a convex loss, whose only critical point is its minimum",
        grid=(Axis("width", (2, 4, 6), quick=(2, 4)),),
        threshold="the Wilson interval of the saddle fraction above 0.5 ('mostly saddles'); the index against the "
                  "loss is recorded beside it",
        premise="critical points whose loss lies above the lowest loss found (a point at the minimum is not "
                "asked to be a saddle); the notes' formula 1 - P^n - (1 - P)^n is a check",
        literature=LIT_DAUPHIN + "; Bray & Dean 2007"),
    "O2": ClaimSpec(
        "O2", "saddles are unstable: noise escapes them",
        measures="plain gradient descent on a 10-d saddle (curvatures +-2) started near its stable manifold "
                 "(unstable coordinates at +-offset): per start, log10 of the steps to escape (loss <= -1) "
                 "with exact gradients over the steps with noisy ones (std 0.01 per coordinate)",
        control="noise 0 against noise 0: the same two runs with the noise removed",
        grid=(Axis("offset", (1e-12, 1e-9, 1e-6)), Axis("lr", (0.03, 0.1))),
        threshold="noise escapes at least 1.5x faster (0.18 decades): exact descent needs log(1/offset)/log(1+2lr) "
                  "steps, noise starts it from about lr x std",
        premise="starts nearer the stable manifold than the noise's step lr x std (3e-4 and more)",
        literature=LIT_DAUPHIN + "; Ge et al. 2015 (noisy gradient descent escapes strict saddles)"),
    "O3": ClaimSpec(
        "O3", "cliffs throw the parameters far; clipping stops it",
        measures="plain gradient descent on the cliff surface, with and without clipping, the same starts: per "
                 "start, log10 of the largest loss spike (rise above the running minimum) unclipped over clipped, "
                 "and log10 of the final loss's gap to the minimum unclipped over clipped; both must hold",
        control="clipping at an infinite threshold (no clipping through the same code)",
        grid=(Axis("clip", ("norm", "value")), Axis("lr", (0.05, 0.1, 0.15), quick=(0.05, 0.1))),
        threshold="spikes 10x smaller (one decade: the wall throws a step of lr x 625) and a final gap 2x smaller "
                  "with clipping at 1",
        premise="learning rates at which unclipped descent is thrown by the wall (a median spike of 10 or more: "
                "landed several units away); at a smaller lr a run only hops onto the wall's foot, and the point "
                "is not run",
        literature=LIT_PASCANU),
    "O10": ClaimSpec(
        "O10", "cliffs come from exploding gradients, and are common in recurrent nets",
        measures="a small Elman RNN (tanh, a linear head on the last state, mse on the adding problem, h_0 = 0) "
                 "with its recurrent weight W_hh = rho Q (Q orthogonal: spectral radius exactly rho), scanned over "
                 "rho: the largest |dL/dW| over W_ih and W_hh at sequence lengths T = 8 .. 64, four nets per seed. "
                 "All must hold: (a) at the grid's rho > 1 it grows geometrically: log10 of its growth over the "
                 "doubling T = 32 -> 64, read off a least-squares line through T = 32, 40, .., 64; (b) at rho = 0.9 "
                 "it does not; trained from that init by SGD (lr 0.1) on sequences of 64 steps, two nets per seed, "
                 "each once clipped at gradient norm 1 and once unclipped (the same init and batches), clipping "
                 "keeps training stable: (c) the fraction of runs thrown by a cliff (a loss spike of 10x the first "
                 "loss, or a blow-up) is lower with clipping, and (d) the clipped run ends with the lower training "
                 "loss in most pairs. Both are counts, so no score depends on where a blown-up run is capped. The "
                 "scan's radii 1.1 and 1.5 are recorded beside: a radius above 1 is necessary for tanh gradients to "
                 "explode, not sufficient",
        control="the same ladder, fits and training runs at rho = 0.5, the same T: every product of Jacobians "
                "shrinks as 0.5^T, so nothing explodes and the net has no cliffs; the ladder can still read a "
                "growth (a sum of more terms) and clipping at norm 1 is still applied, so either part could come out "
                "supported if the measurement, not the mechanism, made it. Not clipping at an infinite threshold: "
                "that run is the unclipped run exactly, and a comparison of a run with itself cannot come out either "
                "way",
        grid=(Axis("rho", (2.0, 3.0), quick=(2.0,)), Axis("hidden", (16, 32), quick=(16,))),
        threshold="(a) at least 4x per doubling of T (0.6 decades): with a radius <= 1 each of the T terms of "
                  "dL/dW is bounded, and their sum can grow at most in proportion to T, 2x per doubling; (b) the "
                  "interval below 2x (0.3 decades); (c) the thrown fraction unclipped minus clipped at least 0.5, "
                  "the whole Newcombe interval (clipping saves at least half of the runs); (d) the Wilson interval "
                  "of the fraction of pairs won by the clipped run above 0.5",
        premise="radii and a learning rate at which unclipped training is thrown by a cliff: at least half of 6 "
                "premise nets, drawn apart from the nets the verdict scores and trained unclipped only; below that "
                "there is nothing for clipping to stop",
        literature="Pascanu, Mikolov & Bengio 2013 (a radius above 1 is necessary for tanh gradients to explode; "
                   "cliffs; clipping); Bengio, Simard & Frasconi 1994"),
    "O4": ClaimSpec(
        "O4", "canyons make descent oscillate; momentum damps it",
        measures="on a winding canyon 1/2(x^2 + kappa (y - 0.05 sin x)^2) (the bend couples the axes, so each start "
                 "has its own path), plain descent at its analytic best step 2/(mu+L) (mu, L: the Hessian's "
                 "eigenvalues at the minimum) or half of it, and heavy-ball momentum (0.9) at that step times "
                 "(1 - 0.9): the same effective step lr/(1 - beta) along the floor, so that momentum gains nothing "
                 "from a longer stride. Per start, the same starts for both: the travel across the floor sum |du| "
                 "(u = y - 0.05 sin x) over its start offset |u_0| (1 = a straight approach), plain over momentum; "
                 "log10 of plain's final loss over momentum's (what the damping buys at an equal stride); and "
                 "plain's travel over its travel at the next smaller kappa (the oscillation grows with kappa); all "
                 "must hold. On the straight canyon (no bend) y decouples and travel / |y_0| is one closed-form "
                 "number for every start: that is a check (O4.closed-form), not a measurement",
        control="kappa = 1: no canyon (one curvature across and along the floor), where plain descent at its best "
                "step goes straight in",
        grid=(Axis("kappa", (10, 100, 1000)), Axis("lr", ("best", "best/2"))),
        threshold="momentum at least halves the travel (ratio 2: at the best step plain's travel is about kappa, "
                  "a halving is a change of kind, not of rounding) and ends lower (any amount: at an equal stride "
                  "along the floor only the damping can make the difference); plain's travel at least doubles from "
                  "kappa/10",
        premise="a canyon: the claim is about kappa >> 1; on another --surface it is not run",
        literature="Polyak 1964; Sutskever et al. 2013; Goodfellow, Bengio & Courville 2016 §8.3.2"),
    "O5": ClaimSpec(
        "O5", "Adagrad equalises the scale of each direction, but slows down later",
        measures="with stochastic gradients (a canyon, kappa 50, with gradient noise of std 3, each optimizer at "
                 "its best lr; a 4-16-1 relu student of a relu teacher with label noise 0.3, on minibatches of 16, "
                 "every optimizer at the point's lr, 16 inits): the log-log slope of Adagrad's effective lr "
                 "|dz_i|/|g_i| (median over coordinates) against the step, over the last decade of the run, with "
                 "lr/sqrt(t) as the analytic curve beside it. That the first step equalises the coordinates is an "
                 "identity of the update (a check, O5.first-step), not a finding. The slope is -1/2 times the late "
                 "gradients' mean square over their mean over the whole run, and how much of Adagrad's sum the "
                 "first steps put in grows with the lr: so on the mlp the lr is an axis of the grid, fixed before "
                 "any run at one value per decade from 0.01 to 1, rather than a tuned value",
        control="noise 0 at the same learning rates (full-batch gradients for the mlp: they vanish near the "
                "minimum, so Adagrad's sum stops growing), and RMSProp in Adagrad's place (the per-coordinate "
                "scaling kept, the growing sum replaced by a decaying average)",
        grid=(Axis("task", ("noisy quadratic", "minibatch mlp, lr 0.01", "minibatch mlp, lr 0.1",
                            "minibatch mlp, lr 1")),),
        threshold="a slope of -0.25 or steeper: a fall of 1.8x per decade of steps, half of lr/sqrt(t)'s -0.5, "
                  "which a sum growing in proportion to t gives",
        literature="Duchi, Hazan & Singer 2011 (Adagrad); Goodfellow, Bengio & Courville 2016 §8.5"),
    "O6": ClaimSpec(
        "O6", "RMSProp's decaying average removes Adagrad's slowdown",
        measures="O5's runs (on the mlp each optimizer at its best lr instead: RMSProp's step is about lr "
                 "throughout, Adagrad's lr/sqrt(t), so one lr for both compares two step sizes): Adagrad's "
                 "effective-lr slope (the slowdown must be there), RMSProp's slope "
                 "minus Adagrad's (paired starts), and the late-run loss drop (decades of decrease of the full-batch "
                 "loss from the run's second quarter to its last), RMSProp minus Adagrad; all must hold",
        control="noise 0 at the same learning rates (no slowdown to remove), and RMSProp whose average does not "
                "decay within the run (alpha = 1 - 1/(100 T), at Adagrad's lr times sqrt(1 - alpha): Adagrad to "
                "first order)",
        grid=(Axis("task", ("noisy quadratic", "minibatch mlp")),),
        threshold="Adagrad's slope -0.25 or steeper, RMSProp's at least 0.25 above it, and a larger late drop "
                  "(any amount, the interval above 0)",
        literature="Tieleman & Hinton 2012 (RMSProp); Duchi, Hazan & Singer 2011"),
    "O7": ClaimSpec(
        "O7", "Adam = momentum + RMSProp, and its bias correction fixes the zero start of m and v",
        measures="Adam with and without bias correction from the same 32 inits on the same minibatches (16) of a "
                 "2-16-16-2 relu MLP on two spirals: per init, (a) log10 of the largest of the first 10 steps "
                 "uncorrected over corrected, and (b) log10 of the run's peak full-batch loss over its initial loss, "
                 "uncorrected over corrected (instability: Kingma & Ba's uncorrected runs blow up early at large "
                 "lr; a run that diverges counts as a peak of 1000); both must hold. The final loss is recorded "
                 "beside them, not judged: a run that blew up early can recover by the end. Adam rebuilt from "
                 "momentum and RMSProp, and its first step's two formulas, are checks",
        control="beta1 = beta2 = 0: no moving average, so no zero start to correct (the correction factors are "
                "exactly 1)",
        grid=(Axis("beta2", ("0.99", "0.999", "0.9999")), Axis("lr", (0.003, 0.01, 0.03))),
        threshold="(a) the early steps at least 2x larger without correction (the premise's ratio is 3.2 and 10 at "
                  "the first step); (b) a peak at least 2x higher without correction (a loss that doubles is a "
                  "blow-up, not minibatch noise, which moves the full-batch loss by a few per cent)",
        premise="beta2 close enough to 1 that the zero start biases the steps: the uncorrected first step "
                "(1-beta1)/sqrt(1-beta2) times the corrected one at least 2, i.e. 1 - beta2 <= (1 - beta1)^2 / 4 "
                "(Kingma & Ba §3: the correction matters when 1 - beta2 << (1 - beta1)^2). At beta2 0.99 with "
                "beta1 0.9 the ratio is exactly 1 and the point is not run",
        literature=LIT_KINGMA),
    "O9": ClaimSpec(
        "O9", "different runs end near equally good solutions, close to the best",
        measures="a relu student trained on a teacher-student task whose optimum is zero loss (mse, targets of "
                 "variance 1), each optimizer at its best lr (chosen on separate tuning seeds), 48 verdict seeds "
                 "(the run's seeds and more drawn from the base seed; they are one replica axis): the upper quartile "
                 "of the final training loss (the gap to the optimum) with its distribution-free 95 % interval "
                 "from order statistics (the binomial law of how many runs fall below a quantile); below the "
                 "threshold, three runs in four end within it of the optimum and so within it of each other",
        control="a student of width 2, too small to represent the teacher: runs end far from the optimum",
        grid=(Axis("optimizer", ("sgd", "momentum", "adam")), Axis("width", (16, 32), quick=(32,))),
        threshold="upper quartile below 0.01 (1 % of the targets' variance): equally bad runs fail it; 48 seeds "
                  "put the interval's upper end at the 43rd of 48 runs (near the 90th percentile), while at 6 "
                  "seeds no order statistic bounds the upper quartile at 97.5 % (the largest covers 82 %)",
        premise="over-parameterized students (2x and 4x the teacher's width of 8): at the teacher's own width "
                "two-layer relu students have spurious local minima (Safran & Shamir 2018)",
        literature="Choromanska et al. 2015; Goodfellow, Vinyals & Saxe 2015; Safran & Shamir 2018"),
}

CHECKS = {
    "O1.formula": CheckSpec("O1.formula", "the notes' 1 - P^n - (1 - P)^n is the fraction of n independent "
                            "curvature signs that are mixed (Monte Carlo, n = 1..100, P = 1/2)",
                            "5 binomial standard deviations of the Monte Carlo", "O1"),
    "O4.closed-form": CheckSpec("O4.closed-form", "on the straight canyon 1/2(x^2 + kappa y^2) the steep axis "
                                "decouples: the travel sum |dy| / |y_0| of plain descent is lr kappa (1 - |r|^T) / "
                                "(1 - |r|), r = 1 - lr kappa, and heavy-ball momentum's that of its one-mode "
                                "recurrence, the same number for every start (engine against formula, O4's kappas "
                                "and lrs)", "1e-9 relative, float64", "O4"),
    "O5.first-step": CheckSpec("O5.first-step", "Adagrad's first step from a zero sum is lr g / (|g| + eps) = lr "
                               "sign(g) up to eps (1e-10): it removes the gradient's spread of coordinate sizes "
                               "exactly, by construction, on every task", "1e-9 relative, float64", "O5"),
    "O7.rebuild": CheckSpec("O7.rebuild", "Adam's steps (with and without bias correction) are momentum's EMA of g "
                            "over RMSProp's root EMA of g^2", "1e-9 relative, float64", "O7"),
    "O7.first-step": CheckSpec("O7.first-step", "Adam's first step is lr |g|/(|g|+eps) with correction and "
                               "lr (1-beta1)|g|/(sqrt(1-beta2)|g|+eps) without", "1e-9 relative, float64", "O7"),
    "O8": CheckSpec("O8", "minima come in families of equal loss: rescaling a relu layer by c and the next by 1/c, "
                    "or permuting hidden units, leaves outputs and loss unchanged", "1e-12 relative, float64", "O9"),
    "O8.tanh-control": CheckSpec("O8.tanh-control", "the control: a tanh net's outputs do change under the same "
                                 "rescaling (tanh is not positively homogeneous)",
                                 "error = 1e-3 / relative change, at most 1", "O9"),
}

SECTIONS = {
    "trajectories": "trajectories",
    "shape": "trajectory shape",
    "lr_search": "lr search (median final loss on the tuning starts)",
    "references": "analytic references",
    "timings": "timings",
    "o0.landscape": "O0 · line from init to solution, and the 2-D slice",
    "o1.critical_points": "O1 · critical points: index against loss",
    "o1.monte_carlo": "O1 · the notes' formula against Monte Carlo",
    "o2.escape": "O2 · escape from near the saddle",
    "o3.cliff": "O3 · the cliff with and without clipping",
    "o4.canyon": "O4 · the canyon: travel across it and progress along it",
    "o5.effective_lr": "O5/O6 · effective learning rate and late progress",
    "o5.analytic": "O5 · Adagrad's effective lr against lr/sqrt(t)",
    "o7.bias_correction": "O7 · Adam with and without bias correction",
    "o8.symmetries": "O8 · equal-loss families (check)",
    "o9.teacher": "O9 · final loss over seeds on a teacher-student task",
    "o10.gradients": "O10 · largest |dL/dW| of an Elman RNN against sequence length, per spectral radius",
    "o10.clipping": "O10 · training on the adding problem with and without clipping",
}

#: Where each claim is judged: with --surface set to its home (or --all-claims) it is measured, else not run.
CLAIM_HOMES = {"O0": "mlp", "O1": "mlp", "O2": "saddle", "O3": "cliff", "O4": "canyon", "O5": "canyon",
               "O6": "canyon", "O7": "mlp", "O9": "mlp", "O10": "cliff"}
SUITE_OPTIONS = {"all_claims": True}

DEFAULT_GRID = "1e-4,3e-4,1e-3,3e-3,0.01,0.03,0.1,0.3,1,3,10,30,100"
#: Upper bound of --lr and of every --lr-grid value, and of --kappa: beyond them the runs only overflow.
MAX_LR, MAX_KAPPA = 1e3, 1e8
#: --steps and --starts above these are refused before any work (a run of 1e7 steps takes minutes).
MAX_STEPS, MAX_STARTS = 10_000_000, 1_000_000


@dataclass
class Options:
    surface: str = option("canyon", help="Loss surface of the main run; the claims whose setting it is run too.",
                          choices=surface_names)
    optimizers: str | None = option("all", help="Optimizers to compare, or 'all'.", choices=lambda: _optimizer_names())
    lr: float | None = option(None, help="One learning rate for every optimizer (skips the grid search), in "
                                         "(0, 1000].", max=MAX_LR)
    lr_grid: str = option(DEFAULT_GRID, help="Learning rates searched per optimizer (comma-separated, "
                                              "each in (0, 1000]); the best has the lowest median final loss on "
                                              "tuning starts.", metavar="LIST")
    steps: int | None = option(None, help="Steps per run of the main run; unset: 500 (mlp 200, saddle 100), under "
                                          "--quick 150 (mlp and saddle 60). Memory does not grow with it.",
                               min=1, max=MAX_STEPS)
    starts: int | None = option(None, help="Evaluation starts per optimizer (and as many tuning starts); unset: "
                                           "64 (mlp 16, 8 tuning), under --quick 16 (mlp 8, 4 tuning).",
                                min=1, max=MAX_STARTS)
    noise: float = option(0.0, help="Std of Gaussian noise added to every gradient coordinate.", min=0.0, max=1e6)
    clip_norm: float | None = option(None, help="Clip each run's gradient to this norm (torch clip_grad_norm_).",
                                     max=1e12)
    clip_value: float | None = option(None, help="Clip each gradient coordinate to [-C, C].", max=1e12)
    target: float | None = option(None, help="Target loss for steps-to-target on --surface; unset: minimum + "
                                             "1e-3 (saddle: -1, an escape; mlp: 0.05).")
    kappa: float | None = option(None, help="Condition number of canyon/quadratic, in [1, 1e8] (unset: the "
                                             "surface's).", min=1, max=MAX_KAPPA)
    all_claims: bool = option(False, help="Also measure every claim on its own setting (saddle, cliff, canyon, "
                                          "mlp), whatever --surface is.")


def _optimizer_names() -> list[str]:
    from dlbench.nn.optim import OPTIMIZERS

    return list(OPTIMIZERS)


@dataclass
class Config:
    optimizers: list[str]
    grid: list[float]
    lr: float | None
    steps: int | None
    starts: int | None
    noise: float
    clip_norm: float | None
    clip_value: float | None
    target: float | None
    kappa: float | None


def _positive(name: str, value) -> None:
    if value is not None and (not math.isfinite(value) or value <= 0):
        raise DlbenchError(f"--{name} must be a positive number, got {value}")


def configure(opts: Options) -> Config:
    """Check every option before any work; each problem is one DlbenchError line."""
    from dlbench.nn.optim import OPTIMIZERS

    if opts.surface not in surface_names():
        from dlbench.errors import UnknownName

        raise UnknownName("surface", opts.surface, surface_names())
    names = OPTIMIZERS.parse_list(opts.optimizers)
    _positive("lr", opts.lr)
    if opts.lr is not None and opts.lr > MAX_LR:
        raise DlbenchError(f"--lr must be at most {MAX_LR:g}, got {opts.lr}")
    grid = parse_numbers(opts.lr_grid, float, what="--lr-grid")
    if not all(v <= MAX_LR for v in grid):
        raise DlbenchError(f"--lr-grid: every value must be in (0, {MAX_LR:g}], got {opts.lr_grid!r}")
    for key, high in (("steps", MAX_STEPS), ("starts", MAX_STARTS)):
        v = getattr(opts, key)
        if v is not None and (int(v) != v or not 1 <= v <= high):
            raise DlbenchError(f"--{key} must be an integer in [1, {high:g}], got {v}")
    if not math.isfinite(opts.noise) or opts.noise < 0:
        raise DlbenchError(f"--noise must be a non-negative number, got {opts.noise}")
    _positive("clip-norm", opts.clip_norm)
    _positive("clip-value", opts.clip_value)
    if opts.target is not None and not math.isfinite(opts.target):
        raise DlbenchError(f"--target must be a finite number, got {opts.target}")
    if opts.kappa is not None:
        if opts.surface not in ("canyon", "quadratic"):
            raise DlbenchError(f"--kappa applies to canyon and quadratic, not {opts.surface}")
        if not math.isfinite(opts.kappa) or not 1 <= opts.kappa <= MAX_KAPPA:
            raise DlbenchError(f"--kappa must be a number in [1, {MAX_KAPPA:g}], got {opts.kappa}")
    return Config(names, sorted(set(grid)), opts.lr, opts.steps, opts.starts, float(opts.noise), opts.clip_norm,
                  opts.clip_value, opts.target, opts.kappa)


def measured_claims(opts: Options) -> list[str]:
    """The claims this run measures: those whose home is --surface, or all of them with --all-claims."""
    return [c for c, home in CLAIM_HOMES.items() if opts.all_claims or opts.surface == home]


def memory(opts: Options, seeds: int) -> int:
    """Bytes the run needs at its peak, from the options alone: the main run's lr search (every lr of the grid
    from every tuning start at once) or its evaluation, and the largest claim part."""
    from dlbench.experiments.optimizers import main

    cfg = configure(opts)
    return main.memory(opts, cfg, seeds) + main.claims_memory(measured_claims(opts), seeds)


HEAVY = {"O10": 25.0}  # the optimizers' part among the suite's longest: rough CPU seconds at the default size


def parts(opts: Options) -> list[Part]:
    """The independent units of the run: the main run, the claims on their own settings, the timings last."""
    from dlbench.experiments.optimizers import claims, main

    configure(opts)
    measured = measured_claims(opts)
    out = [Part("optimizers.main", main.main_run)]
    for key, (fn, needs) in claims.PARTS.items():
        if any(c in measured for c in needs):
            out.append(Part(f"optimizers.{key}", fn, heavy=HEAVY.get(key, 0.0)))
    out.append(Part("optimizers.not-run", claims.not_run))
    out.append(Part("optimizers.timings", main.timings, timing=True))
    return out


def plot(results, path) -> None:
    """Trajectories over the surface's contours (2-d surfaces; the paths are rerun, decimated, for the
    figure), else the median loss curves."""
    from dlbench.experiments.optimizers.figure import draw

    draw(results, path)
