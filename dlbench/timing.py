"""The timing harness: calibrated loops, warm-up, raw samples, and the copy-bandwidth probe.

`time_kernel` calls exactly the function the tests check (`time_interleaved` several of them, sample by
sample in turn). Inputs are built by the
caller, outside the timed region; warm-up calls run first; the loop count is
calibrated so that one sample lasts at least `min_time` seconds; every sample is
kept raw, in seconds per call.
"""

from __future__ import annotations

import functools
import resource
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

#: Sample length and count: the default size, and the `--quick` size.
DEFAULT = {"min_time": 0.02, "samples": 15, "warmup": 2}
QUICK = {"min_time": 0.003, "samples": 7, "warmup": 1}

#: Working sets above this many bytes are compared with the DRAM copy bandwidth.
CACHE_BYTES = 8 * 2**20


@dataclass(frozen=True)
class Timing:
    """Raw timing samples of one kernel (seconds per call), with what one call moves."""

    samples: np.ndarray
    loops: int
    items: float | None = None
    bytes: float | None = None
    minor_faults: float = 0.0  # page faults per call over the measured loops

    @property
    def median(self) -> float:
        return float(np.median(self.samples))

    @property
    def items_per_s(self) -> float | None:
        return None if self.items is None else self.items / self.median

    @property
    def gbps(self) -> float | None:
        """Bytes read plus written per second, in GB/s (1e9 bytes)."""
        return None if self.bytes is None else self.bytes / self.median / 1e9


def _calibrate(run_loops: Callable[[int], float], min_time: float, max_loops: int) -> int:
    """Smallest power-of-two-ish loop count whose run lasts at least `min_time`."""
    loops = 1
    while True:
        elapsed = run_loops(loops)
        if elapsed >= min_time or loops >= max_loops:
            return loops
        # Aim a little above min_time, but never grow more than 10x at once.
        grow = min_time * 1.2 / elapsed if elapsed > 0 else 10.0
        loops = min(max_loops, max(loops + 1, int(loops * min(grow, 10.0))))


def time_kernel(
    fn: Callable,
    *args,
    items: float | None = None,
    bytes: float | None = None,
    min_time: float = DEFAULT["min_time"],
    samples: int = DEFAULT["samples"],
    warmup: int = DEFAULT["warmup"],
    max_loops: int = 10**7,
    clock: Callable[[], float] = time.perf_counter,
    **kwargs,
) -> Timing:
    """Time `fn(*args, **kwargs)`: `warmup` calls, calibration, then `samples` samples.

    Each sample runs the calibrated number of loops and records the mean time per
    call. `items` and `bytes` are what one call processes and moves (read plus
    written), so throughput and bandwidth can be derived.
    """
    if samples < 1 or min_time < 0 or warmup < 0:
        raise ValueError("samples must be >= 1, min_time and warmup >= 0")
    call = functools.partial(fn, *args, **kwargs)
    for _ in range(warmup):
        call()

    def run_loops(n: int) -> float:
        start = clock()
        for _ in range(n):
            call()
        return clock() - start

    loops = _calibrate(run_loops, min_time, max_loops)
    faults0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    raw = np.array([run_loops(loops) / loops for _ in range(samples)])
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults0
    return Timing(raw, loops, items, bytes, faults / (samples * loops))


def time_interleaved(
    calls: Sequence[Callable[[], object]],
    *,
    items: Sequence[float | None] | None = None,
    bytes: Sequence[float | None] | None = None,
    min_time: float = DEFAULT["min_time"],
    samples: int = DEFAULT["samples"],
    warmup: int = DEFAULT["warmup"],
    max_loops: int = 10**7,
    clock: Callable[[], float] = time.perf_counter,
    order_seed: int = 0,
) -> list[Timing]:
    """Time several zero-argument calls sample by sample in turn (A B C, C A B, ...), one Timing each.

    Each call is warmed up and calibrated on its own as in `time_kernel` (twice, keeping the larger loop
    count: a calibration the scheduler interrupted gives too few loops); then sample j of every call is
    taken before sample j + 1 of any, in an order drawn afresh each round from `order_seed`, so a change of
    the machine's load falls on every call alike and the ratio of two calls' sample j is a paired
    comparison.
    """
    if samples < 1 or min_time < 0 or warmup < 0:
        raise ValueError("samples must be >= 1, min_time and warmup >= 0")
    k = len(calls)
    items = list(items) if items is not None else [None] * k
    bytes = list(bytes) if bytes is not None else [None] * k
    if len(items) != k or len(bytes) != k:
        raise ValueError("items and bytes need one entry per call")

    def runner(call):
        def run_loops(n: int) -> float:
            start = clock()
            for _ in range(n):
                call()
            return clock() - start
        return run_loops

    runs = [runner(c) for c in calls]
    loops = []
    for call, run in zip(calls, runs):
        for _ in range(warmup):
            call()
        # twice, keeping the larger count: a calibration run the scheduler interrupted picks too few loops,
        # and calls compared side by side should all run for at least min_time
        loops.append(max(_calibrate(run, min_time, max_loops), _calibrate(run, min_time, max_loops)))
    raw = np.empty((k, samples))
    faults = np.zeros(k)
    order = np.random.default_rng(order_seed)
    for j in range(samples):
        # a fresh order every round: a scheduler that interrupts the process at a steady period would
        # otherwise land on the same positions of every round
        for i in order.permutation(k):
            run = runs[i]
            f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
            raw[i, j] = run(loops[i]) / loops[i]
            faults[i] += resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0
    return [Timing(raw[i], loops[i], items[i], bytes[i], faults[i] / (samples * loops[i])) for i in range(k)]


#: Array sizes of the copy probe: one that stays in cache, one that streams from DRAM.
PROBE_SIZES = {"cache": 2**18, "dram": 2**24}


@functools.cache
def copy_bandwidth(quick: bool = False) -> dict[str, float]:
    """The machine's copy bandwidth in GB/s (bytes read + written), per dtype and size.

    Measured once per process with `np.copyto` between two preallocated arrays:
    keys `float32_cache`, `float32_dram`, `float64_cache`, `float64_dram`.
    """
    sizes = dict(PROBE_SIZES, dram=2**22 if quick else PROBE_SIZES["dram"])
    cfg = QUICK if quick else DEFAULT
    result = {}
    for dtype in ("float32", "float64"):
        for where, n in sizes.items():
            src = np.ones(n, dtype=dtype)
            dst = np.empty_like(src)
            t = time_kernel(np.copyto, dst, src, bytes=2 * src.nbytes, **cfg)
            # The best sample is the machine's capability; the median carries the noise.
            result[f"{dtype}_{where}"] = 2 * src.nbytes / float(np.min(t.samples)) / 1e9
    return result


def bandwidth_fraction(gbps: float | None, nbytes: float | None, bandwidth: dict, dtype: str = "float32"):
    """`gbps` as a fraction of the copy bandwidth for a working set of `nbytes`."""
    if gbps is None or not bandwidth:
        return None
    where = "dram" if (nbytes or 0) > CACHE_BYTES else "cache"
    ref = bandwidth.get(f"{dtype}_{where}")
    return None if not ref else gbps / ref
