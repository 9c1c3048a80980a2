"""The timing harness: calibrated loops, warm-up, raw samples, interleaved peers, and the copy-bandwidth probe.

`time_kernel` calls exactly the function the tests check (`time_interleaved` several of them, sample by
sample in turn). Inputs are built by the
caller, outside the timed region; warm-up calls run first; the loop count is
calibrated so that one sample lasts at least `min_time` seconds; every sample is
kept raw, in seconds per call. `time_interleaved` times several implementations of
one operation with those same settings, one sample of each in turn, so that a
neighbour's load hits them all alike.

The copy probe measures `np.copyto` at the working set of each cache level (see
`copy_bandwidth`), and `bandwidth_fraction` compares a kernel with the probe of its
own level: a kernel whose working set sits in the last-level cache is not held
against the private cache's bandwidth, nor against memory's.
"""

from __future__ import annotations

import contextlib
import functools
import os
import resource
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

#: Sample length and count: the default size, and the `--quick` size.
DEFAULT = {"min_time": 0.02, "samples": 15, "warmup": 2}
QUICK = {"min_time": 0.003, "samples": 7, "warmup": 1}
#: The copy-bandwidth probe's settings at the default size: DEFAULT's 15 samples (the probe keeps the best),
#: each half as long. On the project's machine, six probes of each in alternating fresh processes fell in the
#: same band (cache 204-232 GB/s, last-level cache 108-122, DRAM 35-45: the spread is between runs, not
#: within one); these take 1.2 s for the six working sets and dtypes, DEFAULT's 3.1 s.
PROBE = {"min_time": 0.01, "samples": 15, "warmup": 2}

#: Files written before the probe had a last-level-cache class split cache and DRAM here (bytes per call).
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
    loops: int | None = None,
    clock: Callable[[], float] = time.perf_counter,
    **kwargs,
) -> Timing:
    """Time `fn(*args, **kwargs)`: `warmup` calls, calibration, then `samples` samples.

    Each sample runs the calibrated number of loops and records the mean time per
    call. `items` and `bytes` are what one call processes and moves (read plus
    written), so throughput and bandwidth can be derived. `loops` skips the
    calibration and uses that count (`time_interleaved` calibrates once per
    implementation).
    """
    if samples < 1 or min_time < 0 or warmup < 0 or (loops is not None and loops < 1):
        raise ValueError("samples and loops must be >= 1, min_time and warmup >= 0")
    call = functools.partial(fn, *args, **kwargs)
    for _ in range(warmup):
        call()

    def run_loops(n: int) -> float:
        start = clock()
        for _ in range(n):
            call()
        return clock() - start

    if loops is None:
        loops = _calibrate(run_loops, min_time, max_loops)
    faults0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    raw = np.array([run_loops(loops) / loops for _ in range(samples)])
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults0
    return Timing(raw, loops, items, bytes, faults / (samples * loops))


def time_interleaved(
    impls: Mapping[str, Callable[[], object]],
    *,
    contexts: Mapping[str, Callable[[], contextlib.AbstractContextManager]] | None = None,
    items: float | Mapping[str, float | None] | None = None,
    bytes: float | Mapping[str, float | None] | None = None,
    min_time: float = DEFAULT["min_time"],
    samples: int = DEFAULT["samples"],
    warmup: int = DEFAULT["warmup"],
    max_loops: int = 10**7,
    clock: Callable[[], float] = time.perf_counter,
    order_seed: int = 0,
) -> dict[str, Timing]:
    """Time several zero-argument implementations with `time_kernel`'s settings, sample by sample in turn.

    Each is warmed up and calibrated on its own (twice, keeping the larger loop count: a calibration the
    scheduler interrupted picks too few loops); then in every round each takes one warm-up call (its data
    back in cache after the others ran) and one sample, in an order drawn afresh from `order_seed` each
    round, so a change of the machine's load falls on every implementation alike and the ratio of two
    implementations' sample j is a paired comparison. `contexts[name]()` is entered around each of
    `name`'s calibrations and samples (a thread count, say). `items` and `bytes` are per call: one value
    for all, or one per name.
    """
    if samples < 1 or min_time < 0 or warmup < 0:
        raise ValueError("samples must be >= 1, min_time and warmup >= 0")
    names = list(impls)
    contexts = contexts or {}
    null = contextlib.nullcontext

    def per_name(v):
        return {n: v.get(n) for n in names} if isinstance(v, Mapping) else dict.fromkeys(names, v)

    items, bytes = per_name(items), per_name(bytes)

    def runner(call):
        def run_loops(n: int) -> float:
            start = clock()
            for _ in range(n):
                call()
            return clock() - start
        return run_loops

    runs = {n: runner(impls[n]) for n in names}
    loops = {}
    for n in names:
        with contexts.get(n, null)():
            for _ in range(warmup):
                impls[n]()
            loops[n] = max(_calibrate(runs[n], min_time, max_loops), _calibrate(runs[n], min_time, max_loops))
    raw = {n: np.empty(samples) for n in names}
    faults = dict.fromkeys(names, 0.0)
    order = np.random.default_rng(order_seed)
    for j in range(samples):
        # a fresh order every round: a scheduler that interrupts at a steady period would otherwise land on
        # the same positions of every round
        for i in order.permutation(len(names)):
            n = names[i]
            with contexts.get(n, null)():
                if warmup:
                    impls[n]()
                f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
                raw[n][j] = runs[n](loops[n]) / loops[n]
                faults[n] += resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0
    return {n: Timing(raw[n], loops[n], items[n], bytes[n], faults[n] / (samples * loops[n])) for n in names}


