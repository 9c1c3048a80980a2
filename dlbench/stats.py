"""The claim maths, in one place: intervals, tests, the verdict rule, and how findings combine.

A `Finding` is one measured outcome: an effect with its 95 % interval, the number of
values it rests on, and the verdict the rule gives it (`decide`). Experiments build
findings with `finding` (per-seed values), `two_sample` (two groups), `from_interval`
(an interval computed elsewhere, e.g. a Wilson interval), `equivalence` (an interval
that must lie inside a band) and `all_of` (several findings that must all hold);
`dlbench.protocol` turns findings over a claim's grid, its control and its base seeds
into the claim's verdict.

No SciPy: the few distributions needed are written out here and tested against
textbook values (and against SciPy in the tests, where it is installed).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, replace
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



def bootstrap_difference(a, b, *, level=0.95, n_boot=2000, seed=0) -> tuple[float, float, float]:
    """median(a) - median(b) with its percentile bootstrap interval (each side resampled), seeded."""
    a, b = np.asarray(a, dtype=float).ravel(), np.asarray(b, dtype=float).ravel()
    d = float(np.median(a) - np.median(b))
    if a.size < 2 or b.size < 2:
        return d, d, d
    rng = np.random.default_rng(seed)
    ma = np.median(a[rng.integers(0, a.size, (n_boot, a.size))], axis=1)
    mb = np.median(b[rng.integers(0, b.size, (n_boot, b.size))], axis=1)
    tail = (1 - level) / 2 * 100
    lo, hi = np.percentile(ma - mb, [tail, 100 - tail])
    return d, float(lo), float(hi)


# ----------------------------------------------------------------------------------- proportions

Z975 = 1.959963984540054


@dataclass(frozen=True)
class Proportion:
    """k successes in n trials with the 95 % Wilson score interval of k/n."""

    k: float
    n: float
    p: float
    low: float
    high: float


def wilson(k, n, z: float = Z975) -> Proportion:
    """Wilson score interval of a binomial proportion (Wilson 1927): well behaved at 0 and n successes."""
    if n <= 0:
        return Proportion(0, 0, math.nan, math.nan, math.nan)
    p = k / n
    den = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / den
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    lo = 0.0 if k <= 0 else max(0.0, centre - half)
    hi = 1.0 if k >= n else min(1.0, centre + half)
    return Proportion(k, n, p, lo, hi)


def newcombe_difference(a: Proportion, b: Proportion) -> tuple[float, float, float]:
    """p_a - p_b with Newcombe's hybrid score interval (method 10, Newcombe 1998) from two Wilson intervals."""
    d = a.p - b.p
    lo = d - math.sqrt((a.p - a.low) ** 2 + (b.high - b.p) ** 2)
    hi = d + math.sqrt((a.high - a.p) ** 2 + (b.p - b.low) ** 2)
    return d, lo, hi


def agresti_caffo_difference(pa: float, na: float, pb: float, nb: float, z: float = Z975) -> tuple[float, float, float]:
    """p_a - p_b with Agresti & Caffo's (2000) interval: one success and one failure added to each side,
    clipped to the possible range [-1, 1]."""
    ta, tb = (pa * na + 1) / (na + 2), (pb * nb + 1) / (nb + 2)
    half = z * math.sqrt(ta * (1 - ta) / (na + 2) + tb * (1 - tb) / (nb + 2))
    d = pa - pb
    return d, max(-1.0, (ta - tb) - half), min(1.0, (ta - tb) + half)


# ----------------------------------------------------------------------------------- power laws

def log_ratio(a, b) -> np.ndarray:
    """log10(a / b) elementwise, in float64; a zero or non-finite side gives +-inf or nan, without a warning."""
    with np.errstate(all="ignore"):
        return np.log10(np.asarray(a, dtype=float) / np.asarray(b, dtype=float))


def loglog_slope(sizes, values) -> np.ndarray:
    """Least-squares slope k of log v = k log n + c; values (..., len(sizes)), one fit per leading index."""
    x = np.log(np.asarray(sizes, dtype=float))
    xc = x - x.mean()
    y = np.log(np.asarray(values, dtype=float))
    return (y - y.mean(axis=-1, keepdims=True)) @ xc / (xc @ xc)


