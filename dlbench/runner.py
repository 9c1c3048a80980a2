"""Run experiments into one Results: options, bandwidth probe, fingerprint, units, verdicts, file.

The units (one part of one experiment at one base seed) run through `dlbench.executor`: in this
process, on local worker processes or on a Dask cluster, with the same rows whatever runs them.

From Python or a notebook:

    >>> from dlbench.runner import run
    >>> res = run("optimizers", quick=True, surface="quadratic")   # doctest: +SKIP
    >>> res.claims[["claim", "verdict", "evidence"]]               # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from types import ModuleType

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from threadpoolctl import threadpool_limits

from dlbench import experiments
from dlbench.env import fingerprint
from dlbench.errors import DlbenchError, UnknownName
from dlbench.executor import Unit, UnitCache, default_cache_root, execute, open_workers
from dlbench.experiments.base import SIZES, Progress, catalogue, has_size, parts_of
from dlbench.protocol import judge
from dlbench.results import Recorder, Results, check_out_path, results_from_tables, write_table
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


def make_options(module: ModuleType, quick: bool = False, *, size: str | None = None, **values):
    """The module's Options with `values` set; unset fields take their value at `size` (`quick`, `paper`)
    where they have one (`quick=True` is `size="quick"`), else their default.

    Every value is checked against its field's choices and range here, so the library (and a
    notebook) refuses exactly what the command line refuses, in the same one line.
    """
    size = check_size(size, quick)
    fields = {f.name: f for f in dataclasses.fields(module.Options)}
    unknown = set(values) - set(fields)
    if unknown:
        raise DlbenchError(f"{module.NAME}: unknown option(s) {', '.join(sorted(unknown))}; "
                           f"valid: {', '.join(fields)}")
    kwargs = {}
    for name, f in fields.items():
        if values.get(name) is not None:
            kwargs[name] = check_option(f, values[name])
        elif size != "default" and f.metadata.get(size) is not None:
            kwargs[name] = f.metadata[size]
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
    workers: int | str | None = None,
    scheduler: str | None = None,
    size: str | None = None,
    cache_dir: Path | None | bool = None,
) -> Results:
    """Run each (module, options) pair for each base seed and return (and write, if `out`) one Results.

    `seed` is one base seed or several: with several, every part runs once per base seed and each
    claim is judged across them (`dlbench.protocol.judge`: a verdict that changes with the base seed
    is inconclusive). The units (one part at one base seed) run in this process (`workers` 1, the
    default), on `workers` local processes (`"auto"`: one per core) or on the Dask cluster at
    `scheduler`; timing units run afterwards in this process, one at a time (`dlbench.executor`). Every
    unit runs on `threads` BLAS threads (default 1), so every number but the timings is the same
    whatever runs it. Finished units are kept in the unit cache (`cache_dir`; None: the default place,
    False: none) until the run has them all, so the same call after an interruption redoes only the rest.
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
    cores = os.cpu_count() or 1
    if threads is not None and not 1 <= threads <= cores:
        raise DlbenchError(f"--threads must be between 1 and the {cores} cores this machine has")
    size = check_size(size, quick)
    quick = size == "quick"
    n_workers = check_workers(workers, scheduler)
    unit_threads = threads or 1
    if not scheduler and n_workers * unit_threads > cores:
        raise DlbenchError(f"--workers {n_workers} x --threads {unit_threads} asks for more than the {cores} cores "
                           "this machine has")
    n_seeds = seeds or (QUICK_SEEDS if quick else DEFAULT_SEEDS)
    if out is not None:
        check_out_path(Path(out), force)
    # timing parts last, as they will run: after the fan-out, one at a time
    plan_parts = [(module, opts, sorted(parts_of(module, opts), key=lambda p: p.timing)) for module, opts in plan]
    for module, opts, parts in plan_parts:
        side_by_side = 1 if scheduler else min(n_workers, len(base_seeds) * sum(not p.timing for p in parts))
        check_memory(module, opts, n_seeds, at_once=side_by_side)
    cache = UnitCache(default_cache_root() if cache_dir is None else (cache_dir or None))
    with open_workers(n_workers, scheduler) as pool:  # connects (and checks) the cluster before any work
        with threadpool_limits(limits=unit_threads):
            bandwidth = copy_bandwidth(quick)
            fp = fingerprint(argv)
        units = [Unit(module.NAME, part.name, part.fn, opts, base, n_seeds, quick, unit_threads, part.timing, bandwidth,
                      part.heavy) for module, opts, parts in plan_parts for base in base_seeds for part in parts]
        report = execute(units, pool, cache, progress)
        description = pool.description
    tables, failures = [], []
    i = 0
    for module, opts, parts in plan_parts:
        mine = range(i, i + len(base_seeds) * len(parts))
        i += len(mine)
        got = [report.outcomes[j].table for j in mine if report.outcomes[j] is not None]
        lost = [UnitFailure(units[j].part, units[j].base_seed, report.failed[j],
                            _claims_of(units[j].part, [k for k in mine if units[k].part == units[j].part], report))
                for j in mine if j in report.failed]
        failures += [{"experiment": module.NAME, "part": f.part, "base_seed": f.base_seed, "error": f.error}
                     for f in lost]
        tables += got
        tables.append(judge_claims(module, got, base_seeds[0], lost).table())
    meta = {
        "fingerprint": fp,
        "bandwidth": bandwidth,
        "seed": base_seeds[0],
        "base_seeds": base_seeds,
        "seeds": [base_seeds[0] + i for i in range(n_seeds)],
        "quick": quick,
        "size": size,
        "sizes": {m.NAME: size if has_size(m, size) else "default" for m, _ in plan},
        "timing_threads": unit_threads,     # BLAS threads of every unit, the timing ones too
        "kernel_threads": unit_threads,     # threads of dlbench's own elementwise and norm kernels
        "threads": unit_threads,
        "workers": description,
        "units": {"total": len(units), "reused": report.reused, "failed": len(report.failed),
                  "cache": str(cache.root) if cache.root is not None else None},
        "unit_log": report.log,
        "failed_units": failures,
        "notes": report.notes,
        "options": {m.NAME: dataclasses.asdict(o) for m, o in plan},
        "sections": {m.NAME: dict(getattr(m, "SECTIONS", {})) for m, _ in plan},
    }
    table, results = results_from_tables(tables, meta)
    if out is not None:
        results.path = write_table(table, Path(out), force=force)
    if not report.failed:  # every unit is in the results: the cache has done its work
        cache.discard(report.keys)
    return results


