"""Normalization layers, forward + backward: dlbench against torch at equal thread counts, one interleaved run.

    python benchmarks/bench_norm.py [--quick] [--threads 1,2] [--kinds batch,layer,group,instance]

One call = forward in training mode (batch norm's running statistics updated) then backward (dx, dweight,
dbias): dlbench.peer's "norm" operation, torch through aten's native kernels (what autograd calls).
float32 inputs x ~ 1 + 2 N(0, 1), g ~ N(0, 1). Columns in microseconds per call; bytes are what a fused
kernel must move at the least (read x, write y; read g and x, write dx: five arrays), which is also the
working set that picks the copy probe.

Target: batch and layer norm >= 0.8x torch at each thread count.
"""

from __future__ import annotations

import numpy as np
from common import header, measure, parser, ratio, settings, table

SHAPES = [(256, 512), (4096, 1024)]
HYPER = {"batch": {}, "layer": {}, "group": {"num_groups": 32}, "instance": {"channels": 64}}
TARGET = 0.8


def main(argv=None) -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--kinds", default="batch,layer", help="comma list of norms (default batch,layer)")
    args = p.parse_args(argv)
    cfg, threads, with_torch = settings(args)
    kinds = [k.strip() for k in args.kinds.split(",") if k.strip()]
    print(header(args))
    rng = np.random.default_rng(0)
    rows = []
    for kind in kinds:
        for n, f in SHAPES:
            x = (rng.standard_normal((n, f)) * 2 + 1).astype(np.float32)
            g = rng.standard_normal((n, f)).astype(np.float32)
            row = measure("norm", kind, (x, g), HYPER[kind], threads, with_torch, cfg, items=1,
                          nbytes=5 * x.nbytes, working_set=5 * x.nbytes)
            row["case"] = f"{kind} {n}x{f}"
            rows.append(row)
    print(table(rows, threads, "microseconds per call", 1e6, per_item=False))
    if with_torch:
        for t in threads:
            missed = [f"{r['case']} {ratio(r, t):.2f}x" for r in rows if ratio(r, t) is not None and ratio(r, t) < TARGET]
            print(f"targets at {t} thread(s) (>= {TARGET}x): below target: {', '.join(missed) or 'none'}")


if __name__ == "__main__":
    main()
