"""One page from results files, for a reader rather than a terminal.

    dlbench report run.parquet -o report.html   # one self-contained file: figures inline as SVG,
                                                # nothing fetched from the network, no JavaScript
    dlbench report run.parquet -o report.md     # Markdown; the figures as SVG files beside it

Per experiment of each file: what it asks (its one-line help and the options it ran with), its
claims with verdict, effect and 95 % interval, control and sensitivity, its figures, its checks,
each claim's findings over its grid, and every result table folded away. A figure is the
experiment's own `plot(results, path)` (matplotlib, from the `plot` extra) rendered to SVG;
where that gives none, a simple one is drawn from the rows: the median over seeds of the curve
metric with the most cases, or else the median and quartiles of a metric per case (rows are
chosen by kind, metric and case parameters, never by a section's title). Without matplotlib the
page says so in one line and keeps every table.
"""

from __future__ import annotations

import html
import importlib.util
import math
import os
import re
import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

import dlbench
from dlbench import render
from dlbench.errors import DlbenchError
from dlbench.results import PARAM_PREFIX, Results, check_writable

VERDICTS = ("supported", "refuted", "inconclusive", "conditional", "not run")
#: What each verdict word means, in one line (the page's key).
MEANING = {
    "supported": "the measured effect points the way the claim says, its 95 % interval excludes no effect and "
                 "clears the practical threshold, at every point of the claim's grid",
    "refuted": "the interval lies on the other side",
    "inconclusive": "measured, but undecided: too few values, too noisy, below the threshold, or a control "
                    "that came out supported (the evidence says which)",
    "conditional": "the grid points disagree; the sensitivity names the boundary",
    "not run": "this run did not measure the claim (the evidence says why)",
    "control": "the same measurement on a counterfactual without the claim's mechanism; it must not come out "
               "supported (shown in red when it does)",
    "sensitivity": "the verdict over the claim's nuisance grid (learning rate, steps, width, ...)",
    "check": "an exact identity about the code or the mathematics: pass or fail to a tolerance",
}
NO_MATPLOTLIB = "Figures need matplotlib, which is not installed (pip install 'dlbench[plot]'); the tables are complete."


@dataclass
class Figure:
    """One figure: a title and a standalone SVG document."""

    title: str
    svg: str
    origin: str  # "experiment" (its plot function) or "rows" (drawn here from its rows)


@dataclass
class Part:
    """One experiment of one results file, ready to lay out."""

    anchor: str
    experiment: str
    label: str
    asks: str
    options: dict
    claims: pd.DataFrame
    checks: pd.DataFrame
    grid: pd.DataFrame
    tables: list[render.Table]
    figures: list[Figure] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    specs: dict = field(default_factory=dict)  # claim id -> what the catalogue says of it


@dataclass
class Report:
    runs: list[Results]
    parts: list[Part]
    notes: list[str]


# ---------------------------------------------------------------------------------------------- building

def have_matplotlib() -> bool:
    return importlib.util.find_spec("matplotlib") is not None


def build(runs: list[Results], *, figures: bool = True) -> Report:
    """Lay out every experiment of every run; draw figures when asked and matplotlib is there."""
    draw = figures and have_matplotlib()
    notes = [NO_MATPLOTLIB] if figures and not draw else []
    parts, seen = [], set()
    for res in runs:
        for exp in res.experiments:
            anchor = _unique(re.sub(r"[^a-z0-9]+", "-", exp.lower()).strip("-") or "experiment", seen)
            label = exp if len(runs) == 1 else f"{exp} · run {res.meta.get('run_id', '?')}"
            sub = Results(res.rows[res.rows["experiment"] == exp].reset_index(drop=True), res.meta, res.path)
            part = _part(sub, exp, anchor, label)
            if draw:
                part.figures, part.notes = _figures(sub, exp, anchor)
            parts.append(part)
    return Report(runs, parts, notes)


def _unique(name: str, seen: set) -> str:
    out, i = name, 2
    while out in seen:
        out, i = f"{name}-{i}", i + 1
    seen.add(out)
    return out


def _module(exp: str):
    from dlbench import experiments

    try:
        return experiments.load(exp)
    except DlbenchError:  # a file from an experiment this dlbench does not have
        return None


