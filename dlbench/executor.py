"""Units of work and where they run: in this process, a pool of local processes, or a Dask cluster.

A *unit* is one part of one experiment at one base seed (`dlbench.experiments.base.Part`). It builds
its own RunContext, draws every random number from streams keyed by its base seed and a purpose, and
returns its rows as one Arrow table, so units share nothing and any `concurrent.futures.Executor` runs
them: `InlineExecutor` (this process, one unit at a time: `--workers 1`), a `ProcessPoolExecutor` of
local processes (`--workers N`), or a Dask cluster through `distributed.Client(address).get_executor()`
(`--scheduler`). There is one code path: `execute` sees only the Executor and a `Workers` handle that
says how many units it runs at once and how to stop it.

`execute` runs a plan in two phases:

1. fan-out: every unit that is not a timing unit, on the workers, never more in flight than they have
   slots (so "running" is what runs, and a lost worker's units are known);
2. timings: every timing unit in this process, one at a time, after the fan-out has finished, with
   nothing of the run beside it; each timing row names its host (`dlbench.results.host_id`).

Every unit runs on `threads` BLAS threads whatever runs it (OpenBLAS sums in another order with another
thread count), and the caller assembles rows in plan order, never in finishing order: every number but
the timings is the same for every executor.

Nothing is lost. A finished unit goes into the unit cache (`UnitCache`: one Parquet file per unit,
named by a digest of the package version, its code, NumPy's version, the unit's options and seeds) the
moment it arrives. A unit whose worker dies runs again: alone, when others were in flight, so that a
neighbour is never blamed for it. A unit that fails twice is reported with its error; the others are
kept. Ctrl-C cancels what is outstanding and raises `RunStopped`; the same command later reuses every
cached unit and redoes only the rest.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import dataclasses
import functools
import hashlib
import json
import logging
import multiprocessing
import os
import re
import signal
import sys
import threading
import time
import traceback
import warnings
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from threadpoolctl import threadpool_limits

import dlbench
from dlbench.errors import DlbenchError, RunStopped
from dlbench.experiments.base import Progress, RunContext
from dlbench.nn.parallel import kernel_threads
from dlbench.results import CORE_SCHEMA, Recorder, host_id

#: A unit is run at most this many times for failures that are its own (an exception, or its worker
#: dying while it ran alone); then it is reported as failed.
ATTEMPTS = 2
#: The Parquet key-value metadata key of a unit cache file, and the version of what it holds.
UNIT_META_KEY = b"dlbench-unit"
CACHE_FORMAT = 1
#: Cache files of runs abandoned this many days ago are removed when a run starts.
STALE_DAYS = 14
#: Seconds to reach a Dask scheduler, and to reach it again once the connection is lost.
CONNECT_TIMEOUT = 10.0
_KEY_NAME = re.compile(r"[0-9a-f]{64}\.parquet")
#: One unit at a time in a process: BLAS limits, warning filters and the process's CPU clock are the
#: process's, so two units on two threads of one process (a Dask worker with --nthreads 2) would share them.
_ONE_UNIT = threading.Lock()


# ----------------------------------------------------------------------------- units

@dataclass(frozen=True, eq=False)
class Unit:
    """One part of one experiment at one base seed, with everything it needs to run anywhere.

    `fn` is the part's module-level function (pickled by reference: the worker imports its module);
    `threads` the BLAS threads it runs on; `timing` marks a unit that times kernels.
    """

    experiment: str
    part: str
    fn: Callable[[Any, RunContext], None]
    opts: Any
    base_seed: int
    seeds: int
    quick: bool
    threads: int = 1
    timing: bool = False
    bandwidth: dict = field(default_factory=dict)
    heavy: float = 0.0

    @property
    def label(self) -> str:
        return f"{self.experiment} {self.part} at base seed {self.base_seed}"


@dataclass
class Outcome:
    """What running a unit gave: `ok` with its rows, `error` (its exception, one line) or `user-error`
    (a DlbenchError: bad input, which stops the run); where and when it ran (`time.time()` of its host)."""

    status: str
    table: pa.Table | None = None
    error: str = ""
    host: str = ""
    pid: int = 0
    start: float = 0.0
    stop: float = 0.0
    env: tuple = ()
    cpu: float = 0.0


def run_unit(unit: Unit) -> Outcome:
    """Run one unit on its BLAS and kernel threads (`dlbench.nn.parallel`) with floating-point warnings off
    (divergence is a measured outcome), never beside another unit of the same process: a second waits."""
    with _ONE_UNIT:
        return _run_unit(unit)


def _run_unit(unit: Unit) -> Outcome:
    start, cpu = time.time(), time.process_time()
    rec = Recorder(unit.experiment, base_seed=unit.base_seed)
    ctx = RunContext(seed=unit.base_seed, seeds=unit.seeds, quick=unit.quick, record=rec,
                     bandwidth=dict(unit.bandwidth), progress=Progress())
    status, table, error = "ok", None, ""
    try:
        with threadpool_limits(limits=unit.threads), kernel_threads(unit.threads), np.errstate(all="ignore"), \
                warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            unit.fn(unit.opts, ctx)
        table = rec.table().combine_chunks()  # one chunk per column: a tenth of the bytes to pickle and send
        if not unit.timing and pc.any(pc.equal(table.column("kind"), "timing")).as_py():
            raise RuntimeError(f"part {unit.part} records timings but is not a timing part: mark it "
                               f"Part(..., timing=True) so that it runs alone")
    except DlbenchError as e:
        status, table, error = "user-error", None, str(e)
    except Exception as e:  # a failed unit is reported, never a reason to lose the others
        module = sys.modules.get(module_of(unit.fn))
        status, table, error = "error", None, describe_error(e, getattr(module, "__file__", "") or "")
    return Outcome(status, table, error, host_id(), os.getpid(), start, time.time(), worker_env(),
                   time.process_time() - cpu)


def module_of(fn) -> str:
    """The module a part's function comes from, through any `functools.partial` around it."""
    while isinstance(fn, functools.partial):
        fn = fn.func
    return getattr(fn, "__module__", None) or type(fn).__module__


