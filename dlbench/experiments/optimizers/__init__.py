"""`dlbench optimizers`: optimizers on saddles, cliffs and canyons, every start and learning rate at once.

Each optimizer runs from P starting points at every learning rate of a log grid in one vectorized
engine call (dlbench.experiments.optimizers.trajectories); the lr with the lowest median final loss on a set of
tuning starts is then run from P fresh evaluation starts, shared by every optimizer, and measured:
final loss, steps to a target loss, divergence, largest single step, oscillation along the steepest
axis, path length over straight-line distance, update time per parameter and point-steps per second.
Claims O1-O9 of CLAIMS.md run on their own surfaces (O1 is Monte Carlo over random Hessians).
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from dataclasses import dataclass

import numpy as np

from dlbench import timing
from dlbench.errors import DlbenchError
from dlbench.experiments.optimizers.trajectories import (
    PATH_BUDGET, LrSearch, ModelSurface, RunMetrics, Trajectories, build_optimizer, contraction_rate, first_at_or_below,
    gd_rate, make_surface, measure, momentum_rate, newcombe_difference, optimal_gd, optimal_heavy_ball,
    run_trajectories, sample_starts, search_lr, surface_names, wilson,
)
from dlbench.experiments.base import RunContext, option, parse_numbers
from dlbench.nn.optim import OPTIMIZERS, get_optimizer
from dlbench.stats import (Claim, bootstrap_ci, claim_from_interval, exact_claim, not_measured, two_sample_verdict,
                           verdict)

NAME = "optimizers"
HELP = "Optimizers on saddles, cliffs, canyons and an MLP: best-lr trajectories, metrics, claims O1-O9."
CLAIMS = {
    "O1": "in high dimension almost every critical point is a saddle",
    "O2": "saddles are unstable: noise escapes them",
    "O3": "cliffs throw the parameters far; clipping stops it",
    "O4": "canyons make descent oscillate; momentum damps it",
    "O5": "Adagrad equalises the scale of each direction, but slows down later",
    "O6": "RMSProp's decaying average removes Adagrad's slowdown",
    "O7": "Adam = momentum + RMSProp, and its bias correction fixes the zero start of m and v",
    "O8": "minima come in families of equal loss (relu rescaling and permutation symmetries)",
    "O9": "different runs end near equally good solutions",
}
#: Where each claim runs: the first surface is used by --all-claims; any listed one runs it by default.
CLAIM_SURFACES = {"O2": ("saddle",), "O3": ("cliff",), "O4": ("canyon", "quadratic"), "O5": ("canyon", "quadratic"),
                  "O6": ("canyon", "quadratic"), "O7": ("canyon", "quadratic"), "O8": ("mlp",), "O9": ("mlp",)}
SUITE_OPTIONS = {"all_claims": True}

DEFAULT_GRID = "1e-4,3e-4,1e-3,3e-3,0.01,0.03,0.1,0.3,1,3,10,30,100"
#: Upper bound of --lr and of every --lr-grid value, and of --kappa: beyond them the runs only overflow.
MAX_LR, MAX_KAPPA = 1e3, 1e8
#: (steps, starts, tuning starts) when not given, by (--quick, mlp surface).
SIZES = {(False, False): (500, 64, 64), (False, True): (200, 16, 8), (True, False): (150, 16, 16),
         (True, True): (60, 8, 4)}
#: Steps on the saddle (unbounded below): an escape takes tens of steps, and 500 steps at lr 1 would grow
#: the unstable coordinate by 3^500 and overflow.
SADDLE_STEPS = {False: 100, True: 60}
#: Default target loss above the surface's minimum; the saddle's target is an escape (loss <= -1).
TARGET_GAP, SADDLE_TARGET, MLP_TARGET = 1e-3, -1.0, 0.05
#: Claims' fixed settings: O2's and O3's sgd learning rate (unless --lr), O2's gradient noise (unless --noise),
#: O3's clipping thresholds (unless --clip-norm / --clip-value).
CLAIM_LR, CLAIM_NOISE, CLAIM_CLIP = 0.1, 0.1, 1.0
#: O1: dimensions of the GOE Monte Carlo (eigenvalues cost n^3, so a log grid of n in 1..100).
GOE_DIMS = (1, 2, 3, 4, 5, 6, 8, 10, 13, 16, 20, 25, 32, 40, 50, 63, 79, 100)
O1_TABLE_DIMS = (1, 2, 3, 4, 5, 10, 20, 50, 100)
#: Float32 words moved per parameter by one update (read + write), for the bandwidth column.
WORDS_PER_PARAM = {"sgd": 3, "momentum": 5, "nesterov": 5, "adagrad": 5, "rmsprop": 5, "adam": 7, "adamw": 7}
UPDATE_PARAMS = 2**16
TIMING = {"min_time": 0.005, "samples": 9, "warmup": 1}
PATH_STARTS, CURVE_POINTS = 8, 150


@dataclass
class Options:
    surface: str = option("canyon", help="Loss surface.", choices=surface_names)
    optimizers: str | None = option("all", help="Optimizers to compare, or 'all'.", choices=lambda: list(OPTIMIZERS))
    lr: float | None = option(None, help="One learning rate for every optimizer (skips the grid search), in "
                                         "(0, 1000].", max=MAX_LR)
    lr_grid: str = option(DEFAULT_GRID, help="Learning rates searched per optimizer (comma-separated, "
                                              "each in (0, 1000]); the best has the lowest median final loss on "
                                              "tuning starts.")
    steps: int | None = option(None, help="Steps per run; unset: 500 (mlp 200, saddle 100), under --quick 150 "
                                          "(mlp and saddle 60).", min=1)
    starts: int | None = option(None, help="Evaluation starts per optimizer (and as many tuning starts); unset: "
                                           "64 (mlp 16, 8 tuning), under --quick 16 (mlp 8, 4 tuning).", min=1)
    noise: float = option(0.0, help="Std of Gaussian noise added to every gradient coordinate.", min=0.0)
    clip_norm: float | None = option(None, help="Clip each run's gradient to this norm (torch clip_grad_norm_).")
    clip_value: float | None = option(None, help="Clip each gradient coordinate to [-C, C].")
    target: float | None = option(None, help="Target loss for steps-to-target on --surface; unset: minimum + "
                                             "1e-3 (saddle: -1, an escape; mlp: 0.05).")
    kappa: float | None = option(None, help="Condition number of canyon/quadratic, in [1, 1e8] (unset: the "
                                             "surface's).", min=1, max=MAX_KAPPA)
    all_claims: bool = option(False, help="Also run every claim on its own surface (saddle, cliff, canyon, mlp).")


# --------------------------------------------------------------------------- configuration


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
    quick: bool


def _positive(name: str, value, allow_none: bool = True) -> None:
    if value is None and allow_none:
        return
    if value is None or not math.isfinite(value) or value <= 0:
        raise DlbenchError(f"--{name} must be a positive number, got {value}")


def configure(opts: Options, quick: bool) -> Config:
    """Check every option before any work; each problem is one DlbenchError line."""
    if opts.surface not in surface_names():
        from dlbench.errors import UnknownName

        raise UnknownName("surface", opts.surface, surface_names())
    names = OPTIMIZERS.parse_list(opts.optimizers)
    _positive("lr", opts.lr)
    if opts.lr is not None and opts.lr > MAX_LR:
        raise DlbenchError(f"--lr must be at most {MAX_LR:g}, got {opts.lr}")
    grid = parse_numbers(opts.lr_grid, float, what="--lr-grid")
    if not all(math.isfinite(v) and v <= MAX_LR for v in grid):
        raise DlbenchError(f"--lr-grid: every value must be in (0, {MAX_LR:g}], got {opts.lr_grid!r}")
    for key in ("steps", "starts"):
        v = getattr(opts, key)
        if v is not None and (int(v) != v or v < 1):
            raise DlbenchError(f"--{key} must be a positive integer, got {v}")
    if not math.isfinite(opts.noise) or opts.noise < 0:
        raise DlbenchError(f"--noise must be a non-negative number, got {opts.noise}")
    _positive("clip-norm", opts.clip_norm)
    _positive("clip-value", opts.clip_value)
    if opts.target is not None and not math.isfinite(opts.target):
        raise DlbenchError(f"--target must be a finite number, got {opts.target}")
    if opts.kappa is not None:
        if opts.surface not in ("canyon", "quadratic") and not opts.all_claims:
            raise DlbenchError(f"--kappa applies to canyon and quadratic, not {opts.surface}")
        if not math.isfinite(opts.kappa) or not 1 <= opts.kappa <= MAX_KAPPA:
            raise DlbenchError(f"--kappa must be a number in [1, {MAX_KAPPA:g}], got {opts.kappa}")
    return Config(names, sorted(set(grid)), opts.lr, opts.steps, opts.starts, float(opts.noise), opts.clip_norm,
                  opts.clip_value, opts.target, opts.kappa, quick)


# --------------------------------------------------------------------------- runs on one surface


@dataclass
class OptimizerRun:
    """One optimizer on one surface at its chosen lr, from the surface's evaluation starts."""

    name: str
    lr: float
    hyper: dict
    search: LrSearch | None
    traj: Trajectories
    metrics: RunMetrics