@dataclasses.dataclass(frozen=True)
class UnitFailure:
    """A unit that failed twice: its part, base seed, error, and the claims that part records (None if unknown:
    it failed at every base seed)."""

    part: str
    base_seed: int
    error: str
    claims: frozenset | None


def _claims_of(part: str, indices: list[int], report) -> frozenset | None:
    """The claims a part recorded findings for, at the base seeds where it did not fail."""
    found = [report.outcomes[j].table for j in indices if report.outcomes[j] is not None]
    if not found:
        return None
    claims = set()
    for t in found:
        grid = t.filter(pc.equal(t.column("kind"), "grid"))
        claims |= {c for c in grid.column("claim").to_pylist() if c}
    return frozenset(claims)


def check_size(size: str | None, quick: bool = False) -> str:
    """'quick', 'default' or 'paper' (`quick=True` is `size='quick'`); one line for anything else."""
    if size is None:
        return "quick" if quick else "default"
    if size not in SIZES:
        raise DlbenchError(f"--size {size}: must be one of {', '.join(SIZES)}")
    if quick and size != "quick":
        raise DlbenchError(f"--quick and --size {size} contradict each other: pass one of them")
    return size


def check_workers(workers: int | str | None, scheduler: str | None = None) -> int:
    """The number of local worker processes: a whole number from 1 to the cores, or 'auto' (every core)."""
    cores = os.cpu_count() or 1
    if scheduler and workers is not None:
        raise DlbenchError("--workers and --scheduler contradict each other: --workers sizes a local pool, "
                           "a Dask cluster brings its own workers")
    if workers is None:
        return 1
    if isinstance(workers, str):
        text = workers.strip().lower()
        if text == "auto":
            return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else cores
        if not text.isdigit():
            raise DlbenchError(f"--workers {workers}: expected a whole number or auto")
        workers = int(text)
    if isinstance(workers, bool) or not 1 <= int(workers) <= cores:
        raise DlbenchError(f"--workers {workers}: must be between 1 and the {cores} cores this machine has (or auto)")
    return int(workers)


