"""Mutation testing of the modules that decide: mutmut over their functions, the share killed, and every
survivor held to the list of equivalent mutants.

    .venv/bin/pip install -e '.[dev,mutation]'
    .venv/bin/python tests/mutation/run.py                # every deciding module
    .venv/bin/python tests/mutation/run.py protocol       # one module
    .venv/bin/python tests/mutation/run.py --report       # score the last run again, run nothing

mutmut (configured in pyproject.toml, [tool.mutmut]) copies the package into mutants/, mutates one
function at a time and runs only the selected tests that call that function. A mutant is *killed* when
a test fails or it times out. Every other mutant (survived, no test calls it, suspicious) must be listed
in tests/mutation/equivalent.txt with the reason it cannot change what a user is told; an entry is the
mutated function and the lines the mutant removes (-) and adds (+), so it survives renumbering.

Exit status 0 when every mutant is killed or listed, no listed entry is stale (its mutant now killed or
gone) and the share killed is at least --min-score; 1 otherwise, with the diff of each unlisted survivor.
"""

from __future__ import annotations

import argparse
import ast
import fnmatch
import json
import os
import shutil
import subprocess
import sys
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
EQUIVALENTS = Path(__file__).with_name("equivalent.txt")
CLASS_SEP = "ǁ"

#: module -> (source path, functions left out of the score)
MODULES = {
    "stats": ("dlbench/stats.py", set()),
    "protocol": ("dlbench/protocol.py", set()),
    "compare": ("dlbench/compare.py", set()),
}
KILLED = {"killed", "timeout", "caught by type check"}


@dataclass(frozen=True)
class Entry:
    """One mutant judged equivalent: its function, the lines it removes and adds, and why it changes nothing."""

    function: str
    minus: tuple[str, ...]
    plus: tuple[str, ...]
    reason: str
    line: int


def _norm(line: str) -> str:
    return " ".join(line.split())


def load_equivalents(path: Path = EQUIVALENTS) -> list[Entry]:
    """Parse the equivalents file: a function line, then indented '- old', '+ new' and 'why: reason' lines."""
    entries: list[Entry] = []
    current: dict | None = None

    def close():
        if current is None:
            return
        if not current["why"]:
            raise SystemExit(f"{path}:{current['line']}: entry for {current['function']} has no 'why:' line")
        entries.append(Entry(current["function"], tuple(current["minus"]), tuple(current["plus"]),
                             current["why"], current["line"]))

    for i, raw in enumerate(path.read_text().splitlines(), 1) if path.exists() else ():
        if not raw.strip() or raw.lstrip().startswith("#"):
            continue
        if not raw[0].isspace():
            close()
            current = {"function": raw.strip(), "minus": [], "plus": [], "why": "", "line": i}
            continue
        if current is None:
            raise SystemExit(f"{path}:{i}: an indented line before any function line")
        text = raw.strip()
        if text.startswith("- "):
            current["minus"].append(_norm(text[2:]))
        elif text.startswith("+ "):
            current["plus"].append(_norm(text[2:]))
        elif text.startswith("why:"):
            current["why"] = text[4:].strip()
        else:
            raise SystemExit(f"{path}:{i}: expected '- old', '+ new' or 'why: reason', got {text!r}")
    close()
    return entries


def in_scope(module: str) -> list[str]:
    """mutmut's mangled names of the module's functions and methods in scope (x_f, xǁClassǁmethod)."""
    path, skip = MODULES[module]
    tree = ast.parse((ROOT / path).read_text())
    dotted = path[:-3].replace("/", ".")
    names = []
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name not in skip:
            names.append(f"{dotted}.x_{node.name}")
        elif isinstance(node, ast.ClassDef) and node.name not in skip:
            names += [f"{dotted}.x{CLASS_SEP}{node.name}{CLASS_SEP}{m.name}" for m in node.body
                      if isinstance(m, (ast.FunctionDef, ast.AsyncFunctionDef))]
    return names


def function_name(key: str) -> str:
    """'dlbench.stats.x_decide__mutmut_3' -> 'dlbench.stats.decide'; methods as Class.method."""
    mangled = key.partition("__mutmut_")[0]
    module, _, name = mangled.rpartition(".")
    if CLASS_SEP in name:
        _, cls, meth = name.split(CLASS_SEP)
        return f"{module}.{cls}.{meth}"
    return f"{module}.{name[2:]}"


def mutant_diff(key: str, path: str) -> str:
    from mutmut.mutation.diff_apply import get_diff_for_mutant

    return get_diff_for_mutant(key, path=path)


