"""Intervals, the Mann-Whitney U test, and the verdict rule of CLAIMS.md.

No SciPy: the few distributions needed are written out here and tested against
textbook values.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from functools import cache
from typing import Literal

import numpy as np

Direction = Literal["greater", "less"]
VERDICTS = ("supported", "refuted", "inconclusive")

#: A percentile bootstrap interval of n values covers at most 1 - 2^(1-n): 95 % needs n >= 6.
MIN_BOOTSTRAP_N = 6


def median(x) -> float:
    return float(np.median(np.asarray(x, dtype=float)))


def iqr(x) -> tuple[float, float]:
    """The 25th and 75th percentiles."""
    q1, q3 = np.percentile(np.asarray(x, dtype=float), [25, 75])
    return float(q1), float(q3)


def bootstrap_ci(x, stat=np.median, *, level=0.95, n_boot=2000, seed=0) -> tuple[float, float]:
    """Percentile bootstrap interval of `stat` (a reducer taking `axis=`), seeded."""
    x = np.asarray(x, dtype=float)
    if x.size < 2:
        v = float(stat(x)) if x.size else math.nan
        return v, v
    rng = np.random.default_rng(seed)
    boots = stat(x[rng.integers(0, x.size, (n_boot, x.size))], axis=1)
    tail = (1 - level) / 2 * 100
    lo, hi = np.percentile(boots, [tail, 100 - tail])
    return float(lo), float(hi)


def bootstrap_ratio_ci(base, new, *, level=0.95, n_boot=2000, seed=0) -> tuple[float, float, float]:
    """Ratio of medians new/base with its percentile bootstrap interval (resampling each side)."""
    base, new = np.asarray(base, dtype=float), np.asarray(new, dtype=float)
    ratio = float(np.median(new) / np.median(base))
    if base.size < 2 or new.size < 2:
        return ratio, ratio, ratio
    rng = np.random.default_rng(seed)
    mb = np.median(base[rng.integers(0, base.size, (n_boot, base.size))], axis=1)
    mn = np.median(new[rng.integers(0, new.size, (n_boot, new.size))], axis=1)
    tail = (1 - level) / 2 * 100
    with np.errstate(divide="ignore", invalid="ignore"):
        lo, hi = np.nanpercentile(mn / mb, [tail, 100 - tail])
    return ratio, float(lo), float(hi)


# Two-sided 97.5 % quantiles of Student's t for df = 1..30.
_T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
         2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
         2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042)


def t975(df: int) -> float:
    """97.5 % quantile of Student's t (table to 30, Cornish-Fisher expansion beyond)."""
    if df < 1:
        return math.inf
    if df <= 30:
        return _T975[df - 1]
    z = 1.959963984540054
    return z + (z**3 + z) / (4 * df) + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * df**2)


def t_ci(x) -> tuple[float, float]:
    """95 % t interval of the mean."""
    x = np.asarray(x, dtype=float)
    if x.size < 2:
        v = float(x.mean()) if x.size else math.nan
        return v, v
    half = t975(x.size - 1) * x.std(ddof=1) / math.sqrt(x.size)
    m = float(x.mean())
    return m - half, m + half


def _normal_sf(z: float) -> float:
    return 0.5 * math.erfc(z / math.sqrt(2))


@cache
def _u_counts(n1: int, n2: int) -> np.ndarray:
    """Number of arrangements giving each U in 0..n1*n2 (no ties), by recurrence on sizes."""
    # c(n1, n2, u) = c(n1-1, n2, u-n2) + c(n1, n2-1, u)
    table = [np.ones(1, dtype=float)]  # row j holds c(i, j, .) for the current i
    for _ in range(n2):
        table.append(np.ones(1, dtype=float))
    for i in range(1, n1 + 1):
        row = [np.ones(1, dtype=float)]  # c(i, 0, .) = [1]
        for j in range(1, n2 + 1):
            a = np.zeros(i * j + 1)
            prev_i = table[j]  # c(i-1, j, .)
            a[j : j + prev_i.size] += prev_i
            left = row[j - 1]  # c(i, j-1, .)
            a[: left.size] += left
            row.append(a)
        table = row
    return table[n2]


#: Largest number of splits of the pooled values enumerated for an exact p-value with ties.
EXACT_SPLITS = 20_000


