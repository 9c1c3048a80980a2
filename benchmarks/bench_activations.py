"""Activation kernels: forward and forward+backward speed, against a straightforward NumPy version and torch.

    python benchmarks/bench_activations.py [--quick] [--names relu,gelu] [--sizes 1e6,1e7] [--torch-threads N]

float32, preallocated out buffers, inputs ~ N(0, 1) of shape (n/1000, 1000). Bytes count what one call
must read plus write: forward x and y; backward one of x/y, g and dx (20 bytes per element for an
elementwise fwd+bwd in float32). "% copy" is the fwd+bwd bandwidth over dlbench.timing.copy_bandwidth()
for the same working-set class (cache or DRAM). The NumPy baseline is the textbook np.where/np.exp code
(allocating); the torch column (if torch imports) is torch.nn.functional's forward plus aten's backward.
Target: relu and leaky_relu fwd+bwd at 1e7 elements >= 60% of the float32 DRAM copy bandwidth.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dlbench.nn import activations as A  # noqa: E402
from dlbench.timing import bandwidth_fraction, copy_bandwidth, time_kernel  # noqa: E402

TARGET = 0.60
WIDTH = 1000


def cases():
    """(label, Activation) for every registry entry (aliases once) plus gelu's tanh form."""
    seen = []
    for name, act in A.ACTIVATIONS.items():
        if act.name == name:
            seen.append((name, act))
            if name == "gelu":
                seen.append(("gelu(tanh)", A.get_activation("gelu", approximate="tanh")))
    return seen


def naive(label: str, act):
    """(forward, backward) written the straightforward way: np.where, exp, x**3, fresh arrays."""
    h = dict(act.hyper)
    a = h.get("negative_slope", h.get("alpha", 1.0))
    lam, al = A.SELU_SCALE, A.SELU_ALPHA
    c = math.sqrt(2 / math.pi)
    sig = lambda x: 1 / (1 + np.exp(-x))  # noqa: E731
    table = {
        "identity": (lambda x: x.copy(), lambda x, y, g: g.copy()),
        "relu": (lambda x: np.where(x > 0, x, 0), lambda x, y, g: np.where(x > 0, g, 0)),
        "leaky_relu": (lambda x: np.where(x > 0, x, a * x), lambda x, y, g: np.where(x > 0, g, a * g)),
        "prelu": (lambda x, w: np.where(x > 0, x, w * x), lambda x, y, g, w: np.where(x > 0, g, w * g)),
        "elu": (lambda x: np.where(x > 0, x, a * (np.exp(x) - 1)),
                lambda x, y, g: np.where(x > 0, g, g * a * np.exp(x))),
        "selu": (lambda x: lam * np.where(x > 0, x, al * (np.exp(x) - 1)),
                 lambda x, y, g: lam * np.where(x > 0, g, g * al * np.exp(x))),
        "gelu": (lambda x: 0.5 * x * (1 + A.erf(x / math.sqrt(2))),
                 lambda x, y, g: g * (0.5 * (1 + A.erf(x / math.sqrt(2)))
                                      + x * np.exp(-x**2 / 2) / math.sqrt(2 * math.pi))),
        "gelu(tanh)": (lambda x: 0.5 * x * (1 + np.tanh(c * (x + 0.044715 * x**3))),
                       lambda x, y, g: g * (0.5 * (1 + np.tanh(c * (x + 0.044715 * x**3)))
                                            + 0.5 * x * (1 - np.tanh(c * (x + 0.044715 * x**3))**2)
                                            * c * (1 + 3 * 0.044715 * x**2))),
        "silu": (lambda x: x * sig(x), lambda x, y, g: g * sig(x) * (1 + x * (1 - sig(x)))),
        "softplus": (lambda x: np.where(x > 20, x, np.log1p(np.exp(x))), lambda x, y, g: g * sig(x)),
        "sigmoid": (lambda x: sig(x), lambda x, y, g: g * y * (1 - y)),
        "tanh": (np.tanh, lambda x, y, g: g * (1 - y**2)),
        "sin": (np.sin, lambda x, y, g: g * np.cos(x)),
        "maxout": (lambda x: x.reshape(*x.shape[:-1], -1, 2).max(-1),
                   lambda x, y, g: (g[..., None] * (x.reshape(*x.shape[:-1], -1, 2) == y[..., None])).reshape(x.shape)),
    }
    return table[label]


