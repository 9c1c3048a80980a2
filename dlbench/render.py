"""Turn results into tables: Rich for a terminal, Markdown, JSON and CSV for everything else.

`summarize` reduces the raw rows to one row per (case, metric): median and 95 %
bootstrap interval over seeds/repeats, a sparkline for curves, throughput for
timings. `tables` lays the summary out as titled tables; the renderers only format.
"""

from __future__ import annotations

import io
import json
import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from dlbench.results import PARAM_PREFIX, Results
from dlbench.stats import bootstrap_ci
from dlbench.timing import bandwidth_fraction

SPARKS = "▁▂▃▄▅▆▇█"
VERDICT_STYLE = {"supported": "green", "refuted": "red", "inconclusive": "yellow", "conditional": "magenta",
                 "not run": "dim", "pass": "green", "fail": "bold red"}


def sparkline(values, width: int = 16) -> str:
    """A one-line picture of a curve; log-scaled when positive and spanning more than 10x."""
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return ""
    if v.size > width:  # downsample by taking evenly spaced points, always keeping the last
        v = v[np.linspace(0, v.size - 1, width).round().astype(int)]
    if (v > 0).all() and v.max() > 10 * v.min():
        v = np.log10(v)
    lo, hi = v.min(), v.max()
    if hi - lo < 1e-12 * max(1.0, abs(hi)):
        return SPARKS[3] * v.size
    idx = ((v - lo) / (hi - lo) * (len(SPARKS) - 1)).round().astype(int)
    return "".join(SPARKS[i] for i in idx)