def describe_error(e: BaseException, source: str = "") -> str:
    """'ValueError: bad shape (claims.py:120 in claim_i5)': the exception and the line it came from, the last
    line of dlbench or of the file `source` (the experiment's module) when the traceback passes through one."""
    text = " ".join(str(e).split()) or "(no message)"
    frames = traceback.extract_tb(e.__traceback__) if e.__traceback__ else []
    package = str(Path(dlbench.__file__).resolve().parent)
    own = [f for f in frames if f.filename.startswith(package) or (source and f.filename == source)]
    f = (own or frames or [None])[-1]
    where = f" ({Path(f.filename).name}:{f.lineno} in {f.name})" if f else ""
    return f"{type(e).__name__}: {text}{where}"


@functools.cache
def code_digest() -> str:
    """A digest of every source file of the installed dlbench package (an edit changes it; the version may not)."""
    root = Path(dlbench.__file__).resolve().parent
    h = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        h.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()[:16]


@functools.cache
def _file_digest(path: str) -> str:
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]
    except OSError:
        return ""


def worker_env() -> tuple[str, str, str]:
    """What must be the same wherever a unit runs: the dlbench version, its code and NumPy's version."""
    return (dlbench.__version__, code_digest(), np.__version__)


def unit_key(unit: Unit, *, any_seed: bool = False) -> str:
    """The unit's cache key: a digest of dlbench's version and code, NumPy's version, the experiment, the
    part, its options, base seed, seeds, size and BLAS threads (and, for a timing unit, the host).
    `any_seed`: the same without the base seed (the part's key, under which its run time is kept)."""
    module_name = module_of(unit.fn)
    source = getattr(sys.modules.get(module_name), "__file__", None) or ""
    outside = bool(source) and not Path(source).resolve().is_relative_to(Path(dlbench.__file__).resolve().parent)
    doc = {
        "format": CACHE_FORMAT, "dlbench": dlbench.__version__, "code": code_digest(), "numpy": np.__version__,
        "module": module_name, "module_code": _file_digest(source) if outside else "",
        "experiment": unit.experiment, "part": unit.part,
        "options": dataclasses.asdict(unit.opts) if dataclasses.is_dataclass(unit.opts) else repr(unit.opts),
        "base_seed": None if any_seed else unit.base_seed, "seeds": unit.seeds, "quick": unit.quick, "threads": unit.threads,
        "timing": unit.timing, "host": host_id() if unit.timing else "",
    }
    return hashlib.sha256(json.dumps(doc, sort_keys=True, default=repr).encode()).hexdigest()