def torch_pair(label: str, act):
    """(forward, backward) in torch, or None."""
    try:
        import torch
        import torch.nn.functional as F
    except ImportError:
        return None
    aten = torch.ops.aten
    h = dict(act.hyper)
    table = {
        "identity": (lambda x: x.clone(), lambda x, y, g: g.clone()),
        "relu": (F.relu, lambda x, y, g: aten.threshold_backward(g, y, 0)),
        "leaky_relu": (lambda x: F.leaky_relu(x, h.get("negative_slope", 0.01)),
                       lambda x, y, g: aten.leaky_relu_backward(g, x, h.get("negative_slope", 0.01), False)),
        "prelu": (F.prelu, lambda x, y, g, w: aten._prelu_kernel_backward(g, x, w)[0]),
        "elu": (F.elu, lambda x, y, g: aten.elu_backward(g, 1.0, 1.0, 1.0, False, x)),
        "selu": (F.selu, lambda x, y, g: aten.elu_backward(g, A.SELU_ALPHA, A.SELU_SCALE, 1.0, False, x)),
        "gelu": (F.gelu, lambda x, y, g: aten.gelu_backward(g, x)),
        "gelu(tanh)": (lambda x: F.gelu(x, approximate="tanh"),
                       lambda x, y, g: aten.gelu_backward(g, x, approximate="tanh")),
        "silu": (F.silu, lambda x, y, g: aten.silu_backward(g, x)),
        "softplus": (F.softplus, lambda x, y, g: aten.softplus_backward(g, x, 1.0, 20.0)),
        "sigmoid": (torch.sigmoid, lambda x, y, g: aten.sigmoid_backward(g, y)),
        "tanh": (torch.tanh, lambda x, y, g: aten.tanh_backward(g, y)),
        "sin": (torch.sin, lambda x, y, g: g * torch.cos(x)),
    }
    pair = table.get(label)
    if pair is None:
        return None
    conv = lambda a: torch.from_numpy(a)  # noqa: E731
    return pair, conv


def fwd_bwd(forward, backward, x, theta, y, g, dx):
    forward(x, *theta, out=y)
    backward(x, y, g, *theta, out=dx)


def plain_fwd_bwd(forward, backward, x, theta, g):
    y = forward(x, *theta)
    backward(x, y, g, *theta)