def changed_lines(diff: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    lines = diff.splitlines()
    minus = tuple(_norm(x[1:]) for x in lines if x.startswith("-") and not x.startswith("---"))
    plus = tuple(_norm(x[1:]) for x in lines if x.startswith("+") and not x.startswith("+++"))
    return minus, plus


def run_mutmut(modules: list[str], max_children: int, keep: bool) -> float:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["mutmut"]
    missing = [MODULES[m][0] for m in modules if MODULES[m][0] not in config.get("only_mutate", [])]
    if missing:
        raise SystemExit(f"pyproject.toml [tool.mutmut] only_mutate lacks {', '.join(missing)}")
    if not keep:
        # mutmut copies the tests into mutants/ once and keeps stale copies: start clean
        shutil.rmtree(ROOT / "mutants", ignore_errors=True)
    globs = [f"{name}__mutmut_*" for m in modules for name in in_scope(m)]
    mutmut = Path(sys.executable).with_name("mutmut")
    log = ROOT / "mutants" / "run.log"
    start = time.perf_counter()
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "w") as out:
        proc = subprocess.run([str(mutmut), "run", "--max-children", str(max_children), *globs], cwd=ROOT,
                              stdout=out, stderr=subprocess.STDOUT)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        sys.stdout.write(log.read_text()[-4000:])
        raise SystemExit(f"mutmut run failed (exit {proc.returncode}); its log: {log}")
    return wall


def score(modules: list[str], entries: list[Entry], min_score: float) -> int:
    os.chdir(ROOT)  # mutmut's helpers read pyproject.toml and mutants/ from the working directory
    unlisted, used, status = [], set(), 0
    total_all = killed_all = 0
    for m in modules:
        path = MODULES[m][0]
        meta = ROOT / "mutants" / f"{path}.meta"
        if not meta.exists():
            raise SystemExit(f"no mutmut results for {path}: run without --report first")
        codes = json.loads(meta.read_text())["exit_code_by_key"]
        globs = [f"{name}__mutmut_*" for name in in_scope(m)]
        keys = sorted((k for k in codes if any(fnmatch.fnmatch(k, g) for g in globs)),
                      key=lambda k: (k.partition("__mutmut_")[0], int(k.rpartition("_")[2])))
        from mutmut.stats import status_by_exit_code

        killed = equivalent = 0
        for k in keys:
            st = status_by_exit_code[codes[k]]
            if st in KILLED:
                killed += 1
                continue
            diff = mutant_diff(k, path)
            minus, plus = changed_lines(diff)
            fn = function_name(k)
            match = [i for i, e in enumerate(entries) if (e.function, e.minus, e.plus) == (fn, minus, plus)]
            if match:
                equivalent += 1
                used.update(match)
            else:
                unlisted.append((k, st, fn, diff))
        total = len(keys)
        total_all += total
        killed_all += killed
        share = killed / total if total else 1.0
        print(f"{path}: {total} mutants, {killed} killed ({share:.1%}), {equivalent} listed as equivalent, "
              f"{total - killed - equivalent} unlisted")
    share = killed_all / total_all if total_all else 1.0
    print(f"all: {total_all} mutants, {killed_all} killed ({share:.1%})")
    prefixes = tuple("dlbench." + m + "." for m in modules)
    stale = [e for i, e in enumerate(entries) if i not in used and e.function.startswith(prefixes)]
    for k, st, fn, diff in unlisted:
        print(f"\n{st}: {k} ({fn}) is neither killed nor listed in {EQUIVALENTS.relative_to(ROOT)}")
        print("\n".join(diff.splitlines()[2:]))
        status = 1
    for e in stale:
        print(f"\n{EQUIVALENTS.relative_to(ROOT)}:{e.line}: {e.function} {e.plus} matches no surviving mutant "
              "(killed now, or the code changed): remove the entry")
        status = 1
    if share < min_score:
        print(f"\nkilled {share:.1%} < {min_score:.0%}")
        status = 1
    return status


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("modules", nargs="*", help=f"modules to mutate: {', '.join(MODULES)} (default: all)")
    ap.add_argument("--report", action="store_true", help="score the results of the last run; run nothing")
    ap.add_argument("--keep", action="store_true", help="reuse mutants/ (stale test copies!) instead of a fresh copy")
    ap.add_argument("--max-children", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--min-score", type=float, default=0.90, help="least share of mutants killed (default 0.90)")
    args = ap.parse_args(argv)
    modules = args.modules or list(MODULES)
    unknown = [m for m in modules if m not in MODULES]
    if unknown:
        ap.error(f"unknown module {unknown[0]!r}; choose from {', '.join(MODULES)}")
    entries = load_equivalents()
    if not args.report:
        wall = run_mutmut(modules, args.max_children, args.keep)
        print(f"mutmut over {', '.join(modules)}: {wall:.0f} s wall, {args.max_children} workers")
    return score(modules, entries, args.min_score)


if __name__ == "__main__":
    sys.exit(main())
