"""MLP training step: dlbench's MLP vs a straightforward NumPy version vs torch CPU; S replicas batched vs looped.

    python benchmarks/bench_model.py [--quick]

(a) One step = forward + softmax cross-entropy + backward + Adam, relu MLP 784-256-256-10, batch 128,
    float32. dlbench: MLP.forward/backward with reuse=True (the trainer's path) and dlbench.nn.optim's Adam,
    its kernels and BLAS at 1 and at 2 threads. numpy: the textbook version with 2-D weights and fresh
    arrays every step. torch (only when it imports): nn.Sequential + cross_entropy + torch.optim.Adam at 1
    and at 2 threads. Ratios are torch's time over dlbench's at the same thread count.
(b) S = 16 replicas, each with its own batch (S, B, d) as the trainer gathers them: one batched step vs 16
    single-replica steps, for the 784-256-256-10 net (BLAS-bound) and a small experiment-sized net
    2-64-64-2, batch 32 (call-overhead-bound), one thread.
All implementations of a case are timed by dlbench.timing.time_interleaved: the same warm-up, calibrated loop
count and sample count, one sample of each in turn (the machine may be shared).
Columns: median time per step, interquartile range, minor page faults per step (ru_minflt), ratio.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform

import numpy as np
from threadpoolctl import threadpool_limits

from dlbench import peer
from dlbench.env import blas_info
from dlbench.nn.losses import softmax_ce
from dlbench.nn.mlp import MLP, MLPSpec
from dlbench.nn.optim import get_optimizer
from dlbench.nn.parallel import kernel_threads
from dlbench.timing import DEFAULT, QUICK, time_interleaved

BIG = (784, 256, 256, 10)
SMALL = (2, 64, 64, 2)


def dlbench_step(widths, batch, seeds, rng):
    """One trainer step of len(seeds) replicas, each on its own batch."""
    net = MLP(MLPSpec(widths))
    params = net.init(seeds)
    opt = get_optimizer("adam", lr=1e-3)
    state = {"opt": opt.init(params)}
    x = rng.standard_normal((len(seeds), batch, widths[0])).astype(np.float32)
    y = rng.integers(0, widths[-1], (len(seeds), batch))

    def step():
        out, cache = net.forward(params, x, reuse=True)
        _, g = softmax_ce(out, y)
        grads = net.backward(params, cache, g, reuse=True)
        state["opt"] = opt.step(params, grads, state["opt"])

    return step


def numpy_step(widths, batch, rng):
    """Straightforward NumPy: 2-D weights, np.where relu, fresh arrays everywhere, Adam written out."""
    Ws = [(rng.uniform(-1, 1, (a, b)) / np.sqrt(a)).astype(np.float32) for a, b in zip(widths[:-1], widths[1:])]
    bs = [np.zeros(b, np.float32) for b in widths[1:]]
    params = Ws + bs
    m = [np.zeros_like(p) for p in params]
    v = [np.zeros_like(p) for p in params]
    x = rng.standard_normal((batch, widths[0])).astype(np.float32)
    y = rng.integers(0, widths[-1], batch)
    t = [0]

    def step():
        hs, zs = [x], []
        for i, (W, b) in enumerate(zip(Ws, bs)):
            z = hs[-1] @ W + b
            zs.append(z)
            if i < len(Ws) - 1:
                hs.append(np.where(z > 0, z, 0))
        z = zs[-1]
        p = np.exp(z - z.max(axis=1, keepdims=True))
        p /= p.sum(axis=1, keepdims=True)
        g = p.copy()
        g[np.arange(batch), y] -= 1
        g /= batch
        gW, gb = [None] * len(Ws), [None] * len(Ws)
        for i in range(len(Ws) - 1, -1, -1):
            gW[i], gb[i] = hs[i].T @ g, g.sum(axis=0)
            if i:
                g = np.where(zs[i - 1] > 0, g @ Ws[i].T, 0)
        t[0] += 1
        for p_, g_, m_, v_ in zip(params, gW + gb, m, v):
            m_[...] = 0.9 * m_ + 0.1 * g_
            v_[...] = 0.999 * v_ + 0.001 * g_ * g_
            mh, vh = m_ / (1 - 0.9 ** t[0]), v_ / (1 - 0.999 ** t[0])
            p_ -= 1e-3 * mh / (np.sqrt(vh) + 1e-8)

    return step


def torch_step(widths, batch, rng):
    import torch

    layers = []
    for i, (a, b) in enumerate(zip(widths[:-1], widths[1:])):
        layers.append(torch.nn.Linear(a, b))
        if i < len(widths) - 2:
            layers.append(torch.nn.ReLU())
    net = torch.nn.Sequential(*layers)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    x = torch.from_numpy(rng.standard_normal((batch, widths[0])).astype(np.float32))
    y = torch.from_numpy(rng.integers(0, widths[-1], batch))

    def step():
        opt.zero_grad(set_to_none=True)
        torch.nn.functional.cross_entropy(net(x), y).backward()
        opt.step()

    return step


def looped(steps):
    """S single-replica steps one after another: what S separate runs cost."""

    def step():
        for s in steps:
            s()

    return step


def row(label, impl, t, ref=None, ref_name=""):
    """One line; the ratio is ref's median over t's (above 1: t is faster)."""
    q1, q3 = np.percentile(t.samples, [25, 75]) * 1e3
    ratio = f"{ref.median / t.median:6.2f}x {ref_name}" if ref is not None else ""
    print(f"{label:24} {impl:18} {t.median * 1e3:9.3f} {f'{q1:.3f}-{q3:.3f}':>15} {t.minor_faults:8.1f}  {ratio}")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="short samples (smoke run)")
    args = ap.parse_args(argv)
    cfg = QUICK if args.quick else DEFAULT
    try:
        import torch

        torch_info = f"torch {torch.__version__}"
    except ImportError:
        torch = None
        torch_info = "torch not installed: skipped"
    blas = blas_info()
    print(f"numpy {np.__version__}, {blas['blas']} {blas['blas_version']} {blas['blas_arch']} "
          f"{blas['blas_threads']} threads; {platform.processor() or platform.machine()}, {os.cpu_count()} cpus; "
          f"{torch_info}; load average {os.getloadavg()[0]:.2f}")
    print(f"{'case':24} {'impl':18} {'median ms':>9} {'IQR ms':>15} {'faults':>8}  ratio (above 1: this row is faster)")
    rng = np.random.default_rng(0)

    label = "(a) 784-256-256-10 b128"
    impls, contexts = {}, {}
    for t in (1, 2):
        impls[f"dlbench {t}t"] = dlbench_step(BIG, 128, [0], rng)
        contexts[f"dlbench {t}t"] = lambda t=t: _threads(t)
    impls["numpy fresh arrays"] = numpy_step(BIG, 128, rng)
    contexts["numpy fresh arrays"] = lambda: _threads(1)
    if torch is not None:
        for t in (1, 2):
            impls[f"torch {t}t"] = torch_step(BIG, 128, rng)
            contexts[f"torch {t}t"] = lambda t=t: peer.threads(t)
    timings = time_interleaved(impls, contexts=contexts, **cfg)
    for name, t in timings.items():
        threads = name.split()[-1]
        ref = timings.get(f"torch {threads}") if name.startswith("dlbench") else None
        row(label, name, t, ref, f"torch {threads} / dlbench" if ref else "")

    S = 16
    for widths, batch in [(BIG, 128), (SMALL, 32)]:
        label = f"(b) S={S} {'-'.join(map(str, widths))} b{batch}"
        batched = dlbench_step(widths, batch, list(range(S)), rng)
        single = looped([dlbench_step(widths, batch, [s], rng) for s in range(S)])
        with _threads(1):
            t = time_interleaved({"separate": single, "batched": batched}, **cfg)
        row(label, f"{S} separate steps", t["separate"])
        row(label, "one batched step", t["batched"], t["separate"], "separate / batched")


@contextlib.contextmanager
def _threads(n: int):
    """dlbench's kernels and NumPy's BLAS at n threads."""
    with threadpool_limits(limits=n, user_api="blas"), kernel_threads(n):
        yield


if __name__ == "__main__":
    main()