def _part(sub: Results, exp: str, anchor: str, label: str) -> Part:
    rows = sub.rows
    module = _module(exp)
    asks = getattr(module, "HELP", "") if module else ""
    kinds = rows["kind"]
    tables = [t for t in render.tables(Results(rows[kinds.isin(["metric", "curve", "timing"])], sub.meta, sub.path))
              if t.kind in ("results", "timings")]
    return Part(anchor, exp, label, asks, dict(sub.meta.get("options", {}).get(exp, {})),
                rows[kinds == "claim"], rows[kinds == "check"], rows[kinds == "grid"], tables,
                specs=_specs(module))


#: What the catalogue says of a claim, in the order a reader wants it.
SPEC_FIELDS = (("measures", "measured"), ("control", "control"), ("threshold", "practical threshold"),
               ("premise", "judged where"), ("literature", "literature"))


def _specs(module) -> dict[str, list[tuple[str, str]]]:
    """Per claim id, the catalogue's description (measured, control, grid, threshold, literature)."""
    if module is None:
        return {}
    from dlbench.experiments.base import catalogue

    out = {}
    for cid, spec in catalogue(module).items():
        items = [(label, str(getattr(spec, name))) for name, label in SPEC_FIELDS if getattr(spec, name, "")]
        grid = getattr(spec, "grid", ())
        if grid:
            items.insert(2, ("nuisance grid", "; ".join(
                f"{a.name} in {{{', '.join(f'{v:g}' if isinstance(v, float) else str(v) for v in a.values)}}}"
                for a in grid)))
        if items:
            out[cid] = items
    return out


def _figures(sub: Results, exp: str, anchor: str) -> tuple[list[Figure], list[str]]:
    import matplotlib

    matplotlib.use("Agg")
    notes: list[str] = []
    figures: list[Figure] = []
    module = _module(exp)
    plot = getattr(module, "plot", None) if module else None
    # text stays text (smaller, sharper, searchable); the salt keeps ids apart between figures
    style = {"svg.fonttype": "none", "svg.hashsalt": f"dlbench-{anchor}"}
    if callable(plot):
        doc = (plot.__doc__ or "").strip().split("\n\n")[0]
        try:
            with matplotlib.rc_context(style), warnings.catch_warnings(), tempfile.TemporaryDirectory() as tmp:
                warnings.simplefilter("ignore")
                path = Path(tmp) / "figure.svg"
                plot(sub, path)
                if path.exists():
                    figures.append(Figure(" ".join(doc.split()) or f"{exp}", path.read_text(), "experiment"))
        except Exception as e:  # a figure that cannot be drawn must not cost the reader the tables
            notes.append(f"The experiment's own figure could not be drawn ({type(e).__name__}: "
                         f"{(str(e).strip().splitlines() or [''])[0]}).")
    if not figures:
        with matplotlib.rc_context(style), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fig = figure_from_rows(sub.rows)
        if fig is not None:
            figures.append(fig)
    return figures, notes


def _varying_labels(rows: pd.DataFrame, cases: list[str]) -> dict[str, str]:
    """A short label per case: only the parameters that differ between the cases shown."""
    params = [c for c in rows.columns if c.startswith(PARAM_PREFIX)]
    first = rows.drop_duplicates("case").set_index("case")
    varying = [p for p in params if first.loc[cases, p].astype(str).nunique() > 1]
    out = {}
    for case in cases:
        parts = [f"{p[len(PARAM_PREFIX):]}={render._fmt_param(first.loc[case, p])}" for p in varying
                 if render._present(first.loc[case, p])]
        out[case] = " ".join(parts) or case or "—"
    return out