# ----------------------------------------------------------------------------- the unit cache

def default_cache_root() -> Path | None:
    """$DLBENCH_CACHE (`off` turns the cache off), else $XDG_CACHE_HOME/dlbench/units, else ~/.cache/dlbench/units."""
    env = os.environ.get("DLBENCH_CACHE")
    if env is not None:
        return None if env.strip().lower() in ("", "off", "0", "no", "none") else Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "dlbench" / "units"


class UnitFileError(Exception):
    """A unit cache file that is damaged, or is not the file of the unit it is named for."""


class UnitCache:
    """Finished units on disk, one Parquet file per unit named `<key>.parquet` (never pickle: a file
    dropped into the folder is only ever parsed as data), in a folder that dlbench makes readable and
    writable by its owner only (rows are data, but another user's rows would be forged results). A run that
    finishes with every unit removes its files; an interrupted or partly failed one leaves them for the next
    run of the same command.
    A damaged or foreign file is named in a note, removed and its unit recomputed."""

    def __init__(self, root: Path | None):
        self.root = None if root is None else Path(root)
        self.notes: list[str] = []

    def path(self, key: str) -> Path:
        return self.root / f"{key}.parquet"

    def load(self, unit: Unit, key: str) -> Outcome | None:
        if self.root is None:
            return None
        path = self.path(key)
        try:
            table, meta = read_unit_file(path, unit, key)
        except FileNotFoundError:
            return None
        except UnitFileError as e:
            self.notes.append(f"{path}: {e}; running {unit.label} again")
            with contextlib.suppress(OSError):
                path.unlink()
            return None
        return Outcome("ok", table, "", str(meta.get("host", "")), int(meta.get("pid", 0)),
                       float(meta.get("start", 0.0)), float(meta.get("stop", 0.0)), worker_env(),
                       float(meta.get("cpu", 0.0)))

    def store(self, unit: Unit, key: str, outcome: Outcome) -> None:
        """Write the unit's rows atomically (a temporary file, then a rename); a cache that cannot be written
        is noted once and switched off, never a reason to stop the run."""
        if self.root is None:
            return
        meta = {"format": CACHE_FORMAT, "key": key, "dlbench": dlbench.__version__, "experiment": unit.experiment,
                "part": unit.part, "base_seed": unit.base_seed, "rows": outcome.table.num_rows,
                "host": outcome.host, "pid": outcome.pid, "start": outcome.start, "stop": outcome.stop,
                "cpu": outcome.cpu}
        path = self.path(key)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:
            self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
            table = outcome.table.replace_schema_metadata({UNIT_META_KEY: json.dumps(meta).encode()})
            pq.write_table(table, tmp, compression="zstd", write_page_checksum=True)
            os.replace(tmp, path)
        except OSError as e:
            self.notes.append(f"cannot keep finished units in {self.root} ({e.strerror or e}): an interrupted "
                              f"run will start over")
            self.root = None
        finally:
            with contextlib.suppress(OSError):
                tmp.unlink()

    def durations(self) -> dict[str, float]:
        """CPU seconds each part took when it last ran, by part key (`unit_key(any_seed=True)`): the fan-out
        hands out the longest first. A file that is not such a JSON object is named and ignored."""
        if self.root is None:
            return {}
        path = self.root / "durations.json"
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as e:
            self.notes.append(f"{path}: damaged ({_first_line(e)}); the units run in plan order")
            return {}
        if not isinstance(data, dict) or not all(isinstance(v, (int, float)) for v in data.values()):
            self.notes.append(f"{path}: not a dlbench durations file; the units run in plan order")
            return {}
        return {str(k): float(v) for k, v in data.items()}

    def remember(self, durations: dict[str, float]) -> None:
        """Keep the run times of the parts that ran (JSON, written atomically; at most the 2000 latest)."""
        if self.root is None or not durations:
            return
        notes = len(self.notes)
        merged = {k: v for k, v in self.durations().items() if k not in durations} | durations  # newest last
        del self.notes[notes:]  # the damaged file was named when the run read it
        merged = dict(list(merged.items())[-2000:])
        path = self.root / "durations.json"
        tmp = path.with_name(f".durations.json.{os.getpid()}.tmp")
        try:
            self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
            tmp.write_text(json.dumps(merged))
            os.replace(tmp, path)
        except OSError:
            pass  # only an ordering hint
        finally:
            with contextlib.suppress(OSError):
                tmp.unlink()

    def discard(self, keys: Sequence[str]) -> None:
        if self.root is None:
            return
        for key in keys:
            with contextlib.suppress(OSError):
                self.path(key).unlink()

    def prune(self, days: float = STALE_DAYS) -> None:
        """Remove unit files (and temporary files) of runs abandoned more than `days` ago."""
        if self.root is None or not self.root.is_dir():
            return
        old = time.time() - days * 86400
        for path in self.root.iterdir():
            named = _KEY_NAME.fullmatch(path.name) or (path.name.startswith(".") and path.name.endswith(".tmp"))
            with contextlib.suppress(OSError):
                if named and path.is_file() and path.stat().st_mtime < old:
                    path.unlink()