def mann_whitney_u(x, y) -> tuple[float, float]:
    """Two-sided Mann-Whitney U test: (U of x, p-value), U counting ties as one half.

    Exact null distribution when both samples have at most 25 values and no ties; with
    ties, exact by enumerating every split of the pooled values when there are at most
    EXACT_SPLITS of them (tied seeds keep the exact test's small-sample power); otherwise
    the normal approximation with tie correction and continuity correction.
    """
    x, y = np.asarray(x, dtype=float).ravel(), np.asarray(y, dtype=float).ravel()
    n1, n2 = x.size, y.size
    if n1 == 0 or n2 == 0:
        raise ValueError("both samples need at least one value")
    both = np.concatenate([x, y])
    ranks = _average_ranks(both)
    u1 = float(ranks[:n1].sum() - n1 * (n1 + 1) / 2)
    ties = np.unique(both, return_counts=True)[1]
    has_ties = bool((ties > 1).any())
    if has_ties and math.comb(n1 + n2, n1) <= EXACT_SPLITS:
        return u1, _exact_p_with_ties(x, y)
    if not has_ties and max(n1, n2) <= 25:
        counts = _u_counts(n1, n2)
        probs = counts / counts.sum()
        u_small = min(u1, n1 * n2 - u1)
        p = 2 * probs[: int(round(u_small)) + 1].sum()
        return u1, min(1.0, float(p))
    n = n1 + n2
    mu = n1 * n2 / 2
    tie_term = float((ties**3 - ties).sum()) / (n * (n - 1))
    sigma = math.sqrt(n1 * n2 / 12 * ((n + 1) - tie_term))
    if sigma == 0:
        return u1, 1.0
    z = (abs(u1 - mu) - 0.5) / sigma
    return u1, min(1.0, 2 * _normal_sf(max(z, 0.0)))


def _exact_p_with_ties(x: np.ndarray, y: np.ndarray) -> float:
    """P(|U - n1 n2 / 2| >= observed) over every split of the pooled values into groups of n1 and n2."""
    pooled = np.concatenate([x, y])
    n1, total = x.size, math.comb(pooled.size, x.size)
    # score[i, j] = 1 if value i beats value j, 1/2 if they tie
    score = (pooled[:, None] > pooled[None, :]) + 0.5 * (pooled[:, None] == pooled[None, :])
    member = np.zeros((total, pooled.size))
    picks = np.fromiter(itertools.chain.from_iterable(itertools.combinations(range(pooled.size), n1)),
                        dtype=np.int64, count=total * n1)
    member[np.repeat(np.arange(total), n1), picks] = 1.0
    u = np.einsum("ki,ij,kj->k", member, score, 1.0 - member)
    centre = n1 * y.size / 2
    observed = abs(u[0] - centre)  # the first combination is the observed split
    return float(np.mean(np.abs(u - centre) >= observed - 1e-9))


def _average_ranks(a: np.ndarray) -> np.ndarray:
    """Ranks 1..n, ties sharing their average rank."""
    order = np.argsort(a, kind="mergesort")
    sorted_a = a[order]
    first = np.r_[True, sorted_a[1:] != sorted_a[:-1]]
    group = np.cumsum(first) - 1
    starts = np.flatnonzero(first)
    ends = np.r_[starts[1:], a.size]
    avg = (starts + ends + 1) / 2  # mean of ranks start+1 .. end
    ranks = np.empty(a.size)
    ranks[order] = avg[group]
    return ranks


@dataclass(frozen=True)
class Claim:
    """A claim's verdict with the evidence it rests on."""

    id: str
    statement: str
    verdict: str
    effect: float
    low: float
    high: float
    n: int
    method: str
    evidence: str
    unit: str = ""


def _fmt(v: float) -> str:
    return "nan" if v is None or not math.isfinite(v) else f"{v:.3g}"


def decide(effect, low, high, *, direction: Direction = "greater", null=0.0, threshold=0.0, n=0, min_n=2,
           method: str = "") -> str:
    """The verdict rule: which side of `null` the interval lies on, and whether the effect is practical.

    supported: the interval lies entirely on the claimed side and the effect is at
    least `threshold` beyond `null`; refuted: the interval lies entirely on the other
    side; inconclusive otherwise, or with fewer than `min_n` observations.
    """
    if n < min_n or not all(map(math.isfinite, (effect, low, high))):
        return "inconclusive"
    if method == "bootstrap" and n < MIN_BOOTSTRAP_N:
        return "inconclusive"
    sign = 1.0 if direction == "greater" else -1.0
    lo, hi = sorted((sign * (low - null), sign * (high - null)))
    if lo > 0 and sign * (effect - null) >= threshold:
        return "supported"
    if hi < 0:
        return "refuted"
    return "inconclusive"


