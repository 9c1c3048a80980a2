"""Optimizer kernels: one step over a large parameter against torch.optim at equal threads, and vectorized
trajectories on a surface against a per-point loop.

    python benchmarks/bench_optim.py [--quick] [--threads 1,2] [--names adam,sgd]

(a) One step over 1e6 float32 parameters (dlbench.peer's "optimizer" operation): dlbench's step against
    torch.optim's fused CPU step (foreach where torch has no fused one), default hyperparameters, lr 1e-3.
    Bytes are the optimizer's own figure, Optimizer.bytes_per_param (28 for Adam: read p, g, m, v; write
    p, m, v), which is also the working set that picks the copy probe. Target: Adam >= 0.8x torch's
    fused step at each thread count.
(b) Adam on Rosenbrock, P = 1,000 starting points in the (2, P) layout, gradient + update per step:
    point-steps/s against the same kernels called point by point in a Python loop, and against torch.optim.Adam
    on the same (2, P) tensor, all timed interleaved (targets: >= 5e7 point-steps/s and >= 300x the loop).
"""

from __future__ import annotations

import numpy as np
from common import header, measure, parser, ratio, settings, table

from dlbench import peer
from dlbench.nn.optim import OPTIMIZERS, get_optimizer
from dlbench.surfaces import get_surface
from dlbench.timing import time_interleaved

PARAMS = 10**6
POINTS = 1000
TARGET = 0.8


def step_rows(names, threads, with_torch, cfg) -> list[dict]:
    rng = np.random.default_rng(1)
    rows = []
    for name in names:
        opt = get_optimizer(name, lr=1e-3)
        nbytes = opt.bytes_per_param(np.float32) * PARAMS
        p = rng.standard_normal(PARAMS).astype(np.float32)
        g = (rng.standard_normal(PARAMS) * 1e-3).astype(np.float32)
        # each implementation steps its own copy: both keep their state across the timed calls
        copies = {impl: p.copy() for impl in peer.IMPLS}

        def kernel(op, name, *arrays, impl="dlbench", **hyper):
            return peer.kernel(op, name, [copies[impl]], [g], impl=impl, **hyper)

        row = measure("optimizer", name, (), {"lr": 1e-3}, threads, with_torch, cfg, items=PARAMS, nbytes=nbytes,
                      working_set=nbytes, kernel=kernel)
        row["case"] = f"{name} step 1e6"
        rows.append(row)
    return rows


def rosenbrock(cfg, loop_points: int, with_torch: bool) -> None:
    surface = get_surface("rosenbrock")
    rng = np.random.default_rng(0)
    Z0 = rng.uniform(surface.start_low[:, None], surface.start_high[:, None], (2, POINTS))
    Z, G = Z0.copy(), np.empty_like(Z0)
    opt = get_optimizer("adam", lr=1e-3)
    state = opt.init([Z])

    def vectorized():
        surface.grad(Z, out=G)
        opt.step([Z], [G], state)

    Zs = [Z0[:, j:j + 1].copy() for j in range(loop_points)]
    Gs = [np.empty_like(z) for z in Zs]
    states = [opt.init([z]) for z in Zs]

    def per_point():
        for j in range(loop_points):
            surface.grad(Zs[j], out=Gs[j])
            states[j] = opt.step([Zs[j]], [Gs[j]], states[j])

    impls = {"dlbench (2, P)": vectorized, f"dlbench loop over {loop_points}": per_point}
    if with_torch:
        import torch

        Zt = torch.tensor(Z0, requires_grad=True)
        topt = torch.optim.Adam([Zt], lr=1e-3)

        def torch_step():
            with torch.no_grad():
                x, y = Zt[0], Zt[1]
                gy = 200.0 * (y - x * x)
                Zt.grad = torch.stack([2.0 * (x - 1.0) - 2.0 * x * gy, gy])
            topt.step()

        impls["torch.optim.Adam (2, P)"] = torch_step
    with peer.threads(1):
        t = time_interleaved(impls, **cfg)
    items = {"dlbench (2, P)": POINTS, f"dlbench loop over {loop_points}": loop_points,
             "torch.optim.Adam (2, P)": POINTS}
    print(f"\nAdam + gradient on Rosenbrock, float64, one thread ({'; '.join(f'{k}: {items[k] / v.median:.3g} point-steps/s' for k, v in t.items())})")
    vec = POINTS / t["dlbench (2, P)"].median
    loop = loop_points / t[f"dlbench loop over {loop_points}"].median
    print(f"vectorized {vec:.3g} point-steps/s, {vec / loop:.0f}x the per-point loop "
          f"(targets >= 5e7 and >= 300x: {'met' if vec >= 5e7 and vec / loop >= 300 else 'NOT met'})")


def main(argv=None) -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--names", default="adam,adamw,sgd,momentum,adagrad,rmsprop", help="comma list of optimizers")
    args = p.parse_args(argv)
    cfg, threads, with_torch = settings(args)
    names = OPTIMIZERS.parse_list(args.names)
    print(header(args))
    rows = step_rows(names, threads, with_torch, cfg)
    print(table(rows, threads, "ms per step", 1e3, per_item=False))
    if with_torch:
        for t in threads:
            r = next((r for r in rows if r["case"].startswith("adam ")), None)
            if r is not None and ratio(r, t) is not None:
                print(f"target at {t} thread(s): adam {ratio(r, t):.2f}x torch's fused step "
                      f"({'meets' if ratio(r, t) >= TARGET else 'misses'} {TARGET}x)")
    rosenbrock(cfg, 200 if args.quick else POINTS, with_torch)


if __name__ == "__main__":
    main()