def read_unit_file(path: Path, unit: Unit, key: str) -> tuple[pa.Table, dict]:
    """The rows of `unit` from its cache file, checked: Parquet with verified page checksums, the unit's
    own key, the core columns with their types, its rows count, experiment and base seed."""
    with open(path, "rb") as fh:
        if fh.read(4) != b"PAR1":
            raise UnitFileError("not a Parquet file")
    try:
        pf = pq.ParquetFile(path, page_checksum_verification=True)
        raw = (pf.schema_arrow.metadata or {}).get(UNIT_META_KEY)
        if raw is None:
            raise UnitFileError("a Parquet file that is not a dlbench unit file")
        meta = json.loads(raw)
        if not isinstance(meta, dict) or meta.get("key") != key or meta.get("format") != CACHE_FORMAT:
            raise UnitFileError("the file of another unit or another dlbench, not of this one")
        table = pf.read()
    except (pa.ArrowException, OSError, ValueError) as e:
        if isinstance(e, FileNotFoundError):
            raise
        raise UnitFileError(f"damaged ({(str(e).strip().splitlines() or [type(e).__name__])[0]})") from None
    for f in CORE_SCHEMA:
        if f.name not in table.column_names or table.schema.field(f.name).type != f.type:
            raise UnitFileError(f"damaged (column {f.name} missing or of another type)")
    if table.num_rows != meta.get("rows"):
        raise UnitFileError(f"damaged ({table.num_rows} rows where {meta.get('rows')} were written)")
    if table.num_rows and (pc.any(pc.not_equal(table.column("experiment"), unit.experiment)).as_py()
                           or pc.any(pc.not_equal(table.column("base_seed"), unit.base_seed)).as_py()):
        raise UnitFileError("rows of another experiment or base seed")
    return table.replace_schema_metadata(None), meta


# ----------------------------------------------------------------------------- workers

class InlineExecutor(cf.Executor):
    """An Executor that runs each call in this process when it is submitted (`--workers 1`).

    An exception of the call is the future's; KeyboardInterrupt goes through, to stop the run.
    """

    def submit(self, fn, /, *args, **kwargs):
        future = cf.Future()
        future.set_running_or_notify_cancel()
        try:
            future.set_result(fn(*args, **kwargs))
        except Exception as e:
            future.set_exception(e)
        return future


class Workers:
    """Where the fan-out runs: this process (the base class), local processes or a Dask cluster.

    `executor` takes the units; `capacity()` is how many it runs at once; `broken(exc)` says that an
    exception of a future means the executor itself is gone (then `rebuild()`); `alive()` whether it can
    still run anything; `terminate()` stops running units now (Ctrl-C); `close()` releases it.
    """

    description = "in this process"
    generation = 0

    def __init__(self):
        self.executor: cf.Executor = InlineExecutor()

    def capacity(self) -> int:
        return 1

    def broken(self, exc: BaseException) -> bool:
        return False

    def rebuild(self) -> None:
        pass

    def alive(self) -> bool:
        return True

    def terminate(self) -> None:
        self.close()

    def close(self) -> None:
        self.executor.shutdown(wait=False)

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _worker_init() -> None:
    # Ctrl-C reaches the whole process group: the run's own process decides, the workers carry on until stopped.
    signal.signal(signal.SIGINT, signal.SIG_IGN)


