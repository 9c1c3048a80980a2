"""Weight initialization: symmetry, per-layer variance through depth, Glorot's compromise, He's correction,
orthogonal init and its cost; claims I1-I5.

What each claim measures, its negative control, its nuisance grid and its threshold are in CLAIMS below
(and in `dlbench claims --list`). The measurements are in `measure`, the parts that judge them in `claims`.
"""

from __future__ import annotations

from dataclasses import dataclass

from dlbench.errors import DlbenchError
from dlbench.experiments.base import Part, option, parse_numbers
from dlbench.peer import ImplementationAxis
from dlbench.protocol import Axis, CheckSpec, ClaimSpec

NAME = "init"
HELP = "Weight initialization: symmetry, per-layer variance through depth, Glorot, He, orthogonal (claims I1-I5)."

CLAIMS = {
    "I1": ClaimSpec(
        "I1", "identical weights leave neurons identical, so the net learns as one unit per layer; random init "
              "breaks the symmetry",
        measures="log10 of the final training loss of a 2-hidden-layer net started with every weight of a layer "
                 "equal (to the random init's RMS weight) over the same net from random init, per seed; "
                 "the units' pairwise cosine and rank after training are checks beside it",
        control="the constant init's magnitudes with the random init's signs: the same scale, units told apart",
        grid=(Axis("width", (16, 64), quick=(16, 32)), Axis("lr", (0.01, 0.03))),
        threshold="at least 2x the loss (0.3 decades): a symmetric net cannot fit two spirals, a random one "
                  "fits them to a loss an order of magnitude lower",
        literature="Goodfellow, Bengio & Courville 2016, §8.4 (breaking symmetry)"),
    "I2": ClaimSpec(
        "I2", "orthogonal init gives non-redundant units (orthonormal where fan_out <= fan_in; not where fan_out "
              "> fan_in), at a price: its generation time grows faster with n than uniform init's",
        measures="the exponent k of generation time ~ n^k of an n x n float32 matrix (median per size, bootstrap "
                 "interval), orthogonal minus uniform, timed on one thread, every scheme of one size interleaved, "
                 "in each implementation of the run: dlbench's initializers always, torch.nn.init's (orthogonal_, "
                 "uniform_, normal_ on a freshly allocated torch.empty, as nn.Linear does) as well when torch "
                 "imports, with the same harness settings, interleaved with dlbench's; a verdict that differs "
                 "between them is a fact about an implementation; the Gram identities are checks beside it",
        control="normal minus uniform, in each implementation: both draw n^2 numbers, so their exponents should "
                "not differ",
        grid=(Axis("sizes", ("128,256,512", "256,512,1024")), ImplementationAxis()),
        threshold="an exponent at least 0.25 larger: QR is O(n^3) against O(n^2), and the measured gap on "
                  "these sizes is 0.5-0.7",
        literature="Saxe, McClelland & Ganguli 2014 (orthogonal init); Mezzadri 2007 (Haar-orthogonal by QR)",
        basis="timing"),
    "I3": ClaimSpec(
        "I3", "weights too small make activations and gradients vanish through depth, too large explode",
        measures="through --depth layers at init: the per-layer drift of the weaker of the two effects, "
                 "(std shrink at the smallest --scales) and (std growth at the largest), for activations "
                 "and gradients, per seed; scales are multiples of the critical std gain/sqrt(width)",
        control="scale 1 (the critical std): the same weaker-of-two drift must stay near 1",
        grid=(Axis("activation", ("relu", "tanh")), Axis("width", (32, 128), quick=(32, 64))),
        threshold="a drift above 1.1 per layer (x16 over 30 layers); the x0.5/x2 scales drift by 1.2-2 per layer",
        literature="Glorot & Bengio 2010; He et al. 2015; Poole et al. 2016 (order to chaos: tanh's "
                   "activations saturate while its gradients explode)"),
    "I4": ClaimSpec(
        "I4", "the variance should follow fan-in forward and fan-out backward; Glorot's 2/(fan_in+fan_out) is the "
              "compromise: with tanh it keeps the per-layer std near 1 where naive inits drift, with relu He's "
              "correction does and Glorot halves the variance per layer",
        measures="per-layer std drift at init through --depth layers: tanh with Glorot (within 1.1) against "
                 "N(0,1) and N(0,0.01) (beyond); relu with He (within) and Glorot's variance factor (1/2); and, "
                 "per seed, He fan_in's end-to-end gain over fan_out's, forward (std(h_L) / std(h_1)) and backward "
                 "(std(dL/dz_1) / std(dL/dz_L)), through 6 relu layers whose widths grow by sqrt(2) per layer from "
                 "w to 8w, so a mode's per-layer error compounds instead of cancelling: He et al. 2015 section 2.2 "
                 "predict both gains sqrt(w_L / w_1) = 2.4 (fan_in keeps the forward signal and fan_out shrinks "
                 "it; fan_out keeps the backward signal and under fan_in it grows); all must hold",
        control="the fan_in/fan_out gains through 6 layers of equal width w, where the two modes coincide (both "
                "gains 1): the same contrast cannot come out supported there",
        grid=(Axis("width", (64, 128)),),
        threshold="1.1 per layer for 'kept' (x16 over 30 layers), Glorot's relu factor within 0.5 +- 0.1; fan_in "
                  "over fan_out at least sqrt(2) = 1.41 end to end in both directions (half the predicted 2.4 in "
                  "log scale less the net-to-net spread of a 6-layer relu chain); widths from 64, where a single "
                  "net's per-layer drift stays within 1.1 (at 32 one seed in six reaches 1.16)",
        literature="Glorot & Bengio 2010; He et al. 2015 (fan_in and fan_out modes)"),
    "I5": ClaimSpec(
        "I5", "good inits train deep nets that bad inits cannot",
        measures="final training loss of a --train-depth relu net on two spirals from He's init and from 0.5x and "
                 "2x its weights, each at its best lr of --lrs chosen on separate tuning seeds; per seed the "
                 "smaller of log10(loss bad / loss He)",
        control="the same schemes and lr search on a 2-layer net, where a factor of 2 per layer cannot compound",
        grid=(Axis("optimizer", ("adam", "momentum"), quick=("adam",)), Axis("steps", (600,), quick=(300,))),
        threshold="at least 2x He's loss (0.3 decades) for both bad scales",
        premise="where He's init trains within the budget (median final loss below half the chance loss); a grid "
                "point where it does not is not run",
        literature="Glorot & Bengio 2010; He et al. 2015; Sutskever et al. 2013"),
}