def power_law(sizes, samples, *, n_boot: int = 2000, seed: int = 0) -> tuple[float, float, float, np.ndarray]:
    """Exponent k of t ~ n^k fitted to the median of each size's samples, with a 95 % bootstrap interval.

    Each size's samples are resampled independently; the medians of a resample are fitted again. Returns
    (k, low, high, the bootstrap exponents) so that two exponents can be compared resample by resample.
    The median, not the minimum: a resampled minimum can only take observed values and moves in jumps,
    so its percentile interval is not a 95 % interval; the median is smooth and as robust to a busy
    machine when the sizes are timed interleaved.
    """
    if len(sizes) < 2:
        return math.nan, math.nan, math.nan, np.full(n_boot, math.nan)
    samples = [np.asarray(s, dtype=float).ravel() for s in samples]
    k = float(loglog_slope(sizes, [np.median(s) for s in samples]))
    rng = np.random.default_rng(seed)
    meds = np.stack([np.median(s[rng.integers(0, s.size, (n_boot, s.size))], axis=1) for s in samples], axis=1)
    boots = loglog_slope(sizes, meds)
    lo, hi = np.percentile(boots, [2.5, 97.5])
    return k, float(lo), float(hi), boots


# ----------------------------------------------------------------------------------- findings

@dataclass(frozen=True)
class Finding:
    """One measured outcome: the effect, its 95 % interval [low, high] from `n` values, and its verdict.

    verdict is `supported` (the interval lies on the claimed side of the null and the effect clears the
    practical threshold), `refuted` (the interval lies on the other side) or `inconclusive`; `evidence`
    says it in one line; `threshold` is the practical threshold the effect was held to.
    """

    verdict: str
    effect: float
    low: float
    high: float
    n: int
    method: str
    evidence: str
    unit: str = ""
    threshold: float = math.nan
    parts: tuple[str, ...] = ()     # the verdict of each part, for a finding made of several (all_of)


def fmt_number(v: float) -> str:
    return "nan" if v is None or not math.isfinite(v) else f"{v:.3g}"


_fmt = fmt_number


def decide(effect, low, high, *, direction: Direction = "greater", null=0.0, threshold=0.0, n=0, min_n=2,
           method: str = "") -> str:
    """The verdict rule: where the interval lies against `null` and the practical threshold beyond it.

    supported: the whole interval lies on the claimed side, at least `threshold` beyond `null` (an
    effect that may be smaller than practical is not support); refuted: the whole interval lies on the
    other side of `null`; inconclusive otherwise (the interval straddles no effect, or the effect is real
    but may fall short of the threshold), or with fewer than `min_n` observations, or (for a bootstrap
    interval) fewer than MIN_BOOTSTRAP_N.
    """
    if n < min_n or not all(map(math.isfinite, (effect, low, high))):
        return "inconclusive"
    if method == "bootstrap" and n < MIN_BOOTSTRAP_N:
        return "inconclusive"
    sign = 1.0 if direction == "greater" else -1.0
    lo, hi = sorted((sign * (low - null), sign * (high - null)))
    if lo > 0 and lo >= threshold:
        return "supported"
    if hi < 0:
        return "refuted"
    return "inconclusive"


def from_interval(effect: float, low: float, high: float, *, n: int, method: str,
                  direction: Direction = "greater", null: float = 0.0, threshold: float = 0.0,
                  label: str = "effect", unit: str = "", min_n: int = 2, note: str = "") -> Finding:
    """A finding from an interval computed elsewhere (a Wilson interval, a fitted exponent, ...)."""
    v = decide(effect, low, high, direction=direction, null=null, threshold=threshold, n=n, min_n=min_n,
               method=method)
    u = "x" if unit == "x" else f" {unit}" if unit else ""
    evidence = f"{label} {_fmt(effect)}{u} [95% {method} {_fmt(low)}, {_fmt(high)}], n={n}"
    if n < min_n:
        evidence += f" (fewer than {min_n}: too few)"
    elif method == "bootstrap" and n < MIN_BOOTSTRAP_N:
        evidence += f" (a 95% bootstrap interval needs {MIN_BOOTSTRAP_N} values: too few)"
    if note:
        evidence += f"; {note}"
    return Finding(v, float(effect), float(low), float(high), int(n), method, evidence, unit,
                   float(null + threshold if direction == "greater" else null - threshold))