def fmt(v, unit: str = "") -> str:
    """Three significant figures; booleans as yes/no; times with their SI prefix."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "—"
    if unit == "s":
        return fmt_time(v)
    if unit == "bool":
        return "yes" if v >= 0.5 else "no"
    if isinstance(v, float) and math.isinf(v):
        return "∞" if v > 0 else "-∞"
    return num(v)


def num(v: float, digits: int = 3) -> str:
    """`digits` significant figures with a compact exponent: 1.12e7, 3.8e-13."""
    text = f"{v:.{digits}g}"
    if "e" in text:
        mant, exp = text.split("e")
        text = f"{mant}e{int(exp)}"
    return text


def fmt_time(seconds: float, digits: int = 3) -> str:
    for scale, suffix in ((1, "s"), (1e-3, "ms"), (1e-6, "µs"), (1e-9, "ns")):
        if abs(seconds) >= scale:
            return f"{seconds / scale:.{digits}g} {suffix}"
    return f"{seconds / 1e-9:.{digits}g} ns"


def summarize(results: Results) -> pd.DataFrame:
    """One row per (experiment, section, case, metric), in the order the run recorded them."""
    df = results.rows
    bandwidth = results.meta.get("bandwidth", {})
    params = [c for c in df.columns if c.startswith(PARAM_PREFIX)]
    out = []
    keys = ["experiment", "section", "kind", "case", "metric", "base_seed"]
    several = "base_seed" in df.columns and df["base_seed"].nunique() > 1
    if not several:
        keys = keys[:-1]
    for key, g in df.groupby(keys, sort=False, dropna=False):
        exp, section, kind, case, metric = key[:5]
        first = g.iloc[0]
        row = {"experiment": exp, "section": section, "kind": kind, "case": case, "metric": metric,
               "unit": first["unit"], "better": first["better"], "n": 0, "median": np.nan, "mean": np.nan,
               "low": np.nan, "high": np.nan, "spark": "", "items_per_s": np.nan, "gbps": np.nan,
               "bandwidth_fraction": np.nan, "verdict": None, "statement": None, "evidence": None,
               "params": {p[len(PARAM_PREFIX):]: _py(first[p]) for p in params if _present(first[p])}}
        if several and kind in ("metric", "curve", "timing"):
            row["params"]["base_seed"] = _py(first["base_seed"])
        v = g["value"].to_numpy(dtype=float)
        if kind in ("claim", "check", "grid"):
            row.update(n=int(first["n"]) if _present(first["n"]) else 0, median=first["value"], low=first["low"],
                       high=first["high"], verdict=first["verdict"], statement=first["statement"],
                       evidence=first["evidence"], claim=first.get("claim"), role=first.get("role"),
                       control=first.get("control"), sensitivity=first.get("sensitivity"),
                       threshold=first.get("threshold"), base_seed=first.get("base_seed"))
        elif kind == "curve":
            # Median over seeds at each step; the summary value is the curve's last point.
            curve = g.groupby("sample", sort=True)["value"].median().to_numpy()
            n = g["seed"].nunique() if g["seed"].notna().any() else 1
            row.update(n=int(n), median=float(curve[-1]), spark=sparkline(curve))
        else:
            finite = v[np.isfinite(v)]
            row["n"] = int(v.size)
            if finite.size:
                row["median"] = float(np.median(finite))
                with np.errstate(over="ignore", invalid="ignore"):  # huge finite values (a divergent surface)
                    row["mean"] = float(finite.mean())
                if finite.size > 1:
                    row["low"], row["high"] = bootstrap_ci(finite, seed=0)
            if kind == "timing":
                med = row["median"]
                items, nbytes = first["items"], first["bytes"]
                if _present(items) and med > 0:
                    row["items_per_s"] = items / med
                if _present(nbytes) and med > 0:
                    row["gbps"] = nbytes / med / 1e9
                    frac = bandwidth_fraction(row["gbps"], nbytes, bandwidth)
                    row["bandwidth_fraction"] = np.nan if frac is None else frac
        out.append(row)
    return pd.DataFrame(out)


def _present(v) -> bool:
    return v is not None and not (isinstance(v, float) and math.isnan(v)) and v is not pd.NA


def _py(v):
    return v.item() if isinstance(v, np.generic) else v


@dataclass
class Table:
    title: str
    kind: str  # results | timings | claims
    columns: list[str]
    rows: list[list[str]] = field(default_factory=list)
    labels: int = 1  # leading columns that name the case


def tables(results: Results, summary: pd.DataFrame | None = None) -> list[Table]:
    """The summary laid out as titled tables: per experiment, its result sections, timings, checks,
    claims (verdict, control, sensitivity) and each claim's findings over its grid."""
    s = summarize(results) if summary is None else summary
    out: list[Table] = []
    if s.empty:
        return out
    titles = results.meta.get("sections", {})
    several = len(results.meta.get("base_seeds", [])) > 1
    for exp, es in s.groupby("experiment", sort=False):
        names = titles.get(exp, {})
        for section, ss in es[es["kind"].isin(["metric", "curve"])].groupby("section", sort=False):
            out.append(_result_table(exp, names.get(section, section), ss))
        ts = es[es["kind"] == "timing"]
        for section, tss in ts.groupby("section", sort=False):
            out.append(_timing_table(exp, names.get(section, section), tss))
        ks = es[es["kind"] == "check"]
        if len(ks):
            t = Table(f"{exp} · checks (exact identities)", "checks", ["check", "result", "claim", "evidence"])
            for _, r in ks.iterrows():
                seed = f" (base seed {int(r['base_seed'])})" if several and _present(r.get("base_seed")) else ""
                t.rows.append([r["metric"] + seed, r["verdict"], r["claim"] if r["claim"] != r["metric"] else "",
                               r["evidence"]])
            out.append(t)
        gs = es[es["kind"] == "grid"]
        if len(gs) and (gs["role"].eq("control").any() or gs.groupby(["claim", "role"]).size().max() > 1):
            t = Table(f"{exp} · findings over each claim's grid and its control", "grid",
                      ["claim", "role", "setting", "verdict", "evidence"], labels=3)
            for _, r in gs.iterrows():
                t.rows.append([r["claim"], r["role"], _setting(r, several), r["verdict"], r["evidence"]])
            out.append(t)
        cs = es[es["kind"] == "claim"]
        if len(cs):
            t = Table(f"{exp} · claims", "claims", ["claim", "verdict", "control", "sensitivity", "statement",
                                                    "evidence"])
            for _, r in cs.iterrows():
                t.rows.append([r["metric"], r["verdict"], _text(r.get("control")), _text(r.get("sensitivity")),
                               r["statement"], r["evidence"]])
            out.append(t)
    return out


