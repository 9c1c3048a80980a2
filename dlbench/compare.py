"""Diff two results files: line up their rows, decide per metric, flag changed verdicts.

Rows are matched on (experiment, kind, case, metric). For every matched timing
(its raw samples, seconds per call), metric (one value per seed or repeat) or
curve (each seed's final point) the values of both files are judged by one
rule, `judge`:

1. Non-finite values are dropped. If even total separation of the two samples
   could not reach p < alpha (the smallest two-sided Mann-Whitney p-value for
   n1 and n2 values is 2 / C(n1 + n2, n1)), the row is `n/a`: too few values.
2. p = the two-sided Mann-Whitney U p-value (exact for small samples, ties
   included; see `dlbench.stats.mann_whitney_u`).
3. When every value is positive the effect is the ratio of medians r = new/base
   with a 95 % percentile bootstrap interval [lo, hi] (2000 resamples of each
   side, seed 0). NEW is larger when p < alpha and lo >= 1 + threshold (the
   whole interval beyond the threshold); smaller when p < alpha and
   hi <= 1/(1 + threshold) (symmetric on a log
   scale, like asv's --factor). Otherwise the effect is the difference of
   medians d = new - base with its bootstrap interval: larger when p < alpha
   and lo >= threshold * |median(base)| (and lo > 0), smaller likewise.
4. Anything else is `same`.

Larger/smaller become `slower`/`faster` for timings, `worse`/`improved` for
metrics with a better-direction, and neutral `higher`/`lower` for metrics with
better="none" (informational: never a regression). A regression is a `slower`
timing, a `worse` metric or a changed claim verdict, for the categories chosen
in `fail_on`. With `normalize`, each timing sample t becomes t * B, B the copy
bandwidth its own file measured for the row's dtype (case parameter `dtype`,
else float32) and working set (cache or DRAM by the row's bytes, as
`dlbench.timing.bandwidth_fraction` decides): the bytes that machine copies in
the time of one call, so two machines compare as fractions of what each can move.
"""

from __future__ import annotations

import io
import json
import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from dlbench.env import significant_differences
from dlbench.errors import DlbenchError
from dlbench.render import fmt, markdown_table
from dlbench.results import PARAM_PREFIX, Results, read_results
from dlbench.stats import bootstrap_ratio_ci, mann_whitney_u
from dlbench.timing import bandwidth_fraction

DEFAULT_THRESHOLD = 0.10
DEFAULT_ALPHA = 0.01
FAIL_ON = ("timing", "quality", "verdict")
KEY = ["experiment", "kind", "case", "metric"]
N_BOOT = 2000

#: result word per (category, direction of NEW against BASE)
WORDS = {
    "timing": {1: "slower", -1: "faster"},
    "quality": {1: "worse", -1: "improved"},
    "info": {1: "higher", -1: "lower"},
}
REGRESSION_WORDS = {"timing": "slower", "quality": "worse"}


@dataclass(frozen=True)
class Judgement:
    """The rule's inputs and outcome for one metric: effect, its interval, p, direction."""

    effect: str          # "ratio" (new/base of medians) or "difference" (new - base)
    estimate: float
    low: float
    high: float
    p: float
    min_p: float         # smallest p-value these sample sizes can give
    direction: int | None  # +1 NEW larger, -1 smaller, 0 same, None not testable


def smallest_p(n1: int, n2: int) -> float:
    """Two-sided Mann-Whitney p-value of totally separated samples: 2 / C(n1 + n2, n1)."""
    if n1 < 1 or n2 < 1:
        return 1.0
    return min(1.0, 2.0 / math.comb(n1 + n2, n1))


def mann_whitney_p(base: np.ndarray, new: np.ndarray) -> float:
    """Two-sided Mann-Whitney p-value, exact for small samples even with ties (`dlbench.stats`)."""
    return mann_whitney_u(base, new)[1]


