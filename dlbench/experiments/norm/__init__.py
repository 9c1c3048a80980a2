"""Batch, layer, instance and group normalization in a small relu MLP: claims N1-N9.

Every hidden layer is z = h W + b, a = norm(z), h' = relu(a) (dlbench.nn.mlp). The hidden features F = width
are viewed as C = --channels channels of L = F / C elements for the per-sample norms, so the layers differ only
in the set each statistic is taken over: batch norm per feature over the batch (BatchNorm1d on (N, F)); layer
norm over a sample's F features; group norm over C / G channels x L of one sample (GroupNorm(G, C));
instance norm over the L elements of one channel of one sample. All nets train with SGD, momentum 0.9
(torch.optim.SGD), on a seeded synthetic classification set whose inputs are standardised with the training
set's mean and std; seeds are the replica axis of the MLP (one array pass trains every seed, and for the
learning-rate grid and init scales every (seed, lr) or (seed, scale) pair).

The batch-size sweep (N5, N6, N7, and N1 at the reference batch) follows the Group Norm paper (Wu & He 2018,
arXiv:1803.08494): a fixed number of epochs at every batch size B, learning rate base_lr * B / 32 (the linear
scaling rule of Goyal et al. 2017, arXiv:1706.02677), test accuracy in eval mode (batch norm's running
statistics). Batch norm: Ioffe & Szegedy 2015 (arXiv:1502.03167); layer norm: Ba et al. 2016
(arXiv:1607.06450); instance norm: Ulyanov et al. 2016 (arXiv:1607.08022).
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from dataclasses import dataclass

import numpy as np

from dlbench import timing
from dlbench.errors import DlbenchError
from dlbench.experiments.base import RunContext, option, parse_numbers
from dlbench.stats import Claim, bootstrap_ci, claim_from_interval, exact_claim
from dlbench.stats import not_measured as stats_not_measured

NAME = "norm"
HELP = "Batch, layer, instance and group norm: what they fix and where each breaks (claims N1-N9)."
CLAIMS = {
    "N1": "batch norm reduces internal covariate shift (drift of a hidden layer's input mean and variance)",
    "N2": "batch norm allows larger learning rates",
    "N3": "batch norm makes training less sensitive to the scale of the init (BN(a W x) = BN(W x), a > 0)",
    "N4": "batch norm regularizes a little (smaller train/test gap)",
    "N5": "batch norm degrades at small batch sizes; group and layer norm do not",
    "N6": "at test time batch norm uses the running statistics of training",
    "N7": "very large batches need more epochs",
    "N8": "layer and instance norm treat each sample alone",
    "N9": "whitening costs far more than standardizing",
}
SUITE_OPTIONS: dict = {}

NORM_ORDER = ("none", "batch", "layer", "instance", "group")
REF_BATCH = 32            # the Group Norm paper's reference batch; lr = base_lr * B / REF_BATCH
MOMENTUM = 0.9
N_TEST = 512
ACC_THRESHOLD = 0.05      # N5: a loss of at least 5 accuracy points counts as degrading
N7_THRESHOLD = 0.02       # N7: the largest batch must trail the reference by 2 points
N4_THRESHOLD = 0.01       # N4: the gap must shrink by 1 point
N6_MARGIN = 0.02          # N6: running statistics may trail batch statistics by at most 2 points
N3_THRESHOLD = 0.1        # N3: spread of log10 final loss over init scales must shrink by 0.1 decade
N9_RATIO = 3.0            # N9: "far more": whitening at least 3x the time of batch norm at the largest F
INIT_SCALES = (0.1, 1.0, 10.0)
LOSS_CAP = 1e6            # a non-finite or larger final loss counts as this in the N3 spread
DRIFT_POINTS = 16         # checkpoints of the layer-input statistics during the N1 run
N4_EPOCHS = 12            # N4's small training set runs this many times --epochs
N3_EXACT_SCALES = (1e-3, 0.1, 10.0, 1e3)
TIMING_SHAPE = (256, 512)
#: Data-set hyperparameters: one turn of the spirals (the registry's 1.5 turns needs far more than 8 epochs).
DATA_HYPER = {"spirals": {"turns": 1.0}}


@dataclass
class Options:
    norms: str = option("none,batch,layer,instance,group", help="Norm layers to compare, comma-separated, from: "
                        "none, batch, layer, instance, group.", metavar="NAMES")
    batch_sizes: str = option("2,4,8,16,32,64,128", help="Batch sizes of the sweep (N5-N7), each >= 2.",
                              metavar="LIST", quick="2,8,32,128")
    lr_grid: str = option("0.001,0.003,0.01,0.03,0.1,0.3,1,3,10", help="Learning rates of the N2 grid "
                          "(at batch 32).", metavar="LIST", quick="0.003,0.03,0.3,3")
    depth: int = option(3, help="Hidden layers.", min=1, max=16)
    width: int = option(32, help="Units per hidden layer (a multiple of --channels).", min=2, max=1024)
    epochs: int = option(8, help="Epochs of every training run (fixed across batch sizes).", min=1)
    base_lr: float = option(0.03, help="SGD learning rate at batch 32 (every norm), positive; batch B uses "
                            "base_lr * B / 32.")
    train_size: int = option(256, help="Training samples (the test set has 512).", min=8, quick=128)
    channels: int = option(8, help="Channels C the hidden features are viewed as (instance and group norm).",
                           min=1)
    groups: int = option(4, help="Group norm's number of groups G (divides --channels).", min=1)
    data: str = option("spirals", metavar="NAME|FILE",
                       help="Classification data set: spirals, xor, checkerboard, blobs, digits (needs "
                            "scikit-learn), or your own .npz (arrays X, y), .csv or .parquet (features, then "
                            "the label column last).")
    features: str = option("16,32,64,128,256", help="Feature sizes F of the N9 whitening timing.",
                           metavar="LIST", quick="16,64,256")


def _data_names() -> list[str]:
    from dlbench.data import CLASSIFICATION, DATASETS

    return [n for n, m in DATASETS.items() if m.task == CLASSIFICATION]


# ----------------------------------------------------------------------------- configuration

@dataclass(frozen=True)
class Config:
    norms: tuple[str, ...]
    batch_sizes: tuple[int, ...]
    lrs: tuple[float, ...]
    features: tuple[int, ...]
    ref_batch: int


def parse_options(opts: Options) -> Config:
    """Check every option before any work; one-line DlbenchErrors."""
    from dlbench.nn.norm import NORMS

    _check_data(opts.data)
    names = list(dict.fromkeys(NORMS.parse_list(opts.norms)))
    norms = tuple(n for n in NORM_ORDER if n in names) + tuple(n for n in names if n not in NORM_ORDER)
    sizes = sorted(set(parse_numbers(opts.batch_sizes, int, what="--batch-sizes")))
    if sizes[0] < 2:
        raise DlbenchError("--batch-sizes: batch norm needs at least 2 samples per batch, got 1")
    if sizes[-1] > opts.train_size:
        raise DlbenchError(f"--batch-sizes: {sizes[-1]} is larger than --train-size {opts.train_size}")
    lrs = sorted(set(parse_numbers(opts.lr_grid, float, what="--lr-grid")))
    feats = sorted(set(parse_numbers(opts.features, int, what="--features")))
    if feats[0] < 2 or feats[-1] > 2048:
        raise DlbenchError("--features: every size must be between 2 and 2048")
    if opts.base_lr <= 0:
        raise DlbenchError("--base-lr must be positive")
    if opts.width % opts.channels:
        raise DlbenchError(f"--channels {opts.channels} does not divide --width {opts.width}")
    if opts.channels % opts.groups:
        raise DlbenchError(f"--groups {opts.groups} does not divide --channels {opts.channels}")
    if "instance" in norms and opts.width // opts.channels < 2:
        raise DlbenchError(f"instance norm needs --width / --channels >= 2 elements per channel, got "
                           f"{opts.width} / {opts.channels}")
    ref = min(sizes, key=lambda b: (abs(math.log2(b / REF_BATCH)), b))
    return Config(norms, tuple(sizes), tuple(lrs), tuple(feats), ref)


def norm_hyper(name: str, opts: Options) -> dict:
    """The norm's hyperparameters in the MLP: batch and layer plain; instance and group on the channel view."""
    if name == "instance":
        return {"channels": opts.channels}
    if name == "group":
        return {"channels": opts.channels, "num_groups": opts.groups}
    return {}


