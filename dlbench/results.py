"""The results file: tidy rows -> Arrow table -> Parquet, with the run's metadata.

One row per observation. Core columns (always present):

    run_id, experiment, kind, section, case, metric, value, unit, better, seed, sample,
    items, bytes, loops, claim, verdict, low, high, n, method, statement, evidence, basis,
    control, sensitivity, role, threshold, host, base_seed, parts

`kind` is one of:

- `metric`: a measured value (one row per seed or repeat);
- `curve`: one point of a curve; `sample` is the step;
- `timing`: one raw timing sample; `value` is seconds per call, `items` and `bytes` are
  per call, `host` names the machine it was taken on;
- `grid`: one finding of a claim at one point of its nuisance grid: `claim` is the claim's
  id, `role` is `claim` or `control`, `metric` is `<claim>.<role>`, the point's settings are
  the case; `value` is the effect, `low`/`high` its 95 % interval, `threshold` the practical
  threshold, `verdict` supported / refuted / inconclusive / not run, `parts` the verdicts of its
  parts (comma-separated) when it is made of several;
- `claim`: a claim's verdict (supported, refuted, inconclusive, conditional, not run), judged
  from its grid rows by `dlbench.protocol`; `metric` and `claim` are its id, `control` is its
  control's outcome, `sensitivity` one line over the grid, `basis` `measured` or `timing`
  (verdicts that rest on wall time, which may move with the machine's load);
- `check`: an exact identity: `verdict` pass or fail, `value` the error, `threshold` the
  tolerance, `claim` the claim it stands beside.

Metrics derived from timings (ns/element, a fitted time exponent) are recorded with
`better="none"`, basis `timing` and their host: the raw samples in the timing rows are what
`dlbench compare` judges, and every other metric is bit-identical for the same seed. The parameters that define a case
are typed columns of their own, named `p_<name>` with <name> a snake_case identifier;
`case` is the same parameters as one stable string key. `section` is a stable id; its
display title is in the metadata. Every row carries the `base_seed` of the run it came from.
The Parquet key-value metadata key `dlbench` holds a JSON object with `schema_version`,
`run_id`, `experiments`, `fingerprint`, `bandwidth`, `seeds`, `base_seeds`, `options` and
`sections` ({experiment: {section id: title}}). Files of schema version 1 open too; the
columns they lack read as nulls.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
import tempfile
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from dlbench.errors import DlbenchError, ResultsFileError
from dlbench.stats import Finding
from dlbench.timing import Timing

SCHEMA_VERSION = 2
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
    ("control", pa.string()),
    ("sensitivity", pa.string()),
    ("role", pa.string()),
    ("threshold", pa.float64()),
    ("host", pa.string()),
    ("base_seed", pa.int64()),
    ("parts", pa.string()),
])
#: The columns schema version 1 did not have; a version-1 file reads them as nulls.
V2_COLUMNS = ("control", "sensitivity", "role", "threshold", "host", "base_seed", "parts")
CORE_COLUMNS = tuple(CORE_SCHEMA.names)
PARAM_PREFIX = "p_"


def param_name(name: str) -> str:
    """A parameter's column-safe name: a snake_case ASCII identifier ('notes row' -> 'notes_row')."""
    out = re.sub(r"[^0-9a-zA-Z]+", "_", str(name)).strip("_").lower()
    if not out:
        raise ValueError(f"parameter name {name!r} has no letters or digits")
    return f"_{out}" if out[0].isdigit() else out


def case_key(case: dict) -> str:
    """The stable string key of a case: `name=value` pairs in the order given."""
    return " ".join(f"{param_name(k)}={_fmt_param(v)}" for k, v in case.items())


def _fmt_param(v) -> str:
    if isinstance(v, float):
        return f"{v:g}"
    return str(v)