def run(names, sizes, cfg, with_torch=True):
    rng = np.random.default_rng(0)
    bw = copy_bandwidth(quick=cfg is QUICK)
    rows = []
    for n in sizes:
        # the baselines are slow (up to seconds per call at 1e7): time a few calls, no warm-up
        base = {"min_time": 0.0, "samples": 3 if n <= 10**6 else 1, "warmup": 0}
        x = rng.standard_normal((n // WIDTH, WIDTH), dtype=np.float32)
        for label, act in cases():
            if names and label not in names and act.name not in names:
                continue
            theta = act.init_params((), WIDTH, np.float32) if act.init_params else ()
            y = act.forward(x, *theta)
            g = rng.standard_normal(y.shape, dtype=np.float32)
            dx = np.empty_like(x)
            fwd_bytes = x.nbytes + y.nbytes
            all_bytes = fwd_bytes + x.nbytes + g.nbytes + dx.nbytes
            tf = time_kernel(act.forward, x, *theta, out=y, items=x.size, bytes=fwd_bytes, **cfg)
            tb = time_kernel(fwd_bwd, act.forward, act.backward, x, theta, y, g, dx,
                             items=x.size, bytes=all_bytes, **cfg)
            nf, nb = naive(label, act)
            tn = time_kernel(plain_fwd_bwd, nf, nb, x, theta, g, items=x.size, **base)
            tt = None
            tp = torch_pair(label, act) if with_torch else None
            if tp is not None:
                (f_t, b_t), conv = tp
                xt, gt, th = conv(x), conv(g), tuple(conv(np.ascontiguousarray(t.reshape(1))) for t in theta)
                tt = time_kernel(plain_fwd_bwd, f_t, b_t, xt, th, gt, items=x.size, **base)
            rows.append(dict(
                activation=label, n=n,
                fwd_ns=tf.median / x.size * 1e9, fwd_gelem=tf.items_per_s / 1e9, fwd_gbps=tf.gbps,
                fb_ns=tb.median / x.size * 1e9, fb_gelem=tb.items_per_s / 1e9, fb_gbps=tb.gbps,
                fb_copy=bandwidth_fraction(tb.gbps, all_bytes, bw), fb_faults=tb.minor_faults,
                naive_ns=tn.median / x.size * 1e9, torch_ns=None if tt is None else tt.median / x.size * 1e9,
            ))
    return rows, bw


def _torch_note() -> str:
    try:
        import torch
    except ImportError:
        return "; torch not installed"
    return f"; torch {torch.__version__} with {torch.get_num_threads()} threads"


def render(rows, bw) -> str:
    head = (f"{'activation':<11} {'n':>5} | {'fwd ns/el':>9} {'Gel/s':>6} {'GB/s':>6} | {'f+b ns/el':>9} {'Gel/s':>6} "
            f"{'GB/s':>6} {'%copy':>6} {'flt/call':>8} | {'numpy ns':>8} {'x':>5} | {'torch ns':>8}")
    lines = ["copy bandwidth GB/s: " + ", ".join(f"{k} {v:.1f}" for k, v in bw.items()) + _torch_note(), head,
             "-" * len(head)]
    for r in rows:
        torch_ns = "-" if r["torch_ns"] is None else f"{r['torch_ns']:8.2f}"
        lines.append(
            f"{r['activation']:<11} {r['n']:>5.0e} | {r['fwd_ns']:9.3f} {r['fwd_gelem']:6.2f} {r['fwd_gbps']:6.1f} | "
            f"{r['fb_ns']:9.3f} {r['fb_gelem']:6.2f} {r['fb_gbps']:6.1f} {100 * r['fb_copy']:5.0f}% "
            f"{r['fb_faults']:8.1f} | "
            f"{r['naive_ns']:8.2f} {r['naive_ns'] / r['fb_ns']:5.1f} | {torch_ns:>8}")
    for r in rows:
        if r["activation"] in ("relu", "leaky_relu") and r["n"] >= 10**7:
            verdict = "meets" if r["fb_copy"] >= TARGET else "misses"
            lines.append(f"{r['activation']} fwd+bwd at {r['n']:.0e}: {100 * r['fb_copy']:.0f}% of the float32 DRAM "
                         f"copy bandwidth ({verdict} the {100 * TARGET:.0f}% target)")
    return "\n".join(lines)


QUICK = {"min_time": 0.003, "samples": 5, "warmup": 1}
FULL = {"min_time": 0.005, "samples": 5, "warmup": 1}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="1e6 elements only, fewer samples")
    p.add_argument("--names", default="", help="comma list of activations (default: all)")
    p.add_argument("--sizes", default="", help="comma list of element counts (default 1e6,1e7)")
    p.add_argument("--no-torch", action="store_true", help="skip the torch column")
    p.add_argument("--torch-threads", type=int, default=0, help="torch intra-op threads (default: torch's own)")
    args = p.parse_args(argv)
    if not args.no_torch and args.torch_threads:
        try:
            import torch

            torch.set_num_threads(args.torch_threads)
        except ImportError:
            pass
    sizes = [int(float(s)) for s in args.sizes.split(",") if s] or ([10**6] if args.quick else [10**6, 10**7])
    names = [s.strip() for s in args.names.split(",") if s.strip()]
    rows, bw = run(names, sizes, QUICK if args.quick else FULL, with_torch=not args.no_torch)
    print(render(rows, bw))


if __name__ == "__main__":
    main()
