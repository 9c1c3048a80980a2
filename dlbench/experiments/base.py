"""What an experiment module provides, and the context it runs in.

An experiment is a module under `dlbench/experiments/` with:

    NAME = "optimizers"                  # the subcommand
    HELP = "One line for --help."
    CLAIMS = {"O1": "statement", ...}    # the claims it measures (ids from CLAIMS.md)

    @dataclass
    class Options:                       # its own options; the CLI is generated from these fields
        surface: str = option("canyon", help="...", choices=lambda: list(SURFACES))

    def run(opts: Options, ctx: RunContext) -> None:
        ...  # measures, then ctx.record.metric/curve/timing/claim(...)

and optionally `plot(results, path)` (enables `--plot FILE`) and `SUITE_OPTIONS`, a dict
of option values `dlbench suite` uses (e.g. to run every claim). It registers with one
line in `dlbench/experiments/__init__.py`. It imports neither typer nor rich.
"""

from __future__ import annotations

import contextlib
import math
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from dlbench import timing
from dlbench.errors import DlbenchError
from dlbench.results import Recorder
from dlbench.stats import Claim


def option(default: Any, help: str, *, choices: Callable[[], list[str]] | None = None,
           min: float | None = None, max: float | None = None, metavar: str | None = None,
           quick: Any = None):
    """A field of an experiment's Options: its default, help text, valid choices or range.

    `quick` is the value used under `--quick` when the user did not set the option.
    """
    meta = {"help": help, "choices": choices, "min": min, "max": max, "metavar": metavar, "quick": quick}
    return field(default=default, metadata=meta)


class Progress:
    """Progress reporting for long loops; the CLI passes a Rich-backed one, tests a silent one."""

    @contextlib.contextmanager
    def task(self, description: str, total: float | None = None) -> Iterator[Callable[..., None]]:
        yield lambda advance=1: None


@dataclass
class RunContext:
    """What every experiment gets: seeds, size, where to record, the copy bandwidth, timing settings."""

    seed: int = 0
    seeds: int = 5
    quick: bool = False
    record: Recorder = field(default_factory=lambda: Recorder("experiment"))
    bandwidth: dict = field(default_factory=dict)
    progress: Progress = field(default_factory=Progress)

    @property
    def seed_list(self) -> list[int]:
        """One integer seed per replica: replica i of a run with --seed s uses s + i."""
        return [self.seed + i for i in range(self.seeds)]

    def rng(self, *key: object) -> np.random.Generator:
        """A generator for one named purpose, independent of every other purpose's stream."""
        words = [zlib.crc32(str(k).encode()) for k in key]
        return np.random.default_rng([self.seed, *words])

    @property
    def timing_config(self) -> dict:
        return dict(timing.QUICK if self.quick else timing.DEFAULT)

    def time(self, metric: str, fn: Callable, *args, case: dict, items=None, bytes=None,
             section: str = "timings", **kwargs) -> timing.Timing:
        """Time `fn(*args, **kwargs)` with the run's timing settings and record the raw samples."""
        t = timing.time_kernel(fn, *args, items=items, bytes=bytes, **self.timing_config, **kwargs)
        self.record.timing(metric, t, case=case, section=section)
        return t

    def claim(self, c: Claim, *, timing: bool = False) -> Claim:
        """Record a verdict; `timing=True` when it rests on wall-time measurements (compare then
        treats a change of it as a timing result, not as a change of what the claim measures)."""
        return self.record.claim(c, timing=timing)


def parse_numbers(text: str, kind: type = int, *, what: str = "value", positive: bool = True) -> list:
    """'1,2,4' -> [1, 2, 4], with one clear error line for anything else."""
    items = str(text).replace(" ", "").split(",")
    try:
        values = [kind(t) for t in items]
    except ValueError:
        raise DlbenchError(f"{what}: expected comma-separated {kind.__name__}s, got {text!r}") from None
    if not all(math.isfinite(v) for v in values):
        raise DlbenchError(f"{what}: every value must be finite, got {text!r}")
    if len(set(values)) != len(values):
        raise DlbenchError(f"{what}: a value is given twice in {text!r}")
    if positive and any(v <= 0 for v in values):
        raise DlbenchError(f"{what}: every value must be positive, got {text!r}")
    return values