@dataclass
class Recorder:
    """Collects one experiment's rows as column chunks (cheap for long curves and many samples)."""

    experiment: str
    chunks: list[tuple[int, dict]] = field(default_factory=list)
    base_seed: int = 0

    def _add(self, count: int, case: dict, **cols) -> None:
        cols.update({PARAM_PREFIX + param_name(k): v for k, v in case.items()})
        cols["case"] = case_key(case)
        cols["experiment"] = self.experiment
        cols["base_seed"] = self.base_seed
        self.chunks.append((count, cols))

    def metric(self, metric: str, values, *, case: dict, unit: str = "", better: str = "none",
               seeds=None, section: str = "results", from_timing: bool = False) -> None:
        """One or more observations of `metric` for `case` (one per seed or repeat).

        `from_timing`: the figure is derived from a timing (a rate, a cost per item), so it carries
        basis `timing` and the host it was measured on, as the timing rows do."""
        if better not in BETTER:
            raise ValueError(f"better must be one of {BETTER}")
        v = np.atleast_1d(np.asarray(values, dtype=float)).ravel()
        seed = None if seeds is None else np.broadcast_to(np.asarray(seeds, dtype=np.int64), v.shape)
        extra = {"basis": "timing", "host": host_id()} if from_timing else {}
        self._add(v.size, case, kind="metric", section=section, metric=metric, value=v, unit=unit,
                  better=better, seed=seed, sample=np.arange(v.size), **extra)

    def curve(self, metric: str, values, *, case: dict, unit: str = "", better: str = "lower",
              seed: int | None = None, steps=None, section: str = "results") -> None:
        """A curve (e.g. loss per step): one row per point, `sample` holds the step."""
        v = np.asarray(values, dtype=float).ravel()
        steps = np.arange(v.size) if steps is None else np.asarray(steps, dtype=np.int64)
        self._add(v.size, case, kind="curve", section=section, metric=metric, value=v, unit=unit,
                  better=better, seed=seed, sample=steps)

    def timing(self, metric: str, t: Timing, *, case: dict, section: str = "timings") -> None:
        """Raw timing samples, seconds per call, with items and bytes per call and the host they ran on."""
        n = t.samples.size
        self._add(n, case, kind="timing", section=section, metric=metric, value=t.samples, unit="s",
                  better="lower", sample=np.arange(n), items=t.items, bytes=t.bytes, loops=t.loops,
                  host=host_id())

    def finding(self, claim: str, f: Finding, *, point: dict | None = None, role: str = "claim",
                timing: bool = False) -> Finding:
        """A claim's finding at one grid point (`point`: the nuisance settings), as the claim or its control."""
        if role not in ("claim", "control"):
            raise ValueError("role must be 'claim' or 'control'")
        self._add(1, dict(point or {}), kind="grid", section="claims", metric=f"{claim}.{role}", claim=claim,
                  role=role, verdict=f.verdict, value=f.effect, low=f.low, high=f.high, n=f.n, method=f.method,
                  evidence=f.evidence, unit=f.unit, threshold=f.threshold, better="none",
                  basis="timing" if timing else "measured", parts=",".join(f.parts) or None)
        return f

    def not_run(self, claim: str, reason: str, *, point: dict | None = None) -> None:
        """A claim (or one grid point of it) this run did not measure, and why."""
        self._add(1, dict(point or {}), kind="grid", section="claims", metric=f"{claim}.claim", claim=claim,
                  role="claim", verdict="not run", evidence=reason, better="none", basis="measured")

    def check(self, check_id: str, error: float, tolerance: float, *, what: str, n: int = 1, claim: str = "",
              statement: str = "") -> bool:
        """An exact identity: it passes when `error` is finite and within `tolerance`."""
        ok = bool(np.isfinite(error) and error <= tolerance)
        evidence = f"{what} {error:.2e} (tolerance {tolerance:.0e}), {n} check{'s' if n != 1 else ''}"
        self._add(1, {}, kind="check", section="checks", metric=check_id, claim=claim or check_id,
                  verdict="pass" if ok else "fail", value=float(error), threshold=float(tolerance), n=int(n),
                  method="exact", statement=statement, evidence=evidence, better="none", basis="exact")
        return ok

    def verdict(self, judgement, statement: str, *, basis: str = "measured") -> None:
        """A claim's judged verdict (a `dlbench.protocol.Judgement`)."""
        h = judgement.headline
        nan = float("nan")
        self._add(1, {}, kind="claim", section="claims", metric=judgement.claim, claim=judgement.claim,
                  verdict=judgement.verdict, value=h.effect if h else nan, low=h.low if h else nan,
                  high=h.high if h else nan, n=h.n if h else 0, method=h.method if h else "not run",
                  statement=statement, evidence=judgement.evidence, unit=h.unit if h else "",
                  threshold=h.threshold if h else nan, better="none", basis=basis, control=judgement.control,
                  sensitivity=judgement.sensitivity)

    def table(self, kinds: tuple[str, ...] | None = None) -> pa.Table:
        """The rows recorded so far (only those of `kinds`, when given) as an Arrow table."""
        chunks = [c for c in self.chunks if kinds is None or c[1].get("kind") in kinds]
        return build_table([Recorder(self.experiment, chunks)], run_id="")