def scaled_lr(base_lr: float, batch: int) -> float:
    """The linear scaling rule: base_lr * B / 32."""
    return base_lr * batch / REF_BATCH


def make_model(name: str, opts: Options, d_in: int, d_out: int, dtype=np.float32):
    from dlbench.nn.mlp import MLP, MLPSpec

    return MLP(MLPSpec(widths=(d_in, *(opts.width,) * opts.depth, d_out), activation="relu", norm=name,
                       norm_hyper=norm_hyper(name, opts), dtype=dtype))


def _check_data(name: str) -> None:
    from dlbench.data import FILE_SUFFIXES

    if name in _data_names():
        return
    if Path(name).suffix.lower() in FILE_SUFFIXES:
        if not Path(name).is_file():
            raise DlbenchError(f"--data {name}: no such file")
        return
    raise DlbenchError(f"--data {name!r}: neither a classification data set ({', '.join(_data_names())}) "
                       f"nor a {'/'.join(FILE_SUFFIXES)} file")


def make_data(opts: Options, seed: int, n_train: int | None = None):
    """The data set drawn with `seed` (a file: its seeded split, the first n_train training rows);
    inputs standardised by the training set's mean and std."""
    from dlbench.data import CLASSIFICATION, load_dataset_file, make_dataset

    if opts.data in _data_names():
        d = make_dataset(opts.data, seed=seed, n_train=n_train or opts.train_size, n_test=N_TEST,
                         **DATA_HYPER.get(opts.data, {}))
    else:
        d = load_dataset_file(opts.data, task=CLASSIFICATION, seed=seed)
        keep = n_train or opts.train_size
        largest = max(parse_numbers(opts.batch_sizes, int, what="--batch-sizes"))
        if len(d.X_train) < keep or len(d.X_test) < largest:
            raise DlbenchError(f"--data {opts.data}: {len(d.X_train)} training and {len(d.X_test)} test rows; "
                               f"the run needs at least --train-size {keep} and the largest batch size "
                               f"{largest} (a bigger file, or smaller --train-size/--batch-sizes)")
        d = dataclasses.replace(d, X_train=d.X_train[:keep], y_train=d.y_train[:keep])
    m = d.X_train.mean(axis=0)
    s = d.X_train.std(axis=0)
    s = np.where(s > 0, s, 1).astype(np.float32)
    return dataclasses.replace(d, X_train=(d.X_train - m) / s, X_test=(d.X_test - m) / s)


def sgd(lr) -> object:
    from dlbench.nn.optim import get_optimizer

    return get_optimizer("sgd", lr=lr, momentum=MOMENTUM)


# ----------------------------------------------------------------------------- measurements

