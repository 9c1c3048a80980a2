"""Batch, layer, instance and group normalization: what they fix, why, and where each breaks; claims N1-N12.

What each claim measures, its negative control, its nuisance grid and its threshold are in CLAIMS below (and in
`dlbench claims --list`). The nets and their trainer are in `net` (batch norm before or after the activation,
with batch, noisy, frozen or population statistics, learned or held gamma and beta, dropout, ZCA whitening),
the measurements in `measure`, the parts that judge them in `claims` (N1-N4, N9, the checks), `batchsize`
(N5-N7) and `placement` (N10-N12). N13, batch norm in a recurrent net, is the `recurrent` experiment's.

Every net is an MLP of relu (or sigmoid, identity) hidden layers of --width units trained with SGD and
momentum 0.9 (torch.optim.SGD), softmax cross-entropy, on a seeded classification set whose inputs are standardised with
the training set's mean and std; seeds (and learning rates, init scales, dropout rates where a claim compares
them) are the replica axis of one array pass.
"""

from __future__ import annotations

from dataclasses import dataclass

from dlbench.errors import DlbenchError
from dlbench.experiments.base import Part, option, parse_numbers
from dlbench.peer import ImplementationAxis
from dlbench.protocol import Axis, CheckSpec, ClaimSpec

NAME = "norm"
HELP = "Batch, layer, instance and group norm: what they fix, why, and where each breaks (claims N1-N12)."

