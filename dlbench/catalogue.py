"""The claim catalogue: every claim and check of every experiment, from their specs.

`dlbench claims --list` prints it; `docs/claims.md` is `markdown()` written out
(`python -m dlbench.catalogue docs/claims.md`), and a test keeps the two the same.
"""

from __future__ import annotations

import sys
from pathlib import Path

from dlbench import experiments
from dlbench.experiments.base import catalogue, checks_of
from dlbench.protocol import ClaimSpec

HEADER = """# The claims dlbench puts to the test

Every claim has an id; the experiment that owns its prefix measures it and prints a verdict.
This page is generated from the code (`python -m dlbench.catalogue docs/claims.md`); a test
fails when it is out of date. How a verdict is earned is in [protocol.md](protocol.md).

| outcome | rule |
| --- | --- |
| `supported` | at every point of the claim's nuisance grid the effect points the way the claim says, its 95 % interval excludes no effect and clears the practical threshold; the negative control does not come out supported; every base seed agrees |
| `refuted` | at every grid point the interval lies on the other side |
| `inconclusive` | neither: too few seeds, too noisy, an effect below the threshold, a control that came out supported, a failed check, or a verdict that changes with the base seed (the evidence says which) |
| `conditional` | the grid points disagree; the sensitivity column names the boundary (over a claim's own universe, "for every activation in {...}", one counterexample refutes it instead) |
| `not run` | this run did not measure it (its premise or a needed option is missing; the evidence says which) |

A *check* is an exact identity about the implementation or the mathematics; it passes or fails to
a tolerance and stands beside a claim as evidence, never as the whole basis of its verdict.
"""


def rows() -> list[tuple[str, ClaimSpec]]:
    """(experiment, spec) for every claim, in registry order."""
    return [(name, spec) for name in experiments.names() for spec in catalogue(experiments.load(name)).values()]


def _grid_text(spec: ClaimSpec) -> str:
    if not spec.grid:
        return "none (one setting)"
    parts = []
    for a in spec.grid:
        text = (f"for every {a.name} in" if a.quantifier else f"{a.name} ∈") + f" {{{', '.join(map(_value, a.values))}}}"
        if a.quick is not None and tuple(a.quick) != tuple(a.values):
            text += f" (quick: {{{', '.join(map(_value, a.quick))}}})"
        parts.append(text)
    return "; ".join(parts)


def _value(v) -> str:
    if isinstance(v, float):
        return f"{v:g}"
    return f"({v})" if isinstance(v, str) and "," in v else str(v)


def markdown() -> str:
    """The whole catalogue as a Markdown page."""
    out = [HEADER]
    for name in experiments.names():
        module = experiments.load(name)
        out.append(f"\n## {name} — `dlbench {name}`\n")
        for spec in catalogue(module).values():
            out.append(f"\n### {spec.id} — {spec.statement}\n\n")
            fields = [("measured", spec.measures), ("control", spec.control), ("nuisance grid", _grid_text(spec)),
                      ("practical threshold", spec.threshold), ("judged where", spec.premise),
                      ("literature", spec.literature), ("basis", spec.basis)]
            out.extend(f"- **{k}**: {v}\n" for k, v in fields if v)
        checks = checks_of(module)
        if checks:
            out.append(f"\n### checks of `dlbench {name}`\n\n| check | identity | tolerance | beside |\n"
                       "| --- | --- | --- | --- |\n")
            out.extend(f"| {c.id} | {c.statement} | {c.tolerance} | {c.claim} |\n" for c in checks.values())
    return "".join(out)


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m dlbench.catalogue docs/claims.md", file=sys.stderr)
        return 2
    Path(argv[0]).write_text(markdown())
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