@dataclass
class SurfaceRuns:
    name: str
    surface: object
    target: float
    steps: int
    starts: np.ndarray  # (d, P) evaluation starts, shared by every optimizer
    tune: np.ndarray  # (d, P) tuning starts for the lr search
    runs: dict


def default_target(surface) -> float:
    """The target loss when --target is not given (see Options.target)."""
    if surface.name == "saddle":
        return SADDLE_TARGET
    if isinstance(surface, ModelSurface):
        return MLP_TARGET
    return surface.min_value + TARGET_GAP


class Runner:
    """Runs optimizers on surfaces (each at most once), records their rows, and keeps them for the claims."""

    def __init__(self, ctx: RunContext, cfg: Config, main_surface: str):
        self.ctx, self.cfg, self.main = ctx, cfg, main_surface
        self.surfaces: dict[str, SurfaceRuns] = {}
        self.timed: set[str] = set()

    def surface(self, name: str) -> SurfaceRuns:
        if name in self.surfaces:
            return self.surfaces[name]
        hyper = {"kappa": self.cfg.kappa} if self.cfg.kappa is not None and name in ("canyon", "quadratic") else {}
        surf = make_surface(name, **hyper)
        steps, P, P_tune = SIZES[(self.cfg.quick, isinstance(surf, ModelSurface))]
        if name == "saddle":
            steps = SADDLE_STEPS[self.cfg.quick]
        steps = self.cfg.steps or steps
        if self.cfg.starts:
            P = P_tune = self.cfg.starts
        starts = sample_starts(surf, self.ctx.rng("starts", name), P)
        tune = sample_starts(surf, self.ctx.rng("tune", name), P_tune)
        target = self.cfg.target if (self.cfg.target is not None and name == self.main) else \
            default_target(surf)
        sr = SurfaceRuns(name, surf, float(target), int(steps), starts, tune, {})
        self.surfaces[name] = sr
        return sr

    def case(self, sr: SurfaceRuns, name: str) -> dict:
        case = {"surface": sr.name, "optimizer": name, "target": sr.target}
        if self.cfg.noise:
            case["noise"] = self.cfg.noise
        if self.cfg.clip_norm is not None:
            case["clip_norm"] = self.cfg.clip_norm
        if self.cfg.clip_value is not None:
            case["clip_value"] = self.cfg.clip_value
        return case

    def engine_options(self, sr: SurfaceRuns, purpose: str, name: str) -> dict:
        return {"noise": self.cfg.noise, "rng": self.ctx.rng("noise", purpose, sr.name, name),
                "clip_norm": self.cfg.clip_norm, "clip_value": self.cfg.clip_value}

    def ensure(self, surface_name: str, names: list[str]) -> SurfaceRuns:
        """Run (and record) every optimizer in `names` not yet run on the surface."""
        sr = self.surface(surface_name)
        todo = [n for n in names if n not in sr.runs]
        if not todo:
            return sr
        with self.ctx.progress.task(f"optimizers on {surface_name}", total=len(todo)) as advance:
            for name in todo:
                sr.runs[name] = self.run_one(sr, name)
                self.record(sr, sr.runs[name])
                advance()
        return sr

    def run_one(self, sr: SurfaceRuns, name: str, hyper: dict | None = None, label: str | None = None,
                lr: float | None = None) -> OptimizerRun:
        hyper = hyper or {}
        search = None
        if lr is None and self.cfg.lr is None:
            search = search_lr(sr.surface, name, sr.tune, self.cfg.grid, sr.steps, sr.target, hyper=hyper,
                               **self.engine_options(sr, "tune", label or name))
            lr = search.best
        elif lr is None:
            lr = self.cfg.lr
        opt = build_optimizer(name, lr, **hyper)
        # O5-O7 read each step's gradient; kept like the path, only when it fits the budget
        keep = sr.surface.dim <= 16 and (sr.steps + 1) * sr.starts.nbytes <= PATH_BUDGET
        traj = run_trajectories(sr.surface, opt, sr.starts, sr.steps, keep_grads=keep,
                                **self.engine_options(sr, "eval", label or name))
        return OptimizerRun(label or name, float(lr), hyper, search, traj, measure(traj, sr.target))

    def record(self, sr: SurfaceRuns, run: OptimizerRun) -> None:
        rec, case = self.ctx.record, self.case(sr, run.name)
        m = run.metrics
        rec.metric("lr", run.lr, case=case, section="trajectories")
        rec.metric("final loss", m.final_loss, case=case, better="lower", section="trajectories")
        rec.metric("steps to target", m.steps_to_target, case=case, unit="steps", better="lower",
                   section="trajectories")
        rec.metric("reached", m.reached, case=case, unit="bool", better="higher", section="trajectories")
        rec.metric("diverged", m.diverged, case=case, unit="bool", better="lower", section="trajectories")
        curve = _nanmedian(np.where(np.isfinite(run.traj.loss), run.traj.loss, np.nan), axis=1)
        idx = _downsample(curve.size, CURVE_POINTS)
        rec.curve("loss", curve[idx], steps=idx, case=case, section="trajectories")
        rec.metric("largest step", m.largest_step, case=case, better="none", section="trajectory shape")
        rec.metric("oscillation", m.oscillation, case=case, better="lower", section="trajectory shape")
        rec.metric("path / chord", m.path_ratio, case=case, better="lower", section="trajectory shape")
        if run.search is not None:
            s = run.search
            rec.metric("point-steps/s", s.point_steps / s.seconds if s.seconds > 0 else math.nan, case=case,
                       unit="1/s", better="none", section="trajectory shape")
            for lr, med in zip(s.lrs, s.median_final):
                rec.metric(f"lr={lr:g}", med, case=case, better="lower", section="lr search")
            rec.metric("best lr", s.best, case=case, section="lr search")
            rec.metric("best at grid edge", float(s.best in (s.lrs[0], s.lrs[-1]) and len(s.lrs) > 1), case=case,
                       unit="bool", better="lower", section="lr search")
        else:
            rec.metric("point-steps/s", run.traj.point_steps_per_s, case=case, unit="1/s", better="none",
                       section="trajectory shape")

    def record_timings(self, sr: SurfaceRuns) -> None:
        """Per optimizer: one update of 65,536 float32 parameters, and one trajectory step of all P starts."""
        cfg = timing.QUICK if self.ctx.quick else TIMING
        rng = self.ctx.rng("timing")
        g = rng.standard_normal(UPDATE_PARAMS).astype(np.float32)
        for name, run in sr.runs.items():
            if name not in OPTIMIZERS:
                continue
            if name not in self.timed:
                self.timed.add(name)
                p = rng.standard_normal(UPDATE_PARAMS).astype(np.float32)
                opt = get_optimizer(name, lr=1e-3)
                state = opt.init([p])
                t = timing.time_kernel(opt.step, [p], [g], state, items=UPDATE_PARAMS,
                                       bytes=4 * WORDS_PER_PARAM.get(name, 3) * UPDATE_PARAMS, **cfg)
                self.ctx.record.timing("update", t, case={"optimizer": name, "params": UPDATE_PARAMS})
                self.ctx.record.metric("update ns/param", t.median / UPDATE_PARAMS * 1e9, case=self.case(sr, name),
                                       unit="ns", better="none", section="trajectory shape")
            step = _trajectory_step(sr.surface, build_optimizer(name, run.lr, **run.hyper), sr.starts)
            t = timing.time_kernel(step, items=sr.starts.shape[1], **cfg)
            self.ctx.record.timing("trajectory step", t, case={"surface": sr.name, "optimizer": name,
                                                               "points": sr.starts.shape[1]})

    def record_paths(self, sr: SurfaceRuns) -> None:
        """x and y of the first few evaluation starts' paths (2-d surfaces), for --plot."""
        if sr.surface.dim != 2:
            return
        for name, run in sr.runs.items():
            path = run.traj.path
            if path is None:
                continue
            idx = _downsample(path.shape[0], CURVE_POINTS, head=60)
            case = {"surface": sr.name, "optimizer": name}
            for j in range(min(PATH_STARTS, path.shape[2])):
                for k, axis in enumerate(("x", "y")):
                    self.ctx.record.curve(axis, path[idx, k, j], steps=idx, seed=j, case=case, better="none",
                                          section="paths")


