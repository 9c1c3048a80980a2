"""Diff results files: line up their rows, decide per metric, flag changed verdicts.

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
better="none" (informational: never a regression). A claim whose verdict,
control outcome or sensitivity changed is a verdict change (a control or
sensitivity only one file records, as in a schema-1 file, is not compared); a
check that went from pass to fail is one too, while fail -> pass is an
improvement. A regression is a `slower` timing, a `worse` metric or a verdict
change, for the categories chosen in `fail_on` (a verdict that rests on wall
time counts under `timing`).

Several runs per side. With base runs B1..Bk and new runs N1..Nm every pairing
(Bi, Nj) is judged on its own, and a change is *confirmed* only when all k x m
pairings show the same change: the rule a CI job needs when it runs base, new,
new, base on one shared machine, where one pairing alone may catch a burst of
load. A change seen in some pairings only is reported as unconfirmed and never
fails. The effect shown for a confirmed change is that of the pairing closest
to no change. With one run per side this is exactly the rule above.

With `normalize`, each timing sample t becomes t * B, B the copy bandwidth its
own file measured for the row's dtype (case parameter `dtype`, else float32)
and working set (cache or DRAM by the row's bytes, as
`dlbench.timing.bandwidth_fraction` decides): the bytes that machine copies in
the time of one call, so two machines compare as fractions of what each can move.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from dlbench.env import significant_differences
from dlbench.errors import DlbenchError
from dlbench.results import PARAM_PREFIX, Results, read_results
from dlbench.stats import bootstrap_difference, bootstrap_ratio_ci, mann_whitney_u
from dlbench.timing import bandwidth_fraction

DEFAULT_THRESHOLD = 0.10
DEFAULT_ALPHA = 0.01
FAIL_ON = ("timing", "quality", "verdict")
KEY = ["experiment", "kind", "case", "metric"]
N_BOOT = 2000
UNCHANGED = ("same", "n/a")

#: result word per (category, direction of NEW against BASE)
WORDS = {
    "timing": {1: "slower", -1: "faster"},
    "quality": {1: "worse", -1: "improved"},
    "info": {1: "higher", -1: "lower"},
}
REGRESSION_WORDS = {"timing": "slower", "quality": "worse"}
#: the order a person reads changes in: what got worse, what got better, what merely moved
RESULT_ORDER = {"slower": 0, "worse": 0, "faster": 1, "improved": 1, "higher": 2, "lower": 2}


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
    d, lo, hi = bootstrap_difference(n, b, n_boot=N_BOOT, seed=seed)
    size = threshold * abs(float(np.median(b)))
    if p < alpha and lo >= size and lo > 0:
        direction = 1
    elif p < alpha and hi <= -size and hi < 0:
        direction = -1
    else:
        direction = 0
    return Judgement("difference", d, lo, hi, p, min_p, direction)


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
    """Base and new runs lined up: the judged rows, the claims and checks, what one side only has.

    `rows` has one row per matched (experiment, kind, case, metric) with columns
    category (timing/quality/info), unit, better, n_base, n_new, base and new
    (medians, seconds for timings), effect, estimate, low, high, p, min_p,
    result (the confirmed word, `same` or `n/a`), regression, pairings (how many
    base/new pairings were judged), change (the change some pairings saw, or "")
    and changed_in (in how many pairings). `claims` has one row per claim or check
    in both sides with kind, base/new verdict, control and sensitivity, changed,
    regression, improvement, pairings, changed_in and both evidences.
    """

    bases: list[Results]
    news: list[Results]
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
    def base(self) -> Results:
        return self.bases[0]

    @property
    def new(self) -> Results:
        return self.news[0]

    @property
    def pairings(self) -> int:
        return len(self.bases) * len(self.news)

    @property
    def regressions(self) -> pd.DataFrame:
        """Every confirmed regression that fails the comparison: judged rows, then changed verdicts."""
        r = self.rows.loc[self.rows["regression"], KEY + ["result"]]
        cl = self.claims.loc[self.claims["regression"]]
        cl = pd.DataFrame({"experiment": cl["experiment"], "kind": cl["kind"], "case": "", "metric": cl["claim"],
                           "result": cl["base_verdict"] + " -> " + cl["new_verdict"]}, columns=[*KEY, "result"])
        return pd.concat([df for df in (r, cl) if len(df)] or [r], ignore_index=True)

    @property
    def exit_status(self) -> int:
        """0 when nothing selected by `fail_on` regressed in every pairing, 1 otherwise."""
        return 1 if len(self.regressions) else 0

    def counts(self) -> dict[str, int]:
        """How many rows got each result word, plus verdict changes, unconfirmed changes, one-side rows."""
        out = {k: int(v) for k, v in self.rows["result"].value_counts().items()} if len(self.rows) else {}
        out["verdict changed"] = int(self.claims["changed"].sum()) if len(self.claims) else 0
        out["unconfirmed"] = len(unconfirmed(self))
        out["only in base"] = len(self.only_in_base)
        out["only in new"] = len(self.only_in_new)
        return out


def changed_rows(c: Comparison) -> pd.DataFrame:
    """The confirmed changes in reading order: regressions, improvements, then neutral moves."""
    rows = c.rows[~c.rows["result"].isin(UNCHANGED)]
    order = np.array([RESULT_ORDER.get(w, 3) for w in rows["result"]], dtype=float) \
        - 0.5 * rows["regression"].to_numpy(dtype=bool)
    return rows.iloc[np.argsort(order, kind="stable")]


def changed_claims(c: Comparison) -> pd.DataFrame:
    """Changed verdicts: regressions first, then improvements (a check fixed), then the rest."""
    cl = c.claims[c.claims["changed"]]
    order = np.where(cl["regression"], 0, np.where(cl["improvement"], 1, 2))
    return cl.iloc[np.argsort(order, kind="stable")]


def unconfirmed(c: Comparison) -> pd.DataFrame:
    """Rows that changed in some pairings but not in all: reported, never failing."""
    return c.rows[(c.rows["change"] != "") & c.rows["result"].isin(UNCHANGED)]


# ---------------------------------------------------------------------------------------------- lining up

@dataclass
class _Group:
    """One (experiment, kind, case, metric) of one file: what the rule and the tables need."""

    kind: str
    better: str
    unit: str
    section: str
    values: np.ndarray
    nbytes: float | None
    dtype: str
    outcome: dict  # claims and checks: verdict, control, sensitivity, statement, evidence, basis
    hosts: tuple = ()  # timings: the hosts they were taken on


def _groups(df: pd.DataFrame) -> dict[tuple, _Group]:
    """Each key's rows, in the file's order (positions, not DataFrame slices: files hold 10^5 rows)."""
    if df.empty:
        return {}
    keys = df[KEY].assign(case=df["case"].fillna(""))
    index = keys.groupby(KEY, sort=False, dropna=False).indices
    col = {c: df[c].to_numpy() for c in ("kind", "better", "unit", "section", "verdict", "control", "sensitivity",
                                         "statement", "evidence", "basis") if c in df.columns}
    value = df["value"].to_numpy(dtype=float)
    seed = df["seed"].to_numpy(dtype=float)
    sample = df["sample"].to_numpy(dtype=float)
    nbytes = df["bytes"].to_numpy(dtype=float)
    dtype = df[PARAM_PREFIX + "dtype"].to_numpy() if PARAM_PREFIX + "dtype" in df.columns else None
    host = df["host"].to_numpy() if "host" in df.columns else None
    out = {}
    for key, pos in sorted(index.items(), key=lambda kv: kv[1][0]):
        i = pos[0]
        kind = key[1]
        if kind == "curve":
            values = _final_points(value[pos], seed[pos], sample[pos])
        else:
            values = value[pos]
        outcome = {}
        if kind in ("claim", "check"):
            outcome = {c: _text(col[c][i]) if c in col else None
                       for c in ("verdict", "control", "sensitivity", "statement", "evidence", "basis")}
            if kind == "check" and any(col["verdict"][j] == "fail" for j in pos):
                j = next(j for j in pos if col["verdict"][j] == "fail")
                outcome.update(verdict="fail", evidence=_text(col["evidence"][j]))
        d = dtype[i] if dtype is not None else None
        out[tuple(key)] = _Group(kind, _text(col["better"][i]) or "none", _text(col["unit"][i]) or "",
                                 _text(col["section"][i]) or "", values,
                                 float(nbytes[i]) if np.isfinite(nbytes[i]) else None,
                                 d if d in ("float32", "float64") else "float32", outcome,
                                 tuple(dict.fromkeys(host[pos])) if kind == "timing" and host is not None else ())
    return out


def _text(v) -> str | None:
    return None if v is None or (isinstance(v, float) and math.isnan(v)) or v is pd.NA else str(v)


def _final_points(value: np.ndarray, seed: np.ndarray, sample: np.ndarray) -> np.ndarray:
    """The sample a curve is judged on: each seed's final point (the last step recorded)."""
    if not np.isfinite(seed).any():
        return value[[int(np.argmax(sample))]]
    order = np.lexsort((sample, seed))
    s = seed[order]
    last = np.r_[s[1:] != s[:-1], True]
    return value[order][last]