class LocalPool(Workers):
    """`n` local worker processes (a ProcessPoolExecutor; forkserver where the platform has it, so no
    worker is forked from a process whose threads hold locks)."""

    def __init__(self, n: int):
        self.n = n
        self.description = f"{n} local processes"
        self.executor = self._start()

    def _start(self) -> cf.ProcessPoolExecutor:
        method = "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"
        ctx = multiprocessing.get_context(method)
        if method == "forkserver":
            ctx.set_forkserver_preload(["dlbench.executor"])  # workers start with NumPy and dlbench imported
        return cf.ProcessPoolExecutor(max_workers=self.n, mp_context=ctx, initializer=_worker_init)

    def capacity(self) -> int:
        return self.n

    def broken(self, exc: BaseException) -> bool:
        return isinstance(exc, cf.BrokenExecutor)

    def rebuild(self) -> None:
        self.executor.shutdown(wait=False, cancel_futures=True)
        self.executor = self._start()
        self.generation += 1

    def terminate(self) -> None:
        # No public way to stop a running worker before Python 3.14 (terminate_workers): end each process.
        processes = list((getattr(self.executor, "_processes", None) or {}).values())
        self.executor.shutdown(wait=False, cancel_futures=True)
        for p in processes:
            with contextlib.suppress(Exception):
                p.terminate()
        for p in processes:
            with contextlib.suppress(Exception):
                p.join(timeout=5)

    def close(self) -> None:
        self.executor.shutdown(wait=True, cancel_futures=True)


_ADDRESS = re.compile(r"(?:(?P<scheme>[a-z][a-z0-9+.-]*)://)?"
                      r"(?P<host>\[[0-9a-fA-F:.]+\]|[A-Za-z0-9._-]+)(?::(?P<port>\d{1,5}))?")


def check_address(address: str) -> str:
    """A scheduler address as Dask takes it: tcp://HOST:PORT or tls://HOST:PORT (HOST:PORT means tcp)."""
    m = _ADDRESS.fullmatch(address.strip())
    if not m:
        raise DlbenchError(f"--scheduler {address!r}: expected an address like tcp://HOST:8786 or tls://HOST:8786")
    scheme = m["scheme"] or "tcp"
    if scheme not in ("tcp", "tls"):
        raise DlbenchError(f"--scheduler {address}: dlbench speaks to a Dask scheduler over tcp:// or tls://, "
                           f"not {scheme}://")
    if m["port"] is None or not 0 < int(m["port"]) < 65536:
        raise DlbenchError(f"--scheduler {address}: give the scheduler's port, e.g. {scheme}://{m['host']}:8786")
    return f"{scheme}://{m['host']}:{m['port']}"


