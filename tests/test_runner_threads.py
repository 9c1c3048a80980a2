"""The runner gives dlbench's kernels the run's thread count (one unless --threads) and records it."""

import os
import types
from dataclasses import dataclass

import numpy as np
import pytest

from dlbench.nn.parallel import current_threads
from dlbench.runner import run_many


def _probe_module():
    """An experiment that records the kernel thread count it runs under."""

    @dataclass
    class Options:
        pass

    def run(opts, ctx):
        ctx.record.metric("kernel threads", np.array([float(current_threads())]), case={}, better="none")

    return types.SimpleNamespace(NAME="probe", Options=Options, run=run)


@pytest.mark.parametrize("threads", [None, 1, 2])
def test_kernel_threads_follow_threads_and_are_recorded(threads):
    if threads and threads > (os.cpu_count() or 1):
        pytest.skip("needs two cores")
    module = _probe_module()
    res = run_many([(module, module.Options())], seeds=1, quick=True, threads=threads)
    want = threads or 1
    assert res.meta["kernel_threads"] == want
    assert res.rows.loc[res.rows["metric"] == "kernel threads", "value"].tolist() == [float(want)]
    assert current_threads() == 1  # nothing carries over from the run