def judge_claims(module: ModuleType, tables: list, base_seed: int,
                 failures: Sequence[UnitFailure] = ()) -> Recorder:
    """One claim row per claim of the module's catalogue, judged from the grid and check rows of `tables`.

    A claim that a failed unit would have measured is inconclusive (not run, when nothing measured it),
    with that unit and its error first in the evidence.
    """
    specs = catalogue(module)
    frames = [t.filter(pc.is_in(t.column("kind"), pa.array(["grid", "check"]))).to_pandas() for t in tables]
    frames = [f for f in frames if len(f)]
    frame = pd.concat(frames, ignore_index=True) if frames else \
        pd.DataFrame(columns=["kind", "claim", "role", "verdict", "base_seed", "metric", "evidence", "basis"])
    grid, checks = frame[frame["kind"] == "grid"], frame[frame["kind"] == "check"]
    unknown = sorted(set(grid["claim"]) - set(specs))
    if unknown:
        raise ValueError(f"{module.NAME} recorded findings for claims not in its catalogue: {', '.join(unknown)}")
    out = Recorder(module.NAME, base_seed=base_seed)
    for spec in specs.values():
        j = judge(spec, grid, checks)
        lost = [f for f in failures if (f.claims is None and j.verdict == "not run") or
                (f.claims is not None and spec.id in f.claims)]
        if lost:
            said = "; ".join(f"unit {f.part} at base seed {f.base_seed} failed ({f.error})" for f in lost)
            verdict = "not run" if j.verdict == "not run" else "inconclusive"
            was = f" (measured without it: {j.verdict})" if verdict != j.verdict else ""
            j = dataclasses.replace(j, verdict=verdict, evidence=f"{said}{was}; {j.evidence}")
        timed = spec.basis == "timing" or bool((grid[grid["claim"] == spec.id].get("basis") == "timing").any())
        out.verdict(j, spec.statement, basis="timing" if timed else "measured")
    return out


def check_memory(module: ModuleType, opts, seeds: int, at_once: int = 1) -> None:
    """Refuse, before any work, a run whose estimate does not fit in the memory this machine has free
    (`at_once` units of the experiment side by side, on local workers)."""
    estimate = getattr(module, "memory", None)
    if estimate is None:
        return
    need = int(estimate(opts, seeds)) * max(1, at_once)
    free = available_memory()
    if free is not None and need > free:
        side = f" ({at_once} units side by side; fewer --workers need less)" if at_once > 1 else ""
        raise DlbenchError(f"{module.NAME} needs about {need / 2**30:.1f} GiB{side} but {free / 2**30:.1f} GiB is "
                           "free; lower its size options (--seeds, --steps, --starts, widths or sizes)")


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
        threads: int | None = None, out: Path | None = None, force: bool = False, workers: int | str | None = None,
        scheduler: str | None = None, size: str | None = None, **options) -> Results:
    """Run one experiment by name with its options as keywords (the library form of the CLI)."""
    module = experiments.load(name)
    size = check_size(size, quick)
    plan = [(module, make_options(module, size=size, **options))]
    return run_many(plan, seed=seed, seeds=seeds, threads=threads, out=out, force=force, workers=workers,
                    scheduler=scheduler, size=size)
