"""Batch norm and layer norm, forward + backward: dlbench's kernels vs a straightforward NumPy version vs torch CPU.

    python benchmarks/bench_norm.py [--quick]

One call = forward (train mode, batch norm's running statistics updated) + backward (dx, dweight, dbias).
GB/s counts the bytes a fused single-pass kernel must move: read x, write y, read g, read x, write dx
(5 arrays). Implementations are sampled in turn (interleaved). NumPy's BLAS is held to one thread (NumPy's
ufuncs use one anyway); torch (2.13 CPU, autograd) runs only when it imports, with its default thread count
("torch") and with one thread ("torch-1t").
"""

from __future__ import annotations

import argparse
import os
import platform

import numpy as np
from threadpoolctl import threadpool_limits

from dlbench.nn.norm import get_norm
from dlbench.timing import DEFAULT, QUICK, Timing, bandwidth_fraction, copy_bandwidth, time_kernel

SHAPES = [(256, 512), (4096, 1024)]
EPS = 1e-5


def numpy_straightforward(kind: str):
    """The textbook NumPy version: x_hat, y, then dx from the closed form, fresh arrays everywhere."""

    def batch(x, w, b, g, rm, rv):
        n = x.shape[0]
        mu, var = x.mean(axis=0), x.var(axis=0)
        rm[...] = 0.9 * rm + 0.1 * mu
        rv[...] = 0.9 * rv + 0.1 * var * n / (n - 1)
        inv = 1.0 / np.sqrt(var + EPS)
        xh = (x - mu) * inv
        _ = xh * w + b
        gh = g * w
        dx = inv / n * (n * gh - gh.sum(axis=0) - xh * (gh * xh).sum(axis=0))
        return dx, (g * xh).sum(axis=0), g.sum(axis=0)

    def layer(x, w, b, g, rm, rv):
        f = x.shape[1]
        mu, var = x.mean(axis=1, keepdims=True), x.var(axis=1, keepdims=True)
        inv = 1.0 / np.sqrt(var + EPS)
        xh = (x - mu) * inv
        _ = xh * w + b
        gh = g * w
        dx = inv / f * (f * gh - gh.sum(axis=1, keepdims=True) - xh * (gh * xh).sum(axis=1, keepdims=True))
        return dx, (g * xh).sum(axis=0), g.sum(axis=0)

    return {"batch": batch, "layer": layer}[kind]


def dlbench_kernel(kind: str, x: np.ndarray):
    """dlbench's forward + backward with out= buffers and the previous cache reused."""
    norm = get_norm(kind)
    params, state = norm.init(x.shape[1], dtype=x.dtype)
    y, dx = np.empty_like(x), np.empty_like(x)
    held = {"cache": None}

    def call(g):
        _, cache = norm.forward(x, params, state, True, out=y, reuse=held["cache"])
        held["cache"] = cache
        return norm.backward(g, cache, out=dx)

    return call


def torch_kernel(kind: str, x: np.ndarray):
    import torch
    import torch.nn.functional as tf

    xt = torch.from_numpy(x).requires_grad_(True)
    f = x.shape[1]
    w = torch.ones(f, requires_grad=True)
    b = torch.zeros(f, requires_grad=True)
    rm, rv = torch.zeros(f), torch.ones(f)

    def call(g):
        xt.grad = w.grad = b.grad = None
        if kind == "batch":
            y = tf.batch_norm(xt, rm, rv, w, b, training=True, momentum=0.1, eps=EPS)
        else:
            y = tf.layer_norm(xt, (f,), w, b, eps=EPS)
        y.backward(g)
        return xt.grad

    return call