# ---------------------------------------------------------------------------------------------- comparing

def compare_files(base_paths, new_paths, **kwargs) -> Comparison:
    """Read the results files of each side (one path or a list of paths) and `compare` them."""
    _check_settings(kwargs.get("threshold", DEFAULT_THRESHOLD), kwargs.get("alpha", DEFAULT_ALPHA))
    bases = [read_results(p) for p in _as_list(base_paths)]
    news = [read_results(p) for p in _as_list(new_paths)]
    return compare(bases, news, **kwargs)


def _as_list(x) -> list:
    return list(x) if isinstance(x, (list, tuple)) else [x]


def _check_settings(threshold: float, alpha: float) -> None:
    if not (0 < alpha < 1):
        raise DlbenchError(f"--alpha {alpha}: must be between 0 and 1")
    if not (0 <= threshold < 10):
        raise DlbenchError(f"--threshold {threshold}: must be between 0 and 10 (0% to 1000%)")


def compare(base, new, *, threshold: float = DEFAULT_THRESHOLD, alpha: float = DEFAULT_ALPHA,
            normalize: bool = False, fail_on=FAIL_ON) -> Comparison:
    """Line up the base and new runs (a Results or a list of them each) and judge every matched row
    in every base/new pairing; a change counts when all pairings show it (see the module docstring)."""
    _check_settings(threshold, alpha)
    fail_on = tuple(fail_on)
    bases, news = _as_list(base), _as_list(new)
    if not bases or not news:
        raise DlbenchError("compare needs at least one base and one new results file")
    if normalize:
        for res in bases + news:
            if not res.meta.get("bandwidth"):
                raise DlbenchError(f"--normalize: {_name(res)} holds no copy-bandwidth probe")
    gb = [_groups(r.rows) for r in bases]
    gn = [_groups(r.rows) for r in news]
    in_base = list(dict.fromkeys(k for g in gb for k in g))
    in_new = list(dict.fromkeys(k for g in gn for k in g))
    common = [k for k in in_base if all(k in g for g in gb + gn)]
    if not common:
        raise DlbenchError(f"{_sides(bases)} and {_sides(news)} have no rows in common: nothing to compare")
    new_keys, base_keys = set(in_new), set(in_base)
    only_b = pd.DataFrame([k for k in in_base if k not in new_keys], columns=KEY)
    only_n = pd.DataFrame([k for k in in_new if k not in base_keys], columns=KEY)
    pairs = [(i, j) for i in range(len(bases)) for j in range(len(news))]
    rows, claims = [], []
    for key in common:
        if key[1] == "grid":  # a claim's findings: its verdict, control and sensitivity are compared
            continue
        if key[1] in ("claim", "check"):
            claims.append(_merge_claims([_claim_row(key, gb[i][key], gn[j][key], fail_on) for i, j in pairs]))
        else:
            judged = [_judged_row(key, gb[i][key], gn[j][key], bases[i], news[j], threshold=threshold, alpha=alpha,
                                  normalize=normalize, fail_on=fail_on) for i, j in pairs]
            rows.append(_merge_rows(judged))
    warnings = list(dict.fromkeys(w for i, j in pairs for w in _warnings(bases[i], news[j], normalize)))
    partial = [k for k in dict.fromkeys(in_base + in_new) if k not in set(common) and k in base_keys and k in new_keys]
    if partial:
        warnings.append(f"{len(partial)} row{'s are' if len(partial) != 1 else ' is'} missing from some of the "
                        f"runs and not compared (first: {' '.join(str(x) for x in partial[0] if x)})")
    return Comparison(bases, news, _frame(rows, ROW_COLUMNS), _frame(claims, CLAIM_COLUMNS), only_b, only_n,
                      threshold=threshold, alpha=alpha, normalize=normalize, fail_on=fail_on, warnings=warnings)


