"""The main run on --surface: every optimizer's lr search and evaluation, their tables, and the timings.

Each optimizer runs every lr of the grid from P tuning starts in one engine call (only final loss,
divergence and steps to target are reduced there); the chosen lr is run from P evaluation starts shared
by every optimizer, reduced fully as it streams: final loss, steps to target, divergence, largest step,
oscillation on the steepest axis, and the loss curve at a fixed resolution (every k-th step and the
last). On a quadratic the measured contraction rates stand beside the analytic ones.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np

from dlbench.experiments.base import RunContext
from dlbench.experiments.optimizers import Config, configure
from dlbench.experiments.optimizers.trajectories import (
    CURVE_POINTS, LEAN, ModelSurface, Track, build_optimizer, contraction_rate, curvatures, engine_bytes, gd_rate,
    make_surface, measure, momentum_rate, optimal_gd, optimal_heavy_ball, run_trajectories, sample_starts,
    search_lr,
)

#: (steps, starts, tuning starts) when not given, by (--quick, mlp surface).
SIZES = {(False, False): (500, 64, 64), (False, True): (200, 16, 8), (True, False): (150, 16, 16),
         (True, True): (60, 8, 4)}
#: Steps on the saddle (unbounded below): an escape takes tens of steps, and 500 steps at lr 1 would grow
#: the unstable coordinate by 3^500 and overflow.
SADDLE_STEPS = {False: 100, True: 60}
#: Default target loss above the surface's minimum; the saddle's target is an escape (loss <= -1).
TARGET_GAP, SADDLE_TARGET, MLP_TARGET = 1e-3, -1.0, 0.05
#: Parameters of one timed optimizer update, and the timing settings of the default (not --quick) run.
UPDATE_PARAMS = 2**16
#: Runs whose paths --plot draws.
PATH_STARTS = 8


@dataclass
class Setup:
    """The main run's surface, its size and target, and its starts."""

    surface: object
    steps: int
    starts: int
    tune: int
    target: float


def setup(opts, cfg: Config, quick: bool) -> Setup:
    """The surface with --kappa bound, the steps and starts (options or SIZES), and the target loss."""
    hyper = {"kappa": cfg.kappa} if cfg.kappa is not None else {}
    surf = make_surface(opts.surface, **hyper)
    model = isinstance(surf, ModelSurface)
    steps, P, P_tune = SIZES[(quick, model)]
    if opts.surface == "saddle":
        steps = SADDLE_STEPS[quick]
    steps = cfg.steps or steps
    if cfg.starts:
        P = P_tune = cfg.starts
    if cfg.target is not None:
        target = cfg.target
    elif opts.surface == "saddle":
        target = SADDLE_TARGET
    elif model:
        target = MLP_TARGET
    else:
        target = surf.min_value + TARGET_GAP
    return Setup(surf, int(steps), int(P), int(P_tune), float(target))


def case_of(opts, cfg: Config, s: Setup, optimizer: str) -> dict:
    case = {"surface": opts.surface, "optimizer": optimizer, "target": s.target}
    if cfg.noise:
        case["noise"] = cfg.noise
    if cfg.clip_norm is not None:
        case["clip_norm"] = cfg.clip_norm
    if cfg.clip_value is not None:
        case["clip_value"] = cfg.clip_value
    return case


def engine_options(ctx: RunContext, cfg: Config, surface_name: str, purpose: str, optimizer: str) -> dict:
    """Noise, clipping and the noise generator of one engine call (the generator's key names the call)."""
    return {"noise": cfg.noise, "rng": ctx.rng("noise", purpose, surface_name, optimizer),
            "clip_norm": cfg.clip_norm, "clip_value": cfg.clip_value}


def eval_track(s: Setup, path_runs: int = 0) -> Track:
    return Track(target=s.target, shape=True, curve=CURVE_POINTS, path_runs=path_runs)