def interleaved(impls: dict, arg, cfg: dict, before: dict, **sizes) -> dict[str, Timing]:
    """One sample of each implementation in turn, ``cfg["samples"]`` rounds: load drifts hit all alike.

    ``before[name]()`` runs untimed ahead of each of that implementation's samples (thread settings).
    """
    samples = {name: [] for name in impls}
    faults = dict.fromkeys(impls, 0.0)
    loops = {}
    for _ in range(cfg["samples"]):
        for name, fn in impls.items():
            before.get(name, lambda: None)()
            t = time_kernel(fn, arg, min_time=cfg["min_time"], samples=1, warmup=cfg["warmup"], **sizes)
            samples[name].append(t.samples[0])
            faults[name] += t.minor_faults / cfg["samples"]
            loops[name] = t.loops
    return {name: Timing(np.array(s), loops[name], minor_faults=faults[name], **sizes) for name, s in samples.items()}


def run(cfg: dict, quick: bool) -> None:
    try:
        import torch
    except ImportError:
        torch = None
    torch_threads = torch.get_num_threads() if torch is not None else 0
    bw = copy_bandwidth(quick=quick)
    torch_info = f"torch {torch.__version__} ({torch_threads} threads; torch-1t: 1)" if torch else "torch: not installed"
    print(f"numpy {np.__version__} (BLAS limited to 1 thread), {platform.machine()}, {os.cpu_count()} cpus, "
          f"{torch_info}; load average {os.getloadavg()[0]:.1f}")
    print("copy bandwidth GB/s: " + ", ".join(f"{k} {v:.0f}" for k, v in bw.items()))
    print(f"{'norm':6} {'shape':>11} {'impl':10} {'median us':>10} {'IQR us':>14} {'GB/s':>6} {'%copy':>6} "
          f"{'faults':>7} {'vs best torch':>13}")
    rng = np.random.default_rng(0)
    for kind in ("batch", "layer"):
        for n, f in SHAPES:
            x = (rng.standard_normal((n, f)) * 2 + 1).astype(np.float32)
            g = rng.standard_normal((n, f)).astype(np.float32)
            nbytes = 5 * x.nbytes
            naive = numpy_straightforward(kind)
            w, b = np.ones(f, np.float32), np.zeros(f, np.float32)
            rm, rv = np.zeros(f, np.float32), np.ones(f, np.float32)
            impls = {"dlbench": dlbench_kernel(kind, x),
                     "numpy": lambda g, naive=naive, x=x, w=w, b=b, rm=rm, rv=rv: naive(x, w, b, g, rm, rv)}
            before = {}
            if torch is not None:
                gt = torch.from_numpy(g)
                for name, threads in (("torch", torch_threads), ("torch-1t", 1)):
                    impls[name] = lambda g, tk=torch_kernel(kind, x), gt=gt: tk(gt)
                    before[name] = lambda threads=threads: torch.set_num_threads(threads)
            timings = interleaved(impls, g, cfg, before, items=x.size, bytes=nbytes)
            if torch is not None:
                torch.set_num_threads(torch_threads)
            torch_runs = [t for name, t in timings.items() if name.startswith("torch")]
            ref = min(torch_runs, key=lambda t: t.median) if torch_runs else None
            for name, t in timings.items():
                q1, q3 = np.percentile(t.samples, [25, 75]) * 1e6
                frac = bandwidth_fraction(t.gbps, nbytes, bw)
                ratio = f"{t.median / ref.median:7.2f}x" if ref is not None else "      -"
                print(f"{kind:6} {f'{n}x{f}':>11} {name:10} {t.median * 1e6:10.1f} {f'{q1:.0f}-{q3:.0f}':>14} "
                      f"{t.gbps:6.1f} {100 * frac:5.1f}% {t.minor_faults:7.1f} {ratio:>13}")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="short samples (smoke run)")
    args = ap.parse_args(argv)
    # OpenBLAS threads that spin after a call starve torch's OpenMP threads on a 2-core box.
    with threadpool_limits(limits=1, user_api="blas"):
        run(QUICK if args.quick else DEFAULT, args.quick)


if __name__ == "__main__":
    main()
