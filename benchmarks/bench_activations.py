"""Activation kernels, forward + backward: dlbench against torch at equal thread counts, one interleaved run.

    python benchmarks/bench_activations.py [--quick] [--names relu,gelu] [--sizes 1e6,1e7] [--threads 1,2]

float32 inputs ~ N(0, 1) of shape (n/1000, 1000), g ~ N(0, 1). One call = forward then backward
(dlbench.peer's "activation" operation: dlbench writes into buffers made once, torch allocates as its own
code does). Columns in ns per element; bytes are what one call must read plus write at the least
(forward: x, y; backward: one of x/y, g, dx: 20 bytes per element), the working set x, y, g, dx
(16 bytes per element) picks the copy probe.

Targets: at each thread count, every activation at 1e6 and 1e7 >= 0.8x torch (gelu >= 0.6x), and the
geometric mean of the ratios >= 1.0x.
"""

from __future__ import annotations

import numpy as np
from common import geometric_mean, header, measure, parser, ratio, settings, table

from dlbench.nn import activations as A

WIDTH = 1000
TARGET, TARGET_GELU, TARGET_MEAN = 0.8, 0.6, 1.0


def cases(names: list[str]):
    """(label, name, hyper) for every registry entry (aliases once) plus gelu's tanh form."""
    out = []
    for name, act in A.ACTIVATIONS.items():
        if act.name != name or (names and name not in names):
            continue
        out.append((name, name, {}))
        if name == "gelu":
            out.append(("gelu(tanh)", "gelu", {"approximate": "tanh"}))
    return out


def main(argv=None) -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--names", default="", help="comma list of activations (default: all)")
    p.add_argument("--sizes", default="", help="comma list of element counts (default 1e6,1e7; --quick: 1e6)")
    args = p.parse_args(argv)
    cfg, threads, with_torch = settings(args)
    sizes = [int(float(s)) for s in args.sizes.split(",") if s] or ([10**6] if args.quick else [10**6, 10**7])
    names = [s.strip() for s in args.names.split(",") if s.strip()]
    print(header(args))
    rng = np.random.default_rng(0)
    rows = []
    for n in sizes:
        x = rng.standard_normal((n // WIDTH, WIDTH), dtype=np.float32)
        for label, name, hyper in cases(names):
            act = A.get_activation(name, **hyper)
            g = rng.standard_normal(x.shape[:-1] + (WIDTH // act.pieces,), dtype=np.float32)
            row = measure("activation", name, (x, g), hyper, threads, with_torch, cfg, items=x.size,
                          nbytes=x.nbytes * 3 + g.nbytes * 2, working_set=2 * x.nbytes + 2 * g.nbytes)
            row["case"] = f"{label} {n:.0e}"
            row["label"] = label
            rows.append(row)
    print(table(rows, threads, "ns per element", 1e9))
    if with_torch:
        for t in threads:
            missed = [f"{r['case']} {ratio(r, t):.2f}x" for r in rows if ratio(r, t) is not None
                      and ratio(r, t) < (TARGET_GELU if r["label"] == "gelu" else TARGET)]
            gm = geometric_mean(ratio(r, t) for r in rows)
            print(f"targets at {t} thread(s): geometric mean {gm:.2f}x ({'meets' if gm >= TARGET_MEAN else 'misses'} "
                  f"{TARGET_MEAN}x); below target: {', '.join(missed) or 'none'}")


if __name__ == "__main__":
    main()