def layer_input_stats(model, params: list, X: np.ndarray, layer: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-unit mean and variance (S, F) of the input of linear layer `layer` over the probe set X.

    Forward in training mode with a throwaway norm state: batch norm normalises with the probe set's own
    statistics, as it would a training batch, and the run's running statistics are left alone.
    """
    with np.errstate(all="ignore"):
        _, cache = model.forward(params, X, None, train=True)
        h = cache.inputs[layer].astype(np.float64)
        return h.mean(axis=-2), h.var(axis=-2)


def drift(mu0: np.ndarray, var0: np.ndarray, mu: np.ndarray, var: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Drift of a layer's input since init, per replica, in units of the initial spread.

    s0^2 = mean_j var0_j (the initial variance pooled over units, so dead units do not divide by 0);
    mean drift = mean_j |mu_j - mu0_j| / s0;  variance drift = mean_j |var_j - var0_j| / s0^2.
    """
    s2 = np.maximum(var0.mean(axis=-1), 1e-30)
    with np.errstate(all="ignore"):
        dm = np.abs(mu - mu0).mean(axis=-1) / np.sqrt(s2)
        dv = np.abs(var - var0).mean(axis=-1) / s2
    return dm, dv


def accuracy(out: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Fraction of argmax(out) == y over the sample axis, per replica."""
    return np.mean(out.argmax(axis=-1) == y, axis=-1)


def batch_stats_accuracy(model, params: list, X: np.ndarray, y: np.ndarray, batch: int) -> np.ndarray:
    """Test accuracy (S,) with batch norm's BATCH statistics, the test set cut into batches of `batch`.

    The M = n // batch test batches become a replica axis: every parameter is repeated M times, so
    replica (s, m) sees batch m alone (training-mode forward, throwaway state). The n % batch rest is left out.
    """
    S = params[0].shape[0]
    M = X.shape[0] // batch
    rep = [np.repeat(p, M, axis=0) for p in params]
    xb = np.broadcast_to(X[: M * batch].reshape(M, batch, -1), (S, M, batch, X.shape[1])).reshape(S * M, batch, -1)
    with np.errstate(all="ignore"):
        out, _ = model.forward(rep, xb, None, train=True)
    return accuracy(out.reshape(S, M * batch, -1), y[: M * batch])


def population_stats_accuracy(model, params: list, X: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Test accuracy (S,) with batch statistics of the whole test set (the population estimate)."""
    with np.errstate(all="ignore"):
        out, _ = model.forward(params, X, None, train=True)
    return accuracy(out, y)


def largest_stable(lrs, stable: np.ndarray) -> np.ndarray:
    """Per seed, the largest lr of the grid whose run was stable (NaN when none was); stable is (S, K)."""
    lrs = np.asarray(lrs, dtype=float)
    masked = np.where(stable, lrs, -np.inf).max(axis=-1)
    return np.where(np.isfinite(masked), masked, np.nan)


def largest_stable_index(stable: np.ndarray) -> np.ndarray:
    """Per seed, the grid index of the largest stable lr; -1 when no lr of the grid was stable."""
    K = stable.shape[-1]
    return np.where(stable.any(axis=-1), K - 1 - np.argmax(stable[..., ::-1], axis=-1), -1)


def best_lr_index(score: np.ndarray) -> np.ndarray:
    """Per seed, the grid index of the highest score (S, K); NaN scores never win."""
    return np.where(np.isfinite(score), score, -np.inf).argmax(axis=-1)


def best_lr(lrs, score: np.ndarray) -> np.ndarray:
    """Per seed, the lr of the grid with the highest score (S, K); NaN scores never win."""
    return np.asarray(lrs, dtype=float)[best_lr_index(score)]


def spread_log_loss(losses: np.ndarray) -> np.ndarray:
    """Per row, log10(max / min) of final losses over init scales; non-finite or huge losses count as LOSS_CAP."""
    v = np.nan_to_num(np.asarray(losses, dtype=float), nan=LOSS_CAP, posinf=LOSS_CAP)
    v = np.clip(v, 1e-12, LOSS_CAP)
    return np.log10(v.max(axis=-1) / v.min(axis=-1))


def scale_invariance_error(rng: np.random.Generator, scales=N3_EXACT_SCALES) -> tuple[float, int]:
    """max |BN(a W x) - BN(W x)| / max |BN(W x)| over a > 0, in float64 with eps -> 0 (1e-30).

    Batch norm kernel on z = x W with a replica axis (3, 64, 24), and a whole batch-norm MLP whose hidden
    weights and biases are all multiplied by a. Returns (error, number of checks).
    """
    from dlbench.nn.mlp import MLP, MLPSpec
    from dlbench.nn.norm import get_norm

    bn = get_norm("batch", eps=1e-30)
    x = rng.standard_normal((3, 64, 16))
    W = rng.standard_normal((3, 16, 24))
    params, _ = bn.init(24, prefix=(3,), dtype=np.float64)
    params = {"weight": rng.uniform(0.5, 2, params["weight"].shape), "bias": rng.standard_normal((3, 1, 24))}
    ref = bn.forward(x @ W, params, bn.init(24, prefix=(3,), dtype=np.float64)[1])[0]
    err = 0.0
    for a in scales:
        y = bn.forward(x @ (a * W), params, bn.init(24, prefix=(3,), dtype=np.float64)[1])[0]
        err = max(err, float(np.abs(y - ref).max() / np.abs(ref).max()))
    net = MLP(MLPSpec((16, 24, 24, 3), norm="batch", norm_hyper={"eps": 1e-30}, dtype=np.float64))
    p = net.init([1, 2, 3])
    ref = net.forward(p, x, None, train=True)[0]
    hidden = {i for layer in net.layers[:net.n_hidden] for i in (layer.W, layer.b) if i is not None}
    for a in scales:
        q = [pi * a if i in hidden else pi for i, pi in enumerate(p)]
        y = net.forward(q, x, None, train=True)[0]
        err = max(err, float(np.abs(y - ref).max() / np.abs(ref).max()))
    return err, 2 * len(scales)


def batch_dependence(norm, params: dict, state: dict, rng: np.random.Generator, shape: tuple,
                     dtype=np.float32, rows=(0, 3)) -> tuple[float, int]:
    """max over `rows` i of |y_i(batch) - y_i(batch with every other sample replaced)| / max |y|.

    The replacements come from another distribution (x 100, shifted by 50): a per-sample norm gives exactly
    the same output for sample i; batch norm does not. Returns (relative change, number of checks).
    """
    x = rng.standard_normal(shape).astype(dtype)
    y = norm.forward(x, params, {k: v.copy() for k, v in state.items()}, train=True)[0].copy()
    worst = 0.0
    for i in rows:
        x2 = (100 * rng.standard_normal(shape) + 50).astype(dtype)
        x2[..., i, :] = x[..., i, :]
        y2 = norm.forward(x2, params, {k: v.copy() for k, v in state.items()}, train=True)[0]
        worst = max(worst, float(np.abs(y2[..., i, :] - y[..., i, :]).max() / max(np.abs(y).max(), 1e-30)))
    return worst, len(rows)


def net_batch_dependence(model, params: list, rng: np.random.Generator, n: int = 32) -> float:
    """The same check for a whole MLP: a sample's output when the rest of its batch is replaced."""
    d = model.widths[0]
    x = rng.standard_normal((n, d)).astype(model.dtype)
    y = model.forward(params, x, None, train=True)[0]
    x2 = (100 * rng.standard_normal((n, d)) + 50).astype(model.dtype)
    x2[0] = x[0]
    with np.errstate(all="ignore"):
        y2 = model.forward(params, x2, None, train=True)[0]
    return float(np.abs(y2[:, 0] - y[:, 0]).max() / max(np.abs(y[:, 0]).max(), 1e-30))


def zca_whiten(x: np.ndarray, eps: float = 1e-5) -> np.ndarray:
    """ZCA whitening of the rows of x (N, F): (x - mu) U diag(1 / sqrt(lambda + eps)) U^T, Sigma = U diag(lambda) U^T.

    Sigma is the biased covariance over the batch; the output has identity covariance (up to eps) and is the
    whitening closest to x (Bell & Sejnowski 1997). Cost: N F^2 (covariance, product) + F^3 (eigh).
    """
    mu = x.mean(axis=0, keepdims=True)
    xc = x - mu
    cov = (xc.T @ xc) / x.shape[0]
    lam, U = np.linalg.eigh(cov)
    W = (U * (1.0 / np.sqrt(np.maximum(lam, 0) + eps)).astype(x.dtype)) @ U.T
    return xc @ W


def loglog_slope(sizes, samples: list, seed: int = 0, n_boot: int = 1000) -> tuple[float, float, float]:
    """Exponent k of time ~ F^k: least-squares slope of log median time on log F, with a 95 % bootstrap
    interval (each size's samples resampled)."""
    if len(sizes) < 2:
        return math.nan, math.nan, math.nan
    x = np.log(np.asarray(sizes, dtype=float))
    xc = x - x.mean()
    y = np.log([np.median(s) for s in samples])
    k = float(np.sum(xc * (y - y.mean())) / np.sum(xc * xc))
    rng = np.random.default_rng(seed)
    meds = np.stack([np.median(np.asarray(s)[rng.integers(0, len(s), (n_boot, len(s)))], axis=1) for s in samples])
    y = np.log(meds)                                         # (sizes, n_boot)
    boots = (xc[:, None] * (y - y.mean(axis=0))).sum(axis=0) / np.sum(xc * xc)
    lo, hi = np.percentile(boots, [2.5, 97.5])
    return k, float(lo), float(hi)


# ----------------------------------------------------------------------------- claims helpers

def combine(claim_id: str, parts: list[Claim], note: str = "") -> Claim:
    """One verdict from several parts: supported if all are, refuted if any is; the first part's effect."""
    verdicts = [p.verdict for p in parts]
    if "not run" in verdicts:
        return next(p for p in parts if p.verdict == "not run")
    v = ("supported" if all(x == "supported" for x in verdicts)
         else "refuted" if "refuted" in verdicts else "inconclusive")
    first = parts[0]
    evidence = " | ".join(p.evidence for p in parts) + (f"; {note}" if note else "")
    return Claim(claim_id, CLAIMS[claim_id], v, first.effect, first.low, first.high, min(p.n for p in parts),
                 "+".join(dict.fromkeys(p.method for p in parts)), evidence, first.unit)


def interval_claim(claim_id: str, values, *, label: str, direction="greater", null=0.0, threshold=0.0,
                   seed: int = 0, note: str = "") -> Claim:
    """Median of per-seed `values` with its percentile bootstrap interval, judged against `null`."""
    v = np.asarray(values, dtype=float).ravel()
    v = v[np.isfinite(v)]
    eff = float(np.median(v)) if v.size else math.nan
    lo, hi = bootstrap_ci(v, seed=seed) if v.size else (math.nan, math.nan)
    return claim_from_interval(claim_id, CLAIMS[claim_id], eff, lo, hi, n=v.size, method="bootstrap",
                               direction=direction, null=null, threshold=threshold, label=label, note=note)


def not_measured(claim_id: str, reason: str) -> Claim:
    return stats_not_measured(claim_id, CLAIMS[claim_id], note=reason)


def _labelled(c: Claim, label: str) -> Claim:
    return dataclasses.replace(c, evidence=f"{label}: {c.evidence}")


# ----------------------------------------------------------------------------- the run

@dataclass
class Sweep:
    """Per (norm, batch): the History; per norm at the reference batch: the drift curves."""

    histories: dict
    drift_mean: dict
    drift_var: dict
    drift_steps: dict
    batch_acc: dict          # batch norm: {B: (S,) accuracy with test batches of B}
    population_acc: dict     # batch norm: {B: (S,) accuracy with whole-test-set statistics}


def drift_layer(depth: int) -> int:
    """The linear layer whose input N1 follows: the last hidden layer (the output layer for depth 1)."""
    return max(1, depth - 1)


class DriftRecorder:
    """A train() callback: the drift of layer `layer`'s input on the probe set X, about `points` times per run."""

    def __init__(self, model, params: list, X: np.ndarray, layer: int, total_steps: int, points: int = DRIFT_POINTS):
        self.model, self.X, self.layer, self.total = model, X, layer, total_steps
        self.every = max(1, total_steps // points)
        self.mu0, self.var0 = layer_input_stats(model, params, X, layer)
        S = params[0].shape[0]
        self.mean, self.var, self.steps = [np.zeros(S)], [np.zeros(S)], [0]

    def __call__(self, info) -> None:
        done = info.step + 1
        if done % self.every == 0 or done == self.total:
            dm, dv = drift(self.mu0, self.var0, *layer_input_stats(self.model, info.params, self.X, self.layer))
            self.mean.append(dm)
            self.var.append(dv)
            self.steps.append(done)


def run_sweep(opts: Options, cfg: Config, data, seeds: list[int], ctx: RunContext) -> Sweep:
    from dlbench.nn.train import train

    sweep = Sweep({}, {}, {}, {}, {}, {})
    with ctx.progress.task("norm: batch-size sweep", total=len(cfg.norms) * len(cfg.batch_sizes)) as advance:
        for name in cfg.norms:
            model = make_model(name, opts, data.n_features, data.n_outputs)
            for B in cfg.batch_sizes:
                params = model.init(seeds)
                recorder = None
                if B == cfg.ref_batch:
                    recorder = DriftRecorder(model, params, data.X_test, drift_layer(opts.depth),
                                             opts.epochs * (data.X_train.shape[0] // B))
                h = train(model, data, seeds, optimizer=sgd(scaled_lr(opts.base_lr, B)), epochs=opts.epochs,
                          batch_size=B, params=params, callback=recorder)
                sweep.histories[name, B] = h
                if recorder is not None:
                    sweep.drift_mean[name] = np.stack(recorder.mean, axis=1)
                    sweep.drift_var[name] = np.stack(recorder.var, axis=1)
                    sweep.drift_steps[name] = np.array(recorder.steps)
                if name == "batch":
                    sweep.batch_acc[B] = batch_stats_accuracy(model, h.params, data.X_test, data.y_test, B)
                    sweep.population_acc[B] = population_stats_accuracy(model, h.params, data.X_test, data.y_test)
                advance()
    return sweep


def record_sweep(sweep: Sweep, cfg: Config, opts: Options, seeds: list[int], ctx: RunContext) -> None:
    rec = ctx.record
    sec5 = f"N5 test accuracy over batch size ({opts.epochs} epochs, lr = {opts.base_lr:g} B/32)"
    sec7 = "N7 accuracy after a fixed number of epochs"
    half = max(1, opts.epochs // 2)
    for name in cfg.norms:
        best = max(float(np.nanmedian(sweep.histories[name, B].test_acc[:, -1])) for B in cfg.batch_sizes)
        target = 0.9 * best
        for B in cfg.batch_sizes:
            h = sweep.histories[name, B]
            case = {"norm": name, "batch": B}
            rec.metric("test_acc", h.test_acc[:, -1], case=case, better="higher", seeds=seeds, section=sec5)
            rec.metric("train_acc", h.train_acc[:, -1], case=case, better="higher", seeds=seeds, section=sec5)
            rec.metric("steps", h.steps, case=case, section=sec5)
            rec.metric("lr", scaled_lr(opts.base_lr, B), case=case, section=sec5)
            rec.metric("diverged", h.diverged.astype(float), case=case, unit="bool", better="lower", seeds=seeds,
                       section=sec5)
            epochs = h.eval_step / max(h.steps_per_epoch, 1)
            rec.metric("acc_epoch_1", _at_epoch(h, 1), case=case, better="higher", seeds=seeds, section=sec7)
            rec.metric(f"acc_epoch_{half}", _at_epoch(h, half), case=case, better="higher", seeds=seeds,
                       section=sec7)
            rec.metric("epochs_to_90pct_best", epochs_to(h, target), case=case, better="lower", seeds=seeds,
                       section=sec7)
            rec.curve("test_acc", np.nanmedian(h.test_acc, axis=0), case=case, better="higher",
                      steps=np.round(epochs).astype(np.int64), section=sec7)
    sec = f"N5 batch-size trend per norm (reference batch {cfg.ref_batch})"
    for name in cfg.norms:
        acc = np.stack([sweep.histories[name, B].test_acc[:, -1] for B in cfg.batch_sizes], axis=1)
        case = {"norm": name}
        rec.metric(f"acc_B{cfg.batch_sizes[0]}", acc[:, 0], case=case, better="higher", seeds=seeds, section=sec)
        rec.metric(f"acc_B{cfg.ref_batch}", acc[:, cfg.batch_sizes.index(cfg.ref_batch)], case=case,
                   better="higher", seeds=seeds, section=sec)
        rec.metric(f"acc_B{cfg.batch_sizes[-1]}", acc[:, -1], case=case, better="higher", seeds=seeds, section=sec)
        rec.metric("small_batch_penalty", small_batch_penalty(sweep, name, cfg), case=case, better="lower",
                   seeds=seeds, section=sec)
        if len(cfg.batch_sizes) > 1:
            rec.metric("slope_per_doubling", trend(acc, cfg.batch_sizes), case=case, seeds=seeds, section=sec)
    if "batch" in cfg.norms:
        sec6 = "N6 batch norm at test time: running vs batch statistics"
        for B in cfg.batch_sizes:
            h = sweep.histories["batch", B]
            case = {"batch": B}
            run_acc = h.test_acc[:, -1]
            rec.metric("acc_running_stats", run_acc, case=case, better="higher", seeds=seeds, section=sec6)
            rec.metric("acc_batch_stats", sweep.batch_acc[B], case=case, better="higher", seeds=seeds,
                       section=sec6)
            rec.metric("acc_test_set_stats", sweep.population_acc[B], case=case, better="higher", seeds=seeds,
                       section=sec6)
            rec.metric("running_minus_batch", run_acc - sweep.batch_acc[B], case=case, seeds=seeds, section=sec6)
    sec1 = (f"N1 drift of layer {drift_layer(opts.depth)}'s input (layer 0 takes x; batch {cfg.ref_batch}; "
            "units of its initial spread)")
    for name in cfg.norms:
        case = {"norm": name}
        rec.metric("mean_drift", sweep.drift_mean[name][:, -1], case=case, better="lower", seeds=seeds,
                   section=sec1)
        rec.metric("var_drift", sweep.drift_var[name][:, -1], case=case, better="lower", seeds=seeds,
                   section=sec1)
        rec.curve("mean_drift_curve", np.nanmedian(sweep.drift_mean[name], axis=0), case=case,
                  steps=sweep.drift_steps[name], section=sec1)


def _at_epoch(h, epoch: int) -> np.ndarray:
    """Test accuracy (S,) at the evaluation after `epoch` epochs (the last one if the run is shorter)."""
    i = int(np.searchsorted(h.eval_step, epoch * h.steps_per_epoch))
    return h.test_acc[:, min(i, h.test_acc.shape[1] - 1)]


def epochs_to(h, target: float) -> np.ndarray:
    """Per replica, the first epoch whose test accuracy reaches `target` (NaN: never)."""
    hit = h.test_acc >= target
    first = np.where(hit.any(axis=1), hit.argmax(axis=1), -1)
    ep = h.eval_step / max(h.steps_per_epoch, 1)
    return np.where(first >= 0, ep[np.maximum(first, 0)], np.nan)


def small_batch_penalty(sweep: Sweep, name: str, cfg: Config) -> np.ndarray:
    """acc(reference batch) - acc(smallest batch), per seed (positive: the small batch is worse)."""
    return (sweep.histories[name, cfg.ref_batch].test_acc[:, -1]
            - sweep.histories[name, cfg.batch_sizes[0]].test_acc[:, -1])


def trend(acc: np.ndarray, sizes) -> np.ndarray:
    """Per seed, the least-squares slope of test accuracy on log2(batch size): accuracy change per doubling."""
    x = np.log2(np.asarray(sizes, dtype=float))
    xc = x - x.mean()
    return ((acc - acc.mean(axis=1, keepdims=True)) * xc).sum(axis=1) / np.sum(xc * xc)


def claim_n5(sweep: Sweep, cfg: Config, seed: int) -> Claim:
    if "batch" not in cfg.norms or not {"layer", "group"} & set(cfg.norms):
        return not_measured("N5", "needs batch norm and layer or group norm in --norms")
    if cfg.batch_sizes[0] >= cfg.ref_batch:
        return not_measured("N5", f"needs a batch size below the reference {cfg.ref_batch} in --batch-sizes")
    tag = f"acc(B={cfg.ref_batch}) - acc(B={cfg.batch_sizes[0]})"
    parts = [_labelled(interval_claim("N5", small_batch_penalty(sweep, "batch", cfg), label=tag,
                                      threshold=ACC_THRESHOLD, seed=seed), "batch")]
    for name in ("group", "layer"):
        if name in cfg.norms:
            c = interval_claim("N5", small_batch_penalty(sweep, name, cfg), label=tag, direction="less",
                               null=ACC_THRESHOLD, seed=seed)
            parts.append(_labelled(c, f"{name} (below {ACC_THRESHOLD:g})"))
    return combine("N5", parts, note=f"practical threshold {ACC_THRESHOLD:g} accuracy")


def claim_n7(sweep: Sweep, cfg: Config, seed: int) -> Claim:
    big = cfg.batch_sizes[-1]
    if big <= cfg.ref_batch:
        return not_measured("N7", f"needs a batch size above the reference {cfg.ref_batch} in --batch-sizes")
    diff = np.mean([sweep.histories[n, cfg.ref_batch].test_acc[:, -1] - sweep.histories[n, big].test_acc[:, -1]
                    for n in cfg.norms], axis=0)
    return interval_claim("N7", diff, label=f"acc(B={cfg.ref_batch}) - acc(B={big}) after the same epochs, "
                          f"mean over {len(cfg.norms)} norms", threshold=N7_THRESHOLD, seed=seed,
                          note=f"lr scaled with B; threshold {N7_THRESHOLD:g}")


def claim_n6(sweep: Sweep, cfg: Config, seed: int) -> Claim:
    if "batch" not in cfg.norms:
        return not_measured("N6", "needs batch norm in --norms")
    B = cfg.ref_batch

    def diff(b):
        return sweep.histories["batch", b].test_acc[:, -1] - sweep.batch_acc[b]

    ends = dict.fromkeys((cfg.batch_sizes[0], cfg.batch_sizes[-1]))
    others = ", ".join(f"B={b} {np.median(diff(b)):+.3g}" for b in ends if b != B)
    note = f"non-inferiority margin {N6_MARGIN:g}" + (f"; the same difference at {others}" if others else "")
    return interval_claim("N6", diff(B), label=f"acc(running stats) - acc(batch stats) at B={B}",
                          null=-N6_MARGIN, seed=seed, note=note)


def claim_n1(sweep: Sweep, cfg: Config, seed: int) -> Claim:
    if not {"none", "batch"} <= set(cfg.norms):
        return not_measured("N1", "needs none and batch in --norms")
    with np.errstate(all="ignore"):
        rm = np.log10(sweep.drift_mean["none"][:, -1] / sweep.drift_mean["batch"][:, -1])
        rv = np.log10(sweep.drift_var["none"][:, -1] / sweep.drift_var["batch"][:, -1])
    return combine("N1", [interval_claim("N1", rm, label="log10 mean drift none / batch", seed=seed),
                          interval_claim("N1", rv, label="log10 variance drift none / batch", seed=seed)])


# ----------------------------------------------------------------------------- N2, N4, N3 runs

def lr_grid(opts: Options, cfg: Config, data, seeds: list[int], ctx: RunContext) -> dict:
    """Per norm: (stable (S, K), test accuracy (S, K), diverged (S, K)) over the lr grid at the reference batch.

    One training run per norm: replica (s, k) is seed s at lr k; stable as in `stable_runs`.
    """
    from dlbench.nn.train import train

    K = len(cfg.lrs)
    rep_seeds = np.repeat(seeds, K)
    lr = np.tile(np.asarray(cfg.lrs), len(seeds)).reshape(-1, 1, 1)
    out = {}
    with ctx.progress.task("norm: learning-rate grid", total=len(cfg.norms)) as advance:
        for name in cfg.norms:
            model = make_model(name, opts, data.n_features, data.n_outputs)
            h = train(model, data, rep_seeds, optimizer=sgd(lr.astype(np.float32)), epochs=opts.epochs,
                      batch_size=cfg.ref_batch, eval_every=0)
            stable = stable_runs(h.train_loss, h.diverged)
            out[name] = tuple(a.reshape(len(seeds), K) for a in (stable, h.test_acc[:, -1], h.diverged))
            advance()
    return out


def stable_runs(train_loss: np.ndarray, diverged: np.ndarray) -> np.ndarray:
    """Per run, whether it did not diverge: its training loss stayed finite and did not explode (the trainer's
    rule, > 1000 x the initial loss). How far the loss fell is not asked: a small lr that trains slowly is
    stable."""
    return ~np.asarray(diverged, bool) & np.isfinite(train_loss).all(axis=1)


def record_lr_grid(grid: dict, cfg: Config, seeds: list[int], ctx: RunContext) -> None:
    rec = ctx.record
    sec = f"N2 learning-rate grid (batch {cfg.ref_batch}; stable = did not diverge)"
    for name, (stable, acc, div) in grid.items():
        for k, lr in enumerate(cfg.lrs):
            case = {"norm": name, "lr": float(lr)}
            rec.metric("test_acc", acc[:, k], case=case, better="higher", seeds=seeds, section=sec)
            rec.metric("stable", stable[:, k].astype(float), case=case, unit="bool", better="higher", seeds=seeds,
                       section=sec)
            rec.metric("diverged", div[:, k].astype(float), case=case, unit="bool", better="lower", seeds=seeds,
                       section=sec)
    sec = ("N2 largest stable (not diverged) and best learning rate per norm (lower median over seeds, "
           "a grid value)")
    for name, (stable, acc, _) in grid.items():
        case = {"norm": name}
        step = grid_median(largest_stable_index(stable))
        rec.metric("largest_stable_lr", cfg.lrs[step] if step >= 0 else math.nan, case=case, better="higher",
                   section=sec)
        rec.metric("largest_stable_step", step, case=case, better="higher", section=sec)
        rec.metric("no_stable_lr", ~stable.any(axis=1), case=case, unit="bool", better="lower", seeds=seeds,
                   section=sec)
        rec.metric("best_lr", cfg.lrs[grid_median(best_lr_index(acc))], case=case, section=sec)
        rec.metric("best_test_acc", np.nanmax(np.where(np.isfinite(acc), acc, np.nan), axis=1), case=case,
                   better="higher", seeds=seeds, section=sec)


def grid_median(steps, axis=None):
    """The lower median of integer grid steps (over seeds): always a step of the grid, never between two."""
    return np.percentile(np.asarray(steps), 50, axis=axis, method="lower").astype(int)


def claim_n2(grid: dict, cfg: Config, seed: int) -> Claim:
    """Largest stable lr, batch - none, in grid steps: the difference of the two lower medians over seeds,
    with a paired bootstrap over seeds; a seed with no stable lr counts as step -1, one below the grid."""
    if not {"none", "batch"} <= set(grid):
        return not_measured("N2", "needs none and batch in --norms")
    if len(cfg.lrs) < 2:
        return not_measured("N2", "needs at least 2 learning rates in --lr-grid")
    norms = ("none", "batch")
    top = {n: largest_stable_index(grid[n][0]) for n in norms}
    step = {n: int(grid_median(top[n])) for n in norms}
    S = top["none"].size
    pick = np.random.default_rng(seed).integers(0, S, (2000, S))
    boot = grid_median(top["batch"][pick], axis=1) - grid_median(top["none"][pick], axis=1)
    lo, hi = (float(v) for v in np.percentile(boot, [2.5, 97.5]))
    best = {n: cfg.lrs[grid_median(best_lr_index(grid[n][1]))] for n in norms}

    def lr_text(n):
        none = int((top[n] < 0).sum())
        where = f"{cfg.lrs[step[n]]:.3g}" if step[n] >= 0 else f"none (step -1, below {cfg.lrs[0]:g})"
        return f"{n} step {step[n]} = {where}" + (f", {none}/{S} seeds with no stable lr" if none else "")

    note = (f"stable = the seed's run did not diverge (finite loss, not above 1000 x its initial loss); "
            f"largest stable lr (lower median over seeds) {lr_text('none')}; {lr_text('batch')}; "
            f"no stable lr counts as step -1; best lr none {best['none']:.3g}, batch {best['batch']:.3g}")
    capped = [n for n in norms if np.any(top[n] == len(cfg.lrs) - 1)]
    if capped:
        note += f"; {' and '.join(capped)} stable at the grid's top lr {cfg.lrs[-1]:g} (a lower bound)"
    return claim_from_interval("N2", CLAIMS["N2"], step["batch"] - step["none"], lo, hi, n=S, method="bootstrap",
                               label="largest stable lr, batch - none, in grid steps (lower medians)", note=note)


def gap_run(opts: Options, cfg: Config, seeds: list[int], ctx: RunContext) -> tuple[dict, int, int]:
    """Per norm: (train acc, test acc, train loss, test loss) after N4_EPOCHS x --epochs on a training set of
    a quarter of --train-size (at least 32), batch 16, lr scaled: small enough to overfit."""
    from dlbench.nn.train import train

    n = max(32, opts.train_size // 4)
    B = min(16, n // 2)
    data = make_data(opts, ctx.seed, n_train=n)
    out = {}
    with ctx.progress.task("norm: train/test gap", total=len(cfg.norms)) as advance:
        for name in cfg.norms:
            model = make_model(name, opts, data.n_features, data.n_outputs)
            h = train(model, data, seeds, optimizer=sgd(scaled_lr(opts.base_lr, B)), epochs=N4_EPOCHS * opts.epochs,
                      batch_size=B, eval_every=0)
            out[name] = (h.train_acc[:, -1], h.test_acc[:, -1], h.train_loss[:, -1], h.test_loss[:, -1])
            advance()
    return out, n, B


def claim_n4(gaps: dict, seed: int) -> Claim:
    if not {"none", "batch"} <= set(gaps):
        return not_measured("N4", "needs none and batch in --norms")
    g = {n: gaps[n][0] - gaps[n][1] for n in ("none", "batch")}
    return interval_claim("N4", g["none"] - g["batch"], label="acc gap (train - test) none - batch",
                          threshold=N4_THRESHOLD, seed=seed,
                          note=f"gap none {np.median(g['none']):.3g}, batch {np.median(g['batch']):.3g}; "
                               f"threshold {N4_THRESHOLD:g}")


def init_scale_run(opts: Options, cfg: Config, data, seeds: list[int], lrs: dict) -> dict:
    """none and batch nets with every hidden layer's W and b multiplied by a in INIT_SCALES; replica (s, a).

    Each net trains at its own learning rate lrs[name] (its best on the N2 grid), so neither is judged at a
    rate that does not suit it. Returns per norm (final training loss (S, A), test accuracy (S, A)) after
    --epochs at the reference batch.
    """
    from dlbench.nn.train import train

    A = len(INIT_SCALES)
    rep_seeds = np.repeat(seeds, A)
    scale = np.tile(np.asarray(INIT_SCALES, dtype=np.float32), len(seeds))
    out = {}
    for name in ("none", "batch"):
        model = make_model(name, opts, data.n_features, data.n_outputs)
        params = model.init(rep_seeds)
        for layer in model.layers[:model.n_hidden]:
            for i in (layer.W, layer.b):
                if i is not None:
                    params[i] *= scale.reshape((-1,) + (1,) * (params[i].ndim - 1))
        h = train(model, data, rep_seeds, optimizer=sgd(lrs[name]), epochs=opts.epochs, batch_size=cfg.ref_batch,
                  params=params, eval_every=0)
        out[name] = (h.train_loss[:, -1].reshape(len(seeds), A), h.test_acc[:, -1].reshape(len(seeds), A))
    return out


def claim_n3(exact_err: float, n_checks: int, scales: dict, seed: int) -> Claim:
    exact = exact_claim("N3", CLAIMS["N3"], exact_err, 1e-10, n=n_checks,
                        what="max |BN(aWx) - BN(Wx)| / max |BN(Wx)|, float64, eps 1e-30, a in 1e-3..1e3")
    if not {"none", "batch"} <= set(scales):
        return combine("N3", [exact, not_measured("N3", "the init-scale runs need none and batch in --norms")])
    spread = {n: spread_log_loss(scales[n][0]) for n in ("none", "batch")}
    trained = interval_claim("N3", spread["none"] - spread["batch"],
                             label=f"spread of log10 final loss over init scales {INIT_SCALES}, none - batch",
                             threshold=N3_THRESHOLD, seed=seed,
                             note=f"none {np.median(spread['none']):.3g}, batch {np.median(spread['batch']):.3g} "
                                  f"decades")
    return combine("N3", [exact, trained])


# ----------------------------------------------------------------------------- exact N8

def claim_n8(opts: Options, ctx: RunContext) -> tuple[Claim, dict]:
    """Every per-sample norm (layer, instance, group; kernel in float32 and float64, and a whole MLP) gives a
    sample the same output whatever the rest of its batch; batch norm is the control that must change."""
    from dlbench.nn.norm import get_norm

    rng = ctx.rng("N8")
    F = opts.width
    shape = (3, 16, F)
    found = {}
    worst, checks = 0.0, 0
    for name in ("layer", "instance", "group", "batch"):
        if name == "instance" and F // opts.channels < 2:
            continue
        norm = get_norm(name, **norm_hyper(name, opts))
        for dt in (np.float32, np.float64):
            params, state = norm.init(F, prefix=(3,), dtype=dt)
            params = {k: (v + rng.standard_normal(v.shape)).astype(dt) for k, v in params.items()}
            err, n = batch_dependence(norm, params, state, rng, shape, dt)
            found[name, np.dtype(dt).name] = err
            if name != "batch":
                worst, checks = max(worst, err), checks + n
        model = make_model(name, opts, 4, 3)
        err = net_batch_dependence(model, model.init(ctx.seed_list[:3]), rng)
        found[name, "mlp"] = err
        if name != "batch":
            worst, checks = max(worst, err), checks + 1
    control = max(v for (n, _), v in found.items() if n == "batch")
    c = exact_claim("N8", CLAIMS["N8"], worst, 1e-6, n=checks,
                    what="max relative change of a sample's output (layer, instance, group; kernels and MLP)")
    c = dataclasses.replace(c, evidence=c.evidence + f"; batch norm (control) changes by {control:.3g}")
    if control < 1e-3:
        c = dataclasses.replace(c, verdict="inconclusive", evidence=c.evidence + " (too little: the check is blind)")
    return c, found


# ----------------------------------------------------------------------------- timings

def _time(ctx: RunContext, metric: str, fn, *args, case: dict, items=None, bytes=None, section: str, **kwargs):
    """ctx.time with shorter samples (two dozen kernels share the run's budget); raw samples kept."""
    cfg = ctx.timing_config
    cfg = {"min_time": min(cfg["min_time"], 0.005), "samples": min(cfg["samples"], 9), "warmup": cfg["warmup"]}
    t = timing.time_kernel(fn, *args, items=items, bytes=bytes, **cfg, **kwargs)
    ctx.record.timing(metric, t, case=case, section=section)
    return t


def time_norms(opts: Options, cfg: Config, ctx: RunContext) -> None:
    """Forward (training mode) and backward of each norm on (256, 512) float32, buffers reused (out=, reuse=).

    Bytes are the minimum traffic: forward reads x and writes y; backward reads g and the saved input and
    writes dx."""
    from dlbench.nn.norm import get_norm

    rng = ctx.rng("timing")
    N, F = TIMING_SHAPE
    x = rng.standard_normal((N, F), dtype=np.float32)
    g = rng.standard_normal((N, F), dtype=np.float32)
    sec = f"norm forward and backward ({N}x{F} float32)"
    for name in cfg.norms:
        hyper = norm_hyper(name, opts)
        if "channels" in hyper:
            hyper["channels"] = F // max(1, opts.width // opts.channels)
            if hyper["channels"] % hyper.get("num_groups", 1):
                hyper["num_groups"] = 1
        norm = get_norm(name, **hyper)
        params, state = norm.init(F)
        y, cache = norm.forward(x, params, state, train=True)
        y = np.empty_like(x)
        dx = np.empty_like(x)
        case = {"norm": name, "n": N, "f": F}
        _time(ctx, "forward", norm.forward, x, params, state, True, out=y, reuse=cache, case=case,
              items=x.size, bytes=2 * x.nbytes, section=sec)
        # The identity's backward only copies g into dx; a norm also reads its cached input.
        moved = (2 if name == "none" else 3) * x.nbytes
        _time(ctx, "backward", norm.backward, g, cache, out=dx, case=case, items=x.size, bytes=moved,
              section=sec)


def time_whitening(cfg: Config, ctx: RunContext) -> dict:
    """ZCA whitening versus batch norm forward of (1024, F) float32 over F; {(kind, F): Timing}.

    Both on one thread (BLAS and LAPACK pinned with threadpoolctl; NumPy's ufuncs are single-threaded anyway):
    the comparison is per core, and free of the thread-contention spikes of a multithreaded eigh on a busy box.
    """
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1):
        return _time_whitening(cfg, ctx)


def _time_whitening(cfg: Config, ctx: RunContext) -> dict:
    from dlbench.nn.norm import get_norm

    rng = ctx.rng("whitening")
    bn = get_norm("batch")
    N = 1024
    out = {}
    sec = f"N9 ZCA whitening vs batch norm forward ({N} x F float32, one thread)"
    for F in cfg.features:
        x = rng.standard_normal((N, F), dtype=np.float32)
        params, state = bn.init(F)
        y, cache = bn.forward(x, params, state, train=True)
        case = {"f": F}
        out["batch", F] = _time(ctx, "batch_norm", bn.forward, x, params, state, True, out=np.empty_like(x),
                                reuse=cache, case=case, items=x.size, bytes=2 * x.nbytes, section=sec)
        out["zca", F] = _time(ctx, "zca_whitening", zca_whiten, x, case=case, items=x.size, bytes=2 * x.nbytes,
                              section=sec)
    return out


def claim_n9(times: dict, cfg: Config, ctx: RunContext) -> Claim:
    F = cfg.features
    if len(F) < 2:
        return not_measured("N9", "needs at least 2 sizes in --features to fit exponents")
    slopes = {k: loglog_slope(F, [times[k, f].samples for f in F], seed=ctx.seed) for k in ("zca", "batch")}
    for k, (s, lo, hi) in slopes.items():
        ctx.record.metric("time_exponent", s, case={"kernel": k}, section="N9 fitted exponent: time ~ F^k")
        ctx.record.metric("exponent_low", lo, case={"kernel": k}, section="N9 fitted exponent: time ~ F^k")
        ctx.record.metric("exponent_high", hi, case={"kernel": k}, section="N9 fitted exponent: time ~ F^k")
    from dlbench.stats import bootstrap_ratio_ci

    big = F[-1]
    r, lo, hi = bootstrap_ratio_ci(times["batch", big].samples, times["zca", big].samples, seed=ctx.seed)
    ratio = claim_from_interval("N9", CLAIMS["N9"], r, lo, hi, n=min(times["batch", big].samples.size,
                                times["zca", big].samples.size), method="bootstrap", null=1.0,
                                threshold=N9_RATIO - 1.0, unit="x", label=f"time zca / batch norm at F={big}")
    (kz, lz, hz), (kb, lb, hb) = slopes["zca"], slopes["batch"]
    # The fit's bootstrap resamples each size's raw timing samples: its n is the samples per size.
    per_size = min(times[k, f].samples.size for k in ("zca", "batch") for f in F)
    grow = claim_from_interval("N9", CLAIMS["N9"], kz - kb, lz - hb, hz - lb, n=per_size, method="bootstrap",
                               label="exponent zca - batch norm",
                               note=f"fitted over {len(F)} feature sizes; zca F^{kz:.2f} [{lz:.2f}, {hz:.2f}], "
                                    f"batch norm F^{kb:.2f} [{lb:.2f}, {hb:.2f}]")
    return combine("N9", [ratio, grow], note=f"'far more' means at least {N9_RATIO:g}x")


# ----------------------------------------------------------------------------- run

def record_gaps(gaps: dict, n_small: int, b_small: int, opts: Options, seeds: list[int], ctx: RunContext) -> None:
    sec = f"N4 train/test gap ({n_small} training samples, batch {b_small}, {N4_EPOCHS * opts.epochs} epochs)"
    for name, (tr, te, ltr, lte) in gaps.items():
        case = {"norm": name}
        ctx.record.metric("train_acc", tr, case=case, better="higher", seeds=seeds, section=sec)
        ctx.record.metric("test_acc", te, case=case, better="higher", seeds=seeds, section=sec)
        ctx.record.metric("acc_gap", tr - te, case=case, better="lower", seeds=seeds, section=sec)
        ctx.record.metric("loss_gap", lte - ltr, case=case, better="lower", seeds=seeds, section=sec)


def n3_learning_rates(grid: dict, cfg: Config) -> dict:
    """none's and batch's learning rate for the init-scale runs: the (lower) median over seeds of each one's best
    lr on the N2 grid."""
    out = {}
    for name in ("none", "batch"):
        best = np.sort(best_lr(cfg.lrs, grid[name][1]))
        out[name] = float(best[(best.size - 1) // 2])
    return out


def record_scales(scales: dict, lrs: dict, seeds: list[int], ctx: RunContext) -> None:
    sec = "N3 final training loss over init scales a (hidden W and b times a, each net at its best lr)"
    for name, (loss, acc) in scales.items():
        for j, a in enumerate(INIT_SCALES):
            case = {"norm": name, "init_scale": float(a)}
            ctx.record.metric("train_loss", loss[:, j], case=case, better="lower", seeds=seeds, section=sec)
            ctx.record.metric("test_acc", acc[:, j], case=case, better="higher", seeds=seeds, section=sec)
            ctx.record.metric("lr", lrs[name], case=case, section=sec)


def run(opts: Options, ctx: RunContext) -> None:
    cfg = parse_options(opts)
    data = make_data(opts, ctx.seed)
    seeds = ctx.seed_list

    sweep = run_sweep(opts, cfg, data, seeds, ctx)
    record_sweep(sweep, cfg, opts, seeds, ctx)
    grid = lr_grid(opts, cfg, data, seeds, ctx)
    record_lr_grid(grid, cfg, seeds, ctx)
    gaps, n_small, b_small = gap_run(opts, cfg, seeds, ctx)
    record_gaps(gaps, n_small, b_small, opts, seeds, ctx)
    scales = {}
    if {"none", "batch"} <= set(cfg.norms):
        n3_lr = n3_learning_rates(grid, cfg)
        scales = init_scale_run(opts, cfg, data, seeds, n3_lr)
        record_scales(scales, n3_lr, seeds, ctx)

    sec = "N3 and N8 exact checks"
    exact_err, n_exact = scale_invariance_error(ctx.rng("N3"))
    ctx.record.metric("max_rel_diff", exact_err, case={"check": "BN(aWx) vs BN(Wx), eps 1e-30"}, better="lower",
                      section=sec)
    n8, found = claim_n8(opts, ctx)
    for (name, where), err in found.items():
        ctx.record.metric("max_rel_diff", err, case={"check": f"{name} norm, other samples replaced, {where}"},
                          better="lower" if name != "batch" else "none", section=sec)

    with ctx.progress.task("norm: timings", total=None):
        time_norms(opts, cfg, ctx)
        times = time_whitening(cfg, ctx)

    ctx.claim(claim_n1(sweep, cfg, ctx.seed))
    ctx.claim(claim_n2(grid, cfg, ctx.seed))
    ctx.claim(claim_n3(exact_err, n_exact, scales, ctx.seed))
    ctx.claim(claim_n4(gaps, ctx.seed))
    ctx.claim(claim_n5(sweep, cfg, ctx.seed))
    ctx.claim(claim_n6(sweep, cfg, ctx.seed))
    ctx.claim(claim_n7(sweep, cfg, ctx.seed))
    ctx.claim(n8)
    ctx.claim(claim_n9(times, cfg, ctx), timing=True)


def plot(results, path) -> None:
    """Test accuracy over batch size per norm: median over seeds, band from the 25th to the 75th percentile."""
    from dlbench.experiments.norm.figure import draw

    draw(results, path)