def figure_from_rows(rows: pd.DataFrame, max_cases: int = 10) -> Figure | None:
    """A simple figure from an experiment's rows: the curve metric with the most cases (median over
    seeds per step, one line per case), else the metric with a better direction and the most cases
    (median and quartiles per case). None when there is nothing to draw."""
    import matplotlib.pyplot as plt

    curves = rows[rows["kind"] == "curve"]
    metrics = rows[(rows["kind"] == "metric") & rows["better"].isin(["lower", "higher"])]
    if len(curves):
        metric = curves.groupby("metric", sort=False)["case"].nunique().idxmax()
        sel = curves[curves["metric"] == metric]
        cases = list(dict.fromkeys(sel["case"].fillna("")))[:max_cases]
        labels = _varying_labels(sel.assign(case=sel["case"].fillna("")), cases)
        unit = sel["unit"].iloc[0] or ""
        fig, ax = plt.subplots(figsize=(7.5, 4.2))
        positive, lo, hi = True, math.inf, -math.inf
        for case in cases:
            g = sel[sel["case"].fillna("") == case]
            curve = g.groupby("sample", sort=True)["value"].median()
            v = curve.to_numpy(dtype=float)
            finite = v[np.isfinite(v)]
            if finite.size:
                positive &= bool((finite > 0).all())
                lo, hi = min(lo, finite.min()), max(hi, finite.max())
            ax.plot(curve.index.to_numpy(), v, lw=1.2, label=labels[case])
        if positive and np.isfinite(lo) and hi > 10 * lo:
            ax.set_yscale("log")
        ax.set(xlabel="step", ylabel=f"{metric}" + (f" ({unit})" if unit and unit != "bool" else ""),
               title=f"{metric}: median over seeds per step")
        title = f"{metric} per step, median over seeds, one line per case"
    elif len(metrics):
        metric = metrics.groupby("metric", sort=False)["case"].nunique().idxmax()
        sel = metrics[metrics["metric"] == metric]
        cases = list(dict.fromkeys(sel["case"].fillna("")))[:max_cases * 2]
        labels = _varying_labels(sel.assign(case=sel["case"].fillna("")), cases)
        stats = []
        for case in cases:
            v = sel.loc[sel["case"].fillna("") == case, "value"].to_numpy(dtype=float)
            v = v[np.isfinite(v)]
            stats.append(np.percentile(v, [25, 50, 75]) if v.size else (math.nan,) * 3)
        q = np.array(stats, dtype=float)
        unit = sel["unit"].iloc[0] or ""
        fig, ax = plt.subplots(figsize=(7.5, 0.8 + 0.32 * len(cases)))
        y = np.arange(len(cases))
        ax.errorbar(q[:, 1], y, xerr=[q[:, 1] - q[:, 0], q[:, 2] - q[:, 1]], fmt="o", capsize=3)
        ax.set_yticks(y, [labels[c] for c in cases])
        ax.invert_yaxis()
        better = sel["better"].iloc[0]
        ax.set(xlabel=f"{metric}" + (f" ({unit})" if unit and unit != "bool" else "") + f" ({better} is better)",
               title=f"{metric}: median and quartiles per case")
        title = f"{metric} per case: median and quartiles over seeds"
    else:
        return None
    if len(cases) > 1 and len(curves):
        ax.legend(fontsize=7, ncol=2)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    import io

    buf = io.StringIO()
    fig.savefig(buf, format="svg")
    plt.close(fig)
    return Figure(title, buf.getvalue(), "rows")


# ---------------------------------------------------------------------------------------------- text

def _present(v) -> bool:
    return render._present(v) and not (isinstance(v, str) and v == "")


def _num(v) -> str:
    if not _present(v):
        return "—"
    v = float(v)
    if math.isinf(v):
        return "∞" if v > 0 else "-∞"
    return render.num(v)


def effect_text(r) -> str:
    """The headline finding: '1.96 [1.95, 2.0] (bootstrap, n=6)'; an exact identity as its error and bound."""
    if r["verdict"] == "not run" or not _present(r["value"]) or not np.isfinite(float(r["value"])):
        return "—"
    unit = f" {r['unit']}" if _present(r.get("unit")) and r["unit"] not in ("bool", "") else ""
    method = r["method"] if _present(r.get("method")) else ""
    n = f"n={int(r['n'])}" if _present(r.get("n")) and int(r["n"]) > 0 else ""
    if method == "exact":
        return f"error {_num(r['value'])} (tolerance {_num(r['high'])}" + (f", {n})" if n else ")")
    text = _num(r["value"]) + unit
    if _present(r.get("low")) and _present(r.get("high")) and (r["low"] != r["value"] or r["high"] != r["value"]):
        text += f" [{_num(r['low'])}, {_num(r['high'])}]"
    extra = ", ".join(x for x in (method, n) if x)
    return text + (f" ({extra})" if extra else "")


def _text(v) -> str:
    return str(v) if _present(v) else "—"


def verdict_counts(part: Part) -> dict[str, int]:
    counts = {v: int((part.claims["verdict"] == v).sum()) for v in VERDICTS}
    counts["pass"] = int((part.checks["verdict"] == "pass").sum())
    counts["fail"] = int((part.checks["verdict"] == "fail").sum())
    return counts