def _nanmedian(x, axis=None):
    """Median ignoring NaN; NaN (and no warning) where every value is NaN."""
    x = np.asarray(x, dtype=float)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmedian(x, axis=axis)


def _downsample(n: int, points: int, head: int = 0) -> np.ndarray:
    """At most about `points` indices of range(n): the first `head` all kept (early oscillation shows
    there), then evenly spaced ones, always keeping the last."""
    if n <= points:
        return np.arange(n)
    head = min(head, points // 2)
    rest = np.linspace(head, n - 1, points - head).round().astype(int)
    return np.unique(np.concatenate([np.arange(head), rest]))


def _trajectory_step(surface, opt, Z0: np.ndarray):
    """One engine step (gradient + update of every run) from fixed starts, restored each call."""
    Z = Z0.copy()
    G = np.empty_like(Z)
    state = opt.init([Z])

    def step():
        np.copyto(Z, Z0)  # restart: a converging run would otherwise reach subnormal numbers
        surface.grad(Z, out=G)
        opt.step([Z], [G], state)

    return step


# --------------------------------------------------------------------------- claims


def combine(claim_id: str, parts: list[Claim], note: str = "") -> Claim:
    """One claim from several measured parts: supported if all are, refuted if any is; the first part's
    effect and interval; every part's evidence."""
    verdicts = [p.verdict for p in parts]
    if "not run" in verdicts:
        return next(p for p in parts if p.verdict == "not run")
    v = "supported" if all(x == "supported" for x in verdicts) else \
        "refuted" if "refuted" in verdicts else "inconclusive"
    first = parts[0]
    evidence = " | ".join(p.evidence for p in parts) + (f"; {note}" if note else "")
    return Claim(claim_id, CLAIMS[claim_id], v, first.effect, first.low, first.high, min(p.n for p in parts),
                 "+".join(dict.fromkeys(p.method for p in parts)), evidence, first.unit)


def _labelled(c: Claim, label: str) -> Claim:
    return dataclasses.replace(c, evidence=f"{label}: {c.evidence}")


def not_run(claim_id: str, surface: str) -> Claim:
    home = CLAIM_SURFACES[claim_id][0]
    return not_measured(claim_id, CLAIMS[claim_id],
                        note=f"not measured on {surface}: it runs on {home} (--surface {home} or --all-claims)")


def saddle_fractions(rng: np.random.Generator, n_max: int, samples: int, goe_samples: int, p: float = 0.5,
                     goe_dims=GOE_DIMS) -> dict:
    """Monte Carlo fraction of critical points that are saddles, n = 1..n_max, under two Hessian models.

    Independent signs: each of n curvatures is positive with probability p (the notes' model, where
    P(saddle) = 1 - p^n - (1-p)^n). GOE: H = A + A^T with A_ij ~ N(0, 1); a saddle has eigenvalues of both
    signs. Dimensions n share draws (the first n signs; the leading n x n block of one GOE matrix, itself GOE).
    """
    pos = rng.random((samples, n_max)) < p
    mixed = ~(np.logical_and.accumulate(pos, axis=1) | np.logical_and.accumulate(~pos, axis=1))
    A = rng.standard_normal((goe_samples, n_max, n_max))
    H = A + A.transpose(0, 2, 1)
    dims = [n for n in goe_dims if n <= n_max]
    goe = {}
    for n in dims:
        w = np.linalg.eigvalsh(H[:, :n, :n])
        goe[n] = int(np.count_nonzero((w[:, 0] < 0) & (w[:, -1] > 0)))
    n = np.arange(1, n_max + 1)
    return {"n": n, "formula": 1 - p ** n - (1 - p) ** n, "signs": mixed.sum(axis=0), "samples": samples,
            "goe": goe, "goe_samples": goe_samples, "p": p}


def claim_o1(ctx: RunContext) -> Claim:
    samples, goe_samples = (1000, 100) if ctx.quick else (4000, 200)
    r = saddle_fractions(ctx.rng("O1"), 100, samples, goe_samples)
    rec = ctx.record
    for n in O1_TABLE_DIMS:
        case = {"n": n}
        rec.metric("formula 1-P^n-(1-P)^n", r["formula"][n - 1], case=case, section="O1 saddle fraction")
        rec.metric("MC independent signs", r["signs"][n - 1] / samples, case=case, section="O1 saddle fraction")
        if n in r["goe"]:
            rec.metric("MC GOE", r["goe"][n] / goe_samples, case=case, section="O1 saddle fraction")
    signs_ci = [wilson(int(k), samples) for k in r["signs"]]
    inside = sum(ci.low <= f <= ci.high for ci, f in zip(signs_ci, r["formula"]))
    n_max = int(r["n"][-1])
    s = signs_ci[-1]
    g = wilson(r["goe"][n_max], goe_samples)
    null = 0.95
    parts = [
        claim_from_interval("O1", CLAIMS["O1"], s.p, s.low, s.high, n=samples, method="Wilson", null=null,
                            label=f"saddle fraction at n={n_max}, independent signs (P=0.5)"),
        claim_from_interval("O1", CLAIMS["O1"], g.p, g.low, g.high, n=goe_samples, method="Wilson", null=null,
                            label=f"GOE at n={n_max}"),
    ]
    goe_99 = next((n for n in sorted(r["goe"]) if wilson(r["goe"][n], goe_samples).low > 0.95), None)
    note = (f"'almost every' = above {null:g}; formula 1-P^n-(1-P)^n = {r['formula'][-1]:.6g} at n={n_max} and "
            f"inside the independent-sign Monte Carlo's 95% interval for {inside} of {n_max} n; GOE fraction's "
            f"interval above {null:g} from n={goe_99} (eigenvalues repel, so definite Hessians are rarer than "
            f"independent signs predict: n=2 GOE {r['goe'].get(2, 0) / goe_samples:.2f} vs formula 0.5)")
    return combine("O1", parts, note)


def claim_o2(runner: Runner) -> Claim:
    """Plain versus noisy gradient descent started on the saddle's stable manifold and near it."""
    cfg, ctx = runner.cfg, runner.ctx
    sr = runner.surface("saddle")
    surf = sr.surface
    lr = cfg.lr or CLAIM_LR
    sigma = cfg.noise or CLAIM_NOISE
    near = sr.starts
    on = near.copy()
    on[1::2] = 0.0  # unstable coordinates (odd axes) exactly 0: on the stable manifold
    out = {}
    for start, Z in (("on", on), ("near", near)):
        for grad_kind, noise in (("exact", 0.0), ("noisy", sigma)):
            traj = run_trajectories(surf, build_optimizer("sgd", lr), Z, sr.steps, noise=noise,
                                    rng=ctx.rng("O2", start, grad_kind))
            steps = first_at_or_below(traj.loss, SADDLE_TARGET)
            escaped = ~np.isnan(steps)
            out[start, grad_kind] = (escaped, steps)
            case = {"start": start, "gradient": grad_kind, "lr": lr, "noise": noise, "steps": sr.steps}
            ctx.record.metric("escaped", escaped, case=case, unit="bool", better="higher", section="O2 saddle escape")
            ctx.record.metric("steps to escape", steps, case=case, unit="steps", better="lower",
                              section="O2 saddle escape")
            ctx.record.metric("final loss", np.where(np.isfinite(traj.loss[-1]), traj.loss[-1], np.nan), case=case,
                              better="lower", section="O2 saddle escape")
    P = on.shape[1]
    noisy, exact = (wilson(int(out["on", k][0].sum()), P) for k in ("noisy", "exact"))
    d, lo, hi = newcombe_difference(noisy, exact)
    near_exact, near_noisy = (_nanmedian(out["near", k][1]) if out["near", k][0].any() else math.nan
                              for k in ("exact", "noisy"))
    note = (f"sgd lr={lr:g}, noise std {sigma:g}, {sr.steps} steps, escape = loss <= {SADDLE_TARGET:g}; "
            f"on the stable manifold exact GD escaped {exact.k}/{P}, noisy {noisy.k}/{P}; from near it the "
            f"median steps to escape were {near_exact:.3g} exact vs {near_noisy:.3g} noisy")
    return claim_from_interval("O2", CLAIMS["O2"], d, lo, hi, n=P, method="Newcombe", label="escape fraction "
                               "noisy - exact, started on the saddle", note=note)


def claim_o3(runner: Runner) -> Claim:
    """Gradient descent on the cliff with no clipping, clipping by norm and by value."""
    cfg, ctx = runner.cfg, runner.ctx
    sr = runner.surface("cliff")
    lr = cfg.lr or CLAIM_LR
    cn, cv = cfg.clip_norm or CLAIM_CLIP, cfg.clip_value or CLAIM_CLIP
    res = {}
    for label, kw in (("none", {}), (f"norm {cn:g}", {"clip_norm": cn}), (f"value {cv:g}", {"clip_value": cv})):
        traj = run_trajectories(sr.surface, build_optimizer("sgd", lr), sr.starts, sr.steps, **kw)
        m = measure(traj, sr.target)
        res[label] = m
        case = {"clip": label, "lr": lr, "steps": sr.steps}
        ctx.record.metric("largest step", m.largest_step, case=case, better="lower", section="O3 cliff")
        ctx.record.metric("final loss", m.final_loss, case=case, better="lower", section="O3 cliff")
        ctx.record.metric("reached", m.reached, case=case, unit="bool", better="higher", section="O3 cliff")
        ctx.record.metric("diverged", m.diverged, case=case, unit="bool", better="lower", section="O3 cliff")
    none, by_norm, by_value = res.values()
    parts = [_labelled(two_sample_verdict("O3", CLAIMS["O3"], none.largest_step, m.largest_step, ratio=True,
                                          threshold=1.0, label="largest step ratio"), label)
             for label, m in ((f"unclipped / clipped by norm {cn:g}", by_norm),
                              (f"unclipped / clipped by value {cv:g}", by_value))]
    wall = sr.surface.hyper["height"] * sr.surface.hyper["sharpness"] / 4
    note = (f"sgd lr={lr:g}; the wall's slope reaches {wall:g}, so one step can be lr*{wall:g} = {lr * wall:g}; "
            f"median final loss {_nanmedian(none.final_loss):.3g} unclipped vs {_nanmedian(by_norm.final_loss):.3g} "
            f"(norm) and {_nanmedian(by_value.final_loss):.3g} (value); minimum {sr.surface.min_value:.3g}; "
            f"supported needs a ratio of at least 2")
    return combine("O3", parts, note)


def _curvatures(surface) -> np.ndarray:
    """Hessian diagonal at the first minimum by central differences (exact for the diagonal quadratics)."""
    z = surface.minima[0]
    d = z.size
    h = 1e-3
    E = np.eye(d) * h
    G = surface.grad(np.concatenate([z[:, None] + E, z[:, None] - E], axis=1))
    return (np.diag(G[:, :d]) - np.diag(G[:, d:])) / (2 * h)


def _rate(traj: Trajectories, fmin: float) -> np.ndarray:
    """Per-run contraction of the distance to the minimum per step, from sqrt(f - f*)."""
    with np.errstate(all="ignore"):
        return contraction_rate(np.sqrt(np.maximum(traj.loss - fmin, 0.0)))


def lr_note(runs: list[OptimizerRun]) -> str:
    """The learning rate each run used, and whether it is that optimizer's own best on the grid."""
    lrs = ", ".join(f"{r.name} {r.lr:.3g}" for r in runs)
    if all(r.search is not None for r in runs):
        return f"each at its own best grid lr: {lrs}"
    return f"lr fixed by --lr, not searched: {lrs}"


def claim_o4(runner: Runner, home: str) -> Claim:
    ctx = runner.ctx
    sr = runner.ensure(home, ["sgd", "momentum", "nesterov"])
    surf = sr.surface
    lam = _curvatures(surf)
    mu, L = float(lam.min()), float(lam.max())
    sgd, mom, nes = (sr.runs[n] for n in ("sgd", "momentum", "nesterov"))
    ref = "analytic references"
    rows = [("sgd rate at its grid lr", sgd.traj, gd_rate(sgd.lr, lam)),
            ("momentum rate at its grid lr", mom.traj, momentum_rate(mom.lr, 0.9, lam)),
            ("nesterov rate at its grid lr", nes.traj, momentum_rate(nes.lr, 0.9, lam, nesterov=True))]
    lr_gd, rate_gd = optimal_gd(mu, L)
    lr_hb, beta_hb, rate_hb = optimal_heavy_ball(mu, L)
    if math.isfinite(lr_gd) and math.isfinite(lr_hb):
        gd_opt = run_trajectories(surf, build_optimizer("sgd", lr_gd), sr.starts, sr.steps)
        hb_opt = run_trajectories(surf, build_optimizer("sgd", lr_hb, momentum=beta_hb), sr.starts, sr.steps)
        rows += [("gd at lr=2/(mu+L): (kappa-1)/(kappa+1)", gd_opt, rate_gd),
                 ("heavy ball at its best: (sqrt(kappa)-1)/(sqrt(kappa)+1)", hb_opt, rate_hb)]
    measured = {}
    for label, traj, analytic in rows:
        r = _rate(traj, surf.min_value)
        measured[label] = r
        case = {"surface": sr.name, "reference": label}
        ctx.record.metric("measured", r, case=case, section=ref)
        ctx.record.metric("analytic", analytic, case=case, section=ref)
    diff = sgd.metrics.oscillation - mom.metrics.oscillation
    c = verdict("O4", CLAIMS["O4"], diff, direction="greater", label="oscillation index sgd - momentum (paired)",
                seed=ctx.seed)

    def med(x):
        x = np.asarray(x, float)
        return _nanmedian(x) if np.isfinite(x).any() else math.nan

    note = (f"{sr.name} kappa={L / mu:.3g}; {lr_note([sgd, mom, nes])}; oscillation medians sgd "
            f"{med(sgd.metrics.oscillation):.3g}, momentum "
            f"{med(mom.metrics.oscillation):.3g}, nesterov {med(nes.metrics.oscillation):.3g}; steps to target "
            f"{med(sgd.metrics.steps_to_target):.3g} / {med(mom.metrics.steps_to_target):.3g} / "
            f"{med(nes.metrics.steps_to_target):.3g}; rates measured {med(measured[rows[0][0]]):.4g} (gd) vs "
            f"{med(measured[rows[1][0]]):.4g} (momentum); analytic best {rate_gd:.4g} vs {rate_hb:.4g}")
    bad = [label for label, _, analytic in rows if not math.isfinite(analytic)]
    if bad or not math.isfinite(rate_gd):
        what = ", ".join(bad) if bad else f"the optimal rates (curvatures {mu:.3g}..{L:.3g})"
        return dataclasses.replace(c, verdict="inconclusive",
                                   evidence=f"analytic reference not finite ({what}): the lr overflows the "
                                            f"iteration; {c.evidence}; {note}")
    return dataclasses.replace(c, evidence=f"{c.evidence}; {note}")


def _coordinate_steps(run: OptimizerRun, steep: int, flat: int):
    """|step| and |gradient| per step (T, R) on the steep and flat axes, and the flat axis's effective lr."""
    path, grads = run.traj.path, run.traj.grads
    delta = np.abs(np.diff(path[:, [steep, flat]], axis=0))
    g = np.abs(grads[:, [steep, flat]])
    with np.errstate(all="ignore"):
        eff = delta[:, 1] / g[:, 1]
    return delta[:, 0], delta[:, 1], g[:, 0], g[:, 1], np.where(np.isfinite(eff), eff, np.nan)


def _scale_removed(ds, df, gs, gf, k: int) -> np.ndarray:
    """Per run: decades of steep/flat scale difference in the gradients minus that left in the steps,
    over the first k steps: |log10(sum|g_s| / sum|g_f|)| - |log10(sum|step_s| / sum|step_f|)|
    (0 for plain gradient descent, whose steps are lr times the gradient)."""
    with np.errstate(all="ignore"):
        g = np.abs(np.log10(gs[:k].sum(axis=0) / gf[:k].sum(axis=0)))
        s = np.abs(np.log10(ds[:k].sum(axis=0) / df[:k].sum(axis=0)))
        out = g - s
    return np.where(np.isfinite(out), out, np.nan)


def _early_late(eff: np.ndarray) -> np.ndarray:
    """Per run log10(effective lr late / early): early = first step, late = median over the last 10%."""
    T = eff.shape[0]
    late = _nanmedian(eff[max(1, T - max(1, T // 10)):], axis=0) if T > 1 else eff[0]
    with np.errstate(all="ignore"):
        return np.log10(late / eff[0])


def _late_progress(traj: Trajectories, fmin: float) -> np.ndarray:
    """Per run decades of decrease of f - f* over the second half: log10(gap at T/2 / gap at T)."""
    T = traj.steps
    with np.errstate(all="ignore"):
        gap = np.maximum(traj.loss - fmin, 1e-300)
        return np.log10(gap[T // 2] / gap[T])


def _without_steps(claim_id: str, sr: SurfaceRuns) -> Claim:
    return not_measured(claim_id, CLAIMS[claim_id],
                        note=f"{sr.steps} steps x {sr.starts.shape[1]} starts on {sr.name} exceed the memory kept for "
                             f"paths and gradients ({PATH_BUDGET // 2**20} MB); use fewer --steps or --starts")


def claims_o5_o6(runner: Runner, home: str) -> tuple[Claim, Claim]:
    ctx = runner.ctx
    sr = runner.ensure(home, ["sgd", "adagrad", "rmsprop"])
    if any(sr.runs[n].traj.grads is None for n in ("sgd", "adagrad", "rmsprop")):
        return _without_steps("O5", sr), _without_steps("O6", sr)
    surf = sr.surface
    lam = _curvatures(surf)
    steep, flat = int(np.argmax(lam)), int(np.argmin(lam))
    section = "O5-O6 per-coordinate steps"
    k = 1
    spread, ratio, progress = {}, {}, {}
    for name in ("sgd", "adagrad", "rmsprop"):
        run = sr.runs[name]
        ds, df, gs, gf, ef = _coordinate_steps(run, steep, flat)
        # rounded to 1e-12: plain descent's exact 0 would otherwise print as rounding noise
        spread[name] = np.round(_scale_removed(ds, df, gs, gf, k), 12)
        ratio[name] = np.round(_early_late(ef), 12)
        progress[name] = _late_progress(run.traj, surf.min_value)
        case = {"surface": sr.name, "optimizer": name, "lr": run.lr}
        ctx.record.metric("scale decades removed (step 1)", spread[name], case=case, better="higher",
                          section=section)
        ctx.record.metric("log10 eff. lr late/early (flat)", ratio[name], case=case, section=section)
        ctx.record.metric("late progress (decades of f-f* decrease)", progress[name], case=case, better="higher",
                          section=section)
        idx = _downsample(ds.shape[0], CURVE_POINTS)
        for label, arr in (("|step| steep", ds), ("|step| flat", df)):
            with np.errstate(all="ignore"):
                ctx.record.curve(label, _nanmedian(arr, axis=1)[idx], steps=idx, case=case, better="none",
                                 section=section)
    a = _labelled(verdict("O5", CLAIMS["O5"], spread["adagrad"] - spread["sgd"], direction="greater",
                          label="decades of steep/flat gradient scale removed from the steps, adagrad - sgd "
                          "(paired)", seed=ctx.seed), "equalises")
    b = _labelled(verdict("O5", CLAIMS["O5"], ratio["adagrad"], direction="less", threshold=math.log10(2),
                          label="adagrad log10 effective lr late/early", seed=ctx.seed), "slows down")
    o5 = combine("O5", [a, b], note=f"{sr.name}; scale removed = |log10 of the steep/flat gradient ratio| minus "
                                    f"that of the steps, at the first step (same starts for both); effective lr = "
                                    f"|step|/|gradient| on the flattest axis, late = last 10% of steps; 'slows down' "
                                    f"needs at least a 2x drop")
    o6 = o6_verdict(ratio["rmsprop"], ratio["adagrad"], progress["rmsprop"], progress["adagrad"], b, ctx.seed)
    return o5, o6


def o6_verdict(ratio_rms, ratio_ada, progress_rms, progress_ada, slows: Claim, seed: int = 0) -> Claim:
    """O6 from per-run effective-lr ratios (log10 late/early) and late progress: supported only when
    Adagrad's slowdown is established in this run (`slows`, O5's 'slows down' part) and RMSProp keeps a
    higher effective-lr ratio; inconclusive, with the reason, when there is no slowdown to remove."""
    o6 = verdict("O6", CLAIMS["O6"], np.asarray(ratio_rms) - np.asarray(ratio_ada), direction="greater",
                 label="log10 effective-lr late/early, rmsprop - adagrad (paired)", seed=seed)
    p_rms, p_ada = _nanmedian(progress_rms), _nanmedian(progress_ada)
    evidence = (f"{o6.evidence}; medians: rmsprop {_nanmedian(ratio_rms):.3g}, adagrad "
                f"{_nanmedian(ratio_ada):.3g}; late progress (decades of decrease of f-f* over the second half) "
                f"rmsprop {p_rms:.3g} vs adagrad {p_ada:.3g}")
    if slows.verdict != "supported":
        ahead = "; adagrad's late progress beats rmsprop's" if p_ada > p_rms else ""
        return dataclasses.replace(o6, verdict="inconclusive", evidence=(
            f"adagrad's slowdown is not established in this run (O5 'slows down' {slows.verdict}), so there is "
            f"no slowdown for rmsprop to remove{ahead}; {evidence}"))
    return dataclasses.replace(o6, evidence=evidence)


def _adam_steps(grads: np.ndarray, lr: float, beta1: float, beta2: float, eps: float, correct: bool) -> np.ndarray:
    """Adam's updates rebuilt from its gradients as momentum (an EMA of g) over RMSProp (an EMA of g^2)."""
    m = np.zeros_like(grads[0])
    v = np.zeros_like(grads[0])
    out = np.empty_like(grads)
    for t, g in enumerate(grads, start=1):  # a loop over steps, vectorized over runs and coordinates
        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g * g
        if correct:
            out[t - 1] = -lr / (1 - beta1 ** t) * m / (np.sqrt(v) / math.sqrt(1 - beta2 ** t) + eps)
        else:
            out[t - 1] = -lr * m / (np.sqrt(v) + eps)
    return out


def claim_o7(runner: Runner, home: str) -> Claim:
    ctx = runner.ctx
    sr = runner.ensure(home, ["adam"])
    adam = sr.runs["adam"]
    if "adam (no bias correction)" not in sr.runs:
        run = runner.run_one(sr, "adam", hyper={"bias_correction": False}, label="adam (no bias correction)",
                             lr=adam.lr)
        sr.runs[run.name] = run
        runner.record(sr, run)
    raw = sr.runs["adam (no bias correction)"]
    if adam.traj.grads is None or raw.traj.grads is None:
        return _without_steps("O7", sr)
    b1, b2 = 0.9, 0.999
    eps = 1e-8
    worst, checks = 0.0, 0
    first = {}
    for run, correct in ((adam, True), (raw, False)):
        g1 = np.abs(run.traj.grads[0])
        step1 = np.abs(run.traj.path[1] - run.traj.path[0])
        analytic = run.lr * g1 / (g1 + eps) if correct else run.lr * (1 - b1) * g1 / (math.sqrt(1 - b2) * g1 + eps)
        ok = g1 > 0
        with np.errstate(all="ignore"):
            worst = max(worst, float(np.nanmax(np.abs(step1[ok] / analytic[ok] - 1), initial=0.0)))
        checks += int(ok.sum())
        first[correct] = step1[ok] / run.lr
        k = min(20, run.traj.steps)
        rebuilt = _adam_steps(run.traj.grads[:k], run.lr, b1, b2, eps, correct)
        actual = np.diff(run.traj.path[:k + 1], axis=0)
        scale = np.abs(run.traj.path[:k]) + np.abs(actual)
        with np.errstate(all="ignore"):
            err = np.abs(rebuilt - actual) / np.where(scale > 0, scale, 1.0)
        worst = max(worst, float(np.nanmax(err, initial=0.0)))
        checks += err.size
        label = "adam first step / lr (bias-corrected): |g|/(|g|+eps) ~ 1" if correct else \
            "adam first step / lr (no correction): (1-beta1)/sqrt(1-beta2)"
        case = {"surface": sr.name, "reference": label}
        ctx.record.metric("measured", first[correct], case=case, section="analytic references")
        ctx.record.metric("analytic", 1.0 if correct else (1 - b1) / math.sqrt(1 - b2), case=case,
                          section="analytic references")
    c = exact_claim("O7", CLAIMS["O7"], worst, 1e-9, n=checks,
                    what="max relative error of Adam's steps vs momentum/RMSProp rebuild and first-step formulas")
    stt = [_nanmedian(r.metrics.steps_to_target) if r.metrics.reached.any() else math.nan for r in (adam, raw)]
    return dataclasses.replace(c, evidence=(
        f"{c.evidence}; first step / lr median {np.median(first[True]):.4g} corrected vs "
        f"{np.median(first[False]):.4g} uncorrected (zero-started m, v shrink m by 1-beta1 and v by 1-beta2); "
        f"lr={adam.lr:g} for both; steps to target {stt[0]:.3g} corrected vs {stt[1]:.3g} uncorrected; "
        f"reached {adam.metrics.reached.mean():.0%} vs {raw.metrics.reached.mean():.0%}"))


def adagrad_reference(ctx: RunContext, lr: float, steps=(1, 10, 100, 1000)) -> None:
    """Adagrad's step under a constant gradient: measured against lr / sqrt(t)."""
    opt = get_optimizer("adagrad", lr=lr)
    p = np.zeros(1)
    g = np.ones(1)
    state = opt.init([p])
    prev = 0.0
    for t in range(1, max(steps) + 1):
        state = opt.step([p], [g], state)
        if t in steps:
            case = {"surface": "constant gradient", "reference": f"adagrad step at t={t}: lr/sqrt(t)"}
            ctx.record.metric("measured", abs(p[0] - prev), case=case, section="analytic references")
            ctx.record.metric("analytic", lr / math.sqrt(t), case=case, section="analytic references")
        prev = p[0]


def relu_symmetry_errors(net, params: list, X: np.ndarray, y, loss_fn, rng: np.random.Generator) -> dict:
    """max |f(x; T theta) - f(x; theta)| / max |f| for rescalings and permutations T of the hidden units,
    and the largest change of the loss; f is the net's output on X for every replica."""
    out0, _ = net.forward(params, X, train=True)
    loss0, _ = loss_fn(out0, y)
    scale = float(np.max(np.abs(out0)))
    n_hidden = net.n_hidden
    results = {}

    def transformed(kind: str):
        p = [a.copy() for a in params]
        layers = net.split(p)
        for l in range(n_hidden):
            W, b, W_next = layers[l]["W"], layers[l].get("b"), layers[l + 1]["W"]
            S, width = W.shape[0], W.shape[-1]
            if kind in ("rescale x10", "rescale per unit", "both"):
                c = np.full((S, 1, width), 10.0) if kind == "rescale x10" else \
                    np.exp(rng.uniform(np.log(0.1), np.log(10.0), (S, 1, width)))
                W *= c
                if b is not None:
                    b *= c
                W_next /= c.transpose(0, 2, 1)
            if kind in ("permute", "both"):
                perm = rng.permutation(width)
                W[...] = W[..., perm]
                if b is not None:
                    b[...] = b[..., perm]
                W_next[...] = W_next[:, perm, :]
        return p

    for kind in ("rescale x10", "rescale per unit", "permute", "both"):
        p = transformed(kind)
        out, _ = net.forward(p, X, train=True)
        loss, _ = loss_fn(out, y)
        results[kind] = (float(np.max(np.abs(out - out0))) / scale, float(np.max(np.abs(loss - loss0))))
    return results


def claim_o8(runner: Runner) -> Claim:
    from dlbench.nn.losses import get_loss
    from dlbench.nn.mlp import MLP

    ctx = runner.ctx
    surf = runner.surface("mlp").surface
    X = np.ascontiguousarray(surf.data.X_train, dtype=np.float64)
    y = surf.data.y_train
    loss_fn = get_loss(surf.loss_name)
    errors = relu_symmetry_errors(surf.net, surf.net.init(ctx.seed_list), X, y, loss_fn, ctx.rng("O8"))
    section = "O8 equal-loss families"
    widths = "-".join(map(str, surf.net.widths))
    for kind, (e_out, e_loss) in errors.items():
        case = {"net": f"{widths} relu", "transform": kind}
        ctx.record.metric("max |d output| / max |output|", e_out, case=case, better="lower", section=section)
        ctx.record.metric("max |d loss|", e_loss, case=case, better="lower", section=section)
    # control: tanh is not positively homogeneous, so rescaling changes its outputs
    tanh_net = MLP(dataclasses.replace(surf.net.spec, activation="tanh"))
    ctrl = relu_symmetry_errors(tanh_net, tanh_net.init(ctx.seed_list), X, y, loss_fn, ctx.rng("O8", "tanh"))
    for kind in ("rescale x10", "permute"):
        case = {"net": f"{widths} tanh (control)", "transform": kind}
        ctx.record.metric("max |d output| / max |output|", ctrl[kind][0], case=case, better="lower", section=section)
        ctx.record.metric("max |d loss|", ctrl[kind][1], case=case, better="lower", section=section)
    worst = max(max(v) for v in errors.values())
    c = exact_claim("O8", CLAIMS["O8"], worst, 1e-12, n=len(errors) * len(ctx.seed_list),
                    what="max relative change of outputs and loss")
    return dataclasses.replace(c, evidence=(
        f"{c.evidence}: relu {widths} net, {len(ctx.seed_list)} seeds, float64, transforms: layer x10 and next "
        f"/10, per-unit scales in [0.1, 10], hidden-unit permutation, both; control tanh net rescaled x10 "
        f"changes outputs by {ctrl['rescale x10'][0]:.2g} (permutation {ctrl['permute'][0]:.1g})"))


def claim_o9(runner: Runner) -> Claim:
    ctx = runner.ctx
    sr = runner.ensure("mlp", runner.cfg.optimizers)
    section = "O9 spread over seeds"
    best_name, best_med, rel = None, math.inf, {}
    for name, run in sr.runs.items():
        m = run.metrics
        final = m.final_loss[np.isfinite(m.final_loss)]
        if final.size < 2:
            continue
        progress = float(np.median(run.traj.loss[0]) - np.median(final))
        if progress <= 0:
            continue

        def spread(a, axis=None):
            q1, q3 = np.percentile(a, [25, 75], axis=axis)
            return (q3 - q1) / progress

        value = float(spread(final))
        low, high = bootstrap_ci(final, stat=spread, seed=ctx.seed)
        rel[name] = (value, low, high, final.size, progress)
        case = {"surface": sr.name, "optimizer": name, "lr": run.lr}
        ctx.record.metric("relative spread", value, case=case, better="lower", section=section)
        ctx.record.metric("final loss IQR", float(np.subtract(*np.percentile(final, [75, 25]))), case=case,
                          better="lower", section=section)
        med = float(np.median(final))
        if med < best_med:
            best_name, best_med = name, med
    if best_name is None:
        return not_measured("O9", CLAIMS["O9"], note="no optimizer made progress on the mlp surface without diverging")
    value, low, high, n, progress = rel[best_name]
    others = ", ".join(f"{k} {v[0]:.2g}" for k, v in rel.items())
    return claim_from_interval("O9", CLAIMS["O9"], value, low, high, n=n, method="bootstrap", direction="less",
                               null=0.1, label=f"IQR of final training loss over seeds / loss decrease, {best_name} "
                               f"(lowest median final loss)",
                               note=f"'near equally good' = below 0.1; all optimizers: {others}")


# --------------------------------------------------------------------------- the experiment


def run(opts: Options, ctx: RunContext) -> None:
    cfg = configure(opts, ctx.quick)
    runner = Runner(ctx, cfg, opts.surface)
    main = runner.ensure(opts.surface, cfg.optimizers)
    runner.record_paths(main)
    runner.record_timings(main)
    adagrad_reference(ctx, main.runs["adagrad"].lr if "adagrad" in main.runs else 0.01)

    ctx.claim(claim_o1(ctx))
    wanted = {cid: (opts.surface if opts.surface in homes else homes[0])
              for cid, homes in CLAIM_SURFACES.items() if opts.all_claims or opts.surface in homes}
    for cid in CLAIM_SURFACES:
        if cid not in wanted:
            ctx.claim(not_run(cid, opts.surface))
            continue
        home = wanted[cid]
        if cid == "O2":
            ctx.claim(claim_o2(runner))
        elif cid == "O3":
            ctx.claim(claim_o3(runner))
        elif cid == "O4":
            ctx.claim(claim_o4(runner, home))
        elif cid == "O5":
            o5, o6 = claims_o5_o6(runner, home)
            ctx.claim(o5)
            ctx.claim(o6)
        elif cid == "O6":
            continue  # measured with O5
        elif cid == "O7":
            ctx.claim(claim_o7(runner, home))
        elif cid == "O8":
            ctx.claim(claim_o8(runner))
        elif cid == "O9":
            ctx.claim(claim_o9(runner))


def plot(results, path) -> None:
    """Trajectories over the surface's contours (2-d surfaces), else the median loss curves."""
    from dlbench.experiments.optimizers.figure import draw

    draw(results, path)
