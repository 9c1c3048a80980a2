"""The activation zoo: the notes' property table cell by cell, claims A1-A14, kernel costs against relu.

What each claim measures, its negative control, its nuisance grid and its threshold are in CLAIMS below
(and in `dlbench claims --list`). Pure measurements are in `measure` (the notes' table and how its cells
are read in `notes`), the parts that judge them in `claims` (at init and exact), `training` (trained nets)
and `costs` (timings, interleaved: A1, A2's cost cells, A9).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from dlbench.errors import DlbenchError
from dlbench.experiments.base import Part, option, parse_numbers
from dlbench.peer import ImplementationAxis
from dlbench.protocol import Axis, CheckSpec, ClaimSpec

NAME = "activations"
HELP = "The activation zoo: the notes' table cell by cell, claims A1-A14, kernel costs against relu."

#: The implementations whose kernels the cost claims can time (one more value per peer, each with a class in
#: costs.KERNELS); a run times those that import (IMPLEMENTATION.grid(): dlbench's, and torch's with torch).
IMPLEMENTATIONS = ("dlbench", "torch")
IMPLEMENTATION = ImplementationAxis(values=IMPLEMENTATIONS)
#: What the cost claims' texts say of the implementation axis.
PEER = ("in each implementation of the run: dlbench's kernels always, torch's as well when torch imports "
        "(torch.nn.functional's forward and aten's backward, results allocated as torch allocates them; the "
        "same inputs, the same harness settings, interleaved with dlbench's, on as many threads); each ratio is "
        "within one implementation, and a verdict that differs between them is a fact about an implementation")


@dataclass(frozen=True)
class TableSpec(ClaimSpec):
    """A2's spec: the implementation axis bears on the cost cells alone; every other cell is a property of the
    function, one grid point (at dlbench's implementation, where it is measured)."""

    def points(self, quick: bool = False) -> list[dict]:
        return [p for p in super().points(quick)
                if p["property"].startswith("cost") or p["implementation"] == IMPLEMENTATIONS[0]]


#: The activations the notes' table names, in its order.
TABLE = ("relu", "elu", "leaky_relu", "prelu", "maxout", "sigmoid", "tanh", "sin")
COSTLY_FACTOR = 1.5

CLAIMS = {
    "A1": ClaimSpec(
        "A1", "one activation per layer is cheaper than one per neuron",
        measures="forward time of a dense layer (batch 512, float32) whose units each use one of the mixed "
                 "activations (units grouped by activation in unit-major layout, the best a per-unit choice "
                 "allows: one contiguous block per activation) over the mean time of the same layer with one "
                 "activation for all its units, sample by sample, timed interleaved, " + PEER + " (torch's "
                 "per-unit layer joins its blocks with torch.cat)",
        control="A/A: the relu layer against a second relu layer through the same code, in each implementation "
                "(the timing alone must not make a layer dearer)",
        grid=(Axis("width", (32, 512)), Axis("mix", ("relu,tanh", "relu,tanh,sigmoid,elu,gelu,sin")),
              IMPLEMENTATION),
        threshold="1.05x: supported where the whole interval lies above 1.05, refuted where it lies below (a "
                  "per-unit choice then costs less than 5 % more, no reason for a design rule); interleaved "
                  "samples resolve a few per cent, as the A/A control shows",
        literature="the notes' reason is a GPU's (threads of a warp that branch apart run one after the other: "
                   "NVIDIA CUDA C Programming Guide, SIMT architecture); on a CPU the price is one call per "
                   "activation group",
        basis="timing"),
    "A2": TableSpec(
        "A2", "the notes' property table matches the measured properties",
        measures="each cell of the lecture notes' activation table (section 2.2) against the measured property of its "
                 "activation: nonlinear (RMS residual of the best affine fit on [-5, 5] over f's RMS, above "
                 "1e-6), zero-centred (|E f| / RMS f under N(0, 1) input, analytic mean beside it), output range "
                 "(a probe out to |x| = 1e4), derivative range or values, hyperparameters (how many a user "
                 "sets), cost (forward+backward time over relu's in cache and from DRAM; maxout as a layer "
                 "with its k x matmul, against a relu layer; " + PEER + "; the other cells are properties of "
                 "the function, measured once, at implementation dlbench); a cell agrees (supported), disagrees "
                 "(refuted) or is blank or non-committal ('maybe', 'depends on w': not run); the claim's "
                 "sensitivity line counts the cells that agree",
        control="the cost cells' A/A, in each implementation: relu's own time judged costly against relu's (it "
                "must not be); the exact cells are functions of the kernels, which the kernel tests check",
        grid=(Axis("activation", TABLE),
              Axis("property", ("nonlinear", "zero_centred", "monotonic", "output_range", "derivative",
                                "hyperparameters", "cost_in_cache", "cost_from_dram")),
              IMPLEMENTATION),
        threshold="exact cells to 1e-3 relative; 'approximately zero-centred' = |E f| <= 0.25 RMS f (the mean "
                  "then carries at most 1/16 of E f^2; relu's 0.56 carries 32 %), judged on 16 batches of "
                  "2^18 draws; costly = at least 1.5x relu's time, cheap = below, as A9",
        literature="the notes' table; Clevert, Unterthiner & Hochreiter 2016 (ELU: mean activations near zero, "
                   "bounded below by -alpha); Maas, Hannun & Ng 2013; Goodfellow et al. 2013 (maxout: k linear "
                   "pieces per unit)",
        basis="timing"),
    "A3": ClaimSpec(
        "A3", "non-zero-centred outputs bind the signs of a neuron's weight updates",
        measures="while a net of sigmoid hidden layers trains (SGD, batch 64, a standardised teacher "
                 "regression, at its best lr as A12 chooses it), the share of steps x units fed by sigmoid "
                 "outputs whose minibatch update of their incoming weights has one sign, per seed; that a single "
                 "sample's update is one-signed when its inputs are positive is algebra (a check)",
        control="the same nets with sigmoid - 1/2: the same derivative everywhere, outputs centred on 0",
        grid=(Axis("hidden_layers", (1, 2), quick=(1,)),),
        threshold="bound = at least a quarter of the updates confined to the two all-same-sign orthants of the "
                  "unit's 2^W (supported where the whole interval lies above 1/4, refuted below); with centred "
                  "inputs that happens with probability about 2^(1-W), 5e-10 at W = 32",
        literature="LeCun, Bottou, Orr & Muller 1998, Efficient BackProp, section 4.3"),
    "A4": ClaimSpec(
        "A4", "a non-monotonic activation makes the descent oscillate",
        measures="full-batch gradient descent on xor (2 hidden layers) with inputs scaled x8, so that at init "
                 "about half of the first layer's inputs lie past pi/2 where sin turns: the share of steps "
                 "whose gradient points against the previous step's (cosine < 0), sin minus tanh, paired by "
                 "seed (the same initial weights); each activation's best lr and its reversals there are "
                 "recorded beside",
        control="the same with inputs x0.5, which keeps every first-layer input inside (-pi/2, pi/2) at init, "
                "where sin is monotonic",
        grid=(Axis("lr", (0.03, 0.3, 1.0, 3.0), quick=(0.3, 3.0)),),
        threshold="at least 0.05 more of the steps reverse (one step in twenty): supported where the whole "
                  "interval lies above 0.05, refuted where it lies below",
        literature="Parascandolo, Huttunen & Virtanen 2016 (sin nets train while their inputs stay near the "
                   "monotonic part); Sitzmann et al. 2020 (SIREN); Cohen et al. 2021 (gradient descent "
                   "oscillates at the edge of stability whatever the activation)"),
    "A5": ClaimSpec(
        "A5", "bounded activations saturate (unbounded ones grow with their input)",
        measures="share of first-layer units with |f'| < 0.01 at init (LeCun-normal weights, width --width) "
                 "with inputs scaled by `scale`, minus the share at scale 1, per seed, for each bounded "
                 "activation; 'bounded' (a finite output range) and 'saturates' (f' -> 0) measured apart, and "
                 "the growth of a 10-layer net's output RMS from x1 to x10 input recorded for every activation",
        control="the identity, which neither bounds nor saturates, through the same measurement",
        grid=(Axis("activation", ("sigmoid", "tanh", "sin")), Axis("scale", (10, 100))),
        threshold="saturates = at least 0.1 more of the units saturated (supported where the whole interval lies "
                  "above 0.1, refuted below): tanh's |f'| < 0.01 beyond |x| = 2.99, sin's |cos x| < 0.01 on "
                  "only 0.6 % of a uniform phase",
        literature="LeCun et al. 1998; Glorot & Bengio 2010 (saturated sigmoid units)"),
    "A6": ClaimSpec(
        "A6", "small derivatives make gradients vanish with depth; large ones make them explode",
        measures="per-layer factor of the gradient reaching each layer's pre-activation, (std dL/dz_1 / std "
                 "dL/dz_L)^(1/(L-1)), in a deep net at init (float32, width --width): sigmoid (sup|f'| = 1/4) at "
                 "Glorot's init and c*relu at He's init with c = 0.5 and c = 2 (derivative c on the active "
                 "side); vanish = factor below 1/1.1, explode = above 1.1; sup|f'|^(L-1) beside",
        control="c = 1, relu at He's init, must neither vanish nor explode",
        grid=(Axis("activation", ("sigmoid", "0.5*relu", "2*relu")), Axis("depth", (10, 30), quick=(10, 20))),
        threshold="a factor beyond 1.1 per layer (x17 over 30 layers), as init's I3; supported where the "
                  "whole interval lies beyond it, refuted where it lies inside",
        literature="Hochreiter 1991; Bengio, Simard & Frasconi 1994; Glorot & Bengio 2010; He et al. 2015"),
    "A7": ClaimSpec(
        "A7", "relu's derivative is 0 or 1, so active paths do not shrink the gradient",
        measures="the per-layer factor of dL/dz (as A6) through a deep relu net at He's init, within 1.1 of 1 "
                 "either way, and larger than sigmoid's and tanh's, each at Glorot's init (their best), per seed "
                 "(the same inputs); all must hold; relu' in {0, 1} and dL/dz = [z > 0] dL/dh are checks",
        control="relu at half He's std: the same derivative, and a shrinking gradient that comes from the init",
        grid=(Axis("depth", (10, 30), quick=(10, 20)), Axis("width", (32, 128), quick=(32, 64))),
        threshold="kept = the factor's interval inside 1/1.1..1.1 (x17 over 30 layers); larger = the paired "
                  "log difference's interval above 0",
        literature="Glorot, Bordes & Bengio 2011; He et al. 2015"),
    "A8": ClaimSpec(
        "A8", "relu units die; leaky relu, prelu and elu do not",
        measures="after Adam training (spirals, 3 hidden layers of --width, --steps steps, 12 seeds), the share "
                 "of the units alive at init whose gate -- the mean |f'(z)| over the training set, the share "
                 "of the gradient the unit passes back -- fell below 5 % of its value at init; a definition "
                 "every activation can fail (a leaky unit whose inputs all turned negative passes 1 %, an elu "
                 "unit deep in its negative side almost nothing)",
        control="relu at lr 0.001, small enough that its units should not die",
        grid=(Axis("activation", ("relu", "leaky_relu", "prelu", "elu")),
              Axis("lr", (0.01, 0.03, 0.1), quick=(0.01, 0.1))),
        threshold="dies = more than 10 % of the units: relu is supported where its interval lies above 0.1, a "
                  "variant where its interval lies below; 5 % of the initial gate = learning at least 20x "
                  "slower than at init",
        literature="Maas, Hannun & Ng 2013 (leaky relu); He et al. 2015 (prelu); Clevert et al. 2016 (elu); "
                   "Lu, Shin, Su & Karniadakis 2019 (dying relu)"),
    "A9": ClaimSpec(
        "A9", "relu and leaky relu are cheap; elu, sigmoid, tanh and sin are costly",
        measures="float32 forward+backward time of each named activation over relu's, per interleaved sample, "
                 "in cache (the first --sizes, >= 65,536 elements: compute-bound) and from DRAM (the second), "
                 + PEER + "; cheap = below 1.5x relu, costly = at least; every other activation's ratio recorded "
                 "beside",
        control="A/A: relu against a second relu timing, interleaved, judged costly (it must not be), in each "
                "implementation",
        grid=(Axis("activation", ("leaky_relu", "elu", "sigmoid", "tanh", "sin")),
              Axis("size", ("in_cache", "from_dram")), IMPLEMENTATION),
        threshold="1.5x relu's time: half again relu's cost, a difference a profile shows plainly; supported "
                  "where the whole interval lies on the notes' side of 1.5, refuted on the other",
        literature="the notes; kernel speeds on this machine are in docs/kernels.md",
        basis="timing"),
    "A10-width": ClaimSpec(
        "A10-width", "the chance that a whole relu layer is dead falls as the width grows (the notes: inversely "
                     "proportional to the width)",
        measures="Monte Carlo over random zero-bias relu nets (inputs N(0, I), up to 3000 nets per width): "
                 "P(layer L outputs all zeros for an input) at width 2 minus at the widest width, Newcombe's "
                 "interval, at each depth; the fit of P over the widths as p^M and as 1/M is in the evidence "
                 "(analytic 1 - (1 - 2^-M)^L)",
        control="tied units: every unit of a layer has the same incoming weights up to a positive scale, so the "
                "units are on or off together and width cannot help (P = 1 - 2^-L at every width)",
        grid=(Axis("depth", (1, 10, 50)),),
        threshold="any fall the interval establishes (its whole interval above 0); the analytic fall from "
                  "width 2 to 16 is at least 0.25 at every depth of the grid",
        literature="Lu, Shin, Su & Karniadakis 2019, Dying ReLU and initialization"),
    "A10-depth": ClaimSpec(
        "A10-depth", "the chance that a given relu layer is dead falls as the depth grows",
        measures="the same Monte Carlo: P(layer 50 outputs all zeros for an input) minus P(layer 1 does), per "
                 "width (a zero layer stays zero, so the layer at depth L is dead at least as often as any "
                 "below it)",
        control="tied units, as A10-width (dead layers then rise with depth as 1 - 2^-L)",
        grid=(Axis("width", (2, 4, 8), quick=(2, 4)),),
        threshold="any fall the interval establishes (its whole interval below 0); refuted where it lies above",
        literature="Lu, Shin, Su & Karniadakis 2019 (a deep relu net is born dead with probability -> 1 as the "
                   "depth grows at fixed width)"),
    "A11": ClaimSpec(
        "A11", "hyperparameters are a burden: alpha moves the result more than the seed does",
        measures="log10 final training loss (Adam, spirals, --steps steps) over an alpha grid, every alpha run "
                 "from the same 12 seeds: R = sqrt(mean over seeds of the variance over alphas) / sqrt(mean over "
                 "alphas of the variance over seeds), unbiased variances of like with like, bootstrap over "
                 "seeds; leaky_relu negative_slope 0.01/0.1/0.3, elu alpha 0.3/1/3, prelu's initial slope "
                 "0.05/0.25/0.5",
        control="the alpha grid replaced by three independent seed blocks at the default alpha: a "
                "'hyperparameter' that only reseeds, R near 1",
        grid=(Axis("activation", ("leaky_relu", "elu", "prelu")), Axis("lr", (0.003, 0.03), quick=(0.01,))),
        threshold="R above 1 (the statement's 'more than the seed') by a practical margin: the whole interval "
                  "of R at or above 1.5; refuted where the interval lies below 1. An alpha that only reseeds "
                  "gives R near 1 (the control)",
        literature="the notes (Elu and Prelu have hyperparameters without a fixed rule); Clevert et al. 2016; "
                   "He et al. 2015"),
    "A12": ClaimSpec(
        "A12", "non-zero-mean outputs slow convergence",
        measures="steps until the training loss (mean over 20 minibatches) first falls to 0.3 (MSE on a "
                 "standardised tanh-teacher regression: 70 % of the variance explained), sigmoid hidden layers "
                 "against sigmoid - 1/2 (the same derivative everywhere, zero-centred), each at its best lr of "
                 "0.01..1 chosen on two tuning seeds, SGD batch 64, per seed log2 of the ratio; a run that "
                 "never gets there counts as the budget (only where the sigmoid run is censored: a lower bound)",
        control="both nets with batch norm after every linear map: it removes the mean of each layer's input "
                "(in the forward pass and in the weights' gradients), so the two train alike",
        grid=(Axis("hidden_layers", (1, 2), quick=(1,)),),
        threshold="at least 1.25x the steps (supported where the whole interval lies above log2 1.25, refuted "
                  "below)",
        literature="LeCun, Bottou, Orr & Muller 1998, section 4.3; Schraudolph 1998 (centering); Ioffe & "
                   "Szegedy 2015"),
    "A13": ClaimSpec(
        "A13", "most dead relu units are only falsely dead, and a dead unit gets no update",
        measures="in A8's relu nets after training: among the units off (input <= 0) for at least one training "
                 "input, the share that are on for another (falsely dead), and the full-batch update of the "
                 "units off for every input relative to the RMS unit update of their layer; both must hold",
        control="leaky relu's nets: their units never block the gradient, so a unit off for every input still "
                "gets an update and the second part fails",
        grid=(Axis("lr", (0.01, 0.03, 0.1), quick=(0.01, 0.1)),),
        threshold="most = more than half (the share's interval above 1/2); no update = below 1e-6 of the "
                  "layer's RMS unit update",
        literature="the notes (真死 and 假死); Glorot, Bordes & Bengio 2011; Lu et al. 2019"),
    "A14": ClaimSpec(
        "A14", "any nonlinear function can serve as an activation",
        measures="one hidden layer fitting |x| and sin(3x) on [-2, 2]: random hidden weights (slopes N(0, 9), "
                 "turning points uniform on [-2.5, 2.5]) and a least-squares output layer (ridge 1e-8 per "
                 "point): how well the span of the activation's units fits, relative test MSE per seed; "
                 "serves = below 1 % at width 128 and at least 10x lower than at width 8; relu, tanh and x^2; the "
                 "error at widths 2..128 recorded",
        control="the identity: its units span the straight lines at any width",
        grid=(Axis("activation", ("relu", "tanh", "square")), Axis("target", ("abs", "sin3x"))),
        threshold="1 % of the target's variance at width 128 (the best quadratic leaves 1/16 of |x|'s, the best "
                  "line 83 % of sin(3x)'s), and a 10x fall from width 8 to 128",
        literature="Leshno, Lin, Pinkus & Schocken 1993 (a continuous activation is universal iff it is not a "
                   "polynomial: the notes are too broad); Cybenko 1989; Hornik 1991"),
}

CHECKS = {
    "A3.per-sample-one-sign": CheckSpec(
        "A3.per-sample-one-sign", "with positive inputs (sigmoid outputs), every sample's update of a unit's "
        "incoming weights has one sign", "exact: no mixed column", "A3"),
    "A7.relu-derivative": CheckSpec(
        "A7.relu-derivative", "relu' is 0 or 1, and through a relu net dL/dz = [z > 0] dL/dh", "exact", "A7"),
    "A12.same-derivative": CheckSpec(
        "A12.same-derivative", "sigmoid - 1/2 has sigmoid's derivative everywhere and outputs sigmoid - 1/2",
        "1e-6 in float32", "A12"),
    "A13.batch-dead-no-gradient": CheckSpec(
        "A13.batch-dead-no-gradient", "a relu unit whose output is 0 on the whole minibatch gets a zero gradient "
        "for its incoming weights and bias", "exact", "A13"),
}

SECTIONS = {
    "a2.properties": "A2 · measured properties (out min/max ±inf = unbounded)",
    "a2.cells": "A2 · the notes' table cell by cell (section 2.2, verbatim)",
    "costs.timings": "A2, A9 · forward+backward timings (float32, interleaved)",
    "costs.ratio": "A2, A9 · forward+backward time over relu's",
    "a1.layer": "A1 · dense layer forward, one activation per layer or per unit",
    "a3.signs": "A3 · one-signed updates of the units fed by the hidden activation",
    "a4.reversals": "A4 · gradient reversals under full-batch gradient descent",
    "a5.saturation": "A5 · saturated first-layer units and output growth at init",
    "a6.gradients": "A6, A7 · per-layer factor of the backpropagated gradient at init",
    "a8.dying": "A8 · units whose gate fell below 5 % of its initial value",
    "a10.dead_layers": "A10 · P(a given relu layer is all zero) at init",
    "a10.width_fit": "A10 · P against the width: p^M or 1/M",
    "a11.alpha": "A11 · final loss over alpha and seeds",
    "a12.convergence": "A12 · steps to target, sigmoid against sigmoid - 1/2",
    "a13.dead_units": "A13 · truly and falsely dead relu units after training",
    "a14.span": "A14 · relative error of one hidden layer's span against width",
}

MIN_IN_CACHE = 65_536
MAX_SIZE = 1 << 26


@dataclass
class Options:
    activations: str | None = option("all", help="Activations of the property table and of the cost table "
                                     "(A2, A9), or all; a cell or cost left out is not run.",
                                     choices=lambda: _registry_names(), metavar="NAMES", quick=",".join(TABLE))
    width: int = option(32, help="Hidden width of the trained nets (A3, A4, A8, A11-A13) and of the nets at "
                        "init (A5, A6).", min=4, max=512)
    steps: int = option(300, help="Training steps of A8, A11 and A13 (A3 and A12 train twice as long, A4 "
                        "half as long with full batches).", min=20, max=100_000, quick=150)
    sizes: str = option("65536,4194304", help="The cost cells' two array sizes in float32 elements: in cache "
                        f"(at least {MIN_IN_CACHE:,}, where the kernels are compute-bound) and from DRAM (at "
                        "least 4x larger).", metavar="N1,N2")


SUITE_OPTIONS: dict = {}


def _registry_names() -> list[str]:
    from dlbench.nn.activations import ACTIVATIONS

    return list(ACTIVATIONS)


def activation_names(text: str | None) -> list[str]:
    """Names from the comma list ('all': every registered activation, aliases such as swish left out)."""
    from dlbench.nn.activations import ACTIVATIONS

    if not text or text.strip() == "all":
        return [n for n, a in ACTIVATIONS.items() if a.name == n]
    return list(dict.fromkeys(ACTIVATIONS[n].name for n in ACTIVATIONS.parse_list(text)))


def sizes(text: str) -> tuple[int, int]:
    """The in-cache and the DRAM size of --sizes, checked."""
    values = parse_numbers(text, int, what="--sizes")
    if len(values) != 2:
        raise DlbenchError(f"--sizes {text}: expected two sizes, in cache and from DRAM")
    small, large = values
    if not MIN_IN_CACHE <= small <= MAX_SIZE // 4:
        raise DlbenchError(f"--sizes: the in-cache size must be between {MIN_IN_CACHE} and {MAX_SIZE // 4}, "
                           f"got {small}")
    if not 4 * small <= large <= MAX_SIZE:
        raise DlbenchError(f"--sizes: the DRAM size must be at least 4x the in-cache size and at most {MAX_SIZE}, "
                           f"got {large}")
    return small, large


def validate(opts: Options) -> None:
    """Everything a run needs, checked before any work: one line for the first problem."""
    activation_names(opts.activations)
    sizes(opts.sizes)


def memory(opts: Options, seeds: int) -> int:
    """Bytes the run needs at its peak: the cost kernels' arrays at the DRAM size, or the trained replicas."""
    from dlbench.experiments.activations import costs

    validate(opts)
    _, large = sizes(opts.sizes)
    timing = costs.kernel_bytes(large, IMPLEMENTATION.grid())
    replicas = max(48, 40 * seeds)                         # A8's 12 seeds x 4 lrs; A12's lr grid
    per_replica = 4 * 8 * (3 * opts.width**2 + 1000 * opts.width)  # params, optimizer state, activations
    curves = 8 * replicas * 2 * opts.steps
    return int(timing + replicas * per_replica + curves + 64 * 2**20)


def parts(opts: Options) -> list[Part]:
    """The independent units of the run; the timing parts run alone, after the others."""
    from dlbench.experiments.activations import claims, costs, training

    validate(opts)
    return [
        Part("activations.A2-properties", _one_thread(claims.properties)),
        Part("activations.A5-A7", _one_thread(claims.at_init)),
        Part("activations.A10", _one_thread(claims.dead_layers)),
        Part("activations.A14", _one_thread(claims.span)),
        Part("activations.A3-A12.1", _one_thread(functools.partial(training.centring, hidden_layers=1))),
        Part("activations.A3-A12.2", _one_thread(functools.partial(training.centring, hidden_layers=2))),
        Part("activations.A4", _one_thread(training.oscillation)),
        Part("activations.A8-A13", _one_thread(training.dying)),
        Part("activations.A11", _one_thread(training.alpha)),
        Part("activations.A2-A9.in_cache", functools.partial(costs.kernel_costs, size="in_cache"), timing=True),
        Part("activations.A2-A9.from_dram", functools.partial(costs.kernel_costs, size="from_dram"), timing=True),
        Part("activations.A1", costs.layer_costs, timing=True),
    ]


def _one_thread(fn):
    """The part on one BLAS thread: its matrices are small, and two threads only spin against each other.
    A partial of a module-level function, so that the part pickles and runs on a worker process."""
    return functools.partial(_on_one_thread, fn)


def _on_one_thread(fn, opts, ctx):
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="blas"):
        return fn(opts, ctx)


def plot(results, path) -> None:
    """A10: P(a given layer dead) against depth per width over the analytic curves; A6/A7: the per-layer
    gradient factor per activation; A14: relative error against width."""
    from dlbench.experiments.activations.figure import draw

    draw(results, path)