def run_lines(res: Results) -> list[str]:
    """Where a run comes from, in two lines."""
    m, fp = res.meta, res.meta.get("fingerprint", {})
    commit = (fp.get("git_commit") or "")[:10]
    first = " · ".join(x for x in (
        str(res.path) if res.path is not None else "",
        f"run {m.get('run_id', '?')}",
        f"started {fp['started']}" if fp.get("started") else "",
        f"commit {commit}" + (" (dirty)" if fp.get("git_dirty") else "") if commit else "",
        f"{len(m.get('seeds', []))} seeds" + (f" × base seeds {', '.join(map(str, m['base_seeds']))}"
                                              if len(m.get("base_seeds", [])) > 1 else ""),
        "--quick" if m.get("quick") else "full size",
    ) if x)
    second = " · ".join(x for x in (
        f"dlbench {fp['dlbench']}" if fp.get("dlbench") else "",
        f"{fp.get('cpu_model')} ({fp.get('cpu_count')} cores)" if fp.get("cpu_model") else "",
        f"numpy {fp['numpy']}" if fp.get("numpy") else "",
        f"{fp.get('blas')} {fp.get('blas_version', '')} ({fp.get('threads', '?')} threads)" if fp.get("blas") else "",
        fp["command"] if fp.get("command") else "",
    ) if x)
    return [first, second] if second else [first]


def _options_text(options: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in options.items() if v is not None) or "its defaults"


# ---------------------------------------------------------------------------------------------- HTML

CSS = """
:root { --fg: #1b1f24; --muted: #57606a; --line: #d0d7de; --bg: #ffffff; --soft: #f6f8fa; }
* { box-sizing: border-box; }
body { margin: 0; color: var(--fg); background: var(--bg);
       font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; }
main { max-width: 1180px; margin: 0 auto; padding: 24px 28px 64px; }
h1 { font-size: 1.9em; margin: 0 0 4px; }
h2 { font-size: 1.45em; margin: 48px 0 4px; padding-top: 12px; border-top: 2px solid var(--line); }
h3 { font-size: 1.1em; margin: 28px 0 8px; }
h4 { font-size: 1em; margin: 20px 0 6px; }
p { margin: 6px 0; }
a { color: #0969da; text-decoration: none; }
a:hover { text-decoration: underline; }
.lede, .asks { font-size: 1.08em; }
.muted, .meta { color: var(--muted); font-size: 0.9em; }
.meta p { margin: 2px 0; }
.note { background: #fff8c5; border: 1px solid #d4a72c; border-radius: 6px; padding: 8px 12px; margin: 12px 0; }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; width: 100%; margin: 8px 0 4px; font-size: 0.92em; }
th, td { text-align: left; vertical-align: top; padding: 6px 10px; border-bottom: 1px solid var(--line); }
th { background: var(--soft); font-weight: 600; white-space: nowrap; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
td.id { font-weight: 600; white-space: nowrap; }
td.effect { font-variant-numeric: tabular-nums; min-width: 11em; }
table.claims td.found { min-width: 24em; }
.statement { font-weight: 600; }
.evidence { color: var(--muted); font-size: 0.93em; overflow-wrap: anywhere; }
.v { display: inline-block; padding: 1px 8px; border-radius: 10px; font-size: 0.85em; font-weight: 600;
     white-space: nowrap; border: 1px solid transparent; }
.v-supported, .v-pass { background: #dafbe1; color: #116329; border-color: #8fd8a0; }
.v-refuted, .v-fail { background: #ffebe9; color: #a40e26; border-color: #ff9ea8; }
.v-inconclusive { background: #fff8c5; color: #7d4e00; border-color: #e5c65a; }
.v-conditional { background: #fbefff; color: #6e40c9; border-color: #d2a8ff; }
.v-not-run { background: #f6f8fa; color: #57606a; border-color: #d0d7de; }
.v-control-ok { background: #f6f8fa; color: #116329; border-color: #8fd8a0; }
.count { font-variant-numeric: tabular-nums; }
table.glance td:nth-child(n+3) { text-align: center; }
figure { margin: 16px 0 24px; }
figure svg { width: 100%; height: auto; display: block; }
figcaption { color: var(--muted); font-size: 0.9em; margin-top: 4px; }
details { margin: 10px 0; border: 1px solid var(--line); border-radius: 6px; padding: 6px 12px; background: var(--bg); }
details > summary { cursor: pointer; font-weight: 600; }
details[open] > summary { margin-bottom: 8px; }
dl.key { display: grid; grid-template-columns: max-content 1fr; gap: 4px 14px; margin: 8px 0; }
dl.key dt { margin: 0; } dl.key dd { margin: 0; }
code { font-size: 0.92em; background: var(--soft); padding: 0 4px; border-radius: 4px; }
footer { margin-top: 56px; color: var(--muted); font-size: 0.85em; }
@media print { details { border: none; } h2 { break-before: page; } }
"""


