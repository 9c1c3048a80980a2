"""Recurrent layer forward + backward vs torch.nn.RNN, and a residual-net training step vs the plain MLP step.

    python benchmarks/bench_rnn.py [--quick]

Everything runs at one thread (threadpoolctl for NumPy's BLAS, torch.set_num_threads(1) for torch), float32.
(a) RNN forward + backward through time, tanh, one layer, input size = hidden size H in {64, 256}, T = 50,
    batch 32: dlbench.nn.rnn.RNN.forward/backward with reuse=True and an output gradient at every step, vs
    torch.nn.RNN (out.backward(g); grads set to None first; x needs no gradient on either side). With
    "lengths": the same with lengths drawn from 1 .. T, vs torch's pack_padded_sequence / pad_packed_sequence
    inside the timed call. Rows "layer norm" / "batch norm": dlbench's norms in the cell (torch has none).
(b) One training step (forward + softmax cross-entropy + backward + Adam) of a residual net vs the MLP with its
    widths (the plain net: the same parameter count), batch 128 on 784-256x(4 blocks of 2)-10 (BLAS-bound)
    and batch 32 on 2-64x(8 blocks of 2)-2 (call-overhead-bound).
Implementations are timed in turn with dlbench.timing.time_kernel at identical settings (warm-up, calibrated
loop count, samples), over 5 rounds with the samples pooled. Columns: median time per call, interquartile
range, minor page faults per call, and the speed of the row relative to its reference (> 1: faster).
"""

from __future__ import annotations

import argparse
import os
import platform

import numpy as np
from threadpoolctl import threadpool_limits

from dlbench.env import blas_info
from dlbench.nn.losses import softmax_ce
from dlbench.nn.mlp import MLP, MLPSpec
from dlbench.nn.optim import get_optimizer
from dlbench.nn.residual import ResNet, ResNetSpec
from dlbench.nn.rnn import RNN, RNNSpec
from dlbench.timing import DEFAULT, QUICK, Timing, time_kernel

T, BATCH = 50, 32


def rnn_inputs(H: int, rng, lengths: bool):
    x = rng.standard_normal((T, BATCH, H)).astype(np.float32)
    g = rng.standard_normal((T, BATCH, H)).astype(np.float32)
    ls = np.sort(rng.integers(1, T + 1, BATCH))[::-1].copy() if lengths else None
    if ls is not None:
        ls[0] = T
    return x, g, ls


def dlbench_rnn(H: int, rng, lengths: bool = False, norm: str = "none"):
    rnn = RNN(RNNSpec(H, H, norm=norm))
    params = rnn.init([0])
    state = rnn.init_state(1)
    x, g, ls = rnn_inputs(H, rng, lengths)
    g = g[None]

    def step():
        out, h_n, cache = rnn.forward(params, x, state, lengths=ls, reuse=True)
        rnn.backward(params, cache, g, reuse=True)

    return step


def torch_rnn(H: int, rng, lengths: bool = False):
    import torch

    pack = torch.nn.utils.rnn
    net = torch.nn.RNN(H, H)
    x, g, ls = rnn_inputs(H, rng, lengths)
    xt, gt = torch.from_numpy(x), torch.from_numpy(g)
    lt = None if ls is None else torch.from_numpy(ls)

    def step():
        for p in net.parameters():
            p.grad = None
        if lt is None:
            out, _ = net(xt)
        else:
            out, _ = net(pack.pack_padded_sequence(xt, lt))
            out, _ = pack.pad_packed_sequence(out, total_length=T)
        out.backward(gt)

    return step


def train_step(net, batch: int, rng):
    """forward + softmax_ce + backward + Adam, as the trainer runs it (reuse=True)."""
    params = net.init([0])
    opt = get_optimizer("adam", lr=1e-3)
    state = {"opt": opt.init(params), "norm": net.init_state(1)}
    x = rng.standard_normal((1, batch, net.widths[0])).astype(np.float32)
    y = rng.integers(0, net.widths[-1], (1, batch))

    def step():
        out, cache = net.forward(params, x, state["norm"], reuse=True)
        _, g = softmax_ce(out, y)
        grads = net.backward(params, cache, g, reuse=True)
        state["opt"] = opt.step(params, grads, state["opt"])

    return step