class DaskCluster(Workers):
    """The workers of a running Dask scheduler, through `distributed.Client(address).get_executor()`.

    dlbench only connects: it never starts a scheduler. tls:// takes its certificates from Dask's own
    configuration (distributed.comm.tls.*). Every worker must run one thread (units set process-wide BLAS
    limits); the scheduler (which unpickles the units) and every worker the same dlbench, code and NumPy
    as this process.
    """

    def __init__(self, address: str, *, timeout: float | None = None):
        timeout = CONNECT_TIMEOUT if timeout is None else timeout
        try:
            import distributed
        except ImportError:
            raise DlbenchError("--scheduler needs Dask's distributed package: pip install 'dlbench[dist]'") from None
        self.address = check_address(address)
        self.description = f"Dask scheduler {self.address}"
        # The run says in one line what happened to it; the client's own log lines would only repeat it.
        self._loggers = {name: logging.getLogger(name).level for name in ("distributed", "distributed.client")}
        for name in self._loggers:
            logging.getLogger(name).setLevel(logging.CRITICAL)
        try:
            self.client = self._connect(distributed, timeout)
        except Exception as e:  # OSError, TimeoutError, or TLS configuration missing: one line either way
            self._quiet_logs_end()
            hint = " (Dask's TLS settings: distributed.comm.tls.ca-file, client.cert, client.key)" \
                if self.address.startswith("tls://") else ""
            raise DlbenchError(f"--scheduler {self.address}: cannot connect ({_first_line(e)}){hint}") from None
        self.executor = self.client.get_executor(pure=False)  # pure=False: a unit run again is a new task
        self._capacity, self._checked = 0, 0.0
        try:
            self._check_workers()
        except BaseException:
            self.close()
            raise

    def _check_workers(self) -> None:
        threads = self.client.nthreads()
        several = {w: n for w, n in threads.items() if n > 1}
        if several:
            raise DlbenchError(f"--scheduler {self.address}: its workers run {max(several.values())} threads each; "
                               "units set process-wide BLAS limits, so start every worker with one thread: "
                               "dask worker ADDRESS --nworkers N --nthreads 1")
        try:  # the scheduler unpickles the units too
            envs = {"the Dask scheduler": self.client.run_on_scheduler(worker_env)}
            envs.update({f"the Dask worker {w}": env for w, env in self.client.run(worker_env).items()})
        except Exception as e:
            raise DlbenchError(f"--scheduler {self.address}: its scheduler or workers cannot run dlbench "
                               f"({_first_line(e)}); install the same dlbench on the scheduler and every worker") \
                from None
        mine = worker_env()
        for who, env in envs.items():
            if tuple(env) != mine:
                raise DlbenchError(env_mismatch(tuple(env), mine, who))

    def _connect(self, distributed, timeout: float):
        """A client of the scheduler. A failure that is not the network's (no answer in time, refused) gets one
        more try: on a loaded machine the client's handshake can fail its own check of the scheduler's first
        message (an AssertionError inside distributed), and a second handshake goes through."""
        for attempt in (1, 2):
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    return distributed.Client(self.address, timeout=f"{timeout}s", set_as_default=False)
            except (OSError, TimeoutError):
                raise
            except Exception:
                if attempt == 2:
                    raise

    def capacity(self) -> int:
        """Worker processes, not threads: a process runs one unit at a time (a worker that joined with more
        threads, after the check at connection, runs its units one after the other)."""
        now = time.monotonic()
        if now - self._checked > 1.0:  # workers come and go; ask the scheduler at most once a second
            with contextlib.suppress(Exception):
                self._capacity = len(self.client.nthreads())
            self._checked = now
        return self._capacity

    def alive(self) -> bool:
        # "connecting": the client tries to reach the scheduler again (Dask gives up after its connect timeout)
        return self.client.status in ("newly-created", "connecting", "running")

    def terminate(self) -> None:
        with contextlib.suppress(Exception):
            self.executor.shutdown(wait=False)  # cancels every future it handed out
        self.close()

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.client.close()
        self._quiet_logs_end()

    def _quiet_logs_end(self) -> None:
        for name, level in self._loggers.items():
            logging.getLogger(name).setLevel(level)


def open_workers(workers: int = 1, scheduler: str | None = None) -> Workers:
    """This process (workers 1), `workers` local processes, or the Dask cluster at `scheduler`."""
    if scheduler:
        return DaskCluster(scheduler)
    return Workers() if workers <= 1 else LocalPool(workers)


def env_mismatch(theirs: tuple, mine: tuple, who: str) -> str:
    names = ("dlbench", "dlbench code", "numpy")
    diffs = [f"{n} {a} here, {b} there" for n, a, b in zip(names, mine, theirs) if a != b]
    return f"{who} runs another dlbench setup ({'; '.join(diffs)}): install the same on the scheduler and every worker"


def _first_line(e: BaseException) -> str:
    return (" ".join(str(e).split()) or type(e).__name__)[:300]


# ----------------------------------------------------------------------------- running a plan

@dataclass
class Report:
    """What `execute` did: each unit's outcome (None if it failed), failures, reuse, notes and a log.

    `log` has one entry per unit in plan order: experiment, part, base_seed, timing, host, pid, start and
    stop (seconds since the epoch on its host), cpu (its process's CPU seconds: below stop - start when
    the host was busy with other work), submitted, received and stored (this process's clock: handed
    to the executor, its rows back here, its rows in the unit cache), runs (how many times it was started),
    reused, error and rows (how many rows it gave; the results hold each experiment's units' rows in plan
    order, then its claim rows).
    """

    outcomes: list[Outcome | None]
    failed: dict[int, str]
    reused: int
    notes: list[str]
    log: list[dict]
    keys: list[str]


def execute(units: Sequence[Unit], workers: Workers, cache: UnitCache, progress: Progress | None = None) -> Report:
    """Run every unit: cached ones are reused, the rest fan out on `workers`, then the timing units run
    here one at a time. Raises RunStopped on Ctrl-C or a lost cluster, DlbenchError on bad input."""
    return _Execution(list(units), workers, cache, progress or Progress()).run()