ROW_COLUMNS = [*KEY, "section", "category", "unit", "better", "n_base", "n_new", "base", "new", "effect",
               "estimate", "low", "high", "p", "min_p", "result", "regression", "pairings", "change", "changed_in"]
CLAIM_COLUMNS = ["experiment", "kind", "claim", "statement", "base_verdict", "new_verdict", "base_control",
                 "new_control", "base_sensitivity", "new_sensitivity", "changed", "regression", "improvement",
                 "pairings", "changed_in", "base_evidence", "new_evidence"]


def _frame(records: list[dict], columns: list[str]) -> pd.DataFrame:
    df = pd.DataFrame(records, columns=columns)
    # typed flags: an empty object column would make df[mask] select columns, not rows
    return df.astype({c: bool for c in ("changed", "regression", "improvement") if c in columns})


def _name(res: Results) -> str:
    return str(res.path) if res.path is not None else f"run {res.meta.get('run_id', '?')}"


def _sides(runs: list[Results]) -> str:
    exps = list(dict.fromkeys(e for r in runs for e in r.experiments))
    return f"{', '.join(_name(r) for r in runs)} ({', '.join(exps) or 'empty'})"


def _reference_bandwidth(g: _Group, key: tuple, res: Results) -> float:
    """The file's copy bandwidth (bytes/s) for this row's dtype and working-set size."""
    # bandwidth_fraction(1 GB/s, ...) is 1 / reference: one rule picks cache or DRAM for both uses.
    frac = bandwidth_fraction(1.0, g.nbytes, res.meta.get("bandwidth", {}), g.dtype)
    if not frac:
        raise DlbenchError(f"--normalize: {_name(res)} has no {g.dtype} copy bandwidth for {key[0]} {key[3]}")
    return 1e9 / frac