def judge(base, new, *, threshold: float = DEFAULT_THRESHOLD, alpha: float = DEFAULT_ALPHA,
          seed: int = 0) -> Judgement:
    """Apply the decision rule of this module's docstring to two samples."""
    b = np.asarray(base, dtype=float).ravel()
    n = np.asarray(new, dtype=float).ravel()
    b, n = b[np.isfinite(b)], n[np.isfinite(n)]
    min_p = smallest_p(b.size, n.size)
    positive = bool(b.size and n.size and (b > 0).all() and (n > 0).all())
    effect = "ratio" if positive else "difference"
    if min_p >= alpha:
        if not (b.size and n.size):
            est = math.nan
        else:
            est = float(np.median(n) / np.median(b)) if positive else float(np.median(n) - np.median(b))
        return Judgement(effect, est, math.nan, math.nan, math.nan, min_p, None)
    p = mann_whitney_p(b, n)
    if positive:
        r, lo, hi = bootstrap_ratio_ci(b, n, n_boot=N_BOOT, seed=seed)
        # The whole interval, not only the estimate, must clear the threshold: runs of one
        # commit in two processes differ by a few percent, and that is not a regression.
        if p < alpha and lo >= 1 + threshold:
            direction = 1
        elif p < alpha and hi <= 1 / (1 + threshold):
            direction = -1
        else:
            direction = 0
        return Judgement("ratio", r, lo, hi, p, min_p, direction)
    d, lo, hi = _bootstrap_difference(b, n, seed=seed)
    size = threshold * abs(float(np.median(b)))
    if p < alpha and lo >= size and lo > 0:
        direction = 1
    elif p < alpha and hi <= -size and hi < 0:
        direction = -1
    else:
        direction = 0
    return Judgement("difference", d, lo, hi, p, min_p, direction)


def _bootstrap_difference(b: np.ndarray, n: np.ndarray, *, seed: int) -> tuple[float, float, float]:
    """median(n) - median(b) with its 95 % percentile bootstrap interval (each side resampled)."""
    d = float(np.median(n) - np.median(b))
    rng = np.random.default_rng(seed)
    mb = np.median(b[rng.integers(0, b.size, (N_BOOT, b.size))], axis=1)
    mn = np.median(n[rng.integers(0, n.size, (N_BOOT, n.size))], axis=1)
    lo, hi = np.percentile(mn - mb, [2.5, 97.5])
    return d, float(lo), float(hi)


def parse_threshold(text) -> float:
    """'10%' or '0.1' -> 0.1; a bare number must be a fraction below 1."""
    s = str(text).strip()
    try:
        value = float(s[:-1]) / 100 if s.endswith("%") else float(s)
    except ValueError:
        raise DlbenchError(f"--threshold: expected a percentage like 10% or a fraction like 0.1, "
                           f"got {text!r}") from None
    if not s.endswith("%") and value >= 1:
        raise DlbenchError(f"--threshold {text}: write a percentage with % (e.g. {s}%) or a fraction below 1")
    if not (0 <= value < 10) or not math.isfinite(value):
        raise DlbenchError(f"--threshold {text}: must be between 0% and 1000%")
    return value


def parse_fail_on(text: str | None) -> tuple[str, ...]:
    """'timing,verdict' -> ('timing', 'verdict'); 'none' -> () (report only); 'all' -> all three.

    An empty value or an empty item is an error: a blank CI variable must not switch every check off.
    """
    if text is None or text.strip() == "all":
        return FAIL_ON
    names = [t.strip() for t in text.split(",")]
    if "" in names:
        raise DlbenchError(f"--fail-on {text!r}: an empty category; say 'none' to only report")
    if names == ["none"]:
        return ()
    bad = [t for t in names if t not in FAIL_ON]
    if bad:
        raise DlbenchError(f"--fail-on: unknown category {bad[0]!r}; valid: {', '.join(FAIL_ON)}, all, none")
    return tuple(t for t in FAIL_ON if t in names)


