"""Run experiments into one Results: threads, bandwidth probe, fingerprint, rows, file.

From Python or a notebook:

    >>> from dlbench.runner import run
    >>> res = run("optimizers", quick=True, surface="quadratic")   # doctest: +SKIP
    >>> res.claims[["claim", "verdict", "evidence"]]               # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import warnings
from datetime import datetime
from pathlib import Path
from types import ModuleType

import numpy as np
from threadpoolctl import threadpool_limits

from dlbench import experiments
from dlbench.env import fingerprint
from dlbench.errors import DlbenchError
from dlbench.experiments.base import Progress, RunContext
from dlbench.nn.parallel import kernel_threads
from dlbench.results import Recorder, Results, check_out_path, make_results, write_table
from dlbench.timing import copy_bandwidth

# Six: a percentile bootstrap needs six values for a 95 % interval (see dlbench.stats).
DEFAULT_SEEDS = QUICK_SEEDS = 6


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
    """The module's Options with `values` set; unset fields take their quick value under `quick`."""
    fields = {f.name: f for f in dataclasses.fields(module.Options)}
    unknown = set(values) - set(fields)
    if unknown:
        raise DlbenchError(f"{module.NAME}: unknown option(s) {', '.join(sorted(unknown))}; "
                           f"valid: {', '.join(fields)}")
    kwargs = {}
    for name, f in fields.items():
        if values.get(name) is not None:
            kwargs[name] = values[name]
        elif quick and f.metadata.get("quick") is not None:
            kwargs[name] = f.metadata["quick"]
    return module.Options(**kwargs)


def run_many(
    plan: list[tuple[ModuleType, object]],
    *,
    seed: int = 0,
    seeds: int | None = None,
    quick: bool = False,
    threads: int | None = None,
    out: Path | None = None,
    force: bool = False,
    progress: Progress | None = None,
    argv: list[str] | None = None,
) -> Results:
    """Run each (module, options) pair in one process and return (and write, if `out`) one Results."""
    if seeds is not None and seeds < 1:
        raise DlbenchError("--seeds must be at least 1")
    if threads is not None and not 1 <= threads <= (os.cpu_count() or 1):
        raise DlbenchError(f"--threads must be between 1 and the {os.cpu_count()} cores this machine has")
    n_seeds = seeds or (QUICK_SEEDS if quick else DEFAULT_SEEDS)
    if out is not None:
        check_out_path(Path(out), force)
    limits = threadpool_limits(limits=threads) if threads else contextlib.nullcontext()
    recorders = []
    with limits, kernel_threads(threads or 1):  # dlbench's own kernels: one thread unless --threads
        bandwidth = copy_bandwidth(quick)
        fp = fingerprint(argv)
        for module, opts in plan:
            rec = Recorder(module.NAME)
            ctx = RunContext(seed=seed, seeds=n_seeds, quick=quick, record=rec,
                             bandwidth=bandwidth, progress=progress or Progress())
            # Divergence is a measured outcome: the tables report it, NumPy's warnings would only add noise.
            with np.errstate(all="ignore"), warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                module.run(opts, ctx)
            recorders.append(rec)
    meta = {
        "fingerprint": fp,
        "bandwidth": bandwidth,
        "seed": seed,
        "seeds": [seed + i for i in range(n_seeds)],
        "quick": quick,
        "kernel_threads": threads or 1,
        "options": {m.NAME: dataclasses.asdict(o) for m, o in plan},
    }
    table, results = make_results(recorders, meta)
    if out is not None:
        results.path = write_table(table, Path(out), force=force)
    return results


def run(name: str, *, seed: int = 0, seeds: int | None = None, quick: bool = False,
        threads: int | None = None, out: Path | None = None, force: bool = False, **options) -> Results:
    """Run one experiment by name with its options as keywords (the library form of the CLI)."""
    module = experiments.load(name)
    plan = [(module, make_options(module, quick, **options))]
    return run_many(plan, seed=seed, seeds=seeds, quick=quick, threads=threads, out=out, force=force)
