"""Kernel threads: how many threads dlbench's elementwise, norm and optimizer kernels split large arrays over.

NumPy's ufuncs run on one thread but release the GIL inside their loops, so the kernels can split a large
array into contiguous parts and run the parts on a small pool of threads. The thread count is a property of
a block of code, not of the process:

    >>> from dlbench.nn.parallel import kernel_threads
    >>> with kernel_threads(2):          # doctest: +SKIP
    ...     act.forward(x, out=y)        # two threads, each over one half of x

Outside any ``kernel_threads`` block (the default) every kernel runs on the calling thread alone, which is
what timing claims assume. The count lives in a context variable and the pool is made on entering the block
and shut down on leaving it, so nothing carries over from one run to the next, and a kernel running on a
pool thread (where the context variable has its default) never splits again.

Results do not depend on the thread count: elementwise parts are independent, and kernels that reduce
(the norms' statistics, their parameter gradients) reduce each part in a fixed blocking and add the parts
in block order, whichever thread computed them.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor

from dlbench.errors import DlbenchError

#: Arrays smaller than this many elements are never split: handing a part to a pool thread costs
#: ~20 us, what a few passes over 2^17 float32 elements in cache cost.
MIN_PARALLEL_ELEMS = 2**17


class _Pool:
    """n - 1 worker threads; the calling thread runs the first part itself."""

    def __init__(self, n: int):
        self.n = n
        self.executor = ThreadPoolExecutor(max_workers=n - 1, thread_name_prefix="dlbench-kernel")

    def map(self, fn: Callable, parts: Sequence) -> list:
        # each pool thread runs its part in a copy of the caller's context (NumPy's errstate and buffer
        # size live there), with no pool in it: a kernel on a pool thread never splits again
        futures = [self.executor.submit(contextvars.copy_context().run, _alone, fn, p) for p in parts[1:]]
        first = fn(parts[0])
        return [first] + [f.result() for f in futures]


def _alone(fn: Callable, part):
    _POOL.set(None)
    return fn(part)


_POOL: contextvars.ContextVar[_Pool | None] = contextvars.ContextVar("dlbench_kernel_pool", default=None)


@contextlib.contextmanager
def kernel_threads(n: int) -> Iterator[int]:
    """Run dlbench's kernels on ``n`` threads inside the block (1: on the calling thread alone).

    Blocks nest; the innermost count applies. Raises DlbenchError for a count below 1.
    """
    if isinstance(n, bool) or int(n) != n or n < 1:
        raise DlbenchError(f"kernel threads must be a positive integer, got {n!r}")
    n = int(n)
    pool = _Pool(n) if n > 1 else None
    token = _POOL.set(pool)
    try:
        yield n
    finally:
        _POOL.reset(token)
        if pool is not None:
            pool.executor.shutdown(wait=True)


def current_threads() -> int:
    """The kernel thread count in force here (1 outside any ``kernel_threads`` block)."""
    pool = _POOL.get()
    return 1 if pool is None else pool.n


def parts_for(size: int) -> int:
    """How many parts to split ``size`` elements of work into: the thread count, or 1 for small work."""
    pool = _POOL.get()
    if pool is None or size < MIN_PARALLEL_ELEMS:
        return 1
    return min(pool.n, size // (MIN_PARALLEL_ELEMS // 2))


def split(n: int, parts: int, align: int = 1) -> list[slice]:
    """``parts`` contiguous slices covering range(n), boundaries on multiples of ``align`` (empty ones dropped)."""
    units = -(-n // align)
    bounds = [min(n, (units * i // parts) * align) for i in range(parts + 1)]
    return [slice(a, b) for a, b in zip(bounds[:-1], bounds[1:]) if b > a]


def run_parts(fn: Callable, parts: Sequence) -> list:
    """[fn(p) for p in parts], the parts spread over the kernel threads (the caller runs the first)."""
    pool = _POOL.get()
    if pool is None or len(parts) < 2:
        return [fn(p) for p in parts]
    return pool.map(fn, parts)