@dataclass
class Comparison:
    """Two results files lined up: the judged rows, the claims, what only one file has, warnings.

    `rows` has one row per matched (experiment, kind, case, metric) with columns
    category (timing/quality/info), unit, better, n_base, n_new, base and new
    (medians, seconds for timings), effect, estimate, low, high, p, min_p,
    result and regression. `claims` has one row per claim in both files with
    base_verdict, new_verdict, changed, regression and both evidences.
    """

    base: Results
    new: Results
    rows: pd.DataFrame
    claims: pd.DataFrame
    only_in_base: pd.DataFrame
    only_in_new: pd.DataFrame
    threshold: float = DEFAULT_THRESHOLD
    alpha: float = DEFAULT_ALPHA
    normalize: bool = False
    fail_on: tuple[str, ...] = FAIL_ON
    warnings: list[str] = field(default_factory=list)

    @property
    def regressions(self) -> pd.DataFrame:
        """Every regression that fails the comparison: judged rows, then changed claims."""
        r = self.rows.loc[self.rows["regression"], KEY + ["result"]]
        cl = self.claims.loc[self.claims["regression"]]
        cl = pd.DataFrame({"experiment": cl["experiment"], "kind": "claim", "case": "", "metric": cl["claim"],
                           "result": cl["base_verdict"] + " -> " + cl["new_verdict"]}, columns=[*KEY, "result"])
        return pd.concat([df for df in (r, cl) if len(df)] or [r], ignore_index=True)

    @property
    def exit_status(self) -> int:
        """0 when nothing selected by `fail_on` regressed, 1 otherwise."""
        return 1 if len(self.regressions) else 0

    def counts(self) -> dict[str, int]:
        """How many rows got each result word, plus changed claims and rows in one file only."""
        out = {k: int(v) for k, v in self.rows["result"].value_counts().items()} if len(self.rows) else {}
        out["verdict changed"] = int(self.claims["changed"].sum()) if len(self.claims) else 0
        out["only in base"] = len(self.only_in_base)
        out["only in new"] = len(self.only_in_new)
        return out


def compare_files(base_path, new_path, **kwargs) -> Comparison:
    """Read two results files and `compare` them."""
    _check_settings(kwargs.get("threshold", DEFAULT_THRESHOLD), kwargs.get("alpha", DEFAULT_ALPHA))
    return compare(read_results(base_path), read_results(new_path), **kwargs)


def _check_settings(threshold: float, alpha: float) -> None:
    if not (0 < alpha < 1):
        raise DlbenchError(f"--alpha {alpha}: must be between 0 and 1")
    if not (0 <= threshold < 10):
        raise DlbenchError(f"--threshold {threshold}: must be between 0 and 10 (0% to 1000%)")


def compare(base: Results, new: Results, *, threshold: float = DEFAULT_THRESHOLD, alpha: float = DEFAULT_ALPHA,
            normalize: bool = False, fail_on=FAIL_ON) -> Comparison:
    """Line up `base` and `new` and judge every matched row (see the module docstring for the rule)."""
    _check_settings(threshold, alpha)
    fail_on = tuple(fail_on)
    groups_b, groups_n = _groups(base.rows), _groups(new.rows)
    common = [k for k in groups_b if k in groups_n]
    if not common:
        where = f"{_name(base)} ({', '.join(base.experiments) or 'empty'}) and {_name(new)} " \
                f"({', '.join(new.experiments) or 'empty'})"
        raise DlbenchError(f"{where} have no rows in common: nothing to compare")
    if normalize:
        for res in (base, new):
            if not res.meta.get("bandwidth"):
                raise DlbenchError(f"--normalize: {_name(res)} holds no copy-bandwidth probe")
    rows, claims = [], []
    for key in common:
        gb, gn = groups_b[key], groups_n[key]
        if key[1] in ("claim", "check"):
            claims.append(_claim_row(key, gb, gn, fail_on))
        elif key[1] == "grid":  # a claim's findings: its verdict, control and sensitivity are compared
            continue
        else:
            rows.append(_judged_row(key, gb, gn, base, new, threshold=threshold, alpha=alpha,
                                    normalize=normalize, fail_on=fail_on))
    only_b = pd.DataFrame([k for k in groups_b if k not in groups_n], columns=KEY)
    only_n = pd.DataFrame([k for k in groups_n if k not in groups_b], columns=KEY)
    return Comparison(base, new, _frame(rows, ROW_COLUMNS), _frame(claims, CLAIM_COLUMNS), only_b, only_n,
                      threshold=threshold, alpha=alpha, normalize=normalize, fail_on=fail_on,
                      warnings=_warnings(base, new, normalize))


