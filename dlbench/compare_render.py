"""How a comparison reads: the terminal view, Markdown for a CI job summary, JSON for machines.

`dlbench.compare` decides what changed; this module only lays it out. The terminal view leads
with the summary line, then only what changed (regressions, improvements, verdict changes) and
one line for what stayed the same; `show_all` lists every row. Markdown and JSON keep everything.
"""

from __future__ import annotations

import io
import json
import math
from collections import Counter

import numpy as np
import pandas as pd

from dlbench.compare import (
    UNCHANGED, Comparison, _name, changed_claims, changed_rows, smallest_p, unconfirmed,
)
from dlbench.render import fmt, markdown_table
from dlbench.results import Results

def fmt_value(v: float, unit: str) -> str:
    """A median with its unit: times with an SI prefix, normalized timings as bytes."""
    if unit == "B":
        if not np.isfinite(v):
            return "—"
        for scale, suffix in ((1e12, "TB"), (1e9, "GB"), (1e6, "MB"), (1e3, "kB")):
            if abs(v) >= scale:
                return f"{v / scale:.3g} {suffix}"
        return f"{v:.3g} B"
    text = fmt(v, unit)
    return text if unit in ("", "s", "bool") or text == "—" else f"{text} {unit}"


def fmt_effect(r) -> str:
    """'×1.52 [1.48, 1.57]' for a ratio, '+0.05 [+0.02, +0.08]' for a difference."""
    if not np.isfinite(r["estimate"]):
        return "—"
    if r["effect"] == "ratio":
        text = f"×{r['estimate']:.3g}"
        return text + (f" [{r['low']:.3g}, {r['high']:.3g}]" if np.isfinite(r["low"]) else "")
    text = f"{r['estimate']:+.3g}"
    return text + (f" [{r['low']:+.3g}, {r['high']:+.3g}]" if np.isfinite(r["low"]) else "")


def fmt_p(r) -> str:
    return f"{r['p']:.2g}" if np.isfinite(r["p"]) else "—"


def row_table(rows: pd.DataFrame, normalize: bool = False, pairings: int = 1) -> tuple[list[str], list[list[str]]]:
    """Header and cells of the judged rows: one line per (experiment, case, metric)."""
    ratio = "new/base" + (" (per bw)" if normalize else "") + " [95% CI]"
    columns = ["experiment", "case", "metric", "better", "base", "new", ratio, "p", "result"]
    if pairings > 1:
        columns.append("pairings")
    cells = []
    for _, r in rows.iterrows():
        metric = r["metric"] + (" (final)" if r["kind"] == "curve" else "")
        cell = [r["experiment"], r["case"] or "—", metric, r["better"], fmt_value(r["base"], r["unit"]),
                fmt_value(r["new"], r["unit"]), fmt_effect(r), fmt_p(r), _result_text(r)]
        if pairings > 1:
            cell.append(_pairing_text(r))
        cells.append(cell)
    return columns, cells


def _pairing_text(r) -> str:
    if r["change"] == "":
        return f"0/{r['pairings']}"
    return f"{r['changed_in']}/{r['pairings']}" + ("" if r["change"] == r["result"] else f" {r['change']}")


def _result_text(r) -> str:
    return r["result"] + (" ✗" if r["regression"] else "")


def _verdict_cell(r, side: str) -> str:
    """A claim's outcome on one side: the verdict, plus control and sensitivity where they changed."""
    text = r[f"{side}_verdict"] or "—"
    for part in ("control", "sensitivity"):
        b, n = r[f"base_{part}"], r[f"new_{part}"]
        if _present(b) and _present(n) and b != n:
            text += f"; {part}: {r[f'{side}_{part}']}"
    return text


def _present(v) -> bool:
    return v is not None and not (isinstance(v, float) and math.isnan(v))


def claim_table(claims: pd.DataFrame) -> tuple[list[str], list[list[str]]]:
    columns = ["experiment", "claim", "base", "new", "evidence (new)"]
    cells = []
    for _, r in claims.iterrows():
        mark = (" (changed ✗)" if r["regression"] else " (fixed)" if r["improvement"] else
                " (changed)" if r["changed"] else "")
        if r["changed"] and r["pairings"] > 1:
            mark = mark[:-1] + f" in {r['changed_in']}/{r['pairings']})"
        name = r["claim"] + (" (check)" if r["kind"] == "check" else "")
        cells.append([r["experiment"], name, _verdict_cell(r, "base"), _verdict_cell(r, "new") + mark,
                      r["new_evidence"] or ""])
    return columns, cells