CLAIMS = {
    "N1": ClaimSpec(
        "N1", "batch norm works because it reduces internal covariate shift: it holds the distribution of each "
              "layer's input still, so later layers need not keep adapting to it",
        measures="in a deep relu net (torch's default init, batch 32): (a) the shift of every hidden layer's "
                 "output distribution between checkpoints (change of each unit's mean and std, in units of the "
                 "spread), log10 no-BN / BN; (b) internal covariate shift as Santurkar et al. define it, the "
                 "relative change ||G' - G|| / ||G|| of a layer's gradient when the layers below take their step "
                 "(same batch), log10 no-BN / BN; (c) the final training loss of the net without BN against "
                 "noisy BN (Santurkar et al.'s noise after every BN layer, which moves the next layer's input "
                 "more than the net without BN moves), log10 no-BN / noisy: the explanation predicts noisy BN "
                 "is no faster. Supported when (a) and (b) show BN reducing the shift and (c) shows the shift "
                 "restored slows training again; any part the other way refutes",
        control="batch norm with its statistics frozen at the training set's values under the initial weights "
                "(it normalizes the initial scale and then renormalizes nothing): parts (a) and (b) against the "
                "same net without BN, through the same code",
        grid=(Axis("depth", (4, 6), quick=(4,)), Axis("lr", (0.003, 0.01))),
        threshold="(a), (b): a factor 2 (0.3 decades): 'holds the distribution still' is a halving at least; "
                  "(c): noisy BN's loss above or equal to the no-BN net's (null 0), the explanation's own "
                  "prediction",
        premise="where batch norm trains faster (final loss at most half the no-BN net's) and the noise shifts "
                "the next layer's input at least as much as the net without batch norm shifts; elsewhere there "
                "is nothing to explain, or no shift restored, and the point is not run",
        literature="Ioffe & Szegedy 2015 (the ICS explanation); Santurkar, Tsipras, Ilyas & Madry 2018, "
                   "Fig. 2 (noisy BN) and Fig. 5 (ICS as gradient change: not reduced by BN)"),
    "N2": ClaimSpec(
        "N2", "batch norm allows larger learning rates",
        measures="per seed, the largest learning rate of the --lr-grid (half-decade steps to 31.6) at which "
                 "training is stable, log10 with BN - without; stable: the run did not diverge and its training "
                 "loss at least halved within --steps (a seed with no stable rate counts half a decade below "
                 "the grid)",
        control="batch norm with its statistics frozen at their initial values (normalizes the initial scale, "
                "not the weights' later growth)",
        grid=(Axis("depth", (2, 6)),),
        threshold="3x (0.477 decades): one step of the half-decade grid (x3.16, the grid's resolution), the "
                  "smallest change of the learning rate a practitioner would call larger",
        literature="Ioffe & Szegedy 2015, §3.3; Bjorck, Gomes, Selman & Weinberger 2018; Santurkar et al. 2018"),
    "N3": ClaimSpec(
        "N3", "batch norm makes training less sensitive to the scale of the init (BN(a W x) = BN(W x) for a > 0)",
        measures="every hidden weight and bias times a in {0.1, 1, 10}; per seed, the spread log10(max / min) of "
                 "the final training loss over a, without BN - with BN (eps 1e-5, torch's); each net at its best "
                 "learning rate of {0.01, 0.03, 0.1} at a = 1; the exact identity (eps 1e-30) is a check beside it",
        control="batch norm with its statistics frozen at their initial values: the same invariance at init, "
                "none while training",
        grid=(Axis("depth", (3, 4), quick=(3,)),),
        threshold="0.3 decades: a loss that varies at least 2x less over a 100x range of scales",
        literature="Ioffe & Szegedy 2015, §3.3; Arora, Li & Lyu 2019 (scale invariance and the learning rate)"),
    "N4": ClaimSpec(
        "N4", "batch norm can replace regularisation: its batch noise regularises as dropout does",
        measures="on a small noisy training set that a net overfits (spirals, noise 0.15, 128 samples, width 64, "
                 "batch 16): the generalisation gap in loss, test - train (eval mode), of nets without "
                 "regularisation, with dropout p, with BN, with both; per seed log10(gap none / gap BN) and "
                 "log10(gap dropout / gap BN); both must hold (accuracy gaps in the evidence)",
        control="batch norm with population statistics while training (the whole training set's, recomputed "
                "after every 32 training samples and held constant in the backward pass): batch norm without its "
                "batch noise (Luo et al. 2019's population normalization)",
        grid=(Axis("p", (0.1, 0.3), quick=(0.3,)),),
        threshold="BN closes at least a quarter of the gap (none / BN >= 4/3, 0.125 decades) and its gap is at "
                  "most 4/3 of dropout's ('as far as dropout', with the same quarter as the practical margin)",
        literature="Ioffe & Szegedy 2015, §3.4; Luo, Wang, Shao & Peng 2019 (ICLR); Srivastava et al. 2014"),
    "N5": ClaimSpec(
        "N5", "batch norm degrades at small batch sizes; group and layer norm do not",
        measures="on xor (a task every norm fits within the epochs at batch 32, so a drop is the small batch's "
                 "doing): test accuracy (eval mode) after --epochs epochs at batch 32 minus at the small batch, "
                 "learning rate base x B / 32 (the linear scaling rule, as Wu & He train), 24 seeds per base "
                 "rate: BN's drop must be large, group norm's and layer norm's 95 % upper bounds small",
        control="batch norm with population statistics while training (the training set's, recomputed after "
                "every 32 training samples: the batch no longer enters the normalization), in place of batch norm",
        grid=(Axis("small_batch", (2, 8), quick=(2,)), Axis("base_lr", (0.1, 0.2), quick=(0.1,))),
        threshold="5 accuracy points, both ways: half of the 11-point drop Wu & He report for BN from batch 32 to "
                  "2 on ImageNet (group norm's stays within 0.5); 24 seeds per point so that an upper bound near "
                  "the margin is decided, not sat on. The grid was batches 2 and 4: batch 4's drop measured 0.057 "
                  "to 0.095 over base seeds 0, 1000 and 2000, above the bar in point estimate but with 95 % "
                  "intervals reaching below it, so 24 seeds left it to the draw (about four times as many would "
                  "decide it, likely supported); it is left out for that cost, and batch 8 stands in as the size "
                  "where batch norm's drop is real but small (0.02 to 0.05, below the bar): the verdict is "
                  "conditional where a well-powered batch 4 would likely make it supported at 2 and 4",
        literature="Wu & He 2018 (Group Normalization), Fig. 1; Ioffe 2017 (Batch Renormalization)"),
    "N6": ClaimSpec(
        "N6", "at test time batch norm uses the running statistics of training, and they serve as well as the "
              "statistics of a test batch",
        measures="test accuracy with the running statistics (torch's momentum 0.1, unbiased variance) minus with "
                 "each test batch's own statistics (test batches of the training batch size), after --steps "
                 "steps at batch B with learning rate base x B / 32",
        control="running statistics never updated (torch's initial mean 0 and variance 1)",
        grid=(Axis("batch", (8, 32, 128), quick=(8, 128)),),
        threshold="non-inferiority: the running statistics may trail by at most 2 accuracy points (10 of the 512 "
                  "test samples)",
        literature="Ioffe & Szegedy 2015, Alg. 2; torch.nn.BatchNorm1d"),
    "N7": ClaimSpec(
        "N7", "very large batches need more epochs (and so more time) and fix the direction of descent",
        measures="a relu net without norm (He's init; the small-batch failure of batch norm is N5's) on "
                 "--large-size spiral samples: (a) epochs to a training loss of 0.2 at batch 1024 over at batch "
                 "32, per seed; (b) the cosine between a batch-1024 gradient and the full gradient where the "
                 "batch-32 run reached the target, at least 0.9. The seconds to the target on this machine (steps x "
                 "the timed step), Keskar et al.'s sharpness of both solutions and McCandlish et al.'s noise scale "
                 "B_noise are in the evidence; seconds do not decide: they measure the machine (a batch-1024 step "
                 "costs a few batch-32 steps here, one on a parallel device)",
        control="the same at two batch sizes below the critical batch size (8 over 2): there the number of "
                "epochs does not depend on the batch size (McCandlish et al. 2018)",
        grid=(Axis("lr_rule", ("best", "linear"), quick=("best",)),),
        threshold="(a) 1.5x the epochs, the least that 'need more' can mean beside the noise of a target "
                  "crossing; (b) cosine 0.9, the notes' 'fixed direction': a minibatch step within 26 degrees "
                  "of the full gradient's",
        premise="the large batch must be above the measured noise scale B_noise (the evidence says whether the "
                "control's are below it); lr_rule best: each batch size at its best rate of {0.01, 0.03, 0.1, 0.3, "
                "1}; linear: 0.1 B / 256 (Goyal et al. 2017)",
        literature="Goyal et al. 2017; McCandlish, Kaplan, Amodei et al. 2018; Keskar et al. 2017; Shallue et "
                   "al. 2019"),
    "N9": ClaimSpec(
        "N9", "whitening a layer's input speeds training beyond standardizing it (it also decorrelates), but "
              "costs far more",
        measures="(a) forward time of ZCA whitening of a (1024, F) float32 batch (float64 eigendecomposition) "
                 "over batch norm's (training mode), at the largest --features, one thread; (b) the exponent of "
                 "time ~ F^k, ZCA - batch norm (stats.power_law); (a) and (b) in each implementation of the run, "
                 "every kernel and implementation of one F interleaved: dlbench's kernels always, torch's as "
                 "well when torch imports (aten's native_batch_norm; ZCA written in torch: mean, matmul, "
                 "torch.linalg.eigh, matmul), with the same harness settings; (c) steps to a training loss of 0.2 "
                 "with the input normalized by batch norm over by ZCA + affine (Huang et al. 2018's decorrelated "
                 "BN), on inputs of covariance condition number c, each at its best rate, 12 seeds (6 at "
                 "--quick), measured once on dlbench's nets and joined to each implementation's (a) and (b); ZCA "
                 "without affine in the evidence; a verdict that differs between implementations is a fact about "
                 "an implementation",
        control="input that is already white: there whitening has nothing to decorrelate",
        grid=(Axis("condition", (30, 300), quick=(300,)), ImplementationAxis()),
        threshold="(a) 3x, 'far more'; (b) any larger exponent; (c) 1.25x fewer steps, the null of a superiority "
                  "test: supported when the interval lies above 1.25x, refuted when it excludes 1.25x",
        literature="Ioffe & Szegedy 2015, §2; Huang, Yang, Lang & Deng 2018 (Decorrelated BN); LeCun et al. "
                   "1998 (Efficient BackProp, decorrelated inputs)",
        basis="timing"),
    "N10": ClaimSpec(
        "N10", "gamma and beta keep the activation's nonlinearity",
        measures="batch norm then sigmoid (3 hidden layers), gamma and beta learned against held at (1, 0), same "
                 "learning rate: (a) the share of each sigmoid unit's output variance a straight line in its "
                 "input cannot explain (1 - R^2 on the test set), learned / held; (b) test accuracy, learned - "
                 "held; both must hold",
        control="the identity activation: there is no nonlinearity to keep",
        grid=(Axis("lr", (0.1, 0.3, 1.0), quick=(0.1, 1.0)),),
        threshold="(a) 0.1 decades (26 % more of the curvature used); (b) 5 accuracy points",
        literature="Ioffe & Szegedy 2015, §3 ('to make sure the transformation inserted can represent the "
                   "identity')"),
    "N11": ClaimSpec(
        "N11", "batch norm goes before the activation: it trains better there than after it",
        measures="final training loss with batch norm after relu over before relu, each at its best learning "
                 "rate of {0.01, 0.03, 0.1} (median over seeds), log10 per seed, 24 seeds; test accuracy in the "
                 "evidence",
        control="the identity activation, where before and after are the same net",
        grid=(Axis("depth", (3, 6), quick=(3,)),),
        threshold="0.05 decades (a 12 % lower loss) either way",
        literature="Ioffe & Szegedy 2015 (before); Mishkin, Sergievskiy & Matas 2017 (after measured slightly "
                   "better)"),
    "N12": ClaimSpec(
        "N12", "batch norm curbs vanishing and exploding gradients",
        measures="a 32-layer plain relu net: per seed |log10 ||dL/dW_1|| / ||dL/dW_32|||, the gradient's growth "
                 "or decay through the net, without BN - with BN, at init and after training (lr 0.01, batch "
                 "32); BN's own per-layer rate against Yang et al.'s sqrt(pi / (pi - 1)) in the evidence",
        control="a 2-layer net: nothing to compound",
        grid=(Axis("init", ("torch_default", "kaiming_normal")), Axis("when", ("init", "trained"))),
        threshold="one decade over the 31 layers between the first and the last (7.7 % per layer)",
        literature="Ioffe & Szegedy 2015; Yang, Pennington, Rao, Sohl-Dickstein & Schoenholz 2019 (BN's "
                   "gradients explode at init without skips); He et al. 2015"),
}