ROW_COLUMNS = [*KEY, "section", "category", "unit", "better", "n_base", "n_new", "base", "new", "effect",
               "estimate", "low", "high", "p", "min_p", "result", "regression"]
CLAIM_COLUMNS = ["experiment", "claim", "statement", "base_verdict", "new_verdict", "changed", "regression",
                 "base_evidence", "new_evidence"]


def _frame(records: list[dict], columns: list[str]) -> pd.DataFrame:
    df = pd.DataFrame(records, columns=columns)
    # typed flags: an empty object column would make df[mask] select columns, not rows
    return df.astype({c: bool for c in ("changed", "regression") if c in columns})


def _name(res: Results) -> str:
    return str(res.path) if res.path is not None else f"run {res.meta.get('run_id', '?')}"


def _groups(df: pd.DataFrame) -> dict[tuple, pd.DataFrame]:
    """Rows per (experiment, kind, case, metric), in the file's order."""
    keyed = df.assign(case=df["case"].fillna(""))
    return {tuple(k): g for k, g in keyed.groupby(KEY, sort=False, dropna=False)}


def _values(g: pd.DataFrame) -> np.ndarray:
    """The sample a row is judged on: every value, or each seed's final point of a curve."""
    if g["kind"].iloc[0] != "curve":
        return g["value"].to_numpy(dtype=float)
    if g["seed"].notna().any():
        last = g.loc[g.groupby("seed")["sample"].idxmax()]
        return last["value"].to_numpy(dtype=float)
    return g.loc[[g["sample"].idxmax()], "value"].to_numpy(dtype=float)


def _reference_bandwidth(g: pd.DataFrame, res: Results) -> float:
    """The file's copy bandwidth (bytes/s) for this row's dtype and working-set size."""
    first = g.iloc[0]
    dtype = first.get(PARAM_PREFIX + "dtype")
    dtype = dtype if dtype in ("float32", "float64") else "float32"
    nbytes = first["bytes"] if pd.notna(first["bytes"]) else None
    # bandwidth_fraction(1 GB/s, ...) is 1 / reference: one rule picks cache or DRAM for both uses.
    frac = bandwidth_fraction(1.0, nbytes, res.meta.get("bandwidth", {}), dtype)
    if not frac:
        raise DlbenchError(f"--normalize: {_name(res)} has no {dtype} copy bandwidth for "
                           f"{first['experiment']} {first['metric']}")
    return 1e9 / frac


def _judged_row(key, gb, gn, base: Results, new: Results, *, threshold, alpha, normalize, fail_on) -> dict:
    first = gb.iloc[0]
    kind, better = key[1], first["better"]
    category = "timing" if kind == "timing" else ("info" if better not in ("lower", "higher") else "quality")
    vb, vn = _values(gb), _values(gn)
    unit = first["unit"] or ""
    if kind == "timing" and normalize:
        # seconds x bytes/s = the bytes this machine copies in the time of one call
        vb, vn = vb * _reference_bandwidth(gb, base), vn * _reference_bandwidth(gn, new)
        unit = "B"
    j = judge(vb, vn, threshold=threshold, alpha=alpha)
    sign = -1 if better == "higher" else 1
    if j.direction is None:
        result = "n/a"
    elif j.direction == 0:
        result = "same"
    else:
        result = WORDS[category][j.direction * (sign if category == "quality" else 1)]
    regression = category in fail_on and result == REGRESSION_WORDS.get(category)
    if kind == "timing" and timing_hosts_differ(gb, gn):
        regression = False
    fb, fn_ = vb[np.isfinite(vb)], vn[np.isfinite(vn)]
    return {"experiment": key[0], "kind": kind, "case": key[2], "metric": key[3], "section": first["section"],
            "category": category, "unit": unit, "better": better, "n_base": int(fb.size), "n_new": int(fn_.size),
            "base": float(np.median(fb)) if fb.size else math.nan,
            "new": float(np.median(fn_)) if fn_.size else math.nan,
            "effect": j.effect, "estimate": j.estimate, "low": j.low, "high": j.high, "p": j.p,
            "min_p": j.min_p, "result": result, "regression": bool(regression)}