@functools.cache
def host_id() -> str:
    """A short id of this machine: the same host, CPU and core count give the same id."""
    import hashlib
    import platform

    from dlbench.env import cpu_model

    text = f"{platform.node()}|{cpu_model()}|{os.cpu_count()}|{platform.machine()}"
    return hashlib.sha256(text.encode()).hexdigest()[:12]


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
    meta.setdefault("experiments", list(dict.fromkeys(r.experiment for r in recorders)))
    return _sealed(build_table(recorders, run_id), meta)


def _sealed(table: pa.Table, meta: dict) -> tuple[pa.Table, Results]:
    """The table with its metadata, content digest and file digest placeholder, and its Results."""
    meta = json.loads(json.dumps(meta, default=_json_default))   # what a reader will get back
    rows = table.to_pandas()
    meta["digest"] = content_digest(rows, meta)
    meta["file_digest"] = FILE_DIGEST_PLACEHOLDER
    table = table.replace_schema_metadata({META_KEY: json.dumps(meta).encode()})
    return table, Results(rows, meta)


#: Written into the metadata, then replaced in the file's bytes by the SHA-256 of every byte of the file
#: as written with this placeholder: the same length, so the file stays valid and the digest covers all
#: of it but itself.
FILE_DIGEST_PLACEHOLDER = "sha256:" + "0" * 64


def _seal(data: bytes) -> bytes:
    """The file's bytes with its placeholder replaced by the digest of the bytes (placeholder in place)."""
    marker = FILE_DIGEST_PLACEHOLDER.encode()
    if data.count(marker) != 1:
        raise ValueError("the file digest placeholder must occur exactly once")
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    return data.replace(marker, digest.encode())


def _file_digest_matches(data: bytes, written: str) -> bool:
    """Whether the bytes, with the written digest put back to the placeholder, hash to that digest."""
    mark = written.encode()
    if len(mark) != len(FILE_DIGEST_PLACEHOLDER) or data.count(mark) != 1:
        return False
    return "sha256:" + hashlib.sha256(data.replace(mark, FILE_DIGEST_PLACEHOLDER.encode())).hexdigest() == written


def content_digest(rows: pd.DataFrame, meta: dict) -> str:
    """SHA-256 of a run's content: column names, every value of every row, and the metadata (bar the digest).

    Stored in the metadata and checked on every read, so a file whose bytes changed after it was written
    is refused even where Parquet's page checksums cannot see it (a changed footer, dictionary or statistics).
    """
    h = hashlib.sha256()
    h.update(json.dumps([str(c) for c in rows.columns]).encode())
    h.update(pd.util.hash_pandas_object(rows, index=False).to_numpy().tobytes())
    h.update(json.dumps({k: v for k, v in meta.items() if k != "digest"}, sort_keys=True).encode())
    return "sha256:" + h.hexdigest()


