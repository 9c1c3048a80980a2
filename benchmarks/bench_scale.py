"""Scale-out: the protocol-grade suite on 1 and 2 local workers and on a two-worker Dask LocalCluster.

One process runs the same plan (the suite, or --experiments, at --seed 0,1000,2000) on each executor,
in an interleaved order over --rounds (1, 2, dask, dask, 2, 1, ...), with a unit cache of its own in a
temporary folder, and prints:

- wall: the whole run (bandwidth probe, fan-out, timing phase, verdicts), median over rounds;
- fan-out: from the first unit handed to an executor to the last non-timing unit finished;
- serial: the timing phase (timing parts, and experiments not yet split into parts, one at a time here);
- unit wall and unit cpu: the fan-out units' summed run times and CPU seconds (wall well above cpu: the
  machine was busy with other work, and the speed-ups mean little);
- overhead per unit: the median time a worker stands idle between two of its units (its result sent,
  the next unit received and unpickled), and beside it the median time from a unit's end on its worker
  to its rows in this process (the Parquet write to the unit cache follows, while the workers run on);
- the targets: speed-up >= 1.7x at two workers, Dask within 15 % of the local pool, overhead < 50 ms;
- whether every row of the fan-out units and every verdict not resting on timings is the same on each
  executor as on one worker.

The first run (one worker) leaves in that cache what each part took, so the later runs hand out the
longest parts first, as a user's second run of a command does; no finished unit is reused (a complete run
removes its units from the cache, and the benchmark checks that none was reused).

Two processes on a 2-core machine share it with anything else running: read the load averages printed
beside the figures, and rerun on a quiet machine for figures to quote.

    python benchmarks/bench_scale.py                      # the suite, default size, base seeds 0,1000,2000
    python benchmarks/bench_scale.py --quick              # the quick size
    python benchmarks/bench_scale.py --experiments init --quick --rounds 2
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from dlbench import experiments
from dlbench.runner import make_options, run_many


def plan_of(names: list[str], quick: bool):
    return [(m, make_options(m, quick, **getattr(m, "SUITE_OPTIONS", {}))) for m in map(experiments.load, names)]


def phases(res) -> dict:
    log = res.meta["unit_log"]
    fan = [u for u in log if not u["timing"]]
    timed = [u for u in log if u["timing"]]
    gaps = []  # a worker idle between two of its units: what the executor costs it per unit
    for pid in {u["pid"] for u in fan}:
        mine = sorted((u for u in fan if u["pid"] == pid), key=lambda u: u["start"])
        gaps += [b["start"] - a["stop"] for a, b in zip(mine, mine[1:])]
    back = [u["received"] - u["stop"] for u in fan]
    return {
        "fanout": max(u["stop"] for u in fan) - min(u["submitted"] for u in fan) if fan else 0.0,
        "serial": sum(u["stop"] - u["start"] for u in timed),
        "gap": statistics.median(gaps) if gaps else float("nan"),
        "back": statistics.median(back) if back else float("nan"),
        "units": len(fan), "timing_units": len(timed),
        "busy": sum(u["stop"] - u["start"] for u in fan),
        "cpu": sum(u["cpu"] for u in fan),
    }


def comparable(res):
    """The rows every executor must give alike: those of the fan-out units and the verdicts that do not rest
    on timings, without run id and host. A timing unit's rows (its timings and what it derives from them, a
    time ratio, a rate) differ from one run to the next whatever runs them."""
    rows, log = res.rows, res.meta["unit_log"]
    timed = np.zeros(len(rows), bool)
    pos = 0
    for exp in dict.fromkeys(u["experiment"] for u in log):  # each experiment: its units' rows, then its claims
        for u in (u for u in log if u["experiment"] == exp):
            timed[pos:pos + u["rows"]] = u["timing"]
            pos += u["rows"]
        pos += int(((rows["experiment"] == exp) & (rows["kind"] == "claim")).sum())
    keep = ~timed & (rows["kind"] != "timing") & (rows["basis"] != "timing")
    return rows[keep].drop(columns=["run_id", "host"]).reset_index(drop=True)


def differing(a, b) -> str:
    """'' when the two frames hold the same rows; else the experiments and metrics whose rows differ."""
    if a.equals(b):
        return ""
    if a.shape != b.shape or list(a.columns) != list(b.columns):
        return f"{len(a)} rows against {len(b)}"
    same = ((a == b) | (a.isna() & b.isna())).all(axis=1)
    return ", ".join(sorted({f"{e} {m}" for e, m in zip(a.loc[~same, "experiment"], a.loc[~same, "metric"])}))


def projected_fanout(log: list[dict], workers: int, gap: float) -> float:
    """The fan-out's length on `workers` idle cores: the units' CPU seconds (from a one-worker run), each
    handed, longest first, to the first free worker, `gap` seconds between two units of a worker."""
    free = [0.0] * workers
    for u in sorted((u for u in log if not u["timing"]), key=lambda u: -u["cpu"]):
        k = free.index(min(free))
        free[k] += u["cpu"] + gap
    return max(free)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--experiments", default=",".join(experiments.names()), help="comma list (default: the suite)")
    ap.add_argument("--quick", action="store_true", help="the quick size")
    ap.add_argument("--seed", default="0,1000,2000", help="base seeds (default 0,1000,2000)")
    ap.add_argument("--rounds", type=int, default=1, help="interleaved rounds of the three executors")
    ap.add_argument("--no-dask", action="store_true", help="skip the Dask LocalCluster")
    args = ap.parse_args()
    names = [n.strip() for n in args.experiments.split(",") if n.strip()]
    seeds = [int(s) for s in args.seed.split(",")]
    plan = plan_of(names, args.quick)
    configs = ["1", "2"] + ([] if args.no_dask else ["dask"])
    cluster = None
    if not args.no_dask:
        import distributed

        # Two one-thread worker processes, listening on this machine only.
        cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                           dashboard_address="127.0.0.1:0", silence_logs=logging.ERROR)
    load_before = os.getloadavg()
    walls: dict[str, list[float]] = {c: [] for c in configs}
    parts: dict[str, list[dict]] = {c: [] for c in configs}
    logs: dict[str, list] = {c: [] for c in configs}
    rows: dict[str, object] = {}
    cache = tempfile.TemporaryDirectory(prefix="dlbench-bench-scale-")
    try:
        for r in range(args.rounds):
            for c in (configs if r % 2 == 0 else configs[::-1]):
                kw = {"scheduler": cluster.scheduler_address} if c == "dask" else {"workers": int(c)}
                t = time.perf_counter()
                res = run_many(plan, seed=seeds, quick=args.quick, cache_dir=Path(cache.name), **kw)
                if res.meta["units"]["reused"]:
                    raise SystemExit(f"bench_scale: {c} reused {res.meta['units']['reused']} cached units")
                walls[c].append(time.perf_counter() - t)
                parts[c].append(phases(res))
                logs[c].append(res.meta["unit_log"])
                rows.setdefault(c, comparable(res))
    finally:
        if cluster is not None:
            cluster.close()
        cache.cleanup()
    load_after = os.getloadavg()
    med = {c: statistics.median(walls[c]) for c in configs}
    ph = {c: {k: statistics.median(p[k] for p in parts[c]) for k in parts[c][0]} for c in configs}
    size = "quick" if args.quick else "default"
    print(f"bench_scale: {','.join(names)} at {size} size, base seeds {args.seed}, {args.rounds} round(s); "
          f"{ph['1']['units']:.0f} fan-out units + {ph['1']['timing_units']:.0f} timing units; "
          f"{os.cpu_count()} cores; load {load_before[0]:.1f} before, {load_after[0]:.1f} after")
    print(f"{'executor':<10}{'wall s':>9}{'fan-out s':>11}{'serial s':>10}{'unit wall s':>13}{'unit cpu s':>12}"
          f"{'idle/unit ms':>14}{'back ms':>9}")
    for c in configs:
        label = {"1": "1 worker", "2": "2 workers", "dask": "dask x2"}[c]
        print(f"{label:<10}{med[c]:>9.1f}{ph[c]['fanout']:>11.1f}{ph[c]['serial']:>10.1f}{ph[c]['busy']:>13.1f}"
              f"{ph[c]['cpu']:>12.1f}{1e3 * ph[c]['gap']:>14.1f}{1e3 * ph[c]['back']:>9.1f}")
    print("(unit wall above unit cpu: the units waited for a core, i.e. the machine was busy with other work)")
    speedup = med["1"] / med["2"]
    fan_speedup = ph["1"]["fanout"] / ph["2"]["fanout"] if ph["2"]["fanout"] else float("nan")
    worst = max(ph[c]["gap"] for c in configs)
    print(f"speed-up at 2 workers: {speedup:.2f}x whole run, {fan_speedup:.2f}x fan-out (target >= 1.7x)")
    if "dask" in med:
        print(f"dask / local pool: {med['dask'] / med['2']:.2f} whole run, "
              f"{ph['dask']['fanout'] / ph['2']['fanout']:.2f} fan-out (target <= 1.15)")
    print(f"overhead per unit: {1e3 * worst:.1f} ms at worst (target < 50 ms)")
    differ = {c: differing(rows["1"], rows[c]) for c in configs}
    differ = {c: d for c, d in differ.items() if d}
    print("every row of the fan-out units and every verdict not resting on timings " +
          ("DIFFERS from 1 worker: " + "; ".join(f"{c}: {d}" for c, d in differ.items()) if differ
           else f"identical on {', '.join(configs)}"))
    # What two idle cores would give, from the CPU seconds each unit took: a guide when the machine is busy.
    one = logs["1"][0]
    serial_cpu = sum(u["cpu"] for u in one if u["timing"])
    fan1, fan2 = projected_fanout(one, 1, 0.0), projected_fanout(one, 2, ph["2"]["gap"])
    rest = med["1"] - ph["1"]["fanout"] - ph["1"]["serial"]  # probe, fingerprint, verdicts
    print(f"projected on idle cores from unit CPU seconds: fan-out {fan1:.1f} s -> {fan2:.1f} s at 2 workers "
          f"({fan1 / fan2:.2f}x); whole run {(rest + fan1 + serial_cpu) / (rest + fan2 + serial_cpu):.2f}x "
          f"(serial part {serial_cpu:.1f} s)")


if __name__ == "__main__":
    main()
