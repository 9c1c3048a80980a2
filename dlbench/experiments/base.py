"""What an experiment provides, and the context it runs in.

An experiment is a package (or module) under `dlbench/experiments/` with:

    NAME = "optimizers"                  # the subcommand
    HELP = "One line for --help."
    CLAIMS = {"O4": ClaimSpec(...), ...}  # the claims it measures (dlbench.protocol.ClaimSpec)
    CHECKS = {"O8": CheckSpec(...), ...}  # the exact identities it checks (optional)
    SECTIONS = {"o4.oscillation": "O4 · oscillation on the canyon", ...}   # section id -> title

    @dataclass
    class Options:                       # its own options; the CLI is generated from these fields
        surface: str = option("canyon", help="...", choices=lambda: list(SURFACES))

    def parts(opts) -> list[Part]:       # its independent units of work (or one `run(opts, ctx)`)
        ...

Each part measures and records through its RunContext: `ctx.record.metric/curve(...)`,
`ctx.time(...)` for kernel timings (`ctx.time_interleaved(...)` for several compared with each
other), `ctx.finding(claim, finding, point=..., role=...)` for a
claim's finding at one point of its grid (role "control" for its negative control),
`ctx.check(...)` for exact identities. The runner judges every claim from its findings
(`dlbench.protocol.judge`) after the parts have run. Parts carry no state between them and
draw every random number from `ctx.rng(purpose, ...)`, so they can run in any order, in other
processes. Optional: `plot(results, path)` (enables `--plot FILE`; matplotlib is imported
inside it), `SUITE_OPTIONS` (option values `dlbench suite` uses) and `memory(opts, seeds)` (bytes
the run needs, checked before it starts). It registers with one line in
`dlbench/experiments/__init__.py`. It imports neither typer nor rich.
"""

from __future__ import annotations

import contextlib
import math
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from dlbench import timing
from dlbench.errors import DlbenchError
from dlbench.results import Recorder
from dlbench.protocol import CheckSpec, ClaimSpec
from dlbench.stats import Finding


#: The sizes a run can have (`--size`): `quick` for tests and CI, `default`, and `paper`, the sizes of the
#: papers behind the claims (a protocol-grade run meant for every core or a cluster).
SIZES = ("quick", "default", "paper")


def option(default: Any, help: str, *, choices: Callable[[], list[str]] | None = None,
           min: float | None = None, max: float | None = None, metavar: str | None = None,
           quick: Any = None, paper: Any = None):
    """A field of an experiment's Options: its default, help text, valid choices or range.

    `quick` is the value used under `--quick` (`--size quick`) and `paper` the value used under
    `--size paper` when the user did not set the option; without one, the default is used.
    """
    meta = {"help": help, "choices": choices, "min": min, "max": max, "metavar": metavar, "quick": quick,
            "paper": paper}
    return field(default=default, metadata=meta)


def has_size(module, size: str) -> bool:
    """Whether the module can run at `size`: always at `default` and `quick` (its grids shrink under quick
    even where no option does); at `paper` when at least one option has a paper value."""
    import dataclasses

    return size != "paper" or any(f.metadata.get(size) is not None for f in dataclasses.fields(module.Options))


@dataclass(frozen=True)
class Part:
    """One independent unit of an experiment's work: `fn(opts, ctx)` records rows and findings.

    timing: the part times kernels, so it runs alone on its host, after the other parts (in the process
    that started the run, one timing part at a time, on --threads BLAS threads).
    heavy: for one of the longest parts of the suite, its rough CPU seconds at the default size on the
    project's machine (0: not one of them); where no earlier run left its duration (a first run, or the
    first after dlbench changed), the fan-out hands the heavy parts out first, the heaviest first, so that
    none of them starts last and keeps one worker busy while the others wait.
    """

    name: str
    fn: Callable[[Any, "RunContext"], None]
    timing: bool = False
    heavy: float = 0.0


def parts_of(module, opts) -> list[Part]:
    """The module's parts for these options, each name once.

    A module that defines no parts is one part calling `run`: it may time kernels anywhere inside, so it
    is a timing part (it runs alone, after the others, in the process that started the run).
    """
    if not hasattr(module, "parts"):
        return [Part("run", module.run, timing=True)]
    parts = list(module.parts(opts))
    names = [p.name for p in parts]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ValueError(f"{module.NAME}: part name(s) {', '.join(twice)} given twice; each part needs its own")
    return parts


def catalogue(module) -> dict[str, ClaimSpec]:
    """The module's claims as ClaimSpecs (a bare statement string becomes a spec with only that)."""
    return {k: v if isinstance(v, ClaimSpec) else ClaimSpec(k, v) for k, v in getattr(module, "CLAIMS", {}).items()}


def checks_of(module) -> dict[str, CheckSpec]:
    return dict(getattr(module, "CHECKS", {}))


class Progress:
    """Progress reporting for long loops; the CLI passes a Rich-backed one, tests a silent one."""

    @contextlib.contextmanager
    def task(self, description: str, total: float | None = None) -> Iterator[Callable[..., None]]:
        yield lambda advance=1: None

    @contextlib.contextmanager
    def units(self, total: int, workers: int, done: int = 0) -> Iterator[Callable[..., None]]:
        """A bar over a run's units; the runner calls the yielded `update(done=, running=, failed=,
        workers=, phase=)` with any of those counts whenever one changes."""
        yield lambda **counts: None


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

    def time_interleaved(self, metric: str, calls: Sequence[tuple[dict, Callable[[], object]]], *, items=None,
                         bytes=None, section: str = "timings") -> list[timing.Timing]:
        """Time several (case, zero-argument call) pairs sample by sample in turn with the run's timing
        settings, and record each one's raw samples under `metric` and its case: the samples of two calls
        with the same index were taken side by side, so their ratio is a paired comparison."""
        keys = [str(i) for i in range(len(calls))]
        per_call = (lambda v: None if v is None else dict(zip(keys, v)))
        ts = timing.time_interleaved(dict(zip(keys, (c for _, c in calls))), items=per_call(items),
                                     bytes=per_call(bytes), order_seed=self.seed, **self.timing_config)
        for (case, _), k in zip(calls, keys):
            self.record.timing(metric, ts[k], case=case, section=section)
        return [ts[k] for k in keys]

    def finding(self, claim: str, f: Finding, *, point: dict | None = None, role: str = "claim",
                timing: bool = False) -> Finding:
        """Record `claim`'s finding at one point of its nuisance grid, as the claim or as its control."""
        return self.record.finding(claim, f, point=point, role=role, timing=timing)

    def not_run(self, claim: str, reason: str, *, point: dict | None = None) -> None:
        """Record that this run does not measure `claim` (or one point of its grid), and why."""
        self.record.not_run(claim, reason, point=point)

    def check(self, check_id: str, error: float, tolerance: float, *, what: str, n: int = 1,
              claim: str = "") -> bool:
        """Record an exact identity; it passes when `error` is within `tolerance`."""
        return self.record.check(check_id, error, tolerance, what=what, n=n, claim=claim)



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