def main_run(opts, ctx: RunContext) -> None:
    """Every optimizer on --surface: lr search on the tuning starts, evaluation on the shared starts."""
    cfg = configure(opts)
    s = setup(opts, cfg, ctx.quick)
    starts = sample_starts(s.surface, ctx.rng("starts", opts.surface), s.starts)
    tune = sample_starts(s.surface, ctx.rng("tune", opts.surface), s.tune)
    steep_min = float(s.surface.minima[0][s.surface.steep_axis]) if len(s.surface.minima) else 0.0
    chosen = {}
    with ctx.progress.task(f"optimizers on {opts.surface}", total=len(cfg.optimizers)) as advance:
        for name in cfg.optimizers:
            case = case_of(opts, cfg, s, name)
            search = None
            if cfg.lr is None:
                search = search_lr(s.surface, name, tune, cfg.grid, s.steps, s.target,
                                   **engine_options(ctx, cfg, opts.surface, "tune", name))
                lr = search.best
            else:
                lr = cfg.lr
            traj = run_trajectories(s.surface, build_optimizer(name, lr), starts, s.steps, track=eval_track(s),
                                    **engine_options(ctx, cfg, opts.surface, "eval", name))
            chosen[name] = (lr, traj)
            record_run(ctx, case, lr, traj, measure(traj, s.target, steep_min), search)
            advance()
    if opts.surface in ("canyon", "quadratic"):
        references(ctx, opts.surface, s, starts, chosen)


def record_run(ctx: RunContext, case: dict, lr: float, traj, m, search) -> None:
    rec = ctx.record
    rec.metric("lr", lr, case=case, section="trajectories")
    rec.metric("final loss", m.final_loss, case=case, better="lower", section="trajectories")
    rec.metric("steps to target", m.steps_to_target, case=case, unit="steps", better="lower", section="trajectories")
    rec.metric("reached", m.reached, case=case, unit="bool", better="higher", section="trajectories")
    rec.metric("diverged", m.diverged, case=case, unit="bool", better="lower", section="trajectories")
    curve = _nanmedian(np.where(np.isfinite(traj.loss_curve), traj.loss_curve, np.nan), axis=1)
    rec.curve("loss", curve, steps=traj.curve_steps, case=case, section="trajectories")
    rec.metric("largest step", m.largest_step, case=case, better="none", section="shape")
    rec.metric("oscillation", m.oscillation, case=case, better="lower", section="shape")
    if search is not None:
        # one row per optimizer: the median final loss over the grid (sample = the lr's index in the grid)
        med = np.where(np.isfinite(search.median_final), search.median_final, np.nan)
        rec.curve("median final loss over the lr grid", med, steps=np.arange(len(search.lrs)), case=case,
                  section="lr_search")
        rec.metric("best lr", search.best, case=case, section="lr_search")
        rec.metric("best at grid edge", float(search.best in (search.lrs[0], search.lrs[-1]) and len(search.lrs) > 1),
                   case=case, unit="bool", better="lower", section="lr_search")


def _rate(traj, fmin: float) -> np.ndarray:
    """Per-run contraction of the distance to the minimum per step, fitted on the loss curve's sqrt(f - f*)."""
    with np.errstate(all="ignore"):
        return contraction_rate(np.sqrt(np.maximum(traj.loss_curve - fmin, 0.0)), steps=traj.curve_steps)


def references(ctx: RunContext, surface_name: str, s: Setup, starts: np.ndarray, chosen: dict) -> None:
    """Measured contraction rates beside the analytic ones: at each optimizer's chosen lr, and plain descent
    at 2/(mu+L) and the heavy ball at Polyak's best parameters."""
    surf = s.surface
    lam = curvatures(surf)
    mu, L = float(lam.min()), float(lam.max())
    rows = []
    for name, beta, nesterov in (("sgd", 0.0, False), ("momentum", 0.9, False), ("nesterov", 0.9, True)):
        if name in chosen:
            lr, traj = chosen[name]
            analytic = gd_rate(lr, lam) if not beta else momentum_rate(lr, beta, lam, nesterov=nesterov)
            rows.append((f"{name} rate at its lr", traj, analytic))
    lr_gd, rate_gd = optimal_gd(mu, L)
    lr_hb, beta_hb, rate_hb = optimal_heavy_ball(mu, L)
    track = Track(shape=False, curve=CURVE_POINTS)
    if math.isfinite(lr_gd) and math.isfinite(lr_hb):
        rows.append(("gd at lr=2/(mu+L): (kappa-1)/(kappa+1)",
                     run_trajectories(surf, build_optimizer("sgd", lr_gd), starts, s.steps, track=track), rate_gd))
        rows.append(("heavy ball at its best: (sqrt(kappa)-1)/(sqrt(kappa)+1)",
                     run_trajectories(surf, build_optimizer("sgd", lr_hb, momentum=beta_hb), starts, s.steps,
                                      track=track), rate_hb))
    for label, traj, analytic in rows:
        case = {"surface": surface_name, "reference": label}
        ctx.record.metric("measured", _rate(traj, surf.min_value), case=case, section="references")
        ctx.record.metric("analytic", analytic, case=case, section="references")