CHECKS = {
    "N3.scale-invariance": CheckSpec(
        "N3.scale-invariance", "BN(a W x) = BN(W x) for a > 0: the batch norm kernel and a batch-norm MLP whose "
        "hidden weights and biases are all scaled by a in {1e-3, 0.1, 10, 1e3}", "1e-10 relative, float64, eps "
        "1e-30", "N3"),
    "N8": CheckSpec(
        "N8", "layer, instance and group norm treat each sample alone: a sample's output does not change when "
        "the rest of its batch is replaced (kernels in float32 and float64, and whole nets)", "1e-6 relative",
        "N5"),
    "N8.batch-control": CheckSpec(
        "N8.batch-control", "... while batch norm's does (the check above is not blind)",
        "a relative change of at least 1e-3", "N5"),
    "N9.white": CheckSpec(
        "N9.white", "ZCA whitening's output has identity covariance", "1e-3 (eps 1e-5 against unit variances)",
        "N9"),
    "N1.noise-off": CheckSpec(
        "N1.noise-off", "noisy batch norm with zero noise is batch norm (the same batch, the same output)",
        "exact", "N1"),
}

SECTIONS = {
    "n1.shift": "N1 · distribution and gradient shift, with and without batch norm",
    "n2.lr_grid": "N2 · stable (did not diverge, loss halved) per learning rate",
    "n2.largest": "N2 · largest stable learning rate",
    "n3.init_scale": "N3 · final training loss over init scales",
    "n4.gap": "N4 · generalisation gap: none, dropout, batch norm, both, population statistics",
    "n5.accuracy": "N5 · test accuracy over batch size per norm",
    "n6.test_stats": "N6 · test accuracy with running, batch and untracked statistics",
    "n7.epochs": "N7 · epochs and steps to the target per batch size",
    "n7.noise": "N7 · gradient cosine, noise scale and sharpness",
    "n7.step_time": "N7 · time of one training step per batch size",
    "n8.independence": "N8 · a sample's output with the rest of its batch replaced",
    "n9.timing": "N9 · ZCA whitening against batch norm, time per call",
    "n9.exponent": "N9 · fitted exponent, time ~ F^k",
    "n9.steps": "N9 · steps to the target per input normalization",
    "n10.sigmoid": "N10 · sigmoid units with gamma and beta learned or held",
    "n11.placement": "N11 · batch norm before or after the activation",
    "n12.gradients": "N12 · per-layer gradient norms of a 32-layer plain net",
    "norm.kernels": "norm forward and backward kernels",
}

