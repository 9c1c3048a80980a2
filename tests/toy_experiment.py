"""A small experiment module used to test the machinery every experiment shares."""

from dataclasses import dataclass

import numpy as np

from dlbench.experiments.base import option
from dlbench.stats import exact_claim, verdict

NAME = "toy"
HELP = "A toy experiment for the tests."
CLAIMS = {"T1": "the toy effect is positive", "T2": "an exact identity holds"}


@dataclass
class Options:
    shape: str = option("bowl", help="Which shape.", choices=lambda: ["bowl", "cliff"])
    steps: int = option(100, help="Steps.", min=1, quick=10)
    scale: float = option(1.0, help="Effect size.")


def run(opts, ctx):
    effects = ctx.rng("effects").normal(opts.scale, 0.1, ctx.seeds)
    for name, factor in (("a", 1.0), ("b", 2.0)):
        case = {"shape": opts.shape, "opt": name}
        ctx.record.metric("loss", effects * factor, case=case, better="lower", seeds=ctx.seed_list)
        ctx.record.curve("loss", np.exp(-np.arange(opts.steps) / 10) * factor, case=case, seed=ctx.seed)
    x = np.ones(4096, np.float32)
    y = np.empty_like(x)
    ctx.time("relu", np.maximum, x, 0, out=y, case={"n": x.size}, items=x.size, bytes=2 * x.nbytes)
    ctx.claim(verdict("T1", CLAIMS["T1"], effects, label="effect"))
    ctx.claim(exact_claim("T2", CLAIMS["T2"], 0.0, 1e-12))