def _judged_row(key, gb: _Group, gn: _Group, base: Results, new: Results, *, threshold, alpha, normalize,
                fail_on) -> dict:
    kind, better = key[1], gb.better
    category = "timing" if kind == "timing" else ("info" if better not in ("lower", "higher") else "quality")
    vb, vn = gb.values, gn.values
    unit = gb.unit
    if kind == "timing" and normalize:
        # seconds x bytes/s = the bytes this machine copies in the time of one call
        vb, vn = vb * _reference_bandwidth(gb, key, base), vn * _reference_bandwidth(gn, key, new)
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
    if kind == "timing" and timing_hosts_differ(gb.hosts, gn.hosts):
        regression = False
    fb, fn_ = vb[np.isfinite(vb)], vn[np.isfinite(vn)]
    return {"experiment": key[0], "kind": kind, "case": key[2], "metric": key[3], "section": gb.section,
            "category": category, "unit": unit, "better": better, "n_base": int(fb.size), "n_new": int(fn_.size),
            "base": float(np.median(fb)) if fb.size else math.nan,
            "new": float(np.median(fn_)) if fn_.size else math.nan,
            "effect": j.effect, "estimate": j.estimate, "low": j.low, "high": j.high, "p": j.p,
            "min_p": j.min_p, "result": result, "regression": bool(regression)}


def timing_hosts_differ(hb, hn) -> str | None:
    """Why timing samples of BASE and NEW are not judged as a regression: they were taken on different hosts
    (each timing row names its host's fingerprint), or one side mixes several hosts. A cost measured on
    another machine is another machine's cost, as pyperf refuses to mix incomparable runs. `hb`, `hn`: the
    host of each timing row of a side (nulls allowed). None when both sides name one and the same host, or
    a side does not say (a file of schema 1)."""
    hb, hn = (sorted({h for h in hs if isinstance(h, str) and h}) for hs in (hb, hn))
    if not hb or not hn or (hb == hn and len(hb) == 1):
        return None
    return f"timed on host {', '.join(hb)} in base and {', '.join(hn)} in new"