def _e(text) -> str:
    return html.escape(str(text), quote=True)


def badge(word) -> str:
    if not _present(word):
        return "—"
    cls = "v-" + re.sub(r"[^a-z]+", "-", str(word).lower()).strip("-")
    return f'<span class="v {cls}">{_e(word)}</span>'


def control_badge(word) -> str:
    """A control's outcome: `supported` is the bad case (the claim's test could not fail), shown in red,
    and `conditional` (supported at some grid points) in amber; refuted or inconclusive is what a sound
    control gives."""
    if not _present(word):
        return "—"
    if word == "supported":
        return f'<span class="v v-fail" title="the control came out supported: the claim is not earned">{_e(word)}</span>'
    if word == "conditional":
        return (f'<span class="v v-inconclusive" title="the control came out supported at some grid points">'
                f'{_e(word)}</span>')
    if word == "not run":
        return badge(word)
    return f'<span class="v v-control-ok" title="the control did not come out supported, as it should">{_e(word)}</span>'


def _table(head: list[str], rows: list[list[str]], cls: str = "") -> str:
    """An HTML table from already-escaped cells."""
    h = "".join(f"<th>{c}</th>" for c in head)
    body = "".join("<tr>" + "".join(r) + "</tr>" for r in rows)
    return f'<div class="scroll"><table class="{cls}"><thead><tr>{h}</tr></thead><tbody>{body}</tbody></table></div>'


def inline_svg(svg: str, prefix: str, title: str) -> str:
    """A matplotlib SVG made fit to sit inside an HTML page: no XML prolog or metadata, no namespace
    URLs (HTML knows svg and xlink:href), ids prefixed so figures never share one, and a width that
    follows the page."""
    text = svg[svg.find("<svg"):]
    text = re.sub(r"<metadata>.*?</metadata>\s*", "", text, flags=re.S)
    text = re.sub(r'\s+xmlns(?::\w+)?="[^"]*"', "", text)
    text = re.sub(r'\bid="([^"]+)"', lambda m: f'id="{prefix}{m.group(1)}"', text)
    text = re.sub(r"url\(#([^)]+)\)", lambda m: f"url(#{prefix}{m.group(1)})", text)
    text = re.sub(r'href="#([^"]+)"', lambda m: f'href="#{prefix}{m.group(1)}"', text)
    head_end = text.find(">")
    head = text[:head_end]
    width = re.search(r'\bwidth="([\d.]+)pt"', head)
    head = re.sub(r'\s(width|height)="[^"]*"', "", head)
    style = f' style="max-width: {float(width.group(1)):.0f}pt"' if width else ""
    head += f' role="img" aria-label="{_e(title)}"{style}'
    return head + text[head_end:]


def _claims_html(part: Part) -> str:
    head = ["claim", "verdict", "effect [95% interval]", "control", "sensitivity", "what was found"]
    rows = []
    for _, r in part.claims.iterrows():
        cid = str(r["claim"] if _present(r["claim"]) else r["metric"])
        found = f'<div class="statement">{_e(_text(r["statement"]))}</div>' \
                f'<div class="evidence">{_e(_text(r["evidence"]))}</div>'
        rows.append([f'<td class="id" id="{_e(part.anchor)}-{_e(cid)}">{_e(cid)}</td>',
                     f"<td>{badge(r['verdict'])}</td>", f'<td class="effect">{_e(effect_text(r))}</td>',
                     f"<td>{control_badge(r.get('control'))}</td>", f"<td>{_e(_text(r.get('sensitivity')))}</td>",
                     f'<td class="found">{found}</td>'])
    return _table(head, rows, "claims")