def concat_tables(tables: list[pa.Table], run_id: str) -> pa.Table:
    """Several tables of `build_table` as one, in the order given, as `build_table` would have made it from
    all their recorders at once: parameter columns in order of first appearance, each typed over all the
    values (bool, int64, float64, else strings as `case` writes them), missing ones null."""
    params = list(dict.fromkeys(n for t in tables for n in t.column_names if n.startswith(PARAM_PREFIX)))
    kinds = {p: set() for p in params}
    for t in tables:
        for p in params:
            if p in t.column_names and t.column(p).null_count < t.num_rows:
                kinds[p].add(t.schema.field(p).type)
    types = {}
    for p, ks in kinds.items():
        if ks and ks <= {pa.bool_()}:
            types[p] = pa.bool_()
        elif ks and ks <= {pa.int64()}:
            types[p] = pa.int64()
        elif ks and ks <= {pa.bool_(), pa.int64(), pa.float64()}:
            types[p] = pa.float64()
        else:
            types[p] = pa.string()
    parts = []
    for t in tables:
        cols = {name: t.column(name) for name in CORE_COLUMNS}
        cols["run_id"] = pa.array([run_id] * t.num_rows, pa.string())
        for p in params:
            typ = types[p]
            if p not in t.column_names or t.column(p).null_count == t.num_rows:
                cols[p] = pa.nulls(t.num_rows, typ)
            elif t.schema.field(p).type == typ:
                cols[p] = t.column(p)
            elif typ == pa.string():
                cols[p] = pa.array([None if v is None else _fmt_param(v) for v in t.column(p).to_pylist()], typ)
            else:
                cols[p] = t.column(p).cast(typ)
        parts.append(pa.table(cols, schema=pa.schema([*CORE_SCHEMA, *(pa.field(p, types[p]) for p in params)])))
    if not parts:
        return build_table([], run_id)
    return pa.concat_tables(parts)


def results_from_tables(tables: list[pa.Table], meta: dict) -> tuple[pa.Table, Results]:
    """`make_results` for rows that are already tables (each from `build_table`), in the order given."""
    run_id = meta.setdefault("run_id", uuid.uuid4().hex[:12])
    meta["schema_version"] = SCHEMA_VERSION
    table = concat_tables(tables, run_id)
    meta.setdefault("experiments", list(dict.fromkeys(table.column("experiment").to_pylist())))
    return _sealed(table, meta)


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
        pq.write_table(table, tmp, compression="zstd", write_page_checksum=True)
        tmp.write_bytes(_seal(tmp.read_bytes()))
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
        pf = pq.ParquetFile(path, page_checksum_verification=True)
        # the footer's own key-value entry (sealed with the file digest), not the copy inside the stored
        # Arrow schema, which keeps the digest's placeholder
        raw_meta = (pf.metadata.metadata or {}).get(META_KEY)
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
    expected = [c for c in CORE_COLUMNS if version >= 2 or c not in V2_COLUMNS]
    missing = [c for c in expected if c not in table.column_names]
    if missing:
        raise ResultsFileError(f"{path} is a damaged dlbench results file (missing columns: {', '.join(missing)})")
    absent = [c for c in CORE_COLUMNS if c not in table.column_names]
    if absent:  # a version-1 file: the protocol's columns are empty, in their place among the core columns
        for c in absent:
            table = table.append_column(CORE_SCHEMA.field(c), pa.nulls(table.num_rows, CORE_SCHEMA.field(c).type))
        params = [c for c in table.column_names if c not in CORE_COLUMNS]
        table = table.select([*CORE_COLUMNS, *params])
    table = cast_travelled_columns(table, path)
    wrong = [f"{c} is {table.schema.field(c).type}, not {CORE_SCHEMA.field(c).type}" for c in CORE_COLUMNS
             if table.schema.field(c).type not in (CORE_SCHEMA.field(c).type, pa.null())]
    if wrong:
        raise ResultsFileError(f"{path} is a damaged dlbench results file ({'; '.join(wrong)})")
    try:
        rows = table.to_pandas()
    except (pa.ArrowException, ValueError) as e:
        raise ResultsFileError(f"{path} is a damaged Parquet file ({_first_line(e)})") from None
    if version >= 2:
        _check_digests(path, pf, rows, meta)
    return Results(rows, meta, path)


def _check_digests(path: Path, pf: pq.ParquetFile, rows: pd.DataFrame, meta: dict) -> None:
    """A file as dlbench wrote it must hash to its file digest, every byte of it. A file another tool
    wrote again (pandas, polars, DuckDB; its types cast back on read) cannot, so its content must hash to
    the content digest instead: the numbers are the ones written, whatever carried them."""
    written = meta.get("file_digest")
    if isinstance(written, str) and _file_digest_matches(path.read_bytes(), written):
        return
    rewritten = not _as_dlbench_wrote_it(pf)
    # A tool that carries the metadata on carries the copy in the Arrow schema, whose file digest is still
    # the placeholder; the content digest was taken before the file digest existed.
    carried = meta.get("file_digest") == FILE_DIGEST_PLACEHOLDER
    content = {k: v for k, v in meta.items() if k != "file_digest"}
    if rewritten and carried and meta.get("digest") == content_digest(rows, content):
        return
    what = "its content does not match" if rewritten else "its bytes do not match"
    raise ResultsFileError(f"{path} is a damaged dlbench results file ({what} the digest written with it)")