def _text(v) -> str:
    return "" if v is None or (isinstance(v, float) and math.isnan(v)) else str(v)


def _setting(r, with_seed: bool = False) -> str:
    text = " ".join(f"{k}={_fmt_param(v)}" for k, v in r["params"].items())
    if with_seed and _present(r.get("base_seed")):
        text = f"{text} (base seed {int(r['base_seed'])})".strip()
    return text or "—"


def _split_params(ss: pd.DataFrame) -> tuple[list[str], str]:
    """Parameters that vary across a section (columns) and those that do not (title)."""
    seen: dict[str, list] = {}
    for p in ss["params"]:
        for k, v in p.items():
            seen.setdefault(k, []).append(v)
    varying = [k for k, vs in seen.items() if len(set(map(str, vs))) > 1 or len(vs) < len(ss)]
    fixed = [f"{k}={_fmt_param(vs[0])}" for k, vs in seen.items() if k not in varying]
    return varying, ", ".join(fixed)


def _fmt_param(v) -> str:
    # Integer parameters come back from Parquet as floats when the column has gaps.
    if isinstance(v, float):
        return str(int(v)) if v.is_integer() and abs(v) < 1e15 else f"{v:g}"
    return str(v)


def _result_table(exp: str, section: str, ss: pd.DataFrame) -> Table:
    varying, fixed = _split_params(ss)
    metrics = list(dict.fromkeys(zip(ss["metric"], ss["kind"], ss["unit"])))
    headers = [m + (" (curve)" if k == "curve" else f" ({u})" if u and u not in ("bool", "s") else "")
               for m, k, u in metrics]
    title = f"{exp} · {section}" + (f"  [{fixed}]" if fixed else "")
    t = Table(title, "results", [*varying, *headers], labels=len(varying))
    seeds = ss["params"].map(lambda p: p.get("base_seed", -1))
    for _, cs in ss.groupby([ss["case"], seeds], sort=False):
        params = cs.iloc[0]["params"]
        cells = {(r["metric"], r["kind"]): _cell(r) for _, r in cs.iterrows()}
        t.rows.append([_fmt_param(params.get(k, "")) for k in varying]
                      + [cells.get((m, k), "") for m, k, _ in metrics])
    return t


def _cell(r) -> str:
    if r["kind"] == "curve":
        return f"{r['spark']} {fmt(r['median'], r['unit'])}"
    if r["unit"] == "bool" and r["n"] > 1 and 0 < r["mean"] < 1:
        return f"{r['mean']:.0%} yes"
    text = fmt(r["median"], r["unit"])
    if r["n"] > 1 and np.isfinite(r["low"]) and r["unit"] != "bool" and r["low"] != r["high"]:
        text += f" [{_bound(r['low'], r['unit'])}, {_bound(r['high'], r['unit'])}]"
    return text


def _bound(v: float, unit: str) -> str:
    if unit == "s":
        return fmt_time(v, 2)
    return num(v, 3 if 1 <= abs(v) < 1e4 else 2)


