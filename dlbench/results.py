"""The results file: tidy rows -> Arrow table -> Parquet, with the run's metadata.

One row per observation. Core columns (always present):

    run_id, experiment, kind, section, case, metric, value, unit, better, seed, sample,
    items, bytes, loops, claim, verdict, low, high, n, method, statement, evidence, basis

`kind` is `metric` (a measured value), `curve` (one point of a curve; `sample` is
the step), `timing` (one raw timing sample; `value` is seconds per call, `items` and
`bytes` are per call) or `claim` (a verdict; `value` is the effect, `low`/`high`
its interval; `basis` says what the verdict rests on: `exact`, `measured` or `timing`,
the last for verdicts that depend on wall time and so may move with the machine's load).
Metrics derived from timings (ns/element, a fitted time exponent)
are recorded with `better="none"`: the raw samples in the timing rows are what
`dlbench compare` judges, and every other metric is bit-identical for the same seed. The parameters that define a case are typed columns of their own,
named `p_<name>`; `case` is the same parameters as one stable string key.
The Parquet key-value metadata key `dlbench` holds a JSON object with
`schema_version`, `run_id`, `experiments`, `fingerprint`, `bandwidth`, `seeds`
and `options`.
"""

from __future__ import annotations

import json
import os
import tempfile
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from dlbench.errors import DlbenchError, ResultsFileError
from dlbench.stats import Claim
from dlbench.timing import Timing

SCHEMA_VERSION = 1
META_KEY = b"dlbench"
BETTER = ("lower", "higher", "none")

CORE_SCHEMA = pa.schema([
    ("run_id", pa.string()),
    ("experiment", pa.string()),
    ("kind", pa.string()),
    ("section", pa.string()),
    ("case", pa.string()),
    ("metric", pa.string()),
    ("value", pa.float64()),
    ("unit", pa.string()),
    ("better", pa.string()),
    ("seed", pa.int64()),
    ("sample", pa.int64()),
    ("items", pa.float64()),
    ("bytes", pa.float64()),
    ("loops", pa.int64()),
    ("claim", pa.string()),
    ("verdict", pa.string()),
    ("low", pa.float64()),
    ("high", pa.float64()),
    ("n", pa.int64()),
    ("method", pa.string()),
    ("statement", pa.string()),
    ("evidence", pa.string()),
    ("basis", pa.string()),
])
CORE_COLUMNS = tuple(CORE_SCHEMA.names)
PARAM_PREFIX = "p_"


def case_key(case: dict) -> str:
    """The stable string key of a case: `name=value` pairs in the order given."""
    return " ".join(f"{k}={_fmt_param(v)}" for k, v in case.items())


def _fmt_param(v) -> str:
    if isinstance(v, float):
        return f"{v:g}"
    return str(v)


@dataclass
class Recorder:
    """Collects one experiment's rows as column chunks (cheap for long curves and many samples)."""

    experiment: str
    chunks: list[tuple[int, dict]] = field(default_factory=list)

    def _add(self, count: int, case: dict, **cols) -> None:
        cols.update({PARAM_PREFIX + k: v for k, v in case.items()})
        cols["case"] = case_key(case)
        cols["experiment"] = self.experiment
        self.chunks.append((count, cols))

    def metric(self, metric: str, values, *, case: dict, unit: str = "", better: str = "none",
               seeds=None, section: str = "results") -> None:
        """One or more observations of `metric` for `case` (one per seed or repeat)."""
        if better not in BETTER:
            raise ValueError(f"better must be one of {BETTER}")
        v = np.atleast_1d(np.asarray(values, dtype=float)).ravel()
        seed = None if seeds is None else np.broadcast_to(np.asarray(seeds, dtype=np.int64), v.shape)
        self._add(v.size, case, kind="metric", section=section, metric=metric, value=v, unit=unit,
                  better=better, seed=seed, sample=np.arange(v.size))

    def curve(self, metric: str, values, *, case: dict, unit: str = "", better: str = "lower",
              seed: int | None = None, steps=None, section: str = "results") -> None:
        """A curve (e.g. loss per step): one row per point, `sample` holds the step."""
        v = np.asarray(values, dtype=float).ravel()
        steps = np.arange(v.size) if steps is None else np.asarray(steps, dtype=np.int64)
        self._add(v.size, case, kind="curve", section=section, metric=metric, value=v, unit=unit,
                  better=better, seed=seed, sample=steps)

    def timing(self, metric: str, t: Timing, *, case: dict, section: str = "timings") -> None:
        """Raw timing samples, seconds per call, with items and bytes per call."""
        n = t.samples.size
        self._add(n, case, kind="timing", section=section, metric=metric, value=t.samples, unit="s",
                  better="lower", sample=np.arange(n), items=t.items, bytes=t.bytes, loops=t.loops)

    def claim(self, c: Claim, *, timing: bool = False) -> Claim:
        """A verdict; `timing=True` when it rests on wall-time measurements."""
        basis = "timing" if timing else "exact" if c.method == "exact" else "measured"
        self._add(1, {}, kind="claim", section="claims", metric=c.id, claim=c.id, verdict=c.verdict,
                  value=c.effect, low=c.low, high=c.high, n=c.n, method=c.method,
                  statement=c.statement, evidence=c.evidence, unit=c.unit, better="none", basis=basis)
        return c