DEFAULT_LR_GRID = "0.001,0.00316,0.01,0.0316,0.1,0.316,1,3.16,10,31.6"


@dataclass
class Options:
    data: str = option("spirals", metavar="NAME|FILE",
                       help="Classification data set of N1-N3, N5, N6, N10-N12: spirals (one turn), xor, "
                            "checkerboard, blobs, digits (needs scikit-learn), or your own .npz (arrays X, y), .csv "
                            "or .parquet (features, then the label column last).")
    train_size: int = option(512, help="Training samples of those claims (the test set has 512).", min=64,
                             max=100_000)
    width: int = option(32, help="Units per hidden layer (a multiple of --channels).", min=4, max=512)
    steps: int = option(200, help="Training steps of N1-N3, N6, N10, N11 and N12 (trained).", min=20,
                        max=100_000)
    epochs: int = option(4, help="N5: epochs at every batch size (fixed, as Wu & He), on xor.", min=1, max=1000)
    lr_grid: str = option(DEFAULT_LR_GRID, help="N2: learning rates, comma-separated (half-decade steps to 31.6).",
                          metavar="LIST", quick=DEFAULT_LR_GRID.split(",", 2)[2])
    large_size: int = option(4096, help="N7: training samples (every batch size takes many steps).", min=2048,
                             max=1_000_000)
    features: str = option("16,32,64,128,256", help="N9: feature sizes F of the whitening timing.", metavar="LIST",
                           quick="16,64,256")
    channels: int = option(8, help="Channels C the hidden features are viewed as (group norm, N5).", min=1,
                           max=512)
    groups: int = option(4, help="Group norm's number of groups G (divides --channels).", min=1, max=512)