CHECKS = {
    "I1.units-identical": CheckSpec("I1.units-identical", "after training from a constant init, the units of a "
                                    "layer have the same incoming weights", "1e-9 on 1 - cos in float64", "I1"),
    "I1.rank-one": CheckSpec("I1.rank-one", "... so each hidden weight matrix has rank 1", "exact", "I1"),
    "I1.random-full-rank": CheckSpec("I1.random-full-rank", "after training from a random init, every hidden "
                                     "weight matrix has full rank", "exact", "I1"),
    "I2.orthonormal-units": CheckSpec("I2.orthonormal-units", "orthogonal init with fan_out <= fan_in: "
                                      "W^T W = I", "1e-10 in float64", "I2"),
    "I2.wide-rank": CheckSpec("I2.wide-rank", "orthogonal init with fan_out > fan_in: W^T W has rank fan_in, "
                              "so its units cannot all be orthonormal", "exact", "I2"),
    "I4.xavier-variance": CheckSpec("I4.xavier-variance", "Var(xavier_uniform) = 2/(fan_in+fan_out) on square and "
                                    "non-square layers", "2 % (or 4 sampling standard deviations)", "I4"),
    "I4.xavier-limit": CheckSpec("I4.xavier-limit", "xavier_uniform's weights reach its limit "
                                 "sqrt(6/(fan_in+fan_out))", "0.1 %", "I4"),
}

SECTIONS = {
    "init.profile": "std profile at init",
    "i3.scale_sweep": "I3 · normal init scale sweep",
    "i1.symmetry": "I1 · constant against random init after training",
    "i2.orthogonal": "I2 · orthogonal init",
    "i2.generation_time": "I2 · generation time",
    "i2.exponent": "I2 · generation time exponent (time ~ n^k)",
    "i4.xavier_variance": "I4 · xavier_uniform variance",
    "i5.training": "I5 · final loss after training, per scheme and lr",
}

DEFAULT_SCHEMES = ("normal:std=1,normal:std=0.01,xavier_uniform,xavier_normal,kaiming_uniform,kaiming_normal,"
                   "lecun_normal,orthogonal,torch_default")
QUICK_SCHEMES = "normal:std=1,normal:std=0.01,xavier_uniform,kaiming_normal,orthogonal"