def _checks_html(part: Part) -> str:
    head = ["check", "result", "error", "tolerance", "beside", "evidence"]
    several = part.checks["base_seed"].nunique() > 1 if "base_seed" in part.checks else False
    rows = []
    for _, r in part.checks.iterrows():
        cid = str(r["metric"]) + (f" (base seed {int(r['base_seed'])})" if several else "")
        beside = r["claim"] if _present(r["claim"]) and r["claim"] != r["metric"] else ""
        rows.append([f'<td class="id" id="{_e(part.anchor)}-{_e(cid)}">{_e(cid)}</td>',
                     f"<td>{badge(r['verdict'])}</td>", f'<td class="num">{_e(_num(r["value"]))}</td>',
                     f'<td class="num">{_e(_num(r["threshold"]))}</td>', f"<td>{_e(beside)}</td>",
                     f'<td class="evidence">{_e(_text(r["evidence"]))}</td>'])
    return _table(head, rows, "checks")


def _setting(r, params: list[str]) -> str:
    text = " ".join(f"{p[len(PARAM_PREFIX):]}={render._fmt_param(r[p])}" for p in params if _present(r[p]))
    if _present(r.get("base_seed")) and r.get("_several_seeds"):
        text += f" (base seed {int(r['base_seed'])})"
    return text.strip() or "—"


def _grid_html(part: Part) -> str:
    g = part.grid.copy()
    params = [c for c in g.columns if c.startswith(PARAM_PREFIX) and g[c].notna().any()]
    g["_several_seeds"] = g["base_seed"].nunique() > 1 if "base_seed" in g else False
    head = ["claim", "role", "setting", "verdict", "effect [95% interval]", "evidence"]
    rows = [[f'<td class="id">{_e(r["claim"])}</td>', f"<td>{_e(_text(r.get('role')))}</td>",
             f"<td>{_e(_setting(r, params))}</td>",
             f"<td>{control_badge(r['verdict']) if r.get('role') == 'control' else badge(r['verdict'])}</td>",
             f'<td class="effect">{_e(effect_text(r))}</td>', f'<td class="evidence">{_e(_text(r["evidence"]))}</td>']
            for _, r in g.iterrows()]
    return _table(head, rows, "grid")


def _result_tables_html(part: Part) -> str:
    out = []
    for t in part.tables:
        cells = [[f'<td class="{"num" if i >= t.labels else ""}">{_e(c)}</td>' for i, c in enumerate(row)]
                 for row in t.rows]
        out.append(f"<h4>{_e(t.title)}</h4>" + _table([_e(c) for c in t.columns], cells, "results"))
    return "".join(out)


def _glance_html(report: Report) -> str:
    head = ["experiment", "what it asks", *VERDICTS, "checks"]
    rows = []
    for p in report.parts:
        c = verdict_counts(p)
        checks = f"{c['pass']} pass" + (f", {c['fail']} fail" if c["fail"] else "") if c["pass"] + c["fail"] else "—"
        rows.append([f'<td class="id"><a href="#{_e(p.anchor)}">{_e(p.label)}</a></td>', f"<td>{_e(p.asks)}</td>",
                     *(f'<td class="count">{c[v] or ""}</td>' for v in VERDICTS),
                     f'<td class="count">{_e(checks)}</td>'])
    return _table([_e(h) for h in head], rows, "glance")


def _key_html() -> str:
    items = "".join(f"<dt>{badge(k) if k in VERDICTS else f'<b>{_e(k)}</b>'}</dt><dd>{_e(v)}</dd>"
                    for k, v in MEANING.items())
    return f'<dl class="key">{items}</dl>'


