"""Do the verdicts hold across base seeds? Run the suite (or some experiments) once per base seed and
print, claim by claim, the verdict each base seed gave, and how many claims agree.

    python benchmarks/seed_agreement.py --quick                 # base seeds 0, 1000, 2000
    python benchmarks/seed_agreement.py --seeds 0,1000,2000,3000 --experiments init,norm

Each base seed is a separate run, one after the other (side by side, the cost claims would time each
other). The results files are kept in --dir. Exit status 1 when any verdict differs between seeds.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from dlbench import experiments
from dlbench.results import read_results
from dlbench.runner import make_options, run_many


def verdicts(path: Path) -> dict[tuple[str, str], tuple[str, str]]:
    """(experiment, claim or check) -> (verdict, control) from one results file."""
    rows = read_results(path).rows
    out = {}
    for _, r in rows[rows["kind"].isin(["claim", "check"])].iterrows():
        control = r["control"] if isinstance(r["control"], str) else ""
        out[(r["experiment"], r["metric"])] = (r["verdict"], control)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", default="0,1000,2000", help="base seeds, comma-separated")
    ap.add_argument("--quick", action="store_true", help="the quick size")
    ap.add_argument("--experiments", default=",".join(experiments.names()), help="comma-separated")
    ap.add_argument("--dir", type=Path, default=Path("results/seed-agreement"), help="where the files go")
    args = ap.parse_args(argv)
    seeds = [int(s) for s in args.seeds.split(",")]
    names = [n.strip() for n in args.experiments.split(",")]
    args.dir.mkdir(parents=True, exist_ok=True)
    plan = [(m, make_options(m, args.quick, **getattr(m, "SUITE_OPTIONS", {}))) for m in map(experiments.load, names)]
    size = "quick" if args.quick else "default"
    found = {}
    for seed in seeds:
        path = args.dir / f"{size}-seed{seed}.parquet"
        start = time.perf_counter()
        run_many(plan, seed=seed, quick=args.quick, out=path, force=True)
        print(f"base seed {seed}: {time.perf_counter() - start:.1f} s -> {path}", file=sys.stderr)
        found[seed] = verdicts(path)
    keys = list(dict.fromkeys(k for v in found.values() for k in v))
    width = max(len(k[1]) for k in keys) + 2
    print(f"\n{size} size, base seeds {', '.join(map(str, seeds))}\n")
    print(f"{'claim':<{width}}" + "".join(f"{s:>28}" for s in seeds) + "  agree")
    differ = 0
    for key in keys:
        got = [found[s].get(key, ("—", "")) for s in seeds]
        same = len({g[0] for g in got}) == 1
        differ += not same
        cells = "".join(f"{(g[0] + (f' (ctl {g[1]})' if g[1] else '')):>28}" for g in got)
        print(f"{key[1]:<{width}}{cells}  {'yes' if same else 'NO'}")
    print(f"\n{len(keys) - differ} of {len(keys)} verdicts agree across the base seeds")
    return 1 if differ else 0


if __name__ == "__main__":
    raise SystemExit(main())