def timing_hosts_differ(gb: pd.DataFrame, gn: pd.DataFrame) -> str | None:
    """Why timing samples of BASE and NEW are not judged as a regression: they were taken on different hosts
    (each timing row names its host's fingerprint), or one side mixes several hosts. A cost measured on
    another machine is another machine's cost, as pyperf refuses to mix incomparable runs. None when both
    sides name one and the same host, or a side does not say (a file of schema 1)."""
    hb = sorted(set(gb["host"].dropna())) if "host" in gb else []
    hn = sorted(set(gn["host"].dropna())) if "host" in gn else []
    if not hb or not hn or (hb == hn and len(hb) == 1):
        return None
    return f"timed on host {', '.join(hb)} in base and {', '.join(hn)} in new"


def _outcome(r) -> tuple:
    """What a claim row decides: its verdict, its control's outcome and its sensitivity over the grid."""
    return tuple(None if pd.isna(r.get(c)) else r.get(c) for c in ("verdict", "control", "sensitivity"))


def _claim_row(key, gb, gn, fail_on) -> dict:
    b, n = gb.iloc[0], gn.iloc[0]
    changed = _outcome(b) != _outcome(n)
    # A verdict that rests on wall time moves with the machine's load: it fails under `timing`.
    category = "timing" if "timing" in (b.get("basis"), n.get("basis")) else "verdict"
    return {"experiment": key[0], "claim": key[3], "statement": n["statement"], "base_verdict": b["verdict"],
            "new_verdict": n["verdict"], "changed": bool(changed), "regression": bool(changed and category in fail_on),
            "base_evidence": b["evidence"], "new_evidence": n["evidence"]}


def _warnings(base: Results, new: Results, normalize: bool) -> list[str]:
    out = []
    if base.meta.get("run_id") and base.meta.get("run_id") == new.meta.get("run_id"):
        out.append(f"both files hold the same run ({base.meta['run_id']}): nothing can have changed")
    diffs = significant_differences(base.meta.get("fingerprint", {}), new.meta.get("fingerprint", {}))
    if diffs:
        hint = "" if normalize else "; --normalize compares them as fractions of each machine's copy bandwidth"
        out.append(f"the runs come from different setups ({'; '.join(diffs)}): timings compare the setups, "
                   f"not only the code{hint}")
    timed_b, timed_n = (r.rows.loc[r.rows["kind"] == "timing"] for r in (base, new))
    if len(timed_b) and len(timed_n) and timing_hosts_differ(timed_b, timed_n):
        out.append(f"the timings were {timing_hosts_differ(timed_b, timed_n)}: they are shown, never judged a "
                   "regression")
    ob, on = base.meta.get("options", {}), new.meta.get("options", {})
    for exp in base.experiments:
        if exp in on and exp in ob and ob[exp] != on[exp]:
            changed = [f"{k}: {ob[exp].get(k)!r} vs {on[exp].get(k)!r}"
                       for k in dict.fromkeys([*ob[exp], *on[exp]]) if ob[exp].get(k) != on[exp].get(k)]
            out.append(f"{exp} ran with different options ({'; '.join(changed)})")
    if base.meta.get("seeds") is not None and new.meta.get("seeds") is not None \
            and base.meta["seeds"] != new.meta["seeds"]:
        out.append(f"the runs used different seeds ({_seeds(base.meta['seeds'])} vs {_seeds(new.meta['seeds'])})")
    return out


def _seeds(seeds: list) -> str:
    return f"{seeds[0]}..{seeds[-1]}" if len(seeds) > 2 else ",".join(map(str, seeds))


# ---------------------------------------------------------------------------------------------- rendering

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


def _shown(c: Comparison, only_changed: bool) -> tuple[pd.DataFrame, pd.DataFrame]:
    rows, claims = c.rows, c.claims
    if only_changed:
        rows = rows[~rows["result"].isin(["same", "n/a"])]
        claims = claims[claims["changed"]]
    return rows, claims