class _Execution:
    def __init__(self, units: list[Unit], workers: Workers, cache: UnitCache, progress: Progress):
        self.units, self.workers, self.cache, self.progress = units, workers, cache, progress
        n = len(units)
        self.keys = [unit_key(u) for u in units]
        self.outcomes: list[Outcome | None] = [None] * n
        self.failed: dict[int, str] = {}
        self.attempts = [0] * n
        self.cancelled = [0] * n
        self.runs = [0] * n
        self.times: list[tuple[float, float]] = [(0.0, 0.0)] * n
        self.stored: list[float] = [0.0] * n
        self.unstored: list[int] = []
        self.reused: set[int] = set()
        self.inflight: dict[cf.Future, tuple[int, bool, int, float]] = {}
        self.update: Callable[..., None] = lambda **counts: None
        self.env = worker_env()

    def run(self) -> Report:
        self.cache.prune()
        for i, u in enumerate(self.units):
            o = self.cache.load(u, self.keys[i])
            if o is not None:
                self.outcomes[i] = o
                self.reused.add(i)
        todo = [i for i, o in enumerate(self.outcomes) if o is None]
        # Longest first (as the same parts took last time; parts never seen first of all, the heavy ones
        # first among them, heaviest first, then in plan order): the last units to finish are short ones, so
        # no worker waits long for the others at the end.
        part_keys = [unit_key(u, any_seed=True) for u in self.units]
        known = self.cache.durations()
        fan = sorted((i for i in todo if not self.units[i].timing),
                     key=lambda i: (part_keys[i] in known, -known.get(part_keys[i], 0.0), -self.units[i].heavy))
        timed = [i for i in todo if self.units[i].timing]
        with self.progress.units(total=len(self.units), workers=self.workers.capacity(),
                                 done=len(self.reused)) as update:
            self.update = update
            try:
                self._phase(fan, self.workers)
                self.workers.close()  # the fan-out is over: nothing of this run beside the timings
                self.update(phase="timings", workers=1)
                self._phase(timed, Workers())
            except KeyboardInterrupt:
                self.workers.terminate()
                self._store()  # what finished is kept, up to the last unit
                raise RunStopped(self._stopped("interrupted: nothing written", then="; "), 130) from None
            except BaseException:
                self.workers.terminate()
                self._store()
                raise
        self.cache.remember({part_keys[i]: o.cpu for i, o in enumerate(self.outcomes)
                             if o is not None and i not in self.reused})
        log = [self._log(i) for i in range(len(self.units))]
        return Report(self.outcomes, dict(self.failed), len(self.reused), list(self.cache.notes), log, self.keys)

    def _stopped(self, what: str, then: str = ": ") -> str:
        finished = sum(o is not None for o in self.outcomes)
        outstanding = len(self.units) - finished - len(self.failed)
        kept = (f"{finished} finished unit{'s' if finished != 1 else ''} are kept in {self.cache.root} and the "
                "same command reuses them") if self.cache.root is not None and finished else \
            "no finished unit is kept"
        return f"{what}{then}cancelled {outstanding} outstanding unit{'s' if outstanding != 1 else ''}; {kept}"

    def _counts(self) -> dict:
        return {"done": sum(o is not None for o in self.outcomes),
                "running": min(len(self.inflight), max(1, self.workers.capacity())), "failed": len(self.failed)}

    def _phase(self, indices: list[int], workers: Workers) -> None:
        queue: deque[int] = deque(indices)
        suspects: deque[int] = deque()
        while queue or suspects or self.inflight:
            self._fill(workers, queue, suspects)
            if self.inflight:
                done, _ = cf.wait(list(self.inflight), timeout=0.5, return_when=cf.FIRST_COMPLETED)
            else:
                done = set()
                time.sleep(0.5)  # a cluster with no worker yet: wait for one (Ctrl-C stops)
            if not done and not workers.alive():  # a lost scheduler never completes its futures
                raise RunStopped(self._stopped(f"lost the {workers.description}"), 1)
            self.unstored += [i for i in (self._handle(f, workers, queue, suspects) for f in done) if i is not None]
            self._fill(workers, queue, suspects)  # the workers get their next units before the disk gets these
            self._store()
            self.update(**self._counts(), workers=workers.capacity())

    def _store(self) -> None:
        while self.unstored:
            i = self.unstored[0]
            self.cache.store(self.units[i], self.keys[i], self.outcomes[i])
            self.stored[i] = time.time()
            self.unstored.pop(0)

    def _fill(self, workers: Workers, queue: deque, suspects: deque) -> None:
        if any(isolated for _, isolated, _, _ in self.inflight.values()):
            return
        if suspects:  # a unit whose worker died beside others runs alone: its own fault, or not
            if not self.inflight:
                self._submit(workers, suspects.popleft(), isolated=True)
            return
        capacity = workers.capacity()
        # One unit more than the workers run: the next one is already there when a worker finishes.
        ahead = 0 if capacity <= 1 else 1
        while queue and len(self.inflight) < capacity + ahead:
            self._submit(workers, queue.popleft(), isolated=capacity == 1)

    def _submit(self, workers: Workers, i: int, isolated: bool) -> None:
        self.update(**{**self._counts(), "running": len(self.inflight) + 1})
        submitted = time.time()
        for _ in range(3):
            try:
                future = workers.executor.submit(run_unit, self.units[i])
                break
            except Exception as e:
                if workers.broken(e):
                    workers.rebuild()
                    continue
                if not workers.alive():
                    raise RunStopped(self._stopped(f"lost the {workers.description}"), 1) from None
                raise
        else:
            raise RunStopped(self._stopped("the local worker processes keep dying at start"), 1)
        self.runs[i] += 1
        self.inflight[future] = (i, isolated, workers.generation, submitted)

    def _handle(self, future: cf.Future, workers: Workers, queue: deque, suspects: deque) -> int | None:
        """Take a finished future's outcome; the unit's index when it has rows to keep."""
        i, isolated, generation, submitted = self.inflight.pop(future)
        exc = cf.CancelledError() if future.cancelled() else future.exception()
        if exc is None:
            o: Outcome = future.result()
            if tuple(o.env) != self.env:
                raise DlbenchError(env_mismatch(tuple(o.env), self.env, f"the worker that ran {self.units[i].label}"))
            if o.status == "ok":
                self.outcomes[i] = o
                self.times[i] = (submitted, time.time())
                return i
            if o.status == "user-error":
                raise DlbenchError(o.error)
            self._charge(i, o.error, queue, suspects, again_alone=False)
            return None
        if workers.broken(exc) and generation == workers.generation:
            workers.rebuild()
        if not workers.alive():
            raise RunStopped(self._stopped(f"lost the {workers.description}"), 1)
        what = f"{type(exc).__name__}{': ' + _first_line(exc) if str(exc) else ''}"
        killed = type(exc).__name__ == "KilledWorker"  # Dask moved it to other workers, and they died too
        if isinstance(exc, cf.CancelledError) and self.cancelled[i] < ATTEMPTS:
            self.cancelled[i] += 1  # the client lost its scheduler for a moment: not the unit's doing
            queue.appendleft(i)
        elif not (workers.broken(exc) or killed or isinstance(exc, OSError)):
            self._charge(i, f"it could not run there ({what})", queue, suspects, again_alone=False)
        elif isolated or killed:
            self._charge(i, f"its worker died ({what})", queue, suspects, again_alone=True)
        else:  # one of the units in flight took its worker down: each runs again alone
            suspects.append(i)
        return None

    def _charge(self, i: int, error: str, queue: deque, suspects: deque, *, again_alone: bool) -> None:
        self.attempts[i] += 1
        if self.attempts[i] >= ATTEMPTS:
            self.failed[i] = error
        elif again_alone:
            suspects.append(i)
        else:
            queue.appendleft(i)

    def _log(self, i: int) -> dict:
        u, o = self.units[i], self.outcomes[i]
        submitted, received = self.times[i]
        return {"experiment": u.experiment, "part": u.part, "base_seed": u.base_seed, "timing": u.timing,
                "host": o.host if o else "", "pid": o.pid if o else 0, "start": o.start if o else None,
                "stop": o.stop if o else None, "cpu": o.cpu if o else None,
                "submitted": submitted or None, "received": received or None,
                "stored": self.stored[i] or None,
                "runs": self.runs[i], "reused": i in self.reused, "error": self.failed.get(i, ""),
                "rows": o.table.num_rows if o and o.table is not None else 0}
