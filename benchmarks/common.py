"""What every benchmark shares: dlbench and torch at equal thread counts, timed interleaved, printed as ratios.

An implementation column is "<impl>-<threads>t": dlbench's kernels under dlbench.nn.parallel.kernel_threads,
torch's (dlbench.peer) under torch.set_num_threads. Each is timed by dlbench.timing.time_interleaved with
the same warm-up, calibrated loop count and sample count; a ratio is torch's median time over dlbench's at
the same thread count (above 1: dlbench is faster). "% copy" is dlbench's bytes per second over the copy
probe's at the same working set (dlbench.timing.copy_at), so 100 % is a kernel that moves its bytes as fast
as np.copyto moves a working set of that size.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dlbench import peer  # noqa: E402
from dlbench.nn.parallel import kernel_threads  # noqa: E402
from dlbench.timing import DEFAULT, QUICK, Timing, copy_at, time_interleaved  # noqa: E402


def parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--quick", action="store_true", help="short samples, fewer of them (a smoke run)")
    p.add_argument("--threads", default="1,2", help="comma list of thread counts (default 1,2)")
    p.add_argument("--no-torch", action="store_true", help="time dlbench alone")
    p.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                   help="wall time (default), or the calling thread's CPU time: on a loaded machine it leaves "
                        "out the time other processes hold the core (one thread only)")
    return p


def settings(args) -> tuple[dict, list[int], bool]:
    """(time_kernel settings, thread counts, with torch) from the parsed arguments."""
    threads = sorted({int(t) for t in args.threads.split(",") if t.strip()})
    if not threads or threads[0] < 1:
        raise SystemExit("--threads: positive integers, e.g. 1,2")
    cfg = dict(QUICK if args.quick else DEFAULT)
    if args.clock == "cpu":  # torch at one thread runs on the calling thread, as dlbench does
        threads = [1]
        cfg["clock"] = time.thread_time
    return cfg, threads, not args.no_torch and peer.available()


def header(args) -> str:
    """The run's first line: versions, machine, load average, clock."""
    load = os.getloadavg()
    extra = "; clock: " + ("the calling thread's CPU time" if args.clock == "cpu" else "wall")
    torch = f"torch {peer.version()}" if peer.available() else "torch not installed"
    return (f"# numpy {np.__version__}, {torch}, {platform.machine()}, {os.cpu_count()} cpus, "
            f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}{extra}")


def implementations(op: str, name: str, arrays: tuple, hyper: dict, threads: list[int], with_torch: bool,
                    kernel=peer.kernel):
    """({column: callable}, {column: context factory}) for dlbench and torch at each thread count.

    `kernel` builds one implementation, with dlbench.peer.kernel's signature (the default).
    """
    impls, contexts = {}, {}
    for t in threads:
        impls[f"dlbench-{t}t"] = kernel(op, name, *arrays, impl="dlbench", **hyper)
        contexts[f"dlbench-{t}t"] = lambda t=t: kernel_threads(t)
    if with_torch:
        for t in threads:
            fn = kernel(op, name, *arrays, impl="torch", **hyper)
            if fn is not None:
                impls[f"torch-{t}t"] = fn
                contexts[f"torch-{t}t"] = lambda t=t: peer.threads(t)
    return impls, contexts


def measure(op: str, name: str, arrays: tuple, hyper: dict, threads: list[int], with_torch: bool, cfg: dict,
            *, items: float, nbytes: float, working_set: float, dtype: str = "float32", kernel=peer.kernel) -> dict:
    """One row: every implementation timed interleaved, plus the copy probe at the kernel's working set.

    BLAS is held to one thread: its idle threads would compete with the kernels' own.
    """
    impls, contexts = implementations(op, name, arrays, hyper, threads, with_torch, kernel)
    with threadpool_limits(limits=1, user_api="blas"):
        timings = time_interleaved(impls, contexts=contexts, items=items, bytes=nbytes, **cfg)
    copy = copy_at(int(working_set), dtype, cfg["samples"] < DEFAULT["samples"], cfg.get("clock", time.perf_counter))
    return {"timings": timings, "copy_gbps": copy, "items": items}


def ratio(row: dict, threads: int) -> float | None:
    """torch's median over dlbench's at `threads` threads (None without a torch column)."""
    t = row["timings"]
    a, b = t.get(f"dlbench-{threads}t"), t.get(f"torch-{threads}t")
    return None if a is None or b is None else b.median / a.median


def geometric_mean(values) -> float | None:
    v = [x for x in values if x]
    return math.exp(sum(math.log(x) for x in v) / len(v)) if v else None


def table(rows: list[dict], threads: list[int], unit: str, scale: float, *, per_item: bool = True) -> str:
    """The compact table: per row, each column's median (in `unit`), the ratios, dlbench's % copy."""
    cols = [f"{impl}-{t}t" for impl in ("dlbench", "torch") for t in threads]
    cols = [c for c in cols if any(c in r["timings"] for r in rows)]
    head = f"{'case':<24}" + "".join(f"{c:>11}" for c in cols)
    head += "".join(f"{f'vs torch {t}t':>12}" for t in threads) + f"{'% copy':>8}"
    lines = [f"({unit}; ratio = torch time / dlbench time at equal threads, above 1 = dlbench faster)", head]
    for r in rows:
        div = r["items"] if per_item else 1.0
        cells = "".join(f"{r['timings'][c].median / div * scale:11.3f}" if c in r["timings"] else f"{'-':>11}"
                        for c in cols)
        ratios = "".join(f"{ratio(r, t):11.2f}x" if ratio(r, t) else f"{'-':>12}" for t in threads)
        own: Timing = r["timings"][f"dlbench-{threads[0]}t"]
        pct = 100 * own.gbps / r["copy_gbps"] if own.gbps else float("nan")
        lines.append(f"{r['case']:<24}{cells}{ratios}{pct:7.0f}%")
    for t in threads:
        gm = geometric_mean(ratio(r, t) for r in rows)
        if gm:
            lines.append(f"geometric mean of the ratios at {t} thread(s): {gm:.2f}x")
    return "\n".join(lines)