def to_html(report: Report) -> str:
    exps = list(dict.fromkeys(p.experiment for p in report.parts))
    out = ['<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
           '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
           f"<title>dlbench report: {_e(', '.join(exps))}</title>\n<style>{CSS}</style>\n</head>\n<body>\n<main>\n"]
    out.append('<header>\n<h1>dlbench report</h1>\n<p class="lede">Classic claims of deep-learning theory, '
               "each put to the test by small NumPy models and given a verdict from the numbers of this run: "
               "the effect measured, its 95 % interval, a negative control and the verdict across nuisance "
               "settings.</p>\n")
    for res in report.runs:
        out.append('<div class="meta">' + "".join(f"<p>{_e(line)}</p>" for line in run_lines(res)) + "</div>\n")
    out.extend(f'<p class="note">{_e(n)}</p>\n' for n in report.notes)
    out.append("</header>\n")
    out.append('<section id="glance">\n<h2>At a glance</h2>\n' + _glance_html(report))
    out.append("<details open>\n<summary>How to read a verdict</summary>\n" + _key_html() + "</details>\n</section>\n")
    for i, p in enumerate(report.parts):
        out.append(f'<section class="experiment" id="{_e(p.anchor)}">\n<h2>{_e(p.label)}</h2>\n')
        if p.asks:
            out.append(f'<p class="asks">{_e(p.asks)}</p>\n')
        out.append(f'<p class="muted">Ran with {_e(_options_text(p.options))}.</p>\n')
        if len(p.claims):
            out.append("<h3>Claims</h3>\n" + _claims_html(p))
        if p.specs:
            out.append("<details>\n<summary>What each claim measures, its control, grid and threshold</summary>\n"
                       + "".join(f'<h4>{_e(cid)}</h4><dl class="key">'
                                 + "".join(f"<dt><b>{_e(k)}</b></dt><dd>{_e(v)}</dd>" for k, v in items) + "</dl>"
                                 for cid, items in p.specs.items()) + "</details>\n")
        if p.figures or p.notes:
            out.append("<h3>Figures</h3>\n")
            out.extend(f'<p class="note">{_e(n)}</p>\n' for n in p.notes)
            for j, f in enumerate(p.figures):
                caption = f.title + (" (drawn from the results rows)" if f.origin == "rows" else "")
                out.append(f"<figure>{inline_svg(f.svg, f'{p.anchor}-f{j}-', f.title)}"
                           f"<figcaption>{_e(caption)}</figcaption></figure>\n")
        if len(p.checks):
            out.append("<h3>Checks</h3>\n" + _checks_html(p))
        if len(p.grid):
            n = len(p.grid)
            out.append(f"<details>\n<summary>Findings over each claim's grid and its control ({n})</summary>\n"
                       + _grid_html(p) + "</details>\n")
        if p.tables:
            out.append(f"<details>\n<summary>All result tables ({len(p.tables)})</summary>\n"
                       + _result_tables_html(p) + "</details>\n")
        out.append("</section>\n")
    out.append(f"<footer>Written by dlbench {_e(dlbench.__version__)} (<code>dlbench report</code>). "
               "This page is one file: its figures are inline, it loads nothing from the network and runs no "
               "scripts.</footer>\n</main>\n</body>\n</html>\n")
    return "".join(out)


# ---------------------------------------------------------------------------------------------- Markdown

