"""Optimizer kernels: vectorized trajectories on a surface, and one update over a large parameter.

    python benchmarks/bench_optim.py [--quick]

(a) Adam on Rosenbrock, P = 1,000 starting points in the (2, P) layout, gradient + update per step:
    point-steps/s, against the same kernels called point by point in a Python loop (targets: >= 5e7
    point-steps/s and >= 300x).
(b) One Adam update over 1e6 float32 parameters: time, GB/s counting 28 bytes per parameter (read p, g,
    m, v: 16; write p, m, v: 12), and the fraction of the machine's DRAM copy bandwidth (the working set,
    5 arrays of 4 MB, is larger than the cache); with and without the 64k-element blocking.
(c) torch.optim.Adam beside both, when torch is importable (foreach and fused implementations).
"""

from __future__ import annotations

import argparse
import platform
import sys

import numpy as np

from dlbench.nn import optim
from dlbench.nn.optim import get_optimizer
from dlbench.surfaces import get_surface
from dlbench.timing import DEFAULT, QUICK, bandwidth_fraction, copy_bandwidth, time_kernel

POINTS = 1000
PARAMS = 10**6
BYTES_PER_PARAM = 28


def rosenbrock_rows(cfg: dict, loop_points: int) -> list[dict]:
    surface = get_surface("rosenbrock")
    rng = np.random.default_rng(0)
    Z0 = rng.uniform(surface.start_low[:, None], surface.start_high[:, None], (2, POINTS))
    rows = []
    for dtype in (np.float64, np.float32):
        Z = Z0.astype(dtype)
        G = np.empty_like(Z)
        opt = get_optimizer("adam", lr=1e-3)
        state = opt.init([Z])

        def vectorized():
            surface.grad(Z, out=G)
            opt.step([Z], [G], state)

        t = time_kernel(vectorized, items=POINTS, **cfg)
        rows.append(dict(case=f"adam+grad rosenbrock, (2, {POINTS}) {np.dtype(dtype).name}", timing=t))

    # the same kernels, one (2, 1) point at a time
    Zs = [Z0[:, j:j + 1].copy() for j in range(loop_points)]
    Gs = [np.empty_like(z) for z in Zs]
    opt = get_optimizer("adam", lr=1e-3)
    states = [opt.init([z]) for z in Zs]

    def per_point():
        for j in range(loop_points):
            surface.grad(Zs[j], out=Gs[j])
            states[j] = opt.step([Zs[j]], [Gs[j]], states[j])

    t = time_kernel(per_point, items=loop_points, **cfg)
    rows.append(dict(case=f"same, Python loop over {loop_points} points, float64", timing=t))
    return rows


def torch_rosenbrock_row(torch, cfg: dict) -> dict:
    rng = np.random.default_rng(0)
    Z = torch.tensor(rng.uniform([[-2.0], [-1.0]], [[2.0], [3.0]], (2, POINTS)), requires_grad=True)
    opt = torch.optim.Adam([Z], lr=1e-3)

    def step():
        with torch.no_grad():
            x, y = Z[0], Z[1]
            r = y - x * x
            gy = 200.0 * r
            Z.grad = torch.stack([2.0 * (x - 1.0) - 2.0 * x * gy, gy])
        opt.step()

    return dict(case=f"torch.optim.Adam + grad rosenbrock, (2, {POINTS}) float64",
                timing=time_kernel(step, items=POINTS, **cfg))


def adam_rows(cfg: dict) -> list[dict]:
    rng = np.random.default_rng(1)
    p = rng.standard_normal(PARAMS).astype(np.float32)
    g = (rng.standard_normal(PARAMS) * 1e-3).astype(np.float32)
    opt = get_optimizer("adam", lr=1e-3)
    state = opt.init([p])
    rows = []
    for label, block in [("blocked 64k", optim.BLOCK), ("whole arrays", 10**12)]:
        saved, optim.BLOCK = optim.BLOCK, block
        try:
            t = time_kernel(opt.step, [p], [g], state, items=PARAMS, bytes=BYTES_PER_PARAM * PARAMS, **cfg)
        finally:
            optim.BLOCK = saved
        rows.append(dict(case=f"adam step, 1e6 float32, {label}", timing=t))
    return rows


def torch_adam_rows(torch, cfg: dict) -> list[dict]:
    rows = []
    gen = torch.Generator().manual_seed(1)
    default_threads = torch.get_num_threads()
    # one thread is the like-for-like peer of NumPy's single-threaded ufuncs; the default uses every core
    for threads in sorted({1, default_threads}):
        torch.set_num_threads(threads)
        try:
            for impl in ("foreach", "fused"):
                p = torch.randn(PARAMS, generator=gen, dtype=torch.float32, requires_grad=True)
                p.grad = torch.randn(PARAMS, generator=gen, dtype=torch.float32) * 1e-3
                try:
                    opt = torch.optim.Adam([p], lr=1e-3, **{impl: True})
                    opt.step()
                except (RuntimeError, TypeError) as err:  # fused may be unavailable on this build
                    print(f"torch Adam {impl}: skipped ({err})", file=sys.stderr)
                    continue
                t = time_kernel(opt.step, items=PARAMS, bytes=BYTES_PER_PARAM * PARAMS, **cfg)
                rows.append(dict(case=f"torch.optim.Adam {impl}, 1e6 float32, {threads} thread(s)", timing=t))
        finally:
            torch.set_num_threads(default_threads)
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="shorter samples and fewer of them")
    args = parser.parse_args(argv)
    cfg = dict(QUICK if args.quick else DEFAULT)
    try:
        import torch
    except ImportError:
        torch = None

    bw = copy_bandwidth(quick=args.quick)
    rows = rosenbrock_rows(cfg, loop_points=200 if args.quick else POINTS) + adam_rows(cfg)
    if torch is not None:  # after NumPy's rows: torch's idle worker threads spin for a while after each op
        rows += [torch_rosenbrock_row(torch, cfg)] + torch_adam_rows(torch, cfg)

    print(f"numpy {np.__version__}, python {platform.python_version()}, "
          f"torch {torch.__version__ if torch else 'not installed'}; copy bandwidth GB/s: "
          + ", ".join(f"{k} {v:.1f}" for k, v in bw.items()))
    print(f"{'case':66s} {'median':>10s} {'items/s':>10s} {'GB/s':>6s} {'of copy':>8s} {'faults':>7s}")
    for r in rows:
        t = r["timing"]
        frac = bandwidth_fraction(t.gbps, 5 * 4 * PARAMS, bw) if t.bytes else None
        print(f"{r['case']:66s} {t.median * 1e6:8.1f}us {t.items_per_s:10.3g} "
              f"{'' if t.gbps is None else f'{t.gbps:6.1f}':>6s} {'' if frac is None else f'{frac:8.0%}':>8s} "
              f"{t.minor_faults:7.1f}")
    vec, loop = rows[0]["timing"].items_per_s, rows[2]["timing"].items_per_s
    print(f"\nrosenbrock float64: {vec:.3g} point-steps/s vectorized, {vec / loop:.0f}x the per-point loop "
          f"(targets >= 5e7 and >= 300x: {'met' if vec >= 5e7 and vec / loop >= 300 else 'NOT met'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