def only_in_lines(c: Comparison, summarise: bool = False) -> list[str]:
    """What only one side holds; a whole experiment missing from the other side is one line, and with
    `summarise` so is each kind of an experiment's rows when there are more than three."""
    out = []
    for label, df, others in (("only in base", c.only_in_base, c.news), ("only in new", c.only_in_new, c.bases)):
        if df.empty:
            continue
        present = {e for r in others for e in r.experiments}
        for exp, g in df.groupby("experiment", sort=False):
            if exp not in present:
                out.append(f"{label}: experiment {exp} ({len(g)} rows)")
                continue
            if summarise and len(g) > 3:
                for kind, k in g.groupby("kind", sort=False):
                    out.append(f"{label}: {exp} {len(k)} {kind} row{'s' if len(k) != 1 else ''} "
                               f"({_some(k['metric'])})")
                continue
            for _, r in g.iterrows():
                what = f"{r['kind']} {r['metric']}" if r["kind"] in ("claim", "check") else \
                    f"{r['kind']} {r['metric']}" + (f" [{r['case']}]" if r["case"] else "")
                out.append(f"{label}: {exp} {what}")
    return out


def header_lines(c: Comparison) -> list[str]:
    def side(label: str, runs: list[Results]) -> str:
        commits = []
        for res in runs:
            fp = res.meta.get("fingerprint", {})
            commit = (fp.get("git_commit") or "")[:10]
            if commit:
                commits.append(commit + (" (dirty)" if fp.get("git_dirty") else ""))
        files = ", ".join(_name(r) for r in runs)
        ids = ", ".join(str(r.meta.get("run_id", "?")) for r in runs)
        commit = ", ".join(dict.fromkeys(commits))
        return f"{label}: {files} · run {ids}" + (f" · commit {commit}" if commit else "")

    rule = (f"rule: Mann-Whitney p < {c.alpha:g}, 95% bootstrap interval excludes no change, "
            f"change of at least {c.threshold:.0%}")
    if c.pairings > 1:
        rule += f", in all {c.pairings} base/new pairings"
    timings = "timings normalized by each file's copy bandwidth" if c.normalize else "timings as measured"
    fails = ", ".join(c.fail_on) or "nothing (report only)"
    return [side("base", c.bases), side("new", c.news), f"{rule} · {timings} · fails on: {fails}"]


def summary_line(c: Comparison) -> str:
    counts = c.counts()
    n_reg = len(c.regressions)
    order = ["slower", "worse", "verdict changed", "faster", "improved", "higher", "lower", "same", "n/a",
             "unconfirmed", "only in base", "only in new"]
    parts = [f"{counts[k]} {k}" for k in order if counts.get(k)]
    head = f"{n_reg} regression{'s' if n_reg != 1 else ''}" if n_reg else "no regression"
    return f"{head}: " + (", ".join(parts) or "nothing compared")


def unchanged_line(c: Comparison) -> str:
    """What stayed the same, in one line (the default table lists only what changed)."""
    counts = c.counts()
    same, na = counts.get("same", 0), counts.get("n/a", 0)
    claims_same = int((~c.claims["changed"]).sum()) if len(c.claims) else 0
    parts = [f"{same} row{'s' if same != 1 else ''} the same"]
    if na:
        parts.append(f"{na} untestable (too few values)")
    if len(c.claims):
        parts.append(f"{claims_same} of {len(c.claims)} verdicts unchanged")
    return "unchanged: " + ", ".join(parts) + " (--all lists them)"


def underpowered_note(c: Comparison) -> str | None:
    """A note when some rows have too few values for any result but n/a."""
    na = c.rows[c.rows["result"] == "n/a"]
    if na.empty:
        return None
    sizes = sorted({(int(a), int(b)) for a, b in zip(na["n_base"], na["n_new"])})
    need = next(k for k in range(1, 100) if smallest_p(k, k) < c.alpha)
    shown = ", ".join(f"{a} vs {b}" for a, b in sizes[:3])
    return (f"{len(na)} row{'s' if len(na) != 1 else ''} could not be tested: with {shown} values even total "
            f"separation gives p >= {c.alpha:g}; at least {need} values per side are needed (e.g. --seeds {need})")


