"""An experiment for the executor's tests: parts that can sleep, fail, or end their own process.

Each part is a `Measure(index)` (a picklable callable, like a module-level function). Part 0 records
claim W1's findings, part 1 claim W2's; the others only metrics; `work.timing` times a kernel.
"""

import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dlbench.experiments.base import Part, option
from dlbench.protocol import Axis, ClaimSpec
from dlbench.stats import finding

NAME = "work"
HELP = "Units that sleep, fail or die, for the executor's tests."
CLAIMS = {
    "W1": ClaimSpec("W1", "the first part's value is positive", measures="median value above 0",
                    control="the value minus one", grid=(Axis("k", (1, 2)),), threshold="any", literature="none"),
    "W2": ClaimSpec("W2", "the second part's value is positive", measures="median value above 0",
                    control="the value minus one", threshold="any", literature="none"),
}
SECTIONS = {"work.values": "values", "work.timing": "timing"}


@dataclass
class Options:
    parts: int = option(4, help="Parts besides the timing part.", min=2, max=64, paper=16)
    sleep: float = option(0.0, help="Seconds each part sleeps.", min=0, max=30)
    fail: str = option("", help="The index of a part that raises (or 'all'); INDEX@SEED: only at that base seed.")
    die: str = option("", help="The index of a part that kills its own process.")
    mark: str = option("", help="A folder where each part leaves a file named index-seed-pid when it starts.")


@dataclass(frozen=True)
class Measure:
    index: int

    def __call__(self, opts, ctx):
        if opts.mark:
            Path(opts.mark, f"{self.index}-{ctx.seed}-{os.getpid()}").touch()
        if opts.sleep:
            time.sleep(opts.sleep)
        if opts.fail in (str(self.index), "all", f"{self.index}@{ctx.seed}"):
            raise ValueError(f"part {self.index} is told to fail")
        if opts.die == str(self.index):
            os.kill(os.getpid(), signal.SIGKILL)
        values = ctx.rng("values", self.index).normal(1.0, 0.1, ctx.seeds)
        ctx.record.metric("value", values, case={"part": self.index}, seeds=ctx.seed_list, section="work.values")
        ctx.record.curve("trace", np.cumsum(values), case={"part": self.index, "scale": 0.5 * self.index},
                         seed=ctx.seed, section="work.values")
        if self.index == 0:
            for k in (1, 2):
                ctx.finding("W1", finding(values * k, label="value"), point={"k": k})
            ctx.finding("W1", finding(values - 1.0, label="value - 1"), role="control")
        if self.index == 1:
            ctx.finding("W2", finding(values, label="value"))
            ctx.finding("W2", finding(values - 1.0, label="value - 1"), role="control")


def time_sum(opts, ctx):
    x = np.ones(1 << 14, np.float32)
    ctx.time("sum", np.sum, x, case={"n": x.size}, items=x.size, bytes=x.nbytes, section="work.timing")


def parts(opts):
    return [*(Part(f"work.p{i}", Measure(i)) for i in range(opts.parts)), Part("work.timing", time_sum, timing=True)]
