"""How often does `dlbench compare` cry wolf, and does it catch a real slowdown?

Each trial runs `dlbench suite --quick` four times from this checkout, in the CI job's
order A, B, B, A (one commit on both sides: an A/A test), with a CPU-bound process
running beside the runs in every second trial. Then:

- A/A: `compare --base A1 --base A2 --new B1 --new B2` must confirm no regression;
  the regressions of the single pairing A1/B1 are shown beside it, for scale.
- 1.5x: copies of B1 and B2 with every timing sample multiplied by 1.5 must be
  confirmed as a regression every time; the share of timing rows confirmed slower
  says how much of the slowdown the rule sees.

    python benchmarks/aa_compare.py                 # 10 trials, about 10 minutes on 2 idle cores
    python benchmarks/aa_compare.py --trials 2      # a quick look

Run it on an otherwise quiet machine: the loaded trials bring their own load.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pyarrow.compute as pc
import pyarrow.parquet as pq

from dlbench.compare import compare_files, unconfirmed
from dlbench.results import META_KEY, results_from_tables, write_table

SLOWDOWN = 1.5


def load_average() -> str:
    one, five, _ = os.getloadavg()
    return f"load average {one:.2f} (1 min), {five:.2f} (5 min) on {os.cpu_count()} cores"


def run_suite(out: Path, args: list[str]) -> float:
    """One `dlbench suite` in a fresh process; its wall time in seconds."""
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "dlbench", *args, "--out", str(out), "--force"],
                       capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"aa_compare: dlbench {' '.join(args)} failed (exit {r.returncode}): {r.stderr.strip()}")
    return time.perf_counter() - t0


def slowed_copy(path: Path, out: Path, factor: float = SLOWDOWN) -> Path:
    """A copy of a results file with every timing sample multiplied by `factor` (metadata kept)."""
    table = pq.read_table(path)
    meta = json.loads(table.schema.metadata[META_KEY])
    timing = pc.equal(table["kind"], "timing")
    value = pc.if_else(timing, pc.multiply(table["value"], factor), table["value"])
    table = table.set_column(table.schema.get_field_index("value"), "value", value)
    # sealed again as a run of its own (new digests), as dlbench writes a file: the copy is not damaged
    meta = {k: v for k, v in meta.items() if k not in ("digest", "file_digest")}
    sealed, _ = results_from_tables([table.replace_schema_metadata(None)], meta)
    return write_table(sealed, out, force=True)


class CpuHog:
    """A CPU-bound process beside the runs, stopped by its own pid."""

    def __enter__(self):
        self.proc = subprocess.Popen([sys.executable, "-c", "while True: pass"])
        return self

    def __exit__(self, *exc):
        self.proc.terminate()
        self.proc.wait()


def trial(i: int, folder: Path, suite_args: list[str], loaded: bool) -> dict:
    files = {name: folder / f"trial{i}-{name}.parquet" for name in ("a1", "b1", "b2", "a2")}
    hog = CpuHog() if loaded else None
    seconds = []
    if hog:
        hog.__enter__()
    try:
        for name in ("a1", "b1", "b2", "a2"):  # the CI job's order: base, head, head, base
            seconds.append(run_suite(files[name], suite_args))
    finally:
        if hog:
            hog.__exit__(None, None, None)
    bases, news = [files["a1"], files["a2"]], [files["b1"], files["b2"]]
    aa = compare_files(bases, news)
    single = compare_files(files["a1"], files["b1"])
    slow = [slowed_copy(p, folder / f"{p.stem}-x{SLOWDOWN:g}.parquet") for p in news]
    sx = compare_files(bases, slow)
    timings = sx.rows[(sx.rows["kind"] == "timing") & (sx.rows["result"] != "n/a")]
    return {"trial": i, "loaded": loaded, "suite_s": sum(seconds) / len(seconds),
            "aa_confirmed": len(aa.regressions), "aa_single_pair": len(single.regressions),
            "aa_unconfirmed": len(unconfirmed(aa)),
            "slow_caught": sx.exit_status == 1 and bool((timings["result"] == "slower").any()),
            "slow_rows": int((timings["result"] == "slower").sum()), "timing_rows": len(timings)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--trials", type=int, default=10, help="A, B, B, A quartets of suite runs (default 10).")
    ap.add_argument("--suite-args", default="suite --quick --quiet", help="The dlbench command each run is.")
    ap.add_argument("--keep", type=Path, default=None, help="Keep the results files in this folder.")
    args = ap.parse_args(argv)
    if args.trials < 1:
        ap.error("--trials must be at least 1")
    suite_args = args.suite_args.split()
    print(f"aa_compare: {args.trials} trials of 4 x `dlbench {args.suite_args}`; a CPU-bound process beside "
          f"the runs in trials 2, 4, ...; {load_average()}")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.keep or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        print(f"{'trial':>5} {'load':>6} {'s/run':>6} {'A/A confirmed':>14} {'unconfirmed':>12} "
              f"{'A1/B1 alone':>12} {'1.5x caught':>12} {'timing rows slower':>19}")
        for i in range(1, args.trials + 1):
            r = trial(i, folder, suite_args, loaded=i % 2 == 0)
            rows.append(r)
            print(f"{i:>5} {'cpu' if r['loaded'] else '-':>6} {r['suite_s']:>6.1f} {r['aa_confirmed']:>14} "
                  f"{r['aa_unconfirmed']:>12} {r['aa_single_pair']:>12} {'yes' if r['slow_caught'] else 'NO':>12} "
                  f"{r['slow_rows']:>8} of {r['timing_rows']:<7}", flush=True)
    false_alarms = sum(r["aa_confirmed"] for r in rows)
    failed = sum(r["aa_confirmed"] > 0 for r in rows)
    single = sum(r["aa_single_pair"] for r in rows)
    caught = sum(r["slow_caught"] for r in rows)
    share = sum(r["slow_rows"] for r in rows) / max(1, sum(r["timing_rows"] for r in rows))
    print(f"\nA/A, two runs a side: {false_alarms} confirmed regressions in {len(rows)} trials "
          f"({failed} of {len(rows)} trials would fail CI); one pairing alone would have flagged {single}")
    print(f"1.5x slowdown of every timing: confirmed in {caught} of {len(rows)} trials; "
          f"{share:.0%} of the testable timing rows confirmed slower")
    print(load_average())
    return 0 if false_alarms == 0 and caught == len(rows) else 1


if __name__ == "__main__":
    sys.exit(main())