def row_table(rows: pd.DataFrame, normalize: bool = False) -> tuple[list[str], list[list[str]]]:
    """Header and cells of the judged rows: one line per (experiment, case, metric)."""
    ratio = "new/base" + (" (per bw)" if normalize else "") + " [95% CI]"
    columns = ["experiment", "case", "metric", "better", "base", "new", ratio, "p", "result"]
    cells = []
    for _, r in rows.iterrows():
        metric = r["metric"] + (" (final)" if r["kind"] == "curve" else "")
        cells.append([r["experiment"], r["case"] or "—", metric, r["better"], fmt_value(r["base"], r["unit"]),
                      fmt_value(r["new"], r["unit"]), fmt_effect(r), fmt_p(r), _result_text(r)])
    return columns, cells


def _result_text(r) -> str:
    return r["result"] + (" ✗" if r["regression"] else "")


def claim_table(claims: pd.DataFrame) -> tuple[list[str], list[list[str]]]:
    columns = ["experiment", "claim", "base", "new", "evidence (new)"]
    cells = [[r["experiment"], r["claim"], r["base_verdict"],
              r["new_verdict"] + (" (changed ✗)" if r["regression"] else " (changed)" if r["changed"] else ""),
              r["new_evidence"] or ""] for _, r in claims.iterrows()]
    return columns, cells


def only_in_lines(c: Comparison) -> list[str]:
    """What only one file holds; a whole experiment missing from the other file is one line."""
    out = []
    for label, df, other in (("only in base", c.only_in_base, c.new), ("only in new", c.only_in_new, c.base)):
        if df.empty:
            continue
        for exp, g in df.groupby("experiment", sort=False):
            if exp not in other.experiments:
                out.append(f"{label}: experiment {exp} ({len(g)} rows)")
                continue
            for _, r in g.iterrows():
                what = f"claim {r['metric']}" if r["kind"] == "claim" else \
                    f"{r['kind']} {r['metric']}" + (f" [{r['case']}]" if r["case"] else "")
                out.append(f"{label}: {exp} {what}")
    return out


def header_lines(c: Comparison) -> list[str]:
    def side(label: str, res: Results) -> str:
        fp = res.meta.get("fingerprint", {})
        commit = (fp.get("git_commit") or "")[:10]
        dirty = " (dirty)" if fp.get("git_dirty") else ""
        where = f"{label}: {_name(res)} · run {res.meta.get('run_id', '?')}"
        return where + (f" · commit {commit}{dirty}" if commit else "")

    rule = (f"rule: Mann-Whitney p < {c.alpha:g}, 95% bootstrap interval excludes no change, "
            f"change of at least {c.threshold:.0%}")
    timings = "timings normalized by each file's copy bandwidth" if c.normalize else "timings as measured"
    fails = ", ".join(c.fail_on) or "nothing (report only)"
    return [side("base", c.base), side("new", c.new), f"{rule} · {timings} · fails on: {fails}"]


def summary_line(c: Comparison) -> str:
    counts = c.counts()
    n_reg = len(c.regressions)
    order = ["slower", "worse", "verdict changed", "faster", "improved", "higher", "lower", "same", "n/a",
             "only in base", "only in new"]
    parts = [f"{counts[k]} {k}" for k in order if counts.get(k)]
    head = f"{n_reg} regression{'s' if n_reg != 1 else ''}" if n_reg else "no regression"
    return f"{head}: " + (", ".join(parts) or "nothing compared")


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