def interleaved(impls: dict, cfg: dict, rounds: int = 5) -> dict:
    """time_kernel on each implementation in turn, `rounds` times, pooling the samples: a noisy neighbour
    then slows every implementation alike instead of one of them."""
    per_round = dict(cfg, samples=max(1, cfg["samples"] // rounds + 1))
    runs = {name: [] for name in impls}
    for _ in range(rounds):
        for name, fn in impls.items():
            runs[name].append(time_kernel(fn, **per_round))
    return {name: Timing(np.concatenate([t.samples for t in ts]), ts[-1].loops,
                         minor_faults=float(np.mean([t.minor_faults for t in ts])))
            for name, ts in runs.items()}


def row(label, impl, t, ref=None, ref_name=""):
    q1, q3 = np.percentile(t.samples, [25, 75]) * 1e3
    speed = f"{ref.median / t.median:6.2f}x {ref_name}" if ref is not None else ""
    print(f"{label:30} {impl:22} {t.median * 1e3:9.3f} {f'{q1:.3f}-{q3:.3f}':>15} {t.minor_faults:8.1f}  {speed}")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="short samples (smoke run)")
    args = ap.parse_args(argv)
    cfg = QUICK if args.quick else DEFAULT
    try:
        import torch

        torch.set_num_threads(1)
        torch_info = f"torch {torch.__version__}, {torch.get_num_threads()} thread"
    except ImportError:
        torch = None
        torch_info = "torch not installed: skipped"
    blas = blas_info()
    print(f"numpy {np.__version__}, {blas['blas']} {blas['blas_version']} {blas['blas_arch']}, 1 thread; "
          f"{platform.processor() or platform.machine()}, {os.cpu_count()} cpus; {torch_info}; "
          f"load average {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    print(f"{'case':30} {'impl':22} {'median ms':>9} {'IQR ms':>15} {'faults':>8}  speed")
    rng = np.random.default_rng(0)
    with threadpool_limits(1):
        for H in (64, 256):
            for lengths in (False, True):
                label = f"(a) RNN H={H} T={T} b{BATCH}{' lengths' if lengths else ''}"
                impls = {"dlbench": dlbench_rnn(H, rng, lengths)}
                if not lengths:
                    impls["dlbench layer norm"] = dlbench_rnn(H, rng, norm="layer")
                    impls["dlbench batch norm"] = dlbench_rnn(H, rng, norm="batch")
                if torch is not None:
                    impls["torch.nn.RNN" + (" packed" if lengths else "")] = torch_rnn(H, rng, lengths)
                timings = interleaved(impls, cfg)
                ref_name = next((n for n in timings if n.startswith("torch")), None)
                for name, t in timings.items():
                    ref = timings[ref_name] if ref_name and name != ref_name else None
                    row(label, name, t, ref, "torch" if ref is not None else "")
        for d_in, width, blocks, d_out, batch in [(784, 256, 4, 10, 128), (2, 64, 8, 2, 32)]:
            for norm in ("none", "layer"):
                res = ResNet(ResNetSpec(d_in, width, blocks, d_out, norm=norm))
                mlp = MLP(MLPSpec(res.widths, norm=norm))
                assert res.n_params == mlp.n_params
                label = f"(b) {d_in}-{width}x{blocks}x2-{d_out} b{batch} {norm}"
                t = interleaved({"plain MLP": train_step(mlp, batch, rng), "residual": train_step(res, batch, rng)},
                                cfg)
                row(label, "plain MLP", t["plain MLP"])
                row(label, f"residual ({res.n_params} p)", t["residual"], t["plain MLP"], "MLP")


if __name__ == "__main__":
    main()