def _param_type(values: list) -> pa.DataType:
    present = [v for v in values if v is not None]
    if present and all(isinstance(v, (bool, np.bool_)) for v in present):
        return pa.bool_()
    if present and all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in present):
        return pa.int64()
    if present and all(isinstance(v, (int, float, np.integer, np.floating)) for v in present):
        return pa.float64()
    return pa.string()


def build_table(recorders: list[Recorder], run_id: str) -> pa.Table:
    """Concatenate every recorder's chunks into one Arrow table (core columns, then parameters)."""
    chunks = [c for r in recorders for c in r.chunks]
    total = sum(n for n, _ in chunks)
    param_names = list(dict.fromkeys(k for _, cols in chunks for k in cols if k.startswith(PARAM_PREFIX)))
    arrays = {}
    for name in CORE_COLUMNS:
        typ = CORE_SCHEMA.field(name).type
        if name == "run_id":
            arrays[name] = pa.array([run_id] * total, typ)
            continue
        arrays[name] = _column([(n, cols.get(name)) for n, cols in chunks], typ)
    for name in param_names:
        scalars = [cols.get(name) for _, cols in chunks]
        typ = _param_type(scalars)
        if typ == pa.string():
            scalars = [None if v is None else _fmt_param(v) for v in scalars]
        arrays[name] = _column(list(zip((n for n, _ in chunks), scalars)), typ)
    return pa.table(arrays)


def _column(parts: list[tuple[int, object]], typ: pa.DataType) -> pa.ChunkedArray:
    out = []
    for n, v in parts:
        if isinstance(v, np.ndarray):
            out.append(pa.array(v, typ))
        elif v is None or (isinstance(v, float) and typ != pa.float64() and np.isnan(v)):
            out.append(pa.nulls(n, typ))
        else:
            if isinstance(v, np.generic):
                v = v.item()
            out.append(pa.repeat(pa.scalar(v, typ), n))
    return pa.chunked_array(out, typ)


@dataclass
class Results:
    """A run's rows (a pandas DataFrame) and its metadata."""

    rows: pd.DataFrame
    meta: dict
    path: Path | None = None

    @property
    def claims(self) -> pd.DataFrame:
        return self.rows[self.rows["kind"] == "claim"]

    @property
    def experiments(self) -> list[str]:
        return list(dict.fromkeys(self.rows["experiment"]))


def make_results(recorders: list[Recorder], meta: dict) -> tuple[pa.Table, Results]:
    run_id = meta.setdefault("run_id", uuid.uuid4().hex[:12])
    meta["schema_version"] = SCHEMA_VERSION
    meta.setdefault("experiments", [r.experiment for r in recorders])
    table = build_table(recorders, run_id)
    table = table.replace_schema_metadata({META_KEY: json.dumps(meta, default=_json_default).encode()})
    return table, Results(table.to_pandas(), meta)


def _json_default(o):
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    if hasattr(o, "__dataclass_fields__"):
        return asdict(o)
    raise TypeError(f"cannot store {type(o).__name__} in the results metadata")