def unconfirmed_line(c: Comparison) -> str | None:
    u = unconfirmed(c)
    if u.empty:
        return None
    words = Counter(u["change"])
    what = ", ".join(f"{n} {w}" for w, n in words.most_common())
    return (f"not confirmed (seen in some of the {c.pairings} pairings only, so not counted): {what}")


def to_markdown(c: Comparison, only_changed: bool = False) -> str:
    """GitHub-flavoured Markdown for a CI job summary or a pull-request comment: changes in the open,
    everything else folded."""
    buf = io.StringIO()
    status = "❌" if c.exit_status else "✅"
    buf.write(f"### {status} dlbench compare: {summary_line(c)}\n\n")
    buf.write("".join(f"{line}  \n" for line in header_lines(c)))
    for w in c.warnings:
        buf.write(f"\n> ⚠️ {w}\n")
    changed = changed_rows(c)
    groups = [("Regressions", changed[changed["regression"]]),
              ("Improvements", changed[changed["result"].isin(["faster", "improved"])]),
              ("Other changes", changed[~changed["regression"] & ~changed["result"].isin(["faster", "improved"])])]
    for title, rows in groups:
        if len(rows):
            buf.write(f"\n#### {title}\n\n")
            buf.write(markdown_table(*row_table(rows, c.normalize, c.pairings)))
    if changed.empty:
        buf.write("\nNo timing or metric changed.\n")
    claims = changed_claims(c)
    if len(claims):
        buf.write("\n#### Verdict changes\n\n")
        buf.write(markdown_table(*claim_table(claims)))
    lines = only_in_lines(c)
    if lines:
        buf.write("\n#### In one side only\n\n" + "".join(f"- {line}\n" for line in lines))
    if only_changed:
        return buf.getvalue()
    u = unconfirmed(c)
    if len(u):
        buf.write(f"\n<details><summary>{unconfirmed_line(c)}</summary>\n\n")
        buf.write(markdown_table(*row_table(u, c.normalize, c.pairings)))
        buf.write("\n</details>\n")
    rest = c.rows[c.rows["result"].isin(UNCHANGED)]
    if len(rest):
        buf.write(f"\n<details><summary>{len(rest)} unchanged or untestable row{'s' if len(rest) != 1 else ''}"
                  "</summary>\n\n")
        buf.write(markdown_table(*row_table(rest, c.normalize, c.pairings)))
        buf.write("\n</details>\n")
    same_claims = c.claims[~c.claims["changed"]]
    if len(same_claims):
        plural = "verdicts" if len(same_claims) != 1 else "verdict"
        buf.write(f"\n<details><summary>{len(same_claims)} unchanged {plural}</summary>\n\n")
        buf.write(markdown_table(*claim_table(same_claims)))
        buf.write("\n</details>\n")
    note = underpowered_note(c)
    if note:
        buf.write(f"\n{note}.\n")
    return buf.getvalue()


def to_json(c: Comparison, only_changed: bool = False) -> str:
    rows, claims = c.rows, c.claims
    if only_changed:
        rows, claims = changed_rows(c), changed_claims(c)

    def records(df: pd.DataFrame) -> list[dict]:
        return json.loads(df.to_json(orient="records")) if len(df) else []

    def side(res: Results) -> dict:
        return {"path": _name(res), "run_id": res.meta.get("run_id")}

    doc = {
        "base": side(c.base),
        "new": side(c.new),
        "bases": [side(r) for r in c.bases],
        "news": [side(r) for r in c.news],
        "pairings": c.pairings,
        "settings": {"threshold": c.threshold, "alpha": c.alpha, "normalize": c.normalize,
                     "fail_on": list(c.fail_on)},
        "exit_status": c.exit_status,
        "summary": summary_line(c),
        "counts": c.counts(),
        "warnings": c.warnings,
        "regressions": records(c.regressions),
        "rows": records(rows),
        "claims": records(claims),
        "only_in_base": records(c.only_in_base),
        "only_in_new": records(c.only_in_new),
    }
    return json.dumps(doc, indent=2, default=str)