def finding(values, *, direction: Direction = "greater", null: float = 0.0, threshold: float = 0.0,
            method: Literal["bootstrap", "t"] = "bootstrap", label: str = "effect", unit: str = "",
            seed: int = 0, min_n: int = 2, note: str = "") -> Finding:
    """A finding on per-seed effects `values`: their median (bootstrap) or mean (t) against `null`.

    Non-finite values (a run that diverged) are left out and the evidence says how many: a claim whose
    effect is undefined for a diverged run decides what divergence means before it gets here.
    """
    x = np.asarray(values, dtype=float).ravel()
    dropped = int((~np.isfinite(x)).sum())
    x = x[np.isfinite(x)]
    if dropped:
        note = f"{dropped} of {dropped + x.size} values not finite, left out" + (f"; {note}" if note else "")
    if method == "t":
        effect = float(x.mean()) if x.size else math.nan
        low, high = t_ci(x)
    else:
        effect = median(x) if x.size else math.nan
        low, high = bootstrap_ci(x, seed=seed)
    return from_interval(effect, low, high, n=x.size, method=method, direction=direction, null=null,
                         threshold=threshold, label=label, unit=unit, min_n=min_n, note=note)


def two_sample(a, b, *, direction: Direction = "greater", ratio: bool = False, threshold: float = 0.0,
               label: str = "", unit: str = "", seed: int = 0, note: str = "") -> Finding:
    """A finding on median(a) against median(b): their difference, or their ratio a/b against 1.

    Unpaired: each group is resampled on its own. Where the values are paired (one per seed on both
    sides), judge the per-seed differences or ratios with `finding` instead: it is the sharper test.
    """
    a = np.asarray(a, dtype=float).ravel()
    b = np.asarray(b, dtype=float).ravel()
    a, b = a[np.isfinite(a)], b[np.isfinite(b)]
    n = min(a.size, b.size)
    if n == 0:
        return from_interval(math.nan, math.nan, math.nan, n=0, method="bootstrap", label=label or "effect",
                             unit=unit, note=note)
    if ratio:
        effect, low, high = bootstrap_ratio_ci(b, a, seed=seed)
        return from_interval(effect, low, high, n=n, method="bootstrap", direction=direction, null=1.0,
                             threshold=threshold, label=label or "ratio a/b", unit="x", note=note)
    effect, low, high = bootstrap_difference(a, b, seed=seed)
    return from_interval(effect, low, high, n=n, method="bootstrap", direction=direction, null=0.0,
                         threshold=threshold, label=label or "difference a - b", unit=unit, note=note)


def equivalence(effect: float, low: float, high: float, *, target: float, tolerance: float, n: int,
                method: str, label: str, unit: str = "", note: str = "") -> Finding:
    """Supported when the whole interval lies inside target +- tolerance (two one-sided verdicts);
    refuted when it lies wholly outside the band on either side; inconclusive otherwise."""
    above = decide(effect, low, high, direction="greater", null=target - tolerance, n=n, method=method)
    below = decide(effect, low, high, direction="less", null=target + tolerance, n=n, method=method)
    v = "supported" if above == below == "supported" else "refuted" if "refuted" in (above, below) \
        else "inconclusive"
    f = from_interval(effect, low, high, n=n, method=method, label=label, unit=unit,
                      note=note or f"within {target:g} +- {tolerance:g}")
    return Finding(v, f.effect, f.low, f.high, f.n, f.method, f.evidence, f.unit, float(tolerance))


def all_of(parts, *, headline: int = 0, note: str = "") -> Finding:
    """One finding from several that must all hold: supported if every part is, refuted if any part is,
    inconclusive otherwise. The effect and interval are those of parts[headline]; the evidence lists
    every part with its own verdict."""
    parts = list(parts)
    verdicts = [p.verdict for p in parts]
    v = "refuted" if "refuted" in verdicts else "supported" if all(x == "supported" for x in verdicts) \
        else "inconclusive"
    h = parts[headline]
    evidence = " | ".join(f"{p.evidence} [{p.verdict}]" for p in parts) if len(parts) > 1 else h.evidence
    if note:
        evidence += f"; {note}"
    return Finding(v, h.effect, h.low, h.high, min(p.n for p in parts), h.method, evidence, h.unit, h.threshold,
                   tuple(p.verdict for p in parts) if len(parts) > 1 else ())


def with_note(f: Finding, note: str = "", *, label: str = "") -> Finding:
    """The same finding with a label before its evidence and/or a note after it."""
    evidence = (f"{label}: " if label else "") + f.evidence + (f"; {note}" if note else "")
    return replace(f, evidence=evidence)

