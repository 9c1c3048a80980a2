"""Vectorized optimizer trajectories versus a per-point Python loop, and the default command's wall time.

    python benchmarks/bench_trajectories.py [--quick]

(a) Adam (lr 1e-3) on a 2-d surface (rosenbrock, canyon) from P = 1,000 starts: the trajectory engine
    of dlbench.experiments._trajectories running all starts as the columns of one (2, P) array, in
    point-steps per second (target >= 5e7). "engine" is run_trajectories as the experiment calls it
    (gradient, update, copy of the positions into the stored path); "step" times one gradient + update of
    all P points alone.
(b) The same engine called once per start on a (2, 1) array, a Python loop over points (measured on a
    subset of the starts): the vectorized engine's advantage (target >= 300x).
(c) Wall time of the default `dlbench optimizers --surface canyon` (run once, as a subprocess, output
    discarded; it includes the interpreter start, imports, the bandwidth probe and the tables).
Columns: median, interquartile range of the samples, minor page faults per call, throughput.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from dlbench.env import blas_info
from dlbench.experiments._trajectories import run_trajectories, sample_starts
from dlbench.nn.optim import get_optimizer
from dlbench.surfaces import get_surface
from dlbench.timing import time_kernel

TARGET_RATE, TARGET_RATIO, TARGET_WALL = 5e7, 300.0, 15.0


class EngineCalls:
    """Calls run_trajectories and keeps the wall time of each call's update loop (Trajectories.seconds)."""

    def __init__(self, surface, Z, steps, per_point: bool = False):
        self.surface, self.Z, self.steps, self.per_point = surface, Z, steps, per_point
        self.loop_seconds: list[float] = []

    def __call__(self):
        cols = [self.Z[:, j:j + 1] for j in range(self.Z.shape[1])] if self.per_point else [self.Z]
        loop = 0.0
        for Z in cols:  # per_point: the baseline, one engine call per start
            loop += run_trajectories(self.surface, get_optimizer("adam", lr=1e-3), Z, self.steps).seconds
        self.loop_seconds.append(loop)


def one_step(surface, Z):
    Z = Z.copy()
    G = np.empty_like(Z)
    opt = get_optimizer("adam", lr=1e-3)
    state = opt.init([Z])

    def step():
        surface.grad(Z, out=G)
        opt.step([Z], [G], state)

    return step


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer samples, no CLI wall-time run")
    args = ap.parse_args()
    cfg = {"min_time": 0.05, "samples": 5 if args.quick else 9, "warmup": 1}
    P, steps, loop_points = 1000, 200, 20 if args.quick else 50
    info = blas_info()
    print(f"# {platform.processor() or platform.machine()} · numpy {np.__version__} · {info.get('blas', '?')} "
          f"({info.get('blas_arch', '?')}) · {os.cpu_count()} cpus · load {os.getloadavg()[0]:.1f}")
    print(f"# Adam lr=1e-3, P={P} starts, {steps} steps per engine call, float64, (2, P) layout")
    print("# 'loop' = the update loop alone (gradient, update, path copy); 'call' = the whole engine call,"
          " which then evaluates f along the path and measures every step\n")
    header = f"{'surface':<11}{'kernel':<30}{'median':>10}{'IQR':>21}{'faults':>8}{'point-steps/s':>15}"
    print(header)
    print("-" * len(header))
    summary = []
    for name in ("rosenbrock", "canyon"):
        surface = get_surface(name)
        Z = sample_starts(surface, np.random.default_rng(0), P)
        vec = EngineCalls(surface, Z, steps)
        t_vec = time_kernel(vec, items=P * steps, **cfg)
        t_step = time_kernel(one_step(surface, Z), items=P, **cfg)
        per = EngineCalls(surface, Z[:, :loop_points], steps, per_point=True)
        t_per = time_kernel(per, items=loop_points * steps, **cfg)
        vec_loop = P * steps / np.median(vec.loop_seconds)
        per_loop = loop_points * steps / np.median(per.loop_seconds)
        for label, t in (("engine call, P at once", t_vec), ("one step (grad + update)", t_step),
                         (f"per-point calls ({loop_points} pts)", t_per)):
            q1, q3 = np.percentile(t.samples, [25, 75])
            print(f"{name:<11}{label:<30}{fmt(t.median):>10}{fmt(q1) + ' - ' + fmt(q3):>21}"
                  f"{t.minor_faults:>8.0f}{t.items_per_s:>15.3g}")
        print(f"{name:<11}{'engine loop, P at once':<30}{'':>10}{'':>21}{'':>8}{vec_loop:>15.3g}")
        print(f"{name:<11}{'per-point loops':<30}{'':>10}{'':>21}{'':>8}{per_loop:>15.3g}")
        summary.append((name, vec_loop, t_vec.items_per_s, vec_loop / per_loop, t_vec.items_per_s / t_per.items_per_s))
    print()
    for name, loop_rate, call_rate, loop_ratio, call_ratio in summary:
        print(f"{name}: update loop {loop_rate:.3g} point-steps/s ({_vs(loop_rate, TARGET_RATE)} {TARGET_RATE:.0e}); "
              f"whole call {call_rate:.3g}; vs per-point loop {loop_ratio:.0f}x loop-only "
              f"({_vs(loop_ratio, TARGET_RATIO)} {TARGET_RATIO:.0f}x), {call_ratio:.0f}x whole calls")
    if not args.quick:
        root = Path(__file__).resolve().parents[1]
        t0 = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "dlbench", "optimizers", "--surface", "canyon", "--no-save"],
                              cwd=root, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        wall = time.perf_counter() - t0
        status = "ok" if proc.returncode == 0 else f"exit {proc.returncode}: {proc.stderr.strip()[-200:]}"
        print(f"dlbench optimizers --surface canyon: {wall:.2f} s wall ({status}; "
              f"{'meets' if wall < TARGET_WALL else 'ABOVE'} {TARGET_WALL:.0f} s)")


def _vs(value: float, target: float) -> str:
    return "meets" if value >= target else "BELOW"


def fmt(seconds: float) -> str:
    for scale, unit in ((1, "s"), (1e-3, "ms"), (1e-6, "µs")):
        if seconds >= scale:
            return f"{seconds / scale:.3g} {unit}"
    return f"{seconds * 1e9:.3g} ns"


if __name__ == "__main__":
    main()