RESULT_STYLE = {"slower": "red", "worse": "red", "faster": "green", "improved": "green", "n/a": "dim"}


def render_rich(c: Comparison, console, show_all: bool = False) -> None:
    """The terminal view: the summary, then what changed (regressions, improvements, verdict changes),
    then one line for what stayed the same. `show_all` lists every row and verdict."""
    from rich import box
    from rich.table import Table as RichTable
    from rich.text import Text

    console.print(Text(summary_line(c), style="bold red" if c.exit_status else "bold green"))
    for line in header_lines(c):
        console.print(Text(line, style="dim"))
    changed = changed_rows(c)
    moved = changed[changed["category"] == "info"]
    if show_all:
        rows = pd.concat([changed, c.rows[c.rows["result"].isin(UNCHANGED)]])
    else:  # metrics without a better direction (most derive from timings) are news only with --all
        rows = changed[changed["category"] != "info"]
    if len(rows):
        columns, cells = row_table(rows, c.normalize, c.pairings)
        # the result first, so a narrow terminal wraps the numbers and never hides it
        order = [8, 0, 1, 2, 6, 4, 5, 7] + ([9] if c.pairings > 1 else [])
        title = "timings and metrics" if show_all else "what changed"
        t = RichTable(title=Text(title, style="bold"), title_justify="left", box=box.SIMPLE_HEAD)
        for i in order:
            col = columns[i]
            wrap = col in ("case", "metric")
            width = min(16, max(len(col), *(len(str(cell[i])) for cell in cells))) if wrap else None
            t.add_column(Text(col), overflow="fold", no_wrap=col in ("result", "p"), min_width=width,
                         justify="left" if wrap or col in ("experiment", "result", "pairings") else "right")
        for cell, (_, r) in zip(cells, rows.iterrows()):
            texts = [Text(str(cell[i])) for i in order]
            texts[0].stylize(("bold " if r["regression"] else "") + RESULT_STYLE.get(r["result"], ""))
            t.add_row(*texts)
        console.print(t)
    claims = c.claims if show_all else changed_claims(c)
    if len(claims):
        columns, cells = claim_table(claims)
        t = RichTable(title=Text("claims and checks" if show_all else "verdict changes", style="bold"),
                      title_justify="left", box=box.SIMPLE_HEAD)
        for col in columns:
            t.add_column(Text(col), overflow="fold", ratio=2 if col.startswith("evidence") else None)
        for cell, (_, r) in zip(cells, claims.iterrows()):
            texts = [Text(str(x)) for x in cell]
            if r["changed"]:
                texts[3].stylize("bold red" if r["regression"] else "green" if r["improvement"] else "yellow")
            t.add_row(*texts)
        console.print(t)
    if len(moved) and not show_all:
        console.print(Text(f"{len(moved)} informational metric{'s' if len(moved) != 1 else ''} (no better "
                           f"direction) moved: {_some(moved['metric'])} (--all lists them)", style="dim"))
    for line in only_in_lines(c, summarise=not show_all):
        console.print(Text(line, style="yellow"))
    line = unconfirmed_line(c)
    if line:
        console.print(Text(line + ("" if show_all else " (--all lists them)"), style="dim"))
    if show_all:
        note = underpowered_note(c)
        if note:
            console.print(Text(note, style="dim"))
    else:
        console.print(Text(unchanged_line(c), style="dim"))


def _some(names, limit: int = 3) -> str:
    names = list(dict.fromkeys(names))
    return ", ".join(names[:limit]) + (f" and {len(names) - limit} more" if len(names) > limit else "")


def render(c: Comparison, fmt_name: str, console=None, *, show_all: bool = False,
           only_changed: bool = False) -> str | None:
    """Markdown or JSON as a string (everything, unless `only_changed`); the Rich view is printed on
    `console` (only what changed, unless `show_all`) and None returned."""
    if fmt_name == "markdown":
        return to_markdown(c, only_changed)
    if fmt_name == "json":
        return to_json(c, only_changed)
    render_rich(c, console, show_all)
    return None