def to_markdown(c: Comparison, only_changed: bool = False) -> str:
    """GitHub-flavoured Markdown for a CI job summary or a pull-request comment."""
    buf = io.StringIO()
    status = "❌" if c.exit_status else "✅"
    buf.write(f"### {status} dlbench compare: {summary_line(c)}\n\n")
    buf.write("".join(f"{line}  \n" for line in header_lines(c)))
    for w in c.warnings:
        buf.write(f"\n> ⚠️ {w}\n")
    note = underpowered_note(c)
    rows, claims = _shown(c, only_changed)
    changed = rows[~rows["result"].isin(["same", "n/a"])]
    if len(changed):
        buf.write("\n#### Changed\n\n")
        buf.write(markdown_table(*row_table(changed, c.normalize)))
    elif not only_changed:
        buf.write("\nNo timing or metric changed.\n")
    if claims["changed"].any():
        buf.write("\n#### Claims whose verdict changed\n\n")
        buf.write(markdown_table(*claim_table(claims[claims["changed"]])))
    lines = only_in_lines(c)
    if lines:
        buf.write("\n#### In one file only\n\n" + "".join(f"- {line}\n" for line in lines))
    rest = rows[rows["result"].isin(["same", "n/a"])]
    if len(rest):
        buf.write(f"\n<details><summary>{len(rest)} unchanged or untestable row{'s' if len(rest) != 1 else ''}"
                  "</summary>\n\n")
        buf.write(markdown_table(*row_table(rest, c.normalize)))
        buf.write("\n</details>\n")
    same_claims = claims[~claims["changed"]]
    if len(same_claims):
        plural = "claims" if len(same_claims) != 1 else "claim"
        buf.write(f"\n<details><summary>{len(same_claims)} {plural} with the same verdict</summary>\n\n")
        buf.write(markdown_table(*claim_table(same_claims)))
        buf.write("\n</details>\n")
    if note:
        buf.write(f"\n{note}.\n")
    return buf.getvalue()


def to_json(c: Comparison, only_changed: bool = False) -> str:
    rows, claims = _shown(c, only_changed)

    def records(df: pd.DataFrame) -> list[dict]:
        return json.loads(df.to_json(orient="records")) if len(df) else []

    doc = {
        "base": {"path": _name(c.base), "run_id": c.base.meta.get("run_id")},
        "new": {"path": _name(c.new), "run_id": c.new.meta.get("run_id")},
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


def render_rich(c: Comparison, console, only_changed: bool = False) -> None:
    from rich import box
    from rich.table import Table as RichTable
    from rich.text import Text

    for line in header_lines(c):
        console.print(Text(line, style="dim"))
    rows, claims = _shown(c, only_changed)
    for exp, er in rows.groupby("experiment", sort=False):
        columns, cells = row_table(er, c.normalize)
        # the verdict first, so a narrow terminal wraps the numbers and never hides it
        order = [1, 2, 8, 6, 7, 4, 5, 3]
        t = RichTable(title=Text(f"{exp} · timings and metrics", style="bold"), title_justify="left",
                      box=box.SIMPLE_HEAD)
        for i in order:
            col = columns[i]
            wrap = col in ("case", "metric")
            width = min(16, max(len(col), *(len(str(cell[i])) for cell in cells))) if wrap else None
            t.add_column(Text(col), overflow="fold", no_wrap=col in ("result", "p"), min_width=width,
                         justify="left" if wrap or col in ("better", "result") else "right")
        for cell, (_, r) in zip(cells, er.iterrows()):
            texts = [Text(str(cell[i])) for i in order]
            texts[2].stylize(("bold " if r["regression"] else "") + RESULT_STYLE.get(r["result"], ""))
            t.add_row(*texts)
        console.print(t)
    if len(claims):
        columns, cells = claim_table(claims)
        t = RichTable(title=Text("claims", style="bold"), title_justify="left", box=box.SIMPLE_HEAD)
        for col in columns:
            t.add_column(Text(col), overflow="fold", ratio=2 if col.startswith("evidence") else None)
        for cell, (_, r) in zip(cells, claims.iterrows()):
            texts = [Text(str(x)) for x in cell]
            if r["changed"]:
                texts[3].stylize("bold red" if r["regression"] else "yellow")
            t.add_row(*texts)
        console.print(t)
    for line in only_in_lines(c):
        console.print(Text(line, style="yellow"))
    note = underpowered_note(c)
    if note:
        console.print(Text(note, style="dim"))
    console.print(Text(summary_line(c), style="bold red" if c.exit_status else "bold green"))


def render(c: Comparison, fmt_name: str, console=None, only_changed: bool = False) -> str | None:
    """Markdown or JSON as a string; the Rich table is printed on `console` (and None returned)."""
    if fmt_name == "markdown":
        return to_markdown(c, only_changed)
    if fmt_name == "json":
        return to_json(c, only_changed)
    render_rich(c, console, only_changed)
    return None