def _distance_from_no_change(r: dict) -> float:
    e = r["estimate"]
    if not np.isfinite(e):
        return math.inf
    return abs(math.log(e)) if r["effect"] == "ratio" and e > 0 else abs(e)


def _merge_rows(judged: list[dict]) -> dict:
    """One row from its judgement in every pairing: a change only when all pairings show it."""
    words = [r["result"] for r in judged]
    changes = Counter(w for w in words if w not in UNCHANGED)
    change, changed_in = changes.most_common(1)[0] if changes else ("", 0)
    if changed_in == len(judged):
        # the pairing closest to no change: the effect every pairing at least shows
        shown = dict(min(judged, key=_distance_from_no_change))
    else:
        shown = dict(judged[0])
        shown["result"] = "n/a" if all(w == "n/a" for w in words) else "same"
        shown["regression"] = False
    shown.update(pairings=len(judged), change=change, changed_in=changed_in)
    return shown


def _outcome(g: _Group, other: _Group) -> tuple:
    """What a claim decides: its verdict, and its control and sensitivity where both files record them."""
    parts = [g.outcome["verdict"]]
    for c in ("control", "sensitivity"):
        both = g.outcome[c] is not None and other.outcome[c] is not None
        parts.append(g.outcome[c] if both else None)
    return tuple(parts)


def _claim_row(key, gb: _Group, gn: _Group, fail_on) -> dict:
    b, n = gb.outcome, gn.outcome
    changed = _outcome(gb, gn) != _outcome(gn, gb)
    # A verdict that rests on wall time moves with the machine's load: it fails under `timing`.
    category = "timing" if "timing" in (b["basis"], n["basis"]) else "verdict"
    improvement = False
    if key[1] == "check":
        improvement = changed and n["verdict"] == "pass"
        regression = changed and n["verdict"] == "fail" and category in fail_on
    else:
        regression = changed and category in fail_on
    return {"experiment": key[0], "kind": key[1], "claim": key[3], "statement": n["statement"] or b["statement"],
            "base_verdict": b["verdict"], "new_verdict": n["verdict"], "base_control": b["control"],
            "new_control": n["control"], "base_sensitivity": b["sensitivity"], "new_sensitivity": n["sensitivity"],
            "changed": bool(changed), "regression": bool(regression), "improvement": bool(improvement),
            "base_evidence": b["evidence"], "new_evidence": n["evidence"]}


def _merge_claims(rows: list[dict]) -> dict:
    """One claim from every pairing: changed (and failing) only when every pairing changed."""
    out = dict(rows[0])
    for side in ("base", "new"):  # runs of one side that disagree show every verdict they gave
        verdicts = list(dict.fromkeys(r[f"{side}_verdict"] for r in rows))
        out[f"{side}_verdict"] = " / ".join(v or "—" for v in verdicts)
    changed_in = sum(r["changed"] for r in rows)
    out.update(changed=changed_in == len(rows), regression=all(r["regression"] for r in rows),
               improvement=all(r["improvement"] for r in rows), pairings=len(rows), changed_in=changed_in)
    return out


def _warnings(base: Results, new: Results, normalize: bool) -> list[str]:
    out = []
    if base.meta.get("run_id") and base.meta.get("run_id") == new.meta.get("run_id"):
        out.append(f"both files hold the same run ({base.meta['run_id']}): nothing can have changed")
    diffs = significant_differences(base.meta.get("fingerprint", {}), new.meta.get("fingerprint", {}))
    if diffs:
        hint = "" if normalize else "; --normalize compares them as fractions of each machine's copy bandwidth"
        out.append(f"the runs come from different setups ({'; '.join(diffs)}): timings compare the setups, "
                   f"not only the code{hint}")
    hb, hn = (r.rows.loc[r.rows["kind"] == "timing"].get("host", pd.Series(dtype=object)) for r in (base, new))
    why = timing_hosts_differ(hb, hn)
    if why:
        out.append(f"the timings were {why}: they are shown, never judged a regression")
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