# ---------------------------------------------------------------------------------------------- copy probe

#: Working-set classes of the copy probe, smallest first: a core's private cache, the shared last-level
#: cache, main memory.
LEVELS = ("cache", "llc", "dram")


def _read_cache_sizes(root: Path = Path("/sys/devices/system/cpu/cpu0/cache")) -> dict[int, int]:
    sizes = {}
    for index in sorted(root.glob("index*")):
        try:
            kind = (index / "type").read_text().strip()
            level = int((index / "level").read_text())
            text = (index / "size").read_text().strip().upper()
        except (OSError, ValueError):
            continue
        if kind == "Instruction":
            continue
        scale = {"K": 2**10, "M": 2**20, "G": 2**30}.get(text[-1:], 1)
        try:
            sizes[level] = int(text.rstrip("KMG")) * scale
        except ValueError:
            continue
    return sizes


@functools.cache
def cache_sizes() -> dict[str, int]:
    """Bytes of the private cache (the largest per-core level, L2 as a rule) and of the last-level cache.

    Read from Linux's sysfs; elsewhere 1 MiB and 32 MiB.
    """
    sizes = _read_cache_sizes() if os.path.isdir("/sys/devices/system/cpu/cpu0/cache") else {}
    private = sizes.get(2) or sizes.get(1) or 2**20
    last = max(sizes.values()) if sizes else 32 * 2**20
    if last <= private:
        last = 32 * private
    return {"cache": private, "llc": last}


def working_set_level(nbytes: float | None) -> str:
    """'cache', 'llc' or 'dram': the smallest level that holds `nbytes` (None counts as small)."""
    sizes = cache_sizes()
    n = nbytes or 0
    if n <= sizes["cache"]:
        return "cache"
    return "llc" if n <= sizes["llc"] else "dram"


def probe_working_set(level: str) -> int:
    """Bytes (source plus destination) the probe copies for `level`: well inside it, or far beyond the LLC."""
    sizes = cache_sizes()
    return {"cache": sizes["cache"] // 2, "llc": sizes["llc"] // 2, "dram": max(4 * sizes["llc"], 2**27)}[level]


@functools.cache
def copy_at(working_set: int, dtype: str = "float32", quick: bool = False,
            clock: Callable[[], float] = time.perf_counter) -> float:
    """GB/s (bytes read + written) of `np.copyto` between two arrays that together take `working_set` bytes.

    The best of the samples: the machine's capability, the median carrying the noise. Cached per process.
    `clock` as in `time_kernel` (a kernel timed on another clock is compared with a probe on that clock).
    """
    n = max(1, int(working_set) // (2 * np.dtype(dtype).itemsize))
    src = np.ones(n, dtype=dtype)
    dst = np.empty_like(src)
    t = time_kernel(np.copyto, dst, src, clock=clock, **(QUICK if quick else PROBE))
    return 2 * src.nbytes / float(np.min(t.samples)) / 1e9


def copy_bandwidth(quick: bool = False) -> dict[str, float]:
    """The machine's copy bandwidth in GB/s (bytes read + written), per dtype and working-set level.

    Keys `<dtype>_<level>` for float32 and float64 and each of LEVELS: `cache` copies half the private
    cache, `llc` half the last-level cache, `dram` four times the last-level cache (at least 128 MiB).
    Measured once per process.
    """
    return {f"{dtype}_{level}": copy_at(probe_working_set(level), dtype, quick)
            for dtype in ("float32", "float64") for level in LEVELS}


def bandwidth_fraction(gbps: float | None, nbytes: float | None, bandwidth: dict, dtype: str = "float32"):
    """`gbps` as a fraction of the copy bandwidth of the level that holds a working set of `nbytes`.

    `nbytes` is what one call moves (read plus written), an upper bound of its working set. Probes
    without an `llc` entry (files of earlier versions) split cache and DRAM at CACHE_BYTES.
    """
    if gbps is None or not bandwidth:
        return None
    if f"{dtype}_llc" in bandwidth:
        where = working_set_level(nbytes)
    else:
        where = "dram" if (nbytes or 0) > CACHE_BYTES else "cache"
    ref = bandwidth.get(f"{dtype}_{where}")
    return None if not ref else gbps / ref
