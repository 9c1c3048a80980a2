"""Run experiments into one Results: threads, bandwidth probe, fingerprint, parts, verdicts, file.

From Python or a notebook:

    >>> from dlbench.runner import run
    >>> res = run("optimizers", quick=True, surface="quadratic")   # doctest: +SKIP
    >>> res.claims[["claim", "verdict", "evidence"]]               # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import warnings
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from types import ModuleType

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from dlbench import experiments
from dlbench.env import fingerprint
from dlbench.errors import DlbenchError, UnknownName
from dlbench.experiments.base import Progress, RunContext, catalogue, parts_of
from dlbench.nn.parallel import kernel_threads
from dlbench.protocol import judge
from dlbench.results import Recorder, Results, check_out_path, make_results, write_table
from dlbench.timing import copy_bandwidth

# Six: a percentile bootstrap needs six values for a 95 % interval (see dlbench.stats).
DEFAULT_SEEDS = QUICK_SEEDS = 6
#: Several base seeds must be this far apart: a claim uses at most this many replica seeds from its base.
BASE_SEED_SPACING = 100


def default_out(name: str, directory: Path = Path("results")) -> Path:
    """A fresh file name: results/<name>-<YYYYmmdd-HHMMSS>.parquet (never an existing file)."""
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    path = directory / f"{name}-{stamp}.parquet"
    i = 2
    while path.exists():
        path = directory / f"{name}-{stamp}-{i}.parquet"
        i += 1
    return path


def make_options(module: ModuleType, quick: bool = False, **values):
    """The module's Options with `values` set; unset fields take their quick value under `quick`.

    Every value is checked against its field's choices and range here, so the library (and a
    notebook) refuses exactly what the command line refuses, in the same one line.
    """
    fields = {f.name: f for f in dataclasses.fields(module.Options)}
    unknown = set(values) - set(fields)
    if unknown:
        raise DlbenchError(f"{module.NAME}: unknown option(s) {', '.join(sorted(unknown))}; "
                           f"valid: {', '.join(fields)}")
    kwargs = {}
    for name, f in fields.items():
        if values.get(name) is not None:
            kwargs[name] = check_option(f, values[name])
        elif quick and f.metadata.get("quick") is not None:
            kwargs[name] = f.metadata["quick"]
    return module.Options(**kwargs)


def check_option(f: dataclasses.Field, value):
    """`value` if it fits the field's choices and range; else one DlbenchError line naming the flag."""
    meta, flag = f.metadata, "--" + f.name.replace("_", "-")
    low, high = meta.get("min"), meta.get("max")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        if (low is not None or high is not None) and not isinstance(value, bool):
            raise DlbenchError(f"{flag}: expected a number, got {value!r}")
    else:
        if not math.isfinite(value):
            raise DlbenchError(f"{flag}: expected a finite number, got {value!r}")
        if low is not None and value < low:
            raise DlbenchError(f"{flag} {value!r}: must be at least {low:g}")
        if high is not None and value > high:
            raise DlbenchError(f"{flag} {value!r}: must be at most {high:g}")
    if meta.get("choices") and isinstance(value, str):
        valid = list(meta["choices"]())
        items = [value] if f.type in (str, "str") else [t.strip() for t in value.split(",")]
        if f.type not in (str, "str") and value.strip() == "all":
            items = []
        for item in items:
            if item not in valid:
                raise UnknownName(flag.lstrip("-").replace("-", " ").rstrip("s") or "value", item, valid)
    return value


def run_many(
    plan: list[tuple[ModuleType, object]],
    *,
    seed: int | Sequence[int] = 0,
    seeds: int | None = None,
    quick: bool = False,
    threads: int | None = None,
    out: Path | None = None,
    force: bool = False,
    progress: Progress | None = None,
    argv: list[str] | None = None,
) -> Results:
    """Run each (module, options) pair for each base seed and return (and write, if `out`) one Results.

    `seed` is one base seed or several: with several, every part runs once per base seed and each
    claim is judged across them (`dlbench.protocol.judge`: a verdict that changes with the base seed
    is inconclusive).
    """
    base_seeds = [int(s) for s in ([seed] if isinstance(seed, (int, np.integer)) else seed)]
    if not base_seeds or any(s < 0 for s in base_seeds):
        raise DlbenchError("--seed must be one or more integers of 0 or more")
    if len(set(base_seeds)) != len(base_seeds):
        raise DlbenchError(f"--seed {','.join(map(str, base_seeds))}: a base seed is given twice")
    close = min((abs(a - b) for i, a in enumerate(base_seeds) for b in base_seeds[:i]), default=None)
    if close is not None and close < BASE_SEED_SPACING:
        raise DlbenchError(f"--seed {','.join(map(str, base_seeds))}: base seeds must be at least "
                           f"{BASE_SEED_SPACING} apart, or their replicas (seed, seed + 1, ...) overlap and the "
                           "agreement between them is partly the same data")
    if seeds is not None and seeds < 1:
        raise DlbenchError("--seeds must be at least 1")
    if threads is not None and not 1 <= threads <= (os.cpu_count() or 1):
        raise DlbenchError(f"--threads must be between 1 and the {os.cpu_count()} cores this machine has")
    n_seeds = seeds or (QUICK_SEEDS if quick else DEFAULT_SEEDS)
    if out is not None:
        check_out_path(Path(out), force)
    for module, opts in plan:
        check_memory(module, opts, n_seeds)
    limits = threadpool_limits(limits=threads) if threads else contextlib.nullcontext()
    recorders = []
    with limits, kernel_threads(threads or 1):  # dlbench's own kernels: one thread unless --threads
        bandwidth = copy_bandwidth(quick)
        fp = fingerprint(argv)
        for module, opts in plan:
            recorders += run_experiment(module, opts, base_seeds=base_seeds, seeds=n_seeds, quick=quick,
                                        bandwidth=bandwidth, progress=progress or Progress(),
                                        timing_threads=threads or 1)
    meta = {
        "fingerprint": fp,
        "bandwidth": bandwidth,
        "seed": base_seeds[0],
        "base_seeds": base_seeds,
        "seeds": [base_seeds[0] + i for i in range(n_seeds)],
        "quick": quick,
        "timing_threads": threads or 1,     # BLAS threads of the timing parts
        "kernel_threads": threads or 1,     # threads of dlbench's own elementwise and norm kernels
        "options": {m.NAME: dataclasses.asdict(o) for m, o in plan},
        "sections": {m.NAME: dict(getattr(m, "SECTIONS", {})) for m, _ in plan},
    }
    table, results = make_results(recorders, meta)
    if out is not None:
        results.path = write_table(table, Path(out), force=force)
    return results