SUITE_OPTIONS: dict = {}


def validate(opts: Options) -> None:
    """Everything a run needs, checked before any work: one line for the first problem."""
    from dlbench.experiments.norm.measure import check_data

    check_data(opts.data)
    lrs = parse_numbers(opts.lr_grid, float, what="--lr-grid")
    if len(lrs) < 2:
        raise DlbenchError("--lr-grid: N2 needs at least 2 learning rates")
    if max(lrs) > 1000:
        raise DlbenchError(f"--lr-grid {opts.lr_grid}: learning rates above 1000 only diverge")
    feats = parse_numbers(opts.features, int, what="--features")
    if len(feats) < 2 or min(feats) < 2 or max(feats) > 2048:
        raise DlbenchError("--features: at least 2 sizes, each between 2 and 2048")
    if opts.width % opts.channels:
        raise DlbenchError(f"--channels {opts.channels} does not divide --width {opts.width}")
    if opts.channels % opts.groups:
        raise DlbenchError(f"--groups {opts.groups} does not divide --channels {opts.channels}")


def memory(opts: Options, seeds: int) -> int:
    """Bytes the run needs at its peak, from the options alone: the largest replica arrays of a training run
    (N2's learning-rate grid, N7's large batches, N5's seeds) with the caches of a step,
    and the data sets."""
    validate(opts)
    lrs = len(parse_numbers(opts.lr_grid, float, what="--lr-grid"))
    w = opts.width
    # float32 activations and their caches (~12 arrays per layer) for replicas x batch x width x layers
    n2 = max(seeds, 12) * lrs * 32 * w * 7 * 12 * 4
    n7 = 5 * seeds * 512 * w * 4 * 12 * 4 + 3 * opts.large_size * 4 * 2 + seeds * 5 * 512 * w * 4 * 8
    n5 = 2 * max(12, seeds) * opts.train_size * w * 4 * 12 * 4 // 8
    n12 = seeds * 128 * w * 33 * 12 * 4 + seeds * 33 * w * w * 4 * 4
    evals = seeds * 5 * max(opts.train_size, 512) * w * 8 * 4
    data = (opts.train_size + 512) * 8 * 4 * 4
    largest_zca = 1024 * max(parse_numbers(opts.features, int, what="--features")) * 4 * 6
    return int(max(n2, n7, n5, n12) + evals + data + largest_zca + 64 * 2**20)


def parts(opts: Options) -> list[Part]:
    """The independent units of the run; N7 (it times a training step), N9 (whitening's cost) and the kernel
    timings run last, each alone on one thread."""
    from dlbench.experiments.norm import batchsize, claims, placement

    validate(opts)
    return [
        Part("norm.N1", claims.claim_n1),
        Part("norm.N2", claims.claim_n2),
        Part("norm.N3", claims.claim_n3),
        Part("norm.N4", claims.claim_n4),
        Part("norm.N5", batchsize.claim_n5),
        Part("norm.N6", batchsize.claim_n6),
        Part("norm.N8", claims.check_n8),
        Part("norm.N10", placement.claim_n10),
        Part("norm.N11", placement.claim_n11),
        Part("norm.N12", placement.claim_n12),
        Part("norm.N7", batchsize.claim_n7, timing=True),
        Part("norm.N9", claims.claim_n9, timing=True),
        Part("norm.kernels", claims.time_kernels, timing=True),
    ]


def plot(results, path) -> None:
    """Test accuracy over batch size per norm (N5) and the per-layer gradient norms of the 32-layer nets (N12)."""
    from dlbench.experiments.norm.figure import draw

    draw(results, path)
