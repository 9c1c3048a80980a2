"""The streaming trajectory engine: throughput, its advantage over a per-point loop, and memory against --steps.

    python benchmarks/bench_trajectories.py [--quick]

(a) Adam (lr 1e-3) on a 2-d surface (rosenbrock, canyon) from P = 1,000 starts, all as the columns of one
    (2, P) array: run_trajectories of dlbench.experiments.optimizers.trajectories, in point-steps per second
    (target >= 5.5e7). "lean" reduces what the lr search needs (final loss, divergence, steps to target);
    "full" what an evaluation run keeps (also the largest step, the oscillation and the loss curve at a
    fixed resolution); "loop" is the bare update loop (gradient, update, a copy of the
    positions) with no reduction, timed interleaved with the others: the ratios say what streaming costs.
(b) The same engine called once per start on a (2, 1) array, a Python loop over points (measured on a
    subset of the starts): the vectorized engine's advantage (target >= 300x).
(c) Peak memory (max RSS) of `dlbench optimizers --surface canyon --no-save` at --steps 1,000, 100,000 and
    1,000,000, each in a process of its own, and its throughput (point-steps of the main run's engine calls
    per second of their loops): the peaks must lie within 1.3x of each other (--quick: 1,000 / 10,000 /
    100,000 steps). The 1,000,000-step run takes minutes.
Columns: median, interquartile range of the samples, minor page faults per call, throughput.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from dlbench.env import blas_info
from dlbench.experiments.optimizers.trajectories import LEAN, Track, run_trajectories, sample_starts
from dlbench.nn.optim import get_optimizer
from dlbench.surfaces import get_surface
from dlbench.timing import time_kernel

TARGET_RATE, TARGET_RATIO, TARGET_MEMORY = 5.5e7, 300.0, 1.3
FULL = Track(target=1e-3, shape=True)  # what the main run's evaluation keeps (and the loss curve)


class EngineCalls:
    """Calls run_trajectories and keeps the wall time of each call's update loop (Trajectories.seconds)."""

    def __init__(self, surface, Z, steps, track, per_point: bool = False):
        self.surface, self.Z, self.steps, self.track, self.per_point = surface, Z, steps, track, per_point
        self.loop_seconds: list[float] = []

    def __call__(self):
        cols = [self.Z[:, j:j + 1] for j in range(self.Z.shape[1])] if self.per_point else [self.Z]
        loop = 0.0
        for Z in cols:  # per_point: the baseline, one engine call per start
            loop += run_trajectories(self.surface, get_optimizer("adam", lr=1e-3), Z, self.steps,
                                     track=self.track).seconds
        self.loop_seconds.append(loop)


def bare_loop(surface, Z, steps):
    """The update loop with nothing reduced: gradient, Adam's update, a copy of the positions."""
    def run():
        Zc = Z.copy()
        G = np.empty_like(Zc)
        keep = np.empty_like(Zc)
        opt = get_optimizer("adam", lr=1e-3)
        state = opt.init([Zc])
        for _ in range(steps):
            surface.grad(Zc, out=G)
            state = opt.step([Zc], [G], state)
            np.copyto(keep, Zc)

    return run