def _timing_table(exp: str, section: str, ts: pd.DataFrame) -> Table:
    varying, fixed = _split_params(ts)
    title = f"{exp} · {section}" + (f"  [{fixed}]" if fixed else "")
    t = Table(title, "timings", [*varying, "kernel", "time/call [95% CI]", "items/s", "GB/s", "% copy bw", "n"],
              labels=len(varying) + 1)
    for _, r in ts.iterrows():
        ci = f" [{fmt_time(r['low'], 2)}, {fmt_time(r['high'], 2)}]" if np.isfinite(r["low"]) else ""
        frac = r["bandwidth_fraction"]
        t.rows.append([_fmt_param(r["params"].get(k, "")) for k in varying] + [
            r["metric"], fmt_time(r["median"]) + ci, fmt(r["items_per_s"]), fmt(r["gbps"]),
            "—" if not np.isfinite(frac) else f"{frac:.0%}", str(r["n"])])
    return t


def header_lines(results: Results) -> list[str]:
    m = results.meta
    fp = m.get("fingerprint", {})
    lines = [f"dlbench {fp.get('dlbench', '?')} · run {m.get('run_id', '?')} · {', '.join(results.experiments)}"
             f" · seeds {len(m.get('seeds', []))}{' · quick' if m.get('quick') else ''}",
             f"{fp.get('cpu_model', '?')} · numpy {fp.get('numpy', '?')} · {fp.get('blas', '?')} "
             f"{fp.get('blas_version', '')} ({fp.get('blas_arch', '')}, {fp.get('threads', '?')} threads)"]
    bw = m.get("bandwidth", {})
    if bw:
        lines.append("copy bandwidth: " + ", ".join(f"{k} {v:.3g} GB/s" for k, v in bw.items()))
    return lines


def to_markdown(results: Results) -> str:
    buf = io.StringIO()
    buf.write("\n".join(f"{line}  " for line in header_lines(results)) + "\n")
    for t in tables(results):
        buf.write(f"\n### {t.title}\n\n")
        buf.write(markdown_table(t.columns, t.rows))
    return buf.getvalue()


def markdown_table(columns: list[str], rows: list[list[str]]) -> str:
    def esc(c) -> str:
        return str(c).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(esc(c) for c in columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(esc(c) for c in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def to_json(results: Results) -> str:
    s = summarize(results)
    doc = {
        "run_id": results.meta.get("run_id"),
        "experiments": results.experiments,
        "fingerprint": results.meta.get("fingerprint", {}),
        "bandwidth": results.meta.get("bandwidth", {}),
        "tables": [t.__dict__ for t in tables(results, s)],
        "summary": json.loads(s.drop(columns=["spark"]).to_json(orient="records")) if len(s) else [],
    }
    return json.dumps(doc, indent=2, default=str)


def to_csv(results: Results) -> str:
    """The summary in tidy form: one line per (case, metric), parameters as columns."""
    s = summarize(results)
    if s.empty:
        return ""
    params = pd.DataFrame(list(s["params"]), index=s.index).add_prefix(PARAM_PREFIX)
    return pd.concat([s.drop(columns=["params", "spark"]), params], axis=1).to_csv(index=False)


def render_rich(results: Results, console) -> None:
    from rich import box
    from rich.table import Table as RichTable
    from rich.text import Text

    for line in header_lines(results):
        console.print(Text(line, style="dim"))
    for t in tables(results):
        rt = RichTable(title=Text(t.title, style="bold"), title_justify="left", box=box.SIMPLE_HEAD)
        for i, c in enumerate(t.columns):
            wide = t.kind in ("claims", "checks", "grid") and c in ("statement", "evidence")
            rt.add_column(Text(c), overflow="fold", ratio=2 if wide else None,
                          no_wrap=t.kind in ("results", "timings") and i < t.labels,
                          justify="right" if t.kind in ("results", "timings") and i >= t.labels else "left")
        verdicts = [i for i, c in enumerate(t.columns) if c in ("verdict", "result", "control")]
        for row in t.rows:
            cells = [Text(str(c)) for c in row]
            for i in verdicts:
                cells[i].stylize(VERDICT_STYLE.get(row[i], ""))
            rt.add_row(*cells)
        console.print(rt)