def timings(opts, ctx: RunContext) -> None:
    """Per optimizer: one update of 65,536 float32 parameters, and one trajectory step of all P starts."""
    from dlbench.nn.optim import get_optimizer

    cfg = configure(opts)
    s = setup(opts, cfg, ctx.quick)
    rng = ctx.rng("timing")
    g = rng.standard_normal(UPDATE_PARAMS).astype(np.float32)
    starts = sample_starts(s.surface, ctx.rng("starts", opts.surface), s.starts)
    for name in cfg.optimizers:
        p = rng.standard_normal(UPDATE_PARAMS).astype(np.float32)
        opt = get_optimizer(name, lr=1e-3)
        state = opt.init([p])
        # the bytes one update moves per parameter are the optimizer's own fact (its state, read and written)
        t = ctx.time("update", opt.step, [p], [g], state, items=UPDATE_PARAMS,
                     bytes=opt.bytes_per_param(np.float32) * UPDATE_PARAMS,
                     case={"optimizer": name, "params": UPDATE_PARAMS})
        ctx.record.metric("update ns/param", t.median / UPDATE_PARAMS * 1e9, case=case_of(opts, cfg, s, name),
                          unit="ns", better="none", section="shape", from_timing=True)
        t = ctx.time("trajectory step", _trajectory_step(s.surface, build_optimizer(name, 1e-3), starts),
                     items=starts.shape[1], case={"surface": opts.surface, "optimizer": name,
                                                  "points": starts.shape[1]})


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


def paths(opts, seed: int, lrs: dict, quick: bool) -> dict:
    """The first PATH_STARTS evaluation paths of each optimizer at its recorded lr, decimated to the loss
    curve's steps: the same runs as the main run's (same starts, same noise), rerun for a figure. Returns
    {optimizer: (steps, path (C, d, n))}."""
    cfg = configure(opts)
    s = setup(opts, cfg, quick)
    ctx = RunContext(seed=seed, quick=quick)
    starts = sample_starts(s.surface, ctx.rng("starts", opts.surface), s.starts)
    out = {}
    for name, lr in lrs.items():
        traj = run_trajectories(s.surface, build_optimizer(name, lr), starts, s.steps,
                                track=eval_track(s, path_runs=PATH_STARTS),
                                **engine_options(ctx, cfg, opts.surface, "eval", name))
        out[name] = (traj.curve_steps, traj.path)
    return out


# --------------------------------------------------------------------------- memory


def memory(opts, cfg: Config, seeds: int) -> int:
    """Peak bytes of the main run: the larger of its lr search and its evaluation, from the options alone."""
    quick = False  # the default sizes are the larger; --quick only lowers them
    hyper = {"kappa": cfg.kappa} if cfg.kappa is not None else {}
    model = opts.surface == "mlp"
    steps, P, P_tune = SIZES[(quick, model)]
    steps = cfg.steps or steps
    if cfg.starts:
        P = P_tune = cfg.starts
    d = _dim(opts.surface, hyper)
    state = 4
    model_bytes = 0
    if model:
        model_bytes = 8 * 64 * 16 * 6  # activations of one replica (64 samples, width 16, six arrays)
    L = 1 if cfg.lr is not None else len(cfg.grid)
    search = engine_bytes(d, L * P_tune, steps, LEAN, state, model_bytes * L * P_tune)
    evaluation = engine_bytes(d, P, steps, Track(target=0.0, curve=CURVE_POINTS), state, model_bytes * P)
    return int(max(search, evaluation) + 4 * d * max(P, P_tune) * 8)


def _dim(surface: str, hyper: dict) -> int:
    if surface == "mlp":
        return 354
    if surface == "quadratic":
        return 10
    return 2


def claims_memory(measured: list[str], seeds: int) -> int:
    """Peak bytes of the largest claim part: each is of fixed size (its grid and replicas scale with --seeds)."""
    per_claim = {"O0": 64 * 2**20, "O10": 96 * 2**20, "O1": 48 * 2**20, "O9": 32 * 2**20, "O5": 24 * 2**20,
                 "O6": 24 * 2**20, "O7": 16 * 2**20}
    scale = max(1.0, seeds / 6)
    return int(max([per_claim.get(c, 8 * 2**20) for c in measured] + [0]) * scale)


def _nanmedian(x, axis=None):
    """Median ignoring NaN; NaN (and no warning) where every value is NaN."""
    x = np.asarray(x, dtype=float)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmedian(x, axis=axis)