def run_experiment(module: ModuleType, opts, *, base_seeds: Sequence[int], seeds: int, quick: bool,
                   bandwidth: dict, progress: Progress, timing_threads: int = 1) -> list[Recorder]:
    """Every part of one experiment for every base seed, then one verdict per claim of its catalogue.

    Timing parts run last, on `timing_threads` BLAS threads (one unless --threads says otherwise): a cost
    measured with a thread pool half busy elsewhere, or sized by the machine, is not the operation's cost.
    """
    recorders = []
    parts = parts_of(module, opts)
    for base in base_seeds:
        rec = Recorder(module.NAME, base_seed=base)
        ctx = RunContext(seed=base, seeds=seeds, quick=quick, record=rec, bandwidth=bandwidth, progress=progress)
        # Divergence is a measured outcome: the tables report it, NumPy's warnings would only add noise.
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            for part in sorted(parts, key=lambda p: p.timing):  # timing parts last, with nothing beside them
                with threadpool_limits(limits=timing_threads) if part.timing else contextlib.nullcontext():
                    part.fn(opts, ctx)
        recorders.append(rec)
    recorders.append(judge_claims(module, recorders, base_seeds[0]))
    return recorders


def judge_claims(module: ModuleType, recorders: list[Recorder], base_seed: int) -> Recorder:
    """One claim row per claim of the module's catalogue, judged from the recorders' findings and checks."""
    specs = catalogue(module)
    kinds = ("grid", "check")
    tables = [r.table(kinds) for r in recorders]
    frame = pd.concat([t.to_pandas() for t in tables if t.num_rows], ignore_index=True) if any(
        t.num_rows for t in tables) else pd.DataFrame(columns=["kind", "claim", "role", "verdict", "base_seed"])
    grid, checks = frame[frame["kind"] == "grid"], frame[frame["kind"] == "check"]
    unknown = sorted(set(grid["claim"]) - set(specs))
    if unknown:
        raise ValueError(f"{module.NAME} recorded findings for claims not in its catalogue: {', '.join(unknown)}")
    out = Recorder(module.NAME, base_seed=base_seed)
    for spec in specs.values():
        j = judge(spec, grid, checks)
        timed = spec.basis == "timing" or bool((grid[grid["claim"] == spec.id].get("basis") == "timing").any())
        out.verdict(j, spec.statement, basis="timing" if timed else "measured")
    return out


def check_memory(module: ModuleType, opts, seeds: int) -> None:
    """Refuse, before any work, a run whose estimate does not fit in the memory this machine has free."""
    estimate = getattr(module, "memory", None)
    if estimate is None:
        return
    need = int(estimate(opts, seeds))
    free = available_memory()
    if free is not None and need > free:
        raise DlbenchError(f"{module.NAME} needs about {need / 2**30:.1f} GiB but {free / 2**30:.1f} GiB is free; "
                           "lower its size options (--seeds, --steps, --starts, widths or sizes)")


def available_memory() -> int | None:
    """Bytes of memory available to a new allocation (Linux MemAvailable), or None where unknown."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def run(name: str, *, seed: int | Sequence[int] = 0, seeds: int | None = None, quick: bool = False,
        threads: int | None = None, out: Path | None = None, force: bool = False, **options) -> Results:
    """Run one experiment by name with its options as keywords (the library form of the CLI)."""
    module = experiments.load(name)
    plan = [(module, make_options(module, quick, **options))]
    return run_many(plan, seed=seed, seeds=seeds, quick=quick, threads=threads, out=out, force=force)
