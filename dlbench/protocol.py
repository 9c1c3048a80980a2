"""The claim protocol: how findings become a claim's verdict.

A *claim* is an empirical statement with an id (D1, A4, O7, ...). An experiment measures it
as *findings* (`dlbench.stats.Finding`), each recorded at one point of the claim's nuisance
grid, in one of two roles:

- role `claim`: the measurement itself;
- role `control`: the same measurement through the same code, on a counterfactual that
  removes the claim's mechanism (identity activation for depth, momentum 0, noise 0, ...).

`judge` turns a claim's findings into its verdict, by one rule:

1. Per base seed, the grid: every point agrees -> that verdict; the points disagree ->
   `conditional`, and the sensitivity line names the boundary by its grid values ("supported at lr
   0.3 to 3; inconclusive at lr 0.01 and 0.1"). Over a quantifier axis (the claim's own universe: "bounded
   activations saturate" over the activations) one refuted value refutes the claim, and it is
   supported only where every value supports it. Points not run are named in the sensitivity.
2. The control: if any control finding is `supported`, the measurement cannot tell the claim
   from its counterfactual, and the claim is `inconclusive` whatever its own findings say; a claim
   whose declared control was not measured is `inconclusive` too.
3. A check of the claim that failed makes it `inconclusive` (the implementation is in doubt).
4. Across base seeds: every base seed gives the same verdict (and a conditional one the same
   boundary) -> that verdict; otherwise `inconclusive`, naming the verdict of each base seed.

A claim with no finding is `not run`, with the reason the experiment gave. A *check* is not a
claim: an exact identity (a linear net is one matrix) that passes or fails to a tolerance.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import pandas as pd

from dlbench.stats import Finding, fmt_number

OUTCOMES = ("supported", "refuted", "inconclusive", "conditional", "not run")
FINDING_VERDICTS = ("supported", "refuted", "inconclusive", "not run")
CHECK_OUTCOMES = ("pass", "fail")
ROLES = ("claim", "control")
PARAM_PREFIX = "p_"


@dataclass(frozen=True)
class Axis:
    """A setting of a claim's grid, with its values (and fewer for --quick).

    A nuisance axis (the default) is a setting the verdict should not depend on: values that disagree make
    the claim `conditional`. A quantifier axis is the claim's own universe ("bounded activations saturate":
    the activations): the claim asserts itself for every value, so one refuted value refutes it, and it is
    supported only where every value supports it.
    """

    name: str
    values: tuple
    quick: tuple | None = None
    quantifier: bool = False

    def grid(self, quick: bool = False) -> tuple:
        return self.quick if quick and self.quick is not None else self.values


@dataclass(frozen=True)
class ClaimSpec:
    """A claim of the catalogue: what the notes say, what is measured, its control, grid and threshold.

    statement: the notes' statement; measures: the effect measured and the direction that supports
    the claim; control: the counterfactual that removes the mechanism; grid: the nuisance settings;
    threshold: the practical threshold and why it is that; literature: the papers it is judged
    against; premise: where the claim is judged (a claim measured elsewhere is not run); basis:
    `measured`, or `timing` when the verdict rests on wall time.
    """

    id: str
    statement: str
    measures: str = ""
    control: str = ""
    grid: tuple[Axis, ...] = ()
    threshold: str = ""
    literature: str = ""
    premise: str = ""
    basis: str = "measured"

    def points(self, quick: bool = False) -> list[dict]:
        """Every point of the grid (the product of the axes), the first value of each axis first."""
        axes = [(a.name, a.grid(quick)) for a in self.grid]
        return [dict(zip([n for n, _ in axes], combo)) for combo in itertools.product(*(v for _, v in axes))]


@dataclass(frozen=True)
class CheckSpec:
    """An exact identity: it passes when its error is within the tolerance (`tolerance` says why that one)."""

    id: str
    statement: str
    tolerance: str = ""
    claim: str = ""


@dataclass(frozen=True)
class Judgement:
    """A claim's verdict with the finding it headlines, its control's outcome and its sensitivity."""

    claim: str
    verdict: str
    headline: Finding | None
    control: str
    sensitivity: str
    evidence: str
    points: int = 0
    per_seed: dict = field(default_factory=dict)


def combine_points(verdicts: Sequence[str]) -> str:
    """Grid points that all agree give their verdict; points that disagree give `conditional`."""
    measured = [v for v in verdicts if v != "not run"]
    if not measured:
        return "not run"
    return measured[0] if len(set(measured)) == 1 else "conditional"


def judge(spec: ClaimSpec, grid: pd.DataFrame, checks: pd.DataFrame | None = None) -> Judgement:
    """The verdict of `spec` from its grid rows (results-file rows of kind `grid`) and its checks."""
    rows = grid[grid["claim"] == spec.id] if len(grid) else grid
    if rows.empty:
        return Judgement(spec.id, "not run", None, "not run", "", "this run did not measure it")
    seeds = list(dict.fromkeys(rows["base_seed"].tolist()))
    over = tuple(a.name for a in spec.grid if a.quantifier)
    per_seed = {s: _judge_seed(rows[rows["base_seed"] == s], over, bool(spec.control)) for s in seeds}
    j = per_seed[seeds[0]]
    verdicts = {s: per_seed[s].verdict for s in seeds}
    if len(set(verdicts.values())) > 1:
        by = {}
        for s, v in verdicts.items():
            by.setdefault(v, []).append(str(s))
        said = "; ".join(f"{v} for base seed {', '.join(ss)}" for v, ss in by.items())
        j = _override(j, "inconclusive", f"the verdict changes with the base seed ({said})")
    elif j.verdict == "conditional" and len({per_seed[s].sensitivity for s in seeds}) > 1:
        # the same word over different boundaries is not the same verdict
        j = _override(j, "inconclusive", "the verdict's boundary changes with the base seed ("
                      + "; ".join(f"base seed {s}: {per_seed[s].sensitivity}" for s in seeds) + ")")
    failed = _failed_checks(spec, checks)
    if failed and j.verdict not in ("not run",):
        j = _override(j, "inconclusive", f"check {', '.join(failed)} failed, so the measurement is in doubt")
    return Judgement(j.claim if j.claim else spec.id, j.verdict, j.headline, j.control, j.sensitivity,
                     j.evidence, j.points, verdicts)


def _failed_checks(spec: ClaimSpec, checks: pd.DataFrame | None) -> list[str]:
    if checks is None or checks.empty:
        return []
    mine = checks[(checks["claim"] == spec.id) & (checks["verdict"] == "fail")]
    return list(dict.fromkeys(mine["metric"]))


def _override(j: Judgement, verdict: str, reason: str) -> Judgement:
    was = f" (measured: {j.verdict})" if j.verdict != verdict else ""
    return Judgement(j.claim, verdict, j.headline, j.control, j.sensitivity,
                     f"{reason}{was}; {j.evidence}", j.points, j.per_seed)


def _judge_seed(rows: pd.DataFrame, over: tuple[str, ...] = (), requires_control: bool = False) -> Judgement:
    claim_id = str(rows["claim"].iloc[0])
    own = rows[rows["role"] == "claim"]
    ctrl = rows[rows["role"] == "control"]
    measured = own[own["verdict"] != "not run"]
    if measured.empty:
        reason = "; ".join(dict.fromkeys(str(e) for e in own["evidence"] if isinstance(e, str) and e)) \
            or "this run did not measure it"
        return Judgement(claim_id, "not run", None, combine_points(list(ctrl["verdict"])), "", reason)
    points = [(_settings(r), r["verdict"]) for _, r in measured.iterrows()]
    verdict, counter = quantify(points, over)
    # the headline carries the verdict: the first point that says it (for conditional, the first supported)
    says = {"conditional": "supported"}.get(verdict, verdict)
    carriers = measured[measured["verdict"] == says]
    headline = _finding((carriers if len(carriers) else measured).iloc[0])
    sensitivity = describe_sensitivity(points)
    if counter:
        sensitivity = f"{counter}; {sensitivity}"
    skipped = own[own["verdict"] == "not run"]
    if len(skipped):  # a verdict over part of its grid says so
        sensitivity += (f"; not run at {len(skipped)} of {len(own)} grid points"
                        + _points_text([_settings(r) for _, r in skipped.iterrows()]))
    control = combine_points(list(ctrl["verdict"])) if len(ctrl) else "not run"
    evidence = headline.evidence
    if control == "not run" and requires_control and verdict != "inconclusive":
        return _override(Judgement(claim_id, verdict, headline, control, sensitivity, evidence, len(points)),
                         "inconclusive", "its control was not measured, so nothing shows the measurement could "
                                         "have come out otherwise")
    where = ctrl[ctrl["verdict"] == "supported"]
    if len(where):
        at = _points_text([_settings(r) for _, r in where.iterrows()])
        return _override(Judgement(claim_id, verdict, headline, control, sensitivity, evidence, len(points)),
                         "inconclusive",
                         f"its control came out supported{at}: the measurement does not tell the claim "
                         f"from the counterfactual")
    # a control made of parts that must all hold fails as a whole, yet a part that holds there too is no
    # evidence for the mechanism: the evidence says which
    part_supported = (ctrl["parts"].map(lambda p: isinstance(p, str) and "supported" in p.split(","))
                      if "parts" in ctrl else pd.Series(False, index=ctrl.index)).astype(bool)
    if part_supported.any() and verdict in ("supported", "conditional"):
        at = _points_text([_settings(r) for _, r in ctrl[part_supported].iterrows()])
        evidence = (f"{evidence}; a part of the claim also holds on its control{at}, so the verdict rests "
                    f"on the parts that fail there")
    return Judgement(claim_id, verdict, headline, control, sensitivity, evidence, len(points))


def quantify(points: Sequence[tuple[dict, str]], over: Sequence[str]) -> tuple[str, str]:
    """The verdict of points over quantifier axes `over`, and the counterexamples that refute it ('' if none).

    Points that share every other setting form one statement about all values of `over`: supported when
    every value supports it, refuted when one refutes it, inconclusive otherwise. The statements at the
    other settings then combine as nuisance points do (`combine_points`).
    """
    if not over:
        return combine_points([v for _, v in points]), ""
    groups: dict[tuple, list] = {}
    for p, v in points:
        key = tuple((k, p[k]) for k in p if k not in over)
        groups.setdefault(key, []).append((p, v))
    verdicts, counter = [], []
    for members in groups.values():
        vs = [v for _, v in members]
        if "refuted" in vs:
            verdicts.append("refuted")
            counter += [" ".join(f"{k}={fmt_setting(p[k])}" for k in over if k in p)
                        for p, v in members if v == "refuted"]
        elif all(v == "supported" for v in vs):
            verdicts.append("supported")
        else:
            verdicts.append("inconclusive")
    shown = list(dict.fromkeys(counter))
    text = f"refuted by the counterexample{'s' if len(shown) > 1 else ''} {', '.join(shown)}" if shown else ""
    return combine_points(verdicts), text


def _finding(r: pd.Series) -> Finding:
    def num(k):
        v = r.get(k)
        return math.nan if v is None or pd.isna(v) else float(v)

    n = r.get("n")
    return Finding(str(r["verdict"]), num("value"), num("low"), num("high"),
                   0 if n is None or pd.isna(n) else int(n), str(r.get("method") or ""),
                   str(r.get("evidence") or ""), str(r.get("unit") or ""), num("threshold"))


def _settings(r: pd.Series) -> dict:
    """The grid point of a row: its non-null parameter columns."""
    return {k[len(PARAM_PREFIX):]: _plain(v) for k, v in r.items()
            if isinstance(k, str) and k.startswith(PARAM_PREFIX) and v is not None and not _missing(v)}


def _missing(v) -> bool:
    try:
        return bool(pd.isna(v))
    except (TypeError, ValueError):
        return False


def _plain(v):
    if hasattr(v, "item"):
        v = v.item()
    if isinstance(v, float) and v.is_integer() and abs(v) < 1e15:
        return int(v)
    return v


def fmt_setting(v) -> str:
    if isinstance(v, float):
        return fmt_number(v)
    return str(v)


def _points_text(points: list[dict]) -> str:
    shown = [" ".join(f"{k}={fmt_setting(v)}" for k, v in p.items()) for p in points if p]
    return f" at {', '.join(shown)}" if shown else ""


def describe_sensitivity(points: Sequence[tuple[dict, str]]) -> str:
    """One line on how the verdict depends on the grid: agreement, a boundary on one axis, or the exceptions."""
    n = len(points)
    verdicts = [v for _, v in points]
    if n == 0:
        return ""
    if len(set(verdicts)) == 1:
        return f"{verdicts[0]} at the one grid point" if n == 1 else f"{verdicts[0]} at all {n} grid points"
    axes = list(dict.fromkeys(k for p, _ in points for k in p))
    for axis in axes:
        groups: dict = {}
        for p, v in points:
            groups.setdefault(p.get(axis), set()).add(v)
        if all(len(vs) == 1 for vs in groups.values()):
            return _boundary(axis, {k: next(iter(vs)) for k, vs in groups.items()})
    counts: dict[str, int] = {}
    for v in verdicts:
        counts[v] = counts.get(v, 0) + 1
    common = max(counts, key=counts.get)
    others = [(p, v) for p, v in points if v != common]
    listed = ", ".join(f"{v} at " + " ".join(f"{k}={fmt_setting(x)}" for k, x in p.items()) for p, v in others[:6])
    more = f" and {len(others) - 6} more" if len(others) > 6 else ""
    return f"{common} at {counts[common]} of {n} grid points; {listed}{more}"


def _span(xs: list) -> str:
    """Grid values as said: one value, two values, or the first to the last of several."""
    if len(xs) <= 2:
        return " and ".join(fmt_setting(x) for x in xs)
    return f"{fmt_setting(xs[0])} to {fmt_setting(xs[-1])}"


def _boundary(axis: str, by_value: dict) -> str:
    """'supported for lr >= 0.3; inconclusive for lr <= 0.1' when one axis splits the verdicts in order."""
    values = list(by_value)
    numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
    if numeric:
        values.sort()
        runs: list[tuple[str, list]] = []
        for v in values:
            if runs and runs[-1][0] == by_value[v]:
                runs[-1][1].append(v)
            else:
                runs.append((by_value[v], [v]))
        if len(runs) == 2:  # one boundary: name the grid values on each side of it, and nothing between
            return "; ".join(f"{v} at {axis} {_span(xs)}" for v, xs in reversed(runs))
    by_verdict: dict[str, list] = {}
    for v in values:
        by_verdict.setdefault(by_value[v], []).append(v)
    return "; ".join(f"{verdict} at {axis} {', '.join(fmt_setting(x) for x in xs)}"
                     for verdict, xs in by_verdict.items())