def _md(text) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def to_markdown(report: Report, figure_dir: Path | None = None, link_dir: str = "") -> str:
    """The same page in Markdown; figures are written as SVG files into `figure_dir` and linked
    as `link_dir/<name>.svg` (no figures without a `figure_dir`)."""
    out = ["# dlbench report\n\n"]
    for res in report.runs:
        out.append("".join(f"{_md(line)}  \n" for line in run_lines(res)) + "\n")
    out.extend(f"> {n}\n\n" for n in report.notes)
    out.append("## At a glance\n\n")
    glance = []
    for p in report.parts:
        c = verdict_counts(p)
        checks = f"{c['pass']} pass" + (f", {c['fail']} fail" if c["fail"] else "") if c["pass"] + c["fail"] else "—"
        glance.append([f"[{p.label}](#{p.anchor})", p.asks, *(str(c[v] or "") for v in VERDICTS), checks])
    out.append(render.markdown_table(["experiment", "what it asks", *VERDICTS, "checks"], glance))
    out.append("\n<details><summary>How to read a verdict</summary>\n\n"
               + "".join(f"- **{k}**: {v}\n" for k, v in MEANING.items()) + "\n</details>\n")
    for p in report.parts:
        out.append(f'\n<a id="{p.anchor}"></a>\n\n## {p.label}\n\n')
        if p.asks:
            out.append(f"{p.asks}\n\n")
        out.append(f"Ran with {_options_text(p.options)}.\n")
        if len(p.claims):
            rows = [[str(r["claim"] if _present(r["claim"]) else r["metric"]), _text(r["verdict"]), effect_text(r),
                     _text(r.get("control")), _text(r.get("sensitivity")),
                     f"**{_text(r['statement'])}** {_text(r['evidence'])}"] for _, r in p.claims.iterrows()]
            out.append("\n### Claims\n\n" + render.markdown_table(
                ["claim", "verdict", "effect [95% interval]", "control", "sensitivity", "what was found"], rows))
        if p.specs:
            out.append("\n<details><summary>What each claim measures, its control, grid and threshold</summary>\n\n"
                       + "".join(f"- **{cid}**: " + "; ".join(f"{k}: {v}" for k, v in items) + "\n"
                                 for cid, items in p.specs.items()) + "\n</details>\n")
        if p.figures or p.notes:
            out.append("\n### Figures\n\n")
            out.extend(f"> {n}\n\n" for n in p.notes)
            for j, f in enumerate(p.figures):
                if figure_dir is None:
                    continue
                name = f"{p.anchor}-{j + 1}.svg"
                (figure_dir / name).write_text(f.svg)
                link = f"{link_dir}/{name}" if link_dir else name
                caption = f.title + (" (drawn from the results rows)" if f.origin == "rows" else "")
                out.append(f"![{_md(f.title)}]({link})\n\n*{_md(caption)}*\n\n")
        if len(p.checks):
            rows = [[str(r["metric"]), _text(r["verdict"]), _num(r["value"]), _num(r["threshold"]),
                     str(r["claim"]) if _present(r["claim"]) and r["claim"] != r["metric"] else "",
                     _text(r["evidence"])] for _, r in p.checks.iterrows()]
            out.append("\n### Checks\n\n" + render.markdown_table(
                ["check", "result", "error", "tolerance", "beside", "evidence"], rows))
        if len(p.grid):
            params = [c for c in p.grid.columns if c.startswith(PARAM_PREFIX) and p.grid[c].notna().any()]
            rows = [[str(r["claim"]), _text(r.get("role")), _setting(r, params), _text(r["verdict"]), effect_text(r),
                     _text(r["evidence"])] for _, r in p.grid.iterrows()]
            out.append(f"\n<details><summary>Findings over each claim's grid and its control ({len(rows)})"
                       "</summary>\n\n" + render.markdown_table(
                           ["claim", "role", "setting", "verdict", "effect [95% interval]", "evidence"], rows)
                       + "\n</details>\n")
        if p.tables:
            out.append(f"\n<details><summary>All result tables ({len(p.tables)})</summary>\n\n")
            for t in p.tables:
                out.append(f"#### {t.title}\n\n" + render.markdown_table(t.columns, t.rows) + "\n")
            out.append("</details>\n")
    return "".join(out)


# ---------------------------------------------------------------------------------------------- writing

FORMATS = {".html": "html", ".htm": "html", ".md": "markdown"}


def figure_folder(out: Path) -> Path:
    """Where `-o report.md` puts its figures: report-figures/ beside it."""
    return out.with_name(f"{out.stem}-figures")


def check_out(out: Path, force: bool = False) -> str:
    """The output format for `out`, after checking it can be written (before any work is done)."""
    out = Path(out)
    fmt = FORMATS.get(out.suffix.lower())
    if fmt is None or not out.stem:
        raise DlbenchError(f"--out {out}: a report name must end in .html or .md, e.g. report.html")
    check_writable(out, force)
    if fmt == "markdown":
        folder = figure_folder(out)
        if folder.exists() and not folder.is_dir():
            raise DlbenchError(f"{folder} exists and is not a folder; the report's figures go there")
        if folder.exists() and any(folder.iterdir()) and not force:
            raise DlbenchError(f"{folder} exists; pass --force to overwrite its figures or choose another --out")
    return fmt


def write_report(runs: list[Results], out: Path, *, force: bool = False, figures: bool = True) -> Report:
    """Build the report of `runs` and write it to `out` (.html or .md), atomically."""
    out = Path(out)
    fmt = check_out(out, force)
    report = build(runs, figures=figures)
    if fmt == "html":
        _write_text(out, to_html(report))
    else:
        folder = figure_folder(out)
        has_figures = any(p.figures for p in report.parts)
        if has_figures:
            folder.mkdir(parents=True, exist_ok=True)
        _write_text(out, to_markdown(report, folder if has_figures else None, folder.name))
    return report


def _write_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    except OSError as e:
        raise DlbenchError(f"cannot write {path}: {e.strerror or e}") from None
    finally:
        tmp.unlink(missing_ok=True)