def check_writable(path: Path, force: bool = False, *, what: str = "--out") -> None:
    """Fail early, in one line, when `path` cannot be written: before a run, not after it."""
    path = Path(path)
    if path.is_dir():
        raise DlbenchError(f"{what} {path} is a directory; give a file name")
    if path.exists() and not force:
        raise DlbenchError(f"{path} exists; pass --force to overwrite it or choose another {what}")
    parent = path.parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise DlbenchError(f"{what} {path}: {parent} is not a directory")
    try:  # a real probe: permission bits say little to root or on special file systems
        with tempfile.TemporaryFile(dir=parent):
            pass
    except OSError:
        raise DlbenchError(f"{what} {path}: {parent} is not writable") from None


def check_out_path(path: Path, force: bool = False) -> None:
    path = Path(path)
    if path.suffix != ".parquet" or not path.stem:
        raise DlbenchError(f"--out {path}: a results file name must end in .parquet, e.g. run.parquet")
    check_writable(path, force)


def write_table(table: pa.Table, path: Path, *, force: bool = False) -> Path:
    """Write atomically: a temporary file beside `path`, then a rename. Never overwrites unless `force`."""
    path = Path(path)
    check_out_path(path, force)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(table, tmp, compression="zstd")
        os.replace(tmp, path)
    except OSError as e:
        raise DlbenchError(f"cannot write {path}: {e.strerror or e}") from None
    finally:
        tmp.unlink(missing_ok=True)
    return path


def write_results(recorders: list[Recorder], meta: dict, path: Path, *, force: bool = False) -> Results:
    table, results = make_results(recorders, meta)
    results.path = write_table(table, path, force=force)
    return results


def read_results(path) -> Results:
    """Read and validate a dlbench results file; every failure is one clear ResultsFileError."""
    path = Path(path)
    if not path.exists():
        raise ResultsFileError(f"{path}: no such file")
    if path.is_dir():
        raise ResultsFileError(f"{path} is a directory, not a results file")
    with open(path, "rb") as fh:
        head = fh.read(4)
    if head != b"PAR1":
        raise ResultsFileError(f"{path} is not a Parquet file (and so not a dlbench results file)")
    try:
        pf = pq.ParquetFile(path)
        raw_meta = (pf.schema_arrow.metadata or {}).get(META_KEY)
    except (pa.ArrowException, OSError) as e:
        raise ResultsFileError(f"{path} is a damaged Parquet file ({_first_line(e)})") from None
    if raw_meta is None:
        raise ResultsFileError(f"{path} is a Parquet file but not a dlbench results file (no dlbench metadata)")
    try:
        meta = json.loads(raw_meta)
        version = int(meta["schema_version"])
    except (ValueError, KeyError, TypeError):
        raise ResultsFileError(f"{path} has damaged dlbench metadata") from None
    if version > SCHEMA_VERSION:
        raise ResultsFileError(f"{path} was written by a newer dlbench (results schema {version}; "
                               f"this dlbench reads schema {SCHEMA_VERSION}): upgrade dlbench to read it")
    if version < 1:
        raise ResultsFileError(f"{path} has an unknown results schema version {version}")
    try:
        table = pf.read()
    except (pa.ArrowException, OSError) as e:
        raise ResultsFileError(f"{path} is a damaged Parquet file ({_first_line(e)})") from None
    missing = [c for c in CORE_COLUMNS if c not in table.column_names]
    if missing:
        raise ResultsFileError(f"{path} is a damaged dlbench results file (missing columns: {', '.join(missing)})")
    wrong = [f"{c} is {table.schema.field(c).type}, not {CORE_SCHEMA.field(c).type}" for c in CORE_COLUMNS
             if table.schema.field(c).type not in (CORE_SCHEMA.field(c).type, pa.null())]
    if wrong:
        raise ResultsFileError(f"{path} is a damaged dlbench results file ({'; '.join(wrong)})")
    return Results(table.to_pandas(), meta, path)


def _first_line(e: Exception) -> str:
    return (str(e).strip().splitlines() or [type(e).__name__])[0]