def verdict(
    claim_id: str,
    statement: str,
    values,
    *,
    direction: Direction = "greater",
    null: float = 0.0,
    threshold: float = 0.0,
    method: Literal["bootstrap", "t"] = "bootstrap",
    label: str = "effect",
    unit: str = "",
    seed: int = 0,
    min_n: int = 2,
) -> Claim:
    """Verdict on per-seed effects `values`: their median (bootstrap) or mean (t) against `null`."""
    x = np.asarray(values, dtype=float).ravel()
    x = x[np.isfinite(x)]
    if method == "t":
        effect = float(x.mean()) if x.size else math.nan
        low, high = t_ci(x)
    else:
        effect = median(x) if x.size else math.nan
        low, high = bootstrap_ci(x, seed=seed)
    return claim_from_interval(claim_id, statement, effect, low, high, n=x.size, method=method,
                               direction=direction, null=null, threshold=threshold, label=label,
                               unit=unit, min_n=min_n)


def two_sample_verdict(
    claim_id: str,
    statement: str,
    a,
    b,
    *,
    direction: Direction = "greater",
    ratio: bool = False,
    threshold: float = 0.0,
    label: str = "",
    unit: str = "",
    seed: int = 0,
) -> Claim:
    """Verdict on median(a) versus median(b): their difference, or their ratio a/b against 1."""
    a = np.asarray(a, dtype=float).ravel()
    b = np.asarray(b, dtype=float).ravel()
    a, b = a[np.isfinite(a)], b[np.isfinite(b)]
    n = min(a.size, b.size)
    if n == 0:
        return claim_from_interval(claim_id, statement, math.nan, math.nan, math.nan, n=0,
                                   method="bootstrap", label=label, unit=unit)
    if ratio:
        effect, low, high = bootstrap_ratio_ci(b, a, seed=seed)
        null, unit, label = 1.0, "x", label or "ratio a/b"
    else:
        rng = np.random.default_rng(seed)
        ma = np.median(a[rng.integers(0, a.size, (2000, a.size))], axis=1)
        mb = np.median(b[rng.integers(0, b.size, (2000, b.size))], axis=1)
        effect = median(a) - median(b)
        low, high = (float(v) for v in np.percentile(ma - mb, [2.5, 97.5]))
        null = 0.0
    return claim_from_interval(claim_id, statement, effect, low, high, n=n, method="bootstrap",
                               direction=direction, null=null, threshold=threshold, label=label, unit=unit)


def claim_from_interval(
    claim_id: str,
    statement: str,
    effect: float,
    low: float,
    high: float,
    *,
    n: int,
    method: str,
    direction: Direction = "greater",
    null: float = 0.0,
    threshold: float = 0.0,
    label: str = "effect",
    unit: str = "",
    min_n: int = 2,
    note: str = "",
) -> Claim:
    """A verdict from an interval computed elsewhere (e.g. a Monte Carlo proportion)."""
    v = decide(effect, low, high, direction=direction, null=null, threshold=threshold, n=n, min_n=min_n,
               method=method)
    u = f" {unit}" if unit and unit != "x" else ("x" if unit == "x" else "")
    evidence = f"{label} {_fmt(effect)}{u} [95% {method} {_fmt(low)}, {_fmt(high)}], n={n}"
    if n < min_n:
        evidence += f" (fewer than {min_n}: too few)"
    elif method == "bootstrap" and n < MIN_BOOTSTRAP_N:
        evidence += f" (a 95% bootstrap interval needs {MIN_BOOTSTRAP_N} values: too few)"
    if note:
        evidence += f"; {note}"
    return Claim(claim_id, statement, v, float(effect), float(low), float(high), int(n), method, evidence, unit)


def not_measured(claim_id: str, statement: str, *, note: str) -> Claim:
    """A claim this run could not measure (a needed option, case or run is missing): inconclusive, `note` says why."""
    return Claim(claim_id, statement, "inconclusive", math.nan, math.nan, math.nan, 0, "not run", note)


def exact_claim(claim_id: str, statement: str, error: float, tolerance: float, *, n: int = 1, what: str = "max |diff|") -> Claim:
    """An exact check: supported when `error` is within `tolerance`, refuted otherwise."""
    ok = math.isfinite(error) and error <= tolerance
    evidence = f"{what} {error:.2e} (tolerance {tolerance:.0e}), {n} check{'s' if n != 1 else ''}"
    return Claim(claim_id, statement, "supported" if ok else "refuted", float(error), 0.0,
                 float(tolerance), int(n), "exact", evidence)