def _as_dlbench_wrote_it(pf: pq.ParquetFile) -> bool:
    """True when the file still has the writer and the column types dlbench gave it."""
    keys = set(pf.metadata.metadata or {})
    if not pf.metadata.created_by.startswith("parquet-cpp-arrow") or keys - {META_KEY, b"ARROW:schema"}:
        return False
    return all(pf.schema_arrow.field(c).type == CORE_SCHEMA.field(c).type for c in CORE_COLUMNS
               if c in pf.schema_arrow.names)


def cast_travelled_columns(table: pa.Table, path) -> pa.Table:
    """A results file that went through another tool, with its columns cast back, losslessly.

    pandas, polars and many Arrow tools write strings as `large_string` (or `string_view`,
    or dictionary-encoded), integer columns with gaps as `double`, and may add the index as
    `__index_level_0__`. Strings of any encoding become `string`; a narrower integer or float
    is widened; a `double` column that should be `int64` is cast when every value is a whole
    number within +-2**53 (where a double is exact). The index column is dropped. A column
    that cannot be brought back without losing values is left as it is, for the caller's
    one-line refusal, except a `double` holding fractions, which is refused here by name.
    """
    import pyarrow.compute as pc

    def restring(typ: pa.DataType) -> bool:
        if pa.types.is_dictionary(typ):
            return restring(typ.value_type)
        return pa.types.is_string(typ) or pa.types.is_large_string(typ) or pa.types.is_string_view(typ)

    for name in [n for n in table.column_names if re.fullmatch(r"__index_level_\d+__", n)]:
        table = table.drop_columns([name])
    for i, f in enumerate(table.schema):
        want = CORE_SCHEMA.field(f.name).type if f.name in CORE_SCHEMA.names else None
        if f.name not in CORE_SCHEMA.names and not f.name.startswith(PARAM_PREFIX):
            continue
        if f.type == want or pa.types.is_null(f.type):
            continue
        col = table.column(i)
        if restring(f.type) and (want is None or want == pa.string()):
            new = col.cast(pa.string()) if not pa.types.is_dictionary(f.type) else \
                pa.chunked_array([c.dictionary_decode() for c in col.chunks], f.type.value_type).cast(pa.string())
        elif want is None:
            continue  # a parameter column of another numeric type keeps its values as they are
        elif want == pa.float64() and (pa.types.is_floating(f.type) or pa.types.is_integer(f.type)) \
                and f.type.bit_width <= (64 if pa.types.is_floating(f.type) else 32):
            new = col.cast(pa.float64())
        elif want == pa.int64() and pa.types.is_integer(f.type) and (f.type != pa.uint64() or
                                                                    (pc.max(col).as_py() or 0) < 2**63):
            new = col.cast(pa.int64())
        elif want == pa.int64() and pa.types.is_floating(f.type):
            values = col.cast(pa.float64())
            values = pc.if_else(pc.is_nan(values), pa.scalar(None, pa.float64()), values)  # NaN: pandas' null
            whole = pc.and_(pc.equal(pc.floor(values), values), pc.less_equal(pc.abs(values), 2.0**53))
            if pc.all(whole).as_py() is False:
                bad = pc.filter(values, pc.invert(whole)).slice(0, 1).to_pylist()
                raise ResultsFileError(f"{path} is a damaged dlbench results file ({f.name} should hold whole "
                                       f"numbers but holds {bad[0]!r})")
            new = values.cast(pa.int64())
        else:
            continue
        table = table.set_column(i, pa.field(f.name, new.type), new)
    return table


def _first_line(e: Exception) -> str:
    return (str(e).strip().splitlines() or [type(e).__name__])[0]