def peak_memory(steps: int) -> tuple[float, float, float]:
    """(max RSS in bytes, wall seconds, point-steps/s) of `dlbench optimizers --surface canyon --no-save` at
    `steps`, in a process of its own (RUSAGE_CHILDREN of a wrapper holds only that run's peak)."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "run.parquet"
        wrapper = ("import resource, subprocess, sys, time\n"
                   "t0 = time.perf_counter()\n"
                   f"p = subprocess.run([sys.executable, '-m', 'dlbench', 'optimizers', '--surface', 'canyon', "
                   f"'--steps', '{steps}', '--out', r'{out}', '-q'], stdout=subprocess.DEVNULL, "
                   "stderr=subprocess.PIPE, text=True)\n"
                   "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024, time.perf_counter() - t0, "
                   "p.returncode)\n")
        proc = subprocess.run([sys.executable, "-c", wrapper], capture_output=True, text=True)
        rss, wall, code = proc.stdout.split()
        if int(code) != 0:
            raise SystemExit(f"dlbench optimizers --steps {steps} failed: {proc.stderr.strip()[-300:]}")
        from dlbench.results import read_results

        rows = read_results(out).rows
        rate = rows[(rows["metric"] == "point-steps/s") & (rows["section"] == "shape")]["value"]
    return float(rss), float(wall), float(np.median(rate))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer samples; memory at 1e3 / 1e4 / 1e5 steps")
    args = ap.parse_args()
    cfg = {"min_time": 0.05, "samples": 5 if args.quick else 9, "warmup": 1}
    P, steps, loop_points = 1000, 200, 20 if args.quick else 50
    info = blas_info()
    print(f"# {platform.processor() or platform.machine()} · numpy {np.__version__} · {info.get('blas', '?')} "
          f"({info.get('blas_arch', '?')}) · {os.cpu_count()} cpus · load {os.getloadavg()[0]:.1f}")
    print(f"# Adam lr=1e-3, P={P} starts, {steps} steps per engine call, float64, (2, P) layout\n")
    header = f"{'surface':<11}{'kernel':<32}{'median':>10}{'IQR':>21}{'faults':>8}{'point-steps/s':>15}"
    print(header)
    print("-" * len(header))
    summary = []
    for name in ("rosenbrock", "canyon"):
        surface = get_surface(name)
        Z = sample_starts(surface, np.random.default_rng(0), P)
        lean, full = EngineCalls(surface, Z, steps, LEAN), EngineCalls(surface, Z, steps, FULL)
        loop = bare_loop(surface, Z, steps)
        rates = {"lean": [], "full": [], "loop": []}
        for _ in range(3):  # interleaved: a busy spell of the machine hits all three alike
            for key, fn in (("loop", loop), ("lean", lean), ("full", full)):
                rates[key].append(time_kernel(fn, items=P * steps, **cfg).items_per_s)
        for key, fn in (("lean engine call", lean), ("full engine call", full), ("bare loop", loop)):
            t = time_kernel(fn, items=P * steps, **cfg)
            q1, q3 = np.percentile(t.samples, [25, 75])
            print(f"{name:<11}{key:<32}{fmt(t.median):>10}{fmt(q1) + ' - ' + fmt(q3):>21}"
                  f"{t.minor_faults:>8.0f}{t.items_per_s:>15.3g}")
        per = EngineCalls(surface, Z[:, :loop_points], steps, LEAN, per_point=True)
        t_per = time_kernel(per, items=loop_points * steps, **cfg)
        print(f"{name:<11}{f'per-point calls ({loop_points} pts)':<32}{fmt(t_per.median):>10}{'':>21}"
              f"{t_per.minor_faults:>8.0f}{t_per.items_per_s:>15.3g}")
        med = {k: float(np.median(v)) for k, v in rates.items()}
        summary.append((name, med, med["lean"] / t_per.items_per_s))
    print()
    for name, med, ratio in summary:
        print(f"{name}: lean {med['lean']:.3g} point-steps/s ({_vs(med['lean'], TARGET_RATE)} {TARGET_RATE:.1e}), "
              f"full {med['full']:.3g} ({_vs(med['full'], TARGET_RATE)}); bare loop {med['loop']:.3g}: streaming "
              f"keeps {med['lean'] / med['loop']:.0%} (lean) and {med['full'] / med['loop']:.0%} (full) of it; "
              f"{ratio:.0f}x a per-point loop ({_vs(ratio, TARGET_RATIO)} {TARGET_RATIO:.0f}x)")
    sizes = (1_000, 10_000, 100_000) if args.quick else (1_000, 100_000, 1_000_000)
    print(f"\n# dlbench optimizers --surface canyon at --steps {', '.join(f'{s:,}' for s in sizes)} "
          f"(load {os.getloadavg()[0]:.1f})")
    peaks = []
    for s in sizes:
        rss, wall, rate = peak_memory(s)
        peaks.append(rss)
        print(f"--steps {s:>9,}: peak {rss / 2**20:7.1f} MiB, {wall:7.1f} s wall, main run {rate:.3g} point-steps/s")
    spread = max(peaks) / min(peaks)
    print(json.dumps({"peak_ratio": round(spread, 3)}), f"({_vs(-spread, -TARGET_MEMORY)} {TARGET_MEMORY}x)")


def _vs(value: float, target: float) -> str:
    return "meets" if value >= target else "MISSES"


def fmt(seconds: float) -> str:
    for scale, unit in ((1, "s"), (1e-3, "ms"), (1e-6, "µs")):
        if seconds >= scale:
            return f"{seconds / scale:.3g} {unit}"
    return f"{seconds * 1e9:.3g} ns"


if __name__ == "__main__":
    main()