@dataclass
class Options:
    schemes: str = option(DEFAULT_SCHEMES, help="Initializers of the std profile table, comma-separated; "
                          "hyperparameters after colons, e.g. normal:std=0.01 or uniform:a=-0.1:b=0.1.",
                          metavar="LIST", quick=QUICK_SCHEMES)
    activation: str = option("relu", help="Activation of the std profile and of I1's net.",
                             choices=lambda: _activation_names())
    depth: int = option(30, help="Layers of the profile nets (the std profile, I3, I4).", min=3, max=200)
    width: int = option(128, help="Width of the std profile net; n of the I2 and I4 checks.", min=2, max=4096,
                        quick=64, paper=1000)
    scales: str = option("0.5,0.8,1,1.25,2", help="Normal init std as multiples of gain/sqrt(width) for the scale "
                         "sweep (gain: torch's calculate_gain for the activation); I3 uses the smallest and the "
                         "largest.", metavar="LIST")
    train_depth: int = option(20, help="I5: hidden layers of the trained deep net.", min=3, max=100, paper=30)
    train_width: int = option(32, help="I5: width of the trained nets.", min=2, max=1024, quick=16, paper=128)
    steps: int = option(600, help="I1: training steps.", min=1, max=100_000, quick=300, paper=3000)
    lrs: str = option("1e-3,3e-3,1e-2,3e-2", help="I5: learning rates each scheme's best is chosen from.",
                      metavar="LIST", quick="3e-3,1e-2,3e-2", paper="1e-4,3e-4,1e-3,3e-3,1e-2,3e-2")
    optimizer: str = option("adam", help="I1: optimizer.", choices=lambda: _optimizer_names())
    time_schemes: str = option("uniform,normal,orthogonal", help="Initializers whose generation time is "
                               "measured (uniform, normal and orthogonal are always timed for I2).", metavar="LIST")


SUITE_OPTIONS: dict = {}


def _activation_names() -> list[str]:
    from dlbench.nn.activations import ACTIVATIONS

    return list(ACTIVATIONS)


def _optimizer_names() -> list[str]:
    from dlbench.nn.optim import OPTIMIZERS

    return list(OPTIMIZERS)


def validate(opts: Options) -> None:
    """Everything a run needs, checked before any work: one line for the first problem."""
    from dlbench.experiments.init import measure

    measure.parse_schemes(opts.schemes)
    measure.parse_schemes(opts.time_schemes)
    parse_numbers(opts.scales, float, what="--scales")
    lrs = parse_numbers(opts.lrs, float, what="--lrs")
    if max(lrs) > 10:
        raise DlbenchError(f"--lrs {opts.lrs}: learning rates above 10 only diverge")


def memory(opts: Options, seeds: int) -> int:
    """Bytes the run needs at its peak: the largest profile chain, or I5's training replicas."""
    from dlbench.experiments.init import claims, measure

    validate(opts)
    pieces = 1
    chains = [measure.chain_bytes(seeds, (w,) * (opts.depth + 1), pieces) * 3 for w in (opts.width, 128)]
    chains.append(measure.chain_bytes(seeds, claims.geometric_widths(128, claims.FAN_SPAN, claims.FAN_DEPTH)) * 2)
    lrs = len(parse_numbers(opts.lrs, float, what="--lrs"))
    replicas = 3 * lrs * (seeds + 2)
    per_replica = 4 * (opts.train_depth * (opts.train_width**2 + 64 * opts.train_width) * 6)
    curves = 8 * replicas * (opts.steps + 1) * 6
    return max(chains) + replicas * per_replica + curves


def parts(opts: Options) -> list[Part]:
    """The independent units of the run; the I2 timing runs alone, after the others."""
    from dlbench.experiments.init import claims

    validate(opts)
    return [
        Part("init.profiles", claims.profiles),
        Part("init.I3", claims.claim_i3),
        Part("init.I4", claims.claim_i4),
        Part("init.I4-checks", claims.check_xavier),
        Part("init.I1", claims.claim_i1),
        Part("init.I2-checks", claims.check_orthogonal),
        Part("init.I5", claims.claim_i5, heavy=40),
        Part("init.I2", claims.claim_i2, timing=True),
    ]


def plot(results, path) -> None:
    """Per-layer std of activations and gradients (median over seeds), one line per scheme, for the main
    profile and the I3 scale sweep; the mean-field prediction dashed where it exists."""
    from dlbench.experiments.init.figure import draw

    draw(results, path)
