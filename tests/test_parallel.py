"""Kernel threads (dlbench.nn.parallel): the count is scoped to a block, parts cover the work, pool threads
run in the caller's NumPy settings and never split again."""

import threading

import numpy as np
import pytest

from dlbench.errors import DlbenchError
from dlbench.nn import parallel
from dlbench.nn.parallel import current_threads, kernel_threads, run_parts, split


def test_one_thread_outside_any_block_and_the_innermost_count_inside():
    assert current_threads() == 1
    with kernel_threads(3) as n:
        assert n == 3 and current_threads() == 3
        with kernel_threads(1):
            assert current_threads() == 1
        assert current_threads() == 3
    assert current_threads() == 1


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "2"])
def test_bad_counts_are_user_errors(bad):
    with pytest.raises((DlbenchError, TypeError, ValueError)):
        with kernel_threads(bad):
            pass


def test_the_pool_is_gone_after_the_block():
    before = {t.name for t in threading.enumerate()}
    with kernel_threads(3):
        run_parts(lambda p: p, [1, 2, 3])
        assert any(t.name.startswith("dlbench-kernel") for t in threading.enumerate())
    after = {t.name for t in threading.enumerate()}
    assert not any(name.startswith("dlbench-kernel") for name in after - before)


@pytest.mark.parametrize(("n", "parts", "align"), [(10, 3, 1), (1000, 2, 64), (5, 4, 2), (7, 1, 3), (3, 5, 1)])
def test_split_covers_the_range_in_order_on_aligned_bounds(n, parts, align):
    slices = split(n, parts, align)
    assert 1 <= len(slices) <= parts
    assert slices[0].start == 0 and slices[-1].stop == n
    for a, b in zip(slices[:-1], slices[1:]):
        assert a.stop == b.start and a.stop % align == 0
    assert all(s.stop > s.start for s in slices)


def test_run_parts_keeps_order_runs_on_the_pool_and_in_the_callers_numpy_settings():
    seen = {}

    def part(i):
        seen[i] = (threading.current_thread().name, np.geterr()["over"], np.getbufsize(), current_threads())
        return i * i

    with kernel_threads(3), np.errstate(over="ignore"):
        np.setbufsize(64)
        try:
            assert run_parts(part, [0, 1, 2]) == [0, 1, 4]
        finally:
            np.setbufsize(8192)
    assert seen[0][0] == threading.current_thread().name            # the caller runs the first part
    assert all(seen[i][0].startswith("dlbench-kernel") for i in (1, 2))
    assert all(seen[i][1:3] == ("ignore", 64) for i in range(3))
    assert [seen[i][3] for i in range(3)] == [3, 1, 1]               # a pool thread never splits again


def test_errors_in_a_part_reach_the_caller():
    def part(i):
        if i == 2:
            raise ValueError("part 2")
        return i

    with kernel_threads(2), pytest.raises(ValueError, match="part 2"):
        run_parts(part, [0, 1, 2])


def test_small_work_is_not_split():
    with kernel_threads(2):
        assert parallel.parts_for(parallel.MIN_PARALLEL_ELEMS - 1) == 1
        assert parallel.parts_for(10 * parallel.MIN_PARALLEL_ELEMS) == 2
    assert parallel.parts_for(10 * parallel.MIN_PARALLEL_ELEMS) == 1
